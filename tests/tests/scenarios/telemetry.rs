//! Operating a node (issue #6): the admin listener's `/healthz`, `/readyz` and `/metrics`, and
//! OpenTelemetry end to end — a registry and two edges exporting to `otlp-sink`, one message
//! from alice on one edge to bob on the other making one trace across both nodes, metrics and
//! log records arriving, and traffic unaffected when the collector is gone.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use corvid_tests::cluster::{message_with, replicated, Cluster};
use corvid_tests::{http, Storage, TestServer};
use serde_json::Value;

#[tokio::test]
async fn healthz_and_readyz_follow_the_nodes_state() {
    let server = TestServer::builder().start().await.unwrap();
    let node = server.server().unwrap();
    let admin = node.admin_addr().expect("the admin listener is on");

    // Liveness: the process answers.
    assert_eq!(
        http::get(admin, "/healthz").await.unwrap(),
        (200, "ok\n".into())
    );
    // Listeners bound, storage reachable, not draining.
    assert_eq!(
        http::get(admin, "/readyz").await.unwrap(),
        (200, "ready\n".into())
    );
    let (status, _) = http::get(admin, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(http::get(admin, "/nothing").await.unwrap().0, 404);

    // A draining edge reports not ready (so the Service stops sending it clients), and is
    // still alive.
    node.readiness().set_draining(true);
    let (status, body) = http::get(admin, "/readyz").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    assert_eq!(http::get(admin, "/healthz").await.unwrap().0, 200);
    node.readiness().set_draining(false);
    assert_eq!(http::get(admin, "/readyz").await.unwrap().0, 200);
    server.stop().await;
}

#[tokio::test]
async fn readyz_is_false_while_storage_is_unreachable() {
    let mut server = TestServer::builder()
        .storage(Storage::Redis)
        .start()
        .await
        .unwrap();
    let admin = server.server().unwrap().admin_addr().unwrap();
    assert_eq!(http::get(admin, "/readyz").await.unwrap().0, 200);

    server.redis().unwrap().pause().await;
    let (status, body) = http::get(admin, "/readyz").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("storage:"), "{body}");
    // Unreachable storage does not make the process dead: restarting it would not help.
    assert_eq!(http::get(admin, "/healthz").await.unwrap().0, 200);

    server.redis().unwrap().resume().await;
    let (status, body) = http::get(admin, "/readyz").await.unwrap();
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

/// `otlp-sink` from the shared tools: `$CORVID_SHARED_TOOLS`, else `../shared/tools` beside the
/// repository, else `/work/shared/tools` (a clone made elsewhere on the development machine,
/// as CI makes).
fn otlp_sink() -> PathBuf {
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools");
    let candidates: Vec<PathBuf> = std::env::var_os("CORVID_SHARED_TOOLS")
        .map(PathBuf::from)
        .into_iter()
        .chain([beside, PathBuf::from("/work/shared/tools")])
        .map(|dir| dir.join("otlp-sink"))
        .collect();
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the OTLP test collector is missing: looked for {candidates:?} (the shared tools \
                 folder beside the repository, see shared/tools/README.md; or set \
                 CORVID_SHARED_TOOLS)"
            )
        })
}

/// A running `otlp-sink`, killed on drop.
struct Sink {
    child: tokio::process::Child,
    out: PathBuf,
    grpc: u16,
    _dir: tempfile::TempDir,
}

impl Sink {
    async fn start() -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("otlp.jsonl");
        let ready = dir.path().join("ports.json");
        let child = tokio::process::Command::new(otlp_sink())
            .args(["--port", "0", "--http-port", "0", "--max-seconds", "600"])
            .arg("--out")
            .arg(&out)
            .arg("--ready-file")
            .arg(&ready)
            .kill_on_drop(true)
            .spawn()
            .expect("otlp-sink starts");
        // The first run creates its virtual environment: allow for it.
        let start = Instant::now();
        let grpc = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                if let Ok(ports) = serde_json::from_str::<Value>(&text) {
                    if let Some(port) = ports["grpc"].as_u64() {
                        break u16::try_from(port).unwrap();
                    }
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "otlp-sink did not report its ports"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        Sink {
            child,
            out,
            grpc,
            _dir: dir,
        }
    }

