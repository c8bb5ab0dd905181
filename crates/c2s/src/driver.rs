//! The I/O of one client connection: socket, TLS, timers, read rate limit, mailbox.
//! Everything protocol-related is decided by [`Machine`]; this file only carries it out.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use corvid_core::{Event, Flow, SessionId};
use corvid_router::{BindError, Inbox, Outbound, Router};
use corvid_sasl::ChannelBindings;
use corvid_stanza::{ns, StreamCondition, StreamError};
use corvid_storage::Store;
use corvid_xml::{Limits, Parser};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tracing::{debug, info, warn, Instrument as _};

use crate::limits::UnauthSlot;
use crate::machine::BindFailure;
use crate::telemetry::{ConnGauge, SaslExchange};
use crate::tls::TlsStream;
use crate::{Action, Config, ConnectionLimits, Input, Machine};

/// The TLS side of the server: configurations and channel-binding data of the certificate.
#[derive(Clone)]
pub struct TlsMaterial {
    /// For STARTTLS on the plain listener.
    pub starttls: Arc<rustls::ServerConfig>,
    /// For direct TLS (XEP-0368), with ALPN `xmpp-client`.
    pub direct: Arc<rustls::ServerConfig>,
    /// RFC 5929 §4.1 `tls-server-end-point` data of the certificate.
    pub server_end_point: Option<Vec<u8>>,
}

impl TlsMaterial {
    /// The material for two server configurations, prepared for `tls-exporter` channel
    /// binding ([`crate::tls::prepare_config`]).
    pub fn new(
        mut starttls: rustls::ServerConfig,
        mut direct: rustls::ServerConfig,
        server_end_point: Option<Vec<u8>>,
    ) -> Self {
        crate::tls::prepare_config(&mut starttls);
        crate::tls::prepare_config(&mut direct);
        Self {
            starttls: Arc::new(starttls),
            direct: Arc::new(direct),
            server_end_point,
        }
    }
}

/// What every connection shares.
pub struct C2sContext {
    /// Protocol configuration.
    pub config: Config,
    /// XML limits.
    pub limits: Limits,
    /// TLS.
    pub tls: TlsMaterial,
    /// The router.
    pub router: Arc<Router>,
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Unauthenticated-connection limits.
    pub conn_limits: Arc<ConnectionLimits>,
    /// Each negotiation step's deadline.
    pub negotiation_timeout: Duration,
    /// The TLS handshake's deadline.
    pub tls_handshake_timeout: Duration,
    /// Idle limit of a bound session.
    pub idle_timeout: Duration,
    /// How long to wait for the peer's closing tag.
    pub close_timeout: Duration,
    /// Sustained read rate, bytes per second.
    pub read_rate: u32,
    /// Read burst, bytes.
    pub read_burst: u32,
    /// Mailbox capacity of a session.
    pub session_queue: usize,
}

/// A listener kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Plain TCP, STARTTLS offered.
    StartTls,
    /// TLS from the first byte (XEP-0368).
    DirectTls,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
    Gone,
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Io::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// Accepts connections on `listener` until `shutdown` turns true.
pub async fn accept_loop(
    ctx: Arc<C2sContext>,
    listener: TcpListener,
    kind: Listener,
    shutdown: watch::Receiver<bool>,
) {
    accept_until(ctx, listener, kind, shutdown.clone(), shutdown).await;
}

/// Accepts connections on `listener` until `stop` or `shutdown` turns true, then drops the
/// listener (the port closes: new connections are refused, and a TCP readiness probe fails).
/// Connections already accepted keep running; they end when `shutdown` turns true (with
/// `system-shutdown`) or when their session is closed otherwise (a draining edge closes them
/// itself, after a grace period).
pub async fn accept_until(
    ctx: Arc<C2sContext>,
    listener: TcpListener,
    kind: Listener,
    mut stop: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop_all = shutdown.clone();
    if *stop.borrow() || *shutdown.borrow() {
        return;
    }
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    let ctx = ctx.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move { serve_connection(ctx, tcp, peer, kind, shutdown).await });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(what = "accept-failed", error = %e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return,
            _ = stop_all.changed() => return,
        }
    }
}

