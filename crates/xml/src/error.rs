//! Errors of the stream parser. Each variant names the RFC 6120 §4.9.3 stream error it becomes.

/// Why the parser refused the stream. Every variant is fatal to the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Malformed XML (`not-well-formed`, RFC 6120 §4.9.3.13).
    #[error("not well-formed: {0}")]
    NotWellFormed(String),
    /// XML that XMPP forbids: DTDs, comments, processing instructions other than the
    /// XML declaration, entity references other than the predefined five (`restricted-xml`, §4.9.3.18).
    #[error("restricted XML: {0}")]
    RestrictedXml(String),
    /// The stream element or its namespace declarations are wrong (`invalid-namespace`, §4.9.3.10).
    #[error("invalid namespace: {0}")]
    InvalidNamespace(String),
    /// A configured limit was exceeded: stanza size, depth or attribute count (`policy-violation`, §4.9.3.14).
    #[error("limit exceeded: {0}")]
    PolicyViolation(String),
    /// Text or names that are not valid UTF-8 (`unsupported-encoding`, §4.9.3.22).
    #[error("unsupported encoding: {0}")]
    UnsupportedEncoding(String),
}
