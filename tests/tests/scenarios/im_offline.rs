//! Offline messages (XEP-0160) with delay stamps (XEP-0203) and stanza ids (XEP-0359): bob
//! writes to alice while she is away, and she finds the messages when she comes back.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::{ns, Client, Received, StreamEvent, TestServer};
use corvid_xml::Element;
use tokio::time::Instant;

const NS_DELAY: &str = "urn:xmpp:delay";
const NS_SID: &str = "urn:xmpp:sid:0";
const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

async fn alice_and_bob(max_offline: Option<usize>) -> TestServer {
    let mut builder = TestServer::builder()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw");
    if let Some(n) = max_offline {
        builder = builder.settings(move |s| s.limits.max_offline_messages = n);
    }
    builder.start().await.unwrap()
}

/// Sends a ping to the server and returns every stanza but presence that arrived before its
/// answer: once it is answered, the server has processed everything sent before it. (Presence
/// is skipped: a presence module may echo the persona's own presence meanwhile.)
async fn sync(c: &mut Client) -> Vec<Element> {
    let id = c
        .send_iq("get", Some("localhost"), "<ping xmlns='urn:xmpp:ping'/>")
        .await
        .unwrap();
    let mut before = Vec::new();
    loop {
        match c.next().await {
            Received::Event(StreamEvent::Element(e)) if e.is("presence", ns::CLIENT) => {}
            Received::Event(StreamEvent::Element(e))
                if e.is("iq", ns::CLIENT) && e.attr("id") == Some(id.as_str()) =>
            {
                assert_eq!(e.attr("type"), Some("result"), "{}: ping failed", c.name());
                return before;
            }
            Received::Event(StreamEvent::Element(e)) => before.push(e),
            other => panic!("{}: expected the ping's answer, got {other}", c.name()),
        }
    }
}

/// Sends initial presence (RFC 6121 §4.2) and returns what arrived before the server was done
/// with it: the offline messages (XEP-0160 §2 step 5).
async fn come_online(c: &mut Client) -> Vec<Element> {
    c.send("<presence/>").await.unwrap();
    sync(c).await
}

/// Sends an IQ and returns its answer, skipping presence that arrives meanwhile (a presence
/// module broadcasts between an account's resources); anything else first is a failure.
async fn iq(c: &mut Client, ty: &str, to: Option<&str>, payload: &str) -> Element {
    let id = c.send_iq(ty, to, payload).await.unwrap();
    loop {
        match c.next().await {
            Received::Event(StreamEvent::Element(e)) if e.is("presence", ns::CLIENT) => {}
            Received::Event(StreamEvent::Element(e))
                if e.is("iq", ns::CLIENT) && e.attr("id") == Some(id.as_str()) =>
            {
                return e;
            }
            other => panic!("{}: expected the answer to IQ {id}, got {other}", c.name()),
        }
    }
}

/// Asserts that no stanza other than presence arrives for [`QUIET`].
async fn expect_nothing(c: &mut Client) {
    let deadline = Instant::now() + QUIET;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match c.next_within(left).await {
            Received::TimedOut => return,
            Received::Event(StreamEvent::Element(e)) if e.is("presence", ns::CLIENT) => {}
            other => panic!("{}: expected nothing, got {other}", c.name()),
        }
    }
}

fn body(el: &Element) -> Option<String> {
    el.child("body", ns::CLIENT).map(Element::text)
}

fn bodies(els: &[Element]) -> Vec<String> {
    els.iter().filter_map(body).collect()
}

/// XEP-0082 DateTime in UTC: `YYYY-MM-DDThh:mm:ss[.sss]Z`.
fn is_utc_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && s.ends_with('Z')
        && (b.len() == 20 || (b[19] == b'.' && digits(20..b.len() - 1)))
}

