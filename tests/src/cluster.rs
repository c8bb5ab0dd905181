//! A test-only cluster: real `corvid serve` processes on loopback ports sharing one real Redis.
//!
//! ```text
//!  test ──▶ Cluster ──spawns──▶ corvid-test-node serve (node 1) ─┐
//!              │                corvid-test-node serve (node 2) ─┼─ gRPC (Raft, Router) on 127.0.0.1
//!              │                corvid-test-node serve (node N) ─┘
//!              └──owns──▶ RedisServer (accounts, rosters, offline messages)
//! ```
//!
//! [`Cluster::builder`] takes the path of the node binary: `env!("CARGO_BIN_EXE_corvid-test-node")`
//! is only defined for the crate's integration tests, so the scenarios pass it in. Nodes are
//! numbered from 1 in the order they are added; registry voters (`combined` or `registry`) are the
//! `cluster.members`, edges join as learners. Each node keeps its data folder, client port and
//! gRPC port for the cluster's life, so [`Cluster::restart`] brings a killed node back as the same
//! member on the same disk.
//!
//! Every node writes its stdout and stderr to `node.log` in its data folder; when a test panics
//! while the cluster is alive, the end of every node's log is printed with the test's output (so
//! a red CI run shows what the servers did). Tests should therefore fail by panicking
//! (`expect`, `assert!`) rather than by returning an error.
//!
//! With [`ClusterBuilder::namespaces`] each node runs in its own network namespace instead of on
//! loopback, so that [`Cluster::cut`] can partition a node from the others and
//! [`Cluster::heal`] reconnect it (see [`netns`]; needs root).

pub mod netns;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use corvid_store_redis::testing::RedisServer;
use corvid_xml::Element;
use tokio::time::Instant;

use crate::{free_port, ns, Client, Received, StreamEvent, TestServer, TEST_ITERATIONS};
use netns::Namespaces;

/// How long [`Cluster::login`] keeps retrying a bind by default (an election, a quorum coming
/// back, a restarted node catching up).
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(30);

/// How long a spawned node may take to open its ports.
const LISTEN_WITHIN: Duration = Duration::from_secs(20);

/// Lines of each node's log printed when a test fails.
const LOG_TAIL_LINES: usize = 200;

/// The Redis key prefix every node of a test cluster uses.
const KEY_PREFIX: &str = "cluster";

/// The client port of a node in its own network namespace.
const NETNS_CLIENT_PORT: u16 = 5222;

/// The gRPC port of a node in its own network namespace.
const NETNS_GRPC_PORT: u16 = 7001;

/// The account [`Cluster`] logs in with to check that a node binds.
const PROBE_USER: (&str, &str) = ("cluster-probe", "cluster-probe-pw");

/// What a node does in the cluster (`cluster.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A registry voter and an edge: today's behaviour and the server's default.
    Combined,
    /// A registry voter only: no client listener.
    Registry,
    /// An edge only: client listener and sessions, a Raft learner of the registry.
    Edge,
}

impl Role {
    /// The value of `cluster.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Combined => "combined",
            Role::Registry => "registry",
            Role::Edge => "edge",
        }
    }

    /// Whether the node is one of the registry's voters (`cluster.members`).
    pub fn is_voter(self) -> bool {
        matches!(self, Role::Combined | Role::Registry)
    }

    /// Whether the node holds client connections.
    pub fn has_clients(self) -> bool {
        matches!(self, Role::Combined | Role::Edge)
    }
}

/// One node to start.
#[derive(Debug, Clone)]
struct NodeSpec {
    role: Role,
    env: Vec<(String, String)>,
}

/// Describes a cluster; [`ClusterBuilder::start`] runs it.
#[derive(Debug)]
pub struct ClusterBuilder {
    binary: PathBuf,
    nodes: Vec<NodeSpec>,
    env: Vec<(String, String)>,
    users: Vec<(String, String)>,
    settle: Duration,
    namespaces: bool,
}

impl ClusterBuilder {
    /// Adds `n` combined nodes (registry voter and edge).
    pub fn combined(self, n: usize) -> Self {
        self.nodes_of(Role::Combined, n)
    }

    /// Adds `n` registry-only nodes (voters without a client listener).
    pub fn registries(self, n: usize) -> Self {
        self.nodes_of(Role::Registry, n)
    }

