//! Loading and validation.
//!
//! ```text
//!   defaults (serde `default`)
//!      ↑ overridden by
//!   TOML file (config::File, FileFormat::Toml)
//!      ↑ overridden by
//!   CORVID__SECTION__KEY from the `env` map (parsed by key type, set as overrides)
//!      │
//!      ├─ walk against the key schema (schema.rs): unknown key / wrong type → error naming the key
//!      ├─ deserialize into Settings
//!      ├─ normalize server.domains (trim, lowercase, no trailing dot)
//!      └─ Settings::validate (validate.rs)
//! ```

use std::collections::HashMap;
use std::path::Path;

use config::{Config, File, FileFormat, Map, Value, ValueKind};

use crate::Settings;

mod schema;
mod validate;

use schema::{Kind, Node};

/// Prefix of the environment variables that override settings.
const ENV_PREFIX: &str = "CORVID__";
/// Separator between the section and key parts of a variable name.
const ENV_SEPARATOR: &str = "__";

/// A configuration that cannot be used. `Display` names the key and says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or is not TOML.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A key that does not exist.
    #[error("unknown configuration key `{key}`")]
    UnknownKey {
        /// Dotted key, e.g. `c2s.bogus`.
        key: String,
    },
    /// A key whose value is wrong.
    #[error("invalid value for `{key}`: {reason}")]
    InvalidValue {
        /// Dotted key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Defaults, then `file` (if any), then `CORVID__SECTION__KEY` variables from `env`; then
/// validation. `env` is passed in (not read here) so tests need not touch the process environment.
pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
    let schema = schema::settings_schema().map_err(|reason| ConfigError::InvalidValue {
        key: "<settings schema>".into(),
        reason,
    })?;

    let mut builder = Config::builder();
    let origin = match file {
        Some(path) => {
            let display = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: display.clone(),
                reason: e.to_string(),
            })?;
            builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
            display
        }
        None => "environment".to_owned(),
    };
    for (key, value) in env_overrides(env, &schema)? {
        builder =
            builder
                .set_override(key.as_str(), value)
                .map_err(|e| ConfigError::InvalidValue {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
    }
    let merged = builder
        .build()
        .map_err(|e| ConfigError::File {
            path: origin.clone(),
            reason: e.to_string(),
        })?
        .try_deserialize::<Map<String, Value>>()
        .map_err(|e| ConfigError::File {
            path: origin,
            reason: e.to_string(),
        })?;

    schema::check_table(&merged, &schema, "")?;

    let mut settings = Value::new(None, ValueKind::Table(merged))
        .try_deserialize::<Settings>()
        .map_err(deserialize_error)?;
    normalize(&mut settings);
    settings.validate()?;
    Ok(settings)
}

/// The `CORVID__…` variables of `env` as `(dotted key, typed value)`, sorted by key so that the
/// first error reported does not depend on the map's iteration order.
fn env_overrides(
    env: &HashMap<String, String>,
    schema: &Node,
) -> Result<Vec<(String, Value)>, ConfigError> {
    let mut vars: Vec<(&String, &String)> = env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    let mut overrides = Vec::with_capacity(vars.len());
    for (name, raw) in vars {
        let segments: Vec<String> = name[ENV_PREFIX.len()..]
            .split(ENV_SEPARATOR)
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let key = segments.join(".");
        match schema.lookup(segments.iter().map(String::as_str)) {
            Some(Node::Leaf(kind)) => {
                let value =
                    parse_env_value(*kind, raw).map_err(|reason| ConfigError::InvalidValue {
                        reason: format!("{reason} (from {name})"),
                        key: key.clone(),
                    })?;
                overrides.push((key, value));
            }
            Some(Node::Section(_)) => {
                return Err(ConfigError::InvalidValue {
                    reason: format!(
                        "{name} names a whole section; set its keys one by one, as {name}__KEY"
                    ),
                    key,
                })
            }
            None => return Err(ConfigError::UnknownKey { key }),
        }
    }
    Ok(overrides)
}

/// Parses an environment variable's text as the type its key holds. Lists are comma-separated,
/// with blanks around items ignored.
fn parse_env_value(kind: Kind, raw: &str) -> Result<Value, String> {
    let found = || format!("expected {}, found {raw:?}", schema::expected(kind));
    let kind = match kind {
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => ValueKind::Boolean(true),
            "false" => ValueKind::Boolean(false),
            _ => return Err(found()),
        },
        Kind::Str => ValueKind::String(raw.to_owned()),
        Kind::StrList => ValueKind::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::new(None, item))
                .collect(),
        ),
        Kind::Float => match raw.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => ValueKind::Float(n),
            _ => return Err(found()),
        },
        Kind::UInt { max } => match raw.trim().parse::<u64>() {
            Ok(n) if n <= max => ValueKind::U64(n),
            Ok(n) => {
                return Err(format!(
                    "{n} is too large; the largest accepted value is {max}"
                ))
            }
            Err(_) => return Err(found()),
        },
    };
    Ok(Value::new(None, kind))
}

