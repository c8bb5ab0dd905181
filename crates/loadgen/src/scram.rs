//! A SCRAM client (RFC 5802, RFC 7677), written independently of the server's `corvid-sasl` so
//! that the two implementations check each other (the test kit uses it for that) and so that the
//! load generator measures servers with a client that shares no code with any of them. Pure:
//! strings in, strings out.

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The hash of a SCRAM family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-1 (RFC 5802).
    Sha1,
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
}

/// What the client says about channel binding in its gs2 header (RFC 5802 §6, §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelBinding {
    /// `n`: the client does not support channel binding.
    Unsupported,
    /// `y`: the client supports it but thinks the server does not.
    NotAdvertised,
    /// `p=<name>`: the client binds to this channel with this data (the -PLUS mechanisms).
    Bind {
        /// The channel-binding type, e.g. `tls-exporter` (RFC 9266).
        name: String,
        /// The channel-binding data of the connection.
        data: Vec<u8>,
    },
}

/// One client-side SCRAM exchange.
#[derive(Debug, Clone)]
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    gs2_header: String,
    cb_data: Vec<u8>,
    client_nonce: String,
    client_first_bare: String,
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// A new exchange for `username` with a random client nonce.
    pub fn new(hash: ScramHash, username: &str, password: &str, cb: ChannelBinding) -> Self {
        let mut nonce = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut nonce);
        Self::with_nonce(hash, username, password, cb, &B64.encode(nonce))
    }

    /// Like [`ScramClient::new`] with a given client nonce (printable, no `,`).
    pub fn with_nonce(
        hash: ScramHash,
        username: &str,
        password: &str,
        cb: ChannelBinding,
        nonce: &str,
    ) -> Self {
        let (gs2_header, cb_data) = match cb {
            ChannelBinding::Unsupported => ("n,,".to_owned(), Vec::new()),
            ChannelBinding::NotAdvertised => ("y,,".to_owned(), Vec::new()),
            ChannelBinding::Bind { name, data } => (format!("p={name},,"), data),
        };
        Self {
            hash,
            password: password.to_owned(),
            gs2_header,
            cb_data,
            client_nonce: nonce.to_owned(),
            client_first_bare: format!("n={},r={nonce}", escape_username(username)),
            expected_server_signature: None,
        }
    }

    /// The client-first-message (RFC 5802 §7): gs2 header and `n=…,r=…`.
    pub fn client_first(&self) -> String {
        format!("{}{}", self.gs2_header, self.client_first_bare)
    }

    /// Reads the server-first-message and returns the client-final-message with the proof.
    ///
    /// Checks that the combined nonce starts with ours (RFC 5802 §5.1, `r=`).
    pub fn client_final(&mut self, server_first: &str) -> anyhow::Result<String> {
        let sf = ServerFirst::parse(server_first)?;
        let salted = salted_password(self.hash, self.password.as_bytes(), &sf.salt, sf.iterations);
        self.client_final_salted(server_first, &sf, &salted)
    }

    /// Like [`ScramClient::client_final`] with the SaltedPassword (RFC 5802 §3) already known for
    /// this salt and iteration count, as clients that store it instead of the password do: the
    /// PBKDF2 derivation is skipped. `sf` is `server_first` parsed, `salted` comes from
    /// [`salted_password`] for `sf.salt` and `sf.iterations`.
    pub fn client_final_salted(
        &mut self,
        server_first: &str,
        sf: &ServerFirst,
        salted: &[u8],
    ) -> anyhow::Result<String> {
        if !sf.nonce.starts_with(&self.client_nonce) || sf.nonce.len() == self.client_nonce.len() {
            bail!(
                "server nonce `{}` does not extend the client nonce `{}`",
                sf.nonce,
                self.client_nonce
            );
        }
        let client_key = hmac(self.hash, salted, b"Client Key")?;
        let stored_key = digest(self.hash, &client_key);
        let mut cbind_input = self.gs2_header.as_bytes().to_vec();
        cbind_input.extend_from_slice(&self.cb_data);
        let without_proof = format!("c={},r={}", B64.encode(&cbind_input), sf.nonce);
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, server_first, without_proof
        );
        let client_signature = hmac(self.hash, &stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(self.hash, salted, b"Server Key")?;
        self.expected_server_signature =
            Some(hmac(self.hash, &server_key, auth_message.as_bytes())?);
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks the server-final-message `v=…` against the signature we expect (RFC 5802 §3:
    /// the client authenticates the server). `e=…` is reported as an error.
    pub fn verify_server_final(&self, server_final: &str) -> anyhow::Result<()> {
        let expected = self
            .expected_server_signature
            .as_ref()
            .ok_or_else(|| anyhow!("server-final before client-final"))?;
        if let Some(e) = server_final.strip_prefix("e=") {
            bail!("server-final-message carries an error: {e}");
        }
        let v = server_final
            .strip_prefix("v=")
            .ok_or_else(|| anyhow!("server-final-message `{server_final}` has no v="))?;
        let got = B64
            .decode(v)
            .with_context(|| format!("server signature `{v}` is not base64"))?;
        if &got != expected {
            bail!("server signature does not verify: the server does not know the password");
        }
        Ok(())
    }
}

/// A parsed server-first-message (RFC 5802 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFirst {
    /// The combined nonce, `r=`.
    pub nonce: String,
    /// The salt, `s=` decoded.
    pub salt: Vec<u8>,
    /// The iteration count, `i=`.
    pub iterations: u32,
}

