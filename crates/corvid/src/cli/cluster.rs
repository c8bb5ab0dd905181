//! `corvid cluster status|add-registry|remove-registry|remove-edge|drain`: the admin API of a running
//! node (`corvid.v1.Admin`) from the command line.
//!
//! The node is `--node host:port`, or the configuration's `cluster.listen` (an unspecified
//! address such as `0.0.0.0` is reached on loopback). Membership changes must be made on the
//! registry leader: a follower answers with the leader's address and the call is repeated there.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Subcommand;
use corvid_proto::v1::admin_client::AdminClient;
use corvid_proto::v1::{
    AddRegistryRequest, ClusterStatusReply, DrainRequest, Empty, RemoveRegistryRequest,
};
use corvid_proto::{ClusterError, Transport};
use corvid_settings::Settings;
use tonic::transport::Channel;
use tonic::Request;

use crate::cli::CliError;

/// How long one call may take: adding a registry node waits for it to catch up with the log.
const CALL_TIMEOUT: Duration = Duration::from_secs(90);
/// How many times a call follows a "not the leader" answer to the leader it names.
const MAX_REDIRECTS: usize = 3;

/// `corvid cluster …`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ClusterCommand {
    /// Show the registry's members (voters and learners), the leader, the term, the commit and
    /// applied indexes, and each edge with its sessions and whether it is draining.
    Status {
        /// Print JSON instead of text (for tooling).
        #[arg(long)]
        json: bool,
    },
    /// Add a registry node (already running with this id, and an empty Raft data folder): as a
    /// learner first, then as a voter once it has caught up with the log.
    AddRegistry {
        /// The new node's id.
        id: u64,
        /// The `host:port` its gRPC listener is reached on by the other nodes.
        addr: String,
    },
    /// Remove a registry node from the voters and from the group. Refused for the last voter,
    /// and when it would leave fewer than a majority of the voters reachable.
    RemoveRegistry {
        /// The node's id.
        id: u64,
    },
    /// Remove an edge (a Raft learner) from the group: for an edge that is gone for good. An
    /// edge stopped with SIGTERM removes itself; one that was killed stays a learner (the
    /// leader keeps trying to reach it) until it comes back under the same id or is removed.
    RemoveEdge {
        /// The edge's node id.
        id: u64,
    },
    /// Drain an edge: it stops accepting client connections at once and, after the grace
    /// period, closes its sessions with see-other-host (c2s.see_other_host) or system-shutdown.
    Drain {
        /// The edge's node id; 0: the node called (`--node`), e.g. an edge that picked its id
        /// (`cluster.node_id = 0`) draining itself.
        edge: u64,
        /// Seconds clients get before their streams are closed; default: the edge's
        /// c2s.drain_grace_secs.
        #[arg(long, value_name = "SECS")]
        grace: Option<u32>,
    },
}

/// The address to call: `--node`, else `cluster.listen` with an unspecified IP replaced by
/// loopback.
pub fn node_address(node: Option<&str>, settings: &Settings) -> String {
    if let Some(node) = node {
        return node.trim().to_owned();
    }
    let listen = settings.cluster.listen.trim();
    match listen.parse::<SocketAddr>() {
        Ok(mut addr) if addr.ip().is_unspecified() => {
            let loopback = if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            addr.set_ip(loopback);
            addr.to_string()
        }
        _ => listen.to_owned(),
    }
}

