//! Edges run by a Kubernetes Deployment (issue #6), in separate PROCESSES: pods have no stable
//! ordinal, so an edge configured with `cluster.node_id = 0` picks its own id at start (2^32 or
//! more, never a voter's), drains itself with `corvid cluster drain 0` (its preStop does not know
//! the id), and one that dies without leaving (a crashed pod) is removed from the Raft group by
//! the leader once it has been down for `cluster.forget_down_edges_after_ms`, so the membership
//! does not grow with every pod ever started. An edge that comes back under its id joins again.
//! With mutual TLS, nodes advertised by IP address share one certificate naming only
//! `cluster.tls.server_name`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::time::Instant;

use corvid_tests::cluster::{message_with, replicated, Cluster};

/// How long the leader waits before forgetting a down edge, in this test.
const FORGET_AFTER_MS: u64 = 2000;
/// Kill, lease (2 s), the new leader's grace is not involved (the leader lives), the forget
/// delay and the once-a-second checks, with room for a slow machine.
const FORGOTTEN_WITHIN: Duration = Duration::from_secs(30);

const BINARY: &str = env!("CARGO_BIN_EXE_corvid-test-node");

/// Waits until node `ask` no longer lists learner `id`, and returns how long that took.
async fn wait_forgotten(cluster: &Cluster, ask: u64, id: u64) -> Duration {
    let start = Instant::now();
    loop {
        let learners = cluster.learner_ids(ask).await.unwrap();
        if !learners.contains(&id) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < FORGOTTEN_WITHIN,
            "edge {id} still a learner after {FORGOTTEN_WITHIN:?}: {learners:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_picks_its_id_and_the_leader_forgets_edges_that_stay_down() {
    // One voter (node 1) and one edge with a configured id (node 2).
    let mut cluster = Cluster::builder(BINARY)
        .registries(1)
        .edges(1)
        .short_leases()
        .env(
            "CORVID__CLUSTER__FORGET_DOWN_EDGES_AFTER_MS",
            FORGET_AFTER_MS.to_string(),
        )
        .user("alice", "alice-pw")
        .start()
        .await
        .expect("the cluster starts");
    assert_eq!(cluster.learner_ids(1).await.unwrap(), [2]);

    println!("=== an edge with cluster.node_id = 0 picks an id of at least 2^32 and binds");
    let pod = cluster
        .spawn_edge(vec![("CORVID__CLUSTER__NODE_ID".into(), "0".into())])
        .await
        .unwrap();
    let alice = cluster
        .login(pod, "alice", "alice-pw", "pod")
        .await
        .unwrap();
    let learners = cluster.learner_ids(1).await.unwrap();
    let picked: Vec<u64> = learners.iter().copied().filter(|id| *id != 2).collect();
    assert_eq!(picked.len(), 1, "one new learner: {learners:?}");
    let picked = picked[0];
    assert!(picked >= 1 << 32, "picked id {picked} is below 2^32");
    assert!(
        picked < 1 << 63,
        "picked id {picked} is not a 63-bit number"
    );
    let log = std::fs::read_to_string(cluster.node(pod).log_path()).unwrap();
    assert!(
        log.contains("node-id-picked") && log.contains(&picked.to_string()),
        "the picked id is logged at start"
    );

    println!("=== `corvid cluster drain 0` on the edge drains the edge asked");
    let out = tokio::process::Command::new(BINARY)
        .args(["cluster", "--node"])
        .arg(cluster.node(pod).grpc_addr().to_string())
        .args(["drain", "0", "--grace", "1"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "drain 0 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    replicated().await;
    let status = cluster.status(1).await.unwrap();
    let draining = status["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node_id"].as_u64() == Some(picked))
        .map(|e| e["draining"] == serde_json::Value::Bool(true));
    assert_eq!(draining, Some(true), "{status}");
    drop(alice);

    println!("=== the edge is killed (a crashed pod): the leader removes it once it stays down");
    cluster.kill(pod).await.unwrap();
    assert!(
        cluster.learner_ids(1).await.unwrap().contains(&picked),
        "a killed edge is not removed before its lease runs out"
    );
    let took = wait_forgotten(&cluster, 1, picked).await;
    // Its lease (2 s) must run out and it must then stay down for FORGET_AFTER_MS.
    assert!(
        took >= Duration::from_millis(FORGET_AFTER_MS),
        "forgotten after {took:?}, before it had been down for {FORGET_AFTER_MS} ms"
    );
    assert_eq!(cluster.learner_ids(1).await.unwrap(), [2]);

    println!("=== an edge with a fixed id, killed and forgotten, joins again when it returns");
    cluster.kill(2).await.unwrap();
    wait_forgotten(&cluster, 1, 2).await;
    cluster.restart(2).await.unwrap();
    assert_eq!(cluster.learner_ids(1).await.unwrap(), [2]);
    let mut alice = cluster.login(2, "alice", "alice-pw", "back").await.unwrap();
    alice.send("<presence/>").await.unwrap();
}

/// Pods advertise IP addresses no certificate names in advance: every node here holds one
/// certificate whose only name is `corvid-cluster`, dials 127.0.0.1, and checks peers against
/// `cluster.tls.server_name = corvid-cluster`. Edges that picked their ids join (Raft over
/// TLS both ways) and route a message between them (`Router.Deliver` over TLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_ip_addresses_share_one_certificate_through_the_server_name() {
    let pki = tempfile::tempdir().unwrap();
    let d = pki.path().to_str().unwrap();
    for args in [
        &["ca", "--dir", d][..],
        &["node", "--dir", d, "--name", "node", "corvid-cluster"][..],
    ] {
        let out = tokio::process::Command::new(BINARY)
            .arg("cert")
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "corvid cert {args:?}: {out:?}");
    }
    let file = |name: &str| pki.path().join(name).display().to_string();
    let cluster = Cluster::builder(BINARY)
        .registries(1)
        .edges(2)
        .node_env(2, "CORVID__CLUSTER__NODE_ID", "0")
        .node_env(3, "CORVID__CLUSTER__NODE_ID", "0")
        .env("CORVID__CLUSTER__TLS__CA_FILE", file("ca.pem"))
        .env("CORVID__CLUSTER__TLS__CERT_FILE", file("node.pem"))
        .env("CORVID__CLUSTER__TLS__KEY_FILE", file("node.key"))
        .env("CORVID__CLUSTER__TLS__SERVER_NAME", "corvid-cluster")
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .start()
        .await
        .expect("the cluster starts on one certificate for corvid-cluster");
    let mut alice = cluster.login(2, "alice", "alice-pw", "a").await.unwrap();
    let mut bob = cluster.login(3, "bob", "bob-pw", "b").await.unwrap();
    replicated().await;
    alice
        .send_message("bob@localhost/b", "across edges on one certificate")
        .await
        .unwrap();
    let got = message_with(&mut bob, "across edges on one certificate").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/a"));
    for id in [2, 3] {
        let log = std::fs::read_to_string(cluster.node(id).log_path()).unwrap();
        assert!(log.contains("node-id-picked"), "edge {id} picked its id");
    }
}
