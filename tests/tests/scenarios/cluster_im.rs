//! Instant messaging across the nodes of a cluster (three combined nodes, real processes, one
//! Redis): subscriptions whose requests and approvals cross nodes (RFC 6121 §3.1), a probe
//! answered by the node that holds the probed resource (§4.3.2), message carbons between
//! resources on different nodes (XEP-0280), offline delivery (§8.5.2.2.1, XEP-0160), and roster
//! pushes to the interested resources of a user on every node (§2.1.6, §2.2).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::cluster::{message_with, stanza_where, Cluster};
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
    cluster.caught_up().await.unwrap();

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
    // Nodes 1 and 2 answer a3's presence by routing to a3: their replicas must know it first
    // (a reply racing a new session's replication is dropped; docs/cluster.md, "Not done yet").
    cluster.caught_up().await.unwrap();
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
    cluster.caught_up().await.unwrap();
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

/// RFC 6121's roster namespace.
const ROSTER: &str = "jabber:iq:roster";

/// Requests the roster (RFC 6121 §2.2), making `c` an interested resource.
async fn request_roster(c: &mut Client) {
    c.send("<iq type='get' id='roster-get'><query xmlns='jabber:iq:roster'/></iq>")
        .await
        .unwrap();
    let result = stanza_where(c, LIMIT, "roster result", |e| {
        e.name == "iq" && e.attr("id") == Some("roster-get")
    })
    .await;
    assert_eq!(result.attr("type"), Some("result"));
}

/// True for a roster push (§2.1.6) about `contact` addressed to `to`.
fn is_push_of(e: &Element, contact: &str, to: &str) -> bool {
    e.name == "iq"
        && e.attr("type") == Some("set")
        && e.attr("to") == Some(to)
        && e.child("query", ROSTER).is_some_and(|q| {
            q.child_elements()
                .any(|i| i.is("item", ROSTER) && i.attr("jid") == Some(contact))
        })
}

/// Waits for the roster push about `contact` to `c` (bound as `to`): from the account's bare
/// JID (§2.1.6: a client ignores pushes from anyone else).
async fn push_of(c: &mut Client, contact: &str, to: &str) -> Element {
    let push = stanza_where(c, LIMIT, &format!("roster push of {contact}"), |e| {
        is_push_of(e, contact, to)
    })
    .await;
    assert_eq!(push.attr("from"), Some("alice@localhost"));
    push
}

/// Asserts that nothing `c` receives for a while is a roster push.
async fn no_push(c: &mut Client) {
    let got = c.drain(Duration::from_millis(1500)).await;
    assert!(
        got.iter()
            .all(|e| !(e.name == "iq" && e.child("query", ROSTER).is_some())),
        "{} is not an interested resource but got a roster push: {got:?}",
        c.name()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_pushes_reach_interested_resources_on_every_node_and_only_them() {
    let cluster = Cluster::builder(env!("CARGO_BIN_EXE_corvid-test-node"))
        .combined(3)
        .user("alice", "alice-pw")
        .start()
        .await
        .expect("the cluster starts");

    println!("=== alice: interested a1 (node 1) and a2 (node 2); quiet2, quiet3 never ask");
    let mut a1 = cluster.login(1, "alice", "alice-pw", "a1").await.unwrap();
    let mut a2 = cluster.login(2, "alice", "alice-pw", "a2").await.unwrap();
    let mut quiet2 = cluster
        .login(2, "alice", "alice-pw", "quiet2")
        .await
        .unwrap();
    let mut quiet3 = cluster
        .login(3, "alice", "alice-pw", "quiet3")
        .await
        .unwrap();
    request_roster(&mut a1).await;
    request_roster(&mut a2).await;
    cluster.caught_up().await.unwrap();

    println!("=== RFC 6121 §2.1.6: a roster set on node 1 is pushed to a2 on node 2");
    a1.send(
        "<iq type='set' id='set1'><query xmlns='jabber:iq:roster'>\
         <item jid='nurse@localhost' name='Nurse'/></query></iq>",
    )
    .await
    .unwrap();
    // §2.3.2: the initiator gets its result, then the push like every interested resource.
    let result = stanza_where(&mut a1, LIMIT, "roster set result", |e| {
        e.name == "iq" && e.attr("id") == Some("set1")
    })
    .await;
    assert_eq!(result.attr("type"), Some("result"));
    push_of(&mut a1, "nurse@localhost", "alice@localhost/a1").await;
    let push = push_of(&mut a2, "nurse@localhost", "alice@localhost/a2").await;
    let item = push
        .child("query", ROSTER)
        .and_then(|q| q.child("item", ROSTER))
        .unwrap();
    assert_eq!(item.attr("name"), Some("Nurse"));
    assert_eq!(item.attr("subscription"), Some("none"));

    println!("=== §2.2: resources that did not request the roster get no push, on any node");
    no_push(&mut quiet2).await;
    no_push(&mut quiet3).await;

    println!("=== quiet3 on node 3 requests the roster; a removal on node 2 reaches it and a1");
    request_roster(&mut quiet3).await;
    // Node 2 pushes to the resources its replica lists as interested: it must know quiet3's
    // request first (the same replication race as in the test above).
    cluster.caught_up().await.unwrap();
    a2.send(
        "<iq type='set' id='rm1'><query xmlns='jabber:iq:roster'>\
         <item jid='nurse@localhost' subscription='remove'/></query></iq>",
    )
    .await
    .unwrap();
    for (c, to) in [
        (&mut quiet3, "alice@localhost/quiet3"),
        (&mut a1, "alice@localhost/a1"),
        (&mut a2, "alice@localhost/a2"),
    ] {
        let push = push_of(c, "nurse@localhost", to).await;
        let item = push
            .child("query", ROSTER)
            .and_then(|q| q.child("item", ROSTER))
            .unwrap();
        assert_eq!(item.attr("subscription"), Some("remove"), "§2.5.2");
    }
    no_push(&mut quiet2).await;
}
