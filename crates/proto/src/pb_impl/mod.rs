//! Conversions between the generated [`crate::v1`] messages and Corvid's types, one file per
//! message or enum. Everything that arrives from a peer goes through a `TryFrom` that returns
//! [`crate::Malformed`] rather than panicking.

mod delivery_report;
mod delivery_status;
mod envelope;