#[tokio::test]
async fn offline_message_is_stored_and_delivered_at_login() {
    let server = alice_and_bob(None).await;
    let mut bob = Client::login(&server, "bob", "bob-pw", Some("laptop"))
        .await
        .unwrap();
    come_online(&mut bob).await;
    bob.send(
        "<message to='alice@localhost' type='chat' id='m1'>\
           <body>are you there?</body></message>",
    )
    .await
    .unwrap();
    // XEP-0160 §2 step 4: stored, so the sender gets no service-unavailable.
    assert!(sync(&mut bob).await.is_empty(), "bob got an error back");

    let mut alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    // Bound but not yet available: nothing is delivered before initial presence (§2 step 5).
    expect_nothing(&mut alice).await;
    let got = come_online(&mut alice).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(body(m).as_deref(), Some("are you there?"));
    assert_eq!(m.attr("from"), Some("bob@localhost/laptop"));
    assert_eq!(m.attr("id"), Some("m1"));
    assert_eq!(m.attr("type"), Some("chat"));
    // XEP-0160 §2 / XEP-0203 §3: a delay stamp from the server's domain, UTC.
    let delay = m.child("delay", NS_DELAY).expect("XEP-0203 <delay/>");
    assert_eq!(delay.attr("from"), Some("localhost"));
    let stamp = delay.attr("stamp").unwrap();
    assert!(is_utc_datetime(stamp), "stamp `{stamp}`");
    // XEP-0359 §3: the stored message carries an id assigned by alice's account.
    let sid = m.child("stanza-id", NS_SID).expect("XEP-0359 <stanza-id/>");
    assert_eq!(sid.attr("by"), Some("alice@localhost"));
    assert!(sid.attr("id").is_some_and(|id| !id.is_empty()));

    // Delivered once: a second resource coming online finds the store empty.
    let mut tablet = Client::login(&server, "alice", "alice-pw", Some("tablet"))
        .await
        .unwrap();
    assert!(come_online(&mut tablet).await.is_empty());
}

#[tokio::test]
async fn offline_messages_arrive_in_order() {
    let server = alice_and_bob(None).await;
    let mut bob = Client::login(&server, "bob", "bob-pw", Some("laptop"))
        .await
        .unwrap();
    let sent = ["one", "two", "three", "four", "five"];
    for text in sent {
        bob.send_message("alice@localhost", text).await.unwrap();
    }
    assert!(sync(&mut bob).await.is_empty());

    let mut alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    let got = come_online(&mut alice).await;
    // XEP-0160 §2 step 5 delivers the stored messages; in the order they were sent.
    assert_eq!(bodies(&got), sent);
    let ids: std::collections::HashSet<_> = got
        .iter()
        .filter_map(|m| m.child("stanza-id", NS_SID).and_then(|s| s.attr("id")))
        .collect();
    assert_eq!(ids.len(), sent.len(), "XEP-0359: every id is unique");
}

#[tokio::test]
async fn offline_storage_full_returns_service_unavailable() {
    let server = alice_and_bob(Some(2)).await;
    let mut bob = Client::login(&server, "bob", "bob-pw", Some("laptop"))
        .await
        .unwrap();
    bob.send_message("alice@localhost", "first").await.unwrap();
    bob.send_message("alice@localhost", "second").await.unwrap();
    assert!(sync(&mut bob).await.is_empty());
    let third = bob.send_message("alice@localhost", "third").await.unwrap();
    // XEP-0160 §2 step 3: a full queue answers service-unavailable (RFC 6121 §8.5.2.2.1).
    let err = bob
        .expect_stanza_error("message", "service-unavailable")
        .await;
    assert_eq!(err.attr("id"), Some(third.as_str()));
    assert_eq!(err.attr("from"), Some("alice@localhost"));

    let mut alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    // Nothing of the refused message was stored.
    assert_eq!(bodies(&come_online(&mut alice).await), ["first", "second"]);

    // Delivered messages free the queue.
    alice.close().await.unwrap();
    bob.send_message("alice@localhost", "fourth").await.unwrap();
    assert!(sync(&mut bob).await.is_empty(), "the queue is empty again");
}

#[tokio::test]
async fn headline_to_offline_user_is_not_stored() {
    let server = alice_and_bob(None).await;
    let mut bob = Client::login(&server, "bob", "bob-pw", Some("laptop"))
        .await
        .unwrap();
    bob.send(
        "<message to='alice@localhost' type='headline' id='h1'>\
           <body>breaking news</body></message>",
    )
    .await
    .unwrap();
    // RFC 6121 §8.5.2.2.1: a headline for an account with no available resource is ignored,
    // without an error.
    assert!(sync(&mut bob).await.is_empty());
    bob.send_message("alice@localhost", "after the headline")
        .await
        .unwrap();
    assert!(sync(&mut bob).await.is_empty());

    let mut alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    // XEP-0160 §3: headlines are not stored; the chat message is.
    assert_eq!(
        bodies(&come_online(&mut alice).await),
        ["after the headline"]
    );
}

