//! `corvid store migrate --from CONFIG --to CONFIG`: every account, with all of its data, from
//! one store into another (embedded to Redis, or one embedded folder to another).
//!
//! ```text
//!   --from CONFIG ─ load ─▶ Settings ─ open_store ─▶ source ─ accounts().list()
//!   --to CONFIG   ─ load ─▶ Settings ─ open_store ─▶ destination       │ one account at a time
//!                                                                       ▼
//!                      source.migration().export_user ─▶ destination.migration().import_user
//! ```
//!
//! One account at a time keeps memory to the largest account, and each import replaces that
//! account whole in one transaction: a run that stops part way leaves every account either
//! migrated or untouched, and running it again redoes them all to the same result.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use corvid_settings::Settings;
use corvid_storage::Store;
use corvid_store_embedded::FILE_NAME;

use crate::cli::{open_store, CliError, StoreCommand};

/// What a migration copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrateSummary {
    /// Accounts copied.
    pub accounts: usize,
    /// Key-value documents, map entries and archive items copied, all together.
    pub records: usize,
}

/// Runs one `corvid store …` command; the configurations it names are loaded with `env`.
pub async fn run(
    command: &StoreCommand,
    env: &HashMap<String, String>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        StoreCommand::Migrate { from, to } => {
            let source = load(from, "--from", env)?;
            let destination = load(to, "--to", env)?;
            check_embedded(&source, &destination)?;
            let source = open_store(&source).await?;
            let destination = open_store(&destination).await?;
            let summary = migrate(source.as_ref(), destination.as_ref()).await?;
            writeln!(
                out,
                "migrated {} accounts, {} records",
                summary.accounts, summary.records
            )
            .map_err(|e| CliError::Runtime(format!("cannot write the output: {e}")))
        }
    }
}

/// Copies every account of `source`, with all of its data, into `destination`, replacing what
/// the destination had for those accounts. An account deleted from the source while this runs
/// is skipped. Stops at the first store error, saying which account and how many were done.
pub async fn migrate(
    source: &dyn Store,
    destination: &dyn Store,
) -> Result<MigrateSummary, CliError> {
    let (export, import) = (source.migration(), destination.migration());
    let jids =
        source.accounts().list().await.map_err(|e| {
            CliError::Runtime(format!("store: cannot list the source's accounts: {e}"))
        })?;
    let mut summary = MigrateSummary::default();
    let stopped = |what: String, summary: &MigrateSummary| {
        CliError::Runtime(format!(
            "store: {what} ({} accounts were migrated before it; running the command again is safe)",
            summary.accounts
        ))
    };
    for jid in jids {
        let data = match export.export_user(&jid).await {
            Ok(Some(data)) => data,
            Ok(None) => continue,
            Err(e) => return Err(stopped(format!("cannot export {jid}: {e}"), &summary)),
        };
        if let Err(e) = import.import_user(&data).await {
            return Err(stopped(format!("cannot import {jid}: {e}"), &summary));
        }
        summary.accounts += 1;
        summary.records += data.kv.len() + data.maps.len() + data.archives.len();
    }
    Ok(summary)
}

/// Loads one side's configuration; a bad one is a configuration error naming the flag.
fn load(path: &Path, flag: &str, env: &HashMap<String, String>) -> Result<Settings, CliError> {
    corvid_settings::load(Some(path), env).map_err(|e| {
        CliError::Usage(format!(
            "configuration error in {flag} {}: {e}",
            path.display()
        ))
    })
}

/// Refuses, before anything is opened or created, an embedded source that holds no store (a
/// mistyped path would otherwise "migrate" an empty store it just created) and an embedded
/// destination that is the source itself.
fn check_embedded(source: &Settings, destination: &Settings) -> Result<(), CliError> {
    let embedded = |s: &Settings| s.storage.backend == "embedded";
    if !embedded(source) {
        return Ok(());
    }
    let from = &source.storage.path;
    if !from.join(FILE_NAME).is_file() {
        return Err(CliError::Usage(format!(
            "--from: there is no store at {} (no {FILE_NAME} in it)",
            from.display()
        )));
    }
    if embedded(destination) && resolved(from) == resolved(&destination.storage.path) {
        return Err(CliError::Usage(format!(
            "--from and --to name the same store ({}); CORVID__STORAGE__* variables in the \
             environment apply to both",
            from.display()
        )));
    }
    Ok(())
}

/// The folder with symlinks, `.` and `..` resolved, so two spellings of one folder compare equal;
/// a folder that does not exist yet cannot be the (existing) source, and is kept as given.
fn resolved(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use super::*;

    fn embedded(path: &Path) -> Settings {
        let mut settings = Settings::default();
        settings.storage.path = path.to_path_buf();
        settings
    }

    /// A folder holding an (empty) store file.
    fn store_dir(parent: &Path, name: &str) -> PathBuf {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE_NAME), b"").unwrap();
        dir
    }

    fn usage(result: Result<(), CliError>) -> String {
        match result {
            Err(CliError::Usage(msg)) => msg,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn the_same_folder_however_spelled_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let data = store_dir(tmp.path(), "data");
        let msg = usage(check_embedded(&embedded(&data), &embedded(&data)));
        assert!(msg.contains("same store"), "{msg}");
        let dotted = tmp.path().join("data").join(".").join("..").join("data");
        let msg = usage(check_embedded(&embedded(&data), &embedded(&dotted)));
        assert!(msg.contains("same store"), "{msg}");
        #[cfg(unix)]
        {
            let link = tmp.path().join("link");
            std::os::unix::fs::symlink(&data, &link).unwrap();
            let msg = usage(check_embedded(&embedded(&link), &embedded(&data)));
            assert!(msg.contains("same store"), "{msg}");
        }
    }

    #[test]
    fn different_folders_are_accepted_even_if_the_destination_is_new() {
        let tmp = tempfile::tempdir().unwrap();
        let data = store_dir(tmp.path(), "data");
        let other = store_dir(tmp.path(), "other");
        check_embedded(&embedded(&data), &embedded(&other)).unwrap();
        check_embedded(&embedded(&data), &embedded(&tmp.path().join("new"))).unwrap();
    }

    #[test]
    fn a_source_without_a_store_is_refused_and_not_created() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("typo");
        let msg = usage(check_embedded(
            &embedded(&missing),
            &embedded(&tmp.path().join("new")),
        ));
        assert!(msg.starts_with("--from: there is no store at"), "{msg}");
        assert!(!missing.exists(), "the check must not create the folder");
    }

    #[test]
    fn a_configuration_that_does_not_load_is_a_usage_error_naming_the_flag() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = tmp.path().join("bad.toml");
        std::fs::write(&bad, "[c2s]\nbogus = 1\n").unwrap();
        let err = load(&bad, "--to", &HashMap::new()).unwrap_err();
        assert_eq!(err.exit_code(), 64);
        let msg = err.to_string();
        assert!(msg.starts_with("configuration error in --to "), "{msg}");
        assert!(msg.contains("c2s.bogus"), "{msg}");
    }
}
