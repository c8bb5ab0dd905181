//! RFC 6121 §3 (presence subscriptions) and §4 (presence), as conversations between alice,
//! bob and carol.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::{ns, Client, TestServer};
use corvid_xml::Element;

const NS_ROSTER: &str = "jabber:iq:roster";
const QUIET: Duration = Duration::from_millis(300);

async fn server() -> TestServer {
    TestServer::builder()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .user("carol", "carol-pw")
        .start()
        .await
        .unwrap()
}

async fn login(server: &TestServer, user: &str, resource: &str) -> Client {
    Client::login(server, user, &format!("{user}-pw"), Some(resource))
        .await
        .unwrap()
}

/// Everything that arrives until nothing more comes for [`QUIET`].
async fn drain(c: &mut Client) -> Vec<Element> {
    c.drain(QUIET).await
}

/// Logs in, asks for the roster (an interested resource, RFC 6121 §2.2), sends `presence`
/// (an available resource, §4.2) and returns what arrived after it.
async fn online(
    server: &TestServer,
    user: &str,
    resource: &str,
    presence: &str,
) -> (Client, Vec<Element>) {
    let mut c = login(server, user, resource).await;
    let answer = c
        .iq("get", None, &format!("<query xmlns='{NS_ROSTER}'/>"))
        .await
        .unwrap();
    assert_eq!(answer.attr("type"), Some("result"));
    c.send(presence).await.unwrap();
    let got = drain(&mut c).await;
    (c, got)
}

/// The presence stanzas among `els` from `from`, as (type, status).
fn presence_from(els: &[Element], from: &str) -> Vec<(Option<String>, Option<String>)> {
    els.iter()
        .filter(|e| e.is("presence", ns::CLIENT) && e.attr("from") == Some(from))
        .map(|e| {
            (
                e.attr("type").map(str::to_owned),
                e.child("status", ns::CLIENT).map(Element::text),
            )
        })
        .collect()
}

