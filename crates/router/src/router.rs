//! Delivery: local mailboxes, server IQ dispatch, errors back to senders.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use corvid_core::{
    Event, Flow, IqTarget, NodeId, RemoteDelivery, RemoteError, Services, SessionId, StanzaSender,
};
use corvid_jid::{BareJid, FullJid, Jid};
use corvid_stanza::{Condition, Kind, Stanza, StanzaError, StreamCondition, StreamError};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::mailbox::TrySendError;
use crate::{decide, BindError, Decision, Route, SessionRegistry};

/// What a session's mailbox carries.
#[derive(Debug)]
pub enum Outbound {
    /// A stanza to write to the client.
    Stanza(Box<Stanza>),
    /// Close the session with this stream error (e.g. `conflict` when replaced).
    Close(Box<StreamError>),
}

pub use crate::mailbox::Mailbox;

/// A session held by this node.
struct LocalSession {
    /// The full JID it is bound to (the `deliver` hooks name it).
    jid: FullJid,
    mailbox: Mailbox,
}

/// Routes stanzas between sessions (local, or on other nodes through [`RemoteDelivery`]) and
/// the server's handlers.
pub struct Router {
    node: NodeId,
    registry: Arc<dyn SessionRegistry>,
    mailboxes: RwLock<HashMap<SessionId, LocalSession>>,
    services: OnceLock<Services>,
    /// Where stanzas for sessions on other nodes go; `None` on a single node.
    remote: RwLock<Option<Arc<dyn RemoteDelivery>>>,
    max_resources: usize,
    /// Sessions being closed because the cluster dropped them (this node was declared down):
    /// their contacts were told already ([`Router::close_orphans`]).
    orphans: Mutex<HashSet<SessionId>>,
    /// Until when [`Router::catch_up`] does not wait, after a wait ran out (a copy of the table
    /// cut off from its leader must not hold every miss for the whole limit).
    impatient_until: Mutex<Option<Instant>>,
}

/// The longest a lookup that missed waits for this node's copy of the session table to reach
/// the position the stanza is a consequence of (copies are normally a heartbeat behind at most).
const CATCH_UP: Duration = Duration::from_millis(500);
/// After a wait ran out, misses are not waited on for this long.
const IMPATIENCE: Duration = Duration::from_secs(5);

