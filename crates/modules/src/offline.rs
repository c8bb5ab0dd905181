//! XEP-0160: Best Practices for Handling Offline Messages, with XEP-0203 delay stamps.
//!
//! ```text
//!  message for an account with no available resource (RFC 6121 §8.5.2.2.1)
//!     │ offline-message hook
//!     ▼
//!  classify ──Refuse──▶ Continue: the router answers service-unavailable
//!     │ ──Discard──▶ Stop: dropped without an error (standalone chat states, empty messages)
//!     │ Store
//!     ▼
//!  + <stanza-id by=account/> (XEP-0359) + <delay from=domain stamp=now/> (XEP-0203)
//!     │ archive "offline", at most `limit` per account
//!     ├─ LimitReached ─▶ service-unavailable to the sender (XEP-0160 §2 step 3), nothing stored
//!     └─ Unavailable  ─▶ internal-server-error to the sender, logged
//!
//!  resource-available (priority ≥ 0, XEP-0160 §2 step 5)
//!     └─ stored messages, oldest first, straight into that session's mailbox; each one is
//!        removed only once the mailbox took it (a vanished or stuck session loses nothing)
//! ```
//!
//! Delivery is at-least-once: if removing delivered messages fails, they come again at the next
//! login, which is better than losing them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use corvid_core::{Event, Flow, Hook, Module, Registrar, Services, SessionId, Spec};
use corvid_jid::{BareJid, DomainPart};
use corvid_stanza::{ns, Condition, Kind, Stanza, StanzaError};
use corvid_storage::StoreError;
use corvid_xml::{Element, Limits, Parser, StreamEvent};
use time::OffsetDateTime;
use tracing::{debug, warn};

use crate::stanza_id;

/// The archive holding offline messages.
pub const ARCHIVE: &str = "offline";
/// The disco feature (XEP-0160 §4).
pub const FEATURE: &str = "msgoffline";
/// Delayed delivery (XEP-0203).
pub const NS_DELAY: &str = "urn:xmpp:delay";
/// Message processing hints (XEP-0334).
pub const NS_HINTS: &str = "urn:xmpp:hints";
/// Chat state notifications (XEP-0085).
pub const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// Messages kept per account when no limit is given (`limits.max_offline_messages`' default).
pub const DEFAULT_LIMIT: usize = 1000;

/// Stored messages read per store round trip while delivering.
const BATCH: usize = 64;

/// The module.
pub struct Offline {
    /// Most messages stored per account.
    limit: usize,
    /// Accounts whose queue is being delivered right now: two resources becoming available
    /// together must not both deliver the same messages.
    draining: Mutex<HashSet<BareJid>>,
}

impl Default for Offline {
    fn default() -> Self {
        Self::with_limit(DEFAULT_LIMIT)
    }
}

impl Offline {
    /// Offline storage keeping at most `limit` messages per account (at least 1).
    pub fn with_limit(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            draining: Mutex::new(HashSet::new()),
        }
    }
}

impl Module for Offline {
    fn name(&self) -> &'static str {
        "offline"
    }
    fn specs(&self) -> &'static [Spec] {
        &[
            Spec {
                id: "XEP-0160",
                version: "1.0.1",
                status: "complete",
            },
            Spec {
                id: "XEP-0203",
                version: "2.0",
                status: "partial",
            },
        ]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        r.feature(FEATURE);
        r.hook("offline-message", 0, self.clone());
        r.hook("resource-available", 0, self);
    }
}

/// What offline storage does with a message for an account with no available resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Not worth a bounce and not worth keeping: dropped silently. Standalone chat states
    /// (XEP-0160 §3, XEP-0085 "Server Handling of Notifications": servers SHOULD NOT store
    /// them; a bounce per typing notification would only make clients show errors) and
    /// messages with no content at all.
    Discard,
    /// Not stored; the sender gets `service-unavailable` (RFC 6121 §8.5.2.2.1): other message
    /// types (XEP-0160 §3), and messages hinted `<no-store/>` or `<no-permanent-store/>`
    /// (XEP-0334 §4), whose sender asked for no copy to be kept and learns it was not delivered.
    Refuse,
    /// Stored for later delivery.
    Store,
}

