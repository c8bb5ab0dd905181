//! The cluster admin API (`corvid.v1.Admin`, `proto/corvid/v1/admin.proto`) that every cluster
//! node serves beside Raft and the router, and the drain of an edge.
//!
//! - [`AdminService`] answers `ClusterStatus` from the node's own Raft metrics and replica, and
//!   changes the registry's voters on the leader: `AddRegistry` adds a learner, waits until it
//!   has caught up, then makes it a voter; `RemoveRegistry` refuses to remove the last voter or
//!   to leave fewer than a majority of the current voters reachable, then changes the voters
//!   without the node (which also removes it from the group). A follower answers membership
//!   calls with [`ClusterError::NotLeader`] and the leader's address; the CLI follows it.
//! - `Drain` is carried out by the edge itself: a node asked to drain another forwards the call
//!   to that edge's address in the Raft membership. The edge ([`EdgeDrain`]) records
//!   `Command::Drain` in the registry (replicated: every node's status shows it, and the
//!   registry refuses new binds on it), closes its client listeners, and after the grace period
//!   closes every remaining session with `see-other-host` naming `c2s.see_other_host`, or
//!   `system-shutdown` when none is configured (RFC 6120 §4.9.3.19, §4.9.3.20).
//! - [`connect`] is the one place an admin client channel is made (the CLI and forwarding).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corvid_core::NodeId;
use corvid_proto::v1::admin_client::AdminClient;
use corvid_proto::v1::admin_server::{Admin, AdminServer};
use corvid_proto::v1::{
    AddRegistryRequest, ClusterStatusReply, DrainRequest, EdgeStatus, Empty, RegistryMember,
    RemoveRegistryRequest,
};
use corvid_proto::{ClusterError, Transport};
use corvid_raft::{BasicNode, Raft, RaftRegistry, Replica};
use corvid_registry::{Command, Outcome};
use corvid_router::Router;
use corvid_stanza::{StreamCondition, StreamError};
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

/// How long a new registry node may take to catch up with the log before `AddRegistry` gives
/// up (it stays a learner then; adding it again resumes).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one call to another node (a reachability probe, a forwarded drain) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a reachability probe of a voter may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long connecting to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// An admin client for the node at `addr` (`host:port`), connecting lazily. The one place
/// admin channels are made: `transport` decides plain HTTP/2 or mutual TLS.
pub fn connect(transport: &Transport, addr: &str) -> Result<AdminClient<Channel>, ClusterError> {
    let channel = transport
        .endpoint(addr)?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect_lazy();
    Ok(AdminClient::new(channel))
}

/// Smallest number of voters that is a majority of `voters`.
fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// Why removing `node` from `voters` is refused, if it is (`reachable`: the voters that
/// answered a probe just now). Pure, so the rule is tested on its own. Refused:
/// - the last voter: the registry would have none;
/// - fewer than a majority of the current voters reachable: the change itself could not commit;
/// - fewer than a majority of the remaining voters reachable: the change would commit, and
///   leave a group without a quorum (no binds, no further changes).
pub fn removal_refused(
    node: u64,
    voters: &BTreeSet<u64>,
    reachable: &BTreeSet<u64>,
) -> Option<String> {
    if !voters.contains(&node) {
        return None;
    }
    if voters.len() == 1 {
        return Some(format!(
            "node {node} is the last voter: the registry would have no voters left"
        ));
    }
    let up: BTreeSet<u64> = voters.intersection(reachable).copied().collect();
    if up.len() < majority(voters.len()) {
        return Some(format!(
            "only {} of the {} current voters are reachable ({}); a majority ({}) is needed to \
             change the membership",
            up.len(),
            voters.len(),
            list(&up),
            majority(voters.len()),
        ));
    }
    let remaining = voters.len() - 1;
    let left: BTreeSet<u64> = up.into_iter().filter(|v| *v != node).collect();
    if left.len() < majority(remaining) {
        return Some(format!(
            "removing node {node} would leave {} reachable voter(s) ({}) of the {remaining} \
             remaining; the group needs {} to keep a quorum",
            left.len(),
            list(&left),
            majority(remaining),
        ));
    }
    None
}

fn list(ids: &BTreeSet<u64>) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The edge side of a drain: record it in the registry, stop accepting, close sessions after
/// the grace period.
pub struct EdgeDrain {
    me: NodeId,
    router: Arc<Router>,
    registry: Arc<RaftRegistry>,
    stop_accepting: watch::Sender<bool>,
    see_other_host: Option<String>,
    default_grace: Duration,
    closing: AtomicBool,
}

