//! Stanzas: a typed header over the raw element, so unknown payloads pass through untouched.
//!
//! # Layout
//! - `ns.rs`: namespace constants.
//! - `stanza.rs`: [`Stanza`] (kind, `id`, `type`, `to`, `from` parsed once) and the typed `type`s.
//! - `error.rs`: [`StanzaError`] (RFC 6120 §8.3) and [`StreamError`] (RFC 6120 §4.9).
//!
//! Parsing separates "not mine" from "broken": an element that is not a stanza at all is
//! [`ParseError::NotAStanza`] (the stream's `unsupported-stanza-type`), a stanza whose
//! addresses are bad is [`ParseError::Invalid`] (a stanza error, the stream stays up).

pub mod error;
pub mod ns;
mod stanza;

pub use error::{Condition, ErrorType, StanzaError, StreamCondition, StreamError};
pub use stanza::{IqType, Kind, MessageType, ParseError, PresenceType, Stanza};
