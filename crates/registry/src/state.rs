//! [`RegistryState`]: the session table as a deterministic value, and [`RegistryState::apply`].

use std::collections::{BTreeMap, BTreeSet};

use corvid_core::{NodeId, SessionId};
use corvid_jid::{BareJid, FullJid, ResourcePart};
use serde::{Deserialize, Serialize};

use crate::command::{Command, DownReason};
use crate::outcome::{ids, BindRefusal, CommandError, Dropped, Outcome};
use crate::route::{RouteInfo, RouteRecord};

/// An edge's lease: it is live while the log clock is below `expires_at_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The edge.
    #[serde(with = "ids::node")]
    pub node: NodeId,
    /// When it ends, in the log's milliseconds (the `now_ms` of the entries).
    pub expires_at_ms: u64,
}

/// What the table knows about one edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeState {
    /// When its lease ends; `None` if it never renewed one or was declared down since.
    pub lease_expires_at_ms: Option<u64>,
    /// It takes no new sessions.
    pub draining: bool,
    /// Declared down (and why); it holds no sessions until a lease renewal revives it.
    pub down: Option<DownReason>,
}

/// The replicated session table. Every field changes only through [`RegistryState::apply`], which
/// reads nothing but the state and the entry (times come in the entries), so replicas fed the
/// same log are equal (`==`, and byte-equal snapshots).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryState {
    /// The index of the last applied entry; `None` before the first.
    pub(crate) applied: Option<u64>,
    /// The log clock: the largest `now_ms` applied so far. Leases are judged against it.
    pub(crate) clock_ms: u64,
    /// Set by the first `RenewLease`: from then on an edge needs a live lease to bind.
    pub(crate) leases_in_use: bool,
    /// Bound routes: account → resource → route. Accounts without routes are absent.
    pub(crate) accounts: BTreeMap<BareJid, BTreeMap<ResourcePart, RouteInfo>>,
    /// Per-edge index of the bound JIDs. Edges without sessions are absent.
    pub(crate) by_node: BTreeMap<NodeId, BTreeSet<FullJid>>,
    /// Every edge the log has named.
    pub(crate) nodes: BTreeMap<NodeId, NodeState>,
}

impl RegistryState {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the entry at `index`. Pure: the result depends only on `self`, `index` and
    /// `command`. An index at or below the last applied one changes nothing and returns
    /// [`Outcome::AlreadyApplied`], so a log can be replayed over a snapshot that already
    /// contains part of it. Every other entry advances the applied index, even when refused
    /// or rejected.
    pub fn apply(&mut self, index: u64, command: &Command) -> Outcome {
        if self.applied.is_some_and(|applied| index <= applied) {
            return Outcome::AlreadyApplied;
        }
        self.applied = Some(index);
        match command {
            Command::Bind {
                route,
                max_resources,
            } => self.bind(route, *max_resources),
            Command::Drain { node } => self.set_draining(*node, true),
            Command::ExpireLeases { now_ms } => self.expire_leases(*now_ms),
            Command::NodeDown { node, reason } => self.nodes_down(&[*node], *reason),
            Command::RenewLease {
                node,
                now_ms,
                ttl_ms,
            } => self.renew_lease(*node, *now_ms, *ttl_ms),
            Command::SetPresence {
                jid,
                node,
                session,
                available,
                priority,
            } => match parse_full(jid) {
                Ok(jid) => self.set_presence(&jid, *node, *session, *available, *priority),
                Err(e) => Outcome::Rejected(e),
            },
            Command::Unbind { jid, node, session } => match parse_full(jid) {
                Ok(jid) => self.unbind(&jid, *node, *session),
                Err(e) => Outcome::Rejected(e),
            },
            Command::Undrain { node } => self.set_draining(*node, false),
        }
    }

    /// The route of a full JID.
    pub fn lookup(&self, jid: &FullJid) -> Option<&RouteInfo> {
        self.accounts.get(jid.bare())?.get(jid.resource())
    }

