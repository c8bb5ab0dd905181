//! Command-line flags. Connection and account flags come before the scenario, the scenario's
//! own flags after it: `corvid-loadgen --port 5222 --insecure login --count 1000`.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand, ValueEnum};

/// An XMPP load generator: real TCP, STARTTLS, SASL, bind and presence, as a client does.
/// Prints one JSON line of results per run.
#[derive(Debug, Clone, Parser)]
#[command(name = "corvid-loadgen", version)]
pub struct Args {
    /// Server address to connect to.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Client-to-server port (STARTTLS, RFC 6120 §5).
    #[arg(long, default_value_t = 5222)]
    pub port: u16,
    /// The XMPP domain the accounts live on (the stream's `to`).
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Localpart pattern: `{n}` is replaced by the account number.
    #[arg(long, default_value = "user{n}")]
    pub accounts: String,
    /// Number of the first account.
    #[arg(long, default_value_t = 1)]
    pub first_account: u64,
    /// How many accounts exist (numbers first-account .. first-account + account-count − 1).
    #[arg(long, default_value_t = 1000)]
    pub account_count: u64,
    /// The password of every account.
    #[arg(long, default_value = "password")]
    pub password: String,
    /// SASL mechanism.
    #[arg(long, value_enum, default_value_t = Mech::ScramSha1)]
    pub mechanism: Mech,
    /// Accept any server certificate (self-signed benchmark servers). Handshake signatures
    /// are still checked.
    #[arg(long)]
    pub insecure: bool,
    /// Trust the CA certificates in this PEM file instead of the system's.
    #[arg(long, conflicts_with = "insecure")]
    pub ca_file: Option<PathBuf>,
    /// Name to check the certificate against and to send as SNI (default: the domain).
    #[arg(long)]
    pub tls_name: Option<String>,
    /// Read the server's CPU time and RSS from /proc/PID.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// A free-form label copied into the result (e.g. the server's name).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Seconds a single login (or any single wait for the server) may take.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// What to measure.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// SASL mechanisms the load generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mech {
    /// SCRAM-SHA-1 (RFC 5802).
    #[value(name = "SCRAM-SHA-1", alias = "scram-sha-1")]
    ScramSha1,
    /// SCRAM-SHA-256 (RFC 7677).
    #[value(name = "SCRAM-SHA-256", alias = "scram-sha-256")]
    ScramSha256,
    /// PLAIN (RFC 4616).
    #[value(name = "PLAIN", alias = "plain")]
    Plain,
}

impl Mech {
    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Mech::ScramSha1 => "SCRAM-SHA-1",
            Mech::ScramSha256 => "SCRAM-SHA-256",
            Mech::Plain => "PLAIN",
        }
    }
}

/// The scenarios.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Scenario {
    /// COUNT logins (TLS, SASL, bind, presence, then a clean close) with CONCURRENCY in flight:
    /// sessions/s, setup latency, server CPU per login.
    Login {
        /// Number of logins.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Logins in flight.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
    },
    /// SESSIONS authenticated, available sessions held for HOLD seconds: server RSS per session.
    Idle {
        /// Sessions to open (one account each).
        #[arg(long, default_value_t = 1000)]
        sessions: u64,
        /// Logins in flight while opening them.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Seconds to hold them before measuring.
        #[arg(long, default_value_t = 60)]
        hold_secs: u64,
    },
    /// PAIRS sender/receiver pairs of 1:1 chat messages: closed loop to saturation (no RATE), or
    /// at RATE messages/s in total; latency, lost, duplicate and reordered counts, server CPU per
    /// 1000.
    Messages(Flow),
    /// The messages scenario across the edges of a 3-edge cluster: senders on the first edge,
    /// receivers on the second. With KILL_PID the receivers are on the third edge instead, whose
    /// server is process KILL_PID: after KILL_AFTER_SECS it is sent SIGKILL, and the receivers
    /// log in again on the second edge with the same resource. What was lost (by phase: before
    /// the kill, during the outage, after the receiver's new login), how long until every
    /// receiver was logged in again and until traffic flowed again.
    Cluster {
        /// The STARTTLS client listeners of the three edges, `HOST:PORT,HOST:PORT,HOST:PORT`.
        #[arg(long, value_delimiter = ',', required = true)]
        edges: Vec<String>,
        /// Pairs, rate, window, duration and drain, as for `messages`.
        #[command(flatten)]
        flow: Flow,
        /// The process id of the third edge's server, killed with SIGKILL during the run.
        #[arg(long, requires = "kill_after_secs")]
        kill_pid: Option<u32>,
        /// Seconds after the start of sending at which KILL_PID is killed.
        #[arg(long, requires = "kill_pid")]
        kill_after_secs: Option<u64>,
    },
    /// CYCLES login/logout cycles with CONCURRENCY in flight; server RSS and CPU per login over
    /// a start and the last SAMPLE cycles are compared. The start window follows a warm-up pass
    /// in which every account logs in once (at most CYCLES − 2·SAMPLE cycles), so that caches
    /// sized by the data (the store's pages, per-account rows) are filled: what is compared is
    /// growth with age, which a leak shows and a warm cache does not.
    Churn {
        /// Login/logout cycles.
        #[arg(long, default_value_t = 100_000)]
        cycles: u64,
        /// Cycles in flight.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Cycles in each of the start and end measuring windows.
        #[arg(long, default_value_t = 5000)]
        sample: u64,
    },
}