#[tokio::test]
async fn chat_state_only_message_to_offline_user_is_dropped_without_error() {
    let server = alice_and_bob(None).await;
    let mut bob = Client::login(&server, "bob", "bob-pw", Some("laptop"))
        .await
        .unwrap();
    bob.send(format!(
        "<message to='alice@localhost' type='chat' id='c1'>\
           <composing xmlns='{NS_CHATSTATES}'/></message>"
    ))
    .await
    .unwrap();
    // XEP-0160 §3 and XEP-0085: standalone chat states are not stored; dropping them without a
    // bounce is our choice (a bounce per typing notification helps nobody).
    assert!(sync(&mut bob).await.is_empty());
    bob.send_message("alice@localhost", "hello").await.unwrap();
    assert!(sync(&mut bob).await.is_empty());

    let mut alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    let got = come_online(&mut alice).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(body(&got[0]).as_deref(), Some("hello"));
}

#[tokio::test]
async fn no_store_hinted_message_to_offline_user_is_refused() {
    let server = alice_and_bob(None).await;
    let mut bob = Client::login(&server, "bob", "bob-pw", Some("laptop"))
        .await
        .unwrap();
    bob.send(
        "<message to='alice@localhost' type='chat' id='n1'><body>ephemeral</body>\
           <no-store xmlns='urn:xmpp:hints'/></message>",
    )
    .await
    .unwrap();
    // XEP-0334: the sender asked for no copy to be kept; RFC 6121 §8.5.2.2.1: not stored means
    // service-unavailable.
    let err = bob
        .expect_stanza_error("message", "service-unavailable")
        .await;
    assert_eq!(err.attr("id"), Some("n1"));

    let mut alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    assert!(come_online(&mut alice).await.is_empty());
}

#[tokio::test]
async fn negative_priority_resource_does_not_take_offline_messages() {
    let server = alice_and_bob(None).await;
    let mut bob = Client::login(&server, "bob", "bob-pw", Some("laptop"))
        .await
        .unwrap();
    bob.send_message("alice@localhost", "for a real client")
        .await
        .unwrap();
    assert!(sync(&mut bob).await.is_empty());

    // XEP-0160 §2 step 5: only non-negative presence gets the stored messages.
    let mut bot = Client::login(&server, "alice", "alice-pw", Some("bot"))
        .await
        .unwrap();
    bot.send("<presence><priority>-1</priority></presence>")
        .await
        .unwrap();
    assert!(sync(&mut bot).await.is_empty());
    let mut phone = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    assert_eq!(
        bodies(&come_online(&mut phone).await),
        ["for a real client"]
    );
}

#[tokio::test]
async fn forged_stanza_id_is_replaced_by_the_servers_own() {
    let server = alice_and_bob(None).await;
    let mut bob = Client::login(&server, "bob", "bob-pw", Some("laptop"))
        .await
        .unwrap();
    bob.send(format!(
        "<message to='alice@localhost' type='chat' id='f1'><body>trust me</body>\
           <stanza-id xmlns='{NS_SID}' id='forged' by='alice@localhost'/></message>"
    ))
    .await
    .unwrap();
    assert!(sync(&mut bob).await.is_empty());

    let mut alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    let got = come_online(&mut alice).await;
    assert_eq!(got.len(), 1, "{got:?}");
    // XEP-0359 §4 rules 3 and 4: one id by alice's account, assigned by the server.
    let ids: Vec<_> = got[0]
        .child_elements()
        .filter(|e| e.is("stanza-id", NS_SID) && e.attr("by") == Some("alice@localhost"))
        .filter_map(|e| e.attr("id"))
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_ne!(ids[0], "forged");
}

#[tokio::test]
async fn server_advertises_offline_storage_and_accounts_advertise_stanza_ids() {
    let server = alice_and_bob(None).await;
    let mut alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    let features = |iq: &Element| -> Vec<String> {
        iq.child("query", ns::DISCO_INFO)
            .map(|q| {
                q.child_elements()
                    .filter(|f| f.is("feature", ns::DISCO_INFO))
                    .filter_map(|f| f.attr("var").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let query = format!("<query xmlns='{}'/>", ns::DISCO_INFO);
    let server_info = iq(&mut alice, "get", Some("localhost"), &query).await;
    // XEP-0160 §4.
    assert!(features(&server_info).iter().any(|f| f == "msgoffline"));
    let account_info = iq(&mut alice, "get", Some("alice@localhost"), &query).await;
    // XEP-0359: ids by the account are advertised on the account.
    assert!(features(&account_info).iter().any(|f| f == NS_SID));
}
