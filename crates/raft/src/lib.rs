//! The session registry's Raft group: [`corvid_registry::RegistryState`] replicated with
//! openraft (0.9, storage v2) over tonic.
//!
//! The registry crate is the pure table (`apply`, snapshots); this crate is everything openraft
//! needs around it: where the log lives, how entries reach the table, how nodes talk.
//!
//! # Layout
//! - `lib.rs`: [`TypeConfig`], the openraft type configuration (node id `u64`, node
//!   [`BasicNode`] with its gRPC `addr`, entry data [`Command`], response [`Outcome`]).
//! - `log_store.rs`: [`LogStore`], the durable Raft log on redb in a folder (entries, vote,
//!   committed and purged log ids), implementing `RaftLogStorage`/`RaftLogReader`. Its test runs
//!   openraft's own storage suite (`openraft::testing::Suite::test_all`).
//! - `state_machine.rs`: [`StateMachineStore`], the adapter that applies committed entries to
//!   the [`corvid_registry::RegistryState`] and builds/installs snapshots (the table's
//!   `to_snapshot` bytes, with the log id and membership in openraft's snapshot meta, kept in one
//!   file in the folder); [`Replica`], the read handle on the local table and the broadcast of
//!   every applied outcome ([`ReplicaEvent`]).
//! - `network.rs`: [`Network`] (openraft's client side: each RPC is one serde_json value in a
//!   `corvid.v1.RaftService` call) and [`RaftGrpc`] (the server side, handing requests to the
//!   local [`Raft`] handle). Transport failures are [`corvid_proto::ClusterError`]s.
//! - `node.rs`: [`RegistryNode`], one running member: opens the stores, starts Raft and the gRPC
//!   server (with other services beside Raft's if asked), proposes commands, exposes the replica.
//! - `membership.rs`: learners. The leader's side of the `JoinAsLearner` and `RemoveLearner`
//!   RPCs (idempotent membership changes) and [`LearnerClient`], the edge's side, which asks the
//!   registry members and follows `NotLeader` hints to the leader, with backoff.
//! - `registry.rs`: [`RaftRegistry`], the [`corvid_core::SessionRegistry`] of a clustered edge:
//!   reads from the local [`Replica`], writes proposed to the leader (over the `Propose` RPC when
//!   the leader is another node), each with a deadline so a node cut off from the quorum refuses
//!   binds instead of hanging.
//!
//! ```text
//!   RegistryNode::propose(Command) ─▶ Raft (leader) ─▶ LogStore (redb, fsync) ─┐
//!                                        │  AppendEntries/Vote/InstallSnapshot   │ committed
//!                                        ▼  (Network ══ tonic ══▶ RaftGrpc)      ▼
//!                                     followers' Raft ─▶ their LogStore   StateMachineStore
//!                                                                          RegistryState::apply
//!                                                        Replica::read ◀──┤ (lock)
//!                                                   Replica::subscribe ◀──┘ broadcast<ReplicaEvent>
//! ```

use std::io::Cursor;

pub use openraft::BasicNode;

use corvid_registry::{Command, Outcome};

mod log_store;
mod membership;
mod network;
mod node;
mod registry;
mod state_machine;

pub use log_store::{LogStore, LogStoreError};
pub use membership::{remove_learner, LearnerClient};
pub use network::{Network, NetworkConnection, RaftGrpc};
pub use node::{NodeError, RegistryNode};
pub use registry::RaftRegistry;
pub use state_machine::{Replica, ReplicaEvent, StateMachineError, StateMachineStore};

openraft::declare_raft_types!(
    /// The registry's openraft types: node ids are `u64`, a node is its gRPC address, an entry
    /// carries one [`Command`] and answers with its [`Outcome`].
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A running Raft member of the registry group.
pub type Raft = openraft::Raft<TypeConfig>;

/// The storage error every store here returns.
pub type StorageError = openraft::StorageError<u64>;
