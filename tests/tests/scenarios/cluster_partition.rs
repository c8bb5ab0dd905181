//! A network partition (issue #5): one node of three is cut off from the other two, then healed.
//!
//! How the cut is made: every node runs in its own **network namespace** with two links, one to
//! a "cluster" bridge (the only path between nodes' gRPC listeners) and one to a "service" bridge
//! (the test's clients, and Redis through a relay); cutting a node sets its cluster link down,
//! healing sets it up (`corvid_tests::cluster::netns`). We chose this over a fault-injecting TCP
//! proxy because gRPC is request/response over connections the *caller* opens: a proxy in front
//! of each node's port cuts only calls *to* the node, while the node's own calls to the others
//! (votes, proposals to the leader, forwarded stanzas) go to their advertised addresses and come
//! back with answers on the same connection, so the node would not be cut off at all. Telling a
//! node's outgoing connections apart on loopback would need a proxy per pair of nodes, but peers
//! take each other's addresses from the replicated Raft membership, one address per node. A
//! link down loses every packet both ways, on open connections and new ones, like a failed
//! switch port, and the node's clients and its Redis stay reachable, so what the node answers
//! its clients while cut off can be checked. Creating namespaces needs root (CI runs as root);
//! elsewhere the test says loudly that it is skipped.
//!
//! What RFC 6120 and the issue ask, and what the test checks:
//! - the cut-off minority cannot bind (a bind is a Raft write needing a quorum): the bind is
//!   answered with an error, `internal-server-error` (RFC 6120 §7.6.2; the server gives up after
//!   its 3 s write deadline instead of hanging);
//! - the majority elects a new leader (the cut node is the leader when cut), binds and routes,
//!   and declares the cut node down when its lease runs out: a contact subscribed to the cut
//!   node's user receives exactly one `unavailable` for the lost session (RFC 6121 §4.5.1 sent on
//!   the user's behalf, by one surviving node);
//! - after healing, nothing is repaired by hand: the node follows the new leader, closes the
//!   connection of the session the cluster dropped (`connection-timeout`, and no second
//!   `unavailable`), renews its lease, binds again, and stanzas flow both ways.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::cluster::{message_with, netns, replicated, stanza_where, Cluster};
use tokio::time::Instant;

use crate::cluster_im::{presence_from, subscribe};

/// How long the cluster may take to agree on a leader after starting or healing.
const AGREE_WITHIN: Duration = Duration::from_secs(20);

