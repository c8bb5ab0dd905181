//! A Redis outage is logged once when it starts and once when it ends, and the store recovers
//! by itself. Alone in this test binary: `tracing` caches per call site whether anyone listens,
//! so other tests logging the same lines on other threads would make the capture flaky.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corvid_jid::BareJid;
use corvid_sasl::{ScramKeys, StoredCredentials};
use corvid_storage::{Store, StoreError};
use corvid_store_redis::testing::RedisServer;
use corvid_store_redis::{RedisOptions, RedisStore};

fn creds(seed: u8) -> StoredCredentials {
    let keys = ScramKeys {
        salt: vec![seed; 16],
        iterations: 4096,
        stored_key: vec![seed; 20],
        server_key: vec![seed.wrapping_add(1); 20],
    };
    StoredCredentials {
        sha1: keys.clone(),
        sha256: keys,
    }
}

/// Collects what `tracing` writes, to count log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Retries `op` until it succeeds, for at most `within`.
async fn eventually<T, F, Fut>(within: Duration, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match op().await {
            Ok(value) => return value,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("still failing after {within:?}: {e}"),
        }
    }
}

// Single-threaded so that the log capture (a thread-local default subscriber) sees every line.
#[tokio::test(flavor = "current_thread")]
async fn a_dead_redis_fails_fast_with_unavailable_logs_once_and_is_used_again_after_restart() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut redis = RedisServer::start().await;
    let mut options = RedisOptions::new(redis.url());
    options.command_timeout = Duration::from_millis(300);
    options.connect_timeout = Duration::from_millis(300);
    let store = RedisStore::open(&options).await.unwrap();
    let carol: BareJid = "carol@example.org".parse().unwrap();
    store.accounts().create(&carol, &creds(1)).await.unwrap();

    redis.stop().await;
    for _ in 0..5 {
        let started = tokio::time::Instant::now();
        let result = store.accounts().credentials(&carol).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            started.elapsed() <= options.command_timeout + Duration::from_millis(200),
            "took {:?}",
            started.elapsed()
        );
        let append = store.archive("offline").append(&carol, b"m", None).await;
        assert!(
            matches!(append, Err(StoreError::Unavailable(_))),
            "{append:?}"
        );
    }
    assert_eq!(
        captured.count("redis-unavailable"),
        1,
        "one warning per outage, not per command"
    );
    assert_eq!(captured.count("redis-recovered"), 0);

    // The restarted Redis is empty (no persistence in tests); the store reconnects by itself.
    redis.restart().await;
    let (accounts, new_creds) = (store.accounts(), creds(2));
    eventually(Duration::from_secs(5), || {
        accounts.create(&carol, &new_creds)
    })
    .await;
    assert_eq!(
        store.accounts().credentials(&carol).await.unwrap(),
        Some(creds(2))
    );
    assert_eq!(captured.count("redis-recovered"), 1);
    assert_eq!(captured.count("redis-unavailable"), 1);
    assert_eq!(
        captured.count(&redis.url()),
        3,
        "the open, outage and recovery lines name the URL"
    );

    // A second outage is a second episode.
    redis.stop().await;
    assert!(store.accounts().list().await.is_err());
    assert_eq!(captured.count("redis-unavailable"), 2);
}
