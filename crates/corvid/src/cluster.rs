//! Running as a cluster node in one of the roles of `cluster.role`: `combined` (a voter of the
//! registry's Raft group and an edge), `registry` (a voter only) or `edge` (a Raft learner that
//! holds client sessions).
//!
//! [`Member::open`] opens the Raft member (not yet serving) and the [`RaftRegistry`] the router
//! is built on; an edge's Raft folder is wiped first, since a learner's log is always refilled
//! by the leader. [`Member::run`] then serves Raft and `Router.Deliver` on one gRPC listener,
//! bootstraps the group if this node is the voter to, has an edge join the group as a learner
//! (and leave it on a clean shutdown), keeps the router's remote delivery pointed at every node
//! of the Raft membership (voters and learners, as it changes), and starts the background
//! tasks: lease expiry (on the leader, so on a voter), and on edges lease renewal and acting on
//! the replica's outcomes (closing local sessions replaced elsewhere, sending `unavailable` for
//! sessions of a down node this node is the caretaker of). A registry-only node renews no lease,
//! so the table never counts it live and never picks it as a caretaker.
//!
//! An edge configured with `cluster.node_id = 0` picks a random id of its own at start
//! ([`pick_node_id`]); the leader removes from the group learners it has seen declared down
//! for `cluster.forget_down_edges_after_ms` ([`forget_down_edges`]), so edges that die without
//! leaving (crashed pods of a Deployment) do not stay members forever.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use corvid_cluster::{DeliverService, ForwardConfig, GrpcForwarder};
use corvid_core::NodeId;
use corvid_raft::{BasicNode, LearnerClient, RaftRegistry, RegistryNode, ReplicaEvent};
use corvid_registry::{Command, Outcome};
use corvid_router::Router;
use corvid_settings::{ClusterConfig, ClusterRole, Settings};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tonic::service::Routes;
use tracing::{debug, info, warn};

/// How long a registry write (bind, unbind, presence) may take before it fails: a node cut off
/// from the quorum refuses binds instead of hanging.
const WRITE_DEADLINE: Duration = Duration::from_secs(3);
/// How often the leader looks for expired leases.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// How long an edge shutting down waits for its sessions' unbinds before it leaves the group.
const LEAVE_AFTER_UNBINDS: Duration = Duration::from_secs(3);
/// How long an edge shutting down tries to leave the group.
const LEAVE_DEADLINE: Duration = Duration::from_secs(3);

/// The cluster side of a running node.
pub struct Member {
    me: NodeId,
    role: ClusterRole,
    /// This node's gRPC address as the others reach it (what an edge joins with).
    advertise: String,
    node: RegistryNode,
    registry: Arc<RaftRegistry>,
    members: BTreeMap<u64, String>,
    bootstrap: bool,
    lease_ttl_ms: u64,
    renew_every: Duration,
    /// How long a learner may stay declared down before the leader removes it; `None`: never.
    forget_down_edges_after: Option<Duration>,
}

/// Gives an edge configured with `cluster.node_id = 0` an id of its own: a random one from
/// [`ClusterConfig::EDGE_ID_FLOOR`] (2^32) up to 2^63 - 1, written into `settings` so that
/// everything started afterwards (telemetry, the Raft member) uses it. Registry ids are small
/// numbers an operator chose, so a picked id never collides with one, and two edges picking
/// the same id out of 2^63 - 2^32 is as good as impossible. Returns the id picked, if one was
/// (the caller logs it); other nodes keep their configured id.
pub fn pick_node_id(settings: &mut Settings) -> Option<u64> {
    use rand::Rng as _;
    if !settings.cluster.enabled || !settings.cluster.picks_own_id() {
        return None;
    }
    let id = rand::thread_rng().gen_range(ClusterConfig::EDGE_ID_FLOOR..=i64::MAX.unsigned_abs());
    settings.cluster.node_id = id;
    Some(id)
}

