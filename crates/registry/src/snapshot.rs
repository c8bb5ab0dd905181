//! Snapshots: the whole table as versioned JSON, restored exactly.
//!
//! The format (`"version": 1`) lists the edges and the routes in key order, so equal states give
//! byte-equal snapshots. The per-edge index is not stored: it is rebuilt on restore, so it cannot
//! disagree with the table. A snapshot is checked on restore (JIDs parse, no JID twice, no
//! session on an edge marked down, index agreement): a bad one is an error, never a panic.

use corvid_core::NodeId;
use serde::{Deserialize, Serialize};

use crate::command::DownReason;
use crate::invariants::{self, Violation};
use crate::route::{RouteInfo, RouteRecord};
use crate::state::{NodeState, RegistryState};

/// The snapshot format this code writes.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// It is not a JSON snapshot of a known shape.
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    /// A route's JID does not parse.
    #[error("snapshot holds an invalid JID {jid:?}: {reason}")]
    InvalidJid {
        /// The string.
        jid: String,
        /// Why it does not parse.
        reason: String,
    },
    /// It decodes but breaks an invariant of the table.
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(#[from] Violation),
    /// It was written by another format version.
    #[error("snapshot version {0} is not supported (this build reads {SNAPSHOT_VERSION})")]
    UnsupportedVersion(u32),
}

