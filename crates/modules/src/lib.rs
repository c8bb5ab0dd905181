//! Extension modules. Each registers its IQ handlers, features and hooks as data through
//! [`corvid_core::Registrar`] and sees the server only through [`corvid_core::Services`].
//!
//! # Layout
//! One file (or folder) per module, named after what it does:
//!
//! | module | spec |
//! |---|---|
//! | `blocking.rs` | XEP-0191 blocking command |
//! | `carbons.rs` | XEP-0280 message carbons |
//! | `csi.rs` | XEP-0352 client state indication |
//! | `disco.rs` | XEP-0030 service discovery |
//! | `last.rs` | XEP-0012 last activity |
//! | `offline.rs` | XEP-0160 offline messages |
//! | `ping.rs` | XEP-0199 ping |
//! | `roster/` | RFC 6121 rosters, subscriptions and presence; XEP-0237 versioning |
//! | `session.rs` | the legacy RFC 3921 session IQ |
//! | `stanza_id.rs` | XEP-0359 stanza ids |
//! | `time.rs` | XEP-0202 entity time |
//! | `vcard.rs` | XEP-0054 vcard-temp |
//! | `version.rs` | XEP-0092 software version |
//!
//! [`defaults`] lists what a node installs.

use std::sync::Arc;

use corvid_core::Module;

pub mod blocking;
pub mod carbons;
pub mod csi;
pub mod disco;
pub mod last;
pub mod offline;
pub mod ping;
pub mod roster;
pub mod session;
pub mod stanza_id;
pub mod time;
pub mod vcard;
pub mod version;

/// The modules a node installs by default.
// Every module is built with `default()`, stateless or not, so adding state to one is local.
#[allow(clippy::default_constructed_unit_structs)]
pub fn defaults() -> Vec<Arc<dyn Module>> {
    vec![
        Arc::new(blocking::Blocking::default()),
        Arc::new(carbons::Carbons::default()),
        Arc::new(csi::Csi::default()),
        Arc::new(disco::Disco),
        Arc::new(last::LastActivity::default()),
        Arc::new(offline::Offline::default()),
        Arc::new(ping::Ping),
        Arc::new(roster::Roster::default()),
        Arc::new(session::LegacySession),
        Arc::new(stanza_id::StanzaId::default()),
        Arc::new(time::EntityTime::default()),
        Arc::new(vcard::Vcard::default()),
        Arc::new(version::Version),
    ]
}
