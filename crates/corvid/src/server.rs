//! Starting a node: settings → storage → router → listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::admin_http::Readiness;
use anyhow::Context as _;
use corvid_c2s::{accept_until, C2sContext, Config, ConnectionLimits, Listener};
use corvid_core::{NodeId, Registrar, Services, SessionRegistry};
use corvid_jid::DomainPart;
use corvid_router::{LocalRegistry, Router};
use corvid_settings::Settings;
use corvid_storage::Store;
use corvid_xml::Limits;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::info;

/// A running node.
pub struct Server {
    starttls_addr: Option<SocketAddr>,
    direct_tls_addr: Option<SocketAddr>,
    router: Arc<Router>,
    store: Arc<dyn Store>,
    shutdown: watch::Sender<bool>,
    /// Kept so the listeners' stop signal lives as long as the server (a drain sends on it).
    _stop_accepting: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// The registry's Raft member, in a cluster.
    raft: Option<corvid_raft::RegistryNode>,
    /// What `/readyz` reports.
    readiness: Readiness,
    /// The admin HTTP listener's address, when `admin.listen` is set.
    admin_addr: Option<SocketAddr>,
}

impl Server {
    /// Opens storage, builds the modules and router, binds the listeners (port 0 picks a free
    /// port, see [`Server::starttls_addr`]) and starts accepting.
    pub async fn start(settings: Settings) -> anyhow::Result<Server> {
        settings
            .validate()
            .map_err(|e| anyhow::anyhow!("configuration error: {e}"))?;
        // Every operation of every module is measured (corvid.storage.* metrics).
        let store: Arc<dyn Store> =
            crate::metered::Metered::store(crate::storage::open(&settings).await?);
        let domains: Arc<[DomainPart]> = settings
            .server
            .domains
            .iter()
            .map(|d| {
                DomainPart::new(d)
                    .with_context(|| format!("server.domains: `{d}` is not a valid domain"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
            .into();
        let tls = crate::tls::material(
            &settings.tls.cert_file,
            &settings.tls.key_file,
            &settings.storage.path,
            &settings.server.domains,
        )?;

        let mut registrar = Registrar::new();
        for m in corvid_modules::defaults() {
            // Offline storage takes its per-account quota from the settings.
            let m: Arc<dyn corvid_core::Module> = if m.name() == "offline" {
                Arc::new(corvid_modules::offline::Offline::with_limit(
                    settings.limits.max_offline_messages,
                ))
            } else {
                m
            };
            registrar.install(m);
        }
        let modules = Arc::new(registrar.freeze());
        // A single node keeps the in-process table; a cluster member builds on the Raft group.
        let member = if settings.cluster.enabled {
            Some(crate::cluster::Member::open(&settings).await?)
        } else {
            None
        };
        let (node_id, registry): (NodeId, Arc<dyn SessionRegistry>) = match &member {
            Some(m) => (m.node_id(), m.registry()),
            None => (NodeId(0), Arc::new(LocalRegistry::new())),
        };
        let router = Router::new(node_id, registry, settings.limits.max_resources_per_user);
        router.set_services(Services {
            domains: domains.clone(),
            store: store.clone(),
            modules,
            sender: router.sender(),
            registry: router.registry().clone(),
        });

        let ctx = Arc::new(C2sContext {
            config: Config {
                domains,
                tls_available: true,
                require_starttls: settings.c2s.require_starttls,
                allow_plain: settings.auth.allow_plain,
                max_auth_attempts: settings.limits.max_auth_attempts,
                fake_iterations: settings.auth.scram_iterations,
                extra_features: router
                    .services()
                    .modules
                    .stream_features()
                    .iter()
                    .map(|e| e.to_xml(corvid_xml::NS_CLIENT))
                    .collect::<String>()
                    .into(),
            },
            limits: Limits {
                max_stanza_bytes: settings.limits.max_stanza_bytes,
                max_depth: settings.limits.max_depth,
                max_attributes: settings.limits.max_attributes,
            },
            tls,
            router: router.clone(),
            store: store.clone(),
            conn_limits: ConnectionLimits::new(
                settings.c2s.max_unauthenticated,
                settings.c2s.max_unauthenticated_per_ip,
            ),
            negotiation_timeout: Duration::from_secs(settings.timeouts.negotiation_secs),
            tls_handshake_timeout: Duration::from_secs(settings.timeouts.tls_handshake_secs),
            idle_timeout: Duration::from_secs(settings.timeouts.idle_secs),
            close_timeout: Duration::from_secs(settings.timeouts.close_secs),
            read_rate: settings.c2s.read_rate_bytes_per_sec,
            read_burst: settings.c2s.read_burst_bytes,
            session_queue: settings.limits.session_queue,
        });

        let (shutdown, shutdown_rx) = watch::channel(false);
        // Turned true by a drain: the client listeners close, sessions stay for the grace period.
        let (stop_accepting, stop_accepting_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        // The admin listener comes up first: /healthz answers while the node joins the cluster,
        // /readyz says what it still waits for.
        let readiness = Readiness::new();
        readiness.watch_store(store.clone());
        readiness.watch_stop_accepting(stop_accepting_rx.clone());
        let admin_addr = match settings.admin.listen.trim() {
            "" => None,
            listen => Some(
                crate::admin_http::serve(
                    listen,
                    readiness.clone(),
                    shutdown_rx.clone(),
                    &mut tasks,
                )
                .await?,
            ),
        };
        let raft = match member {
            Some(m) => {
                // Only a node holding clients drains; a registry-only node has nothing to drain
                // (and must not appear in the table as an edge).
                let edge = m.role().is_edge().then(|| {
                    crate::admin::EdgeDrain::new(
                        m.node_id(),
                        router.clone(),
                        m.registry(),
                        stop_accepting.clone(),
                        &settings.c2s.see_other_host,
                        Duration::from_secs(settings.c2s.drain_grace_secs),
                    )
                });
                Some(
                    m.run(router.clone(), edge, shutdown_rx.clone(), &mut tasks)
                        .await?,
                )
            }
            None => None,
        };
        if let Some(raft) = &raft {
            let metrics = raft.raft().metrics();
            readiness.watch_registry(crate::admin_http::registry_probe(metrics.clone()));
            corvid_telemetry::metrics()
                .observe_registry(move || crate::admin_http::registry_status(&metrics));
        }
        let bind = |addr: &str,
                    kind: Listener|
         -> anyhow::Result<Option<(SocketAddr, std::net::TcpListener)>> {
            if addr.is_empty() {
                return Ok(None);
            }
            let key = match kind {
                Listener::StartTls => "c2s.starttls_listen",
                Listener::DirectTls => "c2s.direct_tls_listen",
            };
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("{key}: cannot listen on {addr}"))?;
            l.set_nonblocking(true)?;
            Ok(Some((l.local_addr()?, l)))
        };
        // A registry-only node holds no clients: it opens no client listener.
        let serves_clients = !settings.cluster.enabled || settings.cluster.role().is_edge();
        let (starttls, direct) = if serves_clients {
            (
                bind(&settings.c2s.starttls_listen, Listener::StartTls)?,
                bind(&settings.c2s.direct_tls_listen, Listener::DirectTls)?,
            )
        } else {
            info!(what = "registry-only", "no client listeners");
            (None, None)
        };
        let (starttls_addr, direct_tls_addr) =
            (starttls.as_ref().map(|s| s.0), direct.as_ref().map(|s| s.0));
        for (l, kind) in [
            (starttls, Listener::StartTls),
            (direct, Listener::DirectTls),
        ] {
            if let Some((addr, l)) = l {
                let listener = TcpListener::from_std(l)?;
                info!(what = "listening", %addr, ?kind);
                tasks.spawn(accept_until(
                    ctx.clone(),
                    listener,
                    kind,
                    stop_accepting_rx.clone(),
                    shutdown_rx.clone(),
                ));
            }
        }
        readiness.set_listening(true);
        Ok(Server {
            starttls_addr,
            direct_tls_addr,
            router,
            store,
            shutdown,
            _stop_accepting: stop_accepting,
            tasks,
            raft,
            readiness,
            admin_addr,
        })
    }

    /// What `/readyz` reports; [`Readiness::set_draining`] takes the node out of rotation.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The admin HTTP listener's address (`admin.listen`), if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The STARTTLS listener's address.
    pub fn starttls_addr(&self) -> Option<SocketAddr> {
        self.starttls_addr
    }
    /// The direct-TLS listener's address.
    pub fn direct_tls_addr(&self) -> Option<SocketAddr> {
        self.direct_tls_addr
    }
    /// The router (for tests and admin).
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }
    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Stops accepting, tells every session `system-shutdown` (RFC 6120 §4.9.3.20) and waits
    /// for the listeners to end.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Give sessions a moment to write their stream errors.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(raft) = self.raft.take() {
            raft.shutdown().await;
        }
    }
}

/// Runs a node until ctrl-c or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let server = Server::start(settings).await?;
    wait_for_signal().await;
    info!(what = "shutting-down");
    server.stop().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
