//! What is stored instead of a password.

use serde::{Deserialize, Serialize};

use crate::Failure;

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
    pub fn derive(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> Result<Self, Failure> {
        todo!()
    }
}

impl StoredCredentials {
    /// Derives both key sets with fresh random 16-byte salts.
    pub fn derive(password: &str, iterations: u32) -> Result<Self, Failure> {
        todo!()
    }
    /// The keys for one hash.
    pub fn keys(&self, hash: ScramHash) -> &ScramKeys {
        match hash {
            ScramHash::Sha1 => &self.sha1,
            ScramHash::Sha256 => &self.sha256,
        }
    }
}
