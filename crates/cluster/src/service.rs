//! The receiving side: [`DeliverService`], the `corvid.v1.Router` gRPC service.

use std::sync::Arc;

use corvid_core::{RemoteError, SessionId};
use corvid_proto::v1::router_server::{Router as RouterRpc, RouterServer};
use corvid_proto::{v1, ClusterError, Delivery, RoutedStanza};
use corvid_router::Router;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn, Instrument as _};

/// Reports buffered per stream before the service stops reading envelopes (and HTTP/2 flow
/// control stops the sending edge).
const REPORT_QUEUE: usize = 64;

/// Serves `Router.Deliver`: puts stanzas that other edges forward into this node's sessions.
///
/// Each stream is read by one task, one envelope at a time, and every envelope gets exactly one
/// report, in order. A bad envelope is answered `INVALID` and the stream goes on.
#[derive(Clone)]
pub struct DeliverService {
    router: Arc<Router>,
    shutdown: Option<watch::Receiver<bool>>,
}

impl DeliverService {
    /// A service delivering into `router`'s sessions.
    pub fn new(router: Arc<Router>) -> Self {
        Self {
            router,
            shutdown: None,
        }
    }

    /// Ends every stream with `UNAVAILABLE` (draining) once `shutdown` turns `true`, so that a
    /// graceful server shutdown is not held up by the long-lived streams, and peers reconnect
    /// elsewhere or answer their senders themselves. A dropped sender never ends the streams.
    pub fn with_shutdown(mut self, shutdown: watch::Receiver<bool>) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> RouterServer<Self> {
        RouterServer::new(self)
    }
}

#[tonic::async_trait]
impl RouterRpc for DeliverService {
    type DeliverStream = ReceiverStream<Result<v1::DeliveryReport, Status>>;

    async fn deliver(
        &self,
        request: Request<Streaming<v1::Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, Status> {
        let peer = request.remote_addr();
        debug!(what = "deliver-stream-open", ?peer);
        let (reports, rx) = mpsc::channel(REPORT_QUEUE);
        tokio::spawn(serve_stream(
            self.router.clone(),
            request.into_inner(),
            reports,
            self.shutdown.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Reads one stream's envelopes in order, delivering each and answering it.
async fn serve_stream(
    router: Arc<Router>,
    mut envelopes: Streaming<v1::Envelope>,
    reports: mpsc::Sender<Result<v1::DeliveryReport, Status>>,
    mut shutdown: Option<watch::Receiver<bool>>,
) {
    loop {
        let next = tokio::select! {
            next = envelopes.message() => next,
            () = shut_down(&mut shutdown) => break,
        };
        let envelope = match next {
            Ok(Some(e)) => e,
            Ok(None) => {
                debug!(what = "deliver-stream-ended");
                return;
            }
            Err(status) => {
                debug!(what = "deliver-stream-failed", error = %ClusterError::from(status));
                return;
            }
        };
        let seq = envelope.seq;
        let outcome = deliver(&router, envelope).await;
        let sent = tokio::select! {
            sent = reports.send(Ok(v1::DeliveryReport::new(seq, outcome))) => sent,
            () = shut_down(&mut shutdown) => break,
        };
        if sent.is_err() {
            // The peer is gone; it answers its senders itself.
            return;
        }
    }
    debug!(what = "deliver-stream-draining");
    // Best effort: the peer may not be reading any more.
    let _ = reports.try_send(Err(ClusterError::Draining.into()));
}

/// Returns once `shutdown` is `true`; never if there is no signal or its sender is gone.
async fn shut_down(shutdown: &mut Option<watch::Receiver<bool>>) {
    if let Some(rx) = shutdown {
        if rx.wait_for(|down| *down).await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// Checks, parses and delivers one envelope.
async fn deliver(router: &Router, envelope: v1::Envelope) -> Delivery {
    let seq = envelope.seq;
    let routed = match RoutedStanza::try_from(envelope) {
        Ok(r) => r,
        Err(reason) => {
            warn!(what = "envelope-invalid", seq, %reason);
            return Delivery::Invalid;
        }
    };
    // Every envelope this version sends names its session; routing by `to` on this side is
    // not built (it would need the receiving edge's full routing, with its own error replies).
    let Some(session) = routed.session else {
        warn!(what = "envelope-invalid", seq, reason = "no session");
        return Delivery::Invalid;
    };
    let stanza = match crate::xml::decode(&routed.stanza) {
        Ok(s) => s,
        Err(reason) => {
            warn!(what = "envelope-invalid", seq, %reason);
            return Delivery::Invalid;
        }
    };
    let session = SessionId(session.get());
    // A child of the sending node's routing span: one stanza, one trace across the nodes.
    let span = tracing::info_span!(
        "xmpp.stanza.deliver",
        otel.kind = "server",
        xmpp.stanza.kind = stanza.kind().as_str(),
    );
    corvid_telemetry::continue_trace(&span, &routed.trace);
    // What the stanza leads to here (a reply to its sender, say) follows from every session
    // binding the sender's copy of the table held: see `Router::route`.
    let delivery = router.deliver_local(session, routed.session_jid.as_ref(), stanza);
    match corvid_core::caused_at(routed.registry_index, delivery.instrument(span)).await {
        Ok(()) => Delivery::Delivered,
        Err(RemoteError::Gone) => Delivery::RecipientGone,
        Err(RemoteError::Unavailable) => Delivery::QueueFull,
    }
}
