//! Stanza routing: where a stanza goes, and getting it there.
//!
//! # Layout
//! - `decide.rs`: the pure routing rules of RFC 6120 §10 and RFC 6121 §8.5 as a function from
//!   (stanza, what the registry knows) to a [`Decision`]. No I/O; unit-tested as a table.
//! - `registry.rs`: [`SessionRegistry`], the interface to the session table (which full JID is
//!   bound where, with what priority), and [`LocalRegistry`], its in-process implementation.
//!   In the cluster it becomes the Raft replica: reads stay local, writes go through the log.
//! - `router.rs`: [`Router`]: local mailboxes, the server's IQ dispatch, and delivery.
//! - `mailbox.rs`: [`Mailbox`] and [`Inbox`], a session's bounded queue, empty-costs-nothing.
//!
//! ```text
//!  c2s session ──route(stanza)──▶ Router ──decide()──▶ Deliver(sessions) ─▶ mailboxes ─▶ c2s drivers
//!                                   │                  Server(target)   ─▶ Modules IQ table
//!                                   │                  Reply(error)     ─▶ back to the sender
//!                                   └─ reads SessionRegistry (local replica)
//! ```

mod decide;
pub mod mailbox;
mod registry;
mod router;

pub use corvid_core::{BindError, Route, SessionRegistry};
pub use decide::{decide, Decision, ResourceView};
pub use mailbox::{mailbox, Inbox, Mailbox};
pub use registry::LocalRegistry;
pub use router::{Outbound, Router};
