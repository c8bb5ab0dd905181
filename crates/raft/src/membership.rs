//! Learners: edges joining and leaving the registry's Raft group.
//!
//! An edge is a Raft *learner*: it receives the log (or a snapshot) and applies it to its own
//! replica of the session table, but it never votes and never counts towards a quorum. It
//! joins by asking any registry member with the `JoinAsLearner` RPC; the members that are not
//! the leader answer `NotLeader` with the leader's address, which [`LearnerClient`] follows.
//!
//! The answering side ([`join_as_learner`], [`remove_learner`]) runs on the leader and changes
//! the membership with openraft; both are idempotent, so an edge that restarts under the same id
//! (Kubernetes StatefulSet ordinals) simply joins again, with its new address if it changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use corvid_proto::v1::raft_service_client::RaftServiceClient;
use corvid_proto::v1::{JoinAsLearnerRequest, RemoveLearnerRequest};
use corvid_proto::{ClusterError, Transport};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::Request;

use crate::Raft;

/// How long connecting to a registry member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one `JoinAsLearner` / `RemoveLearner` call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The first pause after a round of failed attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between rounds of attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the leader retries a membership change refused as "another one in progress".
const IN_PROGRESS_WAIT: Duration = Duration::from_secs(2);
/// The pause between those retries.
const IN_PROGRESS_PAUSE: Duration = Duration::from_millis(50);
/// How many `NotLeader` hints one attempt follows before it starts again from the seeds.
const MAX_HOPS: usize = 4;

/// The leader's side of `JoinAsLearner`: adds node `id` at `addr` as a learner, or updates its
/// address, once the membership entry is committed. Returns the index of the membership entry
/// that holds it.
pub(crate) async fn join_as_learner(raft: &Raft, id: u64, addr: &str) -> Result<u64, ClusterError> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Err(ClusterError::Invalid(format!(
            "node {id}: empty address; set cluster.advertise or cluster.listen"
        )));
    }
    let known = {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        if membership.voter_ids().any(|v| v == id) {
            return Err(ClusterError::Invalid(format!(
                "node id {id} is a registry voter; an edge needs an id of its own"
            )));
        }
        let is_leader = m.current_leader == Some(m.id);
        let current = membership.get_node(&id).map(|n| n.addr.clone());
        let index = m.membership_config.log_id().map_or(0, |l| l.index);
        (is_leader, current, index)
    };
    let changes = match known {
        // Already a learner with this address: nothing to change (asked again by a restarted
        // edge, or a retry after a lost answer).
        (true, Some(current), index) if current == addr => return Ok(index),
        (_, Some(_), _) => ChangeMembers::SetNodes(BTreeMap::from([(id, BasicNode::new(addr))])),
        (_, None, _) => ChangeMembers::AddNodes(BTreeMap::from([(id, BasicNode::new(addr))])),
    };
    let response = change_membership(raft, changes).await?;
    tracing::info!(what = "learner-joined", node = id, %addr, index = response.log_id.index);
    Ok(response.log_id.index)
}

/// The leader's side of `RemoveLearner`: removes learner `id` from the group. `false` if it was
/// not a member. Refused for a voter. Also what the leader calls to forget an edge that has
/// been down too long (`cluster.forget_down_edges_after_ms`).
pub async fn remove_learner(raft: &Raft, id: u64) -> Result<bool, ClusterError> {
    let (is_leader, member) = {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        if membership.voter_ids().any(|v| v == id) {
            return Err(ClusterError::Invalid(format!(
                "node id {id} is a registry voter; voters are changed with the admin service"
            )));
        }
        (
            m.current_leader == Some(m.id),
            membership.get_node(&id).is_some(),
        )
    };
    if is_leader && !member {
        return Ok(false);
    }
    change_membership(raft, ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await?;
    tracing::info!(what = "learner-removed", node = id);
    Ok(true)
}

/// Applies `changes` on the leader. A change proposed while the previous one is not yet
/// committed everywhere is refused by openraft as in progress: it is tried again for a short
/// while, since joins come one after the other (several edges starting at once).
async fn change_membership(
    raft: &Raft,
    changes: ChangeMembers<u64, BasicNode>,
) -> Result<openraft::raft::ClientWriteResponse<crate::TypeConfig>, ClusterError> {
    let until = tokio::time::Instant::now() + IN_PROGRESS_WAIT;
    loop {
        match raft.change_membership(changes.clone(), false).await {
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_),
            ))) if tokio::time::Instant::now() < until => {
                tokio::time::sleep(IN_PROGRESS_PAUSE).await;
            }
            result => return result.map_err(membership_error),
        }
    }
}

