//! Named invariants of the session table, each a function a test calls after every step.
//!
//! They read the state's private fields (not only its public views), so a broken index cannot
//! hide behind a read method that happens to paper over it.

use std::collections::{BTreeMap, BTreeSet};

use corvid_core::NodeId;
use corvid_jid::FullJid;

use crate::state::RegistryState;

/// An invariant that does not hold, with what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The account holds more resources than the limit.
    #[error("{account} has {count} resources, above the limit of {limit}")]
    AboveResourceLimit {
        /// The account.
        account: String,
        /// How many it holds.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A full JID is bound more than once, or filed under another JID than its own.
    #[error("{jid} is bound more than once or misfiled")]
    DuplicateFullJid {
        /// The JID.
        jid: String,
    },
    /// The applied index, the log clock or the leases switch went backwards.
    #[error("{what} went back from {before} to {after}")]
    WentBack {
        /// Which.
        what: &'static str,
        /// Before the step.
        before: String,
        /// After it.
        after: String,
    },
    /// The per-edge index and the table disagree.
    #[error("the per-edge index disagrees with the table: {0}")]
    NodeIndexDisagrees(String),
    /// An edge declared down still holds a session.
    #[error("{jid} is bound to edge {node}, which is down")]
    SessionOnDownNode {
        /// The edge.
        node: u64,
        /// The JID.
        jid: String,
    },
}

/// Every invariant: of `after` alone, and of the step from `before` to `after`.
/// `max_resources` is the limit the log's binds used.
pub fn check_all(
    before: &RegistryState,
    after: &RegistryState,
    max_resources: usize,
) -> Result<(), Violation> {
    at_most_one_session_per_full_jid(after)?;
    no_session_of_a_node_after_its_node_down(after)?;
    no_account_above_its_resource_limit(after, max_resources)?;
    indexes_only_grow(before, after)?;
    the_per_node_index_agrees_with_the_table(after)
}

/// At most one session per full JID: every route is filed under its own JID, and no JID appears
/// in two edges' indexes.
pub fn at_most_one_session_per_full_jid(state: &RegistryState) -> Result<(), Violation> {
    for (account, resources) in &state.accounts {
        for (resource, route) in resources {
            if route.jid.bare() != account || route.jid.resource() != resource {
                return Err(Violation::DuplicateFullJid {
                    jid: route.jid.to_string(),
                });
            }
        }
    }
    let mut seen: BTreeSet<&FullJid> = BTreeSet::new();
    for jid in state.by_node.values().flatten() {
        if !seen.insert(jid) {
            return Err(Violation::DuplicateFullJid {
                jid: jid.to_string(),
            });
        }
    }
    Ok(())
}

/// No session of a node after its node-down: an edge marked down holds nothing.
pub fn no_session_of_a_node_after_its_node_down(state: &RegistryState) -> Result<(), Violation> {
    for (node, n) in &state.nodes {
        if n.down.is_none() {
            continue;
        }
        if let Some(route) = state.routes().find(|r| r.node == *node) {
            return Err(Violation::SessionOnDownNode {
                node: node.0,
                jid: route.jid.to_string(),
            });
        }
    }
    Ok(())
}

/// No account above its resource limit.
pub fn no_account_above_its_resource_limit(
    state: &RegistryState,
    max_resources: usize,
) -> Result<(), Violation> {
    match state
        .accounts
        .iter()
        .find(|(_, resources)| resources.len() > max_resources)
    {
        Some((account, resources)) => Err(Violation::AboveResourceLimit {
            account: account.to_string(),
            count: resources.len(),
            limit: max_resources,
        }),
        None => Ok(()),
    }
}

/// Indexes only grow: the applied index and the log clock never go back, and leases once in use
/// stay in use.
pub fn indexes_only_grow(before: &RegistryState, after: &RegistryState) -> Result<(), Violation> {
    if after.applied < before.applied {
        return Err(went_back("applied index", before.applied, after.applied));
    }
    if after.clock_ms < before.clock_ms {
        return Err(went_back("log clock", before.clock_ms, after.clock_ms));
    }
    if before.leases_in_use && !after.leases_in_use {
        return Err(went_back("leases in use", true, false));
    }
    Ok(())
}

/// The per-node index agrees with the table: each edge's set is exactly the JIDs bound to it,
/// no set or account is empty, and every edge holding a session is known.
pub fn the_per_node_index_agrees_with_the_table(state: &RegistryState) -> Result<(), Violation> {
    let mut expected: BTreeMap<NodeId, BTreeSet<FullJid>> = BTreeMap::new();
    for route in state.routes() {
        expected
            .entry(route.node)
            .or_default()
            .insert(route.jid.clone());
    }
    if expected != state.by_node {
        let node = expected
            .keys()
            .chain(state.by_node.keys())
            .find(|n| expected.get(n) != state.by_node.get(n))
            .map_or(0, |n| n.0);
        return Err(Violation::NodeIndexDisagrees(format!(
            "edge {node}: table has {:?} sessions, index {:?}",
            expected.get(&NodeId(node)).map(BTreeSet::len),
            state.by_node.get(&NodeId(node)).map(BTreeSet::len),
        )));
    }
    if let Some(account) = state
        .accounts
        .iter()
        .find(|(_, r)| r.is_empty())
        .map(|(a, _)| a)
    {
        return Err(Violation::NodeIndexDisagrees(format!(
            "{account} is listed without resources"
        )));
    }
    if let Some(node) = state.by_node.keys().find(|n| !state.nodes.contains_key(n)) {
        return Err(Violation::NodeIndexDisagrees(format!(
            "edge {} holds sessions but is unknown",
            node.0
        )));
    }
    Ok(())
}

