//! The stanza bytes of an envelope: written by the sending edge with its namespace declared on
//! the element, parsed again by the receiving one.

use corvid_stanza::{ns, Kind, Stanza};
use corvid_xml::{Element, Limits, Parser, StreamEvent, XmlError};
use prost::bytes::Bytes;

/// Bounds on parsing an envelope's stanza. It passed the sending edge's client limits already,
/// or the server made it; these only bound the work a broken or hostile peer can cause. A gRPC
/// message is at most 4 MiB by default, so a stanza cannot be larger anyway.
const LIMITS: Limits = Limits {
    max_stanza_bytes: 4 * 1024 * 1024,
    max_depth: 256,
    max_attributes: 1024,
};

/// Why the stanza bytes of an envelope were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadStanza {
    /// Something after the first element (a second element, or stray text).
    #[error("more than one element")]
    Trailing,
    /// An element that is not `message`, `presence` or `iq` in `jabber:client`.
    #[error("<{name} xmlns='{ns}'> is not a stanza")]
    NotAStanza {
        /// Its local name.
        name: String,
        /// Its namespace.
        ns: String,
    },
    /// The bytes end before the element does.
    #[error("truncated")]
    Truncated,
    /// Not well-formed, or over the limits.
    #[error("{0}")]
    Xml(#[from] XmlError),
}

/// Serializes a stanza for an envelope, its namespace declared on the element.
pub(crate) fn encode(stanza: &Stanza) -> Bytes {
    Bytes::from(stanza.element().to_xml("").into_bytes())
}

/// Parses an envelope's stanza: exactly one `message`, `presence` or `iq` in `jabber:client`.
/// The header is taken as the sending edge stamped and checked it ([`Stanza::from_trusted`]).
pub(crate) fn decode(bytes: &[u8]) -> Result<Stanza, BadStanza> {
    let mut parser = Parser::new(LIMITS);
    parser.feed(
        format!(
            "<stream:stream xmlns='{}' xmlns:stream='{}'>",
            ns::CLIENT,
            ns::STREAM
        )
        .as_bytes(),
    );
    parser.feed(bytes);
    let element = loop {
        match parser.next_event()? {
            Some(StreamEvent::Open(_)) => {}
            Some(StreamEvent::Element(e)) => break e,
            // A `</stream:stream>` inside the bytes: nothing a stanza may contain.
            Some(StreamEvent::Close) => return Err(BadStanza::Trailing),
            None => return Err(BadStanza::Truncated),
        }
    };
    if parser.next_event()?.is_some() || parser.buffered() > 0 {
        return Err(BadStanza::Trailing);
    }
    let kind = kind(&element).ok_or_else(|| BadStanza::NotAStanza {
        name: element.name.to_string(),
        ns: element.ns.to_string(),
    })?;
    Ok(Stanza::from_trusted(kind, element))
}

fn kind(el: &Element) -> Option<Kind> {
    if el.ns != ns::CLIENT {
        return None;
    }
    match el.name.as_str() {
        "message" => Some(Kind::Message),
        "presence" => Some(Kind::Presence),
        "iq" => Some(Kind::Iq),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Stanza {
        let el = Element::new("message", ns::CLIENT)
            .with_attr("from", "alice@example.org/phone")
            .with_attr("to", "bob@example.org/laptop")
            .with_attr("type", "chat")
            .with_child(Element::new("body", ns::CLIENT).with_text("fish & <chips>"));
        Stanza::from_trusted(Kind::Message, el)
    }

    #[test]
    fn a_stanza_round_trips() {
        let st = message();
        let bytes = encode(&st);
        assert!(bytes.starts_with(b"<message xmlns='jabber:client'"));
        assert_eq!(decode(&bytes), Ok(st));
    }

    #[test]
    fn trailing_whitespace_is_fine() {
        let mut bytes = encode(&message()).to_vec();
        bytes.extend_from_slice(b"\n  ");
        assert!(decode(&bytes).is_ok());
    }

    #[test]
    fn two_elements_are_refused() {
        let mut bytes = encode(&message()).to_vec();
        bytes.extend_from_slice(&encode(&message()));
        assert_eq!(decode(&bytes), Err(BadStanza::Trailing));
    }

    #[test]
    fn a_stream_close_is_refused() {
        let mut bytes = encode(&message()).to_vec();
        bytes.extend_from_slice(b"</stream:stream>");
        assert_eq!(decode(&bytes), Err(BadStanza::Trailing));
    }

    #[test]
    fn a_truncated_stanza_is_refused() {
        let bytes = encode(&message());
        assert_eq!(decode(&bytes[..bytes.len() - 3]), Err(BadStanza::Truncated));
    }

    #[test]
    fn an_element_that_is_not_a_stanza_is_refused_with_its_name() {
        let err = decode(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").unwrap_err();
        assert_eq!(
            err.to_string(),
            "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'> is not a stanza"
        );
        assert!(matches!(
            decode(b"<message xmlns='jabber:server'/>"),
            Err(BadStanza::NotAStanza { .. })
        ));
    }

    #[test]
    fn xml_that_is_not_well_formed_is_refused() {
        assert!(matches!(
            decode(b"<message xmlns='jabber:client'><body></message>"),
            Err(BadStanza::Xml(_))
        ));
        assert!(matches!(
            decode(b"<!DOCTYPE x><message xmlns='jabber:client'/>"),
            Err(BadStanza::Xml(_))
        ));
    }
}
