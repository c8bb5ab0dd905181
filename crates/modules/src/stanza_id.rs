//! XEP-0359: Unique and Stable Stanza IDs.
//!
//! Messages the server stores for an account get `<stanza-id xmlns='urn:xmpp:sid:0' id='…'
//! by='account@domain'/>`: [`assign`] is the helper every storing module calls (offline storage
//! now, the archive later). Because clients trust a `<stanza-id/>` whose `by` is their own
//! account, one arriving from outside is a forgery: a `local-inbound` hook strips those from
//! every message before anything else sees it (§4 rules 3 and 4).

use std::sync::Arc;

use async_trait::async_trait;
use corvid_core::{random_id, Event, Flow, Hook, Module, Registrar, Spec};
use corvid_jid::BareJid;
use corvid_stanza::{Kind, Stanza};
use corvid_xml::{Element, Node};

/// The namespace (XEP-0359 §3).
pub const NS: &str = "urn:xmpp:sid:0";

/// Random bytes in an id: 128 bits, unpredictable as §4 rule 2 asks and telling nothing about
/// the archive's size (§5).
const ID_BYTES: usize = 16;

/// Priority of the stripping hook: before every other `local-inbound` listener, so that none
/// sees (or stores) a forged id.
const STRIP_PRIORITY: i32 = 1000;

/// The module.
#[derive(Default)]
pub struct StanzaId;

impl Module for StanzaId {
    fn name(&self) -> &'static str {
        "stanza_id"
    }
    fn specs(&self) -> &'static [Spec] {
        &[Spec {
            id: "XEP-0359",
            version: "0.7.0",
            status: "partial",
        }]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        // The ids are assigned by the account (`by` is its bare JID), so the account advertises it.
        r.account_feature(NS);
        r.hook("local-inbound", STRIP_PRIORITY, Arc::new(StripForged));
    }
}

/// Adds a fresh `<stanza-id/>` assigned by `by` to a stanza element, first removing any whose
/// `by` is already `by` (§4 rule 3: override; rule 4: at most one per assigning entity).
/// Returns the new id.
pub fn assign(stanza: &mut Element, by: &BareJid) -> String {
    strip(stanza, by);
    let id = random_id(ID_BYTES);
    stanza.push(
        Element::new("stanza-id", NS)
            .with_attr("id", id.clone())
            .with_attr("by", by.to_string()),
    );
    id
}

/// Removes every direct `<stanza-id/>` child whose `by` is `by`; returns how many.
pub fn strip(stanza: &mut Element, by: &BareJid) -> usize {
    let before = stanza.children.len();
    stanza.children.retain(|n| match n {
        Node::Element(e) => !is_assigned_by(e, by),
        Node::Text(_) => true,
    });
    before - stanza.children.len()
}

/// True if `el` is a `<stanza-id/>` whose `by` is `by` (compared as normalized JIDs, so
/// `Alice@Localhost` is `alice@localhost`).
fn is_assigned_by(el: &Element, by: &BareJid) -> bool {
    el.is("stanza-id", NS)
        && el
            .attr("by")
            .and_then(|b| b.parse::<BareJid>().ok())
            .is_some_and(|b| &b == by)
}

/// Strips forged ids from messages for a local account.
struct StripForged;

#[async_trait]
impl Hook for StripForged {
    fn wants(&self, event: &Event<'_>) -> bool {
        match event {
            Event::LocalInbound { account, stanza } => {
                stanza.kind() == Kind::Message
                    && stanza
                        .element()
                        .child_elements()
                        .any(|e| is_assigned_by(e, account))
            }
            _ => true,
        }
    }

    async fn on(&self, event: &mut Event<'_>) -> Flow {
        let Event::LocalInbound { account, stanza } = event else {
            return Flow::Continue;
        };
        if stanza.kind() != Kind::Message {
            return Flow::Continue;
        }
        let forged = stanza
            .element()
            .child_elements()
            .any(|e| is_assigned_by(e, account));
        if forged {
            let mut el = stanza.element().clone();
            let n = strip(&mut el, account);
            tracing::debug!(what = "stanza-id-forgery-stripped", account = %account, count = n);
            **stanza = Stanza::from_trusted(Kind::Message, el);
        }
        Flow::Continue
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use corvid_stanza::ns;

    use super::*;

    fn alice() -> BareJid {
        "alice@localhost".parse().unwrap()
    }

    fn ids_by(el: &Element, by: &str) -> Vec<String> {
        el.child_elements()
            .filter(|e| e.is("stanza-id", NS) && e.attr("by") == Some(by))
            .filter_map(|e| e.attr("id").map(str::to_owned))
            .collect()
    }

    #[test]
    fn assign_replaces_an_existing_id_by_the_same_entity() {
        // XEP-0359 §4 rule 3 (override) and rule 4 (at most one per 'by').
        let mut msg = Element::new("message", ns::CLIENT).with_child(
            Element::new("stanza-id", NS)
                .with_attr("id", "forged")
                .with_attr("by", "Alice@localhost"),
        );
        let id = assign(&mut msg, &alice());
        assert_eq!(ids_by(&msg, "alice@localhost"), vec![id.clone()]);
        assert_ne!(id, "forged");
        assert!(ids_by(&msg, "Alice@localhost").is_empty());
    }

    #[test]
    fn assign_keeps_ids_of_other_entities() {
        // §4 rule 1: routing entities must not strip sid elements that are not theirs.
        let mut msg = Element::new("message", ns::CLIENT)
            .with_child(
                Element::new("stanza-id", NS)
                    .with_attr("id", "room-1")
                    .with_attr("by", "room@muc.localhost"),
            )
            .with_child(Element::new("origin-id", NS).with_attr("id", "o-1"));
        assign(&mut msg, &alice());
        assert_eq!(ids_by(&msg, "room@muc.localhost"), vec!["room-1"]);
        assert!(msg.child("origin-id", NS).is_some());
    }

    #[test]
    fn ids_are_unpredictable_and_distinct() {
        // §4 rule 2 / §5: opaque, unpredictable values.
        let mut a = Element::new("message", ns::CLIENT);
        let mut b = Element::new("message", ns::CLIENT);
        let (x, y) = (assign(&mut a, &alice()), assign(&mut b, &alice()));
        assert_ne!(x, y);
        assert!(x.len() >= 20, "{x}");
    }

    #[tokio::test]
    async fn forged_ids_are_stripped_from_inbound_messages() {
        let el = Element::new("message", ns::CLIENT)
            .with_attr("to", "alice@localhost")
            .with_child(
                Element::new("stanza-id", NS)
                    .with_attr("id", "forged")
                    .with_attr("by", "alice@localhost"),
            )
            .with_child(
                Element::new("stanza-id", NS)
                    .with_attr("id", "other")
                    .with_attr("by", "bob@localhost"),
            );
        let mut stanza = Stanza::parse(el, ns::CLIENT).unwrap();
        let account = alice();
        let mut ev = Event::LocalInbound {
            account: &account,
            stanza: &mut stanza,
        };
        assert_eq!(StripForged.on(&mut ev).await, Flow::Continue);
        assert!(ids_by(stanza.element(), "alice@localhost").is_empty());
        assert_eq!(ids_by(stanza.element(), "bob@localhost"), vec!["other"]);
    }
}
