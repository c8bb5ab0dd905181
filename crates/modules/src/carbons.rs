//! XEP-0280: Message Carbons.
//!
//! A session turns carbons on and off with `<enable/>`/`<disable/>` (§4, §5); the module keeps
//! the set of enabled sessions and forgets a session when it closes.
//!
//! ```text
//!  alice/phone sends an eligible message (§6)
//!     │ client-stanza (late, so a hook that refuses the message stops the copies too)
//!     └─▶ <sent/> copy to every other available carbons-enabled resource of alice (§8)
//!
//!  a message is delivered to bob/laptop (router: `delivered`, once, with who took it)
//!     └─▶ <received/> copy to every available carbons-enabled resource of bob that did not
//!         take the original (§7)
//!
//!  deliver: <private/> is removed before the recipient sees it (§9)
//! ```
//!
//! Copies go straight into the target session's mailbox: routed like a normal message, a copy
//! for a resource that disappeared meanwhile would fall back to the bare-JID rules and land on
//! another resource, or in offline storage.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use corvid_core::{
    Event, Flow, Hook, IqHandler, IqOutcome, IqTarget, Module, Registrar, Route, Services,
    SessionId, Spec,
};
use corvid_jid::{BareJid, FullJid, Jid};
use corvid_stanza::{ns, Condition, Kind, Stanza, StanzaError};
use corvid_xml::{Element, Node, ToCompactString};

/// The carbons namespace (XEP-0280 §3).
pub const NS: &str = "urn:xmpp:carbons:2";
/// Stanza forwarding (XEP-0297).
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// Message processing hints (XEP-0334), for `<no-copy/>`.
const NS_HINTS: &str = "urn:xmpp:hints";
/// MUC user namespace (XEP-0045): its `<x/>` marks messages from a room, private ones included.
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";

/// Priority of the `client-stanza` listener: after the hooks that may refuse a message.
const OUTBOUND_PRIORITY: i32 = -100;
/// Priority of the `deliver` listener that removes `<private/>`: before the others, so that a
/// listener holding the message back (client state indication) holds the cleaned copy.
const STRIP_PRIORITY: i32 = 100;

/// The module.
#[derive(Default)]
pub struct Carbons {
    /// Sessions that enabled carbons (a session's state lives as long as the session, §4).
    enabled: Mutex<HashSet<SessionId>>,
}

impl Module for Carbons {
    fn name(&self) -> &'static str {
        "carbons"
    }
    fn specs(&self) -> &'static [Spec] {
        &[Spec {
            id: "XEP-0280",
            version: "1.0.1",
            status: "complete",
        }]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        // §3: the server advertises support in its own disco#info.
        r.feature(NS);
        r.iq(IqTarget::Account, true, "enable", NS, self.clone());
        r.iq(IqTarget::Account, true, "disable", NS, self.clone());
        r.hook("client-stanza", OUTBOUND_PRIORITY, self.clone());
        r.hook("delivered", 0, self.clone());
        r.hook("deliver", STRIP_PRIORITY, self.clone());
        r.hook("session-closed", 0, self);
    }
}

/// Which way a copied message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received by another resource of the account (§7).
    Received,
    /// Sent by another resource of the account (§8).
    Sent,
}

impl Direction {
    fn element_name(self) -> &'static str {
        match self {
            Direction::Received => "received",
            Direction::Sent => "sent",
        }
    }
}

/// XEP-0280 §6: whether a message is copied. Type `chat`, or `normal` (also absent or unknown,
/// RFC 6121 §5.2.2) with a `<body/>`; never errors, groupchat or headlines, never a message
/// marked `<private/>` (§9) or `<no-copy/>` (XEP-0334), never one from a MUC room (its
/// `<x xmlns='…muc#user'/>`, private messages included), and never a carbon itself.
pub fn eligible(message: &Element) -> bool {
    let typed_ok = match message.attr("type") {
        Some("chat") => true,
        Some("error" | "groupchat" | "headline") => false,
        _ => message.child("body", ns::CLIENT).is_some(),
    };
    typed_ok
        && !message.child_elements().any(|c| {
            c.is("private", NS)
                || c.is("sent", NS)
                || c.is("received", NS)
                || c.is("no-copy", NS_HINTS)
                || c.is("x", NS_MUC_USER)
        })
}