fn channel_bindings(tls: &TlsStream, server_end_point: &Option<Vec<u8>>) -> ChannelBindings {
    // RFC 9266 §3: tls-exporter is defined for TLS 1.3 (TLS 1.2 would need EMS everywhere);
    // the stream derives it for TLS 1.3 connections only.
    ChannelBindings {
        tls_exporter: tls.channel_binding_exporter().map(<[u8]>::to_vec),
        tls_server_end_point: server_end_point.clone(),
    }
}

/// Serves one client connection to its end, in a `c2s.connection` span (the root of the
/// connection's trace: TLS, SASL and bind are its children; each stanza's route is a trace of
/// its own that links to it).
pub async fn serve_connection(
    ctx: Arc<C2sContext>,
    tcp: TcpStream,
    peer: SocketAddr,
    kind: Listener,
    shutdown: watch::Receiver<bool>,
) {
    let span = tracing::info_span!(
        parent: None,
        "c2s.connection",
        otel.kind = "server",
        xmpp.listener = ?kind,
        network.peer.address = %peer.ip(),
        network.peer.port = peer.port(),
    );
    run_connection(ctx, tcp, peer, kind, shutdown)
        .instrument(span)
        .await;
}

async fn run_connection(
    ctx: Arc<C2sContext>,
    tcp: TcpStream,
    peer: SocketAddr,
    kind: Listener,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let Some(slot) = ctx.conn_limits.try_acquire(peer.ip()) else {
        Box::pin(refuse(tcp, kind, &ctx.config)).await;
        return;
    };
    let mut conn = Connection::new(ctx.clone(), slot, kind);
    let mut machine;
    let mut io = match kind {
        Listener::StartTls => {
            machine = Machine::new(conn.ctx.config.clone(), false, ChannelBindings::default());
            Io::Plain(tcp)
        }
        Listener::DirectTls => {
            let handshake = TlsStream::accept(ctx.tls.direct.clone(), tcp)
                .instrument(tracing::info_span!("c2s.tls"));
            // Boxed, as every rarely taken await below: a future's size is that of its largest
            // state, and an idle connection's task should not carry a TLS handshake's.
            match Box::pin(timeout(ctx.tls_handshake_timeout, handshake)).await {
                Ok(Ok(tls)) => {
                    let cb = channel_bindings(&tls, &ctx.tls.server_end_point);
                    machine = Machine::new(conn.ctx.config.clone(), true, cb);
                    Io::Tls(Box::new(tls))
                }
                Ok(Err(e)) => {
                    debug!(what = "tls-handshake-failed", %peer, error = %e);
                    return;
                }
                Err(_) => return,
            }
        }
    };
    debug!(what = "connection-opened", %peer, ?kind);
    conn.run(&mut machine, &mut io, &mut shutdown).await;
    if let Some(jid) = conn.bound.take() {
        corvid_telemetry::metrics().sessions.add(-1, &[]);
        Box::pin(ctx.router.unbind(&jid, conn.session)).await;
        info!(what = "session-closed", %jid, session = %conn.session);
    }
    let _ = timeout(Duration::from_secs(2), io.shutdown()).await;
}

/// Too many unauthenticated connections: say so and hang up (RFC 6120 §4.9.3.17
/// `resource-constraint`). Direct-TLS connections are simply closed: a TLS handshake would
/// spend exactly the resources the limit protects.
async fn refuse(mut tcp: TcpStream, kind: Listener, config: &Config) {
    if kind == Listener::StartTls {
        // The machine writes the header (with id and from, RFC 6120 §4.9.1.2) and the error.
        let mut actions = Vec::new();
        let err = StreamError::new(StreamCondition::ResourceConstraint)
            .with_text("too many unauthenticated connections");
        Machine::new(config.clone(), false, ChannelBindings::default())
            .stream_error(err, &mut actions);
        for a in actions {
            if let Action::Send(s) = a {
                let _ = timeout(Duration::from_secs(1), tcp.write_all(s.as_bytes())).await;
            }
        }
    }
}

/// Stanzas from the mailbox written in one go at most, and the output size that ends a batch.
const MAILBOX_BATCH: usize = 64;
const MAILBOX_BATCH_BYTES: usize = 32 * 1024;

