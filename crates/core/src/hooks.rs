//! Hooks: named events that modules listen to, folded by priority.

use async_trait::async_trait;
use corvid_jid::FullJid;
use corvid_stanza::Stanza;

use crate::SessionId;

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
    },
}

impl Event<'_> {
    /// The event's name, for the hook table and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ClientStanza { .. } => "client-stanza",
            Event::ResourceBound { .. } => "resource-bound",
            Event::SessionClosed { .. } => "session-closed",
        }
    }
}

/// A listener.
#[async_trait]
pub trait Hook: Send + Sync {
    /// Handles the event.
    async fn on(&self, event: &mut Event<'_>) -> Flow;
}
