//! XEP-0352 client state indication: alice's phone says it is inactive, bob writes and changes
//! his presence; what is urgent reaches the phone at once, the rest when it is active again.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::{ns, Client, TestServer};
use corvid_xml::Element;

const NS_CSI: &str = "urn:xmpp:csi:0";
const QUIET: Duration = Duration::from_millis(300);

async fn alice_and_bob() -> (TestServer, Client, Client) {
    let server = TestServer::builder()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .start()
        .await
        .unwrap();
    let alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    let bob = Client::login(&server, "bob", "bob-pw", Some("laptop"))
        .await
        .unwrap();
    (server, alice, bob)
}

/// Sends a CSI state and waits until the server has read it: the ping after it is answered
/// only once everything before it was processed.
async fn set_state(c: &mut Client, state: &str) {
    c.send(format!("<{state} xmlns='{NS_CSI}'/>"))
        .await
        .unwrap();
}

async fn become_inactive(c: &mut Client) {
    set_state(c, "inactive").await;
    c.ping_server().await.unwrap();
}

fn status(presence: &Element) -> Option<String> {
    presence.child("status", ns::CLIENT).map(Element::text)
}

#[tokio::test]
async fn the_server_offers_csi_once_alice_is_authenticated() {
    // XEP-0352 §3: the stream feature <csi xmlns='urn:xmpp:csi:0'/> after authentication.
    let (_server, alice, _bob) = alice_and_bob().await;
    let features = alice.features().expect("features were received");
    assert!(features.child("csi", NS_CSI).is_some(), "{features:?}");
}

#[tokio::test]
async fn inactive_client_gets_presence_only_when_it_becomes_active() {
    // XEP-0352 §1/§4: while inactive the server may hold back presence; on <active/> it
    // delivers what it held.
    let (_server, mut alice, mut bob) = alice_and_bob().await;
    become_inactive(&mut alice).await;

    bob.send("<presence to='alice@localhost/phone'><status>at the orchard</status></presence>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await;

    set_state(&mut alice, "active").await;
    let presence = alice.expect_stanza("presence").await;
    assert_eq!(presence.attr("from"), Some("bob@localhost/laptop"));
    assert_eq!(status(&presence).as_deref(), Some("at the orchard"));
    // The state nonza itself is never answered.
    alice.ping_server().await.unwrap();
}

#[tokio::test]
async fn inactive_client_still_gets_messages_with_body_at_once() {
    // XEP-0352 §1: messages a human reads are urgent; a chat state without body waits, but it
    // goes out before the message that follows it, so the order is kept.
    let (_server, mut alice, mut bob) = alice_and_bob().await;
    become_inactive(&mut alice).await;

    bob.send(
        "<message type='chat' to='alice@localhost/phone' id='cs1'>\
         <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    )
    .await
    .unwrap();
    alice.expect_silence(QUIET).await;

    bob.send_message("alice@localhost/phone", "are you there?")
        .await
        .unwrap();
    let first = alice.expect_message().await;
    assert_eq!(
        first.attr("id"),
        Some("cs1"),
        "the held chat state comes first"
    );
    let second = alice.expect_message().await;
    assert_eq!(
        second
            .child("body", ns::CLIENT)
            .map(Element::text)
            .as_deref(),
        Some("are you there?")
    );
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn latest_presence_per_contact_wins_while_inactive() {
    // XEP-0352 §1: presence updates are superseded; only the latest from each full JID matters.
    let (server, mut alice, mut bob) = alice_and_bob().await;
    let mut bob_phone = Client::login(&server, "bob", "bob-pw", Some("phone"))
        .await
        .unwrap();
    become_inactive(&mut alice).await;

    for s in ["one", "two", "three"] {
        bob.send(format!(
            "<presence to='alice@localhost/phone'><status>{s}</status></presence>"
        ))
        .await
        .unwrap();
    }
    bob_phone
        .send("<presence to='alice@localhost/phone'><status>phone</status></presence>")
        .await
        .unwrap();
    bob.ping_server().await.unwrap();
    bob_phone.ping_server().await.unwrap();
    alice.expect_silence(QUIET).await;

    set_state(&mut alice, "active").await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let p = alice.expect_stanza("presence").await;
        got.push((p.attr("from").unwrap().to_owned(), status(&p).unwrap()));
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("bob@localhost/laptop".to_owned(), "three".to_owned()),
            ("bob@localhost/phone".to_owned(), "phone".to_owned()),
        ]
    );
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn an_iq_reaches_an_inactive_client_at_once() {
    // XEP-0352 §1: IQs need an answer and are never held.
    let (_server, mut alice, mut bob) = alice_and_bob().await;
    become_inactive(&mut alice).await;
    bob.send_iq(
        "get",
        Some("alice@localhost/phone"),
        "<ping xmlns='urn:xmpp:ping'/>",
    )
    .await
    .unwrap();
    let iq = alice.expect_stanza("iq").await;
    assert_eq!(iq.attr("from"), Some("bob@localhost/laptop"));
}