/// The copy for `to`: `<message from=account to=full type=…><sent|received
/// xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>original</forwarded>…`
/// (§7, §8: `from` is the account's bare JID, the type is kept).
pub fn wrap(direction: Direction, original: &Element, account: &BareJid, to: &FullJid) -> Element {
    let mut copy = Element::new("message", ns::CLIENT)
        .with_attr("from", account.to_compact_string())
        .with_attr("to", to.to_compact_string());
    if let Some(ty) = original.attr("type") {
        copy.set_attr("type", ty);
    }
    copy.with_child(
        Element::new(direction.element_name(), NS)
            .with_child(Element::new("forwarded", NS_FORWARD).with_child(original.clone())),
    )
}

impl Carbons {
    fn is_enabled(&self, session: SessionId) -> bool {
        self.enabled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&session)
    }

    fn set_enabled(&self, session: SessionId, on: bool) {
        let mut set = self.enabled.lock().unwrap_or_else(|e| e.into_inner());
        if on {
            set.insert(session);
        } else {
            set.remove(&session);
        }
    }

    /// The account's resources that may want copies: the available ones (RFC 6121 §4.2), on
    /// any node. Whether a session enabled carbons is known only on its own node, so the copy
    /// goes to every available resource and that node's `deliver` hook drops it for a session
    /// that did not enable them (see [`Carbons::unwanted`]).
    fn targets(&self, services: &Services, account: &BareJid) -> Vec<Route> {
        let mut routes = services.registry.resources(account);
        routes.retain(|r| r.available);
        routes
    }

    /// True for a carbon copy (`<sent/>` or `<received/>` from the account's bare JID, §6)
    /// arriving for a session of that account that has not enabled carbons (§4).
    fn unwanted(&self, jid: &FullJid, session: SessionId, stanza: &Stanza) -> bool {
        let el = stanza.element();
        // Cheapest first: nearly every message delivered is no carbon at all.
        stanza.kind() == Kind::Message
            && (el.child("sent", NS).is_some() || el.child("received", NS).is_some())
            && el.attr("from") == Some(jid.bare().to_compact_string().as_str())
            && !self.is_enabled(session)
    }

    async fn send_copies(
        &self,
        services: &Services,
        direction: Direction,
        original: &Element,
        account: &BareJid,
        routes: &[Route],
    ) {
        for route in routes {
            let copy = wrap(direction, original, account, &route.jid);
            if !services
                .sender
                .to_route(route, Stanza::from_trusted(Kind::Message, copy))
                .await
            {
                tracing::debug!(what = "carbon-undelivered", session = %route.session);
            }
        }
    }

    /// §8: copies of what a resource sent, to the account's other enabled resources. A full-JID
    /// recipient of the same account gets the original and no copy.
    async fn outbound(&self, services: &Services, session: SessionId, stanza: &Stanza) {
        let Some(Jid::Full(from)) = stanza.from() else {
            return;
        };
        let account = from.bare();
        let recipient = match stanza.to() {
            Some(Jid::Full(to)) => Some(to),
            _ => None,
        };
        let wanted = |r: &Route| r.available && r.session != session && Some(&r.jid) != recipient;
        // Nearly always nobody (one resource): asked first, without copying the routes.
        if !services.registry.any_resource(account, &mut |r| wanted(r)) {
            return;
        }
        let mut targets = self.targets(services, account);
        targets.retain(wanted);
        self.send_copies(
            services,
            Direction::Sent,
            stanza.element(),
            account,
            &targets,
        )
        .await;
    }

    /// §7: copies of what the account received, to its enabled resources that did not take the
    /// original. A message between two resources of the same account is covered by the `sent`
    /// copies already.
    async fn inbound(
        &self,
        services: &Services,
        account: &BareJid,
        stanza: &Stanza,
        took_it: &[SessionId],
    ) {
        if stanza.from().is_some_and(|f| f.bare() == account) {
            return;
        }
        let wanted = |r: &Route| r.available && !took_it.contains(&r.session);
        if !services.registry.any_resource(account, &mut |r| wanted(r)) {
            return;
        }
        let mut targets = self.targets(services, account);
        targets.retain(wanted);
        self.send_copies(
            services,
            Direction::Received,
            stanza.element(),
            account,
            &targets,
        )
        .await;
    }
}

