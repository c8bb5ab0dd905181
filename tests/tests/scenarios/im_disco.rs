//! XEP-0030: the server's disco#info lists every feature the IM modules implement, and an
//! account's disco#info the account-level ones; stream features carry the rest (XEP-0237
//! roster versioning, XEP-0352 CSI).
#![allow(clippy::unwrap_used)]

use corvid_tests::{ns, Client, TestServer};

fn vars(answer: &corvid_xml::Element) -> Vec<String> {
    answer
        .child("query", ns::DISCO_INFO)
        .unwrap()
        .child_elements()
        .filter(|e| e.name == "feature")
        .filter_map(|e| e.attr("var").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn server_disco_lists_every_implemented_feature() {
    let server = TestServer::builder()
        .user("alice", "alice-pw")
        .start()
        .await
        .unwrap();
    let mut alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    let answer = alice
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await
        .unwrap();
    let got = vars(&answer);
    for expected in [
        "http://jabber.org/protocol/disco#info", // XEP-0030
        "http://jabber.org/protocol/disco#items",
        "jabber:iq:roster",   // RFC 6121 §2
        "urn:xmpp:ping",      // XEP-0199
        "jabber:iq:version",  // XEP-0092
        "msgoffline",         // XEP-0160
        "urn:xmpp:carbons:2", // XEP-0280
        "urn:xmpp:blocking",  // XEP-0191
        "vcard-temp",         // XEP-0054
        "jabber:iq:last",     // XEP-0012
        "urn:xmpp:time",      // XEP-0202
    ] {
        assert!(
            got.iter().any(|v| v == expected),
            "server disco lacks {expected}: {got:?}"
        );
    }

    let answer = alice
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await
        .unwrap();
    let got = vars(&answer);
    for expected in ["urn:xmpp:sid:0", "vcard-temp", "jabber:iq:last"] {
        assert!(
            got.iter().any(|v| v == expected),
            "account disco lacks {expected}: {got:?}"
        );
    }
}

#[tokio::test]
async fn stream_features_after_authentication_offer_roster_versioning_and_csi() {
    let server = TestServer::builder()
        .user("alice", "alice-pw")
        .start()
        .await
        .unwrap();
    let alice = Client::login(&server, "alice", "alice-pw", Some("phone"))
        .await
        .unwrap();
    let features = alice.features().unwrap();
    assert!(
        features
            .child("ver", "urn:xmpp:features:rosterver")
            .is_some(),
        "XEP-0237 §3"
    );
    assert!(
        features.child("csi", "urn:xmpp:csi:0").is_some(),
        "XEP-0352 §2"
    );
}