impl Member {
    /// Opens the Raft member on `cluster.listen` with its data in `cluster.data_dir` (default
    /// `<storage.path>/raft`). Peers cannot reach it until [`Member::run`].
    pub async fn open(settings: &Settings) -> anyhow::Result<Member> {
        let mut settings = settings.clone();
        if let Some(id) = pick_node_id(&mut settings) {
            info!(
                what = "node-id-picked",
                node = id,
                "cluster.node_id is 0: this edge picked its id"
            );
        }
        let c = &settings.cluster;
        let data_dir = if c.data_dir.trim().is_empty() {
            settings.storage.path.join("raft")
        } else {
            PathBuf::from(&c.data_dir)
        };
        if c.role() == ClusterRole::Edge {
            wipe_learner_state(&data_dir)?;
        }
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cluster.data_dir: cannot create {}", data_dir.display()))?;
        let listener = TcpListener::bind(&c.listen)
            .await
            .with_context(|| format!("cluster.listen: cannot listen on {}", c.listen))?;
        let node = RegistryNode::open_with(
            c.node_id,
            &data_dir,
            listener,
            RegistryNode::default_config(),
            transport(&c.tls)?,
        )
        .await
        .context("cannot start the registry's Raft member")?;
        let me = NodeId(c.node_id);
        let registry = RaftRegistry::new(me, &node, WRITE_DEADLINE);
        Ok(Member {
            me,
            role: c.role(),
            advertise: c.advertised().to_owned(),
            node,
            registry,
            members: c.member_addrs().into_iter().collect(),
            bootstrap: c.bootstrap,
            lease_ttl_ms: c.lease_ttl_ms,
            renew_every: Duration::from_millis(c.renew_every_ms),
            forget_down_edges_after: (c.forget_down_edges_after_ms > 0)
                .then(|| Duration::from_millis(c.forget_down_edges_after_ms)),
        })
    }

    /// The session table to build the router on.
    pub fn registry(&self) -> Arc<RaftRegistry> {
        self.registry.clone()
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.me
    }

    /// This node's role.
    pub fn role(&self) -> ClusterRole {
        self.role
    }

    /// Serves Raft and `Router.Deliver` for `router`, bootstraps the group if this node is the
    /// member with the lowest id and `bootstrap` is on, sends stanzas for other nodes' sessions
    /// over gRPC, and starts the background tasks in `tasks` (they end when `shutdown` turns
    /// true). Serves the admin API too, with `edge` the drain of this node's client side.
    /// Returns the Raft member, to shut down last.
    pub async fn run(
        mut self,
        router: Arc<Router>,
        edge: Option<Arc<crate::admin::EdgeDrain>>,
        shutdown: watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) -> anyhow::Result<RegistryNode> {
        let deliver = DeliverService::new(router.clone()).with_shutdown(shutdown.clone());
        let admin = crate::admin::AdminService::new(
            self.me.0,
            self.node.raft().clone(),
            self.node.replica().clone(),
            self.node.transport().clone(),
            edge.clone(),
        );
        self.node
            .serve(Routes::new(deliver.into_server()).add_service(admin.into_server()));
        if let Some(edge) = edge {
            tasks.spawn(edge.undrain_at_start(shutdown.clone()));
        }

        // Stanzas for other nodes go to the addresses of the Raft membership, kept current.
        let forwarder = GrpcForwarder::over(
            self.node.transport().clone(),
            HashMap::new(),
            ForwardConfig::default(),
        );
        forwarder.set_registry(router.registry().clone());
        router.set_remote(forwarder.clone());
        let depths = Arc::downgrade(&forwarder);
        corvid_telemetry::metrics().observe_router_queues(move || {
            depths.upgrade().map_or_else(Vec::new, |f| {
                f.in_flight()
                    .into_iter()
                    .map(|(node, depth)| (node.0, u64::try_from(depth).unwrap_or(u64::MAX)))
                    .collect()
            })
        });
        tasks.spawn(follow_membership(
            self.node.raft().clone(),
            forwarder,
            self.me,
            shutdown.clone(),
        ));

        if self.role.is_voter() {
            if self.bootstrap && self.members.keys().next() == Some(&self.me.0) {
                self.bootstrap_group().await?;
            }
            // Only a leader proposes expiry, and only voters lead.
            tasks.spawn(expire_leases(
                self.node.raft().clone(),
                self.registry.clone(),
                self.me,
                Duration::from_millis(self.lease_ttl_ms),
                shutdown.clone(),
            ));
            if let Some(after) = self.forget_down_edges_after {
                tasks.spawn(forget_down_edges(
                    self.node.raft().clone(),
                    self.node.replica().clone(),
                    self.me,
                    after,
                    shutdown.clone(),
                ));
            }
        }
        let mut rejoin = None;
        if self.role == ClusterRole::Edge {
            let learners = Arc::new(LearnerClient::new(
                self.node.transport().clone(),
                self.members.values().cloned().collect(),
            ));
            rejoin = Some(Rejoin {
                learners: learners.clone(),
                advertise: self.advertise.clone(),
            });
            tasks.spawn(join_and_leave(
                learners,
                self.node.replica().clone(),
                self.me,
                self.advertise.clone(),
                shutdown.clone(),
            ));
        }
        if self.role.is_edge() {
            tasks.spawn(renew_lease(
                self.registry.clone(),
                self.me,
                self.lease_ttl_ms,
                self.renew_every,
                rejoin,
                shutdown.clone(),
            ));
            tasks.spawn(act_on_outcomes(
                self.node.replica().subscribe(),
                router,
                self.me,
                shutdown,
            ));
        }
        Ok(self.node)
    }