impl Router {
    /// A router for `node` over `registry`. [`Router::set_services`] must be called before use.
    pub fn new(
        node: NodeId,
        registry: Arc<dyn SessionRegistry>,
        max_resources: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            node,
            registry,
            mailboxes: RwLock::new(HashMap::new()),
            services: OnceLock::new(),
            remote: RwLock::new(None),
            max_resources,
            orphans: Mutex::new(HashSet::new()),
            impatient_until: Mutex::new(None),
        })
    }

    /// A [`StanzaSender`] for handlers that routes through this router.
    pub fn sender(self: &Arc<Self>) -> Arc<dyn StanzaSender> {
        Arc::new(RouterSender(Arc::downgrade(self)))
    }

    /// Completes construction (services hold a sender that points back here).
    pub fn set_services(&self, services: Services) {
        let _ = self.services.set(services);
    }

    /// Sends stanzas for sessions on other nodes through `remote` from now on. Without it, a
    /// route to another node counts as undelivered (the sender gets an error).
    pub fn set_remote(&self, remote: Arc<dyn RemoteDelivery>) {
        *self.remote.write().unwrap_or_else(|e| e.into_inner()) = Some(remote);
    }

    /// The node this router runs on.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The services.
    ///
    /// # Panics
    /// If [`Router::set_services`] was not called: a wiring bug at start-up, not a runtime condition.
    pub fn services(&self) -> &Services {
        #[allow(clippy::expect_used)]
        self.services
            .get()
            .expect("Router::set_services not called")
    }

    /// The session table.
    pub fn registry(&self) -> &Arc<dyn SessionRegistry> {
        &self.registry
    }

    /// A fresh session id, unique across the cluster ([`SessionId::random`]).
    pub fn new_session_id(&self) -> SessionId {
        SessionId::random()
    }

    fn mailbox(&self, session: SessionId) -> Option<Mailbox> {
        self.mailboxes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session)
            .map(|s| s.mailbox.clone())
    }

    fn remote(&self) -> Option<Arc<dyn RemoteDelivery>> {
        self.remote
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Binds `jid` to a local session. If another session held it, that session is told to
    /// close with `conflict` (RFC 6120 §7.7.2.2, "the new session wins").
    pub async fn bind(
        &self,
        jid: FullJid,
        session: SessionId,
        mailbox: Mailbox,
    ) -> Result<(), BindError> {
        let route = Route {
            jid: jid.clone(),
            node: self.node,
            session,
            priority: 0,
            available: false,
        };
        self.mailboxes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                session,
                LocalSession {
                    jid: jid.clone(),
                    mailbox,
                },
            );
        let replaced = match self.registry.bind(route, self.max_resources).await {
            Ok(r) => r,
            Err(e) => {
                self.mailboxes
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&session);
                return Err(e);
            }
        };
        if let Some(old) = replaced {
            debug!(what = "session-replaced", jid = %jid, old = %old.session, old_node = old.node.0, new = %session);
            // Only a session of this node is ours to close. One on another node is closed by
            // that node when its replica sees the replacement.
            if let Some(mb) = self.mailbox(old.session).filter(|_| old.node == self.node) {
                let err = StreamError::new(StreamCondition::Conflict)
                    .with_text("replaced by a new session for the same resource");
                // A full mailbox belongs to a stuck session; it is closing anyway.
                let _ = mb.try_send(Outbound::Close(Box::new(err)));
            }
        }
        let mut ev = Event::ResourceBound { jid: &jid, session };
        self.run_hooks(&mut ev).await;
        Ok(())
    }

    /// Closes the local session `session` with `conflict` if it is bound to `jid`: another
    /// session (possibly on another node) took its full JID. The JID check keeps a stale or
    /// mistaken id from closing a session bound elsewhere. Returns whether a session was told.
    pub fn close_replaced(&self, jid: &FullJid, session: SessionId) -> bool {
        let mailbox = self
            .mailboxes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session)
            .filter(|s| &s.jid == jid)
            .map(|s| s.mailbox.clone());
        let Some(mb) = mailbox else {
            return false;
        };
        let err = StreamError::new(StreamCondition::Conflict)
            .with_text("replaced by a new session for the same resource");
        // A full mailbox belongs to a stuck session; it is closing anyway.
        let _ = mb.try_send(Outbound::Close(Box::new(err)));
        true
    }

    /// Tells every session on this node to close with `err` (a draining edge: `see-other-host`
    /// or `system-shutdown`). Each session writes the stream error, ends its stream and unbinds
    /// as when it closes for any other reason. Returns how many sessions were told.
    pub fn close_all(&self, err: &StreamError) -> usize {
        let mailboxes: Vec<Mailbox> = self
            .mailboxes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|s| s.mailbox.clone())
            .collect();
        for mb in &mailboxes {
            // A full mailbox belongs to a stuck session; its idle timeout ends it.
            let _ = mb.try_send(Outbound::Close(Box::new(err.clone())));
        }
        mailboxes.len()
    }

    /// Closes every local session the session table no longer holds: after this node was
    /// declared down (cut off, or too slow to renew its lease) the cluster dropped its sessions
    /// and a caretaker told their contacts they went unavailable, yet their connections may
    /// still be open here. Each gets `connection-timeout` (RFC 6120 §4.9.3.4: the cluster lost
    /// contact with it) and closes without a second `unavailable` to its contacts
    /// ([`Event::SessionClosed`]'s `announced`). Returns how many were closed.
    pub fn close_orphans(&self) -> usize {
        let orphans: Vec<(SessionId, Mailbox)> = self
            .mailboxes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(id, s)| {
                self.registry
                    .lookup(&s.jid)
                    .is_none_or(|r| r.node != self.node || r.session != **id)
            })
            .map(|(id, s)| (*id, s.mailbox.clone()))
            .collect();
        let err = StreamError::new(StreamCondition::ConnectionTimeout).with_text(
            "this server lost contact with its cluster and your session was ended; reconnect",
        );
        let mut marked = self.orphans.lock().unwrap_or_else(|e| e.into_inner());
        for (id, mb) in &orphans {
            marked.insert(*id);
            // A full mailbox belongs to a stuck session; its idle timeout ends it.
            let _ = mb.try_send(Outbound::Close(Box::new(err.clone())));
        }
        orphans.len()
    }

    /// Ends a session: removes its binding (if still its own) and mailbox, and runs the
    /// `session-closed` hooks.
    pub async fn unbind(&self, jid: &FullJid, session: SessionId) {
        self.mailboxes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&session);
        let announced = self
            .orphans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&session);
        self.registry.unbind(jid, session).await;
        let mut ev = Event::SessionClosed {
            jid,
            session,
            announced,
        };
        self.run_hooks(&mut ev).await;
    }

    /// Routes a stanza whose `from` is already stamped (RFC 6120 §8.1.2.1). Replies and errors
    /// it causes are routed too; stanzas of type `error` are never answered with errors, so
    /// this terminates.
    pub async fn route(&self, stanza: Stanza) {
        let mut queue = std::collections::VecDeque::from([stanza]);
        while let Some(st) = queue.pop_front() {
            queue.extend(self.route_one(st).await);
        }
    }

    /// Routes one stanza; returns what it causes (replies, errors), to be routed in order.
    async fn route_one(&self, stanza: Stanza) -> Vec<Stanza> {
        let services = self.services();
        let sender: Option<BareJid> = stanza
            .from()
            .and_then(|f| f.node().map(|_| f.bare().clone()));
        let target: Option<BareJid> = match stanza.to() {
            Some(to) => Some(to.bare().clone()),
            None => sender.clone(),
        };
        let to_is_local = stanza
            .to()
            .map(|t| services.is_local(t.domain()))
            .unwrap_or(true);
        let mut resources = match &target {
            Some(t) if to_is_local && t.node().is_some() => self.registry.resources(t),
            _ => Vec::new(),
        };
        if let (Some(Jid::Full(to)), Some(t)) = (stanza.to(), &target) {
            if to_is_local && !resources.iter().any(|r| r.jid == *to) && self.catch_up(to).await {
                resources = self.registry.resources(t);
            }
        }
        let needs_account = resources.is_empty()
            && to_is_local
            && target.as_ref().is_some_and(|t| t.node().is_some());
        let account_exists = if needs_account {
            match target.as_ref() {
                Some(t) => match services.account_exists(t).await {
                    Ok(e) => e,
                    Err(e) => {
                        warn!(what = "route-store-error", error = %e);
                        return self
                            .error(&stanza, StanzaError::new(Condition::InternalServerError))
                            .into_iter()
                            .collect();
                    }
                },
                None => false,
            }
        } else {
            false
        };
        let mut stanza = stanza;
        if let Some(account) = target
            .as_ref()
            .filter(|t| to_is_local && t.node().is_some() && stanza.to().is_some())
        {
            let mut ev = Event::LocalInbound {
                account,
                stanza: &mut stanza,
            };
            if services.modules.run(services, &mut ev).await == Flow::Stop {
                return Vec::new();
            }
        }
        let decision = decide(
            &stanza,
            sender.as_ref(),
            to_is_local,
            &resources,
            account_exists,
        );
        self.act(decision, stanza, target.as_ref()).await
    }

    /// After a full JID was not found: if what is being routed is a consequence of a table
    /// position this node's copy has not reached yet (a stanza forwarded by a node that had
    /// applied more, [`corvid_core::caused_at`]), the resource may have been bound a moment ago
    /// elsewhere. Waits, within [`CATCH_UP`], for the copy to get as far; true if it waited and
    /// the lookup is worth repeating. Without this, the answer to a probe from a session bound
    /// a moment ago on another node would be dropped as for an unavailable resource (RFC 6121
    /// §8.5.3.2.1 rather than §8.5.3.1).
    async fn catch_up(&self, to: &FullJid) -> bool {
        let seen = corvid_core::seen_position();
        let at = self.registry.position();
        if seen <= at {
            return false;
        }
        let now = Instant::now();
        {
            let mut until = self
                .impatient_until
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match *until {
                Some(t) if now < t => return false,
                Some(_) => *until = None,
                None => {}
            }
        }
        let reached = self.registry.reach(seen, CATCH_UP).await;
        debug!(what = "route-catch-up", to = %to, seen, at, reached, waited_us = now.elapsed().as_micros() as u64);
        if !reached {
            warn!(
                what = "route-replica-behind",
                to = %to,
                seen,
                at = self.registry.position(),
                "this node's copy of the session table did not catch up; treating the resource as unavailable"
            );
            *self
                .impatient_until
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + IMPATIENCE);
        }
        true
    }

    /// Carries out a routing decision for `stanza`, addressed to `target`'s account.
    async fn act(
        &self,
        decision: Decision,
        stanza: Stanza,
        target: Option<&BareJid>,
    ) -> Vec<Stanza> {
        match decision {
            Decision::Deliver(routes) => self.deliver(target, stanza, routes).await,
            Decision::Server(target) => self.handle_iq(target, stanza).await,
            Decision::Broadcast => {
                self.presence_broadcast(&stanza).await;
                Vec::new()
            }
            Decision::Offline => self.offline(target, stanza).await,
            Decision::Remote => self
                .error(
                    &stanza,
                    StanzaError::new(Condition::RemoteServerNotFound)
                        .with_text("server-to-server is not enabled"),
                )
                .into_iter()
                .collect(),
            Decision::Error(c) => self
                .error(&stanza, StanzaError::new(c))
                .into_iter()
                .collect(),
            Decision::Drop => {
                debug!(what = "stanza-dropped", kind = stanza.kind().as_str());
                Vec::new()
            }
        }
    }

    /// RFC 6121 §8.5.2.2.1: store it if a module can, else service-unavailable.
    async fn offline(&self, account: Option<&BareJid>, stanza: Stanza) -> Vec<Stanza> {
        if let Some(account) = account {
            let mut ev = Event::OfflineMessage {
                account,
                stanza: &stanza,
            };
            if self.run_hooks(&mut ev).await == Flow::Stop {
                return Vec::new();
            }
        }
        self.error(&stanza, StanzaError::new(Condition::ServiceUnavailable))
            .into_iter()
            .collect()
    }

    fn error(&self, stanza: &Stanza, err: StanzaError) -> Option<Stanza> {
        stanza.error_reply(&err)
    }

    /// Runs the hooks of an event with this router's services.
    async fn run_hooks(&self, event: &mut Event<'_>) -> Flow {
        let services = self.services();
        services.modules.run(services, event).await
    }

    /// Hands `stanza` to the sessions of `routes`. If not one of them takes it, a message is
    /// handled as if those sessions were not there (RFC 6121 §8.5.3.2.1 for a full JID, §8.5.2
    /// for a bare one): the account's other resources, else offline storage. That is what keeps a
    /// message whose recipient's node has just died (killed, cut off: the registry still lists
    /// its sessions until the node is declared down) or whose session has just closed from
    /// bouncing while the account could take it. Other stanzas get `recipient-unavailable`.
    async fn deliver(
        &self,
        account: Option<&BareJid>,
        stanza: Stanza,
        routes: Vec<Route>,
    ) -> Vec<Stanza> {
        let mut failed: HashSet<SessionId> = HashSet::new();
        let mut routes = routes;
        loop {
            if self.try_routes(account, &stanza, routes, &mut failed).await {
                return Vec::new();
            }
            let Some(account) = account.filter(|_| stanza.kind() == Kind::Message) else {
                // Nobody could take it: tell the sender rather than drop it silently.
                return self
                    .error(&stanza, StanzaError::new(Condition::RecipientUnavailable))
                    .into_iter()
                    .collect();
            };
            let remaining: Vec<Route> = self
                .registry
                .resources(account)
                .into_iter()
                .filter(|r| !failed.contains(&r.session))
                .collect();
            let sender = stanza
                .from()
                .and_then(|f| f.node().map(|_| f.bare().clone()));
            debug!(
                what = "deliver-fallback",
                failed = failed.len(),
                remaining = remaining.len()
            );
            match decide(&stanza, sender.as_ref(), true, &remaining, true) {
                // Each round adds at least one session to `failed`, and these come from
                // `remaining`, which excludes them: the loop ends.
                Decision::Deliver(next) if !next.is_empty() => routes = next,
                Decision::Deliver(_) => return self.offline(Some(account), stanza).await,
                other => return Box::pin(self.act(other, stanza, Some(account))).await,
            }
        }
    }

    /// Tries each route; true if at least one session took the stanza. Sessions that did not
    /// are added to `failed`.
    async fn try_routes(
        &self,
        account: Option<&BareJid>,
        stanza: &Stanza,
        routes: Vec<Route>,
        failed: &mut HashSet<SessionId>,
    ) -> bool {
        let mut delivered = Vec::with_capacity(routes.len());
        for route in routes {
            let started = tokio::time::Instant::now();
            let remote = route.node != self.node;
            // The original is kept for the error reply should nobody take it.
            let outcome = if !remote {
                self.to_local_session(&route.jid, route.session, stanza.clone())
                    .await
            } else {
                self.to_remote_session(&route, stanza).await
            };
            corvid_telemetry::metrics().routed(remote, started.elapsed(), outcome.is_ok());
            match outcome {
                Ok(()) => delivered.push(route.session),
                Err(_) => {
                    failed.insert(route.session);
                }
            }
        }
        if delivered.is_empty() {
            return false;
        }
        if let Some(account) = account {
            let mut ev = Event::Delivered {
                account,
                stanza,
                sessions: &delivered,
            };
            self.run_hooks(&mut ev).await;
        }
        true
    }

    /// Delivers a stanza that another node routed to `session` on this node: runs the
    /// `deliver` hooks like a local delivery and puts it in the session's mailbox.
    ///
    /// [`RemoteError::Gone`] if the session is not (or no longer) here, if it is no longer
    /// bound to `expected` (the full JID the sender's route named; the resource moved or
    /// vanished), or if the stanza's `to` names another account than the session's: a sender's
    /// stale route may name a session id that now belongs to someone else.
    /// [`RemoteError::Unavailable`] if its mailbox is full. The sending node answers the sender
    /// on either.
    pub async fn deliver_local(
        &self,
        session: SessionId,
        expected: Option<&FullJid>,
        stanza: Stanza,
    ) -> Result<(), RemoteError> {
        let jid = self
            .mailboxes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session)
            .map(|s| s.jid.clone());
        let Some(jid) = jid else {
            debug!(what = "remote-recipient-gone", session = %session);
            return Err(RemoteError::Gone);
        };
        if stanza.to().is_some_and(|to| to.bare() != jid.bare())
            || expected.is_some_and(|e| *e != jid)
        {
            debug!(what = "remote-recipient-mismatch", session = %session, bound = %jid);
            return Err(RemoteError::Gone);
        }
        self.to_local_session(&jid, session, stanza).await
    }

    /// Runs the `deliver` hooks for one local session, then puts the stanza in its mailbox.
    async fn to_local_session(
        &self,
        jid: &FullJid,
        session: SessionId,
        mut stanza: Stanza,
    ) -> Result<(), RemoteError> {
        let mut ev = Event::Deliver {
            jid,
            session,
            stanza: &mut stanza,
        };
        if self.run_hooks(&mut ev).await == Flow::Stop {
            // A listener took it (held back for this session, say): it counts as taken.
            return Ok(());
        }
        let Some(mb) = self.mailbox(session) else {
            return Err(RemoteError::Gone);
        };
        let position = corvid_core::seen_position();
        if position > 0 {
            mb.note_position(position);
        }
        match mb.try_send(Outbound::Stanza(Box::new(stanza))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                warn!(what = "mailbox-full", session = %session);
                Err(RemoteError::Unavailable)
            }
            // The session's driver is gone and its unbind is on the way.
            Err(TrySendError::Closed(_)) => Err(RemoteError::Gone),
        }
    }

    /// Hands a stanza to a session on another node. The `deliver` hooks run there.
    async fn to_remote_session(&self, route: &Route, stanza: &Stanza) -> Result<(), RemoteError> {
        let Some(remote) = self.remote() else {
            warn!(what = "no-remote-delivery", node = route.node.0, session = %route.session);
            return Err(RemoteError::Unavailable);
        };
        let outcome = remote.deliver(route, stanza).await;
        if let Err(e) = outcome {
            debug!(what = "remote-undelivered", node = route.node.0, session = %route.session, error = %e);
        }
        outcome
    }

    async fn handle_iq(&self, target: IqTarget, iq: Stanza) -> Vec<Stanza> {
        let services = self.services();
        let (Some(ty), Some(payload)) = (iq.iq_type(), iq.iq_payload()) else {
            return Vec::new();
        };
        let Some(handler) = services.modules.iq_handler(target, ty, payload) else {
            // RFC 6120 §8.4: a namespace nobody handles is service-unavailable.
            return self
                .error(&iq, StanzaError::new(Condition::ServiceUnavailable))
                .into_iter()
                .collect();
        };
        let handler = handler.clone();
        let (outcome, then) = handler.handle_then(services, &iq).await;
        let reply = match outcome {
            Ok(payload) => Some(iq.iq_result(payload)),
            Err(e) => self.error(&iq, e),
        };
        reply.into_iter().chain(then).collect()
    }

    /// Presence without `to` (RFC 6121 §4.2, §4.5): records availability and priority. The
    /// broadcast to contacts belongs to the presence module (RFC 6121), which hooks in here.
    async fn presence_broadcast(&self, presence: &Stanza) {
        let Some(Jid::Full(from)) = presence.from() else {
            return;
        };
        if presence.kind() != Kind::Presence {
            return;
        }
        let Some(route) = self.registry.lookup(from) else {
            return;
        };
        let available = presence.type_attr().is_none();
        let priority = presence
            .element()
            .child("priority", corvid_stanza::ns::CLIENT)
            .and_then(|p| p.text().trim().parse::<i8>().ok())
            .unwrap_or(0);
        self.registry
            .set_presence(from, route.session, available, priority)
            .await;
        if available && !route.available {
            let mut ev = Event::ResourceAvailable {
                jid: from,
                session: route.session,
                priority,
            };
            self.run_hooks(&mut ev).await;
        }
    }
}