/// Removes `<private xmlns='urn:xmpp:carbons:2'/>` (§9: the receiving server SHOULD remove it
/// before delivering to the recipient). None if there was none.
fn without_private(message: &Element) -> Option<Element> {
    message.child("private", NS)?;
    let mut el = message.clone();
    el.children
        .retain(|n| !matches!(n, Node::Element(e) if e.is("private", NS)));
    Some(el)
}

#[async_trait]
impl Hook for Carbons {
    fn wants(&self, event: &Event<'_>) -> bool {
        // Exactly the cases `on_with` acts on.
        match event {
            Event::ClientStanza { stanza, .. } => {
                stanza.kind() == Kind::Message && eligible(stanza.element())
            }
            Event::Delivered { stanza, .. } => {
                stanza.kind() == Kind::Message && eligible(stanza.element())
            }
            Event::Deliver { stanza, .. } => {
                let el = stanza.element();
                stanza.kind() == Kind::Message
                    && (el.child("private", NS).is_some()
                        || el.child("sent", NS).is_some()
                        || el.child("received", NS).is_some())
            }
            _ => true,
        }
    }

    async fn on_with(&self, services: &Services, event: &mut Event<'_>) -> Flow {
        match event {
            Event::ClientStanza { session, stanza }
                if stanza.kind() == Kind::Message && eligible(stanza.element()) =>
            {
                self.outbound(services, *session, stanza).await;
            }
            Event::Delivered {
                account,
                stanza,
                sessions,
            } if stanza.kind() == Kind::Message && eligible(stanza.element()) => {
                self.inbound(services, account, stanza, sessions).await;
            }
            Event::Deliver {
                jid,
                session,
                stanza,
            } if self.unwanted(jid, *session, stanza) => {
                return Flow::Stop;
            }
            Event::Deliver { stanza, .. } if stanza.kind() == Kind::Message => {
                if let Some(el) = without_private(stanza.element()) {
                    **stanza = Stanza::from_trusted(Kind::Message, el);
                }
            }
            Event::SessionClosed { session, .. } => self.set_enabled(*session, false),
            _ => {}
        }
        Flow::Continue
    }
}

