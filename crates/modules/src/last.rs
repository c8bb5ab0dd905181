//! XEP-0012 last activity: the server's uptime, and for an account how long ago its last
//! session ended (with the status of its last unavailable presence), shown only to those who
//! may see the account's presence.
//!
//! ```text
//!  iq get to the server         ──▶ seconds since start (§5)
//!  iq get to alice@domain       ──▶ requester is alice, or has a `from`/`both` subscription?
//!                                    ├ no  ──▶ forbidden (§3)
//!                                    └ yes ──▶ available resource? seconds='0'
//!                                              else kv "last"[alice]: seconds since logout + status
//!  session-closed, last resource ──▶ kv "last"[alice] = { at, status }
//!  client-stanza, <presence type='unavailable'><status/>  ──▶ remembered for that session
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use corvid_core::{
    Event, Flow, Hook, IqHandler, IqOutcome, IqTarget, Module, Registrar, Services, SessionId, Spec,
};
use corvid_jid::BareJid;
use corvid_stanza::{ns, Condition, Kind, PresenceType, Stanza, StanzaError};
use corvid_storage::StoreError;
use corvid_xml::Element;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::warn;

use crate::roster::subscription::Subscription;

/// The last activity namespace (XEP-0012 §2).
pub const NS: &str = "jabber:iq:last";
/// Longest status text kept, in characters.
pub const MAX_STATUS_CHARS: usize = 1024;

/// The key-value store holding each account's last logout.
const STORE: &str = "last";

/// An account's last logout, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastLogout {
    /// When the last session ended, in seconds since the Unix epoch.
    pub at: i64,
    /// The status text of the last unavailable presence, if any.
    pub status: Option<String>,
}

/// The module.
pub struct LastActivity {
    started: Instant,
    /// Status text of each session's last unavailable presence.
    status: Mutex<HashMap<SessionId, String>>,
}

impl Default for LastActivity {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            status: Mutex::new(HashMap::new()),
        }
    }
}

impl Module for LastActivity {
    fn name(&self) -> &'static str {
        "last"
    }
    fn specs(&self) -> &'static [Spec] {
        &[Spec {
            id: "XEP-0012",
            version: "2.0",
            status: "complete",
        }]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        r.iq(IqTarget::Server, false, "query", NS, self.clone());
        r.iq(IqTarget::Account, false, "query", NS, self.clone());
        r.feature(NS);
        r.account_feature(NS);
        r.hook("client-stanza", 0, self.clone());
        r.hook("session-closed", 0, self);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn query(seconds: u64, status: Option<&str>) -> Element {
    let mut q = Element::new("query", NS).with_attr("seconds", seconds.to_string());
    if let Some(s) = status.filter(|s| !s.is_empty()) {
        q.push_text(s);
    }
    q
}

impl LastActivity {
    /// §4: an account's last activity.
    async fn account(&self, services: &Services, iq: &Stanza) -> IqOutcome {
        let Some(from) = iq.from() else {
            return Err(StanzaError::new(Condition::BadRequest));
        };
        let requester = from.bare();
        let owner = iq.to().map_or(requester, |to| to.bare());
        if owner != requester
            && !subscription(services, owner, requester)
                .await
                .includes_from()
        {
            // §4: "MUST return a Forbidden error" to those not allowed to see the presence.
            return Err(StanzaError::new(Condition::Forbidden));
        }
        // §4: with an available resource the answer is zero seconds.
        if services
            .registry
            .resources(owner)
            .iter()
            .any(|r| r.available)
        {
            return Ok(Some(query(0, None)));
        }
        let stored = services
            .store
            .kv(STORE)
            .get(owner)
            .await
            .map_err(store_error)?;
        let Some(bytes) = stored else {
            return Err(StanzaError::new(Condition::ItemNotFound)
                .with_text("no session of this account has ended yet"));
        };
        let last: LastLogout = serde_json::from_slice(&bytes).map_err(|e| {
            warn!(what = "last-unreadable", user = %owner, error = %e);
            StanzaError::new(Condition::InternalServerError)
        })?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let seconds = u64::try_from(now.saturating_sub(last.at)).unwrap_or(0);
        Ok(Some(query(seconds, last.status.as_deref())))
    }

