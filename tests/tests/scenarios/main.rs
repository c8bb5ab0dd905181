//! Every black-box scenario of the server, in one test binary.
//!
//! One binary instead of one per file: each test binary links the whole server, and eighteen
//! copies of it cost minutes of linking and gigabytes of disk on every clean build. Each module
//! is one scenario file; `cargo test -p corvid-tests -- im_roster::` runs one of them.

mod cluster_admin;
mod cluster_deployment;
mod cluster_faults;
mod cluster_im;
mod cluster_partition;
mod cluster_processes;
mod cluster_roles;
mod cluster_tls;
mod im_blocking;
mod im_carbons;
mod im_csi;
mod im_disco;
mod im_misc;
mod im_offline;
mod im_presence;
mod im_roster;
mod interop_slixmpp;
mod limits;
mod loadgen;
mod loadgen_cluster;
mod negotiation_failures;
mod redis_backend;
mod redis_processes;
mod reference_conversation;
mod split_reads;
mod stanza_rules;
mod stream_errors;
mod telemetry;
