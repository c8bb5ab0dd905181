//! The sending side: [`GrpcForwarder`], one `Router.Deliver` stream per peer node.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use corvid_core::{NodeId, RemoteDelivery, RemoteError, Route, SessionRegistry};
use corvid_jid::{BareJid, Jid};
use corvid_proto::v1::router_client::RouterClient;
use corvid_proto::{v1, ClusterError, Delivery, RoutedStanza, Transport};
use corvid_stanza::Stanza;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::{timeout_at, Instant};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

/// How a [`GrpcForwarder`] talks to its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardConfig {
    /// The longest one stanza may take, from the call to its report: waiting for room in the
    /// window, opening the stream, and the peer's answer. Past it the stanza counts as
    /// undelivered (its sender gets an error) and the stream, which holds a peer that does not
    /// answer, is dropped and reopened for the next stanza.
    pub timeout: Duration,
    /// The longest opening a connection to a peer may take (within `timeout`).
    pub connect_timeout: Duration,
    /// The most envelopes in flight (sent, not yet reported) per peer. Further stanzas for that
    /// peer wait, up to `timeout`: back-pressure instead of an unbounded queue.
    pub window: usize,
    /// After a peer could not be reached, stanzas for it fail at once for this long instead of
    /// each trying to connect again.
    pub reconnect_backoff: Duration,
    /// HTTP/2 pings on an idle connection, so a peer that vanished without closing it is noticed.
    pub keepalive: Duration,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            window: 256,
            reconnect_backoff: Duration::from_millis(200),
            keepalive: Duration::from_secs(10),
        }
    }
}

/// Delivers stanzas to sessions on other nodes over gRPC ([`RemoteDelivery`] for the router).
///
/// Each peer node gets one long-lived `Router.Deliver` stream, opened on its first stanza and
/// reopened after a failure. Envelopes carry increasing `seq` numbers and leave in that order;
/// each call waits for the report with its `seq`:
///
/// | report | result |
/// |---|---|
/// | `DELIVERED` | `Ok(())` |
/// | `RECIPIENT_GONE` | [`RemoteError::Gone`] |
/// | `QUEUE_FULL`, `INVALID`, no report in time, stream or connection error | [`RemoteError::Unavailable`] |
///
/// The peers can change while it runs ([`GrpcForwarder::set_peers`]): a cluster keeps them equal
/// to its Raft membership, so nodes that join later (edges) are reached too.
pub struct GrpcForwarder {
    /// The nodes it can reach. A peer's stream lives as long as its entry here.
    peers: RwLock<HashMap<NodeId, Arc<Peer>>>,
    transport: Transport,
    config: ForwardConfig,
    /// This node's copy of the session table, whose position every envelope carries.
    registry: OnceLock<Arc<dyn SessionRegistry>>,
}

impl GrpcForwarder {
    /// A forwarder to the nodes in `peers`, each with the address of its `Router` service:
    /// `host:port` (a URI's scheme is ignored: [`Transport`] decides). Nothing connects until a
    /// stanza for that node comes.
    pub fn new(peers: HashMap<NodeId, String>, config: ForwardConfig) -> Arc<Self> {
        Self::over(Transport::plaintext(), peers, config)
    }

    /// [`Self::new`] with every connection over `transport` (mutual TLS in production).
    pub fn over(
        transport: Transport,
        peers: HashMap<NodeId, String>,
        config: ForwardConfig,
    ) -> Arc<Self> {
        let forwarder = Arc::new(Self {
            peers: RwLock::new(HashMap::new()),
            transport,
            config,
            registry: OnceLock::new(),
        });
        forwarder.set_peers(peers);
        forwarder
    }

    /// Stamps every envelope with `registry`'s position from now on (or the position of what
    /// the stanza is a consequence of, if further: [`corvid_core::seen_position`]); the
    /// receiving node's router waits for its own copy to get as far before it treats a full
    /// JID as unknown. Without it envelopes carry only what they are a consequence of. Set once.
    pub fn set_registry(&self, registry: Arc<dyn SessionRegistry>) {
        let _ = self.registry.set(registry);
    }

