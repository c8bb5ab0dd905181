//! XEP-0191 blocking command: a user's list of blocked JIDs, its IQs and pushes, and the
//! enforcement of the block in both directions.
//!
//! # Layout
//! - [`Blocklist`]: the pure part, a set of normalized JIDs and the matching rules of
//!   XEP-0191 §4 (full JID, bare JID, `domain/resource`, domain and its subdomains).
//! - [`Blocking`]: the module. Blocklists live in the map store `blocklist` (one key per blocked
//!   JID) and are cached in memory per user, loaded on first use and replaced on every change, so
//!   the check every stanza goes through is a hash lookup.
//!
//! ```text
//!  client ─iq get/set─▶ Handler ──store──▶ map "blocklist"
//!                          ├─ cache (per user)
//!                          ├─ §3.3 unavailable / §3.4 current presence to the contact
//!                          └─ pushes to the user's resources that asked for the list
//!
//!  client-stanza ─▶ to a JID the user blocked?            → <not-acceptable/><blocked/> (§3.3)
//!  local-inbound ─▶ from a JID the recipient blocked?     → drop / service-unavailable (§3.3)
//!                ─▶ presence from a user who blocked the recipient? → drop (§3.3, appear offline)
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use corvid_core::{
    random_id, Event, Flow, Hook, IqHandler, IqOutcome, IqTarget, Module, Registrar, Services,
    SessionId, Spec,
};
use corvid_jid::{BareJid, Jid};
use corvid_stanza::{ns, Condition, ErrorType, IqType, Kind, PresenceType, Stanza, StanzaError};
use corvid_storage::StoreError;
use corvid_xml::Element;
use tracing::warn;

use crate::roster::subscription::Subscription;

/// The blocking namespace (XEP-0191 §9.1).
pub const NS: &str = "urn:xmpp:blocking";
/// The namespace of the `<blocked/>` application error (XEP-0191 §9.1).
pub const NS_ERRORS: &str = "urn:xmpp:blocking:errors";
/// Most JIDs one user may block; more is `resource-constraint`.
pub const MAX_ITEMS: usize = 1000;

/// The map store holding blocklists: key = blocked JID, value empty.
const STORE: &str = "blocklist";
/// Most users whose blocklists are cached; beyond it the cache is trimmed (the store stays the
/// source of truth, so trimming only costs a reload).
const MAX_CACHED_USERS: usize = 50_000;

/// A user's blocked JIDs, normalized (each is a parsed [`Jid`] written back as a string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocklist {
    items: BTreeSet<String>,
}

impl Blocklist {
    /// A blocklist holding these JIDs.
    pub fn from_jids<'a>(jids: impl IntoIterator<Item = &'a Jid>) -> Self {
        Self {
            items: jids.into_iter().map(Jid::to_string).collect(),
        }
    }

    /// Number of blocked JIDs.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if nothing is blocked.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True if exactly this JID is on the list.
    pub fn contains(&self, jid: &Jid) -> bool {
        self.items.contains(&jid.to_string())
    }

    /// Adds a JID; false if it was there already.
    pub fn insert(&mut self, jid: &Jid) -> bool {
        self.items.insert(jid.to_string())
    }

    /// Removes a JID; false if it was not there.
    pub fn remove(&mut self, jid: &Jid) -> bool {
        self.items.remove(&jid.to_string())
    }

    /// The blocked JIDs, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(String::as_str)
    }

    /// Whether a stanza from (or to) `jid` is blocked, by the matching order of XEP-0191 §4
    /// (taken from XEP-0016): `user@domain/resource`, `user@domain`, `domain/resource`, then
    /// `domain`, which also matches every address at a subdomain of it.
    pub fn blocks(&self, jid: &Jid) -> bool {
        if self.items.is_empty() {
            return false;
        }
        let domain = jid.domain().as_str();
        if let Some(resource) = jid.resource() {
            if self.items.contains(&jid.to_string())
                || self
                    .items
                    .contains(&format!("{domain}/{}", resource.as_str()))
            {
                return true;
            }
        }
        if jid.node().is_some() && self.items.contains(&jid.bare().to_string()) {
            return true;
        }
        if self.items.contains(domain) {
            return true;
        }
        // An IP literal has no parent domains.
        if domain.starts_with('[') || domain.parse::<IpAddr>().is_ok() {
            return false;
        }
        let mut rest = domain;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if !rest.is_empty() && self.items.contains(rest) {
                return true;
            }
        }
        false
    }
}

