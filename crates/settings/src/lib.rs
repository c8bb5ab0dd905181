//! Corvid's configuration: one typed tree, each section owned by the subsystem that reads it,
//! loaded from a TOML file (the `config` crate) with every key overridable from the environment
//! as `CORVID__SECTION__KEY`, and validated before anything starts.
//!
//! # Layout
//! - this file: the [`Settings`] tree, every field documented, with its default.
//! - `load.rs`: [`load`]: defaults ← file ← environment; unknown keys are errors naming the key;
//!   then [`Settings::validate`]. Errors are [`ConfigError`], whose `Display` names the key.
//!
//! `deploy/corvid.example.toml` documents every key and must parse to the defaults.

use std::path::PathBuf;

use serde::Deserialize;

mod load;

pub use load::{load, ConfigError};

/// The version tag this build understands.
pub const CONFIG_VERSION: u32 = 1;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Format version of the file; must be [`CONFIG_VERSION`].
    pub version: u32,
    /// Identity of this server.
    pub server: ServerConfig,
    /// Client listeners and their behaviour.
    pub c2s: C2sConfig,
    /// Certificate and key.
    pub tls: TlsConfig,
    /// Durable storage.
    pub storage: StorageConfig,
    /// Limits on what a client controls.
    pub limits: LimitsConfig,
    /// Timeouts, in seconds.
    pub timeouts: TimeoutsConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Logging.
    pub log: LogConfig,
    /// Running as one member of a cluster (off: a single node).
    pub cluster: ClusterConfig,
    /// The admin HTTP listener (health probes and Prometheus metrics).
    pub admin: AdminConfig,
    /// OpenTelemetry export of traces, metrics and logs.
    pub telemetry: TelemetryConfig,
}

/// The small HTTP listener for operators: `/healthz` (alive), `/readyz` (ready for traffic),
/// `/metrics` (Prometheus text format).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `host:port` it listens on; empty disables it.
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".into(),
        }
    }
}

/// OpenTelemetry: traces, metrics and logs pushed over OTLP to a collector. Export never holds
/// XMPP traffic: batches wait in bounded queues and are dropped when the collector is away.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Collector URL, e.g. `http://otel-collector:4317` (gRPC) or `http://otel-collector:4318`
    /// (HTTP); empty: nothing is exported (metrics are still served on the admin listener).
    pub otlp_endpoint: String,
    /// `grpc` (OTLP over gRPC) or `http` (OTLP over HTTP with protobuf bodies).
    pub otlp_protocol: String,
    /// The `service.name` resource attribute of everything exported.
    pub service_name: String,
    /// Fraction of new traces recorded, from 0.0 to 1.0; a trace started on another node
    /// follows that node's decision.
    pub sample_ratio: f64,
    /// Milliseconds between metric exports.
    pub export_interval_ms: u64,
    /// Milliseconds one export may take before it is abandoned (and its data dropped).
    pub export_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            otlp_protocol: "grpc".into(),
            service_name: "corvid".into(),
            sample_ratio: 1.0,
            export_interval_ms: 10_000,
            export_timeout_ms: 5_000,
        }
    }
}

/// Identity of this server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The XMPP domains served (the first is the default). Each must be a valid JID domainpart.
    pub domains: Vec<String>,
}

/// Client-to-server listeners.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct C2sConfig {
    /// Address for plain TCP with STARTTLS (RFC 6120 §5); empty disables it.
    pub starttls_listen: String,
    /// Address for direct TLS (XEP-0368, ALPN `xmpp-client`); empty disables it.
    pub direct_tls_listen: String,
    /// Refuse everything but STARTTLS before TLS (RFC 6120 §5.3.1 `<required/>`).
    pub require_starttls: bool,
    /// Most connections, node-wide, that have not yet authenticated; more are refused at accept.
    pub max_unauthenticated: usize,
    /// Most unauthenticated connections from one IP address.
    pub max_unauthenticated_per_ip: usize,
    /// Sustained read rate allowed per connection, bytes per second.
    pub read_rate_bytes_per_sec: u32,
    /// Burst above the sustained rate, in bytes.
    pub read_burst_bytes: u32,
    /// Where clients of a draining edge are sent (`host` or `host:port`, RFC 6120 §4.9.3.19
    /// `see-other-host`); empty: they get `system-shutdown` and reconnect as they would anyway.
    pub see_other_host: String,
    /// Seconds a draining edge leaves its clients before closing their streams, when the drain
    /// request gives none.
    pub drain_grace_secs: u64,
}