impl EdgeDrain {
    /// The drain of edge `me`. `stop_accepting` is what its client listeners watch
    /// ([`corvid_c2s::accept_until`]); `see_other_host` is `c2s.see_other_host` (empty: none),
    /// `default_grace` the grace period when a request gives none.
    pub fn new(
        me: NodeId,
        router: Arc<Router>,
        registry: Arc<RaftRegistry>,
        stop_accepting: watch::Sender<bool>,
        see_other_host: &str,
        default_grace: Duration,
    ) -> Arc<Self> {
        let host = see_other_host.trim();
        Arc::new(Self {
            me,
            router,
            registry,
            stop_accepting,
            see_other_host: (!host.is_empty()).then(|| host.to_owned()),
            default_grace,
            closing: AtomicBool::new(false),
        })
    }

    /// The stream error sessions are closed with: `see-other-host` naming the configured
    /// alternative (RFC 6120 §4.9.3.19), else `system-shutdown` (§4.9.3.20).
    pub fn close_error(&self) -> StreamError {
        match &self.see_other_host {
            Some(host) => StreamError::see_other_host(host.clone()),
            None => StreamError::new(StreamCondition::SystemShutdown)
                .with_text("this server is draining for maintenance; reconnect"),
        }
    }

    /// Drains this edge: records it in the registry (from then on it binds no new sessions),
    /// closes the client listeners, and closes every session after `grace` (`None`: the
    /// configured default). Asking again changes nothing but is not an error.
    pub async fn start(self: &Arc<Self>, grace: Option<Duration>) -> Result<(), ClusterError> {
        match self
            .registry
            .propose(Command::Drain { node: self.me })
            .await?
        {
            Outcome::DrainSet { .. } => {}
            other => {
                return Err(ClusterError::Internal(format!(
                    "the registry did not record the drain: {other:?}"
                )))
            }
        }
        self.stop_accepting.send_replace(true);
        if self.closing.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let grace = grace.unwrap_or(self.default_grace);
        info!(what = "drain-started", grace_secs = grace.as_secs(), see_other_host = ?self.see_other_host);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let closed = this.router.close_all(&this.close_error());
            info!(what = "drain-sessions-closed", sessions = closed);
        });
        Ok(())
    }

    /// Whether this edge has been asked to drain since it started.
    pub fn is_draining(&self) -> bool {
        *self.stop_accepting.borrow()
    }

    /// Takes this edge out of a drain recorded before it (re)started: a drained edge that is
    /// upgraded and started again takes sessions again. Retries until the registry accepts it
    /// or `shutdown` turns true; a drain asked for since this start is left alone.
    pub async fn undrain_at_start(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if self.is_draining() {
                return;
            }
            match self
                .registry
                .propose(Command::Undrain { node: self.me })
                .await
            {
                Ok(Outcome::DrainSet { changed, .. }) => {
                    if changed {
                        info!(what = "undrained-at-start");
                    }
                    return;
                }
                Ok(other) => {
                    warn!(what = "undrain-not-applied", outcome = ?other);
                    return;
                }
                Err(e) => tracing::debug!(what = "undrain-retry", error = %e),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The `corvid.v1.Admin` service of one node.
#[derive(Clone)]
pub struct AdminService {
    me: u64,
    raft: Raft,
    replica: Replica,
    transport: Transport,
    /// This node's edge, if it holds client connections.
    edge: Option<Arc<EdgeDrain>>,
}

impl AdminService {
    /// The service of node `me` over its Raft member; `edge` when the node is an edge.
    pub fn new(
        me: u64,
        raft: Raft,
        replica: Replica,
        transport: Transport,
        edge: Option<Arc<EdgeDrain>>,
    ) -> Self {
        Self {
            me,
            raft,
            replica,
            transport,
            edge,
        }
    }

    /// The tonic service to add to the node's gRPC server.
    pub fn into_server(self) -> AdminServer<Self> {
        AdminServer::new(self)
    }

    /// The current membership: every node with its address, and the voters.
    fn membership(&self) -> (BTreeMap<u64, BasicNode>, BTreeSet<u64>) {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let nodes = membership
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .collect();
        (nodes, membership.voter_ids().collect())
    }

    /// `Ok` on the leader; elsewhere [`ClusterError::NotLeader`] with the leader's address.
    fn require_leader(&self) -> Result<(), ClusterError> {
        let leader = self.raft.metrics().borrow().current_leader;
        if leader == Some(self.me) {
            return Ok(());
        }
        let (nodes, _) = self.membership();
        Err(ClusterError::NotLeader {
            leader: leader.and_then(|l| nodes.get(&l).map(|n| n.addr.clone())),
        })
    }

    async fn status(&self) -> Result<ClusterStatusReply, ClusterError> {
        let metrics = self.raft.metrics().borrow().clone();
        let committed = self
            .raft
            .with_raft_state(|st| st.committed.map(|l| l.index))
            .await
            .map_err(|e| ClusterError::Unavailable(format!("raft: {e}")))?;
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let nodes: BTreeMap<u64, String> = membership
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        let members = nodes
            .iter()
            .map(|(id, addr)| RegistryMember {
                node_id: *id,
                address: addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let edges = self.replica.read(|state| {
            state
                .nodes()
                .filter(|(_, n)| n.down.is_none())
                .map(|(id, n)| EdgeStatus {
                    node_id: id.0,
                    address: nodes.get(&id.0).cloned().unwrap_or_default(),
                    sessions: state.sessions_of(id).count() as u64,
                    draining: n.draining,
                })
                .collect()
        });
        Ok(ClusterStatusReply {
            node_id: self.me,
            members,
            leader: metrics.current_leader.unwrap_or(0),
            term: metrics.current_term,
            commit_index: committed.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            edges,
        })
    }

    async fn add_registry(&self, id: u64, addr: &str) -> Result<(), ClusterError> {
        if id == 0 {
            return Err(ClusterError::Invalid("node id 0 is not a valid id".into()));
        }
        let addr = addr.trim();
        if addr.is_empty() || !addr.contains(':') {
            return Err(ClusterError::Invalid(format!(
                "address `{addr}` of node {id} is not host:port"
            )));
        }
        self.require_leader()?;
        let (nodes, voters) = self.membership();
        if voters.contains(&id) {
            return Err(ClusterError::AlreadyExists(format!(
                "node {id} is already a voter"
            )));
        }
        if let Some(node) = nodes.get(&id) {
            if node.addr != addr {
                return Err(ClusterError::AlreadyExists(format!(
                    "node id {id} is in use by {} (a learner)",
                    node.addr
                )));
            }
        }
        info!(what = "add-registry", node = id, %addr);
        let added = tokio::time::timeout(
            CATCH_UP_TIMEOUT,
            self.raft.add_learner(id, BasicNode::new(addr), true),
        )
        .await;
        match added {
            Err(_) => {
                return Err(ClusterError::Timeout);
            }
            Ok(Err(e)) => return Err(raft_refused("add the learner", &e)),
            Ok(Ok(_)) => {}
        }
        let mut new_voters = voters;
        new_voters.insert(id);
        self.raft
            .change_membership(new_voters, false)
            .await
            .map_err(|e| raft_refused("make it a voter", &e))?;
        info!(what = "registry-added", node = id);
        Ok(())
    }

    async fn remove_registry(&self, id: u64) -> Result<(), ClusterError> {
        self.require_leader()?;
        let (nodes, voters) = self.membership();
        if !nodes.contains_key(&id) {
            return Err(ClusterError::NotFound(format!(
                "node {id} is not a member of the registry"
            )));
        }
        if !voters.contains(&id) {
            return Err(ClusterError::Invalid(format!(
                "node {id} is a learner, not a registry voter"
            )));
        }
        let reachable = self.reachable_voters(&nodes, &voters).await;
        if let Some(why) = removal_refused(id, &voters, &reachable) {
            return Err(ClusterError::Invalid(format!("refused: {why}")));
        }
        info!(what = "remove-registry", node = id);
        let new_voters: BTreeSet<u64> = voters.into_iter().filter(|v| *v != id).collect();
        // `retain: false`: the removed voter does not stay on as a learner; it leaves the group.
        self.raft
            .change_membership(new_voters, false)
            .await
            .map_err(|e| raft_refused("change the voters", &e))?;
        info!(what = "registry-removed", node = id);
        Ok(())
    }

    /// The voters that answer a status call now (this node always counts).
    async fn reachable_voters(
        &self,
        nodes: &BTreeMap<u64, BasicNode>,
        voters: &BTreeSet<u64>,
    ) -> BTreeSet<u64> {
        let mut reachable = BTreeSet::from([self.me]);
        let probes = voters.iter().filter(|v| **v != self.me).map(|v| {
            let v = *v;
            let addr = nodes.get(&v).map(|n| n.addr.clone()).unwrap_or_default();
            let transport = self.transport.clone();
            async move {
                let Ok(mut client) = connect(&transport, &addr) else {
                    return None;
                };
                let mut request = Request::new(Empty {});
                request.set_timeout(PROBE_TIMEOUT);
                let answered =
                    tokio::time::timeout(PROBE_TIMEOUT, client.cluster_status(request)).await;
                matches!(answered, Ok(Ok(_))).then_some(v)
            }
        });
        for id in join_all(probes).await.into_iter().flatten() {
            reachable.insert(id);
        }
        reachable
    }

    async fn drain(&self, request: DrainRequest) -> Result<(), ClusterError> {
        let grace = (request.grace_seconds > 0)
            .then(|| Duration::from_secs(u64::from(request.grace_seconds)));
        // 0: the node asked (an edge that picked its own id drains itself without knowing it).
        if request.node_id == self.me || request.node_id == 0 {
            let Some(edge) = &self.edge else {
                return Err(ClusterError::Invalid(format!(
                    "node {} holds no client connections: only edges drain",
                    self.me
                )));
            };
            return edge.start(grace).await;
        }
        let (nodes, _) = self.membership();
        let Some(node) = nodes.get(&request.node_id) else {
            return Err(ClusterError::NotFound(format!(
                "node {} is not a member of the cluster",
                request.node_id
            )));
        };
        let mut client = connect(&self.transport, &node.addr)?;
        let mut forwarded = Request::new(request);
        forwarded.set_timeout(CALL_TIMEOUT);
        client
            .drain(forwarded)
            .await
            .map_err(|status| match ClusterError::from(status) {
                ClusterError::Unavailable(e) => {
                    ClusterError::Unavailable(format!("edge at {} unreachable: {e}", node.addr))
                }
                other => other,
            })?;
        Ok(())
    }
}

/// Runs every future at once and collects their results in order.
async fn join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// A membership change Raft refused, as an error naming the step.
fn raft_refused(step: &str, e: &dyn std::fmt::Display) -> ClusterError {
    ClusterError::Internal(format!("raft refused to {step}: {e}"))
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn cluster_status(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<ClusterStatusReply>, Status> {
        Ok(Response::new(self.status().await?))
    }

    async fn add_registry(
        &self,
        request: Request<AddRegistryRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        self.add_registry(r.node_id, &r.address).await?;
        Ok(Response::new(Empty {}))
    }

    async fn remove_registry(
        &self,
        request: Request<RemoveRegistryRequest>,
    ) -> Result<Response<Empty>, Status> {
        self.remove_registry(request.into_inner().node_id).await?;
        Ok(Response::new(Empty {}))
    }

    async fn drain(&self, request: Request<DrainRequest>) -> Result<Response<Empty>, Status> {
        self.drain(request.into_inner()).await?;
        Ok(Response::new(Empty {}))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn the_last_voter_is_never_removed() {
        let why = removal_refused(1, &set(&[1]), &set(&[1])).unwrap();
        assert!(why.contains("last voter"), "{why}");
    }

    #[test]
    fn removal_keeps_a_reachable_majority_before_and_after() {
        // Three voters, all up: removing one leaves two of two.
        assert_eq!(removal_refused(3, &set(&[1, 2, 3]), &set(&[1, 2, 3])), None);
        // Three voters, one down: removing a live one leaves one reachable of two remaining.
        let why = removal_refused(2, &set(&[1, 2, 3]), &set(&[1, 2])).unwrap();
        assert!(
            why.contains("1 reachable voter(s) (1) of the 2 remaining"),
            "{why}"
        );
        // ... but removing the one that is down is fine: both remaining are up.
        assert_eq!(removal_refused(3, &set(&[1, 2, 3]), &set(&[1, 2])), None);
        // Three voters, two down: no change can commit.
        let why = removal_refused(3, &set(&[1, 2, 3]), &set(&[1])).unwrap();
        assert!(why.contains("only 1 of the 3 current voters"), "{why}");
        // Two voters, both up: down to one is safe.
        assert_eq!(removal_refused(2, &set(&[1, 2]), &set(&[1, 2])), None);
        // Four voters with one down: removing the down one leaves three up of three.
        assert_eq!(
            removal_refused(4, &set(&[1, 2, 3, 4]), &set(&[1, 2, 3])),
            None
        );
        // Removing a live one leaves two up of three remaining: still a quorum.
        assert_eq!(
            removal_refused(3, &set(&[1, 2, 3, 4]), &set(&[1, 2, 3])),
            None
        );
        // A node that is not a voter is not this rule's business.
        assert_eq!(removal_refused(9, &set(&[1, 2, 3]), &set(&[1])), None);
    }

    #[test]
    fn majorities() {
        assert_eq!(majority(1), 1);
        assert_eq!(majority(2), 2);
        assert_eq!(majority(3), 2);
        assert_eq!(majority(4), 3);
        assert_eq!(majority(5), 3);
    }
}