    /// `otlp-sink query` with `args`, waiting up to 30 s for at least one match; the records.
    async fn query(&self, args: &[&str]) -> Vec<Value> {
        let output = tokio::process::Command::new(otlp_sink())
            .arg("query")
            .arg(&self.out)
            .args(["--min", "1", "--wait", "30"])
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "otlp-sink query {args:?} found nothing: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_across_two_edges_is_one_trace_and_a_dead_collector_costs_nothing() {
    let mut sink = Sink::start().await;
    let cluster = Cluster::builder(env!("CARGO_BIN_EXE_corvid-test-node"))
        .registries(1)
        .edges(2)
        .env(
            "CORVID__TELEMETRY__OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", sink.grpc),
        )
        .env("CORVID__TELEMETRY__EXPORT_INTERVAL_MS", "1000")
        .env("CORVID__TELEMETRY__EXPORT_TIMEOUT_MS", "1000")
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .start()
        .await
        .expect("the cluster starts");
    let edges = cluster.edge_ids();
    let (a, b) = (edges[0], edges[1]);
    let mut alice = cluster.login(a, "alice", "alice-pw", "one").await.unwrap();
    let mut bob = cluster.login(b, "bob", "bob-pw", "two").await.unwrap();
    replicated().await;
    alice
        .send_message("bob@localhost/two", "traced across edges")
        .await
        .unwrap();
    message_with(&mut bob, "traced across edges").await;

    // The receiving edge's delivery span is a child of the sending edge's routing span: the
    // trace context crossed in the router envelope (W3C Trace Context).
    let node_a = format!("service.instance.id=node-{a}");
    let node_b = format!("service.instance.id=node-{b}");
    let delivered = sink
        .query(&[
            "--signal",
            "spans",
            "--name",
            "xmpp.stanza.deliver",
            "--attr",
            &node_b,
        ])
        .await;
    let routed = sink
        .query(&[
            "--signal",
            "spans",
            "--name",
            "xmpp.stanza.route",
            "--attr",
            &node_a,
            "--attr",
            "xmpp.stanza.kind=message",
        ])
        .await;
    let joined = delivered.iter().find_map(|d| {
        routed
            .iter()
            .find(|r| r["traceId"] == d["traceId"] && r["spanId"] == d["parentSpanId"])
            .map(|r| (r, d))
    });
    let (route, deliver) = joined.unwrap_or_else(|| {
        panic!("no delivery span on node {b} is the child of a routing span on node {a}:\nroutes {routed:#?}\ndeliveries {delivered:#?}")
    });
    assert_eq!(route["service"], "corvid");
    assert_ne!(route["resource"], deliver["resource"]);
    // The connection's phases, with the mechanism and outcome and nothing secret.
    let sasl = sink
        .query(&[
            "--signal",
            "spans",
            "--name",
            "c2s.sasl",
            "--attr",
            "outcome=success",
        ])
        .await;
    for span in &sasl {
        let attributes = span["attributes"].as_object().unwrap();
        assert!(attributes.contains_key("sasl.mechanism"), "{span}");
        let text = span.to_string();
        assert!(
            !text.contains("alice-pw") && !text.contains("bob-pw"),
            "{text}"
        );
    }
    sink.query(&["--signal", "spans", "--name", "c2s.bind"])
        .await;
    let route_text = route.to_string();
    assert!(
        !route_text.contains("traced across edges"),
        "a body in a span: {route_text}"
    );

    // Metrics, pushed by both edges.
    sink.query(&[
        "--signal",
        "metrics",
        "--name",
        "xmpp.routing.duration",
        "--attr",
        "xmpp.route.destination=remote",
        "--attr",
        &node_a,
    ])
    .await;
    sink.query(&[
        "--signal",
        "metrics",
        "--name",
        "xmpp.server.stanzas.received",
        "--attr",
        "xmpp.stanza.kind=message",
    ])
    .await;
    sink.query(&[
        "--signal",
        "metrics",
        "--name",
        "xmpp.server.authentications",
    ])
    .await;
    sink.query(&[
        "--signal",
        "metrics",
        "--name",
        "corvid.registry.applied_index",
    ])
    .await;
    // Storage operations of every kind are measured (the store is wrapped): the login's
    // credential lookup and the roster read of initial presence.
    for operation in ["accounts.credentials", "map.all"] {
        sink.query(&[
            "--signal",
            "metrics",
            "--name",
            "corvid.storage.operation.duration",
            "--attr",
            &format!("db.operation.name={operation}"),
        ])
        .await;
    }
    // The node-to-node queue gauge, one point per peer of the edge that forwarded.
    sink.query(&[
        "--signal",
        "metrics",
        "--name",
        "corvid.router.queue.depth",
        "--attr",
        &node_a,
    ])
    .await;
    // Log records, correlated with the trace of the span they were written in.
    let logs = sink.query(&["--signal", "logs", "--attr", &node_b]).await;
    assert!(
        logs.iter()
            .any(|l| l["traceId"].as_str().is_some_and(|t| !t.is_empty())),
        "no log record carries a trace id: {logs:#?}"
    );

    // The collector goes away: messages keep flowing, promptly.
    sink.child.kill().await.unwrap();
    for i in 0..20 {
        let body = format!("collector down {i}");
        let sent = Instant::now();
        alice
            .send_message("bob@localhost/two", &body)
            .await
            .unwrap();
        message_with(&mut bob, &body).await;
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "message {i} took {:?} with the collector down",
            sent.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
