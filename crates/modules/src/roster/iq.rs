//! Roster get and set (RFC 6121 §2.2–§2.6).

use std::sync::Arc;

use async_trait::async_trait;
use corvid_core::{IqHandler, IqOutcome, Services};
use corvid_jid::{BareJid, Jid};
use corvid_stanza::{Condition, IqType, Stanza, StanzaError};
use corvid_storage::StoreError;
use tracing::warn;

use super::payload::{self, SetRequest, LIMITS};
use super::store::{self, RosterItem};
use super::Inner;

/// The `jabber:iq:roster` handler.
pub(super) struct RosterIq(pub(super) Arc<Inner>);

fn internal(op: &str, e: &StoreError) -> StanzaError {
    warn!(what = "roster-store-error", op, error = %e);
    StanzaError::new(Condition::InternalServerError)
}

#[async_trait]
impl IqHandler for RosterIq {
    /// A roster get with an out-of-date `ver` whose changes are known is answered the XEP-0237
    /// way (§4 "roster pushes as the diff", RFC 6121 §2.6.3): an empty result, then one push per
    /// changed or removed item, oldest first, the last carrying the current version.
    async fn handle_then(&self, services: &Services, iq: &Stanza) -> (IqOutcome, Vec<Stanza>) {
        let diff = match (iq.iq_type(), iq.from(), iq.iq_payload()) {
            (Some(IqType::Get), Some(Jid::Full(from)), Some(query))
                if iq
                    .to()
                    .is_none_or(|to| to == &Jid::Bare(from.bare().clone()))
                    && query.child_elements().next().is_none() =>
            {
                match query.attr("ver").filter(|v| !v.is_empty()) {
                    Some(ver) => store::changes_since(services, from.bare(), ver)
                        .await
                        .ok()
                        .flatten()
                        .map(|changes| (from.clone(), changes)),
                    None => None,
                }
            }
            _ => None,
        };
        let Some((from, changes)) = diff else {
            return (self.handle(services, iq).await, Vec::new());
        };
        if let Some(route) = services.registry.lookup(&from) {
            // §2.2: the resource is now an interested resource.
            self.0.sessions.set_interested(route.session);
        }
        let owner = from.bare();
        let pushes = changes
            .into_iter()
            .map(|(ver, contact, item)| {
                let el = match &item {
                    Some(item) => payload::item_element(item),
                    None => payload::removed_element(&contact),
                };
                payload::push(owner, &from, &corvid_core::random_id(9), &ver, el)
            })
            .collect();
        (Ok(None), pushes)
    }

