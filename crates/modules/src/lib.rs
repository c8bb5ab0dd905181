//! Extension modules. Each registers its IQ handlers, features and hooks as data through
//! [`corvid_core::Registrar`] and sees the server only through [`corvid_core::Services`].
//!
//! # Layout
//! One file per module: `ping.rs` (XEP-0199), `disco.rs` (XEP-0030), `version.rs` (XEP-0092),
//! `session.rs` (the legacy RFC 3921 session IQ). [`defaults`] lists what a node installs.

use std::sync::Arc;

use corvid_core::Module;

pub mod disco;
pub mod ping;
pub mod session;
pub mod version;

/// The modules a node installs by default.
pub fn defaults() -> Vec<Arc<dyn Module>> {
    vec![
        Arc::new(disco::Disco),
        Arc::new(ping::Ping),
        Arc::new(session::LegacySession),
        Arc::new(version::Version),
    ]
}
