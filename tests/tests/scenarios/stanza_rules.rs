//! Stanza handling of a bound session: IQ rules and errors (RFC 6120 §8), routing for local
//! users (RFC 6121 §8.5), `from` stamping, and the server's own IQs (XEP-0199, XEP-0030,
//! XEP-0092, the legacy session).
#![allow(clippy::unwrap_used)]

use corvid_tests::{
    juliet_and_romeo, ns, stanza_error_condition, Client, TestServer, JULIET, ROMEO,
};
use corvid_xml::Element;

async fn two() -> (TestServer, Client, Client) {
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let juliet = Client::login(&server, JULIET.0, JULIET.1, Some("balcony"))
        .await
        .unwrap();
    let romeo = Client::login(&server, ROMEO.0, ROMEO.1, Some("orchard"))
        .await
        .unwrap();
    (server, juliet, romeo)
}

fn condition(el: &Element) -> Option<String> {
    stanza_error_condition(el)
}

#[tokio::test]
async fn an_iq_without_id_gets_bad_request_and_the_stream_stays_up() {
    // RFC 6120 §8.2.3: an IQ must have an id; §8.3: a stanza error, not a stream error.
    let (_server, mut juliet, _romeo) = two().await;
    juliet
        .send("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    let err = juliet.expect_stanza_error("iq", "bad-request").await;
    assert_eq!(err.attr("type"), Some("error"));
    juliet.ping_server().await.unwrap();
}

#[tokio::test]
async fn an_iq_with_an_unknown_type_gets_bad_request() {
    // RFC 6120 §8.2.3: type is one of get, set, result, error.
    let (_server, mut juliet, _romeo) = two().await;
    juliet
        .send("<iq type='fetch' id='t1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    let err = juliet.expect_stanza_error("iq", "bad-request").await;
    assert_eq!(err.attr("id"), Some("t1"));
    juliet.ping_server().await.unwrap();
}

#[tokio::test]
async fn an_iq_get_with_two_payloads_gets_bad_request() {
    // RFC 6120 §8.2.3: a get or set contains exactly one payload element.
    let (_server, mut juliet, _romeo) = two().await;
    let answer = juliet
        .iq(
            "get",
            Some("localhost"),
            "<ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/>",
        )
        .await
        .unwrap();
    assert_eq!(condition(&answer).as_deref(), Some("bad-request"));
}

#[tokio::test]
async fn an_iq_to_the_server_in_an_unknown_namespace_is_service_unavailable() {
    // RFC 6120 §8.4.
    let (_server, mut juliet, _romeo) = two().await;
    let answer = juliet
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='urn:example:nothing'/>",
        )
        .await
        .unwrap();
    assert_eq!(answer.attr("type"), Some("error"));
    assert_eq!(condition(&answer).as_deref(), Some("service-unavailable"));
    assert_eq!(answer.attr("from"), Some("localhost"));
}

#[tokio::test]
async fn an_iq_to_an_unbound_full_jid_is_service_unavailable() {
    // RFC 6121 §8.5.3.2.2 / RFC 6120 §10.5.3.2.
    let (_server, mut juliet, _romeo) = two().await;
    let answer = juliet
        .iq(
            "get",
            Some("romeo@localhost/nowhere"),
            "<ping xmlns='urn:xmpp:ping'/>",
        )
        .await
        .unwrap();
    assert_eq!(condition(&answer).as_deref(), Some("service-unavailable"));
}

#[tokio::test]
async fn an_iq_to_a_bound_full_jid_is_delivered_and_its_result_routed_back() {
    // RFC 6121 §8.5.3.1: the server delivers to the matching resource.
    let (_server, mut juliet, mut romeo) = two().await;
    let id = juliet
        .send_iq(
            "get",
            Some("romeo@localhost/orchard"),
            "<ping xmlns='urn:xmpp:ping'/>",
        )
        .await
        .unwrap();
    let got = romeo.expect_stanza("iq").await;
    assert_eq!(got.attr("from"), Some("juliet@localhost/balcony"));
    assert_eq!(got.attr("id"), Some(id.as_str()));
    romeo
        .send(format!(
            "<iq type='result' to='juliet@localhost/balcony' id='{id}'/>"
        ))
        .await
        .unwrap();
    let result = juliet.expect_stanza("iq").await;
    assert_eq!(result.attr("type"), Some("result"));
    assert_eq!(result.attr("from"), Some("romeo@localhost/orchard"));
}

#[tokio::test]
async fn a_message_to_an_unknown_local_user_is_service_unavailable() {
    // RFC 6121 §8.5.1.
    let (_server, mut juliet, _romeo) = two().await;
    let id = juliet
        .send_message("tybalt@localhost", "Hello?")
        .await
        .unwrap();
    let err = juliet
        .expect_stanza_error("message", "service-unavailable")
        .await;
    assert_eq!(err.attr("id"), Some(id.as_str()));
}

#[tokio::test]
async fn a_message_not_to_be_stored_for_a_user_with_no_available_resource_is_service_unavailable() {
    // RFC 6121 §8.5.2.2.1: with no available resource a chat message is stored offline or
    // refused with service-unavailable; one hinted <no-store/> (XEP-0334) must not be stored.
    // romeo is bound but sent no presence, so he is not available.
    let (_server, mut juliet, mut romeo) = two().await;
    juliet
        .send(
            "<message to='romeo@localhost' type='chat' id='ns1'><body>Hello?</body>\
             <no-store xmlns='urn:xmpp:hints'/></message>",
        )
        .await
        .unwrap();
    juliet
        .expect_stanza_error("message", "service-unavailable")
        .await;
    romeo
        .expect_silence(std::time::Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn xep0199_ping_to_the_server_gets_a_result() {
    // XEP-0199 §4.2.
    let (_server, mut juliet, _romeo) = two().await;
    let answer = juliet
        .iq("get", Some("localhost"), "<ping xmlns='urn:xmpp:ping'/>")
        .await
        .unwrap();
    assert_eq!(answer.attr("type"), Some("result"));
    assert_eq!(answer.attr("from"), Some("localhost"));
    assert_eq!(answer.attr("to"), Some("juliet@localhost/balcony"));
    assert!(
        answer.child_elements().next().is_none(),
        "XEP-0199: empty result"
    );
}

#[tokio::test]
async fn xep0030_disco_info_lists_the_server_identity_and_features() {
    // XEP-0030 §3.1; the features of XEP-0199 §6, XEP-0092 §3 and XEP-0030 itself.
    let (_server, mut juliet, _romeo) = two().await;
    let answer = juliet
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await
        .unwrap();
    assert_eq!(answer.attr("type"), Some("result"));
    let q = answer.child("query", ns::DISCO_INFO).unwrap();
    assert!(q.child_elements().any(|e| e.is("identity", ns::DISCO_INFO)
        && e.attr("category") == Some("server")
        && e.attr("type") == Some("im")));
    let features: Vec<&str> = q
        .child_elements()
        .filter(|e| e.is("feature", ns::DISCO_INFO))
        .filter_map(|e| e.attr("var"))
        .collect();
    for f in [ns::PING, ns::DISCO_INFO, ns::DISCO_ITEMS, ns::VERSION] {
        assert!(features.contains(&f), "missing {f}; got {features:?}");
    }
}

#[tokio::test]
async fn xep0030_disco_items_of_the_server_is_a_result() {
    // XEP-0030 §4.1.
    let (_server, mut juliet, _romeo) = two().await;
    let answer = juliet
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        )
        .await
        .unwrap();
    assert_eq!(answer.attr("type"), Some("result"));
    assert!(answer.child("query", ns::DISCO_ITEMS).is_some());
}

#[tokio::test]
async fn xep0092_version_names_corvid() {
    // XEP-0092 §3.
    let (_server, mut juliet, _romeo) = two().await;
    let answer = juliet
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='jabber:iq:version'/>",
        )
        .await
        .unwrap();
    let q = answer.child("query", ns::VERSION).unwrap();
    assert_eq!(
        q.child("name", ns::VERSION).map(Element::text).as_deref(),
        Some("Corvid")
    );
    assert!(q
        .child("version", ns::VERSION)
        .is_some_and(|v| !v.text().is_empty()));
}

#[tokio::test]
async fn bind_without_a_resource_gets_a_server_generated_one() {
    // RFC 6120 §7.6.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut a = Client::login(&server, JULIET.0, JULIET.1, None)
        .await
        .unwrap();
    let mut b = Client::login(&server, JULIET.0, JULIET.1, None)
        .await
        .unwrap();
    let (ja, jb) = (a.jid().unwrap().to_owned(), b.jid().unwrap().to_owned());
    for j in [&ja, &jb] {
        let resource = j.strip_prefix("juliet@localhost/").unwrap();
        assert!(!resource.is_empty());
    }
    assert_ne!(ja, jb, "each session gets its own resource");
    a.ping_server().await.unwrap();
    b.ping_server().await.unwrap();
}

#[tokio::test]
async fn the_legacy_session_iq_gets_a_result() {
    // RFC 3921 §3 / draft-cridland-xmpp-session: a no-op kept for old clients.
    let (_server, mut juliet, _romeo) = two().await;
    let answer = juliet
        .iq(
            "set",
            None,
            "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>",
        )
        .await
        .unwrap();
    assert_eq!(answer.attr("type"), Some("result"));
}

#[tokio::test]
async fn the_server_stamps_from_with_the_senders_full_jid() {
    // RFC 6120 §8.1.2.1.
    let (_server, mut juliet, mut romeo) = two().await;
    juliet
        .send("<message to='romeo@localhost/orchard' id='m1'><body>No from here</body></message>")
        .await
        .unwrap();
    let got = romeo.expect_message().await;
    assert_eq!(got.attr("from"), Some("juliet@localhost/balcony"));
    // A bare `from` of one's own account is accepted and completed too.
    juliet
        .send("<message from='juliet@localhost' to='romeo@localhost/orchard' id='m2'><body>b</body></message>")
        .await
        .unwrap();
    let got = romeo.expect_message().await;
    assert_eq!(got.attr("from"), Some("juliet@localhost/balcony"));
    assert_eq!(got.attr("id"), Some("m2"));
}

#[tokio::test]
async fn a_message_to_the_bare_jid_reaches_the_available_resource() {
    // RFC 6121 §8.5.2.1.1: chat to a bare JID goes to the available resource.
    let (_server, mut juliet, mut romeo) = two().await;
    romeo.send_presence().await.unwrap();
    juliet
        .send_message("romeo@localhost", "Wherefore art thou?")
        .await
        .unwrap();
    let got = romeo.expect_message().await;
    assert_eq!(got.attr("to"), Some("romeo@localhost"));
    assert_eq!(
        got.child("body", ns::CLIENT).map(Element::text).as_deref(),
        Some("Wherefore art thou?")
    );
}

#[tokio::test]
async fn a_chat_to_an_unbound_full_jid_falls_back_to_the_bare_jid() {
    // RFC 6121 §8.5.3.2.1: chat to a full JID with no such resource is treated as bare.
    let (_server, mut juliet, mut romeo) = two().await;
    romeo.send_presence().await.unwrap();
    juliet
        .send_message("romeo@localhost/gone", "Hello?")
        .await
        .unwrap();
    let got = romeo.expect_message().await;
    assert_eq!(got.attr("from"), Some("juliet@localhost/balcony"));
}

#[tokio::test]
async fn a_message_to_the_server_domain_is_service_unavailable() {
    // RFC 6120 §10.4 / RFC 6121 §8.5 for the server's own domain: no one reads messages there.
    let (_server, mut juliet, _romeo) = two().await;
    juliet
        .send_message("localhost", "Hello server")
        .await
        .unwrap();
    juliet
        .expect_stanza_error("message", "service-unavailable")
        .await;
}

#[tokio::test]
async fn an_iq_with_a_malformed_to_is_jid_malformed() {
    // RFC 6120 §8.3.3.8.
    let (_server, mut juliet, _romeo) = two().await;
    let answer = juliet
        .iq("get", Some("@@bad@@"), "<ping xmlns='urn:xmpp:ping'/>")
        .await
        .unwrap();
    assert_eq!(condition(&answer).as_deref(), Some("jid-malformed"));
    juliet.ping_server().await.unwrap();
}
