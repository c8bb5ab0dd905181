//! Stream errors (RFC 6120 §4.9): each fault gets its condition, `</stream:stream>` and the end
//! of the connection; and the server goes on serving everyone else.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::{
    assert_still_serving, juliet_and_romeo, stream_header, Client, TestServer, JULIET,
};

/// A server with small limits, so that tests stay fast.
async fn server() -> TestServer {
    juliet_and_romeo(|s| {
        s.limits.max_stanza_bytes = 20_000;
        s.limits.max_depth = 8;
        s.limits.max_attributes = 8;
    })
    .await
    .unwrap()
}

/// Connects to the STARTTLS port and sends `bytes` before anything else.
async fn raw(server: &TestServer, bytes: &str) -> Client {
    let mut c = Client::new("mallory");
    c.connect(server).await.unwrap();
    c.send(bytes).await.unwrap();
    c
}

async fn bound_juliet(server: &TestServer) -> Client {
    Client::login(server, JULIET.0, JULIET.1, Some("balcony"))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_header_for_another_domain_is_host_unknown() {
    // RFC 6120 §4.9.3.6.
    let server = server().await;
    let mut c = raw(&server, &stream_header(Some("example.org"), None)).await;
    c.expect_stream_error("host-unknown").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_wrong_default_namespace_is_invalid_namespace() {
    // RFC 6120 §4.9.3.10 / §4.8.2: jabber:server on the client port.
    let server = server().await;
    let mut c = raw(
        &server,
        "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    c.expect_stream_error("invalid-namespace").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_wrong_stream_namespace_is_invalid_namespace() {
    // RFC 6120 §4.9.3.10: the stream element must be in http://etherx.jabber.org/streams.
    let server = server().await;
    let mut c = raw(
        &server,
        "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' \
         xmlns:stream='urn:example:wrong'>",
    )
    .await;
    c.expect_stream_error("invalid-namespace").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_header_without_version_is_unsupported_version() {
    // RFC 6120 §4.7.5 / §4.9.3.25: no version means pre-1.0, which we do not speak.
    let server = server().await;
    let mut c = raw(
        &server,
        "<stream:stream to='localhost' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    c.expect_stream_error("unsupported-version").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn garbage_bytes_are_not_well_formed() {
    // RFC 6120 §4.9.3.13.
    let server = server().await;
    let mut c = raw(&server, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    c.expect_stream_error("not-well-formed").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_mismatched_end_tag_is_not_well_formed() {
    // RFC 6120 §4.9.3.13 / §11.4.
    let server = server().await;
    let mut c = bound_juliet(&server).await;
    c.send("<message to='romeo@localhost'><body>hi</bodyx></message>")
        .await
        .unwrap();
    c.expect_stream_error("not-well-formed").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_dtd_with_billion_laughs_entities_is_restricted_xml() {
    // RFC 6120 §11.1 / §4.9.3.18: no DTDs, hence no entity expansion.
    let server = server().await;
    let mut c = raw(
        &server,
        "<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY lol 'lol'>\
         <!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\
         <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>\
         <stream:stream to='localhost' version='1.0' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    c.expect_stream_error("restricted-xml").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn an_undeclared_entity_reference_in_a_stanza_is_restricted_xml() {
    // RFC 6120 §11.1: only the five predefined entities may be referenced.
    let server = server().await;
    let mut c = bound_juliet(&server).await;
    c.send("<message to='romeo@localhost'><body>&lol9;</body></message>")
        .await
        .unwrap();
    c.expect_stream_error("restricted-xml").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_comment_is_restricted_xml() {
    // RFC 6120 §11.1.
    let server = server().await;
    let mut c = raw(&server, &stream_header(Some("localhost"), None)).await;
    c.expect_stream_header().await;
    c.expect_features().await;
    c.send("<!-- a comment -->").await.unwrap();
    c.expect_stream_error("restricted-xml").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_processing_instruction_is_restricted_xml() {
    // RFC 6120 §11.1.
    let server = server().await;
    let mut c = raw(&server, &stream_header(Some("localhost"), None)).await;
    c.expect_stream_header().await;
    c.expect_features().await;
    c.send("<?php echo 1; ?>").await.unwrap();
    c.expect_stream_error("restricted-xml").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn an_oversize_stanza_is_a_policy_violation() {
    // RFC 6120 §13.12 (stanza size limit) / §4.9.3.14. The limit here is 20000 bytes.
    let server = server().await;
    let mut c = bound_juliet(&server).await;
    let body = "x".repeat(20_500);
    c.send(format!(
        "<message to='romeo@localhost'><body>{body}</body></message>"
    ))
    .await
    .unwrap();
    c.expect_stream_error("policy-violation").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_stanza_just_under_the_size_limit_is_delivered() {
    // RFC 6120 §13.12: at least 10000 bytes must be accepted; here up to 20000.
    let server = server().await;
    let mut juliet = bound_juliet(&server).await;
    let mut romeo = Client::login(&server, "romeo", corvid_tests::ROMEO.1, Some("orchard"))
        .await
        .unwrap();
    let body = "x".repeat(19_000);
    juliet
        .send_message("romeo@localhost/orchard", &body)
        .await
        .unwrap();
    let got = romeo.expect_message().await;
    assert_eq!(
        got.child("body", corvid_tests::ns::CLIENT)
            .map(|b| b.text().len()),
        Some(19_000)
    );
}

#[tokio::test]
async fn deep_nesting_is_a_policy_violation() {
    // RFC 6120 §4.9.3.14 with the configured depth limit (8 here).
    let server = server().await;
    let mut c = bound_juliet(&server).await;
    let open: String = (0..20).map(|i| format!("<x{i}>")).collect();
    let close: String = (0..20).rev().map(|i| format!("</x{i}>")).collect();
    c.send(format!(
        "<message to='romeo@localhost'><body>hi</body><deep xmlns='urn:example'>{open}{close}</deep></message>"
    ))
    .await
    .unwrap();
    c.expect_stream_error("policy-violation").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn too_many_attributes_is_a_policy_violation() {
    // RFC 6120 §4.9.3.14 with the configured attribute limit (8 here).
    let server = server().await;
    let mut c = bound_juliet(&server).await;
    let attrs: String = (0..30).map(|i| format!(" a{i}='{i}'")).collect();
    c.send(format!(
        "<message to='romeo@localhost'{attrs}><body>hi</body></message>"
    ))
    .await
    .unwrap();
    c.expect_stream_error("policy-violation").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_stanza_before_authentication_is_not_authorized() {
    // RFC 6120 §4.9.3.12: stanzas only after SASL.
    let server = server().await;
    let mut c = Client::new("mallory");
    c.connect(&server).await.unwrap();
    c.open_stream().await.unwrap();
    c.starttls().await.unwrap();
    c.open_stream().await.unwrap();
    c.send("<message to='romeo@localhost'><body>hi</body></message>")
        .await
        .unwrap();
    c.expect_stream_error("not-authorized").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_stanza_before_binding_is_not_authorized() {
    // RFC 6120 §7.1: nothing but binding until a resource is bound.
    let server = server().await;
    let mut c = Client::new("juliet");
    c.connect(&server).await.unwrap();
    c.open_stream().await.unwrap();
    c.starttls().await.unwrap();
    c.open_stream().await.unwrap();
    c.authenticate(corvid_tests::Mechanism::ScramSha1, JULIET.0, JULIET.1)
        .await
        .unwrap();
    c.open_stream().await.unwrap();
    c.send("<message to='romeo@localhost'><body>hi</body></message>")
        .await
        .unwrap();
    c.expect_stream_error("not-authorized").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn an_unknown_top_level_element_after_bind_is_unsupported_stanza_type() {
    // RFC 6120 §4.9.3.24.
    let server = server().await;
    let mut c = bound_juliet(&server).await;
    c.send("<foo xmlns='jabber:client'/>").await.unwrap();
    c.expect_stream_error("unsupported-stanza-type").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_stanza_with_a_foreign_from_is_invalid_from() {
    // RFC 6120 §4.9.3.9 / §8.1.2.1.
    let server = server().await;
    let mut c = bound_juliet(&server).await;
    c.send(
        "<message from='romeo@localhost/orchard' to='juliet@localhost'><body>hi</body></message>",
    )
    .await
    .unwrap();
    c.expect_stream_error("invalid-from").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_silent_negotiation_gets_connection_timeout() {
    // RFC 6120 §4.9.3.4 with negotiation_secs = 1.
    let server = juliet_and_romeo(|s| s.timeouts.negotiation_secs = 1)
        .await
        .unwrap();
    let mut c = Client::new("sloth").with_timeout(Duration::from_secs(3));
    c.connect(&server).await.unwrap();
    c.open_stream().await.unwrap();
    c.expect_stream_error("connection-timeout").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_bound_session_times_out_only_once_it_falls_silent() {
    // RFC 6120 §4.9.3.4 with idle_secs = 1. Whitespace keepalives (§4.6.1) and stanzas keep
    // the session open well past the timeout; once it falls silent, connection-timeout.
    let server = juliet_and_romeo(|s| s.timeouts.idle_secs = 1)
        .await
        .unwrap();
    let mut c = bound_juliet(&server)
        .await
        .with_timeout(Duration::from_secs(4));
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if i % 2 == 0 {
            c.send(" ").await.unwrap();
        } else {
            c.ping_server().await.unwrap();
        }
    }
    // Three seconds of traffic on a one-second timeout, and the session still answers.
    c.ping_server().await.unwrap();
    let silent = tokio::time::Instant::now();
    c.expect_stream_error("connection-timeout").await;
    let waited = silent.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "timed out {waited:?} after the last stanza"
    );
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn a_connection_that_never_sends_a_header_gets_connection_timeout() {
    // RFC 6120 §4.9.3.4; §4.9.1.2: the server opens a stream to carry the error.
    let server = juliet_and_romeo(|s| s.timeouts.negotiation_secs = 1)
        .await
        .unwrap();
    let mut c = Client::new("sloth").with_timeout(Duration::from_secs(3));
    c.connect(&server).await.unwrap();
    c.expect_stream_error("connection-timeout").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn server_shutdown_tells_sessions_system_shutdown() {
    // RFC 6120 §4.9.3.20.
    let server = server().await;
    let mut c = bound_juliet(&server).await;
    server.stop().await;
    c.expect_stream_error("system-shutdown").await;
}
