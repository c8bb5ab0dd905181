//! The conformance suite every storage backend runs.
//!
//! A backend's test calls [`run_all`] once on a fresh store:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread")]
//! async fn conformance() {
//!     let dir = tempfile::tempdir().unwrap();
//!     corvid_storage::testsuite::run_all(EmbeddedStore::open(dir.path()).unwrap()).await;
//! }
//! ```
//!
//! Each case is also a public function, so a backend can run one on its own while debugging.
//! Cases pick user names that no other case (and no earlier run against the same backend) uses,
//! so they can share one store and never see each other's data. They panic, with a message
//! naming the broken contract, on the first failure.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use corvid_jid::BareJid;
use corvid_sasl::{ScramKeys, StoredCredentials};

use crate::{ImportReport, Store, StoreError, StoreResult, UserData};

/// Runs every case, one after the other, on `store`.
pub async fn run_all(store: Arc<dyn Store>) {
    accounts_create_then_create_again_is_already_exists(store.clone()).await;
    accounts_set_credentials_of_unknown_account_is_not_found(store.clone()).await;
    accounts_credentials_round_trip(store.clone()).await;
    accounts_delete_unknown_returns_false(store.clone()).await;
    accounts_delete_removes_user_data_in_every_store(store.clone()).await;
    accounts_list_is_sorted_and_complete(store.clone()).await;
    accounts_import_counts_created_and_existing(store.clone()).await;
    accounts_differing_only_in_domain_are_different_users(store.clone()).await;
    kv_get_set_delete(store.clone()).await;
    kv_isolated_between_users_and_store_names(store.clone()).await;
    map_set_get_delete(store.clone()).await;
    map_all_is_ordered_bytewise(store.clone()).await;
    map_clear_removes_only_that_users_entries(store.clone()).await;
    map_isolated_between_users_and_store_names(store.clone()).await;
    map_concurrent_writes_to_different_keys_lose_nothing(store.clone()).await;
    archive_ids_increase_strictly(store.clone()).await;
    archive_ids_increase_after_removals_and_clear(store.clone()).await;
    archive_ids_not_reused_after_account_delete(store.clone()).await;
    archive_range_after_and_limit(store.clone()).await;
    archive_remove_counts_existing(store.clone()).await;
    archive_count_and_clear(store.clone()).await;
    archive_max_items_limit_stores_nothing(store.clone()).await;
    archive_isolated_between_users_and_store_names(store.clone()).await;
    archive_concurrent_appends_lose_nothing(store.clone()).await;
    archive_concurrent_appends_respect_max_items(store.clone()).await;
    values_of_any_size_and_content_round_trip(store.clone()).await;
    migration_export_of_unknown_user_is_none(store.clone()).await;
    migration_export_then_import_after_delete_restores_identical_data(store.clone()).await;
    migration_import_replaces_previous_data(store.clone()).await;
    migration_archive_appends_after_import_get_higher_ids(store.clone()).await;
    migration_export_lists_store_names_sorted(store).await;
}

// ---------------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------------

/// `create` stores an account once; a second `create` is `AlreadyExists` and keeps the first
/// credentials.
pub async fn accounts_create_then_create_again_is_already_exists(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    let alice = user("create", "alice", DOMAIN);
    ok(
        accounts.create(&alice, &creds(1)).await,
        "create a new account",
    );
    assert_eq!(
        accounts.create(&alice, &creds(2)).await,
        Err(StoreError::AlreadyExists),
        "creating an existing account must be AlreadyExists"
    );
    assert_eq!(
        ok(accounts.credentials(&alice).await, "read credentials"),
        Some(creds(1)),
        "a failed create must not replace the credentials"
    );
}

/// `set_credentials` on an unknown account is `NotFound` and creates nothing; on a known one it
/// replaces the credentials.
pub async fn accounts_set_credentials_of_unknown_account_is_not_found(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    let ghost = user("setcreds", "ghost", DOMAIN);
    assert_eq!(
        accounts.set_credentials(&ghost, &creds(1)).await,
        Err(StoreError::NotFound),
        "set_credentials of an unknown account must be NotFound"
    );
    assert_eq!(
        ok(accounts.credentials(&ghost).await, "read credentials"),
        None,
        "set_credentials must not create an account"
    );

    let bob = user("setcreds", "bob", DOMAIN);
    ok(accounts.create(&bob, &creds(1)).await, "create");
    ok(
        accounts.set_credentials(&bob, &creds(2)).await,
        "set_credentials",
    );
    assert_eq!(
        ok(accounts.credentials(&bob).await, "read credentials"),
        Some(creds(2)),
        "set_credentials must replace the credentials"
    );
}

/// Credentials come back exactly as stored, field by field; unknown accounts have none.
pub async fn accounts_credentials_round_trip(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    let carol = user("roundtrip", "carol", DOMAIN);
    assert_eq!(
        ok(accounts.credentials(&carol).await, "read"),
        None,
        "no account yet"
    );
    let stored = StoredCredentials {
        sha1: ScramKeys {
            salt: vec![0, 255, 1, 254],
            iterations: u32::MAX,
            stored_key: (0..20).collect(),
            server_key: (100..120).collect(),
        },
        sha256: ScramKeys {
            salt: Vec::new(),
            iterations: 0,
            stored_key: vec![7; 32],
            server_key: vec![9; 32],
        },
    };
    ok(accounts.create(&carol, &stored).await, "create");
    assert_eq!(
        ok(accounts.credentials(&carol).await, "read"),
        Some(stored),
        "credentials must round trip"
    );
}

/// Deleting an account that does not exist returns false.
pub async fn accounts_delete_unknown_returns_false(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    let nobody = user("delunknown", "nobody", DOMAIN);
    assert!(
        !ok(accounts.delete(&nobody).await, "delete"),
        "deleting an unknown account must return false"
    );

    let dave = user("delunknown", "dave", DOMAIN);
    ok(accounts.create(&dave, &creds(1)).await, "create");
    assert!(
        ok(accounts.delete(&dave).await, "delete"),
        "deleting an account must return true"
    );
    assert!(
        !ok(accounts.delete(&dave).await, "delete"),
        "deleting it again must return false"
    );
    assert_eq!(
        ok(accounts.credentials(&dave).await, "read"),
        None,
        "a deleted account has no credentials"
    );
}