/// Certificate and private key, PEM. Both empty: a self-signed certificate for the first
/// domain is generated and kept in the data folder (with a warning).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain file.
    pub cert_file: String,
    /// PEM private key file.
    pub key_file: String,
}

/// Storage backend.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `embedded` (an on-disk database for one node) or `redis` (shared by every node).
    pub backend: String,
    /// Data folder of the embedded store (also holds a generated certificate, whatever the
    /// backend).
    pub path: PathBuf,
    /// MiB of memory the embedded store may use to cache its file's pages. The kernel's page
    /// cache holds the file as well, so a small cache costs a system call per page missed, not
    /// a disk read.
    pub cache_mb: u64,
    /// The Redis backend (used when `backend` is `redis`; checked always).
    pub redis: RedisConfig,
}

/// How to reach the Redis that stores accounts and user data.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db`, `redis://user:password@host:port/db` for ACL authentication, or
    /// `rediss://…` for TLS. The password is never logged.
    pub url: String,
    /// First part of every key, so several deployments can share one Redis. Non-empty, no
    /// spaces or braces.
    pub key_prefix: String,
    /// Multiplexed connections each node keeps open, used in turn.
    pub connections: usize,
    /// Milliseconds allowed to establish a connection.
    pub connect_timeout_ms: u64,
    /// Milliseconds allowed for each store operation; past it the operation fails (a login
    /// gets `temporary-auth-failure`) instead of waiting on a dead Redis.
    pub command_timeout_ms: u64,
    /// PEM file with the CA certificate(s) that signed the Redis server's certificate, for a
    /// private CA; empty uses the system's roots. Only with a `rediss://` URL.
    pub tls_ca_file: String,
}

/// Limits on what a client controls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest stanza in bytes.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Failed SASL attempts allowed on one connection before it is closed.
    pub max_auth_attempts: u32,
    /// Most resources bound at once by one account.
    pub max_resources_per_user: usize,
    /// Stanzas queued for one session before it is considered stuck and closed.
    pub session_queue: usize,
    /// Messages stored for one offline account (XEP-0160); when full, senders get
    /// `service-unavailable`.
    pub max_offline_messages: usize,
}

/// Timeouts, in seconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    /// Each negotiation step (stream header, STARTTLS, each SASL step, bind) must finish within this.
    pub negotiation_secs: u64,
    /// TLS handshake.
    pub tls_handshake_secs: u64,
    /// An authenticated connection that sends nothing (not even whitespace) for this long
    /// gets `connection-timeout`.
    pub idle_secs: u64,
    /// How long to wait for the peer's `</stream:stream>` after sending ours.
    pub close_secs: u64,
}

/// Authentication.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// PBKDF2 iterations for new SCRAM credentials (at least 4096, RFC 7677 §4).
    pub scram_iterations: u32,
    /// Offer PLAIN (only ever over TLS).
    pub allow_plain: bool,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `corvid_c2s=debug,info`, …
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

