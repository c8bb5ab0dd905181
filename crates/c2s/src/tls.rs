//! Server-side TLS on rustls's unbuffered API, with buffers that exist only while they hold
//! something.
//!
//! Why not tokio-rustls: rustls's buffered connection keeps a 4 KiB receive buffer for the
//! whole life of a connection (`read_tls` grows it to 4 KiB before every read and never
//! shrinks it below that), a third of what an idle session cost. Here the ciphertext received,
//! the plaintext not yet read and the ciphertext not yet sent are each freed when empty, so a
//! connection waiting for its peer holds no buffer at all.
//!
//! rustls 0.23's unbuffered connection has no `export_keying_material`, which `tls-exporter`
//! channel binding needs (RFC 9266). rustls hands the TLS 1.3 exporter master secret to the
//! configuration's [`rustls::KeyLog`] during the `process_tls_records` call that emits the
//! server's flight; [`ExporterSecretLog`] keeps it in a thread-local for the length of that
//! synchronous call, [`TlsStream::accept`] takes it from there, and [`tls_exporter`] derives
//! the RFC 8446 §7.5 exporter from it. The secret never leaves the process and is wiped once
//! the 32 bytes of channel-binding data are derived. A unit test checks the result against the
//! client's `export_keying_material`.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::crypto::tls13::{HkdfExpander, OkmBlock};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use rustls::{ProtocolVersion, ServerConfig, SupportedCipherSuite, Tls13CipherSuite};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// RFC 9266 §2: the label of `tls-exporter` channel-binding data, 32 bytes with no context.
const CHANNEL_BINDING_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// Bytes asked of the socket per read: one TLS record of the largest size (TLS 1.2 allows
/// 2 KiB of expansion over the 16 KiB plaintext limit, RFC 5246 §6.2.3).
const READ_SIZE: usize = 16 * 1024 + 2048 + 5;

/// Ciphertext held while rustls joins a handshake message spread over records (it accepts
/// handshake messages up to 64 KiB) plus one read: beyond this the peer is refused.
const MAX_INCOMING: usize = 64 * 1024 + READ_SIZE;

/// Ciphertext waiting for the socket beyond which a write waits for it to drain.
const OUT_LIMIT: usize = 64 * 1024;

/// Plaintext encrypted per `poll_write` call at most.
const MAX_WRITE: usize = 64 * 1024;

thread_local! {
    /// The exporter master secret rustls logged on this thread during the current
    /// `process_tls_records` call, if any.
    static EXPORTER_SECRET: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// A [`rustls::KeyLog`] that keeps only the TLS 1.3 exporter master secret, for the connection
/// whose handshake is being processed on this thread (see the module's documentation). It
/// writes nothing anywhere.
#[derive(Debug, Default)]
pub struct ExporterSecretLog;

impl rustls::KeyLog for ExporterSecretLog {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if label == "EXPORTER_SECRET" {
            EXPORTER_SECRET.with(|s| *s.borrow_mut() = Some(secret.to_vec()));
        }
    }

    fn will_log(&self, label: &str) -> bool {
        label == "EXPORTER_SECRET"
    }
}

/// Installs what [`TlsStream::accept`] needs in a server configuration: the key log that
/// captures the exporter secret for `tls-exporter` channel binding.
pub fn prepare_config(config: &mut ServerConfig) {
    config.key_log = Arc::new(ExporterSecretLog);
}

fn take_exporter_secret() -> Option<Vec<u8>> {
    EXPORTER_SECRET.with(|s| s.borrow_mut().take())
}

/// `HKDF-Expand-Label(Secret, Label, Context, Length)` of RFC 8446 §7.1, the length being
/// that of `out` (at most 255 bytes of label and context, which every caller here meets).
fn hkdf_expand_label(
    expander: &dyn HkdfExpander,
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Option<()> {
    let length = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(b"tls13 ".len() + label.len()).ok()?];
    let context_len = [u8::try_from(context.len()).ok()?];
    expander
        .expand_slice(
            &[&length, &label_len, b"tls13 ", label, &context_len, context],
            out,
        )
        .ok()
}