/// The module.
#[derive(Default)]
pub struct Blocking {
    cache: Mutex<Cache>,
    /// Serializes changes to blocklists: they are rare, and one at a time keeps the store and
    /// the cache in step.
    writes: tokio::sync::Mutex<()>,
    /// Sessions that asked for the blocklist and so get pushes (§3.3).
    requested: Mutex<HashSet<SessionId>>,
    /// The latest available presence each session broadcast, re-sent to a contact on unblock
    /// (§3.4 "the user's current presence").
    presence: Mutex<HashMap<SessionId, Element>>,
}

#[derive(Default)]
struct Cache {
    lists: HashMap<BareJid, Arc<Blocklist>>,
    /// Bumped on every change; a load that raced a change does not overwrite it.
    epoch: u64,
}

impl Module for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }
    fn specs(&self) -> &'static [Spec] {
        &[Spec {
            id: "XEP-0191",
            version: "1.3",
            status: "complete",
        }]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        r.iq(IqTarget::Account, false, "blocklist", NS, self.clone());
        r.iq(IqTarget::Account, true, "block", NS, self.clone());
        r.iq(IqTarget::Account, true, "unblock", NS, self.clone());
        r.feature(NS);
        // Above ordinary listeners: a blocked stanza must not reach archiving or delivery.
        r.hook("client-stanza", 100, self.clone());
        r.hook("local-inbound", 100, self.clone());
        r.hook("session-closed", 0, self);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Blocking {
    /// The blocklist of `user`, from the cache or loaded from the store.
    async fn list(
        &self,
        services: &Services,
        user: &BareJid,
    ) -> Result<Arc<Blocklist>, StoreError> {
        let epoch = {
            let cache = lock(&self.cache);
            if let Some(list) = cache.lists.get(user) {
                return Ok(list.clone());
            }
            cache.epoch
        };
        let rows = services.store.map(STORE).all(user).await?;
        let mut list = Blocklist::default();
        for (key, _) in rows {
            match key.parse::<Jid>() {
                Ok(jid) => {
                    list.insert(&jid);
                }
                Err(e) => warn!(what = "blocklist-bad-key", user = %user, key, error = %e),
            }
        }
        let list = Arc::new(list);
        let mut cache = lock(&self.cache);
        if let Some(current) = cache.lists.get(user) {
            return Ok(current.clone());
        }
        if cache.epoch == epoch {
            if cache.lists.len() >= MAX_CACHED_USERS {
                cache.lists.retain(|_, l| !l.is_empty());
                if cache.lists.len() >= MAX_CACHED_USERS {
                    cache.lists.clear();
                }
                cache.epoch += 1;
            }
            cache.lists.insert(user.clone(), list.clone());
        }
        Ok(list)
    }

    /// The blocklist of `user` for a check on a stanza: a store failure lets the stanza through
    /// (logged), since dropping every stanza of a user during an outage is worse.
    async fn list_for_check(&self, services: &Services, user: &BareJid) -> Arc<Blocklist> {
        match self.list(services, user).await {
            Ok(l) => l,
            Err(e) => {
                warn!(what = "blocklist-load-failed", user = %user, error = %e);
                Arc::new(Blocklist::default())
            }
        }
    }

    fn replace(&self, user: &BareJid, list: Blocklist) {
        let mut cache = lock(&self.cache);
        cache.lists.insert(user.clone(), Arc::new(list));
        cache.epoch += 1;
    }

    /// §3.2: the list, and the session is remembered for pushes.
    async fn get(&self, services: &Services, iq: &Stanza, user: &BareJid) -> IqOutcome {
        if let Some(Jid::Full(from)) = iq.from() {
            if let Some(route) = services.registry.lookup(from) {
                lock(&self.requested).insert(route.session);
            }
        }
        let list = self.list(services, user).await.map_err(store_error)?;
        let mut out = Element::new("blocklist", NS);
        for jid in list.iter() {
            out.push(Element::new("item", NS).with_attr("jid", jid));
        }
        Ok(Some(out))
    }

    /// §3.3: block the items (at least one).
    async fn block(&self, services: &Services, user: &BareJid, payload: &Element) -> IqOutcome {
        let jids = parse_items(payload)?;
        if jids.is_empty() {
            return Err(StanzaError::new(Condition::BadRequest)
                .with_text("a <block/> needs at least one <item/>"));
        }
        let _write = self.writes.lock().await;
        let current = self.list(services, user).await.map_err(store_error)?;
        let mut next = (*current).clone();
        let added: Vec<Jid> = jids.iter().filter(|j| next.insert(j)).cloned().collect();
        if next.len() > MAX_ITEMS {
            return Err(StanzaError::new(Condition::ResourceConstraint)
                .with_text(format!("at most {MAX_ITEMS} JIDs can be blocked")));
        }
        let map = services.store.map(STORE);
        for jid in &added {
            map.set(user, &jid.to_string(), &[])
                .await
                .map_err(store_error)?;
        }
        // §3.3: unavailable presence goes out while the contact is not yet blocked, or the
        // outbound presence check below would swallow it.
        self.presence_to(services, user, &added, false).await;
        self.replace(user, next);
        self.push(services, user, Element::new("block", NS), &jids)
            .await;
        Ok(None)
    }

    /// §3.4 / §3.5: unblock the items, or everything if there are none.
    async fn unblock(&self, services: &Services, user: &BareJid, payload: &Element) -> IqOutcome {
        let jids = parse_items(payload)?;
        let _write = self.writes.lock().await;
        let current = self.list(services, user).await.map_err(store_error)?;
        let mut next = (*current).clone();
        let map = services.store.map(STORE);
        let removed: Vec<Jid> = if jids.is_empty() {
            map.clear(user).await.map_err(store_error)?;
            let all = current.iter().filter_map(|s| s.parse().ok()).collect();
            next = Blocklist::default();
            all
        } else {
            let removed: Vec<Jid> = jids.iter().filter(|j| next.remove(j)).cloned().collect();
            for jid in &removed {
                map.delete(user, &jid.to_string())
                    .await
                    .map_err(store_error)?;
            }
            removed
        };
        self.replace(user, next);
        // §3.4: the current presence, now that it is no longer suppressed.
        self.presence_to(services, user, &removed, true).await;
        self.push(services, user, Element::new("unblock", NS), &jids)
            .await;
        Ok(None)
    }

    /// Sends the user's presence (unavailable, or the current one if `available`) from each of
    /// the user's available resources to each contact allowed to see it (§3.3, §3.4: "only if
    /// the contact is allowed to receive presence notifications from the user").
    async fn presence_to(
        &self,
        services: &Services,
        user: &BareJid,
        contacts: &[Jid],
        available: bool,
    ) {
        let routes: Vec<_> = services
            .registry
            .resources(user)
            .into_iter()
            .filter(|r| r.available)
            .collect();
        if routes.is_empty() {
            return;
        }
        for contact in contacts {
            if contact.node().is_none() || contact.bare() == user {
                continue;
            }
            if !presence_allowed(services, user, contact.bare()).await {
                continue;
            }
            for route in &routes {
                let mut el = if available {
                    lock(&self.presence)
                        .get(&route.session)
                        .cloned()
                        .unwrap_or_else(|| Element::new("presence", ns::CLIENT))
                } else {
                    Element::new("presence", ns::CLIENT).with_attr("type", "unavailable")
                };
                el.set_attr("from", route.jid.to_string());
                el.set_attr("to", contact.to_string());
                el.remove_attr("id");
                services
                    .sender
                    .send(Stanza::from_trusted(Kind::Presence, el))
                    .await;
            }
        }
    }

    /// §3.3 / §3.4: an IQ set with the changed items to every resource of the user that asked
    /// for the blocklist.
    async fn push(&self, services: &Services, user: &BareJid, mut payload: Element, jids: &[Jid]) {
        for jid in jids {
            payload.push(Element::new("item", NS).with_attr("jid", jid.to_string()));
        }
        let targets: Vec<_> = {
            let requested = lock(&self.requested);
            services
                .registry
                .resources(user)
                .into_iter()
                .filter(|r| requested.contains(&r.session))
                .collect()
        };
        for route in targets {
            let el = Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("block-push-{}", random_id(9)))
                .with_attr("to", route.jid.to_string())
                .with_child(payload.clone());
            services
                .sender
                .send(Stanza::from_trusted(Kind::Iq, el))
                .await;
        }
    }

    /// `client-stanza`: remembers broadcast presence; refuses stanzas to blocked JIDs (§3.3).
    async fn outbound(&self, services: &Services, session: SessionId, stanza: &Stanza) -> Flow {
        let Some(from) = stanza.from() else {
            return Flow::Continue;
        };
        let Some(to) = stanza.to() else {
            if stanza.kind() == Kind::Presence {
                self.track_presence(session, stanza);
            }
            return Flow::Continue;
        };
        let user = from.bare();
        if exempt(services, user, to) {
            return Flow::Continue;
        }
        if !self.list_for_check(services, user).await.blocks(to) {
            return Flow::Continue;
        }
        // §3.3: not routed; not-acceptable with <blocked/>, unless it is itself an error.
        // The example of §3.3 has type 'cancel': retrying will not help while the block holds.
        let mut err = StanzaError::new(Condition::NotAcceptable);
        err.ty = ErrorType::Cancel;
        if let Some(reply) = stanza.error_reply(&err) {
            let mut el = reply.into_element();
            if let Some(err) = el.child_mut("error", ns::CLIENT) {
                err.push(Element::new("blocked", NS_ERRORS));
            }
            let reply = Stanza::from_trusted(stanza.kind(), el);
            if !services.sender.to_session(session, reply).await {
                warn!(what = "blocked-error-undelivered", session = %session);
            }
        }
        Flow::Stop
    }

    fn track_presence(&self, session: SessionId, stanza: &Stanza) {
        match stanza.presence_type() {
            Some(PresenceType::Available) => {
                lock(&self.presence).insert(session, stanza.element().clone());
            }
            Some(PresenceType::Unavailable) => {
                lock(&self.presence).remove(&session);
            }
            _ => {}
        }
    }

    /// `local-inbound`: stanzas from a JID the recipient blocked (§3.3), and presence from a
    /// local user who blocked the recipient (so the user appears offline to the contact).
    async fn inbound(&self, services: &Services, account: &BareJid, stanza: &Stanza) -> Flow {
        let Some(from) = stanza.from() else {
            return Flow::Continue;
        };
        if exempt(services, account, from) {
            return Flow::Continue;
        }
        if self.list_for_check(services, account).await.blocks(from) {
            let answer = match stanza.kind() {
                // §3.3: presence (notifications, subscriptions, probes): no answer at all.
                Kind::Presence => false,
                // §3.3: messages SHOULD get service-unavailable (never an error to an error).
                Kind::Message => !stanza.is_error(),
                // §3.3: IQ get/set MUST get an error; other IQs are dropped.
                Kind::Iq => matches!(stanza.iq_type(), Some(IqType::Get | IqType::Set)),
            };
            if answer {
                if let Some(reply) =
                    stanza.error_reply(&StanzaError::new(Condition::ServiceUnavailable))
                {
                    services.sender.send(reply).await;
                }
            }
            return Flow::Stop;
        }
        // Presence the server sends on the user's behalf (broadcasts) to a contact the user
        // blocked: the contact must see the user offline. Errors are replies and pass.
        if stanza.kind() == Kind::Presence
            && !stanza.is_error()
            && from.node().is_some()
            && services.is_local(from.domain())
        {
            if let Some(to) = stanza.to() {
                if self.list_for_check(services, from.bare()).await.blocks(to) {
                    return Flow::Stop;
                }
            }
        }
        Flow::Continue
    }
}

