//! The forwarder against a scripted peer: report mapping, deadlines, the in-flight window and
//! reopening streams. The peer is a real tonic server on a loopback socket.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corvid_cluster::{ForwardConfig, GrpcForwarder};
use corvid_core::{NodeId, RemoteDelivery, RemoteError, Route, SessionId};
use corvid_proto::v1;
use corvid_proto::v1::router_server::{Router as RouterRpc, RouterServer};
use corvid_stanza::{ns, Kind, Stanza};
use corvid_xml::Element;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// What the scripted peer answers to an envelope, by its body text; `None`: no answer at all.
type Script = fn(&str) -> Option<i32>;

/// A peer that answers envelopes as scripted and records what it saw.
#[derive(Clone)]
struct Peer {
    script: Script,
    streams: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<(u64, String)>>>,
}

#[tonic::async_trait]
impl RouterRpc for Peer {
    type DeliverStream = ReceiverStream<Result<v1::DeliveryReport, Status>>;

    async fn deliver(
        &self,
        request: Request<Streaming<v1::Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, Status> {
        self.streams.fetch_add(1, Ordering::SeqCst);
        let mut envelopes = request.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        let peer = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(e)) = envelopes.message().await {
                let text = String::from_utf8_lossy(&e.stanza).into_owned();
                let body = text
                    .split("<body>")
                    .nth(1)
                    .and_then(|b| b.split("</body>").next())
                    .unwrap_or_default()
                    .to_owned();
                peer.seen.lock().unwrap().push((e.seq, body.clone()));
                if let Some(status) = (peer.script)(&body) {
                    let report = v1::DeliveryReport { seq: e.seq, status };
                    if tx.send(Ok(report)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn start(script: Script, config: ForwardConfig) -> (Arc<GrpcForwarder>, Peer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = Peer {
        script,
        streams: Arc::default(),
        seen: Arc::default(),
    };
    let service = RouterServer::new(peer.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let forwarder = GrpcForwarder::new(HashMap::from([(NodeId(2), addr.to_string())]), config);
    (forwarder, peer)
}

fn config() -> ForwardConfig {
    ForwardConfig {
        timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        window: 4,
        reconnect_backoff: Duration::from_millis(50),
        keepalive: Duration::from_secs(5),
    }
}

fn route() -> Route {
    Route {
        jid: "bob@example.org/laptop".parse().unwrap(),
        node: NodeId(2),
        session: SessionId(7),
        priority: 0,
        available: true,
    }
}

fn chat(body: &str) -> Stanza {
    let el = Element::new("message", ns::CLIENT)
        .with_attr("from", "alice@example.org/phone")
        .with_attr("to", "bob@example.org/laptop")
        .with_child(Element::new("body", ns::CLIENT).with_text(body));
    Stanza::from_trusted(Kind::Message, el)
}

fn by_body(body: &str) -> Option<i32> {
    match body {
        "delivered" => Some(v1::DeliveryStatus::Delivered as i32),
        "gone" => Some(v1::DeliveryStatus::RecipientGone as i32),
        "full" => Some(v1::DeliveryStatus::QueueFull as i32),
        "invalid" => Some(v1::DeliveryStatus::Invalid as i32),
        "unknown" => Some(99),
        _ => None,
    }
}

#[tokio::test]
async fn each_report_becomes_the_documented_outcome() {
    let (forwarder, peer) = start(by_body, config()).await;
    let cases = [
        ("delivered", Ok(())),
        ("gone", Err(RemoteError::Gone)),
        ("full", Err(RemoteError::Unavailable)),
        ("invalid", Err(RemoteError::Unavailable)),
        ("unknown", Err(RemoteError::Unavailable)),
        ("delivered", Ok(())),
    ];
    for (body, expected) in cases {
        assert_eq!(
            forwarder.deliver(&route(), &chat(body)).await,
            expected,
            "{body}"
        );
    }
    // One stream for all of them, numbered in order.
    assert_eq!(peer.streams.load(Ordering::SeqCst), 1);
    let seqs: Vec<u64> = peer.seen.lock().unwrap().iter().map(|s| s.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn an_unknown_node_is_unavailable() {
    let (forwarder, _peer) = start(by_body, config()).await;
    let to_node_9 = Route {
        node: NodeId(9),
        ..route()
    };
    assert_eq!(
        forwarder.deliver(&to_node_9, &chat("delivered")).await,
        Err(RemoteError::Unavailable)
    );
}

#[tokio::test]
async fn a_peer_that_never_answers_is_unavailable_at_the_deadline_and_the_stream_is_reopened() {
    let config = config();
    let (forwarder, peer) = start(by_body, config).await;
    let started = Instant::now();
    assert_eq!(
        forwarder.deliver(&route(), &chat("silence")).await,
        Err(RemoteError::Unavailable)
    );
    let took = started.elapsed();
    assert!(took >= config.timeout, "gave up early: {took:?}");
    assert!(took < config.timeout * 2, "gave up late: {took:?}");
    // The stuck stream was dropped; the next stanza goes on a new one.
    assert_eq!(
        forwarder.deliver(&route(), &chat("delivered")).await,
        Ok(())
    );
    assert_eq!(peer.streams.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn no_more_than_the_window_is_in_flight_to_a_peer_that_stalls() {
    let config = config();
    let (forwarder, peer) = start(by_body, config).await;
    let mut calls = Vec::new();
    for i in 0..10 {
        let f = forwarder.clone();
        calls.push(tokio::spawn(async move {
            f.deliver(&route(), &chat(&format!("stall {i}"))).await
        }));
    }
    // Half way to the deadline the peer has exactly one window's worth; the others wait for
    // room (checked before anyone gives up, so no new stream muddles the count).
    tokio::time::sleep(config.timeout / 2).await;
    assert_eq!(peer.seen.lock().unwrap().len(), config.window);
    for c in calls {
        let outcome = timeout(config.timeout * 4, c).await.unwrap().unwrap();
        assert_eq!(outcome, Err(RemoteError::Unavailable));
    }
}

#[tokio::test]
async fn a_peer_that_is_not_listening_is_unavailable_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let forwarder = GrpcForwarder::new(HashMap::from([(NodeId(2), addr.to_string())]), config());
    let started = Instant::now();
    assert_eq!(
        forwarder.deliver(&route(), &chat("delivered")).await,
        Err(RemoteError::Unavailable)
    );
    assert!(started.elapsed() < config().timeout);
}
