//! [`Settings::validate`]: every value checked, the first bad one reported with its key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use crate::load::ConfigError;
use crate::{ClusterRole, Settings, CONFIG_VERSION};

/// Storage backends this build can open.
const BACKENDS: &[&str] = &["embedded", "redis"];
/// URL schemes of `storage.redis.url`: plain and TLS.
const REDIS_SCHEMES: &[&str] = &["redis://", "rediss://"];
/// Redis connections are multiplexed: past a few, more only cost sockets on the Redis side.
const MAX_REDIS_CONNECTIONS: usize = 64;
/// The most memory `storage.cache_mb` may give the embedded store's page cache (64 GiB).
const MAX_STORE_CACHE_MB: u64 = 65_536;
/// `telemetry.otlp_protocol` values: OTLP over gRPC, OTLP over HTTP (protobuf bodies).
const OTLP_PROTOCOLS: &[&str] = &["grpc", "http"];
/// URL schemes of `telemetry.otlp_endpoint`.
const OTLP_SCHEMES: &[&str] = &["http://", "https://"];
/// Log output formats.
const LOG_FORMATS: &[&str] = &["text", "json"];
/// RFC 6120 §13.12: servers must accept stanzas of at least 10000 bytes.
const MIN_STANZA_BYTES: usize = 10_000;
/// Below this, ordinary stanzas (message → body, iq → query → item → group) are refused.
const MIN_DEPTH: usize = 4;
/// Below this, an ordinary stanza header (`to`, `from`, `id`, `type`, `xml:lang`, `xmlns`…) is refused.
const MIN_ATTRIBUTES: usize = 8;
/// Below this, a burst of presence on login would close healthy sessions.
const MIN_SESSION_QUEUE: usize = 16;
/// RFC 7677 §4: at least 4096 iterations.
const MIN_SCRAM_ITERATIONS: u32 = 4096;
/// Above this, one login costs seconds of CPU, which a client can use to exhaust the server.
const MAX_SCRAM_ITERATIONS: u32 = 10_000_000;
/// RFC 1035 §2.3.4 (and RFC 7622 §3.2 for domainparts): at most 253 bytes in text form.
const MAX_DOMAIN_BYTES: usize = 253;
/// RFC 1035 §2.3.4: at most 63 bytes per label.
const MAX_LABEL_BYTES: usize = 63;