    /// Every bound resource of an account, ordered by resource.
    pub fn resources(&self, bare: &BareJid) -> impl Iterator<Item = &RouteInfo> {
        self.accounts.get(bare).into_iter().flat_map(|r| r.values())
    }

    /// Every session an edge holds, ordered by JID.
    pub fn sessions_of(&self, node: NodeId) -> impl Iterator<Item = &RouteInfo> {
        self.by_node
            .get(&node)
            .into_iter()
            .flatten()
            .filter_map(|jid| self.lookup(jid))
    }

    /// Every bound route, ordered by JID.
    pub fn routes(&self) -> impl Iterator<Item = &RouteInfo> {
        self.accounts.values().flat_map(|r| r.values())
    }

    /// The edges that may bind now: named by the log, not declared down, and (once leases are in
    /// use) holding a lease that has not ended by the log clock. Ascending; draining edges
    /// included.
    pub fn live_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| self.is_live(n))
            .map(|(id, _)| *id)
            .collect()
    }

    /// What the table knows about an edge.
    pub fn node(&self, node: NodeId) -> Option<&NodeState> {
        self.nodes.get(&node)
    }

    /// Every edge the log has named, ascending.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &NodeState)> {
        self.nodes.iter().map(|(id, n)| (*id, n))
    }

    /// An edge's lease, if it holds one.
    pub fn lease(&self, node: NodeId) -> Option<Lease> {
        let expires_at_ms = self.nodes.get(&node)?.lease_expires_at_ms?;
        Some(Lease {
            node,
            expires_at_ms,
        })
    }

    /// Number of bound sessions.
    pub fn len(&self) -> usize {
        self.by_node.values().map(BTreeSet::len).sum()
    }

    /// True if nothing is bound.
    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    /// The index of the last applied entry, `None` before the first.
    pub fn applied(&self) -> Option<u64> {
        self.applied
    }

    /// The log clock: the largest `now_ms` applied so far.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// True once a lease has been renewed: binds then need a live lease.
    pub fn leases_in_use(&self) -> bool {
        self.leases_in_use
    }

    fn is_live(&self, n: &NodeState) -> bool {
        n.down.is_none()
            && (!self.leases_in_use
                || n.lease_expires_at_ms
                    .is_some_and(|expires| expires > self.clock_ms))
    }

    fn bind(&mut self, record: &RouteRecord, max_resources: u32) -> Outcome {
        let route = match RouteInfo::try_from(record.clone()) {
            Ok(route) => route,
            Err(e) => {
                return Outcome::Rejected(CommandError::InvalidJid {
                    jid: record.jid.clone(),
                    reason: e.to_string(),
                })
            }
        };
        // A retried proposal of a bind that already went through: same answer, and the presence
        // recorded since is kept. Checked first so a drain in between cannot turn a bound
        // session into a refused one.
        if let Some(existing) = self.lookup(&route.jid) {
            if existing.node == route.node && existing.session == route.session {
                return Outcome::Bound { replaced: None };
            }
        }
        match self.nodes.get(&route.node) {
            Some(n) if !self.is_live(n) => return Outcome::BindRefused(BindRefusal::NodeDown),
            Some(n) if n.draining => return Outcome::BindRefused(BindRefusal::NodeDraining),
            None if self.leases_in_use => return Outcome::BindRefused(BindRefusal::NodeDown),
            _ => {}
        }
        let resources = self.accounts.get(route.jid.bare());
        let replacing = resources.is_some_and(|r| r.contains_key(route.jid.resource()));
        let count = resources.map_or(0, BTreeMap::len);
        if !replacing && u64::try_from(count).unwrap_or(u64::MAX) >= u64::from(max_resources) {
            return Outcome::BindRefused(BindRefusal::TooManyResources);
        }
        let replaced = self.remove(&route.jid);
        self.nodes.entry(route.node).or_default();
        self.by_node
            .entry(route.node)
            .or_default()
            .insert(route.jid.clone());
        self.accounts
            .entry(route.jid.bare().clone())
            .or_default()
            .insert(route.jid.resource().clone(), route);
        Outcome::Bound { replaced }
    }

    fn unbind(&mut self, jid: &FullJid, node: NodeId, session: SessionId) -> Outcome {
        let existed = self.held_by(jid, node, session);
        if existed {
            self.remove(jid);
        }
        Outcome::Unbound { existed }
    }

    fn set_presence(
        &mut self,
        jid: &FullJid,
        node: NodeId,
        session: SessionId,
        available: bool,
        priority: i8,
    ) -> Outcome {
        let route = self
            .accounts
            .get_mut(jid.bare())
            .and_then(|r| r.get_mut(jid.resource()))
            .filter(|r| r.node == node && r.session == session);
        let updated = match route {
            Some(r) => {
                r.available = available;
                r.priority = priority;
                true
            }
            None => false,
        };
        Outcome::PresenceSet { updated }
    }

    fn renew_lease(&mut self, node: NodeId, now_ms: u64, ttl_ms: u64) -> Outcome {
        self.leases_in_use = true;
        self.clock_ms = self.clock_ms.max(now_ms);
        let until = self.clock_ms.saturating_add(ttl_ms);
        let n = self.nodes.entry(node).or_default();
        let revived = n.down.take().is_some();
        // A lease never shrinks: a renewal proposed with an older clock cannot cut one short.
        let expires_at_ms = n.lease_expires_at_ms.map_or(until, |e| e.max(until));
        n.lease_expires_at_ms = Some(expires_at_ms);
        Outcome::LeaseRenewed {
            lease: Lease {
                node,
                expires_at_ms,
            },
            revived,
        }
    }

    fn expire_leases(&mut self, now_ms: u64) -> Outcome {
        self.clock_ms = self.clock_ms.max(now_ms);
        if !self.leases_in_use {
            return Outcome::NodesDown {
                nodes: Vec::new(),
                dropped: Vec::new(),
            };
        }
        let expired: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.down.is_none() && !self.is_live(n))
            .map(|(id, _)| *id)
            .collect();
        self.nodes_down(&expired, DownReason::LeaseExpired)
    }

    /// Declares `nodes` down (those not down already) and drops their sessions.
    fn nodes_down(&mut self, nodes: &[NodeId], reason: DownReason) -> Outcome {
        let mut newly = Vec::new();
        let mut dropped = Vec::new();
        for &node in nodes {
            let n = self.nodes.entry(node).or_default();
            if n.down.is_some() {
                continue;
            }
            n.down = Some(reason);
            n.lease_expires_at_ms = None;
            newly.push(node);
            for jid in self.by_node.get(&node).cloned().unwrap_or_default() {
                dropped.extend(self.remove(&jid));
            }
        }
        newly.sort_unstable();
        dropped.sort_by(|a, b| a.jid.cmp(&b.jid));
        let caretakers = self.caretakers();
        let dropped = dropped
            .into_iter()
            .map(|route| {
                let caretaker = pick(&caretakers, route.jid.bare());
                Dropped { route, caretaker }
            })
            .collect();
        Outcome::NodesDown {
            nodes: newly,
            dropped,
        }
    }

    fn set_draining(&mut self, node: NodeId, draining: bool) -> Outcome {
        let n = self.nodes.entry(node).or_default();
        let changed = n.draining != draining;
        n.draining = draining;
        Outcome::DrainSet {
            node,
            draining,
            changed,
        }
    }

    /// Edges that can speak for dropped sessions: live and not draining, ascending.
    fn caretakers(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| self.is_live(n) && !n.draining)
            .map(|(id, _)| *id)
            .collect()
    }

    fn held_by(&self, jid: &FullJid, node: NodeId, session: SessionId) -> bool {
        self.lookup(jid)
            .is_some_and(|r| r.node == node && r.session == session)
    }

    /// Removes a route from the table and the per-edge index, dropping emptied entries so that
    /// equal tables are equal values.
    fn remove(&mut self, jid: &FullJid) -> Option<RouteInfo> {
        let resources = self.accounts.get_mut(jid.bare())?;
        let route = resources.remove(jid.resource())?;
        if resources.is_empty() {
            self.accounts.remove(jid.bare());
        }
        if let Some(jids) = self.by_node.get_mut(&route.node) {
            jids.remove(jid);
            if jids.is_empty() {
                self.by_node.remove(&route.node);
            }
        }
        Some(route)
    }
}

