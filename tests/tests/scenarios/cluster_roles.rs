//! Roles in separate PROCESSES (issue #5): three `registry` voters (the Raft group, no client
//! listener) and `edge` nodes (clients and sessions; Raft learners with a replica of the
//! session table), over one shared Redis. Users on two edges talk by full and bare JID; an edge
//! started after the others is reached through the Raft membership; an edge killed with
//! SIGKILL loses its sessions once its lease runs out.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::cluster::{message_with, replicated, Cluster, Role};

/// Three registry voters (nodes 1–3) and two edges (nodes 4 and 5), with short leases.
async fn cluster() -> Cluster {
    Cluster::builder(env!("CARGO_BIN_EXE_corvid-test-node"))
        .registries(3)
        .edges(2)
        .short_leases()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .user("carol", "carol-pw")
        .start()
        .await
        .expect("the cluster starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_route_through_the_membership_and_a_killed_edge_loses_its_sessions() {
    let mut cluster = cluster().await;
    assert_eq!(cluster.voter_ids(), [1, 2, 3]);
    assert_eq!(cluster.edge_ids(), [4, 5]);
    assert_eq!(cluster.node(1).role(), Role::Registry);
    assert!(
        cluster.node(1).client_addr().is_none(),
        "a registry node has no client listener"
    );

    println!("=== alice on edge 4, bob on edge 5: full-JID messages both ways");
    let mut alice = cluster.login(4, "alice", "alice-pw", "four").await.unwrap();
    let mut bob = cluster.login(5, "bob", "bob-pw", "five").await.unwrap();
    replicated().await;
    alice
        .send_message("bob@localhost/five", "hello from edge 4")
        .await
        .unwrap();
    let got = message_with(&mut bob, "hello from edge 4").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/four"));
    bob.send_message("alice@localhost/four", "hello from edge 5")
        .await
        .unwrap();
    let got = message_with(&mut alice, "hello from edge 5").await;
    assert_eq!(got.attr("from"), Some("bob@localhost/five"));

    println!("=== bob is available: a message to his bare JID reaches him (RFC 6121 §8.5.2.1.1)");
    bob.send("<presence/>").await.unwrap();
    alice.send("<presence/>").await.unwrap();
    replicated().await;
    alice
        .send_message("bob@localhost", "to your bare jid")
        .await
        .unwrap();
    let got = message_with(&mut bob, "to your bare jid").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/four"));

    println!("=== an edge started after the others (node 6) is reached from both");
    let six = cluster.start_edge().await.unwrap();
    assert_eq!(six, 6);
    let mut carol = cluster.login(6, "carol", "carol-pw", "six").await.unwrap();
    replicated().await;
    alice
        .send_message("carol@localhost/six", "welcome, edge 6")
        .await
        .unwrap();
    let got = message_with(&mut carol, "welcome, edge 6").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/four"));
    bob.send_message("carol@localhost/six", "from edge 5 too")
        .await
        .unwrap();
    message_with(&mut carol, "from edge 5 too").await;
    carol
        .send_message("bob@localhost/five", "and back from edge 6")
        .await
        .unwrap();
    message_with(&mut bob, "and back from edge 6").await;

    println!("=== kill -9 edge 5: a message for bob's dead session is kept offline, not bounced");
    cluster.kill(5).await.unwrap();
    alice
        .send_message("bob@localhost/five", "are you there?")
        .await
        .unwrap();
    // Until the lease runs out the table still names bob's session on edge 5; the forward to
    // it fails, and the router handles the message as for an unavailable resource (RFC 6121
    // §8.5.3.2.1: as if to the bare JID, which has no other resource: offline storage).
    assert_no_error(&mut alice, Duration::from_secs(4)).await;

    println!("=== after the lease (2 s) bob has no session left: a message is kept offline");
    // Lease 2 s, expiry checked every second on the leader, applied by edge 4 a heartbeat later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    alice
        .send_message("bob@localhost/five", "while you were away")
        .await
        .unwrap();
    // No error comes back this time either: the stanza went to offline storage (RFC 6121
    // §8.5.3.2.1, a full JID without a session is handled as the bare JID).
    assert_no_error(&mut alice, Duration::from_secs(1)).await;

    println!("=== bob logs in on edge 6 and gets both stored messages");
    let mut bob_again = cluster.login(6, "bob", "bob-pw", "six").await.unwrap();
    bob_again.send("<presence/>").await.unwrap();
    let got = message_with(&mut bob_again, "are you there?").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/four"));
    let got = message_with(&mut bob_again, "while you were away").await;
    assert_eq!(got.attr("from"), Some("alice@localhost/four"));
}

/// Asserts no error stanza reaches `c` within `limit` (other stanzas are skipped).
async fn assert_no_error(c: &mut corvid_tests::Client, limit: Duration) {
    let start = tokio::time::Instant::now();
    while start.elapsed() < limit {
        let got = c.next_within(Duration::from_millis(250)).await;
        assert!(
            !matches!(
                &got,
                corvid_tests::Received::Event(corvid_tests::StreamEvent::Element(e))
                    if e.attr("type") == Some("error")
            ),
            "{}: an error came back: {got}",
            c.name()
        );
    }
}
