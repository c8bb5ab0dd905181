//! The Corvid test kit: a server builder and named XMPP personas that speak raw XML over real
//! TCP and TLS, for black-box scenarios written in XMPP terms.
//!
//! # Layout
//! - `server.rs`: [`TestServer`] / [`TestServerBuilder`]: an in-process node on loopback ports
//!   with a temporary data folder, settings tweaks and test accounts.
//! - `client.rs`: [`Client`]: a persona (`Client::new("alice")`) that connects (STARTTLS or
//!   direct TLS), writes bytes (whole or cut into pieces), reads [`Received`] events through
//!   `corvid_xml::Parser`, and runs negotiation steps: STARTTLS, SASL, bind, or all of RFC 6120
//!   §9 at once with [`Client::login`].
//! - `cluster.rs`: [`cluster::Cluster`]: real `corvid serve` processes (combined, registry or
//!   edge nodes) on loopback sharing one Redis, with kill -9, restart and logins that wait for a
//!   quorum, for multi-node scenarios.
//! - [`scram`]: the SCRAM-SHA-1/-256(-PLUS) client of `corvid-loadgen` (re-exported), written
//!   independently of the server's, which verifies the server signature.
//! - `tls.rs`: a TLS connector (the load generator's) that accepts the server's self-signed
//!   certificate.
//! - this file: namespaces and small helpers shared by scenarios.
//!
//! ```text
//!  scenario ──▶ Client ──bytes (TCP / TLS)──▶ TestServer (corvid::server::Server on 127.0.0.1:0)
//!     ▲           │
//!     └─ expect_* ◀── corvid_xml::Parser ◀── bytes
//! ```
//!
//! The scenarios live in `tests/*.rs`; each test names the behaviour it checks as a sentence
//! and cites the RFC section it holds the server to.

mod client;
pub mod cluster;
pub mod http;
pub use corvid_loadgen::scram;
mod server;
mod tls;

use corvid_xml::{escape_attr, Element};

pub use client::{
    Chunking, Client, Login, Mechanism, Received, SaslOutcome, SaslStep, DEFAULT_TIMEOUT,
};
pub use corvid_xml::{StreamEvent, StreamHeader};
pub use server::{Storage, TestServer, TestServerBuilder, DOMAIN, TEST_ITERATIONS};
pub use tls::ALPN_XMPP_CLIENT;

/// The reference account of RFC 6120 §9.
pub const JULIET: (&str, &str) = ("juliet", "r0m30myr0m30");
/// A second local account to chat with.
pub const ROMEO: (&str, &str) = ("romeo", "o-juliet-o");

/// Namespaces the scenarios check.
pub mod ns {
    /// Client stream content (RFC 6120 §4.8.3).
    pub const CLIENT: &str = "jabber:client";
    /// The stream element and `<stream:features/>`, `<stream:error/>` (RFC 6120 §4.8.1).
    pub const STREAM: &str = "http://etherx.jabber.org/streams";
    /// Stream error conditions (RFC 6120 §4.9.3).
    pub const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    /// Stanza error conditions (RFC 6120 §8.3.3).
    pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    /// STARTTLS (RFC 6120 §5).
    pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
    /// SASL (RFC 6120 §6).
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    /// Resource binding (RFC 6120 §7).
    pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    /// Legacy session (RFC 3921 §3).
    pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
    /// SASL channel-binding types (XEP-0440).
    pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
    /// Ping (XEP-0199).
    pub const PING: &str = "urn:xmpp:ping";
    /// Service discovery info (XEP-0030).
    pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
    /// Service discovery items (XEP-0030).
    pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
    /// Software version (XEP-0092).
    pub const VERSION: &str = "jabber:iq:version";
    /// The `xml:` prefix.
    pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
}

/// An initial stream header as RFC 6120 §9.1.1 writes it, preceded by an XML declaration.
pub fn stream_header(to: Option<&str>, from: Option<&str>) -> String {
    let mut s = String::from("<?xml version='1.0'?><stream:stream");
    if let Some(from) = from {
        s.push_str(" from='");
        escape_attr(from, &mut s);
        s.push('\'');
    }
    if let Some(to) = to {
        s.push_str(" to='");
        escape_attr(to, &mut s);
        s.push('\'');
    }
    s.push_str(
        " version='1.0' xml:lang='en' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    s
}

/// The condition of a `<stream:error/>` (RFC 6120 §4.9.2), if it has one.
pub fn stream_error_condition(error: &Element) -> Option<String> {
    error
        .child_elements()
        .find(|c| c.ns == ns::STREAMS && c.name != "text")
        .map(|c| c.name.to_string())
}

/// The defined condition of a stanza of type `error` (RFC 6120 §8.3.2), if it has one.
pub fn stanza_error_condition(stanza: &Element) -> Option<String> {
    stanza
        .child("error", ns::CLIENT)?
        .child_elements()
        .find(|c| c.ns == ns::STANZAS && c.name != "text")
        .map(|c| c.name.to_string())
}

/// A server with [`JULIET`] and [`ROMEO`], and optional settings tweaks.
pub async fn juliet_and_romeo(
    tweak: impl FnOnce(&mut corvid_settings::Settings) + Send + 'static,
) -> anyhow::Result<TestServer> {
    TestServer::builder()
        .user(JULIET.0, JULIET.1)
        .user(ROMEO.0, ROMEO.1)
        .settings(tweak)
        .start()
        .await
}

/// Proves the server still serves: the first two test accounts log in afresh (resources
/// `probe-a`, `probe-b`) and one sends the other a message that must arrive intact.
pub async fn assert_still_serving(server: &TestServer) -> anyhow::Result<()> {
    let [(a, pa), (b, pb), ..] = server.users() else {
        anyhow::bail!("assert_still_serving needs two test accounts");
    };
    let mut first = Client::login(server, a, pa, Some("probe-a")).await?;
    let mut second = Client::login(server, b, pb, Some("probe-b")).await?;
    let to = format!("{b}@{DOMAIN}/probe-b");
    first.send_message(&to, "still there?").await?;
    let got = second.try_expect_element("message", ns::CLIENT).await?;
    let body = got.child("body", ns::CLIENT).map(Element::text);
    if body.as_deref() != Some("still there?") {
        anyhow::bail!("probe message arrived changed: {}", got.to_xml(ns::CLIENT));
    }
    first.close().await?;
    second.close().await?;
    Ok(())
}

/// A loopback TCP port for a server process this test starts itself. It lies below Linux's
/// ephemeral range (32768–60999), so no outgoing connection can take it between now and the
/// server binding it, and it is different on every call within this test binary.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = 20_000 + std::process::id() % 8_000;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (start - 20_000 + n) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
}
