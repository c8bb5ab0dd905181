//! `corvid user add|del|list|passwd` (and the dispatch to `import`).
//!
//! Every command takes the store as an [`AccountStore`] so it can be tested without a database;
//! `cli::run_user` opens the real one.

use std::io::Write;

use corvid_jid::{BareJid, DomainPart};
use corvid_sasl::StoredCredentials;
use corvid_settings::Settings;
use corvid_storage::{AccountStore, StoreError};

use crate::cli::{import, password, CliError, UserCommand};

/// Runs one user command, writing results to `out` (and skipped import lines to `err`).
pub async fn run(
    command: &UserCommand,
    settings: &Settings,
    accounts: &dyn AccountStore,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let domains = Domains::new(settings);
    let iterations = settings.auth.scram_iterations;
    match command {
        UserCommand::Add { jid, password } => {
            let jid = domains.account_jid(jid).map_err(CliError::Usage)?;
            let password = password::obtain(password.as_deref(), &jid.to_string())?;
            let creds = derive(password, iterations).await?;
            match accounts.create(&jid, &creds).await {
                Ok(()) => say(out, format_args!("created {jid}")),
                Err(StoreError::AlreadyExists) => {
                    Err(CliError::Runtime(format!("account {jid} already exists")))
                }
                Err(e) => Err(store_error(e)),
            }
        }
        UserCommand::Del { jid } => {
            let jid = domains.account_jid(jid).map_err(CliError::Usage)?;
            match accounts.delete(&jid).await {
                Ok(true) => say(out, format_args!("deleted {jid}")),
                Ok(false) => Err(no_such_account(&jid)),
                Err(e) => Err(store_error(e)),
            }
        }
        UserCommand::Import { csv } => {
            let file = std::fs::File::open(csv)
                .map_err(|e| CliError::Runtime(format!("cannot open {}: {e}", csv.display())))?;
            let summary = import::import(file, &domains, iterations, accounts, err).await?;
            say(
                out,
                format_args!(
                    "created {}, existing {}, invalid {}",
                    summary.created, summary.existing, summary.invalid
                ),
            )
        }
        UserCommand::List => {
            for jid in accounts.list().await.map_err(store_error)? {
                say(out, format_args!("{jid}"))?;
            }
            Ok(())
        }
        UserCommand::Passwd { jid, password } => {
            let jid = domains.account_jid(jid).map_err(CliError::Usage)?;
            // Look first, so nobody types a password for an account that does not exist.
            if accounts
                .credentials(&jid)
                .await
                .map_err(store_error)?
                .is_none()
            {
                return Err(no_such_account(&jid));
            }
            let password = password::obtain(password.as_deref(), &jid.to_string())?;
            let creds = derive(password, iterations).await?;
            match accounts.set_credentials(&jid, &creds).await {
                Ok(()) => say(out, format_args!("changed the password of {jid}")),
                Err(StoreError::NotFound) => Err(no_such_account(&jid)),
                Err(e) => Err(store_error(e)),
            }
        }
    }
}

/// The domains this server hosts, normalized the way JIDs are, so `Example.ORG` in a JID matches
/// `example.org` in the settings.
pub struct Domains {
    parsed: Vec<DomainPart>,
    listed: String,
}

impl Domains {
    /// From `server.domains`. A domain the JID crate rejects cannot match any JID, so it is left
    /// out (settings validation has already checked their syntax).
    pub fn new(settings: &Settings) -> Self {
        Self {
            parsed: settings
                .server
                .domains
                .iter()
                .filter_map(|d| DomainPart::new(d).ok())
                .collect(),
            listed: settings.server.domains.join(", "),
        }
    }