    /// Initializes the group with every member as a voter, unless this node's log already
    /// belongs to a group (a restart, or the group was created before): idempotent.
    async fn bootstrap_group(&self) -> anyhow::Result<()> {
        let initialized = self
            .node
            .raft()
            .is_initialized()
            .await
            .map_err(|e| anyhow::anyhow!("raft: {e}"))?;
        if initialized {
            info!(
                what = "raft-bootstrap-skipped",
                reason = "already initialized"
            );
            return Ok(());
        }
        let voters: BTreeMap<u64, BasicNode> = self
            .members
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr.clone())))
            .collect();
        info!(what = "raft-bootstrap", voters = ?self.members);
        // Another start may have raced us to it (it is refused then, which is fine).
        if let Err(e) = self.node.initialize(voters).await {
            warn!(what = "raft-bootstrap-refused", error = %e);
        }
        Ok(())
    }
}

/// Removes an edge's learner log and replica (`log/` and `state/` in `data_dir`): a learner has
/// no durable state of its own, and the leader refills it from its log or a snapshot.
fn wipe_learner_state(data_dir: &std::path::Path) -> anyhow::Result<()> {
    for sub in ["log", "state"] {
        let dir = data_dir.join(sub);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => info!(what = "learner-state-wiped", dir = %dir.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cluster.data_dir: cannot wipe the learner's {}",
                        dir.display()
                    )
                })
            }
        }
    }
    Ok(())
}

