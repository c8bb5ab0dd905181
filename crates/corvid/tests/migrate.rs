//! `corvid store migrate` end to end: the binary copies accounts and their data between two
//! embedded stores in temporary folders; the test then compares both stores through
//! `Migration::export_user` and logs in against the destination.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use corvid_jid::BareJid;
use corvid_sasl::{ChannelBindings, Mechanism, ServerSession, Step, StoredCredentials};
use corvid_storage::Store;
use corvid_store_embedded::EmbeddedStore;

/// Runs the binary in `dir` with `args`, no inherited `CORVID…` variables and empty stdin.
fn corvid(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corvid"));
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CORVID") {
            command.env_remove(name);
        }
    }
    let mut child = command.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"").unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn jid(s: &str) -> BareJid {
    s.parse().unwrap()
}

/// A temporary folder with two configurations, `old.toml` and `new.toml`, each naming its own
/// embedded store (`old/` and `new/`).
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let sandbox = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        sandbox.config("old.toml", &sandbox.path("old"));
        sandbox.config("new.toml", &sandbox.path("new"));
        sandbox
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a configuration `name` whose store is the folder `data`.
    fn config(&self, name: &str, data: &Path) -> String {
        let text = format!(
            "version = 1\n\
             [server]\n\
             domains = [\"localhost\", \"capulet.example\"]\n\
             [storage]\n\
             backend = \"embedded\"\n\
             path = {:?}\n\
             [auth]\n\
             scram_iterations = 4096\n",
            data.display().to_string()
        );
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        corvid(self.dir.path(), args)
    }

    fn migrate(&self, from: &str, to: &str) -> Output {
        self.run(&["store", "migrate", "--from", from, "--to", to])
    }

    /// Opens the store in folder `name` (the binary must not be using it meanwhile).
    fn open(&self, name: &str) -> Arc<EmbeddedStore> {
        EmbeddedStore::open(&self.path(name)).unwrap()
    }
}

/// Logs `user` in with PLAIN against `creds`, as the server would.
fn plain_login(user: &str, password: &str, creds: &StoredCredentials) -> bool {
    let mut session = ServerSession::new(Mechanism::Plain, ChannelBindings::default(), false, 4096);
    let initial = format!("\0{user}\0{password}");
    match session.start(initial.as_bytes()) {
        Ok(Step::NeedCredentials { username }) => assert_eq!(username, user),
        other => panic!("unexpected first PLAIN step {other:?}"),
    }
    matches!(session.credentials(Some(creds)), Ok(Step::Success { .. }))
}

#[test]
fn migrate_copies_every_account_with_its_data_and_logins_still_work() {
    let sandbox = Sandbox::new();
    let juliet = jid("juliet@localhost");
    let romeo = jid("romeo@capulet.example");
    let nurse = jid("nurse@localhost");
    for (who, password) in [
        ("juliet@localhost", "balcony"),
        ("romeo@capulet.example", "poison"),
    ] {
        let added = sandbox.run(&["--config", "old.toml", "user", "add", who, "-p", password]);
        assert_exit(&added, 0);
    }
    assert_exit(
        &sandbox.run(&[
            "--config",
            "new.toml",
            "user",
            "add",
            "nurse@localhost",
            "-p",
            "x",
        ]),
        0,
    );

    block_on(async {
        let old = sandbox.open("old");
        let roster = old.map("roster");
        roster
            .set(
                &juliet,
                "romeo@capulet.example",
                b"<item subscription='both'/>",
            )
            .await
            .unwrap();
        roster
            .set(&juliet, "nurse@localhost", b"<item subscription='to'/>")
            .await
            .unwrap();
        roster
            .set(&romeo, "juliet@localhost", b"<item subscription='both'/>")
            .await
            .unwrap();
        old.map("roster_versions")
            .set(&juliet, "ver", b"7")
            .await
            .unwrap();
        old.kv("vcard")
            .set(&juliet, b"<vCard><FN>Juliet</FN></vCard>")
            .await
            .unwrap();
        old.kv("last").set(&romeo, b"1700000000").await.unwrap();
        let offline = old.archive("offline");
        for body in ["one", "two", "three"] {
            offline
                .append(&juliet, body.as_bytes(), None)
                .await
                .unwrap();
        }
        // A gap in the ids, which the destination must keep.
        let two = offline.range(&juliet, None, 3).await.unwrap()[1].0;
        offline.remove(&juliet, &[two]).await.unwrap();
        offline.append(&romeo, b"hello", None).await.unwrap();

        // Juliet already has stale data in the destination, which the migration replaces.
        let new = sandbox.open("new");
        let stale = StoredCredentials::derive("stale", 4096).unwrap();
        new.accounts().create(&juliet, &stale).await.unwrap();
        new.map("roster")
            .set(&juliet, "tybalt@localhost", b"stale")
            .await
            .unwrap();
        new.archive("offline")
            .append(&juliet, b"stale", None)
            .await
            .unwrap();
    });

    // Juliet: 3 roster-ish entries, 1 kv, 2 archive items; Romeo: 1 entry, 1 kv, 1 item.
    let expected = "migrated 2 accounts, 9 records\n";
    let migrated = sandbox.migrate("old.toml", "new.toml");
    assert_exit(&migrated, 0);
    assert_eq!(stdout(&migrated), expected);

    let check = || {
        block_on(async {
            let (old, new) = (sandbox.open("old"), sandbox.open("new"));
            assert_eq!(
                old.accounts().list().await.unwrap(),
                vec![juliet.clone(), romeo.clone()]
            );
            for who in [&juliet, &romeo] {
                let source = old.migration().export_user(who).await.unwrap().unwrap();
                let copied = new.migration().export_user(who).await.unwrap();
                assert_eq!(
                    copied.as_ref(),
                    Some(&source),
                    "{who} differs after migration"
                );
                assert_eq!(
                    new.accounts().credentials(who).await.unwrap(),
                    Some(source.credentials.clone()),
                    "{who}'s credentials differ"
                );
            }
            assert_eq!(
                new.accounts().list().await.unwrap(),
                vec![juliet.clone(), nurse.clone(), romeo.clone()],
                "accounts only the destination has are left alone"
            );
            assert_eq!(
                new.map("roster")
                    .get(&juliet, "tybalt@localhost")
                    .await
                    .unwrap(),
                None,
                "stale destination data is replaced"
            );
            assert_eq!(new.archive("offline").count(&juliet).await.unwrap(), 2);
            let creds = |who: &BareJid| {
                let new = Arc::clone(&new);
                let who = who.clone();
                async move { new.accounts().credentials(&who).await.unwrap().unwrap() }
            };
            (creds(&juliet).await, creds(&romeo).await)
        })
    };
    let (juliet_creds, romeo_creds) = check();
    assert!(
        plain_login("juliet", "balcony", &juliet_creds),
        "juliet logs in"
    );
    assert!(
        plain_login("romeo", "poison", &romeo_creds),
        "romeo logs in"
    );
    assert!(
        !plain_login("juliet", "stale", &juliet_creds),
        "the stale password is gone"
    );

    // Running it again is safe and changes nothing.
    let again = sandbox.migrate("old.toml", "new.toml");
    assert_exit(&again, 0);
    assert_eq!(stdout(&again), expected);
    check();
}

