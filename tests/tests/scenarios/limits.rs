//! Limits that protect the server (ARCHITECTURE: "nothing a client sends can … stall other
//! sessions"): unauthenticated connections per address, and the read rate.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use corvid_tests::{juliet_and_romeo, ns, Client, Received, StreamEvent, JULIET, ROMEO};
use corvid_xml::Element;
use tokio::time::Instant;

#[tokio::test]
async fn unauthenticated_connections_beyond_the_per_address_limit_are_refused_while_a_session_keeps_working(
) {
    // RFC 6120 §4.9.3.17 resource-constraint for the connection over the limit (5 here).
    let server = juliet_and_romeo(|s| s.c2s.max_unauthenticated_per_ip = 5)
        .await
        .unwrap();
    // Authenticated sessions do not count against the limit.
    let mut juliet = Client::login(&server, JULIET.0, JULIET.1, Some("balcony"))
        .await
        .unwrap();
    let mut idle = Vec::new();
    for i in 0..5 {
        let mut c = Client::new(&format!("idle-{i}"));
        c.connect(&server).await.unwrap();
        // A header round trip proves the server took this connection in.
        c.open_stream().await.unwrap();
        idle.push(c);
    }
    let mut sixth = Client::new("sixth");
    sixth.connect(&server).await.unwrap();
    sixth.expect_stream_error("resource-constraint").await;

    // The bound session is unaffected.
    juliet.ping_server().await.unwrap();
    // Freeing a slot lets a new connection in.
    idle.pop().unwrap().close().await.ok();
    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut romeo = Client::login(&server, ROMEO.0, ROMEO.1, Some("orchard"))
        .await
        .unwrap();
    juliet
        .send_message("romeo@localhost/orchard", "still here")
        .await
        .unwrap();
    romeo.expect_message().await;
}

#[tokio::test]
async fn the_read_rate_limit_slows_a_flood_but_delivers_a_normal_session_intact() {
    // 20 kB/s with a 4 kB burst: 20 messages of 1 kB arrive, all of them and in order, but
    // not faster than the bucket allows (so the limit is really in force).
    let server = juliet_and_romeo(|s| {
        s.c2s.read_rate_bytes_per_sec = 20_000;
        s.c2s.read_burst_bytes = 4_000;
    })
    .await
    .unwrap();
    let mut juliet = Client::login(&server, JULIET.0, JULIET.1, Some("balcony"))
        .await
        .unwrap();
    let mut romeo = Client::login(&server, ROMEO.0, ROMEO.1, Some("orchard"))
        .await
        .unwrap();
    let body = "r".repeat(1000);
    let start = Instant::now();
    let mut batch = String::new();
    for i in 0..20 {
        batch.push_str(&format!(
            "<message to='romeo@localhost/orchard' id='f{i}'><body>{body}</body></message>"
        ));
    }
    juliet.send(batch).await.unwrap();
    for i in 0..20 {
        let m = romeo.expect_message().await;
        assert_eq!(m.attr("id"), Some(format!("f{i}").as_str()));
        assert_eq!(
            m.child("body", ns::CLIENT)
                .map(Element::text)
                .map(|b| b.len()),
            Some(1000)
        );
    }
    let elapsed = start.elapsed();
    // ≥ 20 kB read with at most 4 kB of burst at 20 kB/s: at least 0.8 s; allow slack.
    assert!(
        elapsed >= Duration::from_millis(600),
        "20 kB went through in {elapsed:?}: no read rate limit"
    );
    juliet.ping_server().await.unwrap();
    // The stream is intact: nothing else arrived in between.
    match romeo.next_within(Duration::from_millis(100)).await {
        Received::TimedOut => {}
        Received::Event(StreamEvent::Element(e)) => panic!("unexpected {}", e.to_xml(ns::CLIENT)),
        other => panic!("unexpected {other}"),
    }
}
