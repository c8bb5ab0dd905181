//! Message carbons (XEP-0280): alice on her phone and her laptop, bob elsewhere; what one of
//! alice's devices sends or receives shows up on the other.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::{ns, Client, Received, StreamEvent, TestServer};
use corvid_xml::Element;
use tokio::time::Instant;

const NS_CARBONS: &str = "urn:xmpp:carbons:2";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

async fn server() -> TestServer {
    TestServer::builder()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .start()
        .await
        .unwrap()
}

/// A persona logged in as `user/resource` that sent initial presence (RFC 6121 §4.2). (Persona
/// names end up in stanza ids the test kit does not escape: no apostrophes.)
async fn online(server: &TestServer, name: &str, user: &str, resource: &str) -> Client {
    let mut c = Client::new(name);
    c.login_with(
        server,
        corvid_tests::Login::new(user, &format!("{user}-pw")).resource(resource),
    )
    .await
    .unwrap();
    c.send("<presence/>").await.unwrap();
    sync(&mut c).await;
    c
}

/// Pings the server and waits for the answer, skipping presence (a presence module may
/// broadcast between alice's resources); any other stanza before the answer is a failure.
async fn sync(c: &mut Client) {
    let id = c
        .send_iq("get", Some("localhost"), "<ping xmlns='urn:xmpp:ping'/>")
        .await
        .unwrap();
    loop {
        match c.next().await {
            Received::Event(StreamEvent::Element(e)) if e.is("presence", ns::CLIENT) => {}
            Received::Event(StreamEvent::Element(e))
                if e.is("iq", ns::CLIENT) && e.attr("id") == Some(id.as_str()) =>
            {
                return;
            }
            other => panic!("{}: expected the ping's answer, got {other}", c.name()),
        }
    }
}

/// The next stanza that is not presence.
async fn next_stanza(c: &mut Client) -> Element {
    loop {
        match c.next().await {
            Received::Event(StreamEvent::Element(e)) if e.is("presence", ns::CLIENT) => {}
            Received::Event(StreamEvent::Element(e)) => return e,
            other => panic!("{}: expected a stanza, got {other}", c.name()),
        }
    }
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

/// XEP-0280 §4: `<enable/>` answered with a result.
async fn enable_carbons(c: &mut Client) {
    let answer = iq(c, "set", None, &format!("<enable xmlns='{NS_CARBONS}'/>")).await;
    assert_eq!(answer.attr("type"), Some("result"), "§4: enabling succeeds");
}

/// XEP-0280 §5: `<disable/>` answered with a result.
async fn disable_carbons(c: &mut Client) {
    let answer = iq(c, "set", None, &format!("<disable xmlns='{NS_CARBONS}'/>")).await;
    assert_eq!(
        answer.attr("type"),
        Some("result"),
        "§5: disabling succeeds"
    );
}

/// The message inside a carbon `<sent/>`/`<received/>`, after checking the wrapper (§7, §8):
/// from the account's bare JID, to the receiving resource, the original's type.
fn unwrap_carbon<'a>(copy: &'a Element, direction: &str, account: &str, to: &str) -> &'a Element {
    assert!(copy.is("message", ns::CLIENT), "{copy:?}");
    assert_eq!(
        copy.attr("from"),
        Some(account),
        "the copy comes from the bare JID"
    );
    assert_eq!(
        copy.attr("to"),
        Some(to),
        "the copy is addressed to the resource"
    );
    copy.child(direction, NS_CARBONS)
        .and_then(|d| d.child("forwarded", NS_FORWARD))
        .and_then(|f| f.child("message", ns::CLIENT))
        .unwrap_or_else(|| panic!("expected a <{direction}/> carbon, got {copy:?}"))
}

fn body(el: &Element) -> Option<String> {
    el.child("body", ns::CLIENT).map(Element::text)
}

