//! The RFC 6120 §9 reference conversation, step by step, with an assertion on every element the
//! server sends; then the same login over direct TLS (XEP-0368), with the other mechanisms and
//! with channel binding.
#![allow(clippy::unwrap_used)]

use corvid_tests::scram::{ChannelBinding, ScramClient, ScramHash, ServerFirst};
use corvid_tests::{
    juliet_and_romeo, ns, stream_header, Client, Login, Mechanism, SaslOutcome, SaslStep,
    StreamHeader, ALPN_XMPP_CLIENT, JULIET, ROMEO,
};
use corvid_xml::Element;

fn mechanisms(features: &Element) -> Vec<String> {
    features
        .child("mechanisms", ns::SASL)
        .map(|m| {
            m.child_elements()
                .filter(|e| e.is("mechanism", ns::SASL))
                .map(Element::text)
                .collect()
        })
        .unwrap_or_default()
}

/// RFC 6120 §4.7: the response header carries a fresh id, our domain as `from`, version 1.0
/// and a language; §4.8.2: the content namespace is jabber:client.
fn assert_response_header(h: &StreamHeader) {
    assert_eq!(h.name, "stream");
    assert_eq!(h.ns, ns::STREAM);
    assert_eq!(h.default_ns.as_deref(), Some(ns::CLIENT), "§4.8.2");
    let id = h.attr("id").expect("§4.7.3: the response header has an id");
    assert!(id.len() >= 8, "§4.7.3: the id is unpredictable, got `{id}`");
    assert_eq!(h.attr("from"), Some("localhost"), "§4.7.1");
    assert_eq!(h.attr("version"), Some("1.0"), "§4.7.5");
    assert!(h.lang().is_some(), "§4.7.4: the server includes xml:lang");
}

