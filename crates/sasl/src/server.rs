//! One server-side authentication exchange.

use crate::{Failure, Mechanism, StoredCredentials};

/// Channel-binding data of the TLS connection the exchange runs on (RFC 5929, RFC 9266).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelBindings {
    /// `tls-exporter` (RFC 9266): 32 bytes exported with label "EXPORTER-Channel-Binding"
    /// and no context. `None` where unavailable (e.g. TLS 1.2).
    pub tls_exporter: Option<Vec<u8>>,
    /// `tls-server-end-point` (RFC 5929 §4.1): hash of the server certificate.
    pub tls_server_end_point: Option<Vec<u8>>,
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Look up the stored credentials of this username (the SASL authcid, unescaped, not yet
    /// normalized) and call [`ServerSession::credentials`].
    NeedCredentials {
        /// The authentication identity as sent.
        username: String,
    },
    /// Send a `<challenge/>` with these bytes.
    Challenge(Vec<u8>),
    /// Send `<success/>` with these bytes (may be empty).
    Success {
        /// The authenticated username (authcid).
        username: String,
        /// The authorization identity the client asked for, if any; the caller checks it.
        authzid: Option<String>,
        /// Additional data for `<success/>` (SCRAM's server-final-message).
        additional: Vec<u8>,
    },
}

/// One authentication exchange. Each method consumes input and returns the next step, or the
/// failure that ends the exchange. After a failure or success the session is spent.
#[derive(Debug)]
pub struct ServerSession {
    mechanism: Mechanism,
}

impl ServerSession {
    /// Starts `mechanism`. `cb` is the connection's channel-binding data; `plus_offered` says
    /// whether -PLUS mechanisms were advertised (a client sending gs2 flag `y` when they were is
    /// a downgrade: `NotAuthorized`). `fake_iterations` is used for unknown users so that they
    /// look like real ones (with a salt derived from the username and a per-process secret).
    pub fn new(mechanism: Mechanism, cb: ChannelBindings, plus_offered: bool, fake_iterations: u32) -> Self {
        todo!()
    }

    /// Replaces the random server nonce part (for tests reproducing RFC examples).
    pub fn with_server_nonce(self, nonce: &str) -> Self {
        todo!()
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The initial response from `<auth/>` (empty if none was sent).
    pub fn start(&mut self, initial: &[u8]) -> Result<Step, Failure> {
        todo!()
    }

    /// The stored credentials for the username asked for, `None` if there is no such user.
    pub fn credentials(&mut self, creds: Option<&StoredCredentials>) -> Result<Step, Failure> {
        todo!()
    }

    /// The payload of a `<response/>`.
    pub fn respond(&mut self, response: &[u8]) -> Result<Step, Failure> {
        todo!()
    }
}