/// Runs `command` against the node at `addr` over `transport` (mutual TLS when the
/// configuration has `[cluster.tls]`), printing to `out`.
pub async fn run(
    command: &ClusterCommand,
    addr: &str,
    transport: &Transport,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let io = |e: std::io::Error| CliError::Runtime(format!("cannot write the output: {e}"));
    match command {
        ClusterCommand::Status { json } => {
            let status = call(transport, addr, Empty {}, |mut c, r| async move {
                c.cluster_status(request(r)).await
            })
            .await?;
            let text = if *json {
                status_json(&status)
            } else {
                render_status(&status)
            };
            out.write_all(text.as_bytes()).map_err(io)?;
        }
        ClusterCommand::AddRegistry { id, addr: new } => {
            let r = AddRegistryRequest {
                node_id: *id,
                address: new.clone(),
            };
            call(transport, addr, r, |mut c, r| async move {
                c.add_registry(request(r)).await
            })
            .await?;
            writeln!(out, "node {id} ({new}) is a registry voter").map_err(io)?;
        }
        ClusterCommand::RemoveRegistry { id } => {
            let r = RemoveRegistryRequest { node_id: *id };
            call(transport, addr, r, |mut c, r| async move {
                c.remove_registry(request(r)).await
            })
            .await?;
            writeln!(out, "node {id} is no longer a registry member").map_err(io)?;
        }
        ClusterCommand::RemoveEdge { id } => {
            let learners =
                corvid_raft::LearnerClient::new(transport.clone(), vec![addr.to_owned()]);
            let removed = learners
                .leave(*id, CALL_TIMEOUT)
                .await
                .map_err(|e| describe(addr, e))?;
            if removed {
                writeln!(out, "edge {id} is no longer a member of the group").map_err(io)?;
            } else {
                writeln!(out, "edge {id} was not a member of the group").map_err(io)?;
            }
        }
        ClusterCommand::Drain { edge, grace } => {
            let r = DrainRequest {
                node_id: *edge,
                grace_seconds: grace.unwrap_or(0),
            };
            call(transport, addr, r, |mut c, r| async move {
                c.drain(request(r)).await
            })
            .await?;
            let which = if *edge == 0 {
                format!("the edge at {addr}")
            } else {
                format!("edge {edge}")
            };
            match grace {
                Some(g) => writeln!(
                    out,
                    "{which} is draining: no new connections; sessions close in {g} s"
                ),
                None => writeln!(
                    out,
                    "{which} is draining: no new connections; sessions close after its grace period"
                ),
            }
            .map_err(io)?;
        }
    }
    Ok(())
}

fn request<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.set_timeout(CALL_TIMEOUT);
    r
}

/// Makes the call `f` with `message` on the node at `addr`, following "not the leader" answers.
async fn call<M, T, F, Fut>(
    transport: &Transport,
    addr: &str,
    message: M,
    f: F,
) -> Result<T, CliError>
where
    M: Clone,
    F: Fn(AdminClient<Channel>, M) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut target = addr.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let client = crate::admin::connect(transport, &target)
            .map_err(|e| CliError::Usage(format!("node address `{target}`: {e}")))?;
        match f(client, message.clone()).await {
            Ok(reply) => return Ok(reply.into_inner()),
            Err(status) => match ClusterError::from(status) {
                ClusterError::NotLeader {
                    leader: Some(leader),
                } if leader != target => target = leader,
                e => return Err(describe(&target, e)),
            },
        }
    }
    Err(CliError::Runtime(format!(
        "the leader changed more than {MAX_REDIRECTS} times while asking; try again"
    )))
}

/// The CLI's message for an error from the node at `addr`.
fn describe(addr: &str, e: ClusterError) -> CliError {
    CliError::Runtime(match e {
        ClusterError::Unavailable(why) => format!("node {addr} unreachable: {why}"),
        ClusterError::Timeout => format!("node {addr} did not answer in time"),
        ClusterError::NotLeader { leader: None } => {
            format!("node {addr} is not the leader and knows of none (an election is under way?); try again")
        }
        ClusterError::NotFound(why) => format!("not a member: {why}"),
        ClusterError::Invalid(why) => format!("refused by node {addr}: {why}"),
        ClusterError::AlreadyExists(why) => format!("refused by node {addr}: {why}"),
        other => format!("node {addr}: {other}"),
    })
}

/// The status as text, one line per member and per edge.
pub fn render_status(s: &ClusterStatusReply) -> String {
    let mut out = String::new();
    let leader = if s.leader == 0 {
        "none (election under way)".to_owned()
    } else {
        s.leader.to_string()
    };
    out.push_str(&format!(
        "answered by node {}\nleader: {leader}\nterm: {}\ncommit index: {}\napplied index: {}\n",
        s.node_id, s.term, s.commit_index, s.applied_index
    ));
    out.push_str("registry members:\n");
    for m in &s.members {
        let role = if m.voter { "voter" } else { "learner" };
        let lead = if m.node_id == s.leader { " leader" } else { "" };
        out.push_str(&format!(
            "  {:>4}  {:<22} {role}{lead}\n",
            m.node_id, m.address
        ));
    }
    out.push_str("edges:\n");
    if s.edges.is_empty() {
        out.push_str("  none\n");
    }
    for e in &s.edges {
        let address = if e.address.is_empty() {
            "-"
        } else {
            e.address.as_str()
        };
        let draining = if e.draining { "  draining" } else { "" };
        out.push_str(&format!(
            "  {:>4}  {:<22} sessions {}{draining}\n",
            e.node_id, address, e.sessions
        ));
    }
    out
}

