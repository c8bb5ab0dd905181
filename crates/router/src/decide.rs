//! The routing rules, pure: RFC 6120 §10 (server rules for processing stanzas) and RFC 6121 §8.5
//! (the IM rules for local users), as one function.

use corvid_core::IqTarget;
use corvid_jid::Jid;
use corvid_stanza::{Condition, IqType, Kind, MessageType, PresenceType, Stanza};

use crate::Route;

/// What the registry knows of a recipient account, as the rules need it.
pub type ResourceView<'a> = &'a [Route];

/// Where a stanza goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Deliver to these sessions.
    Deliver(Vec<Route>),
    /// The server answers (an IQ to the server, or to an account on the account's behalf).
    Server(IqTarget),
    /// Presence without `to`: the server broadcasts it (RFC 6121 §4.2.2) and records availability.
    Broadcast,
    /// A message for an account with no available resource: offline storage if a module
    /// provides it, else `service-unavailable` (RFC 6121 §8.5.2.2.1).
    Offline,
    /// Another domain; needs server-to-server.
    Remote,
    /// Answer with this stanza error.
    Error(Condition),
    /// Ignore silently (the RFCs say so for this case).
    Drop,
}

/// Decides where `stanza` goes. `sender` is the sending account (None for server-generated
/// stanzas); `to_is_local` says whether the `to` domain is served here; `resources` are the
/// bound resources of the `to` account; `account_exists` whether it is a local account (only
/// consulted when no resource is bound).
pub fn decide(
    stanza: &Stanza,
    sender: Option<&corvid_jid::BareJid>,
    to_is_local: bool,
    resources: ResourceView<'_>,
    account_exists: bool,
) -> Decision {
    let Some(to) = stanza.to() else {
        // RFC 6120 §10.3: no 'to' means the sender's own account (or, for presence, a broadcast).
        return match stanza.kind() {
            Kind::Iq => iq_to_account(stanza),
            Kind::Presence => Decision::Broadcast,
            Kind::Message => match sender {
                // §10.3.1: treat as addressed to the sender's bare JID.
                Some(_) => to_bare(stanza, resources, true),
                None => Decision::Drop,
            },
        };
    };
    if !to_is_local {
        return Decision::Remote;
    }
    if to.node().is_none() {
        return to_server(stanza, to);
    }
    let exists = account_exists || !resources.is_empty();
    if !exists {
        // RFC 6121 §8.5.1: no such account.
        return match stanza.kind() {
            Kind::Presence => Decision::Drop,
            _ if stanza.is_error() || stanza.iq_type() == Some(IqType::Result) => Decision::Drop,
            _ => Decision::Error(Condition::ServiceUnavailable),
        };
    }
    match to {
        Jid::Bare(_) => to_bare(stanza, resources, exists),
        Jid::Full(full) => match resources.iter().find(|r| r.jid == *full) {
            // §8.5.3.1: a matching resource gets the stanza, whatever its availability.
            Some(r) => Decision::Deliver(vec![r.clone()]),
            None => to_missing_full(stanza, resources, exists),
        },
    }
}

/// RFC 6120 §10.4 / RFC 6121 §8.5 for the server's own domain (and `domain/resource`).
fn to_server(stanza: &Stanza, to: &Jid) -> Decision {
    match stanza.kind() {
        Kind::Iq if to.resource().is_none() => match stanza.iq_type() {
            Some(IqType::Get | IqType::Set) => Decision::Server(IqTarget::Server),
            _ => Decision::Drop,
        },
        Kind::Presence => Decision::Drop,
        _ if stanza.is_error() || stanza.iq_type() == Some(IqType::Result) => Decision::Drop,
        _ => Decision::Error(Condition::ServiceUnavailable),
    }
}

fn iq_to_account(stanza: &Stanza) -> Decision {
    match stanza.iq_type() {
        // RFC 6121 §8.5.2.1.3: the server answers on the account's behalf.
        Some(IqType::Get | IqType::Set) => Decision::Server(IqTarget::Account),
        _ => Decision::Drop,
    }
}

