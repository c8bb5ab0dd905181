//! The shared vocabulary of the server: ids, the module trait and its registrar, IQ handler
//! tables, hooks, and the [`Services`] a handler sees.
//!
//! # Layout
//! - `ids.rs`: [`NodeId`], [`SessionId`], stream ids.
//! - `module.rs`: [`Module`] (registers as data), [`Registrar`] → frozen [`Modules`].
//! - `hooks.rs`: [`Event`], [`Hook`], [`Flow`]: named events folded by priority.
//! - `registry.rs`: [`SessionRegistry`], the session table interface, and [`Route`].
//! - `remote.rs`: [`RemoteDelivery`], handing a stanza to a session on another node.
//! - `services.rs`: [`Services`], what a handler may use (domains, store, sending stanzas).
//!
//! ```text
//!   Module::register(&mut Registrar) ─▶ Modules { iq table, features, identities, hooks }
//!                                            │
//!   router: IQ to server ──lookup──▶ IqHandler::handle(&Services, &Stanza) ─▶ result | StanzaError
//! ```

mod hooks;
mod ids;
mod module;
mod registry;
mod remote;
mod services;

pub use hooks::{Event, Flow, Hook};
pub use ids::{random_id, NodeId, SessionId};
pub use module::{Identity, IqHandler, IqOutcome, IqTarget, Module, Modules, Registrar, Spec};
pub use registry::{caused_at, seen_position, BindError, Route, SessionRegistry};
pub use remote::{RemoteDelivery, RemoteError};
pub use services::{Services, StanzaSender};
