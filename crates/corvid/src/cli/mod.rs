//! The command line: `corvid serve` and the admin commands (`corvid user …`, `corvid store …`).
//!
//! # Layout
//! - this file: the clap parser ([`Cli`], [`Command`], [`UserCommand`], [`StoreCommand`]),
//!   [`CliError`], which decides the exit code (64 for a bad configuration or bad arguments, 1 for
//!   everything else), and `open_store`, the one place a command opens the configured backend.
//! - `user.rs`: `user add|del|list|passwd` against an [`AccountStore`], and the JID rule every
//!   user command shares (a localpart, and a domain this server hosts).
//! - `import.rs`: `user import --csv`: streaming CSV, credentials derived on every core, batched
//!   [`AccountStore::import`].
//! - `password.rs`: where a password comes from (flag, terminal prompt twice, or one stdin line).
//! - `cluster.rs`: `cluster status|add-registry|remove-registry|drain` against a node's admin
//!   API, following "not the leader" answers to the leader.
//! - `store.rs`: `store migrate --from --to`: every account and its data, from one store into
//!   another, through [`corvid_storage::Migration`].
//!
//! ```text
//!   argv ─ clap ─▶ Cli ─ main.rs loads Settings (file ← CORVID__ env) ─┬─ serve ─▶ server::run
//!                                                                      └─ user … ─▶ cli::run_user
//!                                                                                    └─ open_store
//!   store migrate ─ main.rs ─▶ cli::run_store ─ loads --from and --to ─▶ open_store (each)
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use corvid_settings::{ConfigError, Settings};
use corvid_storage::{AccountStore, Store};

pub mod cert;
pub mod cluster;
mod entry;
pub mod import;
pub mod password;
pub mod store;
pub mod user;

/// `EX_USAGE` from sysexits.h: bad arguments or a bad configuration.
pub const EXIT_USAGE: u8 = 64;

pub use entry::main;
/// Any other failure.
pub const EXIT_FAILURE: u8 = 1;

/// Corvid, a clustered XMPP server.
#[derive(Debug, Parser)]
#[command(name = "corvid", version, about, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file; without one, defaults apply. Every key can also be set as
    /// CORVID__SECTION__KEY in the environment, which wins over the file.
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "FILE",
        env = "CORVID_CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node until ctrl-c or SIGTERM.
    Serve,
    /// Manage accounts in the store the configuration names.
    #[command(subcommand)]
    User(UserCommand),
    /// Work on whole stores (the global --config is not used: each command names its own).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print the DOAP description of the implemented RFCs and XEPs (the repository's doap.xml).
    Doap,
    /// Administer a running cluster through one node's admin API (gRPC).
    Cluster {
        /// `host:port` of the node to ask (its gRPC listener); default: `cluster.listen` of the
        /// configuration.
        #[arg(long, value_name = "HOST:PORT", global = true)]
        node: Option<String>,
        /// What to do.
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Issue the cluster CA and node certificates for mutual TLS between nodes.
    #[command(subcommand)]
    Cert(CertCommand),
}

/// `corvid cert …`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum CertCommand {
    /// Create the cluster's certificate authority: DIR/ca.pem and DIR/ca.key (keep the key
    /// off the nodes; it issues membership).
    Ca {
        /// Folder to write the CA into (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "Corvid cluster CA")]
        name: String,
    },
    /// Issue a node certificate signed by the CA in DIR: DIR/NAME.pem and DIR/NAME.key.
    Node {
        /// Folder holding ca.pem and ca.key; the node's files are written beside them.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// File name of the node's certificate and key, e.g. `node1`.
        #[arg(long)]
        name: String,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// The DNS names and IP addresses the node is reached at (its advertised host).
        #[arg(value_name = "HOST", required = true)]
        hosts: Vec<String>,
    },
}

/// `corvid user …`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        /// Bare JID of the account, e.g. juliet@capulet.example.
        jid: String,
        /// The password. Without it, it is asked for twice on a terminal, or read as one line
        /// from standard input otherwise. On the command line it is visible to other local users
        /// (process list, shell history): prefer the prompt or stdin.
        #[arg(long, short = 'p')]
        password: Option<String>,
    },
    /// Delete an account and all of its data.
    Del {
        /// Bare JID of the account.
        jid: String,
    },
    /// Create many accounts from a CSV file of `jid,password` records (no header line).
    /// Existing accounts are left alone; invalid lines are reported and skipped.
    Import {
        /// The CSV file.
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
    },
    /// List every account, one per line.
    List,
    /// Change an account's password.
    Passwd {
        /// Bare JID of the account.
        jid: String,
        /// The new password; as for `user add`.
        #[arg(long, short = 'p')]
        password: Option<String>,
    },
}

/// `corvid store …`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum StoreCommand {
    /// Copy every account, with all of its data, from the store one configuration names into the
    /// store another names. Accounts already in the destination are replaced by the source's
    /// (so running it again is safe); accounts only the destination has are left alone. Stop the
    /// servers using either store first: changes made while it runs may be missed.
    Migrate {
        /// TOML configuration naming the source store (its `[storage]` section). CORVID__
        /// variables in the environment apply to both files.
        #[arg(long, value_name = "CONFIG")]
        from: PathBuf,
        /// TOML configuration naming the destination store.
        #[arg(long, value_name = "CONFIG")]
        to: PathBuf,
    },
}

/// Why a command failed; [`CliError::exit_code`] is what the process exits with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration cannot be used.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// An argument (a JID, a password) is not acceptable.
    #[error("{0}")]
    Usage(String),
    /// Anything else: the store, I/O, the server.
    #[error("{0}")]
    Runtime(String),
}

