//! The server's reader copes with any cut of the byte stream: a whole login and chat written a
//! byte at a time or in random small pieces, and many stanzas in one write (RFC 6120 §4.2: a
//! stream is one XML document, however TCP delivers it).
#![allow(clippy::unwrap_used)]

use corvid_tests::{juliet_and_romeo, ns, Chunking, Client, Login, TestServer, JULIET, ROMEO};
use corvid_xml::Element;

/// Logs juliet in with `chunking`, sends romeo a message, and checks it arrives intact.
async fn login_and_chat(
    server: &TestServer,
    chunking: Chunking,
    mechanism: corvid_tests::Mechanism,
) {
    let mut romeo = Client::login(server, ROMEO.0, ROMEO.1, Some("orchard"))
        .await
        .unwrap();
    let mut juliet = Client::new("juliet").with_chunking(chunking);
    let jid = juliet
        .login_with(
            server,
            Login::new(JULIET.0, JULIET.1)
                .resource("balcony")
                .mechanism(mechanism),
        )
        .await
        .unwrap();
    assert_eq!(jid, "juliet@localhost/balcony");
    juliet
        .send_message(
            "romeo@localhost/orchard",
            "Good night, good night! ☾ & <parting>",
        )
        .await
        .unwrap();
    let got = romeo.expect_message().await;
    assert_eq!(got.attr("from"), Some("juliet@localhost/balcony"));
    assert_eq!(
        got.child("body", ns::CLIENT).map(Element::text).as_deref(),
        Some("Good night, good night! ☾ & <parting>")
    );
    juliet.close().await.unwrap();
}

#[tokio::test]
async fn a_login_and_a_message_written_one_byte_at_a_time_work() {
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    login_and_chat(
        &server,
        Chunking::Bytes(1),
        corvid_tests::Mechanism::ScramSha1,
    )
    .await;
}

#[tokio::test]
async fn a_login_and_a_message_written_in_random_small_pieces_work() {
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    for seed in 1..=3 {
        login_and_chat(
            &server,
            Chunking::Random { max: 7, seed },
            corvid_tests::Mechanism::ScramSha256,
        )
        .await;
    }
}

#[tokio::test]
async fn several_stanzas_in_one_write_are_all_handled_in_order() {
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut juliet = Client::login(&server, JULIET.0, JULIET.1, Some("balcony"))
        .await
        .unwrap();
    let mut romeo = Client::login(&server, ROMEO.0, ROMEO.1, Some("orchard"))
        .await
        .unwrap();
    juliet
        .send(
            "<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>\
             <message to='romeo@localhost/orchard' id='m1'><body>one</body></message> \n\
             <iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>\
             <message to='romeo@localhost/orchard' id='m2'><body>two</body></message>\
             <iq type='get' id='p3' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await
        .unwrap();
    for id in ["p1", "p2", "p3"] {
        let r = juliet.expect_stanza("iq").await;
        assert_eq!(r.attr("id"), Some(id));
        assert_eq!(r.attr("type"), Some("result"));
    }
    for (id, body) in [("m1", "one"), ("m2", "two")] {
        let m = romeo.expect_message().await;
        assert_eq!(m.attr("id"), Some(id), "RFC 6120 §10.1: order is kept");
        assert_eq!(
            m.child("body", ns::CLIENT).map(Element::text).as_deref(),
            Some(body)
        );
    }
}

#[tokio::test]
async fn the_restart_header_pipelined_with_the_bind_request_works() {
    // RFC 6120 §6.4.6: after <success/> the client may send the new header at once; the bytes
    // that follow it belong to the new stream.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut juliet = Client::new("juliet");
    juliet.connect(&server).await.unwrap();
    juliet.open_stream().await.unwrap();
    juliet.starttls().await.unwrap();
    juliet.open_stream().await.unwrap();
    juliet
        .authenticate(corvid_tests::Mechanism::Plain, JULIET.0, JULIET.1)
        .await
        .unwrap();
    juliet
        .send(format!(
            "{}<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>balcony</resource></bind></iq>",
            corvid_tests::stream_header(Some("localhost"), None)
        ))
        .await
        .unwrap();
    juliet.expect_stream_header().await;
    juliet.expect_features().await;
    let bound = juliet.expect_stanza("iq").await;
    assert_eq!(bound.attr("type"), Some("result"));
    assert_eq!(bound.attr("id"), Some("b1"));
    juliet.ping_server().await.unwrap();
}
