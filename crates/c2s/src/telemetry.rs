//! What a client connection reports: its place in `xmpp.server.connections`, the SASL span
//! and `xmpp.server.authentications`. Attributes name mechanisms, outcomes and listeners,
//! never credentials or stanza contents.

use corvid_telemetry::metrics;
use corvid_telemetry::KeyValue;
use tracing::Span;

use crate::{Listener, Machine, State};

/// Where a connection counts in `xmpp.server.connections`; moves with the connection and
/// leaves the count when dropped.
pub(crate) struct ConnGauge {
    listener: &'static str,
    state: &'static str,
}

impl ConnGauge {
    /// A new connection, negotiating.
    pub(crate) fn open(kind: Listener) -> Self {
        let listener = match kind {
            Listener::StartTls => "starttls",
            Listener::DirectTls => "direct_tls",
        };
        let gauge = Self {
            listener,
            state: "negotiating",
        };
        metrics().connections.add(1, &gauge.attributes());
        gauge
    }

    /// The connection moved to `state` (`authenticated`, `bound`).
    pub(crate) fn set(&mut self, state: &'static str) {
        if state != self.state {
            metrics().connections.add(-1, &self.attributes());
            self.state = state;
            metrics().connections.add(1, &self.attributes());
        }
    }

    fn attributes(&self) -> [KeyValue; 2] {
        [
            KeyValue::new("xmpp.listener", self.listener),
            KeyValue::new("xmpp.connection.state", self.state),
        ]
    }
}

impl Drop for ConnGauge {
    fn drop(&mut self) {
        metrics().connections.add(-1, &self.attributes());
    }
}

/// A SASL exchange under way: its span (`c2s.sasl`, a child of the connection's) and mechanism.
pub(crate) struct SaslExchange {
    span: Span,
    mechanism: &'static str,
}

impl SaslExchange {
    /// Starts one if the machine is in a SASL exchange and none is under way.
    pub(crate) fn begin(current: &mut Option<SaslExchange>, m: &Machine) {
        if current.is_some() {
            return;
        }
        if let State::Sasl(session) = m.state() {
            let mechanism = session.mechanism().name();
            let span = tracing::info_span!(
                "c2s.sasl",
                sasl.mechanism = mechanism,
                outcome = tracing::field::Empty
            );
            *current = Some(SaslExchange { span, mechanism });
        }
    }

    /// Ends the exchange under way, if any, with `outcome` (`success` or `failure`).
    pub(crate) fn finish(current: &mut Option<SaslExchange>, outcome: &'static str) {
        if let Some(exchange) = current.take() {
            exchange.span.record("outcome", outcome);
            metrics().authentications.add(
                1,
                &[
                    KeyValue::new("sasl.mechanism", exchange.mechanism),
                    KeyValue::new("outcome", outcome),
                ],
            );
        }
    }

    /// Ends an exchange the machine has left without authenticating: a failure.
    pub(crate) fn check_failed(current: &mut Option<SaslExchange>, m: &Machine) {
        if current.is_some() && !matches!(m.state(), State::Sasl(_)) {
            Self::finish(current, "failure");
        }
    }
}
