//! The primitives of RFC 5802 §2.2 (`H`, `HMAC`, `Hi`) for either hash, plus randomness.
//!
//! Every function is fallible instead of panicking: HMAC accepts keys of any length and the OS
//! random source practically never fails, but neither is worth a crash if it does.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::{Failure, ScramHash};

/// `HMAC(key, data)` with the family's hash.
pub(crate) fn hmac(hash: ScramHash, key: &[u8], data: &[u8]) -> Result<Vec<u8>, Failure> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Result<Vec<u8>, Failure> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .map_err(|_| Failure::TemporaryAuthFailure)?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    }
    match hash {
        ScramHash::Sha1 => run::<Hmac<Sha1>>(key, data),
        ScramHash::Sha256 => run::<Hmac<Sha256>>(key, data),
    }
}

/// `H(data)`.
pub(crate) fn digest(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => Sha1::digest(data).to_vec(),
        ScramHash::Sha256 => Sha256::digest(data).to_vec(),
    }
}

/// The output length of `H` in bytes.
pub(crate) fn output_len(hash: ScramHash) -> usize {
    match hash {
        ScramHash::Sha1 => 20,
        ScramHash::Sha256 => 32,
    }
}

/// `Hi(password, salt, i)`, which is PBKDF2 with HMAC-H and an output of one hash length.
pub(crate) fn salted_password(
    hash: ScramHash,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut out = vec![0u8; output_len(hash)];
    match hash {
        ScramHash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
        ScramHash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
    }
    out
}

/// `n` bytes from the operating system's random source.
pub(crate) fn random_bytes(n: usize) -> Result<Vec<u8>, Failure> {
    let mut out = vec![0u8; n];
    OsRng
        .try_fill_bytes(&mut out)
        .map_err(|_| Failure::TemporaryAuthFailure)?;
    Ok(out)
}

/// The salt shown for a user that does not exist: the first 16 bytes of
/// `HMAC-SHA-256(process secret, family || 0x00 || username)`.
///
/// It is stable for one username within one process, so asking twice does not reveal that the
/// user is unknown (RFC 6120 §6.5.10). The hash family is mixed in because a real account has an
/// independent random salt per family: the same fake salt for SHA-1 and SHA-256 would give
/// unknown users away.
pub(crate) fn fake_salt(hash: ScramHash, username: &str) -> Result<Vec<u8>, Failure> {
    let family: &[u8] = match hash {
        ScramHash::Sha1 => b"SCRAM-SHA-1",
        ScramHash::Sha256 => b"SCRAM-SHA-256",
    };
    let mut input = Vec::with_capacity(family.len() + 1 + username.len());
    input.extend_from_slice(family);
    input.push(0);
    input.extend_from_slice(username.as_bytes());
    let mut mac = hmac(ScramHash::Sha256, process_secret()?, &input)?;
    mac.truncate(16);
    Ok(mac)
}

/// A random secret made once per process, the key of [`fake_salt`].
fn process_secret() -> Result<&'static [u8], Failure> {
    static SECRET: OnceLock<Vec<u8>> = OnceLock::new();
    if let Some(secret) = SECRET.get() {
        return Ok(secret);
    }
    let fresh = random_bytes(32)?;
    // If another thread won the race its secret is kept and `fresh` is dropped.
    Ok(SECRET.get_or_init(|| fresh))
}

/// XOR of two equal-length byte strings (`ClientProof XOR ClientSignature`).
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}