    /// Stores the logout when the account's last session ends.
    async fn closed(&self, services: &Services, jid: &BareJid, session: SessionId) {
        let status = lock(&self.status).remove(&session);
        if !services.registry.resources(jid).is_empty() {
            return;
        }
        let last = LastLogout {
            at: OffsetDateTime::now_utc().unix_timestamp(),
            status,
        };
        let bytes = match serde_json::to_vec(&last) {
            Ok(b) => b,
            Err(e) => {
                warn!(what = "last-encode-failed", error = %e);
                return;
            }
        };
        if let Err(e) = services.store.kv(STORE).set(jid, &bytes).await {
            warn!(what = "last-store-error", user = %jid, error = %e);
        }
    }

    fn presence(&self, session: SessionId, stanza: &Stanza) {
        if stanza.to().is_some() || stanza.presence_type() != Some(PresenceType::Unavailable) {
            return;
        }
        let status = stanza
            .element()
            .child("status", ns::CLIENT)
            .map(|s| s.text().chars().take(MAX_STATUS_CHARS).collect::<String>());
        let mut map = lock(&self.status);
        match status {
            Some(s) => {
                map.insert(session, s);
            }
            None => {
                map.remove(&session);
            }
        }
    }
}

#[async_trait]
impl IqHandler for LastActivity {
    async fn handle(&self, services: &Services, iq: &Stanza) -> IqOutcome {
        let to_server = iq.to().is_some_and(|t| t.node().is_none());
        if to_server {
            // §5: the server's uptime.
            return Ok(Some(query(self.started.elapsed().as_secs(), None)));
        }
        self.account(services, iq).await
    }
}

#[async_trait]
impl Hook for LastActivity {
    fn wants(&self, event: &Event<'_>) -> bool {
        // Of what a client sends, only presence (its unavailable presence's status).
        match event {
            Event::ClientStanza { stanza, .. } => stanza.kind() == Kind::Presence,
            _ => true,
        }
    }

    async fn on_with(&self, services: &Services, event: &mut Event<'_>) -> Flow {
        match event {
            Event::ClientStanza { session, stanza } => self.presence(*session, stanza),
            Event::SessionClosed { jid, session, .. } => {
                self.closed(services, jid.bare(), *session).await;
            }
            _ => {}
        }
        Flow::Continue
    }
}

fn store_error(e: StoreError) -> StanzaError {
    warn!(what = "last-store-error", error = %e);
    StanzaError::new(Condition::InternalServerError)
}

/// The subscription of `contact` in `owner`'s roster (`None` when not in it).
async fn subscription(services: &Services, owner: &BareJid, contact: &BareJid) -> Subscription {
    match crate::roster::store::load_item(services, owner, contact).await {
        Ok(item) => item.map_or(Subscription::None, |i| i.subscription()),
        Err(e) => {
            // Failing closed: without the roster nobody is known to be allowed.
            warn!(what = "roster-load-failed", user = %owner, error = %e);
            Subscription::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_carries_seconds_and_the_status_as_text() {
        // XEP-0012 §4 example: <query xmlns='jabber:iq:last' seconds='903'>Heading Home</query>
        let q = query(903, Some("Heading Home"));
        assert_eq!(q.attr("seconds"), Some("903"));
        assert_eq!(q.text(), "Heading Home");
        assert_eq!(query(0, None).text(), "");
    }

    #[test]
    fn a_stored_logout_reads_back() {
        let last = LastLogout {
            at: 1_700_000_000,
            status: Some("Heading Home".into()),
        };
        let bytes = serde_json::to_vec(&last).unwrap();
        assert_eq!(serde_json::from_slice::<LastLogout>(&bytes).unwrap(), last);
    }
}
