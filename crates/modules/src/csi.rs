//! XEP-0352 client state indication: while a client says it is `<inactive/>`, what is not
//! urgent waits on the server and goes out, in order, when something urgent comes or the client
//! says `<active/>` again.
//!
//! # Layout
//! - [`Held`]: the pure queue of one inactive session (presence coalesced per sender, a limit).
//! - [`Csi`]: the module: the stream feature, the `client-nonza` listener for the two state
//!   elements, the `deliver` listener that holds or flushes, and clean-up at `session-closed`.
//!
//! ```text
//!  deliver ─▶ session inactive? ─no──▶ Continue (router puts it in the mailbox)
//!                 │ yes
//!                 ├─ urgent (IQ, message with body, subscription…) ─▶ flush held, Continue
//!                 └─ else ─▶ hold (latest presence per sender wins) ─▶ Stop
//!                              └─ queue full ─▶ flush
//!  <active/> ─▶ flush held, in order, with `to_session`
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use corvid_core::{Event, Flow, Hook, Module, Registrar, Services, SessionId, Spec};
use corvid_stanza::{ns, Kind, PresenceType, Stanza};
use corvid_xml::Element;
use tracing::debug;

/// The CSI namespace (XEP-0352 §6).
pub const NS: &str = "urn:xmpp:csi:0";
/// Most stanzas held for one session; one more flushes them all.
pub const MAX_HELD: usize = 500;

/// The stanzas held back for one inactive session, oldest first.
#[derive(Debug, Default)]
pub struct Held {
    queue: VecDeque<Stanza>,
}

/// What [`Held::offer`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Deliver the offered stanza now, after these held ones (oldest first).
    Deliver(Vec<Stanza>),
    /// Held back.
    Held,
}

impl Held {
    /// Number of stanzas held.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Everything held, oldest first; the queue is left empty.
    pub fn drain(&mut self) -> Vec<Stanza> {
        self.queue.drain(..).collect()
    }

    /// Takes a stanza for the session: urgent ones go out at once after what was held, the
    /// rest wait. Of presence from one full JID only the latest is kept, since it replaces
    /// the earlier one; at [`MAX_HELD`] everything goes out.
    pub fn offer(&mut self, stanza: Stanza) -> Offer {
        if is_urgent(&stanza) {
            return Offer::Deliver(self.drain());
        }
        if stanza.kind() == Kind::Presence {
            let from = stanza.from().cloned();
            self.queue
                .retain(|s| !(s.kind() == Kind::Presence && s.from() == from.as_ref()));
        }
        if self.queue.len() >= MAX_HELD {
            return Offer::Deliver(self.drain());
        }
        self.queue.push_back(stanza);
        Offer::Held
    }
}

/// Whether a stanza must reach an inactive client at once: IQs (someone waits for the answer),
/// messages with a body (or errors), and presence that asks something of the user
/// (subscription handling) or reports an error. Presence updates and messages without a body
/// (chat states, receipts) can wait.
pub fn is_urgent(stanza: &Stanza) -> bool {
    match stanza.kind() {
        Kind::Iq => true,
        Kind::Message => stanza.is_error() || stanza.element().child("body", ns::CLIENT).is_some(),
        Kind::Presence => !matches!(
            stanza.presence_type(),
            Some(PresenceType::Available | PresenceType::Unavailable)
        ),
    }
}

/// The module.
#[derive(Default)]
pub struct Csi {
    /// Sessions that said `<inactive/>`; each has its own lock, held while it flushes so a
    /// concurrent delivery cannot overtake what was held.
    inactive: Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<Held>>>>,
}

impl Module for Csi {
    fn name(&self) -> &'static str {
        "csi"
    }
    fn specs(&self) -> &'static [Spec] {
        &[Spec {
            id: "XEP-0352",
            version: "1.0.0",
            status: "complete",
        }]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        r.stream_feature(Element::new("csi", NS));
        r.hook("client-nonza", 0, self.clone());
        // Lowest: listeners that copy or drop stanzas (carbons, blocking) see them first.
        r.hook("deliver", -100, self.clone());
        r.hook("session-closed", 0, self);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Csi {
    fn held(&self, session: SessionId) -> Option<Arc<tokio::sync::Mutex<Held>>> {
        lock(&self.inactive).get(&session).cloned()
    }

    /// XEP-0352 §4: `<inactive/>` starts holding; `<active/>` ends it and flushes.
    async fn state(&self, services: &Services, session: SessionId, active: bool) {
        if !active {
            lock(&self.inactive).entry(session).or_default();
            return;
        }
        let Some(held) = self.held(session) else {
            return;
        };
        // Flush under the session's lock, then forget it: a delivery that found the entry
        // before removal waits for the flush and then sees an empty queue.
        let mut queue = held.lock().await;
        flush(services, session, queue.drain()).await;
        lock(&self.inactive).remove(&session);
    }

    async fn deliver(&self, services: &Services, session: SessionId, stanza: &Stanza) -> Flow {
        if stanza.presence_type() == Some(corvid_stanza::PresenceType::Probe) {
            // A probe forwarded to this session is for the roster module here to answer from
            // its last presence (RFC 6121 §4.3.2), never for the client: not held.
            return Flow::Continue;
        }
        let Some(held) = self.held(session) else {
            return Flow::Continue;
        };
        let mut queue = held.lock().await;
        if !lock(&self.inactive).contains_key(&session) {
            // Became active while we waited: the flush is done.
            return Flow::Continue;
        }
        match queue.offer(stanza.clone()) {
            Offer::Held => Flow::Stop,
            Offer::Deliver(earlier) => {
                // The router puts the stanza in the mailbox after these, keeping the order.
                flush(services, session, earlier).await;
                Flow::Continue
            }
        }
    }
}