    /// Makes `peers` the nodes this forwarder reaches, each with its address. A peer whose
    /// address is unchanged keeps its open stream; a new address gets a new stream (stanzas in
    /// flight on the old one finish or fail there); a node no longer named is dropped, and a
    /// stanza for it fails as for an unreachable node.
    pub fn set_peers(&self, peers: HashMap<NodeId, String>) {
        let mut current = self.peers.write().unwrap_or_else(PoisonError::into_inner);
        current.retain(|node, peer| peers.get(node) == Some(&peer.addr));
        for (node, addr) in peers {
            current.entry(node).or_insert_with(|| {
                debug!(what = "forward-peer-added", node = node.0, %addr);
                Arc::new(Peer::new(
                    node,
                    addr,
                    self.config.window,
                    self.transport.clone(),
                ))
            });
        }
    }

    /// Per peer, the stanzas sent (or waiting for room in the window) and not yet answered:
    /// the depth of each node-to-node queue, for metrics.
    pub fn in_flight(&self) -> Vec<(NodeId, usize)> {
        let window = self.config.window.max(1);
        self.peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(node, peer)| {
                let free = peer.window.available_permits();
                (*node, window.saturating_sub(free))
            })
            .collect()
    }

    /// The nodes this forwarder reaches and their addresses.
    pub fn peers(&self) -> HashMap<NodeId, String> {
        self.peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(node, peer)| (*node, peer.addr.clone()))
            .collect()
    }
}

#[async_trait]
impl RemoteDelivery for GrpcForwarder {
    async fn deliver(&self, route: &Route, stanza: &Stanza) -> Result<(), RemoteError> {
        let peer = self
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&route.node)
            .cloned();
        let Some(peer) = peer else {
            warn!(what = "forward-unknown-node", node = route.node.0, session = %route.session);
            return Err(RemoteError::Unavailable);
        };
        let deadline = Instant::now() + self.config.timeout;
        let mut envelope = envelope(route, stanza);
        // Read when the stanza leaves: every binding that led to it is applied here by now, or
        // is at least as far as the envelope that led to it said.
        envelope.registry_index = self
            .registry
            .get()
            .map_or(0, |r| r.position())
            .max(corvid_core::seen_position());
        let outcome = peer.deliver(envelope, deadline, &self.config).await;
        if let Err(e) = outcome {
            debug!(what = "forward-undelivered", node = route.node.0, session = %route.session, error = %e);
        }
        outcome
    }
}

/// One peer node: its address, its window, and its current stream.
struct Peer {
    node: NodeId,
    addr: String,
    /// Plain HTTP/2 or mutual TLS.
    transport: Transport,
    /// Permits for envelopes in flight; one is held from before sending until the report.
    window: Arc<Semaphore>,
    /// The current stream. An async lock: while a stream opens, the others wait for it rather
    /// than opening their own.
    link: tokio::sync::Mutex<Link>,
}

/// The state of the connection to one peer.
#[derive(Default)]
struct Link {
    stream: Option<Arc<DeliverStream>>,
    /// No new attempt to connect before this.
    retry_at: Option<Instant>,
}

impl Peer {
    fn new(node: NodeId, addr: String, window: usize, transport: Transport) -> Self {
        Self {
            node,
            addr,
            transport,
            window: Arc::new(Semaphore::new(window.max(1))),
            link: tokio::sync::Mutex::new(Link::default()),
        }
    }

