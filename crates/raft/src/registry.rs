//! [`RaftRegistry`]: the session table of a clustered edge, over the registry's Raft group.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use corvid_core::{BindError, NodeId, Route, SessionId, SessionRegistry};
use corvid_jid::{BareJid, FullJid};
use corvid_proto::v1::raft_service_client::RaftServiceClient;
use corvid_proto::v1::RaftRequest;
use corvid_proto::{ClusterError, Transport};
use corvid_registry::{BindRefusal, Command, Outcome, RouteInfo};
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Request;

use crate::network::MAX_MESSAGE_BYTES;
use crate::node::{propose_on, Proposed};
use crate::{Raft, RegistryNode, Replica};

/// How long to wait before asking again when no leader is known (an election is under way).
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long connecting to the leader may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The [`SessionRegistry`] of an edge in a cluster. Reads (`lookup`, `resources`, `len`) come
/// from the local replica, so they see every committed entry this node has applied. Writes are
/// Raft proposals: made directly when this node leads, otherwise sent to the leader with the
/// `Propose` RPC, following `NotLeader` hints and waiting out elections, all within one
/// deadline. Past it a bind is refused with [`BindError::Unavailable`] (a node cut off from the
/// quorum takes no new sessions).
pub struct RaftRegistry {
    me: NodeId,
    raft: Raft,
    replica: Replica,
    deadline: Duration,
    /// How to reach the leader.
    transport: Transport,
    /// One lazily connected client per leader address seen.
    clients: Mutex<HashMap<String, RaftServiceClient<Channel>>>,
}

