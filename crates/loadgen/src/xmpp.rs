//! One client session, as a client does it: TCP, STARTTLS (RFC 6120 §5), SASL (§6), bind (§7),
//! initial presence (RFC 6121 §4.2), and a clean close (§4.4). Reads go through corvid-xml's
//! incremental parser.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use corvid_xml::{escape_attr, Element, Limits, Parser, StreamEvent};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::args::Mech;
use crate::scram::{salted_password, ChannelBinding, ScramClient, ScramHash, ServerFirst};

const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
const NS_CLIENT: &str = "jabber:client";
/// The resource every load-generator session binds.
pub const RESOURCE: &str = "lg";
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// SaltedPassword per (salt, iteration count), shared by a run's sessions.
pub type SaltedCache = Arc<Mutex<HashMap<(Vec<u8>, u32), Vec<u8>>>>;

/// Where and how to log in; shared by every session of a run.
#[derive(Clone)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The XMPP domain.
    pub domain: String,
    /// TLS connector (trust decided by the flags).
    pub tls: TlsConnector,
    /// Name checked against the certificate and sent as SNI.
    pub server_name: ServerName<'static>,
    /// SASL mechanism.
    pub mechanism: Mech,
    /// The password of every account.
    pub password: String,
    /// Longest wait for any single answer.
    pub timeout: Duration,
    /// SaltedPassword per (salt, iterations): clients keep it rather than derive it at every
    /// login (RFC 5802 §5.1 suggests caching it), so the generator's CPU goes to the protocol.
    pub salted: SaltedCache,
}

/// An XML stream over some byte stream: a parser and a read buffer.
#[derive(Debug)]
pub struct XmlStream<S> {
    /// The byte stream.
    pub io: S,
    parser: Parser,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> XmlStream<S> {
    fn new(io: S) -> Self {
        Self {
            io,
            parser: Parser::new(Limits::default()),
            buf: vec![0; READ_CHUNK],
        }
    }

    /// Writes bytes and flushes (TLS records go out at once).
    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.io.write_all(bytes).await.context("writing")?;
        self.io.flush().await.context("flushing")
    }

    /// Splits into a reading and a writing half.
    pub fn split(self) -> (XmlReader<tokio::io::ReadHalf<S>>, tokio::io::WriteHalf<S>) {
        let (r, w) = tokio::io::split(self.io);
        (
            XmlReader {
                io: r,
                parser: self.parser,
                buf: self.buf,
            },
            w,
        )
    }
}

/// The reading half of an [`XmlStream`].
#[derive(Debug)]
pub struct XmlReader<R> {
    io: R,
    parser: Parser,
    buf: Vec<u8>,
}

/// What a read returns.
#[derive(Debug)]
pub enum Read {
    /// A top-level element.
    Element(Element),
    /// The stream was closed (`</stream:stream>` or EOF).
    Closed,
}

/// Reads the next top-level event from a parser fed from `io`; stream headers are skipped.
/// Cancel-safe: bytes are fed to the parser only after a read completes.
async fn next<R: AsyncRead + Unpin>(
    io: &mut R,
    parser: &mut Parser,
    buf: &mut [u8],
) -> anyhow::Result<Read> {
    loop {
        match parser.next_event().context("server sent bad XML")? {
            Some(StreamEvent::Open(_)) => continue,
            Some(StreamEvent::Element(e)) => {
                if e.is("error", corvid_xml::NS_STREAM) {
                    let condition = e
                        .child_elements()
                        .next()
                        .map_or_else(|| "unknown".to_owned(), |c| c.name.to_string());
                    bail!("stream error from the server: {condition}");
                }
                return Ok(Read::Element(e));
            }
            Some(StreamEvent::Close) => return Ok(Read::Closed),
            None => {}
        }
        let n = io.read(buf).await.context("reading")?;
        if n == 0 {
            return Ok(Read::Closed);
        }
        parser.feed(&buf[..n]);
    }
}

