//! [`RegistryProgress`]: how far this node's replica of the session registry has got, so that
//! a stanza forwarded between nodes never overtakes the bindings its sender knew of.
//!
//! The race it closes: alice binds on node 1 and sends her initial presence; node 1 forwards a
//! probe to bob's session on node 2, whose roster module answers to alice's full JID at once.
//! If node 2's replica has not yet applied alice's binding, her full JID is unknown there and
//! the answer is dropped as for an unavailable resource (RFC 6121 §8.5.3.2.1). With the index
//! of the sender's last applied registry entry in each envelope, node 2 first waits until its
//! own replica has applied that entry: whatever the stanza causes sees every binding node 1
//! saw when it sent it. Replicas are normally there already, so the wait costs nothing.

use std::time::Duration;

use async_trait::async_trait;

/// A node's replica of the session registry, as far as forwarding cares.
#[async_trait]
pub trait RegistryProgress: Send + Sync {
    /// The index of the last registry entry applied here (0: none yet).
    fn applied(&self) -> u64;
    /// Returns once the entry at `index` is applied here (true), or after `limit` (false).
    async fn reach(&self, index: u64, limit: Duration) -> bool;
}