fn roster_pushes(els: &[Element]) -> Vec<Element> {
    els.iter()
        .filter(|e| e.is("iq", ns::CLIENT) && e.attr("type") == Some("set"))
        .filter_map(|e| {
            e.child("query", NS_ROSTER)?
                .child("item", NS_ROSTER)
                .cloned()
        })
        .collect()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

/// alice and bob subscribe to each other (RFC 6121 §3.1), both online.
async fn befriend(alice: &mut Client, bob: &mut Client) {
    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await
        .unwrap();
    drain(bob).await;
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
        .await
        .unwrap();
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
        .await
        .unwrap();
    drain(alice).await;
    alice
        .send("<presence to='bob@localhost' type='subscribed'/>")
        .await
        .unwrap();
    drain(alice).await;
    drain(bob).await;
}

#[tokio::test]
async fn mutual_subscription_makes_both_see_presence() {
    let server = server().await;
    let (mut alice, _) = online(
        &server,
        "alice",
        "phone",
        "<presence><status>at home</status></presence>",
    )
    .await;
    let (mut bob, _) = online(
        &server,
        "bob",
        "laptop",
        "<presence><status>in the orchard</status></presence>",
    )
    .await;

    // §3.1.2: the request reaches bob from alice's bare JID; alice's roster shows ask.
    alice
        .send("<presence to='bob@localhost/laptop' type='subscribe' id='sub1'/>")
        .await
        .unwrap();
    let at_alice = drain(&mut alice).await;
    let push = &roster_pushes(&at_alice)[0];
    assert_eq!(push.attr("subscription"), Some("none"));
    assert_eq!(push.attr("ask"), Some("subscribe"));
    let at_bob = drain(&mut bob).await;
    let request = at_bob
        .iter()
        .find(|e| e.attr("type") == Some("subscribe"))
        .expect("bob gets the request");
    assert_eq!(
        request.attr("from"),
        Some("alice@localhost"),
        "§3.1.2: bare 'from'"
    );
    assert_eq!(
        request.attr("to"),
        Some("bob@localhost"),
        "§3.1.2: bare 'to'"
    );
    assert!(
        roster_pushes(&at_bob).is_empty(),
        "§3.1.3: no item for a mere request"
    );

    // §3.1.5: bob approves; alice gets the approval, then a push with 'to', then bob's
    // presence (§3.1.6).
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
        .await
        .unwrap();
    let at_bob = drain(&mut bob).await;
    assert_eq!(roster_pushes(&at_bob)[0].attr("subscription"), Some("from"));
    let at_alice = drain(&mut alice).await;
    assert_eq!(
        presence_from(&at_alice, "bob@localhost"),
        [(some("subscribed"), None)]
    );
    assert_eq!(roster_pushes(&at_alice)[0].attr("subscription"), Some("to"));
    assert_eq!(
        presence_from(&at_alice, "bob@localhost/laptop"),
        [(None, some("in the orchard"))]
    );

    // And the other way round.
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
        .await
        .unwrap();
    drain(&mut alice).await;
    alice
        .send("<presence to='bob@localhost' type='subscribed'/>")
        .await
        .unwrap();
    let at_alice = drain(&mut alice).await;
    assert_eq!(
        roster_pushes(&at_alice)[0].attr("subscription"),
        Some("both")
    );
    let at_bob = drain(&mut bob).await;
    assert_eq!(
        presence_from(&at_bob, "alice@localhost/phone"),
        [(None, some("at home"))]
    );

    // §4.4.2: a presence update reaches the subscriber, and alice's own resource too.
    alice
        .send("<presence><show>away</show><status>out</status></presence>")
        .await
        .unwrap();
    assert_eq!(
        presence_from(&drain(&mut bob).await, "alice@localhost/phone"),
        [(None, some("out"))]
    );
    assert_eq!(
        presence_from(&drain(&mut alice).await, "alice@localhost/phone"),
        [(None, some("out"))],
        "§4.4.2: also to the resource that sent it"
    );
}

#[tokio::test]
async fn subscription_request_to_offline_user_is_delivered_at_next_login() {
    // RFC 6121 §3.1.3 rule 4: stored, delivered when bob next has an available resource, and
    // again at every new one until he answers.
    let server = server().await;
    let (mut alice, _) = online(&server, "alice", "phone", "<presence/>").await;
    alice
        .send(
            "<presence to='bob@localhost' type='subscribe'>\
             <nick xmlns='http://jabber.org/protocol/nick'>Alice</nick></presence>",
        )
        .await
        .unwrap();
    drain(&mut alice).await;

    let (mut laptop, got) = online(&server, "bob", "laptop", "<presence/>").await;
    let request = got
        .iter()
        .find(|e| e.attr("type") == Some("subscribe"))
        .expect("the stored request");
    assert_eq!(request.attr("from"), Some("alice@localhost"));
    let nick = request.child("nick", "http://jabber.org/protocol/nick");
    assert_eq!(
        nick.map(Element::text).as_deref(),
        Some("Alice"),
        "the complete stanza"
    );

    let (_phone, got) = online(&server, "bob", "phone", "<presence/>").await;
    assert_eq!(
        presence_from(&got, "alice@localhost"),
        [(some("subscribe"), None)],
        "delivered again to the next available resource"
    );

    laptop
        .send("<presence to='alice@localhost' type='subscribed'/>")
        .await
        .unwrap();
    drain(&mut laptop).await;
    let (_tablet, got) = online(&server, "bob", "tablet", "<presence/>").await;
    assert!(
        presence_from(&got, "alice@localhost").is_empty(),
        "answered: not again"
    );
}

#[tokio::test]
async fn presence_probe_answered_with_last_available_presence() {
    let server = server().await;
    let (mut alice, _) = online(&server, "alice", "phone", "<presence/>").await;
    let (mut bob, _) = online(&server, "bob", "laptop", "<presence/>").await;
    befriend(&mut alice, &mut bob).await;
    bob.send("<presence><status>in the orchard</status></presence>")
        .await
        .unwrap();
    drain(&mut bob).await;
    drain(&mut alice).await;

    // §4.2.2 / §4.3: alice's new resource learns bob's current presence.
    let (mut laptop, got) = online(&server, "alice", "laptop", "<presence/>").await;
    assert_eq!(
        presence_from(&got, "bob@localhost/laptop"),
        [(None, some("in the orchard"))]
    );
    // …and that of her phone (§4.2.2: implicitly subscribed to her own presence).
    assert_eq!(presence_from(&got, "alice@localhost/phone"), [(None, None)]);

    // §4.3.2 rule 4: an explicit probe gets the full last presence of each resource.
    laptop
        .send("<presence to='bob@localhost' type='probe'/>")
        .await
        .unwrap();
    assert_eq!(
        presence_from(&drain(&mut laptop).await, "bob@localhost/laptop"),
        [(None, some("in the orchard"))]
    );

    // §4.3.2 rule 1: carol has no subscription; she learns nothing about bob's resources.
    let (mut carol, _) = online(&server, "carol", "desk", "<presence/>").await;
    carol
        .send("<presence to='bob@localhost' type='probe'/>")
        .await
        .unwrap();
    // The "unsubscribed" answer goes to carol's bare JID, where her server processes it as
    // an inbound cancellation of a subscription she never had (A.3.4: not delivered).
    carol.expect_silence(QUIET).await;

    // §4.3.2 rule 3: once bob is gone, the probe gets unavailable from his bare JID.
    drain(&mut bob).await;
    bob.close().await.unwrap();
    drain(&mut laptop).await;
    laptop
        .send("<presence to='bob@localhost' type='probe'/>")
        .await
        .unwrap();
    assert_eq!(
        presence_from(&drain(&mut laptop).await, "bob@localhost"),
        [(some("unavailable"), None)]
    );
}

#[tokio::test]
async fn unavailable_is_broadcast_when_connection_drops() {
    // RFC 6121 §4.5.1: the server MUST NOT depend on the client saying goodbye.
    let server = server().await;
    let (mut alice, _) = online(&server, "alice", "phone", "<presence/>").await;
    let (mut bob, _) = online(&server, "bob", "laptop", "<presence/>").await;
    befriend(&mut alice, &mut bob).await;
    drop(alice); // the TCP connection closes without </stream:stream>
    let got = drain(&mut bob).await;
    assert_eq!(
        presence_from(&got, "alice@localhost/phone"),
        [(some("unavailable"), None)],
        "exactly once"
    );
}

#[tokio::test]
async fn a_graceful_unavailable_is_broadcast_once_and_not_repeated_at_logout() {
    // RFC 6121 §4.5.2: the unavailable presence goes to subscribers; closing afterwards adds
    // nothing (it was already unavailable).
    let server = server().await;
    let (mut alice, _) = online(&server, "alice", "phone", "<presence/>").await;
    let (mut bob, _) = online(&server, "bob", "laptop", "<presence/>").await;
    befriend(&mut alice, &mut bob).await;
    alice
        .send("<presence type='unavailable'><status>bye</status></presence>")
        .await
        .unwrap();
    drain(&mut alice).await;
    alice.close().await.unwrap();
    assert_eq!(
        presence_from(&drain(&mut bob).await, "alice@localhost/phone"),
        [(some("unavailable"), some("bye"))]
    );
}

#[tokio::test]
async fn directed_presence_gets_unavailable_on_logout() {
    // RFC 6121 §4.6.2 rule 2: carol is no subscriber; she got directed presence, so she
    // hears when alice goes.
    let server = server().await;
    let (mut alice, _) = online(&server, "alice", "phone", "<presence/>").await;
    let (mut carol, _) = online(&server, "carol", "desk", "<presence/>").await;
    alice
        .send("<presence to='carol@localhost/desk'><status>hi</status></presence>")
        .await
        .unwrap();
    assert_eq!(
        presence_from(&drain(&mut carol).await, "alice@localhost/phone"),
        [(None, some("hi"))]
    );
    // A broadcast does not reach her (§4.6.2: directed presence does not subscribe).
    alice
        .send("<presence><status>later</status></presence>")
        .await
        .unwrap();
    carol.expect_silence(QUIET).await;
    drain(&mut alice).await;
    alice.close().await.unwrap();
    assert_eq!(
        presence_from(&drain(&mut carol).await, "alice@localhost/phone"),
        [(some("unavailable"), None)]
    );
}

#[tokio::test]
async fn preapproved_subscription_is_answered_automatically() {
    // RFC 6121 §3.4: bob pre-approves alice; her request is approved by bob's server and
    // never shown to bob as a request.
    let server = server().await;
    let (mut alice, _) = online(&server, "alice", "phone", "<presence/>").await;
    let (mut bob, _) = online(&server, "bob", "laptop", "<presence/>").await;
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
        .await
        .unwrap();
    let at_bob = drain(&mut bob).await;
    let push = &roster_pushes(&at_bob)[0];
    assert_eq!(push.attr("approved"), Some("true"), "§3.4.2 step 4");
    assert_eq!(push.attr("subscription"), Some("none"));
    alice.expect_silence(QUIET).await;

    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await
        .unwrap();
    let at_alice = drain(&mut alice).await;
    assert_eq!(
        presence_from(&at_alice, "bob@localhost"),
        [(some("subscribed"), None)]
    );
    let last = roster_pushes(&at_alice).pop().unwrap();
    assert_eq!(last.attr("subscription"), Some("to"));
    assert_eq!(last.attr("ask"), None);
    assert_eq!(
        presence_from(&at_alice, "bob@localhost/laptop"),
        [(None, None)]
    );
    let at_bob = drain(&mut bob).await;
    assert!(
        presence_from(&at_bob, "alice@localhost").is_empty(),
        "no request shown"
    );
    let push = &roster_pushes(&at_bob)[0];
    assert_eq!(push.attr("subscription"), Some("from"));
    assert_eq!(push.attr("approved"), None, "the pre-approval is used up");
}

#[tokio::test]
async fn presence_is_not_sent_to_contacts_without_subscription() {
    // RFC 6121 §4.2.2: only contacts with subscription 'from' or 'both' get the broadcast.
    let server = server().await;
    let (mut bob, _) = online(&server, "bob", "laptop", "<presence/>").await;
    let mut alice = login(&server, "alice", "phone").await;
    // bob is in alice's roster with subscription 'none'.
    alice
        .iq(
            "set",
            None,
            &format!("<query xmlns='{NS_ROSTER}'><item jid='bob@localhost'/></query>"),
        )
        .await
        .unwrap();
    alice
        .send("<presence><status>here</status></presence>")
        .await
        .unwrap();
    drain(&mut alice).await;
    bob.expect_silence(QUIET).await;
    // alice subscribes to bob ('to' for her, 'from' for him): her presence still stays home.
    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await
        .unwrap();
    drain(&mut bob).await;
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
        .await
        .unwrap();
    drain(&mut bob).await;
    drain(&mut alice).await;
    alice
        .send("<presence><status>still here</status></presence>")
        .await
        .unwrap();
    bob.expect_silence(QUIET).await;
    drain(&mut alice).await;
    // And when she leaves, bob hears nothing either.
    alice.close().await.unwrap();
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn unsubscribing_stops_the_presence_flow() {
    // RFC 6121 §3.3: alice unsubscribes from bob; bob's server auto-replies, bob gets a push
    // and alice gets unavailable presence from bob's resources (§3.3.3 step 3).
    let server = server().await;
    let (mut alice, _) = online(&server, "alice", "phone", "<presence/>").await;
    let (mut bob, _) = online(&server, "bob", "laptop", "<presence/>").await;
    befriend(&mut alice, &mut bob).await;
    alice
        .send("<presence to='bob@localhost' type='unsubscribe'/>")
        .await
        .unwrap();
    let at_alice = drain(&mut alice).await;
    assert_eq!(
        presence_from(&at_alice, "bob@localhost/laptop"),
        [(some("unavailable"), None)]
    );
    assert_eq!(
        roster_pushes(&at_alice)[0].attr("subscription"),
        Some("from")
    );
    let at_bob = drain(&mut bob).await;
    assert_eq!(
        presence_from(&at_bob, "alice@localhost"),
        [(some("unsubscribe"), None)]
    );
    assert_eq!(roster_pushes(&at_bob)[0].attr("subscription"), Some("to"));
    // bob's updates no longer reach alice.
    bob.send("<presence><status>alone</status></presence>")
        .await
        .unwrap();
    drain(&mut bob).await;
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn entity_capabilities_in_presence_reach_contacts_untouched() {
    // XEP-0115 §4: the server passes the client's <c/> through; the verification string and
    // every attribute arrive byte for byte.
    let server = server().await;
    let (mut alice, _) = online(&server, "alice", "phone", "<presence/>").await;
    let (mut bob, _) = online(&server, "bob", "laptop", "<presence/>").await;
    befriend(&mut alice, &mut bob).await;
    alice
        .send(
            "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' \
             node='https://example.org/client' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>",
        )
        .await
        .unwrap();
    let at_bob = drain(&mut bob).await;
    let p = at_bob
        .iter()
        .find(|e| e.name == "presence" && e.attr("from") == Some("alice@localhost/phone"))
        .expect("bob sees alice's presence");
    let c = p
        .child("c", "http://jabber.org/protocol/caps")
        .expect("caps kept");
    assert_eq!(c.attr("ver"), Some("QgayPKawpkPSDYmwT/WM94uAlu0="));
    assert_eq!(c.attr("hash"), Some("sha-1"));
    assert_eq!(c.attr("node"), Some("https://example.org/client"));
}
