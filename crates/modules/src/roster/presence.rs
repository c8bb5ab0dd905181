//! Presence (RFC 6121 §4): broadcast to subscribers and to the user's own resources, presence
//! of contacts for a new presence session, probes, directed presence, and the unavailable
//! broadcast when a session ends without one.

use corvid_core::{Flow, Services, SessionId};
use corvid_jid::{BareJid, FullJid, Jid};
use corvid_stanza::{PresenceType, Stanza};
use tracing::{debug, warn};

use super::payload::LIMITS;
use super::store::{self, RosterItem};
use super::{addressed, bare_presence, Inner};

/// The contacts of `owner` matching `pred`, as bare JIDs. A store failure is logged and gives
/// none: presence is best effort, the stanza itself is not refused.
async fn contacts(
    services: &Services,
    owner: &BareJid,
    pred: impl Fn(&RosterItem) -> bool,
) -> Vec<BareJid> {
    match store::load_roster(services, owner).await {
        Ok(items) => items
            .iter()
            .filter(|i| pred(i))
            .filter_map(|i| i.jid.parse().ok())
            .collect(),
        Err(e) => {
            warn!(what = "roster-store-error", op = "load-roster", error = %e);
            Vec::new()
        }
    }
}

/// Tells the contacts of `jid` (those subscribed to its presence, RFC 6121 §4.5.2) and the
/// account's other available resources that `jid` went offline, for a session that cannot say
/// so itself: in a cluster, one held by a node that was declared down (this node is its
/// "caretaker"). Presence directed by that session to others is not known here and is not
/// undone.
pub async fn announce_unavailable(services: &Services, jid: &FullJid) {
    let me = Jid::Full(jid.clone());
    let owner = jid.bare();
    let mut to: Vec<Jid> = contacts(services, owner, |i| i.subscription().includes_from())
        .await
        .into_iter()
        .map(Jid::Bare)
        .collect();
    for route in services.registry.resources(owner) {
        if route.available && &route.jid != jid {
            to.push(Jid::Full(route.jid));
        }
    }
    for to in to {
        services
            .sender
            .send(bare_presence(Some("unavailable"), me.clone(), to))
            .await;
    }
}

impl Inner {
    /// Presence without `to` from a client (§4.2.2, §4.4.2, §4.5.2). The router still records
    /// availability and priority afterwards.
    pub(super) async fn broadcast(
        &self,
        services: &Services,
        session: SessionId,
        from: &FullJid,
        st: &Stanza,
    ) {
        let owner = from.bare();
        let available = st.presence_type() == Some(PresenceType::Available);
        let (before, directed) = self
            .sessions
            .set_presence(session, available.then(|| st.element().clone()));
        if !available && before.is_none() {
            // Not in a presence session: nobody heard of this resource, nobody is told.
            // Directed-presence recipients still learn that it is gone (§4.6.2 rule 3).
            for to in directed {
                services
                    .sender
                    .send(addressed(st.element(), Jid::Full(from.clone()), to))
                    .await;
            }
            return;
        }
        let subscribers = contacts(services, owner, |i| i.subscription().includes_from()).await;
        for contact in &subscribers {
            services
                .sender
                .send(addressed(
                    st.element(),
                    Jid::Full(from.clone()),
                    Jid::Bare(contact.clone()),
                ))
                .await;
        }
        for to in directed {
            // §4.6.2 rule 2: the unavailable presence reaches those who got directed presence,
            // unless the broadcast already did.
            if subscribers.iter().any(|c| c == to.bare()) && to.resource().is_none() {
                continue;
            }
            services
                .sender
                .send(addressed(st.element(), Jid::Full(from.clone()), to))
                .await;
        }
        // §4.2.2 / §4.4.2 / §4.5.2: the user's available resources, the sender included.
        let mut own: Vec<FullJid> = services
            .registry
            .resources(owner)
            .into_iter()
            .filter(|r| r.available && r.session != session)
            .map(|r| r.jid)
            .collect();
        own.push(from.clone());
        for to in &own {
            services
                .sender
                .send(addressed(
                    st.element(),
                    Jid::Full(from.clone()),
                    Jid::Full(to.clone()),
                ))
                .await;
        }
        if available && before.is_none() {
            self.new_presence_session(services, session, from).await;
        }
    }