/// Deleting an account removes the user's data from key-value, map and archive stores of any
/// name (including names first used just now), and nobody else's.
pub async fn accounts_delete_removes_user_data_in_every_store(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    let tag = nonce();
    let erin = user("deldata", "erin", DOMAIN);
    let frank = user("deldata", "frank", DOMAIN);
    let kv_names = [format!("kv-a-{tag}"), format!("kv-b-{tag}")];
    let map_names = [format!("map-a-{tag}"), format!("map-b-{tag}")];
    let archive_names = [format!("arc-a-{tag}"), format!("arc-b-{tag}")];

    ok(accounts.create(&erin, &creds(1)).await, "create erin");
    ok(accounts.create(&frank, &creds(2)).await, "create frank");
    for who in [&erin, &frank] {
        for name in &kv_names {
            ok(store.kv(name).set(who, b"doc").await, "kv set");
        }
        for name in &map_names {
            ok(store.map(name).set(who, "k1", b"v1").await, "map set");
            ok(store.map(name).set(who, "k2", b"v2").await, "map set");
        }
        for name in &archive_names {
            ok(store.archive(name).append(who, b"m1", None).await, "append");
            ok(store.archive(name).append(who, b"m2", None).await, "append");
        }
    }

    assert!(
        ok(accounts.delete(&erin).await, "delete erin"),
        "deleting an existing account returns true"
    );

    assert_eq!(
        ok(accounts.credentials(&erin).await, "read"),
        None,
        "account must be gone"
    );
    for name in &kv_names {
        assert_eq!(
            ok(store.kv(name).get(&erin).await, "kv get"),
            None,
            "kv {name} must be emptied for erin"
        );
        assert_eq!(
            ok(store.kv(name).get(&frank).await, "kv get"),
            Some(b"doc".to_vec()),
            "kv {name} of frank must survive"
        );
    }
    for name in &map_names {
        assert!(
            ok(store.map(name).all(&erin).await, "map all").is_empty(),
            "map {name} must be emptied for erin"
        );
        assert_eq!(
            ok(store.map(name).all(&frank).await, "map all").len(),
            2,
            "map {name} of frank must survive"
        );
    }
    for name in &archive_names {
        let archive = store.archive(name);
        assert_eq!(
            ok(archive.count(&erin).await, "count"),
            0,
            "archive {name} must be emptied for erin"
        );
        assert!(
            ok(archive.range(&erin, None, 10).await, "range").is_empty(),
            "archive {name} range"
        );
        assert_eq!(
            ok(archive.count(&frank).await, "count"),
            2,
            "archive {name} of frank must survive"
        );
    }
    assert!(
        ok(accounts.credentials(&frank).await, "read").is_some(),
        "deleting one account must not delete another"
    );
}

/// `list` returns every account, sorted by [`BareJid`]'s order, without duplicates, and no
/// deleted ones.
pub async fn accounts_list_is_sorted_and_complete(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    let tag = nonce();
    // Names chosen so that byte order of "node@domain" and the order of BareJid disagree.
    let mine: Vec<BareJid> = [
        format!("a{tag}@{DOMAIN}"),
        format!("a{tag}-x@{DOMAIN}"),
        format!("b{tag}@{DOMAIN}"),
        format!("a{tag}@a.{DOMAIN}"),
        format!("z{tag}@{DOMAIN}"),
    ]
    .iter()
    .map(|s| jid(s))
    .collect();
    for (i, who) in mine.iter().enumerate().rev() {
        ok(accounts.create(who, &creds(i as u8)).await, "create");
    }
    let gone = jid(&format!("gone{tag}@{DOMAIN}"));
    ok(accounts.create(&gone, &creds(0)).await, "create");
    ok(accounts.delete(&gone).await, "delete");

    let listed = ok(accounts.list().await, "list");
    assert!(
        listed.windows(2).all(|w| w[0] < w[1]),
        "list must be strictly sorted by BareJid order, got {listed:?}"
    );
    for who in &mine {
        assert!(listed.contains(who), "list must contain {who}");
    }
    assert!(
        !listed.contains(&gone),
        "list must not contain deleted {gone}"
    );
}

/// `import` creates the missing accounts, leaves existing ones untouched and counts both; a JID
/// repeated within one import is created once and then counted as existing.
pub async fn accounts_import_counts_created_and_existing(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    let tag = nonce();
    let old = jid(&format!("old{tag}@{DOMAIN}"));
    ok(accounts.create(&old, &creds(1)).await, "create");

    let batch: Vec<(BareJid, StoredCredentials)> = vec![
        (jid(&format!("new1{tag}@{DOMAIN}")), creds(10)),
        (old.clone(), creds(11)),
        (jid(&format!("new2{tag}@{DOMAIN}")), creds(12)),
        (jid(&format!("new1{tag}@{DOMAIN}")), creds(13)),
        (jid(&format!("new3{tag}@{DOMAIN}")), creds(14)),
    ];
    let report = ok(accounts.import(&batch).await, "import");
    assert_eq!(
        report,
        ImportReport {
            created: 3,
            existing: 2
        },
        "import must count created and existing"
    );
    assert_eq!(
        ok(accounts.credentials(&old).await, "read"),
        Some(creds(1)),
        "import must not touch existing"
    );
    assert_eq!(
        ok(accounts.credentials(&batch[0].0).await, "read"),
        Some(creds(10)),
        "the first occurrence of a repeated JID wins"
    );
    assert_eq!(
        ok(accounts.credentials(&batch[4].0).await, "read"),
        Some(creds(14)),
        "imported credentials"
    );

    let again = ok(accounts.import(&batch).await, "import again");
    assert_eq!(
        again,
        ImportReport {
            created: 0,
            existing: 5
        },
        "importing again creates nothing"
    );
    assert_eq!(
        ok(accounts.import(&[]).await, "empty import"),
        ImportReport::default(),
        "an empty import does nothing"
    );
}

/// Two JIDs with the same localpart on different domains are two users in every store.
pub async fn accounts_differing_only_in_domain_are_different_users(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    let tag = nonce();
    let one = jid(&format!("same{tag}@one.example"));
    let two = jid(&format!("same{tag}@two.example"));
    let name = format!("domains-{tag}");

    ok(accounts.create(&one, &creds(1)).await, "create one");
    ok(
        accounts.create(&two, &creds(2)).await,
        "create two: a different domain is a different account",
    );
    ok(store.kv(&name).set(&one, b"one").await, "kv set");
    ok(store.map(&name).set(&one, "k", b"one").await, "map set");
    ok(
        store.archive(&name).append(&one, b"one", None).await,
        "append",
    );

    assert_eq!(ok(accounts.credentials(&two).await, "read"), Some(creds(2)));
    assert_eq!(
        ok(store.kv(&name).get(&two).await, "kv get"),
        None,
        "kv must not leak across domains"
    );
    assert!(
        ok(store.map(&name).all(&two).await, "map all").is_empty(),
        "map must not leak across domains"
    );
    assert_eq!(
        ok(store.archive(&name).count(&two).await, "count"),
        0,
        "archive must not leak across domains"
    );

    assert!(ok(accounts.delete(&two).await, "delete two"));
    assert_eq!(
        ok(accounts.credentials(&one).await, "read"),
        Some(creds(1)),
        "deleting two keeps one"
    );
    assert_eq!(
        ok(store.kv(&name).get(&one).await, "kv get"),
        Some(b"one".to_vec()),
        "deleting two keeps one's kv"
    );
    assert_eq!(
        ok(store.map(&name).all(&one).await, "map all").len(),
        1,
        "deleting two keeps one's map"
    );
    assert_eq!(
        ok(store.archive(&name).count(&one).await, "count"),
        1,
        "deleting two keeps one's archive"
    );
}

