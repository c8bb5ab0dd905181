//! Interop with a client nobody here wrote: slixmpp (PyPI) logs in with SCRAM over STARTTLS,
//! binds, pings the server (XEP-0199), queries disco (XEP-0030), and two clients exchange
//! messages (RFC 6120 §9 with a local contact). The Python side is `tests/interop/slixmpp_chat.py`.
//!
//! Needs `tests/interop/setup.sh` to have run (the README's test command does it). Without the
//! venv this test fails and says so: it never passes silently.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use corvid::server::Server;
use corvid_settings::Settings;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CORVID_INTEROP_PYTHON") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/.venv/bin/python")
}

/// Starts a server with `users`, runs `script HOST PORT` with the venv's Python, and checks it
/// printed "interop ok".
async fn run_script(script: &str, users: &[(&str, &str)]) {
    let py = python();
    assert!(
        py.exists(),
        "INTEROP CLIENT MISSING: {} not found. Run tests/interop/setup.sh (installs slixmpp from PyPI) \
         or set CORVID_INTEROP_PYTHON.",
        py.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.storage.path = dir.path().to_path_buf();
    settings.c2s.starttls_listen = "127.0.0.1:0".into();
    settings.c2s.direct_tls_listen = "127.0.0.1:0".into();
    settings.admin.listen = "127.0.0.1:0".into();
    let server = Server::start(settings).await.unwrap();
    for (user, password) in users {
        let creds = corvid_sasl::StoredCredentials::derive(password, 4096).unwrap();
        server
            .store()
            .accounts()
            .create(&format!("{user}@localhost").parse().unwrap(), &creds)
            .await
            .unwrap();
    }
    let port = server.starttls_addr().unwrap().port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("interop")
        .join(script);
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || {
            Command::new(py)
                .arg(script)
                .arg("127.0.0.1")
                .arg(port.to_string())
                .output()
        }),
    )
    .await
    .expect("slixmpp run timed out")
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("interop ok"),
        "slixmpp failed:\n{stdout}\n{stderr}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slixmpp_clients_log_in_ping_and_chat() {
    run_script(
        "slixmpp_chat.py",
        &[("juliet", "r0m30myr0m30"), ("romeo", "secret")],
    )
    .await;
}

/// RFC 6121 and the IM extensions with slixmpp: mutual subscription, presence, carbons on a
/// second resource, offline delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slixmpp_clients_subscribe_see_presence_get_carbons_and_offline_messages() {
    run_script("slixmpp_im.py", &[("alice", "alice-pw"), ("bob", "bob-pw")]).await;
}
