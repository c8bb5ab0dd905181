//! RFC 6121 §2 (roster management) and XEP-0237 (roster versioning), as conversations between
//! alice (her phone, laptop and tablet) and bob.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::{ns, stanza_error_condition, Client, TestServer};
use corvid_xml::Element;

const NS_ROSTER: &str = "jabber:iq:roster";
const NS_ROSTERVER: &str = "urn:xmpp:features:rosterver";
const QUIET: Duration = Duration::from_millis(300);

async fn server() -> TestServer {
    TestServer::builder()
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
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

/// The `<item/>` of each roster push among `els` (RFC 6121 §2.1.6), with the push's `ver`.
fn pushes(els: &[Element]) -> Vec<(Element, Option<String>)> {
    els.iter()
        .filter(|e| e.is("iq", ns::CLIENT) && e.attr("type") == Some("set"))
        .filter_map(|e| e.child("query", NS_ROSTER))
        .filter_map(|q| {
            q.child("item", NS_ROSTER)
                .map(|i| (i.clone(), q.attr("ver").map(str::to_owned)))
        })
        .collect()
}

/// A roster get (with `ver` if given); the answer, which must be a result.
async fn roster_get(c: &mut Client, ver: Option<&str>) -> Element {
    let payload = match ver {
        Some(v) => format!("<query xmlns='{NS_ROSTER}' ver='{v}'/>"),
        None => format!("<query xmlns='{NS_ROSTER}'/>"),
    };
    let answer = c.iq("get", None, &payload).await.unwrap();
    assert_eq!(
        answer.attr("type"),
        Some("result"),
        "{}: {}",
        c.name(),
        answer.to_xml(ns::CLIENT)
    );
    answer
}

fn items(answer: &Element) -> Vec<Element> {
    answer
        .child("query", NS_ROSTER)
        .map(|q| q.child_elements().cloned().collect())
        .unwrap_or_default()
}

fn groups(item: &Element) -> Vec<String> {
    item.child_elements()
        .filter(|g| g.is("group", NS_ROSTER))
        .map(Element::text)
        .collect()
}

/// A roster set with this `<item/>` XML; returns the id, the answer and what came with it.
async fn roster_set(c: &mut Client, item: &str) -> (Element, Vec<Element>) {
    let id = c
        .send_iq(
            "set",
            None,
            &format!("<query xmlns='{NS_ROSTER}'>{item}</query>"),
        )
        .await
        .unwrap();
    let got = drain(c).await;
    let answer = got
        .iter()
        .find(|e| e.is("iq", ns::CLIENT) && e.attr("id") == Some(id.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("{}: no answer to the roster set in {got:?}", c.name()));
    (answer, got)
}

async fn roster_set_error(c: &mut Client, item: &str) -> String {
    let (answer, _) = roster_set(c, item).await;
    assert_eq!(answer.attr("type"), Some("error"));
    stanza_error_condition(&answer).unwrap()
}

#[tokio::test]
async fn the_server_advertises_roster_versioning() {
    // RFC 6121 §2.6.1: the stream feature after authentication.
    let server = server().await;
    let alice = login(&server, "alice", "phone").await;
    let features = alice.features().unwrap();
    assert!(features.child("ver", NS_ROSTERVER).is_some());
}

#[tokio::test]
async fn roster_set_adds_item_and_pushes_to_interested_resources() {
    // RFC 6121 §2.3.2: the item is stored, pushed to every interested resource (those that
    // requested the roster, §2.2), and the initiating resource gets a result.
    let server = server().await;
    let mut phone = login(&server, "alice", "phone").await;
    let mut laptop = login(&server, "alice", "laptop").await;
    let mut tablet = login(&server, "alice", "tablet").await;
    assert!(items(&roster_get(&mut phone, None).await).is_empty());
    roster_get(&mut laptop, None).await;

    let (answer, got) = roster_set(
        &mut phone,
        "<item jid='bob@localhost' name='Bob'><group>Friends</group><group>Work</group></item>",
    )
    .await;
    assert_eq!(answer.attr("type"), Some("result"));
    assert!(
        answer.child_elements().next().is_none(),
        "§2.3.2: empty result"
    );
    // The result comes before the push (§2.3.2 example order).
    assert_eq!(got[0].attr("id"), answer.attr("id"));
    let on_phone = pushes(&got);
    assert_eq!(on_phone.len(), 1, "phone: one push");
    let on_laptop = pushes(&drain(&mut laptop).await);
    assert_eq!(on_laptop.len(), 1, "laptop: one push");
    for (item, ver) in [&on_phone[0], &on_laptop[0]] {
        assert_eq!(item.attr("jid"), Some("bob@localhost"));
        assert_eq!(item.attr("name"), Some("Bob"));
        assert_eq!(item.attr("subscription"), Some("none"));
        assert_eq!(groups(item), ["Friends", "Work"]);
        assert!(ver.is_some(), "§2.6.3: pushes carry the version");
    }
    // The tablet never asked for the roster: it is not an interested resource.
    tablet.expect_silence(QUIET).await;

    // The update is atomic (§2.4): the item becomes exactly what was sent.
    let (_, got) = roster_set(&mut laptop, "<item jid='bob@localhost'/>").await;
    let (item, ver) = &pushes(&got)[0];
    assert_eq!(item.attr("name"), None);
    assert!(groups(item).is_empty());
    let roster = roster_get(&mut tablet, None).await;
    let q = roster.child("query", NS_ROSTER).unwrap();
    assert_eq!(
        q.attr("ver"),
        ver.as_deref(),
        "the last push's version is current"
    );
    assert_eq!(items(&roster).len(), 1);
}

#[tokio::test]
async fn roster_get_with_current_ver_returns_empty_result() {
    // RFC 6121 §2.6.3: the client's cached version is current: an empty IQ result, which
    // differs from an empty <query/> (an empty roster).
    let server = server().await;
    let mut phone = login(&server, "alice", "phone").await;
    let first = roster_get(&mut phone, Some("")).await;
    let q = first
        .child("query", NS_ROSTER)
        .expect("§2.6.3: a full roster");
    let ver = q.attr("ver").expect("§2.6.3: with its version").to_owned();
    assert_eq!(q.child_elements().count(), 0);

    let same = roster_get(&mut phone, Some(&ver)).await;
    assert!(same.child_elements().next().is_none(), "empty result");

    // A version nobody issued: the full roster.
    let unknown = roster_get(&mut phone, Some("not-a-version")).await;
    assert!(unknown.child("query", NS_ROSTER).is_some(), "full roster");
}

#[tokio::test]
async fn roster_get_with_an_old_ver_gets_the_changes_as_pushes() {
    // XEP-0237 §4 / RFC 6121 §2.6.3: an out-of-date cache gets an empty result, then one push
    // per change since that version (additions, updates and removals), the last one carrying
    // the current version.
    let server = server().await;
    let mut phone = login(&server, "alice", "phone").await;
    roster_set(&mut phone, "<item jid='carol@localhost'/>").await;
    let q = roster_get(&mut phone, Some("")).await;
    let old = q
        .child("query", NS_ROSTER)
        .unwrap()
        .attr("ver")
        .unwrap()
        .to_owned();

    roster_set(&mut phone, "<item jid='bob@localhost' name='Bob'/>").await;
    roster_set(&mut phone, "<item jid='dave@localhost'/>").await;
    roster_set(
        &mut phone,
        "<item jid='carol@localhost' subscription='remove'/>",
    )
    .await;
    let current = roster_get(&mut phone, Some("")).await;
    let current_ver = current
        .child("query", NS_ROSTER)
        .unwrap()
        .attr("ver")
        .unwrap()
        .to_owned();

    // A second resource that cached `old`.
    let mut tablet = login(&server, "alice", "tablet").await;
    let id = tablet
        .send_iq(
            "get",
            None,
            &format!("<query xmlns='{NS_ROSTER}' ver='{old}'/>"),
        )
        .await
        .unwrap();
    let got = drain(&mut tablet).await;
    let result = &got[0];
    assert_eq!(
        result.attr("id"),
        Some(id.as_str()),
        "the result comes first: {got:?}"
    );
    assert_eq!(result.attr("type"), Some("result"));
    assert!(result.child_elements().next().is_none(), "an empty result");
    let changes = pushes(&got[1..]);
    let summary: Vec<_> = changes
        .iter()
        .map(|(item, _)| {
            (
                item.attr("jid").unwrap().to_owned(),
                item.attr("subscription").map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("bob@localhost".to_owned(), Some("none".to_owned())),
            ("dave@localhost".to_owned(), Some("none".to_owned())),
            ("carol@localhost".to_owned(), Some("remove".to_owned())),
        ]
    );
    assert_eq!(
        changes.last().unwrap().1.as_deref(),
        Some(current_ver.as_str())
    );
}

#[tokio::test]
async fn roster_remove_cancels_subscriptions_both_ways() {
    // RFC 6121 §2.5.2: removing a contact with a mutual subscription sends it "unsubscribe"
    // and "unsubscribed"; the removal is pushed with subscription='remove'.
    let server = server().await;
    let mut alice = login(&server, "alice", "phone").await;
    let mut bob = login(&server, "bob", "laptop").await;
    for c in [&mut alice, &mut bob] {
        roster_get(c, None).await;
        c.send("<presence/>").await.unwrap();
    }
    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await
        .unwrap();
    drain(&mut bob).await;
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
        .await
        .unwrap();
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
        .await
        .unwrap();
    drain(&mut alice).await;
    alice
        .send("<presence to='bob@localhost' type='subscribed'/>")
        .await
        .unwrap();
    drain(&mut alice).await;
    drain(&mut bob).await;
    let both = items(&roster_get(&mut alice, None).await);
    assert_eq!(both[0].attr("subscription"), Some("both"));

    let (answer, got) = roster_set(
        &mut alice,
        "<item jid='bob@localhost' subscription='remove'/>",
    )
    .await;
    assert_eq!(answer.attr("type"), Some("result"));
    let (item, _) = &pushes(&got)[0];
    assert_eq!(item.attr("subscription"), Some("remove"));
    assert!(items(&roster_get(&mut alice, None).await).is_empty());

    let at_bob = drain(&mut bob).await;
    let types: Vec<_> = at_bob
        .iter()
        .filter(|e| e.is("presence", ns::CLIENT) && e.attr("from") == Some("alice@localhost"))
        .filter_map(|e| e.attr("type"))
        .collect();
    assert_eq!(
        types,
        ["unsubscribe", "unsubscribed"],
        "§2.5.2, in that order"
    );
    assert!(
        at_bob.iter().any(|e| e.attr("type") == Some("unavailable")
            && e.attr("from") == Some("alice@localhost/phone")),
        "§3.2.2: bob no longer sees alice"
    );
    let bobs = items(&roster_get(&mut bob, None).await);
    assert_eq!(bobs[0].attr("jid"), Some("alice@localhost"));
    assert_eq!(bobs[0].attr("subscription"), Some("none"));
}

#[tokio::test]
async fn roster_sets_that_break_the_rules_of_section_2_3_3_are_refused() {
    let server = server().await;
    let mut alice = login(&server, "alice", "phone").await;
    // bad-request: more than one item; the same group twice.
    assert_eq!(
        roster_set_error(
            &mut alice,
            "<item jid='bob@localhost'/><item jid='nurse@localhost'/>"
        )
        .await,
        "bad-request"
    );
    assert_eq!(
        roster_set_error(
            &mut alice,
            "<item jid='bob@localhost'><group>A</group><group>A</group></item>"
        )
        .await,
        "bad-request"
    );
    // not-acceptable: an empty group, an oversized group or handle.
    assert_eq!(
        roster_set_error(&mut alice, "<item jid='bob@localhost'><group/></item>").await,
        "not-acceptable"
    );
    let long = "x".repeat(1024);
    assert_eq!(
        roster_set_error(
            &mut alice,
            &format!("<item jid='bob@localhost'><group>{long}</group></item>")
        )
        .await,
        "not-acceptable"
    );
    assert_eq!(
        roster_set_error(
            &mut alice,
            &format!("<item jid='bob@localhost' name='{long}'/>")
        )
        .await,
        "not-acceptable"
    );
    // §2.5.3: removing what is not there.
    assert_eq!(
        roster_set_error(
            &mut alice,
            "<item jid='nobody@localhost' subscription='remove'/>"
        )
        .await,
        "item-not-found"
    );
    // The account itself is no contact.
    assert_eq!(
        roster_set_error(&mut alice, "<item jid='alice@localhost'/>").await,
        "not-allowed"
    );
    // Nothing of the above was stored.
    assert!(items(&roster_get(&mut alice, None).await).is_empty());
}

#[tokio::test]
async fn alice_cannot_read_or_change_bobs_roster() {
    // RFC 6121 §2.3.3 (and §2.1.5 security warning): forbidden.
    let server = server().await;
    let mut alice = login(&server, "alice", "phone").await;
    let answer = alice
        .iq(
            "get",
            Some("bob@localhost"),
            &format!("<query xmlns='{NS_ROSTER}'/>"),
        )
        .await
        .unwrap();
    assert_eq!(
        stanza_error_condition(&answer).as_deref(),
        Some("forbidden")
    );
    let answer = alice
        .iq(
            "set",
            Some("bob@localhost"),
            &format!("<query xmlns='{NS_ROSTER}'><item jid='nurse@localhost'/></query>"),
        )
        .await
        .unwrap();
    assert_eq!(
        stanza_error_condition(&answer).as_deref(),
        Some("forbidden")
    );
    // Her own bare JID as 'to' is her own roster (§2.6.2 example).
    let answer = alice
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<query xmlns='{NS_ROSTER}'/>"),
        )
        .await
        .unwrap();
    assert_eq!(answer.attr("type"), Some("result"));
}

#[tokio::test]
async fn the_roster_survives_a_new_session() {
    // RFC 6121 §2: the roster is stored by the server, so any device gets it.
    let server = server().await;
    let mut phone = login(&server, "alice", "phone").await;
    roster_set(
        &mut phone,
        "<item jid='bob@localhost' name='Bob'><group>Friends</group></item>",
    )
    .await;
    phone.close().await.unwrap();
    let mut laptop = login(&server, "alice", "laptop").await;
    let all = items(&roster_get(&mut laptop, None).await);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].attr("name"), Some("Bob"));
    assert_eq!(groups(&all[0]), ["Friends"]);
}