/// A membership change's failure, classified for the caller: `NotLeader` to follow, retryable
/// while another change is under way, the caller's fault otherwise.
fn membership_error(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ClusterError::NotLeader {
            leader: f.leader_node.map(|n| n.addr),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(e),
        )) => ClusterError::Unavailable(format!("another membership change is under way: {e}")),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ClusterError::Invalid(e.to_string())
        }
        RaftError::Fatal(e) => ClusterError::Unavailable(e.to_string()),
    }
}

/// The edge's side: asks the registry members to add or remove a learner, following
/// `NotLeader` hints to the leader.
pub struct LearnerClient {
    transport: Transport,
    /// The registry members to ask first (`cluster.members`).
    seeds: Vec<String>,
    /// One lazily connected client per address asked.
    clients: Mutex<HashMap<String, RaftServiceClient<Channel>>>,
}

impl LearnerClient {
    /// A client that asks the members at `seeds` (`host:port` each), over `transport`.
    pub fn new(transport: Transport, seeds: Vec<String>) -> Self {
        Self {
            transport,
            seeds,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Joins the group as learner `id` reachable at `addr`, trying every seed and following
    /// leader hints, again and again with a growing pause (up to 5 s) until a leader has
    /// committed the membership entry or `shutdown` turns true. Returns that entry's index, or
    /// `None` on shutdown. Refusals that cannot succeed later (the id is a voter's) are logged
    /// and retried too: the operator may fix the group meanwhile.
    pub async fn join_until(
        &self,
        id: u64,
        addr: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<u64> {
        let mut pause = FIRST_BACKOFF;
        loop {
            match self.join(id, addr).await {
                Ok(index) => return Some(index),
                Err(e) if e.is_retryable() || matches!(e, ClusterError::NotLeader { .. }) => {
                    tracing::info!(what = "learner-join-retry", node = id, error = %e, pause_ms = pause.as_millis());
                }
                Err(e) => {
                    tracing::error!(what = "learner-join-refused", node = id, error = %e, pause_ms = pause.as_millis());
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.wait_for(|stop| *stop) => return None,
            }
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    /// One round of [`Self::join_until`]: each seed in turn, following leader hints.
    pub async fn join(&self, id: u64, addr: &str) -> Result<u64, ClusterError> {
        let request = JoinAsLearnerRequest {
            node_id: id,
            addr: addr.to_owned(),
        };
        self.each_seed(|mut client| {
            let request = request.clone();
            async move {
                client
                    .join_as_learner(timed(request))
                    .await
                    .map(|r| r.into_inner().membership_index)
            }
        })
        .await
    }

    /// Removes learner `id` from the group (one round over the seeds, following leader hints),
    /// giving up after `deadline`. `false` if it was not a member.
    pub async fn leave(&self, id: u64, deadline: Duration) -> Result<bool, ClusterError> {
        let request = RemoveLearnerRequest { node_id: id };
        let call = self.each_seed(|mut client| async move {
            client
                .remove_learner(timed(request))
                .await
                .map(|r| r.into_inner().removed)
        });
        tokio::time::timeout(deadline, call)
            .await
            .unwrap_or(Err(ClusterError::Timeout))
    }

    /// Calls `call` on each seed until one answers, following `NotLeader` hints from each.
    /// Returns the first answer, the first error that retrying cannot fix, or the last error.
    async fn each_seed<T, F, Fut>(&self, call: F) -> Result<T, ClusterError>
    where
        F: Fn(RaftServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let mut last = ClusterError::Unavailable("no registry member configured".to_owned());
        for seed in &self.seeds {
            let mut target = seed.clone();
            for _ in 0..MAX_HOPS {
                let result = match self.client(&target) {
                    Ok(client) => call(client).await.map_err(ClusterError::from),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(answer) => return Ok(answer),
                    Err(ClusterError::NotLeader {
                        leader: Some(leader),
                    }) if leader != target => target = leader,
                    Err(e) if e.is_retryable() || matches!(e, ClusterError::NotLeader { .. }) => {
                        last = e;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(last)
    }

    fn client(&self, addr: &str) -> Result<RaftServiceClient<Channel>, ClusterError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(addr) {
            return Ok(client.clone());
        }
        let channel = self
            .transport
            .endpoint(addr)?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_lazy();
        let client = RaftServiceClient::new(channel);
        clients.insert(addr.to_owned(), client.clone());
        Ok(client)
    }
}

/// `message` as a request with the call deadline.
fn timed<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}