/// Running as one member of a cluster, in one of the roles of [`ClusterRole`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Off (the default): a single node with an in-process session table; the other keys are
    /// still checked but not used.
    pub enabled: bool,
    /// `combined` (the default: a registry voter and an edge), `registry` or `edge`; see
    /// [`ClusterRole`] and [`ClusterConfig::role`].
    pub role: String,
    /// This node's id in the cluster, at least 1. A `combined` or `registry` node is listed in
    /// `members`; an `edge` is not (it joins as a learner under this id). An `edge` may set 0:
    /// it then picks a random id of its own at every start ([`ClusterConfig::EDGE_ID_FLOOR`] or
    /// more), for edges started by a Kubernetes Deployment, whose pods have no stable ordinal.
    pub node_id: u64,
    /// Where this node's gRPC server listens (Raft, stanza forwarding between nodes).
    pub listen: String,
    /// `host:port` other nodes use to reach `listen`; empty uses `listen`.
    pub advertise: String,
    /// The registry voters as `id=host:port` (their advertised addresses): this node included
    /// for `combined` and `registry`; for an `edge`, the nodes it asks to join the group.
    pub members: Vec<String>,
    /// Lets the member with the lowest id create the Raft group when its data folder holds no
    /// group yet. Idempotent: a node that already belongs to a group ignores it.
    pub bootstrap: bool,
    /// Folder of the Raft log and snapshot; empty uses `<storage.path>/raft`.
    pub data_dir: String,
    /// Milliseconds a node's lease lasts; a node whose lease runs out is declared down and its
    /// sessions dropped.
    pub lease_ttl_ms: u64,
    /// Milliseconds between a node's lease renewals; less than `lease_ttl_ms`.
    pub renew_every_ms: u64,
    /// Milliseconds after which the Raft leader removes from the group a learner (an edge)
    /// that it has seen declared down for that long, so that edges that die without leaving
    /// (a crashed pod) do not stay members forever; 0: never (remove them by hand).
    pub forget_down_edges_after_ms: u64,
    /// Mutual TLS between nodes (`[cluster.tls]`); all empty: plain HTTP/2.
    pub tls: ClusterTlsConfig,
}

/// Mutual TLS for every gRPC connection between nodes (Raft, stanza routing, admin). Either
/// all three files are set or none is. With them, a node serves and calls only nodes whose
/// certificate chains to `ca_file`: holding a certificate from the cluster's CA is what makes a
/// process a member.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterTlsConfig {
    /// PEM file of the cluster CA that issued every node's certificate.
    pub ca_file: String,
    /// PEM file of this node's certificate (chain), issued by the cluster CA for the host part
    /// of the node's advertised address (DNS name or IP address).
    pub cert_file: String,
    /// PEM file of this node's private key.
    pub key_file: String,
    /// The DNS name every peer's certificate must hold, checked instead of the host dialled;
    /// empty (the default): the host part of the address dialled. With it, one certificate
    /// naming it serves nodes advertised by IP address (Kubernetes pod IPs). Needs the files.
    pub server_name: String,
}

impl ClusterTlsConfig {
    /// Whether mutual TLS is configured.
    pub fn is_enabled(&self) -> bool {
        !(self.ca_file.is_empty() && self.cert_file.is_empty() && self.key_file.is_empty())
    }

    /// The name peers' certificates are checked against, if `server_name` is set.
    pub fn server_name(&self) -> Option<&str> {
        let name = self.server_name.trim();
        (!name.is_empty()).then_some(name)
    }
}

/// What a cluster node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterRole {
    /// A voter of the registry's Raft group and an edge: the default, and what a cluster of
    /// identical nodes runs.
    Combined,
    /// A voter of the registry's Raft group, with its durable log and snapshots; no client
    /// listeners, no sessions, no lease.
    Registry,
    /// Client listeners, sessions and modules; a Raft learner that keeps a local replica of the
    /// session table, with no durable state of its own.
    Edge,
}