    async fn deliver(
        &self,
        envelope: v1::Envelope,
        deadline: Instant,
        config: &ForwardConfig,
    ) -> Result<(), RemoteError> {
        let envelope_session = envelope.session;
        let Ok(Ok(_permit)) = timeout_at(deadline, self.window.acquire()).await else {
            warn!(what = "forward-window-full", node = self.node.0);
            return Err(RemoteError::Unavailable);
        };
        let stream = self.stream(deadline, config).await?;
        let report = stream.send(envelope)?;
        match timeout_at(deadline, report).await {
            Ok(Ok(outcome)) => outcome,
            // The stream ended before answering; the stanza may or may not have arrived.
            Ok(Err(_)) => Err(RemoteError::Unavailable),
            Err(_) => {
                warn!(
                    what = "forward-timeout",
                    node = self.node.0,
                    session = envelope_session
                );
                stream.close();
                Err(RemoteError::Unavailable)
            }
        }
    }

    /// The open stream to this peer, opening one if there is none (or it failed).
    async fn stream(
        &self,
        deadline: Instant,
        config: &ForwardConfig,
    ) -> Result<Arc<DeliverStream>, RemoteError> {
        let Ok(mut link) = timeout_at(deadline, self.link.lock()).await else {
            return Err(RemoteError::Unavailable);
        };
        if let Some(s) = link.stream.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        link.stream = None;
        let now = Instant::now();
        if link.retry_at.is_some_and(|at| now < at) {
            return Err(RemoteError::Unavailable);
        }
        let open_by = deadline.min(now + config.connect_timeout);
        match timeout_at(open_by, self.open(config)).await {
            Ok(Ok(stream)) => {
                debug!(what = "forward-stream-open", node = self.node.0, addr = %self.addr);
                link.retry_at = None;
                link.stream = Some(stream.clone());
                Ok(stream)
            }
            Ok(Err(e)) => {
                warn!(what = "forward-connect-failed", node = self.node.0, addr = %self.addr, error = %e);
                link.retry_at = Some(Instant::now() + config.reconnect_backoff);
                Err(RemoteError::Unavailable)
            }
            Err(_) => {
                warn!(what = "forward-connect-timeout", node = self.node.0, addr = %self.addr);
                link.retry_at = Some(Instant::now() + config.reconnect_backoff);
                Err(RemoteError::Unavailable)
            }
        }
    }

    /// Connects and starts a `Deliver` call, with a task reading its reports.
    async fn open(&self, config: &ForwardConfig) -> Result<Arc<DeliverStream>, ClusterError> {
        let endpoint = self
            .transport
            .endpoint(&self.addr)?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(config.keepalive)
            .keep_alive_timeout(config.keepalive)
            .keep_alive_while_idle(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        // The channel never holds more than the window: a permit is taken before each send.
        let (tx, rx) = mpsc::channel(config.window.max(1));
        let reports = RouterClient::new(channel)
            .deliver(ReceiverStream::new(rx))
            .await
            .map_err(ClusterError::from)?
            .into_inner();
        let stream = Arc::new(DeliverStream {
            node: self.node,
            closed: AtomicBool::new(false),
            inner: Mutex::new(Outgoing {
                next_seq: 1,
                tx: Some(tx),
                pending: HashMap::new(),
            }),
            reader: Mutex::new(None),
        });
        let task = tokio::spawn(read_reports(stream.clone(), reports));
        *lock(&stream.reader) = Some(task.abort_handle());
        Ok(stream)
    }
}

/// One `Deliver` call to a peer.
struct DeliverStream {
    node: NodeId,
    closed: AtomicBool,
    inner: Mutex<Outgoing>,
    /// The task reading the reports, stopped when the stream is dropped as stuck.
    reader: Mutex<Option<AbortHandle>>,
}

/// The sending half, under one lock so that envelopes enter the stream in `seq` order.
struct Outgoing {
    next_seq: u64,
    /// `None` once closed: dropping it ends the request stream.
    tx: Option<mpsc::Sender<v1::Envelope>>,
    /// Who waits for the report of each `seq` sent.
    pending: HashMap<u64, oneshot::Sender<Result<(), RemoteError>>>,
}

impl DeliverStream {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Numbers and sends an envelope; the receiver gets the outcome from its report.
    fn send(
        &self,
        mut envelope: v1::Envelope,
    ) -> Result<oneshot::Receiver<Result<(), RemoteError>>, RemoteError> {
        let mut out = lock(&self.inner);
        let Some(tx) = out.tx.clone() else {
            return Err(RemoteError::Unavailable);
        };
        let seq = out.next_seq;
        out.next_seq += 1;
        envelope.seq = seq;
        let (report_tx, report_rx) = oneshot::channel();
        out.pending.insert(seq, report_tx);
        match tx.try_send(envelope) {
            Ok(()) => Ok(report_rx),
            Err(e) => {
                out.pending.remove(&seq);
                drop(out);
                if let TrySendError::Closed(_) = e {
                    self.close();
                } else {
                    // Cannot happen while every sender holds a window permit; refuse rather
                    // than queue without limit.
                    warn!(what = "forward-queue-full", node = self.node.0);
                }
                Err(RemoteError::Unavailable)
            }
        }
    }

