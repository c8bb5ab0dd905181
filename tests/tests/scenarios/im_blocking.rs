//! XEP-0191 blocking command between alice and bob: the blocklist, block and unblock with their
//! pushes, and the block enforced both ways.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::{ns, stanza_error_condition, Client, TestServer};
use corvid_xml::Element;

const NS_BLOCKING: &str = "urn:xmpp:blocking";
const NS_BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
const QUIET: Duration = Duration::from_millis(300);

async fn server() -> TestServer {
    TestServer::builder()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .start()
        .await
        .unwrap()
}

async fn alice(server: &TestServer, resource: &str) -> Client {
    Client::login(server, "alice", "alice-pw", Some(resource))
        .await
        .unwrap()
}

async fn bob(server: &TestServer) -> Client {
    Client::login(server, "bob", "bob-pw", Some("phone"))
        .await
        .unwrap()
}

fn items(list: &Element) -> Vec<String> {
    list.child_elements()
        .filter(|e| e.is("item", NS_BLOCKING))
        .filter_map(|e| e.attr("jid").map(str::to_owned))
        .collect()
}

async fn blocklist(c: &mut Client) -> Vec<String> {
    let answer = c
        .iq("get", None, "<blocklist xmlns='urn:xmpp:blocking'/>")
        .await
        .unwrap();
    assert_eq!(answer.attr("type"), Some("result"), "§3.2: {answer:?}");
    items(
        answer
            .child("blocklist", NS_BLOCKING)
            .expect("§3.2: the result carries <blocklist/>"),
    )
}

/// Sends a block/unblock IQ set and returns (its answer, the push it got itself, if it asked
/// for the list). The push may come before or after the result.
async fn command(c: &mut Client, payload: &str, expect_push: bool) -> (Element, Option<Element>) {
    let id = c.send_iq("set", None, payload).await.unwrap();
    let mut answer = None;
    let mut push = None;
    let wanted = if expect_push { 2 } else { 1 };
    for _ in 0..wanted {
        let iq = c.expect_stanza("iq").await;
        if iq.attr("id") == Some(id.as_str()) {
            answer = Some(iq);
        } else {
            push = Some(iq);
        }
    }
    (answer.expect("the command is answered"), push)
}

async fn block(c: &mut Client, jid: &str) {
    let (answer, _) = command(
        c,
        &format!("<block xmlns='urn:xmpp:blocking'><item jid='{jid}'/></block>"),
        false,
    )
    .await;
    assert_eq!(answer.attr("type"), Some("result"), "§3.3: {answer:?}");
}

#[tokio::test]
async fn the_server_advertises_the_blocking_feature() {
    // XEP-0191 §3.1: disco#info of the server lists urn:xmpp:blocking.
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    let info = alice
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await
        .unwrap();
    let vars: Vec<_> = info
        .child("query", ns::DISCO_INFO)
        .unwrap()
        .child_elements()
        .filter_map(|f| f.attr("var"))
        .map(str::to_owned)
        .collect();
    assert!(vars.iter().any(|v| v == NS_BLOCKING), "{vars:?}");
}

#[tokio::test]
async fn alices_blocklist_is_empty_at_first_and_then_lists_whom_she_blocked() {
    // XEP-0191 §3.2: an empty <blocklist/> when nothing is blocked, one <item/> per JID after.
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    assert!(blocklist(&mut alice).await.is_empty());
    let (answer, push) = command(
        &mut alice,
        "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/><item jid='spam.example'/></block>",
        true,
    )
    .await;
    assert_eq!(answer.attr("type"), Some("result"));
    assert!(
        push.is_some(),
        "§3.3: alice's phone asked for the list, so it gets the push"
    );
    let mut listed = blocklist(&mut alice).await;
    listed.sort();
    assert_eq!(listed, ["bob@localhost", "spam.example"]);
}

