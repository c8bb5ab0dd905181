//! The stanza header over the raw element.

use std::sync::Arc;

use corvid_jid::{Jid, JidError};
use corvid_xml::{Element, ToCompactString};

use crate::{ns, Condition, StanzaError};

/// The three stanza kinds (RFC 6120 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `<iq/>`
    Iq,
    /// `<message/>`
    Message,
    /// `<presence/>`
    Presence,
}

impl Kind {
    /// The element name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Iq => "iq",
            Kind::Message => "message",
            Kind::Presence => "presence",
        }
    }
}

/// `<iq type=…>` (RFC 6120 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IqType {
    /// A request for information.
    Get,
    /// A request to change something.
    Set,
    /// A successful response.
    Result,
    /// A failed response.
    Error,
}

/// `<message type=…>` (RFC 6121 §5.2.2); absent or unknown is `Normal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// One-to-one chat.
    Chat,
    /// An error reply.
    Error,
    /// Multi-user chat.
    Groupchat,
    /// An alert or notice; no reply expected.
    Headline,
    /// A standalone message (the default).
    Normal,
}

/// `<presence type=…>` (RFC 6121 §4.7.1); absent is `Available`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceType {
    /// Available (no `type`).
    Available,
    /// An error reply.
    Error,
    /// A request for current presence.
    Probe,
    /// A subscription request.
    Subscribe,
    /// A subscription approval.
    Subscribed,
    /// No longer available.
    Unavailable,
    /// Unsubscribing.
    Unsubscribe,
    /// A subscription denied or cancelled.
    Unsubscribed,
}

/// Why an element could not be taken as a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not `message`/`presence`/`iq` in the stream's content namespace ("not mine": the
    /// stream error `unsupported-stanza-type`, RFC 6120 §4.9.3.24).
    NotAStanza,
    /// A stanza whose header is wrong; the error to send back (the stream stays up).
    Invalid(Box<Stanza>, StanzaError),
}

/// A stanza: header fields parsed once, the element kept whole so unknown payloads survive.
///
/// The element is shared between copies and copied on write: routing hands a stanza to each
/// recipient's mailbox and keeps it for the hooks that run after delivery and for an error
/// reply, and none of that copies the tree unless someone changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    kind: Kind,
    to: Option<Jid>,
    from: Option<Jid>,
    el: Arc<Element>,
}

impl Stanza {
    /// Parses the header of an element from a stream whose content namespace is `content_ns`.
    /// `to` and `from` must be valid JIDs (`jid-malformed`, RFC 6120 §8.3.3.8); an IQ must have
    /// an `id` and a valid `type` (`bad-request`, RFC 6120 §8.2.3).
    pub fn parse(el: Element, content_ns: &str) -> Result<Stanza, ParseError> {
        let kind = match (el.name.as_str(), el.ns == content_ns) {
            ("message", true) => Kind::Message,
            ("presence", true) => Kind::Presence,
            ("iq", true) => Kind::Iq,
            _ => return Err(ParseError::NotAStanza),
        };
        let parse_jid = |name: &str| -> Result<Option<Jid>, JidError> {
            el.attr(name).map(|s| s.parse::<Jid>()).transpose()
        };
        let to = parse_jid("to");
        let from = parse_jid("from");
        let mut stanza = Stanza {
            kind,
            to: to.clone().ok().flatten(),
            from: from.clone().ok().flatten(),
            el: Arc::new(el),
        };
        if let Err(e) = to {
            // The bad address must not be echoed as `from` of our reply.
            stanza.element_mut().remove_attr("to");
            let err = StanzaError::new(Condition::JidMalformed).with_text(format!("bad 'to': {e}"));
            return Err(ParseError::Invalid(Box::new(stanza), err));
        }
        if let Err(e) = from {
            stanza.element_mut().remove_attr("from");
            let err =
                StanzaError::new(Condition::JidMalformed).with_text(format!("bad 'from': {e}"));
            return Err(ParseError::Invalid(Box::new(stanza), err));
        }
        if kind == Kind::Iq {
            if stanza.id().is_none() {
                let err = StanzaError::new(Condition::BadRequest).with_text("an IQ needs an 'id'");
                return Err(ParseError::Invalid(Box::new(stanza), err));
            }
            if stanza.iq_type().is_none() {
                let err = StanzaError::new(Condition::BadRequest)
                    .with_text("an IQ needs a type of get, set, result or error");
                return Err(ParseError::Invalid(Box::new(stanza), err));
            }
            // RFC 6120 §8.2.3: get and set carry exactly one payload child.
            let requests = matches!(stanza.iq_type(), Some(IqType::Get | IqType::Set));
            if requests && stanza.el.child_elements().count() != 1 {
                let err = StanzaError::new(Condition::BadRequest)
                    .with_text("a get or set IQ has exactly one child");
                return Err(ParseError::Invalid(Box::new(stanza), err));
            }
        }
        Ok(stanza)
    }