/// RFC 6121 §8.5.2: a local account's bare JID.
fn to_bare(stanza: &Stanza, resources: ResourceView<'_>, exists: bool) -> Decision {
    let available: Vec<&Route> = resources.iter().filter(|r| r.available).collect();
    let non_negative: Vec<&Route> = available
        .iter()
        .copied()
        .filter(|r| r.priority >= 0)
        .collect();
    match stanza.kind() {
        Kind::Iq => {
            if exists {
                iq_to_account(stanza)
            } else {
                Decision::Error(Condition::ServiceUnavailable)
            }
        }
        Kind::Message => match stanza.message_type().unwrap_or(MessageType::Normal) {
            MessageType::Error => Decision::Drop,
            // §8.5.2.1.1 / §8.5.2.2.1: groupchat to a bare JID is an error.
            MessageType::Groupchat => Decision::Error(Condition::ServiceUnavailable),
            // §8.5.2.1.1: headline to every non-negative available resource, else ignored.
            MessageType::Headline => {
                if non_negative.is_empty() {
                    Decision::Drop
                } else {
                    Decision::Deliver(non_negative.into_iter().cloned().collect())
                }
            }
            // §8.5.2.1.1: normal and chat to the highest-priority non-negative resource(s);
            // several with equal priority all receive it.
            MessageType::Normal | MessageType::Chat => {
                match non_negative.iter().map(|r| r.priority).max() {
                    Some(top) => Decision::Deliver(
                        non_negative
                            .into_iter()
                            .filter(|r| r.priority == top)
                            .cloned()
                            .collect(),
                    ),
                    None => Decision::Offline,
                }
            }
        },
        Kind::Presence => match stanza.presence_type() {
            // §8.5.2.1.2: presence to a bare JID goes to every available resource.
            Some(PresenceType::Probe) => Decision::Drop,
            Some(_) if !available.is_empty() => {
                Decision::Deliver(available.into_iter().cloned().collect())
            }
            _ => Decision::Drop,
        },
    }
}

/// RFC 6121 §8.5.3.2: a full JID with no such resource bound.
fn to_missing_full(stanza: &Stanza, resources: ResourceView<'_>, exists: bool) -> Decision {
    match stanza.kind() {
        // §8.5.3.2.2 (and RFC 6120 §10.5.3.2): service-unavailable; results and errors are dropped.
        Kind::Iq => match stanza.iq_type() {
            Some(IqType::Get | IqType::Set) => Decision::Error(Condition::ServiceUnavailable),
            _ => Decision::Drop,
        },
        // §8.5.3.2.1: normal and chat are treated as if sent to the bare JID; groupchat is an
        // error; headline and error are ignored.
        Kind::Message => match stanza.message_type().unwrap_or(MessageType::Normal) {
            MessageType::Normal | MessageType::Chat => to_bare(stanza, resources, exists),
            MessageType::Groupchat => Decision::Error(Condition::ServiceUnavailable),
            MessageType::Headline | MessageType::Error => Decision::Drop,
        },
        // §8.5.3.2.3: subscription-related presence is processed as for the bare JID; the rest
        // is ignored.
        Kind::Presence => match stanza.presence_type() {
            Some(
                PresenceType::Subscribe
                | PresenceType::Subscribed
                | PresenceType::Unsubscribe
                | PresenceType::Unsubscribed,
            ) => to_bare(stanza, resources, exists),
            _ => Decision::Drop,
        },
    }
}

#[cfg(test)]
mod tests {
    use corvid_core::{NodeId, SessionId};
    use corvid_stanza::ns;
    use corvid_xml::Element;

    use super::*;

    fn route(res: &str, session: u64, available: bool, priority: i8) -> Route {
        Route {
            jid: format!("bob@localhost/{res}").parse().unwrap(),
            node: NodeId(0),
            session: SessionId(session),
            priority,
            available,
        }
    }

    fn stanza(kind: &str, ty: Option<&str>, to: Option<&str>) -> Stanza {
        let mut e = Element::new(kind, ns::CLIENT).with_attr("id", "x");
        if let Some(t) = ty {
            e.set_attr("type", t);
        }
        if let Some(t) = to {
            e.set_attr("to", t);
        }
        if kind == "iq" && matches!(ty, Some("get" | "set")) {
            e.push(Element::new("ping", ns::PING));
        }
        Stanza::parse(e, ns::CLIENT).unwrap()
    }

