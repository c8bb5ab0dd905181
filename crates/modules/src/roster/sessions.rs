//! What the roster module remembers about each local session, in memory: whether it asked for
//! the roster (an "interested resource", RFC 6121 §2.2), its last available presence (for
//! probes, §4.3.2), whom it sent directed presence to (§4.6), and roster pushes held back
//! until the IQ result that caused them has been delivered.
//!
//! Entries are created at `resource-bound` and removed at `session-closed`. The lock is a
//! plain mutex: it is never held across an `.await`.

use std::collections::HashMap;
use std::sync::Mutex;

use corvid_core::SessionId;
use corvid_jid::Jid;
use corvid_stanza::Stanza;
use corvid_xml::Element;

/// One session's state.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionState {
    /// It sent a roster get (§2.2): it receives roster pushes.
    pub interested: bool,
    /// The last available presence it broadcast (its `from` is the full JID); `None` while
    /// the session is not available.
    pub presence: Option<Element>,
    /// Entities that received directed available presence from this session and must hear
    /// when it becomes unavailable (§4.6.2 rule 2), at most `max_directed`.
    pub directed: Vec<Jid>,
    /// Roster pushes to send right after the IQ result with this id (ours to this session).
    deferred: Vec<(String, Vec<Stanza>)>,
}

/// Every local session's state.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    inner: Mutex<HashMap<SessionId, SessionState>>,
}

impl Sessions {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<SessionId, SessionState>) -> T) -> T {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut map)
    }

    /// A session was bound.
    pub fn bound(&self, session: SessionId) {
        self.with(|m| m.insert(session, SessionState::default()));
    }

    /// A session ended: its state, to act on once.
    pub fn closed(&self, session: SessionId) -> Option<SessionState> {
        self.with(|m| m.remove(&session))
    }

    /// The session requested the roster.
    pub fn set_interested(&self, session: SessionId) {
        self.with(|m| {
            m.entry(session).or_default().interested = true;
        });
    }

    /// Whether the session requested the roster.
    pub fn is_interested(&self, session: SessionId) -> bool {
        self.with(|m| m.get(&session).is_some_and(|s| s.interested))
    }

    /// Records the session's new broadcast presence (`None`: unavailable). Returns the
    /// previous one and, when becoming unavailable, the directed-presence recipients.
    pub fn set_presence(
        &self,
        session: SessionId,
        presence: Option<Element>,
    ) -> (Option<Element>, Vec<Jid>) {
        self.with(|m| {
            let s = m.entry(session).or_default();
            let unavailable = presence.is_none();
            let before = std::mem::replace(&mut s.presence, presence);
            let directed = if unavailable {
                std::mem::take(&mut s.directed)
            } else {
                Vec::new()
            };
            (before, directed)
        })
    }

    /// The session's last available presence.
    pub fn presence(&self, session: SessionId) -> Option<Element> {
        self.with(|m| m.get(&session).and_then(|s| s.presence.clone()))
    }

    /// Remembers a directed-presence recipient; false if the session's list is full.
    pub fn add_directed(&self, session: SessionId, to: &Jid, max: usize) -> bool {
        self.with(|m| {
            let Some(s) = m.get_mut(&session) else {
                return false;
            };
            if s.directed.contains(to) {
                return true;
            }
            if s.directed.len() >= max {
                return false;
            }
            s.directed.push(to.clone());
            true
        })
    }

    /// Forgets a directed-presence recipient (it was sent directed unavailable presence).
    pub fn remove_directed(&self, session: SessionId, to: &Jid) {
        self.with(|m| {
            if let Some(s) = m.get_mut(&session) {
                s.directed.retain(|j| j != to);
            }
        });
    }

    /// Whether the session sent directed presence to `to` (exactly that JID, or its bare JID).
    pub fn sent_directed_to(&self, session: SessionId, to: &Jid) -> bool {
        self.with(|m| {
            m.get(&session).is_some_and(|s| {
                s.directed
                    .iter()
                    .any(|j| j == to || *j == Jid::Bare(to.bare().clone()))
            })
        })
    }

    /// Holds `pushes` until the result of the session's IQ `id` is delivered.
    pub fn defer(&self, session: SessionId, id: &str, pushes: Vec<Stanza>) {
        self.with(|m| {
            if let Some(s) = m.get_mut(&session) {
                s.deferred.push((id.to_owned(), pushes));
            }
        });
    }

    /// The pushes held for the result of IQ `id`, if any.
    pub fn take_deferred(&self, session: SessionId, id: &str) -> Option<Vec<Stanza>> {
        self.with(|m| {
            let s = m.get_mut(&session)?;
            let at = s.deferred.iter().position(|(i, _)| i == id)?;
            Some(s.deferred.remove(at).1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_and_presence_last_until_the_session_closes() {
        let s = Sessions::default();
        let id = SessionId(1);
        s.bound(id);
        assert!(!s.is_interested(id));
        s.set_interested(id);
        assert!(s.is_interested(id));
        let p = Element::new("presence", "jabber:client");
        let (before, _) = s.set_presence(id, Some(p.clone()));
        assert_eq!(before, None, "initial presence");
        assert_eq!(s.presence(id), Some(p.clone()));
        let closed = s.closed(id).unwrap();
        assert_eq!(closed.presence, Some(p));
        assert!(s.closed(id).is_none(), "acted on once");
        assert!(!s.is_interested(id));
    }

    #[test]
    fn directed_recipients_are_bounded_and_handed_over_when_unavailable() {
        let s = Sessions::default();
        let id = SessionId(2);
        s.bound(id);
        let romeo: Jid = "romeo@example.net/orchard".parse().unwrap();
        let nurse: Jid = "nurse@example.com".parse().unwrap();
        assert!(s.add_directed(id, &romeo, 1));
        assert!(s.add_directed(id, &romeo, 1), "already there");
        assert!(!s.add_directed(id, &nurse, 1), "full");
        assert!(s.sent_directed_to(id, &romeo));
        assert!(!s.sent_directed_to(id, &nurse));
        let (_, directed) = s.set_presence(id, None);
        assert_eq!(directed, vec![romeo.clone()]);
        assert!(!s.sent_directed_to(id, &romeo));
    }

    #[test]
    fn deferred_pushes_are_released_once_by_iq_id() {
        let s = Sessions::default();
        let id = SessionId(3);
        s.bound(id);
        s.defer(id, "set1", Vec::new());
        assert!(s.take_deferred(id, "other").is_none());
        assert!(s.take_deferred(id, "set1").is_some());
        assert!(s.take_deferred(id, "set1").is_none());
    }
}