    /// Parses an account's address: a bare JID with a localpart, at a hosted domain. The error
    /// says what is wrong, naming the JID and, if that is the problem, the domain.
    pub fn account_jid(&self, text: &str) -> Result<BareJid, String> {
        let jid: BareJid = text
            .parse()
            .map_err(|e| format!("`{text}` is not a valid bare JID: {e}"))?;
        if jid.node().is_none() {
            return Err(format!(
                "`{text}` has no localpart; accounts look like user@{}",
                jid.domain().as_str()
            ));
        }
        if !self.parsed.contains(jid.domain()) {
            return Err(format!(
                "`{text}`: domain `{}` is not served by this server (server.domains: {})",
                jid.domain().as_str(),
                self.listed
            ));
        }
        Ok(jid)
    }
}

/// Derives credentials off the async threads: PBKDF2 takes tens of milliseconds by design.
async fn derive(password: String, iterations: u32) -> Result<StoredCredentials, CliError> {
    tokio::task::spawn_blocking(move || StoredCredentials::derive(&password, iterations))
        .await
        .map_err(|e| CliError::Runtime(format!("credential derivation failed: {e}")))?
        .map_err(|e| CliError::Usage(format!("the password is not acceptable ({e})")))
}

fn say(out: &mut dyn Write, line: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    writeln!(out, "{line}").map_err(|e| CliError::Runtime(format!("cannot write the output: {e}")))
}

fn no_such_account(jid: &BareJid) -> CliError {
    CliError::Runtime(format!("no such account: {jid}"))
}