struct RouterSender(Weak<Router>);

#[async_trait::async_trait]
impl StanzaSender for RouterSender {
    async fn send(&self, stanza: Stanza) {
        if let Some(router) = self.0.upgrade() {
            router.route(stanza).await;
        }
    }

    async fn to_session(&self, session: SessionId, stanza: Stanza) -> bool {
        let Some(mb) = self.0.upgrade().and_then(|r| r.mailbox(session)) else {
            return false;
        };
        mb.try_send(Outbound::Stanza(Box::new(stanza))).is_ok()
    }

    async fn to_route(&self, route: &Route, stanza: Stanza) -> bool {
        let Some(router) = self.0.upgrade() else {
            return false;
        };
        if route.node != router.node {
            // The other node checks the session still holds `route.jid` and runs its hooks.
            return router.to_remote_session(route, &stanza).await.is_ok();
        }
        let holds_jid = router
            .mailboxes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&route.session)
            .is_some_and(|s| s.jid == route.jid);
        holds_jid
            && router
                .to_local_session(&route.jid, route.session, stanza)
                .await
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalRegistry;

    #[test]
    fn nodes_started_together_hand_out_different_session_ids() {
        // Ids are compared across nodes (docs/cluster.md, "Session ids"): two routers created
        // in the same millisecond, as a cluster's nodes often are, must not share any.
        let registry: Arc<dyn SessionRegistry> = Arc::new(LocalRegistry::new());
        let one = Router::new(NodeId(1), registry.clone(), 10);
        let three = Router::new(NodeId(3), registry, 10);
        let ids: HashSet<SessionId> = (0..1000)
            .flat_map(|_| [one.new_session_id(), three.new_session_id()])
            .collect();
        assert_eq!(ids.len(), 2000);
    }
}