#[test]
fn migrate_refuses_the_same_store_a_missing_source_and_bad_configurations() {
    let sandbox = Sandbox::new();
    assert_exit(
        &sandbox.run(&[
            "--config",
            "old.toml",
            "user",
            "add",
            "juliet@localhost",
            "-p",
            "b",
        ]),
        0,
    );

    // The same folder, spelled differently.
    let same = sandbox.config(
        "same.toml",
        &sandbox.path("old").join(".").join("..").join("old"),
    );
    let refused = sandbox.migrate("old.toml", &same);
    assert_exit(&refused, 64);
    assert!(
        stderr(&refused).contains("same store"),
        "{}",
        stderr(&refused)
    );

    // A source folder with no store in it is a mistake, not an empty store, and is not created.
    let typo = sandbox.config("typo.toml", &sandbox.path("olld"));
    let missing = sandbox.migrate(&typo, "new.toml");
    assert_exit(&missing, 64);
    assert!(
        stderr(&missing).contains("no store at"),
        "{}",
        stderr(&missing)
    );
    assert!(!sandbox.path("olld").exists());

    let absent = sandbox.migrate("old.toml", "/nonexistent/corvid.toml");
    assert_exit(&absent, 64);
    assert!(
        stderr(&absent).contains("--to /nonexistent/corvid.toml"),
        "{}",
        stderr(&absent)
    );

    std::fs::write(sandbox.path("bad.toml"), "[storage]\nbogus = 1\n").unwrap();
    let bad = sandbox.migrate("bad.toml", "new.toml");
    assert_exit(&bad, 64);
    assert!(stderr(&bad).contains("storage.bogus"), "{}", stderr(&bad));

    // A global --config that does not load does not matter to `store migrate`.
    let ignored = sandbox.run(&[
        "--config", "bad.toml", "store", "migrate", "--from", "old.toml", "--to", "new.toml",
    ]);
    assert_exit(&ignored, 0);
    assert_eq!(stdout(&ignored), "migrated 1 accounts, 0 records\n");
}

#[test]
fn a_destination_that_cannot_be_opened_exits_1() {
    let sandbox = Sandbox::new();
    assert_exit(
        &sandbox.run(&[
            "--config",
            "old.toml",
            "user",
            "add",
            "juliet@localhost",
            "-p",
            "b",
        ]),
        0,
    );
    // A file where the destination folder should be.
    std::fs::write(sandbox.path("blocked"), b"not a folder").unwrap();
    let blocked = sandbox.config("blocked.toml", &sandbox.path("blocked"));
    let failed = sandbox.migrate("old.toml", &blocked);
    assert_exit(&failed, 1);
    assert!(
        stderr(&failed).contains("storage.path") && stderr(&failed).contains("blocked"),
        "{}",
        stderr(&failed)
    );
}

