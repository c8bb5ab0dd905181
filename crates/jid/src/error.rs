//! Why a string is not a JID. All of these are `jid-malformed` on the wire (RFC 6120 §8.3.3.8).

/// One variant per fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JidError {
    /// The domainpart is empty.
    #[error("domainpart is empty")]
    EmptyDomain,
    /// `@` with nothing before it.
    #[error("localpart is empty")]
    EmptyNode,
    /// `/` with nothing after it.
    #[error("resourcepart is empty")]
    EmptyResource,
    /// A part is longer than 1023 bytes after normalization.
    #[error("{0} is longer than 1023 bytes")]
    TooLong(&'static str),
    /// The localpart fails PRECIS UsernameCaseMapped or contains a character RFC 7622 §3.3.1 forbids.
    #[error("invalid localpart")]
    InvalidNode,
    /// The domainpart is not a valid IDN, IP literal, or host name.
    #[error("invalid domainpart")]
    InvalidDomain,
    /// The resourcepart fails PRECIS OpaqueString.
    #[error("invalid resourcepart")]
    InvalidResource,
    /// A bare JID was required but the JID has a resource, or the reverse.
    #[error("wrong kind of JID: {0}")]
    WrongKind(&'static str),
}