impl Settings {
    /// Checks every value; the first bad one is reported with its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version != CONFIG_VERSION {
            return invalid(
                "version",
                format!(
                    "this build reads version {CONFIG_VERSION}, the configuration says {}",
                    self.version
                ),
            );
        }
        self.validate_server()?;
        self.validate_c2s()?;
        self.validate_tls()?;
        self.validate_storage()?;
        self.validate_limits()?;
        self.validate_timeouts()?;
        self.validate_auth()?;
        self.validate_log()?;
        self.validate_telemetry()?;
        self.validate_cluster()
    }

    /// Checked whether or not the cluster is enabled, like the Redis section.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        let Some(role) = ClusterRole::parse(&c.role) else {
            let names: Vec<&str> = ClusterRole::ALL.iter().map(|(n, _)| *n).collect();
            return invalid(
                "cluster.role",
                format!("`{}` is not one of: {}", c.role, names.join(", ")),
            );
        };
        if role != ClusterRole::Combined && !c.enabled {
            return invalid(
                "cluster.role",
                format!(
                    "`{}` needs cluster.enabled = true (a single node is always combined)",
                    c.role
                ),
            );
        }
        if c.node_id == 0 && role != ClusterRole::Edge {
            return invalid(
                "cluster.node_id",
                format!(
                    "0 (pick an id at start) is only for an edge; a {} node is a registry voter and needs its id from cluster.members",
                    role.name()
                ),
            );
        }
        if c.listen.trim().is_empty() {
            return invalid("cluster.listen", "must not be empty");
        }
        check_listen("cluster.listen", &c.listen)?;
        if !c.advertise.trim().is_empty() && !is_host_port(&c.advertise) {
            return invalid(
                "cluster.advertise",
                format!("`{}` is not `host:port`", c.advertise),
            );
        }
        if c.members.is_empty() {
            return invalid("cluster.members", "at least this node is needed");
        }
        let mut ids = HashSet::new();
        for m in &c.members {
            let Some((id, addr)) = m.split_once('=') else {
                return invalid(
                    "cluster.members",
                    format!("`{m}` is not `id=host:port`, e.g. `1=10.0.0.1:7001`"),
                );
            };
            let id = match id.trim().parse::<u64>() {
                Ok(id) if id >= 1 => id,
                _ => {
                    return invalid(
                        "cluster.members",
                        format!("`{m}`: the id must be a whole number of at least 1"),
                    )
                }
            };
            if !is_host_port(addr.trim()) {
                return invalid(
                    "cluster.members",
                    format!("`{m}`: `{addr}` is not `host:port`"),
                );
            }
            if !ids.insert(id) {
                return invalid(
                    "cluster.members",
                    format!("id {id} is listed more than once"),
                );
            }
        }
        match (role.is_voter(), ids.contains(&c.node_id)) {
            (true, false) => {
                return invalid(
                    "cluster.node_id",
                    format!(
                        "{} is not one of cluster.members (a {} node is a registry voter)",
                        c.node_id,
                        role.name()
                    ),
                )
            }
            (false, true) => {
                return invalid(
                    "cluster.node_id",
                    format!(
                        "{} is one of cluster.members, which lists the registry voters; an edge needs an id of its own",
                        c.node_id
                    ),
                )
            }
            _ => {}
        }
        positive("cluster.lease_ttl_ms", c.lease_ttl_ms)?;
        positive("cluster.renew_every_ms", c.renew_every_ms)?;
        if c.renew_every_ms >= c.lease_ttl_ms {
            return invalid(
                "cluster.renew_every_ms",
                format!(
                    "{} is not below cluster.lease_ttl_ms ({}): the lease would run out between renewals",
                    c.renew_every_ms, c.lease_ttl_ms
                ),
            );
        }
        let tls = &c.tls;
        if tls.is_enabled() {
            for (key, file) in [
                ("cluster.tls.ca_file", &tls.ca_file),
                ("cluster.tls.cert_file", &tls.cert_file),
                ("cluster.tls.key_file", &tls.key_file),
            ] {
                if file.is_empty() {
                    return invalid(
                        key,
                        "must be set: mutual TLS needs the CA, the node's certificate and its key",
                    );
                }
                check_file_exists(key, file)?;
            }
        }
        if let Some(name) = tls.server_name() {
            if !tls.is_enabled() {
                return invalid(
                    "cluster.tls.server_name",
                    "needs cluster.tls.ca_file, cert_file and key_file: it names what peers' certificates are checked against",
                );
            }
            let dns_name = name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !dns_name {
                return invalid(
                    "cluster.tls.server_name",
                    format!("`{name}` is not a DNS name (letters, digits, hyphens, dots)"),
                );
            }
        }
        Ok(())
    }

    fn validate_server(&self) -> Result<(), ConfigError> {
        let domains = &self.server.domains;
        if domains.is_empty() {
            return invalid("server.domains", "at least one domain is needed");
        }
        let mut seen = HashSet::new();
        for domain in domains {
            if let Err(reason) = check_domain(domain) {
                return invalid(
                    "server.domains",
                    format!("`{domain}` is not a valid domain: {reason}"),
                );
            }
            if !seen.insert(domain.as_str()) {
                return invalid(
                    "server.domains",
                    format!("`{domain}` is listed more than once"),
                );
            }
        }
        Ok(())
    }

    fn validate_c2s(&self) -> Result<(), ConfigError> {
        let c2s = &self.c2s;
        check_listen("c2s.starttls_listen", &c2s.starttls_listen)?;
        check_listen("c2s.direct_tls_listen", &c2s.direct_tls_listen)?;
        // A registry-only node opens no client listener, so it needs none configured.
        let serves_clients = !self.cluster.enabled || self.cluster.role().is_edge();
        if serves_clients
            && c2s.starttls_listen.trim().is_empty()
            && c2s.direct_tls_listen.trim().is_empty()
        {
            return invalid(
                "c2s.starttls_listen",
                "c2s.starttls_listen and c2s.direct_tls_listen are both empty; at least one listener is needed",
            );
        }
        positive("c2s.max_unauthenticated", c2s.max_unauthenticated)?;
        positive(
            "c2s.max_unauthenticated_per_ip",
            c2s.max_unauthenticated_per_ip,
        )?;
        positive("c2s.read_rate_bytes_per_sec", c2s.read_rate_bytes_per_sec)?;
        positive("c2s.read_burst_bytes", c2s.read_burst_bytes)?;
        check_other_host(&c2s.see_other_host)
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let tls = &self.tls;
        match (tls.cert_file.is_empty(), tls.key_file.is_empty()) {
            (true, true) => Ok(()),
            (false, true) => invalid(
                "tls.key_file",
                "tls.cert_file is set, so tls.key_file must be set too",
            ),
            (true, false) => invalid(
                "tls.cert_file",
                "tls.key_file is set, so tls.cert_file must be set too",
            ),
            (false, false) => {
                check_file_exists("tls.cert_file", &tls.cert_file)?;
                check_file_exists("tls.key_file", &tls.key_file)
            }
        }
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        if !BACKENDS.contains(&self.storage.backend.as_str()) {
            return invalid(
                "storage.backend",
                format!(
                    "`{}` is not one of: {}",
                    self.storage.backend,
                    BACKENDS.join(", ")
                ),
            );
        }
        if !(1..=MAX_STORE_CACHE_MB).contains(&self.storage.cache_mb) {
            return invalid(
                "storage.cache_mb",
                format!(
                    "{} is outside 1..={MAX_STORE_CACHE_MB}",
                    self.storage.cache_mb
                ),
            );
        }
        if self.storage.path.as_os_str().is_empty() {
            return invalid("storage.path", "must not be empty");
        }
        self.validate_redis()
    }

    /// The Redis section is checked whatever the backend, so a mistake in it shows before the
    /// day the backend is switched. The URL may hold a password: it is never echoed.
    fn validate_redis(&self) -> Result<(), ConfigError> {
        let redis = &self.storage.redis;
        let Some(scheme) = REDIS_SCHEMES.iter().find(|s| redis.url.starts_with(**s)) else {
            return invalid(
                "storage.redis.url",
                "must start with redis:// (or rediss:// for TLS), e.g. redis://127.0.0.1:6379/0",
            );
        };
        if redis.url.len() == scheme.len() {
            return invalid("storage.redis.url", "names no host after the scheme");
        }
        let prefix = &redis.key_prefix;
        if prefix.is_empty() {
            return invalid("storage.redis.key_prefix", "must not be empty");
        }
        if let Some(c) = prefix
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '{' | '}'))
        {
            return invalid(
                "storage.redis.key_prefix",
                format!(
                    "contains {c:?}; spaces, control characters and braces (Redis Cluster hash tags) are not allowed"
                ),
            );
        }
        if !(1..=MAX_REDIS_CONNECTIONS).contains(&redis.connections) {
            return invalid(
                "storage.redis.connections",
                format!(
                    "{} is outside 1..={MAX_REDIS_CONNECTIONS}",
                    redis.connections
                ),
            );
        }
        positive("storage.redis.connect_timeout_ms", redis.connect_timeout_ms)?;
        positive("storage.redis.command_timeout_ms", redis.command_timeout_ms)?;
        if !redis.tls_ca_file.is_empty() {
            if *scheme != "rediss://" {
                return invalid(
                    "storage.redis.tls_ca_file",
                    "is set, so storage.redis.url must start with rediss:// (TLS)",
                );
            }
            check_file_exists("storage.redis.tls_ca_file", &redis.tls_ca_file)?;
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        at_least(
            "limits.max_stanza_bytes",
            limits.max_stanza_bytes,
            MIN_STANZA_BYTES,
            "RFC 6120 §13.12 requires accepting stanzas of at least 10000 bytes",
        )?;
        at_least(
            "limits.max_depth",
            limits.max_depth,
            MIN_DEPTH,
            "ordinary stanzas nest this deep",
        )?;
        at_least(
            "limits.max_attributes",
            limits.max_attributes,
            MIN_ATTRIBUTES,
            "ordinary stanza headers carry this many attributes",
        )?;
        positive("limits.max_auth_attempts", limits.max_auth_attempts)?;
        positive(
            "limits.max_resources_per_user",
            limits.max_resources_per_user,
        )?;
        at_least(
            "limits.session_queue",
            limits.session_queue,
            MIN_SESSION_QUEUE,
            "a smaller queue closes healthy sessions during presence bursts",
        )?;
        positive("limits.max_offline_messages", limits.max_offline_messages)
    }

    fn validate_timeouts(&self) -> Result<(), ConfigError> {
        let t = &self.timeouts;
        positive("timeouts.negotiation_secs", t.negotiation_secs)?;
        positive("timeouts.tls_handshake_secs", t.tls_handshake_secs)?;
        positive("timeouts.idle_secs", t.idle_secs)?;
        positive("timeouts.close_secs", t.close_secs)
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let n = self.auth.scram_iterations;
        if !(MIN_SCRAM_ITERATIONS..=MAX_SCRAM_ITERATIONS).contains(&n) {
            return invalid(
                "auth.scram_iterations",
                format!(
                    "{n} is outside {MIN_SCRAM_ITERATIONS}..={MAX_SCRAM_ITERATIONS} (RFC 7677 §4 requires at least \
                     {MIN_SCRAM_ITERATIONS}; more than {MAX_SCRAM_ITERATIONS} makes logins a denial-of-service lever)"
                ),
            );
        }
        Ok(())
    }

    /// `[admin]` and `[telemetry]`.
    fn validate_telemetry(&self) -> Result<(), ConfigError> {
        if !self.admin.listen.trim().is_empty() {
            check_listen("admin.listen", &self.admin.listen)?;
        }
        let t = &self.telemetry;
        let endpoint = t.otlp_endpoint.trim();
        if !endpoint.is_empty()
            && !OTLP_SCHEMES.iter().any(|scheme| {
                endpoint
                    .strip_prefix(scheme)
                    .is_some_and(|rest| !rest.is_empty())
            })
        {
            return invalid(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not an http:// or https:// URL, e.g. `http://otel-collector:4317`"),
            );
        }
        if !OTLP_PROTOCOLS.contains(&t.otlp_protocol.as_str()) {
            return invalid(
                "telemetry.otlp_protocol",
                format!(
                    "`{}` is not one of: {}",
                    t.otlp_protocol,
                    OTLP_PROTOCOLS.join(", ")
                ),
            );
        }
        if t.service_name.trim().is_empty() {
            return invalid("telemetry.service_name", "must not be empty");
        }
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            return invalid(
                "telemetry.sample_ratio",
                format!("{} is outside 0.0..=1.0", t.sample_ratio),
            );
        }
        positive("telemetry.export_interval_ms", t.export_interval_ms)?;
        positive("telemetry.export_timeout_ms", t.export_timeout_ms)
    }

    fn validate_log(&self) -> Result<(), ConfigError> {
        if self.log.level.trim().is_empty() {
            return invalid("log.level", "must not be empty (e.g. `info`)");
        }
        if !LOG_FORMATS.contains(&self.log.format.as_str()) {
            return invalid(
                "log.format",
                format!(
                    "`{}` is not one of: {}",
                    self.log.format,
                    LOG_FORMATS.join(", ")
                ),
            );
        }
        Ok(())
    }
}

