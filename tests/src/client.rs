//! [`Client`]: a named XMPP persona speaking raw XML over real TCP and TLS.
//!
//! Writes are bytes exactly as given (optionally split into small pieces); reads go through
//! `corvid_xml::Parser` and come back as [`Received`]. The `expect_*` methods panic with a
//! message naming the persona, what was expected, what arrived instead and the tail of the raw
//! bytes received; the `try_*` methods return the same message as an error.

use std::fmt;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use corvid_xml::{escape_attr, escape_text, Element, Limits, Parser, StreamEvent, StreamHeader};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::client::TlsStream;

use crate::scram::{ChannelBinding, ScramClient, ScramHash};
use crate::server::{TestServer, DOMAIN};
use crate::{ns, stanza_error_condition, stream_error_condition, stream_header};

/// How long an `expect_*` waits by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of the received bytes a failure message shows.
const TRANSCRIPT_TAIL: usize = 1500;

/// A SASL mechanism the client can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// PLAIN (RFC 4616).
    Plain,
    /// SCRAM-SHA-1 (RFC 5802).
    ScramSha1,
    /// SCRAM-SHA-1-PLUS with channel binding.
    ScramSha1Plus,
    /// SCRAM-SHA-256 (RFC 7677).
    ScramSha256,
    /// SCRAM-SHA-256-PLUS with channel binding.
    ScramSha256Plus,
}

impl Mechanism {
    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
        }
    }

    fn scram(self) -> Option<(ScramHash, bool)> {
        match self {
            Mechanism::Plain => None,
            Mechanism::ScramSha1 => Some((ScramHash::Sha1, false)),
            Mechanism::ScramSha1Plus => Some((ScramHash::Sha1, true)),
            Mechanism::ScramSha256 => Some((ScramHash::Sha256, false)),
            Mechanism::ScramSha256Plus => Some((ScramHash::Sha256, true)),
        }
    }
}

/// How writes are cut before they go on the wire (to exercise the server's incremental parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Each `send` is one write.
    Whole,
    /// Pieces of this many bytes, one write each.
    Bytes(usize),
    /// Pieces of 1..=`max` bytes, sizes drawn from a generator seeded with `seed`.
    Random {
        /// Largest piece.
        max: usize,
        /// Seed, so that a failure can be replayed.
        seed: u64,
    },
}

/// What [`Client::next`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A stream header, a top-level element or `</stream:stream>`.
    Event(StreamEvent),
    /// The connection ended (TCP FIN or reset, or TLS close).
    Closed,
    /// The server sent bytes our parser refused.
    Broken(String),
    /// Nothing complete arrived in time.
    TimedOut,
}

impl fmt::Display for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Received::Event(StreamEvent::Open(h)) => {
                write!(f, "a stream header (")?;
                for a in &h.attrs {
                    write!(f, " {}='{}'", a.name, a.value)?;
                }
                write!(f, " )")
            }
            Received::Event(StreamEvent::Element(e)) => {
                let xml = e.to_xml(ns::CLIENT);
                if xml.len() > 600 {
                    let cut = (0..=600)
                        .rev()
                        .find(|i| xml.is_char_boundary(*i))
                        .unwrap_or(0);
                    write!(f, "{}… ({} bytes)", &xml[..cut], xml.len())
                } else {
                    write!(f, "{xml}")
                }
            }
            Received::Event(StreamEvent::Close) => write!(f, "</stream:stream>"),
            Received::Closed => write!(f, "the connection closed"),
            Received::Broken(e) => write!(f, "unparsable bytes ({e})"),
            Received::TimedOut => write!(f, "nothing (timed out)"),
        }
    }
}

/// One step of a SASL exchange as the server answered (RFC 6120 §6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// `<challenge/>` with decoded data.
    Challenge(Vec<u8>),
    /// `<success/>` with decoded additional data.
    Success(Vec<u8>),
    /// `<failure/>` with its condition (RFC 6120 §6.5).
    Failure(String),
}

/// The end of an authentication attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslOutcome {
    /// `<success/>` (and, for SCRAM, the server signature verified).
    Success,
    /// `<failure/>` with this condition.
    Failure(String),
}