#[derive(Deserialize)]
struct Probe {
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct SnapshotV1 {
    version: u32,
    applied: Option<u64>,
    clock_ms: u64,
    leases_in_use: bool,
    nodes: Vec<NodeRecord>,
    routes: Vec<RouteRecord>,
}

#[derive(Serialize, Deserialize)]
struct NodeRecord {
    node: u64,
    lease_expires_at_ms: Option<u64>,
    draining: bool,
    down: Option<DownReason>,
}

impl RegistryState {
    /// The whole state as versioned JSON. Equal states give equal bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let snapshot = SnapshotV1 {
            version: SNAPSHOT_VERSION,
            applied: self.applied,
            clock_ms: self.clock_ms,
            leases_in_use: self.leases_in_use,
            nodes: self
                .nodes
                .iter()
                .map(|(id, n)| NodeRecord {
                    node: id.0,
                    lease_expires_at_ms: n.lease_expires_at_ms,
                    draining: n.draining,
                    down: n.down,
                })
                .collect(),
            routes: self.routes().map(RouteRecord::from).collect(),
        };
        match serde_json::to_vec(&snapshot) {
            Ok(bytes) => bytes,
            // Numbers, strings, booleans, options and sequences of structs with string field
            // names: serde_json has no failing case for these.
            Err(e) => unreachable!("a snapshot always serializes: {e}"),
        }
    }

    /// Restores a state from [`RegistryState::to_snapshot`]'s bytes, checking it.
    pub fn from_snapshot(bytes: &[u8]) -> Result<RegistryState, SnapshotError> {
        let Probe { version } = serde_json::from_slice(bytes)?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let snapshot: SnapshotV1 = serde_json::from_slice(bytes)?;
        let mut state = RegistryState {
            applied: snapshot.applied,
            clock_ms: snapshot.clock_ms,
            leases_in_use: snapshot.leases_in_use,
            ..RegistryState::default()
        };
        for n in snapshot.nodes {
            state.nodes.insert(
                NodeId(n.node),
                NodeState {
                    lease_expires_at_ms: n.lease_expires_at_ms,
                    draining: n.draining,
                    down: n.down,
                },
            );
        }
        for record in snapshot.routes {
            let jid = record.jid.clone();
            let route = RouteInfo::try_from(record).map_err(|e| SnapshotError::InvalidJid {
                jid,
                reason: e.to_string(),
            })?;
            state
                .by_node
                .entry(route.node)
                .or_default()
                .insert(route.jid.clone());
            let previous = state
                .accounts
                .entry(route.jid.bare().clone())
                .or_default()
                .insert(route.jid.resource().clone(), route);
            if let Some(previous) = previous {
                return Err(Violation::DuplicateFullJid {
                    jid: previous.jid.to_string(),
                }
                .into());
            }
        }
        invariants::at_most_one_session_per_full_jid(&state)?;
        invariants::no_session_of_a_node_after_its_node_down(&state)?;
        invariants::the_per_node_index_agrees_with_the_table(&state)?;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use corvid_core::SessionId;

    use super::*;
    use crate::command::Command;

    fn route(j: &str, node: u64, session: u64) -> RouteInfo {
        RouteInfo {
            jid: j.parse().unwrap(),
            node: NodeId(node),
            session: SessionId(session),
            priority: 0,
            available: false,
        }
    }

    fn log() -> Vec<Command> {
        vec![
            Command::RenewLease {
                node: NodeId(1),
                now_ms: 100,
                ttl_ms: 1_000,
            },
            Command::RenewLease {
                node: NodeId(2),
                now_ms: 100,
                ttl_ms: 5_000,
            },
            Command::bind(&route("juliet@example.com/balcony", 1, 1), 5),
            Command::bind(&route("romeo@example.com/orchard", 2, 2), 5),
            Command::set_presence(
                &"romeo@example.com/orchard".parse().unwrap(),
                NodeId(2),
                SessionId(2),
                true,
                3,
            ),
            Command::Drain { node: NodeId(2) },
            Command::bind(&route("juliet@example.com/balcony", 2, 3), 5),
            Command::bind(&route("nurse@example.com/kitchen", 1, 4), 5),
            Command::ExpireLeases { now_ms: 1_100 },
            Command::RenewLease {
                node: NodeId(1),
                now_ms: 1_200,
                ttl_ms: 1_000,
            },
            Command::bind(&route("nurse@example.com/kitchen", 1, 5), 5),
            Command::Undrain { node: NodeId(2) },
            Command::unbind(
                &"romeo@example.com/orchard".parse().unwrap(),
                NodeId(2),
                SessionId(2),
            ),
        ]
    }

    fn run(state: &mut RegistryState, log: &[Command], from: usize) {
        for (i, c) in log.iter().enumerate().skip(from) {
            state.apply(i as u64 + 1, c);
        }
    }

    #[test]
    fn a_snapshot_round_trips_exactly() {
        let mut state = RegistryState::new();
        run(&mut state, &log(), 0);
        assert!(!state.is_empty());
        let bytes = state.to_snapshot();
        let restored = RegistryState::from_snapshot(&bytes).unwrap();
        assert_eq!(restored, state);
        assert_eq!(restored.to_snapshot(), bytes);
        let empty = RegistryState::new();
        assert_eq!(
            RegistryState::from_snapshot(&empty.to_snapshot()).unwrap(),
            empty
        );
    }

    #[test]
    fn restoring_at_any_point_then_applying_the_rest_equals_applying_the_whole_log() {
        let log = log();
        let mut whole = RegistryState::new();
        run(&mut whole, &log, 0);
        for cut in 0..=log.len() {
            let mut head = RegistryState::new();
            run(&mut head, &log[..cut], 0);
            let mut restored = RegistryState::from_snapshot(&head.to_snapshot()).unwrap();
            // Openraft may hand over the log from before the snapshot: replay it all.
            run(&mut restored, &log, 0);
            assert_eq!(restored, whole, "cut at {cut}");
            assert_eq!(restored.to_snapshot(), whole.to_snapshot());
        }
    }

    #[test]
    fn the_v1_format_is_stable() {
        let mut state = RegistryState::new();
        state.apply(
            7,
            &Command::bind(&route("juliet@example.com/balcony", 1, 1), 5),
        );
        assert_eq!(
            String::from_utf8(state.to_snapshot()).unwrap(),
            r#"{"version":1,"applied":7,"clock_ms":0,"leases_in_use":false,"nodes":[{"node":1,"lease_expires_at_ms":null,"draining":false,"down":null}],"routes":[{"jid":"juliet@example.com/balcony","node":1,"session":1,"priority":0,"available":false}]}"#
        );
    }

    #[test]
    fn bad_snapshots_are_errors() {
        assert!(matches!(
            RegistryState::from_snapshot(b"not json"),
            Err(SnapshotError::Decode(_))
        ));
        assert!(matches!(
            RegistryState::from_snapshot(br#"{"version":2,"anything":true}"#),
            Err(SnapshotError::UnsupportedVersion(2))
        ));
        let bad_jid = br#"{"version":1,"applied":1,"clock_ms":0,"leases_in_use":false,"nodes":[{"node":1,"lease_expires_at_ms":null,"draining":false,"down":null}],"routes":[{"jid":"no-resource@example.com","node":1,"session":1,"priority":0,"available":false}]}"#;
        assert!(matches!(
            RegistryState::from_snapshot(bad_jid),
            Err(SnapshotError::InvalidJid { .. })
        ));
        let twice = br#"{"version":1,"applied":1,"clock_ms":0,"leases_in_use":false,"nodes":[{"node":1,"lease_expires_at_ms":null,"draining":false,"down":null}],"routes":[{"jid":"a@example.com/x","node":1,"session":1,"priority":0,"available":false},{"jid":"A@example.com/x","node":1,"session":2,"priority":0,"available":false}]}"#;
        assert!(matches!(
            RegistryState::from_snapshot(twice),
            Err(SnapshotError::Inconsistent(
                Violation::DuplicateFullJid { .. }
            ))
        ));
        let on_down = br#"{"version":1,"applied":1,"clock_ms":0,"leases_in_use":false,"nodes":[{"node":1,"lease_expires_at_ms":null,"draining":false,"down":"operator"}],"routes":[{"jid":"a@example.com/x","node":1,"session":1,"priority":0,"available":false}]}"#;
        assert!(matches!(
            RegistryState::from_snapshot(on_down),
            Err(SnapshotError::Inconsistent(
                Violation::SessionOnDownNode { .. }
            ))
        ));
        let unknown_node = br#"{"version":1,"applied":1,"clock_ms":0,"leases_in_use":false,"nodes":[],"routes":[{"jid":"a@example.com/x","node":1,"session":1,"priority":0,"available":false}]}"#;
        assert!(matches!(
            RegistryState::from_snapshot(unknown_node),
            Err(SnapshotError::Inconsistent(Violation::NodeIndexDisagrees(
                _
            )))
        ));
    }
}