// ---------------------------------------------------------------------------------------------
// Key-value
// ---------------------------------------------------------------------------------------------

/// `get` is `None` until `set`; `set` replaces; `delete` reports whether there was a document.
pub async fn kv_get_set_delete(store: Arc<dyn Store>) {
    let kv = store.kv(&format!("kv-{}", nonce()));
    let gina = user("kv", "gina", DOMAIN);
    assert_eq!(ok(kv.get(&gina).await, "get"), None, "no document yet");
    assert!(
        !ok(kv.delete(&gina).await, "delete"),
        "deleting a missing document returns false"
    );
    ok(kv.set(&gina, b"first").await, "set");
    assert_eq!(ok(kv.get(&gina).await, "get"), Some(b"first".to_vec()));
    ok(kv.set(&gina, b"second").await, "set");
    assert_eq!(
        ok(kv.get(&gina).await, "get"),
        Some(b"second".to_vec()),
        "set must replace"
    );
    ok(kv.set(&gina, b"").await, "set empty");
    assert_eq!(
        ok(kv.get(&gina).await, "get"),
        Some(Vec::new()),
        "an empty document is not a missing one"
    );
    assert!(
        ok(kv.delete(&gina).await, "delete"),
        "deleting a document returns true"
    );
    assert_eq!(ok(kv.get(&gina).await, "get"), None, "deleted");
    assert!(
        !ok(kv.delete(&gina).await, "delete"),
        "deleting twice returns false"
    );
}

/// Documents of different users, and of one user in differently named stores, are separate.
pub async fn kv_isolated_between_users_and_store_names(store: Arc<dyn Store>) {
    let tag = nonce();
    let (a, b) = (
        store.kv(&format!("kv-{tag}")),
        store.kv(&format!("kv-{tag}-2")),
    );
    let hank = user("kviso", "hank", DOMAIN);
    let ivy = user("kviso", "ivy", DOMAIN);
    ok(a.set(&hank, b"hank-a").await, "set");
    ok(b.set(&hank, b"hank-b").await, "set");
    ok(a.set(&ivy, b"ivy-a").await, "set");
    assert_eq!(ok(a.get(&hank).await, "get"), Some(b"hank-a".to_vec()));
    assert_eq!(
        ok(b.get(&hank).await, "get"),
        Some(b"hank-b".to_vec()),
        "store names are separate"
    );
    assert_eq!(
        ok(a.get(&ivy).await, "get"),
        Some(b"ivy-a".to_vec()),
        "users are separate"
    );
    assert_eq!(ok(b.get(&ivy).await, "get"), None);
    assert!(ok(a.delete(&hank).await, "delete"));
    assert_eq!(
        ok(b.get(&hank).await, "get"),
        Some(b"hank-b".to_vec()),
        "delete in one store keeps the other"
    );
    assert_eq!(
        ok(a.get(&ivy).await, "get"),
        Some(b"ivy-a".to_vec()),
        "delete of one user keeps the other"
    );
    let again = store.kv(&format!("kv-{tag}-2"));
    assert_eq!(
        ok(again.get(&hank).await, "get"),
        Some(b"hank-b".to_vec()),
        "a new handle sees the same data"
    );
}

// ---------------------------------------------------------------------------------------------
// Map
// ---------------------------------------------------------------------------------------------

/// `get`/`set`/`delete` of single entries.
pub async fn map_set_get_delete(store: Arc<dyn Store>) {
    let map = store.map(&format!("map-{}", nonce()));
    let jane = user("map", "jane", DOMAIN);
    assert_eq!(ok(map.get(&jane, "romeo").await, "get"), None);
    assert!(
        !ok(map.delete(&jane, "romeo").await, "delete"),
        "deleting a missing entry returns false"
    );
    ok(map.set(&jane, "romeo", b"friend").await, "set");
    assert_eq!(
        ok(map.get(&jane, "romeo").await, "get"),
        Some(b"friend".to_vec())
    );
    ok(map.set(&jane, "romeo", b"enemy").await, "set");
    assert_eq!(
        ok(map.get(&jane, "romeo").await, "get"),
        Some(b"enemy".to_vec()),
        "set must replace"
    );
    ok(map.set(&jane, "", b"empty key").await, "set empty key");
    assert_eq!(
        ok(map.get(&jane, "").await, "get"),
        Some(b"empty key".to_vec()),
        "the empty key is a key"
    );
    ok(map.set(&jane, "nothing", b"").await, "set empty value");
    assert_eq!(
        ok(map.get(&jane, "nothing").await, "get"),
        Some(Vec::new()),
        "an empty value is not a missing one"
    );
    assert!(
        ok(map.delete(&jane, "romeo").await, "delete"),
        "deleting an entry returns true"
    );
    assert_eq!(ok(map.get(&jane, "romeo").await, "get"), None);
    assert!(
        !ok(map.delete(&jane, "romeo").await, "delete"),
        "deleting twice returns false"
    );
    assert_eq!(
        ok(map.all(&jane).await, "all").len(),
        2,
        "other entries remain"
    );
}

/// `all` returns every entry ordered bytewise by key, whatever the insertion order.
pub async fn map_all_is_ordered_bytewise(store: Arc<dyn Store>) {
    let map = store.map(&format!("map-{}", nonce()));
    let kim = user("maporder", "kim", DOMAIN);
    assert!(ok(map.all(&kim).await, "all").is_empty(), "no entries yet");
    let keys = [
        "b",
        "a\u{0}",
        "ä",
        "B",
        "a",
        "ab",
        "a/b",
        "z",
        "\u{1F600}",
        "aa",
    ];
    for (i, key) in keys.iter().enumerate() {
        ok(map.set(&kim, key, &[i as u8]).await, "set");
    }
    let mut expected: Vec<(String, Vec<u8>)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.to_string(), vec![i as u8]))
        .collect();
    expected.sort_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
    assert_eq!(
        ok(map.all(&kim).await, "all"),
        expected,
        "all must be ordered bytewise by key"
    );
}

