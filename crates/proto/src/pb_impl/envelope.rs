//! [`RoutedStanza`] ⇄ [`v1::Envelope`].

use std::num::NonZeroU64;

use corvid_jid::Jid;

use crate::{v1, Malformed, RoutedStanza};

impl From<RoutedStanza> for v1::Envelope {
    fn from(r: RoutedStanza) -> Self {
        Self {
            seq: r.seq,
            from: r.from.to_string().into_bytes(),
            to: r.to.to_string().into_bytes(),
            stanza: r.stanza,
            session: r.session.map_or(0, NonZeroU64::get),
            trace: r.trace,
            session_jid: r
                .session_jid
                .map(|j| j.to_string().into_bytes())
                .unwrap_or_default(),
            registry_index: r.registry_index,
        }
    }
}

impl TryFrom<v1::Envelope> for RoutedStanza {
    type Error = Malformed;

    /// Checks an envelope from a peer edge. The caller keeps `seq` beforehand to answer a
    /// refused envelope with `DELIVERY_STATUS_INVALID`.
    fn try_from(e: v1::Envelope) -> Result<Self, Malformed> {
        let from = jid("from", &e.from)?;
        let to = jid("to", &e.to)?;
        if e.stanza.is_empty() {
            return Err(Malformed::EmptyStanza);
        }
        let session_jid = if e.session_jid.is_empty() {
            None
        } else {
            match jid("session_jid", &e.session_jid)? {
                Jid::Full(full) => Some(full),
                Jid::Bare(_) => {
                    return Err(Malformed::NotFullJid {
                        field: "session_jid",
                    })
                }
            }
        };
        Ok(Self {
            seq: e.seq,
            from,
            to,
            stanza: e.stanza,
            session: NonZeroU64::new(e.session),
            session_jid,
            trace: e.trace,
            registry_index: e.registry_index,
        })
    }
}

/// Parses the JID in `field`, which must be UTF-8 (it is `bytes` on the wire; see router.proto).
fn jid(field: &'static str, raw: &[u8]) -> Result<Jid, Malformed> {
    let text = std::str::from_utf8(raw).map_err(|_| Malformed::NotUtf8 { field })?;
    text.parse()
        .map_err(|source| Malformed::BadJid { field, source })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use corvid_jid::JidError;
    use prost::bytes::Bytes;
    use prost::Message;

    use super::*;

    fn envelope() -> v1::Envelope {
        v1::Envelope {
            seq: 3,
            from: b"alice@example.org/phone".to_vec(),
            to: b"bob@example.org".to_vec(),
            stanza: Bytes::from_static(b"<message xmlns='jabber:client'><body>hi</body></message>"),
            session: 0,
            trace: HashMap::from([(
                "traceparent".to_owned(),
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
            )]),
            session_jid: Vec::new(),
            registry_index: 0,
        }
    }

    #[test]
    fn size() {
        // Moved through channels once per stanza: keep an eye on it.
        // Three JIDs (from, to, the session's) make most of it.
        let size = std::mem::size_of::<RoutedStanza>();
        assert!(size <= 384, "{size} bytes");
    }

    #[test]
    fn a_valid_envelope_is_checked_and_round_trips_through_the_wire() {
        let wire = envelope().encode_to_vec();
        let routed =
            RoutedStanza::try_from(v1::Envelope::decode(wire.as_slice()).unwrap()).unwrap();
        assert_eq!(routed.seq, 3);
        assert_eq!(routed.from.to_string(), "alice@example.org/phone");
        assert_eq!(routed.to.to_string(), "bob@example.org");
        assert_eq!(routed.session, None);
        assert_eq!(
            routed.trace.get("traceparent").map(String::as_str),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(v1::Envelope::from(routed), envelope());
    }

    #[test]
    fn a_nonzero_session_targets_that_session() {
        let routed = RoutedStanza::try_from(v1::Envelope {
            session: 17,
            ..envelope()
        })
        .unwrap();
        assert_eq!(routed.session, NonZeroU64::new(17));
        assert_eq!(v1::Envelope::from(routed).session, 17);
    }

    #[test]
    fn a_session_jid_names_the_full_jid_the_session_must_hold() {
        let routed = RoutedStanza::try_from(v1::Envelope {
            session: 17,
            session_jid: b"bob@example.org/desk".to_vec(),
            ..envelope()
        })
        .unwrap();
        assert_eq!(
            routed.session_jid.as_ref().map(ToString::to_string),
            Some("bob@example.org/desk".to_owned())
        );
        assert_eq!(
            v1::Envelope::from(routed).session_jid,
            b"bob@example.org/desk".to_vec()
        );
        assert_eq!(
            RoutedStanza::try_from(envelope()).unwrap().session_jid,
            None
        );
    }

    #[test]
    fn a_bare_session_jid_is_refused() {
        let e = v1::Envelope {
            session_jid: b"bob@example.org".to_vec(),
            ..envelope()
        };
        assert_eq!(
            RoutedStanza::try_from(e),
            Err(Malformed::NotFullJid {
                field: "session_jid"
            })
        );
    }

    #[test]
    fn jids_are_normalized_on_the_way_in() {
        let routed = RoutedStanza::try_from(v1::Envelope {
            to: "Bob@EXAMPLE.org".as_bytes().to_vec(),
            ..envelope()
        })
        .unwrap();
        assert_eq!(routed.to.to_string(), "bob@example.org");
    }

    #[test]
    fn invalid_utf8_in_to_is_refused() {
        let e = v1::Envelope {
            to: vec![b'b', 0xff, 0xfe, b'@', b'x'],
            ..envelope()
        };
        // Survives protobuf decoding (it is `bytes`), then the conversion refuses it.
        let decoded = v1::Envelope::decode(e.encode_to_vec().as_slice()).unwrap();
        let err = RoutedStanza::try_from(decoded).unwrap_err();
        assert_eq!(err, Malformed::NotUtf8 { field: "to" });
        assert_eq!(err.to_string(), "`to` is not UTF-8");
    }

    #[test]
    fn invalid_utf8_in_from_is_refused() {
        let e = v1::Envelope {
            from: vec![0xc3, 0x28],
            ..envelope()
        };
        assert_eq!(
            RoutedStanza::try_from(e),
            Err(Malformed::NotUtf8 { field: "from" })
        );
    }

    #[test]
    fn utf8_that_is_not_a_jid_is_refused_with_the_reason() {
        let e = v1::Envelope {
            to: b"bob@".to_vec(),
            ..envelope()
        };
        let err = RoutedStanza::try_from(e).unwrap_err();
        assert_eq!(
            err,
            Malformed::BadJid {
                field: "to",
                source: JidError::EmptyDomain
            }
        );
        assert_eq!(err.to_string(), "`to` is not a JID: domainpart is empty");
    }

    #[test]
    fn an_empty_stanza_is_refused() {
        let e = v1::Envelope {
            stanza: Bytes::new(),
            ..envelope()
        };
        assert_eq!(RoutedStanza::try_from(e), Err(Malformed::EmptyStanza));
    }
}