    /// The start of a presence session: the new resource learns the presence of the user's
    /// other resources and of the contacts it is subscribed to (§4.2.2: probes; §4.3.1 allows
    /// a server to skip the probe for its own accounts and answer from what it knows).
    async fn new_presence_session(&self, services: &Services, session: SessionId, from: &FullJid) {
        let owner = from.bare();
        let me = Jid::Full(from.clone());
        for route in services.registry.resources(owner) {
            if route.session == session || !route.available {
                continue;
            }
            // Its last presence is known on its own node, which answers.
            probe_session(services, &route, Jid::Bare(owner.clone()), me.clone()).await;
        }
        for contact in contacts(services, owner, |i| i.subscription().includes_to()).await {
            if services.is_local(contact.domain()) {
                self.answer_probe(services, &contact, &me, None).await;
            } else {
                // §4.3.1: from the user's bare JID to the contact's bare JID.
                services
                    .sender
                    .send(bare_presence(
                        Some("probe"),
                        Jid::Bare(owner.clone()),
                        Jid::Bare(contact),
                    ))
                    .await;
            }
        }
    }

    /// Directed presence from a client (§4.6.2): routed by the router; recipients that are not
    /// subscribers are remembered so they hear when this resource becomes unavailable.
    pub(super) async fn directed(
        &self,
        services: &Services,
        session: SessionId,
        from: &FullJid,
        st: &Stanza,
    ) {
        let Some(to) = st.to() else {
            return;
        };
        if st.presence_type() == Some(PresenceType::Unavailable) {
            self.sessions.remove_directed(session, to);
            return;
        }
        let subscribed = self.sessions.presence(session).is_some()
            && match store::load_item(services, from.bare(), to.bare()).await {
                Ok(item) => item.is_some_and(|i| i.subscription().includes_from()),
                Err(e) => {
                    warn!(what = "roster-store-error", op = "load-item", error = %e);
                    false
                }
            };
        // §4.6.2 rule 1: a subscriber is covered by the broadcasts; rules 2 and 3: remember.
        if !subscribed && !self.sessions.add_directed(session, to, LIMITS.max_directed) {
            debug!(what = "directed-presence-list-full", jid = %from);
        }
    }

    /// A probe for local `owner` (§4.3.2). An authorized prober (a subscription "from" or
    /// "both", or directed presence sent to it) gets the last presence of each available
    /// resource, or unavailable from the bare JID; anyone else gets `unsubscribed` (rule 1).
    pub(super) async fn probe(&self, services: &Services, owner: &BareJid, st: &Stanza) -> Flow {
        let Some(prober) = st.from().cloned() else {
            return Flow::Continue;
        };
        let only = st.to().and_then(|t| t.resource()).cloned();
        let only = only.map(|r| owner.with_resource(r));
        self.answer_probe(services, owner, &prober, only.as_ref())
            .await;
        Flow::Stop
    }

    /// Answers a probe of `owner`'s presence by `prober` (see [`Inner::probe`]); `only` limits
    /// the answer to one resource (a probe to a full JID).
    async fn answer_probe(
        &self,
        services: &Services,
        owner: &BareJid,
        prober: &Jid,
        only: Option<&FullJid>,
    ) {
        let subscribed = self.account_exists(services, owner).await
            && match store::load_item(services, owner, prober.bare()).await {
                Ok(item) => item.is_some_and(|i| i.subscription().includes_from()),
                Err(e) => {
                    warn!(what = "roster-store-error", op = "probe", error = %e);
                    return;
                }
            };
        let routes: Vec<_> = services
            .registry
            .resources(owner)
            .into_iter()
            .filter(|r| r.available && only.is_none_or(|o| *o == r.jid))
            .collect();
        if !subscribed {
            // §4.6.4: directed presence authorizes mere presence of that resource only.
            let mut answered = false;
            for route in &routes {
                if self.sessions.sent_directed_to(route.session, prober) {
                    services
                        .sender
                        .send(bare_presence(
                            None,
                            Jid::Full(route.jid.clone()),
                            prober.clone(),
                        ))
                        .await;
                    answered = true;
                }
            }
            if !answered {
                // Rule 1: from the bare JID, so nothing about resources leaks; the same for
                // an account that does not exist, so probes cannot enumerate accounts.
                services
                    .sender
                    .send(bare_presence(
                        Some("unsubscribed"),
                        Jid::Bare(owner.clone()),
                        Jid::Bare(prober.bare().clone()),
                    ))
                    .await;
            }
            return;
        }
        let mut answered = false;
        for route in routes {
            // The session's own node knows its last presence and answers (see
            // [`Inner::forwarded_probe`]); a full-JID probe keeps its full `to`.
            let to = match only {
                Some(full) => Jid::Full(full.clone()),
                None => Jid::Bare(owner.clone()),
            };
            answered |= probe_session(services, &route, to, prober.clone()).await;
        }
        if !answered {
            // Rule 3.
            services
                .sender
                .send(bare_presence(
                    Some("unavailable"),
                    Jid::Bare(owner.clone()),
                    prober.clone(),
                ))
                .await;
        }
    }

