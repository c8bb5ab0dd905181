//! Network namespaces for a [`super::Cluster`] whose links between nodes can be cut.
//!
//! ```text
//!   root namespace (the test, Redis on 127.0.0.1, a Redis relay on S.1)
//!     ├── bridge <tag>c  C.1/24 ── veth ── node i: C.(i+1)  gRPC (Raft, router, admin)
//!     └── bridge <tag>s  S.1/24 ── veth ── node i: S.(i+1)  client listener, Redis via S.1
//! ```
//!
//! Each node runs in its own namespace (`ip netns exec`) with two links: one to the **cluster**
//! bridge, the only way to the other nodes' gRPC listeners, and one to the **service** bridge,
//! where the test's clients reach its client listener and it reaches Redis (through a relay the
//! test runs on the service bridge's address, since Redis listens on loopback). A namespace has
//! no default route, so a node reaches another node only over the cluster bridge.
//!
//! Cutting node i sets the root side of its cluster link down: every packet between it and the
//! other nodes is lost, both ways, for connections open before and after (a real partition: TCP
//! connections hang until they time out, as across a failed switch), while its clients and
//! Redis stay reachable. Healing sets the link up again.
//!
//! Names carry the test process id (`cv<pid>x<n>`), so concurrent test runs do not collide, and
//! everything is deleted on drop (also when a test panics); namespaces and bridges left by a
//! process that no longer exists (killed before it could clean up) are deleted at setup.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Namespaces made by this process so far (part of the names).
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Prefix of every name this module creates.
const PREFIX: &str = "cv";

/// Whether this process may create network namespaces (it runs as root).
pub fn available() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The process id in a name this module made (`cv<pid>x…`), if it is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('x')?;
    pid.parse().ok()
}

