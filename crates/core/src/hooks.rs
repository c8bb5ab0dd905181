//! Hooks: named events that modules listen to, folded by priority.

use async_trait::async_trait;
use corvid_jid::{BareJid, FullJid};
use corvid_stanza::Stanza;
use corvid_xml::Element;

use crate::{Services, SessionId};

/// Whether later hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Run the next hook.
    Continue,
    /// Stop here; the event is handled (for stanza events: the stanza is not routed further).
    Stop,
}

/// The events. Each variant says who should listen.
#[derive(Debug)]
pub enum Event<'a> {
    /// A client stanza after `from` was stamped, before routing. Listen to rewrite or swallow
    /// what a client sends (carbons, archiving, blocking). `Stop` means it is not routed.
    ClientStanza {
        /// The sending session.
        session: SessionId,
        /// The stanza; hooks may change it.
        stanza: &'a mut Stanza,
    },
    /// A top-level element from a bound client that is not a stanza (e.g. XEP-0352
    /// `<active/>`). `Stop` means a module handled it; if none does, the stream ends with
    /// `unsupported-stanza-type` (RFC 6120 §4.9.3.24).
    ClientNonza {
        /// The sending session.
        session: SessionId,
        /// Its address.
        jid: &'a FullJid,
        /// The element.
        element: &'a Element,
    },
    /// A stanza for a local account (its bare or a full JID), before the delivery rules of
    /// RFC 6121 §8.5 run. Listen to process inbound subscriptions and probes, or to refuse
    /// stanzas (blocking). `Stop` means consumed: nothing is delivered and no error is sent.
    LocalInbound {
        /// The account addressed.
        account: &'a BareJid,
        /// The stanza; hooks may change it.
        stanza: &'a mut Stanza,
    },
    /// A message for a local account with no available resource (RFC 6121 §8.5.2.2.1).
    /// Listen to store it (offline storage). `Stop` means stored; otherwise the sender gets
    /// `service-unavailable`.
    OfflineMessage {
        /// The account addressed.
        account: &'a BareJid,
        /// The message.
        stanza: &'a Stanza,
    },
    /// A stanza is about to be put in a local session's mailbox. Listen to copy it elsewhere
    /// (carbons), hold it back (client state indication) or drop it. `Stop` means not delivered
    /// by the router (the listener took responsibility for it).
    Deliver {
        /// The recipient session's address.
        jid: &'a FullJid,
        /// The recipient session.
        session: SessionId,
        /// The stanza; hooks may change it.
        stanza: &'a mut Stanza,
    },
    /// A stanza for a local account was put in the mailboxes of these sessions (after the
    /// `deliver` hooks), fired once per routed stanza. Listen to act on who received it
    /// (carbons: copy it to the account's other resources, XEP-0280 §6). The flow only decides
    /// whether later listeners run.
    Delivered {
        /// The account addressed.
        account: &'a BareJid,
        /// The stanza as routed (before per-session `deliver` hooks changed their copies).
        stanza: &'a Stanza,
        /// The sessions that took it: into their mailbox, or a `deliver` listener took
        /// responsibility (never empty).
        sessions: &'a [SessionId],
    },
    /// A session sent its initial available presence (RFC 6121 §4.2): listen to deliver
    /// offline messages and pending subscription requests.
    ResourceAvailable {
        /// The session's address.
        jid: &'a FullJid,
        /// Its session.
        session: SessionId,
        /// Its presence priority.
        priority: i8,
    },
    /// A resource was bound. Listen to set up per-session state.
    ResourceBound {
        /// The new session's address.
        jid: &'a FullJid,
        /// Its session.
        session: SessionId,
    },
    /// A session ended (closed, kicked, or its connection lost). Listen to clean up
    /// (unavailable presence, directed-presence cleanup).
    SessionClosed {
        /// The session's address.
        jid: &'a FullJid,
        /// Its session.
        session: SessionId,
        /// True when the cluster has already told the session's contacts it went unavailable:
        /// its node had been declared down and a caretaker announced every session it held
        /// (the session was only closed later, when the node learned of it). Listeners must not
        /// announce it to the contacts again; presence it *directed* elsewhere is still theirs
        /// to undo.
        announced: bool,
    },
}

impl Event<'_> {
    /// The event's name, for the hook table and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ClientStanza { .. } => "client-stanza",
            Event::ClientNonza { .. } => "client-nonza",
            Event::LocalInbound { .. } => "local-inbound",
            Event::OfflineMessage { .. } => "offline-message",
            Event::Deliver { .. } => "deliver",
            Event::Delivered { .. } => "delivered",
            Event::ResourceAvailable { .. } => "resource-available",
            Event::ResourceBound { .. } => "resource-bound",
            Event::SessionClosed { .. } => "session-closed",
        }
    }
}

/// A listener. Implement [`Hook::on_with`] when the listener needs the server (send stanzas,
/// open stores, read the session table), else [`Hook::on`].
#[async_trait]
pub trait Hook: Send + Sync {
    /// Whether the hook has anything to do with `event`. The runner calls [`Hook::on_with`]
    /// only when it does: a cheap, synchronous look that spares every stanza the future of
    /// each hook it does not concern. The default is yes.
    fn wants(&self, _event: &Event<'_>) -> bool {
        true
    }
    /// Handles the event. The default lets it pass.
    async fn on(&self, _event: &mut Event<'_>) -> Flow {
        Flow::Continue
    }
    /// Handles the event with the server's [`Services`] at hand; what the hook runner calls.
    /// The default calls [`Hook::on`].
    async fn on_with(&self, _services: &Services, event: &mut Event<'_>) -> Flow {
        self.on(event).await
    }
}