#[tokio::test]
async fn a_block_is_pushed_to_every_resource_of_alice_that_asked_for_the_list() {
    // XEP-0191 §3.3: "an IQ-set to all of the user's resources that have requested the blocklist".
    let server = server().await;
    let mut phone = alice(&server, "phone").await;
    let mut laptop = alice(&server, "laptop").await;
    let mut tablet = alice(&server, "tablet").await;
    blocklist(&mut phone).await;
    blocklist(&mut laptop).await;

    let (answer, own_push) = command(
        &mut phone,
        "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>",
        true,
    )
    .await;
    assert_eq!(answer.attr("type"), Some("result"));
    let own_push = own_push.unwrap();
    for push in [own_push, laptop.expect_stanza("iq").await] {
        assert_eq!(push.attr("type"), Some("set"));
        let b = push.child("block", NS_BLOCKING).expect("a <block/> push");
        assert_eq!(items(b), ["bob@localhost"]);
    }
    tablet.expect_silence(QUIET).await;

    // §3.4: the unblock is pushed the same way.
    let (answer, own_push) = command(
        &mut laptop,
        "<unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock>",
        true,
    )
    .await;
    assert_eq!(answer.attr("type"), Some("result"));
    for push in [own_push.unwrap(), phone.expect_stanza("iq").await] {
        let u = push
            .child("unblock", NS_BLOCKING)
            .expect("an <unblock/> push");
        assert_eq!(items(u), ["bob@localhost"]);
    }
    tablet.expect_silence(QUIET).await;
}

#[tokio::test]
async fn unblock_without_items_unblocks_everyone_and_is_pushed_empty() {
    // XEP-0191 §3.5: an empty <unblock/> unblocks all, and the push is an empty <unblock/>.
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    blocklist(&mut alice).await;
    command(
        &mut alice,
        "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/><item jid='eve@localhost'/></block>",
        true,
    )
    .await;
    let (answer, push) = command(&mut alice, "<unblock xmlns='urn:xmpp:blocking'/>", true).await;
    assert_eq!(answer.attr("type"), Some("result"));
    let u = push.unwrap();
    let u = u.child("unblock", NS_BLOCKING).unwrap();
    assert!(items(u).is_empty(), "§3.5: the push carries no items");
    assert!(blocklist(&mut alice).await.is_empty());
}

#[tokio::test]
async fn a_block_without_items_is_bad_request_and_a_bad_jid_is_jid_malformed() {
    // XEP-0191 §3.3: "If the <block/> element does not contain at least one <item/> child
    // element, the server MUST return a <bad-request/> error"; RFC 6120 §8.3.3.8 for the JID.
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    let (answer, _) = command(&mut alice, "<block xmlns='urn:xmpp:blocking'/>", false).await;
    assert_eq!(
        stanza_error_condition(&answer).as_deref(),
        Some("bad-request")
    );
    let (answer, _) = command(
        &mut alice,
        "<block xmlns='urn:xmpp:blocking'><item jid='@localhost'/></block>",
        false,
    )
    .await;
    assert_eq!(
        stanza_error_condition(&answer).as_deref(),
        Some("jid-malformed")
    );
    assert!(
        blocklist(&mut alice).await.is_empty(),
        "nothing was blocked"
    );
}

#[tokio::test]
async fn a_blocklist_beyond_the_limit_is_refused_with_resource_constraint() {
    // A limit on what a client controls: at most 1000 blocked JIDs.
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    let many: String = (0..1001)
        .map(|i| format!("<item jid='user{i}@example.org'/>"))
        .collect();
    let (answer, _) = command(
        &mut alice,
        &format!("<block xmlns='urn:xmpp:blocking'>{many}</block>"),
        false,
    )
    .await;
    assert_eq!(
        stanza_error_condition(&answer).as_deref(),
        Some("resource-constraint")
    );
    assert!(blocklist(&mut alice).await.is_empty());
}

