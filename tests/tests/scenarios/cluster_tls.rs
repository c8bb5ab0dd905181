//! Mutual TLS between nodes (issue #5: "inter-node traffic can be mutual-TLS authenticated …
//! and a node that is not a cluster member is refused"), with real processes: the cluster CA
//! and node certificates come from `corvid cert`, every node runs Raft, routing and the admin
//! API over TLS, and
//! - users on two nodes talk (Raft and `Router.Deliver` work over mutual TLS);
//! - `corvid cluster status` with the cluster's certificate is answered, without it refused;
//! - an edge whose certificate comes from another CA (even one that trusts the cluster's CA)
//!   never joins: it cannot bind a session and the membership never lists it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use corvid_tests::cluster::{message_with, replicated, Cluster};
use corvid_tests::TestServer;
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_corvid-test-node");

/// Runs `corvid cert …`, which must succeed.
async fn cert(args: &[&str]) {
    let out = tokio::process::Command::new(BINARY)
        .arg("cert")
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "corvid cert {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA in `dir` and one node certificate `node` for 127.0.0.1 (every node of the test shares
/// it: membership is the CA's signature, and they all listen on 127.0.0.1).
async fn issue(dir: &Path) {
    let d = dir.to_str().unwrap();
    cert(&["ca", "--dir", d]).await;
    cert(&[
        "node",
        "--dir",
        d,
        "--name",
        "node",
        "127.0.0.1",
        "localhost",
    ])
    .await;
}

/// The settings that put a node on the mutual TLS of the CA in `dir`.
fn tls_env(dir: &Path) -> Vec<(String, String)> {
    [
        ("CA_FILE", "ca.pem"),
        ("CERT_FILE", "node.pem"),
        ("KEY_FILE", "node.key"),
    ]
    .into_iter()
    .map(|(key, file)| {
        (
            format!("CORVID__CLUSTER__TLS__{key}"),
            dir.join(file).display().to_string(),
        )
    })
    .collect()
}

/// A process that trusts the cluster's CA but proves itself with a certificate of the CA in
/// `other`: only the cluster's servers can refuse it.
fn impostor_env(cluster: &Path, other: &Path) -> Vec<(String, String)> {
    let mut env = tls_env(other);
    env[0].1 = cluster.join("ca.pem").display().to_string();
    env
}

/// `corvid cluster status --json` asked of `node` with `env`.
async fn status(node: std::net::SocketAddr, env: &[(String, String)]) -> Output {
    tokio::process::Command::new(BINARY)
        .args(["cluster", "status", "--json", "--node", &node.to_string()])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_mutual_tls_routes_and_refuses_strangers() {
    let certs = tempfile::tempdir().unwrap();
    issue(certs.path()).await;
    let stranger = tempfile::tempdir().unwrap();
    issue(stranger.path()).await;

    let mut builder = Cluster::builder(BINARY)
        .combined(3)
        .short_leases()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw");
    for (key, value) in tls_env(certs.path()) {
        builder = builder.env(key, value);
    }
    let mut cluster = builder.start().await.expect("the TLS cluster starts");

    println!("=== alice on node 1 and bob on node 2 talk: Raft and routing over mutual TLS");
    let mut alice = cluster.login(1, "alice", "alice-pw", "one").await.unwrap();
    let mut bob = cluster.login(2, "bob", "bob-pw", "two").await.unwrap();
    replicated().await;
    alice
        .send_message("bob@localhost/two", "over mutual TLS")
        .await
        .unwrap();
    let got = message_with(&mut bob, "over mutual TLS").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/one"));

    println!("=== the admin API answers the cluster's certificate only");
    let node1 = cluster.node(1).grpc_addr();
    let ok = status(node1, &tls_env(certs.path())).await;
    assert!(
        ok.status.success(),
        "status with the cluster's certificate: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let members: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(3),
        "{members}"
    );
    let plain = status(node1, &[]).await;
    assert!(!plain.status.success(), "plain HTTP/2 must be refused");
    let foreign = status(node1, &impostor_env(certs.path(), stranger.path())).await;
    assert!(
        !foreign.status.success(),
        "a certificate from another CA must be refused"
    );

    println!("=== an edge with another CA's certificate never joins");
    let intruder = cluster
        .spawn_edge(impostor_env(certs.path(), stranger.path()))
        .await
        .unwrap();
    let server = TestServer::external(cluster.node(intruder).client_addr().unwrap(), None).unwrap();
    let watch_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < watch_until {
        let login = corvid_tests::Client::login(&server, "bob", "bob-pw", Some("intruder")).await;
        assert!(login.is_err(), "the intruding edge bound a session");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = status(node1, &tls_env(certs.path())).await;
    let after: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    let ids: Vec<u64> = after["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["node_id"].as_u64())
        .collect();
    assert!(
        !ids.contains(&intruder),
        "the intruder became a member: {after}"
    );
    cluster.kill(intruder).await.unwrap();
}