pub(crate) fn store_error(e: StoreError) -> CliError {
    CliError::Runtime(format!("store: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use corvid_storage::{ImportReport, StoreResult};

    use super::*;

    /// An in-memory account store, with a record of every `import` batch size.
    #[derive(Default)]
    pub(crate) struct MemoryAccounts {
        pub(crate) accounts: Mutex<BTreeMap<BareJid, StoredCredentials>>,
        pub(crate) batches: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl AccountStore for MemoryAccounts {
        async fn create(&self, jid: &BareJid, creds: &StoredCredentials) -> StoreResult<()> {
            let mut accounts = self.accounts.lock().unwrap();
            if accounts.contains_key(jid) {
                return Err(StoreError::AlreadyExists);
            }
            accounts.insert(jid.clone(), creds.clone());
            Ok(())
        }
        async fn set_credentials(
            &self,
            jid: &BareJid,
            creds: &StoredCredentials,
        ) -> StoreResult<()> {
            match self.accounts.lock().unwrap().get_mut(jid) {
                Some(c) => {
                    *c = creds.clone();
                    Ok(())
                }
                None => Err(StoreError::NotFound),
            }
        }
        async fn credentials(&self, jid: &BareJid) -> StoreResult<Option<StoredCredentials>> {
            Ok(self.accounts.lock().unwrap().get(jid).cloned())
        }
        async fn delete(&self, jid: &BareJid) -> StoreResult<bool> {
            Ok(self.accounts.lock().unwrap().remove(jid).is_some())
        }
        async fn list(&self) -> StoreResult<Vec<BareJid>> {
            Ok(self.accounts.lock().unwrap().keys().cloned().collect())
        }
        async fn import(
            &self,
            batch: &[(BareJid, StoredCredentials)],
        ) -> StoreResult<ImportReport> {
            self.batches.lock().unwrap().push(batch.len());
            let mut accounts = self.accounts.lock().unwrap();
            let mut report = ImportReport::default();
            for (jid, creds) in batch {
                if accounts.contains_key(jid) {
                    report.existing += 1;
                } else {
                    accounts.insert(jid.clone(), creds.clone());
                    report.created += 1;
                }
            }
            Ok(report)
        }
    }

    pub(crate) fn settings() -> Settings {
        let mut settings = Settings::default();
        settings.server.domains = vec!["localhost".into(), "capulet.example".into()];
        settings.auth.scram_iterations = 4096;
        settings
    }

    async fn run_ok(command: UserCommand, accounts: &MemoryAccounts) -> String {
        let mut out = Vec::new();
        run(
            &command,
            &settings(),
            accounts,
            &mut out,
            &mut std::io::sink(),
        )
        .await
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    async fn run_err(command: UserCommand, accounts: &MemoryAccounts) -> CliError {
        run(
            &command,
            &settings(),
            accounts,
            &mut Vec::new(),
            &mut std::io::sink(),
        )
        .await
        .unwrap_err()
    }

    fn add(jid: &str, password: &str) -> UserCommand {
        UserCommand::Add {
            jid: jid.into(),
            password: Some(password.into()),
        }
    }

    #[test]
    fn account_jids_need_a_localpart_and_a_hosted_domain() {
        let domains = Domains::new(&settings());
        assert_eq!(
            domains.account_jid("juliet@localhost").unwrap().to_string(),
            "juliet@localhost"
        );
        assert_eq!(
            domains
                .account_jid("Juliet@Capulet.Example")
                .unwrap()
                .to_string(),
            "juliet@capulet.example"
        );
        let err = domains.account_jid("juliet@montague.example").unwrap_err();
        assert!(err.contains("`montague.example`"), "{err}");
        assert!(domains
            .account_jid("localhost")
            .unwrap_err()
            .contains("no localpart"));
        assert!(domains.account_jid("juliet@localhost/balcony").is_err());
        assert!(domains.account_jid("@localhost").is_err());
        assert!(domains.account_jid("").is_err());
    }

    #[tokio::test]
    async fn add_list_passwd_del_round_trip() {
        let accounts = MemoryAccounts::default();
        assert_eq!(
            run_ok(add("juliet@localhost", "balcony"), &accounts).await,
            "created juliet@localhost\n"
        );
        run_ok(add("romeo@capulet.example", "poison"), &accounts).await;
        let list = run_ok(UserCommand::List, &accounts).await;
        assert_eq!(list, "juliet@localhost\nromeo@capulet.example\n");

        let jid: BareJid = "juliet@localhost".parse().unwrap();
        let before = accounts.accounts.lock().unwrap()[&jid].clone();
        let passwd = UserCommand::Passwd {
            jid: "juliet@localhost".into(),
            password: Some("nurse".into()),
        };
        run_ok(passwd, &accounts).await;
        let after = accounts.accounts.lock().unwrap()[&jid].clone();
        assert_ne!(before, after);
        assert_eq!(after.sha256.iterations, 4096);

        let out = run_ok(
            UserCommand::Del {
                jid: "juliet@localhost".into(),
            },
            &accounts,
        )
        .await;
        assert_eq!(out, "deleted juliet@localhost\n");
        assert_eq!(
            run_ok(UserCommand::List, &accounts).await,
            "romeo@capulet.example\n"
        );
    }

    #[tokio::test]
    async fn errors_and_their_exit_codes() {
        let accounts = MemoryAccounts::default();
        run_ok(add("juliet@localhost", "balcony"), &accounts).await;
        let exists = run_err(add("juliet@localhost", "again"), &accounts).await;
        assert_eq!(exists.exit_code(), 1);
        assert!(exists.to_string().contains("already exists"), "{exists}");

        let foreign = run_err(add("juliet@montague.example", "x"), &accounts).await;
        assert_eq!(foreign.exit_code(), 64);
        assert!(
            foreign.to_string().contains("montague.example"),
            "{foreign}"
        );

        let missing = run_err(
            UserCommand::Del {
                jid: "nobody@localhost".into(),
            },
            &accounts,
        )
        .await;
        assert_eq!(missing.exit_code(), 1);
        let missing = run_err(
            UserCommand::Passwd {
                jid: "nobody@localhost".into(),
                password: Some("x".into()),
            },
            &accounts,
        )
        .await;
        assert!(missing.to_string().contains("no such account"), "{missing}");
        let empty = run_err(add("nurse@localhost", ""), &accounts).await;
        assert_eq!(empty.exit_code(), 64);
    }
}