impl ClusterRole {
    /// Every role with its name in the configuration.
    pub const ALL: [(&'static str, ClusterRole); 3] = [
        ("combined", ClusterRole::Combined),
        ("registry", ClusterRole::Registry),
        ("edge", ClusterRole::Edge),
    ];

    /// The role named `name` (as in `cluster.role`), if there is one.
    pub fn parse(name: &str) -> Option<ClusterRole> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name.trim())
            .map(|(_, r)| *r)
    }

    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            ClusterRole::Combined => "combined",
            ClusterRole::Registry => "registry",
            ClusterRole::Edge => "edge",
        }
    }

    /// A voter of the registry group (durable Raft log, counted in the quorum).
    pub fn is_voter(self) -> bool {
        matches!(self, ClusterRole::Combined | ClusterRole::Registry)
    }

    /// Holds client connections and sessions (and a lease).
    pub fn is_edge(self) -> bool {
        matches!(self, ClusterRole::Combined | ClusterRole::Edge)
    }
}

impl ClusterConfig {
    /// The smallest id an edge with `node_id = 0` picks for itself (2^32): far above any id an
    /// operator gives a registry voter, so a picked id never collides with one.
    pub const EDGE_ID_FLOOR: u64 = 1 << 32;

    /// Whether this node picks its own id at start (an edge with `node_id = 0`).
    pub fn picks_own_id(&self) -> bool {
        self.node_id == 0 && self.role() == ClusterRole::Edge
    }

    /// This node's role; a `cluster.role` that names none ([`Settings::validate`] refuses it)
    /// reads as `combined`.
    pub fn role(&self) -> ClusterRole {
        ClusterRole::parse(&self.role).unwrap_or(ClusterRole::Combined)
    }

    /// The members as `(id, address)` pairs, in the order given. Entries that do not parse are
    /// skipped ([`Settings::validate`] reports them).
    pub fn member_addrs(&self) -> Vec<(u64, String)> {
        self.members
            .iter()
            .filter_map(|m| {
                let (id, addr) = m.split_once('=')?;
                Some((id.trim().parse().ok()?, addr.trim().to_owned()))
            })
            .collect()
    }

    /// The address peers use for this node: `advertise`, or `listen` when that is empty.
    pub fn advertised(&self) -> &str {
        if self.advertise.trim().is_empty() {
            &self.listen
        } else {
            &self.advertise
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            role: "combined".into(),
            node_id: 1,
            listen: "127.0.0.1:7001".into(),
            advertise: String::new(),
            members: vec!["1=127.0.0.1:7001".into()],
            bootstrap: true,
            data_dir: String::new(),
            lease_ttl_ms: 5000,
            renew_every_ms: 1000,
            forget_down_edges_after_ms: 600_000,
            tls: ClusterTlsConfig::default(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            server: ServerConfig::default(),
            c2s: C2sConfig::default(),
            tls: TlsConfig::default(),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            timeouts: TimeoutsConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            cluster: ClusterConfig::default(),
            admin: AdminConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}
impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            domains: vec!["localhost".into()],
        }
    }
}
impl Default for C2sConfig {
    fn default() -> Self {
        Self {
            starttls_listen: "0.0.0.0:5222".into(),
            direct_tls_listen: "0.0.0.0:5223".into(),
            require_starttls: true,
            max_unauthenticated: 1000,
            max_unauthenticated_per_ip: 100,
            read_rate_bytes_per_sec: 64 * 1024,
            read_burst_bytes: 512 * 1024,
            see_other_host: String::new(),
            drain_grace_secs: 30,
        }
    }
}
impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: "embedded".into(),
            path: PathBuf::from("./data"),
            cache_mb: 4,
            redis: RedisConfig::default(),
        }
    }
}
impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".into(),
            key_prefix: "corvid".into(),
            connections: 4,
            connect_timeout_ms: 2000,
            command_timeout_ms: 1000,
            tls_ca_file: String::new(),
        }
    }
}
impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_stanza_bytes: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
            max_auth_attempts: 3,
            max_resources_per_user: 32,
            session_queue: 1024,
            max_offline_messages: 1000,
        }
    }
}
impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            negotiation_secs: 30,
            tls_handshake_secs: 10,
            idle_secs: 600,
            close_secs: 5,
        }
    }
}
impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            scram_iterations: 10_000,
            allow_plain: true,
        }
    }
}
impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}
