//! RFC 6121 §2–§4: the roster, presence subscriptions and presence, with XEP-0237 roster
//! versioning.
//!
//! # Layout
//! - `subscription.rs`: the pure subscription state machine of RFC 6121 Appendix A (a roster
//!   item's state plus one subscription stanza in, the new state and what to do out).
//! - `payload.rs`: the `jabber:iq:roster` payload, pure: checking roster sets, building results
//!   and pushes, the limits.
//! - `store.rs`: the stored items, roster version and unanswered subscription requests, and the
//!   read API other modules use ([`load_item`], [`load_roster`], [`RosterItem`]).
//! - `sessions.rs`: per-session memory (interested resource, last presence, directed presence).
//! - `iq.rs`: roster get and set (§2).
//! - `subscribe.rs`: outbound and inbound subscription stanzas (§3), driving `subscription.rs`.
//! - `presence.rs`: broadcast, probes, directed presence, unavailable on session end (§4).
//! - this file: the module, its registrations, and the helpers the three drivers share.
//!
//! ```text
//!  client ─ iq jabber:iq:roster ─────────────▶ iq.rs ─┬─ store.rs
//!  client ─ presence subscribe… (client-stanza) ▶ subscribe.rs ─ outbound() ─┤   └ pushes to
//!  router ─ presence subscribe… (local-inbound) ▶ subscribe.rs ─ inbound()  ─┤     interested
//!  client ─ presence (client-stanza) ─────────▶ presence.rs ── broadcast / directed
//!  router ─ presence probe (local-inbound) ───▶ presence.rs ── answer from sessions.rs
//!  resource-bound / -available / session-closed ▶ sessions.rs, pending requests, unavailable
//! ```
//!
//! Store writes for one user run under that user's lock (one of [`LOCK_STRIPES`] striped
//! mutexes); no lock is held while stanzas are sent, because sending to a local contact runs
//! that contact's hooks, which take the contact's lock.

mod iq;
pub mod payload;
mod presence;
pub use presence::announce_unavailable;
mod sessions;
pub mod store;
mod subscribe;
pub mod subscription;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use corvid_core::{Event, Flow, Hook, IqTarget, Module, Registrar, Services, SessionId, Spec};
use corvid_jid::{BareJid, FullJid, Jid};
use corvid_stanza::{ns, IqType, Kind, PresenceType, Stanza};
use corvid_xml::Element;
use tokio::sync::Mutex;
use tracing::warn;

pub use store::{load_item, load_roster, RosterItem};
pub use subscription::{SubState, Subscription};

use payload::{NS_ROSTER, NS_ROSTERVER};
use sessions::Sessions;
use subscription::{Inbound, Outbound};

/// How many mutexes serialize roster writes (users hash onto them).
pub const LOCK_STRIPES: usize = 64;

/// The module.
#[derive(Default)]
pub struct Roster {
    inner: Arc<Inner>,
}

/// The module's state, shared by its IQ handler and hooks.
struct Inner {
    sessions: Sessions,
    locks: Vec<Mutex<()>>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            sessions: Sessions::default(),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl Module for Roster {
    fn name(&self) -> &'static str {
        "roster"
    }
    fn specs(&self) -> &'static [Spec] {
        &[
            Spec {
                id: "RFC 6121",
                version: "1.0",
                status: "partial",
            },
            Spec {
                id: "XEP-0237",
                version: "1.3",
                status: "partial",
            },
        ]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        let handler = Arc::new(iq::RosterIq(self.inner.clone()));
        r.iq(
            IqTarget::Account,
            false,
            "query",
            NS_ROSTER,
            handler.clone(),
        );
        r.iq(IqTarget::Account, true, "query", NS_ROSTER, handler);
        r.feature(NS_ROSTER);
        r.stream_feature(Element::new("ver", NS_ROSTERVER));
        let hooks: Arc<dyn Hook> = Arc::new(Hooks(self.inner.clone()));
        for event in [
            "client-stanza",
            "local-inbound",
            "deliver",
            "resource-bound",
            "resource-available",
            "session-closed",
        ] {
            r.hook(event, 0, hooks.clone());
        }
    }
}