fn went_back(
    what: &'static str,
    before: impl std::fmt::Debug,
    after: impl std::fmt::Debug,
) -> Violation {
    Violation::WentBack {
        what,
        before: format!("{before:?}"),
        after: format!("{after:?}"),
    }
}

#[cfg(test)]
mod tests {
    use corvid_core::SessionId;
    use corvid_jid::BareJid;

    use super::*;
    use crate::command::{Command, DownReason};
    use crate::route::RouteInfo;

    fn bound() -> RegistryState {
        let mut s = RegistryState::new();
        for (i, j) in [
            "juliet@example.com/a",
            "juliet@example.com/b",
            "romeo@example.com/c",
        ]
        .iter()
        .enumerate()
        {
            let route = RouteInfo {
                jid: j.parse().unwrap(),
                node: NodeId(1 + i as u64 % 2),
                session: SessionId(i as u64),
                priority: 0,
                available: false,
            };
            s.apply(i as u64 + 1, &Command::bind(&route, 10));
        }
        s
    }

    // Each invariant must be able to fail: corrupt a good state by hand and see it caught.

    #[test]
    fn a_good_state_passes_every_invariant() {
        let s = bound();
        check_all(&RegistryState::new(), &s, 2).unwrap();
    }

    #[test]
    fn a_misfiled_route_is_caught() {
        let mut s = bound();
        let account: BareJid = "juliet@example.com".parse().unwrap();
        let romeo: FullJid = "romeo@example.com/c".parse().unwrap();
        let route = s.lookup(&romeo).cloned().unwrap();
        if let Some(r) = s.accounts.get_mut(&account) {
            r.insert(romeo.resource().clone(), route);
        }
        assert!(matches!(
            at_most_one_session_per_full_jid(&s),
            Err(Violation::DuplicateFullJid { .. })
        ));
    }

    #[test]
    fn a_jid_in_two_edges_indexes_is_caught() {
        let mut s = bound();
        let romeo: FullJid = "romeo@example.com/c".parse().unwrap();
        s.by_node.entry(NodeId(2)).or_default().insert(romeo);
        assert!(matches!(
            at_most_one_session_per_full_jid(&s),
            Err(Violation::DuplicateFullJid { .. })
        ));
    }

    #[test]
    fn a_session_on_a_down_edge_is_caught() {
        let mut s = bound();
        if let Some(n) = s.nodes.get_mut(&NodeId(1)) {
            n.down = Some(DownReason::Operator);
        }
        assert!(matches!(
            no_session_of_a_node_after_its_node_down(&s),
            Err(Violation::SessionOnDownNode { node: 1, .. })
        ));
    }

    #[test]
    fn an_account_above_the_limit_is_caught() {
        let s = bound();
        assert_eq!(
            no_account_above_its_resource_limit(&s, 1),
            Err(Violation::AboveResourceLimit {
                account: "juliet@example.com".into(),
                count: 2,
                limit: 1
            })
        );
    }

    #[test]
    fn going_back_is_caught() {
        let s = bound();
        let mut earlier = s.clone();
        earlier.applied = Some(1);
        assert!(indexes_only_grow(&s, &earlier).is_err());
        let mut colder = s.clone();
        colder.clock_ms = 0;
        let mut warm = s.clone();
        warm.clock_ms = 10;
        assert!(indexes_only_grow(&warm, &colder).is_err());
        let mut leased = s.clone();
        leased.leases_in_use = true;
        assert!(indexes_only_grow(&leased, &s).is_err());
        assert!(indexes_only_grow(&s, &leased).is_ok());
    }

    #[test]
    fn a_stale_or_empty_index_entry_is_caught() {
        let mut missing = bound();
        missing.by_node.remove(&NodeId(2));
        assert!(the_per_node_index_agrees_with_the_table(&missing).is_err());
        let mut empty = bound();
        empty.by_node.insert(NodeId(9), BTreeSet::new());
        assert!(the_per_node_index_agrees_with_the_table(&empty).is_err());
        let mut unknown = bound();
        unknown.nodes.remove(&NodeId(1));
        assert!(the_per_node_index_agrees_with_the_table(&unknown).is_err());
        let mut empty_account = bound();
        empty_account
            .accounts
            .insert("nurse@example.com".parse().unwrap(), BTreeMap::new());
        assert!(the_per_node_index_agrees_with_the_table(&empty_account).is_err());
    }
}
