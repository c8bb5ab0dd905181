//! The replicated session table: which edge holds every bound resource.
//!
//! This crate is the pure state machine that the registry's Raft log feeds. It does no I/O and
//! reads no clock: [`RegistryState::apply`] is a function of the state and one log entry, so
//! every replica (the registry voters and every edge's read replica) that applies the same log
//! holds the same table, and a binding conflict is decided once, by the log order.
//!
//! # Layout
//! - `command.rs`: [`Command`], one log entry (bind, unbind, presence, leases, node-down,
//!   drain), serialized as `{"v1": {...}}` with JIDs as normalized strings.
//! - `state.rs`: [`RegistryState`] (routes by full JID, per-edge index, per-edge [`Lease`]s and
//!   drain/down marks, the applied index, the log clock) and `apply`; the read API routing uses
//!   (`lookup`, `resources`, `sessions_of`, `live_nodes`, `len`).
//! - `outcome.rs`: [`Outcome`], what one entry did, so edges can act (close a replaced session
//!   with `conflict`, send `unavailable` for a dropped one).
//! - `route.rs`: [`RouteInfo`] (typed, convertible to and from [`corvid_core::Route`]) and its
//!   wire form [`RouteRecord`].
//! - `snapshot.rs`: `to_snapshot` / `from_snapshot`, versioned JSON, exact round trip.
//! - `invariants.rs`: the table's invariants as named functions (`check_all` after every step).
//!
//! ```text
//!  edge A ── bind/unbind/presence ─┐      leader: RenewLease (its clock), ExpireLeases (timer)
//!  edge B ── lease renewal ────────┤                         │
//!                                  ▼                         ▼
//!                        ┌───────────────── Raft leader ─────────────────┐
//!                        │ log: … │ i: Bind │ i+1: RenewLease │ i+2: …    │
//!                        └──────────────────────┬─────────────────────────┘
//!                     replicate, commit (quorum) │ same entries, same order, everywhere
//!            ┌─────────────────────┬────────────┴──────────┬─────────────────────┐
//!            ▼                     ▼                       ▼                     ▼
//!   registry voter 1      registry voter 2        edge A (learner)       edge B (learner)
//!   state.apply(i, &c)    state.apply(i, &c)      state.apply(i, &c)     state.apply(i, &c)
//!     → Outcome to the      (same Outcome)          → Outcome: act on it   → Outcome: act on it
//!       proposer                                    lookup() to route      lookup() to route
//!            │
//!            └─ every N entries: to_snapshot(); a lagging replica gets from_snapshot() and
//!               the entries after it (replaying an index it already has is a no-op)
//! ```
//!
//! Times: the only time is the `now_ms` inside `RenewLease` and `ExpireLeases`; the state keeps
//! the largest seen (the log clock) and judges leases by it. The leader should stamp both
//! commands from its own clock, so one clock rules every lease.

mod command;
pub mod invariants;
mod outcome;
mod route;
mod snapshot;
mod state;

pub use command::{Command, DownReason};
pub use invariants::Violation;
pub use outcome::{BindRefusal, CommandError, Dropped, Outcome};
pub use route::{RouteInfo, RouteRecord};
pub use snapshot::{SnapshotError, SNAPSHOT_VERSION};
pub use state::{Lease, NodeState, RegistryState};
