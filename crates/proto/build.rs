//! Generates the gRPC code from `proto/corvid/v1/*.proto`.
//!
//! The files are parsed by `protox`, a protobuf compiler written in Rust, so building needs no
//! system `protoc`: `cargo build` on a machine with only Rust works.

use std::error::Error;
use std::path::Path;

/// The services, relative to the include root. Add a file here when you add a service.
const FILES: &[&str] = &[
    "corvid/v1/admin.proto",
    "corvid/v1/raft.proto",
    "corvid/v1/router.proto",
];

/// The include root, relative to this crate.
const ROOT: &str = "../../proto";

fn main() -> Result<(), Box<dyn Error>> {
    for file in FILES {
        println!(
            "cargo:rerun-if-changed={}",
            Path::new(ROOT).join(file).display()
        );
    }
    let fds = protox::compile(FILES, [ROOT])?;
    tonic_prost_build::configure()
        // Stanza payloads are passed on without copying.
        .bytes(".corvid.v1.Envelope.stanza")
        .compile_fds(fds)?;
    Ok(())
}