impl RaftRegistry {
    /// The table of edge `me` over `node`'s Raft member; each write gives up after `deadline`.
    pub fn new(me: NodeId, node: &RegistryNode, deadline: Duration) -> Arc<Self> {
        Arc::new(Self {
            me,
            raft: node.raft().clone(),
            replica: node.replica().clone(),
            deadline,
            transport: node.transport().clone(),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// Proposes `command` to the leader, wherever it is, and returns its outcome; gives up with
    /// [`ClusterError::Timeout`] after the deadline.
    pub async fn propose(&self, command: Command) -> Result<Outcome, ClusterError> {
        let until = Instant::now() + self.deadline;
        let proposed =
            match tokio::time::timeout_at(until, self.propose_until(command, until)).await {
                Ok(result) => result?,
                Err(_) => return Err(ClusterError::Timeout),
            };
        // Read-your-writes: the entry is committed, but this replica may not have applied it
        // yet; the caller reads the table next (e.g. routes to what it just bound).
        let left = until.saturating_duration_since(Instant::now());
        if let Err(e) = self
            .raft
            .wait(Some(left))
            .applied_index_at_least(Some(proposed.index), "proposal applied here")
            .await
        {
            tracing::warn!(what = "propose-not-applied-here", index = proposed.index, error = %e);
        }
        Ok(proposed.outcome)
    }

    async fn propose_until(
        &self,
        command: Command,
        until: Instant,
    ) -> Result<Proposed, ClusterError> {
        // `None`: ask the local Raft (it answers at once if it is not the leader).
        let mut target: Option<String> = None;
        loop {
            let result = match &target {
                None => propose_on(&self.raft, command.clone()).await,
                Some(addr) => self.propose_at(addr, &command, until).await,
            };
            match result {
                Err(ClusterError::NotLeader { leader: Some(addr) })
                    if target.as_ref() != Some(&addr) =>
                {
                    target = Some(addr);
                }
                Err(e) if e.is_retryable() || matches!(e, ClusterError::NotLeader { .. }) => {
                    tracing::debug!(what = "propose-retry", error = %e);
                    target = None;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                other => return other,
            }
        }
    }

    /// One `Propose` call to the node at `addr`.
    async fn propose_at(
        &self,
        addr: &str,
        command: &Command,
        until: Instant,
    ) -> Result<Proposed, ClusterError> {
        let mut client = self.client(addr)?;
        let data = serde_json::to_vec(command)
            .map_err(|e| ClusterError::Internal(format!("encode command: {e}")))?;
        let mut request = Request::new(RaftRequest { data });
        request.set_timeout(until.saturating_duration_since(Instant::now()));
        let reply = client.propose(request).await.map_err(ClusterError::from)?;
        serde_json::from_slice(&reply.into_inner().data)
            .map_err(|e| ClusterError::Invalid(format!("propose reply: {e}")))
    }

    fn client(&self, addr: &str) -> Result<RaftServiceClient<Channel>, ClusterError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(addr) {
            return Ok(client.clone());
        }
        let channel = self
            .transport
            .endpoint(addr)
            .map_err(|e| ClusterError::Invalid(format!("leader address `{addr}`: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_lazy();
        let client = RaftServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        clients.insert(addr.to_owned(), client.clone());
        Ok(client)
    }

    /// A write whose outcome the caller does not need: failures are logged.
    async fn propose_logged(&self, command: Command, what: &'static str) {
        match self.propose(command).await {
            Ok(Outcome::Rejected(e)) => tracing::warn!(what, error = %e, "registry rejected"),
            Ok(_) => {}
            Err(e) => tracing::warn!(what, error = %e, "registry write failed"),
        }
    }
}

#[async_trait]
impl SessionRegistry for RaftRegistry {
    async fn bind(&self, route: Route, max_resources: usize) -> Result<Option<Route>, BindError> {
        let route = RouteInfo::from(route);
        let max = u32::try_from(max_resources).unwrap_or(u32::MAX);
        match self.propose(Command::bind(&route, max)).await {
            Ok(Outcome::Bound { replaced }) => Ok(replaced.map(Route::from)),
            Ok(Outcome::BindRefused(BindRefusal::TooManyResources)) => {
                Err(BindError::TooManyResources)
            }
            Ok(other) => Err(BindError::Unavailable(format!(
                "bind not applied: {other:?}"
            ))),
            Err(e) => {
                if matches!(e, ClusterError::Timeout) {
                    // The proposal may still commit once a quorum is back: take it back then, so
                    // no route points at a session that was refused. Unbind only removes the
                    // binding if it is still this session's.
                    let undo = Command::unbind(&route.jid, route.node, route.session);
                    let (raft, replica, clients) = (
                        self.raft.clone(),
                        self.replica.clone(),
                        Mutex::new(HashMap::new()),
                    );
                    let again = Self {
                        me: self.me,
                        raft,
                        replica,
                        deadline: self.deadline * 10,
                        transport: self.transport.clone(),
                        clients,
                    };
                    tokio::spawn(async move { again.propose_logged(undo, "undo-bind").await });
                }
                Err(BindError::Unavailable(e.to_string()))
            }
        }
    }

    async fn unbind(&self, jid: &FullJid, session: SessionId) {
        self.propose_logged(Command::unbind(jid, self.me, session), "unbind")
            .await;
    }

    async fn set_presence(&self, jid: &FullJid, session: SessionId, available: bool, priority: i8) {
        self.propose_logged(
            Command::set_presence(jid, self.me, session, available, priority),
            "set-presence",
        )
        .await;
    }

    fn lookup(&self, jid: &FullJid) -> Option<Route> {
        self.replica
            .read(|state| state.lookup(jid).cloned())
            .map(Route::from)
    }

    fn resources(&self, bare: &BareJid) -> Vec<Route> {
        self.replica
            .read(|state| state.resources(bare).cloned().map(Route::from).collect())
    }

    fn any_resource(&self, bare: &BareJid, pred: &mut dyn FnMut(&Route) -> bool) -> bool {
        self.replica
            .read(|state| state.resources(bare).any(|r| pred(&Route::from(r.clone()))))
    }

    fn position(&self) -> u64 {
        self.replica.last_applied().map_or(0, |id| id.index)
    }

    async fn reach(&self, position: u64, limit: Duration) -> bool {
        self.raft
            .wait(Some(limit))
            .applied_index_at_least(Some(position), "a stanza's registry position")
            .await
            .is_ok()
    }

    fn len(&self) -> usize {
        self.replica.read(|state| state.len())
    }
}