#[async_trait]
impl IqHandler for Blocking {
    async fn handle(&self, services: &Services, iq: &Stanza) -> IqOutcome {
        let (Some(from), Some(payload)) = (iq.from(), iq.iq_payload()) else {
            return Err(StanzaError::new(Condition::BadRequest));
        };
        let user = from.bare().clone();
        // Only one's own blocklist exists; for another account the namespace is not served.
        if iq.to().is_some_and(|to| to.bare() != &user) {
            return Err(StanzaError::new(Condition::ServiceUnavailable));
        }
        match (iq.iq_type(), payload.name.as_str()) {
            (Some(IqType::Get), "blocklist") => self.get(services, iq, &user).await,
            (Some(IqType::Set), "block") => self.block(services, &user, payload).await,
            (Some(IqType::Set), "unblock") => self.unblock(services, &user, payload).await,
            _ => Err(StanzaError::new(Condition::BadRequest)),
        }
    }
}

impl Blocking {
    /// True when `user`'s blocklist is cached and empty: nothing of theirs needs checking.
    fn known_empty(&self, user: &BareJid) -> bool {
        lock(&self.cache)
            .lists
            .get(user)
            .is_some_and(|l| l.is_empty())
    }
}

#[async_trait]
impl Hook for Blocking {
    /// Most users block nobody: a message or IQ between them is passed over without the
    /// listener's future once their (empty) lists are cached. Presence always runs (it is
    /// tracked for unblocking, and broadcasts check the sender's list).
    fn wants(&self, event: &Event<'_>) -> bool {
        match event {
            Event::ClientStanza { stanza, .. } => match (stanza.from(), stanza.to()) {
                _ if stanza.kind() == Kind::Presence => true,
                (Some(from), Some(_)) => !self.known_empty(from.bare()),
                _ => false,
            },
            Event::LocalInbound { account, stanza } => {
                stanza.kind() == Kind::Presence || !self.known_empty(account)
            }
            _ => true,
        }
    }

