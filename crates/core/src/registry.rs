//! The session table interface: which full JID is bound where. Reads are local and
//! synchronous (every node holds a replica); writes are asynchronous (Raft entries in a cluster).

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use corvid_jid::{BareJid, FullJid};

use crate::{NodeId, SessionId};

/// Where a bound resource lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The bound full JID.
    pub jid: FullJid,
    /// The node holding the session.
    pub node: NodeId,
    /// The session on that node.
    pub session: SessionId,
    /// Presence priority (RFC 6121 §4.7.2.3); 0 until presence says otherwise.
    pub priority: i8,
    /// True once the session has sent available presence (RFC 6121 §4.2 "available resource").
    pub available: bool,
}

/// Why a bind was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// The account has as many resources bound as allowed (RFC 6120 §7.6.2.1 `resource-constraint`).
    #[error("too many resources")]
    TooManyResources,
    /// The registry cannot accept writes now (in a cluster: no quorum).
    #[error("registry unavailable: {0}")]
    Unavailable(String),
}

/// The session table. Reads are local and synchronous (every node holds a replica); writes are
/// asynchronous (in the cluster they are Raft log entries).
#[async_trait]
pub trait SessionRegistry: Send + Sync {
    /// Binds `route.jid`. The conflict policy (RFC 6120 §7.7.2.2) is "the new session wins":
    /// an existing route for the same full JID is replaced and returned, so its session can be
    /// closed with a `conflict` stream error. `max_resources` limits distinct resources per account.
    async fn bind(&self, route: Route, max_resources: usize) -> Result<Option<Route>, BindError>;
    /// Removes the binding if it still belongs to `session` (a replaced session's late unbind
    /// must not remove its successor).
    async fn unbind(&self, jid: &FullJid, session: SessionId);
    /// Updates availability and priority of a bound session.
    async fn set_presence(&self, jid: &FullJid, session: SessionId, available: bool, priority: i8);
    /// The route of a full JID.
    fn lookup(&self, jid: &FullJid) -> Option<Route>;
    /// Every bound resource of an account.
    fn resources(&self, bare: &BareJid) -> Vec<Route>;
    /// Whether any bound resource of an account satisfies `pred`: a question asked of every
    /// routed message (are there other resources to copy it to?), answered without copying
    /// the routes where the registry can.
    fn any_resource(&self, bare: &BareJid, pred: &mut dyn FnMut(&Route) -> bool) -> bool {
        self.resources(bare).iter().any(pred)
    }
    /// How far this copy of the table has got: the position (in a cluster, the Raft log index)
    /// of the last change applied to it. 0 for a table that is never behind (one node's own).
    fn position(&self) -> u64 {
        0
    }
    /// Returns true once this copy has applied the change at `position`, false if `limit`
    /// passed first. A table that is never behind is always there.
    async fn reach(&self, _position: u64, _limit: Duration) -> bool {
        true
    }
    /// Number of bound sessions.
    fn len(&self) -> usize;
    /// True if nothing is bound.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

tokio::task_local! {
    static SEEN: u64;
}

/// Runs `work` as the consequence of something that happened once the table had reached
/// `position` somewhere in the cluster: a stanza another node forwarded, stamped with its
/// sender's position. What `work` routes can then tell a resource this node's copy does not
/// know *yet* (bound there a moment ago) from one that is gone; see [`seen_position`].
pub async fn caused_at<F: Future>(position: u64, work: F) -> F::Output {
    let position = position.max(seen_position());
    SEEN.scope(position, work).await
}

/// The table position the current work is a consequence of (see [`caused_at`]); 0 outside.
pub fn seen_position() -> u64 {
    SEEN.try_with(|p| *p).unwrap_or(0)
}
