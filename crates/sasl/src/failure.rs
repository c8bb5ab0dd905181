//! RFC 6120 §6.5 failure conditions.

/// Why authentication failed; [`Failure::condition`] is the element name sent in `<failure/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The client aborted (`<abort/>`), §6.5.1.
    #[error("aborted")]
    Aborted,
    /// Base64 was invalid, §6.5.3 (decoding happens in the caller, which reports this).
    #[error("incorrect-encoding")]
    IncorrectEncoding,
    /// The authzid is not one the authenticated identity may act as, §6.5.6.
    #[error("invalid-authzid")]
    InvalidAuthzid,
    /// Unknown or not offered mechanism, §6.5.7.
    #[error("invalid-mechanism")]
    InvalidMechanism,
    /// The message was not understood, §6.5.8.
    #[error("malformed-request")]
    MalformedRequest,
    /// Wrong credentials, unknown user, or a channel-binding mismatch, §6.5.10. Never says which.
    #[error("not-authorized")]
    NotAuthorized,
    /// The credential store could not be reached, §6.5.11.
    #[error("temporary-auth-failure")]
    TemporaryAuthFailure,
}

impl Failure {
    /// The element name of the condition.
    pub fn condition(self) -> &'static str {
        match self {
            Failure::Aborted => "aborted",
            Failure::IncorrectEncoding => "incorrect-encoding",
            Failure::InvalidAuthzid => "invalid-authzid",
            Failure::InvalidMechanism => "invalid-mechanism",
            Failure::MalformedRequest => "malformed-request",
            Failure::NotAuthorized => "not-authorized",
            Failure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}