/// Reads what the connection has into `parser` through a buffer on the stack: the future
/// waiting for input holds none (an idle connection's memory). The number of bytes read, 0 at
/// the end of the stream.
fn read_into(io: &mut Io, parser: &mut Parser, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    // Uninitialized: zeroing 8 KiB on every poll would cost more than the copy it prepares.
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let mut rb = ReadBuf::uninit(&mut buf);
    match Pin::new(io).poll_read(cx, &mut rb) {
        Poll::Ready(Ok(())) => {
            let n = rb.filled().len();
            parser.feed(rb.filled());
            Poll::Ready(Ok(n))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

/// Bytes taken from the connection per read.
const READ_CHUNK: usize = 8192;

struct Connection {
    ctx: Arc<C2sContext>,
    slot: Option<UnauthSlot>,
    session: SessionId,
    bound: Option<corvid_jid::FullJid>,
    mailbox: Option<Inbox>,
    parser: Parser,
    out: String,
    tokens: f64,
    last_refill: Instant,
    /// Its place in `xmpp.server.connections`.
    gauge: ConnGauge,
    /// The SASL exchange under way, for its span and the authentication count.
    sasl: Option<SaslExchange>,
}

impl Connection {
    fn new(ctx: Arc<C2sContext>, slot: UnauthSlot, kind: Listener) -> Self {
        let session = ctx.router.new_session_id();
        let parser = Parser::new(ctx.limits);
        let tokens = f64::from(ctx.read_burst);
        Self {
            ctx,
            slot: Some(slot),
            session,
            bound: None,
            mailbox: None,
            parser,
            out: String::new(),
            tokens,
            last_refill: Instant::now(),
            gauge: ConnGauge::open(kind),
            sasl: None,
        }
    }

    /// When the connection times out if nothing happens after `now`.
    fn deadline(&self, m: &Machine, now: Instant) -> Instant {
        let d = if m.is_bound() {
            self.ctx.idle_timeout
        } else if matches!(m.state(), crate::State::Closing) {
            self.ctx.close_timeout
        } else {
            self.ctx.negotiation_timeout
        };
        now + d
    }

    /// Token-bucket read limit: after reading `n` bytes at `now`, how long to pause before
    /// reading more.
    fn charge(&mut self, n: usize, now: Instant) -> Option<Duration> {
        let rate = f64::from(self.ctx.read_rate.max(1));
        let elapsed = now.duration_since(self.last_refill).as_secs_f64();
        self.last_refill = now;
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.ctx.read_burst));
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            Some(Duration::from_secs_f64(-self.tokens / rate))
        } else {
            None
        }
    }

    async fn run(&mut self, m: &mut Machine, io: &mut Io, shutdown: &mut watch::Receiver<bool>) {
        // One timer for the connection's life. Activity only moves `deadline`; the timer is
        // re-armed when it fires early or when the deadline comes closer (a state with a
        // shorter timeout), so a busy connection costs no timer insertion per stanza.
        let mut deadline = self.deadline(m, Instant::now());
        let timer = tokio::time::sleep_until(deadline);
        tokio::pin!(timer);
        let mut actions = Vec::new();
        loop {
            // Drain every complete event already buffered before reading more.
            let mut handled = false;
            loop {
                match self.parser.next_event() {
                    Ok(Some(ev)) => m.handle(Input::Xml(ev), &mut actions),
                    Ok(None) => break,
                    Err(e) => m.handle(Input::XmlError(e), &mut actions),
                }
                handled = true;
                // Boxed: routing a stanza is a deep future; an idle connection holds none.
                if !Box::pin(self.perform(m, io, &mut actions)).await {
                    let _ = self.flush(io).await;
                    return;
                }
                if m.is_closed() {
                    break;
                }
            }
            if handled {
                deadline = self.deadline(m, Instant::now());
                if deadline < timer.deadline() {
                    timer.as_mut().reset(deadline);
                }
            }
            // What the buffered events caused goes out in one write.
            if !self.flush(io).await || m.is_closed() {
                return;
            }
            // Waiting holds no buffer: an idle session costs no read or parse buffer.
            self.parser.release_idle();
            let mailbox = self.mailbox.as_mut();
            let parser = &mut self.parser;
            tokio::select! {
                r = std::future::poll_fn(|cx| read_into(io, parser, cx)) => match r {
                    Ok(0) | Err(_) => {
                        m.handle(Input::PeerGone, &mut actions);
                        let _ = self.perform_and_flush(m, io, &mut actions).await;
                        return;
                    }
                    Ok(n) => {
                        let now = Instant::now();
                        if m.is_bound() {
                            deadline = self.deadline(m, now);
                        }
                        if let Some(pause) = self.charge(n, now) {
                            // Back-pressure through TCP: stop reading for a while.
                            tokio::time::sleep(pause).await;
                        }
                    }
                },
                Some(item) = async { match mailbox { Some(mb) => mb.recv().await, None => std::future::pending().await } } => {
                    // Whatever else is already waiting goes out in the same write (one TLS
                    // record and one system call for a burst, instead of one per stanza).
                    let mut item = item;
                    let mut taken = 1;
                    loop {
                        match item {
                            Outbound::Stanza(st) => {
                                corvid_telemetry::metrics().stanzas_sent.add(st.kind().as_str());
                                st.element().write_to(&mut self.out, ns::CLIENT);
                            }
                            Outbound::Close(err) => {
                                m.stream_error(*err, &mut actions);
                                let _ = self.perform_and_flush(m, io, &mut actions).await;
                                return;
                            }
                        }
                        if taken >= MAILBOX_BATCH || self.out.len() >= MAILBOX_BATCH_BYTES {
                            break;
                        }
                        match self.mailbox.as_mut().map(Inbox::try_recv) {
                            Some(Ok(next)) => item = next,
                            _ => break,
                        }
                        taken += 1;
                    }
                    if !self.flush(io).await {
                        return;
                    }
                }
                () = &mut timer => {
                    if Instant::now() < deadline {
                        // Activity moved the deadline since the timer was armed.
                        timer.as_mut().reset(deadline);
                        continue;
                    }
                    m.handle(Input::Timeout, &mut actions);
                    if !self.perform_and_flush(m, io, &mut actions).await {
                        return;
                    }
                    deadline = self.deadline(m, Instant::now());
                    timer.as_mut().reset(deadline);
                }
                _ = shutdown.changed() => {
                    m.handle(Input::Shutdown, &mut actions);
                    let _ = self.perform_and_flush(m, io, &mut actions).await;
                    return;
                }
            }
        }
    }

    async fn flush(&mut self, io: &mut Io) -> bool {
        if self.out.is_empty() {
            return true;
        }
        // A client that does not read must not hold the connection forever.
        let r = timeout(self.ctx.idle_timeout, async {
            io.write_all(self.out.as_bytes()).await?;
            io.flush().await
        })
        .await;
        // Freed, not kept: an idle connection holds no output buffer.
        self.out = String::new();
        matches!(r, Ok(Ok(())))
    }

    /// [`Self::perform`], then writes what it produced.
    async fn perform_and_flush(
        &mut self,
        m: &mut Machine,
        io: &mut Io,
        actions: &mut Vec<Action>,
    ) -> bool {
        let more = Box::pin(self.perform(m, io, actions)).await;
        self.flush(io).await && more
    }

    /// Carries out actions (and those that their results cause), appending what they send to
    /// the output buffer; the caller flushes it. False when the connection is over.
    async fn perform(&mut self, m: &mut Machine, io: &mut Io, actions: &mut Vec<Action>) -> bool {
        // Taken, not drained: the caller's Vec keeps no capacity while the connection waits
        // (an idle session's memory), and the conversion reuses its allocation.
        let mut queue: VecDeque<Action> = std::mem::take(actions).into();
        while let Some(a) = queue.pop_front() {
            let mut more = Vec::new();
            match a {
                Action::Send(s) => self.out.push_str(&s),
                Action::StartTls => {
                    if !self.flush(io).await {
                        return false;
                    }
                    // Bytes pipelined after <starttls/> were sent in the clear and must not be
                    // processed as if protected (the STARTTLS command-injection attack).
                    if self.parser.buffered() > 0 {
                        warn!(what = "starttls-injection", session = %self.session);
                        return false;
                    }
                    let Io::Plain(tcp) = std::mem::replace(io, Io::Gone) else {
                        return false;
                    };
                    let handshake = TlsStream::accept(self.ctx.tls.starttls.clone(), tcp)
                        .instrument(tracing::info_span!("c2s.tls"));
                    match Box::pin(timeout(self.ctx.tls_handshake_timeout, handshake)).await {
                        Ok(Ok(tls)) => {
                            let cb = channel_bindings(&tls, &self.ctx.tls.server_end_point);
                            *io = Io::Tls(Box::new(tls));
                            self.parser = Parser::new(self.ctx.limits);
                            m.handle(Input::TlsEstablished(cb), &mut more);
                        }
                        Ok(Err(e)) => {
                            // RFC 6120 §5.4.3.2 (step 7 alt.): TLS failed; the TCP connection is closed.
                            debug!(what = "tls-handshake-failed", session = %self.session, error = %e);
                            return false;
                        }
                        Err(_) => return false,
                    }
                }
                Action::ResetParser => self.parser.reset(),
                Action::LookupCredentials(jid) => {
                    SaslExchange::begin(&mut self.sasl, m);
                    let r = self
                        .ctx
                        .store
                        .accounts()
                        .credentials(&jid)
                        .await
                        .map_err(|e| {
                            warn!(what = "credentials-lookup-failed", error = %e);
                            e.to_string()
                        });
                    m.handle(Input::Credentials(r), &mut more);
                }
                Action::Authenticated(jid) => {
                    info!(what = "authenticated", %jid, session = %self.session);
                    SaslExchange::finish(&mut self.sasl, "success");
                    self.gauge.set("authenticated");
                    self.slot = None;
                }
                Action::Bind(jid) => {
                    let (tx, rx) = corvid_router::mailbox(self.ctx.session_queue);
                    let bind = self
                        .ctx
                        .router
                        .bind(jid.clone(), self.session, tx)
                        .instrument(tracing::info_span!("c2s.bind"));
                    let r = match bind.await {
                        Ok(()) => {
                            self.gauge.set("bound");
                            corvid_telemetry::metrics().sessions.add(1, &[]);
                            self.mailbox = Some(rx);
                            self.bound = Some(jid.clone());
                            info!(what = "session-bound", %jid, session = %self.session);
                            Ok(())
                        }
                        Err(BindError::TooManyResources) => Err(BindFailure::TooManyResources),
                        Err(BindError::Unavailable(e)) => {
                            warn!(what = "bind-failed", error = %e);
                            Err(BindFailure::Unavailable)
                        }
                    };
                    m.handle(Input::Bound(r), &mut more);
                }
                Action::Route(mut stanza) => {
                    let kind = stanza.kind().as_str();
                    corvid_telemetry::metrics().stanzas_received.add(kind);
                    // Each stanza is a trace of its own (a connection lives for hours), linked
                    // to its connection's span.
                    let span = tracing::info_span!(
                        parent: None,
                        "xmpp.stanza.route",
                        xmpp.stanza.kind = kind,
                    );
                    span.follows_from(tracing::Span::current().id());
                    let router = &self.ctx.router;
                    let session = self.session;
                    let work = async move {
                        let services = router.services();
                        let mut ev = Event::ClientStanza {
                            session,
                            stanza: &mut stanza,
                        };
                        if services.modules.run(services, &mut ev).await == Flow::Continue {
                            router.route(stanza).await;
                        }
                    }
                    .instrument(span);
                    // What the client sends may answer what another node forwarded to it (a
                    // reply to a resource bound there a moment ago): routed as its consequence.
                    match self.mailbox.as_ref().map_or(0, Inbox::position) {
                        0 => work.await,
                        position => corvid_core::caused_at(position, work).await,
                    }
                }
                Action::Nonza(element) => {
                    let services = self.ctx.router.services();
                    let handled = match m.jid() {
                        Some(jid) => {
                            let jid = jid.clone();
                            let mut ev = Event::ClientNonza {
                                session: self.session,
                                jid: &jid,
                                element: &element,
                            };
                            services.modules.run(services, &mut ev).await == Flow::Stop
                        }
                        None => false,
                    };
                    if !handled {
                        let err = StreamError::new(StreamCondition::UnsupportedStanzaType);
                        m.stream_error(err, &mut more);
                    }
                }
                Action::Close => {
                    let _ = self.flush(io).await;
                    return false;
                }
            }
            queue.extend(more);
        }
        SaslExchange::check_failed(&mut self.sasl, m);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn of five arguments returns, without calling it.
    fn future_size<A, B, C, D, E, F: std::future::Future>(_: fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// What an idle connection's task holds is the size of `run_connection`'s future (plus the
    /// buffers the connection owns): rarely taken awaits (TLS handshakes, routing a stanza) are
    /// boxed so that it stays small. Measured: 5.2 KB per connection before the boxing.
    #[test]
    fn the_connection_future_stays_small() {
        let size = future_size(run_connection);
        assert!(size <= 2048, "run_connection's future is {size} bytes");
    }
}
