//! Three `corvid serve` PROCESSES forming a cluster of combined nodes (each a registry voter
//! and an edge) over one shared Redis: the session table is replicated with Raft between the
//! processes, and stanzas for a session on another node travel over gRPC. Then one process is
//! killed with SIGKILL, and the two left (a quorum of 2 of 3) keep routing and binding.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use corvid_store_redis::testing::RedisServer;
use corvid_tests::{free_port, ns, Client, Received, StreamEvent, TestServer};
use corvid_xml::Element;
use tokio::time::Instant;

/// How long the cluster gets to elect a leader, or to recover after a kill.
const SETTLE: Duration = Duration::from_secs(30);

/// A `corvid serve` process, killed on drop.
struct Node {
    id: u64,
    child: Child,
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts node `id` of the cluster described by `members` (`id=host:port,…`), gRPC on `grpc`.
async fn node(redis: &RedisServer, id: u64, grpc: &str, members: &str) -> Node {
    let data = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_corvid-test-node"))
        .arg("serve")
        .env("CORVID__STORAGE__BACKEND", "redis")
        .env("CORVID__STORAGE__REDIS__URL", redis.url())
        .env("CORVID__STORAGE__REDIS__KEY_PREFIX", "cluster")
        .env("CORVID__STORAGE__PATH", data.path())
        .env("CORVID__C2S__STARTTLS_LISTEN", addr.to_string())
        .env("CORVID__C2S__DIRECT_TLS_LISTEN", "")
        .env("CORVID__AUTH__SCRAM_ITERATIONS", "4096")
        .env("CORVID__LOG__LEVEL", "warn")
        .env("CORVID__CLUSTER__ENABLED", "true")
        .env("CORVID__CLUSTER__NODE_ID", id.to_string())
        .env("CORVID__CLUSTER__LISTEN", grpc)
        .env("CORVID__CLUSTER__MEMBERS", members)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let node = Node {
        id,
        child,
        addr,
        _data: data,
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("corvid serve (node {id}) did not listen on {addr}");
}

/// Logs in until the bind succeeds (the registry has a leader and a quorum), within `SETTLE`.
async fn login_when_ready(node: &Node, user: &str, password: &str, resource: &str) -> Client {
    let server = TestServer::external(node.addr, None).unwrap();
    let start = Instant::now();
    loop {
        match Client::login(&server, user, password, Some(resource)).await {
            Ok(c) => return c,
            Err(e) if start.elapsed() < SETTLE => {
                eprintln!("node {}: {user}/{resource} not bound yet: {e:#}", node.id);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("node {}: {user}/{resource} never bound: {e:#}", node.id),
        }
    }
}

/// Other nodes' replicas apply a bind on the leader's next heartbeat (100 ms); a stanza sent
/// from another node before that does not find the new resource. Real clients learn of a
/// resource from its presence, which comes later still; the tests wait instead.
async fn replicated() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Waits for a `<message/>` with `body`, skipping anything else (presence); returns it.
async fn message_with(c: &mut Client, body: &str) -> Element {
    stanza_where(
        c,
        Duration::from_secs(10),
        &format!("message {body:?}"),
        |e| {
            e.name == "message"
                && e.child("body", ns::CLIENT).map(|b| b.text()) == Some(body.into())
        },
    )
    .await
}

/// Waits up to `limit` for a stanza matching `pred`, skipping the others; returns it.
async fn stanza_where(
    c: &mut Client,
    limit: Duration,
    what: &str,
    pred: impl Fn(&Element) -> bool,
) -> Element {
    let start = Instant::now();
    while start.elapsed() < limit {
        match c.next_within(Duration::from_millis(500)).await {
            Received::Event(StreamEvent::Element(e)) if pred(&e) => return e,
            Received::Event(StreamEvent::Element(e)) => {
                eprintln!("{}: skipping {}", c.name(), e.to_xml(ns::CLIENT));
            }
            Received::TimedOut => {}
            other => panic!("{}: expected stanzas, got {other}", c.name()),
        }
    }
    panic!("{}: no {what} arrived", c.name());
}

/// Starts a 3-node cluster on `redis` and creates alice and bob with the admin CLI.
async fn cluster(redis: &RedisServer) -> Vec<Node> {
    let grpc: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let members = grpc
        .iter()
        .enumerate()
        .map(|(i, addr)| format!("{}={addr}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for (i, addr) in grpc.iter().enumerate() {
        nodes.push(node(redis, i as u64 + 1, addr, &members).await);
    }
    for (user, password) in [("alice@localhost", "alice-pw"), ("bob@localhost", "bob-pw")] {
        let out = Command::new(env!("CARGO_BIN_EXE_corvid-test-node"))
            .args(["user", "add", user, "-p", password])
            .env("CORVID__STORAGE__BACKEND", "redis")
            .env("CORVID__STORAGE__REDIS__URL", redis.url())
            .env("CORVID__STORAGE__REDIS__KEY_PREFIX", "cluster")
            .env("CORVID__AUTH__SCRAM_ITERATIONS", "4096")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    println!("=== wait until every node binds (a leader exists, every lease is live)");
    for n in &nodes {
        let probe = login_when_ready(n, "alice", "alice-pw", &format!("probe{}", n.id)).await;
        drop(probe);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_combined_nodes_route_between_processes_and_survive_a_killed_node() {
    let redis = RedisServer::start().await;
    let mut nodes = cluster(&redis).await;

    println!("=== alice on node 1, bob on node 2: full-JID messages both ways");
    let mut alice = login_when_ready(&nodes[0], "alice", "alice-pw", "one").await;
    let mut bob = login_when_ready(&nodes[1], "bob", "bob-pw", "two").await;
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
    let mut third = nodes.pop().unwrap();
    third.child.kill().unwrap();
    third.child.wait().unwrap();
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
    let mut alice2 = login_when_ready(&nodes[0], "alice", "alice-pw", "again").await;
    replicated().await;
    bob.send_message("alice@localhost/again", "to the new session")
        .await
        .unwrap();
    let got = message_with(&mut alice2, "to the new session").await;
    assert_eq!(got.attr("from"), Some("bob@localhost/two"));
    drop(third);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_first_leader_lets_the_others_elect_one_and_take_binds_again() {
    let redis = RedisServer::start().await;
    let mut nodes = cluster(&redis).await;

    println!("=== alice on node 2, bob on node 3");
    let mut alice = login_when_ready(&nodes[1], "alice", "alice-pw", "two").await;
    let mut bob = login_when_ready(&nodes[2], "bob", "bob-pw", "three").await;
    replicated().await;
    alice
        .send_message("bob@localhost/three", "before")
        .await
        .unwrap();
    message_with(&mut bob, "before").await;

    println!("=== alice subscribes to bob's presence (both on node 2)");
    // Subscription requests reach only sessions on the node that handles them (for now), so
    // the handshake happens on one node; the subscription itself is in the shared store.
    let mut bob_setup = login_when_ready(&nodes[1], "bob", "bob-pw", "setup").await;
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
    let mut bob_first = login_when_ready(&nodes[0], "bob", "bob-pw", "first").await;
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
    let mut first = nodes.remove(0);
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    println!("=== sessions on the survivors keep talking");
    bob.send_message("alice@localhost/two", "during")
        .await
        .unwrap();
    message_with(&mut alice, "during").await;

    println!("=== a new login binds once nodes 2 and 3 agree on a leader");
    let started = Instant::now();
    let mut bob2 = login_when_ready(&nodes[1], "bob", "bob-pw", "again").await;
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
    drop(first);
}