/// The TLS 1.3 exporter of RFC 8446 §7.5 from the exporter master secret:
/// `HKDF-Expand-Label(Derive-Secret(Secret, label, ""), "exporter", Hash(context), len)`.
pub fn tls_exporter(
    suite: &Tls13CipherSuite,
    exporter_master_secret: &[u8],
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Option<()> {
    if exporter_master_secret.len() > OkmBlock::MAX_LEN {
        return None;
    }
    let hash = suite.common.hash_provider;
    let master = suite
        .hkdf_provider
        .expander_for_okm(&OkmBlock::new(exporter_master_secret));
    let mut derived = [0u8; OkmBlock::MAX_LEN];
    let derived = derived.get_mut(..master.hash_len())?;
    // Derive-Secret(Secret, Label, "") = HKDF-Expand-Label(Secret, Label, Hash(""), Hash.length)
    hkdf_expand_label(master.as_ref(), label, hash.hash(&[]).as_ref(), derived)?;
    let expander = suite
        .hkdf_provider
        .expander_for_okm(&OkmBlock::new(derived));
    derived.fill(0);
    hkdf_expand_label(
        expander.as_ref(),
        b"exporter",
        hash.hash(context).as_ref(),
        out,
    )
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// What a pass over the received ciphertext should do once rustls may send application data.
enum Send<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

/// A server-side TLS connection over TCP.
pub struct TlsStream {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    /// Ciphertext received and not yet consumed by rustls (part of a record, usually nothing).
    incoming: Vec<u8>,
    /// Plaintext decrypted and not yet read, from `plain_pos` on.
    plain: Vec<u8>,
    plain_pos: usize,
    /// Ciphertext to send, from `out_pos` on: records rustls produced, in order.
    outgoing: Vec<u8>,
    out_pos: usize,
    /// The peer sent close_notify or closed TCP: reads return end of stream.
    read_closed: bool,
    /// Our close_notify is queued.
    close_sent: bool,
    /// RFC 9266 `tls-exporter` data (TLS 1.3 only).
    exporter: Option<Vec<u8>>,
}

impl TlsStream {
    /// Runs the server side of a TLS handshake on `tcp`. The configuration should have been
    /// through [`prepare_config`] for `tls-exporter` channel binding to be available.
    pub async fn accept(config: Arc<ServerConfig>, tcp: TcpStream) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut s = TlsStream {
            tcp,
            conn,
            incoming: Vec::new(),
            plain: Vec::new(),
            plain_pos: 0,
            outgoing: Vec::new(),
            out_pos: 0,
            read_closed: false,
            close_sent: false,
            exporter: None,
        };
        let mut secret = None;
        loop {
            let _ = take_exporter_secret();
            let r = s.process(None, Send::Nothing);
            if let Some(logged) = take_exporter_secret() {
                secret = Some(logged);
            }
            if let Err(e) = r {
                // The alert rustls queued, if it can go out at once.
                s.queue_alert();
                let _ = poll_fn(|cx| Poll::Ready(s.poll_send(cx))).await;
                return Err(e);
            }
            if !s.conn.is_handshaking()
                && s.conn.protocol_version() == Some(ProtocolVersion::TLSv1_3)
            {
                // TLS 1.3: what rustls queued after the client's Finished (the session ticket,
                // RFC 8446 §4.6.1) goes out with the first application data, in the same write,
                // instead of a write and a wake-up of its own. (In TLS 1.2 the server's Finished
                // comes last and the client waits for it.)
                break;
            }
            poll_fn(|cx| s.poll_send(cx)).await?;
            if !s.conn.is_handshaking() {
                break;
            }
            if s.read_closed {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if poll_fn(|cx| s.poll_fill(cx)).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        if let Some(mut secret) = secret {
            // A TLS 1.3 suite means a TLS 1.3 connection: the only one with this secret.
            if let Some(SupportedCipherSuite::Tls13(suite)) = s.conn.negotiated_cipher_suite() {
                let mut out = vec![0u8; 32];
                if tls_exporter(suite, &secret, CHANNEL_BINDING_LABEL, &[], &mut out).is_some() {
                    s.exporter = Some(out);
                }
            }
            secret.fill(0);
        }
        Ok(s)
    }

    /// RFC 9266 `tls-exporter` channel-binding data: 32 bytes, TLS 1.3 only.
    pub fn channel_binding_exporter(&self) -> Option<&[u8]> {
        self.exporter.as_deref()
    }

    /// Runs rustls over the ciphertext received so far, until nothing is left to process
    /// (more input is what moves it on).
    /// Application data goes to `direct` while it fits and to `plain` after it; records rustls
    /// wants sent are appended to `outgoing`; `send` is carried out once rustls may send
    /// application data (an error if it never may: the handshake is not over, or the
    /// connection is closed).
    fn process(&mut self, direct: Option<&mut ReadBuf<'_>>, send: Send<'_>) -> io::Result<()> {
        let mut incoming = std::mem::take(&mut self.incoming);
        let r = self.process_input(&mut incoming, direct, send);
        if let Ok(consumed) = r {
            incoming.drain(..consumed);
        }
        // Kept only while it holds part of a record.
        if !incoming.is_empty() {
            self.incoming = incoming;
        }
        r.map(drop)
    }

    /// [`Self::process`] over `input`: the number of its bytes consumed.
    fn process_input(
        &mut self,
        input: &mut [u8],
        mut direct: Option<&mut ReadBuf<'_>>,
        mut send: Send<'_>,
    ) -> io::Result<usize> {
        let mut consumed = 0;
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut input[consumed..]);
            let mut done = false;
            match state.map_err(tls_error)? {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = record.map_err(tls_error)?;
                        discard += record.discard;
                        let mut payload = record.payload;
                        if let Some(buf) = direct.as_deref_mut() {
                            if self.plain_pos == self.plain.len() {
                                let n = payload.len().min(buf.remaining());
                                buf.put_slice(&payload[..n]);
                                payload = &payload[n..];
                            }
                        }
                        self.plain.extend_from_slice(payload);
                    }
                }
                ConnectionState::EncodeTlsData(mut data) => encode(&mut self.outgoing, &mut data)?,
                // What was encoded is in `outgoing`, which goes to the socket in order before
                // anything encoded later: for rustls, it is sent.
                ConnectionState::TransmitTlsData(data) => data.done(),
                ConnectionState::BlockedHandshake => done = true,
                ConnectionState::WriteTraffic(mut traffic) => {
                    match std::mem::replace(&mut send, Send::Nothing) {
                        Send::Nothing => {}
                        Send::Data(data) => {
                            encrypt(&mut self.outgoing, data, |d, out| traffic.encrypt(d, out))?
                        }
                        Send::CloseNotify => {
                            encrypt(&mut self.outgoing, &[], |_, out| {
                                traffic.queue_close_notify(out)
                            })?;
                            self.close_sent = true;
                        }
                    }
                    done = true;
                }
                ConnectionState::PeerClosed => self.read_closed = true,
                ConnectionState::Closed => {
                    self.read_closed = true;
                    done = true;
                }
                // No early data is accepted (the configuration's max_early_data_size is 0),
                // and nothing else exists in this version of rustls.
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "unexpected TLS connection state",
                    ))
                }
            }
            consumed = (consumed + discard).min(input.len());
            if done {
                if !matches!(send, Send::Nothing) {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "TLS connection cannot send application data",
                    ));
                }
                return Ok(consumed);
            }
        }
    }

    /// After an error: puts the alert rustls queued, if any, into `outgoing`.
    fn queue_alert(&mut self) {
        let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::EncodeTlsData(mut data)) = state {
            let _ = encode(&mut self.outgoing, &mut data);
        }
    }

    /// After a TLS error: the alert rustls queued goes out if the socket takes it at once.
    fn failed(&mut self, cx: &mut Context<'_>, e: io::Error) -> io::Error {
        self.queue_alert();
        let _ = self.poll_send(cx);
        e
    }

    /// Writes `outgoing` to the socket; frees it once everything is sent.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.outgoing[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.outgoing = Vec::new();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Reads what the socket has into `incoming`: the number of bytes, 0 at its end. While
    /// the socket has nothing, `incoming` holds no allocation if it holds no data.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            if self.tcp.poll_read_ready(cx).is_pending() {
                if self.incoming.is_empty() {
                    self.incoming = Vec::new();
                }
                return Poll::Pending;
            }
            if self.incoming.len() >= MAX_INCOMING {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS input buffer full",
                )));
            }
            self.incoming.reserve(READ_SIZE);
            match self.tcp.try_read_buf(&mut self.incoming) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Moves plaintext already decrypted into `buf`: whether there was any.
    fn take_plain(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.plain_pos == self.plain.len() {
            return false;
        }
        let n = (self.plain.len() - self.plain_pos).min(buf.remaining());
        buf.put_slice(&self.plain[self.plain_pos..self.plain_pos + n]);
        self.plain_pos += n;
        if self.plain_pos == self.plain.len() {
            self.plain = Vec::new();
            self.plain_pos = 0;
        }
        true
    }
}

