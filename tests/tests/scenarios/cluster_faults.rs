//! Faults in a cluster of three combined nodes (real processes, kill -9, short leases): the Raft
//! leader dies during a stream of messages, and an edge dies with its users' sessions. Contacts
//! of a lost session hear exactly one `unavailable` (RFC 6121 §4.5.1: the server sends it on the
//! user's behalf when a session ends without one).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::cluster::{message_with, replicated, Cluster};
use corvid_tests::{ns, Client};
use tokio::time::Instant;

use crate::cluster_im::{presence_from, subscribe};

async fn cluster() -> Cluster {
    Cluster::builder(env!("CARGO_BIN_EXE_corvid-test-node"))
        .combined(3)
        .short_leases()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .start()
        .await
        .expect("the cluster starts")
}

/// The bodies of the messages `c` receives until `quiet` passes without one.
async fn bodies(c: &mut Client, quiet: Duration) -> Vec<String> {
    c.drain(quiet)
        .await
        .into_iter()
        .filter(|e| e.name == "message")
        .filter_map(|e| e.child("body", ns::CLIENT).map(|b| b.text()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_during_traffic_loses_neither_messages_nor_committed_bindings() {
    let mut cluster = cluster().await;
    // The test kills whichever node leads (asked, not assumed); the users are on the others.
    let leader = cluster
        .leader(1)
        .await
        .unwrap()
        .expect("a leader after start");
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != leader).collect();
    let (a, b) = (rest[0], rest[1]);

    println!("=== bindings committed before the kill: alice on node {a}, bob on nodes {a} and {b}");
    let mut alice = cluster.login(a, "alice", "alice-pw", "two").await.unwrap();
    let mut bob = cluster.login(b, "bob", "bob-pw", "three").await.unwrap();
    let mut bob_two = cluster.login(a, "bob", "bob-pw", "also-two").await.unwrap();
    replicated().await;

    println!("=== 40 messages alice → bob/three, the leader (node {leader}) killed after 10");
    // Routing between the two other nodes reads their replicas and needs no leader, so
    // nothing may be lost.
    let started = Instant::now();
    for i in 0..40 {
        if i == 10 {
            cluster.kill(leader).await.unwrap();
        }
        alice
            .send_message("bob@localhost/three", &format!("m{i}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let got = bodies(&mut bob, Duration::from_secs(2)).await;
    let want: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "every message, in order (RFC 6120 §10.1)");
    println!("stream done {:?} after the start", started.elapsed());

    println!("=== a new bind needs the new leader; then every binding from before is routable");
    let mut fresh = cluster
        .login(b, "alice", "alice-pw", "fresh")
        .await
        .unwrap();
    replicated().await;
    fresh
        .send_message("bob@localhost/also-two", "to the older session")
        .await
        .unwrap();
    message_with(&mut bob_two, "to the older session").await;
    bob_two
        .send_message("alice@localhost/two", "old to old")
        .await
        .unwrap();
    message_with(&mut alice, "old to old").await;
    bob_two
        .send_message("alice@localhost/fresh", "old to new")
        .await
        .unwrap();
    message_with(&mut fresh, "old to new").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edge_costs_each_contact_exactly_one_unavailable_per_session_and_users_log_in_elsewhere(
) {
    let mut cluster = cluster().await;

    println!("=== alice on node 1 and bob on node 3 subscribe to each other");
    let mut alice = cluster.login(1, "alice", "alice-pw", "one").await.unwrap();
    let mut bob = cluster.login(3, "bob", "bob-pw", "desk").await.unwrap();
    alice.send("<presence/>").await.unwrap();
    bob.send("<presence/>").await.unwrap();
    replicated().await;
    subscribe(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    subscribe(&mut bob, "bob@localhost", &mut alice, "alice@localhost").await;
    let mut bob_phone = cluster.login(3, "bob", "bob-pw", "phone").await.unwrap();
    bob_phone.send("<presence/>").await.unwrap();
    presence_from(&mut alice, "bob@localhost/phone", None).await;
    replicated().await;
    alice.drain(Duration::from_millis(500)).await;

    println!("=== kill -9 node 3 with both of bob's sessions");
    cluster.kill(3).await.unwrap();
    drop(bob);
    drop(bob_phone);
    // Lease 2 s, expiry checked every second: well within 10 s. Then 3 s more for duplicates.
    let start = Instant::now();
    let mut unavailable = Vec::new();
    while start.elapsed() < Duration::from_secs(10) || unavailable.len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "got {unavailable:?}"
        );
        for e in alice.drain(Duration::from_millis(500)).await {
            if e.name == "presence" && e.attr("type") == Some("unavailable") {
                unavailable.push(e.attr("from").unwrap_or_default().to_owned());
            }
        }
    }
    unavailable.sort();
    assert_eq!(
        unavailable,
        ["bob@localhost/desk", "bob@localhost/phone"],
        "exactly one unavailable per lost session"
    );

    println!("=== bob logs in again on node 2; alice sees him and they talk");
    let mut bob = cluster.login(2, "bob", "bob-pw", "desk").await.unwrap();
    bob.send("<presence/>").await.unwrap();
    presence_from(&mut alice, "bob@localhost/desk", None).await;
    alice
        .send_message("bob@localhost/desk", "welcome back")
        .await
        .unwrap();
    let got = message_with(&mut bob, "welcome back").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/one"));
}
