//! Corvid's telemetry: OpenTelemetry traces, metrics and logs, exported over OTLP (gRPC or
//! HTTP), metrics also rendered in the Prometheus text format for the admin listener, and the
//! W3C trace context carried across nodes so one stanza is one trace.
//!
//! # Layout
//! - this file: [`init`] builds every provider from `[telemetry]` and `[log]` and installs the
//!   global `tracing` subscriber; [`Telemetry`] is the guard that flushes on shutdown.
//! - `metrics.rs`: [`Metrics`], every instrument Corvid records, under their names
//!   (docs/telemetry.md lists them).
//! - `propagation.rs`: [`inject`] / [`continue_trace`], the trace context in a string map (the
//!   `trace` field of the router's gRPC `Envelope`).
//!
//! # Export never holds traffic
//! Spans and log records go to batch processors whose queues are bounded (a full queue drops,
//! it never blocks the caller) and which export from their own threads; every export has a
//! timeout (`telemetry.export_timeout_ms`). Metrics are aggregated in memory and read by a
//! periodic reader. A collector that is down costs dropped telemetry, never XMPP latency.

use std::sync::Arc;
use std::time::Duration;

use corvid_settings::{LogConfig, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::logs::{BatchLogProcessor, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

mod metrics;
mod propagation;

pub use metrics::{metrics, Metrics, RegistryStatus, StanzaCounter};
/// Attribute of a metric point, as the [`Metrics`] instruments take them.
pub use opentelemetry::KeyValue;
pub use propagation::{continue_trace, inject};

/// The Prometheus rendering set up by [`init`] in this process, if it ran.
static PROMETHEUS: std::sync::OnceLock<PrometheusText> = std::sync::OnceLock::new();

/// The Prometheus rendering of this process's metrics, once [`init`] has run.
pub fn prometheus_text() -> Option<PrometheusText> {
    PROMETHEUS.get().cloned()
}

/// Spans or log records waiting for export, per signal; past it new ones are dropped.
const MAX_QUEUE: usize = 4096;
/// Most spans or log records in one export request.
const MAX_BATCH: usize = 512;
/// How often queued spans and log records are sent.
const BATCH_DELAY: Duration = Duration::from_secs(1);

/// Telemetry that could not be set up. `Display` names the setting.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `log.level` is not a valid filter.
    #[error("invalid value for `log.level`: {0}")]
    LogLevel(String),
    /// An OTLP exporter could not be built from `telemetry.otlp_endpoint`.
    #[error("invalid value for `telemetry.otlp_endpoint`: {0}")]
    Exporter(String),
    /// The Prometheus reader could not be built.
    #[error("cannot build the Prometheus metrics reader: {0}")]
    Prometheus(String),
    /// A global `tracing` subscriber was already installed.
    #[error("cannot install the logger: {0}")]
    Subscriber(String),
}

/// Who is reporting: the resource attributes of everything exported.
#[derive(Debug, Clone, Default)]
pub struct NodeIdentity {
    /// `service.instance.id`: unique per process in a deployment (e.g. `node-11`).
    pub instance: String,
    /// `corvid.node.role`: `single`, `combined`, `registry` or `edge`.
    pub role: String,
}

/// What [`init`] set up. Dropping it (or [`Telemetry::shutdown`]) flushes what is queued, each
/// signal within the export timeout, and stops the exporters.
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: SdkMeterProvider,
    logger: Option<SdkLoggerProvider>,
    prometheus: PrometheusText,
}

/// Renders the current value of every metric in the Prometheus text exposition format
/// (version 0.0.4), for `/metrics`. Cheap to clone.
#[derive(Clone)]
pub struct PrometheusText {
    registry: Arc<prometheus::Registry>,
}

impl PrometheusText {
    /// The exposition text; its content type is [`PrometheusText::CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# cannot encode metrics: {e}\n"))
    }

    /// `Content-Type` of [`PrometheusText::render`]'s output.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
}

impl Telemetry {
    /// The Prometheus rendering of this process's metrics.
    pub fn prometheus(&self) -> PrometheusText {
        self.prometheus.clone()
    }

    /// Whether spans, metrics and logs are pushed to a collector.
    pub fn exports(&self) -> bool {
        self.tracer.is_some()
    }

