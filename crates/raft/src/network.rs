//! Openraft's network over tonic: [`Network`] and [`NetworkConnection`] on the calling side,
//! [`RaftGrpc`] on the answering side of `corvid.v1.RaftService`.
//!
//! Each RPC carries one serde_json value in `RaftRequest.data`: the openraft request. The reply's
//! `data` is the whole `Result` of the local `Raft` call, so a Raft-level refusal (the node is
//! shutting down, a snapshot with a bad offset) comes back as openraft's own error and becomes
//! `RPCError::RemoteError`. Transport and decoding failures are gRPC statuses built from
//! [`ClusterError`] (the one mapping, in `corvid-proto`); on the calling side a retryable one is
//! `RPCError::Unreachable` (openraft backs off) and the others `RPCError::Network`.
//!
//! `Propose` is not an openraft RPC: it carries a registry `Command` from a node that is not
//! the leader ([`crate::RaftRegistry`]) and answers with the entry's log index and `Outcome`, or
//! with the `NotLeader` status naming the leader.

use std::time::Duration;

use corvid_proto::v1::raft_service_client::RaftServiceClient;
use corvid_proto::v1::raft_service_server::{RaftService, RaftServiceServer};
use corvid_proto::v1::{
    JoinAsLearnerReply, JoinAsLearnerRequest, RaftReply, RaftRequest, RemoveLearnerReply,
    RemoveLearnerRequest,
};
use corvid_proto::{ClusterError, Transport};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use corvid_registry::Command;

use crate::{Raft, TypeConfig};

/// The largest gRPC message a node accepts or sends. Snapshot chunks are the big ones: the node
/// config caps a chunk so that its JSON form (up to ~4 bytes per byte) stays well below this.
pub(crate) const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How long connecting to a peer may take before the RPC counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Which of the three RPCs a call is.
#[derive(Debug, Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Propose,
}

/// Openraft's network factory: one [`NetworkConnection`] per target node, to the gRPC address in
/// its [`BasicNode`], over the node's [`Transport`] (plain HTTP/2 by default, or mutual TLS).
#[derive(Debug, Clone, Default)]
pub struct Network {
    transport: Transport,
}

impl Network {
    /// A network whose connections go over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = NetworkConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        NetworkConnection::new(target, &node.addr, &self.transport)
    }
}

/// The calling side towards one peer. The channel connects lazily and reconnects by itself, so
/// a peer that is down now is reached again once it is back.
#[derive(Debug)]
pub struct NetworkConnection {
    target: u64,
    /// The client, or why the peer's address is unusable (reported on every call).
    client: Result<RaftServiceClient<Channel>, ClusterError>,
}

impl NetworkConnection {
    /// A connection to node `target` listening on `addr` (`host:port`), over `transport`.
    pub fn new(target: u64, addr: &str, transport: &Transport) -> Self {
        let client = transport
            .endpoint(addr)
            .map(|endpoint| {
                let channel = endpoint.connect_timeout(CONNECT_TIMEOUT).connect_lazy();
                RaftServiceClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES)
            })
            .map_err(|e| ClusterError::Invalid(format!("address of node {target}: {e}")));
        Self { target, client }
    }

    /// Sends one serialized request and decodes the reply as `Result<Resp, RaftError<E>>`.
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let data = serde_json::to_vec(request)
            .map_err(|e| network_error(&ClusterError::Internal(format!("encode {rpc:?}: {e}"))))?;
        let client = self.client.as_mut().map_err(|e| network_error(e))?;
        let mut request = Request::new(RaftRequest { data });
        request.set_timeout(option.hard_ttl());
        let reply = match rpc {
            Rpc::AppendEntries => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::InstallSnapshot => client.install_snapshot(request).await,
            Rpc::Propose => client.propose(request).await,
        };
        let reply = reply.map_err(|status| {
            let e = ClusterError::from(status);
            if e.is_retryable() {
                RPCError::Unreachable(Unreachable::new(&e))
            } else {
                network_error(&e)
            }
        })?;
        let result: Result<Resp, RaftError<u64, E>> =
            serde_json::from_slice(&reply.into_inner().data).map_err(|e| {
                network_error(&ClusterError::Invalid(format!("{rpc:?} reply: {e}")))
            })?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn network_error<E: std::error::Error>(e: &ClusterError) -> RPCError<u64, BasicNode, E> {
    RPCError::Network(NetworkError::new(e))
}

impl RaftNetwork<TypeConfig> for NetworkConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}

/// The answering side: decodes each request and hands it to the local [`Raft`] handle.
#[derive(Clone)]
pub struct RaftGrpc {
    raft: Raft,
}

impl RaftGrpc {
    /// Serves RPCs for `raft`.
    pub fn new(raft: Raft) -> Self {
        Self { raft }
    }

    /// The tonic service to add to a `tonic::transport::Server`.
    pub fn into_service(self) -> RaftServiceServer<Self> {
        RaftServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn decode<T: DeserializeOwned>(request: Request<RaftRequest>, rpc: Rpc) -> Result<T, Status> {
    serde_json::from_slice(&request.into_inner().data)
        .map_err(|e| ClusterError::Invalid(format!("{rpc:?} request: {e}")).into())
}

fn encode<T: Serialize>(result: &T, rpc: Rpc) -> Result<Response<RaftReply>, Status> {
    serde_json::to_vec(result)
        .map(|data| Response::new(RaftReply { data }))
        .map_err(|e| ClusterError::Internal(format!("encode {rpc:?} reply: {e}")).into())
}

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req: AppendEntriesRequest<TypeConfig> = decode(request, Rpc::AppendEntries)?;
        encode(&self.raft.append_entries(req).await, Rpc::AppendEntries)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req: VoteRequest<u64> = decode(request, Rpc::Vote)?;
        encode(&self.raft.vote(req).await, Rpc::Vote)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req: InstallSnapshotRequest<TypeConfig> = decode(request, Rpc::InstallSnapshot)?;
        encode(&self.raft.install_snapshot(req).await, Rpc::InstallSnapshot)
    }

    async fn propose(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let command: Command = decode(request, Rpc::Propose)?;
        let proposed = crate::node::propose_on(&self.raft, command).await?;
        encode(&proposed, Rpc::Propose)
    }

    async fn join_as_learner(
        &self,
        request: Request<JoinAsLearnerRequest>,
    ) -> Result<Response<JoinAsLearnerReply>, Status> {
        let JoinAsLearnerRequest { node_id, addr } = request.into_inner();
        let membership_index =
            crate::membership::join_as_learner(&self.raft, node_id, &addr).await?;
        Ok(Response::new(JoinAsLearnerReply { membership_index }))
    }

    async fn remove_learner(
        &self,
        request: Request<RemoveLearnerRequest>,
    ) -> Result<Response<RemoveLearnerReply>, Status> {
        let removed =
            crate::membership::remove_learner(&self.raft, request.into_inner().node_id).await?;
        Ok(Response::new(RemoveLearnerReply { removed }))
    }
}
