//! The program's entry point, shared by the `corvid` binary and the test kit's node binary (so
//! multi-process tests run exactly what users run): parse the command line, load the settings,
//! run the command.
//!
//! Exit codes: 0 on success; 64 (`EX_USAGE`) for bad arguments or a bad configuration, with
//! `corvid: configuration error: …` naming the key; 1 for anything else.

use std::collections::HashMap;
use std::process::ExitCode;

use crate::cli::{self, Cli, CliError, Command, EXIT_USAGE};
use clap::Parser;
use corvid_settings::{ConfigError, Settings};

/// The whole program: what `corvid` does with its command line and environment.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; real usage errors to stderr with 64.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corvid: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let env = environment()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))?;
    // `store …` commands name their configurations themselves, so only the other commands load
    // the global one: a --config (or CORVID_CONFIG) that does not load must not stop a migration.
    let settings = || corvid_settings::load(cli.config.as_deref(), &env);
    match cli.command {
        Command::Serve => {
            let mut settings = settings()?;
            // An edge with cluster.node_id = 0 picks its id now, so that telemetry names it too.
            let picked = crate::cluster::pick_node_id(&mut settings);
            // The OTLP gRPC exporters' channels run on the runtime: set up within it.
            let telemetry = {
                let _runtime = runtime.enter();
                init_telemetry(&settings)?
            };
            if let Some(id) = picked {
                tracing::info!(
                    what = "node-id-picked",
                    node = id,
                    "cluster.node_id is 0: this edge picked its id"
                );
            }
            let served = runtime.block_on(serve(settings));
            // Flushes what is queued (each signal within its export timeout).
            telemetry.shutdown();
            served
        }
        Command::Cert(command) => cli::cert::run(&command, &mut std::io::stdout().lock()),
        Command::Doap => {
            settings()?;
            print!("{}", crate::doap::render(&crate::doap::specs()));
            Ok(())
        }
        Command::User(command) => {
            let settings = settings()?;
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            runtime.block_on(cli::run_user(&command, &settings, &mut out, &mut err))
        }
        Command::Cluster { node, command } => {
            // The configuration gives the node to ask (unless --node does) and the mutual TLS
            // material. With --node and no configuration named, none is needed: plain HTTP/2.
            let settings = match settings() {
                Ok(settings) => Some(settings),
                Err(_) if node.is_some() && cli.config.is_none() => None,
                Err(e) => return Err(e.into()),
            };
            let addr = match (node, &settings) {
                (Some(node), _) => node,
                (None, Some(settings)) => cli::cluster::node_address(None, settings),
                // The configuration loaded unless --node was given (above).
                (None, None) => {
                    return Err(CliError::Usage("no --node and no configuration".into()))
                }
            };
            let transport = match &settings {
                Some(s) => crate::cluster::transport(&s.cluster.tls)
                    .map_err(|e| CliError::Usage(format!("{e:#}")))?,
                None => corvid_proto::Transport::plaintext(),
            };
            let mut out = std::io::stdout().lock();
            runtime.block_on(cli::cluster::run(&command, &addr, &transport, &mut out))
        }
        Command::Store(command) => {
            let mut out = std::io::stdout().lock();
            runtime.block_on(cli::run_store(&command, &env, &mut out))
        }
    }
}

async fn serve(settings: Settings) -> Result<(), CliError> {
    // `{:#}` prints the whole anyhow context chain on one line.
    crate::server::run(settings)
        .await
        .map_err(|e| CliError::Runtime(format!("{e:#}")))
}

/// The process environment as text. `std::env::vars` would panic on a variable that is not
/// UTF-8; such variables are ignored unless they are ours, which is an error naming it.
fn environment() -> Result<HashMap<String, String>, CliError> {
    let mut env = HashMap::new();
    for (name, value) in std::env::vars_os() {
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => {
                env.insert(name, value);
            }
            (Ok(name), Err(_)) if name.starts_with("CORVID") => {
                return Err(CliError::Usage(format!(
                    "environment variable {name} is not valid UTF-8"
                )));
            }
            _ => {}
        }
    }
    Ok(env)
}

/// Installs the global `tracing` subscriber (`[log]`) and OpenTelemetry (`[telemetry]`).
fn init_telemetry(settings: &Settings) -> Result<corvid_telemetry::Telemetry, CliError> {
    let cluster = &settings.cluster;
    let node = corvid_telemetry::NodeIdentity {
        instance: if cluster.enabled {
            format!("node-{}", cluster.node_id)
        } else {
            String::new()
        },
        role: if cluster.enabled {
            cluster.role().name().to_owned()
        } else {
            "single".to_owned()
        },
    };
    corvid_telemetry::init(&settings.telemetry, &settings.log, &node).map_err(|e| match e {
        corvid_telemetry::TelemetryError::LogLevel(reason) => ConfigError::InvalidValue {
            key: "log.level".into(),
            reason,
        }
        .into(),
        corvid_telemetry::TelemetryError::Exporter(reason) => ConfigError::InvalidValue {
            key: "telemetry.otlp_endpoint".into(),
            reason,
        }
        .into(),
        other => CliError::Runtime(other.to_string()),
    })
}