fn invalid<T>(key: &str, reason: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::InvalidValue {
        key: key.to_owned(),
        reason: reason.into(),
    })
}

fn positive<T>(key: &str, value: T) -> Result<(), ConfigError>
where
    T: PartialEq + Default,
{
    if value == T::default() {
        return invalid(key, "must be greater than 0");
    }
    Ok(())
}

fn at_least(key: &str, value: usize, floor: usize, why: &str) -> Result<(), ConfigError> {
    if value < floor {
        return invalid(
            key,
            format!("{value} is below the minimum of {floor} ({why})"),
        );
    }
    Ok(())
}

/// Empty (disabled) or an `ip:port` socket address.
fn check_listen(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Ok(());
    }
    match value.parse::<SocketAddr>() {
        Ok(_) => Ok(()),
        Err(_) => invalid(
            key,
            format!("`{value}` is not an address such as `0.0.0.0:5222` or `[::]:5222` (empty disables the listener)"),
        ),
    }
}

/// `c2s.see_other_host`: empty, or what RFC 6120 §4.9.3.19 lets `<see-other-host/>` carry: a
/// domain name, an IPv4 address or an IPv6 address in square brackets, each with an optional
/// `:port`.
fn check_other_host(value: &str) -> Result<(), ConfigError> {
    const KEY: &str = "c2s.see_other_host";
    if value.is_empty() {
        return Ok(());
    }
    let port_ok = |port: Option<&str>| port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let ok = if let Some(rest) = value.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, "")) => ip.parse::<std::net::Ipv6Addr>().is_ok(),
            Some((ip, port)) => {
                ip.parse::<std::net::Ipv6Addr>().is_ok()
                    && port.strip_prefix(':').is_some_and(|p| port_ok(Some(p)))
            }
            None => false,
        }
    } else {
        let (host, port) = match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        };
        !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && port_ok(port)
    };
    if ok {
        Ok(())
    } else {
        invalid(
            KEY,
            format!("`{value}` is not a host, host:port or [IPv6]:port (empty: none)"),
        )
    }
}

