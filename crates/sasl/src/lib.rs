//! SASL for XMPP servers, sans I/O (RFC 6120 §6, RFC 5802, RFC 7677, RFC 4616, RFC 9266).
//!
//! # Layout
//! - `mechanism.rs`: [`Mechanism`] names and properties.
//! - `credentials.rs`: [`ScramKeys`] / [`StoredCredentials`]: what is stored instead of passwords,
//!   and their derivation (password prepared with PRECIS OpaqueString, PBKDF2, RFC 5802 §3).
//! - `server.rs`: [`ServerSession`], one authentication exchange as a value: bytes in, [`Step`] out.
//!   It never does I/O; the caller fetches credentials when asked ([`Step::NeedCredentials`]).
//! - `failure.rs`: [`Failure`], the RFC 6120 §6.5 conditions.
//! - `scram.rs`, `plain.rs` (private): syntax of the client messages.
//! - `crypto.rs` (private): `H`, `HMAC`, `Hi` for both hashes; randomness; fake salts.
//!
//! ```text
//! start(initial) ──▶ NeedCredentials{username} ──credentials(Option)──▶ Challenge ──respond──▶ Success
//!        └────────────────────────── Failure (any step) ─────────────────────────────────────┘
//! ```

mod credentials;
mod crypto;
mod failure;
mod mechanism;
mod plain;
mod scram;
mod server;

pub use credentials::{ScramHash, ScramKeys, StoredCredentials};
pub use failure::Failure;
pub use mechanism::Mechanism;
pub use server::{ChannelBindings, ServerSession, Step};
