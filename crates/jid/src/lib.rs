//! JIDs (RFC 7622): `[localpart@]domainpart[/resourcepart]`.
//!
//! # Layout
//! - `parts.rs`: [`NodePart`], [`DomainPart`], [`ResourcePart`], each normalized once on
//!   construction (localpart: PRECIS UsernameCaseMapped; domainpart: IDNA to Unicode, lowercase,
//!   no trailing dot; resourcepart: PRECIS OpaqueString) and at most 1023 bytes.
//! - `jid.rs`: [`BareJid`], [`FullJid`], and [`Jid`] (either), with `FromStr` and `Display`.
//! - `error.rs`: [`JidError`], one variant per fault.
//!
//! A value of these types is always valid and normalized, so comparing them compares addresses.

mod error;
mod jid;
mod parts;

pub use error::JidError;
pub use jid::{BareJid, FullJid, Jid};
pub use parts::{DomainPart, NodePart, ResourcePart};