impl Sandbox {
    fn redis_config(&self, name: &str, url: &str, prefix: &str) -> String {
        let text = format!(
            "version = 1\n\
             [server]\n\
             domains = [\"localhost\", \"capulet.example\"]\n\
             [storage]\n\
             backend = \"redis\"\n\
             [storage.redis]\n\
             url = {url:?}\n\
             key_prefix = {prefix:?}\n\
             [auth]\n\
             scram_iterations = 4096\n"
        );
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

#[test]
fn migrate_round_trip_embedded_to_redis_and_back_keeps_everything_identical() {
    // The migration test: embedded → Redis → embedded, data identical.
    let sandbox = Sandbox::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let redis = runtime.block_on(corvid_store_redis::testing::RedisServer::start());
    let juliet = jid("juliet@localhost");
    let romeo = jid("romeo@capulet.example");
    for (who, password) in [
        ("juliet@localhost", "balcony"),
        ("romeo@capulet.example", "poison"),
    ] {
        assert_exit(
            &sandbox.run(&["--config", "old.toml", "user", "add", who, "-p", password]),
            0,
        );
    }
    let original = runtime.block_on(async {
        let old = sandbox.open("old");
        old.map("roster")
            .set(&juliet, "romeo@capulet.example", b"both")
            .await
            .unwrap();
        old.kv("vcard").set(&juliet, b"<vCard/>").await.unwrap();
        let offline = old.archive("offline");
        for body in ["one", "two", "three"] {
            offline
                .append(&juliet, body.as_bytes(), None)
                .await
                .unwrap();
        }
        let two = offline.range(&juliet, None, 3).await.unwrap()[1].0;
        offline.remove(&juliet, &[two]).await.unwrap();
        let mut all = Vec::new();
        for who in [&juliet, &romeo] {
            all.push(old.migration().export_user(who).await.unwrap().unwrap());
        }
        all
    });
    let via_redis = sandbox.redis_config("redis.toml", &redis.url(), "migration");
    assert_exit(&sandbox.migrate("old.toml", &via_redis), 0);
    let back = sandbox.config("back.toml", &sandbox.path("back"));
    assert_exit(&sandbox.migrate(&via_redis, &back), 0);
    let round_tripped = runtime.block_on(async {
        let back = sandbox.open("back");
        let mut all = Vec::new();
        for who in [&juliet, &romeo] {
            all.push(back.migration().export_user(who).await.unwrap().unwrap());
        }
        all
    });
    assert_eq!(
        original, round_tripped,
        "embedded → Redis → embedded changes nothing"
    );
    drop(redis);
}

#[test]
fn user_commands_work_against_redis() {
    // The admin CLI on the Redis backend: add, list, passwd, import, del.
    let sandbox = Sandbox::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let redis = runtime.block_on(corvid_store_redis::testing::RedisServer::start());
    let config = sandbox.redis_config("redis.toml", &redis.url(), "cli");
    let run = |args: &[&str]| {
        let mut all = vec!["--config", config.as_str()];
        all.extend_from_slice(args);
        sandbox.run(&all)
    };
    assert_exit(
        &run(&["user", "add", "juliet@localhost", "-p", "balcony"]),
        0,
    );
    assert_exit(&run(&["user", "add", "juliet@localhost", "-p", "again"]), 1);
    std::fs::write(
        sandbox.path("users.csv"),
        "romeo@capulet.example,poison\nnurse@localhost,x\nnot a jid,y\n",
    )
    .unwrap();
    let csv = sandbox.path("users.csv").display().to_string();
    let imported = run(&["user", "import", "--csv", &csv]);
    assert_exit(&imported, 0);
    assert!(
        stdout(&imported).contains("created 2"),
        "{}",
        stdout(&imported)
    );
    let listed = run(&["user", "list"]);
    assert_exit(&listed, 0);
    assert_eq!(
        stdout(&listed).lines().collect::<Vec<_>>(),
        [
            "juliet@localhost",
            "nurse@localhost",
            "romeo@capulet.example"
        ]
    );
    assert_exit(
        &run(&["user", "passwd", "juliet@localhost", "-p", "window"]),
        0,
    );
    let creds = runtime.block_on(async {
        let mut settings = corvid_settings::Settings::default();
        settings.storage.backend = "redis".into();
        settings.storage.redis.url = redis.url();
        settings.storage.redis.key_prefix = "cli".into();
        let store = corvid::storage::open(&settings).await.unwrap();
        store
            .accounts()
            .credentials(&jid("juliet@localhost"))
            .await
            .unwrap()
            .unwrap()
    });
    assert!(plain_login("juliet", "window", &creds));
    assert!(!plain_login("juliet", "balcony", &creds));
    assert_exit(&run(&["user", "del", "nurse@localhost"]), 0);
    let listed = run(&["user", "list"]);
    assert_eq!(stdout(&listed).lines().count(), 2, "{}", stdout(&listed));
    drop(redis);
}