/// The message flow shared by the `messages` and `cluster` scenarios.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Flow {
    /// Sender/receiver pairs (two accounts each).
    #[arg(long, default_value_t = 50)]
    pub pairs: u64,
    /// Total messages per second; without it every pair keeps WINDOW messages in flight.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Messages in flight per pair in the closed loop.
    #[arg(long, default_value_t = 16)]
    pub window: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Seconds to wait for messages still in flight after sending stops (a message not
    /// received by then is lost).
    #[arg(long, default_value_t = 5)]
    pub drain_secs: u64,
}

impl Scenario {
    /// The scenario's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Login { .. } => "login",
            Scenario::Idle { .. } => "idle",
            Scenario::Messages(_) => "messages",
            Scenario::Cluster { .. } => "cluster",
            Scenario::Churn { .. } => "churn",
        }
    }
}

impl Flow {
    /// Checks the counts; the accounts the pairs need (two each).
    fn accounts_needed(&self) -> anyhow::Result<u64> {
        if self.pairs == 0 || self.window == 0 || self.rate == Some(0) {
            bail!("--pairs, --window and --rate must be at least 1");
        }
        self.pairs.checked_mul(2).context("--pairs is too large")
    }
}

impl Args {
    /// Parses an argument vector (program name first), for callers without clap in scope.
    pub fn from_argv<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        <Self as Parser>::try_parse_from(argv)
    }

    /// Checks what clap cannot: the pattern, counts and that the accounts suffice.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.accounts.contains("{n}") {
            bail!("--accounts `{}` has no `{{n}}`", self.accounts);
        }
        if self.account_count == 0 {
            bail!("--account-count must be at least 1");
        }
        let needed = match &self.scenario {
            Scenario::Login { concurrency, .. } | Scenario::Churn { concurrency, .. } => {
                if *concurrency == 0 {
                    bail!("--concurrency must be at least 1");
                }
                1
            }
            Scenario::Idle {
                sessions,
                concurrency,
                ..
            } => {
                if *concurrency == 0 {
                    bail!("--concurrency must be at least 1");
                }
                *sessions
            }
            Scenario::Messages(flow) => flow.accounts_needed()?,
            Scenario::Cluster {
                edges,
                flow,
                kill_pid,
                kill_after_secs,
            } => {
                if edges.len() != 3 {
                    bail!(
                        "--edges needs the three edges' client listeners, got {}",
                        edges.len()
                    );
                }
                if kill_pid.is_some() && flow.rate.is_none() {
                    bail!("--kill-pid needs --rate: a closed loop stalls on the messages the kill loses");
                }
                if kill_after_secs.is_some_and(|s| s >= flow.duration_secs) {
                    bail!("--kill-after-secs must be less than --duration-secs");
                }
                flow.accounts_needed()?
            }
        };
        if needed > self.account_count {
            bail!(
                "the {} scenario needs {needed} distinct accounts, --account-count is {}",
                self.scenario.name(),
                self.account_count
            );
        }
        if let Scenario::Churn { cycles, sample, .. } = &self.scenario {
            if sample.saturating_mul(2) > *cycles || *sample == 0 {
                bail!("--sample must be at least 1 and at most half of --cycles");
            }
        }
        Ok(())
    }

    /// The localpart of account `i` (0-based, offset by --first-account, wrapping around).
    pub fn localpart(&self, i: u64) -> String {
        let n = self.first_account + i % self.account_count;
        self.accounts.replace("{n}", &n.to_string())
    }

    /// The resource login `i` binds: `lg` on the first pass over the accounts (what the
    /// messages scenario addresses), `lg1`, `lg2`, … on later passes, so two logins of one
    /// account that overlap never bind the same full JID (the server would end the older one
    /// with `conflict`, RFC 6120 §7.7.2.2).
    pub fn resource(&self, i: u64) -> String {
        match i / self.account_count.max(1) {
            0 => crate::xmpp::RESOURCE.to_owned(),
            pass => format!("{}{pass}", crate::xmpp::RESOURCE),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Args> {
        let args =
            Args::try_parse_from(std::iter::once("corvid-loadgen").chain(args.iter().copied()))?;
        args.validate()?;
        Ok(args)
    }

    #[test]
    fn connection_flags_then_scenario_flags() {
        let a = parse(&[
            "--host",
            "10.0.0.1",
            "--port",
            "5322",
            "--domain",
            "example.org",
            "--accounts",
            "bench{n}",
            "--account-count",
            "20000",
            "--password",
            "pw",
            "--mechanism",
            "SCRAM-SHA-256",
            "--insecure",
            "--server-pid",
            "77",
            "login",
            "--count",
            "500",
            "--concurrency",
            "8",
        ])
        .unwrap();
        assert_eq!(a.host, "10.0.0.1");
        assert_eq!(a.port, 5322);
        assert_eq!(a.mechanism, Mech::ScramSha256);
        assert!(a.insecure);
        assert_eq!(a.server_pid, Some(77));
        assert_eq!(
            a.scenario,
            Scenario::Login {
                count: 500,
                concurrency: 8
            }
        );
        assert_eq!(a.localpart(0), "bench1");
        assert_eq!(a.localpart(20_000), "bench1");
        assert_eq!(a.localpart(41), "bench42");
        // Overlapping logins of one account (a later pass) bind different resources.
        assert_eq!(a.resource(0), "lg");
        assert_eq!(a.resource(19_999), "lg");
        assert_eq!(a.resource(20_000), "lg1");
        assert_eq!(a.resource(45_000), "lg2");
    }

    #[test]
    fn defaults_and_lowercase_mechanisms() {
        let a = parse(&["--mechanism", "plain", "messages", "--rate", "5000"]).unwrap();
        assert_eq!(a.mechanism, Mech::Plain);
        assert_eq!(a.domain, "localhost");
        assert!(!a.insecure);
        assert_eq!(
            a.scenario,
            Scenario::Messages(Flow {
                pairs: 50,
                rate: Some(5000),
                window: 16,
                duration_secs: 10,
                drain_secs: 5
            })
        );
    }

    #[test]
    fn cluster_takes_three_edges_the_flow_flags_and_an_optional_kill() {
        let a = parse(&[
            "cluster",
            "--edges",
            "127.0.0.1:5221,127.0.0.1:5222,127.0.0.1:5223",
            "--pairs",
            "20",
            "--rate",
            "2000",
            "--duration-secs",
            "9",
            "--kill-pid",
            "4242",
            "--kill-after-secs",
            "3",
        ])
        .unwrap();
        assert_eq!(a.scenario.name(), "cluster");
        assert_eq!(
            a.scenario,
            Scenario::Cluster {
                edges: vec![
                    "127.0.0.1:5221".into(),
                    "127.0.0.1:5222".into(),
                    "127.0.0.1:5223".into()
                ],
                flow: Flow {
                    pairs: 20,
                    rate: Some(2000),
                    window: 16,
                    duration_secs: 9,
                    drain_secs: 5
                },
                kill_pid: Some(4242),
                kill_after_secs: Some(3),
            }
        );
        let err = |args: &[&str]| parse(args).unwrap_err().to_string();
        let edges = "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3";
        assert!(err(&["cluster", "--edges", "127.0.0.1:1,127.0.0.1:2"]).contains("three edges"));
        assert!(err(&["cluster"]).contains("--edges"));
        // A closed loop would wait forever for what the kill loses.
        assert!(err(&[
            "cluster",
            "--edges",
            edges,
            "--kill-pid",
            "1",
            "--kill-after-secs",
            "1"
        ])
        .contains("--rate"));
        let late = [
            "cluster",
            "--edges",
            edges,
            "--rate",
            "10",
            "--kill-pid",
            "1",
            "--kill-after-secs",
            "10",
        ];
        assert!(err(&late).contains("less than --duration-secs"));
        // Each of the two kill flags needs the other.
        assert!(parse(&[
            "cluster",
            "--edges",
            edges,
            "--rate",
            "10",
            "--kill-pid",
            "1"
        ])
        .is_err());
        assert!(parse(&["cluster", "--edges", edges, "--kill-after-secs", "1"]).is_err());
    }

    #[test]
    fn bad_combinations_are_refused_with_a_reason() {
        let err = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert!(err(&["--accounts", "user", "login"]).contains("{n}"));
        assert!(err(&["--account-count", "10", "messages", "--pairs", "6"]).contains("12 distinct"));
        assert!(err(&["--account-count", "10", "idle", "--sessions", "11"]).contains("11 distinct"));
        assert!(err(&["churn", "--cycles", "10", "--sample", "6"]).contains("half"));
        assert!(err(&["login", "--concurrency", "0"]).contains("concurrency"));
        assert!(parse(&["--insecure", "--ca-file", "x.pem", "login"]).is_err());
        assert!(parse(&["--mechanism", "DIGEST-MD5", "login"]).is_err());
        assert!(parse(&[]).is_err());
    }
}