    /// Adds `n` edge-only nodes (client listeners, Raft learners).
    pub fn edges(self, n: usize) -> Self {
        self.nodes_of(Role::Edge, n)
    }

    fn nodes_of(mut self, role: Role, n: usize) -> Self {
        for _ in 0..n {
            self.nodes.push(NodeSpec {
                role,
                env: Vec::new(),
            });
        }
        self
    }

    /// Sets an environment variable (a setting, `CORVID__SECTION__KEY`) on every node.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets an environment variable on node `id` only (after the cluster-wide ones).
    ///
    /// # Panics
    /// If node `id` has not been added yet.
    pub fn node_env(mut self, id: u64, key: impl Into<String>, value: impl Into<String>) -> Self {
        let spec = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.nodes.get_mut(i))
            .unwrap_or_else(|| panic!("node_env: no node {id} added yet"));
        spec.env.push((key.into(), value.into()));
        self
    }

    /// Short leases, so a killed node is declared down in about two seconds.
    pub fn short_leases(self) -> Self {
        self.env("CORVID__CLUSTER__LEASE_TTL_MS", "2000")
            .env("CORVID__CLUSTER__RENEW_EVERY_MS", "400")
    }

    /// An account created (with the admin CLI, in the shared Redis) before the nodes start.
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }

    /// Runs every node in its own network namespace, so that links between nodes can be cut
    /// ([`Cluster::cut`]). Needs root (see [`netns::available`]).
    pub fn namespaces(mut self) -> Self {
        self.namespaces = true;
        self
    }

    /// How long [`Cluster::login`] retries (default [`DEFAULT_SETTLE`]).
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Starts Redis, creates the accounts, starts every node, and waits until every node that
    /// holds clients binds a session (a leader exists, the node's lease is live).
    pub async fn start(self) -> anyhow::Result<Cluster> {
        if self.nodes.is_empty() {
            bail!("a cluster needs at least one node");
        }
        if !self.nodes.iter().any(|n| n.role.is_voter()) {
            bail!("a cluster needs at least one registry voter (combined or registry node)");
        }
        let redis = RedisServer::start().await;
        let mut net = if self.namespaces {
            Some(Namespaces::new()?)
        } else {
            None
        };
        let node_redis_url = match net.as_mut() {
            Some(net) => net.relay_redis(redis.port()).await?,
            None => redis.url(),
        };
        let mut cluster = Cluster {
            binary: self.binary,
            redis,
            node_redis_url,
            net,
            nodes: BTreeMap::new(),
            members: String::new(),
            settle: self.settle,
            env: self.env.clone(),
        };
        for (name, password) in std::iter::once(PROBE_USER)
            .map(|(u, p)| (u.to_owned(), p.to_owned()))
            .chain(self.users)
        {
            cluster.add_user(&name, &password).await?;
        }

        let mut nodes = BTreeMap::new();
        for (i, spec) in self.nodes.into_iter().enumerate() {
            let id = i as u64 + 1;
            let data = tempfile::Builder::new()
                .prefix(&format!("corvid-node{id}-"))
                .tempdir()
                .context("cannot create a node's data folder")?;
            let (client, grpc) = cluster.addresses(id, spec.role)?;
            let mut env = self.env.clone();
            env.extend(spec.env);
            nodes.insert(
                id,
                Node {
                    id,
                    role: spec.role,
                    client,
                    grpc,
                    admin: loopback(),
                    env,
                    data,
                    child: None,
                },
            );
        }
        cluster.members = nodes
            .values()
            .filter(|n| n.role.is_voter())
            .map(|n| format!("{}={}", n.id, n.grpc))
            .collect::<Vec<_>>()
            .join(",");
        cluster.nodes = nodes;

        let ids: Vec<u64> = cluster.nodes.keys().copied().collect();
        for &id in &ids {
            cluster.spawn(id)?;
        }
        for &id in &ids {
            cluster.wait_listening(id).await?;
        }
        for &id in &ids {
            cluster.wait_binds(id).await?;
        }
        Ok(cluster)
    }
}

/// A node of a [`Cluster`].
#[derive(Debug)]
pub struct Node {
    id: u64,
    role: Role,
    client: Option<SocketAddr>,
    grpc: SocketAddr,
    /// The admin HTTP listener (`/healthz`, `/readyz`, `/metrics`).
    admin: SocketAddr,
    env: Vec<(String, String)>,
    data: tempfile::TempDir,
    child: Option<Child>,
}

