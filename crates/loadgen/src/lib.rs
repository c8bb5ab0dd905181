//! `corvid-loadgen`: a server-agnostic XMPP load generator (issue #7). It logs in exactly as a
//! client does — TCP, STARTTLS, SASL (SCRAM-SHA-1, SCRAM-SHA-256 or PLAIN), resource binding,
//! initial presence — and measures one scenario per run, printing one JSON line of results.
//!
//! # The `cluster` scenario
//! The `messages` flow across the edges of a 3-edge cluster (`--edges A,B,C`, their STARTTLS
//! listeners): senders on A, receivers on B, so every message crosses edges. With
//! `--kill-pid PID --kill-after-secs S` the receivers are on C instead, whose server is PID; S
//! seconds in, the generator runs `kill -9 PID`, each receiver sees its stream end and logs in
//! again on B with the same resource and initial presence (whatever the server stored offline
//! for it then arrives and counts). The kill variant needs `--rate` (a closed loop would wait on
//! the lost messages). Besides the `messages` figures, the line has `lost_by_phase` and
//! `bounced_by_phase` (sent before the kill, during the pair's outage, after its receiver's new
//! login), `bounced_conditions`, `relogged_in`, `reconnect_ms` (kill to the last receiver
//! logged in again) and `recovery_ms` (kill to the first message received on a new session).
//! `bench/compare.sh` runs both variants against three Corvid nodes.
//!
//! ```sh
//! corvid-loadgen --insecure cluster --edges 127.0.0.1:5221,127.0.0.1:5222,127.0.0.1:5223 \
//!     --pairs 50 --rate 5000 --duration-secs 20 --kill-pid 4242 --kill-after-secs 6
//! ```
//!
//! # Layout
//! - `args.rs`: the flags ([`args::Args`]) and the scenarios ([`args::Scenario`]).
//! - `xmpp.rs`: one client session: login, logout, the message format.
//! - `scenarios.rs`: `login`, `idle`, `messages`, `cluster` and `churn`.
//! - `delivery.rs`: what each pair sent and received: lost, duplicated, bounced, and by phase
//!   around an edge killed during a `cluster` run.
//! - `scram.rs`: the SCRAM client, written independently of any server (the test kit uses it
//!   too, to check Corvid's server side).
//! - `tls.rs`: rustls connectors (system roots, a CA file, or any certificate on request).
//! - `stats.rs`: latency samples and nearest-rank percentiles.
//! - `procfs.rs`: the server's CPU time and RSS from `/proc/<pid>`.

pub mod args;
pub mod delivery;
pub mod procfs;
pub mod scenarios;
pub mod scram;
pub mod stats;
pub mod tls;
pub mod xmpp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use rustls::pki_types::ServerName;
use serde_json::{json, Map, Value};

use crate::args::Args;
use crate::tls::Trust;

/// Runs the run described by `args` and returns its result line: the run's parameters
/// (`scenario`, `label`, `mechanism`, …) followed by the scenario's measurements.
pub async fn run(args: &Args) -> anyhow::Result<Value> {
    args.validate()?;
    let addr = resolve(&args.host, (args.host.as_str(), args.port))?;
    let trust = if args.insecure {
        Trust::AnyCertificate
    } else if let Some(ca) = &args.ca_file {
        Trust::CaFile(ca.clone())
    } else {
        Trust::System
    };
    let name = args.tls_name.clone().unwrap_or_else(|| args.domain.clone());
    let target = xmpp::Target {
        addr,
        domain: args.domain.clone(),
        tls: tls::connector(&trust, &[])?,
        server_name: ServerName::try_from(name.clone())
            .map_err(|e| anyhow!("TLS name `{name}`: {e}"))?,
        mechanism: args.mechanism,
        password: args.password.clone(),
        timeout: Duration::from_secs(args.timeout_secs),
        salted: Arc::new(Mutex::new(HashMap::new())),
    };
    let measured = scenarios::run(args, &target).await?;
    Ok(result_line(args, measured))
}

/// The first address `addrs` (named `name` in errors) resolves to.
pub fn resolve(
    name: &str,
    addrs: impl std::net::ToSocketAddrs,
) -> anyhow::Result<std::net::SocketAddr> {
    addrs
        .to_socket_addrs()
        .with_context(|| format!("resolving {name}"))?
        .next()
        .ok_or_else(|| anyhow!("{name} resolves to no address"))
}

/// The run's parameters and the measurements, as one JSON object (keys in alphabetical order).
pub fn result_line(args: &Args, measured: Map<String, Value>) -> Value {
    let mut line = Map::new();
    line.insert("scenario".into(), json!(args.scenario.name()));
    line.insert("label".into(), json!(args.label));
    line.insert("host".into(), json!(args.host));
    line.insert("port".into(), json!(args.port));
    line.insert("domain".into(), json!(args.domain));
    line.insert("mechanism".into(), json!(args.mechanism.name()));
    line.extend(measured);
    Value::Object(line)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn the_result_is_one_line_of_json_with_parameters_and_measurements() {
        let args = Args::try_parse_from([
            "corvid-loadgen",
            "--label",
            "corvid",
            "--port",
            "5322",
            "login",
        ])
        .unwrap();
        let mut m = Map::new();
        m.insert("logins".into(), json!(10));
        m.insert(
            "setup_ms".into(),
            json!({"p50": 1.5, "p99": null, "max": 2.0}),
        );
        let line = serde_json::to_string(&result_line(&args, m)).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(
            line,
            r#"{"domain":"localhost","host":"127.0.0.1","label":"corvid","logins":10,"mechanism":"SCRAM-SHA-1","port":5322,"scenario":"login","setup_ms":{"max":2.0,"p50":1.5,"p99":null}}"#
        );
    }
}
