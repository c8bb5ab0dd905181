//! Two edges in one process, each with its own router, mailboxes and `Router.Deliver` server on
//! a real loopback socket, sharing one session table (standing in for the Raft replica every
//! edge will hold). Alice is on node 1, Bob on node 2.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use corvid_cluster::{DeliverService, ForwardConfig, GrpcForwarder};
use corvid_core::{NodeId, Registrar, Route, Services, SessionId, SessionRegistry};
use corvid_jid::{DomainPart, FullJid};
use corvid_proto::v1::router_client::RouterClient;
use corvid_proto::{v1, Delivery};
use corvid_router::{LocalRegistry, Outbound, Router};
use corvid_stanza::{ns, Kind, Stanza};
use corvid_storage::Store;
use corvid_store_embedded::EmbeddedStore;
use corvid_xml::Element;
use prost::bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

const DOMAIN: &str = "example.org";
const ALICE: &str = "alice@example.org/phone";
const BOB: &str = "bob@example.org/laptop";
/// How long a test waits for something that should arrive.
const WAIT: Duration = Duration::from_secs(10);

/// One edge: a router and its `Router.Deliver` server.
struct Edge {
    router: Arc<Router>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl Edge {
    /// Stops the gRPC server (draining its streams) and waits until it is down.
    async fn stop_server(&mut self) {
        self.stop.send_replace(true);
        timeout(WAIT, &mut self.server)
            .await
            .expect("the server stops although peers hold streams open")
            .expect("server task");
    }

    /// Starts the gRPC server again on the same address.
    async fn restart_server(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind");
        let (stop, server) = serve(self.router.clone(), listener);
        self.stop = stop;
        self.server = server;
    }
}

/// Serves `Router.Deliver` for `router` on `listener` until the returned sender says stop.
fn serve(router: Arc<Router>, listener: TcpListener) -> (watch::Sender<bool>, JoinHandle<()>) {
    let (stop, stopped) = watch::channel(false);
    let service = DeliverService::new(router).with_shutdown(stopped.clone());
    let server = tokio::spawn(async move {
        let mut stopped = stopped;
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
            .expect("serve");
    });
    (stop, server)
}

/// The two-node cluster.
struct Cluster {
    node1: Edge,
    node2: Edge,
    registry: Arc<LocalRegistry>,
    _data: tempfile::TempDir,
}

impl Cluster {
    async fn start(config: ForwardConfig) -> Cluster {
        let registry = Arc::new(LocalRegistry::new());
        let copies: [Arc<dyn SessionRegistry>; 2] = [registry.clone(), registry.clone()];
        Self::start_with(config, registry, copies, Registrar::new()).await
    }

    /// [`Cluster::start`] with each node reading the shared table through its own `copies[i]`
    /// (a staged replica), and hooks from `registrar`.
    async fn start_with(
        config: ForwardConfig,
        registry: Arc<LocalRegistry>,
        copies: [Arc<dyn SessionRegistry>; 2],
        registrar: Registrar,
    ) -> Cluster {
        let data = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = EmbeddedStore::open(data.path()).expect("store");
        let modules = Arc::new(registrar.freeze());
        let domains: Arc<[DomainPart]> = vec![DomainPart::new(DOMAIN).expect("domain")].into();
        let mut routers = Vec::new();
        let mut listeners = Vec::new();
        for (n, copy) in [1, 2].into_iter().zip(copies) {
            let router = Router::new(NodeId(n), copy.clone(), 10);
            router.set_services(Services {
                domains: domains.clone(),
                store: store.clone(),
                modules: modules.clone(),
                sender: router.sender(),
                registry: copy,
            });
            routers.push(router);
            listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr"))
            .collect();
        for (me, peer) in [(0, 1), (1, 0)] {
            let forwarder = GrpcForwarder::new(
                HashMap::from([(NodeId(peer as u64 + 1), addrs[peer].to_string())]),
                config,
            );
            forwarder.set_registry(routers[me].registry().clone());
            routers[me].set_remote(forwarder);
        }
        let mut edges =
            routers
                .into_iter()
                .zip(listeners)
                .zip(addrs)
                .map(|((router, listener), addr)| {
                    let (stop, server) = serve(router.clone(), listener);
                    Edge {
                        router,
                        addr,
                        stop,
                        server,
                    }
                });
        let (Some(node1), Some(node2)) = (edges.next(), edges.next()) else {
            unreachable!("two edges were built");
        };
        Cluster {
            node1,
            node2,
            registry,
            _data: data,
        }
    }
}

/// A connected client as the router sees it: its session and the other end of its mailbox.
struct Persona {
    jid: FullJid,
    session: SessionId,
    inbox: corvid_router::Inbox,
}

impl Persona {
    async fn bind(edge: &Edge, jid: &str, mailbox: usize) -> Persona {
        let jid: FullJid = jid.parse().expect("jid");
        let session = edge.router.new_session_id();
        let (tx, inbox) = corvid_router::mailbox(mailbox);
        edge.router
            .bind(jid.clone(), session, tx)
            .await
            .expect("bind");
        Persona {
            jid,
            session,
            inbox,
        }
    }

