//! Presence subscriptions (RFC 6121 §3): the I/O around the pure state machine of
//! `subscription.rs`. Outbound stanzas come from the user's client (`client-stanza`); inbound
//! ones are addressed to a local account (`local-inbound`), including those a local contact's
//! outbound processing routes here.

use corvid_core::{Flow, Services};
use corvid_jid::{BareJid, FullJid, Jid};
use corvid_stanza::{Condition, Stanza, StanzaError};
use corvid_storage::StoreError;
use tracing::{debug, warn};

use super::payload::{self, LIMITS};
use super::store::{self, RosterItem};
use super::subscription::{self, Inbound, Outbound, Reply, SendPresence, SubState};
use super::{bare_presence, Inner};

/// The stored state of one (user, contact) pair: the item if there is one, else "pending in"
/// if the contact's request is stored (A.1: a contact not in the roster is "None").
async fn effective_state(
    services: &Services,
    owner: &BareJid,
    contact: &BareJid,
) -> Result<(Option<RosterItem>, SubState), StoreError> {
    match store::load_item(services, owner, contact).await? {
        Some(item) => {
            let state = item.state;
            Ok((Some(item), state))
        }
        None => {
            let pending_in = store::has_request(services, owner, contact).await?;
            Ok((
                None,
                SubState {
                    pending_in,
                    ..SubState::NONE
                },
            ))
        }
    }
}

/// Whether the user must have an item for a contact in `state`: anything beyond a pending
/// request from the contact (§3.1.3 security warning: asking adds nothing to the roster).
fn needs_item(state: SubState) -> bool {
    !SubState {
        pending_in: false,
        ..state
    }
    .is_empty()
}

/// Stores `new` for the pair. Returns the item and roster version to push when `push`.
async fn commit(
    services: &Services,
    owner: &BareJid,
    contact: &BareJid,
    item: Option<RosterItem>,
    new: SubState,
    push: bool,
) -> Result<Option<(RosterItem, String)>, StoreError> {
    if !new.pending_in {
        store::delete_request(services, owner, contact).await?;
    }
    if item.is_none() && !needs_item(new) {
        return Ok(None);
    }
    let mut item = item.unwrap_or_else(|| RosterItem::new(contact));
    item.state = new;
    store::save_item(services, owner, &item).await?;
    if push {
        let ver = store::bump_version(services, owner, contact).await?;
        Ok(Some((item, ver)))
    } else {
        Ok(None)
    }
}

/// Why an outbound subscription stanza was refused.
enum Refused {
    Full,
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Store(e)
    }
}

impl Inner {
    /// A subscription stanza from the user's client (§3.1.2, §3.1.5, §3.2.2, §3.3.2, §3.4.2):
    /// the `to` becomes the contact's bare JID and the `from` the user's bare JID (§3
    /// implementation note), the state machine decides, and the module routes it itself.
    pub(super) async fn outbound(
        &self,
        services: &Services,
        from: &FullJid,
        st: &Stanza,
        ev: Outbound,
    ) {
        let owner = from.bare();
        let Some(to) = st.to() else {
            return;
        };
        let contact = to.bare().clone();
        if contact == *owner {
            debug!(what = "subscription-to-self-ignored", jid = %owner);
            return;
        }
        let result = async {
            let _guard = self.lock(owner).lock().await;
            let (item, state) = effective_state(services, owner, &contact).await?;
            let r = subscription::outbound(state, ev);
            if item.is_none() && needs_item(r.state) {
                // A new item: the roster limit applies as for a roster set.
                if store::count_items(services, owner).await? >= LIMITS.max_items {
                    return Err(Refused::Full);
                }
            }
            let pushed = commit(services, owner, &contact, item, r.state, r.roster_push).await?;
            Ok((r, pushed))
        }
        .await;
        let (r, pushed) = match result {
            Ok(x) => x,
            Err(refused) => {
                let err = match refused {
                    Refused::Full => StanzaError::new(Condition::ResourceConstraint)
                        .with_text("the roster is full"),
                    Refused::Store(e) => {
                        warn!(what = "roster-store-error", op = "outbound", error = %e);
                        StanzaError::new(Condition::InternalServerError)
                    }
                };
                if let Some(reply) = st.error_reply(&err) {
                    services.sender.send(reply).await;
                }
                return;
            }
        };
        // The push goes first: routing to a local contact can complete the exchange (a
        // pre-approval answers at once), and its pushes must not be overtaken by this one.
        if let Some((item, ver)) = pushed {
            self.push(services, owner, payload::item_element(&item), &ver, None)
                .await;
        }
        let contact_jid = Jid::Bare(contact.clone());
        if r.presence == Some(SendPresence::Unavailable) {
            // §3.2.2 step 3: before the "unsubscribed", while the contact still listens.
            self.send_own_presence(services, owner, &contact_jid, false)
                .await;
        }
        if r.route {
            let mut out = st.clone();
            out.set_from(Jid::Bare(owner.clone()));
            out.set_to(Some(contact_jid.clone()));
            services.sender.send(out).await;
        }
        if r.presence == Some(SendPresence::Available) {
            // §3.1.5: the contact now has a subscription; it gets the user's presence.
            self.send_own_presence(services, owner, &contact_jid, true)
                .await;
        }
    }

