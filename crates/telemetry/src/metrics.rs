//! Every metric Corvid records. Names follow the OpenTelemetry semantic-convention style
//! (dotted, lowercase, unit in the metadata, not the name); the Prometheus rendering turns
//! `xmpp.routing.duration` (unit `s`) into `xmpp_routing_duration_seconds`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::metrics::{BoundHistogram, Counter, Histogram, Meter, UpDownCounter};
use opentelemetry::KeyValue;

/// Bucket bounds of the latency histograms, in seconds: 100 µs to 10 s.
const LATENCY_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The instruments, recorded into the global meter provider that [`crate::init`] installs
/// (before it, or without it, recording costs nothing and goes nowhere).
pub struct Metrics {
    meter: Meter,
    /// `xmpp.server.connections` {connection}: open client connections, by `xmpp.listener`
    /// (`starttls`, `direct_tls`) and `xmpp.connection.state` (`negotiating`, `authenticated`,
    /// `bound`).
    pub connections: UpDownCounter<i64>,
    /// `xmpp.server.authentications` {authentication}: finished SASL exchanges, by
    /// `sasl.mechanism` and `outcome` (`success`, `failure`).
    pub authentications: Counter<u64>,
    /// `xmpp.server.stanzas.received` {stanza}: stanzas from clients, by `xmpp.stanza.kind`.
    pub stanzas_received: Arc<StanzaCounter>,
    /// `xmpp.server.stanzas.sent` {stanza}: stanzas written to clients, by `xmpp.stanza.kind`.
    pub stanzas_sent: Arc<StanzaCounter>,
    /// `xmpp.server.sessions` {session}: bound sessions on this node.
    pub sessions: UpDownCounter<i64>,
    /// `xmpp.routing.duration` s: handing a stanza to one recipient session, by
    /// `xmpp.route.destination` (`local`, `remote`) and `outcome` (`delivered`, `failed`);
    /// recorded through [`Metrics::routed`]. Bound to each of its attribute sets, indexed by
    /// [`route_index`]: recorded once per delivered stanza, it no longer hashes its attributes
    /// and looks them up in the SDK's locked map each time (2 % of the instructions per message
    /// before).
    routed: [BoundHistogram<f64>; 4],
    /// `corvid.storage.operation.duration` s: store operations, by `db.operation.name` and,
    /// on failure, `error.type`.
    pub storage_duration: Histogram<f64>,
    /// `corvid.storage.errors` {error}: failed store operations, by `db.operation.name`.
    pub storage_errors: Counter<u64>,
}

/// The values of `xmpp.stanza.kind`.
const STANZA_KINDS: [&str; 3] = ["message", "presence", "iq"];

/// A per-stanza counter by `xmpp.stanza.kind`, counted in atomics and read by the meter at each
/// collection (an observable counter). Counting every stanza through the SDK's counter, which
/// hashes the attribute set and looks it up in a locked map, was 2-3 % of the server's CPU at
/// message saturation; an atomic add is not measurable.
#[derive(Debug, Default)]
pub struct StanzaCounter {
    counts: [AtomicU64; STANZA_KINDS.len()],
}

impl StanzaCounter {
    /// A counter that `meter` reports as the observable counter `name`.
    fn observed(meter: &Meter, name: &'static str, description: &'static str) -> Arc<Self> {
        let counter = Arc::new(Self::default());
        let read = counter.clone();
        let _ = meter
            .u64_observable_counter(name)
            .with_unit("{stanza}")
            .with_description(description)
            .with_callback(move |observer| {
                for (kind, count) in STANZA_KINDS.iter().zip(&read.counts) {
                    observer.observe(
                        count.load(Ordering::Relaxed),
                        &[KeyValue::new("xmpp.stanza.kind", *kind)],
                    );
                }
            })
            .build();
        counter
    }