impl Node {
    /// Its node id (`cluster.node_id`).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Its client (STARTTLS) address, if it holds clients.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.client
    }

    /// Its gRPC address (`cluster.listen`).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    /// Its admin HTTP listener (`/healthz`, `/readyz`, `/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Its data folder (`storage.path`), kept across restarts.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The file its stdout and stderr go to.
    pub fn log_path(&self) -> PathBuf {
        self.data.path().join("node.log")
    }

    /// Its process id while it runs (for a tool that kills it from outside, as the load
    /// generator's `cluster --kill-pid` does).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether its process is running (started and not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // SIGKILL: no chance to say goodbye, like a crashed machine.
            child
                .kill()
                .with_context(|| format!("cannot kill node {}", self.id))?;
            child
                .wait()
                .with_context(|| format!("node {} did not exit", self.id))?;
        }
        Ok(())
    }

    /// The last `lines` lines of its log.
    fn log_tail(&self, lines: usize) -> String {
        let Ok(file) = File::open(self.log_path()) else {
            return String::from("(no log)");
        };
        let all: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Running nodes and their Redis; every process is killed on drop.
#[derive(Debug)]
pub struct Cluster {
    binary: PathBuf,
    redis: RedisServer,
    /// The Redis URL of the nodes (a relay's, with namespaces).
    node_redis_url: String,
    /// Dropped after the nodes are killed (fields drop after [`Cluster`]'s `drop`).
    net: Option<Namespaces>,
    nodes: BTreeMap<u64, Node>,
    members: String,
    settle: Duration,
    /// The builder's cluster-wide environment, for nodes started later.
    env: Vec<(String, String)>,
}

impl Cluster {
    /// A cluster of the node program at `binary` (in the scenarios:
    /// `env!("CARGO_BIN_EXE_corvid-test-node")`).
    pub fn builder(binary: impl Into<PathBuf>) -> ClusterBuilder {
        ClusterBuilder {
            binary: binary.into(),
            nodes: Vec::new(),
            env: Vec::new(),
            users: Vec::new(),
            settle: DEFAULT_SETTLE,
            namespaces: false,
        }
    }

    /// The shared Redis (to pause or restart it in a fault test).
    pub fn redis(&mut self) -> &mut RedisServer {
        &mut self.redis
    }

    /// Node `id`.
    ///
    /// # Panics
    /// If there is no such node.
    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("the cluster has no node {id}"))
    }

    /// Every node, by id.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// The ids of the nodes that hold clients (combined and edge), ascending.
    pub fn edge_ids(&self) -> Vec<u64> {
        self.ids_where(|n| n.role.has_clients())
    }

    /// The ids of the registry voters (combined and registry), ascending.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.ids_where(|n| n.role.is_voter())
    }

    fn ids_where(&self, pred: impl Fn(&Node) -> bool) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| pred(n))
            .map(|n| n.id)
            .collect()
    }

    /// Creates an account with the admin CLI (`corvid user add`) in the shared Redis.
    pub async fn add_user(&self, name: &str, password: &str) -> anyhow::Result<()> {
        let jid = format!("{name}@{}", crate::DOMAIN);
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.args(["user", "add", &jid, "-p", password])
            .stdin(Stdio::null());
        for (k, v) in self.storage_env(&self.redis.url()) {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.binary.display()))?;
        if !out.status.success() {
            bail!(
                "user add {jid} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Kills node `id` with SIGKILL and waits until it is gone. Its data folder stays.
    pub async fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        self.nodes
            .get_mut(&id)
            .with_context(|| format!("the cluster has no node {id}"))?
            .kill()
    }

    /// Starts node `id` again on the same data folder and ports, and waits until it listens
    /// (and, if it holds clients, until it binds a session).
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        self.kill(id).await?;
        self.spawn(id)?;
        self.wait_listening(id).await?;
        self.wait_binds(id).await
    }

    /// Starts one more registry node (`combined` or `registry`) that is not in the others'
    /// `cluster.members` and does not bootstrap: a node to add at run time with
    /// `corvid cluster add-registry`. Waits until it listens; it binds nothing until added.
    /// Returns its id.
    pub async fn start_unlisted(&mut self, role: Role) -> anyhow::Result<u64> {
        if !role.is_voter() {
            bail!(
                "start_unlisted starts registry nodes, not {}",
                role.as_str()
            );
        }
        let members = self.members.clone();
        self.start_late(role, |id, grpc| {
            vec![
                ("CORVID__CLUSTER__BOOTSTRAP".to_owned(), "false".to_owned()),
                (
                    "CORVID__CLUSTER__MEMBERS".to_owned(),
                    format!("{members},{id}={grpc}"),
                ),
            ]
        })
        .await
    }

    /// Starts one more edge, after the others: it joins the registry group as a learner and
    /// the other nodes learn its address from the Raft membership. Waits until it binds a
    /// session. Returns its id.
    pub async fn start_edge(&mut self) -> anyhow::Result<u64> {
        let id = self.spawn_edge(Vec::new()).await?;
        self.wait_binds(id).await?;
        Ok(id)
    }

    /// Starts one more edge with `env` on top of the cluster-wide environment and waits only
    /// until it listens (an edge that cannot join never binds). Returns its id.
    pub async fn spawn_edge(&mut self, env: Vec<(String, String)>) -> anyhow::Result<u64> {
        self.start_late(Role::Edge, |_, _| env).await
    }

    /// Starts one more node of `role` after the others, with the cluster-wide environment and
    /// what `extra` gives for its id and gRPC address; waits until it listens. Returns its id.
    async fn start_late(
        &mut self,
        role: Role,
        extra: impl FnOnce(u64, SocketAddr) -> Vec<(String, String)>,
    ) -> anyhow::Result<u64> {
        let id = self.nodes.keys().next_back().copied().unwrap_or(0) + 1;
        let data = tempfile::Builder::new()
            .prefix(&format!("corvid-node{id}-"))
            .tempdir()
            .context("cannot create a node's data folder")?;
        let (client, grpc) = self.addresses(id, role)?;
        let node = Node {
            id,
            role,
            client,
            grpc,
            admin: loopback(),
            env: self.env.iter().cloned().chain(extra(id, grpc)).collect(),
            data,
            child: None,
        };
        self.nodes.insert(id, node);
        self.spawn(id)?;
        self.wait_listening(id).await?;
        Ok(id)
    }

    /// Logs `user` in on node `id` with `resource`, retrying until the bind succeeds (the
    /// registry has a leader and a quorum) within the settle time.
    pub async fn login(
        &self,
        id: u64,
        user: &str,
        password: &str,
        resource: &str,
    ) -> anyhow::Result<Client> {
        let server = self.client_server(id)?;
        let start = Instant::now();
        loop {
            match Client::login(&server, user, password, Some(resource)).await {
                Ok(c) => return Ok(c),
                Err(e) if start.elapsed() < self.settle => {
                    eprintln!("node {id}: {user}/{resource} not bound yet: {e:#}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "node {id}: {user}/{resource} not bound within {:?}",
                        self.settle
                    )))
                }
            }
        }
    }

    /// Cuts node `id` off from every other node: packets between them are lost both ways, on
    /// open connections and new ones; its clients and Redis stay reachable. Needs
    /// [`ClusterBuilder::namespaces`].
    pub fn cut(&self, id: u64) -> anyhow::Result<()> {
        self.node(id);
        self.namespaces()?.cut(id)
    }

    /// Reconnects node `id` cut off with [`Cluster::cut`].
    pub fn heal(&self, id: u64) -> anyhow::Result<()> {
        self.node(id);
        self.namespaces()?.heal(id)
    }

    fn namespaces(&self) -> anyhow::Result<&Namespaces> {
        self.net
            .as_ref()
            .context("cutting links needs a cluster built with namespaces()")
    }

    /// The registry leader as node `ask` sees it (`corvid cluster status`), `None` while it
    /// knows of none (an election is under way, or it is cut off).
    pub async fn leader(&self, ask: u64) -> anyhow::Result<Option<u64>> {
        Ok(self.status(ask).await?["leader"].as_u64())
    }

    /// Waits (up to 10 s) until every running node has applied everything the registry had
    /// committed when called: each replica then holds every binding made before, so a stanza
    /// sent from any node finds them. What [`replicated`] approximates with a fixed sleep, which
    /// a loaded machine can outlast.
    pub async fn caught_up(&self) -> anyhow::Result<()> {
        let running: Vec<u64> = self
            .nodes()
            .filter(|n| n.is_running())
            .map(Node::id)
            .collect();
        let mut target = 0;
        for &id in &running {
            target = target.max(self.status(id).await?["commit_index"].as_u64().unwrap_or(0));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut behind = Vec::new();
            for &id in &running {
                let applied = self.status(id).await?["applied_index"]
                    .as_u64()
                    .unwrap_or(0);
                if applied < target {
                    behind.push((id, applied));
                }
            }
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("replicas behind commit index {target} after 10 s: {behind:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `corvid cluster status --json` as node `ask` answers it: `members` (each `node_id`,
    /// `address`, `voter`), `edges`, `leader`, indexes.
    pub async fn status(&self, ask: u64) -> anyhow::Result<serde_json::Value> {
        let addr = self.node(ask).grpc;
        let out = tokio::process::Command::new(&self.binary)
            .args(["cluster", "status", "--json", "--node", &addr.to_string()])
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.binary.display()))?;
        if !out.status.success() {
            bail!(
                "cluster status on node {ask} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("cluster status on node {ask} is not JSON"))
    }

    /// The node ids of the Raft membership's learners (edges) as node `ask` sees them.
    pub async fn learner_ids(&self, ask: u64) -> anyhow::Result<Vec<u64>> {
        let status = self.status(ask).await?;
        let members = status["members"]
            .as_array()
            .with_context(|| format!("cluster status on node {ask} has no members: {status}"))?;
        Ok(members
            .iter()
            .filter(|m| m["voter"] == serde_json::Value::Bool(false))
            .filter_map(|m| m["node_id"].as_u64())
            .collect())
    }

    /// The client and gRPC addresses of a new node `id`: fresh loopback ports, or fixed ports
    /// on its addresses in a namespace of its own (created here).
    fn addresses(
        &mut self,
        id: u64,
        role: Role,
    ) -> anyhow::Result<(Option<SocketAddr>, SocketAddr)> {
        match self.net.as_mut() {
            None => Ok((role.has_clients().then(loopback), loopback())),
            Some(net) => {
                net.add_node(id)?;
                let client = SocketAddr::new(net.service_ip(id)?, NETNS_CLIENT_PORT);
                let grpc = SocketAddr::new(net.cluster_ip(id)?, NETNS_GRPC_PORT);
                Ok((role.has_clients().then_some(client), grpc))
            }
        }
    }

    /// Logs `user` in on node `id` with `resource` once, without retrying: for a test that
    /// expects the bind to be refused.
    pub async fn login_once(
        &self,
        id: u64,
        user: &str,
        password: &str,
        resource: &str,
    ) -> anyhow::Result<Client> {
        let server = self.client_server(id)?;
        Client::login(&server, user, password, Some(resource)).await
    }

    /// Node `id`'s client listener, for [`Client::login`].
    fn client_server(&self, id: u64) -> anyhow::Result<TestServer> {
        let node = self
            .nodes
            .get(&id)
            .with_context(|| format!("the cluster has no node {id}"))?;
        let addr = node.client.with_context(|| {
            format!("node {id} ({}) has no client listener", node.role.as_str())
        })?;
        TestServer::external(addr, None)
    }

    /// The settings every node and the CLI share: the Redis storage at `url`.
    fn storage_env(&self, url: &str) -> Vec<(String, String)> {
        vec![
            ("CORVID__STORAGE__BACKEND".into(), "redis".into()),
            ("CORVID__STORAGE__REDIS__URL".into(), url.to_owned()),
            (
                "CORVID__STORAGE__REDIS__KEY_PREFIX".into(),
                KEY_PREFIX.into(),
            ),
            (
                "CORVID__AUTH__SCRAM_ITERATIONS".into(),
                TEST_ITERATIONS.to_string(),
            ),
        ]
    }

    fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let storage = self.storage_env(&self.node_redis_url);
        let namespace = self.net.as_ref().map(|n| n.name(id));
        let node = self
            .nodes
            .get_mut(&id)
            .with_context(|| format!("the cluster has no node {id}"))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.log_path())
            .with_context(|| format!("cannot open {}", node.log_path().display()))?;
        let mut cmd = match namespace {
            Some(ns) => {
                // `ip netns exec` execs the server in the namespace: the child is the server.
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns]).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        cmd.arg("serve")
            .envs(storage)
            .env("CORVID__STORAGE__PATH", node.data.path())
            .env(
                "CORVID__C2S__STARTTLS_LISTEN",
                node.client.map(|a| a.to_string()).unwrap_or_default(),
            )
            .env("CORVID__C2S__DIRECT_TLS_LISTEN", "")
            .env("CORVID__LOG__LEVEL", "info")
            .env("CORVID__CLUSTER__ENABLED", "true")
            .env("CORVID__CLUSTER__NODE_ID", id.to_string())
            .env("CORVID__CLUSTER__LISTEN", node.grpc.to_string())
            .env("CORVID__ADMIN__LISTEN", node.admin.to_string())
            .env("CORVID__CLUSTER__MEMBERS", &self.members);
        // `combined` is the default; not naming it keeps the builder usable on servers that
        // predate roles.
        if node.role != Role::Combined {
            cmd.env("CORVID__CLUSTER__ROLE", node.role.as_str());
        }
        cmd.envs(node.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot share the log file")?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        node.child = Some(child);
        Ok(())
    }

    /// Waits until node `id` accepts TCP connections on its ports (client, else gRPC).
    async fn wait_listening(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self
            .nodes
            .get_mut(&id)
            .with_context(|| format!("the cluster has no node {id}"))?;
        let addr = node.client.unwrap_or(node.grpc);
        let start = Instant::now();
        while start.elapsed() < LISTEN_WITHIN {
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    node.child = None;
                    bail!(
                        "node {id} exited ({status}) before listening:\n{}",
                        node.log_tail(LOG_TAIL_LINES)
                    );
                }
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("node {id} did not listen on {addr} within {LISTEN_WITHIN:?}")
    }

    /// Waits until node `id` binds a session, if it holds clients.
    async fn wait_binds(&self, id: u64) -> anyhow::Result<()> {
        if !self.node(id).role.has_clients() {
            return Ok(());
        }
        let probe = self
            .login(id, PROBE_USER.0, PROBE_USER.1, &format!("ready-{id}"))
            .await?;
        drop(probe);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in self.nodes.values() {
                eprintln!(
                    "===== node {} ({}) log, last {LOG_TAIL_LINES} lines: {}\n{}",
                    node.id,
                    node.role.as_str(),
                    node.log_path().display(),
                    node.log_tail(LOG_TAIL_LINES)
                );
            }
        }
        for node in self.nodes.values_mut() {
            let _ = node.kill();
        }
    }
}

