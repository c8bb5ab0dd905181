//! The roster (RFC 6121 §2) and presence subscriptions (RFC 6121 §3).
//!
//! # Layout
//! `subscription.rs` is the pure subscription state machine of RFC 6121 Appendix A: a roster
//! item's state plus one presence subscription stanza in, the new state and what the server
//! must do about it out. It does no I/O; the roster module that stores items, pushes them and
//! routes stanzas drives it.

pub mod subscription;
