//! The Redis backend under a running server: two servers sharing one Redis see the same
//! accounts, rosters and offline messages; concurrent writers lose nothing; a Redis outage gives
//! clients the RFC's errors while sessions stay up, and the server recovers by itself.
//! (The rest of the suite also runs on Redis with `CORVID_TEST_STORAGE=redis`.)
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_store_redis::testing::RedisServer;
use corvid_tests::{ns, Client, Mechanism, SaslOutcome, Storage, TestServer};
use corvid_xml::Element;

const NS_ROSTER: &str = "jabber:iq:roster";

fn shared(redis: &RedisServer) -> Storage {
    Storage::SharedRedis {
        url: redis.url(),
        prefix: "shared".into(),
    }
}

/// Everything that arrives until nothing more comes for a moment.
async fn drain(c: &mut Client) -> Vec<Element> {
    c.drain(Duration::from_millis(300)).await
}

async fn roster_jids(c: &mut Client) -> Vec<String> {
    let answer = c
        .iq("get", None, &format!("<query xmlns='{NS_ROSTER}'/>"))
        .await
        .unwrap();
    let mut jids: Vec<String> = answer
        .child("query", NS_ROSTER)
        .unwrap()
        .child_elements()
        .filter_map(|i| i.attr("jid").map(str::to_owned))
        .collect();
    jids.sort();
    jids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_one_redis_see_the_same_accounts_rosters_and_offline_messages() {
    let redis = RedisServer::start().await;
    let a = TestServer::builder()
        .storage(shared(&redis))
        .user("alice", "alice-pw")
        .start()
        .await
        .unwrap();
    let b = TestServer::builder()
        .storage(shared(&redis))
        .user("bob", "bob-pw")
        .start()
        .await
        .unwrap();

    // An account created through A logs in on B, and the other way round.
    let mut alice_on_b = Client::login(&b, "alice", "alice-pw", Some("b"))
        .await
        .unwrap();
    let mut bob_on_a = Client::login(&a, "bob", "bob-pw", Some("a")).await.unwrap();

    // A roster change made through B is what A serves.
    let answer = alice_on_b
        .iq(
            "set",
            None,
            &format!("<query xmlns='{NS_ROSTER}'><item jid='carol@localhost'/></query>"),
        )
        .await
        .unwrap();
    assert_eq!(answer.attr("type"), Some("result"));
    let mut alice_on_a = Client::login(&a, "alice", "alice-pw", Some("a"))
        .await
        .unwrap();
    assert_eq!(roster_jids(&mut alice_on_a).await, ["carol@localhost"]);

    // An offline message stored by A is delivered by B (XEP-0160 through the shared store).
    bob_on_a.close().await.unwrap();
    alice_on_a
        .send_message("bob@localhost", "stored by A")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut bob_on_b = Client::login(&b, "bob", "bob-pw", Some("b")).await.unwrap();
    bob_on_b.send("<presence/>").await.unwrap();
    let got = drain(&mut bob_on_b).await;
    assert!(
        got.iter().any(|e| e.name == "message"
            && e.child("body", ns::CLIENT).map(|b| b.text()) == Some("stored by A".into())),
        "bob on B gets the message A stored: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_roster_writers_on_two_servers_lose_nothing() {
    let redis = RedisServer::start().await;
    let a = TestServer::builder()
        .storage(shared(&redis))
        .user("alice", "alice-pw")
        .start()
        .await
        .unwrap();
    let b = TestServer::builder()
        .storage(shared(&redis))
        .start()
        .await
        .unwrap();
    let mut on_a = Client::login(&a, "alice", "alice-pw", Some("a"))
        .await
        .unwrap();
    let mut on_b = Client::login(&b, "alice", "alice-pw", Some("b"))
        .await
        .unwrap();
    let write = |c: &mut Client, prefix: &'static str| {
        let mut c = std::mem::replace(c, Client::new("placeholder"));
        tokio::spawn(async move {
            for i in 0..15 {
                let answer = c
                    .iq("set", None, &format!("<query xmlns='{NS_ROSTER}'><item jid='{prefix}{i}@localhost'/></query>"))
                    .await
                    .unwrap();
                assert_eq!(answer.attr("type"), Some("result"));
            }
            c
        })
    };
    let (ta, tb) = (write(&mut on_a, "a"), write(&mut on_b, "b"));
    let (mut on_a, _on_b) = (ta.await.unwrap(), tb.await.unwrap());
    let jids = roster_jids(&mut on_a).await;
    assert_eq!(
        jids.len(),
        30,
        "every item of both writers is there: {jids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_to_one_offline_queue_on_two_servers_lose_nothing() {
    let redis = RedisServer::start().await;
    let a = TestServer::builder()
        .storage(shared(&redis))
        .user("alice", "alice-pw")
        .user("carol", "carol-pw")
        .user("bob", "bob-pw")
        .start()
        .await
        .unwrap();
    let b = TestServer::builder()
        .storage(shared(&redis))
        .start()
        .await
        .unwrap();
    let alice = Client::login(&a, "alice", "alice-pw", Some("a"))
        .await
        .unwrap();
    let carol = Client::login(&b, "carol", "carol-pw", Some("b"))
        .await
        .unwrap();
    let send = |mut c: Client, who: &'static str| {
        tokio::spawn(async move {
            for i in 0..20 {
                c.send_message("bob@localhost", &format!("{who} {i}"))
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            c
        })
    };
    let (ta, tc) = (send(alice, "alice"), send(carol, "carol"));
    let (_alice, _carol) = (ta.await.unwrap(), tc.await.unwrap());
    let mut bob = Client::login(&b, "bob", "bob-pw", Some("phone"))
        .await
        .unwrap();
    bob.send("<presence/>").await.unwrap();
    let bodies: Vec<String> = drain(&mut bob)
        .await
        .iter()
        .filter(|e| e.name == "message")
        .filter_map(|e| e.child("body", ns::CLIENT).map(|b| b.text()))
        .collect();
    assert_eq!(bodies.len(), 40, "{bodies:?}");
    for who in ["alice", "carol"] {
        let mine: Vec<&String> = bodies.iter().filter(|b| b.starts_with(who)).collect();
        let expected: Vec<String> = (0..20).map(|i| format!("{who} {i}")).collect();
        assert_eq!(
            mine,
            expected.iter().collect::<Vec<_>>(),
            "XEP-0160: in order per sender"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_gives_clients_errors_keeps_sessions_and_recovers() {
    let mut server = TestServer::builder()
        .storage(Storage::Redis)
        .settings(|s| s.storage.redis.command_timeout_ms = 300)
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .start()
        .await
        .unwrap();
    let mut alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();

    // Redis stops answering (frozen, like a partition).
    server.redis().unwrap().pause().await;

    // RFC 6120 §6.5.11: a login needing the store fails with temporary-auth-failure.
    let mut bob = Client::new("bob");
    bob.connect(&server).await.unwrap();
    bob.open_stream().await.unwrap();
    bob.starttls().await.unwrap();
    bob.open_stream().await.unwrap();
    let outcome = bob
        .authenticate(Mechanism::ScramSha1, "bob", "bob-pw")
        .await
        .unwrap();
    assert_eq!(
        outcome,
        SaslOutcome::Failure("temporary-auth-failure".into())
    );

    // A roster change cannot be stored: internal-server-error (RFC 6120 §8.3.3.6), never a
    // silent success.
    let answer = alice
        .iq(
            "set",
            None,
            &format!("<query xmlns='{NS_ROSTER}'><item jid='carol@localhost'/></query>"),
        )
        .await
        .unwrap();
    assert_eq!(
        answer.attr("type"),
        Some("error"),
        "{}",
        answer.to_xml(ns::CLIENT)
    );
    // A message for an offline user cannot be stored: the sender is told (RFC 6121 §8.5.2.2.1
    // allows no silent loss).
    alice
        .send_message("bob@localhost", "while Redis is down")
        .await
        .unwrap();
    alice
        .expect_stanza_error("message", "internal-server-error")
        .await;
    // The session stays up: the server answers a ping.
    alice.ping_server().await.unwrap();

    // Redis comes back: everything works again without a restart.
    server.redis().unwrap().resume().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = alice
        .iq(
            "set",
            None,
            &format!("<query xmlns='{NS_ROSTER}'><item jid='carol@localhost'/></query>"),
        )
        .await
        .unwrap();
    assert_eq!(
        answer.attr("type"),
        Some("result"),
        "{}",
        answer.to_xml(ns::CLIENT)
    );
    let _ = drain(&mut alice).await;
    Client::login(&server, "bob", "bob-pw", Some("laptop"))
        .await
        .unwrap();
    assert_eq!(roster_jids(&mut alice).await, ["carol@localhost"]);
}
