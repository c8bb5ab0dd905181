//! Edges as Raft learners: joining through any voter (following `NotLeader` to the leader),
//! joining again after a restart, receiving the log, and leaving. Three voters and a learner in
//! one process, real tonic servers on loopback, real redb logs.

use std::collections::BTreeMap;
use std::time::Duration;

use corvid_proto::{ClusterError, Transport};
use corvid_raft::{LearnerClient, RegistryNode};
use corvid_registry::{Command, RouteRecord};
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const DEADLINE: Duration = Duration::from_secs(10);

async fn start(id: u64, dir: &std::path::Path) -> Result<RegistryNode, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(RegistryNode::start(id, dir, listener, RegistryNode::default_config()).await?)
}

/// Waits until `check` holds for `node`'s Raft metrics.
async fn until(
    node: &RegistryNode,
    what: &str,
    check: impl Fn(&openraft::RaftMetrics<u64, openraft::BasicNode>) -> bool,
) -> Result<(), String> {
    let start = tokio::time::Instant::now();
    loop {
        if check(&node.raft().metrics().borrow()) {
            return Ok(());
        }
        if start.elapsed() > DEADLINE {
            return Err(format!("node {}: never {what}", node.id()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn learner_addr(node: &RegistryNode, id: u64) -> Option<String> {
    let metrics = node.raft().metrics();
    let m = metrics.borrow();
    let membership = m.membership_config.membership();
    if membership.voter_ids().any(|v| v == id) {
        return None;
    }
    membership.get_node(&id).map(|n| n.addr.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_joins_as_a_learner_through_any_voter_gets_the_log_and_leaves() -> TestResult {
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let mut voters = Vec::new();
    for (i, dir) in dirs.iter().take(3).enumerate() {
        voters.push(start(i as u64 + 1, dir.path()).await?);
    }
    let members: BTreeMap<u64, _> = voters.iter().map(|n| (n.id(), n.node())).collect();
    voters[0].initialize(members).await?;
    until(&voters[0], "has a leader", |m| m.current_leader.is_some()).await?;
    let leader_id = voters[0]
        .raft()
        .metrics()
        .borrow()
        .current_leader
        .ok_or("no leader")?;
    let leader = voters
        .iter()
        .find(|n| n.id() == leader_id)
        .ok_or("leader not ours")?;
    let follower = voters
        .iter()
        .find(|n| n.id() != leader_id)
        .ok_or("no follower")?;

    println!("=== node 11 asks a follower, which sends it to the leader");
    let edge = start(11, dirs[3].path()).await?;
    let edge_addr = edge.addr().to_string();
    let client = LearnerClient::new(Transport::plaintext(), vec![follower.addr().to_string()]);
    // Right after the election the first membership may not be committed yet: that answer is
    // retryable, and the edge retries (as `LearnerClient::join_until` does).
    let start_join = tokio::time::Instant::now();
    let index = loop {
        match client.join(11, &edge_addr).await {
            Ok(index) => break index,
            Err(e) if e.is_retryable() && start_join.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    assert!(index > 0);
    assert_eq!(learner_addr(leader, 11), Some(edge_addr.clone()));
    let voter_ids: Vec<u64> = leader
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    assert_eq!(voter_ids, [1, 2, 3], "a learner does not vote");

    println!("=== the learner's replica gets what the leader commits");
    leader
        .propose(Command::Bind {
            route: RouteRecord {
                jid: "alice@example.org/phone".to_owned(),
                node: 11,
                session: 1,
                priority: 0,
                available: false,
            },
            max_resources: 10,
        })
        .await?;
    let start_wait = tokio::time::Instant::now();
    while edge.replica().read(|t| t.len()) != 1 {
        assert!(
            start_wait.elapsed() < DEADLINE,
            "the learner never applied the bind"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    println!("=== joining again is idempotent; a new address replaces the old");
    let again = client.join(11, &edge_addr).await?;
    assert!(again >= index);
    client.join(11, "127.0.0.1:1").await?;
    assert_eq!(learner_addr(leader, 11).as_deref(), Some("127.0.0.1:1"));
    client.join(11, &edge_addr).await?;
    assert_eq!(learner_addr(leader, 11), Some(edge_addr.clone()));

    println!("=== a voter's id cannot join as a learner, nor be removed as one");
    let refused = client.join(2, "127.0.0.1:2").await;
    assert!(
        matches!(refused, Err(ClusterError::Invalid(_))),
        "{refused:?}"
    );
    let refused = client.leave(2, DEADLINE).await;
    assert!(
        matches!(refused, Err(ClusterError::Invalid(_))),
        "{refused:?}"
    );

    println!("=== leaving removes it; leaving again changes nothing");
    assert!(client.leave(11, DEADLINE).await?);
    until(leader, "dropped node 11", |m| {
        m.membership_config.membership().get_node(&11).is_none()
    })
    .await?;
    assert!(!client.leave(11, DEADLINE).await?);

    edge.shutdown().await;
    for v in voters {
        v.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_with_no_reachable_member_fails_as_retryable() -> TestResult {
    // Nothing listens on the port of a listener that was closed.
    let addr = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let client = LearnerClient::new(Transport::plaintext(), vec![addr.to_string()]);
    let err = client
        .join(11, "127.0.0.1:7011")
        .await
        .err()
        .ok_or("joined nothing")?;
    assert!(err.is_retryable(), "{err:?}");
    Ok(())
}
