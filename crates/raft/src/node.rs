//! [`RegistryNode`]: one running member of the registry's Raft group (stores, Raft, gRPC server).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use corvid_proto::{ClusterError, Transport};
use corvid_registry::{Command, Outcome};
use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;

use crate::network::MAX_MESSAGE_BYTES;
use crate::{
    LogStore, LogStoreError, Network, Raft, RaftGrpc, Replica, StateMachineError, StateMachineStore,
};

/// Why a node could not start or be initialized.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The Raft config is invalid (e.g. election timeout below the heartbeat).
    #[error("raft config: {0}")]
    Config(#[from] openraft::ConfigError),
    /// The log store could not be opened.
    #[error(transparent)]
    LogStore(#[from] LogStoreError),
    /// The state machine (its snapshot) could not be opened.
    #[error("state machine: {0}")]
    StateMachine(#[from] StateMachineError),
    /// The listener's address could not be read.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// Raft stopped (a storage failure, or shut down) or refused to start.
    #[error("raft: {0}")]
    Raft(String),
}

/// One registry node: its durable log (`<data_dir>/log`), its state machine and snapshot
/// (`<data_dir>/state`), the openraft task, and the gRPC server answering its peers.
pub struct RegistryNode {
    id: u64,
    addr: SocketAddr,
    raft: Raft,
    replica: Replica,
    /// The listener until [`RegistryNode::serve`] takes it.
    listener: Option<TcpListener>,
    server: Option<JoinHandle<()>>,
    /// How this node talks to the others, as client and as server.
    transport: Transport,
}

impl RegistryNode {
    /// The Raft timing and snapshot settings the registry uses unless told otherwise: heartbeats
    /// every 100 ms, elections after 300–600 ms of silence, a snapshot every 5 000 entries,
    /// snapshot chunks of 1 MiB (their JSON form stays under the gRPC message limit).
    pub fn default_config() -> openraft::Config {
        openraft::Config {
            cluster_name: "corvid-registry".to_owned(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(5_000),
            snapshot_max_chunk_size: (MAX_MESSAGE_BYTES / 16) as u64,
            ..Default::default()
        }
    }

    /// Opens the stores in `data_dir`, starts Raft as node `id`, and serves its peers on
    /// `listener` (whose address is this node's [`BasicNode::addr`]). A node that was part of a
    /// group before rejoins it from its log; a new one waits for [`Self::initialize`] (on one
    /// node) or to be added by the leader.
    pub async fn start(
        id: u64,
        data_dir: &Path,
        listener: TcpListener,
        config: openraft::Config,
    ) -> Result<Self, NodeError> {
        let mut node = Self::open(id, data_dir, listener, config).await?;
        node.serve(Routes::default());
        Ok(node)
    }

    /// Like [`Self::start`] but does not serve yet: [`Self::serve`] starts the gRPC server, with
    /// other services beside Raft's on the same listener (built from this node's handles, e.g.
    /// a router over [`Self::replica`]). Until then peers cannot reach this node.
    pub async fn open(
        id: u64,
        data_dir: &Path,
        listener: TcpListener,
        config: openraft::Config,
    ) -> Result<Self, NodeError> {
        Self::open_with(id, data_dir, listener, config, Transport::plaintext()).await
    }

    /// [`Self::open`] with every connection to and from other nodes over `transport` (mutual
    /// TLS in production).
    pub async fn open_with(
        id: u64,
        data_dir: &Path,
        listener: TcpListener,
        config: openraft::Config,
        transport: Transport,
    ) -> Result<Self, NodeError> {
        let config = Arc::new(config.validate()?);
        let log = LogStore::open(&data_dir.join("log"))?;
        let state = StateMachineStore::open(&data_dir.join("state"))?;
        let replica = state.replica();
        let raft = Raft::new(id, config, Network::new(transport.clone()), log, state)
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        let addr = listener.local_addr()?;
        Ok(Self {
            id,
            addr,
            raft,
            replica,
            listener: Some(listener),
            server: None,
            transport,
        })
    }

    /// Starts the gRPC server on the listener: `corvid.v1.RaftService` plus every service in
    /// `extra`. Does nothing if it is already serving.
    pub fn serve(&mut self, extra: Routes) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let id = self.id;
        let routes = extra.add_service(RaftGrpc::new(self.raft.clone()).into_service());
        let mut builder = match self.transport.server() {
            Ok(builder) => builder,
            Err(e) => {
                // The material was checked when the transport was made; this cannot happen
                // unless that changes. Serving without TLS is never the fallback.
                tracing::error!(what = "raft-server-tls-failed", node = id, error = %e);
                return;
            }
        };
        self.server = Some(tokio::spawn(async move {
            let served = builder
                .add_routes(routes)
                .serve_with_incoming(TcpIncoming::from(listener))
                .await;
            if let Err(e) = served {
                tracing::error!(what = "raft-server-stopped", node = id, error = %e);
            }
        }));
        tracing::info!(what = "raft-node-started", node = id, addr = %self.addr);
    }

    /// This node's Raft id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address the gRPC server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This node as a member of the group.
    pub fn node(&self) -> BasicNode {
        BasicNode::new(self.addr.to_string())
    }

    /// The openraft handle (metrics, membership changes, `wait`).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// How this node talks to the others.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The local replica of the session table.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Makes `members` the group's first voters. Call it once, on one node, when the group is
    /// first created; the members' servers must be reachable for a leader to be elected.
    pub async fn initialize(&self, members: BTreeMap<u64, BasicNode>) -> Result<(), NodeError> {
        self.raft
            .initialize(members)
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))
    }

    /// Proposes `command` and returns its [`Outcome`] once it is committed and applied here.
    /// Only the leader takes proposals: elsewhere this is [`ClusterError::NotLeader`] with the
    /// leader's address when known. It waits as long as Raft does (no quorum: until one is
    /// back), so callers put their own deadline around it.
    pub async fn propose(&self, command: Command) -> Result<Outcome, ClusterError> {
        propose_on(&self.raft, command).await.map(|p| p.outcome)
    }

    /// Stops serving peers and stops Raft. The data folder keeps the log and snapshot, so a
    /// node started again on it rejoins where it was.
    pub async fn shutdown(self) {
        if let Some(server) = self.server {
            server.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(what = "raft-shutdown-failed", node = self.id, error = %e);
        }
    }
}

/// A committed proposal: its log index and what it did. The `Propose` RPC's reply (JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Proposed {
    /// The entry's log index; a follower waits until it applied it before reading its table.
    pub(crate) index: u64,
    /// What applying it did.
    pub(crate) outcome: Outcome,
}

/// [`RegistryNode::propose`] on a bare Raft handle (also what the `Propose` RPC calls).
pub(crate) async fn propose_on(raft: &Raft, command: Command) -> Result<Proposed, ClusterError> {
    match raft.client_write(command).await {
        Ok(response) => Ok(Proposed {
            index: response.log_id.index,
            outcome: response.data,
        }),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ClusterError::NotLeader {
                leader: f.leader_node.map(|n| n.addr),
            })
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(ClusterError::Internal(e.to_string()))
        }
        Err(RaftError::Fatal(e)) => Err(ClusterError::Unavailable(e.to_string())),
    }
}
