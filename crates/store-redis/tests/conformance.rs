//! The storage conformance suite on the Redis store, against a real redis-server.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

use corvid_store_redis::testing::RedisServer;
use corvid_store_redis::{RedisOptions, RedisStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_conformance_suite() {
    let server = RedisServer::start().await;
    let store = RedisStore::open(&RedisOptions::new(server.url()))
        .await
        .unwrap();
    corvid_storage::testsuite::run_all(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_conformance_suite_with_one_connection_and_an_odd_prefix() {
    let server = RedisServer::start().await;
    let mut options = RedisOptions::new(server.url());
    options.connections = 1;
    options.key_prefix = "tenant-7:xmpp".into();
    let store = RedisStore::open(&options).await.unwrap();
    corvid_storage::testsuite::run_all(store).await;
}
