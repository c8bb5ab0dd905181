//! The storage conformance suite on the embedded store.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

use corvid_store_embedded::EmbeddedStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    corvid_storage::testsuite::run_all(store).await;
}