/// The leader every node named in `ids` agrees on, waiting up to [`AGREE_WITHIN`].
async fn agreed_leader(cluster: &Cluster, ids: &[u64]) -> u64 {
    let start = Instant::now();
    loop {
        let mut seen = Vec::new();
        for &id in ids {
            seen.push(cluster.leader(id).await.ok().flatten());
        }
        if let Some(Some(l)) = seen.first().copied() {
            if seen.iter().all(|s| *s == Some(l)) {
                return l;
            }
        }
        assert!(
            start.elapsed() < AGREE_WITHIN,
            "nodes {ids:?} did not agree on a leader within {AGREE_WITHIN:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_node_refuses_binds_is_declared_down_and_rejoins_when_healed() {
    if !netns::available() {
        eprintln!(
            "\n!!!!!!!! SKIPPED cluster_partition: creating network namespaces needs root \
             (run as root, as CI does) !!!!!!!!\n"
        );
        return;
    }
    let started = Instant::now();
    let cluster = Cluster::builder(env!("CARGO_BIN_EXE_corvid-test-node"))
        .namespaces()
        .combined(3)
        .short_leases()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .user("carol", "carol-pw")
        .start()
        .await
        .expect("the cluster starts in its namespaces");

    let cut = agreed_leader(&cluster, &[1, 2, 3]).await;
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != cut).collect();
    let (m1, m2) = (rest[0], rest[1]);
    println!("=== leader is node {cut}: it will be cut off; nodes {m1} and {m2} stay together");

    let mut alice = cluster
        .login(cut, "alice", "alice-pw", "cut")
        .await
        .unwrap();
    let mut bob = cluster.login(m1, "bob", "bob-pw", "b").await.unwrap();
    let mut carol = cluster.login(m2, "carol", "carol-pw", "c").await.unwrap();
    alice.send("<presence/>").await.unwrap();
    bob.send("<presence/>").await.unwrap();
    replicated().await;
    subscribe(&mut bob, "bob@localhost", &mut alice, "alice@localhost").await;
    presence_from(&mut bob, "alice@localhost/cut", None).await;
    bob.drain(Duration::from_millis(300)).await;

    println!("=== cut node {cut} off");
    cluster.cut(cut).unwrap();
    let cut_at = Instant::now();

    println!("=== the cut-off minority refuses a new bind with an error (RFC 6120 §7.6.2)");
    let Err(refused) = cluster
        .login_once(cut, "alice", "alice-pw", "while-cut")
        .await
    else {
        panic!("a node cut off from the quorum must not bind");
    };
    let why = format!("{refused:#}");
    assert!(
        why.contains("bind answered with") && why.contains("internal-server-error"),
        "the bind must be answered with an internal-server-error IQ error: {why}"
    );

    println!("=== the majority elects a new leader and binds");
    let mut carol2 = cluster.login(m2, "carol", "carol-pw", "c2").await.unwrap();
    let new_leader = agreed_leader(&cluster, &[m1, m2]).await;
    assert_ne!(new_leader, cut, "the cut node cannot lead the majority");
    println!(
        "new leader {new_leader}, {:?} after the cut",
        cut_at.elapsed()
    );
    replicated().await;
    bob.send_message("carol@localhost/c2", "majority works")
        .await
        .unwrap();
    message_with(&mut carol2, "majority works").await;

    println!("=== the cut node is declared down after its lease: bob hears alice/cut leave once");
    let gone = stanza_where(
        &mut bob,
        Duration::from_secs(15),
        "unavailable from alice/cut",
        |e| {
            e.name == "presence"
                && e.attr("from") == Some("alice@localhost/cut")
                && e.attr("type") == Some("unavailable")
        },
    )
    .await;
    // Sent to the contact's bare JID, as a broadcast (RFC 6121 §4.5.2).
    assert_eq!(gone.attr("to"), Some("bob@localhost"));
    println!("declared down {:?} after the cut", cut_at.elapsed());
    let more = bob.drain(Duration::from_secs(2)).await;
    assert!(
        !more.iter().any(|e| e.name == "presence"
            && e.attr("from") == Some("alice@localhost/cut")
            && e.attr("type") == Some("unavailable")),
        "exactly one unavailable per lost session (issue #5): {more:?}"
    );

    println!("=== heal node {cut}");
    cluster.heal(cut).unwrap();
    let healed_at = Instant::now();
    let leader = agreed_leader(&cluster, &[1, 2, 3]).await;
    println!(
        "all three follow node {leader}, {:?} after healing",
        healed_at.elapsed()
    );

    println!(
        "=== node {cut} closes the session the cluster dropped; bob hears no second unavailable"
    );
    // Its client was still connected through the cut; the cluster dropped the session when it
    // declared the node down. The node learns it on catching up and ends the stream with
    // `connection-timeout` (RFC 6120 §4.9.3.4), without a second unavailable to the contacts.
    let error = stanza_where(&mut alice, Duration::from_secs(15), "a stream error", |e| {
        e.name == "error"
    })
    .await;
    assert!(
        error
            .child("connection-timeout", corvid_tests::ns::STREAMS)
            .is_some(),
        "the orphaned session is closed with connection-timeout: {}",
        error.to_xml(corvid_tests::ns::STREAM)
    );
    let after_close = bob.drain(Duration::from_secs(1)).await;
    assert!(
        !after_close.iter().any(|e| e.name == "presence"
            && e.attr("from") == Some("alice@localhost/cut")
            && e.attr("type") == Some("unavailable")),
        "closing the orphaned session must not announce it again: {after_close:?}"
    );

    println!("=== no manual repair: node {cut} binds again and stanzas flow both ways");
    let mut again = cluster
        .login(cut, "alice", "alice-pw", "again")
        .await
        .unwrap();
    println!("node {cut} binds {:?} after healing", healed_at.elapsed());
    again.send("<presence/>").await.unwrap();
    // Presence from the healed node reaches the subscribed contact on a majority node.
    presence_from(&mut bob, "alice@localhost/again", None).await;
    replicated().await;
    again
        .send_message("bob@localhost/b", "from the healed node")
        .await
        .unwrap();
    message_with(&mut bob, "from the healed node").await;
    bob.send_message("alice@localhost/again", "to the healed node")
        .await
        .unwrap();
    message_with(&mut again, "to the healed node").await;
    carol
        .send_message("alice@localhost/again", "from the other node")
        .await
        .unwrap();
    message_with(&mut again, "from the other node").await;
    println!("=== done in {:?}", started.elapsed());
}