#[tokio::test]
async fn bobs_message_to_alice_who_blocked_him_is_refused_with_service_unavailable() {
    // XEP-0191 §3.3: the user's server MUST NOT deliver stanzas from the contact; for messages
    // it SHOULD return service-unavailable, so alice appears offline.
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    let mut bob = bob(&server).await;
    block(&mut alice, "bob@localhost").await;

    bob.send_message("alice@localhost/phone", "can you hear me?")
        .await
        .unwrap();
    let err = bob
        .expect_stanza_error("message", "service-unavailable")
        .await;
    assert_eq!(
        err.child("body", ns::CLIENT).map(Element::text).as_deref(),
        Some("can you hear me?")
    );
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn bobs_iq_to_alice_who_blocked_him_is_service_unavailable_and_his_presence_vanishes() {
    // XEP-0191 §3.3: IQ get/set MUST get an error (service-unavailable); presence gets no
    // answer at all.
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    let mut bob = bob(&server).await;
    block(&mut alice, "bob@localhost").await;

    let answer = bob
        .iq(
            "get",
            Some("alice@localhost/phone"),
            "<ping xmlns='urn:xmpp:ping'/>",
        )
        .await
        .unwrap();
    assert_eq!(
        stanza_error_condition(&answer).as_deref(),
        Some("service-unavailable")
    );
    // Also the IQs the server answers for her account (§3.3 covers every stanza to the user).
    let answer = bob
        .iq(
            "get",
            Some("alice@localhost"),
            "<vCard xmlns='vcard-temp'/>",
        )
        .await
        .unwrap();
    assert_eq!(
        stanza_error_condition(&answer).as_deref(),
        Some("service-unavailable")
    );

    bob.send("<presence to='alice@localhost/phone'><status>hi</status></presence>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn alice_cannot_write_to_bob_whom_she_blocked_and_gets_not_acceptable_with_blocked() {
    // XEP-0191 §3.3: outbound stanzas to the contact are not routed; the error is
    // not-acceptable with <blocked xmlns='urn:xmpp:blocking:errors'/>.
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    let mut bob = bob(&server).await;
    block(&mut alice, "bob@localhost").await;

    alice
        .send_message("bob@localhost/phone", "this should not reach bob")
        .await
        .unwrap();
    let err = alice.expect_stanza_error("message", "not-acceptable").await;
    let error = err.child("error", ns::CLIENT).unwrap();
    assert!(
        error.child("blocked", NS_BLOCKING_ERRORS).is_some(),
        "§3.3: the application condition <blocked/> is present: {err:?}"
    );
    assert_eq!(error.attr("type"), Some("cancel"));
    bob.expect_silence(QUIET).await;

    // Directed presence too.
    alice
        .send("<presence to='bob@localhost/phone'/>")
        .await
        .unwrap();
    let err = alice
        .expect_stanza_error("presence", "not-acceptable")
        .await;
    assert!(err
        .child("error", ns::CLIENT)
        .and_then(|e| e.child("blocked", NS_BLOCKING_ERRORS))
        .is_some());
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn after_alice_unblocks_bob_his_messages_reach_her_again() {
    // XEP-0191 §3.4: "the user's server MUST deliver any subsequent XML stanzas from the contact".
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    let mut bob = bob(&server).await;
    block(&mut alice, "bob@localhost").await;
    bob.send_message("alice@localhost/phone", "first")
        .await
        .unwrap();
    bob.expect_stanza_error("message", "service-unavailable")
        .await;

    let (answer, _) = command(
        &mut alice,
        "<unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock>",
        false,
    )
    .await;
    assert_eq!(answer.attr("type"), Some("result"));
    bob.send_message("alice@localhost/phone", "second")
        .await
        .unwrap();
    let got = alice.expect_message().await;
    assert_eq!(
        got.child("body", ns::CLIENT).map(Element::text).as_deref(),
        Some("second")
    );
    alice
        .send_message("bob@localhost/phone", "welcome back")
        .await
        .unwrap();
    bob.expect_message().await;
}

#[tokio::test]
async fn blocking_one_of_bobs_resources_lets_his_other_resources_through() {
    // XEP-0191 §4 (JID matching): user@domain/resource matches only that resource.
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    let mut bob_phone = bob(&server).await;
    let mut bob_laptop = Client::login(&server, "bob", "bob-pw", Some("laptop"))
        .await
        .unwrap();
    block(&mut alice, "bob@localhost/phone").await;

    bob_phone
        .send_message("alice@localhost/phone", "from the phone")
        .await
        .unwrap();
    bob_phone
        .expect_stanza_error("message", "service-unavailable")
        .await;
    bob_laptop
        .send_message("alice@localhost/phone", "from the laptop")
        .await
        .unwrap();
    let got = alice.expect_message().await;
    assert_eq!(got.attr("from"), Some("bob@localhost/laptop"));
}

#[tokio::test]
async fn blocking_a_domain_blocks_every_user_at_it() {
    // XEP-0191 §4: <domain> matches the domain itself and any user@domain.
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    let mut bob = bob(&server).await;
    block(&mut alice, "localhost").await;

    bob.send_message("alice@localhost/phone", "hello?")
        .await
        .unwrap();
    bob.expect_stanza_error("message", "service-unavailable")
        .await;
    alice.expect_silence(QUIET).await;
    // Her own server still answers her.
    alice.ping_server().await.unwrap();
}

#[tokio::test]
async fn alices_block_outlives_her_session() {
    // XEP-0191 §3.3: "the duration of the block is potentially unlimited and applies across
    // sessions".
    let server = server().await;
    let mut alice_phone = alice(&server, "phone").await;
    block(&mut alice_phone, "bob@localhost").await;
    alice_phone.close().await.unwrap();

    let mut alice_laptop = alice(&server, "laptop").await;
    assert_eq!(blocklist(&mut alice_laptop).await, ["bob@localhost"]);
    let mut bob = bob(&server).await;
    bob.send_message("alice@localhost/laptop", "still blocked?")
        .await
        .unwrap();
    bob.expect_stanza_error("message", "service-unavailable")
        .await;
}

/// Reads until a presence stanza for which `wanted` holds, passing over other presence (the
/// presence module also sends echoes and subscription states); panics on anything else.
async fn presence_where(c: &mut Client, what: &str, wanted: impl Fn(&Element) -> bool) -> Element {
    loop {
        let p = c.expect_stanza("presence").await;
        if wanted(&p) {
            return p;
        }
        eprintln!("{}: passing over {what}-unrelated {p:?}", c.name());
    }
}

/// Bob subscribes to alice's presence and she approves (RFC 6121 §3.1); both are available.
async fn bob_subscribed_to_alice(alice: &mut Client, bob: &mut Client) {
    alice.send("<presence/>").await.unwrap();
    bob.send("<presence/>").await.unwrap();
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
        .await
        .unwrap();
    presence_where(alice, "bob's subscribe", |p| {
        p.attr("type") == Some("subscribe") && p.attr("from") == Some("bob@localhost")
    })
    .await;
    alice
        .send("<presence to='bob@localhost' type='subscribed'/>")
        .await
        .unwrap();
    // RFC 6121 §3.1.5: once subscribed, bob receives alice's current presence.
    presence_where(bob, "alice's presence", |p| {
        p.attr("type").is_none() && p.attr("from") == Some("alice@localhost/phone")
    })
    .await;
}

#[tokio::test]
async fn when_alice_blocks_bob_he_sees_her_go_offline_and_no_presence_of_hers_until_unblocked() {
    // XEP-0191 §3.3: on block the server sends unavailable presence to the contact (who may
    // see it); afterwards alice appears offline to bob. §3.4: on unblock her current presence.
    let server = server().await;
    let mut alice = alice(&server, "phone").await;
    let mut bob = bob(&server).await;
    bob_subscribed_to_alice(&mut alice, &mut bob).await;

    alice
        .send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>")
        .await
        .unwrap();
    let gone = presence_where(&mut bob, "unavailable from alice", |p| {
        p.attr("from") == Some("alice@localhost/phone")
    })
    .await;
    assert_eq!(gone.attr("type"), Some("unavailable"), "§3.3: {gone:?}");

    alice
        .send("<presence><status>back at the balcony</status></presence>")
        .await
        .unwrap();
    // Whatever else alice's presence causes, bob sees nothing of it.
    bob.expect_silence(QUIET).await;

    alice
        .send("<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock></iq>")
        .await
        .unwrap();
    let back = presence_where(&mut bob, "alice's current presence", |p| {
        p.attr("from") == Some("alice@localhost/phone")
    })
    .await;
    assert_eq!(back.attr("type"), None, "§3.4: {back:?}");
    assert_eq!(
        back.child("status", ns::CLIENT)
            .map(Element::text)
            .as_deref(),
        Some("back at the balcony")
    );
}
