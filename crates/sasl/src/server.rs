//! One server-side authentication exchange.
//!
//! # Failure choices
//! RFC 5802 reports SCRAM errors in `e=` of the server-final-message; XMPP carries them as
//! RFC 6120 §6.5 conditions instead, and we fail as soon as the fault is known:
//! - a syntax error of any kind, including a SCRAM extension or `m=`, or `p=` sent with a
//!   mechanism without -PLUS (the client contradicts its own choice of mechanism, RFC 5802 §6):
//!   `malformed-request`;
//! - a -PLUS mechanism with gs2 flag `n` or `y`, flag `y` when -PLUS was offered (a downgrade,
//!   RFC 5802 §6), a binding type we do not support or have no data for (`e=unsupported-channel-
//!   binding-type` / `e=channel-bindings-dont-match`, RFC 5802 §7), a `c=` or nonce mismatch,
//!   and a wrong proof: `not-authorized`;
//! - a broken credential record (zero iterations, empty salt) or a failing random source:
//!   `temporary-auth-failure`.
//!
//! Nothing here depends on whether the user exists until the proof is checked, and an unknown
//! user gets a plausible server-first-message, so `not-authorized` never says which part was
//! wrong (RFC 6120 §6.5.10).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use subtle::{Choice, ConstantTimeEq};

use crate::plain::{parse_plain, PlainMessage};
use crate::scram::{parse_client_final, parse_client_first, CbFlag, ClientFirst};
use crate::{crypto, Failure, Mechanism, ScramHash, ScramKeys, StoredCredentials};

/// The largest message accepted. Real SCRAM and PLAIN messages are a few hundred bytes; the cap
/// bounds the hashing work a client can ask for.
const MAX_MESSAGE: usize = 8 * 1024;

/// Random bytes in a server nonce (base64-encoded to 32 printable characters).
const SERVER_NONCE_BYTES: usize = 24;

/// Channel-binding data of the TLS connection the exchange runs on (RFC 5929, RFC 9266).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelBindings {
    /// `tls-exporter` (RFC 9266): 32 bytes exported with label "EXPORTER-Channel-Binding"
    /// and no context. `None` where unavailable (e.g. TLS 1.2).
    pub tls_exporter: Option<Vec<u8>>,
    /// `tls-server-end-point` (RFC 5929 §4.1): hash of the server certificate.
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    /// The data for a channel-binding type name, `None` if the type is unknown or unavailable
    /// on this connection.
    pub fn data(&self, cb_type: &str) -> Option<&[u8]> {
        match cb_type {
            "tls-exporter" => self.tls_exporter.as_deref(),
            "tls-server-end-point" => self.tls_server_end_point.as_deref(),
            _ => None,
        }
    }
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
    cb: ChannelBindings,
    plus_offered: bool,
    fake_iterations: u32,
    server_nonce: Option<String>,
    state: State,
}

/// Where the exchange is.
#[derive(Debug)]
enum State {
    /// Nothing received yet.
    New,
    /// `<auth/>` came without an initial response; the first message comes in `respond`.
    AwaitingFirst,
    /// SCRAM client-first parsed; waiting for the credential lookup.
    ScramLookup(ScramFirst),
    /// server-first sent; waiting for the client-final-message.
    ScramFinal(ScramPending),
    /// PLAIN message parsed; waiting for the credential lookup.
    PlainLookup(PlainMessage),
    /// Succeeded or failed; every further call is out of order.
    Spent,
}

/// A client-first-message that passed the channel-binding policy.
#[derive(Debug)]
struct ScramFirst {
    message: ClientFirst,
    /// `gs2-header || cb-data`, what `c=` must decode to.
    cbind_input: Vec<u8>,
}

/// State kept between server-first and client-final.
struct ScramPending {
    first: ScramFirst,
    server_first: String,
    combined_nonce: String,
    /// `None` for an unknown user: the proof is checked against dummy keys and then refused.
    keys: Option<ScramKeys>,
}

