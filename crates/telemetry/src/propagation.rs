//! The W3C trace context (`traceparent`, `tracestate`) in a string map, which is what the
//! router's gRPC `Envelope.trace` field holds: the sending node [`inject`]s the context of the
//! span routing the stanza, the receiving node makes its delivery span a child of it with
//! [`continue_trace`]. One message from an account on one edge to an account on another is
//! then one trace.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The trace context of `span` as W3C headers; empty when the span is not recorded (telemetry
/// off, or not sampled and nothing to continue).
pub fn inject(span: &tracing::Span) -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    }
    carrier
}

/// Makes `span` (not yet entered) a child of the remote span named in `carrier`. A carrier
/// without a valid `traceparent` leaves `span` as it is (it starts its own trace).
pub fn continue_trace(span: &tracing::Span, carrier: &HashMap<String, String>) {
    if carrier.is_empty() {
        return;
    }
    let cx = TraceContextPropagator::new().extract(carrier);
    if cx.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed: then there is nothing to link.
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn a_continued_span_joins_the_senders_trace() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let sender = tracing::info_span!("xmpp.stanza.route");
            let carrier = inject(&sender);
            let traceparent = carrier.get("traceparent").unwrap();
            // W3C Trace Context §3.2: version-traceid-parentid-flags.
            assert_eq!(traceparent.split('-').count(), 4, "{traceparent}");
            let receiver = tracing::info_span!("xmpp.stanza.deliver");
            continue_trace(&receiver, &carrier);
            let sent = sender.context().span().span_context().clone();
            let received = receiver.context().span().span_context().clone();
            assert_eq!(sent.trace_id(), received.trace_id());
            assert_ne!(sent.span_id(), received.span_id());
        });
    }

    #[test]
    fn without_telemetry_nothing_is_carried() {
        let span = tracing::info_span!("xmpp.stanza.route");
        assert!(inject(&span).is_empty());
        continue_trace(
            &span,
            &HashMap::from([("traceparent".into(), "garbage".into())]),
        );
    }
}