/// Deletes namespaces and bridges left by test processes that no longer exist.
fn delete_leftovers() {
    let gone = |name: &str| {
        owner_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Ok(list) = ip(&["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if gone(name) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show", "type", "bridge"]) {
        // Lines look like "12: cv123x0c: <BROADCAST,…> …".
        for name in list.lines().filter_map(|l| l.split(": ").nth(1)) {
            if gone(name) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

/// A /24 network `10.a.b.0` not in use on this machine, from a seed.
fn free_net(seed: u32, first_octet_base: u8, used: &str) -> anyhow::Result<[u8; 3]> {
    for k in 0..(50u32 * 256) {
        let n = (seed.wrapping_add(k)) % (50 * 256);
        let net = [10, first_octet_base + (n / 256) as u8, (n % 256) as u8];
        if !used.contains(&format!("inet {}.{}.{}.", net[0], net[1], net[2])) {
            return Ok(net);
        }
    }
    bail!("no free 10.x.y.0/24 network for the test namespaces")
}

fn addr(net: [u8; 3], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(net[0], net[1], net[2], host)
}

/// The namespaces, bridges and Redis relay of one cluster; all deleted on drop.
#[derive(Debug)]
pub struct Namespaces {
    tag: String,
    cluster_net: [u8; 3],
    service_net: [u8; 3],
    created: Vec<String>,
    bridges: Vec<String>,
    relay: Option<JoinHandle<()>>,
}

impl Namespaces {
    /// Creates the two bridges (nodes are added with [`Namespaces::add_node`]).
    pub fn new() -> anyhow::Result<Self> {
        delete_leftovers();
        let pid = std::process::id();
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed) % 10;
        let tag = format!("{PREFIX}{pid}x{n}");
        let used = ip(&["-o", "-4", "addr", "show"])?;
        let seed = pid.wrapping_mul(10).wrapping_add(n);
        let cluster_net = free_net(seed, 100, &used)?;
        let service_net = free_net(seed, 150, &used)?;
        let mut me = Self {
            tag,
            cluster_net,
            service_net,
            created: Vec::new(),
            bridges: Vec::new(),
            relay: None,
        };
        for (kind, net) in [("c", cluster_net), ("s", service_net)] {
            let br = format!("{}{kind}", me.tag);
            ip(&["link", "add", &br, "type", "bridge"])?;
            me.bridges.push(br.clone());
            ip(&["addr", "add", &format!("{}/24", addr(net, 1)), "dev", &br])?;
            ip(&["link", "set", &br, "up"])?;
        }
        Ok(me)
    }

    /// The namespace of node `id`.
    pub fn name(&self, id: u64) -> String {
        format!("{}n{id}", self.tag)
    }

    fn host_octet(id: u64) -> anyhow::Result<u8> {
        u8::try_from(id + 1)
            .ok()
            .filter(|o| *o < 255)
            .with_context(|| format!("node id {id} is too large for a /24"))
    }

    /// Node `id`'s address on the cluster bridge (its gRPC listener).
    pub fn cluster_ip(&self, id: u64) -> anyhow::Result<IpAddr> {
        Ok(IpAddr::V4(addr(self.cluster_net, Self::host_octet(id)?)))
    }

    /// Node `id`'s address on the service bridge (its client listener).
    pub fn service_ip(&self, id: u64) -> anyhow::Result<IpAddr> {
        Ok(IpAddr::V4(addr(self.service_net, Self::host_octet(id)?)))
    }

    /// The root side of node `id`'s link of `kind` (`c` cluster, `s` service).
    fn host_link(&self, id: u64, kind: &str) -> String {
        format!("{}{id}{kind}h", self.tag)
    }

    /// Creates node `id`'s namespace and its two links.
    pub fn add_node(&mut self, id: u64) -> anyhow::Result<()> {
        let ns = self.name(id);
        ip(&["netns", "add", &ns])?;
        self.created.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        for (kind, ip_addr) in [("c", self.cluster_ip(id)?), ("s", self.service_ip(id)?)] {
            let host = self.host_link(id, kind);
            let inner = format!("{}{id}{kind}n", self.tag);
            ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", &inner, "netns", &ns,
            ])?;
            ip(&[
                "link",
                "set",
                &host,
                "master",
                &format!("{}{kind}", self.tag),
            ])?;
            ip(&["link", "set", &host, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip_addr}/24"),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
        }
        Ok(())
    }

    /// Cuts node `id` off from every other node (its clients and Redis stay reachable).
    pub fn cut(&self, id: u64) -> anyhow::Result<()> {
        ip(&["link", "set", &self.host_link(id, "c"), "down"]).map(drop)
    }

    /// Reconnects node `id` to the other nodes.
    pub fn heal(&self, id: u64) -> anyhow::Result<()> {
        ip(&["link", "set", &self.host_link(id, "c"), "up"]).map(drop)
    }

    /// Relays connections to the service bridge's address to the Redis on `127.0.0.1:port`;
    /// returns the Redis URL the nodes use.
    pub async fn relay_redis(&mut self, port: u16) -> anyhow::Result<String> {
        let listener = TcpListener::bind((addr(self.service_net, 1), 0))
            .await
            .context("cannot listen for the Redis relay")?;
        let at = listener.local_addr().context("the relay's address")?;
        self.relay = Some(tokio::spawn(async move {
            while let Ok((mut from_node, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut to_redis) = TcpStream::connect(("127.0.0.1", port)).await {
                        let _ = tokio::io::copy_bidirectional(&mut from_node, &mut to_redis).await;
                    }
                });
            }
        }));
        Ok(format!("redis://{at}/0"))
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.abort();
        }
        // Deleting a namespace deletes the veth pairs with an end inside it.
        for ns in self.created.drain(..) {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("cannot delete network namespace {ns}: {e:#}");
            }
        }
        for br in self.bridges.drain(..) {
            if let Err(e) = ip(&["link", "del", &br]) {
                eprintln!("cannot delete bridge {br}: {e:#}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner_pid() {
        assert_eq!(owner_pid("cv4242x3n1"), Some(4242));
        assert_eq!(owner_pid("cv4242x3c"), Some(4242));
        assert_eq!(owner_pid("other"), None);
        assert_eq!(owner_pid("cvabcx1"), None);
    }

    #[test]
    fn a_used_network_is_skipped() {
        let used = "2: br0    inet 10.100.0.1/24 scope global br0";
        assert_eq!(free_net(0, 100, used).unwrap(), [10, 100, 1]);
        assert_eq!(free_net(1, 150, used).unwrap(), [10, 150, 1]);
    }
}