/// Decides what to do with `message` (a `<message/>` element) for an offline account.
pub fn classify(message: &Element) -> Storage {
    // RFC 6121 §5.2.2: an unknown type is `normal`.
    if matches!(
        message.attr("type"),
        Some("error" | "groupchat" | "headline")
    ) {
        return Storage::Refuse;
    }
    let hinted = message
        .child_elements()
        .any(|c| c.ns == NS_HINTS && matches!(c.name.as_str(), "no-store" | "no-permanent-store"));
    if hinted {
        return Storage::Refuse;
    }
    if message.child_elements().any(is_content) {
        Storage::Store
    } else {
        Storage::Discard
    }
}

/// True for a child that carries something for the user: anything but chat states, the
/// thread, processing hints and XEP-0359 ids (which only accompany content).
fn is_content(child: &Element) -> bool {
    let bookkeeping = child.ns == NS_CHATSTATES
        || child.ns == NS_HINTS
        || child.ns == stanza_id::NS
        || child.is("thread", ns::CLIENT);
    !bookkeeping
}

/// `<delay xmlns='urn:xmpp:delay' from=domain stamp=…>Offline Storage</delay>` (XEP-0203 §3;
/// the stamp is UTC with milliseconds, XEP-0082 DateTime).
pub fn delay_element(domain: &DomainPart, at: OffsetDateTime) -> Element {
    let at = at.to_offset(time::UtcOffset::UTC);
    let stamp = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    );
    Element::new("delay", NS_DELAY)
        .with_attr("from", domain.as_str())
        .with_attr("stamp", stamp)
        .with_text("Offline Storage")
}

/// The message as stored: the original plus a stanza id assigned by the account and the
/// delay stamp.
pub fn prepare(message: &Element, account: &BareJid, at: OffsetDateTime) -> Element {
    let mut el = message.clone();
    stanza_id::assign(&mut el, account);
    el.push(delay_element(account.domain(), at));
    el
}

/// Serializes a stored message.
fn encode(message: &Element) -> Vec<u8> {
    message.to_xml(ns::CLIENT).into_bytes()
}

