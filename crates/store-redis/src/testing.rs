//! A throwaway `redis-server` for tests (feature `testing`).
//!
//! [`RedisServer::start`] runs `redis-server` on a free loopback port with persistence off and
//! waits until it answers (`INFO server`, checking its pid); dropping the value kills it. [`RedisServer::stop`] and
//! [`RedisServer::restart`] (same port, empty data), [`RedisServer::pause`] and
//! [`RedisServer::resume`] are for fault tests. Without
//! `redis-server` on `PATH` it panics: a test that silently skipped would hide a missing
//! install.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// How long a fresh server may take to answer PING.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// Tries at finding a port that is still free when the server binds it.
const PORT_TRIES: usize = 5;

/// A running `redis-server` on `127.0.0.1`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers.
    ///
    /// # Panics
    /// If `redis-server` is not installed, or no server came up.
    pub async fn start() -> Self {
        let mut last = String::new();
        for _ in 0..PORT_TRIES {
            let port = free_port().await;
            let mut server = Self { port, child: None };
            match server.spawn().await {
                Ok(()) => return server,
                // Another process took the port between probing and binding: try another.
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL, like a crash) and waits until it is gone.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means it has already exited, which is what we want.
            let _ = child.kill().await;
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered, like a
    /// Redis behind a network partition. [`RedisServer::resume`] thaws it.
    ///
    /// # Panics
    /// If it is not running or the signal cannot be sent.
    pub async fn pause(&mut self) {
        self.signal("-STOP").await;
    }

    /// Thaws a server frozen by [`RedisServer::pause`] (SIGCONT).
    ///
    /// # Panics
    /// If it is not running or the signal cannot be sent.
    pub async fn resume(&mut self) {
        self.signal("-CONT").await;
    }

    async fn signal(&mut self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .unwrap_or_else(|| panic!("redis-server on port {} is not running", self.port));
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .await
            .unwrap_or_else(|e| panic!("cannot run kill {signal} {pid}: {e}"));
        assert!(status.success(), "kill {signal} {pid} failed: {status}");
    }

    /// Stops the server if it runs and starts a new, empty one on the same port.
    ///
    /// # Panics
    /// If it does not come back.
    pub async fn restart(&mut self) {
        self.stop().await;
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            match self.spawn().await {
                Ok(()) => return,
                // The old socket may linger for a moment after the kill.
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(why) => panic!("redis-server did not restart on port {}: {why}", self.port),
            }
        }
    }

    /// Runs `redis-server` on `self.port` and waits until it answers; on failure, nothing is left
    /// running.
    async fn spawn(&mut self) -> Result<(), String> {
        let mut child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    panic!(
                        "redis-server not found: install Debian's redis-server package \
                         (apt-get install redis-server)"
                    )
                }
                panic!("cannot run redis-server: {e}")
            });
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "it exited with {status} (port {} taken?)",
                    self.port
                ));
            }
            // Checking the pid, not just that something answers, makes sure it is this server that answers and
            // not another test's that took the port first.
            let Some(pid) = child.id() else {
                return Err("it exited at once".into());
            };
            if answers(self.port, pid).await {
                self.child = Some(child);
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(format!(
                    "no PONG on port {} within {READY_WITHIN:?}",
                    self.port
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A loopback port nobody listens on right now.
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"))
        .port()
}

/// Whether the Redis on `port` is up and is process `pid` (`INFO server` says `process_id`).
async fn answers(port: u16, pid: u32) -> bool {
    let check = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"INFO server\r\n").await.ok()?;
        // A bulk reply: `$<len>\r\n<text>\r\n`.
        let mut header = Vec::new();
        loop {
            let byte = stream.read_u8().await.ok()?;
            header.push(byte);
            if header.ends_with(b"\r\n") {
                break;
            }
        }
        let len: usize = std::str::from_utf8(header.strip_prefix(b"$")?)
            .ok()?
            .trim_end()
            .parse()
            .ok()?;
        let mut text = vec![0; len];
        stream.read_exact(&mut text).await.ok()?;
        let text = String::from_utf8(text).ok()?;
        Some(text.contains(&format!("process_id:{pid}\r\n")))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), check).await,
        Ok(Some(true))
    )
}