    /// The next stanza in this persona's mailbox.
    async fn receive(&mut self) -> Stanza {
        match timeout(WAIT, self.inbox.recv()).await {
            Ok(Some(Outbound::Stanza(st))) => *st,
            other => panic!("{} expected a stanza, got {other:?}", self.jid),
        }
    }

    /// Asserts nothing more is waiting in the mailbox.
    fn has_nothing_more(&mut self) {
        assert!(
            self.inbox.try_recv().is_err(),
            "{} has an unexpected stanza",
            self.jid
        );
    }
}

fn chat(from: &str, to: &str, id: &str, body: &str) -> Stanza {
    let el = Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_attr("id", id)
        .with_child(Element::new("body", ns::CLIENT).with_text(body));
    Stanza::from_trusted(Kind::Message, el)
}

fn body(st: &Stanza) -> String {
    st.element()
        .child("body", ns::CLIENT)
        .map(|b| b.text())
        .unwrap_or_default()
}

/// Asserts `st` is an error reply to message `id` with the given RFC 6120 condition.
fn assert_error(st: &Stanza, id: &str, condition: &str) {
    assert_eq!(st.kind(), Kind::Message);
    assert_eq!(st.type_attr(), Some("error"), "{st:?}");
    assert_eq!(st.id(), Some(id));
    assert_eq!(st.to().map(ToString::to_string).as_deref(), Some(ALICE));
    let error = st.element().child("error", ns::CLIENT).expect("<error/>");
    assert!(
        error
            .child(condition, "urn:ietf:params:xml:ns:xmpp-stanzas")
            .is_some(),
        "expected {condition}: {st:?}"
    );
}

fn quick() -> ForwardConfig {
    ForwardConfig {
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        window: 16,
        reconnect_backoff: Duration::from_millis(100),
        keepalive: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn a_chat_message_from_alice_on_node_1_reaches_bob_on_node_2_and_his_reply_comes_back() {
    let cluster = Cluster::start(quick()).await;
    let mut alice = Persona::bind(&cluster.node1, ALICE, 16).await;
    let mut bob = Persona::bind(&cluster.node2, BOB, 16).await;

    cluster
        .node1
        .router
        .route(chat(ALICE, BOB, "m1", "hello from node 1"))
        .await;
    let got = bob.receive().await;
    assert_eq!(got.kind(), Kind::Message);
    assert_eq!(got.from().map(ToString::to_string).as_deref(), Some(ALICE));
    assert_eq!(got.to().map(ToString::to_string).as_deref(), Some(BOB));
    assert_eq!(got.id(), Some("m1"));
    assert_eq!(got.type_attr(), Some("chat"));
    assert_eq!(body(&got), "hello from node 1");
    // Nothing went to node 1's mailboxes instead (session ids repeat across nodes).
    alice.has_nothing_more();

    cluster
        .node2
        .router
        .route(chat(BOB, ALICE, "r1", "hello back"))
        .await;
    let reply = alice.receive().await;
    assert_eq!(reply.from().map(ToString::to_string).as_deref(), Some(BOB));
    assert_eq!(body(&reply), "hello back");
    bob.has_nothing_more();
}

#[tokio::test]
async fn five_hundred_messages_arrive_in_the_order_alice_sent_them() {
    let cluster = Cluster::start(quick()).await;
    let _alice = Persona::bind(&cluster.node1, ALICE, 16).await;
    let mut bob = Persona::bind(&cluster.node2, BOB, 600).await;

    let sender = {
        let router = cluster.node1.router.clone();
        tokio::spawn(async move {
            for i in 0..500 {
                router
                    .route(chat(ALICE, BOB, &format!("m{i}"), &format!("#{i}")))
                    .await;
            }
        })
    };
    for i in 0..500 {
        let got = bob.receive().await;
        assert_eq!(body(&got), format!("#{i}"));
    }
    sender.await.expect("sender");
    bob.has_nothing_more();
}

#[tokio::test]
async fn a_message_to_a_session_that_vanished_on_node_2_is_handled_as_for_an_unavailable_resource()
{
    let cluster = Cluster::start(quick()).await;
    let mut alice = Persona::bind(&cluster.node1, ALICE, 16).await;
    let bob = Persona::bind(&cluster.node2, BOB, 16).await;

    // Bob's session ends on node 2, but node 1's replica still has his route.
    cluster.node2.router.unbind(&bob.jid, bob.session).await;
    cluster
        .registry
        .bind(
            Route {
                jid: bob.jid.clone(),
                node: NodeId(2),
                session: bob.session,
                priority: 0,
                available: true,
            },
            10,
        )
        .await
        .expect("stale route");

    cluster
        .node1
        .router
        .route(chat(ALICE, BOB, "m1", "anyone there?"))
        .await;
    // RFC 6121 §8.5.3.2.1: a chat message for a full JID with no such session is handled as
    // if sent to the bare JID; Bob has no other resource, and this router has no offline
    // storage, so §8.5.2.2.1's error comes back.
    let reply = alice.receive().await;
    assert_error(&reply, "m1", "service-unavailable");
    assert_eq!(reply.from().map(ToString::to_string).as_deref(), Some(BOB));
}

#[tokio::test]
async fn a_stale_route_to_a_session_id_now_held_by_someone_else_is_not_delivered_to_them() {
    let cluster = Cluster::start(quick()).await;
    let mut alice = Persona::bind(&cluster.node1, ALICE, 16).await;
    // Node 2 restarted: its session ids start again, and carol now holds Bob's old one.
    let mut carol = Persona::bind(&cluster.node2, "carol@example.org/tablet", 16).await;
    cluster
        .registry
        .bind(
            Route {
                jid: BOB.parse().expect("jid"),
                node: NodeId(2),
                session: carol.session,
                priority: 0,
                available: true,
            },
            10,
        )
        .await
        .expect("stale route");

    cluster
        .node1
        .router
        .route(chat(ALICE, BOB, "m1", "for bob only"))
        .await;
    // As for any vanished session (RFC 6121 §8.5.3.2.1, then §8.5.2.2.1 without storage).
    assert_error(&alice.receive().await, "m1", "service-unavailable");
    carol.has_nothing_more();
}

#[tokio::test]
async fn a_full_mailbox_on_node_2_is_not_a_buffer_the_message_goes_as_for_an_unavailable_resource()
{
    let cluster = Cluster::start(quick()).await;
    let mut alice = Persona::bind(&cluster.node1, ALICE, 16).await;
    // Bob's client is stuck: his mailbox holds one stanza and nobody drains it.
    let mut bob = Persona::bind(&cluster.node2, BOB, 1).await;

    let router = &cluster.node1.router;
    router.route(chat(ALICE, BOB, "m1", "first")).await;
    router.route(chat(ALICE, BOB, "m2", "second")).await;
    // Not queued beyond the mailbox: handled as for an unavailable resource (no other one,
    // no offline storage here: RFC 6121 §8.5.2.2.1's error).
    assert_error(&alice.receive().await, "m2", "service-unavailable");
    assert_eq!(body(&bob.receive().await), "first");
    bob.has_nothing_more();
}

#[tokio::test]
async fn with_node_2_stopped_alice_hears_within_the_timeout_and_delivery_resumes_when_it_is_back() {
    let config = quick();
    let mut cluster = Cluster::start(config).await;
    let mut alice = Persona::bind(&cluster.node1, ALICE, 16).await;
    let mut bob = Persona::bind(&cluster.node2, BOB, 16).await;

    // The stream to node 2 is open and in use.
    cluster
        .node1
        .router
        .route(chat(ALICE, BOB, "m1", "before"))
        .await;
    assert_eq!(body(&bob.receive().await), "before");

    cluster.node2.stop_server().await;
    let started = Instant::now();
    cluster
        .node1
        .router
        .route(chat(ALICE, BOB, "m2", "while down"))
        .await;
    // Node 2 cannot be reached: Bob's session there is handled as unavailable (RFC 6121
    // §8.5.3.2.1); with no other resource and no offline storage here, §8.5.2.2.1's error.
    assert_error(&alice.receive().await, "m2", "service-unavailable");
    assert!(
        started.elapsed() <= config.timeout + Duration::from_millis(500),
        "the error took {:?}",
        started.elapsed()
    );
    bob.has_nothing_more();

    cluster.node2.restart_server().await;
    // Past the reconnect backoff, the next stanza opens a new stream.
    tokio::time::sleep(config.reconnect_backoff * 2).await;
    cluster
        .node1
        .router
        .route(chat(ALICE, BOB, "m3", "after"))
        .await;
    assert_eq!(body(&bob.receive().await), "after");
    alice.has_nothing_more();
}

#[tokio::test]
async fn a_bad_envelope_is_answered_invalid_and_the_stream_goes_on() {
    let cluster = Cluster::start(quick()).await;
    let mut bob = Persona::bind(&cluster.node2, BOB, 16).await;
    let good = |seq: u64, stanza: &'static [u8]| v1::Envelope {
        seq,
        from: ALICE.as_bytes().to_vec(),
        to: BOB.as_bytes().to_vec(),
        stanza: Bytes::from_static(stanza),
        session: bob.session.0,
        trace: HashMap::new(),
        session_jid: Vec::new(),
        registry_index: 0,
    };
    let envelopes = vec![
        v1::Envelope {
            to: vec![b'b', 0xff, b'@', b'x'],
            ..good(1, b"<message xmlns='jabber:client'/>")
        },
        good(2, b"<message xmlns='jabber:client'><body>unclosed"),
        good(3, b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"),
        v1::Envelope {
            session: 0,
            ..good(4, b"<message xmlns='jabber:client'/>")
        },
        v1::Envelope {
            session: 999,
            ..good(5, b"<message xmlns='jabber:client'/>")
        },
        good(
            6,
            b"<message xmlns='jabber:client' from='alice@example.org/phone' to='bob@example.org/laptop'><body>still here</body></message>",
        ),
    ];
    let (tx, rx) = mpsc::channel(8);
    for e in envelopes {
        tx.send(e).await.expect("queue");
    }
    let mut client = RouterClient::connect(format!("http://{}", cluster.node2.addr))
        .await
        .expect("connect");
    let mut reports = client
        .deliver(ReceiverStream::new(rx))
        .await
        .expect("deliver")
        .into_inner();
    let mut got = Vec::new();
    for _ in 0..6 {
        let r = timeout(WAIT, reports.message())
            .await
            .expect("report in time")
            .expect("stream ok")
            .expect("a report");
        got.push((r.seq, r.delivery().expect("known status")));
    }
    assert_eq!(
        got,
        [
            (1, Delivery::Invalid),
            (2, Delivery::Invalid),
            (3, Delivery::Invalid),
            (4, Delivery::Invalid),
            (5, Delivery::RecipientGone),
            (6, Delivery::Delivered),
        ]
    );
    assert_eq!(body(&bob.receive().await), "still here");
    bob.has_nothing_more();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_replaced_from_another_edge_is_closed_by_its_own_edge_with_conflict() {
    let cluster = Cluster::start(ForwardConfig::default()).await;
    let mut old = Persona::bind(&cluster.node1, ALICE, 8).await;
    // The new session for the same full JID is on edge 2: edge 2 cannot close edge 1's session;
    // edge 1 does when its replica reports the replacement (here: called directly).
    let new = Persona::bind(&cluster.node2, ALICE, 8).await;
    assert!(
        old.inbox.try_recv().is_err(),
        "edge 2 closed a session it does not hold"
    );
    let other: FullJid = "alice@example.org/other".parse().expect("jid");
    assert!(
        !cluster.node1.router.close_replaced(&other, old.session),
        "a session bound to another JID is left alone (only the session holding the JID is closed)"
    );
    assert!(old.inbox.try_recv().is_err());
    assert!(cluster.node1.router.close_replaced(&old.jid, old.session));
    match old.inbox.try_recv() {
        Ok(Outbound::Close(e)) => {
            assert_eq!(e.condition, corvid_stanza::StreamCondition::Conflict)
        }
        other => panic!("expected a conflict close, got {other:?}"),
    }
    assert!(!cluster
        .node2
        .router
        .close_replaced(&new.jid, SessionId(999)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_route_reaches_the_named_session_on_either_node_only_while_it_holds_the_jid() {
    let cluster = Cluster::start(ForwardConfig::default()).await;
    let mut alice = Persona::bind(&cluster.node1, ALICE, 8).await;
    let mut bob = Persona::bind(&cluster.node2, BOB, 8).await;
    let sender = cluster.node1.router.services().sender.clone();
    let route = |node: u64, jid: &str, session: SessionId| Route {
        jid: jid.parse().expect("jid"),
        node: NodeId(node),
        session,
        priority: 0,
        available: true,
    };
    let st = |to: &str| chat(BOB, to, "r1", "direct");
    // Alice's session id on node 2 is no session of hers: node 2 refuses it.
    assert!(
        !sender
            .to_route(&route(2, ALICE, alice.session), st(ALICE))
            .await
    );
    // The id alone is not enough, the JID must match.
    assert!(
        !sender
            .to_route(&route(1, BOB, alice.session), st(ALICE))
            .await
    );
    alice.has_nothing_more();
    assert!(
        sender
            .to_route(&route(1, ALICE, alice.session), st(ALICE))
            .await
    );
    assert_eq!(alice.receive().await.id(), Some("r1"));

    // A session on node 2, whatever the stanza's `to` (here the bare JID): delivered over gRPC.
    let bob_bare = "bob@example.org";
    assert!(
        sender
            .to_route(&route(2, BOB, bob.session), st(bob_bare))
            .await
    );
    assert_eq!(bob.receive().await.id(), Some("r1"));
    // Bob's session on node 2 holds another resource than the route says (the resource moved):
    // node 2 refuses it rather than deliver it to the wrong resource (RFC 6121 §8.5).
    let moved = route(2, "bob@example.org/elsewhere", bob.session);
    assert!(!sender.to_route(&moved, st(bob_bare)).await);
    bob.has_nothing_more();
}

#[tokio::test]
async fn a_message_for_a_session_on_a_stopped_node_goes_to_the_accounts_other_available_resource() {
    let mut cluster = Cluster::start(quick()).await;
    let mut alice = Persona::bind(&cluster.node1, ALICE, 16).await;
    let bob = Persona::bind(&cluster.node2, BOB, 16).await;
    let mut bob_phone = Persona::bind(&cluster.node1, "bob@example.org/phone", 16).await;
    for persona in [&bob, &bob_phone] {
        cluster
            .registry
            .set_presence(&persona.jid, persona.session, true, 0)
            .await;
    }

    // Node 2 dies while the table still lists Bob's laptop there.
    cluster.node2.stop_server().await;
    cluster
        .node1
        .router
        .route(chat(ALICE, BOB, "m1", "where are you?"))
        .await;
    // RFC 6121 §8.5.3.2.1: a chat message to a full JID that no session takes is handled as
    // sent to the bare JID, §8.5.2.1.1: the available resource with the highest priority.
    let got = bob_phone.receive().await;
    assert_eq!(body(&got), "where are you?");
    assert_eq!(got.id(), Some("m1"));
    alice.has_nothing_more();
}

/// One node's copy of the shared table, staged to lag behind: it stands at a position the
/// test moves, and the bindings in `pending` stay invisible to it until it reaches the
/// position each was made at (as a Raft replica that has not applied them yet).
struct LaggingCopy {
    table: Arc<LocalRegistry>,
    position: watch::Sender<u64>,
    pending: Vec<(FullJid, u64)>,
}

impl LaggingCopy {
    fn new(table: &Arc<LocalRegistry>, at: u64, pending: &[(&str, u64)]) -> Arc<Self> {
        Arc::new(Self {
            table: table.clone(),
            position: watch::channel(at).0,
            pending: pending
                .iter()
                .map(|(jid, at)| (jid.parse().expect("jid"), *at))
                .collect(),
        })
    }

    fn sees(&self, jid: &FullJid) -> bool {
        let at = *self.position.borrow();
        self.pending.iter().all(|(j, made)| j != jid || *made <= at)
    }
}

#[async_trait::async_trait]
impl SessionRegistry for LaggingCopy {
    async fn bind(
        &self,
        route: Route,
        max_resources: usize,
    ) -> Result<Option<Route>, corvid_core::BindError> {
        self.table.bind(route, max_resources).await
    }

    async fn unbind(&self, jid: &FullJid, session: SessionId) {
        self.table.unbind(jid, session).await;
    }

    async fn set_presence(&self, jid: &FullJid, session: SessionId, available: bool, priority: i8) {
        self.table
            .set_presence(jid, session, available, priority)
            .await;
    }

    fn lookup(&self, jid: &FullJid) -> Option<Route> {
        self.table.lookup(jid).filter(|r| self.sees(&r.jid))
    }

    fn resources(&self, bare: &corvid_jid::BareJid) -> Vec<Route> {
        let mut routes = self.table.resources(bare);
        routes.retain(|r| self.sees(&r.jid));
        routes
    }

    fn position(&self) -> u64 {
        *self.position.borrow()
    }

    async fn reach(&self, position: u64, limit: Duration) -> bool {
        let mut at = self.position.subscribe();
        timeout(limit, at.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn len(&self) -> usize {
        self.table.len()
    }
}

/// Answers a message whose body is "ping", delivered to a session, with "pong" from that
/// session's JID to the sender's: a server-made reply in the delivery's own task, as the roster
/// module's answer to a forwarded presence probe is.
struct Echo;

#[async_trait::async_trait]
impl corvid_core::Hook for Echo {
    async fn on_with(
        &self,
        services: &Services,
        event: &mut corvid_core::Event<'_>,
    ) -> corvid_core::Flow {
        if let corvid_core::Event::Deliver { jid, stanza, .. } = event {
            if body(stanza) == "ping" {
                if let Some(from) = stanza.from() {
                    let pong = chat(&jid.to_string(), &from.to_string(), "pong", "pong");
                    services.sender.send(pong).await;
                }
            }
        }
        corvid_core::Flow::Continue
    }
}

#[tokio::test]
async fn a_reply_to_a_resource_bound_a_moment_ago_on_another_node_waits_for_this_nodes_copy() {
    // Alice bound on node 1 at table position 10; node 2's copy stands at 3 and does not know
    // her resource yet. Bob's node answers her "ping" at once (as it answers a presence probe):
    // the answer, to her full JID, must reach her (RFC 6121 §8.5.3.1), not be handled as for
    // an unavailable resource (§8.5.3.2.1: no resource at all, so offline storage).
    let table = Arc::new(LocalRegistry::new());
    let node1 = LaggingCopy::new(&table, 10, &[]);
    let node2 = LaggingCopy::new(&table, 3, &[(ALICE, 10)]);
    let mut hooks = Registrar::new();
    hooks.hook("deliver", 0, Arc::new(Echo));
    let cluster = Cluster::start_with(quick(), table, [node1.clone(), node2.clone()], hooks).await;
    let mut alice = Persona::bind(&cluster.node1, ALICE, 16).await;
    let mut bob = Persona::bind(&cluster.node2, BOB, 16).await;
    assert!(node2.lookup(&alice.jid).is_none(), "staged: node 2 lags");

    let router = cluster.node1.router.clone();
    let routing = tokio::spawn(async move {
        router.route(chat(ALICE, BOB, "p1", "ping")).await;
    });
    // Node 2's delivery of the ping runs the hook, whose answer waits for node 2's copy.
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice.has_nothing_more();
    bob.has_nothing_more();
    node2.position.send_replace(10);
    let pong = alice.receive().await;
    assert_eq!(body(&pong), "pong", "{pong:?}");
    assert_eq!(pong.from().map(ToString::to_string).as_deref(), Some(BOB));
    let ping = bob.receive().await;
    assert_eq!(body(&ping), "ping", "{ping:?}");
    timeout(WAIT, routing).await.expect("routed").expect("task");

    // A copy that does not catch up in time: the answer is handled as for an unavailable
    // resource (late rather than held): here, with no offline storage, an error to bob.
    let tablet = "alice@example.org/tablet";
    node1.position.send_replace(50);
    let started = Instant::now();
    cluster
        .node1
        .router
        .route(chat(tablet, BOB, "p2", "ping"))
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let error = bob.receive().await;
    assert_eq!(error.type_attr(), Some("error"), "{error:?}");
    assert_eq!(body(&bob.receive().await), "ping");

    // A miss that follows from nothing newer than the copy has does not wait at all (nor, for
    // a while, one after a wait ran out).
    let started = Instant::now();
    cluster
        .node2
        .router
        .route(chat(BOB, "alice@example.org/gone", "g1", "to nobody"))
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "a miss with nothing to wait for waited {:?}",
        started.elapsed()
    );
    let error = bob.receive().await;
    assert_eq!(error.id(), Some("g1"), "{error:?}");
    alice.has_nothing_more();
}

#[tokio::test]
async fn a_client_reply_to_what_another_node_forwarded_waits_for_this_nodes_copy_too() {
    // As above, and bob's *client* answers alice's message: the answer follows from what node 1
    // forwarded (position 10), which bob's mailbox remembers, and the c2s driver routes it as
    // that position's consequence.
    let table = Arc::new(LocalRegistry::new());
    let node1 = LaggingCopy::new(&table, 10, &[]);
    let node2 = LaggingCopy::new(&table, 3, &[(ALICE, 10)]);
    let cluster = Cluster::start_with(
        quick(),
        table,
        [node1.clone(), node2.clone()],
        Registrar::new(),
    )
    .await;
    let mut alice = Persona::bind(&cluster.node1, ALICE, 16).await;
    let mut bob = Persona::bind(&cluster.node2, BOB, 16).await;
    assert_eq!(bob.inbox.position(), 0);

    cluster
        .node1
        .router
        .route(chat(ALICE, BOB, "m1", "hello"))
        .await;
    assert_eq!(body(&bob.receive().await), "hello");
    assert_eq!(
        bob.inbox.position(),
        10,
        "bob's mailbox notes node 1's position"
    );

    let router = cluster.node2.router.clone();
    let position = bob.inbox.position();
    let replying = tokio::spawn(corvid_core::caused_at(position, async move {
        router.route(chat(BOB, ALICE, "r1", "hello back")).await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice.has_nothing_more();
    bob.has_nothing_more();
    node2.position.send_replace(10);
    let reply = alice.receive().await;
    assert_eq!(body(&reply), "hello back", "{reply:?}");
    timeout(WAIT, replying)
        .await
        .expect("routed")
        .expect("task");
}