#[tokio::test]
async fn rfc6120_section9_conversation_succeeds_with_an_assertion_on_every_server_element() {
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut romeo = Client::login(&server, ROMEO.0, ROMEO.1, Some("orchard"))
        .await
        .unwrap();
    // RFC 6121 §4.2: availability comes from initial presence.
    romeo.send_presence().await.unwrap();

    let mut juliet = Client::new("juliet");
    juliet.connect(&server).await.unwrap();

    // §9.1.1 steps 1–3: header, response header, features with only STARTTLS, required.
    juliet
        .send(stream_header(Some("localhost"), Some("juliet@localhost")))
        .await
        .unwrap();
    let h1 = juliet.expect_stream_header().await;
    assert_response_header(&h1);
    assert_eq!(
        h1.attr("to"),
        Some("juliet@localhost"),
        "§4.7.2: the response's 'to' is the initiator's 'from'"
    );
    let f1 = juliet.expect_features().await;
    let starttls = f1
        .child("starttls", ns::TLS)
        .expect("§5.3.1: STARTTLS offered");
    assert!(
        starttls.child("required", ns::TLS).is_some(),
        "§5.3.1: mandatory-to-negotiate"
    );
    assert!(
        f1.child("mechanisms", ns::SASL).is_none(),
        "§9.1.1 step 3: only STARTTLS before TLS"
    );

    // Steps 4–6: <starttls/>, <proceed/>, TLS.
    juliet
        .send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await
        .unwrap();
    let proceed = juliet.expect_element("proceed", ns::TLS).await;
    assert!(proceed.children.is_empty());
    juliet.upgrade_tls().await.unwrap();
    assert_eq!(juliet.tls_version(), Some(rustls::ProtocolVersion::TLSv1_3));

    // Steps 7–8: a new stream over TLS; SASL mechanisms, no STARTTLS any more.
    juliet
        .send(stream_header(Some("localhost"), Some("juliet@localhost")))
        .await
        .unwrap();
    let h2 = juliet.expect_stream_header().await;
    assert_response_header(&h2);
    assert_ne!(
        h1.attr("id"),
        h2.attr("id"),
        "§4.7.3: a new id for each stream"
    );
    let f2 = juliet.expect_features().await;
    assert!(
        f2.child("starttls", ns::TLS).is_none(),
        "§5.4.3.3: STARTTLS is not offered again"
    );
    let mechs = mechanisms(&f2);
    for m in ["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "PLAIN"] {
        assert!(
            mechs.iter().any(|x| x == m),
            "§9.2.1: {m} offered; got {mechs:?}"
        );
    }
    // XEP-0440 §3: the channel-binding types this connection supports.
    let cb = f2
        .child("sasl-channel-binding", ns::SASL_CB)
        .expect("XEP-0440 element with -PLUS offered");
    let types: Vec<&str> = cb.child_elements().filter_map(|c| c.attr("type")).collect();
    assert!(types.contains(&"tls-exporter"), "got {types:?}");

    // Steps 9–13: SCRAM-SHA-1, the server proves it knows the password.
    let mut scram = ScramClient::new(
        ScramHash::Sha1,
        JULIET.0,
        JULIET.1,
        ChannelBinding::Unsupported,
    );
    juliet
        .send_auth("SCRAM-SHA-1", scram.client_first().as_bytes())
        .await
        .unwrap();
    let SaslStep::Challenge(first) = juliet.try_expect_sasl_step().await.unwrap() else {
        panic!("§9.2.2: a challenge after <auth/>");
    };
    let first = String::from_utf8(first).unwrap();
    let parsed = ServerFirst::parse(&first).unwrap();
    assert_eq!(parsed.iterations, 4096, "the account's iteration count");
    let client_final = scram.client_final(&first).unwrap();
    juliet.send_response(client_final.as_bytes()).await.unwrap();
    let SaslStep::Success(additional) = juliet.try_expect_sasl_step().await.unwrap() else {
        panic!("§9.2.4: success");
    };
    scram
        .verify_server_final(std::str::from_utf8(&additional).unwrap())
        .expect("RFC 5802 §3: the server signature verifies");
    juliet.restart_parser();

    // Steps 14–15: restart; bind and the optional session.
    juliet
        .send(stream_header(Some("localhost"), Some("juliet@localhost")))
        .await
        .unwrap();
    let h3 = juliet.expect_stream_header().await;
    assert_response_header(&h3);
    assert_ne!(h3.attr("id"), h1.attr("id"));
    assert_ne!(h3.attr("id"), h2.attr("id"));
    let f3 = juliet.expect_features().await;
    assert!(f3.child("bind", ns::BIND).is_some(), "§7.4: bind offered");
    let session = f3.child("session", ns::SESSION).expect("legacy session");
    assert!(session.child("optional", ns::SESSION).is_some());
    assert!(
        f3.child("mechanisms", ns::SASL).is_none(),
        "§6.4.6: no SASL again"
    );

    // Steps 16–17: bind `balcony`.
    juliet
        .send(
            "<iq id='yhc13a95' type='set'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>balcony</resource></bind></iq>",
        )
        .await
        .unwrap();
    let bound = juliet.expect_stanza("iq").await;
    assert_eq!(bound.attr("type"), Some("result"));
    assert_eq!(bound.attr("id"), Some("yhc13a95"), "§8.2.3: same id");
    let jid = bound
        .child("bind", ns::BIND)
        .and_then(|b| b.child("jid", ns::BIND))
        .map(Element::text);
    assert_eq!(jid.as_deref(), Some("juliet@localhost/balcony"));

    // §9.2.4 with a local contact: the message arrives stamped with the full JID (§8.1.2.1).
    juliet
        .send(
            "<message from='juliet@localhost/balcony' id='ju2ba41c' to='romeo@localhost' \
             type='chat' xml:lang='en'><body>Art thou not Romeo, and a Montague?</body></message>",
        )
        .await
        .unwrap();
    let got = romeo.expect_message().await;
    assert_eq!(got.attr("from"), Some("juliet@localhost/balcony"));
    assert_eq!(got.attr("to"), Some("romeo@localhost"));
    assert_eq!(got.attr("id"), Some("ju2ba41c"));
    assert_eq!(got.attr("type"), Some("chat"));
    assert_eq!(
        got.child("body", ns::CLIENT).map(Element::text).as_deref(),
        Some("Art thou not Romeo, and a Montague?")
    );

    // §9.2.4 as written (romeo@example.net): no s2s yet, so §10.4.3 remote-server-not-found.
    juliet
        .send(
            "<message id='ju2ba41d' to='romeo@example.net' type='chat' xml:lang='en'>\
             <body>Art thou not Romeo?</body></message>",
        )
        .await
        .unwrap();
    let err = juliet
        .expect_stanza_error("message", "remote-server-not-found")
        .await;
    assert_eq!(err.attr("id"), Some("ju2ba41d"), "§8.3.1: same id");
    assert_eq!(err.attr("from"), Some("romeo@example.net"));
    assert_eq!(err.attr("to"), Some("juliet@localhost/balcony"));

    // §9.2.5 / §4.4: closing tag answered with the server's, then the TCP connection ends.
    juliet.close().await.unwrap();
    romeo.close().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn direct_tls_with_alpn_offers_sasl_at_once_and_logs_in() {
    // XEP-0368 §3: TLS from the first byte, ALPN `xmpp-client`; then RFC 6120 §4.3 as usual.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut juliet = Client::new("juliet");
    juliet.connect_direct_tls(&server).await.unwrap();
    assert_eq!(
        juliet.alpn_protocol().as_deref(),
        Some(ALPN_XMPP_CLIENT),
        "XEP-0368 §3: the server selects xmpp-client"
    );
    let (h, features) = juliet.open_stream().await.unwrap();
    assert_response_header(&h);
    assert!(
        features.child("starttls", ns::TLS).is_none(),
        "already TLS: §5.4.3.3"
    );
    let mechs = mechanisms(&features);
    for m in [
        "SCRAM-SHA-256",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1",
        "PLAIN",
    ] {
        assert!(mechs.iter().any(|x| x == m), "{m} offered; got {mechs:?}");
    }
    assert_eq!(
        juliet
            .authenticate(Mechanism::ScramSha256, JULIET.0, JULIET.1)
            .await
            .unwrap(),
        SaslOutcome::Success
    );
    juliet.open_stream().await.unwrap();
    assert_eq!(
        juliet.bind(Some("balcony")).await.unwrap(),
        "juliet@localhost/balcony"
    );
    juliet.ping_server().await.unwrap();
    juliet.close().await.unwrap();
    server.stop().await;
}

/// Logs in with `login` and checks the session works (a ping, RFC 6120 §8.2.3 / XEP-0199).
async fn login_and_ping(login: Login<'_>) {
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut juliet = Client::new("juliet");
    let jid = juliet.login_with(&server, login).await.unwrap();
    assert_eq!(jid, "juliet@localhost/balcony");
    juliet.ping_server().await.unwrap();
    juliet.close().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn scram_sha_256_login_over_starttls_verifies_the_server_signature() {
    // RFC 7677 §3.
    login_and_ping(
        Login::new(JULIET.0, JULIET.1)
            .resource("balcony")
            .mechanism(Mechanism::ScramSha256),
    )
    .await;
}

#[tokio::test]
async fn scram_sha_1_plus_with_tls_exporter_binds_to_the_tls_channel() {
    // RFC 5802 §6 with RFC 9266 tls-exporter (TLS 1.3).
    login_and_ping(
        Login::new(JULIET.0, JULIET.1)
            .resource("balcony")
            .mechanism(Mechanism::ScramSha1Plus),
    )
    .await;
}

#[tokio::test]
async fn scram_sha_256_plus_over_direct_tls_binds_to_the_tls_channel() {
    // RFC 7677 + RFC 9266 over XEP-0368.
    login_and_ping(
        Login::new(JULIET.0, JULIET.1)
            .resource("balcony")
            .mechanism(Mechanism::ScramSha256Plus)
            .direct_tls(),
    )
    .await;
}

#[tokio::test]
async fn plain_over_tls_logs_in() {
    // RFC 4616 / RFC 6120 §13.8: PLAIN is acceptable once TLS protects it.
    login_and_ping(
        Login::new(JULIET.0, JULIET.1)
            .resource("balcony")
            .mechanism(Mechanism::Plain),
    )
    .await;
}

#[tokio::test]
async fn scram_plus_with_tls_server_end_point_binds_to_the_certificate() {
    // RFC 5929 §4.1 tls-server-end-point, advertised through XEP-0440.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut juliet = Client::new("juliet");
    juliet.connect_direct_tls(&server).await.unwrap();
    let (_, features) = juliet.open_stream().await.unwrap();
    let cb = features.child("sasl-channel-binding", ns::SASL_CB).unwrap();
    assert!(cb
        .child_elements()
        .any(|c| c.attr("type") == Some("tls-server-end-point")));
    let outcome = juliet
        .authenticate_with_binding(
            Mechanism::ScramSha256Plus,
            JULIET.0,
            JULIET.1,
            "tls-server-end-point",
        )
        .await
        .unwrap();
    assert_eq!(outcome, SaslOutcome::Success);
    juliet.open_stream().await.unwrap();
    juliet.bind(Some("balcony")).await.unwrap();
    juliet.ping_server().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn scram_plus_with_channel_binding_data_of_another_channel_is_not_authorized() {
    // RFC 5802 §6: the server checks `c=` against its own view of the channel (a MITM would
    // see different data); RFC 6120 §6.5.10 not-authorized.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut juliet = Client::new("juliet");
    juliet.connect_direct_tls(&server).await.unwrap();
    juliet.open_stream().await.unwrap();
    let mut scram = ScramClient::new(
        ScramHash::Sha1,
        JULIET.0,
        JULIET.1,
        ChannelBinding::Bind {
            name: "tls-exporter".into(),
            data: vec![0u8; 32],
        },
    );
    juliet
        .send_auth("SCRAM-SHA-1-PLUS", scram.client_first().as_bytes())
        .await
        .unwrap();
    let SaslStep::Challenge(first) = juliet.try_expect_sasl_step().await.unwrap() else {
        panic!("expected a challenge");
    };
    let fin = scram
        .client_final(std::str::from_utf8(&first).unwrap())
        .unwrap();
    juliet.send_response(fin.as_bytes()).await.unwrap();
    assert_eq!(
        juliet.try_expect_sasl_step().await.unwrap(),
        SaslStep::Failure("not-authorized".into())
    );
    server.stop().await;
}