/// What a full login does; see [`Client::login_with`].
#[derive(Debug, Clone)]
pub struct Login<'a> {
    /// Localpart of the account.
    pub user: &'a str,
    /// Its password.
    pub password: &'a str,
    /// Resource to ask for; `None` lets the server pick (RFC 6120 §7.6).
    pub resource: Option<&'a str>,
    /// SASL mechanism.
    pub mechanism: Mechanism,
    /// Connect to the direct-TLS port (XEP-0368) instead of STARTTLS.
    pub direct_tls: bool,
}

impl<'a> Login<'a> {
    /// SCRAM-SHA-1 over STARTTLS, server-chosen resource: RFC 6120 §9.
    pub fn new(user: &'a str, password: &'a str) -> Self {
        Self {
            user,
            password,
            resource: None,
            mechanism: Mechanism::ScramSha1,
            direct_tls: false,
        }
    }
    /// Asks for this resource.
    pub fn resource(mut self, resource: &'a str) -> Self {
        self.resource = Some(resource);
        self
    }
    /// Uses this mechanism.
    pub fn mechanism(mut self, mechanism: Mechanism) -> Self {
        self.mechanism = mechanism;
        self
    }
    /// Uses the direct-TLS port.
    pub fn direct_tls(mut self) -> Self {
        self.direct_tls = true;
        self
    }
}

enum Io {
    None,
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A named persona on one connection.
pub struct Client {
    name: String,
    timeout: Duration,
    chunking: Chunking,
    rng: StdRng,
    io: Io,
    parser: Parser,
    eof: bool,
    transcript: Vec<u8>,
    headers: Vec<StreamHeader>,
    features: Option<Element>,
    jid: Option<String>,
    next_id: u64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .field("jid", &self.jid)
            .finish_non_exhaustive()
    }
}

fn client_parser() -> Parser {
    // The server is trusted here; generous limits so that only real breakage shows.
    Parser::new(Limits {
        max_stanza_bytes: 4 * 1024 * 1024,
        max_depth: 256,
        max_attributes: 1024,
    })
}