impl CliError {
    /// 64 (`EX_USAGE`) for configuration and argument errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => EXIT_USAGE,
            CliError::Runtime(_) => EXIT_FAILURE,
        }
    }
}

/// Runs a `corvid user …` command against the store `settings.storage` names, printing results
/// to `out` and skipped import lines to `err`.
pub async fn run_user(
    command: &UserCommand,
    settings: &Settings,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let store = open_store(settings).await?;
    let accounts: Arc<dyn AccountStore> = store.accounts();
    user::run(command, settings, accounts.as_ref(), out, err).await
}

/// Runs a `corvid store …` command. Each configuration it names is loaded with `env` (the
/// process environment) as `--config` is; results go to `out`.
pub async fn run_store(
    command: &StoreCommand,
    env: &HashMap<String, String>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    store::run(command, env, out).await
}

/// Opens the backend `settings.storage` names (validated at load, so an unknown backend never
/// gets here); a store that fails to open is a runtime error (1).
async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, CliError> {
    crate::storage::open(settings)
        .await
        .map_err(|e| CliError::Runtime(format!("{e:#}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("corvid").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_with_and_without_config() {
        let cli = parse(&["serve"]).unwrap();
        assert!(matches!(cli.command, Command::Serve));
        let cli = parse(&["serve", "--config", "/etc/corvid.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/etc/corvid.toml")));
        // Global: accepted before the subcommand as well.
        let cli = parse(&["--config", "a.toml", "serve"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("a.toml")));
    }

    #[test]
    fn user_add_with_and_without_password() {
        let cli = parse(&["user", "add", "juliet@localhost"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::User(UserCommand::Add { ref jid, password: None }) if jid == "juliet@localhost"
        ));
        let cli = parse(&[
            "user",
            "add",
            "juliet@localhost",
            "--password",
            "s3cret",
            "--config",
            "c.toml",
        ])
        .unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("c.toml")));
        assert!(matches!(
            cli.command,
            Command::User(UserCommand::Add { password: Some(ref p), .. }) if p == "s3cret"
        ));
    }

    #[test]
    fn other_user_commands() {
        let cli = parse(&["user", "passwd", "romeo@localhost", "-p", "x"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::User(UserCommand::Passwd {
                password: Some(_),
                ..
            })
        ));
        let cli = parse(&["user", "del", "romeo@localhost"]).unwrap();
        assert!(
            matches!(cli.command, Command::User(UserCommand::Del { ref jid }) if jid == "romeo@localhost")
        );
        let cli = parse(&["user", "list"]).unwrap();
        assert!(matches!(cli.command, Command::User(UserCommand::List)));
        let cli = parse(&["user", "import", "--csv", "users.csv"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::User(UserCommand::Import { ref csv }) if csv == &PathBuf::from("users.csv")
        ));
    }

    #[test]
    fn store_migrate_takes_two_configurations() {
        let cli = parse(&["store", "migrate", "--from", "old.toml", "--to", "new.toml"]).unwrap();
        assert_eq!(
            store_command(cli),
            Some(StoreCommand::Migrate {
                from: "old.toml".into(),
                to: "new.toml".into()
            })
        );
        let cli = parse(&["store", "migrate", "--to", "b.toml", "--from", "a.toml"]).unwrap();
        assert_eq!(
            store_command(cli),
            Some(StoreCommand::Migrate {
                from: "a.toml".into(),
                to: "b.toml".into()
            })
        );
    }

    #[test]
    fn cluster_commands() {
        use cluster::ClusterCommand;
        let cli = parse(&["cluster", "status", "--json", "--node", "10.0.0.1:7001"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Cluster { node: Some(ref n), command: ClusterCommand::Status { json: true } }
                if n == "10.0.0.1:7001"
        ));
        let cli = parse(&["cluster", "--node", "h:1", "add-registry", "4", "h4:7001"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Cluster { command: ClusterCommand::AddRegistry { id: 4, ref addr }, .. }
                if addr == "h4:7001"
        ));
        let cli = parse(&["cluster", "remove-registry", "2"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Cluster {
                node: None,
                command: ClusterCommand::RemoveRegistry { id: 2 }
            }
        ));
        let cli = parse(&["cluster", "drain", "3", "--grace", "10"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Cluster {
                command: ClusterCommand::Drain {
                    edge: 3,
                    grace: Some(10)
                },
                ..
            }
        ));
        for bad in [
            &["cluster"][..],
            &["cluster", "drain"],
            &["cluster", "drain", "x"],
            &["cluster", "add-registry", "4"],
            &["cluster", "remove-registry", "-1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn store_command(cli: Cli) -> Option<StoreCommand> {
        match cli.command {
            Command::Store(command) => Some(command),
            _ => None,
        }
    }

    #[test]
    fn bad_arguments_are_rejected() {
        for args in [
            &[][..],
            &["user"],
            &["user", "add"],
            &["user", "del"],
            &["user", "import"],
            &["user", "list", "extra"],
            &["user", "frobnicate"],
            &["store"],
            &["store", "migrate"],
            &["store", "migrate", "--from", "a.toml"],
            &["store", "migrate", "--to", "b.toml"],
            &[
                "store", "migrate", "--from", "a.toml", "--to", "b.toml", "extra",
            ],
            &["serve", "--bogus"],
            &["serve", "--config"],
        ] {
            assert!(parse(args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn exit_codes() {
        let config = CliError::Config(ConfigError::UnknownKey {
            key: "c2s.bogus".into(),
        });
        assert_eq!(config.exit_code(), 64);
        assert_eq!(
            config.to_string(),
            "configuration error: unknown configuration key `c2s.bogus`"
        );
        assert_eq!(CliError::Usage("bad jid".into()).exit_code(), 64);
        assert_eq!(CliError::Runtime("disk full".into()).exit_code(), 1);
    }
}
