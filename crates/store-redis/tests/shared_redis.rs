//! What the Redis store does beyond the trait contract: several servers sharing one Redis,
//! outages, prefixes, migrations between stores. (Outage logging is tested in
//! `outage_logging.rs`, alone in its process, because `tracing` caches per call site whether
//! anyone listens, which tests logging on other threads would disturb.)

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use corvid_jid::BareJid;
use corvid_sasl::{ScramKeys, StoredCredentials};
use corvid_storage::{Store, StoreError, UserData};
use corvid_store_redis::testing::RedisServer;
use corvid_store_redis::{RedisOptions, RedisStore};
use redis::AsyncCommands;

fn jid(s: &str) -> BareJid {
    s.parse().unwrap()
}

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

fn options(server: &RedisServer) -> RedisOptions {
    let mut options = RedisOptions::new(server.url());
    options.command_timeout = Duration::from_millis(300);
    options.connect_timeout = Duration::from_millis(300);
    options
}

async fn open(options: &RedisOptions) -> Arc<RedisStore> {
    RedisStore::open(options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_one_redis_lose_no_concurrent_appends_or_map_writes() {
    const TASKS: usize = 8;
    const PER_TASK: usize = 25;
    let redis = RedisServer::start().await;
    let edges = [open(&options(&redis)).await, open(&options(&redis)).await];
    let alice = jid("alice@capulet.example");
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        // Half the writers on each edge, interleaved.
        let edge: Arc<dyn Store> = edges[t % 2].clone();
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            let (archive, map) = (edge.archive("offline"), edge.map("roster"));
            let mut ids = Vec::new();
            for i in 0..PER_TASK {
                let value = format!("{t}-{i}");
                ids.push(
                    archive
                        .append(&alice, value.as_bytes(), None)
                        .await
                        .unwrap(),
                );
                map.set(&alice, &value, value.as_bytes()).await.unwrap();
            }
            ids
        }));
    }
    let mut ids = BTreeSet::new();
    for task in tasks {
        let mine = task.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        ids.extend(mine);
    }
    assert_eq!(ids.len(), TASKS * PER_TASK, "every append got its own id");
    for edge in &edges {
        let items = edge
            .archive("offline")
            .range(&alice, None, 10_000)
            .await
            .unwrap();
        assert_eq!(
            items.iter().map(|(id, _)| *id).collect::<BTreeSet<_>>(),
            ids,
            "both edges see every item"
        );
        assert_eq!(
            edge.map("roster").all(&alice).await.unwrap().len(),
            TASKS * PER_TASK,
            "both edges see every map entry"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_appending_with_max_items_never_overshoot() {
    let redis = RedisServer::start().await;
    let edges = [open(&options(&redis)).await, open(&options(&redis)).await];
    let bob = jid("bob@montague.example");
    let mut tasks = Vec::new();
    for t in 0..20u8 {
        let edge: Arc<dyn Store> = edges[usize::from(t % 2)].clone();
        let bob = bob.clone();
        tasks.push(tokio::spawn(async move {
            edge.archive("offline").append(&bob, &[t], Some(7)).await
        }));
    }
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => stored += 1,
            Err(StoreError::LimitReached) => {}
            Err(e) => panic!("append failed: {e}"),
        }
    }
    assert_eq!(stored, 7);
    assert_eq!(edges[1].archive("offline").count(&bob).await.unwrap(), 7);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_cannot_hang_a_login() {
    let mut redis = RedisServer::start().await;
    let options = options(&redis);
    let store = open(&options).await;
    let dave = jid("dave@example.org");
    store.accounts().create(&dave, &creds(1)).await.unwrap();

    // Connections stay open, nothing answers: only the deadline can end the wait.
    redis.pause().await;
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let result = store.accounts().credentials(&dave).await;
        let took = started.elapsed();
        assert!(
            matches!(&result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            took >= options
                .command_timeout
                .saturating_sub(Duration::from_millis(50))
                && took <= options.command_timeout + Duration::from_millis(300),
            "a frozen Redis must fail at the command timeout, took {took:?}"
        );
    }
    redis.resume().await;
    let accounts = store.accounts();
    let back = eventually(Duration::from_secs(5), || accounts.credentials(&dave)).await;
    assert_eq!(back, Some(creds(1)), "data survives a pause");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_store_without_redis_fails_quickly_naming_the_url_but_not_the_password() {
    let mut redis = RedisServer::start().await;
    let port = redis.port();
    redis.stop().await;
    let mut options = RedisOptions::new(format!("redis://corvid:hunter2@127.0.0.1:{port}/0"));
    options.connect_timeout = Duration::from_millis(300);
    let started = tokio::time::Instant::now();
    let err = RedisStore::open(&options).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let StoreError::Unavailable(message) = err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(
        message.contains(&format!("redis://corvid:***@127.0.0.1:{port}/0")),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!format!("{options:?}").contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_key_prefixes_do_not_see_each_others_data() {
    let redis = RedisServer::start().await;
    let (mut a, mut b) = (options(&redis), options(&redis));
    a.key_prefix = "corvid".into();
    b.key_prefix = "corvid2".into();
    let (a, b) = (open(&a).await, open(&b).await);
    let erin = jid("erin@example.org");
    a.accounts().create(&erin, &creds(1)).await.unwrap();
    a.kv("vcard").set(&erin, b"a").await.unwrap();
    a.map("roster").set(&erin, "k", b"a").await.unwrap();
    let a_id = a
        .archive("offline")
        .append(&erin, b"a", None)
        .await
        .unwrap();

    assert_eq!(b.accounts().credentials(&erin).await.unwrap(), None);
    assert!(b.accounts().list().await.unwrap().is_empty());
    assert_eq!(b.kv("vcard").get(&erin).await.unwrap(), None);
    assert!(b.map("roster").all(&erin).await.unwrap().is_empty());
    assert_eq!(b.archive("offline").count(&erin).await.unwrap(), 0);
    assert_eq!(b.migration().export_user(&erin).await.unwrap(), None);

    b.accounts().create(&erin, &creds(2)).await.unwrap();
    b.archive("offline")
        .append(&erin, b"b", None)
        .await
        .unwrap();
    assert!(b.accounts().delete(&erin).await.unwrap());
    assert_eq!(
        a.accounts().credentials(&erin).await.unwrap(),
        Some(creds(1)),
        "deleting under one prefix keeps the other's account"
    );
    assert_eq!(a.kv("vcard").get(&erin).await.unwrap(), Some(b"a".to_vec()));
    assert_eq!(
        a.archive("offline").range(&erin, None, 10).await.unwrap(),
        vec![(a_id, b"a".to_vec())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_from_one_store_imports_into_another_identically() {
    let redis = RedisServer::start().await;
    let (mut from, mut to) = (options(&redis), options(&redis));
    from.key_prefix = "old".into();
    to.key_prefix = "new".into();
    let (from, to) = (open(&from).await, open(&to).await);
    let frank = jid("frank@example.org");
    from.accounts().create(&frank, &creds(3)).await.unwrap();
    from.kv("vcard").set(&frank, b"<vCard/>").await.unwrap();
    from.kv("last").set(&frank, b"").await.unwrap();
    for contact in ["romeo@montague.example", "juliet@capulet.example"] {
        from.map("roster")
            .set(&frank, contact, contact.as_bytes())
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    for i in 0..5u8 {
        ids.push(
            from.archive("offline")
                .append(&frank, &[i], None)
                .await
                .unwrap(),
        );
    }
    from.archive("offline")
        .remove(&frank, &[ids[1]])
        .await
        .unwrap();

    let exported = from.migration().export_user(&frank).await.unwrap().unwrap();
    assert_eq!(exported.kv.len(), 2);
    assert_eq!(exported.maps.len(), 2);
    assert_eq!(exported.archives.len(), 4);
    to.migration().import_user(&exported).await.unwrap();

    assert_eq!(
        to.migration().export_user(&frank).await.unwrap(),
        Some(exported.clone()),
        "the copy exports identically"
    );
    assert_eq!(to.accounts().list().await.unwrap(), vec![frank.clone()]);
    assert_eq!(
        to.archive("offline")
            .range(&frank, Some(ids[1]), 10)
            .await
            .unwrap(),
        from.archive("offline")
            .range(&frank, Some(ids[1]), 10)
            .await
            .unwrap(),
        "archive ids are kept"
    );
    let next = to
        .archive("offline")
        .append(&frank, b"n", None)
        .await
        .unwrap();
    assert!(
        next > ids[4],
        "new ids above imported ones ({next} <= {})",
        ids[4]
    );

    // An id this backend cannot keep exactly is refused, and nothing is written.
    let ghost = jid("ghost@example.org");
    let too_big = UserData {
        jid: ghost.clone(),
        credentials: creds(4),
        kv: Vec::new(),
        maps: Vec::new(),
        archives: vec![(
            "offline".into(),
            corvid_store_redis::MAX_ID + 1,
            b"x".to_vec(),
        )],
    };
    assert!(matches!(
        to.migration().import_user(&too_big).await,
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(to.accounts().credentials(&ghost).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_the_store_writes_expires_and_a_deleted_user_leaves_no_key() {
    let redis = RedisServer::start().await;
    let store = open(&options(&redis)).await;
    let gina = jid("gina@example.org");
    store.accounts().create(&gina, &creds(1)).await.unwrap();
    store.kv("vcard").set(&gina, b"v").await.unwrap();
    store.map("roster").set(&gina, "k", b"v").await.unwrap();
    store
        .archive("offline")
        .append(&gina, b"m", None)
        .await
        .unwrap();

    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = conn.keys("corvid:*").await.unwrap();
    assert!(keys.len() >= 8, "{keys:?}");
    for key in &keys {
        let ttl: i64 = conn.ttl(key).await.unwrap();
        assert_eq!(ttl, -1, "{key} must not expire");
    }

    assert!(store.accounts().delete(&gina).await.unwrap());
    let mut left: Vec<String> = conn.keys("corvid:*").await.unwrap();
    left.sort();
    assert_eq!(
        left,
        ["corvid:format", "corvid:seq:offline"],
        "only the layout version and the id counter (never reused) remain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_holding_another_layout_version_is_refused() {
    let redis = RedisServer::start().await;
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = conn.set("corvid:format", "2").await.unwrap();
    let err = RedisStore::open(&options(&redis)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("corvid:format") && m.contains("layout version")),
        "{err:?}"
    );
}
