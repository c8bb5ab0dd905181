//! Corvid, the composition root: settings → storage → router → listeners.
//!
//! # Layout
//! - `server.rs`: [`server::Server`]: starts a node from [`corvid_settings::Settings`].
//! - `tls.rs`: certificate loading, or generation of a self-signed one.
//! - `cli/`: the admin commands (`corvid user …`).

pub mod cli;
pub mod server;
pub mod tls;