/// Maps a deserialization failure (which the schema walk should already have prevented) to an
/// error naming the key when the `config` crate knows it.
fn deserialize_error(error: config::ConfigError) -> ConfigError {
    let key = match &error {
        config::ConfigError::Type { key: Some(key), .. } => key.clone(),
        _ => "<root>".to_owned(),
    };
    ConfigError::InvalidValue {
        key,
        reason: error.to_string(),
    }
}

/// Domains are compared as the JID crate compares them: lowercase, no trailing dot.
fn normalize(settings: &mut Settings) {
    for domain in &mut settings.server.domains {
        let trimmed = domain.trim();
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        *domain = trimmed.to_lowercase();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use std::io::Write;
    use std::path::PathBuf;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let file = toml_file(text);
        load(Some(file.path()), &env(vars))
    }

    fn invalid_key(result: Result<Settings, ConfigError>) -> String {
        match result {
            Err(ConfigError::InvalidValue { key, .. }) => key,
            other => panic!("expected InvalidValue, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
        assert_eq!(load(None, &HashMap::new()).unwrap(), Settings::default());
    }

    #[test]
    fn file_values_are_applied_and_the_rest_stays_default() {
        let settings = load_text(
            r#"
            version = 1
            [server]
            domains = ["capulet.example", "montague.example"]
            [c2s]
            require_starttls = false
            max_unauthenticated = 50
            [storage]
            path = "/var/lib/corvid"
            [auth]
            scram_iterations = 4096
            "#,
            &[],
        )
        .unwrap();
        assert_eq!(
            settings.server.domains,
            ["capulet.example", "montague.example"]
        );
        assert!(!settings.c2s.require_starttls);
        assert_eq!(settings.c2s.max_unauthenticated, 50);
        assert_eq!(settings.storage.path, PathBuf::from("/var/lib/corvid"));
        assert_eq!(settings.auth.scram_iterations, 4096);
        assert_eq!(
            settings.c2s.starttls_listen,
            Settings::default().c2s.starttls_listen
        );
        assert_eq!(settings.limits, Settings::default().limits);
    }

    #[test]
    fn environment_overrides_file() {
        let settings = load_text(
            "[c2s]\nrequire_starttls = true\nmax_unauthenticated = 50\n[log]\nlevel = \"debug\"\n",
            &[
                ("CORVID__C2S__REQUIRE_STARTTLS", "false"),
                ("CORVID__C2S__MAX_UNAUTHENTICATED", "75"),
                ("CORVID__LOG__FORMAT", "json"),
                ("CORVID__STORAGE__PATH", "/tmp/corvid-test"),
                ("PATH", "/usr/bin"),
                ("CORVIDX", "ignored"),
            ],
        )
        .unwrap();
        assert!(!settings.c2s.require_starttls);
        assert_eq!(settings.c2s.max_unauthenticated, 75);
        assert_eq!(settings.log.level, "debug");
        assert_eq!(settings.log.format, "json");
        assert_eq!(settings.storage.path, PathBuf::from("/tmp/corvid-test"));
    }

    #[test]
    fn environment_list_overrides_file_list() {
        let settings = load_text(
            "[server]\ndomains = [\"file.example\"]\n",
            &[(
                "CORVID__SERVER__DOMAINS",
                "a.example, B.Example.,b2.example",
            )],
        )
        .unwrap();
        assert_eq!(
            settings.server.domains,
            ["a.example", "b.example", "b2.example"]
        );
        let settings = load(None, &env(&[("CORVID__SERVER__DOMAINS", "only.example")])).unwrap();
        assert_eq!(settings.server.domains, ["only.example"]);
    }

    #[test]
    fn every_key_can_be_set_from_the_environment() {
        let schema = schema::settings_schema().unwrap();
        let defaults = Settings::default();
        for (key, kind) in schema.leaf_keys() {
            let name = format!("CORVID__{}", key.replace('.', "__").to_uppercase());
            let value = match (key.as_str(), kind) {
                ("version", _) => "1",
                ("log.format", _) => "json",
                ("log.level", _) => "warn",
                ("storage.backend", _) => "redis",
                ("storage.path", _) => "/srv/corvid",
                ("storage.redis.url", _) => "rediss://corvid:pw@redis.example:6380/1",
                ("storage.redis.key_prefix", _) => "corvid-test",
                ("storage.redis.connections", _) => "8",
                ("storage.redis.tls_ca_file", _) => continue, // needs a real file; see below
                ("c2s.starttls_listen", _) => "127.0.0.1:15222",
                ("c2s.direct_tls_listen", _) => "[::1]:15223",
                ("c2s.see_other_host", _) => "xmpp2.example:5222",
                ("tls.cert_file" | "tls.key_file", _) => continue, // need real files; see tls test
                ("server.domains", _) => "x.example",
                ("auth.scram_iterations", _) => "5000",
                ("cluster.node_id", _) => continue, // must be a member; see the cluster test
                ("cluster.role", _) => continue,    // needs cluster.enabled; see the roles test
                (
                    "cluster.tls.ca_file"
                    | "cluster.tls.cert_file"
                    | "cluster.tls.key_file"
                    | "cluster.tls.server_name",
                    _,
                ) => {
                    continue; // need all three, real files; see the cluster TLS tests
                }
                ("cluster.enabled", _) => "true",
                ("cluster.listen", _) => "127.0.0.1:17001",
                ("cluster.advertise", _) => "node1.example:7001",
                ("cluster.members", _) => "1=127.0.0.1:7001,2=127.0.0.1:7002",
                ("cluster.data_dir", _) => "/srv/corvid/raft",
                ("cluster.renew_every_ms", _) => "500",
                ("storage.cache_mb", _) => "64",
                ("admin.listen", _) => "0.0.0.0:19090",
                ("telemetry.otlp_endpoint", _) => "http://collector.example:4317",
                ("telemetry.otlp_protocol", _) => "http",
                ("telemetry.service_name", _) => "corvid-edge",
                ("telemetry.sample_ratio", _) => "0.25",
                (_, Kind::Bool) => "false",
                (_, Kind::UInt { .. }) => "123456",
                (_, _) => panic!("no test value for {key}"),
            };
            let settings =
                load(None, &env(&[(&name, value)])).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Only one value is valid for this one, and it is the default.
            if key != "version" {
                assert_ne!(settings, defaults, "{name}={value} changed nothing");
            }
        }
    }

    #[test]
    fn cluster_members_and_node_id_come_from_the_environment() {
        let settings = load(
            None,
            &env(&[
                ("CORVID__CLUSTER__ENABLED", "true"),
                ("CORVID__CLUSTER__NODE_ID", "2"),
                (
                    "CORVID__CLUSTER__MEMBERS",
                    "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003",
                ),
                ("CORVID__CLUSTER__LISTEN", "127.0.0.1:7002"),
            ]),
        )
        .unwrap();
        assert!(settings.cluster.enabled);
        assert_eq!(settings.cluster.node_id, 2);
        assert_eq!(
            settings.cluster.member_addrs(),
            [
                (1, "127.0.0.1:7001".to_owned()),
                (2, "127.0.0.1:7002".to_owned()),
                (3, "127.0.0.1:7003".to_owned())
            ]
        );
        assert_eq!(settings.cluster.advertised(), "127.0.0.1:7002");
        // A node that is not a member, a malformed member, and renewals slower than the lease.
        for (name, value, key) in [
            ("CORVID__CLUSTER__NODE_ID", "9", "cluster.node_id"),
            (
                "CORVID__CLUSTER__MEMBERS",
                "1@127.0.0.1:7001",
                "cluster.members",
            ),
            ("CORVID__CLUSTER__MEMBERS", "1=a:1,1=b:2", "cluster.members"),
            (
                "CORVID__CLUSTER__RENEW_EVERY_MS",
                "5000",
                "cluster.renew_every_ms",
            ),
        ] {
            assert_eq!(
                invalid_key(load(None, &env(&[(name, value)]))),
                key,
                "{name}={value}"
            );
        }
    }

    #[test]
    fn cluster_roles_come_from_the_file_and_the_environment() {
        use crate::ClusterRole;
        // The default is today's node: a voter and an edge.
        let defaults = Settings::default();
        assert_eq!(defaults.cluster.role, "combined");
        assert_eq!(defaults.cluster.role(), ClusterRole::Combined);
        let cluster = [
            ("CORVID__CLUSTER__ENABLED", "true"),
            (
                "CORVID__CLUSTER__MEMBERS",
                "1=127.0.0.1:7001,2=127.0.0.1:7002",
            ),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut vars = cluster.to_vec();
            vars.extend_from_slice(extra);
            load(None, &env(&vars))
        };
        // A registry voter, listed in members; it needs no client listener.
        let registry = with(&[
            ("CORVID__CLUSTER__ROLE", "registry"),
            ("CORVID__CLUSTER__NODE_ID", "2"),
            ("CORVID__C2S__STARTTLS_LISTEN", ""),
            ("CORVID__C2S__DIRECT_TLS_LISTEN", ""),
        ])
        .unwrap();
        assert_eq!(registry.cluster.role(), ClusterRole::Registry);
        assert!(registry.cluster.role().is_voter() && !registry.cluster.role().is_edge());
        // An edge has an id of its own, not among the voters.
        let edge = load_text(
            "[cluster]\nenabled = true\nrole = \"edge\"\nnode_id = 11\nmembers = [\"1=127.0.0.1:7001\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(edge.cluster.role(), ClusterRole::Edge);
        assert!(!edge.cluster.role().is_voter() && edge.cluster.role().is_edge());
        assert!(!edge.cluster.picks_own_id());
        // An edge with id 0 picks its own at start.
        let picking = with(&[
            ("CORVID__CLUSTER__ROLE", "edge"),
            ("CORVID__CLUSTER__NODE_ID", "0"),
        ])
        .unwrap();
        assert!(picking.cluster.picks_own_id());

        for (vars, key) in [
            // Not a role.
            (&[("CORVID__CLUSTER__ROLE", "voter")][..], "cluster.role"),
            // An edge whose id is a voter's.
            (
                &[
                    ("CORVID__CLUSTER__ROLE", "edge"),
                    ("CORVID__CLUSTER__NODE_ID", "1"),
                ][..],
                "cluster.node_id",
            ),
            // Picking an id at start (0) is for edges only.
            (
                &[
                    ("CORVID__CLUSTER__ROLE", "registry"),
                    ("CORVID__CLUSTER__NODE_ID", "0"),
                ][..],
                "cluster.node_id",
            ),
            (&[("CORVID__CLUSTER__NODE_ID", "0")][..], "cluster.node_id"),
            // A registry node that is not a member.
            (
                &[
                    ("CORVID__CLUSTER__ROLE", "registry"),
                    ("CORVID__CLUSTER__NODE_ID", "3"),
                ][..],
                "cluster.node_id",
            ),
            // An edge without a client listener.
            (
                &[
                    ("CORVID__CLUSTER__ROLE", "edge"),
                    ("CORVID__CLUSTER__NODE_ID", "5"),
                    ("CORVID__C2S__STARTTLS_LISTEN", ""),
                    ("CORVID__C2S__DIRECT_TLS_LISTEN", ""),
                ][..],
                "c2s.starttls_listen",
            ),
        ] {
            assert_eq!(invalid_key(with(vars)), key, "{vars:?}");
        }
        // A role other than combined on a single node.
        assert_eq!(
            invalid_key(load(None, &env(&[("CORVID__CLUSTER__ROLE", "edge")]))),
            "cluster.role"
        );
    }

    #[test]
    fn nested_redis_keys_come_from_the_file_and_the_environment() {
        let settings = load_text(
            "[storage]\nbackend = \"redis\"\n[storage.redis]\nurl = \"redis://file:6379/0\"\nkey_prefix = \"file\"\n",
            &[
                ("CORVID__STORAGE__REDIS__URL", "rediss://u:p@env.example:6380/3"),
                ("CORVID__STORAGE__REDIS__COMMAND_TIMEOUT_MS", "250"),
            ],
        )
        .unwrap();
        assert_eq!(settings.storage.backend, "redis");
        assert_eq!(
            settings.storage.redis.url,
            "rediss://u:p@env.example:6380/3"
        );
        assert_eq!(settings.storage.redis.key_prefix, "file");
        assert_eq!(settings.storage.redis.command_timeout_ms, 250);
        assert_eq!(
            settings.storage.redis.connections,
            Settings::default().storage.redis.connections
        );
        let err = load(None, &env(&[("CORVID__STORAGE__REDIS__BOGUS", "1")])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownKey {
                key: "storage.redis.bogus".into()
            }
        );
        let err = load_text("[storage.redis]\nconnections = \"4\"\n", &[]).unwrap_err();
        assert_eq!(invalid_key(Err(err)), "storage.redis.connections");
        assert_eq!(
            invalid_key(load(None, &env(&[("CORVID__STORAGE__REDIS", "x")]))),
            "storage.redis"
        );
    }

    #[test]
    fn unknown_key_in_file_is_named_with_its_section() {
        let err = load_text("[c2s]\nbogus = 1\n", &[]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownKey {
                key: "c2s.bogus".into()
            }
        );
        assert!(err.to_string().contains("`c2s.bogus`"), "{err}");
        let err = load_text("bogus = 1\n", &[]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownKey {
                key: "bogus".into()
            }
        );
        let err = load_text("[nosection]\nkey = 1\n", &[]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownKey {
                key: "nosection".into()
            }
        );
    }

    #[test]
    fn unknown_key_in_environment_is_named_with_its_section() {
        let err = load(None, &env(&[("CORVID__C2S__BOGUS", "1")])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownKey {
                key: "c2s.bogus".into()
            }
        );
        let err = load(None, &env(&[("CORVID__NOPE__KEY", "1")])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownKey {
                key: "nope.key".into()
            }
        );
        let err = load(None, &env(&[("CORVID__C2S__REQUIRE_STARTTLS__X", "1")])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownKey {
                key: "c2s.require_starttls.x".into()
            }
        );
        assert_eq!(
            invalid_key(load(None, &env(&[("CORVID__C2S", "1")]))),
            "c2s"
        );
    }

    #[test]
    fn type_errors_name_the_key() {
        assert_eq!(
            invalid_key(load_text("[c2s]\nrequire_starttls = \"yes\"\n", &[])),
            "c2s.require_starttls"
        );
        assert_eq!(
            invalid_key(load_text("[limits]\nmax_depth = \"32\"\n", &[])),
            "limits.max_depth"
        );
        assert_eq!(
            invalid_key(load_text("[limits]\nmax_depth = -1\n", &[])),
            "limits.max_depth"
        );
        assert_eq!(
            invalid_key(load_text("[auth]\nscram_iterations = 5000000000\n", &[])),
            "auth.scram_iterations"
        );
        assert_eq!(
            invalid_key(load_text("[server]\ndomains = \"a.example\"\n", &[])),
            "server.domains"
        );
        assert_eq!(
            invalid_key(load_text("[server]\ndomains = [1]\n", &[])),
            "server.domains"
        );
        assert_eq!(invalid_key(load_text("c2s = 5\n", &[])), "c2s");
        assert_eq!(
            invalid_key(load_text("[log]\nlevel = { a = 1 }\n", &[])),
            "log.level"
        );
        let err = load(None, &env(&[("CORVID__LIMITS__MAX_DEPTH", "deep")])).unwrap_err();
        assert_eq!(invalid_key(Err(err.clone())), "limits.max_depth");
        assert!(
            err.to_string().contains("CORVID__LIMITS__MAX_DEPTH"),
            "{err}"
        );
        let err = load(None, &env(&[("CORVID__C2S__REQUIRE_STARTTLS", "maybe")])).unwrap_err();
        assert_eq!(invalid_key(Err(err)), "c2s.require_starttls");
        let err = load(
            None,
            &env(&[("CORVID__C2S__READ_BURST_BYTES", "99999999999")]),
        )
        .unwrap_err();
        assert_eq!(invalid_key(Err(err)), "c2s.read_burst_bytes");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("version = 2", "version"),
            ("[server]\ndomains = []", "server.domains"),
            ("[server]\ndomains = [\"bad_domain\"]", "server.domains"),
            (
                "[c2s]\nstarttls_listen = \"nowhere\"",
                "c2s.starttls_listen",
            ),
            (
                "[c2s]\ndirect_tls_listen = \"1.2.3.4\"",
                "c2s.direct_tls_listen",
            ),
            ("[c2s]\nmax_unauthenticated = 0", "c2s.max_unauthenticated"),
            (
                "[tls]\ncert_file = \"/nonexistent/cert.pem\"",
                "tls.key_file",
            ),
            ("[storage]\nbackend = \"postgres\"", "storage.backend"),
            (
                "[storage.redis]\nurl = \"127.0.0.1:6379\"",
                "storage.redis.url",
            ),
            (
                "[storage.redis]\ncommand_timeout_ms = 0",
                "storage.redis.command_timeout_ms",
            ),
            (
                "[limits]\nmax_stanza_bytes = 9999",
                "limits.max_stanza_bytes",
            ),
            ("[limits]\nmax_depth = 3", "limits.max_depth"),
            ("[limits]\nsession_queue = 15", "limits.session_queue"),
            ("[timeouts]\nidle_secs = 0", "timeouts.idle_secs"),
            ("[auth]\nscram_iterations = 4095", "auth.scram_iterations"),
            ("[log]\nformat = \"xml\"", "log.format"),
            ("[log]\nlevel = \"\"", "log.level"),
        ];
        for (text, key) in cases {
            assert_eq!(invalid_key(load_text(text, &[])), key, "for {text:?}");
        }
    }

    #[test]
    fn missing_or_broken_file_is_reported_with_its_path() {
        let err = load(Some(Path::new("/nonexistent/corvid.toml")), &HashMap::new()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::File { path, .. } if path == "/nonexistent/corvid.toml"),
            "{err:?}"
        );
        let file = toml_file("[c2s\nbroken");
        let err = load(Some(file.path()), &HashMap::new()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::File { path, .. } if path == &file.path().display().to_string()),
            "{err:?}"
        );
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/corvid.example.toml");
        let settings = load(Some(&path), &HashMap::new()).unwrap();
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn example_file_documents_every_key_and_its_variable() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/corvid.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let table: toml_check::Table = toml_check::parse(&text);
        for (key, _) in schema::settings_schema().unwrap().leaf_keys() {
            assert!(
                toml_check::has_key(&table, &key),
                "example file does not set `{key}`"
            );
            let var = format!("CORVID__{}", key.replace('.', "__").to_uppercase());
            assert!(text.contains(&var), "example file does not mention {var}");
        }
    }

    /// The example file read through `config` as a plain table, to see which keys it sets.
    mod toml_check {
        use super::*;

        pub(super) type Table = Map<String, Value>;

        pub(super) fn parse(text: &str) -> Table {
            Config::builder()
                .add_source(File::from_str(text, FileFormat::Toml))
                .build()
                .unwrap()
                .try_deserialize::<Table>()
                .unwrap()
        }

        pub(super) fn has_key(table: &Table, dotted: &str) -> bool {
            let mut current = table;
            let mut parts = dotted.split('.').peekable();
            while let Some(part) = parts.next() {
                let Some(value) = current.get(part) else {
                    return false;
                };
                if parts.peek().is_none() {
                    return true;
                }
                let ValueKind::Table(next) = &value.kind else {
                    return false;
                };
                current = next;
            }
            false
        }
    }
}
