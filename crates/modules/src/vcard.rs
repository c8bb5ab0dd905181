//! XEP-0054 vcard-temp: each account's `<vCard xmlns='vcard-temp'/>`, stored as XML text in the
//! key-value store `vcard`. A user sets and gets their own; anyone may get a local user's.
//!
//! ```text
//!  iq get, no 'to' / own bare JID ──▶ kv "vcard"[user]     ──▶ <vCard/> (empty if none, §3.1)
//!  iq get, to bob@domain          ──▶ kv "vcard"[bob]      ──▶ <vCard/>
//!  iq set, own                    ──▶ size check ──▶ kv "vcard"[user] = XML
//!  iq set, to someone else        ──▶ forbidden
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use corvid_core::{IqHandler, IqOutcome, IqTarget, Module, Registrar, Services, Spec};
use corvid_jid::BareJid;
use corvid_stanza::{ns, Condition, IqType, Stanza, StanzaError};
use corvid_storage::StoreError;
use corvid_xml::{Element, Limits, Parser, StreamEvent};
use tracing::warn;

/// The vcard-temp namespace (XEP-0054 §2).
pub const NS: &str = "vcard-temp";
/// Largest vCard stored, in bytes of its XML; larger is `not-acceptable`.
pub const MAX_BYTES: usize = 64 * 1024;

/// The key-value store holding vCards.
const STORE: &str = "vcard";

/// The module.
#[derive(Default)]
pub struct Vcard;

impl Module for Vcard {
    fn name(&self) -> &'static str {
        "vcard"
    }
    fn specs(&self) -> &'static [Spec] {
        &[Spec {
            id: "XEP-0054",
            version: "1.2",
            status: "complete",
        }]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        r.iq(IqTarget::Account, false, "vCard", NS, self.clone());
        r.iq(IqTarget::Account, true, "vCard", NS, self);
        r.feature(NS);
        r.account_feature(NS);
    }
}

#[async_trait]
impl IqHandler for Vcard {
    async fn handle(&self, services: &Services, iq: &Stanza) -> IqOutcome {
        let (Some(from), Some(payload)) = (iq.from(), iq.iq_payload()) else {
            return Err(StanzaError::new(Condition::BadRequest));
        };
        // No 'to' means the sender's own account (RFC 6120 §10.3.3).
        let owner: &BareJid = iq.to().map_or(from.bare(), |to| to.bare());
        match iq.iq_type() {
            Some(IqType::Get) => get(services, owner).await,
            Some(IqType::Set) if owner == from.bare() => set(services, owner, payload).await,
            // XEP-0054 §3.2 lets a user update only their own vCard.
            Some(IqType::Set) => Err(StanzaError::new(Condition::Forbidden)
                .with_text("only the owner can change a vCard")),
            _ => Err(StanzaError::new(Condition::BadRequest)),
        }
    }
}

/// XEP-0054 §3.1 / §3.3: the stored vCard, or an empty one (the spec allows an empty result
/// or `item-not-found`; an empty result is what clients handle best).
async fn get(services: &Services, owner: &BareJid) -> IqOutcome {
    let stored = services
        .store
        .kv(STORE)
        .get(owner)
        .await
        .map_err(store_error)?;
    let Some(bytes) = stored else {
        return Ok(Some(Element::new("vCard", NS)));
    };
    match decode(&bytes) {
        Some(vcard) => Ok(Some(vcard)),
        None => {
            warn!(what = "vcard-unreadable", user = %owner);
            Err(StanzaError::new(Condition::InternalServerError))
        }
    }
}

/// XEP-0054 §3.2: the vCard replaces the stored one.
async fn set(services: &Services, owner: &BareJid, vcard: &Element) -> IqOutcome {
    let xml = encode(vcard);
    if xml.len() > MAX_BYTES {
        return Err(StanzaError::new(Condition::NotAcceptable)
            .with_text(format!("a vCard may be at most {MAX_BYTES} bytes")));
    }
    services
        .store
        .kv(STORE)
        .set(owner, xml.as_bytes())
        .await
        .map_err(store_error)?;
    Ok(None)
}

/// The stored form: the element as XML, declaring its own namespace.
pub fn encode(vcard: &Element) -> String {
    vcard.to_xml(ns::CLIENT)
}

/// Reads back what [`encode`] stored; `None` if it is not one well-formed element.
pub fn decode(bytes: &[u8]) -> Option<Element> {
    let mut parser = Parser::new(Limits {
        // What was stored passed the stanza limit; the parser's own limit must not refuse it.
        max_stanza_bytes: bytes.len() + 1024,
        ..Limits::default()
    });
    parser.feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    parser.feed(bytes);
    match parser.next_event() {
        Ok(Some(StreamEvent::Open(_))) => {}
        _ => return None,
    }
    match parser.next_event() {
        Ok(Some(StreamEvent::Element(e))) if e.is("vCard", NS) => Some(e),
        _ => None,
    }
}

fn store_error(e: StoreError) -> StanzaError {
    warn!(what = "vcard-store-error", error = %e);
    StanzaError::new(Condition::InternalServerError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_vcard_reads_back_unchanged() {
        let vcard = Element::new("vCard", NS)
            .with_child(Element::new("FN", NS).with_text("Juliet <Capulet> & co"))
            .with_child(
                Element::new("PHOTO", NS)
                    .with_child(Element::new("TYPE", NS).with_text("image/png")),
            );
        let stored = encode(&vcard);
        assert_eq!(decode(stored.as_bytes()), Some(vcard));
    }

    #[test]
    fn something_else_stored_is_not_read_as_a_vcard() {
        assert_eq!(decode(b"<query xmlns='jabber:iq:last'/>"), None);
        assert_eq!(decode(b"<vCard xmlns='vcard-temp'>"), None);
        assert_eq!(decode(b"not xml"), None);
    }
}