    /// Flushes and stops every exporter (also done on drop).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tracer) = self.tracer.take() {
            let _ = tracer.shutdown();
        }
        if let Some(logger) = self.logger.take() {
            let _ = logger.shutdown();
        }
        let _ = self.meter.shutdown();
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sets up telemetry for a serving process and installs the global `tracing` subscriber:
/// console logs (`log.format` text or JSON, filtered by `log.level`), spans to OpenTelemetry,
/// log records to OpenTelemetry (with the trace and span ids of the span they happen in), and
/// the global meter provider that [`metrics`] records into (read by the Prometheus renderer,
/// and by an OTLP periodic reader when an endpoint is set).
///
/// Must be called from within a tokio runtime when `otlp_protocol` is `grpc` (the gRPC
/// channel's worker runs on it), before any instrument is used.
pub fn init(
    telemetry: &TelemetryConfig,
    log: &LogConfig,
    node: &NodeIdentity,
) -> Result<Telemetry, TelemetryError> {
    let filter =
        EnvFilter::try_new(&log.level).map_err(|e| TelemetryError::LogLevel(e.to_string()))?;
    let resource = resource(telemetry, node);
    let exporting = !telemetry.otlp_endpoint.trim().is_empty();

    let registry = Arc::new(prometheus::Registry::new());
    let prometheus_reader = opentelemetry_prometheus::exporter()
        .with_registry((*registry).clone())
        .build()
        .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
    let mut meter = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_reader(prometheus_reader);
    let (tracer, logger) = if exporting {
        let exporters = Exporters::build(telemetry)?;
        meter = meter.with_reader(
            PeriodicReader::builder(exporters.metrics)
                .with_interval(Duration::from_millis(telemetry.export_interval_ms))
                .build(),
        );
        let spans = BatchSpanProcessor::builder(exporters.spans)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(MAX_QUEUE)
                    .with_max_export_batch_size(MAX_BATCH)
                    .with_scheduled_delay(BATCH_DELAY)
                    .build(),
            )
            .build();
        let tracer = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                telemetry.sample_ratio,
            ))))
            .with_span_processor(spans)
            .build();
        let logs = BatchLogProcessor::builder(exporters.logs)
            .with_batch_config(
                opentelemetry_sdk::logs::BatchConfigBuilder::default()
                    .with_max_queue_size(MAX_QUEUE)
                    .with_max_export_batch_size(MAX_BATCH)
                    .with_scheduled_delay(BATCH_DELAY)
                    .build(),
            )
            .build();
        let logger = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(logs)
            .build();
        (Some(tracer), Some(logger))
    } else {
        (None, None)
    };
    let meter = meter.build();
    opentelemetry::global::set_meter_provider(meter.clone());

    // Console output, as before: colour only for a person at a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let console = match log.format.as_str() {
        "json" => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .boxed(),
        _ => tracing_subscriber::fmt::layer().with_ansi(ansi).boxed(),
    };
    let spans = tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("corvid"))
            .with_location(false)
            .with_threads(false)
    });
    // The exporters' own logs (tonic, hyper, reqwest, the SDK) must not be exported through
    // the exporters: a failing export would log, which would export, …
    let records = logger.as_ref().map(|provider| {
        OpenTelemetryTracingBridge::new(provider).with_filter(filter_fn(|meta| {
            !EXPORTER_TARGETS
                .iter()
                .any(|prefix| meta.target().starts_with(prefix))
        }))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(spans)
        .with(records)
        .with(console)
        .try_init()
        .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;

    let prometheus = PrometheusText { registry };
    let _ = PROMETHEUS.set(prometheus.clone());
    Ok(Telemetry {
        tracer,
        meter,
        logger,
        prometheus,
    })
}

/// Log targets of the export path itself, kept out of exported log records.
const EXPORTER_TARGETS: &[&str] = &["opentelemetry", "tonic", "h2", "hyper", "reqwest", "tower"];

fn resource(telemetry: &TelemetryConfig, node: &NodeIdentity) -> Resource {
    let mut attributes = vec![KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))];
    if !node.instance.is_empty() {
        attributes.push(KeyValue::new("service.instance.id", node.instance.clone()));
    }
    if !node.role.is_empty() {
        attributes.push(KeyValue::new("corvid.node.role", node.role.clone()));
    }
    Resource::builder()
        .with_service_name(telemetry.service_name.clone())
        .with_attributes(attributes)
        .build()
}

/// The three OTLP exporters for one endpoint and protocol.
struct Exporters {
    spans: opentelemetry_otlp::SpanExporter,
    metrics: opentelemetry_otlp::MetricExporter,
    logs: opentelemetry_otlp::LogExporter,
}

impl Exporters {
    fn build(telemetry: &TelemetryConfig) -> Result<Exporters, TelemetryError> {
        let endpoint = telemetry.otlp_endpoint.trim().trim_end_matches('/');
        let timeout = Duration::from_millis(telemetry.export_timeout_ms);
        let failed = |e: opentelemetry_otlp::ExporterBuildError| {
            TelemetryError::Exporter(format!("{endpoint}: {e}"))
        };
        if telemetry.otlp_protocol == "http" {
            // The blocking HTTP client of this build speaks plain HTTP only.
            if endpoint.starts_with("https://") {
                return Err(TelemetryError::Exporter(format!(
                    "{endpoint}: https is supported with otlp_protocol = \"grpc\" only"
                )));
            }
            // Signal-specific endpoints are used as given: add the OTLP/HTTP paths.
            let url = |path: &str| format!("{endpoint}/v1/{path}");
            Ok(Exporters {
                spans: opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(url("traces"))
                    .with_timeout(timeout)
                    .build()
                    .map_err(failed)?,
                metrics: opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(url("metrics"))
                    .with_timeout(timeout)
                    .build()
                    .map_err(failed)?,
                logs: opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(url("logs"))
                    .with_timeout(timeout)
                    .build()
                    .map_err(failed)?,
            })
        } else {
            Ok(Exporters {
                spans: opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint)
                    .with_timeout(timeout)
                    .build()
                    .map_err(failed)?,
                metrics: opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint)
                    .with_timeout(timeout)
                    .build()
                    .map_err(failed)?,
                logs: opentelemetry_otlp::LogExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint)
                    .with_timeout(timeout)
                    .build()
                    .map_err(failed)?,
            })
        }
    }
}
