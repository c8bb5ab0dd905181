//! Small IM services between alice and bob: vcard-temp (XEP-0054), last activity (XEP-0012)
//! and entity time (XEP-0202).
#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use corvid_tests::{ns, stanza_error_condition, Client, Received, StreamEvent, TestServer};
use corvid_xml::Element;

const NS_VCARD: &str = "vcard-temp";
const NS_LAST: &str = "jabber:iq:last";
const NS_TIME: &str = "urn:xmpp:time";

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

/// Sends an IQ and returns its answer, passing over presence that may arrive meanwhile (the
/// presence module echoes a resource's own presence, RFC 6121 §4.2.2).
async fn iq(c: &mut Client, ty: &str, to: Option<&str>, payload: &str) -> Element {
    let id = c.send_iq(ty, to, payload).await.unwrap();
    loop {
        match c.next().await {
            Received::Event(StreamEvent::Element(e)) if e.is("presence", ns::CLIENT) => {}
            Received::Event(StreamEvent::Element(e))
                if e.is("iq", ns::CLIENT) && e.attr("id") == Some(id.as_str()) =>
            {
                return e
            }
            other => panic!("{}: expected the answer to {id}, got {other}", c.name()),
        }
    }
}

fn vcard_fn(answer: &Element) -> Option<String> {
    answer
        .child("vCard", NS_VCARD)?
        .child("FN", NS_VCARD)
        .map(Element::text)
}

// ---- XEP-0054 vcard-temp ------------------------------------------------------------------

