//! `corvid cluster …` against running cluster processes: the admin API (`corvid.v1.Admin`)
//! served on every node's gRPC listener, through the real CLI binary.
//!
//! - `status` on a 3-node cluster: three voters, one leader, the same on every node;
//! - `add-registry` of a fourth node (learner, caught up, then voter) and `remove-registry` of
//!   another, with logins still binding after each change;
//! - `drain`: the edge's client listener closes, its client is sent away with `see-other-host`
//!   naming `c2s.see_other_host` (RFC 6120 §4.9.3.19) after the grace period, and `status` on
//!   another node shows the edge draining (the state is replicated).
#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::time::Duration;

use corvid_tests::cluster::{Cluster, Role};
use corvid_tests::{ns, stream_error_condition, Received, StreamEvent};
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_corvid-test-node");

/// Runs `corvid cluster ARGS --node NODE`.
async fn cli(node: std::net::SocketAddr, args: &[&str]) -> Output {
    tokio::process::Command::new(BINARY)
        .arg("cluster")
        .args(args)
        .args(["--node", &node.to_string()])
        .output()
        .await
        .unwrap()
}

/// `corvid cluster status --json` on `node`, which must succeed.
async fn status(node: std::net::SocketAddr) -> serde_json::Value {
    let out = cli(node, &["status", "--json"]).await;
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn voters(status: &serde_json::Value) -> Vec<u64> {
    status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["voter"] == true)
        .map(|m| m["node_id"].as_u64().unwrap())
        .collect()
}

fn edges(status: &serde_json::Value) -> Vec<u64> {
    status["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node_id"].as_u64().unwrap())
        .collect()
}

/// Polls `status` on `node` until `pred` holds (membership changes reach a follower on the
/// next heartbeat), within 15 s.
async fn status_until(
    node: std::net::SocketAddr,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = status(node).await;
        if pred(&s) {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{what}: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn three_nodes() -> Cluster {
    Cluster::builder(BINARY)
        .combined(3)
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .env("CORVID__C2S__SEE_OTHER_HOST", "xmpp2.example.net:5222")
        .start()
        .await
        .expect("the cluster starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_three_voters_and_one_leader_on_every_node() {
    let cluster = three_nodes().await;
    let mut leaders = Vec::new();
    for id in 1..=3 {
        // Each node's replica learns the leader, and the other nodes' edge registrations, when
        // it applies them: a follower can be a heartbeat behind the leader.
        let s = status_until(
            cluster.node(id).grpc_addr(),
            "a leader, three voters and every combined node as an edge",
            |s| s["leader"].is_u64() && voters(s) == [1, 2, 3] && edges(s) == [1, 2, 3],
        )
        .await;
        assert_eq!(s["node_id"], id);
        assert!(s["term"].as_u64().unwrap() >= 1);
        assert!(s["commit_index"].as_u64().unwrap() >= 1);
        leaders.push(s["leader"].as_u64().unwrap());
    }
    leaders.dedup();
    assert_eq!(leaders.len(), 1, "one leader, seen alike: {leaders:?}");

    // The text form names the leader and the roles.
    let out = cli(cluster.node(2).grpc_addr(), &["status"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("leader: {}", leaders[0])), "{text}");
    assert_eq!(text.matches(" voter").count(), 3, "{text}");

    // Errors name the problem and exit non-zero.
    let out = cli("127.0.0.1:1".parse().unwrap(), &["status"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unreachable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(cluster.node(1).grpc_addr(), &["drain", "99"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a member"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_registry_then_remove_registry_keeps_binding() {
    let mut cluster = three_nodes().await;
    let four = cluster.start_unlisted(Role::Combined).await.unwrap();
    let four_addr = cluster.node(four).grpc_addr();

    // Asked on any node: a follower names the leader and the CLI follows.
    let out = cli(
        cluster.node(2).grpc_addr(),
        &["add-registry", &four.to_string(), &four_addr.to_string()],
    )
    .await;
    assert!(
        out.status.success(),
        "add-registry: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = status_until(cluster.node(1).grpc_addr(), "four voters", |s| {
        voters(s) == vec![1, 2, 3, 4]
    })
    .await;
    println!("after add-registry: {s}");
    // The new node caught up: it answers with the same membership and binds sessions.
    status_until(four_addr, "node 4 sees itself a voter", |s| {
        voters(s) == vec![1, 2, 3, 4]
    })
    .await;
    let alice = cluster
        .login(four, "alice", "alice-pw", "four")
        .await
        .unwrap();
    drop(alice);

    // Removing the last voter is refused; so is nothing here, but a bogus id is not a member.
    let out = cli(cluster.node(1).grpc_addr(), &["remove-registry", "42"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a member"));

    let out = cli(cluster.node(1).grpc_addr(), &["remove-registry", "3"]).await;
    assert!(
        out.status.success(),
        "remove-registry: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    status_until(cluster.node(2).grpc_addr(), "voters 1, 2, 4", |s| {
        voters(s) == vec![1, 2, 4]
            && s["members"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["node_id"] != 3)
    })
    .await;

    // Bindings still work on the remaining voters, and messages cross nodes.
    let mut alice = cluster.login(1, "alice", "alice-pw", "one").await.unwrap();
    let mut bob = cluster.login(four, "bob", "bob-pw", "four").await.unwrap();
    corvid_tests::cluster::replicated().await;
    alice
        .send_message("bob@localhost/four", "after the change")
        .await
        .unwrap();
    let got = corvid_tests::cluster::message_with(&mut bob, "after the change").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/one"));
    let _ = alice.drain(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_edge_sends_its_clients_to_the_other_host_and_shows_draining() {
    let cluster = three_nodes().await;
    let mut alice = cluster.login(2, "alice", "alice-pw", "two").await.unwrap();
    let client_addr = cluster.node(2).client_addr().unwrap();

    // Asked on node 1, carried out by edge 2.
    let out = cli(cluster.node(1).grpc_addr(), &["drain", "2", "--grace", "2"]).await;
    assert!(
        out.status.success(),
        "drain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let asked = Instant::now();

    // The drained state is replicated: node 3's status shows it.
    let s = status_until(cluster.node(3).grpc_addr(), "edge 2 draining", |s| {
        s["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node_id"] == 2 && e["draining"] == true)
    })
    .await;
    assert!(s["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node_id"] != 2)
        .all(|e| e["draining"] == false));

    // New connections are refused: the listener is closed.
    let start = Instant::now();
    while tokio::net::TcpStream::connect(client_addr).await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "edge 2 still accepts connections"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // After the grace period the session ends with see-other-host naming the configured host
    // (RFC 6120 §4.9.3.19), then the stream closes.
    let error = loop {
        match alice.next_within(Duration::from_secs(10)).await {
            Received::Event(StreamEvent::Element(e)) if e.is("error", ns::STREAM) => break e,
            Received::Event(StreamEvent::Element(_)) => continue,
            other => panic!("expected a stream error, got {other}"),
        }
    };
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "closed before the grace period"
    );
    assert_eq!(
        stream_error_condition(&error).as_deref(),
        Some("see-other-host")
    );
    let other = error.child("see-other-host", ns::STREAMS).unwrap();
    assert_eq!(other.text(), "xmpp2.example.net:5222");

    // The other edges keep binding.
    let bob = cluster.login(3, "bob", "bob-pw", "three").await.unwrap();
    drop(bob);
}