/// Appends the record rustls wants sent to `out`, sized by rustls's answer (the first call
/// only asks).
fn encode(
    out: &mut Vec<u8>,
    data: &mut rustls::unbuffered::EncodeTlsData<'_, rustls::server::ServerConnectionData>,
) -> io::Result<()> {
    append_sized(
        out,
        0,
        |buf| data.encode(buf),
        |e| match e {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Some(*required_size)
            }
            _ => None,
        },
    )
}

/// Appends what `f` encrypts into `out`, growing it to the size rustls asks for.
fn encrypt(
    out: &mut Vec<u8>,
    data: &[u8],
    mut f: impl FnMut(&[u8], &mut [u8]) -> Result<usize, EncryptError>,
) -> io::Result<()> {
    // Per record: header, content type, tag (TLS 1.3) or explicit nonce and tag (TLS 1.2).
    let need = data.len() + (data.len() / (16 * 1024) + 1) * 64;
    append_sized(
        out,
        need,
        |buf| f(data, buf),
        |e| match e {
            EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Some(*required_size)
            }
            _ => None,
        },
    )
}

/// Appends what `write` puts into room at the end of `out`: `need` bytes at first, then the
/// size `required` reads off its error, while that is more. On any other error `out` is left
/// as it was.
fn append_sized<E>(
    out: &mut Vec<u8>,
    mut need: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    required: impl Fn(&E) -> Option<usize>,
) -> io::Result<()>
where
    E: std::error::Error + std::marker::Send + Sync + 'static,
{
    let start = out.len();
    loop {
        out.resize(start + need, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => match required(&e) {
                Some(size) if size > need => need = size,
                _ => {
                    out.truncate(start);
                    return Err(io::Error::other(e));
                }
            },
        }
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let start = buf.filled().len();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.take_plain(buf) || this.read_closed {
                return Poll::Ready(Ok(()));
            }
            // What rustls produces meanwhile (an answer to a key update) goes out with the next
            // write, before its data: RFC 8446 §4.6.3 asks no sooner than that.
            if let Err(e) = this.process(Some(buf), Send::Nothing) {
                return Poll::Ready(Err(this.failed(cx, e)));
            }
            if buf.filled().len() > start || this.read_closed {
                return Poll::Ready(Ok(()));
            }
            let n = if this.incoming.is_empty() {
                // The usual case, no part of a record waiting: the records are read into the
                // stack and processed there, and only a part of a record left over is kept.
                let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_SIZE];
                let mut read = ReadBuf::uninit(&mut chunk);
                ready!(Pin::new(&mut this.tcp).poll_read(cx, &mut read))?;
                let n = read.filled().len();
                let input = read.filled_mut();
                match this.process_input(input, Some(buf), Send::Nothing) {
                    Ok(consumed) => this.incoming.extend_from_slice(&input[consumed..]),
                    Err(e) => return Poll::Ready(Err(this.failed(cx, e))),
                }
                n
            } else {
                ready!(this.poll_fill(cx))?
            };
            if n == 0 {
                // TCP closed, with or without close_notify: the end of the stream either way
                // (XMPP has its own closing tag to tell a complete stream from a cut one).
                this.read_closed = true;
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outgoing.len() - this.out_pos >= OUT_LIMIT {
            ready!(this.poll_send(cx))?;
        }
        if this.close_sent {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = buf.len().min(MAX_WRITE);
        this.process(None, Send::Data(&buf[..n]))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_sent {
            // Best effort: a connection rustls already closed has nothing more to say.
            let _ = this.process(None, Send::CloseNotify);
            this.close_sent = true;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::client::TlsStream as ClientTls;

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A server configuration and a client configuration that trusts its certificate.
    fn configs(
        version: &'static rustls::SupportedProtocolVersion,
    ) -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        configs_with(version, None)
    }

    /// [`configs`], the client offering only `suite` if given.
    fn configs_with(
        version: &'static rustls::SupportedProtocolVersion,
        suite: Option<rustls::CipherSuite>,
    ) -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        prepare_config(&mut server);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let mut client_provider = rustls::crypto::ring::default_provider();
        if let Some(suite) = suite {
            client_provider.cipher_suites.retain(|s| s.suite() == suite);
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(client_provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// A handshake over loopback TCP: our server side, tokio-rustls's client side.
    async fn pair(
        server: Arc<ServerConfig>,
        client: Arc<rustls::ClientConfig>,
    ) -> (TlsStream, ClientTls<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connect = async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            tokio_rustls::TlsConnector::from(client)
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap()
        };
        let accept = async move {
            let (tcp, _) = listener.accept().await.unwrap();
            TlsStream::accept(server, tcp).await.unwrap()
        };
        tokio::join!(accept, connect)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Sends `data` one way and reads it back whole on the other side, through reads smaller
    /// than a record (the plaintext left over is kept for the next read).
    async fn through(
        from: &mut (impl AsyncWriteExt + Unpin),
        to: &mut (impl AsyncReadExt + Unpin),
        data: &[u8],
    ) {
        let write = async {
            from.write_all(data).await.unwrap();
            from.flush().await.unwrap();
        };
        let read = async {
            let mut got = Vec::new();
            let mut buf = [0u8; 1000];
            while got.len() < data.len() {
                let n = to.read(&mut buf).await.unwrap();
                assert_ne!(n, 0, "end of stream after {} bytes", got.len());
                got.extend_from_slice(&buf[..n]);
            }
            got
        };
        let ((), got) = tokio::join!(write, read);
        assert!(got == data, "the data arrived altered");
    }

    /// RFC 9266 §2 / RFC 8446 §7.5: the exporter derived from the logged secret is the one the
    /// client computes (rustls's own `export_keying_material`), for each TLS 1.3 suite hash.
    #[tokio::test]
    async fn tls13_exporter_matches_the_clients() {
        for suite in [
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        ] {
            let (server, client) = configs_with(&rustls::version::TLS13, Some(suite));
            let (s, c) = pair(server, client).await;
            assert_eq!(
                s.conn.negotiated_cipher_suite().map(|s| s.suite()),
                Some(suite)
            );
            let expected = c
                .get_ref()
                .1
                .export_keying_material([0u8; 32], CHANNEL_BINDING_LABEL, None)
                .unwrap();
            assert_eq!(s.channel_binding_exporter(), Some(&expected[..]));
        }
    }

    /// RFC 9266 §3: no tls-exporter data on TLS 1.2 (no extended master secret guarantee).
    #[tokio::test]
    async fn tls12_has_no_exporter_and_carries_data() {
        let (server, client) = configs(&rustls::version::TLS12);
        let (mut s, mut c) = pair(server, client).await;
        assert_eq!(s.conn.protocol_version(), Some(ProtocolVersion::TLSv1_2));
        assert_eq!(s.channel_binding_exporter(), None);
        through(&mut c, &mut s, &pattern(50_000)).await;
        through(&mut s, &mut c, &pattern(70_000)).await;
    }

    /// Data both ways, larger than a record and than one write; a client key update
    /// (RFC 8446 §4.6.3, update requested) is answered and traffic goes on; the client's
    /// close_notify is the end of the stream.
    #[tokio::test]
    async fn carries_data_through_a_key_update_to_the_end() {
        let (server, client) = configs(&rustls::version::TLS13);
        let (mut s, mut c) = pair(server, client).await;
        assert!(s.channel_binding_exporter().is_some());
        through(&mut c, &mut s, b"<stream:stream>").await;
        through(&mut s, &mut c, &pattern(200_000)).await;
        through(&mut c, &mut s, &pattern(100_000)).await;
        c.get_mut().1.refresh_traffic_keys().unwrap();
        through(&mut c, &mut s, b"after the key update").await;
        through(&mut s, &mut c, b"answered with new keys").await;
        c.shutdown().await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).await.unwrap(), 0);
        s.shutdown().await.unwrap();
    }

    /// A TCP stream that writes at most 7 bytes per call, flushing each: TLS records reach the
    /// server cut at every place, handshake and application data alike.
    struct Trickle(TcpStream);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(7);
            Pin::new(&mut self.0).poll_write(cx, &buf[..n])
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    /// Records that arrive in pieces are joined: the handshake and the data get through whole.
    #[tokio::test]
    async fn records_cut_into_pieces_are_joined() {
        let (server, client) = configs(&rustls::version::TLS13);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connect = async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            tokio_rustls::TlsConnector::from(client)
                .connect(ServerName::try_from("localhost").unwrap(), Trickle(tcp))
                .await
                .unwrap()
        };
        let accept = async move {
            let (tcp, _) = listener.accept().await.unwrap();
            TlsStream::accept(server, tcp).await.unwrap()
        };
        let (mut s, mut c) = tokio::join!(accept, connect);
        through(&mut c, &mut s, &pattern(30_000)).await;
        through(&mut s, &mut c, b"and back").await;
    }

    /// The point of this module: a connection waiting for input holds no buffer.
    #[tokio::test]
    async fn an_idle_connection_holds_no_buffer() {
        let (server, client) = configs(&rustls::version::TLS13);
        let (mut s, mut c) = pair(server, client).await;
        through(&mut c, &mut s, &pattern(40_000)).await;
        through(&mut s, &mut c, &pattern(40_000)).await;
        let mut buf = [0u8; 100];
        let waiting = tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await;
        assert!(waiting.is_err(), "nothing was sent, yet the read returned");
        assert_eq!(s.incoming.capacity(), 0);
        assert_eq!(s.plain.capacity(), 0);
        assert_eq!(s.outgoing.capacity(), 0);
    }

    /// Bytes that are not TLS end the handshake with an error, not a panic or a hang.
    #[tokio::test]
    async fn garbage_fails_the_handshake() {
        let (server, _) = configs(&rustls::version::TLS13);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"<?xml version='1.0'?><stream:stream to='localhost'>")
                .await
                .unwrap();
            let mut rest = Vec::new();
            let _ = tcp.read_to_end(&mut rest).await;
        });
        let (tcp, _) = listener.accept().await.unwrap();
        assert!(TlsStream::accept(server, tcp).await.is_err());
        client.await.unwrap();
    }

    use std::time::Duration;
}
