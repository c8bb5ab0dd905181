//! Why a message from a peer node was refused. Each fault has its own variant, and the text is
//! what the peer sees (as a `DeliveryReport` outcome or an `INVALID_ARGUMENT` status message).

use corvid_jid::JidError;

/// A message from a peer that decodes as protobuf but is not a valid Corvid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// A JID field holds UTF-8 that is not a valid JID.
    #[error("`{field}` is not a JID: {source}")]
    BadJid {
        /// The message field, as named in the `.proto` file.
        field: &'static str,
        /// Why it is not a JID.
        source: JidError,
    },
    /// A JID field that must name a resource (a full JID) holds a bare JID.
    #[error("`{field}` is not a full JID")]
    NotFullJid {
        /// The message field, as named in the `.proto` file.
        field: &'static str,
    },
    /// The stanza field is empty.
    #[error("`stanza` is empty")]
    EmptyStanza,
    /// A field that must be UTF-8 is not.
    #[error("`{field}` is not UTF-8")]
    NotUtf8 {
        /// The message field, as named in the `.proto` file.
        field: &'static str,
    },
    /// An enum field holds a value this node does not know, or the `UNSPECIFIED` zero value.
    #[error("`{field}` has unknown value {value}")]
    UnknownEnum {
        /// The message field, as named in the `.proto` file.
        field: &'static str,
        /// The value received.
        value: i32,
    },
}
