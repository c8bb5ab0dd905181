//! Cross-edge delivery: how a stanza for a session on another node gets there.
//!
//! # Layout
//! - `forward.rs`: [`GrpcForwarder`], the sending side. It implements
//!   [`corvid_core::RemoteDelivery`], which the [`corvid_router::Router`] calls for every route
//!   whose node is not its own. One long-lived `Router.Deliver` stream per peer node, opened on
//!   first use and reopened after a failure; a bounded window of envelopes in flight per peer;
//!   each stanza waits for its own report, with a deadline.
//! - `service.rs`: [`DeliverService`], the receiving side: the `corvid.v1.Router` gRPC service.
//!   It checks each envelope, parses its stanza and hands it to
//!   [`corvid_router::Router::deliver_local`], answering every envelope with one report, in order.
//! - `xml.rs`: the stanza bytes of an envelope, both ways.
//!
//! ```text
//!  node 1                                                         node 2
//!  Router::route ─▶ decide ─▶ route.node == 2                   DeliverService (one task per stream)
//!                               │                                  │ RoutedStanza::try_from, parse XML
//!                               ▼                                  ▼
//!                  GrpcForwarder::deliver ══ Envelope{seq} ══▶ Router::deliver_local(session)
//!                   (window, deadline)                             │ `deliver` hooks, mailbox
//!                               ▲                                  │
//!                               └════════ DeliveryReport{seq} ◀════┘ DELIVERED | RECIPIENT_GONE
//!                                                                    | QUEUE_FULL | INVALID
//!  Ok(()) or RemoteError ─▶ Router: undelivered everywhere ─▶ error reply to the sender
//! ```
//!
//! Order: the router awaits each delivery before routing the sender's next stanza, and a peer's
//! envelopes leave in `seq` order on one stream that the receiver processes one at a time, so
//! the order of every sender→recipient pair is kept.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod forward;
mod service;
mod xml;

pub use forward::{ForwardConfig, GrpcForwarder};
pub use service::DeliverService;