impl ServerFirst {
    /// Parses `r=…,s=…,i=…` (extensions refused, as RFC 5802 §7 reserves `m=`).
    pub fn parse(msg: &str) -> anyhow::Result<Self> {
        let mut parts = msg.split(',');
        let mut field = |name: &str| -> anyhow::Result<&str> {
            parts
                .next()
                .and_then(|p| p.strip_prefix(name))
                .ok_or_else(|| anyhow!("server-first-message `{msg}`: expected `{name}`"))
        };
        let nonce = field("r=")?.to_owned();
        let salt = B64
            .decode(field("s=")?)
            .with_context(|| format!("server-first-message `{msg}`: salt is not base64"))?;
        let iterations: u32 = field("i=")?
            .parse()
            .with_context(|| format!("server-first-message `{msg}`: bad iteration count"))?;
        if parts.next().is_some() {
            bail!("server-first-message `{msg}` has extra fields");
        }
        if nonce.is_empty() || salt.is_empty() || iterations == 0 {
            bail!("server-first-message `{msg}` has an empty nonce, salt or count");
        }
        Ok(Self {
            nonce,
            salt,
            iterations,
        })
    }
}

/// `saslname` escaping (RFC 5802 §5.1): `=` and `,` are written `=3D` and `=2C`.
pub fn escape_username(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// SaltedPassword := Hi(password, salt, i) (RFC 5802 §3): PBKDF2 with the family's HMAC.
pub fn salted_password(hash: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => {
            let mut out = [0u8; 20];
            pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
            out.to_vec()
        }
        ScramHash::Sha256 => {
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
            out.to_vec()
        }
    }
}

fn hmac(hash: ScramHash, key: &[u8], data: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(match hash {
        ScramHash::Sha1 => {
            let mut m = Hmac::<Sha1>::new_from_slice(key).map_err(|e| anyhow!("hmac: {e}"))?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        ScramHash::Sha256 => {
            let mut m = Hmac::<Sha256>::new_from_slice(key).map_err(|e| anyhow!("hmac: {e}"))?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    })
}

fn digest(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => Sha1::digest(data).to_vec(),
        ScramHash::Sha256 => Sha256::digest(data).to_vec(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc5802_section5_example_exchange_is_reproduced() {
        // RFC 5802 §5: user "user", password "pencil", SCRAM-SHA-1.
        let mut c = ScramClient::with_nonce(
            ScramHash::Sha1,
            "user",
            "pencil",
            ChannelBinding::Unsupported,
            "fyko+d2lbbFgONRv9qkxdawL",
        );
        assert_eq!(c.client_first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let fin = c
            .client_final("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            fin,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        c.verify_server_final("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
            .unwrap();
        assert!(c
            .verify_server_final("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .is_err());
    }

    #[test]
    fn rfc7677_section3_example_exchange_is_reproduced() {
        // RFC 7677 §3: SCRAM-SHA-256.
        let mut c = ScramClient::with_nonce(
            ScramHash::Sha256,
            "user",
            "pencil",
            ChannelBinding::Unsupported,
            "rOprNGfwEbeRWgbNEkqO",
        );
        let fin = c
            .client_final(
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            fin,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn a_nonce_that_does_not_extend_ours_is_refused() {
        let mut c = ScramClient::with_nonce(
            ScramHash::Sha1,
            "u",
            "p",
            ChannelBinding::Unsupported,
            "abc",
        );
        assert!(c
            .client_final("r=xyz123,s=QSXCR+Q6sek8bf92,i=4096")
            .is_err());
        assert!(c.client_final("r=abc,s=QSXCR+Q6sek8bf92,i=4096").is_err());
    }

    #[test]
    fn a_stored_salted_password_gives_the_same_proof_as_the_password() {
        // RFC 5802 §3: the proof depends on the password only through SaltedPassword.
        let sf = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
        let parsed = ServerFirst::parse(sf).unwrap();
        let salted = salted_password(ScramHash::Sha1, b"pencil", &parsed.salt, 4096);
        let mut c = ScramClient::with_nonce(
            ScramHash::Sha1,
            "user",
            "pencil",
            ChannelBinding::Unsupported,
            "fyko+d2lbbFgONRv9qkxdawL",
        );
        assert_eq!(
            c.client_final_salted(sf, &parsed, &salted).unwrap(),
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        c.verify_server_final("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
            .unwrap();
    }

    #[test]
    fn usernames_are_escaped() {
        assert_eq!(escape_username("a=b,c"), "a=3Db=2Cc");
    }
}