#[async_trait]
impl IqHandler for Carbons {
    /// §4, §5: enable or disable for the sending session; repeating either is not an error
    /// (§10.1).
    async fn handle(&self, services: &Services, iq: &Stanza) -> IqOutcome {
        let Some(Jid::Full(from)) = iq.from() else {
            return Err(StanzaError::new(Condition::NotAllowed)
                .with_text("carbons are set by a client session"));
        };
        // §4.1/§5.1: only for one's own sessions (an IQ to one's own bare JID or without 'to').
        if iq.to().is_some_and(|to| to.bare() != from.bare()) {
            return Err(StanzaError::new(Condition::NotAllowed)
                .with_text("carbons can only be set for one's own sessions"));
        }
        let Some(route) = services.registry.lookup(from) else {
            return Err(
                StanzaError::new(Condition::NotAllowed).with_text("the session is not bound here")
            );
        };
        let on = iq.iq_payload().is_some_and(|p| p.name == "enable");
        self.set_enabled(route.session, on);
        tracing::debug!(what = "carbons", jid = %from, enabled = on);
        Ok(None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use super::*;

    fn msg(ty: Option<&str>, children: Vec<Element>) -> Element {
        let mut el = Element::new("message", ns::CLIENT)
            .with_attr("from", "juliet@localhost/balcony")
            .with_attr("to", "romeo@localhost/garden");
        if let Some(t) = ty {
            el.set_attr("type", t);
        }
        for c in children {
            el.push(c);
        }
        el
    }

    fn body() -> Element {
        Element::new("body", ns::CLIENT).with_text("hi")
    }

    #[test]
    fn eligibility_follows_section_6() {
        let composing = Element::new("composing", "http://jabber.org/protocol/chatstates");
        let cases: Vec<(&str, Element, bool)> = vec![
            (
                "§6: chat is eligible",
                msg(Some("chat"), vec![body()]),
                true,
            ),
            (
                "§10.2: chat states (type chat) are eligible",
                msg(Some("chat"), vec![composing]),
                true,
            ),
            ("§6: normal with a body", msg(None, vec![body()]), true),
            (
                "§6: explicit normal with a body",
                msg(Some("normal"), vec![body()]),
                true,
            ),
            ("§6: normal without a body", msg(None, vec![]), false),
            (
                "§6: errors are not",
                msg(Some("error"), vec![body()]),
                false,
            ),
            (
                "§6: groupchat is not",
                msg(Some("groupchat"), vec![body()]),
                false,
            ),
            (
                "§6: headlines are not",
                msg(Some("headline"), vec![body()]),
                false,
            ),
            (
                "§9: private messages are not",
                msg(Some("chat"), vec![body(), Element::new("private", NS)]),
                false,
            ),
            (
                "XEP-0334: no-copy",
                msg(
                    Some("chat"),
                    vec![body(), Element::new("no-copy", NS_HINTS)],
                ),
                false,
            ),
            (
                "§6: MUC private messages are not",
                msg(Some("chat"), vec![body(), Element::new("x", NS_MUC_USER)]),
                false,
            ),
            (
                "a carbon is not copied again",
                msg(Some("chat"), vec![Element::new("received", NS)]),
                false,
            ),
        ];
        for (case, el, expected) in cases {
            assert_eq!(eligible(&el), expected, "{case}");
        }
    }

    #[test]
    fn copies_are_wrapped_as_section_7_and_8_show() {
        let account: BareJid = "romeo@localhost".parse().unwrap();
        let to: FullJid = "romeo@localhost/home".parse().unwrap();
        let original = msg(Some("chat"), vec![body()]);
        for (dir, name) in [(Direction::Received, "received"), (Direction::Sent, "sent")] {
            let copy = wrap(dir, &original, &account, &to);
            assert_eq!(copy.attr("from"), Some("romeo@localhost"));
            assert_eq!(copy.attr("to"), Some("romeo@localhost/home"));
            assert_eq!(copy.attr("type"), Some("chat"));
            let inner = copy
                .child(name, NS)
                .and_then(|c| c.child("forwarded", NS_FORWARD))
                .and_then(|f| f.child("message", ns::CLIENT))
                .unwrap();
            assert_eq!(inner, &original);
        }
        let untyped = wrap(Direction::Sent, &msg(None, vec![body()]), &account, &to);
        assert_eq!(untyped.attr("type"), None);
    }

    #[test]
    fn private_is_removed_for_the_recipient() {
        let m = msg(Some("chat"), vec![body(), Element::new("private", NS)]);
        let cleaned = without_private(&m).unwrap();
        assert!(cleaned.child("private", NS).is_none());
        assert!(cleaned.child("body", ns::CLIENT).is_some());
        assert!(without_private(&cleaned).is_none());
    }
}
