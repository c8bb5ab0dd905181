//! Client-to-server connections (RFC 6120 §4–§7).
//!
//! # Layout
//! - `machine.rs`: [`Machine`], the negotiation and session state machine. Pure: it takes
//!   [`Input`]s (parser events, TLS up, credentials found, bind done, timeout) and returns
//!   [`Action`]s (bytes to send, start TLS, look up credentials, bind, route a stanza, close).
//! - `features.rs`: what `<stream:features/>` offers in each state.
//! - `driver.rs`: the one file with I/O: the socket, TLS, timers, rate limit, mailbox.
//! - `tls.rs`: server-side TLS on rustls's unbuffered API, holding no buffer while idle.
//! - `limits.rs`: node-wide limits on unauthenticated connections.
//!
//! ```text
//!  socket ─bytes─▶ xml::Parser ─events─▶ Machine ─actions─▶ driver: write / TLS / store / router
//!    ▲                                     ▲                        │
//!    └──────────── writes ◀── mailbox ◀── router (stanzas for this session)
//! ```

mod driver;
mod features;
mod limits;
mod machine;
mod telemetry;
pub mod tls;

pub use driver::{accept_loop, accept_until, serve_connection, C2sContext, Listener, TlsMaterial};
pub use limits::ConnectionLimits;
pub use machine::{Action, BindFailure, Config, Input, Machine, State};
