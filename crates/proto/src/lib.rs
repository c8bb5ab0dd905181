//! gRPC between Corvid nodes: the code generated from `proto/corvid/v1/*.proto`, the conversions
//! between its messages and Corvid's types, and the one mapping of errors to [`tonic::Status`].
//!
//! # Layout
//! - `build.rs`: compiles the `.proto` files with `protox` (pure Rust, no system `protoc`) and
//!   generates messages, clients and servers with `tonic-prost-build` into [`v1`].
//! - [`v1`]: the generated code, one service per file under `proto/corvid/v1/`:
//!   `Router` (edge ⇄ edge stanza delivery), `RaftService` (registry Raft transport, opaque
//!   payloads), `Admin` (cluster administration).
//! - `error.rs`: [`ClusterError`], the errors a cluster call can end with, and its mapping to and
//!   from [`tonic::Status`]. No other file builds a `Status`.
//! - `malformed.rs`: [`Malformed`], why a message from a peer was refused, one variant per fault.
//! - `delivery.rs`: [`Delivery`], the outcome of delivering one envelope.
//! - `routed.rs`: [`RoutedStanza`], a checked envelope: JIDs parsed, session optional.
//! - `transport.rs`: [`Transport`], the one place node-to-node channels and servers are made:
//!   plain HTTP/2, or mutual TLS against the cluster CA.
//! - `pb_impl/`: the conversions between [`v1`] messages and the types above, one file per
//!   message or enum.
//!
//! ```text
//!  edge A                                                    edge B
//!  RoutedStanza ─into─▶ v1::Envelope ══ Router.Deliver ══▶ v1::Envelope ─try_from─▶ RoutedStanza
//!                                         (one stream                    │ (Malformed → INVALID)
//!  Delivery ◀─delivery()── v1::DeliveryReport ◀══ per edge pair) ══ DeliveryReport::new(seq, Delivery)
//! ```
//!
//! # Adding a service
//! 1. Write `proto/corvid/v1/<name>.proto` (`package corvid.v1;`, a comment on every service,
//!    rpc, message, field and enum value) and add its path to `FILES` in `build.rs`.
//! 2. Its messages, `<name>_client` and `<name>_server` appear in [`v1`] on the next build.
//! 3. Conversions to Corvid's types go in `pb_impl/<message>.rs`, refusing bad input with a
//!    [`Malformed`] variant; server handlers return [`ClusterError`] converted into a `Status`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod delivery;
mod error;
mod malformed;
mod pb_impl;
mod routed;
mod transport;

pub use delivery::Delivery;
pub use error::ClusterError;
pub use malformed::Malformed;
pub use routed::RoutedStanza;
pub use transport::{Transport, TransportError};

/// Package `corvid.v1`: messages, `*_client` and `*_server` modules generated from
/// `proto/corvid/v1/`. The `.proto` comments become the items' documentation.
pub mod v1 {
    // Generated code: every item carries the .proto comment, but prost and tonic also generate
    // undocumented helpers (client/server modules' internals, `*_server::SERVICE_NAME`...).
    #![allow(missing_docs)]

    tonic::include_proto!("corvid.v1");
}