#[tokio::test]
async fn sent_message_is_copied_to_other_carbons_enabled_resource() {
    let server = server().await;
    let mut phone = online(&server, "alice/phone", "alice", "phone").await;
    let mut laptop = online(&server, "alice/laptop", "alice", "laptop").await;
    let mut bob = online(&server, "bob", "bob", "desk").await;
    enable_carbons(&mut phone).await;
    enable_carbons(&mut laptop).await;

    phone
        .send("<message to='bob@localhost' type='chat' id='s1'><body>lunch?</body></message>")
        .await
        .unwrap();
    let original = next_stanza(&mut bob).await;
    assert_eq!(body(&original).as_deref(), Some("lunch?"));

    // §8: the other enabled resource gets a <sent/> copy of the original.
    let copy = next_stanza(&mut laptop).await;
    assert_eq!(copy.attr("type"), Some("chat"), "§8: the type is kept");
    let inner = unwrap_carbon(&copy, "sent", "alice@localhost", "alice@localhost/laptop");
    assert_eq!(inner.attr("from"), Some("alice@localhost/phone"));
    assert_eq!(inner.attr("to"), Some("bob@localhost"));
    assert_eq!(inner.attr("id"), Some("s1"));
    assert_eq!(body(inner).as_deref(), Some("lunch?"));
    // §8: the sending resource gets no copy, even with carbons enabled.
    expect_nothing(&mut phone).await;
    // Bob gets the original once and nothing else.
    expect_nothing(&mut bob).await;
}

#[tokio::test]
async fn received_message_is_copied_to_resources_that_did_not_get_it() {
    let server = server().await;
    let mut phone = online(&server, "alice/phone", "alice", "phone").await;
    let mut laptop = online(&server, "alice/laptop", "alice", "laptop").await;
    let mut bob = online(&server, "bob", "bob", "desk").await;
    enable_carbons(&mut phone).await;
    enable_carbons(&mut laptop).await;

    bob.send(
        "<message to='alice@localhost/phone' type='chat' id='r1'><body>hi phone</body></message>",
    )
    .await
    .unwrap();
    // RFC 6121 §8.5.3.1: the phone gets the original.
    let original = next_stanza(&mut phone).await;
    assert_eq!(original.attr("id"), Some("r1"));
    assert!(original.child("received", NS_CARBONS).is_none());
    // §7: the laptop, which did not receive it, gets a <received/> copy.
    let copy = next_stanza(&mut laptop).await;
    let inner = unwrap_carbon(
        &copy,
        "received",
        "alice@localhost",
        "alice@localhost/laptop",
    );
    assert_eq!(inner.attr("from"), Some("bob@localhost/desk"));
    assert_eq!(inner.attr("to"), Some("alice@localhost/phone"));
    assert_eq!(body(inner).as_deref(), Some("hi phone"));
    // §7: no copy for the resource the original was addressed to.
    expect_nothing(&mut phone).await;
    expect_nothing(&mut laptop).await;

    // To the bare JID with equal priorities, both resources get the original (RFC 6121
    // §8.5.2.1.1) and so neither gets a copy.
    bob.send("<message to='alice@localhost' type='chat' id='r2'><body>hi all</body></message>")
        .await
        .unwrap();
    for device in [&mut phone, &mut laptop] {
        let got = next_stanza(device).await;
        assert_eq!(got.attr("id"), Some("r2"), "{}", device.name());
        assert_eq!(body(&got).as_deref(), Some("hi all"));
        expect_nothing(device).await;
    }
}

#[tokio::test]
async fn private_messages_are_not_copied() {
    let server = server().await;
    let mut phone = online(&server, "alice/phone", "alice", "phone").await;
    let mut laptop = online(&server, "alice/laptop", "alice", "laptop").await;
    let mut bob = online(&server, "bob", "bob", "desk").await;
    enable_carbons(&mut phone).await;
    enable_carbons(&mut laptop).await;

    // Outbound: §9: no <sent/> copy of a message marked <private/>.
    phone
        .send(format!(
            "<message to='bob@localhost/desk' type='chat' id='p1'><body>secret</body>\
               <private xmlns='{NS_CARBONS}'/></message>"
        ))
        .await
        .unwrap();
    let got = next_stanza(&mut bob).await;
    assert_eq!(body(&got).as_deref(), Some("secret"));
    // §9: the receiving server SHOULD remove <private/> before delivering.
    assert!(got.child("private", NS_CARBONS).is_none(), "{got:?}");
    expect_nothing(&mut laptop).await;

    // Inbound: no <received/> copy either.
    bob.send(format!(
        "<message to='alice@localhost/phone' type='chat' id='p2'><body>secret too</body>\
           <private xmlns='{NS_CARBONS}'/></message>"
    ))
    .await
    .unwrap();
    let got = next_stanza(&mut phone).await;
    assert_eq!(body(&got).as_deref(), Some("secret too"));
    assert!(got.child("private", NS_CARBONS).is_none(), "{got:?}");
    expect_nothing(&mut laptop).await;

    // A message without the marker is copied (the test above is not vacuous).
    bob.send("<message to='alice@localhost/phone' type='chat' id='p3'><body>open</body></message>")
        .await
        .unwrap();
    next_stanza(&mut phone).await;
    let copy = next_stanza(&mut laptop).await;
    let inner = unwrap_carbon(
        &copy,
        "received",
        "alice@localhost",
        "alice@localhost/laptop",
    );
    assert_eq!(inner.attr("id"), Some("p3"));
}