    /// Counts one stanza of `kind` (`message`, `presence` or `iq`; anything else is ignored).
    pub fn add(&self, kind: &str) {
        if let Some(i) = STANZA_KINDS.iter().position(|k| *k == kind) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A gauge read off a [`RegistryStatus`]: name, description, reading.
type Gauge = (&'static str, &'static str, fn(&RegistryStatus) -> u64);

/// What a node knows of the registry's Raft group, for the `corvid.registry.*` gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStatus {
    /// The leader's node id, if one is known.
    pub leader: Option<u64>,
    /// The current Raft term.
    pub term: u64,
    /// Index of the last entry in this node's log: at least the commit index (openraft 0.9
    /// does not publish the commit index itself).
    pub last_log: u64,
    /// Index of the last log entry applied to this node's replica.
    pub applied: u64,
}

/// Where [`Metrics::routed`] keeps the bound histogram of a destination and outcome.
fn route_index(remote: bool, delivered: bool) -> usize {
    usize::from(remote) * 2 + usize::from(!delivered)
}

/// The attributes of `xmpp.routing.duration`: `xmpp.route.destination` (`local`, `remote`)
/// and `outcome` (`delivered`, `failed`).
fn route_attributes(remote: bool, delivered: bool) -> [KeyValue; 2] {
    [
        KeyValue::new(
            "xmpp.route.destination",
            if remote { "remote" } else { "local" },
        ),
        KeyValue::new("outcome", if delivered { "delivered" } else { "failed" }),
    ]
}

/// The process's instruments.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics::new(opentelemetry::global::meter("corvid")))
}

impl Metrics {
    fn new(meter: Meter) -> Self {
        let routing_duration = meter
            .f64_histogram("xmpp.routing.duration")
            .with_unit("s")
            .with_description("Time to hand a stanza to one recipient session")
            .with_boundaries(LATENCY_BOUNDS.to_vec())
            .build();
        // The inverse of `route_index`.
        let routed =
            std::array::from_fn(|i| routing_duration.bind(&route_attributes(i >= 2, i % 2 == 0)));
        Self {
            connections: meter
                .i64_up_down_counter("xmpp.server.connections")
                .with_unit("{connection}")
                .with_description("Open client connections")
                .build(),
            authentications: meter
                .u64_counter("xmpp.server.authentications")
                .with_unit("{authentication}")
                .with_description("Finished SASL authentications")
                .build(),
            stanzas_received: StanzaCounter::observed(
                &meter,
                "xmpp.server.stanzas.received",
                "Stanzas received from clients",
            ),
            stanzas_sent: StanzaCounter::observed(
                &meter,
                "xmpp.server.stanzas.sent",
                "Stanzas sent to clients",
            ),
            sessions: meter
                .i64_up_down_counter("xmpp.server.sessions")
                .with_unit("{session}")
                .with_description("Bound sessions on this node")
                .build(),
            routed,
            storage_duration: meter
                .f64_histogram("corvid.storage.operation.duration")
                .with_unit("s")
                .with_description("Duration of storage operations")
                .with_boundaries(LATENCY_BOUNDS.to_vec())
                .build(),
            storage_errors: meter
                .u64_counter("corvid.storage.errors")
                .with_unit("{error}")
                .with_description("Failed storage operations")
                .build(),
            meter,
        }
    }

    /// Records one store operation.
    pub fn storage_operation(&self, operation: &'static str, took: Duration, ok: bool) {
        let name = KeyValue::new("db.operation.name", operation);
        if ok {
            self.storage_duration
                .record(took.as_secs_f64(), std::slice::from_ref(&name));
        } else {
            self.storage_errors.add(1, std::slice::from_ref(&name));
            self.storage_duration.record(
                took.as_secs_f64(),
                &[name, KeyValue::new("error.type", "storage")],
            );
        }
    }

    /// Records one stanza handed to one recipient session.
    pub fn routed(&self, remote: bool, took: Duration, delivered: bool) {
        self.routed[route_index(remote, delivered)].record(took.as_secs_f64());
    }

