//! Delivery to a session held by another node of the cluster.

use async_trait::async_trait;
use corvid_stanza::Stanza;

use crate::Route;

/// Why a stanza could not be handed to a session on another node. Either way the stanza was
/// not delivered, and the sending node answers its sender (never a silent drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RemoteError {
    /// The recipient session no longer exists on that node (the route was stale).
    #[error("recipient session is gone")]
    Gone,
    /// The node could not be reached or did not answer in time, or the recipient's queue was full.
    #[error("recipient node unavailable")]
    Unavailable,
}

/// Hands a stanza to a session on another node. The router calls it for every route whose
/// `node` is not its own; an implementation forwards it (over gRPC between edges) and returns
/// once the other node has put it in the session's mailbox or refused it.
///
/// Implementations keep the order of the stanzas they are given for the same node, so the
/// order of each sender→recipient pair survives the hop.
#[async_trait]
pub trait RemoteDelivery: Send + Sync {
    /// Delivers `stanza` to `route.session` on `route.node`.
    async fn deliver(&self, route: &Route, stanza: &Stanza) -> Result<(), RemoteError>;
}
