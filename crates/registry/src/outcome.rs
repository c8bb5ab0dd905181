//! [`Outcome`]: what applying one entry did, so the edges can act on it.
//!
//! Every replica computes the same outcome for the same entry. The proposer gets it back as the
//! answer to its write; every edge sees it when its own replica applies the entry (e.g. the edge
//! holding a replaced session sends `conflict`, the caretaker of a dropped session sends
//! `unavailable` on its behalf).

use corvid_core::{BindError, NodeId};
use serde::{Deserialize, Serialize};

use crate::route::RouteInfo;
use crate::state::Lease;

/// What one applied entry did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The index was at or below the last applied one: nothing changed (replay after a snapshot).
    AlreadyApplied,
    /// The bind was refused; nothing changed.
    BindRefused(BindRefusal),
    /// The JID is bound to the new session. `replaced` is the session that held it before, on
    /// whatever edge: that edge closes it with a `conflict` stream error (RFC 6120 §7.7.2.2).
    /// A repeated bind of the same session (a retried proposal) is `Bound { replaced: None }`
    /// and keeps the presence already recorded.
    Bound {
        /// The route the new session replaced.
        replaced: Option<RouteInfo>,
    },
    /// `Drain` / `Undrain` applied.
    DrainSet {
        /// The edge.
        #[serde(with = "ids::node")]
        node: NodeId,
        /// Whether it drains now.
        draining: bool,
        /// False if it already was in that state.
        changed: bool,
    },
    /// The lease was extended.
    LeaseRenewed {
        /// The lease now.
        lease: Lease,
        /// True if the edge had been declared down: its old sessions are gone from the table, and
        /// the edge must close whatever connections it still has from before.
        revived: bool,
    },
    /// Edges declared down by this entry, and every session they held, each listed exactly once.
    /// Empty lists when nothing changed (already down, no lease expired).
    NodesDown {
        /// The edges newly declared down, ascending.
        #[serde(with = "ids::nodes")]
        nodes: Vec<NodeId>,
        /// Their sessions, removed from the table, ordered by JID.
        dropped: Vec<Dropped>,
    },
    /// `SetPresence` applied.
    PresenceSet {
        /// False if the JID is not bound to that session (a stale update): ignored.
        updated: bool,
    },
    /// The command could not be applied (e.g. a JID that does not parse); nothing changed.
    Rejected(CommandError),
    /// `Unbind` applied.
    Unbound {
        /// False if the JID was not bound to that session (never bound, or replaced since).
        existed: bool,
    },
}

/// A session dropped because its edge went down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// The route as it was.
    pub route: RouteInfo,
    /// The surviving edge that sends `unavailable` presence on the session's behalf, chosen
    /// deterministically from the account (all resources of one account go to the same edge,
    /// and the work spreads over the edges). `None` if no edge is live and taking sessions.
    #[serde(with = "ids::opt_node")]
    pub caretaker: Option<NodeId>,
}

/// Why a bind was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum BindRefusal {
    /// The edge is declared down, or leases are in use and its lease is not live.
    #[error("the edge is down")]
    NodeDown,
    /// The edge is draining: it takes no new sessions.
    #[error("the edge is draining")]
    NodeDraining,
    /// The account has as many resources as allowed (RFC 6120 §7.6.2.1 `resource-constraint`).
    #[error("too many resources")]
    TooManyResources,
}

impl From<BindRefusal> for BindError {
    fn from(r: BindRefusal) -> Self {
        match r {
            BindRefusal::TooManyResources => BindError::TooManyResources,
            other => BindError::Unavailable(other.to_string()),
        }
    }
}

/// Why a command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum CommandError {
    /// A JID in the command does not parse as a full JID.
    #[error("invalid JID {jid:?}: {reason}")]
    InvalidJid {
        /// The string as it was in the entry.
        jid: String,
        /// Why it does not parse.
        reason: String,
    },
}

/// Serde for the id newtypes of `corvid-core`, which do not implement it: as plain numbers.
pub(crate) mod ids {
    pub(crate) mod node {
        use corvid_core::NodeId;
        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(n: &NodeId, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_u64(n.0)
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NodeId, D::Error> {
            u64::deserialize(d).map(NodeId)
        }
    }

    pub(crate) mod nodes {
        use corvid_core::NodeId;
        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(n: &[NodeId], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(n.iter().map(|n| n.0))
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Vec<NodeId>, D::Error> {
            Vec::<u64>::deserialize(d).map(|v| v.into_iter().map(NodeId).collect())
        }
    }

    pub(crate) mod opt_node {
        use corvid_core::NodeId;
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            n: &Option<NodeId>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            n.map(|n| n.0).serialize(s)
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<NodeId>, D::Error> {
            Option::<u64>::deserialize(d).map(|n| n.map(NodeId))
        }
    }
}

#[cfg(test)]
mod tests {
    use corvid_core::SessionId;

    use super::*;

    #[test]
    fn outcomes_round_trip_through_json_for_the_proposer() {
        let route = RouteInfo {
            jid: "juliet@example.com/balcony".parse().unwrap(),
            node: NodeId(2),
            session: SessionId(5),
            priority: 1,
            available: true,
        };
        let outcomes = [
            Outcome::AlreadyApplied,
            Outcome::BindRefused(BindRefusal::NodeDraining),
            Outcome::Bound {
                replaced: Some(route.clone()),
            },
            Outcome::DrainSet {
                node: NodeId(1),
                draining: true,
                changed: false,
            },
            Outcome::LeaseRenewed {
                lease: Lease {
                    node: NodeId(1),
                    expires_at_ms: 99,
                },
                revived: true,
            },
            Outcome::NodesDown {
                nodes: vec![NodeId(2)],
                dropped: vec![Dropped {
                    route,
                    caretaker: Some(NodeId(3)),
                }],
            },
            Outcome::PresenceSet { updated: false },
            Outcome::Rejected(CommandError::InvalidJid {
                jid: "x".into(),
                reason: "y".into(),
            }),
            Outcome::Unbound { existed: true },
        ];
        for o in outcomes {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), o, "{json}");
        }
    }

    #[test]
    fn refusals_map_to_the_registry_interface_errors() {
        assert_eq!(
            BindError::from(BindRefusal::TooManyResources),
            BindError::TooManyResources
        );
        assert_eq!(
            BindError::from(BindRefusal::NodeDraining),
            BindError::Unavailable("the edge is draining".into())
        );
    }
}
