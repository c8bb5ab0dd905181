//! Instant messaging across the nodes of a cluster (three combined nodes, real processes, one
//! Redis): subscriptions whose requests and approvals cross nodes (RFC 6121 §3.1), a probe
//! answered by the node that holds the probed resource (§4.3.2), message carbons between
//! resources on different nodes (XEP-0280), and offline delivery (§8.5.2.2.1, XEP-0160).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::cluster::{message_with, replicated, stanza_where, Cluster};
use corvid_tests::{ns, Client};
use corvid_xml::Element;

/// XEP-0280's namespace.
const CARBONS: &str = "urn:xmpp:carbons:2";
/// How long a stanza may take to cross the cluster.
const LIMIT: Duration = Duration::from_secs(10);

/// Waits for presence of `ty` (`None`: available) from `from`.
pub(crate) async fn presence_from(c: &mut Client, from: &str, ty: Option<&str>) -> Element {
    stanza_where(c, LIMIT, &format!("presence {ty:?} from {from}"), |e| {
        e.name == "presence" && e.attr("from") == Some(from) && e.attr("type") == ty
    })
    .await
}

/// `a` (bare `a_jid`) subscribes to `b`'s presence and `b` approves (RFC 6121 §3.1), each on
/// whatever node it is connected to; both are available.
pub(crate) async fn subscribe(a: &mut Client, a_jid: &str, b: &mut Client, b_jid: &str) {
    a.send(format!("<presence to='{b_jid}' type='subscribe'/>"))
        .await
        .unwrap();
    // §3.1.3: pushed to the contact's available resource, here on another node.
    let req = stanza_where(b, LIMIT, "subscription request", |e| {
        e.name == "presence" && e.attr("type") == Some("subscribe")
    })
    .await;
    assert_eq!(req.attr("from"), Some(a_jid));
    b.send(format!("<presence to='{a_jid}' type='subscribed'/>"))
        .await
        .unwrap();
    stanza_where(a, LIMIT, "subscribed", |e| {
        e.name == "presence" && e.attr("type") == Some("subscribed")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_probes_carbons_and_offline_messages_work_across_nodes() {
    let cluster = Cluster::builder(env!("CARGO_BIN_EXE_corvid-test-node"))
        .combined(3)
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .user("carol", "carol-pw")
        .start()
        .await
        .expect("the cluster starts");

    println!("=== alice on node 1, bob on node 2, both available");
    let mut alice = cluster.login(1, "alice", "alice-pw", "a1").await.unwrap();
    let mut bob = cluster.login(2, "bob", "bob-pw", "b2").await.unwrap();
    alice.send("<presence/>").await.unwrap();
    bob.send("<presence><status>on node two</status></presence>")
        .await
        .unwrap();
    replicated().await;

    println!("=== RFC 6121 §3.1: alice subscribes to bob across nodes, and bob to alice");
    subscribe(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    // §3.1.5: on approval alice receives bob's current presence, status included.
    let p = presence_from(&mut alice, "bob@localhost/b2", None).await;
    assert_eq!(
        p.child("status", ns::CLIENT).map(|s| s.text()).as_deref(),
        Some("on node two")
    );
    subscribe(&mut bob, "bob@localhost", &mut alice, "alice@localhost").await;

    println!("=== RFC 6121 §4.3.2: alice's new resource on node 3 probes bob, answered by node 2");
    let mut alice3 = cluster.login(3, "alice", "alice-pw", "a3").await.unwrap();
    alice3
        .send("<iq type='set' id='c3'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
        .await
        .unwrap();
    alice3.expect_element("iq", ns::CLIENT).await;
    alice3.send("<presence/>").await.unwrap();
    // From two other nodes, in either order: the full last presence of bob/b2 (rule 4), kept
    // in node 2's memory only, and (§4.2.2) that of the account's other resource, on node 1.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let p = stanza_where(
            &mut alice3,
            LIMIT,
            "bob/b2's and alice/a1's presence",
            |e| {
                e.name == "presence"
                    && e.attr("type").is_none()
                    && matches!(
                        e.attr("from"),
                        Some("bob@localhost/b2" | "alice@localhost/a1")
                    )
            },
        )
        .await;
        if p.attr("from") == Some("bob@localhost/b2") {
            assert_eq!(
                p.child("status", ns::CLIENT).map(|s| s.text()).as_deref(),
                Some("on node two")
            );
        }
        let from = p.attr("from").unwrap_or_default().to_owned();
        assert!(!seen.contains(&from), "two answers from {from}");
        seen.push(from);
    }
    // bob, subscribed to alice, hears of the new resource.
    presence_from(&mut bob, "alice@localhost/a3", None).await;

    println!("=== a resource on node 2 that did not enable carbons");
    let mut alice_plain = cluster
        .login(2, "alice", "alice-pw", "plain")
        .await
        .unwrap();
    alice_plain.send("<presence/>").await.unwrap();
    replicated().await;
    alice_plain.drain(Duration::from_millis(500)).await;
    alice3.drain(Duration::from_millis(500)).await;
    alice.drain(Duration::from_millis(500)).await;

    println!("=== XEP-0280 §7: bob writes alice/a1; a3 on node 3 gets a received copy");
    alice
        .send("<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
        .await
        .unwrap();
    alice.expect_element("iq", ns::CLIENT).await;
    bob.send_message("alice@localhost/a1", "for a1")
        .await
        .unwrap();
    let got = message_with(&mut alice, "for a1").await;
    assert_eq!(got.attr("from"), Some("bob@localhost/b2"));
    let copy = stanza_where(&mut alice3, LIMIT, "received carbon", |e| {
        e.name == "message" && e.child("received", CARBONS).is_some()
    })
    .await;
    assert_eq!(copy.attr("from"), Some("alice@localhost"));
    assert_eq!(copy.attr("to"), Some("alice@localhost/a3"));

    println!("=== XEP-0280 §8: a1 on node 1 writes bob; a3 on node 3 gets a sent copy");
    alice
        .send_message("bob@localhost/b2", "from a1")
        .await
        .unwrap();
    message_with(&mut bob, "from a1").await;
    stanza_where(&mut alice3, LIMIT, "sent carbon", |e| {
        e.name == "message" && e.child("sent", CARBONS).is_some()
    })
    .await;
    // §4: a resource that did not enable carbons gets no copies, wherever it is.
    let extra = alice_plain.drain(Duration::from_secs(1)).await;
    assert!(
        extra
            .iter()
            .all(|e| e.child("received", CARBONS).is_none() && e.child("sent", CARBONS).is_none()),
        "alice/plain got carbons without enabling them: {extra:?}"
    );

    println!("=== RFC 6121 §8.5.2.2.1: a message to offline carol is stored, then delivered");
    bob.send_message("carol@localhost", "while you were out")
        .await
        .unwrap();
    let mut carol = cluster.login(3, "carol", "carol-pw", "c3").await.unwrap();
    carol.send("<presence/>").await.unwrap();
    let got = message_with(&mut carol, "while you were out").await;
    assert_eq!(got.attr("from"), Some("bob@localhost/b2"));
    // XEP-0203: stamped with when it was stored.
    assert!(got.child("delay", "urn:xmpp:delay").is_some());
}