async fn flush(services: &Services, session: SessionId, stanzas: Vec<Stanza>) {
    let count = stanzas.len();
    for st in stanzas {
        if !services.sender.to_session(session, st).await {
            debug!(what = "csi-flush-undelivered", session = %session, count);
            return;
        }
    }
}

#[async_trait]
impl Hook for Csi {
    fn wants(&self, event: &Event<'_>) -> bool {
        // A delivery concerns it only while the session is inactive.
        match event {
            Event::Deliver { session, .. } => lock(&self.inactive).contains_key(session),
            _ => true,
        }
    }

    async fn on_with(&self, services: &Services, event: &mut Event<'_>) -> Flow {
        match event {
            Event::ClientNonza {
                session, element, ..
            } if element.ns == NS => match element.name.as_str() {
                "active" => {
                    self.state(services, *session, true).await;
                    Flow::Stop
                }
                "inactive" => {
                    self.state(services, *session, false).await;
                    Flow::Stop
                }
                _ => Flow::Continue,
            },
            Event::Deliver {
                session, stanza, ..
            } => self.deliver(services, *session, stanza).await,
            Event::SessionClosed { session, .. } => {
                lock(&self.inactive).remove(session);
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(xml_kind: Kind, el: Element) -> Stanza {
        Stanza::from_trusted(xml_kind, el)
    }

    fn presence(from: &str, status: &str) -> Stanza {
        stanza(
            Kind::Presence,
            Element::new("presence", ns::CLIENT)
                .with_attr("from", from)
                .with_child(Element::new("status", ns::CLIENT).with_text(status)),
        )
    }

    fn chat_state(from: &str) -> Stanza {
        stanza(
            Kind::Message,
            Element::new("message", ns::CLIENT)
                .with_attr("from", from)
                .with_child(Element::new(
                    "composing",
                    "http://jabber.org/protocol/chatstates",
                )),
        )
    }

    fn chat(from: &str, body: &str) -> Stanza {
        stanza(
            Kind::Message,
            Element::new("message", ns::CLIENT)
                .with_attr("from", from)
                .with_child(Element::new("body", ns::CLIENT).with_text(body)),
        )
    }

    #[test]
    fn what_is_urgent() {
        assert!(is_urgent(&chat("bob@example.org/a", "hi")));
        assert!(!is_urgent(&chat_state("bob@example.org/a")));
        assert!(!is_urgent(&presence("bob@example.org/a", "away")));
        let subscribe = stanza(
            Kind::Presence,
            Element::new("presence", ns::CLIENT).with_attr("type", "subscribe"),
        );
        assert!(is_urgent(&subscribe));
        let iq = stanza(
            Kind::Iq,
            Element::new("iq", ns::CLIENT).with_attr("type", "get"),
        );
        assert!(is_urgent(&iq));
    }

    #[test]
    fn the_latest_presence_per_full_jid_replaces_the_earlier_one() {
        let mut held = Held::default();
        assert_eq!(held.offer(presence("bob@example.org/a", "1")), Offer::Held);
        assert_eq!(held.offer(presence("bob@example.org/b", "x")), Offer::Held);
        assert_eq!(held.offer(presence("bob@example.org/a", "2")), Offer::Held);
        let out = held.drain();
        assert_eq!(
            out,
            vec![
                presence("bob@example.org/b", "x"),
                presence("bob@example.org/a", "2")
            ]
        );
    }

    #[test]
    fn an_urgent_stanza_releases_what_was_held_in_order() {
        let mut held = Held::default();
        held.offer(chat_state("bob@example.org/a"));
        held.offer(presence("bob@example.org/a", "1"));
        let got = held.offer(chat("bob@example.org/a", "hi"));
        assert_eq!(
            got,
            Offer::Deliver(vec![
                chat_state("bob@example.org/a"),
                presence("bob@example.org/a", "1"),
            ])
        );
        assert!(held.is_empty());
    }

    #[test]
    fn a_full_queue_is_released() {
        let mut held = Held::default();
        for i in 0..MAX_HELD {
            assert_eq!(
                held.offer(presence(&format!("u{i}@example.org/r"), "s")),
                Offer::Held
            );
        }
        match held.offer(chat_state("bob@example.org/a")) {
            Offer::Deliver(out) => assert_eq!(out.len(), MAX_HELD),
            Offer::Held => panic!("the queue must not grow past {MAX_HELD}"),
        }
        assert!(held.is_empty());
    }
}
