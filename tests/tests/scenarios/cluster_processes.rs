//! Three `corvid serve` PROCESSES forming a cluster of combined nodes (each a registry voter
//! and an edge) over one shared Redis: the session table is replicated with Raft between the
//! processes, and stanzas for a session on another node travel over gRPC. Then one process is
//! killed with SIGKILL, and the two left (a quorum of 2 of 3) keep routing and binding.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::cluster::{message_with, replicated, stanza_where, Cluster};
use tokio::time::Instant;

/// A 3-node cluster of combined nodes with alice and bob.
async fn cluster() -> Cluster {
    Cluster::builder(env!("CARGO_BIN_EXE_corvid-test-node"))
        .combined(3)
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .start()
        .await
        .expect("the cluster starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_combined_nodes_route_between_processes_and_survive_a_killed_node() {
    let mut cluster = cluster().await;

    println!("=== alice on node 1, bob on node 2: full-JID messages both ways");
    let mut alice = cluster.login(1, "alice", "alice-pw", "one").await.unwrap();
    let mut bob = cluster.login(2, "bob", "bob-pw", "two").await.unwrap();
    replicated().await;
    alice
        .send_message("bob@localhost/two", "hello from node 1")
        .await
        .unwrap();
    let got = message_with(&mut bob, "hello from node 1").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/one"));
    assert_eq!(got.attr("to"), Some("bob@localhost/two"));
    bob.send_message("alice@localhost/one", "hello from node 2")
        .await
        .unwrap();
    let got = message_with(&mut alice, "hello from node 2").await;
    assert_eq!(got.attr("from"), Some("bob@localhost/two"));

    println!("=== bob sends presence; a message to his bare JID reaches him on node 2");
    bob.send("<presence/>").await.unwrap();
    // The presence update is a registry write, applied by node 1's replica a heartbeat later.
    replicated().await;
    alice
        .send_message("bob@localhost", "to your bare jid")
        .await
        .unwrap();
    let got = message_with(&mut bob, "to your bare jid").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/one"));

    println!("=== kill -9 node 3: 2 of 3 voters are still a quorum");
    cluster.kill(3).await.unwrap();
    alice
        .send_message("bob@localhost/two", "after the kill")
        .await
        .unwrap();
    message_with(&mut bob, "after the kill").await;
    bob.send_message("alice@localhost/one", "still here")
        .await
        .unwrap();
    message_with(&mut alice, "still here").await;

    println!("=== a new login on node 1 still binds, and is reachable from node 2");
    let mut alice2 = cluster
        .login(1, "alice", "alice-pw", "again")
        .await
        .unwrap();
    replicated().await;
    bob.send_message("alice@localhost/again", "to the new session")
        .await
        .unwrap();
    let got = message_with(&mut alice2, "to the new session").await;
    assert_eq!(got.attr("from"), Some("bob@localhost/two"));

    println!("=== node 3 restarts on its data folder, rejoins, and binds again");
    cluster.restart(3).await.unwrap();
    let mut bob3 = cluster.login(3, "bob", "bob-pw", "back").await.unwrap();
    replicated().await;
    alice
        .send_message("bob@localhost/back", "welcome back")
        .await
        .unwrap();
    message_with(&mut bob3, "welcome back").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_first_leader_lets_the_others_elect_one_and_take_binds_again() {
    let mut cluster = cluster().await;

    println!("=== alice on node 2, bob on node 3");
    let mut alice = cluster.login(2, "alice", "alice-pw", "two").await.unwrap();
    let mut bob = cluster.login(3, "bob", "bob-pw", "three").await.unwrap();
    replicated().await;
    alice
        .send_message("bob@localhost/three", "before")
        .await
        .unwrap();
    message_with(&mut bob, "before").await;

    println!("=== alice subscribes to bob's presence (both on node 2)");
    // Subscription requests reach only sessions on the node that handles them (for now), so
    // the handshake happens on one node; the subscription itself is in the shared store.
    let mut bob_setup = cluster.login(2, "bob", "bob-pw", "setup").await.unwrap();
    bob_setup.send("<presence/>").await.unwrap();
    alice.send("<presence/>").await.unwrap();
    replicated().await;
    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await
        .unwrap();
    let limit = Duration::from_secs(10);
    stanza_where(&mut bob_setup, limit, "subscription request", |e| {
        e.name == "presence" && e.attr("type") == Some("subscribe")
    })
    .await;
    bob_setup
        .send("<presence to='alice@localhost' type='subscribed'/>")
        .await
        .unwrap();
    stanza_where(&mut alice, limit, "subscribed", |e| {
        e.name == "presence" && e.attr("type") == Some("subscribed")
    })
    .await;

    println!("=== bob comes online on node 1; alice on node 2 gets his presence");
    let mut bob_first = cluster.login(1, "bob", "bob-pw", "first").await.unwrap();
    bob_first.send("<presence/>").await.unwrap();
    stanza_where(&mut alice, limit, "bob/first's presence", |e| {
        e.name == "presence"
            && e.attr("from") == Some("bob@localhost/first")
            && e.attr("type").is_none()
    })
    .await;
    replicated().await;

    // Node 1 bootstrapped the group and campaigned first: it is normally the leader.
    println!("=== kill -9 node 1, the bootstrap node");
    cluster.kill(1).await.unwrap();

    println!("=== sessions on the survivors keep talking");
    bob.send_message("alice@localhost/two", "during")
        .await
        .unwrap();
    message_with(&mut alice, "during").await;

    println!("=== a new login binds once nodes 2 and 3 agree on a leader");
    let started = Instant::now();
    let mut bob2 = cluster.login(3, "bob", "bob-pw", "again").await.unwrap();
    println!("bound {:?} after the kill", started.elapsed());
    replicated().await;
    alice
        .send_message("bob@localhost/again", "after")
        .await
        .unwrap();
    let got = message_with(&mut bob2, "after").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/two"));

    println!("=== node 1's lease runs out: its caretaker tells alice bob/first went offline");
    // Lease 5 s, expiry checked every second, plus a new leader's first round.
    stanza_where(
        &mut alice,
        Duration::from_secs(20),
        "unavailable from bob/first",
        |e| {
            e.name == "presence"
                && e.attr("from") == Some("bob@localhost/first")
                && e.attr("type") == Some("unavailable")
        },
    )
    .await;
    drop(bob_first);
}

/// Watches `c` for up to three seconds: true if the server ends its stream with `conflict`
/// (RFC 6120 §7.7.2.2), false if it stays quiet and open.
async fn ends_with_conflict(c: &mut corvid_tests::Client) -> bool {
    use corvid_tests::{ns, Received, StreamEvent};
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        match c.next_within(Duration::from_millis(300)).await {
            Received::Event(StreamEvent::Element(e)) if e.name == "error" => {
                return e.child("conflict", ns::STREAMS).is_some();
            }
            Received::Closed | Received::Broken(_) => return false,
            _ => {}
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_one_full_jid_on_two_nodes_at_once_leaves_exactly_one_session() {
    // Issue #5: binding is a Raft write, so two binds of the same full JID on two edges are
    // ordered by the log; the later one wins and the earlier session is ended with `conflict`
    // (RFC 6120 §7.7.2.2, the core issue's policy, applied cluster-wide) wherever it is.
    let cluster = cluster().await;
    let mut bob = cluster.login(3, "bob", "bob-pw", "three").await.unwrap();
    for round in 0..3 {
        let resource = format!("same{round}");
        println!("=== round {round}: alice/{resource} binds on nodes 1 and 2 at once");
        let (one, two) = tokio::join!(
            cluster.login(1, "alice", "alice-pw", &resource),
            cluster.login(2, "alice", "alice-pw", &resource),
        );
        let (mut one, mut two) = (one.unwrap(), two.unwrap());
        let (lost_one, lost_two) =
            tokio::join!(ends_with_conflict(&mut one), ends_with_conflict(&mut two));
        assert!(
            lost_one != lost_two,
            "exactly one of the two sessions must end with conflict (node 1: {lost_one}, node 2: {lost_two})"
        );
        let survivor = if lost_one { &mut two } else { &mut one };
        replicated().await;
        let body = format!("round {round}");
        bob.send_message(&format!("alice@localhost/{resource}"), &body)
            .await
            .unwrap();
        message_with(survivor, &body).await;
    }
}