/// `clear` removes all of one user's entries in one store, nothing else.
pub async fn map_clear_removes_only_that_users_entries(store: Arc<dyn Store>) {
    let tag = nonce();
    let (map, other) = (
        store.map(&format!("map-{tag}")),
        store.map(&format!("map-{tag}-other")),
    );
    let leo = user("mapclear", "leo", DOMAIN);
    let mia = user("mapclear", "mia", DOMAIN);
    for key in ["x", "y", "z"] {
        ok(map.set(&leo, key, b"1").await, "set");
        ok(map.set(&mia, key, b"2").await, "set");
        ok(other.set(&leo, key, b"3").await, "set");
    }
    ok(map.clear(&leo).await, "clear");
    assert!(
        ok(map.all(&leo).await, "all").is_empty(),
        "clear must remove every entry"
    );
    assert_eq!(ok(map.get(&leo, "x").await, "get"), None);
    assert_eq!(
        ok(map.all(&mia).await, "all").len(),
        3,
        "clear must keep other users' entries"
    );
    assert_eq!(
        ok(other.all(&leo).await, "all").len(),
        3,
        "clear must keep other stores' entries"
    );
    ok(map.clear(&leo).await, "clearing an empty map is fine");
    ok(map.set(&leo, "again", b"4").await, "set after clear");
    assert_eq!(
        ok(map.all(&leo).await, "all"),
        vec![("again".to_string(), b"4".to_vec())]
    );
}

/// Same keys for different users, and for one user in differently named stores, are separate.
pub async fn map_isolated_between_users_and_store_names(store: Arc<dyn Store>) {
    let tag = nonce();
    // One name is a prefix of the other, to catch key encodings that concatenate.
    let (a, b) = (
        store.map(&format!("m{tag}")),
        store.map(&format!("m{tag}x")),
    );
    let ned = user("mapiso", "ned", DOMAIN);
    let ned2 = jid(&format!("ned.mapiso{tag}@{DOMAIN}.x"));
    ok(a.set(&ned, "k", b"a").await, "set");
    ok(b.set(&ned, "k", b"b").await, "set");
    ok(a.set(&ned2, "k", b"ned2").await, "set");
    ok(a.set(&ned, "xk", b"a2").await, "set");
    assert_eq!(ok(a.get(&ned, "k").await, "get"), Some(b"a".to_vec()));
    assert_eq!(
        ok(b.get(&ned, "k").await, "get"),
        Some(b"b".to_vec()),
        "store names are separate"
    );
    assert_eq!(
        ok(a.get(&ned2, "k").await, "get"),
        Some(b"ned2".to_vec()),
        "users are separate"
    );
    assert_eq!(
        ok(b.all(&ned).await, "all"),
        vec![("k".to_string(), b"b".to_vec())]
    );
    assert_eq!(ok(a.all(&ned).await, "all").len(), 2);
    assert_eq!(ok(a.all(&ned2).await, "all").len(), 1);
}