impl Client {
    /// A persona called `name`, not connected yet.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            chunking: Chunking::Whole,
            rng: StdRng::seed_from_u64(0),
            io: Io::None,
            parser: client_parser(),
            eof: false,
            transcript: Vec::new(),
            headers: Vec::new(),
            features: None,
            jid: None,
            next_id: 0,
        }
    }

    /// Sets how long each `expect_*` waits.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how writes are cut.
    pub fn with_chunking(mut self, chunking: Chunking) -> Self {
        if let Chunking::Random { seed, .. } = chunking {
            self.rng = StdRng::seed_from_u64(seed);
        }
        self.chunking = chunking;
        self
    }

    /// The persona's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full JID bound, once bound.
    pub fn jid(&self) -> Option<&str> {
        self.jid.as_deref()
    }

    /// Every stream header received on this connection, in order.
    pub fn stream_headers(&self) -> &[StreamHeader] {
        &self.headers
    }

    /// The last `<stream:features/>` received.
    pub fn features(&self) -> Option<&Element> {
        self.features.as_ref()
    }

    /// Everything received so far, lossily decoded (TLS bytes are decrypted).
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.transcript).into_owned()
    }

    // ---- connecting -------------------------------------------------------------------

    /// Opens TCP to the server's STARTTLS port.
    pub async fn connect(&mut self, server: &TestServer) -> anyhow::Result<()> {
        let addr = server.starttls_addr()?;
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("{}: connecting to {addr}", self.name))?;
        tcp.set_nodelay(true)?;
        self.reset_connection(Io::Plain(tcp));
        Ok(())
    }

    /// Opens TCP to the direct-TLS port and runs the TLS handshake, offering ALPN
    /// `xmpp-client` (XEP-0368 §3).
    pub async fn connect_direct_tls(&mut self, server: &TestServer) -> anyhow::Result<()> {
        let addr = server.direct_tls_addr()?;
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("{}: connecting to {addr}", self.name))?;
        tcp.set_nodelay(true)?;
        let tls = handshake(tcp, true).await?;
        self.reset_connection(Io::Tls(Box::new(tls)));
        Ok(())
    }

    fn reset_connection(&mut self, io: Io) {
        self.io = io;
        self.parser = client_parser();
        self.eof = false;
        self.features = None;
        self.jid = None;
    }

    /// Runs the TLS handshake on the current TCP connection (after `<proceed/>`), and starts
    /// a fresh parser (RFC 6120 §5.4.3.3: the old stream is gone).
    pub async fn upgrade_tls(&mut self) -> anyhow::Result<()> {
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::None) else {
            bail!("{}: TLS upgrade needs a plain TCP connection", self.name);
        };
        let tls = handshake(tcp, false).await?;
        self.io = Io::Tls(Box::new(tls));
        self.parser = client_parser();
        Ok(())
    }

    /// Makes the parser expect a new stream header, as after `<success/>` (RFC 6120 §6.4.6);
    /// for scenarios that run the SASL exchange by hand.
    pub fn restart_parser(&mut self) {
        self.parser.reset();
    }

    /// True once TLS is up.
    pub fn is_tls(&self) -> bool {
        matches!(self.io, Io::Tls(_))
    }

    /// The ALPN protocol the server chose, if any.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        match &self.io {
            Io::Tls(t) => t.get_ref().1.alpn_protocol().map(<[u8]>::to_vec),
            _ => None,
        }
    }

    /// The negotiated TLS version.
    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        match &self.io {
            Io::Tls(t) => t.get_ref().1.protocol_version(),
            _ => None,
        }
    }

    /// Channel-binding data of this TLS connection for `cb_type`: `tls-exporter` (RFC 9266:
    /// 32 bytes, label "EXPORTER-Channel-Binding", no context) or `tls-server-end-point`
    /// (RFC 5929 §4.1: SHA-256 of the server certificate, which is what its ECDSA-SHA-256 or
    /// RSA-SHA-256 signature calls for).
    pub fn channel_binding_data(&self, cb_type: &str) -> anyhow::Result<Vec<u8>> {
        let Io::Tls(t) = &self.io else {
            bail!("{}: channel binding needs TLS", self.name);
        };
        let conn = t.get_ref().1;
        match cb_type {
            "tls-exporter" => conn
                .export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
                .map_err(|e| anyhow!("exporting keying material: {e}")),
            "tls-server-end-point" => {
                let cert = conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .ok_or_else(|| anyhow!("no server certificate"))?;
                Ok(Sha256::digest(cert.as_ref()).to_vec())
            }
            other => bail!("unknown channel-binding type `{other}`"),
        }
    }

    // ---- writing ----------------------------------------------------------------------

    /// Writes bytes as they are (cut according to [`Chunking`]).
    pub async fn send(&mut self, data: impl AsRef<[u8]>) -> anyhow::Result<()> {
        let data = data.as_ref();
        let mut at = 0;
        while at < data.len() {
            let n = match self.chunking {
                Chunking::Whole => data.len() - at,
                Chunking::Bytes(n) => n.max(1),
                Chunking::Random { max, .. } => self.rng.gen_range(1..=max.max(1)),
            }
            .min(data.len() - at);
            let piece = &data[at..at + n];
            let r = match &mut self.io {
                Io::None => bail!("{}: not connected", self.name),
                Io::Plain(s) => {
                    async {
                        s.write_all(piece).await?;
                        s.flush().await
                    }
                    .await
                }
                Io::Tls(s) => {
                    async {
                        s.write_all(piece).await?;
                        s.flush().await
                    }
                    .await
                }
            };
            r.with_context(|| format!("{}: writing", self.name))?;
            at += n;
            if self.chunking != Chunking::Whole {
                // Let the server (same runtime) read this piece on its own.
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    /// Writes an element serialized for a `jabber:client` stream.
    pub async fn send_element(&mut self, el: &Element) -> anyhow::Result<()> {
        self.send(el.to_xml(ns::CLIENT)).await
    }

    /// Sends an initial stream header to `localhost` (RFC 6120 §4.7), with `from` set to our
    /// bare JID once we know it.
    pub async fn send_stream_header(&mut self) -> anyhow::Result<()> {
        let from = self
            .jid
            .as_deref()
            .map(|j| j.split('/').next().unwrap_or(j).to_owned());
        self.send(stream_header(Some(DOMAIN), from.as_deref()))
            .await
    }

    /// A fresh stanza id.
    pub fn next_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}-{}", self.name, self.next_id)
    }

    // ---- reading ----------------------------------------------------------------------

    /// The next thing the server sent, waiting at most the client's timeout.
    pub async fn next(&mut self) -> Received {
        self.next_within(self.timeout).await
    }

    /// Every element that arrives until nothing more comes for `quiet` (the stream must stay
    /// open meanwhile).
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Element> {
        let mut got = Vec::new();
        loop {
            match self.next_within(quiet).await {
                Received::Event(StreamEvent::Element(e)) => got.push(e),
                Received::TimedOut => return got,
                other => panic!("{}: expected stanzas, got {other}", self.name),
            }
        }
    }

    /// The next thing the server sent, waiting at most `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Received {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match self.parser.next_event() {
                Ok(Some(ev)) => {
                    if let StreamEvent::Open(h) = &ev {
                        self.headers.push(h.clone());
                    }
                    return Received::Event(ev);
                }
                Ok(None) => {}
                Err(e) => return Received::Broken(e.to_string()),
            }
            if self.eof {
                return Received::Closed;
            }
            let read = match &mut self.io {
                Io::None => return Received::Closed,
                Io::Plain(s) => timeout_at(deadline, s.read(&mut buf)).await,
                Io::Tls(s) => timeout_at(deadline, s.read(&mut buf)).await,
            };
            match read {
                Err(_) => return Received::TimedOut,
                Ok(Ok(0)) => self.eof = true,
                Ok(Ok(n)) => {
                    self.transcript.extend_from_slice(&buf[..n]);
                    self.parser.feed(&buf[..n]);
                }
                Ok(Err(e)) => {
                    // A reset or a TLS stream cut without close_notify: the connection is over.
                    self.transcript
                        .extend_from_slice(format!("[read error: {e}]").as_bytes());
                    self.eof = true;
                }
            }
        }
    }

    /// A failure message: who, what was expected, what came, and the last bytes received.
    fn complaint(&self, expected: &str, got: &Received) -> anyhow::Error {
        let start = self.transcript.len().saturating_sub(TRANSCRIPT_TAIL);
        anyhow!(
            "{}: expected {expected}, got {got}\n--- last bytes received by {} ---\n{}",
            self.name,
            self.name,
            String::from_utf8_lossy(&self.transcript[start..])
        )
    }

    /// Waits for a stream header.
    pub async fn try_expect_stream_header(&mut self) -> anyhow::Result<StreamHeader> {
        match self.next().await {
            Received::Event(StreamEvent::Open(h)) => Ok(h),
            other => Err(self.complaint("a stream header", &other)),
        }
    }

    /// Waits for a top-level element `name` in namespace `ns`.
    pub async fn try_expect_element(&mut self, name: &str, ns: &str) -> anyhow::Result<Element> {
        match self.next().await {
            Received::Event(StreamEvent::Element(e)) if e.is(name, ns) => {
                if e.is("features", ns::STREAM) {
                    self.features = Some(e.clone());
                }
                Ok(e)
            }
            other => Err(self.complaint(&format!("<{name} xmlns='{ns}'>"), &other)),
        }
    }

    /// Waits for the stream to end: an optional `</stream:stream>`, then the connection closing.
    pub async fn try_expect_closed(&mut self) -> anyhow::Result<()> {
        let mut got = self.next().await;
        if got == Received::Event(StreamEvent::Close) {
            got = self.next().await;
        }
        match got {
            Received::Closed => Ok(()),
            other => Err(self.complaint("the connection to close", &other)),
        }
    }

    /// Waits for `<stream:error>` with `condition`, then `</stream:stream>` and the connection
    /// closing (RFC 6120 §4.9.1.1). A stream header first is accepted (§4.9.1.2: the server
    /// opens its stream before erring if it had not).
    pub async fn try_expect_stream_error(&mut self, condition: &str) -> anyhow::Result<Element> {
        let mut got = self.next().await;
        if matches!(got, Received::Event(StreamEvent::Open(_))) {
            got = self.next().await;
        }
        let el = match got {
            Received::Event(StreamEvent::Element(e))
                if e.is("error", ns::STREAM)
                    && stream_error_condition(&e).as_deref() == Some(condition) =>
            {
                e
            }
            other => {
                return Err(self.complaint(&format!("stream error <{condition}/>"), &other));
            }
        };
        // §4.9.1.1: the error is followed by the closing tag and the end of the connection.
        match self.next().await {
            Received::Event(StreamEvent::Close) => {}
            other => return Err(self.complaint("</stream:stream> after the stream error", &other)),
        }
        match self.next().await {
            Received::Closed => Ok(el),
            other => Err(self.complaint("the connection to close after the stream error", &other)),
        }
    }

    /// Reads raw bytes, bypassing the XML parser, until the connection closes; returns them.
    /// For connections where the server may answer with non-XML (a TLS alert) before hanging up.
    pub async fn try_read_until_closed(&mut self) -> anyhow::Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        while !self.eof {
            let read = match &mut self.io {
                Io::None => break,
                Io::Plain(s) => timeout_at(deadline, s.read(&mut buf)).await,
                Io::Tls(s) => timeout_at(deadline, s.read(&mut buf)).await,
            };
            match read {
                Err(_) => bail!(
                    "{}: the connection stayed open; received {:?}",
                    self.name,
                    String::from_utf8_lossy(&got)
                ),
                Ok(Ok(0)) | Ok(Err(_)) => self.eof = true,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            }
        }
        Ok(got)
    }

    /// Like [`Client::try_expect_stream_header`], panicking with the complaint.
    ///
    /// # Panics
    /// If anything else arrives, or nothing in time.
    pub async fn expect_stream_header(&mut self) -> StreamHeader {
        self.try_expect_stream_header().await.unwrap_or_else(fail)
    }

    /// Like [`Client::try_expect_element`], panicking with the complaint.
    ///
    /// # Panics
    /// If anything else arrives, or nothing in time.
    pub async fn expect_element(&mut self, name: &str, ns: &str) -> Element {
        self.try_expect_element(name, ns).await.unwrap_or_else(fail)
    }

    /// Waits for `<stream:features/>`.
    ///
    /// # Panics
    /// If anything else arrives, or nothing in time.
    pub async fn expect_features(&mut self) -> Element {
        self.expect_element("features", ns::STREAM).await
    }

    /// Like [`Client::try_expect_stream_error`], panicking with the complaint.
    ///
    /// # Panics
    /// If anything else arrives, or nothing in time, or the stream stays open.
    pub async fn expect_stream_error(&mut self, condition: &str) -> Element {
        self.try_expect_stream_error(condition)
            .await
            .unwrap_or_else(fail)
    }

    /// Like [`Client::try_expect_closed`], panicking with the complaint.
    ///
    /// # Panics
    /// If anything but `</stream:stream>` arrives before the close, or nothing in time.
    pub async fn expect_closed(&mut self) {
        self.try_expect_closed().await.unwrap_or_else(fail)
    }

    /// Asserts that nothing arrives for `quiet`.
    ///
    /// # Panics
    /// If something arrives or the connection closes.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        match self.next_within(quiet).await {
            Received::TimedOut => {}
            other => fail(self.complaint(&format!("silence for {quiet:?}"), &other)),
        }
    }

    /// Waits for a stanza (`message`, `presence` or `iq` in `jabber:client`).
    ///
    /// # Panics
    /// If anything else arrives, or nothing in time.
    pub async fn expect_stanza(&mut self, name: &str) -> Element {
        self.expect_element(name, ns::CLIENT).await
    }

    /// Waits for a `<message/>`.
    ///
    /// # Panics
    /// If anything else arrives, or nothing in time.
    pub async fn expect_message(&mut self) -> Element {
        self.expect_stanza("message").await
    }

    /// Waits for a stanza `name` of type `error` carrying `condition` (RFC 6120 §8.3).
    ///
    /// # Panics
    /// If anything else arrives, or nothing in time.
    pub async fn expect_stanza_error(&mut self, name: &str, condition: &str) -> Element {
        let got = self.next().await;
        match got {
            Received::Event(StreamEvent::Element(e))
                if e.is(name, ns::CLIENT)
                    && e.attr("type") == Some("error")
                    && stanza_error_condition(&e).as_deref() == Some(condition) =>
            {
                e
            }
            other => fail(self.complaint(
                &format!("<{name} type='error'> with <{condition}/>"),
                &other,
            )),
        }
    }

    // ---- negotiation ------------------------------------------------------------------

    /// Sends a stream header and reads the server's header and features (RFC 6120 §4.2–§4.3).
    pub async fn open_stream(&mut self) -> anyhow::Result<(StreamHeader, Element)> {
        self.send_stream_header().await?;
        let header = self.try_expect_stream_header().await?;
        let features = self.try_expect_element("features", ns::STREAM).await?;
        Ok((header, features))
    }

    /// `<starttls/>` → `<proceed/>` → TLS handshake (RFC 6120 §5.4.2).
    pub async fn starttls(&mut self) -> anyhow::Result<()> {
        self.send(format!("<starttls xmlns='{}'/>", ns::TLS))
            .await?;
        self.try_expect_element("proceed", ns::TLS).await?;
        self.upgrade_tls().await
    }

    /// Sends `<auth/>` with an initial response (`=` for an empty one, RFC 6120 §6.4.2).
    pub async fn send_auth(&mut self, mechanism: &str, initial: &[u8]) -> anyhow::Result<()> {
        let payload = if initial.is_empty() {
            "=".to_owned()
        } else {
            B64.encode(initial)
        };
        let mut s = format!("<auth xmlns='{}' mechanism='", ns::SASL);
        escape_attr(mechanism, &mut s);
        s.push_str("'>");
        s.push_str(&payload);
        s.push_str("</auth>");
        self.send(s).await
    }

    /// Sends `<response/>` with data.
    pub async fn send_response(&mut self, data: &[u8]) -> anyhow::Result<()> {
        let payload = if data.is_empty() {
            "=".to_owned()
        } else {
            B64.encode(data)
        };
        self.send(format!(
            "<response xmlns='{}'>{payload}</response>",
            ns::SASL
        ))
        .await
    }

    /// Reads the server's next SASL element.
    pub async fn try_expect_sasl_step(&mut self) -> anyhow::Result<SaslStep> {
        let got = self.next().await;
        let Received::Event(StreamEvent::Element(e)) = &got else {
            return Err(self.complaint("<challenge/>, <success/> or <failure/>", &got));
        };
        let decode = |e: &Element| -> anyhow::Result<Vec<u8>> {
            let text: String = e.text().chars().filter(|c| !c.is_whitespace()).collect();
            if text.is_empty() || text == "=" {
                return Ok(Vec::new());
            }
            B64.decode(&text)
                .with_context(|| format!("SASL payload `{text}` is not base64"))
        };
        if e.is("challenge", ns::SASL) {
            Ok(SaslStep::Challenge(decode(e)?))
        } else if e.is("success", ns::SASL) {
            Ok(SaslStep::Success(decode(e)?))
        } else if e.is("failure", ns::SASL) {
            let condition = e
                .child_elements()
                .find(|c| c.name != "text")
                .map(|c| c.name.to_string())
                .unwrap_or_default();
            Ok(SaslStep::Failure(condition))
        } else {
            Err(self.complaint("<challenge/>, <success/> or <failure/>", &got))
        }
    }

    /// Runs one authentication attempt with `mechanism` (RFC 6120 §6.4). SCRAM -PLUS binds to
    /// `tls-exporter`. On success the server signature has been verified and the parser is
    /// ready for the stream restart.
    pub async fn authenticate(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        password: &str,
    ) -> anyhow::Result<SaslOutcome> {
        self.authenticate_with_binding(mechanism, user, password, "tls-exporter")
            .await
    }

    /// [`Client::authenticate`] with a chosen channel-binding type for -PLUS mechanisms.
    pub async fn authenticate_with_binding(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        password: &str,
        cb_type: &str,
    ) -> anyhow::Result<SaslOutcome> {
        let Some((hash, plus)) = mechanism.scram() else {
            let initial = format!("\0{user}\0{password}");
            self.send_auth(mechanism.name(), initial.as_bytes()).await?;
            return match self.try_expect_sasl_step().await? {
                SaslStep::Success(_) => {
                    self.parser.reset();
                    Ok(SaslOutcome::Success)
                }
                SaslStep::Failure(c) => Ok(SaslOutcome::Failure(c)),
                SaslStep::Challenge(c) => bail!("{}: unexpected PLAIN challenge {c:?}", self.name),
            };
        };
        let cb = if plus {
            ChannelBinding::Bind {
                name: cb_type.to_owned(),
                data: self.channel_binding_data(cb_type)?,
            }
        } else {
            ChannelBinding::Unsupported
        };
        let mut scram = ScramClient::new(hash, user, password, cb);
        self.send_auth(mechanism.name(), scram.client_first().as_bytes())
            .await?;
        let server_first = match self.try_expect_sasl_step().await? {
            SaslStep::Challenge(c) => String::from_utf8(c).context("server-first is not UTF-8")?,
            SaslStep::Failure(c) => return Ok(SaslOutcome::Failure(c)),
            SaslStep::Success(_) => bail!("{}: success before any proof", self.name),
        };
        let client_final = scram.client_final(&server_first)?;
        self.send_response(client_final.as_bytes()).await?;
        let server_final = match self.try_expect_sasl_step().await? {
            SaslStep::Success(data) => data,
            SaslStep::Failure(c) => return Ok(SaslOutcome::Failure(c)),
            SaslStep::Challenge(data) => {
                // RFC 6120 §6.4.3 allows the server-final in a challenge, answered empty.
                scram.verify_server_final(&String::from_utf8_lossy(&data))?;
                self.send_response(&[]).await?;
                match self.try_expect_sasl_step().await? {
                    SaslStep::Success(_) => {
                        self.parser.reset();
                        return Ok(SaslOutcome::Success);
                    }
                    SaslStep::Failure(c) => return Ok(SaslOutcome::Failure(c)),
                    SaslStep::Challenge(_) => bail!("{}: a third challenge", self.name),
                }
            }
        };
        scram
            .verify_server_final(&String::from_utf8_lossy(&server_final))
            .with_context(|| format!("{}: verifying the server", self.name))?;
        self.parser.reset();
        Ok(SaslOutcome::Success)
    }

    /// Binds a resource (RFC 6120 §7) and returns the full JID the server assigned.
    pub async fn bind(&mut self, resource: Option<&str>) -> anyhow::Result<String> {
        let id = self.next_id();
        let mut s = String::from("<iq type='set' id='");
        escape_attr(&id, &mut s);
        s.push_str("'><bind xmlns='");
        s.push_str(ns::BIND);
        s.push_str("'>");
        if let Some(r) = resource {
            s.push_str("<resource>");
            escape_text(r, &mut s);
            s.push_str("</resource>");
        }
        s.push_str("</bind></iq>");
        self.send(s).await?;
        let iq = self.try_expect_element("iq", ns::CLIENT).await?;
        if iq.attr("type") != Some("result") || iq.attr("id") != Some(id.as_str()) {
            bail!(
                "{}: bind answered with {}",
                self.name,
                iq.to_xml(ns::CLIENT)
            );
        }
        let jid = iq
            .child("bind", ns::BIND)
            .and_then(|b| b.child("jid", ns::BIND))
            .map(Element::text)
            .ok_or_else(|| anyhow!("{}: bind result without <jid/>", self.name))?;
        self.jid = Some(jid.clone());
        Ok(jid)
    }

    /// The whole RFC 6120 §9 negotiation on this persona: connect, (STARTTLS,) SASL, restart,
    /// bind. Returns the bound full JID.
    pub async fn login_with(
        &mut self,
        server: &TestServer,
        login: Login<'_>,
    ) -> anyhow::Result<String> {
        if login.direct_tls {
            self.connect_direct_tls(server).await?;
        } else {
            self.connect(server).await?;
            self.open_stream().await?;
            self.starttls().await?;
        }
        self.open_stream().await?;
        match self
            .authenticate(login.mechanism, login.user, login.password)
            .await?
        {
            SaslOutcome::Success => {}
            SaslOutcome::Failure(c) => bail!(
                "{}: {} authentication failed: {c}",
                self.name,
                login.mechanism.name()
            ),
        }
        self.open_stream().await?;
        self.bind(login.resource).await
    }

    /// A persona called `user` logged in with SCRAM-SHA-1 over STARTTLS and bound.
    pub async fn login(
        server: &TestServer,
        user: &str,
        password: &str,
        resource: Option<&str>,
    ) -> anyhow::Result<Client> {
        let mut c = Client::new(user);
        let mut login = Login::new(user, password);
        login.resource = resource;
        c.login_with(server, login).await?;
        Ok(c)
    }

    // ---- stanzas ----------------------------------------------------------------------

    /// Sends a chat message; returns its id.
    pub async fn send_message(&mut self, to: &str, body: &str) -> anyhow::Result<String> {
        let id = self.next_id();
        let mut s = String::from("<message type='chat' to='");
        escape_attr(to, &mut s);
        s.push_str("' id='");
        escape_attr(&id, &mut s);
        s.push_str("'><body>");
        escape_text(body, &mut s);
        s.push_str("</body></message>");
        self.send(s).await?;
        Ok(id)
    }

    /// Sends an IQ of `ty` (`get`/`set`) with this payload XML; returns its id.
    pub async fn send_iq(
        &mut self,
        ty: &str,
        to: Option<&str>,
        payload: &str,
    ) -> anyhow::Result<String> {
        let id = self.next_id();
        let mut s = String::from("<iq type='");
        escape_attr(ty, &mut s);
        s.push('\'');
        if let Some(to) = to {
            s.push_str(" to='");
            escape_attr(to, &mut s);
            s.push('\'');
        }
        s.push_str(" id='");
        escape_attr(&id, &mut s);
        s.push_str("'>");
        s.push_str(payload);
        s.push_str("</iq>");
        self.send(s).await?;
        Ok(id)
    }

    /// Sends an IQ and returns the answer (result or error), which must be the next stanza
    /// and carry the same id (RFC 6120 §8.2.3).
    pub async fn iq(
        &mut self,
        ty: &str,
        to: Option<&str>,
        payload: &str,
    ) -> anyhow::Result<Element> {
        let id = self.send_iq(ty, to, payload).await?;
        let answer = self.try_expect_element("iq", ns::CLIENT).await?;
        if answer.attr("id") != Some(id.as_str()) {
            bail!(
                "{}: answer to IQ {id} has another id: {}",
                self.name,
                answer.to_xml(ns::CLIENT)
            );
        }
        Ok(answer)
    }

    /// XEP-0199 ping to the server; fails unless the answer is a result.
    pub async fn ping_server(&mut self) -> anyhow::Result<()> {
        let answer = self
            .iq(
                "get",
                Some(DOMAIN),
                &format!("<ping xmlns='{}'/>", ns::PING),
            )
            .await?;
        if answer.attr("type") != Some("result") {
            bail!("{}: ping answered {}", self.name, answer.to_xml(ns::CLIENT));
        }
        Ok(())
    }

    /// Sends initial presence (RFC 6121 §4.2) and waits until the server has processed it:
    /// a ping sent after it is answered only once everything before it went through. Presence
    /// from the persona's own account arriving meanwhile is consumed: the server reflects the
    /// new presence to the sender and shows it the account's other available resources
    /// (RFC 6121 §4.2.2). Anything else before the ping's answer is an error.
    pub async fn send_presence(&mut self) -> anyhow::Result<()> {
        self.send("<presence/>").await?;
        let id = self
            .send_iq(
                "get",
                Some(DOMAIN),
                &format!("<ping xmlns='{}'/>", ns::PING),
            )
            .await?;
        let own = self
            .jid
            .as_deref()
            .and_then(|j| j.split('/').next())
            .map(str::to_owned);
        loop {
            let got = self.next().await;
            match &got {
                Received::Event(StreamEvent::Element(e))
                    if e.is("presence", ns::CLIENT)
                        && own.is_some()
                        && e.attr("from").and_then(|f| f.split('/').next()) == own.as_deref() => {}
                Received::Event(StreamEvent::Element(e))
                    if e.is("iq", ns::CLIENT) && e.attr("id") == Some(id.as_str()) =>
                {
                    if e.attr("type") != Some("result") {
                        bail!("{}: ping answered {}", self.name, e.to_xml(ns::CLIENT));
                    }
                    return Ok(());
                }
                _ => return Err(self.complaint("own presence, then the ping's answer", &got)),
            }
        }
    }

    /// Closes the stream (RFC 6120 §4.4): sends `</stream:stream>` and expects the server's
    /// closing tag and the connection to end.
    pub async fn close(&mut self) -> anyhow::Result<()> {
        self.send("</stream:stream>").await?;
        match self.next().await {
            Received::Event(StreamEvent::Close) => {}
            other => return Err(self.complaint("the server's </stream:stream>", &other)),
        }
        match self.next().await {
            Received::Closed => Ok(()),
            other => Err(self.complaint("the connection to close", &other)),
        }
    }
}

async fn handshake(tcp: TcpStream, alpn: bool) -> anyhow::Result<TlsStream<TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from(DOMAIN.to_owned())
        .map_err(|e| anyhow!("server name: {e}"))?;
    crate::tls::connector(alpn)?
        .connect(name, tcp)
        .await
        .context("TLS handshake")
}

fn fail<T>(e: anyhow::Error) -> T {
    panic!("{e:#}")
}
