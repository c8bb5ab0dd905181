//! Opening, closing, reopening, locking and damage: what only an on-disk store has.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

use std::sync::Arc;

use corvid_jid::BareJid;
use corvid_sasl::{ScramKeys, StoredCredentials};
use corvid_storage::{ImportReport, Store, StoreError};
use corvid_store_embedded::{EmbeddedStore, FILE_NAME};
use tokio::time::Instant;

fn jid(s: &str) -> BareJid {
    s.parse().unwrap()
}

fn creds(seed: u8) -> StoredCredentials {
    let keys = ScramKeys {
        salt: vec![seed; 16],
        iterations: 4096,
        stored_key: vec![seed; 32],
        server_key: vec![!seed; 32],
    };
    StoredCredentials {
        sha1: keys.clone(),
        sha256: keys,
    }
}

fn unavailable(result: Result<Arc<EmbeddedStore>, StoreError>) -> String {
    match result {
        Err(StoreError::Unavailable(msg)) => msg,
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(store) => panic!("expected an error, opened {store:?}"),
    }
}

#[tokio::test]
async fn data_survives_close_and_reopen_and_archive_ids_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let juliet = jid("juliet@capulet.example");
    let last_id = {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.accounts().create(&juliet, &creds(1)).await.unwrap();
        store.kv("vcard").set(&juliet, b"<vCard/>").await.unwrap();
        store
            .map("roster")
            .set(&juliet, "romeo@montague.example", b"both")
            .await
            .unwrap();
        let archive = store.archive("offline");
        archive.append(&juliet, b"one", None).await.unwrap();
        let last = archive.append(&juliet, b"two", None).await.unwrap();
        // Removing the newest item must not let its id be handed out again after reopen.
        archive.remove(&juliet, &[last]).await.unwrap();
        last
        // Every handle and the store drop here, which closes the database.
    };

    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        store.accounts().credentials(&juliet).await.unwrap(),
        Some(creds(1))
    );
    assert_eq!(store.accounts().list().await.unwrap(), vec![juliet.clone()]);
    assert_eq!(
        store.kv("vcard").get(&juliet).await.unwrap(),
        Some(b"<vCard/>".to_vec())
    );
    assert_eq!(
        store.map("roster").all(&juliet).await.unwrap(),
        vec![("romeo@montague.example".to_owned(), b"both".to_vec())]
    );
    let archive = store.archive("offline");
    assert_eq!(archive.count(&juliet).await.unwrap(), 1);
    let next = archive.append(&juliet, b"three", None).await.unwrap();
    assert!(
        next > last_id,
        "id {next} after reopen must exceed {last_id}"
    );
}

#[tokio::test]
async fn opening_the_same_folder_twice_is_a_clear_error_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStore::open(dir.path()).unwrap();
    let handle = first.kv("vcard");

    let msg = unavailable(EmbeddedStore::open(dir.path()));
    assert!(msg.contains("already open"), "{msg}");
    assert!(
        msg.contains(&dir.path().join(FILE_NAME).display().to_string()),
        "the path is named: {msg}"
    );

    // A handle keeps the database open, even after the store itself is gone.
    drop(first);
    let msg = unavailable(EmbeddedStore::open(dir.path()));
    assert!(msg.contains("already open"), "{msg}");

    drop(handle);
    EmbeddedStore::open(dir.path()).unwrap();
}

#[tokio::test]
async fn a_garbage_file_is_a_clear_error_not_a_panic() {
    for garbage in [
        b"not a database".to_vec(),
        (0..64 * 1024).map(|i: u32| (i * 7 + 3) as u8).collect(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, &garbage).unwrap();
        let msg = unavailable(EmbeddedStore::open(dir.path()));
        assert!(
            msg.contains(&path.display().to_string()),
            "the path is named: {msg}"
        );
        assert!(msg.contains("corrupt"), "the cause is named: {msg}");
        // The file is left alone for the operator to inspect.
        assert_eq!(std::fs::read(&path).unwrap(), garbage);
    }
}