    /// Builds a stanza from an element known to be one (server-generated), without checks.
    pub fn from_trusted(kind: Kind, el: Element) -> Stanza {
        let to = el.attr("to").and_then(|s| s.parse().ok());
        let from = el.attr("from").and_then(|s| s.parse().ok());
        Stanza {
            kind,
            to,
            from,
            el: Arc::new(el),
        }
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// `to`, if any.
    pub fn to(&self) -> Option<&Jid> {
        self.to.as_ref()
    }
    /// `from`, if any.
    pub fn from(&self) -> Option<&Jid> {
        self.from.as_ref()
    }
    /// `id`, if any.
    pub fn id(&self) -> Option<&str> {
        self.el.attr("id")
    }
    /// The raw `type`, if any.
    pub fn type_attr(&self) -> Option<&str> {
        self.el.attr("type")
    }
    /// The element.
    pub fn element(&self) -> &Element {
        &self.el
    }
    /// The element, consuming the stanza (copied only if another copy still shares it).
    pub fn into_element(self) -> Element {
        Arc::unwrap_or_clone(self.el)
    }
    /// The element to change: this copy's own (copied first if another copy shares it).
    fn element_mut(&mut self) -> &mut Element {
        Arc::make_mut(&mut self.el)
    }
    /// Sets `from` (RFC 6120 §8.1.2.1: the server stamps it on everything a client sends).
    pub fn set_from(&mut self, from: Jid) {
        self.element_mut()
            .set_attr("from", from.to_compact_string());
        self.from = Some(from);
    }
    /// Sets or removes `to`.
    pub fn set_to(&mut self, to: Option<Jid>) {
        match &to {
            Some(j) => self.element_mut().set_attr("to", j.to_compact_string()),
            None => {
                self.element_mut().remove_attr("to");
            }
        }
        self.to = to;
    }

    /// The IQ type (None for other kinds or an invalid value).
    pub fn iq_type(&self) -> Option<IqType> {
        if self.kind != Kind::Iq {
            return None;
        }
        match self.type_attr()? {
            "get" => Some(IqType::Get),
            "set" => Some(IqType::Set),
            "result" => Some(IqType::Result),
            "error" => Some(IqType::Error),
            _ => None,
        }
    }
    /// The message type (None for other kinds).
    pub fn message_type(&self) -> Option<MessageType> {
        if self.kind != Kind::Message {
            return None;
        }
        Some(match self.type_attr() {
            Some("chat") => MessageType::Chat,
            Some("error") => MessageType::Error,
            Some("groupchat") => MessageType::Groupchat,
            Some("headline") => MessageType::Headline,
            _ => MessageType::Normal,
        })
    }
    /// The presence type (None for other kinds or an unknown value).
    pub fn presence_type(&self) -> Option<PresenceType> {
        if self.kind != Kind::Presence {
            return None;
        }
        match self.type_attr() {
            None => Some(PresenceType::Available),
            Some("error") => Some(PresenceType::Error),
            Some("probe") => Some(PresenceType::Probe),
            Some("subscribe") => Some(PresenceType::Subscribe),
            Some("subscribed") => Some(PresenceType::Subscribed),
            Some("unavailable") => Some(PresenceType::Unavailable),
            Some("unsubscribe") => Some(PresenceType::Unsubscribe),
            Some("unsubscribed") => Some(PresenceType::Unsubscribed),
            Some(_) => None,
        }
    }
    /// True for stanzas of type `error`, which must never be answered with an error (RFC 6120 §8.3.1).
    pub fn is_error(&self) -> bool {
        self.type_attr() == Some("error")
    }
    /// The single payload child of a get/set IQ.
    pub fn iq_payload(&self) -> Option<&Element> {
        self.el.child_elements().next()
    }

    /// The error reply to this stanza (RFC 6120 §8.3.1): same kind and id, `to`/`from` swapped,
    /// type `error`, the original payload kept (for IQs only the request is echoed, as allowed),
    /// plus the `<error/>`. `None` if this stanza is itself an error.
    pub fn error_reply(&self, err: &StanzaError) -> Option<Stanza> {
        if self.is_error() {
            return None;
        }
        let mut el = Element::new(self.kind.as_str(), ns::CLIENT).with_attr("type", "error");
        if let Some(id) = self.id() {
            el.set_attr("id", id);
        }
        if let Some(from) = &self.from {
            el.set_attr("to", from.to_compact_string());
        }
        if let Some(to) = &self.to {
            el.set_attr("from", to.to_compact_string());
        }
        for child in self.el.child_elements() {
            el.push(child.clone());
        }
        el.push(err.to_element());
        Some(Stanza {
            kind: self.kind,
            to: self.from.clone(),
            from: self.to.clone(),
            el: Arc::new(el),
        })
    }

    /// An IQ result to this get/set IQ with an optional payload; `from` is the original `to`
    /// (absent when the IQ had none: it was for the sender's own account, RFC 6120 §10.3.3).
    pub fn iq_result(&self, payload: Option<Element>) -> Stanza {
        let mut el = Element::new("iq", ns::CLIENT).with_attr("type", "result");
        if let Some(id) = self.id() {
            el.set_attr("id", id);
        }
        if let Some(from) = &self.to {
            el.set_attr("from", from.to_compact_string());
        }
        if let Some(to) = &self.from {
            el.set_attr("to", to.to_compact_string());
        }
        if let Some(p) = payload {
            el.push(p);
        }
        Stanza {
            kind: Kind::Iq,
            to: self.from.clone(),
            from: self.to.clone(),
            el: Arc::new(el),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(name: &str) -> Element {
        Element::new(name, ns::CLIENT)
    }

    #[test]
    fn iq_without_id_is_bad_request() {
        // RFC 6120 §8.2.3: id is REQUIRED for IQ stanzas.
        let e = el("iq")
            .with_attr("type", "get")
            .with_child(Element::new("ping", ns::PING));
        match Stanza::parse(e, ns::CLIENT) {
            Err(ParseError::Invalid(_, err)) => assert_eq!(err.condition, Condition::BadRequest),
            other => panic!("expected bad-request, got {other:?}"),
        }
    }

    #[test]
    fn iq_with_bad_type_is_bad_request() {
        let e = el("iq")
            .with_attr("type", "fetch")
            .with_attr("id", "1")
            .with_child(Element::new("ping", ns::PING));
        assert!(
            matches!(Stanza::parse(e, ns::CLIENT), Err(ParseError::Invalid(_, err)) if err.condition == Condition::BadRequest)
        );
    }

    #[test]
    fn get_iq_needs_exactly_one_child() {
        let e = el("iq").with_attr("type", "get").with_attr("id", "1");
        assert!(
            matches!(Stanza::parse(e, ns::CLIENT), Err(ParseError::Invalid(_, err)) if err.condition == Condition::BadRequest)
        );
    }

    #[test]
    fn element_in_other_namespace_is_not_a_stanza() {
        // RFC 6120 §4.9.3.24 unsupported-stanza-type
        let e = Element::new("message", "jabber:server");
        assert_eq!(Stanza::parse(e, ns::CLIENT), Err(ParseError::NotAStanza));
        assert_eq!(
            Stanza::parse(el("foo"), ns::CLIENT),
            Err(ParseError::NotAStanza)
        );
    }

    #[test]
    fn bad_to_is_jid_malformed_and_not_echoed() {
        // RFC 6120 §8.3.3.8
        let e = el("message")
            .with_attr("to", "a@b@c/")
            .with_attr("id", "m1");
        match Stanza::parse(e, ns::CLIENT) {
            Err(ParseError::Invalid(st, err)) => {
                assert_eq!(err.condition, Condition::JidMalformed);
                assert_eq!(st.element().attr("to"), None);
            }
            other => panic!("expected jid-malformed, got {other:?}"),
        }
    }

    #[test]
    fn error_reply_swaps_addresses_and_keeps_id() {
        // RFC 6120 §8.3.1
        let e = el("message")
            .with_attr("to", "romeo@example.net")
            .with_attr("from", "juliet@im.example.com/balcony")
            .with_attr("id", "ju2ba41c")
            .with_attr("type", "chat");
        let st = Stanza::parse(e, ns::CLIENT).unwrap();
        let reply = st
            .error_reply(&StanzaError::new(Condition::RemoteServerNotFound))
            .unwrap();
        let r = reply.element();
        assert_eq!(r.attr("to"), Some("juliet@im.example.com/balcony"));
        assert_eq!(r.attr("from"), Some("romeo@example.net"));
        assert_eq!(r.attr("id"), Some("ju2ba41c"));
        assert_eq!(r.attr("type"), Some("error"));
        assert!(r
            .child("error", ns::CLIENT)
            .unwrap()
            .child("remote-server-not-found", ns::STANZAS)
            .is_some());
    }

    #[test]
    fn errors_are_never_answered_with_errors() {
        let st = Stanza::parse(el("message").with_attr("type", "error"), ns::CLIENT).unwrap();
        assert!(st
            .error_reply(&StanzaError::new(Condition::BadRequest))
            .is_none());
    }

    #[test]
    fn types_parse() {
        let m = Stanza::parse(el("message"), ns::CLIENT).unwrap();
        assert_eq!(m.message_type(), Some(MessageType::Normal));
        let p = Stanza::parse(el("presence").with_attr("type", "unavailable"), ns::CLIENT).unwrap();
        assert_eq!(p.presence_type(), Some(PresenceType::Unavailable));
    }
}
