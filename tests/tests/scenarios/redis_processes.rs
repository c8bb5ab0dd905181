//! Two `corvid serve` PROCESSES sharing one Redis (the "two server processes"): an
//! account, a roster change and an offline message written through one are seen through the
//! other. The processes run the real program (`corvid-test-node` is `corvid::cli::main`).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use corvid_store_redis::testing::RedisServer;
use corvid_tests::{free_port, ns, Client, TestServer};
use corvid_xml::Element;

const NS_ROSTER: &str = "jabber:iq:roster";

/// A `corvid serve` process, killed on drop.
struct Node {
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

async fn node(redis: &RedisServer) -> Node {
    let data = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_corvid-test-node"))
        .arg("serve")
        .env("CORVID__STORAGE__BACKEND", "redis")
        .env("CORVID__STORAGE__REDIS__URL", redis.url())
        .env("CORVID__STORAGE__REDIS__KEY_PREFIX", "procs")
        .env("CORVID__STORAGE__PATH", data.path())
        .env("CORVID__C2S__STARTTLS_LISTEN", addr.to_string())
        .env("CORVID__C2S__DIRECT_TLS_LISTEN", "")
        .env("CORVID__ADMIN__LISTEN", "127.0.0.1:0")
        .env("CORVID__AUTH__SCRAM_ITERATIONS", "4096")
        .env("CORVID__LOG__LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let node = Node {
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
    panic!("corvid serve did not listen on {addr}");
}

async fn drain(c: &mut Client) -> Vec<Element> {
    c.drain(Duration::from_millis(300)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_sharing_one_redis_see_the_same_data() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    // Accounts made with the admin CLI of the same program, on the shared store.
    for (user, password) in [("alice@localhost", "alice-pw"), ("bob@localhost", "bob-pw")] {
        let out = Command::new(env!("CARGO_BIN_EXE_corvid-test-node"))
            .args(["user", "add", user, "-p", password])
            .env("CORVID__STORAGE__BACKEND", "redis")
            .env("CORVID__STORAGE__REDIS__URL", redis.url())
            .env("CORVID__STORAGE__REDIS__KEY_PREFIX", "procs")
            .env("CORVID__AUTH__SCRAM_ITERATIONS", "4096")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (on_a, on_b) = (
        TestServer::external(a.addr, None).unwrap(),
        TestServer::external(b.addr, None).unwrap(),
    );

    // A roster change through process A is served by process B.
    let mut alice_a = Client::login(&on_a, "alice", "alice-pw", Some("a"))
        .await
        .unwrap();
    let answer = alice_a
        .iq(
            "set",
            None,
            &format!("<query xmlns='{NS_ROSTER}'><item jid='bob@localhost' name='Bob'/></query>"),
        )
        .await
        .unwrap();
    assert_eq!(answer.attr("type"), Some("result"));
    let mut alice_b = Client::login(&on_b, "alice", "alice-pw", Some("b"))
        .await
        .unwrap();
    let roster = alice_b
        .iq("get", None, &format!("<query xmlns='{NS_ROSTER}'/>"))
        .await
        .unwrap();
    let item = roster
        .child("query", NS_ROSTER)
        .unwrap()
        .child("item", NS_ROSTER)
        .unwrap();
    assert_eq!(
        (item.attr("jid"), item.attr("name")),
        (Some("bob@localhost"), Some("Bob"))
    );

    // An offline message stored by A is delivered by B.
    alice_a
        .send_message("bob@localhost", "through Redis")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut bob_b = Client::login(&on_b, "bob", "bob-pw", Some("b"))
        .await
        .unwrap();
    bob_b.send("<presence/>").await.unwrap();
    let got = drain(&mut bob_b).await;
    assert!(
        got.iter().any(|e| e.name == "message"
            && e.child("body", ns::CLIENT).map(|b| b.text()) == Some("through Redis".into())),
        "{got:?}"
    );
}