    fn sessions(d: &Decision) -> Vec<u64> {
        match d {
            Decision::Deliver(rs) => rs.iter().map(|r| r.session.0).collect(),
            _ => vec![],
        }
    }

    /// The rules as a table: (case, kind, type, to, resources, account exists, expected).
    #[test]
    fn routing_rules_table() {
        use Decision as D;
        let phone = route("phone", 1, true, 5);
        let laptop = route("laptop", 2, true, 5);
        let negative = route("bot", 3, true, -1);
        let unavailable = route("idle", 4, false, 10);
        let low = route("old", 5, true, 1);
        let two_top = [phone.clone(), laptop.clone(), low.clone()];
        let sender: corvid_jid::BareJid = "alice@localhost".parse().unwrap();

        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            &str,
            Option<&str>,
            Option<&str>,
            Vec<Route>,
            bool,
            Decision,
        )> = vec![
            (
                "RFC 6120 §10.3.3 iq without to is for the sender's account",
                "iq",
                Some("get"),
                None,
                vec![],
                true,
                D::Server(IqTarget::Account),
            ),
            (
                "RFC 6121 §4.2.2 presence without to is a broadcast",
                "presence",
                None,
                None,
                vec![],
                true,
                D::Broadcast,
            ),
            (
                "RFC 6120 §10.4 iq get to the domain is the server's",
                "iq",
                Some("get"),
                Some("localhost"),
                vec![],
                false,
                D::Server(IqTarget::Server),
            ),
            (
                "iq result to the domain is consumed",
                "iq",
                Some("result"),
                Some("localhost"),
                vec![],
                false,
                D::Drop,
            ),
            (
                "message to the domain: service-unavailable",
                "message",
                Some("chat"),
                Some("localhost"),
                vec![],
                false,
                D::Error(Condition::ServiceUnavailable),
            ),
            (
                "iq to domain/resource: service-unavailable",
                "iq",
                Some("get"),
                Some("localhost/x"),
                vec![],
                false,
                D::Error(Condition::ServiceUnavailable),
            ),
            (
                "RFC 6120 §10.4.? other domains need s2s",
                "message",
                Some("chat"),
                Some("romeo@example.net"),
                vec![],
                false,
                D::Remote,
            ),
            (
                "RFC 6121 §8.5.1 message to unknown user: service-unavailable",
                "message",
                Some("chat"),
                Some("nobody@localhost"),
                vec![],
                false,
                D::Error(Condition::ServiceUnavailable),
            ),
            (
                "RFC 6121 §8.5.1 iq to unknown user: service-unavailable",
                "iq",
                Some("get"),
                Some("nobody@localhost"),
                vec![],
                false,
                D::Error(Condition::ServiceUnavailable),
            ),
            (
                "RFC 6121 §8.5.1 presence to unknown user is ignored",
                "presence",
                Some("subscribe"),
                Some("nobody@localhost"),
                vec![],
                false,
                D::Drop,
            ),
            (
                "RFC 6121 §8.5.2.1.1 chat to bare goes to all highest-priority resources",
                "message",
                Some("chat"),
                Some("bob@localhost"),
                two_top.to_vec(),
                true,
                D::Deliver(vec![phone.clone(), laptop.clone()]),
            ),
            (
                "RFC 6121 §8.5.2.1.1 negative priority never gets bare-JID messages",
                "message",
                None,
                Some("bob@localhost"),
                vec![negative.clone()],
                true,
                D::Offline,
            ),
            (
                "RFC 6121 §8.5.2.1.1 unavailable resources do not count",
                "message",
                Some("chat"),
                Some("bob@localhost"),
                vec![unavailable.clone()],
                true,
                D::Offline,
            ),
            (
                "RFC 6121 §8.5.2.1.1 headline goes to every non-negative resource",
                "message",
                Some("headline"),
                Some("bob@localhost"),
                vec![phone.clone(), low.clone(), negative.clone()],
                true,
                D::Deliver(vec![phone.clone(), low.clone()]),
            ),
            (
                "RFC 6121 §8.5.2.2.1 headline with no resource is ignored",
                "message",
                Some("headline"),
                Some("bob@localhost"),
                vec![],
                true,
                D::Drop,
            ),
            (
                "RFC 6121 §8.5.2.1.1 groupchat to bare is an error",
                "message",
                Some("groupchat"),
                Some("bob@localhost"),
                vec![phone.clone()],
                true,
                D::Error(Condition::ServiceUnavailable),
            ),
            (
                "RFC 6121 §8.5.2.2.1 normal with no resource: offline",
                "message",
                None,
                Some("bob@localhost"),
                vec![],
                true,
                D::Offline,
            ),
            (
                "message errors to bare are ignored",
                "message",
                Some("error"),
                Some("bob@localhost"),
                vec![phone.clone()],
                true,
                D::Drop,
            ),
            (
                "RFC 6121 §8.5.2.1.3 iq to bare is answered by the server",
                "iq",
                Some("get"),
                Some("bob@localhost"),
                vec![phone.clone()],
                true,
                D::Server(IqTarget::Account),
            ),
            (
                "RFC 6121 §8.5.2.1.2 presence to bare goes to every available resource",
                "presence",
                None,
                Some("bob@localhost"),
                vec![phone.clone(), negative.clone(), unavailable.clone()],
                true,
                D::Deliver(vec![phone.clone(), negative.clone()]),
            ),
            (
                "RFC 6121 §8.5.3.1 full JID match is delivered even if unavailable",
                "iq",
                Some("get"),
                Some("bob@localhost/idle"),
                vec![phone.clone(), unavailable.clone()],
                true,
                D::Deliver(vec![unavailable.clone()]),
            ),
            (
                "RFC 6121 §8.5.3.1 message to a bound full JID",
                "message",
                Some("chat"),
                Some("bob@localhost/phone"),
                vec![phone.clone(), laptop.clone()],
                true,
                D::Deliver(vec![phone.clone()]),
            ),
            (
                "RFC 6121 §8.5.3.2.2 iq to an unbound full JID: service-unavailable",
                "iq",
                Some("get"),
                Some("bob@localhost/gone"),
                vec![phone.clone()],
                true,
                D::Error(Condition::ServiceUnavailable),
            ),
            (
                "RFC 6121 §8.5.3.2.1 chat to an unbound full JID goes to the bare JID",
                "message",
                Some("chat"),
                Some("bob@localhost/gone"),
                vec![phone.clone()],
                true,
                D::Deliver(vec![phone.clone()]),
            ),
            (
                "RFC 6121 §8.5.3.2.1 headline to an unbound full JID is ignored",
                "message",
                Some("headline"),
                Some("bob@localhost/gone"),
                vec![phone.clone()],
                true,
                D::Drop,
            ),
            (
                "RFC 6121 §8.5.3.2.1 groupchat to an unbound full JID is an error",
                "message",
                Some("groupchat"),
                Some("bob@localhost/gone"),
                vec![phone.clone()],
                true,
                D::Error(Condition::ServiceUnavailable),
            ),
            (
                "RFC 6121 §8.5.3.2.3 available presence to an unbound full JID is ignored",
                "presence",
                None,
                Some("bob@localhost/gone"),
                vec![phone.clone()],
                true,
                D::Drop,
            ),
            (
                "RFC 6121 §8.5.3.2.3 subscription presence to an unbound full JID is as for bare",
                "presence",
                Some("subscribe"),
                Some("bob@localhost/gone"),
                vec![phone.clone()],
                true,
                D::Deliver(vec![phone.clone()]),
            ),
        ];
        for (case, kind, ty, to, resources, exists, expected) in cases {
            let st = stanza(kind, ty, to);
            let local = to.map(|t| !t.contains("example.net")).unwrap_or(true);
            let got = decide(&st, Some(&sender), local, &resources, exists);
            assert_eq!(got, expected, "{case}: sessions {:?}", sessions(&got));
        }
    }
}
