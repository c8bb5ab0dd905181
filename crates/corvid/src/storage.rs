//! Opening the configured storage backend (`storage.backend`), for the server and the admin
//! CLI alike.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use corvid_settings::{RedisConfig, Settings};
use corvid_storage::Store;
use corvid_store_embedded::EmbeddedStore;
use corvid_store_redis::{RedisOptions, RedisStore};

/// Opens the backend `settings.storage.backend` names. Fails with a message naming the setting
/// to look at: `storage.path` for the embedded store (locked by another process, unreadable,
/// corrupt), `storage.redis.url` when Redis cannot be reached or used at start.
pub async fn open(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    match settings.storage.backend.as_str() {
        "embedded" => {
            let path = settings.storage.path.clone();
            let cache = usize::try_from(settings.storage.cache_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX);
            // Opening does blocking file I/O (and possibly a repair after a crash).
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open_with(&path, cache))
                .await
                .map_err(|e| anyhow!("storage.path: opening the embedded store failed: {e}"))?
                .map_err(|e| anyhow!("storage.path: {e}"))?;
            Ok(store)
        }
        "redis" => {
            let store = RedisStore::open(&redis_options(&settings.storage.redis))
                .await
                .map_err(|e| {
                    anyhow!(
                        "storage.redis.url: cannot use Redis (is it running and reachable?): {e}"
                    )
                })?;
            Ok(store)
        }
        other => bail!("storage.backend: `{other}` is not a backend this build has"),
    }
}

/// The store's options from the settings (validated: positive timeouts, a known scheme).
fn redis_options(config: &RedisConfig) -> RedisOptions {
    RedisOptions {
        url: config.url.clone(),
        key_prefix: config.key_prefix.clone(),
        connections: config.connections,
        connect_timeout: Duration::from_millis(config.connect_timeout_ms),
        command_timeout: Duration::from_millis(config.command_timeout_ms),
        tls_ca_file: (!config.tls_ca_file.is_empty()).then(|| config.tls_ca_file.clone().into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use corvid_store_redis::testing::RedisServer;

    use super::*;

    fn redis_settings(url: String) -> Settings {
        let mut settings = Settings::default();
        settings.storage.backend = "redis".into();
        settings.storage.redis.url = url;
        settings.storage.redis.connect_timeout_ms = 300;
        settings
    }

    #[tokio::test]
    async fn the_embedded_backend_opens_in_the_data_folder() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.storage.path = dir.path().to_owned();
        let store = open(&settings).await.unwrap();
        let jid = "a@example.org".parse().unwrap();
        store.kv("vcard").set(&jid, b"v").await.unwrap();
        assert!(dir.path().join(corvid_store_embedded::FILE_NAME).is_file());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_redis_backend_opens_and_a_second_node_sees_the_same_data() {
        let redis = RedisServer::start().await;
        let settings = redis_settings(redis.url());
        let (one, two) = (
            open(&settings).await.unwrap(),
            open(&settings).await.unwrap(),
        );
        let jid = "a@example.org".parse().unwrap();
        one.kv("vcard").set(&jid, b"v").await.unwrap();
        assert_eq!(
            two.kv("vcard").get(&jid).await.unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_redis_fails_at_start_naming_the_setting_but_not_the_password() {
        let mut redis = RedisServer::start().await;
        let port = redis.port();
        redis.stop().await;
        let settings = redis_settings(format!("redis://corvid:hunter2@127.0.0.1:{port}/0"));
        let err = open(&settings).await.err().unwrap().to_string();
        assert!(err.starts_with("storage.redis.url: "), "{err}");
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn options_follow_the_settings() {
        let mut config = RedisConfig::default();
        let options = redis_options(&config);
        assert_eq!(options.url, "redis://127.0.0.1:6379/0");
        assert_eq!(options.command_timeout, Duration::from_secs(1));
        assert_eq!(options.connect_timeout, Duration::from_secs(2));
        assert_eq!(options.connections, 4);
        assert_eq!(options.tls_ca_file, None);
        config.tls_ca_file = "/etc/corvid/redis-ca.pem".into();
        assert_eq!(
            redis_options(&config).tls_ca_file,
            Some("/etc/corvid/redis-ca.pem".into())
        );
    }
}
