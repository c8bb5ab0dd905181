//! [`Command`]: one entry of the registry's replicated log, and its versioned wire form.
//!
//! A command carries JIDs as normalized strings and every time it needs (`now_ms`) inside it, so
//! that applying it is a pure function of the state and the entry: every replica reaches the same
//! table. Strings are parsed when the command is applied; a string that does not parse yields
//! [`crate::Outcome::Rejected`] on every replica alike, instead of an entry that cannot be read.

use corvid_core::{NodeId, SessionId};
use corvid_jid::FullJid;
use serde::{Deserialize, Serialize};

use crate::route::{RouteInfo, RouteRecord};

/// One write to the session table. Serialized as `{"v1": {"op": "...", ...}}`: the outer key is
/// the format version, so a later format can be added beside it and old log entries and snapshots
/// stay readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "wire::Versioned", into = "wire::Versioned")]
pub enum Command {
    /// Binds a full JID to a session on an edge ("the new session wins" on conflict).
    Bind {
        /// The route to bind; normally with `priority: 0, available: false`.
        route: RouteRecord,
        /// Distinct resources allowed per account; a bind that would exceed it is refused.
        max_resources: u32,
    },
    /// The edge stops taking new sessions (its existing sessions stay).
    Drain {
        /// The edge.
        node: NodeId,
    },
    /// Proposed by the leader: every edge whose lease ended at or before `now_ms` is declared down
    /// and its sessions dropped, in this one entry.
    ExpireLeases {
        /// The leader's clock, in milliseconds.
        now_ms: u64,
    },
    /// Declares an edge down and drops every session it held, in this one entry.
    NodeDown {
        /// The edge.
        node: NodeId,
        /// Why.
        reason: DownReason,
    },
    /// Extends an edge's lease to `now_ms + ttl_ms`. The first renewal in the log turns leases on:
    /// from then on an edge needs a live lease to bind. Renewing revives an edge declared down.
    RenewLease {
        /// The edge.
        node: NodeId,
        /// The clock of whoever proposed it (the leader, see the crate docs), in milliseconds.
        now_ms: u64,
        /// How long the lease lasts.
        ttl_ms: u64,
    },
    /// Records a session's availability and priority, if `jid` is still bound to that session.
    SetPresence {
        /// The full JID, normalized.
        jid: String,
        /// The edge holding the session.
        node: NodeId,
        /// The session.
        session: SessionId,
        /// Available presence sent.
        available: bool,
        /// Presence priority.
        priority: i8,
    },
    /// Removes a binding, if it still belongs to that session (a replaced session's late unbind
    /// must not remove its successor).
    Unbind {
        /// The full JID, normalized.
        jid: String,
        /// The edge holding the session.
        node: NodeId,
        /// The session.
        session: SessionId,
    },
    /// The edge takes new sessions again.
    Undrain {
        /// The edge.
        node: NodeId,
    },
}

/// Why an edge was declared down. Part of the v1 wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownReason {
    /// Its lease ran out ([`Command::ExpireLeases`]).
    LeaseExpired,
    /// An operator removed it (admin CLI).
    Operator,
    /// It announced its own orderly shutdown.
    Shutdown,
}

impl Command {
    /// A bind of `route` (its JID written in normalized form).
    pub fn bind(route: &RouteInfo, max_resources: u32) -> Self {
        Command::Bind {
            route: RouteRecord::from(route),
            max_resources,
        }
    }

    /// An unbind of `jid` by `session` on `node`.
    pub fn unbind(jid: &FullJid, node: NodeId, session: SessionId) -> Self {
        Command::Unbind {
            jid: jid.to_string(),
            node,
            session,
        }
    }

    /// A presence update of `jid` by `session` on `node`.
    pub fn set_presence(
        jid: &FullJid,
        node: NodeId,
        session: SessionId,
        available: bool,
        priority: i8,
    ) -> Self {
        Command::SetPresence {
            jid: jid.to_string(),
            node,
            session,
            available,
            priority,
        }
    }
}

/// The frozen wire formats. `Command` may change shape; a version here never does, and each
/// converts into the current `Command`.
mod wire {
    use corvid_core::{NodeId, SessionId};
    use serde::{Deserialize, Serialize};

    use super::{Command, DownReason};
    use crate::route::RouteRecord;

    #[derive(Serialize, Deserialize)]
    pub(super) enum Versioned {
        #[serde(rename = "v1")]
        V1(V1),
    }

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    pub(super) enum V1 {
        Bind {
            route: RouteRecord,
            max_resources: u32,
        },
        Drain {
            node: u64,
        },
        ExpireLeases {
            now_ms: u64,
        },
        NodeDown {
            node: u64,
            reason: DownReason,
        },
        RenewLease {
            node: u64,
            now_ms: u64,
            ttl_ms: u64,
        },
        SetPresence {
            jid: String,
            node: u64,
            session: u64,
            available: bool,
            priority: i8,
        },
        Unbind {
            jid: String,
            node: u64,
            session: u64,
        },
        Undrain {
            node: u64,
        },
    }