#[tokio::test]
async fn alice_without_a_vcard_gets_an_empty_one() {
    // XEP-0054 §3.1: no vCard → item-not-found or an empty <vCard/>; we answer the latter.
    let (_server, mut alice, _bob) = alice_and_bob().await;
    let answer = iq(&mut alice, "get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert_eq!(answer.attr("type"), Some("result"));
    let vcard = answer.child("vCard", NS_VCARD).expect("§3.1: a <vCard/>");
    assert_eq!(vcard.child_elements().count(), 0);
}

#[tokio::test]
async fn alice_sets_her_vcard_and_reads_it_back_and_bob_reads_it_at_her_bare_jid() {
    // XEP-0054 §3.2: the user sets her own vCard; §3.1 she retrieves it; §3.3 another user
    // retrieves it by sending the get to her bare JID.
    let (_server, mut alice, mut bob) = alice_and_bob().await;
    let set = iq(
        &mut alice,
        "set",
        None,
        "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>al</NICKNAME></vCard>",
    )
    .await;
    assert_eq!(set.attr("type"), Some("result"), "§3.2: {set:?}");

    let own = iq(&mut alice, "get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert_eq!(vcard_fn(&own).as_deref(), Some("Alice Liddell"));
    let own_at_bare = iq(
        &mut alice,
        "get",
        Some("alice@localhost"),
        "<vCard xmlns='vcard-temp'/>",
    )
    .await;
    assert_eq!(vcard_fn(&own_at_bare).as_deref(), Some("Alice Liddell"));

    let theirs = iq(
        &mut bob,
        "get",
        Some("alice@localhost"),
        "<vCard xmlns='vcard-temp'/>",
    )
    .await;
    assert_eq!(
        theirs.attr("from"),
        Some("alice@localhost"),
        "§3.3: answered for her account"
    );
    assert_eq!(vcard_fn(&theirs).as_deref(), Some("Alice Liddell"));
    let nick = theirs
        .child("vCard", NS_VCARD)
        .and_then(|v| v.child("NICKNAME", NS_VCARD))
        .map(Element::text);
    assert_eq!(nick.as_deref(), Some("al"));

    // A second set replaces the first (§3.2).
    iq(
        &mut alice,
        "set",
        None,
        "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>",
    )
    .await;
    let again = iq(
        &mut bob,
        "get",
        Some("alice@localhost"),
        "<vCard xmlns='vcard-temp'/>",
    )
    .await;
    assert_eq!(vcard_fn(&again).as_deref(), Some("Alice"));
    assert!(again
        .child("vCard", NS_VCARD)
        .and_then(|v| v.child("NICKNAME", NS_VCARD))
        .is_none());
}

#[tokio::test]
async fn bob_cannot_change_alices_vcard() {
    // XEP-0054 §3.2: only the user herself updates her vCard.
    let (_server, mut alice, mut bob) = alice_and_bob().await;
    let answer = iq(
        &mut bob,
        "set",
        Some("alice@localhost"),
        "<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>",
    )
    .await;
    assert_eq!(
        stanza_error_condition(&answer).as_deref(),
        Some("forbidden")
    );
    let own = iq(&mut alice, "get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert_eq!(
        vcard_fn(&own),
        None,
        "alice's vCard is unchanged (still empty)"
    );
}

#[tokio::test]
async fn an_oversized_vcard_is_refused_with_not_acceptable() {
    // A limit on what a client controls: vCards above 64 KiB are not stored.
    let (_server, mut alice, _bob) = alice_and_bob().await;
    let photo = "A".repeat(70 * 1024);
    let answer = iq(
        &mut alice,
        "set",
        None,
        &format!("<vCard xmlns='vcard-temp'><PHOTO><BINVAL>{photo}</BINVAL></PHOTO></vCard>"),
    )
    .await;
    assert_eq!(
        stanza_error_condition(&answer).as_deref(),
        Some("not-acceptable")
    );
}

#[tokio::test]
async fn a_vcard_of_someone_who_does_not_exist_is_service_unavailable() {
    // RFC 6121 §8.5.1: an IQ to an account that does not exist.
    let (_server, mut alice, _bob) = alice_and_bob().await;
    let answer = iq(
        &mut alice,
        "get",
        Some("nobody@localhost"),
        "<vCard xmlns='vcard-temp'/>",
    )
    .await;
    assert_eq!(
        stanza_error_condition(&answer).as_deref(),
        Some("service-unavailable")
    );
}

// ---- XEP-0012 last activity ---------------------------------------------------------------

fn seconds(answer: &Element) -> u64 {
    answer
        .child("query", NS_LAST)
        .and_then(|q| q.attr("seconds"))
        .expect("§2: the result carries seconds")
        .parse()
        .expect("seconds is an unsigned integer")
}

#[tokio::test]
async fn the_server_answers_last_activity_with_its_uptime() {
    // XEP-0012 §5: to the server, seconds is how long it has been up.
    let (_server, mut alice, _bob) = alice_and_bob().await;
    let answer = iq(
        &mut alice,
        "get",
        Some("localhost"),
        "<query xmlns='jabber:iq:last'/>",
    )
    .await;
    assert_eq!(answer.attr("type"), Some("result"));
    assert!(seconds(&answer) < 120, "the test server just started");
    let q = answer.child("query", NS_LAST).unwrap();
    assert_eq!(q.text(), "", "§5: no character data");
}

#[tokio::test]
async fn alice_online_is_zero_seconds_idle_for_herself() {
    // XEP-0012 §4: with an available resource the answer is seconds='0'.
    let (_server, mut alice, _bob) = alice_and_bob().await;
    alice.send("<presence/>").await.unwrap();
    let answer = iq(
        &mut alice,
        "get",
        Some("alice@localhost"),
        "<query xmlns='jabber:iq:last'/>",
    )
    .await;
    assert_eq!(answer.attr("type"), Some("result"), "{answer:?}");
    assert_eq!(seconds(&answer), 0);
}

#[tokio::test]
async fn after_alice_logs_out_she_sees_when_and_with_which_status() {
    // XEP-0012 §4: seconds since the last logout, and the status of the last unavailable
    // presence as character data.
    let server = TestServer::builder()
        .user("alice", "alice-pw")
        .start()
        .await
        .unwrap();
    let mut phone = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    phone.send("<presence/>").await.unwrap();
    phone
        .send("<presence type='unavailable'><status>Heading Home</status></presence>")
        .await
        .unwrap();
    phone.close().await.unwrap();

    let mut laptop = Client::login(&server, "alice", "alice-pw", Some("laptop"))
        .await
        .unwrap();
    // close() returned once the connection ended, which is after the session was closed.
    let answer = iq(&mut laptop, "get", None, "<query xmlns='jabber:iq:last'/>").await;
    assert_eq!(answer.attr("type"), Some("result"), "{answer:?}");
    assert!(seconds(&answer) < 60);
    assert_eq!(
        answer.child("query", NS_LAST).map(Element::text).as_deref(),
        Some("Heading Home")
    );
}

#[tokio::test]
async fn bob_without_a_subscription_is_forbidden_to_see_alices_last_activity() {
    // XEP-0012 §4: "a server MUST NOT return last activity information to an entity that is
    // not authorized to view the user's presence information ... MUST return a Forbidden error".
    let (_server, mut alice, mut bob) = alice_and_bob().await;
    alice.send("<presence/>").await.unwrap();
    let answer = iq(
        &mut bob,
        "get",
        Some("alice@localhost"),
        "<query xmlns='jabber:iq:last'/>",
    )
    .await;
    assert_eq!(
        stanza_error_condition(&answer).as_deref(),
        Some("forbidden")
    );
    assert!(answer
        .child("query", NS_LAST)
        .is_none_or(|q| q.attr("seconds").is_none()));
}

#[tokio::test]
async fn bob_who_alice_lets_see_her_presence_gets_her_last_activity() {
    // XEP-0012 §4: allowed "via presence subscription": alice approved bob's subscription, so
    // her roster item for him is `from` and he gets seconds='0' while she is online.
    let (_server, mut alice, mut bob) = alice_and_bob().await;
    alice.send("<presence/>").await.unwrap();
    bob.send("<presence/>").await.unwrap();
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
        .await
        .unwrap();
    loop {
        let p = alice.expect_stanza("presence").await;
        if p.attr("type") == Some("subscribe") {
            break;
        }
    }
    alice
        .send("<presence to='bob@localhost' type='subscribed'/>")
        .await
        .unwrap();
    // Once bob has alice's presence, her approval went through (RFC 6121 §3.1.5).
    loop {
        let p = bob.expect_stanza("presence").await;
        if p.attr("from") == Some("alice@localhost/phone") && p.attr("type").is_none() {
            break;
        }
    }
    let answer = iq(
        &mut bob,
        "get",
        Some("alice@localhost"),
        "<query xmlns='jabber:iq:last'/>",
    )
    .await;
    assert_eq!(answer.attr("type"), Some("result"), "{answer:?}");
    assert_eq!(seconds(&answer), 0);
}

// ---- XEP-0202 entity time -----------------------------------------------------------------

/// Seconds since the epoch of a UTC `YYYY-MM-DDThh:mm:ss[.fff]Z` (XEP-0082 DateTime); panics
/// on anything else.
fn parse_utc(s: &str) -> i64 {
    let b = s.as_bytes();
    assert!(s.len() >= 20 && s.ends_with('Z'), "not a UTC DateTime: {s}");
    for (i, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        assert_eq!(b[i], c, "bad separator at {i} in {s}");
    }
    let num = |r: std::ops::Range<usize>| -> i64 { s[r].parse().unwrap() };
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss) = (num(11..13), num(14..16), num(17..19));
    assert!((1..=12).contains(&m) && (1..=31).contains(&d) && hh < 24 && mm < 60 && ss < 61);
    let frac = &s[19..s.len() - 1];
    assert!(
        frac.is_empty()
            || (frac.starts_with('.')
                && frac.len() > 1
                && frac[1..].bytes().all(|c| c.is_ascii_digit())),
        "bad fraction in {s}"
    );
    // Days from the civil date (proleptic Gregorian).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

#[tokio::test]
async fn the_server_tells_its_time_in_utc() {
    // XEP-0202 §3: <tzo/> is the offset, <utc/> the UTC time in XEP-0082 DateTime format.
    let (_server, mut alice, _bob) = alice_and_bob().await;
    let answer = iq(
        &mut alice,
        "get",
        Some("localhost"),
        "<time xmlns='urn:xmpp:time'/>",
    )
    .await;
    assert_eq!(answer.attr("type"), Some("result"));
    let t = answer.child("time", NS_TIME).expect("§3: a <time/>");
    assert_eq!(
        t.child("tzo", NS_TIME).map(Element::text).as_deref(),
        Some("+00:00")
    );
    let utc = t.child("utc", NS_TIME).map(Element::text).unwrap();
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let theirs = parse_utc(&utc);
    assert!(
        (theirs - now).abs() < 60,
        "server time {utc} is far from ours"
    );
}

#[test]
fn the_utc_parser_of_these_tests_knows_the_epoch_and_a_leap_year() {
    assert_eq!(parse_utc("1970-01-01T00:00:00Z"), 0);
    assert_eq!(parse_utc("2000-03-01T00:00:00.5Z"), 951_868_800);
}