    /// Ends the stream: the request side closes, and every stanza still waiting for a report
    /// gets [`RemoteError::Unavailable`] (its report sender is dropped).
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let pending = {
            let mut out = lock(&self.inner);
            out.tx = None;
            std::mem::take(&mut out.pending)
        };
        drop(pending);
        if let Some(reader) = lock(&self.reader).take() {
            reader.abort();
        }
    }

    /// Hands a report to whoever waits for its `seq`.
    fn report(&self, report: &v1::DeliveryReport) {
        let waiter = lock(&self.inner).pending.remove(&report.seq);
        let Some(waiter) = waiter else {
            // Its sender gave up (timeout) already, or the peer is confused.
            debug!(
                what = "forward-report-unmatched",
                node = self.node.0,
                seq = report.seq
            );
            return;
        };
        let outcome = match report.delivery() {
            Ok(Delivery::Delivered) => Ok(()),
            Ok(Delivery::RecipientGone) => Err(RemoteError::Gone),
            Ok(Delivery::QueueFull) => Err(RemoteError::Unavailable),
            Ok(Delivery::Invalid) => {
                warn!(
                    what = "forward-envelope-refused",
                    node = self.node.0,
                    seq = report.seq
                );
                Err(RemoteError::Unavailable)
            }
            Err(e) => {
                warn!(what = "forward-report-malformed", node = self.node.0, seq = report.seq, error = %e);
                Err(RemoteError::Unavailable)
            }
        };
        // The waiter may have timed out meanwhile.
        let _ = waiter.send(outcome);
    }
}

/// Reads reports until the stream ends, then closes it so the next stanza opens a new one.
async fn read_reports(
    stream: Arc<DeliverStream>,
    mut reports: tonic::Streaming<v1::DeliveryReport>,
) {
    loop {
        match reports.message().await {
            Ok(Some(report)) => stream.report(&report),
            Ok(None) => {
                debug!(what = "forward-stream-ended", node = stream.node.0);
                break;
            }
            Err(status) => {
                let error = ClusterError::from(status);
                warn!(what = "forward-stream-failed", node = stream.node.0, %error);
                break;
            }
        }
    }
    // Not `close()`: that would abort this very task before it returns.
    stream.closed.store(true, Ordering::Release);
    let pending = {
        let mut out = lock(&stream.inner);
        out.tx = None;
        std::mem::take(&mut out.pending)
    };
    drop(pending);
}