/// The module's listener for every event it hooks.
struct Hooks(Arc<Inner>);

#[async_trait]
impl Hook for Hooks {
    /// Stanzas concern the roster only when they are presence (subscriptions, probes,
    /// broadcasts) or, on delivery, IQs (held-back roster pushes): a chat message runs none of
    /// its listeners.
    fn wants(&self, event: &Event<'_>) -> bool {
        match event {
            Event::ClientStanza { stanza, .. } | Event::LocalInbound { stanza, .. } => {
                stanza.kind() == Kind::Presence
            }
            Event::Deliver { stanza, .. } => stanza.kind() != Kind::Message,
            _ => true,
        }
    }

    async fn on_with(&self, services: &Services, event: &mut Event<'_>) -> Flow {
        let inner = &self.0;
        match event {
            Event::ClientStanza { session, stanza } => {
                inner.client_stanza(services, *session, stanza).await
            }
            Event::LocalInbound { account, stanza } => {
                inner.local_inbound(services, account, stanza).await
            }
            Event::Deliver {
                jid,
                session,
                stanza,
            } if stanza.presence_type() == Some(PresenceType::Probe) => {
                inner.forwarded_probe(services, jid, *session, stanza).await;
                Flow::Stop
            }
            Event::Deliver {
                jid,
                session,
                stanza,
            } if inner.unwanted_push(jid, *session, stanza) => Flow::Stop,
            Event::Deliver {
                session, stanza, ..
            } => inner.deliver(services, *session, stanza).await,
            Event::ResourceBound { session, .. } => {
                inner.sessions.bound(*session);
                Flow::Continue
            }
            Event::ResourceAvailable { jid, session, .. } => {
                inner.resource_available(services, jid, *session).await;
                Flow::Continue
            }
            Event::SessionClosed {
                jid,
                session,
                announced,
            } => {
                inner
                    .session_closed(services, jid, *session, *announced)
                    .await;
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }
}

impl Inner {
    /// The write lock of `owner`'s roster.
    fn lock(&self, owner: &BareJid) -> &Mutex<()> {
        let mut h = DefaultHasher::new();
        owner.hash(&mut h);
        // The modulo keeps the index in range whatever the hash.
        let i = (h.finish() % self.locks.len() as u64) as usize;
        &self.locks[i]
    }

    async fn client_stanza(&self, services: &Services, session: SessionId, st: &Stanza) -> Flow {
        if st.kind() != Kind::Presence {
            return Flow::Continue;
        }
        let Some(Jid::Full(from)) = st.from() else {
            return Flow::Continue;
        };
        let from = from.clone();
        let ev = match st.presence_type() {
            Some(PresenceType::Subscribe) => Outbound::Subscribe,
            Some(PresenceType::Subscribed) => Outbound::Subscribed,
            Some(PresenceType::Unsubscribe) => Outbound::Unsubscribe,
            Some(PresenceType::Unsubscribed) => Outbound::Unsubscribed,
            Some(PresenceType::Available | PresenceType::Unavailable) => {
                if st.to().is_none() {
                    self.broadcast(services, session, &from, st).await;
                } else {
                    self.directed(services, session, &from, st).await;
                }
                return Flow::Continue;
            }
            _ => return Flow::Continue,
        };
        if st.to().is_none() {
            // A subscription stanza needs a contact; without one there is nothing to do.
            return Flow::Stop;
        }
        self.outbound(services, &from, st, ev).await;
        Flow::Stop
    }

    async fn local_inbound(&self, services: &Services, account: &BareJid, st: &mut Stanza) -> Flow {
        if st.kind() != Kind::Presence {
            return Flow::Continue;
        }
        let ev = match st.presence_type() {
            Some(PresenceType::Subscribe) => Inbound::Subscribe,
            Some(PresenceType::Subscribed) => Inbound::Subscribed,
            Some(PresenceType::Unsubscribe) => Inbound::Unsubscribe,
            Some(PresenceType::Unsubscribed) => Inbound::Unsubscribed,
            Some(PresenceType::Probe) => return self.probe(services, account, st).await,
            _ => return Flow::Continue,
        };
        self.inbound(services, account, st, ev).await
    }

    /// Releases roster pushes held back until the IQ result that caused them is delivered, so
    /// the initiating resource sees its result first (RFC 6121 §2.3.2 example order).
    async fn deliver(&self, services: &Services, session: SessionId, st: &Stanza) -> Flow {
        if !matches!(st.iq_type(), Some(IqType::Result | IqType::Error)) {
            return Flow::Continue;
        }
        let Some(id) = st.id() else {
            return Flow::Continue;
        };
        let Some(pushes) = self.sessions.take_deferred(session, id) else {
            return Flow::Continue;
        };
        services.sender.to_session(session, st.clone()).await;
        for p in pushes {
            services.sender.to_session(session, p).await;
        }
        Flow::Stop
    }

    /// Whether `account` exists: it has a session, or storage knows it.
    async fn account_exists(&self, services: &Services, account: &BareJid) -> bool {
        if !services.registry.resources(account).is_empty() {
            return true;
        }
        match services.account_exists(account).await {
            Ok(e) => e,
            Err(e) => {
                warn!(what = "roster-store-error", op = "account-exists", error = %e);
                false
            }
        }
    }

    /// Sends a roster push of `item` (version `ver`) to each of `owner`'s interested
    /// resources (RFC 6121 §2.1.6), on any node of a cluster. The push for `initiator`'s session waits for the result of
    /// its IQ (see [`Inner::deliver`]).
    async fn push(
        &self,
        services: &Services,
        owner: &BareJid,
        item: Element,
        ver: &str,
        initiator: Option<(SessionId, &str)>,
    ) {
        for route in services.registry.resources(owner) {
            let id = corvid_core::random_id(9);
            let push = payload::push(owner, &route.jid, &id, ver, item.clone());
            match initiator {
                Some((session, iq_id)) if session == route.session => {
                    // The initiator's session is on this node (it sent the IQ here).
                    if self.sessions.is_interested(session) {
                        self.sessions.defer(session, iq_id, vec![push]);
                    }
                }
                // Whether a session asked for the roster is known only on its own node, so
                // the push goes to every bound resource, wherever it is, and that node's
                // `deliver` hook drops it for a session that did not (see
                // [`Inner::unwanted_push`]). A resource gone meanwhile is owed nothing.
                _ => {
                    if !services.sender.to_route(&route, push).await {
                        tracing::debug!(what = "roster-push-undelivered", session = %route.session);
                    }
                }
            }
        }
    }

    /// True for a roster push (RFC 6121 §2.1.6: an IQ set of `jabber:iq:roster` from the
    /// account's bare JID; clients' stanzas always carry a full JID) arriving for a local
    /// session of that account that never requested the roster: it is not an interested
    /// resource (§2.2) and gets no pushes.
    fn unwanted_push(&self, jid: &FullJid, session: SessionId, st: &Stanza) -> bool {
        st.kind() == Kind::Iq
            && st.iq_type() == Some(IqType::Set)
            && st.element().child("query", NS_ROSTER).is_some()
            && st.element().attr("from") == Some(jid.bare().to_string().as_str())
            && !self.sessions.is_interested(session)
    }

    /// The routes of `owner`'s available resources, on any node.
    fn available_routes(services: &Services, owner: &BareJid) -> Vec<corvid_core::Route> {
        let mut routes = services.registry.resources(owner);
        routes.retain(|r| r.available);
        routes
    }
}

/// A presence stanza: `el` (a presence) with these addresses.
fn addressed(el: &Element, from: Jid, to: Jid) -> Stanza {
    let mut st = Stanza::from_trusted(Kind::Presence, el.clone());
    st.set_from(from);
    st.set_to(Some(to));
    st
}

/// A presence stanza of `ty` (None: available) with no content.
fn bare_presence(ty: Option<&str>, from: Jid, to: Jid) -> Stanza {
    let mut el = Element::new("presence", ns::CLIENT);
    if let Some(ty) = ty {
        el.set_attr("type", ty);
    }
    addressed(&el, from, to)
}
