//! What is stored instead of a password.

use std::borrow::Cow;

use precis_core::profile::PrecisFastInvocation;
use precis_profiles::OpaqueString;
use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::Failure;

/// The length of the random salts [`StoredCredentials::derive`] makes.
const SALT_LEN: usize = 16;

/// The hash function of a SCRAM family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScramHash {
    /// SHA-1 (SCRAM-SHA-1).
    Sha1,
    /// SHA-256 (SCRAM-SHA-256).
    Sha256,
}

/// RFC 5802 §3 server-side keys for one hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramKeys {
    /// Random salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

/// Everything Corvid stores about a password: keys for SHA-1 and SHA-256, never the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredentials {
    /// For SCRAM-SHA-1(-PLUS).
    pub sha1: ScramKeys,
    /// For SCRAM-SHA-256(-PLUS) and PLAIN.
    pub sha256: ScramKeys,
}

impl ScramKeys {
    /// Derives keys from a password (prepared with PRECIS OpaqueString first; an invalid
    /// password is `MalformedRequest`).
    ///
    /// An iteration count of zero is refused with `TemporaryAuthFailure`: RFC 5802 §5.1 requires
    /// a positive count, and a zero can only come from a local misconfiguration.
    pub fn derive(
        hash: ScramHash,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, Failure> {
        let prepared = prepare_password(password)?;
        Self::derive_prepared(hash, &prepared, salt, iterations)
    }

    /// [`ScramKeys::derive`] for a password already prepared with [`prepare_password`].
    pub(crate) fn derive_prepared(
        hash: ScramHash,
        prepared: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, Failure> {
        if iterations == 0 {
            return Err(Failure::TemporaryAuthFailure);
        }
        let salted = crypto::salted_password(hash, prepared.as_bytes(), salt, iterations);
        let client_key = crypto::hmac(hash, &salted, b"Client Key")?;
        let server_key = crypto::hmac(hash, &salted, b"Server Key")?;
        Ok(Self {
            salt: salt.to_vec(),
            iterations,
            stored_key: crypto::digest(hash, &client_key),
            server_key,
        })
    }
}

impl StoredCredentials {
    /// Derives both key sets with fresh random 16-byte salts.
    pub fn derive(password: &str, iterations: u32) -> Result<Self, Failure> {
        let prepared = prepare_password(password)?;
        let sha1_salt = crypto::random_bytes(SALT_LEN)?;
        let sha256_salt = crypto::random_bytes(SALT_LEN)?;
        Ok(Self {
            sha1: ScramKeys::derive_prepared(ScramHash::Sha1, &prepared, &sha1_salt, iterations)?,
            sha256: ScramKeys::derive_prepared(
                ScramHash::Sha256,
                &prepared,
                &sha256_salt,
                iterations,
            )?,
        })
    }
    /// The keys for one hash.
    pub fn keys(&self, hash: ScramHash) -> &ScramKeys {
        match hash {
            ScramHash::Sha1 => &self.sha1,
            ScramHash::Sha256 => &self.sha256,
        }
    }
}

/// `Normalize(password)`: PRECIS OpaqueString (RFC 8265 §4.2), which replaces SASLprep
/// (RFC 7613 §4.2). A password the profile refuses (empty, control characters…) can never
/// have been stored, so it is `MalformedRequest`.
pub(crate) fn prepare_password(password: &str) -> Result<Cow<'_, str>, Failure> {
    OpaqueString::enforce(password).map_err(|_| Failure::MalformedRequest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    use super::*;

    /// RFC 5802 §3: keys are one hash output long and a function of (password, salt, i) only.
    /// The values themselves are checked against the RFC vectors in `server.rs`.
    #[test]
    fn rfc5802_3_derive_is_deterministic_and_hash_sized() {
        let salt = STANDARD.decode("QSXCR+Q6sek8bf92").unwrap();
        let a = ScramKeys::derive(ScramHash::Sha1, "pencil", &salt, 4096).unwrap();
        let b = ScramKeys::derive(ScramHash::Sha1, "pencil", &salt, 4096).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.stored_key.len(), 20);
        assert_eq!(a.server_key.len(), 20);
        let c = ScramKeys::derive(ScramHash::Sha256, "pencil", &salt, 16).unwrap();
        assert_eq!(c.stored_key.len(), 32);
        assert_ne!(
            c,
            ScramKeys::derive(ScramHash::Sha256, "pencil", &salt, 17).unwrap()
        );
    }

    /// RFC 5802 §5 example (user "user", password "pencil", SHA-1): ServerSignature
    /// `rmF9pqV8S7suAoZWja4dJRkFsKQ=` is HMAC(ServerKey, AuthMessage).
    #[test]
    fn rfc5802_5_sha1_server_signature_vector() {
        let salt = STANDARD.decode("QSXCR+Q6sek8bf92").unwrap();
        let keys = ScramKeys::derive(ScramHash::Sha1, "pencil", &salt, 4096).unwrap();
        let auth_message = "n=user,r=fyko+d2lbbFgONRv9qkxdawL,\
            r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,\
            c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let signature =
            crypto::hmac(ScramHash::Sha1, &keys.server_key, auth_message.as_bytes()).unwrap();
        assert_eq!(STANDARD.encode(signature), "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    }

    /// RFC 8265 §4.2: OpaqueString maps non-ASCII spaces to U+0020 and applies NFC, so
    /// equivalent spellings derive equal keys.
    #[test]
    fn rfc8265_4_2_password_is_prepared() {
        let salt = [7u8; 16];
        let nbsp = ScramKeys::derive(ScramHash::Sha256, "a\u{a0}b", &salt, 2).unwrap();
        let space = ScramKeys::derive(ScramHash::Sha256, "a b", &salt, 2).unwrap();
        assert_eq!(nbsp, space);
        let decomposed = ScramKeys::derive(ScramHash::Sha256, "e\u{301}", &salt, 2).unwrap();
        let composed = ScramKeys::derive(ScramHash::Sha256, "\u{e9}", &salt, 2).unwrap();
        assert_eq!(decomposed, composed);
    }

    #[test]
    fn rfc8265_4_2_invalid_passwords_refused() {
        assert_eq!(
            ScramKeys::derive(ScramHash::Sha256, "", &[1; 16], 2),
            Err(Failure::MalformedRequest)
        );
        assert_eq!(
            ScramKeys::derive(ScramHash::Sha256, "bell\u{7}", &[1; 16], 2),
            Err(Failure::MalformedRequest)
        );
        assert_eq!(
            StoredCredentials::derive("", 2),
            Err(Failure::MalformedRequest)
        );
    }

    #[test]
    fn rfc5802_5_1_zero_iterations_refused() {
        assert_eq!(
            ScramKeys::derive(ScramHash::Sha1, "pencil", &[1; 16], 0),
            Err(Failure::TemporaryAuthFailure)
        );
    }

    #[test]
    fn stored_credentials_have_fresh_16_byte_salts() {
        let a = StoredCredentials::derive("pencil", 8).unwrap();
        let b = StoredCredentials::derive("pencil", 8).unwrap();
        assert_eq!(a.sha1.salt.len(), 16);
        assert_eq!(a.sha256.salt.len(), 16);
        assert_ne!(a.sha1.salt, a.sha256.salt);
        assert_ne!(a.sha256.salt, b.sha256.salt);
        assert_eq!(a.keys(ScramHash::Sha1).iterations, 8);
        // Derivation with the stored salt reproduces the stored keys.
        let again = ScramKeys::derive(ScramHash::Sha256, "pencil", &a.sha256.salt, 8).unwrap();
        assert_eq!(again, a.sha256);
    }
}