/// Reads a stored message back.
fn decode(bytes: &[u8]) -> Result<Element, String> {
    // Stored messages passed the stream limits when they arrived; these only bound the work
    // on a corrupt record.
    let mut parser = Parser::new(Limits {
        max_stanza_bytes: 16 * 1024 * 1024,
        max_depth: 256,
        max_attributes: 1024,
    });
    parser.feed(
        format!(
            "<stream:stream xmlns='{}' xmlns:stream='{}'>",
            ns::CLIENT,
            ns::STREAM
        )
        .as_bytes(),
    );
    parser.feed(bytes);
    loop {
        match parser.next_event() {
            Ok(Some(StreamEvent::Open(_))) => {}
            Ok(Some(StreamEvent::Element(e))) if e.is("message", ns::CLIENT) => return Ok(e),
            Ok(Some(other)) => return Err(format!("not a message: {other:?}")),
            Ok(None) => return Err("truncated record".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[async_trait]
impl Hook for Offline {
    async fn on_with(&self, services: &Services, event: &mut Event<'_>) -> Flow {
        match event {
            Event::OfflineMessage { account, stanza } => {
                self.store(services, account, stanza).await
            }
            Event::ResourceAvailable {
                jid,
                session,
                priority,
            } => {
                // XEP-0160 §2 step 5: only non-negative presence gets the stored messages
                // (RFC 6121 §8.5.2.1.1: negative priority never receives bare-JID messages).
                if *priority >= 0 {
                    self.deliver(services, jid.bare(), *session).await;
                }
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }
}

impl Offline {
    async fn store(&self, services: &Services, account: &BareJid, stanza: &Stanza) -> Flow {
        match classify(stanza.element()) {
            Storage::Refuse => return Flow::Continue,
            Storage::Discard => {
                debug!(what = "offline-discarded", %account);
                return Flow::Stop;
            }
            Storage::Store => {}
        }
        let record = encode(&prepare(
            stanza.element(),
            account,
            OffsetDateTime::now_utc(),
        ));
        let archive = services.store.archive(ARCHIVE);
        let err = match archive.append(account, &record, Some(self.limit)).await {
            Ok(_) => return Flow::Stop,
            // XEP-0160 §2 step 3: a full queue is service-unavailable, and nothing is stored.
            Err(StoreError::LimitReached) => {
                debug!(what = "offline-full", %account, limit = self.limit);
                StanzaError::new(Condition::ServiceUnavailable)
                    .with_text("the recipient's offline storage is full")
            }
            Err(e) => {
                warn!(what = "offline-store-error", %account, error = %e);
                StanzaError::new(Condition::InternalServerError)
            }
        };
        if let Some(reply) = stanza.error_reply(&err) {
            services.sender.send(reply).await;
        }
        Flow::Stop
    }

    async fn deliver(&self, services: &Services, account: &BareJid, session: SessionId) {
        let Some(_guard) = Draining::start(&self.draining, account) else {
            // Another resource of the account is taking the queue right now.
            return;
        };
        let archive = services.store.archive(ARCHIVE);
        loop {
            let batch = match archive.range(account, None, BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    warn!(what = "offline-read-error", %account, error = %e);
                    return;
                }
            };
            if batch.is_empty() {
                return;
            }
            let mut handed_over = Vec::with_capacity(batch.len());
            let mut stuck = false;
            for (id, bytes) in batch {
                match decode(&bytes) {
                    Ok(el) => {
                        let message = Stanza::from_trusted(Kind::Message, el);
                        if services.sender.to_session(session, message).await {
                            handed_over.push(id);
                        } else {
                            // Gone or stuck: the rest waits for the next available presence.
                            stuck = true;
                            break;
                        }
                    }
                    Err(e) => {
                        // It can never be delivered; keeping it would block the queue forever.
                        warn!(what = "offline-corrupt-record", %account, id, error = %e);
                        handed_over.push(id);
                    }
                }
            }
            if !handed_over.is_empty() {
                if let Err(e) = archive.remove(account, &handed_over).await {
                    warn!(what = "offline-remove-error", %account, error = %e);
                    return;
                }
            }
            if stuck {
                return;
            }
        }
    }
}

/// Marks an account's queue as being delivered for as long as it lives.
struct Draining<'a> {
    set: &'a Mutex<HashSet<BareJid>>,
    account: BareJid,
}

impl<'a> Draining<'a> {
    /// None if the account's queue is already being delivered.
    fn start(set: &'a Mutex<HashSet<BareJid>>, account: &BareJid) -> Option<Self> {
        let fresh = set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account.clone());
        fresh.then(|| Draining {
            set,
            account: account.clone(),
        })
    }
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.account);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use time::macros::datetime;

    use super::*;

    fn message(ty: Option<&str>, children: Vec<Element>) -> Element {
        let mut el = Element::new("message", ns::CLIENT).with_attr("to", "alice@localhost");
        if let Some(t) = ty {
            el.set_attr("type", t);
        }
        for c in children {
            el.push(c);
        }
        el
    }

    fn body(text: &str) -> Element {
        Element::new("body", ns::CLIENT).with_text(text)
    }

    #[test]
    fn what_is_stored() {
        use Storage::*;
        let composing = || Element::new("composing", NS_CHATSTATES);
        let thread = || Element::new("thread", ns::CLIENT).with_text("t1");
        let receipt = Element::new("received", "urn:xmpp:receipts").with_attr("id", "m1");
        let cases: Vec<(&str, Element, Storage)> = vec![
            (
                "XEP-0160 §3: normal messages are stored",
                message(None, vec![body("hi")]),
                Store,
            ),
            (
                "XEP-0160 §3: chat messages are stored",
                message(Some("chat"), vec![body("hi"), composing()]),
                Store,
            ),
            (
                "XEP-0160 §3: other payloads than chat states are content",
                message(Some("chat"), vec![receipt]),
                Store,
            ),
            (
                "XEP-0160 §3: chat-state-only messages are not stored",
                message(Some("chat"), vec![composing(), thread()]),
                Discard,
            ),
            (
                "an empty message is not stored",
                message(None, vec![]),
                Discard,
            ),
            (
                "XEP-0160 §3: headline is not stored",
                message(Some("headline"), vec![body("news")]),
                Refuse,
            ),
            (
                "XEP-0160 §3: groupchat is not stored",
                message(Some("groupchat"), vec![body("hi")]),
                Refuse,
            ),
            (
                "XEP-0160 §3: errors are not stored",
                message(Some("error"), vec![body("hi")]),
                Refuse,
            ),
            (
                "XEP-0334: no-store hint",
                message(
                    Some("chat"),
                    vec![body("hi"), Element::new("no-store", NS_HINTS)],
                ),
                Refuse,
            ),
            (
                "XEP-0334: no-permanent-store hint",
                message(
                    None,
                    vec![body("hi"), Element::new("no-permanent-store", NS_HINTS)],
                ),
                Refuse,
            ),
        ];
        for (case, el, expected) in cases {
            assert_eq!(classify(&el), expected, "{case}");
        }
    }

    #[test]
    fn delay_stamp_is_utc_rfc3339() {
        // XEP-0203 §3: from is the delaying entity, stamp an XEP-0082 UTC DateTime.
        let domain = DomainPart::new("localhost").unwrap();
        let at = datetime!(2026-03-04 05:06:07.089 +02:00);
        let d = delay_element(&domain, at);
        assert!(d.is("delay", NS_DELAY));
        assert_eq!(d.attr("from"), Some("localhost"));
        assert_eq!(d.attr("stamp"), Some("2026-03-04T03:06:07.089Z"));
        assert!(OffsetDateTime::parse(
            d.attr("stamp").unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok());
    }

    #[test]
    fn stored_record_round_trips_with_id_and_delay() {
        let alice: BareJid = "alice@localhost".parse().unwrap();
        let original = message(Some("chat"), vec![body("a < b & 'c'")]);
        let stored = prepare(&original, &alice, OffsetDateTime::now_utc());
        let back = decode(&encode(&stored)).unwrap();
        assert_eq!(back, stored);
        assert_eq!(
            back.child("body", ns::CLIENT).unwrap().text(),
            "a < b & 'c'"
        );
        let sid = back.child("stanza-id", stanza_id::NS).unwrap();
        assert_eq!(sid.attr("by"), Some("alice@localhost"));
        assert!(back.child("delay", NS_DELAY).is_some());
    }

    #[test]
    fn corrupt_records_are_reported() {
        assert!(decode(b"<message><body>cut").is_err());
        assert!(decode(b"<presence/>").is_err());
        assert!(decode(b"").is_err());
    }

    #[test]
    fn draining_is_exclusive_per_account() {
        let set = Mutex::new(HashSet::new());
        let alice: BareJid = "alice@localhost".parse().unwrap();
        let bob: BareJid = "bob@localhost".parse().unwrap();
        let first = Draining::start(&set, &alice);
        assert!(first.is_some());
        assert!(Draining::start(&set, &alice).is_none());
        assert!(Draining::start(&set, &bob).is_some());
        drop(first);
        assert!(Draining::start(&set, &alice).is_some());
    }
}