    /// A probe this server forwarded to one of `jid`'s sessions (`session`, on this node) after
    /// checking the prober may see it: answered from the session's last presence (§4.3.2 rule
    /// 4; a probe to the full JID learns only that the resource is available), never delivered
    /// to the client. No answer if the session is no longer available: its unavailable
    /// presence reaches the prober through the broadcast.
    pub(super) async fn forwarded_probe(
        &self,
        services: &Services,
        jid: &FullJid,
        session: SessionId,
        st: &Stanza,
    ) {
        let Some(prober) = st.from().cloned() else {
            return;
        };
        let Some(p) = self.sessions.presence(session) else {
            return;
        };
        let answer = if matches!(st.to(), Some(Jid::Full(_))) {
            bare_presence(None, Jid::Full(jid.clone()), prober)
        } else {
            addressed(&p, Jid::Full(jid.clone()), prober)
        };
        services.sender.send(answer).await;
    }

    /// A resource became available (§3.1.3 rule 4): the subscription requests still waiting
    /// for the user's answer are delivered to it.
    pub(super) async fn resource_available(
        &self,
        services: &Services,
        jid: &FullJid,
        session: SessionId,
    ) {
        let requests = match store::load_requests(services, jid.bare()).await {
            Ok(r) => r,
            Err(e) => {
                warn!(what = "roster-store-error", op = "load-requests", error = %e);
                return;
            }
        };
        for el in requests {
            let st = Stanza::from_trusted(corvid_stanza::Kind::Presence, el);
            services.sender.to_session(session, st).await;
        }
    }

    /// A session ended (§4.5.1): if it was available and did not say goodbye, its contacts,
    /// directed-presence recipients and the user's other resources get unavailable presence;
    /// exactly once, because the session's state is taken here.
    pub(super) async fn session_closed(
        &self,
        services: &Services,
        jid: &FullJid,
        session: SessionId,
        announced: bool,
    ) {
        let Some(state) = self.sessions.closed(session) else {
            return;
        };
        let me = Jid::Full(jid.clone());
        let owner = jid.bare();
        let mut told: Vec<Jid> = Vec::new();
        if state.presence.is_some() {
            for contact in contacts(services, owner, |i| i.subscription().includes_from()).await {
                told.push(Jid::Bare(contact));
            }
            for route in services.registry.resources(owner) {
                if route.available && route.session != session {
                    told.push(Jid::Full(route.jid));
                }
            }
        }
        // A session the cluster dropped with its node: a caretaker has told the contacts
        // (exactly once); only presence it directed elsewhere is left to undo.
        let mut sent: Vec<Jid> = if announced { Vec::new() } else { told.clone() };
        for to in state.directed {
            let contact = told.contains(&Jid::Bare(to.bare().clone()));
            if !sent.contains(&to) && !(announced && (told.contains(&to) || contact)) {
                sent.push(to);
            }
        }
        for to in sent {
            services
                .sender
                .send(bare_presence(Some("unavailable"), me.clone(), to))
                .await;
        }
    }
}

/// Asks the node holding `route`'s session to send its last presence to `prober`: a probe
/// (`to` the owner's bare JID for the whole presence, the full JID for availability only)
/// delivered to that session, whose node answers it ([`Inner::forwarded_probe`]). Last
/// presence lives in the memory of the session's node; forwarding the probe there costs one
/// hop per remote resource and keeps presence payloads out of the replicated session table.
/// False if the session is gone or its node unreachable.
pub(super) async fn probe_session(
    services: &Services,
    route: &corvid_core::Route,
    to: Jid,
    prober: Jid,
) -> bool {
    let probe = bare_presence(Some("probe"), prober, to);
    services.sender.to_route(route, probe).await
}
