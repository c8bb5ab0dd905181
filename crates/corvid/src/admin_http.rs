//! The admin HTTP listener (`[admin] listen`): what orchestrators and scrapers ask a node.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` while the process serves requests at all (liveness) |
//! | `GET /readyz` | `200 ready`, or `503` with one line per unmet condition ([`Readiness`]) |
//! | `GET /metrics` | every metric in the Prometheus text format (corvid-telemetry) |
//!
//! It is plain HTTP/1.1 on its own port, kept off the public network; nothing it answers
//! names an account or a message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use corvid_jid::BareJid;
use corvid_storage::Store;
use tokio::sync::watch;

/// How long `/readyz` waits for the store to answer before calling it unreachable.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A registry replica more than this many log entries behind its last received entry is not
/// caught up.
const MAX_APPLY_LAG: u64 = 64;

/// Whether this node should receive traffic, as `/readyz` reports it. Cheap to clone; every
/// clone is the same state.
///
/// Ready means all of: the client listeners are bound ([`Readiness::set_listening`]), the
/// node is not draining ([`Readiness::set_draining`], or the listeners' stop signal given to
/// [`Readiness::watch_stop_accepting`] turned true), the store answers a read within two
/// seconds, and, in a cluster, the registry replica knows a leader and has applied what it
/// received ([`Readiness::watch_registry`]).
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    listening: AtomicBool,
    draining: AtomicBool,
    stop_accepting: RwLock<Option<watch::Receiver<bool>>>,
    store: RwLock<Option<Arc<dyn Store>>>,
    registry: RwLock<Option<RegistryProbe>>,
}

/// Reads the registry replica's state: `Err` says why it is not caught up.
type RegistryProbe = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

impl Readiness {
    /// A node that is not ready yet (no listener bound).
    pub fn new() -> Self {
        Self::default()
    }

    /// The client listeners are bound (or the node holds no clients and needs none).
    pub fn set_listening(&self, up: bool) {
        self.inner.listening.store(up, Ordering::Release);
    }

    /// The node is draining (an edge leaving the cluster): not ready from now on, so a load
    /// balancer or Kubernetes Service stops sending new clients.
    pub fn set_draining(&self, draining: bool) {
        self.inner.draining.store(draining, Ordering::Release);
    }

    /// Whether [`Readiness::set_draining`] or the stop signal says the node is draining.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
            || read(&self.inner.stop_accepting)
                .as_ref()
                .is_some_and(|rx| *rx.borrow())
    }

    /// Follows the client listeners' stop signal: true means the node stopped accepting (a
    /// drain), which makes it not ready.
    pub fn watch_stop_accepting(&self, stop: watch::Receiver<bool>) {
        *write(&self.inner.stop_accepting) = Some(stop);
    }

    /// The store whose reachability is checked.
    pub fn watch_store(&self, store: Arc<dyn Store>) {
        *write(&self.inner.store) = Some(store);
    }

    /// The registry replica's check, in a cluster.
    pub fn watch_registry(&self, probe: impl Fn() -> Result<(), String> + Send + Sync + 'static) {
        *write(&self.inner.registry) = Some(Arc::new(probe));
    }

    /// `Ok` when ready, else every unmet condition.
    pub async fn check(&self) -> Result<(), Vec<String>> {
        let mut unmet = Vec::new();
        if !self.inner.listening.load(Ordering::Acquire) {
            unmet.push("listeners: not bound yet".to_owned());
        }
        if self.is_draining() {
            unmet.push("draining: this node is leaving and takes no new clients".to_owned());
        }
        let registry = read(&self.inner.registry).clone();
        if let Some(Err(why)) = registry.map(|probe| probe()) {
            unmet.push(format!("registry: {why}"));
        }
        let store = read(&self.inner.store).clone();
        if let Some(store) = store {
            if let Err(why) = probe_store(store.as_ref()).await {
                unmet.push(format!("storage: {why}"));
            }
        }
        if unmet.is_empty() {
            Ok(())
        } else {
            Err(unmet)
        }
    }
}

/// A registry check from the replica's Raft metrics: ready once it knows a leader and has
/// applied (nearly) everything in its log.
pub fn registry_probe(
    metrics: watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>,
) -> impl Fn() -> Result<(), String> + Send + Sync + 'static {
    move || {
        let m = metrics.borrow();
        if let Err(fatal) = &m.running_state {
            return Err(format!("raft stopped: {fatal}"));
        }
        if m.current_leader.is_none() {
            return Err("no leader known".into());
        }
        let last = m.last_log_index.unwrap_or(0);
        let applied = m.last_applied.map_or(0, |id| id.index);
        let lag = last.saturating_sub(applied);
        if lag > MAX_APPLY_LAG {
            return Err(format!(
                "replica {lag} entries behind (applied {applied} of {last})"
            ));
        }
        Ok(())
    }
}

/// The registry gauges' reading from the replica's Raft metrics. openraft 0.9 does not
/// publish the commit index: the last log index stands in for it (it is at least the
/// commit index; on a follower or learner it is what the leader sent).
pub fn registry_status(
    metrics: &watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>,
) -> corvid_telemetry::RegistryStatus {
    let m = metrics.borrow();
    corvid_telemetry::RegistryStatus {
        leader: m.current_leader,
        term: m.current_term,
        last_log: m.last_log_index.unwrap_or(0),
        applied: m.last_applied.map_or(0, |id| id.index),
    }
}

/// A read of a key nobody writes: any answer, even "absent", means the store is reachable.
async fn probe_store(store: &dyn Store) -> Result<(), String> {
    let probe: BareJid = "readiness@health.invalid"
        .parse()
        .map_err(|e| format!("probe address: {e}"))?;
    let kv = store.kv("health");
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, kv.get(&probe)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s",
            STORE_PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// Binds `listen` and serves the admin endpoints on a task of `tasks` until `shutdown` turns
/// true. Returns the bound address (port 0 picks a free one) once listening.
pub async fn serve(
    listen: &str,
    readiness: Readiness,
    mut shutdown: watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("admin.listen: cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness);
    tasks.spawn(async move {
        let stopped = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(what = "admin-http-failed", error = %e);
        }
    });
    tracing::info!(what = "listening", %addr, kind = "admin-http");
    Ok(addr)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    match readiness.check().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(unmet) => {
            let mut body = unmet.join("\n");
            body.push('\n');
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}

async fn metrics() -> Response {
    let text = corvid_telemetry::prometheus_text()
        .map(|p| p.render())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            corvid_telemetry::PrometheusText::CONTENT_TYPE,
        )],
        text,
    )
        .into_response()
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