    /// Reports the registry gauges from `status`, read at each collection:
    /// `corvid.registry.leader` (the leader's id, 0 while none is known), `corvid.registry.term`,
    /// `corvid.registry.last_log_index`, `corvid.registry.applied_index` and
    /// `corvid.registry.apply_lag` (log entries not yet applied here).
    pub fn observe_registry(&self, status: impl Fn() -> RegistryStatus + Send + Sync + 'static) {
        let status = Arc::new(status);
        let gauges: [Gauge; 5] = [
            (
                "corvid.registry.leader",
                "Node id of the registry's Raft leader (0: none known)",
                |s| s.leader.unwrap_or(0),
            ),
            ("corvid.registry.term", "Current Raft term", |s| s.term),
            (
                "corvid.registry.last_log_index",
                "Last Raft log index on this node (at least the commit index)",
                |s| s.last_log,
            ),
            (
                "corvid.registry.applied_index",
                "Last Raft log index applied to this replica",
                |s| s.applied,
            ),
            (
                "corvid.registry.apply_lag",
                "Raft log entries on this node not yet applied to its replica",
                |s| s.last_log.saturating_sub(s.applied),
            ),
        ];
        for (name, description, read) in gauges {
            let status = status.clone();
            let _ = self
                .meter
                .u64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |observer| observer.observe(read(&status()), &[]))
                .build();
        }
    }

    /// Reports `corvid.router.queue.depth` {envelope}: stanzas sent to each peer node and not
    /// yet answered (attribute `corvid.peer.node`), read at each collection.
    pub fn observe_router_queues(
        &self,
        depths: impl Fn() -> Vec<(u64, u64)> + Send + Sync + 'static,
    ) {
        let _ = self
            .meter
            .u64_observable_gauge("corvid.router.queue.depth")
            .with_unit("{envelope}")
            .with_description("Stanzas forwarded to a peer node and not yet answered")
            .with_callback(move |observer| {
                for (node, depth) in depths() {
                    observer.observe(depth, &[KeyValue::new("corvid.peer.node", node as i64)]);
                }
            })
            .build();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    #[test]
    fn the_prometheus_rendering_names_every_instrument() {
        let registry = prometheus::Registry::new();
        let reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .unwrap();
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        let m = Metrics::new(provider.meter("corvid"));
        let listener = [
            KeyValue::new("xmpp.listener", "starttls"),
            KeyValue::new("xmpp.connection.state", "bound"),
        ];
        m.connections.add(1, &listener);
        m.authentications.add(
            1,
            &[
                KeyValue::new("sasl.mechanism", "SCRAM-SHA-256"),
                KeyValue::new("outcome", "success"),
            ],
        );
        m.stanzas_received.add("message");
        m.stanzas_received.add("not-a-kind");
        m.routed(true, Duration::from_millis(3), true);
        m.routed(false, Duration::from_millis(1), false);
        m.storage_operation("accounts.credentials", Duration::from_millis(1), false);
        m.observe_registry(|| RegistryStatus {
            leader: Some(2),
            term: 3,
            last_log: 10,
            applied: 7,
        });
        let text = crate::PrometheusText {
            registry: std::sync::Arc::new(registry),
        }
        .render();
        for expected in [
            "xmpp_server_connections{",
            "xmpp_listener=\"starttls\"",
            "xmpp_server_authentications_total{",
            "sasl_mechanism=\"SCRAM-SHA-256\"",
            "xmpp_server_stanzas_received_total{",
            "xmpp_stanza_kind=\"message\"",
            "xmpp_routing_duration_seconds_bucket{",
            "xmpp_route_destination=\"remote\"",
            // Each bound histogram records under its own attributes.
            "xmpp_routing_duration_seconds_count{outcome=\"delivered\",xmpp_route_destination=\"remote\",otel_scope_name=\"corvid\"} 1",
            "xmpp_routing_duration_seconds_count{outcome=\"failed\",xmpp_route_destination=\"local\",otel_scope_name=\"corvid\"} 1",
            "xmpp_routing_duration_seconds_count{outcome=\"delivered\",xmpp_route_destination=\"local\",otel_scope_name=\"corvid\"} 0",
            "corvid_storage_errors_total{",
            "corvid_registry_apply_lag{otel_scope_name=\"corvid\"} 3",
            "corvid_registry_leader{otel_scope_name=\"corvid\"} 2",
        ] {
            assert!(text.contains(expected), "no {expected} in:\n{text}");
        }
    }
}