/// Many tasks writing different keys of one user's map at once lose no write.
pub async fn map_concurrent_writes_to_different_keys_lose_nothing(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    const PER_TASK: usize = 8;
    let name = format!("map-{}", nonce());
    let olga = user("mapconc", "olga", DOMAIN);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (map, olga) = (store.map(&name), olga.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let key = format!("k{t:02}-{i:02}");
                map.set(&olga, &key, key.as_bytes()).await?;
            }
            StoreResult::Ok(())
        }));
    }
    for task in tasks {
        ok(
            task.await
                .unwrap_or_else(|e| panic!("writer task failed: {e}")),
            "concurrent set",
        );
    }
    let all = ok(store.map(&name).all(&olga).await, "all");
    assert_eq!(
        all.len(),
        TASKS * PER_TASK,
        "every concurrent write must be kept"
    );
    for (key, value) in &all {
        assert_eq!(
            key.as_bytes(),
            value.as_slice(),
            "each entry holds its own value"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Archive
// ---------------------------------------------------------------------------------------------

/// Ids returned by `append` increase strictly, and `range` returns items in that order.
pub async fn archive_ids_increase_strictly(store: Arc<dyn Store>) {
    let archive = store.archive(&format!("arc-{}", nonce()));
    let pat = user("arcids", "pat", DOMAIN);
    let quinn = user("arcids", "quinn", DOMAIN);
    let mut ids = Vec::new();
    for i in 0..20u8 {
        ids.push(ok(archive.append(&pat, &[i], None).await, "append"));
        // Interleave another user, whose appends must not disturb pat's ordering.
        ok(archive.append(&quinn, &[i], None).await, "append");
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids must increase strictly: {ids:?}"
    );
    let items = ok(archive.range(&pat, None, 100).await, "range");
    let expected: Vec<(u64, Vec<u8>)> = ids
        .iter()
        .zip(0u8..)
        .map(|(id, i)| (*id, vec![i]))
        .collect();
    assert_eq!(
        items, expected,
        "range must return every item, oldest first, with its id"
    );
}

/// Ids keep increasing after the newest items were removed and after `clear`: an id is never
/// handed out twice for one user.
pub async fn archive_ids_increase_after_removals_and_clear(store: Arc<dyn Store>) {
    let archive = store.archive(&format!("arc-{}", nonce()));
    let rita = user("arcremove", "rita", DOMAIN);
    let a = ok(archive.append(&rita, b"a", None).await, "append");
    let b = ok(archive.append(&rita, b"b", None).await, "append");
    assert_eq!(ok(archive.remove(&rita, &[b]).await, "remove"), 1);
    let c = ok(archive.append(&rita, b"c", None).await, "append");
    assert!(
        c > b,
        "an id after removing the newest item must exceed it ({c} <= {b})"
    );
    ok(archive.clear(&rita).await, "clear");
    let d = ok(archive.append(&rita, b"d", None).await, "append");
    assert!(
        d > c && c > a,
        "an id after clear must exceed every earlier one ({a}, {c}, {d})"
    );
    assert_eq!(
        ok(archive.range(&rita, None, 10).await, "range"),
        vec![(d, b"d".to_vec())]
    );
}

/// Ids keep increasing for a JID whose account was deleted and created again, so a client that
/// remembers the last id it saw never misses new items.
pub async fn archive_ids_not_reused_after_account_delete(store: Arc<dyn Store>) {
    let accounts = store.accounts();
    let archive = store.archive(&format!("arc-{}", nonce()));
    let sam = user("arcdelete", "sam", DOMAIN);
    ok(accounts.create(&sam, &creds(1)).await, "create");
    ok(archive.append(&sam, b"1", None).await, "append");
    let last = ok(archive.append(&sam, b"2", None).await, "append");
    assert!(ok(accounts.delete(&sam).await, "delete"));
    ok(accounts.create(&sam, &creds(2)).await, "create again");
    let next = ok(archive.append(&sam, b"3", None).await, "append");
    assert!(
        next > last,
        "ids must not be reused after account deletion ({next} <= {last})"
    );
    assert_eq!(
        ok(archive.range(&sam, Some(last), 10).await, "range"),
        vec![(next, b"3".to_vec())]
    );
}

/// `range` returns up to `limit` items with ids greater than `after`, oldest first.
pub async fn archive_range_after_and_limit(store: Arc<dyn Store>) {
    let archive = store.archive(&format!("arc-{}", nonce()));
    let tom = user("arcrange", "tom", DOMAIN);
    assert!(
        ok(archive.range(&tom, None, 10).await, "range").is_empty(),
        "an empty archive"
    );
    let mut ids = Vec::new();
    for i in 0..10u8 {
        ids.push(ok(archive.append(&tom, &[i], None).await, "append"));
    }
    let page = |items: Vec<(u64, Vec<u8>)>| items.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    assert_eq!(
        page(ok(archive.range(&tom, None, 3).await, "range")),
        ids[..3],
        "first page"
    );
    assert_eq!(
        page(ok(archive.range(&tom, Some(ids[2]), 3).await, "range")),
        ids[3..6],
        "next page"
    );
    assert_eq!(
        page(ok(archive.range(&tom, Some(ids[8]), 3).await, "range")),
        ids[9..],
        "last page is short"
    );
    assert!(
        ok(archive.range(&tom, Some(ids[9]), 3).await, "range").is_empty(),
        "nothing after the newest"
    );
    assert!(
        ok(archive.range(&tom, None, 0).await, "range").is_empty(),
        "limit 0 returns nothing"
    );
    assert!(
        ok(archive.range(&tom, Some(u64::MAX), 3).await, "range").is_empty(),
        "after u64::MAX"
    );
    assert_eq!(
        page(ok(archive.range(&tom, Some(0), 100).await, "range")),
        ids,
        "after 0 returns everything"
    );
    // `after` need not be an existing id.
    ok(archive.remove(&tom, &[ids[4]]).await, "remove");
    assert_eq!(
        page(ok(archive.range(&tom, Some(ids[3]), 2).await, "range")),
        vec![ids[5], ids[6]],
        "range skips removed items"
    );
    assert_eq!(
        page(ok(archive.range(&tom, Some(ids[4]), 1).await, "range")),
        vec![ids[5]],
        "after a removed id"
    );
}

/// `remove` deletes the given ids and returns how many existed.
pub async fn archive_remove_counts_existing(store: Arc<dyn Store>) {
    let archive = store.archive(&format!("arc-{}", nonce()));
    let uma = user("arcrm", "uma", DOMAIN);
    let vic = user("arcrm", "vic", DOMAIN);
    let mut ids = Vec::new();
    for i in 0..5u8 {
        ids.push(ok(archive.append(&uma, &[i], None).await, "append"));
    }
    let vic_id = ok(archive.append(&vic, b"v", None).await, "append");
    assert_eq!(
        ok(archive.remove(&uma, &[]).await, "remove"),
        0,
        "removing nothing"
    );
    assert_eq!(
        ok(archive.remove(&uma, &[ids[1], ids[3]]).await, "remove"),
        2
    );
    assert_eq!(
        ok(
            archive
                .remove(&uma, &[ids[1], ids[2], ids[2], u64::MAX])
                .await,
            "remove"
        ),
        1,
        "only ids that existed are counted, each once"
    );
    assert_eq!(
        ok(archive.remove(&uma, &[vic_id]).await, "remove"),
        0,
        "another user's id is not this user's item"
    );
    assert_eq!(
        ok(archive.count(&vic).await, "count"),
        1,
        "another user's item survives"
    );
    let left: Vec<u64> = ok(archive.range(&uma, None, 10).await, "range")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, vec![ids[0], ids[4]]);
    assert_eq!(ok(archive.count(&uma).await, "count"), 2);
}

/// `count` follows appends and removals; `clear` empties one user's archive in one store.
pub async fn archive_count_and_clear(store: Arc<dyn Store>) {
    let tag = nonce();
    let (archive, other) = (
        store.archive(&format!("arc-{tag}")),
        store.archive(&format!("arc-{tag}-other")),
    );
    let wes = user("arccount", "wes", DOMAIN);
    let xena = user("arccount", "xena", DOMAIN);
    assert_eq!(ok(archive.count(&wes).await, "count"), 0);
    for i in 0..7u8 {
        ok(archive.append(&wes, &[i], None).await, "append");
        ok(archive.append(&xena, &[i], None).await, "append");
        ok(other.append(&wes, &[i], None).await, "append");
    }
    assert_eq!(ok(archive.count(&wes).await, "count"), 7);
    ok(archive.clear(&wes).await, "clear");
    assert_eq!(
        ok(archive.count(&wes).await, "count"),
        0,
        "clear empties the archive"
    );
    assert!(ok(archive.range(&wes, None, 10).await, "range").is_empty());
    assert_eq!(
        ok(archive.count(&xena).await, "count"),
        7,
        "clear keeps other users' items"
    );
    assert_eq!(
        ok(other.count(&wes).await, "count"),
        7,
        "clear keeps other stores' items"
    );
    ok(
        archive.clear(&wes).await,
        "clearing an empty archive is fine",
    );
}

/// With `max_items`, an append to a full archive fails with `LimitReached` and stores nothing;
/// freeing room makes appends succeed again.
pub async fn archive_max_items_limit_stores_nothing(store: Arc<dyn Store>) {
    let archive = store.archive(&format!("arc-{}", nonce()));
    let yan = user("arclimit", "yan", DOMAIN);
    let first = ok(archive.append(&yan, b"1", Some(3)).await, "append");
    ok(archive.append(&yan, b"2", Some(3)).await, "append");
    let third = ok(archive.append(&yan, b"3", Some(3)).await, "append");
    assert_eq!(
        archive.append(&yan, b"4", Some(3)).await,
        Err(StoreError::LimitReached),
        "appending to a full archive must be LimitReached"
    );
    assert_eq!(
        ok(archive.count(&yan).await, "count"),
        3,
        "a refused append stores nothing"
    );
    assert!(
        ok(archive.range(&yan, Some(third), 10).await, "range").is_empty(),
        "nothing after the third"
    );
    assert_eq!(
        archive.append(&yan, b"0", Some(0)).await,
        Err(StoreError::LimitReached),
        "max_items 0"
    );
    ok(
        archive.append(&yan, b"4", Some(4)).await,
        "a higher limit leaves room",
    );
    ok(archive.append(&yan, b"5", None).await, "no limit");
    assert_eq!(ok(archive.count(&yan).await, "count"), 5);
    ok(archive.remove(&yan, &[first]).await, "remove");
    assert_eq!(
        archive.append(&yan, b"6", Some(4)).await,
        Err(StoreError::LimitReached)
    );
    ok(
        archive.append(&yan, b"6", Some(5)).await,
        "room after a removal",
    );
}

/// Archives of different users and of differently named stores are separate.
pub async fn archive_isolated_between_users_and_store_names(store: Arc<dyn Store>) {
    let tag = nonce();
    let (a, b) = (
        store.archive(&format!("a{tag}")),
        store.archive(&format!("a{tag}x")),
    );
    let zoe = user("arciso", "zoe", DOMAIN);
    let abe = user("arciso", "abe", DOMAIN);
    ok(a.append(&zoe, b"a", None).await, "append");
    ok(b.append(&zoe, b"b", None).await, "append");
    ok(a.append(&abe, b"abe", None).await, "append");
    let values = |items: Vec<(u64, Vec<u8>)>| items.into_iter().map(|(_, v)| v).collect::<Vec<_>>();
    assert_eq!(
        values(ok(a.range(&zoe, None, 10).await, "range")),
        vec![b"a".to_vec()]
    );
    assert_eq!(
        values(ok(b.range(&zoe, None, 10).await, "range")),
        vec![b"b".to_vec()],
        "store names are separate"
    );
    assert_eq!(
        values(ok(a.range(&abe, None, 10).await, "range")),
        vec![b"abe".to_vec()],
        "users are separate"
    );
    assert_eq!(ok(b.count(&abe).await, "count"), 0);
    ok(a.clear(&zoe).await, "clear");
    assert_eq!(
        ok(b.count(&zoe).await, "count"),
        1,
        "clear in one store keeps the other"
    );
}

/// Many tasks appending to one user's archive at once lose nothing and never share an id.
pub async fn archive_concurrent_appends_lose_nothing(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    const PER_TASK: usize = 10;
    let name = format!("arc-{}", nonce());
    let bea = user("arcconc", "bea", DOMAIN);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (archive, bea) = (store.archive(&name), bea.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..PER_TASK {
                let value = format!("{t}-{i}");
                mine.push((
                    archive.append(&bea, value.as_bytes(), None).await?,
                    value.into_bytes(),
                ));
            }
            StoreResult::Ok(mine)
        }));
    }
    let mut appended = Vec::new();
    for task in tasks {
        let mine = ok(
            task.await
                .unwrap_or_else(|e| panic!("appender task failed: {e}")),
            "concurrent append",
        );
        assert!(
            mine.windows(2).all(|w| w[0].0 < w[1].0),
            "one task's ids must increase: {mine:?}"
        );
        appended.extend(mine);
    }
    let distinct: BTreeSet<u64> = appended.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        distinct.len(),
        TASKS * PER_TASK,
        "every append must get its own id"
    );
    appended.sort();
    let archive = store.archive(&name);
    assert_eq!(
        ok(archive.count(&bea).await, "count"),
        TASKS * PER_TASK,
        "no append may be lost"
    );
    assert_eq!(
        ok(
            archive.range(&bea, None, TASKS * PER_TASK + 1).await,
            "range"
        ),
        appended,
        "the archive holds exactly what was appended, under the ids returned"
    );
}