    /// A subscription stanza for local `account` (§3.1.3, §3.1.6, §3.2.3, §3.3.3, §3.4.2).
    pub(super) async fn inbound(
        &self,
        services: &Services,
        account: &BareJid,
        st: &mut Stanza,
        ev: Inbound,
    ) -> Flow {
        let Some(from) = st.from() else {
            return Flow::Continue;
        };
        let contact = from.bare().clone();
        if !self.account_exists(services, account).await {
            // §8.5.1 (no such user): the routing rules drop presence silently.
            return Flow::Continue;
        }
        if contact == *account {
            return Flow::Stop;
        }
        // §3.1.3: a request to a full JID is treated as one to the bare JID; subscription
        // stanzas carry bare JIDs only.
        st.set_to(Some(Jid::Bare(account.clone())));
        st.set_from(Jid::Bare(contact.clone()));
        let result: Result<_, StoreError> = async {
            let _guard = self.lock(account).lock().await;
            let (item, state) = effective_state(services, account, &contact).await?;
            let r = subscription::inbound(state, ev);
            let mut deliver = r.deliver;
            if ev == Inbound::Subscribe && r.state.pending_in && !state.pending_in {
                // §3.1.3 rule 4: keep the complete request until it is answered; one per
                // contact, and a bounded number in all (its security warning).
                if store::count_requests(services, account).await? >= LIMITS.max_pending_requests {
                    debug!(what = "subscription-request-dropped", account = %account);
                    return Ok(None);
                }
                store::save_request(services, account, &contact, st.element()).await?;
            } else if ev == Inbound::Subscribe && r.state.pending_in {
                // A repeated request replaces the stored one but is not delivered again.
                store::save_request(services, account, &contact, st.element()).await?;
                deliver = false;
            }
            let pushed = commit(services, account, &contact, item, r.state, r.roster_push).await?;
            Ok(Some((r, deliver, pushed)))
        }
        .await;
        let (r, deliver, pushed) = match result {
            Ok(Some(x)) => x,
            Ok(None) => return Flow::Stop,
            Err(e) => {
                warn!(what = "roster-store-error", op = "inbound", error = %e);
                return Flow::Stop;
            }
        };
        if deliver {
            // To every available resource (§8.5.2.1.2); a request with none stays stored and
            // goes out at the next available resource (§3.1.3 rule 4).
            for route in services.registry.resources(account) {
                if route.available {
                    services.sender.to_route(&route, st.clone()).await;
                }
            }
        }
        // §3.1.6 step 2: the push comes after the delivery.
        if let Some((item, ver)) = pushed {
            self.push(services, account, payload::item_element(&item), &ver, None)
                .await;
        }
        let contact_jid = Jid::Bare(contact.clone());
        if let Some(reply) = r.auto_reply {
            let ty = match reply {
                Reply::Subscribed => "subscribed",
                Reply::Unsubscribed => "unsubscribed",
            };
            services
                .sender
                .send(bare_presence(
                    Some(ty),
                    Jid::Bare(account.clone()),
                    contact_jid.clone(),
                ))
                .await;
        }
        match r.presence {
            Some(SendPresence::Available) => {
                self.send_own_presence(services, account, &contact_jid, true)
                    .await;
            }
            Some(SendPresence::Unavailable) => {
                self.send_own_presence(services, account, &contact_jid, false)
                    .await;
            }
            None => {}
        }
        if r.send_probe && !services.is_local(contact.domain()) {
            // §4.3.1: a local contact's server (this one) already sent its presence with the
            // approval (§3.1.5); a remote one is asked.
            services
                .sender
                .send(bare_presence(
                    Some("probe"),
                    Jid::Bare(account.clone()),
                    contact_jid,
                ))
                .await;
        }
        Flow::Stop
    }

    /// Sends `owner`'s presence to `to` from each available resource: its last available
    /// presence (`available`), or unavailable presence.
    pub(super) async fn send_own_presence(
        &self,
        services: &Services,
        owner: &BareJid,
        to: &Jid,
        available: bool,
    ) {
        for route in Self::available_routes(services, owner) {
            if available {
                // The last presence is known on the session's node, which answers.
                let bare = Jid::Bare(owner.clone());
                super::presence::probe_session(services, &route, bare, to.clone()).await;
            } else {
                let st = bare_presence(Some("unavailable"), Jid::Full(route.jid), to.clone());
                services.sender.send(st).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pending_request_needs_no_item() {
        // RFC 6121 §3.1.3 security warning: no item for someone who merely asked.
        assert!(!needs_item(SubState::NONE));
        assert!(!needs_item(SubState::NONE_PENDING_IN));
        assert!(needs_item(SubState::NONE_PENDING_OUT));
        assert!(needs_item(SubState::FROM));
        assert!(needs_item(SubState::NONE.pre_approved()));
        assert!(needs_item(SubState::NONE_PENDING_OUT_IN));
    }
}