/// Keeps `forwarder`'s peers equal to the Raft membership (voters and learners, each at the
/// address in its `BasicNode`), this node left out, until shutdown.
async fn follow_membership(
    raft: corvid_raft::Raft,
    forwarder: Arc<GrpcForwarder>,
    me: NodeId,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut metrics = raft.metrics();
    let mut last = None;
    loop {
        let peers: HashMap<NodeId, String> = metrics
            .borrow_and_update()
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| NodeId(**id) != me)
            .map(|(id, node)| (NodeId(*id), node.addr.clone()))
            .collect();
        if last.as_ref() != Some(&peers) {
            info!(what = "routing-peers", peers = ?peers);
            forwarder.set_peers(peers.clone());
            last = Some(peers);
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// An edge's membership: joins the group as a learner (retrying with backoff until a leader
/// took it), then on shutdown waits for its sessions' unbinds to reach its replica and leaves
/// the group. An edge killed without a shutdown stays a learner until it comes back under the
/// same id (it joins again, idempotently) or an operator removes it (`RemoveLearner`).
async fn join_and_leave(
    learners: Arc<LearnerClient>,
    replica: corvid_raft::Replica,
    me: NodeId,
    advertise: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(index) = learners.join_until(me.0, &advertise, &mut shutdown).await else {
        return;
    };
    info!(what = "joined-as-learner", node = me.0, addr = %advertise, membership_index = index);
    let _ = shutdown.wait_for(|stop| *stop).await;
    // Sessions are closing now; their unbinds are proposals this replica waits to apply, which
    // it could not once it left the group.
    let until = tokio::time::Instant::now() + LEAVE_AFTER_UNBINDS;
    while replica.read(|t| t.routes().any(|r| r.node == me)) && tokio::time::Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match learners.leave(me.0, LEAVE_DEADLINE).await {
        Ok(removed) => info!(what = "left-group", node = me.0, removed),
        Err(e) => {
            warn!(what = "leave-failed", node = me.0, error = %e, "remove it with RemoveLearner")
        }
    }
}

/// How this node talks to the others: mutual TLS when `[cluster.tls]` is set, otherwise plain
/// HTTP/2 with a warning. Also what `corvid cluster …` commands call a node with.
pub fn transport(
    tls: &corvid_settings::ClusterTlsConfig,
) -> anyhow::Result<corvid_proto::Transport> {
    if !tls.is_enabled() {
        warn!(
            what = "cluster-plaintext",
            "cluster.tls is not set: traffic between nodes is neither encrypted nor authenticated; run it only on a private network"
        );
        return Ok(corvid_proto::Transport::plaintext());
    }
    let transport = corvid_proto::Transport::mutual_tls(
        std::path::Path::new(&tls.ca_file),
        std::path::Path::new(&tls.cert_file),
        std::path::Path::new(&tls.key_file),
    )
    .context("cluster.tls")?;
    Ok(match tls.server_name() {
        Some(name) => {
            info!(
                what = "cluster-tls-server-name",
                name, "peers' certificates are checked against this name, not the host dialled"
            );
            transport.with_server_name(name)
        }
        None => transport,
    })
}

/// Closes the local sessions the cluster dropped while this node was declared down.
fn close_orphans(router: &Router) {
    let closed = router.close_orphans();
    if closed > 0 {
        warn!(
            what = "orphaned-sessions-closed",
            sessions = closed,
            "this node had been declared down; its clients were told to reconnect"
        );
    }
}

/// An interval for a periodic task; ticks missed while one round ran late are not made up.
fn ticker(every: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Waits for `tick`'s next tick: `false` once `shutdown` changes (the task should end).
async fn next_tick(tick: &mut tokio::time::Interval, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tick.tick() => true,
        _ = shutdown.changed() => false,
    }
}

/// Milliseconds since the Unix epoch by this node's clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What an edge needs to join the group again after it was declared down: the leader may have
/// removed it meanwhile (`cluster.forget_down_edges_after_ms`).
struct Rejoin {
    learners: Arc<LearnerClient>,
    advertise: String,
}

/// Renews this node's lease every `every` until shutdown. An attempt is given up after half the
/// lease (`ttl_ms / 2`): a proposal stuck on a leader that was just cut off must not hold back
/// the next attempt, which goes to the new leader, until the lease has run out. When a renewal
/// says the node had been declared down, an edge asks to join the group again (`rejoin`): the
/// leader may have forgotten it while it was cut off, and joining is idempotent otherwise.
async fn renew_lease(
    registry: Arc<RaftRegistry>,
    me: NodeId,
    ttl_ms: u64,
    every: Duration,
    rejoin: Option<Rejoin>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = ticker(every);
    while next_tick(&mut tick, &mut shutdown).await {
        let command = Command::RenewLease {
            node: me,
            now_ms: now_ms(),
            ttl_ms,
        };
        let attempt = Duration::from_millis(ttl_ms / 2);
        let Ok(outcome) = tokio::time::timeout(attempt, registry.propose(command)).await else {
            debug!(what = "lease-renew-timed-out", after_ms = ttl_ms / 2);
            continue;
        };
        match outcome {
            Ok(Outcome::LeaseRenewed { revived: true, .. }) => {
                warn!(
                    what = "lease-revived",
                    "this node had been declared down; its old sessions were dropped"
                );
                if let Some(rejoin) = &rejoin {
                    let (learners, addr) = (rejoin.learners.clone(), rejoin.advertise.clone());
                    let mut stop = shutdown.clone();
                    tokio::spawn(async move {
                        if let Some(index) = learners.join_until(me.0, &addr, &mut stop).await {
                            info!(
                                what = "rejoined-as-learner",
                                node = me.0,
                                membership_index = index
                            );
                        }
                    });
                }
            }
            Ok(_) => {}
            Err(e) => debug!(what = "lease-renew-failed", error = %e),
        }
    }
}

/// On the leader, declares down every node whose lease ran out, once a second; but not in the
/// first `grace` (one lease) of its leadership. While there was no leader no renewal could
/// commit, so after an election every lease may look expired; the grace gives every live node
/// a full lease to renew through the new leader before anyone is declared down (found by the
/// partition test: without it, the leader elected after its predecessor was cut off declared
/// the whole majority down, and nobody was left to be a caretaker).
async fn expire_leases(
    raft: corvid_raft::Raft,
    registry: Arc<RaftRegistry>,
    me: NodeId,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut leading_since: Option<tokio::time::Instant> = None;
    let mut tick = ticker(EXPIRE_EVERY);
    while next_tick(&mut tick, &mut shutdown).await {
        if raft.metrics().borrow().current_leader != Some(me.0) {
            leading_since = None;
            continue;
        }
        let since = *leading_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() < grace {
            continue;
        }
        match registry
            .propose(Command::ExpireLeases { now_ms: now_ms() })
            .await
        {
            Ok(Outcome::NodesDown { nodes, dropped }) if !nodes.is_empty() => {
                warn!(what = "nodes-down", ?nodes, sessions = dropped.len());
            }
            Ok(_) => {}
            Err(e) => debug!(what = "expire-leases-failed", error = %e),
        }
    }
}

/// On the leader, removes from the group every learner it has seen declared down (in its
/// replica of the table) for `after` without interruption, checking once a second. The time is
/// this leader's own observation: a new leader starts counting afresh, so a down edge is
/// forgotten between `after` and `after` plus the time to the last election. Voters are never
/// touched (their membership is the operator's), nor edges that are down but not learners of
/// the group (already removed). An edge that comes back later joins again as a new learner.
async fn forget_down_edges(
    raft: corvid_raft::Raft,
    replica: corvid_raft::Replica,
    me: NodeId,
    after: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut down_since: HashMap<u64, tokio::time::Instant> = HashMap::new();
    let mut tick = ticker(EXPIRE_EVERY);
    while next_tick(&mut tick, &mut shutdown).await {
        let learners: Vec<u64> = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            if m.current_leader != Some(me.0) {
                down_since.clear();
                continue;
            }
            m.membership_config.membership().learner_ids().collect()
        };
        let down: Vec<u64> = replica.read(|t| {
            learners
                .iter()
                .copied()
                .filter(|id| t.node(NodeId(*id)).is_some_and(|n| n.down.is_some()))
                .collect()
        });
        let now = tokio::time::Instant::now();
        down_since.retain(|id, _| down.contains(id));
        for id in down {
            let since = *down_since.entry(id).or_insert(now);
            if now.duration_since(since) < after {
                continue;
            }
            match corvid_raft::remove_learner(&raft, id).await {
                Ok(removed) => {
                    warn!(
                        what = "down-edge-forgotten",
                        node = id,
                        removed,
                        down_for_ms = u64::try_from(now.duration_since(since).as_millis())
                            .unwrap_or(u64::MAX),
                        "removed from the group after cluster.forget_down_edges_after_ms"
                    );
                    down_since.remove(&id);
                }
                Err(e) => debug!(what = "forget-down-edge-failed", node = id, error = %e),
            }
        }
    }
}

/// Acts on what each applied entry did: a session of this node replaced by a bind anywhere is
/// closed with `conflict` (RFC 6120 §7.7.2.2); for each available session dropped with a down
/// node whose caretaker is this node, its contacts are told it went `unavailable`.
async fn act_on_outcomes(
    mut events: broadcast::Receiver<ReplicaEvent>,
    router: Arc<Router>,
    me: NodeId,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = shutdown.changed() => return,
        };
        match event {
            Ok(ReplicaEvent::Applied {
                outcome: Outcome::Bound {
                    replaced: Some(old),
                },
                ..
            }) if old.node == me => {
                if router.close_replaced(&old.jid, old.session) {
                    debug!(what = "session-replaced-elsewhere", jid = %old.jid, session = %old.session);
                }
            }
            Ok(ReplicaEvent::Applied {
                outcome:
                    Outcome::LeaseRenewed {
                        lease,
                        revived: true,
                    },
                ..
            }) if lease.node == me => close_orphans(&router),
            Ok(ReplicaEvent::Applied {
                outcome: Outcome::NodesDown { dropped, nodes },
                ..
            }) => {
                if nodes.contains(&me) {
                    // Learned late (this node was cut off when it was declared down): its
                    // sessions are gone from the table and their contacts told.
                    close_orphans(&router);
                }
                for d in dropped {
                    if d.caretaker == Some(me) && d.route.available {
                        info!(what = "caretaker-unavailable", jid = %d.route.jid, node = d.route.node.0);
                        corvid_modules::roster::announce_unavailable(
                            router.services(),
                            &d.route.jid,
                        )
                        .await;
                    }
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(what = "replica-events-lagged", missed = n);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cluster(role: &str, node_id: u64) -> Settings {
        let mut s = Settings::default();
        s.cluster.enabled = true;
        s.cluster.role = role.to_owned();
        s.cluster.node_id = node_id;
        s
    }

    #[test]
    fn only_an_edge_with_id_zero_picks_an_id_above_every_voter_id() {
        let mut picked = std::collections::HashSet::new();
        for _ in 0..100 {
            let mut s = cluster("edge", 0);
            let id = pick_node_id(&mut s).unwrap();
            assert_eq!(s.cluster.node_id, id, "the settings carry the picked id");
            assert!(id >= ClusterConfig::EDGE_ID_FLOOR, "{id} is below 2^32");
            assert!(id <= i64::MAX.unsigned_abs(), "{id} is not a 63-bit number");
            picked.insert(id);
        }
        assert!(
            picked.len() > 95,
            "ids are random: {} distinct",
            picked.len()
        );
        // A configured id is kept; other roles and a single node never pick.
        for (role, id) in [("edge", 12), ("registry", 1), ("combined", 1)] {
            let mut s = cluster(role, id);
            assert_eq!(pick_node_id(&mut s), None);
            assert_eq!(s.cluster.node_id, id);
        }
        let mut single = cluster("edge", 0);
        single.cluster.enabled = false;
        assert_eq!(pick_node_id(&mut single), None);
    }
}