impl<R: AsyncRead + Unpin> XmlReader<R> {
    /// The next element or the end of the stream.
    pub async fn next(&mut self) -> anyhow::Result<Read> {
        next(&mut self.io, &mut self.parser, &mut self.buf).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> XmlStream<S> {
    async fn next(&mut self) -> anyhow::Result<Read> {
        next(&mut self.io, &mut self.parser, &mut self.buf).await
    }

    /// The next element within `timeout`; a closed stream is an error naming `what`.
    async fn expect(&mut self, timeout: Duration, what: &str) -> anyhow::Result<Element> {
        match tokio::time::timeout(timeout, self.next()).await {
            Err(_) => bail!("timed out waiting for {what}"),
            Ok(Err(e)) => Err(e.context(format!("waiting for {what}"))),
            Ok(Ok(Read::Closed)) => {
                bail!("the server closed the stream while we waited for {what}")
            }
            Ok(Ok(Read::Element(e))) => Ok(e),
        }
    }

    async fn open_stream(&mut self, domain: &str) -> anyhow::Result<()> {
        let header = format!(
            "<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' \
             xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        );
        self.send(header.as_bytes()).await
    }

    async fn features(&mut self, timeout: Duration) -> anyhow::Result<Element> {
        let f = self.expect(timeout, "stream features").await?;
        if !f.is("features", corvid_xml::NS_STREAM) {
            bail!("expected <stream:features/>, got <{}/>", f.name);
        }
        Ok(f)
    }
}

/// An established session: TLS, authenticated, bound, available.
pub type Session = XmlStream<TlsStream<TcpStream>>;

/// Logs `localpart` in: TCP, STARTTLS, SASL with the target's mechanism, bind to [`RESOURCE`],
/// legacy session establishment only if the server requires it (RFC 3921 §3, marked optional by
/// current servers), initial presence.
pub async fn login(target: &Target, localpart: &str, resource: &str) -> anyhow::Result<Session> {
    let t = target.timeout;
    let tcp = tokio::time::timeout(t, TcpStream::connect(target.addr))
        .await
        .map_err(|_| anyhow!("timed out connecting to {}", target.addr))?
        .with_context(|| format!("connecting to {}", target.addr))?;
    tcp.set_nodelay(true).context("TCP_NODELAY")?;
    let mut plain = XmlStream::new(tcp);
    plain.open_stream(&target.domain).await?;
    let features = plain.features(t).await?;
    if features.child("starttls", NS_TLS).is_none() {
        bail!("the server does not offer STARTTLS");
    }
    plain
        .send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await?;
    let answer = plain.expect(t, "<proceed/>").await?;
    if !answer.is("proceed", NS_TLS) {
        bail!("STARTTLS refused: <{}/>", answer.name);
    }
    if plain.parser.buffered() != 0 {
        bail!("the server sent data after <proceed/> before the TLS handshake");
    }
    let tls = tokio::time::timeout(t, target.tls.connect(target.server_name.clone(), plain.io))
        .await
        .map_err(|_| anyhow!("timed out in the TLS handshake"))?
        .context("TLS handshake")?;
    let mut s = XmlStream::new(tls);
    s.open_stream(&target.domain).await?;
    let features = s.features(t).await?;
    let offered = features
        .child("mechanisms", NS_SASL)
        .map(|m| {
            m.child_elements()
                .any(|c| c.name == "mechanism" && c.text() == target.mechanism.name())
        })
        .unwrap_or(false);
    if !offered {
        bail!("the server does not offer {}", target.mechanism.name());
    }
    authenticate(&mut s, target, localpart).await?;
    s.parser.reset();
    s.open_stream(&target.domain).await?;
    let features = s.features(t).await?;
    if features.child("bind", NS_BIND).is_none() {
        bail!("no resource binding offered after authentication");
    }
    s.send(
        format!(
            "<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>"
        )
        .as_bytes(),
    )
    .await?;
    let bound = s.expect(t, "the bind result").await?;
    if !(bound.is("iq", NS_CLIENT) && bound.attr("type") == Some("result")) {
        bail!("bind failed: {}", bound.to_xml(NS_CLIENT));
    }
    let session_required = features
        .child("session", NS_SESSION)
        .is_some_and(|s| s.child("optional", NS_SESSION).is_none());
    if session_required {
        s.send(format!("<iq type='set' id='sess'><session xmlns='{NS_SESSION}'/></iq>").as_bytes())
            .await?;
        let answer = s.expect(t, "the session result").await?;
        if answer.attr("type") != Some("result") {
            bail!("session establishment failed: {}", answer.to_xml(NS_CLIENT));
        }
    }
    s.send(b"<presence/>").await?;
    Ok(s)
}

async fn authenticate(s: &mut Session, target: &Target, localpart: &str) -> anyhow::Result<()> {
    let t = target.timeout;
    let mech = target.mechanism.name();
    let hash = match target.mechanism {
        Mech::Plain => {
            let mut creds = Vec::with_capacity(localpart.len() + target.password.len() + 2);
            creds.push(0);
            creds.extend_from_slice(localpart.as_bytes());
            creds.push(0);
            creds.extend_from_slice(target.password.as_bytes());
            let auth = format!(
                "<auth xmlns='{NS_SASL}' mechanism='{mech}'>{}</auth>",
                B64.encode(creds)
            );
            s.send(auth.as_bytes()).await?;
            let answer = s.expect(t, "the SASL outcome").await?;
            return sasl_outcome(&answer, localpart).map(|_| ());
        }
        Mech::ScramSha1 => ScramHash::Sha1,
        Mech::ScramSha256 => ScramHash::Sha256,
    };
    let mut scram = ScramClient::new(
        hash,
        localpart,
        &target.password,
        ChannelBinding::Unsupported,
    );
    let auth = format!(
        "<auth xmlns='{NS_SASL}' mechanism='{mech}'>{}</auth>",
        B64.encode(scram.client_first())
    );
    s.send(auth.as_bytes()).await?;
    let challenge = s.expect(t, "the SCRAM challenge").await?;
    if !challenge.is("challenge", NS_SASL) {
        sasl_outcome(&challenge, localpart)?;
        bail!("SASL succeeded without a challenge");
    }
    let server_first = decode(&challenge.text())?;
    let sf = ServerFirst::parse(&server_first)?;
    let key = (sf.salt.clone(), sf.iterations);
    let cached = target
        .salted
        .lock()
        .map_err(|_| anyhow!("salted-password cache poisoned"))?
        .get(&key)
        .cloned();
    let salted = match cached {
        Some(s) => s,
        None => {
            let s = salted_password(hash, target.password.as_bytes(), &sf.salt, sf.iterations);
            target
                .salted
                .lock()
                .map_err(|_| anyhow!("salted-password cache poisoned"))?
                .insert(key, s.clone());
            s
        }
    };
    let fin = scram.client_final_salted(&server_first, &sf, &salted)?;
    s.send(format!("<response xmlns='{NS_SASL}'>{}</response>", B64.encode(fin)).as_bytes())
        .await?;
    let mut answer = s.expect(t, "the SASL outcome").await?;
    if answer.is("challenge", NS_SASL) {
        // RFC 6120 §6.4.3 lets a server send the additional data in a challenge instead.
        scram.verify_server_final(&decode(&answer.text())?)?;
        s.send(format!("<response xmlns='{NS_SASL}'/>").as_bytes())
            .await?;
        answer = s.expect(t, "the SASL outcome").await?;
        sasl_outcome(&answer, localpart)?;
        return Ok(());
    }
    let data = sasl_outcome(&answer, localpart)?;
    scram.verify_server_final(&decode(&data)?)
}

/// `<success/>` gives its text (additional data); `<failure/>` is an error naming the condition.
fn sasl_outcome(answer: &Element, localpart: &str) -> anyhow::Result<String> {
    if answer.is("success", NS_SASL) {
        return Ok(answer.text());
    }
    if answer.is("failure", NS_SASL) {
        let condition = answer
            .child_elements()
            .find(|c| c.name != "text")
            .map_or("unknown", |c| c.name.as_str());
        bail!("SASL failure for `{localpart}`: {condition}");
    }
    bail!("unexpected answer to SASL: <{}/>", answer.name)
}

fn decode(text: &str) -> anyhow::Result<String> {
    let bytes = B64
        .decode(text.trim())
        .with_context(|| format!("SASL data `{text}` is not base64"))?;
    String::from_utf8(bytes).context("SASL data is not UTF-8")
}

/// Closes the stream (RFC 6120 §4.4): sends `</stream:stream>`, waits for the server's close
/// (discarding what comes before it), then closes TLS.
pub async fn logout(mut s: Session, timeout: Duration) -> anyhow::Result<()> {
    s.send(b"</stream:stream>").await?;
    let waited = tokio::time::timeout(timeout, async {
        loop {
            match s.next().await? {
                Read::Closed => return anyhow::Ok(()),
                Read::Element(_) => continue,
            }
        }
    })
    .await;
    match waited {
        Err(_) => bail!("the server did not close the stream"),
        Ok(r) => r?,
    }
    // The server may already have closed its side; an error here changes nothing.
    let _ = s.io.shutdown().await;
    Ok(())
}

/// A chat message from a sender to `to`, with the run's id, the sequence number and the send
/// time (µs since the run's start) in the body. Written into `out` (cleared first) to reuse its
/// allocation.
pub fn write_message(out: &mut String, to: &str, run: u32, seq: u64, sent_us: u64) {
    use std::fmt::Write as _;
    out.clear();
    out.push_str("<message type='chat' to='");
    escape_attr(to, out);
    // Writing to a String cannot fail.
    let _ = write!(out, "'><body>{run:08x} {seq} {sent_us}</body></message>");
}

/// Reads the sequence number and the send time back from a received message's body; `None`
/// for a body not written by [`write_message`] for run `run` (a message another run left
/// stored offline is not one of this run's).
pub fn parse_body(body: &str, run: u32) -> Option<(u64, u64)> {
    let mut parts = body.trim().splitn(3, ' ');
    if u32::from_str_radix(parts.next()?, 16).ok()? != run {
        return None;
    }
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn message_bodies_round_trip() {
        let mut out = String::from("old");
        write_message(&mut out, "user2@localhost/lg", 0xbe57, 42, 1_234_567);
        assert_eq!(
            out,
            "<message type='chat' to='user2@localhost/lg'><body>0000be57 42 1234567</body></message>"
        );
        assert_eq!(
            parse_body("0000be57 42 1234567", 0xbe57),
            Some((42, 1_234_567))
        );
        // Another run's message (stored offline by the server) is not this run's.
        assert_eq!(parse_body("0000be57 42 1234567", 0xbe58), None);
        assert_eq!(parse_body("hello", 0xbe57), None);
        assert_eq!(parse_body("0000be57 1 x", 0xbe57), None);
        assert_eq!(parse_body("0000be57 1", 0xbe57), None);
    }
}