#[tokio::test]
async fn a_missing_folder_is_created_and_an_unusable_one_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/data");
    EmbeddedStore::open(&nested).unwrap();
    assert!(nested.join(FILE_NAME).is_file());

    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let msg = unavailable(EmbeddedStore::open(&file));
    assert!(
        msg.contains("cannot create data folder") && msg.contains("plain-file"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_database_with_a_newer_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    {
        let db = redb::Database::create(dir.path().join(FILE_NAME)).unwrap();
        let tx = db.begin_write().unwrap();
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        tx.open_table(meta).unwrap().insert("format", 2).unwrap();
        tx.commit().unwrap();
    }
    let msg = unavailable(EmbeddedStore::open(dir.path()));
    assert!(msg.contains("layout version 2"), "{msg}");
}

#[tokio::test]
async fn damaged_credentials_are_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let romeo = jid("romeo@montague.example");
    drop(EmbeddedStore::open(dir.path()).unwrap());
    {
        let db = redb::Database::create(dir.path().join(FILE_NAME)).unwrap();
        let tx = db.begin_write().unwrap();
        let accounts: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("accounts");
        tx.open_table(accounts)
            .unwrap()
            .insert("romeo@montague.example", b"\x01{oops".as_slice())
            .unwrap();
        tx.open_table(accounts)
            .unwrap()
            .insert("not a jid@@", b"\x01{}".as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(matches!(
        store.accounts().credentials(&romeo).await,
        Err(StoreError::Corrupt(_))
    ));
    match store.accounts().list().await {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("not a jid@@"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_accounts_import_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let accounts: Vec<(BareJid, StoredCredentials)> = (0..10_000)
        .map(|i| {
            (
                jid(&format!("user{i:05}@bulk.example")),
                creds((i % 251) as u8),
            )
        })
        .collect();

    let started = Instant::now();
    let report = store.accounts().import(&accounts).await.unwrap();
    let took = started.elapsed();
    assert_eq!(
        report,
        ImportReport {
            created: 10_000,
            existing: 0
        }
    );
    // Well under a second in release builds; the bound leaves room for an unoptimized test build
    // on a busy machine while still catching one-transaction-per-account (seconds of fsyncs).
    assert!(
        took.as_secs_f64() < 3.0,
        "importing 10,000 accounts took {took:?}"
    );
    eprintln!("imported 10,000 accounts in {took:?}");

    assert_eq!(
        store
            .accounts()
            .credentials(&accounts[9_999].0)
            .await
            .unwrap(),
        Some(accounts[9_999].1.clone())
    );
    let listed = store.accounts().list().await.unwrap();
    assert_eq!(listed.len(), 10_000);
    assert_eq!(listed[0], accounts[0].0);
    let again = store.accounts().import(&accounts[..10]).await.unwrap();
    assert_eq!(
        again,
        ImportReport {
            created: 0,
            existing: 10
        }
    );
}

#[tokio::test]
async fn a_truncated_database_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let items: Vec<(BareJid, StoredCredentials)> = (0..2_000)
            .map(|i| (jid(&format!("u{i}@cut.example")), creds(i as u8)))
            .collect();
        store.accounts().import(&items).await.unwrap();
    }
    let path = dir.path().join(FILE_NAME);
    let bytes = std::fs::read(&path).unwrap();
    // redb 2 asserts on these (file shorter than its header says); the store must contain that.
    for keep in [bytes.len() / 2, 4096, 600] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let msg = unavailable(EmbeddedStore::open(dir.path()));
        assert!(
            msg.contains("corrupt") && msg.contains(&path.display().to_string()),
            "{msg}"
        );
    }
    // The failed opens released the file: restoring it makes it open again.
    std::fs::write(&path, &bytes).unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.accounts().list().await.unwrap().len(), 2_000);
}

/// Group commit (crate docs, `writer`): writes that queue up together share one transaction,
/// yet each caller sees exactly what it would have alone. Here 200 concurrent writers race: the
/// ones creating an account that another one already created must get `AlreadyExists` without
/// undoing the others' writes in the same group, and every write that was answered `Ok` must
/// be on disk after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_each_durable_and_a_failing_one_spoils_no_other() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for n in 0..200u32 {
            let (accounts, kv) = (store.accounts(), store.kv("last"));
            tasks.push(tokio::spawn(async move {
                // Pairs of tasks create the same account: one of each pair must fail.
                let user = jid(&format!("user{}@example.net", n / 2));
                let created = accounts.create(&user, &creds(1)).await;
                let own = jid(&format!("writer{n}@example.net"));
                kv.set(&own, &n.to_be_bytes()).await.unwrap();
                created
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let created = outcomes.iter().filter(|r| r.is_ok()).count();
        let refused = outcomes
            .iter()
            .filter(|r| matches!(r, Err(StoreError::AlreadyExists)))
            .count();
        assert_eq!(
            (created, refused),
            (100, 100),
            "each account created once: {outcomes:?}"
        );
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.accounts().list().await.unwrap().len(), 100);
    for n in 0..200u32 {
        let own = jid(&format!("writer{n}@example.net"));
        assert_eq!(
            store.kv("last").get(&own).await.unwrap(),
            Some(n.to_be_bytes().to_vec()),
            "write {n} answered Ok, so it must have been committed"
        );
    }
}

/// A write whose caller stopped waiting (its future dropped, e.g. the connection closed) is
/// still made, and the store closes cleanly after it.
#[tokio::test]
async fn a_write_whose_caller_went_away_still_lands() {
    let dir = tempfile::tempdir().unwrap();
    let juliet = jid("juliet@capulet.example");
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let kv = store.kv("vcard");
        let write = kv.set(&juliet, b"<vCard/>");
        // Polled exactly once (its first poll queues it), then dropped unanswered.
        tokio::select! {
            biased;
            _ = write => panic!("the write was answered on its first poll"),
            () = std::future::ready(()) => {}
        }
    }
    // Dropping the store waited for the writer thread, which made the queued write first.
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        store.kv("vcard").get(&juliet).await.unwrap(),
        Some(b"<vCard/>".to_vec())
    );
}
