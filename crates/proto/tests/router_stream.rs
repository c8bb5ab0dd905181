//! `Router.Deliver` over a real tonic server on a loopback socket: one long-lived stream, order
//! kept, one report per envelope, and bounded queues (back-pressure or `QUEUE_FULL`, never
//! unbounded buffering).

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corvid_proto::v1::router_client::RouterClient;
use corvid_proto::v1::router_server::{Router, RouterServer};
use corvid_proto::v1::{DeliveryReport, Envelope};
use corvid_proto::{Delivery, RoutedStanza};
use prost::bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;
// tonic re-exports tokio-stream for the generated code; the test needs only its channel wrapper.
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status, Streaming};

/// Generous upper bound for anything that should happen; a hang fails the test instead.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long "nothing more happens" is watched for.
const QUIET: Duration = Duration::from_millis(300);
/// Reports the server may have written that the client has not read yet.
const REPORT_BUFFER: usize = 16;

/// What the receiving edge does when the recipient's queue is full.
#[derive(Debug, Clone, Copy)]
enum WhenFull {
    /// Stop reading the stream until there is room (back-pressure to the sender).
    Wait,
    /// Drop the stanza and answer `QUEUE_FULL`.
    Refuse,
}

/// An in-test receiving edge: every checked stanza goes into one bounded queue (standing in for
/// the recipient's mailbox), in the order the stream carried them.
struct Edge {
    queue: mpsc::Sender<RoutedStanza>,
    when_full: WhenFull,
    streams: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Router for Edge {
    type DeliverStream = ReceiverStream<Result<DeliveryReport, Status>>;

    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, Status> {
        self.streams.fetch_add(1, Ordering::SeqCst);
        let mut inbound = request.into_inner();
        let (reports, rx) = mpsc::channel(REPORT_BUFFER);
        let queue = self.queue.clone();
        let when_full = self.when_full;
        tokio::spawn(async move {
            loop {
                let envelope = match inbound.message().await {
                    Ok(Some(envelope)) => envelope,
                    Ok(None) => break,
                    Err(status) => {
                        let _ = reports.send(Err(status)).await;
                        break;
                    }
                };
                let seq = envelope.seq;
                let delivery = match RoutedStanza::try_from(envelope) {
                    Err(_) => Delivery::Invalid,
                    Ok(stanza) => match when_full {
                        WhenFull::Wait => match queue.send(stanza).await {
                            Ok(()) => Delivery::Delivered,
                            Err(_) => Delivery::RecipientGone,
                        },
                        WhenFull::Refuse => match queue.try_send(stanza) {
                            Ok(()) => Delivery::Delivered,
                            Err(mpsc::error::TrySendError::Full(_)) => Delivery::QueueFull,
                            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::RecipientGone,
                        },
                    },
                };
                // Awaiting here is the back-pressure: a client that does not read its reports
                // stops this loop, and HTTP/2 flow control then stops the client's writes.
                if reports
                    .send(Ok(DeliveryReport::new(seq, delivery)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A receiving edge listening on 127.0.0.1, and its recipient queue's far end.
struct Running {
    addr: SocketAddr,
    mailbox: mpsc::Receiver<RoutedStanza>,
    streams: Arc<AtomicUsize>,
}

async fn start_edge(queue_capacity: usize, when_full: WhenFull) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (queue, mailbox) = mpsc::channel(queue_capacity);
    let streams = Arc::new(AtomicUsize::new(0));
    let edge = Edge {
        queue,
        when_full,
        streams: Arc::clone(&streams),
    };
    tokio::spawn(
        Server::builder()
            .add_service(RouterServer::new(edge))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    Running {
        addr,
        mailbox,
        streams,
    }
}

/// Opens the one `Deliver` stream to `addr`: the sender for envelopes and the reports.
async fn open_stream(addr: SocketAddr) -> (mpsc::Sender<Envelope>, Streaming<DeliveryReport>) {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = RouterClient::new(channel);
    // Bounded on the client too: a sender that outruns the stream waits here.
    let (tx, rx) = mpsc::channel(8);
    let reports = client
        .deliver(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, reports)
}

fn envelope(seq: u64) -> Envelope {
    Envelope {
        seq,
        from: b"alice@a.example/phone".to_vec(),
        to: b"bob@b.example/laptop".to_vec(),
        stanza: Bytes::from(format!(
            "<message xmlns='jabber:client' id='m{seq}'><body>{seq}</body></message>"
        )),
        session: 7,
        trace: [(
            "traceparent".to_owned(),
            format!("00-{seq:032x}-00f067aa0ba902b7-01"),
        )]
        .into(),
        session_jid: b"bob@b.example/laptop".to_vec(),
        registry_index: 0,
    }
}

async fn next_report(reports: &mut Streaming<DeliveryReport>) -> (u64, Delivery) {
    let report = timeout(PATIENCE, reports.message())
        .await
        .expect("a report in time")
        .expect("no stream error")
        .expect("the stream is still open");
    (report.seq, report.delivery().expect("a known outcome"))
}

#[tokio::test]
async fn a_thousand_envelopes_on_one_stream_arrive_in_order_each_acknowledged() {
    const N: u64 = 1_000;
    // A queue much smaller than N: the stream has to wait for the recipient, not buffer.
    let Running {
        addr,
        mut mailbox,
        streams,
    } = start_edge(8, WhenFull::Wait).await;
    let recipient = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < N as usize {
            match mailbox.recv().await {
                Some(stanza) => got.push(stanza),
                None => break,
            }
        }
        got
    });

    let (tx, mut reports) = open_stream(addr).await;
    let sender = tokio::spawn(async move {
        for seq in 1..=N {
            tx.send(envelope(seq)).await.unwrap();
        }
        // Dropping `tx` ends the request stream.
    });

    for expected in 1..=N {
        assert_eq!(
            next_report(&mut reports).await,
            (expected, Delivery::Delivered)
        );
    }
    // One report per envelope, no more: the server ends the stream once the client's ends.
    assert!(timeout(PATIENCE, reports.message())
        .await
        .unwrap()
        .unwrap()
        .is_none());
    sender.await.unwrap();

    let got = timeout(PATIENCE, recipient).await.unwrap().unwrap();
    assert_eq!(got.len(), N as usize);
    assert!(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq strictly increasing"
    );
    assert_eq!(got.first().map(|s| s.seq), Some(1));
    assert_eq!(got.last().map(|s| s.seq), Some(N));
    let sample = &got[499];
    assert_eq!(sample.to.to_string(), "bob@b.example/laptop");
    assert_eq!(sample.from.to_string(), "alice@a.example/phone");
    assert_eq!(
        sample.stanza,
        Bytes::from_static(b"<message xmlns='jabber:client' id='m500'><body>500</body></message>")
    );
    assert_eq!(sample.session.map(|s| s.get()), Some(7));
    assert_eq!(
        sample.trace.get("traceparent").map(String::as_str),
        Some("00-000000000000000000000000000001f4-00f067aa0ba902b7-01")
    );
    assert_eq!(
        streams.load(Ordering::SeqCst),
        1,
        "one stream for the edge pair"
    );
}

#[tokio::test]
async fn a_full_queue_answers_queue_full_instead_of_buffering() {
    let Running {
        addr, mut mailbox, ..
    } = start_edge(4, WhenFull::Refuse).await;
    let (tx, mut reports) = open_stream(addr).await;

    // Nobody reads the mailbox: the first four fit, the other six are refused.
    for seq in 1..=10 {
        tx.send(envelope(seq)).await.unwrap();
    }
    for seq in 1..=10 {
        let expected = if seq <= 4 {
            Delivery::Delivered
        } else {
            Delivery::QueueFull
        };
        assert_eq!(next_report(&mut reports).await, (seq, expected));
    }
    assert_eq!(mailbox.len(), 4, "nothing held beyond the bound");

    // Room again once the recipient reads, on the same stream.
    assert_eq!(mailbox.recv().await.map(|s| s.seq), Some(1));
    tx.send(envelope(11)).await.unwrap();
    assert_eq!(next_report(&mut reports).await, (11, Delivery::Delivered));
    let held: Vec<u64> = std::iter::from_fn(|| mailbox.try_recv().ok().map(|s| s.seq)).collect();
    assert_eq!(held, [2, 3, 4, 11]);
}

#[tokio::test]
async fn a_full_queue_that_waits_stalls_the_stream_until_the_recipient_reads() {
    let Running {
        addr, mut mailbox, ..
    } = start_edge(4, WhenFull::Wait).await;
    let (tx, mut reports) = open_stream(addr).await;
    let sender = tokio::spawn(async move {
        for seq in 1..=20 {
            tx.send(envelope(seq)).await.unwrap();
        }
    });

    for seq in 1..=4 {
        assert_eq!(next_report(&mut reports).await, (seq, Delivery::Delivered));
    }
    // The fifth envelope waits for room: no report, and the queue does not grow past its bound.
    assert!(
        timeout(QUIET, reports.message()).await.is_err(),
        "stream must stall"
    );
    assert_eq!(mailbox.len(), 4);

    let mut got = Vec::new();
    for seq in 5..=20 {
        got.push(mailbox.recv().await.unwrap().seq);
        assert_eq!(next_report(&mut reports).await, (seq, Delivery::Delivered));
    }
    while got.len() < 20 {
        got.push(mailbox.recv().await.unwrap().seq);
    }
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    sender.await.unwrap();
}

#[tokio::test]
async fn an_envelope_with_invalid_utf8_in_to_is_refused_and_the_stream_goes_on() {
    let Running {
        addr, mut mailbox, ..
    } = start_edge(8, WhenFull::Refuse).await;
    let (tx, mut reports) = open_stream(addr).await;

    let mut bad = envelope(1);
    bad.to = vec![b'b', b'o', b'b', 0xff, 0xfe, b'@', b'b'];
    let mut converted = bad.clone();
    converted.seq = 99;
    assert_eq!(
        RoutedStanza::try_from(converted).map_err(|e| e.to_string()),
        Err("`to` is not UTF-8".to_owned())
    );

    tx.send(bad).await.unwrap();
    tx.send(envelope(2)).await.unwrap();
    assert_eq!(next_report(&mut reports).await, (1, Delivery::Invalid));
    assert_eq!(next_report(&mut reports).await, (2, Delivery::Delivered));
    assert_eq!(mailbox.recv().await.map(|s| s.seq), Some(2));
    assert!(
        mailbox.try_recv().is_err(),
        "the invalid envelope reached nobody"
    );
}
