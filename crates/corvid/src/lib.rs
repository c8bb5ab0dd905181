//! Corvid, the composition root: settings → storage → router → listeners.
//!
//! # Layout
//! - `server.rs`: [`server::Server`]: starts a node from [`corvid_settings::Settings`].
//! - `tls.rs`: certificate loading, or generation of a self-signed one.
//! - `cluster.rs`: [`cluster::Member`]: with `cluster.enabled`, the node's Raft member of the
//!   session registry, its gRPC server (Raft + `Router.Deliver`), bootstrap, lease renewal and
//!   expiry, and conflict kicks for sessions replaced on other nodes.
//! - `admin.rs`: [`admin::AdminService`], the `corvid.v1.Admin` gRPC service every cluster node
//!   serves (status, adding and removing registry voters, draining an edge), [`admin::EdgeDrain`]
//!   (an edge's drain), and [`admin::connect`], the one place admin client channels are made.
//! - `admin_http.rs`: the admin HTTP listener (`/healthz`, `/readyz`, `/metrics`) and
//!   [`admin_http::Readiness`], the state `/readyz` reports (a drain flips it).
//! - `storage.rs`: [`storage::open`]: the backend `storage.backend` names (embedded or Redis).
//! - `metered.rs`: [`metered::Metered`], the store wrapper that measures every operation.
//! - `cli/`: the admin commands (`corvid user …`).
//! - `doap.rs`: the DOAP description of what is implemented (`corvid doap`).

pub mod admin;
pub mod admin_http;
pub mod cli;
pub mod cluster;
pub mod doap;
pub mod metered;
pub mod server;
pub mod storage;
pub mod tls;
