//! The failure branches of stream negotiation: STARTTLS (RFC 6120 §5), SASL (§6) and resource
//! binding (§7). After each, the server must keep serving others.
#![allow(clippy::unwrap_used)]

use corvid_tests::scram::{ChannelBinding, ScramClient, ScramHash, ServerFirst};
use corvid_tests::{
    assert_still_serving, juliet_and_romeo, ns, Client, Mechanism, SaslOutcome, SaslStep,
    TestServer, JULIET, ROMEO,
};

/// A client with TLS up and SASL features read, on the STARTTLS port.
async fn at_sasl(server: &TestServer, name: &str) -> Client {
    let mut c = Client::new(name);
    c.connect(server).await.unwrap();
    c.open_stream().await.unwrap();
    c.starttls().await.unwrap();
    c.open_stream().await.unwrap();
    c
}

/// Runs the first half of SCRAM-SHA-1 for `user` and returns the server-first-message.
async fn server_first_for(c: &mut Client, user: &str) -> (ScramClient, String) {
    let scram = ScramClient::new(
        ScramHash::Sha1,
        user,
        "whatever",
        ChannelBinding::Unsupported,
    );
    c.send_auth("SCRAM-SHA-1", scram.client_first().as_bytes())
        .await
        .unwrap();
    match c.try_expect_sasl_step().await.unwrap() {
        SaslStep::Challenge(first) => (scram, String::from_utf8(first).unwrap()),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

#[tokio::test]
async fn auth_without_starttls_when_tls_is_required_is_a_policy_violation() {
    // RFC 6120 §5.3.1: with <required/>, nothing but STARTTLS is acceptable; §4.9.3.14.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut c = Client::new("mallory");
    c.connect(&server).await.unwrap();
    c.open_stream().await.unwrap();
    c.send_auth("PLAIN", b"\0juliet\0r0m30myr0m30")
        .await
        .unwrap();
    c.expect_stream_error("policy-violation").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn starttls_followed_by_a_non_tls_byte_stream_closes_the_tcp_connection() {
    // RFC 6120 §5.4.3.2 (step 7 alt.): the TLS negotiation fails, the server closes TCP.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut c = Client::new("mallory");
    c.connect(&server).await.unwrap();
    c.open_stream().await.unwrap();
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await
        .unwrap();
    c.expect_element("proceed", ns::TLS).await;
    c.send(
        "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await
    .unwrap();
    let got = c.try_read_until_closed().await.unwrap();
    assert!(
        !String::from_utf8_lossy(&got).contains("<stream:stream"),
        "no plaintext stream after <proceed/>: {got:?}"
    );
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn bytes_pipelined_after_starttls_are_not_processed_and_the_connection_closes() {
    // RFC 6120 §5.4.3.3: the stream restarts over TLS, so nothing sent in the clear after
    // <starttls/> may be taken as protected (the STARTTLS command-injection attack, CVE-2011-0411).
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut c = Client::new("mallory");
    c.connect(&server).await.unwrap();
    c.open_stream().await.unwrap();
    c.send(
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
         <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
    )
    .await
    .unwrap();
    let got = c.try_read_until_closed().await.unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(
        !text.contains("success"),
        "injected auth was processed: {text}"
    );
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn wrong_password_gets_not_authorized_and_can_retry() {
    // RFC 6120 §6.5.10 not-authorized; §6.4.5 the client may retry.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut c = at_sasl(&server, "juliet").await;
    let outcome = c
        .authenticate(Mechanism::ScramSha1, JULIET.0, "wrong-password")
        .await
        .unwrap();
    assert_eq!(outcome, SaslOutcome::Failure("not-authorized".into()));
    let outcome = c
        .authenticate(Mechanism::ScramSha1, JULIET.0, JULIET.1)
        .await
        .unwrap();
    assert_eq!(outcome, SaslOutcome::Success);
    c.open_stream().await.unwrap();
    assert_eq!(
        c.bind(Some("balcony")).await.unwrap(),
        "juliet@localhost/balcony"
    );
    c.ping_server().await.unwrap();
}

#[tokio::test]
async fn wrong_plain_password_gets_not_authorized() {
    // RFC 4616 with RFC 6120 §6.5.10.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut c = at_sasl(&server, "juliet").await;
    let outcome = c
        .authenticate(Mechanism::Plain, JULIET.0, "wrong-password")
        .await
        .unwrap();
    assert_eq!(outcome, SaslOutcome::Failure("not-authorized".into()));
}

#[tokio::test]
async fn unknown_user_gets_the_same_challenge_shape_and_the_same_failure() {
    // RFC 6120 §6.5.10: not-authorized must not reveal whether the account exists; so the
    // server-first-message of an unknown user looks like a real one (same iteration count,
    // salt and nonce lengths).
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut known = at_sasl(&server, "juliet").await;
    let mut unknown = at_sasl(&server, "stranger").await;
    let (_, real) = server_first_for(&mut known, JULIET.0).await;
    let (mut scram, fake) = server_first_for(&mut unknown, "nobody").await;
    let (real, fake_parsed) = (
        ServerFirst::parse(&real).unwrap(),
        ServerFirst::parse(&fake).unwrap(),
    );
    assert_eq!(fake_parsed.iterations, real.iterations);
    assert_eq!(fake_parsed.salt.len(), real.salt.len());
    assert_eq!(fake_parsed.nonce.len(), real.nonce.len());
    let fin = scram.client_final(&fake).unwrap();
    unknown.send_response(fin.as_bytes()).await.unwrap();
    assert_eq!(
        unknown.try_expect_sasl_step().await.unwrap(),
        SaslStep::Failure("not-authorized".into())
    );
    // PLAIN too.
    let outcome = unknown
        .authenticate(Mechanism::Plain, "nobody", "whatever")
        .await
        .unwrap();
    assert_eq!(outcome, SaslOutcome::Failure("not-authorized".into()));
}

#[tokio::test]
async fn too_many_failed_attempts_end_the_stream_with_policy_violation() {
    // RFC 6120 §6.4.5: a configurable number of retries, then the stream is closed.
    let server = juliet_and_romeo(|s| s.limits.max_auth_attempts = 3)
        .await
        .unwrap();
    let mut c = at_sasl(&server, "mallory").await;
    for _ in 0..2 {
        let outcome = c
            .authenticate(Mechanism::ScramSha1, JULIET.0, "guess")
            .await
            .unwrap();
        assert_eq!(outcome, SaslOutcome::Failure("not-authorized".into()));
    }
    let outcome = c
        .authenticate(Mechanism::ScramSha1, JULIET.0, "guess")
        .await
        .unwrap();
    assert_eq!(outcome, SaslOutcome::Failure("not-authorized".into()));
    c.expect_stream_error("policy-violation").await;
    assert_still_serving(&server).await.unwrap();
}

#[tokio::test]
async fn an_unknown_mechanism_is_invalid_mechanism() {
    // RFC 6120 §6.5.7.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut c = at_sasl(&server, "juliet").await;
    c.send_auth("X-MAGIC", b"").await.unwrap();
    assert_eq!(
        c.try_expect_sasl_step().await.unwrap(),
        SaslStep::Failure("invalid-mechanism".into())
    );
    // The stream stays usable.
    assert_eq!(
        c.authenticate(Mechanism::ScramSha1, JULIET.0, JULIET.1)
            .await
            .unwrap(),
        SaslOutcome::Success
    );
}

#[tokio::test]
async fn plain_before_tls_is_invalid_mechanism_when_starttls_is_optional() {
    // RFC 6120 §13.8 / §6.5.7: PLAIN is not offered without TLS, so it is invalid-mechanism.
    let server = juliet_and_romeo(|s| s.c2s.require_starttls = false)
        .await
        .unwrap();
    let mut c = Client::new("juliet");
    c.connect(&server).await.unwrap();
    let (_, features) = c.open_stream().await.unwrap();
    let starttls = features.child("starttls", ns::TLS).unwrap();
    assert!(starttls.child("required", ns::TLS).is_none());
    let offered: Vec<String> = features
        .child("mechanisms", ns::SASL)
        .unwrap()
        .child_elements()
        .map(|m| m.text())
        .collect();
    assert!(!offered.iter().any(|m| m == "PLAIN"), "got {offered:?}");
    assert!(
        !offered.iter().any(|m| m.ends_with("-PLUS")),
        "got {offered:?}"
    );
    c.send_auth("PLAIN", b"\0juliet\0r0m30myr0m30")
        .await
        .unwrap();
    assert_eq!(
        c.try_expect_sasl_step().await.unwrap(),
        SaslStep::Failure("invalid-mechanism".into())
    );
}

#[tokio::test]
async fn bad_base64_is_incorrect_encoding() {
    // RFC 6120 §6.5.2.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut c = at_sasl(&server, "juliet").await;
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>!!not*base64!!</auth>")
        .await
        .unwrap();
    assert_eq!(
        c.try_expect_sasl_step().await.unwrap(),
        SaslStep::Failure("incorrect-encoding".into())
    );
}

#[tokio::test]
async fn abort_mid_exchange_is_aborted_and_a_new_attempt_succeeds() {
    // RFC 6120 §6.4.5 / §6.5.1.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut c = at_sasl(&server, "juliet").await;
    let _ = server_first_for(&mut c, JULIET.0).await;
    c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await
        .unwrap();
    assert_eq!(
        c.try_expect_sasl_step().await.unwrap(),
        SaslStep::Failure("aborted".into())
    );
    assert_eq!(
        c.authenticate(Mechanism::ScramSha256, JULIET.0, JULIET.1)
            .await
            .unwrap(),
        SaslOutcome::Success
    );
}

#[tokio::test]
async fn a_second_login_binding_the_same_resource_replaces_the_first_with_conflict() {
    // RFC 6120 §7.7.2.2: the server may terminate the existing session with a `conflict`
    // stream error; the new session then owns the full JID.
    let server = juliet_and_romeo(|_| {}).await.unwrap();
    let mut first = Client::login(&server, JULIET.0, JULIET.1, Some("balcony"))
        .await
        .unwrap();
    let mut second = Client::login(&server, JULIET.0, JULIET.1, Some("balcony"))
        .await
        .unwrap();
    assert_eq!(second.jid(), Some("juliet@localhost/balcony"));
    first.expect_stream_error("conflict").await;

    let mut romeo = Client::login(&server, ROMEO.0, ROMEO.1, Some("orchard"))
        .await
        .unwrap();
    romeo
        .send_message("juliet@localhost/balcony", "Did my heart love till now?")
        .await
        .unwrap();
    let got = second.expect_message().await;
    assert_eq!(got.attr("from"), Some("romeo@localhost/orchard"));
    assert_eq!(
        got.child("body", ns::CLIENT).map(|b| b.text()).as_deref(),
        Some("Did my heart love till now?")
    );
    second.ping_server().await.unwrap();
}