/// The envelope for `stanza` to `route` (its `seq` is set when sent).
fn envelope(route: &Route, stanza: &Stanza) -> v1::Envelope {
    // Stanzas the server itself sends may lack `from`: they come from its domain.
    let from = stanza
        .from()
        .cloned()
        .unwrap_or_else(|| Jid::from(BareJid::from_parts(None, route.jid.bare().domain().clone())));
    let to = stanza
        .to()
        .cloned()
        .unwrap_or_else(|| Jid::from(route.jid.clone()));
    v1::Envelope::from(RoutedStanza {
        seq: 0,
        from,
        to,
        stanza: crate::xml::encode(stanza),
        session: NonZeroU64::new(route.session.0),
        // The receiver checks the session still holds it: ids alone may be stale.
        session_jid: Some(route.jid.clone()),
        // The routing span's context: the receiver's delivery span joins this trace.
        trace: corvid_telemetry::inject(&tracing::Span::current()),
        // Set by the caller, from this node's replica.
        registry_index: 0,
    })
}

/// Locks a mutex that only ever guards plain data updates, so a poisoned one is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(forwarder: &GrpcForwarder, node: u64) -> Option<Arc<Peer>> {
        forwarder
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&NodeId(node))
            .cloned()
    }

    #[test]
    fn set_peers_follows_the_membership_and_keeps_unchanged_links() {
        let forwarder = GrpcForwarder::new(
            HashMap::from([
                (NodeId(1), "127.0.0.1:7001".to_owned()),
                (NodeId(2), "127.0.0.1:7002".to_owned()),
            ]),
            ForwardConfig::default(),
        );
        let one = peer(&forwarder, 1);
        let two = peer(&forwarder, 2);
        // Node 2 moved, node 11 (an edge) joined, node 1 is unchanged.
        forwarder.set_peers(HashMap::from([
            (NodeId(1), "127.0.0.1:7001".to_owned()),
            (NodeId(2), "127.0.0.1:7102".to_owned()),
            (NodeId(11), "127.0.0.1:7011".to_owned()),
        ]));
        assert!(
            matches!((&one, peer(&forwarder, 1)), (Some(a), Some(b)) if Arc::ptr_eq(a, &b)),
            "an unchanged peer keeps its link (and stream)"
        );
        assert!(
            !matches!((&two, peer(&forwarder, 2)), (Some(a), Some(b)) if Arc::ptr_eq(a, &b)),
            "a moved peer gets a new link"
        );
        assert_eq!(
            forwarder.peers().get(&NodeId(2)).map(String::as_str),
            Some("127.0.0.1:7102")
        );
        assert!(forwarder.peers().contains_key(&NodeId(11)));
        // Node 11 left.
        forwarder.set_peers(HashMap::from([(NodeId(1), "127.0.0.1:7001".to_owned())]));
        assert_eq!(forwarder.peers().len(), 1);
        // Nothing sent: every queue is empty.
        assert_eq!(forwarder.in_flight(), vec![(NodeId(1), 0)]);
    }

    #[test]
    fn in_flight_counts_the_window_permits_taken() {
        let forwarder = GrpcForwarder::new(
            HashMap::from([(NodeId(2), "127.0.0.1:7002".to_owned())]),
            ForwardConfig::default(),
        );
        let two = peer(&forwarder, 2).unwrap();
        let held = two.window.clone().try_acquire_many_owned(3).unwrap();
        assert_eq!(forwarder.in_flight(), vec![(NodeId(2), 3)]);
        drop(held);
        assert_eq!(forwarder.in_flight(), vec![(NodeId(2), 0)]);
    }

    #[tokio::test]
    async fn a_stanza_for_a_node_not_in_the_membership_is_unavailable() {
        let forwarder = GrpcForwarder::new(HashMap::new(), ForwardConfig::default());
        let route = Route {
            jid: "juliet@example.org/balcony"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            node: NodeId(9),
            session: corvid_core::SessionId(1),
            priority: 0,
            available: true,
        };
        let el = corvid_xml::Element::new("message", "jabber:client")
            .with_attr("to", "juliet@example.org/balcony")
            .with_child(corvid_xml::Element::new("body", "jabber:client").with_text("hi"));
        let stanza = Stanza::parse(el, "jabber:client").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            forwarder.deliver(&route, &stanza).await,
            Err(RemoteError::Unavailable)
        );
    }
}
