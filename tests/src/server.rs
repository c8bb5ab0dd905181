//! [`TestServer`]: a Corvid node running in this process on loopback ports, with its data in
//! a temporary folder that lives as long as the handle.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use corvid::server::Server;
use corvid_jid::BareJid;
use corvid_sasl::StoredCredentials;
use corvid_settings::Settings;
use corvid_storage::Store;
use tempfile::TempDir;

/// The domain test servers serve.
pub const DOMAIN: &str = "localhost";

/// PBKDF2 iterations for test accounts: the minimum RFC 7677 §4 allows, for speed.
pub const TEST_ITERATIONS: u32 = 4096;

/// A settings tweak applied before the server starts.
type Tweak = Box<dyn FnOnce(&mut Settings) + Send>;

/// Which storage backend a test server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// The embedded store in the server's temporary folder.
    Embedded,
    /// A `redis-server` of its own, started for this server and killed with it.
    Redis,
    /// An existing Redis (shared with other servers), with this key prefix.
    SharedRedis {
        /// `redis://…` URL.
        url: String,
        /// Key prefix.
        prefix: String,
    },
}

impl Storage {
    /// The backend the whole suite runs on: `CORVID_TEST_STORAGE=redis` selects Redis (CI runs
    /// the suite once per backend), anything else the embedded store.
    pub fn from_env() -> Self {
        match std::env::var("CORVID_TEST_STORAGE").as_deref() {
            Ok("redis") => Storage::Redis,
            _ => Storage::Embedded,
        }
    }
}

/// Builds a [`TestServer`]: `TestServer::builder().user("juliet", "pw").start().await`.
#[must_use]
pub struct TestServerBuilder {
    tweaks: Vec<Tweak>,
    users: Vec<(String, String)>,
    storage: Storage,
}

/// A running in-process server. Stop it with [`TestServer::stop`]; dropping it leaves the
/// listeners to die with the test's runtime.
pub struct TestServer {
    server: Option<Server>,
    starttls: Option<SocketAddr>,
    direct_tls: Option<SocketAddr>,
    users: Vec<(String, String)>,
    // Dropped after the server: the store lives here.
    redis: Option<corvid_store_redis::testing::RedisServer>,
    // Dropped last: the store's files live here.
    _dir: TempDir,
}

impl TestServerBuilder {
    /// Changes settings before start (limits, timeouts…). Several tweaks apply in order.
    pub fn settings(mut self, tweak: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.tweaks.push(Box::new(tweak));
        self
    }

    /// Chooses the storage backend (default: [`Storage::from_env`]).
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// Creates the account `name@localhost` with this password once the server is up.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_owned(), password.to_owned()));
        self
    }

    /// Starts the server on `127.0.0.1:0` (both listeners) and creates the accounts.
    pub async fn start(self) -> anyhow::Result<TestServer> {
        let dir = tempfile::tempdir().context("creating the data folder")?;
        let mut settings = Settings::default();
        settings.server.domains = vec![DOMAIN.to_owned()];
        settings.storage.path = dir.path().to_path_buf();
        settings.c2s.starttls_listen = "127.0.0.1:0".into();
        settings.c2s.direct_tls_listen = "127.0.0.1:0".into();
        settings.admin.listen = "127.0.0.1:0".into();
        settings.auth.scram_iterations = TEST_ITERATIONS;
        let redis = match &self.storage {
            Storage::Embedded => None,
            Storage::Redis => {
                let redis = corvid_store_redis::testing::RedisServer::start().await;
                settings.storage.backend = "redis".into();
                settings.storage.redis.url = redis.url();
                Some(redis)
            }
            Storage::SharedRedis { url, prefix } => {
                settings.storage.backend = "redis".into();
                settings.storage.redis.url = url.clone();
                settings.storage.redis.key_prefix = prefix.clone();
                None
            }
        };
        for tweak in self.tweaks {
            tweak(&mut settings);
        }
        let server = Server::start(settings)
            .await
            .context("starting the server")?;
        for (name, password) in &self.users {
            let jid: BareJid = format!("{name}@{DOMAIN}")
                .parse()
                .map_err(|e| anyhow!("user `{name}`: {e}"))?;
            let creds = StoredCredentials::derive(password, TEST_ITERATIONS)
                .map_err(|e| anyhow!("deriving credentials of `{name}`: {e:?}"))?;
            server
                .store()
                .accounts()
                .create(&jid, &creds)
                .await
                .map_err(|e| anyhow!("creating `{jid}`: {e}"))?;
        }
        Ok(TestServer {
            starttls: server.starttls_addr(),
            direct_tls: server.direct_tls_addr(),
            server: Some(server),
            users: self.users,
            redis,
            _dir: dir,
        })
    }
}

impl TestServer {
    /// A builder with default settings and no accounts.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            tweaks: Vec::new(),
            users: Vec::new(),
            storage: Storage::from_env(),
        }
    }

    /// The STARTTLS listener (RFC 6120 §5).
    pub fn starttls_addr(&self) -> anyhow::Result<SocketAddr> {
        self.starttls
            .ok_or_else(|| anyhow!("the STARTTLS listener is disabled"))
    }

    /// The direct-TLS listener (XEP-0368).
    pub fn direct_tls_addr(&self) -> anyhow::Result<SocketAddr> {
        self.direct_tls
            .ok_or_else(|| anyhow!("the direct-TLS listener is disabled"))
    }

    /// The running server (its readiness, admin listener, router…).
    pub fn server(&self) -> anyhow::Result<&Server> {
        self.server
            .as_ref()
            .ok_or_else(|| anyhow!("the server was stopped"))
    }

    /// The server's store.
    pub fn store(&self) -> anyhow::Result<&Arc<dyn Store>> {
        self.server
            .as_ref()
            .map(Server::store)
            .ok_or_else(|| anyhow!("the server was stopped"))
    }

    /// A server running elsewhere (another process), reached at these addresses; for
    /// multi-process tests. It has no store or users of its own here.
    pub fn external(
        starttls: SocketAddr,
        direct_tls: Option<SocketAddr>,
    ) -> anyhow::Result<TestServer> {
        Ok(TestServer {
            server: None,
            starttls: Some(starttls),
            direct_tls,
            users: Vec::new(),
            redis: None,
            _dir: tempfile::tempdir().context("creating a scratch folder")?,
        })
    }

    /// The server's own Redis, when it has one (for fault tests: stop, restart, pause).
    pub fn redis(&mut self) -> Option<&mut corvid_store_redis::testing::RedisServer> {
        self.redis.as_mut()
    }

    /// The accounts created by the builder, `(name, password)`, in order.
    pub fn users(&self) -> &[(String, String)] {
        &self.users
    }

    /// The password given to the builder for `name`.
    pub fn password(&self, name: &str) -> anyhow::Result<&str> {
        self.users
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_str())
            .ok_or_else(|| anyhow!("no test account `{name}`"))
    }

    /// Stops the server: every session gets `system-shutdown`, listeners close.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}