/// Concurrent appends with `max_items` never overshoot: count-and-insert is atomic.
pub async fn archive_concurrent_appends_respect_max_items(store: Arc<dyn Store>) {
    const TASKS: usize = 24;
    const MAX: usize = 10;
    let name = format!("arc-{}", nonce());
    let cy = user("arcconclimit", "cy", DOMAIN);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (archive, cy) = (store.archive(&name), cy.clone());
        tasks.push(tokio::spawn(async move {
            archive.append(&cy, &[t as u8], Some(MAX)).await
        }));
    }
    let (mut stored, mut refused) = (0, 0);
    for task in tasks {
        match task
            .await
            .unwrap_or_else(|e| panic!("appender task failed: {e}"))
        {
            Ok(_) => stored += 1,
            Err(StoreError::LimitReached) => refused += 1,
            Err(e) => panic!("concurrent append with max_items failed: {e}"),
        }
    }
    assert_eq!(
        (stored, refused),
        (MAX, TASKS - MAX),
        "exactly max_items appends may succeed"
    );
    assert_eq!(
        ok(store.archive(&name).count(&cy).await, "count"),
        MAX,
        "the archive must not overshoot"
    );
}

/// Values of any bytes, empty or large, come back unchanged in every shape.
pub async fn values_of_any_size_and_content_round_trip(store: Arc<dyn Store>) {
    let name = format!("values-{}", nonce());
    let dan = user("values", "dan", DOMAIN);
    let big: Vec<u8> = (0..256 * 1024)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let all_bytes: Vec<u8> = (0..=255).collect();
    for value in [Vec::new(), all_bytes, big] {
        ok(store.kv(&name).set(&dan, &value).await, "kv set");
        assert_eq!(
            ok(store.kv(&name).get(&dan).await, "kv get"),
            Some(value.clone()),
            "kv value"
        );
        ok(store.map(&name).set(&dan, "k", &value).await, "map set");
        assert_eq!(
            ok(store.map(&name).get(&dan, "k").await, "map get"),
            Some(value.clone()),
            "map value"
        );
        let id = ok(
            store.archive(&name).append(&dan, &value, None).await,
            "append",
        );
        let back = ok(
            store.archive(&name).range(&dan, id.checked_sub(1), 1).await,
            "range",
        );
        assert_eq!(back, vec![(id, value)], "archive value");
    }
}

// ---------------------------------------------------------------------------------------------
// Migration
// ---------------------------------------------------------------------------------------------

/// Exporting an account that does not exist (or no longer does) is `None`, even when the user
/// once had data.
pub async fn migration_export_of_unknown_user_is_none(store: Arc<dyn Store>) {
    let migration = store.migration();
    let nobody = user("exportnone", "nobody", DOMAIN);
    assert_eq!(
        ok(migration.export_user(&nobody).await, "export"),
        None,
        "export of an unknown user must be None"
    );
    let gone = user("exportnone", "gone", DOMAIN);
    ok(store.accounts().create(&gone, &creds(1)).await, "create");
    ok(
        store
            .kv(&format!("kv-{}", nonce()))
            .set(&gone, b"doc")
            .await,
        "kv set",
    );
    ok(store.accounts().delete(&gone).await, "delete");
    assert_eq!(
        ok(migration.export_user(&gone).await, "export"),
        None,
        "export of a deleted user must be None"
    );
}