/// `host:port` with a non-empty host and a port number.
fn is_host_port(value: &str) -> bool {
    match value.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

fn check_file_exists(key: &str, path: &str) -> Result<(), ConfigError> {
    if Path::new(path).is_file() {
        Ok(())
    } else {
        invalid(key, format!("`{path}` does not exist or is not a file"))
    }
}

/// A simple host-name check (the JID crate does the full IDNA/PRECIS work where JIDs are parsed):
/// dot-separated labels of letters, digits and hyphens, no label empty, longer than 63 bytes, or
/// starting or ending with a hyphen; at most 253 bytes; lowercase.
fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("it is empty".into());
    }
    if domain.len() > MAX_DOMAIN_BYTES {
        return Err(format!("it is longer than {MAX_DOMAIN_BYTES} bytes"));
    }
    if domain.chars().any(char::is_uppercase) {
        return Err("it must be lowercase".into());
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(
                "it has an empty label (two dots in a row, or a leading or trailing dot)".into(),
            );
        }
        if label.len() > MAX_LABEL_BYTES {
            return Err(format!(
                "label `{label}` is longer than {MAX_LABEL_BYTES} bytes"
            ));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_alphanumeric() || *c == '-')) {
            return Err(format!(
                "it contains {c:?}; only letters, digits, hyphens and dots are allowed"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` starts or ends with a hyphen"));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use std::io::Write;

    use super::*;

    fn key_of(result: Result<(), ConfigError>) -> String {
        match result {
            Err(ConfigError::InvalidValue { key, .. }) => key,
            other => panic!("expected InvalidValue, got {other:?}"),
        }
    }

    fn with(change: impl FnOnce(&mut Settings)) -> Result<(), ConfigError> {
        let mut settings = Settings::default();
        change(&mut settings);
        settings.validate()
    }

    #[test]
    fn see_other_host_is_a_host_with_an_optional_port() {
        // RFC 6120 §4.9.3.19: a DNS domain name, IPv4 address or bracketed IPv6 address, each
        // optionally followed by a port.
        for ok in [
            "",
            "xmpp2.example.com",
            "xmpp2.example.com:5222",
            "192.0.2.7",
            "192.0.2.7:5223",
            "[2001:db8::9]",
            "[2001:db8::9]:5222",
        ] {
            assert!(with(|s| s.c2s.see_other_host = ok.into()).is_ok(), "{ok}");
        }
        for bad in [
            "xmpp2.example.com:",
            "xmpp2.example.com:0",
            "xmpp2.example.com:99999",
            "2001:db8::9",
            "[2001:db8::9",
            "[nope]:5222",
            "two words",
            "<evil/>",
            ":5222",
        ] {
            let result = with(|s| s.c2s.see_other_host = bad.into());
            assert_eq!(key_of(result), "c2s.see_other_host", "{bad}");
        }
    }

    #[test]
    fn domains() {
        assert!(check_domain("localhost").is_ok());
        assert!(check_domain("a-b.example.org").is_ok());
        assert!(check_domain("bücher.example").is_ok());
        assert!(check_domain("127.0.0.1").is_ok());
        for bad in [
            "",
            "Example.org",
            "a..b",
            ".a",
            "a.",
            "-a.b",
            "a-.b",
            "a_b",
            "a b",
            "a@b",
            "a/b",
        ] {
            assert!(check_domain(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_domain(&"a".repeat(64)).is_err());
        assert!(check_domain(&"a".repeat(63)).is_ok());
        let long = vec!["a".repeat(50); 6].join(".");
        assert!(check_domain(&long).is_err());
        assert_eq!(
            key_of(with(
                |s| s.server.domains = vec!["a.example".into(), "a.example".into()]
            )),
            "server.domains"
        );
    }

    #[test]
    fn listeners() {
        assert!(with(|s| s.c2s.starttls_listen.clear()).is_ok());
        assert!(with(|s| s.c2s.direct_tls_listen = "[::]:5223".into()).is_ok());
        let both_empty = with(|s| {
            s.c2s.starttls_listen.clear();
            s.c2s.direct_tls_listen.clear();
        });
        assert_eq!(key_of(both_empty), "c2s.starttls_listen");
        assert_eq!(
            key_of(with(|s| s.c2s.starttls_listen = "localhost:5222".into())),
            "c2s.starttls_listen"
        );
        assert_eq!(
            key_of(with(|s| s.c2s.max_unauthenticated_per_ip = 0)),
            "c2s.max_unauthenticated_per_ip"
        );
        assert_eq!(
            key_of(with(|s| s.c2s.read_rate_bytes_per_sec = 0)),
            "c2s.read_rate_bytes_per_sec"
        );
    }

    #[test]
    fn tls_files_must_come_in_pairs_and_exist() {
        assert_eq!(
            key_of(with(|s| s.tls.key_file = "/k.pem".into())),
            "tls.cert_file"
        );
        let mut cert = tempfile::NamedTempFile::new().unwrap();
        cert.write_all(b"cert").unwrap();
        let cert_path = cert.path().display().to_string();
        let missing = with(|s| {
            s.tls.cert_file = cert_path.clone();
            s.tls.key_file = "/nonexistent/key.pem".into();
        });
        assert_eq!(key_of(missing), "tls.key_file");
        let ok = with(|s| {
            s.tls.cert_file = cert_path.clone();
            s.tls.key_file = cert_path.clone();
        });
        assert!(ok.is_ok());
    }

    #[test]
    fn limits_floors_are_inclusive() {
        assert!(with(|s| s.limits.max_stanza_bytes = 10_000).is_ok());
        assert!(with(|s| s.limits.max_depth = 4).is_ok());
        assert!(with(|s| s.limits.max_attributes = 8).is_ok());
        assert!(with(|s| s.limits.session_queue = 16).is_ok());
        assert_eq!(
            key_of(with(|s| s.limits.max_attributes = 7)),
            "limits.max_attributes"
        );
        assert_eq!(
            key_of(with(|s| s.limits.max_auth_attempts = 0)),
            "limits.max_auth_attempts"
        );
        assert_eq!(
            key_of(with(|s| s.limits.max_resources_per_user = 0)),
            "limits.max_resources_per_user"
        );
        assert!(with(|s| s.limits.max_offline_messages = 1).is_ok());
        assert_eq!(
            key_of(with(|s| s.limits.max_offline_messages = 0)),
            "limits.max_offline_messages"
        );
    }

    #[test]
    fn scram_iterations_bounds() {
        assert!(with(|s| s.auth.scram_iterations = 4096).is_ok());
        assert!(with(|s| s.auth.scram_iterations = 10_000_000).is_ok());
        assert_eq!(
            key_of(with(|s| s.auth.scram_iterations = 10_000_001)),
            "auth.scram_iterations"
        );
    }

    #[test]
    fn redis_section() {
        let ok = |change: fn(&mut Settings)| assert!(with(change).is_ok());
        ok(|s| s.storage.redis.url = "rediss://corvid:pw@redis.example:6380/2".into());
        ok(|s| s.storage.redis.key_prefix = "tenant-7:xmpp".into());
        ok(|s| s.storage.redis.connections = 64);
        let key = |change: fn(&mut Settings)| key_of(with(change));
        for url in [
            "",
            "redis://",
            "http://127.0.0.1",
            "127.0.0.1:6379",
            "REDIS://h",
        ] {
            let err = with(|s| s.storage.redis.url = url.into()).unwrap_err();
            assert_eq!(key_of(Err(err)), "storage.redis.url", "{url:?}");
        }
        let secret = with(|s| s.storage.redis.url = "http://u:hunter2@h".into()).unwrap_err();
        assert!(!secret.to_string().contains("hunter2"), "{secret}");
        for prefix in ["", "a b", "a{b}", "a\tb"] {
            let err = with(|s| s.storage.redis.key_prefix = prefix.into()).unwrap_err();
            assert_eq!(key_of(Err(err)), "storage.redis.key_prefix", "{prefix:?}");
        }
        assert_eq!(
            key(|s| s.storage.redis.connections = 0),
            "storage.redis.connections"
        );
        assert_eq!(
            key(|s| s.storage.redis.connections = 65),
            "storage.redis.connections"
        );
        assert_eq!(
            key(|s| s.storage.redis.connect_timeout_ms = 0),
            "storage.redis.connect_timeout_ms"
        );
        assert_eq!(
            key(|s| s.storage.redis.command_timeout_ms = 0),
            "storage.redis.command_timeout_ms"
        );
        assert_eq!(
            key(|s| s.storage.redis.tls_ca_file = "/nonexistent/ca.pem".into()),
            "storage.redis.tls_ca_file",
            "a CA file needs rediss://"
        );
        assert_eq!(
            key(|s| {
                s.storage.redis.url = "rediss://h".into();
                s.storage.redis.tls_ca_file = "/nonexistent/ca.pem".into();
            }),
            "storage.redis.tls_ca_file",
            "a CA file must exist"
        );
        let mut ca = tempfile::NamedTempFile::new().unwrap();
        ca.write_all(b"-----BEGIN CERTIFICATE-----").unwrap();
        let ca_path = ca.path().display().to_string();
        let with_ca = with(|s| {
            s.storage.redis.url = "rediss://h".into();
            s.storage.redis.tls_ca_file = ca_path.clone();
        });
        assert!(with_ca.is_ok(), "{with_ca:?}");
    }

    #[test]
    fn cluster_tls_needs_all_three_files() {
        let pem = tempfile::NamedTempFile::new().unwrap();
        let path = pem.path().display().to_string();
        let err = with(|s| s.cluster.tls.ca_file = path.clone()).unwrap_err();
        assert_eq!(key_of(Err(err)), "cluster.tls.cert_file");
        let err = with(|s| {
            s.cluster.tls.ca_file = path.clone();
            s.cluster.tls.cert_file = path.clone();
        })
        .unwrap_err();
        assert_eq!(key_of(Err(err)), "cluster.tls.key_file");
        let err = with(|s| {
            s.cluster.tls.ca_file = path.clone();
            s.cluster.tls.cert_file = "/nonexistent/node.pem".into();
            s.cluster.tls.key_file = path.clone();
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/node.pem"), "{err}");
        assert_eq!(key_of(Err(err)), "cluster.tls.cert_file");
        let all = with(|s| {
            s.cluster.tls.ca_file = path.clone();
            s.cluster.tls.cert_file = path.clone();
            s.cluster.tls.key_file = path.clone();
        });
        assert!(all.is_ok(), "{all:?}");
    }

    #[test]
    fn cluster_tls_server_name_needs_the_files_and_a_dns_name() {
        let pem = tempfile::NamedTempFile::new().unwrap();
        let path = pem.path().display().to_string();
        let named = |name: &str, files: bool| {
            with(|s| {
                if files {
                    s.cluster.tls.ca_file = path.clone();
                    s.cluster.tls.cert_file = path.clone();
                    s.cluster.tls.key_file = path.clone();
                }
                s.cluster.tls.server_name = name.into();
            })
        };
        assert_eq!(
            key_of(named("corvid-cluster", false)),
            "cluster.tls.server_name"
        );
        for bad in ["corvid cluster", "host:7001", "-corvid", "a..b"] {
            assert_eq!(key_of(named(bad, true)), "cluster.tls.server_name", "{bad}");
        }
        for good in ["corvid-cluster", "peers.corvid.svc.cluster.local", ""] {
            assert!(named(good, true).is_ok(), "{good}");
        }
        let mut tls = crate::ClusterTlsConfig::default();
        assert_eq!(tls.server_name(), None);
        tls.server_name = " corvid-cluster ".into();
        assert_eq!(tls.server_name(), Some("corvid-cluster"));
    }

    #[test]
    fn admin_and_telemetry_keys_are_checked() {
        assert!(with(|s| s.admin.listen = String::new()).is_ok());
        assert_eq!(
            key_of(with(|s| s.admin.listen = "9090".into())),
            "admin.listen"
        );
        for bad in ["collector:4317", "grpc://collector:4317", "http://"] {
            assert_eq!(
                key_of(with(|s| s.telemetry.otlp_endpoint = bad.into())),
                "telemetry.otlp_endpoint",
                "{bad}"
            );
        }
        assert!(with(|s| s.telemetry.otlp_endpoint = "https://otel.example:4318".into()).is_ok());
        let err = with(|s| s.telemetry.otlp_protocol = "thrift".into()).unwrap_err();
        assert!(err.to_string().contains("grpc, http"), "{err}");
        assert_eq!(key_of(Err(err)), "telemetry.otlp_protocol");
        assert_eq!(
            key_of(with(|s| s.telemetry.service_name = " ".into())),
            "telemetry.service_name"
        );
        for bad in [-0.1, 1.5, f64::NAN] {
            assert_eq!(
                key_of(with(|s| s.telemetry.sample_ratio = bad)),
                "telemetry.sample_ratio",
                "{bad}"
            );
        }
        assert!(with(|s| s.telemetry.sample_ratio = 0.0).is_ok());
        assert_eq!(
            key_of(with(|s| s.telemetry.export_interval_ms = 0)),
            "telemetry.export_interval_ms"
        );
        assert_eq!(
            key_of(with(|s| s.telemetry.export_timeout_ms = 0)),
            "telemetry.export_timeout_ms"
        );
    }

    #[test]
    fn other_keys() {
        assert_eq!(key_of(with(|s| s.storage.path = "".into())), "storage.path");
        assert_eq!(key_of(with(|s| s.storage.cache_mb = 0)), "storage.cache_mb");
        assert_eq!(
            key_of(with(|s| s.storage.cache_mb = MAX_STORE_CACHE_MB + 1)),
            "storage.cache_mb"
        );
        assert_eq!(
            key_of(with(|s| s.timeouts.negotiation_secs = 0)),
            "timeouts.negotiation_secs"
        );
        assert_eq!(
            key_of(with(|s| s.timeouts.close_secs = 0)),
            "timeouts.close_secs"
        );
        let err = with(|s| s.storage.backend = "postgres".into()).unwrap_err();
        assert!(err.to_string().contains("embedded, redis"), "{err}");
        assert!(with(|s| s.storage.backend = "redis".into()).is_ok());
        assert!(with(|s| s.log.format = "json".into()).is_ok());
    }
}