#[tokio::test]
async fn resources_without_carbons_get_no_copies() {
    let server = server().await;
    let mut phone = online(&server, "alice/phone", "alice", "phone").await;
    let mut laptop = online(&server, "alice/laptop", "alice", "laptop").await;
    let mut bob = online(&server, "bob", "bob", "desk").await;
    // Only the phone enables carbons.
    enable_carbons(&mut phone).await;

    bob.send("<message to='alice@localhost/phone' type='chat' id='n1'><body>one</body></message>")
        .await
        .unwrap();
    next_stanza(&mut phone).await;
    phone
        .send("<message to='bob@localhost/desk' type='chat' id='n2'><body>two</body></message>")
        .await
        .unwrap();
    next_stanza(&mut bob).await;
    // §4: copies go only to resources that enabled carbons.
    expect_nothing(&mut laptop).await;

    // Once the laptop enables carbons it gets copies…
    enable_carbons(&mut laptop).await;
    phone
        .send("<message to='bob@localhost/desk' type='chat' id='n3'><body>three</body></message>")
        .await
        .unwrap();
    next_stanza(&mut bob).await;
    let copy = next_stanza(&mut laptop).await;
    let inner = unwrap_carbon(&copy, "sent", "alice@localhost", "alice@localhost/laptop");
    assert_eq!(inner.attr("id"), Some("n3"));

    // …and after disabling them (§5), none again.
    disable_carbons(&mut laptop).await;
    // §10.1: disabling twice is not an error.
    disable_carbons(&mut laptop).await;
    phone
        .send("<message to='bob@localhost/desk' type='chat' id='n4'><body>four</body></message>")
        .await
        .unwrap();
    next_stanza(&mut bob).await;
    expect_nothing(&mut laptop).await;
}

#[tokio::test]
async fn carbons_state_ends_with_the_session() {
    let server = server().await;
    let mut bob = online(&server, "bob", "bob", "desk").await;
    let mut phone = online(&server, "alice/phone", "alice", "phone").await;
    let mut laptop = online(&server, "alice/laptop", "alice", "laptop").await;
    enable_carbons(&mut laptop).await;
    laptop.close().await.unwrap();
    // A new session on the same resource starts with carbons off (§4: per session).
    let mut laptop = online(&server, "alice/laptop again", "alice", "laptop").await;
    phone
        .send("<message to='bob@localhost/desk' type='chat' id='e1'><body>hello</body></message>")
        .await
        .unwrap();
    next_stanza(&mut bob).await;
    expect_nothing(&mut laptop).await;
}

#[tokio::test]
async fn carbons_cannot_be_enabled_for_another_account() {
    let server = server().await;
    let mut bob = online(&server, "bob", "bob", "desk").await;
    // §4.1: not-allowed for a request about someone else.
    let answer = iq(
        &mut bob,
        "set",
        Some("alice@localhost"),
        &format!("<enable xmlns='{NS_CARBONS}'/>"),
    )
    .await;
    assert_eq!(answer.attr("type"), Some("error"));
    assert_eq!(
        corvid_tests::stanza_error_condition(&answer).as_deref(),
        Some("not-allowed")
    );
}

#[tokio::test]
async fn server_advertises_carbons() {
    let server = server().await;
    let mut alice = online(&server, "alice", "alice", "phone").await;
    let info = iq(
        &mut alice,
        "get",
        Some("localhost"),
        &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
    )
    .await;
    // §3: the server lists urn:xmpp:carbons:2.
    let has = info
        .child("query", ns::DISCO_INFO)
        .map(|q| {
            q.child_elements()
                .any(|f| f.is("feature", ns::DISCO_INFO) && f.attr("var") == Some(NS_CARBONS))
        })
        .unwrap_or(false);
    assert!(has, "{info:?}");
}