    async fn handle(&self, services: &Services, iq: &Stanza) -> IqOutcome {
        let Some(Jid::Full(from)) = iq.from() else {
            return Err(StanzaError::new(Condition::Forbidden));
        };
        let owner = from.bare();
        // §2.1.5 / §2.3.3: only the account itself may read or change its roster.
        if iq
            .to()
            .is_some_and(|to| to.bare() != owner || to.resource().is_some())
        {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let Some(query) = iq.iq_payload() else {
            return Err(StanzaError::new(Condition::BadRequest));
        };
        match iq.iq_type() {
            Some(IqType::Get) => {
                if query.child_elements().next().is_some() {
                    // §2.1.3: a roster get "MUST NOT contain any <item/> child elements".
                    return Err(StanzaError::new(Condition::BadRequest)
                        .with_text("a roster get has no items"));
                }
                if let Some(route) = services.registry.lookup(from) {
                    // §2.2: the resource is now an interested resource.
                    self.0.sessions.set_interested(route.session);
                }
                let ver = store::current_version(services, owner)
                    .await
                    .map_err(|e| internal("version", &e))?;
                // XEP-0237 / §2.6.3: the client's cache is current: an empty result, and
                // changes will come as pushes.
                if query.attr("ver") == Some(ver.as_str()) {
                    return Ok(None);
                }
                let items = store::load_roster(services, owner)
                    .await
                    .map_err(|e| internal("load-roster", &e))?;
                Ok(Some(payload::result_query(&ver, &items)))
            }
            Some(IqType::Set) => {
                let request = payload::parse_set(query, &LIMITS)?;
                let contact = match &request {
                    SetRequest::Update { jid, .. } | SetRequest::Remove { jid } => jid.clone(),
                };
                if contact == *owner {
                    // The user is implicitly subscribed to their own presence (§4.2.2); an
                    // item for oneself would only confuse subscription handling.
                    return Err(StanzaError::new(Condition::NotAllowed)
                        .with_text("the account itself cannot be a roster item"));
                }
                let initiator = services
                    .registry
                    .lookup(from)
                    .map(|r| r.session)
                    .zip(iq.id());
                match request {
                    SetRequest::Update { jid, name, groups } => {
                        let (item, ver) = self.update(services, owner, &jid, name, groups).await?;
                        self.0
                            .push(
                                services,
                                owner,
                                payload::item_element(&item),
                                &ver,
                                initiator,
                            )
                            .await;
                    }
                    SetRequest::Remove { jid } => {
                        self.0.remove(services, owner, &jid, initiator).await?;
                    }
                }
                Ok(None)
            }
            _ => Err(StanzaError::new(Condition::BadRequest)),
        }
    }
}

impl RosterIq {
    /// §2.3 / §2.4: adds or updates the item exactly as given, keeping its subscription state.
    async fn update(
        &self,
        services: &Services,
        owner: &BareJid,
        contact: &BareJid,
        name: Option<String>,
        groups: Vec<String>,
    ) -> Result<(RosterItem, String), StanzaError> {
        let _guard = self.0.lock(owner).lock().await;
        let existing = store::load_item(services, owner, contact)
            .await
            .map_err(|e| internal("load-item", &e))?;
        let mut item = match existing {
            Some(item) => item,
            None => {
                let count = store::count_items(services, owner)
                    .await
                    .map_err(|e| internal("count-items", &e))?;
                if count >= LIMITS.max_items {
                    return Err(StanzaError::new(Condition::ResourceConstraint)
                        .with_text("the roster is full"));
                }
                let mut item = RosterItem::new(contact);
                // A request the contact made while not in the roster stays pending (§3.1.3).
                item.state.pending_in = store::has_request(services, owner, contact)
                    .await
                    .map_err(|e| internal("has-request", &e))?;
                item
            }
        };
        item.name = name;
        item.groups = groups;
        store::save_item(services, owner, &item)
            .await
            .map_err(|e| internal("save-item", &e))?;
        let ver = store::bump_version(services, owner, contact)
            .await
            .map_err(|e| internal("bump-version", &e))?;
        Ok((item, ver))
    }
}

impl Inner {
    /// §2.5: deletes the item, pushes `subscription='remove'`, then cancels the subscriptions
    /// that existed: `unsubscribe` if the user was subscribed to the contact (or asked to be),
    /// `unsubscribed` if the contact was subscribed to the user (or asked to be), both if both
    /// (§2.5.2).
    pub(super) async fn remove(
        &self,
        services: &Services,
        owner: &BareJid,
        contact: &BareJid,
        initiator: Option<(corvid_core::SessionId, &str)>,
    ) -> Result<(), StanzaError> {
        let (state, ver) = {
            let _guard = self.lock(owner).lock().await;
            let Some(item) = store::load_item(services, owner, contact)
                .await
                .map_err(|e| internal("load-item", &e))?
            else {
                // §2.5.3.
                return Err(StanzaError::new(Condition::ItemNotFound));
            };
            store::delete_item(services, owner, contact)
                .await
                .map_err(|e| internal("delete-item", &e))?;
            store::delete_request(services, owner, contact)
                .await
                .map_err(|e| internal("delete-request", &e))?;
            let ver = store::bump_version(services, owner, contact)
                .await
                .map_err(|e| internal("bump-version", &e))?;
            (item.state, ver)
        };
        self.push(
            services,
            owner,
            payload::removed_element(contact),
            &ver,
            initiator,
        )
        .await;
        let user = Jid::Bare(owner.clone());
        let to = Jid::Bare(contact.clone());
        if state.subscription.includes_to() || state.pending_out {
            services
                .sender
                .send(super::bare_presence(
                    Some("unsubscribe"),
                    user.clone(),
                    to.clone(),
                ))
                .await;
        }
        if state.subscription.includes_from() || state.pending_in {
            if state.subscription.includes_from() {
                // §3.2.2 step 3: the contact stops seeing the user, so tell it the user is gone.
                for route in Self::available_routes(services, owner) {
                    services
                        .sender
                        .send(super::bare_presence(
                            Some("unavailable"),
                            Jid::Full(route.jid),
                            to.clone(),
                        ))
                        .await;
                }
            }
            services
                .sender
                .send(super::bare_presence(Some("unsubscribed"), user, to))
                .await;
        }
        Ok(())
    }
}