// Hand-written to keep key material out of logs.
impl fmt::Debug for ScramPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramPending")
            .field("first", &self.first)
            .field("server_first", &self.server_first)
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    /// Starts `mechanism`. `cb` is the connection's channel-binding data; `plus_offered` says
    /// whether -PLUS mechanisms were advertised (a client sending gs2 flag `y` when they were is
    /// a downgrade: `NotAuthorized`). `fake_iterations` is used for unknown users so that they
    /// look like real ones (with a salt derived from the username and a per-process secret).
    ///
    /// Set `fake_iterations` to the iteration count real accounts use: PLAIN spends that much
    /// PBKDF2 work on an unknown user, and SCRAM shows it in the server-first-message. Zero is
    /// raised to one.
    pub fn new(
        mechanism: Mechanism,
        cb: ChannelBindings,
        plus_offered: bool,
        fake_iterations: u32,
    ) -> Self {
        Self {
            mechanism,
            cb,
            plus_offered,
            // RFC 5802 §5.1 needs a positive count; a zero here is a caller bug, not a reason
            // to send an invalid server-first-message.
            fake_iterations: fake_iterations.max(1),
            server_nonce: None,
            state: State::New,
        }
    }

    /// Replaces the random server nonce part (for tests reproducing RFC examples).
    pub fn with_server_nonce(mut self, nonce: &str) -> Self {
        self.server_nonce = Some(nonce.to_owned());
        self
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The initial response from `<auth/>` (empty if none was sent).
    pub fn start(&mut self, initial: &[u8]) -> Result<Step, Failure> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::New if initial.is_empty() => {
                self.state = State::AwaitingFirst;
                Ok(Step::Challenge(Vec::new()))
            }
            State::New => self.first_message(initial),
            _ => Err(Failure::MalformedRequest),
        }
    }

    /// The stored credentials for the username asked for, `None` if there is no such user.
    pub fn credentials(&mut self, creds: Option<&StoredCredentials>) -> Result<Step, Failure> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::ScramLookup(first) => self.server_first(first, creds),
            State::PlainLookup(message) => self.plain_verify(message, creds),
            _ => Err(Failure::MalformedRequest),
        }
    }

    /// The payload of a `<response/>`.
    pub fn respond(&mut self, response: &[u8]) -> Result<Step, Failure> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::AwaitingFirst => self.first_message(response),
            State::ScramFinal(pending) => self.server_final(pending, response),
            _ => Err(Failure::MalformedRequest),
        }
    }

    /// The hash of the SCRAM family (PLAIN verifies against the SHA-256 keys).
    fn hash(&self) -> ScramHash {
        match self.mechanism {
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => ScramHash::Sha1,
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus | Mechanism::Plain => {
                ScramHash::Sha256
            }
        }
    }

    /// The first client message of either mechanism.
    fn first_message(&mut self, msg: &[u8]) -> Result<Step, Failure> {
        if msg.len() > MAX_MESSAGE {
            return Err(Failure::MalformedRequest);
        }
        if self.mechanism == Mechanism::Plain {
            let message = parse_plain(msg)?;
            let username = message.authcid.clone();
            self.state = State::PlainLookup(message);
            return Ok(Step::NeedCredentials { username });
        }
        let text = std::str::from_utf8(msg).map_err(|_| Failure::MalformedRequest)?;
        let message = parse_client_first(text)?;
        let cbind_input = self.channel_binding_input(&message)?;
        let username = message.username.clone();
        self.state = State::ScramLookup(ScramFirst {
            message,
            cbind_input,
        });
        Ok(Step::NeedCredentials { username })
    }

    /// Applies the channel-binding policy (RFC 5802 §6) and returns what `c=` must carry.
    fn channel_binding_input(&self, message: &ClientFirst) -> Result<Vec<u8>, Failure> {
        let mut input = message.gs2_header.as_bytes().to_vec();
        match (&message.flag, self.mechanism.is_plus()) {
            (CbFlag::Used(_), false) => return Err(Failure::MalformedRequest),
            (CbFlag::Used(name), true) => {
                let data = self.cb.data(name).ok_or(Failure::NotAuthorized)?;
                input.extend_from_slice(data);
            }
            (CbFlag::Unsupported | CbFlag::NotUsed, true) => return Err(Failure::NotAuthorized),
            (CbFlag::NotUsed, false) if self.plus_offered => return Err(Failure::NotAuthorized),
            (CbFlag::Unsupported | CbFlag::NotUsed, false) => {}
        }
        Ok(input)
    }

    /// Builds the server-first-message, from real keys or, for an unknown user, from a fake
    /// salt and `fake_iterations`.
    fn server_first(
        &mut self,
        first: ScramFirst,
        creds: Option<&StoredCredentials>,
    ) -> Result<Step, Failure> {
        let hash = self.hash();
        let keys = creds.map(|c| c.keys(hash).clone());
        let (salt, iterations) = match &keys {
            Some(k) if k.iterations == 0 || k.salt.is_empty() => {
                return Err(Failure::TemporaryAuthFailure)
            }
            Some(k) => (k.salt.clone(), k.iterations),
            None => (
                crypto::fake_salt(hash, &first.message.username)?,
                self.fake_iterations,
            ),
        };
        let server_nonce = match &self.server_nonce {
            Some(n) => n.clone(),
            None => STANDARD.encode(crypto::random_bytes(SERVER_NONCE_BYTES)?),
        };
        let combined_nonce = format!("{}{}", first.message.nonce, server_nonce);
        let server_first = format!(
            "r={combined_nonce},s={},i={iterations}",
            STANDARD.encode(&salt)
        );
        let challenge = server_first.as_bytes().to_vec();
        self.state = State::ScramFinal(ScramPending {
            first,
            server_first,
            combined_nonce,
            keys,
        });
        Ok(Step::Challenge(challenge))
    }

    /// Checks the client-final-message (RFC 5802 §3) and builds the server-final-message.
    fn server_final(&mut self, pending: ScramPending, msg: &[u8]) -> Result<Step, Failure> {
        if msg.len() > MAX_MESSAGE {
            return Err(Failure::MalformedRequest);
        }
        let hash = self.hash();
        let text = std::str::from_utf8(msg).map_err(|_| Failure::MalformedRequest)?;
        let last = parse_client_final(text)?;
        if last.proof.len() != crypto::output_len(hash) {
            return Err(Failure::MalformedRequest);
        }
        let binding_ok = last
            .channel_binding
            .as_slice()
            .ct_eq(&pending.first.cbind_input);
        if !bool::from(binding_ok) || last.nonce != pending.combined_nonce {
            return Err(Failure::NotAuthorized);
        }

        let auth_message = format!(
            "{},{},{}",
            pending.first.message.bare, pending.server_first, last.without_proof
        );
        // An unknown user goes through the same computation with dummy keys, then fails.
        let dummy = vec![0u8; crypto::output_len(hash)];
        let (stored_key, server_key, known) = match &pending.keys {
            Some(k) => (
                k.stored_key.as_slice(),
                k.server_key.as_slice(),
                Choice::from(1),
            ),
            None => (dummy.as_slice(), dummy.as_slice(), Choice::from(0)),
        };
        let client_signature = crypto::hmac(hash, stored_key, auth_message.as_bytes())?;
        let client_key = crypto::xor(&last.proof, &client_signature);
        let proof_ok = crypto::digest(hash, &client_key)
            .as_slice()
            .ct_eq(stored_key)
            & known;
        if !bool::from(proof_ok) {
            return Err(Failure::NotAuthorized);
        }
        let server_signature = crypto::hmac(hash, server_key, auth_message.as_bytes())?;
        let ScramFirst { message, .. } = pending.first;
        Ok(Step::Success {
            username: message.username,
            authzid: message.authzid,
            additional: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
        })
    }

    /// PLAIN (RFC 4616 §2): derive the SHA-256 keys from the password with the stored salt and
    /// compare StoredKey. An unknown user costs the same PBKDF2 work with a fake salt.
    fn plain_verify(
        &mut self,
        message: PlainMessage,
        creds: Option<&StoredCredentials>,
    ) -> Result<Step, Failure> {
        let (salt, iterations, expected) = match creds {
            Some(c) => (c.sha256.salt.clone(), c.sha256.iterations, Some(&c.sha256)),
            None => (
                crypto::fake_salt(ScramHash::Sha256, &message.authcid)?,
                self.fake_iterations,
                None,
            ),
        };
        let derived =
            ScramKeys::derive_prepared(ScramHash::Sha256, &message.password, &salt, iterations)?;
        let ok = match expected {
            Some(keys) => bool::from(derived.stored_key.as_slice().ct_eq(&keys.stored_key)),
            None => false,
        };
        if !ok {
            return Err(Failure::NotAuthorized);
        }
        Ok(Step::Success {
            username: message.authcid,
            authzid: message.authzid,
            additional: Vec::new(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Iterations for tests that are not RFC vectors: low, to keep the suite fast.
    const ITER: u32 = 16;

    fn b64(data: &[u8]) -> String {
        STANDARD.encode(data)
    }

    /// A SCRAM client, written from RFC 5802 §3 independently of the server's state machine.
    struct Client {
        hash: ScramHash,
        password: String,
        gs2_header: String,
        cb_data: Vec<u8>,
        bare: String,
    }

    /// What the client computed from the server-first-message.
    struct ClientFinal {
        message: String,
        server_signature: Vec<u8>,
    }

    impl Client {
        fn new(hash: ScramHash, username: &str, password: &str, nonce: &str) -> Self {
            let escaped = username.replace('=', "=3D").replace(',', "=2C");
            Self {
                hash,
                password: password.to_owned(),
                gs2_header: "n,,".to_owned(),
                cb_data: Vec::new(),
                bare: format!("n={escaped},r={nonce}"),
            }
        }
        fn gs2(mut self, header: &str, cb_data: &[u8]) -> Self {
            self.gs2_header = header.to_owned();
            self.cb_data = cb_data.to_vec();
            self
        }
        fn first(&self) -> Vec<u8> {
            format!("{}{}", self.gs2_header, self.bare).into_bytes()
        }
        fn channel_binding(&self) -> String {
            let mut input = self.gs2_header.as_bytes().to_vec();
            input.extend_from_slice(&self.cb_data);
            b64(&input)
        }
        fn last(&self, server_first: &[u8]) -> ClientFinal {
            self.last_with(server_first, &self.channel_binding(), None)
        }
        /// The client-final-message with a chosen `c=` and, optionally, a chosen `r=`.
        fn last_with(&self, server_first: &[u8], c: &str, r: Option<&str>) -> ClientFinal {
            let server_first = std::str::from_utf8(server_first).unwrap();
            let mut nonce = "";
            let mut salt = Vec::new();
            let mut iterations = 0;
            for attr in server_first.split(',') {
                let (key, value) = attr.split_once('=').unwrap();
                match key {
                    "r" => nonce = value,
                    "s" => salt = STANDARD.decode(value).unwrap(),
                    "i" => iterations = value.parse().unwrap(),
                    other => panic!("unexpected attribute {other}"),
                }
            }
            let without_proof = format!("c={c},r={}", r.unwrap_or(nonce));
            let auth_message = format!("{},{server_first},{without_proof}", self.bare);
            let salted =
                crypto::salted_password(self.hash, self.password.as_bytes(), &salt, iterations);
            let client_key = crypto::hmac(self.hash, &salted, b"Client Key").unwrap();
            let stored_key = crypto::digest(self.hash, &client_key);
            let signature = crypto::hmac(self.hash, &stored_key, auth_message.as_bytes()).unwrap();
            let proof = crypto::xor(&client_key, &signature);
            let server_key = crypto::hmac(self.hash, &salted, b"Server Key").unwrap();
            ClientFinal {
                message: format!("{without_proof},p={}", b64(&proof)),
                server_signature: crypto::hmac(self.hash, &server_key, auth_message.as_bytes())
                    .unwrap(),
            }
        }
    }

    fn creds(password: &str) -> StoredCredentials {
        StoredCredentials::derive(password, ITER).unwrap()
    }

    fn session(mechanism: Mechanism) -> ServerSession {
        ServerSession::new(mechanism, ChannelBindings::default(), false, ITER)
    }

    fn bindings() -> ChannelBindings {
        ChannelBindings {
            tls_exporter: Some(vec![0xE1; 32]),
            tls_server_end_point: Some(vec![0x5E; 32]),
        }
    }

    fn challenge(step: Step) -> Vec<u8> {
        match step {
            Step::Challenge(bytes) => bytes,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    /// Runs a whole SCRAM exchange and returns the last step (or failure).
    fn exchange(
        server: &mut ServerSession,
        client: &Client,
        stored: Option<&StoredCredentials>,
    ) -> Result<Step, Failure> {
        server.start(&client.first())?;
        let server_first = challenge(server.credentials(stored)?);
        let last = client.last(&server_first);
        server.respond(last.message.as_bytes())
    }

    fn assert_success(result: Result<Step, Failure>, client_final: Option<&ClientFinal>) {
        match result {
            Ok(Step::Success { additional, .. }) => {
                if let Some(last) = client_final {
                    let expected = format!("v={}", b64(&last.server_signature));
                    assert_eq!(additional, expected.as_bytes());
                }
            }
            other => panic!("expected success, got {other:?}"),
        }
    }

    // ---- RFC vectors -------------------------------------------------------------------

    /// THE ACCEPTANCE TEST: RFC 6120 §9 (the example SCRAM-SHA-1 exchange, juliet).
    #[test]
    fn rfc6120_9_scram_sha1_example_exchange() {
        let salt = STANDARD
            .decode("NjhkYTM0MDgtNGY0Zi00NjdmLTkxMmUtNDlmNTNmNDNkMDMz")
            .unwrap();
        let keys = ScramKeys::derive(ScramHash::Sha1, "r0m30myr0m30", &salt, 4096).unwrap();
        let stored = StoredCredentials {
            sha1: keys,
            sha256: creds("unused").sha256,
        };
        let mut server = ServerSession::new(
            Mechanism::ScramSha1,
            ChannelBindings::default(),
            false,
            4096,
        )
        .with_server_nonce("e124695b-69a9-4de6-9c30-b51b3808c59e");

        let step = server
            .start(b"n,,n=juliet,r=oMsTAAwAAAAMAAAANP0TAAAAAABPU0AA")
            .unwrap();
        assert_eq!(
            step,
            Step::NeedCredentials {
                username: "juliet".into()
            }
        );
        let step = server.credentials(Some(&stored)).unwrap();
        assert_eq!(
            step,
            Step::Challenge(
                b"r=oMsTAAwAAAAMAAAANP0TAAAAAABPU0AAe124695b-69a9-4de6-9c30-b51b3808c59e,\
                  s=NjhkYTM0MDgtNGY0Zi00NjdmLTkxMmUtNDlmNTNmNDNkMDMz,i=4096"
                    .to_vec()
            )
        );
        let step = server
            .respond(
                b"c=biws,r=oMsTAAwAAAAMAAAANP0TAAAAAABPU0AAe124695b-69a9-4de6-9c30-b51b3808c59e,\
                  p=UA57tM/SvpATBkH2FXs0WDXvJYw=",
            )
            .unwrap();
        assert_eq!(
            step,
            Step::Success {
                username: "juliet".into(),
                authzid: None,
                additional: b"v=pNNDFVEQxuXxCoSEiW8GEZ+1RSo=".to_vec(),
            }
        );
    }

    /// RFC 7677 §3: the SCRAM-SHA-256 example exchange.
    #[test]
    fn rfc7677_3_scram_sha256_example_exchange() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let stored = StoredCredentials {
            sha1: creds("unused").sha1,
            sha256: ScramKeys::derive(ScramHash::Sha256, "pencil", &salt, 4096).unwrap(),
        };
        let mut server = ServerSession::new(
            Mechanism::ScramSha256,
            ChannelBindings::default(),
            false,
            4096,
        )
        .with_server_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        assert_eq!(
            server.start(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap(),
            Step::NeedCredentials {
                username: "user".into()
            }
        );
        assert_eq!(
            server.credentials(Some(&stored)).unwrap(),
            Step::Challenge(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .to_vec()
            )
        );
        assert_eq!(
            server
                .respond(
                    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                      p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
                )
                .unwrap(),
            Step::Success {
                username: "user".into(),
                authzid: None,
                additional: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            }
        );
    }

    /// RFC 5802 §5: the SCRAM-SHA-1 example exchange (user, pencil).
    #[test]
    fn rfc5802_5_scram_sha1_example_exchange() {
        let salt = STANDARD.decode("QSXCR+Q6sek8bf92").unwrap();
        let stored = StoredCredentials {
            sha1: ScramKeys::derive(ScramHash::Sha1, "pencil", &salt, 4096).unwrap(),
            sha256: creds("unused").sha256,
        };
        let mut server = ServerSession::new(
            Mechanism::ScramSha1,
            ChannelBindings::default(),
            false,
            4096,
        )
        .with_server_nonce("3rfcNHYJY1ZVvWVs7j");
        server
            .start(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
            .unwrap();
        server.credentials(Some(&stored)).unwrap();
        let step = server
            .respond(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
            .unwrap();
        assert_eq!(
            step,
            Step::Success {
                username: "user".into(),
                authzid: None,
                additional: b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=".to_vec(),
            }
        );
    }

    // ---- SCRAM credentials -------------------------------------------------------------

    #[test]
    fn rfc5802_3_scram_sha256_round_trip_with_own_client() {
        let stored = creds("pencil");
        let client = Client::new(ScramHash::Sha256, "romeo", "pencil", "abcdefghijklmnop");
        let mut server = session(Mechanism::ScramSha256);
        server.start(&client.first()).unwrap();
        let server_first = challenge(server.credentials(Some(&stored)).unwrap());
        let last = client.last(&server_first);
        assert_success(server.respond(last.message.as_bytes()), Some(&last));
    }

    #[test]
    fn rfc5802_3_wrong_password_is_not_authorized() {
        let stored = creds("pencil");
        for (mechanism, hash) in [
            (Mechanism::ScramSha1, ScramHash::Sha1),
            (Mechanism::ScramSha256, ScramHash::Sha256),
        ] {
            let client = Client::new(hash, "romeo", "pen", "nonce1");
            let result = exchange(&mut session(mechanism), &client, Some(&stored));
            assert_eq!(result, Err(Failure::NotAuthorized));
        }
    }

    #[test]
    fn rfc6120_6_5_10_unknown_user_looks_like_a_real_one_then_fails() {
        let fake_iterations = 4096;
        let first_for = |mechanism: Mechanism, user: &str| -> String {
            let mut server = ServerSession::new(
                mechanism,
                ChannelBindings::default(),
                false,
                fake_iterations,
            );
            server
                .start(format!("n,,n={user},r=clientnonce").as_bytes())
                .unwrap();
            String::from_utf8(challenge(server.credentials(None).unwrap())).unwrap()
        };
        let a = first_for(Mechanism::ScramSha256, "ghost");
        let b = first_for(Mechanism::ScramSha256, "ghost");
        // Well formed: r=<client nonce><server nonce>,s=<16-byte salt>,i=<fake iterations>.
        let attrs: Vec<&str> = a.split(',').collect();
        assert_eq!(attrs.len(), 3);
        let nonce = attrs[0].strip_prefix("r=clientnonce").unwrap();
        assert!(nonce.len() >= 18);
        let salt = STANDARD
            .decode(attrs[1].strip_prefix("s=").unwrap())
            .unwrap();
        assert_eq!(salt.len(), 16);
        assert_eq!(attrs[2], "i=4096");
        // Stable salt for the same name (nonces differ), different for another name and
        // for the other hash family (real accounts have independent salts per family).
        let salt_of = |m: &str| m.split(',').nth(1).unwrap().to_owned();
        assert_ne!(a, b);
        assert_eq!(salt_of(&a), salt_of(&b));
        assert_ne!(
            salt_of(&a),
            salt_of(&first_for(Mechanism::ScramSha256, "spectre"))
        );
        assert_ne!(
            salt_of(&a),
            salt_of(&first_for(Mechanism::ScramSha1, "ghost"))
        );

        // The proof then fails exactly like a wrong password does.
        let client = Client::new(ScramHash::Sha256, "ghost", "pencil", "clientnonce");
        let result = exchange(&mut session(Mechanism::ScramSha256), &client, None);
        assert_eq!(result, Err(Failure::NotAuthorized));
    }

    #[test]
    fn rfc5802_5_1_server_nonce_is_random_and_printable() {
        let first = |_: u8| {
            let mut server = session(Mechanism::ScramSha1);
            server.start(b"n,,n=u,r=c").unwrap();
            let stored = creds("pw");
            let text =
                String::from_utf8(challenge(server.credentials(Some(&stored)).unwrap())).unwrap();
            let nonce = text
                .split(',')
                .next()
                .unwrap()
                .strip_prefix("r=c")
                .unwrap()
                .to_owned();
            nonce
        };
        let (a, b) = (first(0), first(1));
        assert_ne!(a, b);
        assert!(a.len() >= 18);
        assert!(a.bytes().all(|c| (0x21..=0x7e).contains(&c) && c != b','));
    }

    #[test]
    fn broken_credential_record_is_temporary_auth_failure() {
        let mut stored = creds("pw");
        stored.sha1.iterations = 0;
        let mut server = session(Mechanism::ScramSha1);
        server.start(b"n,,n=u,r=c").unwrap();
        assert_eq!(
            server.credentials(Some(&stored)),
            Err(Failure::TemporaryAuthFailure)
        );
    }

    // ---- channel binding ---------------------------------------------------------------

    #[test]
    fn rfc9266_scram_plus_with_tls_exporter() {
        let stored = creds("pencil");
        let cb = bindings();
        let client = Client::new(ScramHash::Sha256, "romeo", "pencil", "n0nce")
            .gs2("p=tls-exporter,,", &[0xE1; 32]);
        // Independently of the client helper: c= is base64("p=tls-exporter,," || data).
        let mut expected = b"p=tls-exporter,,".to_vec();
        expected.extend_from_slice(&[0xE1; 32]);
        assert_eq!(client.channel_binding(), b64(&expected));
        let mut server = ServerSession::new(Mechanism::ScramSha256Plus, cb, true, ITER);
        server.start(&client.first()).unwrap();
        let server_first = challenge(server.credentials(Some(&stored)).unwrap());
        let last = client.last(&server_first);
        assert_success(server.respond(last.message.as_bytes()), Some(&last));
    }

    #[test]
    fn rfc5929_4_scram_plus_with_tls_server_end_point() {
        let stored = creds("pencil");
        let client = Client::new(ScramHash::Sha1, "romeo", "pencil", "n0nce")
            .gs2("p=tls-server-end-point,,", &[0x5E; 32]);
        let mut server = ServerSession::new(Mechanism::ScramSha1Plus, bindings(), true, ITER);
        let result = exchange(&mut server, &client, Some(&stored));
        assert_success(result, None);
    }

    #[test]
    fn rfc5802_6_channel_binding_data_mismatch_is_not_authorized() {
        let stored = creds("pencil");
        // The client sees a different exporter value (a man in the middle).
        let client = Client::new(ScramHash::Sha256, "romeo", "pencil", "n0nce")
            .gs2("p=tls-exporter,,", &[0x00; 32]);
        let mut server = ServerSession::new(Mechanism::ScramSha256Plus, bindings(), true, ITER);
        assert_eq!(
            exchange(&mut server, &client, Some(&stored)),
            Err(Failure::NotAuthorized)
        );
    }

    #[test]
    fn rfc5802_6_c_must_echo_the_gs2_header() {
        let stored = creds("pencil");
        let client = Client::new(ScramHash::Sha256, "romeo", "pencil", "n0nce").gs2("y,,", &[]);
        let mut server = session(Mechanism::ScramSha256);
        server.start(&client.first()).unwrap();
        let server_first = challenge(server.credentials(Some(&stored)).unwrap());
        // A correct proof over c=biws ("n,,") although the header said "y,,".
        let last = client.last_with(&server_first, "biws", None);
        assert_eq!(
            server.respond(last.message.as_bytes()),
            Err(Failure::NotAuthorized)
        );
    }

    #[test]
    fn rfc5802_6_flag_y_accepted_when_plus_not_offered() {
        let stored = creds("pencil");
        let client = Client::new(ScramHash::Sha256, "romeo", "pencil", "n0nce").gs2("y,,", &[]);
        assert_eq!(client.channel_binding(), "eSws");
        let mut server = ServerSession::new(Mechanism::ScramSha256, bindings(), false, ITER);
        assert_success(exchange(&mut server, &client, Some(&stored)), None);
    }

    #[test]
    fn rfc5802_6_flag_y_when_plus_offered_is_a_downgrade() {
        let mut server = ServerSession::new(Mechanism::ScramSha256, bindings(), true, ITER);
        assert_eq!(
            server.start(b"y,,n=romeo,r=n0nce"),
            Err(Failure::NotAuthorized)
        );
        // The flag n (client without channel binding) is still fine.
        let mut server = ServerSession::new(Mechanism::ScramSha256, bindings(), true, ITER);
        assert!(server.start(b"n,,n=romeo,r=n0nce").is_ok());
    }

    #[test]
    fn rfc5802_6_p_flag_with_non_plus_mechanism_refused() {
        let mut server = ServerSession::new(Mechanism::ScramSha1, bindings(), true, ITER);
        assert_eq!(
            server.start(b"p=tls-exporter,,n=romeo,r=n0nce"),
            Err(Failure::MalformedRequest)
        );
    }

    #[test]
    fn rfc5802_7_plus_mechanism_requires_supported_binding() {
        for first in [
            &b"n,,n=romeo,r=n0nce"[..],
            b"y,,n=romeo,r=n0nce",
            b"p=tls-unique,,n=romeo,r=n0nce",
        ] {
            let mut server = ServerSession::new(Mechanism::ScramSha256Plus, bindings(), true, ITER);
            assert_eq!(
                server.start(first),
                Err(Failure::NotAuthorized),
                "{first:?}"
            );
        }
        // Known type, but no data on this connection (e.g. tls-exporter on TLS 1.2).
        let cb = ChannelBindings {
            tls_exporter: None,
            tls_server_end_point: Some(vec![1; 32]),
        };
        let mut server = ServerSession::new(Mechanism::ScramSha256Plus, cb, true, ITER);
        assert_eq!(
            server.start(b"p=tls-exporter,,n=romeo,r=n0nce"),
            Err(Failure::NotAuthorized)
        );
    }

    // ---- message syntax ----------------------------------------------------------------

    #[test]
    fn rfc5802_7_malformed_client_first_messages() {
        for bad in [
            &b"n,,n=romeo"[..],
            b"n,,m=ext,n=romeo,r=n0nce",
            b"n,,n=romeo,r=n0nce,x=ext",
            b"q,,n=romeo,r=n0nce",
            b"n,,r=n0nce,n=romeo",
            b"n,,n=romeo,r=n0,nce",
            b"n,,n=romeo,r=n\x7fnce",
            b"n,,n=ro\xffmeo,r=n0nce",
            b"n,x=y,n=romeo,r=n0nce",
            b"garbage",
        ] {
            let mut server = session(Mechanism::ScramSha256);
            assert_eq!(server.start(bad), Err(Failure::MalformedRequest), "{bad:?}");
        }
        let mut oversize = b"n,,n=romeo,r=".to_vec();
        oversize.extend(std::iter::repeat_n(b'x', MAX_MESSAGE));
        assert_eq!(
            session(Mechanism::ScramSha256).start(&oversize),
            Err(Failure::MalformedRequest)
        );
    }

    #[test]
    fn rfc5802_5_1_bad_saslname_escapes() {
        for bad in [
            &b"n,,n=rom=eo,r=n0nce"[..],
            b"n,,n=rom=2ceo,r=n0nce",
            b"n,,n=romeo=,r=n0nce",
            b"n,a=adm=in,n=romeo,r=n0nce",
            b"n,a=,n=romeo,r=n0nce",
        ] {
            let mut server = session(Mechanism::ScramSha256);
            assert_eq!(server.start(bad), Err(Failure::MalformedRequest), "{bad:?}");
        }
        let mut server = session(Mechanism::ScramSha256);
        assert_eq!(
            server.start(b"n,,n=a=2Cb=3Dc,r=n0nce"),
            Ok(Step::NeedCredentials {
                username: "a,b=c".into()
            })
        );
    }

    #[test]
    fn rfc5802_7_malformed_client_final_messages() {
        let stored = creds("pencil");
        let client = Client::new(ScramHash::Sha256, "romeo", "pencil", "n0nce");
        let cases = |nonce: &str| -> Vec<Vec<u8>> {
            let proof = b64(&[0; 32]);
            vec![
                format!("c=biws,r={nonce}").into_bytes(),
                format!("c=biws,r={nonce},x=ext,p={proof}").into_bytes(),
                format!("r={nonce},c=biws,p={proof}").into_bytes(),
                format!("c=biws,r={nonce},p={proof},").into_bytes(),
                format!("c=bi*s,r={nonce},p={proof}").into_bytes(),
                format!("c=biws,r={nonce},p=!!!!").into_bytes(),
                // A proof of the wrong length for SHA-256.
                format!("c=biws,r={nonce},p={}", b64(&[0; 20])).into_bytes(),
                b"c=biws,r=\xff,p=AAAA".to_vec(),
                b"garbage".to_vec(),
            ]
        };
        for i in 0..cases("").len() {
            let mut server = session(Mechanism::ScramSha256);
            server.start(&client.first()).unwrap();
            let server_first =
                String::from_utf8(challenge(server.credentials(Some(&stored)).unwrap())).unwrap();
            let nonce = server_first
                .split(',')
                .next()
                .unwrap()
                .strip_prefix("r=")
                .unwrap();
            let bad = &cases(nonce)[i];
            assert_eq!(
                server.respond(bad),
                Err(Failure::MalformedRequest),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rfc5802_3_nonce_mismatch_is_not_authorized() {
        let stored = creds("pencil");
        let client = Client::new(ScramHash::Sha256, "romeo", "pencil", "n0nce");
        let mut server = session(Mechanism::ScramSha256).with_server_nonce("srvnonce");
        server.start(&client.first()).unwrap();
        let server_first = challenge(server.credentials(Some(&stored)).unwrap());
        // A valid proof, but over a nonce that is not the combined one.
        let last = client.last_with(&server_first, "biws", Some("n0nceXXXXXXXX"));
        assert_eq!(
            server.respond(last.message.as_bytes()),
            Err(Failure::NotAuthorized)
        );
    }

    #[test]
    fn rfc5802_7_authzid_is_returned() {
        let stored = creds("pencil");
        let mut client = Client::new(ScramHash::Sha1, "romeo", "pencil", "n0nce");
        client.gs2_header = "n,a=admin=2Cmontague@example.net,".into();
        let result = exchange(&mut session(Mechanism::ScramSha1), &client, Some(&stored));
        match result {
            Ok(Step::Success {
                username, authzid, ..
            }) => {
                assert_eq!(username, "romeo");
                assert_eq!(authzid.as_deref(), Some("admin,montague@example.net"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc6120_6_4_2_scram_without_initial_response() {
        let stored = creds("pencil");
        let client = Client::new(ScramHash::Sha256, "romeo", "pencil", "n0nce");
        let mut server = session(Mechanism::ScramSha256);
        assert_eq!(server.start(b""), Ok(Step::Challenge(Vec::new())));
        assert_eq!(
            server.respond(&client.first()),
            Ok(Step::NeedCredentials {
                username: "romeo".into()
            })
        );
        let server_first = challenge(server.credentials(Some(&stored)).unwrap());
        let last = client.last(&server_first);
        assert_success(server.respond(last.message.as_bytes()), Some(&last));
    }

    // ---- PLAIN -------------------------------------------------------------------------

    #[test]
    fn rfc4616_2_plain_success() {
        let stored = creds("pencil");
        let mut server = session(Mechanism::Plain);
        assert_eq!(
            server.start(b"\0romeo\0pencil"),
            Ok(Step::NeedCredentials {
                username: "romeo".into()
            })
        );
        assert_eq!(
            server.credentials(Some(&stored)),
            Ok(Step::Success {
                username: "romeo".into(),
                authzid: None,
                additional: Vec::new(),
            })
        );
    }

    #[test]
    fn rfc4616_2_plain_authzid_returned_and_no_initial_response() {
        let stored = creds("pencil");
        let mut server = session(Mechanism::Plain);
        assert_eq!(server.start(b""), Ok(Step::Challenge(Vec::new())));
        server
            .respond(b"montague@example.net\0romeo\0pencil")
            .unwrap();
        match server.credentials(Some(&stored)) {
            Ok(Step::Success { authzid, .. }) => {
                assert_eq!(authzid.as_deref(), Some("montague@example.net"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc4616_2_plain_wrong_password_and_unknown_user_not_authorized() {
        let stored = creds("pencil");
        let mut server = session(Mechanism::Plain);
        server.start(b"\0romeo\0pencils").unwrap();
        assert_eq!(
            server.credentials(Some(&stored)),
            Err(Failure::NotAuthorized)
        );
        let mut server = session(Mechanism::Plain);
        server.start(b"\0ghost\0pencil").unwrap();
        assert_eq!(server.credentials(None), Err(Failure::NotAuthorized));
    }

    #[test]
    fn rfc4616_2_plain_malformed_and_oversize() {
        let mut oversize = b"\0romeo\0".to_vec();
        oversize.extend_from_slice(&[b'p'; 256]);
        for bad in [
            &b"romeo\0pencil"[..],
            b"\0romeo\0pencil\0",
            b"\0\0pencil",
            b"\0romeo\0",
            b"\0ro\xffmeo\0pencil",
            &oversize,
        ] {
            let mut server = session(Mechanism::Plain);
            assert_eq!(server.start(bad), Err(Failure::MalformedRequest), "{bad:?}");
        }
    }

    // ---- ordering ----------------------------------------------------------------------

    #[test]
    fn calls_out_of_order_are_malformed() {
        let stored = creds("pencil");
        // respond / credentials before start.
        assert_eq!(
            session(Mechanism::ScramSha1).respond(b"c=biws"),
            Err(Failure::MalformedRequest)
        );
        assert_eq!(
            session(Mechanism::Plain).credentials(Some(&stored)),
            Err(Failure::MalformedRequest)
        );
        // start twice.
        let mut server = session(Mechanism::ScramSha1);
        server.start(b"n,,n=romeo,r=n0nce").unwrap();
        assert_eq!(
            server.start(b"n,,n=romeo,r=n0nce"),
            Err(Failure::MalformedRequest)
        );
        // respond while credentials are awaited.
        let mut server = session(Mechanism::ScramSha1);
        server.start(b"n,,n=romeo,r=n0nce").unwrap();
        assert_eq!(server.respond(b"c=biws"), Err(Failure::MalformedRequest));
        // credentials twice.
        let mut server = session(Mechanism::ScramSha1);
        server.start(b"n,,n=romeo,r=n0nce").unwrap();
        server.credentials(Some(&stored)).unwrap();
        assert_eq!(
            server.credentials(Some(&stored)),
            Err(Failure::MalformedRequest)
        );
        // anything after success.
        let client = Client::new(ScramHash::Sha256, "romeo", "pencil", "n0nce");
        let mut server = session(Mechanism::ScramSha256);
        assert_success(exchange(&mut server, &client, Some(&stored)), None);
        assert_eq!(server.respond(b""), Err(Failure::MalformedRequest));
        assert_eq!(server.credentials(None), Err(Failure::MalformedRequest));
        let mut server = session(Mechanism::Plain);
        server.start(b"\0romeo\0pencil").unwrap();
        server.credentials(Some(&stored)).unwrap();
        assert_eq!(server.respond(b""), Err(Failure::MalformedRequest));
    }

    #[test]
    fn session_is_spent_after_failure() {
        let stored = creds("pencil");
        let client = Client::new(ScramHash::Sha256, "romeo", "wrong", "n0nce");
        let mut server = session(Mechanism::ScramSha256);
        server.start(&client.first()).unwrap();
        let server_first = challenge(server.credentials(Some(&stored)).unwrap());
        let last = client.last(&server_first);
        assert_eq!(
            server.respond(last.message.as_bytes()),
            Err(Failure::NotAuthorized)
        );
        // Retrying the same (or any) message is refused.
        assert_eq!(
            server.respond(last.message.as_bytes()),
            Err(Failure::MalformedRequest)
        );
        assert_eq!(
            server.start(&client.first()),
            Err(Failure::MalformedRequest)
        );
    }

    /// Nothing a client sends may panic the server: arbitrary bytes through every step.
    #[test]
    fn arbitrary_input_never_panics() {
        let alphabet: &[&[u8]] = &[
            b"n",
            b"y",
            b"p=",
            b",",
            b"=",
            b"=2C",
            b"=3D",
            b"a=",
            b"n=",
            b"r=",
            b"c=",
            b"p=",
            b"m=",
            b"\0",
            b"\xff",
            b"\xc3",
            b"tls-exporter",
            b"biws",
            b"AAAA",
            b"x",
            b"\xe2\x82",
        ];
        let stored = creds("pencil");
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000u32 {
            let mut msg = Vec::new();
            for _ in 0..(next() % 12) {
                msg.extend_from_slice(alphabet[(next() % alphabet.len() as u64) as usize]);
            }
            let mechanism = Mechanism::ALL[(round % 5) as usize];
            let mut server = ServerSession::new(mechanism, bindings(), round % 2 == 0, 1);
            let _ = server.start(&msg);
            let _ = server.credentials(if round % 3 == 0 { None } else { Some(&stored) });
            let _ = server.respond(&msg);
            let _ = server.respond(&msg);
        }
    }
}
