//! Three registry nodes in one process, real tonic servers on loopback, real redb logs.

use std::collections::BTreeMap;
use std::time::Duration;

use corvid_proto::ClusterError;
use corvid_raft::{RegistryNode, ReplicaEvent};
use corvid_registry::{Command, Outcome, RegistryState, RouteRecord};
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const DEADLINE: Duration = Duration::from_secs(10);

fn bind(jid: &str, node: u64, session: u64) -> Command {
    Command::Bind {
        route: RouteRecord {
            jid: jid.to_owned(),
            node,
            session,
            priority: 0,
            available: false,
        },
        max_resources: 10,
    }
}

fn bound_jids(state: &RegistryState) -> Vec<String> {
    let mut jids: Vec<String> = state.routes().map(|r| r.jid.to_string()).collect();
    jids.sort();
    jids
}

/// Waits until some node among `nodes` reports a leader other than `not`, agreed by all.
async fn leader_among(nodes: &[&RegistryNode], not: Option<u64>) -> Result<u64, String> {
    let start = tokio::time::Instant::now();
    loop {
        let leaders: Vec<Option<u64>> = nodes
            .iter()
            .map(|n| n.raft().metrics().borrow().current_leader)
            .collect();
        if let Some(Some(leader)) = leaders.first() {
            if Some(*leader) != not && leaders.iter().all(|l| *l == Some(*leader)) {
                return Ok(*leader);
            }
        }
        if start.elapsed() > DEADLINE {
            return Err(format!(
                "no agreed leader (other than {not:?}): {leaders:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every node's replica holds exactly `expected` (sorted full JIDs).
async fn replicas_hold(nodes: &[&RegistryNode], expected: &[&str]) -> Result<(), String> {
    let start = tokio::time::Instant::now();
    loop {
        let tables: Vec<Vec<String>> = nodes.iter().map(|n| n.replica().read(bound_jids)).collect();
        if tables.iter().all(|t| t == expected) {
            return Ok(());
        }
        if start.elapsed() > DEADLINE {
            return Err(format!("replicas never held {expected:?}: {tables:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_survives_the_leader_going_down_and_the_new_leader_takes_writes() -> TestResult {
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let node = RegistryNode::start(
            i as u64 + 1,
            dir.path(),
            listener,
            RegistryNode::default_config(),
        )
        .await?;
        nodes.push(node);
    }
    let members: BTreeMap<u64, _> = nodes.iter().map(|n| (n.id(), n.node())).collect();

    println!("=== initialize the group on node 1 and elect a leader");
    nodes[0].initialize(members).await?;
    let all: Vec<&RegistryNode> = nodes.iter().collect();
    let leader_id = leader_among(&all, None).await?;
    let leader = nodes
        .iter()
        .position(|n| n.id() == leader_id)
        .ok_or("leader not ours")?;

    println!("=== a follower refuses proposals and names the leader");
    let follower = (leader + 1) % 3;
    let refused = nodes[follower].propose(bind("x@example.org/y", 1, 1)).await;
    assert_eq!(
        refused,
        Err(ClusterError::NotLeader {
            leader: Some(nodes[leader].addr().to_string())
        })
    );

    println!("=== bind alice's phone through the leader (node {leader_id})");
    let mut events = nodes[follower].replica().subscribe();
    let outcome = nodes[leader]
        .propose(bind("alice@example.org/phone", 7, 1))
        .await?;
    assert_eq!(outcome, Outcome::Bound { replaced: None });
    replicas_hold(&all, &["alice@example.org/phone"]).await?;
    let event = tokio::time::timeout(DEADLINE, events.recv()).await??;
    assert!(
        matches!(
            &event,
            ReplicaEvent::Applied {
                outcome: Outcome::Bound { replaced: None },
                ..
            }
        ),
        "the follower published what the entry did: {event:?}"
    );

    println!("=== stop the leader's server and Raft");
    let old = nodes.remove(leader);
    old.shutdown().await;
    let survivors: Vec<&RegistryNode> = nodes.iter().collect();
    let new_leader_id = leader_among(&survivors, Some(leader_id)).await?;
    let new_leader = nodes
        .iter()
        .find(|n| n.id() == new_leader_id)
        .ok_or("new leader not among the survivors")?;

    println!("=== bind bob's laptop through the new leader (node {new_leader_id})");
    let outcome = tokio::time::timeout(
        DEADLINE,
        new_leader.propose(bind("bob@example.org/laptop", 8, 2)),
    )
    .await??;
    assert_eq!(outcome, Outcome::Bound { replaced: None });
    replicas_hold(
        &survivors,
        &["alice@example.org/phone", "bob@example.org/laptop"],
    )
    .await?;

    for node in nodes {
        node.shutdown().await;
    }
    Ok(())
}

/// Starts a node on a fresh loopback port.
async fn start(id: u64, dir: &std::path::Path) -> Result<RegistryNode, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(RegistryNode::start(id, dir, listener, RegistryNode::default_config()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rebuilds_its_table_from_its_own_folder() -> TestResult {
    let dir = tempfile::tempdir()?;
    let node = start(1, dir.path()).await?;
    node.initialize(BTreeMap::from([(1, node.node())])).await?;
    leader_among(&[&node], None).await?;
    node.propose(bind("alice@example.org/phone", 7, 1)).await?;
    node.propose(bind("bob@example.org/laptop", 7, 2)).await?;
    node.shutdown().await;

    println!("=== start again on the same folder: log replay, no snapshot");
    let node = start(1, dir.path()).await?;
    replicas_hold(
        &[&node],
        &["alice@example.org/phone", "bob@example.org/laptop"],
    )
    .await?;
    leader_among(&[&node], None).await?;
    node.propose(bind("carol@example.org/desk", 7, 3)).await?;
    node.raft().trigger().snapshot().await?;
    node.raft()
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= 4),
            "snapshot built",
        )
        .await?;
    node.shutdown().await;

    println!("=== and again: the table comes from the snapshot file");
    let node = start(1, dir.path()).await?;
    replicas_hold(
        &[&node],
        &[
            "alice@example.org/phone",
            "bob@example.org/laptop",
            "carol@example.org/desk",
        ],
    )
    .await?;
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joining_after_the_log_was_purged_gets_the_snapshot_over_grpc() -> TestResult {
    let (dir1, dir2) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let first = start(1, dir1.path()).await?;
    first
        .initialize(BTreeMap::from([(1, first.node())]))
        .await?;
    leader_among(&[&first], None).await?;
    first.propose(bind("alice@example.org/phone", 7, 1)).await?;
    let last = first
        .raft()
        .metrics()
        .borrow()
        .last_applied
        .map(|l| l.index)
        .unwrap_or(0);
    first.raft().trigger().snapshot().await?;
    first
        .raft()
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "snapshot built",
        )
        .await?;
    first.raft().trigger().purge_log(last).await?;
    first
        .raft()
        .wait(Some(DEADLINE))
        .metrics(|m| m.purged.is_some_and(|p| p.index >= last), "log purged")
        .await?;

    println!(
        "=== node 2 joins as a learner: the leader has no log left to send, only the snapshot"
    );
    let second = start(2, dir2.path()).await?;
    let mut events = second.replica().subscribe();
    first.raft().add_learner(2, second.node(), true).await?;
    replicas_hold(&[&first, &second], &["alice@example.org/phone"]).await?;
    let event = tokio::time::timeout(DEADLINE, events.recv()).await??;
    assert!(
        matches!(event, ReplicaEvent::Restored { last_log_id: Some(l) } if l.index >= last),
        "the learner's table came from a snapshot: {event:?}"
    );

    println!("=== later entries reach the learner one by one");
    first.propose(bind("bob@example.org/laptop", 7, 2)).await?;
    replicas_hold(
        &[&first, &second],
        &["alice@example.org/phone", "bob@example.org/laptop"],
    )
    .await?;
    second.shutdown().await;
    first.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raft_registry_forwards_writes_to_the_leader_and_a_minority_refuses_binds() -> TestResult
{
    use corvid_core::{BindError, NodeId, Route, SessionId, SessionRegistry};
    use corvid_raft::RaftRegistry;

    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        nodes.push(start(i as u64 + 1, dir.path()).await?);
    }
    let members: BTreeMap<u64, _> = nodes.iter().map(|n| (n.id(), n.node())).collect();
    nodes[0].initialize(members).await?;
    let all: Vec<&RegistryNode> = nodes.iter().collect();
    let leader_id = leader_among(&all, None).await?;
    let follower = nodes
        .iter()
        .position(|n| n.id() != leader_id)
        .ok_or("no follower")?;
    let deadline = Duration::from_secs(2);
    let me = NodeId(nodes[follower].id());
    let registry = RaftRegistry::new(me, &nodes[follower], deadline);
    let route = |jid: &str, session: u64| -> Result<Route, Box<dyn std::error::Error>> {
        Ok(Route {
            jid: jid.parse()?,
            node: me,
            session: SessionId(session),
            priority: 0,
            available: false,
        })
    };

    println!(
        "=== a bind on follower {me:?} is forwarded to leader {leader_id} and read back locally"
    );
    assert_eq!(
        registry
            .bind(route("alice@example.org/phone", 1)?, 1)
            .await?,
        None
    );
    let jid = "alice@example.org/phone".parse()?;
    assert_eq!(registry.lookup(&jid).map(|r| r.session), Some(SessionId(1)));
    assert_eq!(registry.len(), 1);

    println!("=== a second resource is over the limit of one; the same resource replaces");
    assert_eq!(
        registry
            .bind(route("alice@example.org/laptop", 2)?, 1)
            .await,
        Err(BindError::TooManyResources)
    );
    let replaced = registry
        .bind(route("alice@example.org/phone", 3)?, 1)
        .await?;
    assert_eq!(replaced.map(|r| r.session), Some(SessionId(1)));
    registry.set_presence(&jid, SessionId(3), true, 5).await;
    let bare = "alice@example.org".parse()?;
    let resources = registry.resources(&bare);
    assert_eq!(resources.len(), 1);
    assert!(resources[0].available && resources[0].priority == 5);
    registry.unbind(&jid, SessionId(3)).await;
    assert!(registry.is_empty());

    println!("=== with both other voters gone, the follower refuses binds within the deadline");
    let keep = nodes.remove(follower);
    for node in nodes {
        node.shutdown().await;
    }
    let started = tokio::time::Instant::now();
    let refused = registry.bind(route("bob@example.org/laptop", 4)?, 10).await;
    assert!(
        matches!(refused, Err(BindError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(started.elapsed() < deadline + Duration::from_secs(1));
    keep.shutdown().await;
    Ok(())
}