    async fn on_with(&self, services: &Services, event: &mut Event<'_>) -> Flow {
        match event {
            Event::ClientStanza { session, stanza } => {
                self.outbound(services, *session, stanza).await
            }
            Event::LocalInbound { account, stanza } => {
                self.inbound(services, account, stanza).await
            }
            Event::SessionClosed { session, .. } => {
                lock(&self.requested).remove(session);
                lock(&self.presence).remove(session);
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }
}

/// True for addresses blocking never applies to: the user's own account and the server itself.
fn exempt(services: &Services, user: &BareJid, other: &Jid) -> bool {
    other.bare() == user
        || (other.node().is_none()
            && other.resource().is_none()
            && services.is_local(other.domain()))
}

/// The JIDs of the `<item/>` children (XEP-0191 §3.3: `jid` is required).
fn parse_items(payload: &Element) -> Result<Vec<Jid>, StanzaError> {
    let mut out = Vec::new();
    for item in payload.child_elements().filter(|e| e.is("item", NS)) {
        if out.len() >= MAX_ITEMS {
            return Err(StanzaError::new(Condition::ResourceConstraint)
                .with_text(format!("at most {MAX_ITEMS} items per request")));
        }
        let Some(raw) = item.attr("jid") else {
            return Err(
                StanzaError::new(Condition::BadRequest).with_text("an <item/> needs a 'jid'")
            );
        };
        let jid = raw.parse::<Jid>().map_err(|e| {
            StanzaError::new(Condition::JidMalformed).with_text(format!("bad item jid: {e}"))
        })?;
        out.push(jid);
    }
    Ok(out)
}

fn store_error(e: StoreError) -> StanzaError {
    warn!(what = "blocklist-store-error", error = %e);
    StanzaError::new(Condition::InternalServerError)
}

/// Whether `contact` may receive `user`'s presence: the contact's roster item in the user's
/// roster has a subscription of `from` or `both` (RFC 6121 §4.2.2).
async fn presence_allowed(services: &Services, user: &BareJid, contact: &BareJid) -> bool {
    subscription(services, user, contact).await.includes_from()
}

/// The subscription of `contact` in `user`'s roster; `None` when unknown.
async fn subscription(services: &Services, user: &BareJid, contact: &BareJid) -> Subscription {
    match crate::roster::store::load_item(services, user, contact).await {
        Ok(item) => item.map_or(Subscription::None, |i| i.subscription()),
        Err(e) => {
            // Failing closed: without the roster nobody is known to be allowed.
            warn!(what = "roster-load-failed", user = %user, error = %e);
            Subscription::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        s.parse().unwrap()
    }

    fn list(items: &[&str]) -> Blocklist {
        let jids: Vec<Jid> = items.iter().map(|s| jid(s)).collect();
        Blocklist::from_jids(&jids)
    }

    #[test]
    fn a_full_jid_blocks_only_that_resource() {
        // XEP-0191 §4 rule 1: user@domain/resource (only that resource matches).
        let l = list(&["bob@example.org/phone"]);
        assert!(l.blocks(&jid("bob@example.org/phone")));
        assert!(!l.blocks(&jid("bob@example.org/laptop")));
        assert!(!l.blocks(&jid("bob@example.org")));
    }

    #[test]
    fn a_bare_jid_blocks_every_resource() {
        // §4 rule 2: user@domain (any resource matches).
        let l = list(&["bob@example.org"]);
        assert!(l.blocks(&jid("bob@example.org")));
        assert!(l.blocks(&jid("bob@example.org/anything")));
        assert!(!l.blocks(&jid("eve@example.org")));
        assert!(!l.blocks(&jid("example.org")));
    }

    #[test]
    fn a_domain_resource_blocks_only_that_resource_of_the_domain() {
        // §4 rule 3: domain/resource (only that resource matches).
        let l = list(&["example.org/bot"]);
        assert!(l.blocks(&jid("example.org/bot")));
        assert!(l.blocks(&jid("bob@example.org/bot")));
        assert!(!l.blocks(&jid("example.org/other")));
        assert!(!l.blocks(&jid("example.org")));
    }

    #[test]
    fn a_domain_blocks_itself_its_users_and_its_subdomains() {
        // §4 rule 4: the domain itself, any user@domain, domain/resource, and subdomains.
        let l = list(&["example.org"]);
        for blocked in [
            "example.org",
            "bob@example.org",
            "bob@example.org/phone",
            "example.org/res",
            "muc.example.org",
            "room@muc.example.org/nick",
        ] {
            assert!(l.blocks(&jid(blocked)), "{blocked}");
        }
        for free in [
            "example.com",
            "notexample.org",
            "org",
            "bob@example.org.evil",
        ] {
            assert!(!l.blocks(&jid(free)), "{free}");
        }
    }

    #[test]
    fn jids_are_compared_normalized() {
        // The list holds parsed JIDs: case of the domain does not matter.
        let l = list(&["bob@Example.ORG"]);
        assert!(l.blocks(&jid("bob@example.org/x")));
        assert!(l.contains(&jid("bob@example.org")));
    }

    #[test]
    fn an_empty_list_blocks_nothing_and_insert_remove_report_changes() {
        let mut l = Blocklist::default();
        assert!(!l.blocks(&jid("bob@example.org")));
        assert!(l.insert(&jid("bob@example.org")));
        assert!(!l.insert(&jid("bob@example.org")));
        assert_eq!(l.len(), 1);
        assert!(l.remove(&jid("bob@example.org")));
        assert!(!l.remove(&jid("bob@example.org")));
        assert!(l.is_empty());
    }

    #[test]
    fn items_need_a_valid_jid() {
        // §3.3: item has a required 'jid'; a bad one is jid-malformed (RFC 6120 §8.3.3.8).
        let ok = Element::new("block", NS)
            .with_child(Element::new("item", NS).with_attr("jid", "bob@example.org"));
        assert_eq!(parse_items(&ok).unwrap(), vec![jid("bob@example.org")]);
        let missing = Element::new("block", NS).with_child(Element::new("item", NS));
        assert_eq!(
            parse_items(&missing).unwrap_err().condition,
            Condition::BadRequest
        );
        let bad = Element::new("block", NS)
            .with_child(Element::new("item", NS).with_attr("jid", "@example.org"));
        assert_eq!(
            parse_items(&bad).unwrap_err().condition,
            Condition::JidMalformed
        );
    }
}