fn parse_full(jid: &str) -> Result<FullJid, CommandError> {
    jid.parse()
        .map_err(|e: corvid_jid::JidError| CommandError::InvalidJid {
            jid: jid.to_owned(),
            reason: e.to_string(),
        })
}

/// The caretaker of an account: FNV-1a of the bare JID over the candidate edges. Not std's
/// `DefaultHasher`, whose output may change between Rust releases: replicas built by different
/// compilers must pick the same edge.
fn pick(candidates: &[NodeId], bare: &BareJid) -> Option<NodeId> {
    if candidates.is_empty() {
        return None;
    }
    let hash = bare
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let len = u64::try_from(candidates.len()).unwrap_or(u64::MAX);
    let i = usize::try_from(hash % len).unwrap_or(0);
    candidates.get(i).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants;

    const MAX: u32 = 3;

    fn jid(s: &str) -> FullJid {
        s.parse().unwrap()
    }

    fn route(j: &str, node: u64, session: u64) -> RouteInfo {
        RouteInfo {
            jid: jid(j),
            node: NodeId(node),
            session: SessionId(session),
            priority: 0,
            available: false,
        }
    }

    /// Applies commands at successive indexes, checking every invariant after each.
    struct Log {
        state: RegistryState,
        next: u64,
    }

    impl Log {
        fn new() -> Self {
            Self {
                state: RegistryState::new(),
                next: 1,
            }
        }
        fn apply(&mut self, c: Command) -> Outcome {
            let before = self.state.clone();
            let out = self.state.apply(self.next, &c);
            self.next += 1;
            invariants::check_all(&before, &self.state, MAX as usize).unwrap();
            out
        }
        fn bind(&mut self, j: &str, node: u64, session: u64) -> Outcome {
            self.apply(Command::bind(&route(j, node, session), MAX))
        }
        fn renew(&mut self, node: u64, now_ms: u64, ttl_ms: u64) -> Outcome {
            self.apply(Command::RenewLease {
                node: NodeId(node),
                now_ms,
                ttl_ms,
            })
        }
        fn session(&self, j: &str) -> Option<(NodeId, SessionId)> {
            self.state.lookup(&jid(j)).map(|r| (r.node, r.session))
        }
    }

    #[test]
    fn a_bind_is_looked_up_by_full_jid_and_listed_for_account_and_edge() {
        let mut log = Log::new();
        assert_eq!(
            log.bind("juliet@example.com/balcony", 1, 10),
            Outcome::Bound { replaced: None }
        );
        log.bind("juliet@example.com/chamber", 2, 20);
        assert_eq!(
            log.session("juliet@example.com/balcony"),
            Some((NodeId(1), SessionId(10)))
        );
        let bare: BareJid = "juliet@example.com".parse().unwrap();
        let resources: Vec<_> = log
            .state
            .resources(&bare)
            .map(|r| r.jid.to_string())
            .collect();
        assert_eq!(
            resources,
            ["juliet@example.com/balcony", "juliet@example.com/chamber"]
        );
        assert_eq!(log.state.sessions_of(NodeId(2)).count(), 1);
        assert_eq!(log.state.len(), 2);
        assert_eq!(log.state.live_nodes(), [NodeId(1), NodeId(2)]);
        assert_eq!(log.state.applied(), Some(2));
    }

    #[test]
    fn a_conflicting_bind_replaces_the_old_session_and_reports_it() {
        let mut log = Log::new();
        log.bind("juliet@example.com/balcony", 1, 10);
        let out = log.bind("juliet@example.com/balcony", 2, 20);
        assert_eq!(
            out,
            Outcome::Bound {
                replaced: Some(route("juliet@example.com/balcony", 1, 10))
            }
        );
        assert_eq!(
            log.session("juliet@example.com/balcony"),
            Some((NodeId(2), SessionId(20)))
        );
        assert_eq!(log.state.len(), 1);
        assert_eq!(log.state.sessions_of(NodeId(1)).count(), 0);
    }

    #[test]
    fn a_retried_bind_of_the_same_session_is_not_a_conflict_and_keeps_presence() {
        let mut log = Log::new();
        log.bind("juliet@example.com/balcony", 1, 10);
        log.apply(Command::set_presence(
            &jid("juliet@example.com/balcony"),
            NodeId(1),
            SessionId(10),
            true,
            5,
        ));
        assert_eq!(
            log.bind("juliet@example.com/balcony", 1, 10),
            Outcome::Bound { replaced: None }
        );
        let r = log
            .state
            .lookup(&jid("juliet@example.com/balcony"))
            .unwrap();
        assert!(r.available);
        assert_eq!(r.priority, 5);
    }

    #[test]
    fn the_resource_limit_refuses_new_resources_but_not_replacements() {
        let mut log = Log::new();
        for (i, res) in ["a", "b", "c"].iter().enumerate() {
            log.bind(&format!("romeo@example.com/{res}"), 1, i as u64);
        }
        assert_eq!(
            log.bind("romeo@example.com/d", 1, 9),
            Outcome::BindRefused(BindRefusal::TooManyResources)
        );
        assert_eq!(log.session("romeo@example.com/d"), None);
        assert!(matches!(
            log.bind("romeo@example.com/a", 2, 9),
            Outcome::Bound { replaced: Some(_) }
        ));
        // Another account is not affected.
        assert_eq!(
            log.bind("juliet@example.com/d", 1, 9),
            Outcome::Bound { replaced: None }
        );
        assert_eq!(
            log.apply(Command::bind(&route("nurse@example.com/x", 1, 1), 0)),
            Outcome::BindRefused(BindRefusal::TooManyResources)
        );
    }

    #[test]
    fn a_late_unbind_of_a_replaced_session_does_not_remove_its_successor() {
        let mut log = Log::new();
        log.bind("juliet@example.com/balcony", 1, 10);
        log.bind("juliet@example.com/balcony", 2, 20);
        let j = jid("juliet@example.com/balcony");
        assert_eq!(
            log.apply(Command::unbind(&j, NodeId(1), SessionId(10))),
            Outcome::Unbound { existed: false }
        );
        // Same session number on another edge is another session.
        assert_eq!(
            log.apply(Command::unbind(&j, NodeId(1), SessionId(20))),
            Outcome::Unbound { existed: false }
        );
        assert_eq!(
            log.session("juliet@example.com/balcony"),
            Some((NodeId(2), SessionId(20)))
        );
        assert_eq!(
            log.apply(Command::unbind(&j, NodeId(2), SessionId(20))),
            Outcome::Unbound { existed: true }
        );
        assert!(log.state.is_empty());
        assert_eq!(log.state, {
            // Emptied entries are gone: the table equals one that never had the account,
            // apart from the edges it named and the applied index.
            let mut s = RegistryState::new();
            s.nodes = log.state.nodes.clone();
            s.applied = log.state.applied;
            s
        });
    }

    #[test]
    fn presence_from_a_session_that_no_longer_holds_the_jid_is_ignored() {
        let mut log = Log::new();
        log.bind("juliet@example.com/balcony", 1, 10);
        log.bind("juliet@example.com/balcony", 2, 20);
        let j = jid("juliet@example.com/balcony");
        assert_eq!(
            log.apply(Command::set_presence(&j, NodeId(1), SessionId(10), true, 7)),
            Outcome::PresenceSet { updated: false }
        );
        let r = log.state.lookup(&j).unwrap();
        assert!(!r.available);
        assert_eq!(r.priority, 0);
        assert_eq!(
            log.apply(Command::set_presence(
                &j,
                NodeId(2),
                SessionId(20),
                true,
                -1
            )),
            Outcome::PresenceSet { updated: true }
        );
        let r = log.state.lookup(&j).unwrap();
        assert!(r.available);
        assert_eq!(r.priority, -1);
    }

    #[test]
    fn a_jid_that_does_not_parse_is_rejected_without_changing_the_table() {
        let mut log = Log::new();
        log.bind("juliet@example.com/balcony", 1, 10);
        let before = log.state.clone();
        let bad = Command::Bind {
            route: RouteRecord {
                jid: "juliet@example.com".into(),
                node: 1,
                session: 11,
                priority: 0,
                available: false,
            },
            max_resources: MAX,
        };
        assert!(matches!(
            log.apply(bad),
            Outcome::Rejected(CommandError::InvalidJid { .. })
        ));
        for c in [
            Command::Unbind {
                jid: "a@b@c/d".into(),
                node: NodeId(1),
                session: SessionId(10),
            },
            Command::SetPresence {
                jid: String::new(),
                node: NodeId(1),
                session: SessionId(10),
                available: true,
                priority: 0,
            },
        ] {
            assert!(matches!(log.apply(c), Outcome::Rejected(_)));
        }
        assert_eq!(log.state.accounts, before.accounts);
        assert_eq!(log.state.applied(), Some(4));
    }

    #[test]
    fn node_down_drops_every_session_of_that_edge_once_and_names_a_caretaker() {
        let mut log = Log::new();
        log.bind("juliet@example.com/balcony", 1, 10);
        log.bind("romeo@example.com/orchard", 1, 11);
        log.bind("nurse@example.com/kitchen", 2, 20);
        let out = log.apply(Command::NodeDown {
            node: NodeId(1),
            reason: DownReason::Shutdown,
        });
        let Outcome::NodesDown { nodes, dropped } = out else {
            panic!("{out:?}")
        };
        assert_eq!(nodes, [NodeId(1)]);
        let jids: Vec<_> = dropped.iter().map(|d| d.route.jid.to_string()).collect();
        assert_eq!(
            jids,
            ["juliet@example.com/balcony", "romeo@example.com/orchard"]
        );
        assert!(dropped.iter().all(|d| d.caretaker == Some(NodeId(2))));
        assert_eq!(log.state.len(), 1);
        assert_eq!(log.state.live_nodes(), [NodeId(2)]);
        assert_eq!(
            log.bind("juliet@example.com/balcony", 1, 12),
            Outcome::BindRefused(BindRefusal::NodeDown)
        );
        // Declared down twice: nothing more to report.
        assert_eq!(
            log.apply(Command::NodeDown {
                node: NodeId(1),
                reason: DownReason::Operator,
            }),
            Outcome::NodesDown {
                nodes: vec![],
                dropped: vec![]
            }
        );
        assert_eq!(
            log.state.node(NodeId(1)).and_then(|n| n.down),
            Some(DownReason::Shutdown)
        );
    }

    #[test]
    fn a_node_that_never_renews_a_lease_is_never_a_caretaker() {
        // Registry-only voters (here 7, 8) hold no sessions and renew no lease. Even when the
        // log names one (an operator drains or undrains it by mistake), it is not live once
        // leases are in use, so no dropped session is ever left to it (issue #5: only edges
        // hold leases and sessions).
        let mut log = Log::new();
        log.renew(1, 1_000, 5_000); // until 6_000
        log.renew(2, 1_000, 60_000);
        log.apply(Command::Drain { node: NodeId(7) });
        log.apply(Command::Undrain { node: NodeId(7) });
        log.apply(Command::Undrain { node: NodeId(8) });
        for (i, user) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
            let session = u64::try_from(i).unwrap_or(0) + 1;
            log.bind(&format!("{user}@example.com/r"), 1, session);
        }
        assert_eq!(log.state.live_nodes(), [NodeId(1), NodeId(2)]);
        let out = log.apply(Command::ExpireLeases { now_ms: 6_000 });
        let Outcome::NodesDown { nodes, dropped } = out else {
            panic!("{out:?}")
        };
        // The named nodes without a lease are declared down too (they hold nothing to drop).
        assert_eq!(nodes, [NodeId(1), NodeId(7), NodeId(8)]);
        assert_eq!(dropped.len(), 8);
        assert!(
            dropped.iter().all(|d| d.caretaker == Some(NodeId(2))),
            "{dropped:?}"
        );
    }

    #[test]
    fn lease_expiry_drops_exactly_the_expired_edges_sessions_once() {
        let mut log = Log::new();
        log.renew(1, 1_000, 5_000); // until 6_000
        log.renew(2, 1_000, 10_000); // until 11_000
        log.renew(3, 1_000, 5_000); // until 6_000, no sessions
        log.bind("juliet@example.com/balcony", 1, 10);
        log.bind("juliet@example.com/chamber", 2, 20);
        log.bind("romeo@example.com/orchard", 1, 11);
        assert_eq!(
            log.apply(Command::ExpireLeases { now_ms: 5_999 }),
            Outcome::NodesDown {
                nodes: vec![],
                dropped: vec![]
            }
        );
        log.renew(3, 5_999, 5_000);
        let out = log.apply(Command::ExpireLeases { now_ms: 6_000 });
        let Outcome::NodesDown { nodes, dropped } = out else {
            panic!("{out:?}")
        };
        assert_eq!(nodes, [NodeId(1)]);
        let sessions: Vec<_> = dropped.iter().map(|d| d.route.session).collect();
        assert_eq!(sessions, [SessionId(10), SessionId(11)]);
        assert!(dropped.iter().all(|d| d
            .caretaker
            .is_some_and(|c| c == NodeId(2) || c == NodeId(3))));
        // Only Juliet's resource on the surviving edge remains.
        assert_eq!(
            log.session("juliet@example.com/chamber"),
            Some((NodeId(2), SessionId(20)))
        );
        assert_eq!(log.state.len(), 1);
        // Applying expiry again reports nothing: each dropped session is listed once.
        assert_eq!(
            log.apply(Command::ExpireLeases { now_ms: 6_500 }),
            Outcome::NodesDown {
                nodes: vec![],
                dropped: vec![]
            }
        );
        assert_eq!(
            log.state.node(NodeId(1)).and_then(|n| n.down),
            Some(DownReason::LeaseExpired)
        );
    }

    #[test]
    fn once_leases_are_in_use_a_bind_needs_a_live_lease() {
        let mut log = Log::new();
        // Without leases (one node, `corvid serve`), any edge may bind.
        assert!(matches!(
            log.bind("a@example.com/x", 7, 1),
            Outcome::Bound { .. }
        ));
        log.renew(1, 1_000, 1_000);
        assert_eq!(
            log.bind("b@example.com/x", 7, 2),
            Outcome::BindRefused(BindRefusal::NodeDown)
        );
        assert_eq!(
            log.bind("b@example.com/x", 9, 2),
            Outcome::BindRefused(BindRefusal::NodeDown)
        );
        assert!(matches!(
            log.bind("b@example.com/x", 1, 2),
            Outcome::Bound { .. }
        ));
        // The lease ran out by the log clock (another edge's renewal moved it), even before
        // the leader's ExpireLeases entry: refused.
        log.renew(2, 2_000, 1_000);
        assert_eq!(
            log.bind("c@example.com/x", 1, 3),
            Outcome::BindRefused(BindRefusal::NodeDown)
        );
        // Edge 7 never renewed: the next expiry declares it down with its old session.
        let out = log.apply(Command::ExpireLeases { now_ms: 2_000 });
        let Outcome::NodesDown { nodes, dropped } = out else {
            panic!("{out:?}")
        };
        assert_eq!(nodes, [NodeId(1), NodeId(7)]);
        assert_eq!(dropped.len(), 2);
    }

    #[test]
    fn renewing_revives_an_edge_declared_down_and_leases_never_shrink() {
        let mut log = Log::new();
        log.renew(1, 1_000, 1_000);
        log.apply(Command::NodeDown {
            node: NodeId(1),
            reason: DownReason::Operator,
        });
        assert_eq!(log.state.lease(NodeId(1)), None);
        assert_eq!(
            log.renew(1, 1_500, 1_000),
            Outcome::LeaseRenewed {
                lease: Lease {
                    node: NodeId(1),
                    expires_at_ms: 2_500
                },
                revived: true
            }
        );
        // A renewal proposed with an older clock is judged by the log clock, and cannot shorten.
        assert_eq!(
            log.renew(1, 100, 10),
            Outcome::LeaseRenewed {
                lease: Lease {
                    node: NodeId(1),
                    expires_at_ms: 2_500
                },
                revived: false
            }
        );
        assert_eq!(log.state.clock_ms(), 1_500);
        assert!(matches!(
            log.bind("a@example.com/x", 1, 1),
            Outcome::Bound { .. }
        ));
    }

    #[test]
    fn a_draining_edge_keeps_its_sessions_but_takes_no_new_ones() {
        let mut log = Log::new();
        log.bind("juliet@example.com/balcony", 1, 10);
        log.bind("romeo@example.com/orchard", 2, 20);
        assert_eq!(
            log.apply(Command::Drain { node: NodeId(1) }),
            Outcome::DrainSet {
                node: NodeId(1),
                draining: true,
                changed: true
            }
        );
        assert_eq!(
            log.bind("nurse@example.com/kitchen", 1, 11),
            Outcome::BindRefused(BindRefusal::NodeDraining)
        );
        assert_eq!(log.state.sessions_of(NodeId(1)).count(), 1);
        // Its sessions can still move elsewhere (the client reconnects to another edge).
        assert!(matches!(
            log.bind("juliet@example.com/balcony", 2, 21),
            Outcome::Bound { replaced: Some(_) }
        ));
        // A draining edge is no caretaker.
        log.bind("tybalt@example.com/street", 3, 30);
        let Outcome::NodesDown { dropped, .. } = log.apply(Command::NodeDown {
            node: NodeId(3),
            reason: DownReason::Shutdown,
        }) else {
            panic!()
        };
        assert_eq!(dropped[0].caretaker, Some(NodeId(2)));
        assert_eq!(
            log.apply(Command::Undrain { node: NodeId(1) }),
            Outcome::DrainSet {
                node: NodeId(1),
                draining: false,
                changed: true
            }
        );
        assert!(matches!(
            log.bind("nurse@example.com/kitchen", 1, 11),
            Outcome::Bound { replaced: None }
        ));
        assert_eq!(
            log.apply(Command::Undrain { node: NodeId(1) }),
            Outcome::DrainSet {
                node: NodeId(1),
                draining: false,
                changed: false
            }
        );
    }

    #[test]
    fn applying_an_index_again_is_a_no_op() {
        let mut state = RegistryState::new();
        let bind = Command::bind(&route("juliet@example.com/balcony", 1, 10), MAX);
        assert_eq!(state.apply(5, &bind), Outcome::Bound { replaced: None });
        let after = state.clone();
        let other = Command::bind(&route("juliet@example.com/balcony", 2, 20), MAX);
        assert_eq!(state.apply(5, &other), Outcome::AlreadyApplied);
        assert_eq!(state.apply(3, &other), Outcome::AlreadyApplied);
        assert_eq!(state, after);
        // Index 0 is a real index (openraft starts there).
        let mut fresh = RegistryState::new();
        assert_eq!(fresh.apply(0, &bind), Outcome::Bound { replaced: None });
        assert_eq!(fresh.apply(0, &bind), Outcome::AlreadyApplied);
    }

    #[test]
    fn caretakers_are_spread_by_account_and_stable() {
        let nodes = [NodeId(1), NodeId(2), NodeId(3), NodeId(4)];
        let mut seen = BTreeSet::new();
        for i in 0..40 {
            let bare: BareJid = format!("user{i}@example.com").parse().unwrap();
            let c = pick(&nodes, &bare).unwrap();
            assert_eq!(pick(&nodes, &bare), Some(c));
            seen.insert(c);
        }
        assert_eq!(seen.len(), 4);
        // Pinned: a change of hash would make replicas of different versions disagree.
        let bare: BareJid = "juliet@example.com".parse().unwrap();
        assert_eq!(pick(&nodes, &bare), Some(NodeId(4)));
        assert_eq!(pick(&nodes[..3], &bare), Some(NodeId(2)));
        assert_eq!(pick(&[], &bare), None);
    }
}