    impl From<Versioned> for Command {
        fn from(v: Versioned) -> Self {
            match v {
                Versioned::V1(c) => match c {
                    V1::Bind {
                        route,
                        max_resources,
                    } => Command::Bind {
                        route,
                        max_resources,
                    },
                    V1::Drain { node } => Command::Drain { node: NodeId(node) },
                    V1::ExpireLeases { now_ms } => Command::ExpireLeases { now_ms },
                    V1::NodeDown { node, reason } => Command::NodeDown {
                        node: NodeId(node),
                        reason,
                    },
                    V1::RenewLease {
                        node,
                        now_ms,
                        ttl_ms,
                    } => Command::RenewLease {
                        node: NodeId(node),
                        now_ms,
                        ttl_ms,
                    },
                    V1::SetPresence {
                        jid,
                        node,
                        session,
                        available,
                        priority,
                    } => Command::SetPresence {
                        jid,
                        node: NodeId(node),
                        session: SessionId(session),
                        available,
                        priority,
                    },
                    V1::Unbind { jid, node, session } => Command::Unbind {
                        jid,
                        node: NodeId(node),
                        session: SessionId(session),
                    },
                    V1::Undrain { node } => Command::Undrain { node: NodeId(node) },
                },
            }
        }
    }

    impl From<Command> for Versioned {
        fn from(c: Command) -> Self {
            Versioned::V1(match c {
                Command::Bind {
                    route,
                    max_resources,
                } => V1::Bind {
                    route,
                    max_resources,
                },
                Command::Drain { node } => V1::Drain { node: node.0 },
                Command::ExpireLeases { now_ms } => V1::ExpireLeases { now_ms },
                Command::NodeDown { node, reason } => V1::NodeDown {
                    node: node.0,
                    reason,
                },
                Command::RenewLease {
                    node,
                    now_ms,
                    ttl_ms,
                } => V1::RenewLease {
                    node: node.0,
                    now_ms,
                    ttl_ms,
                },
                Command::SetPresence {
                    jid,
                    node,
                    session,
                    available,
                    priority,
                } => V1::SetPresence {
                    jid,
                    node: node.0,
                    session: session.0,
                    available,
                    priority,
                },
                Command::Unbind { jid, node, session } => V1::Unbind {
                    jid,
                    node: node.0,
                    session: session.0,
                },
                Command::Undrain { node } => V1::Undrain { node: node.0 },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_command() -> Vec<Command> {
        let route = RouteInfo {
            jid: "juliet@example.com/balcony".parse().unwrap(),
            node: NodeId(1),
            session: SessionId(2),
            priority: 0,
            available: false,
        };
        let jid = route.jid.clone();
        vec![
            Command::bind(&route, 10),
            Command::Drain { node: NodeId(1) },
            Command::ExpireLeases { now_ms: 5 },
            Command::NodeDown {
                node: NodeId(1),
                reason: DownReason::Operator,
            },
            Command::RenewLease {
                node: NodeId(1),
                now_ms: 5,
                ttl_ms: 10,
            },
            Command::set_presence(&jid, NodeId(1), SessionId(2), true, -3),
            Command::unbind(&jid, NodeId(1), SessionId(2)),
            Command::Undrain { node: NodeId(1) },
        ]
    }

    #[test]
    fn every_command_round_trips_through_json() {
        for c in every_command() {
            let json = serde_json::to_string(&c).unwrap();
            assert!(json.starts_with(r#"{"v1":{"op":""#), "{json}");
            assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), c);
        }
    }

    #[test]
    fn the_v1_wire_form_is_stable() {
        // Log entries written today must stay readable: this is the format, byte for byte.
        let c = Command::set_presence(
            &"romeo@example.com/orchard".parse().unwrap(),
            NodeId(4),
            SessionId(9),
            true,
            5,
        );
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"v1":{"op":"set_presence","jid":"romeo@example.com/orchard","node":4,"session":9,"available":true,"priority":5}}"#
        );
        let down = r#"{"v1":{"op":"node_down","node":2,"reason":"lease_expired"}}"#;
        assert_eq!(
            serde_json::from_str::<Command>(down).unwrap(),
            Command::NodeDown {
                node: NodeId(2),
                reason: DownReason::LeaseExpired
            }
        );
    }

    #[test]
    fn an_unknown_version_or_op_is_a_decode_error() {
        assert!(serde_json::from_str::<Command>(r#"{"v2":{"op":"drain","node":1}}"#).is_err());
        assert!(serde_json::from_str::<Command>(r#"{"v1":{"op":"explode","node":1}}"#).is_err());
    }

    #[test]
    fn a_bad_jid_still_decodes_so_apply_can_reject_it() {
        let json = r#"{"v1":{"op":"unbind","jid":"@@@","node":1,"session":1}}"#;
        assert!(matches!(
            serde_json::from_str::<Command>(json).unwrap(),
            Command::Unbind { .. }
        ));
    }
}
