//! A stanza between edges, checked: the typed side of `v1::Envelope`.

use std::collections::HashMap;
use std::num::NonZeroU64;

use corvid_jid::{FullJid, Jid};
use prost::bytes::Bytes;

/// One stanza on its way to the edge holding its recipient, with its routing metadata checked.
/// Built from a `v1::Envelope` by `TryFrom` (which refuses a [`crate::Malformed`] one) and turned
/// back into one by `From`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedStanza {
    /// The sending edge's sequence number, strictly increasing within one stream.
    pub seq: u64,
    /// The stanza's sender.
    pub from: Jid,
    /// The stanza's addressee.
    pub to: Jid,
    /// The serialized XML of one stanza, as the sending edge wrote it (never empty when decoded).
    pub stanza: Bytes,
    /// The target session on the receiving edge, or `None` to route by [`RoutedStanza::to`].
    pub session: Option<NonZeroU64>,
    /// The full JID the target session must still hold, or `None` not to check it beyond
    /// [`RoutedStanza::to`]'s bare JID.
    pub session_jid: Option<FullJid>,
    /// W3C trace context (`traceparent`, `tracestate`) to continue the sender's trace.
    pub trace: HashMap<String, String>,
    /// The last registry entry the sender's replica had applied (0: unknown); a full JID the
    /// receiver's replica does not know is looked up again once it has got as far.
    pub registry_index: u64,
}