/// Export, delete the account, import the export: the account and every kv document, map entry
/// and archive item (with its id, gaps included) are back, identical and readable through the
/// ordinary stores, and no neighbour's data came along.
pub async fn migration_export_then_import_after_delete_restores_identical_data(
    store: Arc<dyn Store>,
) {
    let (accounts, migration) = (store.accounts(), store.migration());
    let tag = nonce();
    let (kv_name, map_name, archive_name) = (
        format!("vcard-{tag}"),
        format!("roster-{tag}"),
        format!("offline-{tag}"),
    );
    let kim = jid(&format!("kim{tag}@{DOMAIN}"));
    // Neighbours whose keys start with kim's bytes must stay out of kim's export.
    let kimberly = jid(&format!("kim{tag}x@{DOMAIN}"));
    let kim_elsewhere = jid(&format!("kim{tag}@{DOMAIN}.other"));

    for (who, seed) in [(&kim, 1), (&kimberly, 2), (&kim_elsewhere, 3)] {
        ok(accounts.create(who, &creds(seed)).await, "create");
        ok(store.kv(&kv_name).set(who, &[seed]).await, "kv set");
        ok(store.map(&map_name).set(who, "x", &[seed]).await, "map set");
        ok(
            store
                .archive(&archive_name)
                .append(who, &[seed], None)
                .await,
            "append",
        );
    }
    ok(
        store
            .map(&map_name)
            .set(&kim, "romeo@montague.example", b"both")
            .await,
        "map set",
    );
    ok(
        store.map(&map_name).set(&kim, "", b"empty key").await,
        "map set",
    );
    let archive = store.archive(&archive_name);
    let middle = ok(archive.append(&kim, b"middle", None).await, "append");
    ok(archive.append(&kim, b"", None).await, "append");
    ok(archive.remove(&kim, &[middle]).await, "remove");

    let exported = ok(migration.export_user(&kim).await, "export")
        .unwrap_or_else(|| panic!("export of an existing account must be Some"));
    assert_eq!(exported.jid, kim, "exported jid");
    assert_eq!(exported.credentials, creds(1), "exported credentials");
    assert_eq!(
        exported.kv,
        vec![(kv_name.clone(), vec![1])],
        "exported kv documents"
    );
    assert_eq!(
        exported.maps,
        vec![
            (map_name.clone(), String::new(), b"empty key".to_vec()),
            (
                map_name.clone(),
                "romeo@montague.example".into(),
                b"both".to_vec()
            ),
            (map_name.clone(), "x".into(), vec![1]),
        ],
        "exported map entries"
    );
    let items = ok(archive.range(&kim, None, 10).await, "range");
    assert_eq!(items.len(), 2, "two archive items remain");
    let expected_archive: Vec<(String, u64, Vec<u8>)> = items
        .iter()
        .map(|(id, value)| (archive_name.clone(), *id, value.clone()))
        .collect();
    assert_eq!(
        exported.archives, expected_archive,
        "exported archive items, with their ids"
    );

    assert!(ok(accounts.delete(&kim).await, "delete"), "delete kim");
    ok(migration.import_user(&exported).await, "import");

    assert_eq!(
        ok(migration.export_user(&kim).await, "export again"),
        Some(exported),
        "export after import must equal the export before"
    );
    assert_eq!(
        ok(accounts.credentials(&kim).await, "read"),
        Some(creds(1)),
        "import must restore the credentials"
    );
    assert_eq!(
        ok(store.kv(&kv_name).get(&kim).await, "kv get"),
        Some(vec![1]),
        "imported kv is readable"
    );
    assert_eq!(
        ok(store.map(&map_name).all(&kim).await, "map all").len(),
        3,
        "imported map entries are readable"
    );
    assert_eq!(
        ok(archive.range(&kim, None, 10).await, "range"),
        items,
        "imported archive items are readable under their ids"
    );
    assert_eq!(
        ok(archive.count(&kim).await, "count"),
        2,
        "count must include imported items"
    );
    assert!(
        ok(accounts.list().await, "list").contains(&kim),
        "an imported account is listed"
    );
    for (who, seed) in [(&kimberly, 2u8), (&kim_elsewhere, 3)] {
        assert_eq!(
            ok(store.kv(&kv_name).get(who).await, "kv get"),
            Some(vec![seed]),
            "import of kim must not touch {who}"
        );
        assert_eq!(
            ok(store.map(&map_name).all(who).await, "map all"),
            vec![("x".to_owned(), vec![seed])],
            "import of kim must not touch {who}"
        );
        assert_eq!(
            ok(archive.count(who).await, "count"),
            1,
            "import of kim must not touch {who}"
        );
    }
}

/// Importing over an existing account replaces it whole: credentials, and every kv document,
/// map entry and archive item it had are gone unless the import has them.
pub async fn migration_import_replaces_previous_data(store: Arc<dyn Store>) {
    let (accounts, migration) = (store.accounts(), store.migration());
    let tag = nonce();
    let (kv_name, other_kv) = (format!("kv-{tag}"), format!("kv-{tag}-other"));
    let map_name = format!("map-{tag}");
    let (archive_name, other_archive) = (format!("arc-{tag}"), format!("arc-{tag}-other"));
    let lee = user("importreplace", "lee", DOMAIN);
    ok(accounts.create(&lee, &creds(1)).await, "create");
    ok(store.kv(&kv_name).set(&lee, b"old").await, "kv set");
    ok(store.kv(&other_kv).set(&lee, b"old").await, "kv set");
    ok(
        store.map(&map_name).set(&lee, "k1", b"old").await,
        "map set",
    );
    ok(
        store.map(&map_name).set(&lee, "k2", b"old").await,
        "map set",
    );
    ok(
        store
            .archive(&archive_name)
            .append(&lee, b"old", None)
            .await,
        "append",
    );
    ok(
        store
            .archive(&other_archive)
            .append(&lee, b"old", None)
            .await,
        "append",
    );

    let replacement = UserData {
        jid: lee.clone(),
        credentials: creds(2),
        kv: vec![(kv_name.clone(), b"new".to_vec())],
        maps: vec![(map_name.clone(), "k3".into(), b"new".to_vec())],
        archives: vec![(archive_name.clone(), 5, b"new".to_vec())],
    };
    ok(migration.import_user(&replacement).await, "import");

    assert_eq!(
        ok(accounts.credentials(&lee).await, "read"),
        Some(creds(2)),
        "import must replace the credentials"
    );
    assert_eq!(
        ok(store.kv(&kv_name).get(&lee).await, "kv get"),
        Some(b"new".to_vec()),
        "import must replace a kv document"
    );
    assert_eq!(
        ok(store.kv(&other_kv).get(&lee).await, "kv get"),
        None,
        "a kv document the import lacks must be gone"
    );
    assert_eq!(
        ok(store.map(&map_name).all(&lee).await, "map all"),
        vec![("k3".to_owned(), b"new".to_vec())],
        "old map keys must be gone, new ones there"
    );
    assert_eq!(
        ok(
            store.archive(&archive_name).range(&lee, None, 10).await,
            "range"
        ),
        vec![(5, b"new".to_vec())],
        "old archive items must be gone, imported ones there"
    );
    assert_eq!(
        ok(store.archive(&archive_name).count(&lee).await, "count"),
        1,
        "count after a replacing import"
    );
    assert_eq!(
        ok(store.archive(&other_archive).count(&lee).await, "count"),
        0,
        "an archive the import lacks must be emptied"
    );
    assert_eq!(
        ok(migration.export_user(&lee).await, "export"),
        Some(replacement.clone()),
        "export after import is exactly what was imported"
    );

    // Importing the same data again changes nothing: re-running a migration is safe.
    ok(migration.import_user(&replacement).await, "import again");
    assert_eq!(
        ok(migration.export_user(&lee).await, "export"),
        Some(replacement),
        "a repeated import is idempotent"
    );
}