/// A loopback address on a fresh port.
fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Other nodes' replicas apply a registry write on the leader's next heartbeat (100 ms); a
/// stanza sent from another node before that does not find a resource bound an instant ago.
/// Real clients learn of a resource from its presence, which comes later still; tests wait.
pub async fn replicated() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Waits up to `limit` for a stanza matching `pred`, skipping (and printing) the others.
///
/// # Panics
/// If none arrives in time or the stream ends: the failure of the test that waits.
pub async fn stanza_where(
    c: &mut Client,
    limit: Duration,
    what: &str,
    pred: impl Fn(&Element) -> bool,
) -> Element {
    let start = Instant::now();
    while start.elapsed() < limit {
        match c.next_within(Duration::from_millis(250)).await {
            Received::Event(StreamEvent::Element(e)) if pred(&e) => return e,
            Received::Event(StreamEvent::Element(e)) => {
                eprintln!("{}: skipping {}", c.name(), e.to_xml(ns::CLIENT));
            }
            Received::TimedOut => {}
            other => panic!("{}: expected stanzas, got {other}", c.name()),
        }
    }
    panic!("{}: no {what} arrived within {limit:?}", c.name());
}

/// Waits up to 10 s for a `<message/>` whose body is `body`, skipping anything else.
pub async fn message_with(c: &mut Client, body: &str) -> Element {
    stanza_where(
        c,
        Duration::from_secs(10),
        &format!("message {body:?}"),
        |e| {
            e.name == "message"
                && e.child("body", ns::CLIENT).map(|b| b.text()) == Some(body.into())
        },
    )
    .await
}
