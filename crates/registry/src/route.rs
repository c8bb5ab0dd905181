//! The replicated route: a typed [`RouteInfo`] in memory and a [`RouteRecord`] on the wire.

use corvid_core::{NodeId, Route, SessionId};
use corvid_jid::{FullJid, JidError};
use serde::{Deserialize, Serialize};

/// Where a bound resource lives, as the replicated table holds it. The same fields as
/// [`corvid_core::Route`] (and convertible both ways), with a serde form in which the JID is its
/// normalized string, so outcomes can travel back to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RouteRecord", into = "RouteRecord")]
pub struct RouteInfo {
    /// The bound full JID.
    pub jid: FullJid,
    /// The edge holding the session.
    pub node: NodeId,
    /// The session on that edge.
    pub session: SessionId,
    /// Presence priority (RFC 6121 §4.7.2.3).
    pub priority: i8,
    /// True once the session has sent available presence (RFC 6121 §4.2).
    pub available: bool,
}

/// The wire form of a route inside a [`crate::Command`] or a snapshot: the JID as a normalized
/// string. It is parsed when applied, so a bad string becomes an error outcome, never a panic
/// and never an unreadable log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    /// The full JID, normalized (`FullJid`'s `Display`).
    pub jid: String,
    /// The edge holding the session.
    pub node: u64,
    /// The session on that edge.
    pub session: u64,
    /// Presence priority.
    pub priority: i8,
    /// Available presence sent.
    pub available: bool,
}

impl From<RouteInfo> for RouteRecord {
    fn from(r: RouteInfo) -> Self {
        Self::from(&r)
    }
}

impl From<&RouteInfo> for RouteRecord {
    fn from(r: &RouteInfo) -> Self {
        Self {
            jid: r.jid.to_string(),
            node: r.node.0,
            session: r.session.0,
            priority: r.priority,
            available: r.available,
        }
    }
}

impl TryFrom<RouteRecord> for RouteInfo {
    type Error = JidError;
    fn try_from(r: RouteRecord) -> Result<Self, Self::Error> {
        Ok(Self {
            jid: r.jid.parse()?,
            node: NodeId(r.node),
            session: SessionId(r.session),
            priority: r.priority,
            available: r.available,
        })
    }
}

impl From<Route> for RouteInfo {
    fn from(r: Route) -> Self {
        Self {
            jid: r.jid,
            node: r.node,
            session: r.session,
            priority: r.priority,
            available: r.available,
        }
    }
}

impl From<RouteInfo> for Route {
    fn from(r: RouteInfo) -> Self {
        Self {
            jid: r.jid,
            node: r.node,
            session: r.session,
            priority: r.priority,
            available: r.available,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_travels_as_its_normalized_jid_and_comes_back_equal() {
        let route = RouteInfo {
            jid: "Juliet@Capulet.example/balcony".parse().unwrap(),
            node: NodeId(3),
            session: SessionId(7),
            priority: -1,
            available: true,
        };
        let json = serde_json::to_string(&route).unwrap();
        assert_eq!(
            json,
            r#"{"jid":"juliet@capulet.example/balcony","node":3,"session":7,"priority":-1,"available":true}"#
        );
        assert_eq!(serde_json::from_str::<RouteInfo>(&json).unwrap(), route);
        assert_eq!(RouteInfo::from(Route::from(route.clone())), route);
    }

    #[test]
    fn a_route_with_a_bad_jid_does_not_deserialize() {
        let json =
            r#"{"jid":"no-resource@example","node":1,"session":1,"priority":0,"available":false}"#;
        assert!(serde_json::from_str::<RouteInfo>(json).is_err());
    }
}