/// After an import, appends to an imported archive get ids above every imported id, and an
/// import with low ids does not lower the ids the store hands out to anyone.
pub async fn migration_archive_appends_after_import_get_higher_ids(store: Arc<dyn Store>) {
    let migration = store.migration();
    let name = format!("arc-{}", nonce());
    let archive = store.archive(&name);
    let mo = user("importids", "mo", DOMAIN);
    let ned = user("importids", "ned", DOMAIN);

    // A store name nobody has appended to yet, with ids far above anything it handed out.
    let high = 1_000_000;
    let imported = UserData {
        jid: mo.clone(),
        credentials: creds(1),
        kv: Vec::new(),
        maps: Vec::new(),
        archives: vec![
            (name.clone(), high - 10, b"a".to_vec()),
            (name.clone(), high, b"b".to_vec()),
        ],
    };
    ok(migration.import_user(&imported).await, "import");
    let next = ok(archive.append(&mo, b"c", None).await, "append");
    assert!(
        next > high,
        "an append after import must get an id above the imported ones ({next} <= {high})"
    );
    assert_eq!(
        ok(archive.range(&mo, Some(high), 10).await, "range"),
        vec![(next, b"c".to_vec())],
        "the new item comes after the imported ones"
    );
    assert_eq!(ok(archive.count(&mo).await, "count"), 3);

    // Low ids imported for another user must not make ned's ids go back.
    let ned_last = ok(archive.append(&ned, b"n1", None).await, "append");
    let low = UserData {
        jid: user("importids", "ola", DOMAIN),
        credentials: creds(2),
        kv: Vec::new(),
        maps: Vec::new(),
        archives: vec![(name.clone(), 1, b"low".to_vec())],
    };
    ok(migration.import_user(&low).await, "import low ids");
    let ned_next = ok(archive.append(&ned, b"n2", None).await, "append");
    assert!(
        ned_next > ned_last,
        "an import with low ids must not lower the ids handed out ({ned_next} <= {ned_last})"
    );

    // Importing mo again with only the low ids leaves mo's later appends above all mo ever had.
    let mut again = imported.clone();
    again.archives = vec![(name.clone(), 2, b"low".to_vec())];
    ok(migration.import_user(&again).await, "import again");
    let after = ok(archive.append(&mo, b"d", None).await, "append");
    assert!(
        after > next,
        "ids must not be reused after a replacing import ({after} <= {next})"
    );
}

/// An export lists kv documents by store name, map entries by store name then key, and archive
/// items by store name then id, whatever order they were written in, with names compared
/// bytewise (`"A" < "a" < "a-" < "a2"`).
pub async fn migration_export_lists_store_names_sorted(store: Arc<dyn Store>) {
    let (accounts, migration) = (store.accounts(), store.migration());
    let tag = nonce();
    let pat = user("exportsorted", "pat", DOMAIN);
    ok(accounts.create(&pat, &creds(1)).await, "create");
    let names: Vec<String> = ["b", "a2", "A", "a-", "a"]
        .iter()
        .map(|suffix| format!("s{tag}{suffix}"))
        .collect();
    let keys = ["zed", "Bob", "al", "al2", "al-"];
    for name in &names {
        ok(store.kv(name).set(&pat, name.as_bytes()).await, "kv set");
        for key in keys {
            ok(
                store.map(name).set(&pat, key, key.as_bytes()).await,
                "map set",
            );
        }
        for i in 0..3u8 {
            ok(store.archive(name).append(&pat, &[i], None).await, "append");
        }
    }

    let mut sorted = names.clone();
    sorted.sort();
    let mut sorted_keys = keys.to_vec();
    sorted_keys.sort();
    let exported = ok(migration.export_user(&pat).await, "export")
        .unwrap_or_else(|| panic!("export of an existing account must be Some"));

    let kv_names: Vec<&str> = exported.kv.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(kv_names, sorted, "kv sorted by store name");
    for (name, value) in &exported.kv {
        assert_eq!(value, name.as_bytes(), "kv value of {name}");
    }
    let map_rows: Vec<(&str, &str)> = exported
        .maps
        .iter()
        .map(|(n, k, _)| (n.as_str(), k.as_str()))
        .collect();
    let expected_maps: Vec<(&str, &str)> = sorted
        .iter()
        .flat_map(|n| sorted_keys.iter().map(move |k| (n.as_str(), *k)))
        .collect();
    assert_eq!(
        map_rows, expected_maps,
        "map entries sorted by store name, then key"
    );
    let archive_names: Vec<&str> = exported
        .archives
        .iter()
        .map(|(n, _, _)| n.as_str())
        .collect();
    let expected_names: Vec<&str> = sorted
        .iter()
        .flat_map(|n| std::iter::repeat_n(n.as_str(), 3))
        .collect();
    assert_eq!(
        archive_names, expected_names,
        "archive items sorted by store name"
    );
    for window in exported.archives.windows(2) {
        if window[0].0 == window[1].0 {
            assert!(
                window[0].1 < window[1].1,
                "archive items of one store sorted by id: {:?}",
                exported.archives
            );
        }
    }
    for name in &names {
        let values: Vec<Vec<u8>> = exported
            .archives
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| v.clone())
            .collect();
        assert_eq!(
            values,
            vec![vec![0], vec![1], vec![2]],
            "archive items of {name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The domain of most test users.
const DOMAIN: &str = "suite.example";

/// Unwraps a store result, panicking with what was being done.
fn ok<T>(result: StoreResult<T>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

/// A tag unique to this process run and call, so cases never share users or store names, even
/// against a persistent backend that already holds data of an earlier run.
fn nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{now:x}{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A user unique to this call: `{name}.{case}{nonce}@{domain}`.
fn user(case: &str, name: &str, domain: &str) -> BareJid {
    jid(&format!("{name}.{case}{}@{domain}", nonce()))
}

/// Parses a JID the suite built itself.
fn jid(s: &str) -> BareJid {
    s.parse()
        .unwrap_or_else(|e| panic!("test JID {s:?} does not parse: {e}"))
}

/// Distinct credentials for each `seed`.
fn creds(seed: u8) -> StoredCredentials {
    let keys = |len: usize, offset: u8| ScramKeys {
        salt: vec![seed; 16],
        iterations: 4096 + u32::from(seed),
        stored_key: vec![seed.wrapping_add(offset); len],
        server_key: vec![seed.wrapping_add(offset).wrapping_add(1); len],
    };
    StoredCredentials {
        sha1: keys(20, 1),
        sha256: keys(32, 2),
    }
}