/// The status as one JSON object (stable field names, for tooling), with a trailing newline.
pub fn status_json(s: &ClusterStatusReply) -> String {
    let members: Vec<serde_json::Value> = s
        .members
        .iter()
        .map(|m| {
            serde_json::json!({
                "node_id": m.node_id,
                "address": m.address,
                "voter": m.voter,
            })
        })
        .collect();
    let edges: Vec<serde_json::Value> = s
        .edges
        .iter()
        .map(|e| {
            serde_json::json!({
                "node_id": e.node_id,
                "address": e.address,
                "sessions": e.sessions,
                "draining": e.draining,
            })
        })
        .collect();
    let value = serde_json::json!({
        "node_id": s.node_id,
        "leader": (s.leader != 0).then_some(s.leader),
        "term": s.term,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "members": members,
        "edges": edges,
    });
    format!("{value}\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use corvid_proto::v1::{EdgeStatus, RegistryMember};

    use super::*;

    fn sample() -> ClusterStatusReply {
        ClusterStatusReply {
            node_id: 2,
            members: vec![
                RegistryMember {
                    node_id: 1,
                    address: "10.0.0.1:7001".into(),
                    voter: true,
                },
                RegistryMember {
                    node_id: 4,
                    address: "10.0.0.4:7001".into(),
                    voter: false,
                },
            ],
            leader: 1,
            term: 3,
            commit_index: 42,
            applied_index: 41,
            edges: vec![
                EdgeStatus {
                    node_id: 1,
                    address: "10.0.0.1:7001".into(),
                    sessions: 5,
                    draining: false,
                },
                EdgeStatus {
                    node_id: 4,
                    address: "10.0.0.4:7001".into(),
                    sessions: 0,
                    draining: true,
                },
            ],
        }
    }

    #[test]
    fn text_status_names_roles_leader_indexes_and_draining_edges() {
        let text = render_status(&sample());
        assert!(text.contains("leader: 1\n"), "{text}");
        assert!(text.contains("term: 3\n"), "{text}");
        assert!(text.contains("commit index: 42\n"), "{text}");
        assert!(text.contains("applied index: 41\n"), "{text}");
        let line = |id: &str, section: &str| {
            text.split(section)
                .nth(1)
                .unwrap()
                .lines()
                .find(|l| l.trim_start().starts_with(id))
                .unwrap()
                .to_owned()
        };
        assert!(line("1 ", "registry members:").ends_with("voter leader"));
        assert!(line("4 ", "registry members:").ends_with("learner"));
        assert!(line("1 ", "edges:").ends_with("sessions 5"));
        assert!(line("4 ", "edges:").ends_with("sessions 0  draining"));
        let mut none = sample();
        none.leader = 0;
        assert!(render_status(&none).contains("leader: none"));
    }

    #[test]
    fn json_status_has_every_field() {
        let v: serde_json::Value = serde_json::from_str(&status_json(&sample())).unwrap();
        assert_eq!(v["leader"], 1);
        assert_eq!(v["commit_index"], 42);
        assert_eq!(v["members"][1]["voter"], false);
        assert_eq!(v["edges"][1]["draining"], true);
        assert_eq!(v["edges"][0]["sessions"], 5);
        let mut none = sample();
        none.leader = 0;
        let v: serde_json::Value = serde_json::from_str(&status_json(&none)).unwrap();
        assert!(v["leader"].is_null());
    }

    #[test]
    fn the_default_node_is_cluster_listen_on_loopback() {
        let mut settings = Settings::default();
        settings.cluster.listen = "0.0.0.0:7009".into();
        assert_eq!(node_address(None, &settings), "127.0.0.1:7009");
        settings.cluster.listen = "[::]:7009".into();
        assert_eq!(node_address(None, &settings), "[::1]:7009");
        settings.cluster.listen = "10.1.2.3:7001".into();
        assert_eq!(node_address(None, &settings), "10.1.2.3:7001");
        assert_eq!(node_address(Some("node2:7001"), &settings), "node2:7001");
    }

    #[test]
    fn errors_name_the_problem() {
        let msg = |e| describe("10.0.0.9:7001", e).to_string();
        assert!(msg(ClusterError::Unavailable("connection refused".into()))
            .starts_with("node 10.0.0.9:7001 unreachable"));
        assert!(msg(ClusterError::NotFound("node 7 is not a member".into()))
            .starts_with("not a member"));
        assert!(msg(ClusterError::Invalid("refused: last voter".into())).contains("refused"));
        assert_eq!(
            describe("x:1", ClusterError::Timeout).exit_code(),
            crate::cli::EXIT_FAILURE
        );
    }
}
