//! The outcome of delivering one envelope: the Rust side of `v1::DeliveryStatus`.

/// What the receiving edge did with one envelope. Only [`Delivery::Delivered`] hands the stanza
/// over; on every other outcome the sending edge answers the stanza's sender itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// The stanza is in the recipient's mailbox (or the receiving edge's router took it).
    Delivered,
    /// The envelope was malformed; see [`crate::Malformed`].
    Invalid,
    /// The recipient's bounded queue was full; the stanza was dropped, not buffered.
    QueueFull,
    /// The target session no longer exists on the receiving edge.
    RecipientGone,
}
