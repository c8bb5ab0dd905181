//! The in-process implementation of the session table.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use corvid_core::{BindError, Route, SessionId, SessionRegistry};
use corvid_jid::{BareJid, FullJid};

/// The single-node session table: a map behind a lock that is never held across an await.
#[derive(Debug, Default)]
pub struct LocalRegistry {
    table: RwLock<HashMap<BareJid, Vec<Route>>>,
}

impl LocalRegistry {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<BareJid, Vec<Route>>> {
        // A poisoned lock means a panic while holding it; the map itself is still consistent
        // (every mutation below is a single push/retain/assignment), so keep serving.
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<BareJid, Vec<Route>>> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SessionRegistry for LocalRegistry {
    async fn bind(&self, route: Route, max_resources: usize) -> Result<Option<Route>, BindError> {
        let mut t = self.write();
        let list = t.entry(route.jid.bare().clone()).or_default();
        if let Some(existing) = list.iter_mut().find(|r| r.jid == route.jid) {
            return Ok(Some(std::mem::replace(existing, route)));
        }
        if list.len() >= max_resources {
            return Err(BindError::TooManyResources);
        }
        list.push(route);
        Ok(None)
    }

    async fn unbind(&self, jid: &FullJid, session: SessionId) {
        let mut t = self.write();
        if let Some(list) = t.get_mut(jid.bare()) {
            list.retain(|r| !(r.jid == *jid && r.session == session));
            if list.is_empty() {
                t.remove(jid.bare());
            }
        }
    }

    async fn set_presence(&self, jid: &FullJid, session: SessionId, available: bool, priority: i8) {
        let mut t = self.write();
        if let Some(r) = t.get_mut(jid.bare()).and_then(|list| {
            list.iter_mut()
                .find(|r| r.jid == *jid && r.session == session)
        }) {
            r.available = available;
            r.priority = priority;
        }
    }

    fn lookup(&self, jid: &FullJid) -> Option<Route> {
        self.read()
            .get(jid.bare())
            .and_then(|l| l.iter().find(|r| r.jid == *jid).cloned())
    }

    fn resources(&self, bare: &BareJid) -> Vec<Route> {
        self.read().get(bare).cloned().unwrap_or_default()
    }

    fn any_resource(&self, bare: &BareJid, pred: &mut dyn FnMut(&Route) -> bool) -> bool {
        self.read()
            .get(bare)
            .is_some_and(|routes| routes.iter().any(pred))
    }

    fn len(&self) -> usize {
        self.read().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use corvid_core::NodeId;

    use super::*;

    fn route(jid: &str, session: u64) -> Route {
        Route {
            jid: jid.parse().unwrap(),
            node: NodeId(0),
            session: SessionId(session),
            priority: 0,
            available: false,
        }
    }

    #[tokio::test]
    async fn at_most_one_session_per_full_jid_and_the_new_one_wins() {
        // RFC 6120 §7.7.2.2: conflict policy "override the existing session".
        let reg = LocalRegistry::new();
        assert_eq!(
            reg.bind(route("juliet@localhost/balcony", 1), 10).await,
            Ok(None)
        );
        let replaced = reg
            .bind(route("juliet@localhost/balcony", 2), 10)
            .await
            .unwrap();
        assert_eq!(replaced.map(|r| r.session), Some(SessionId(1)));
        assert_eq!(reg.len(), 1);
        assert_eq!(
            reg.lookup(&"juliet@localhost/balcony".parse().unwrap())
                .map(|r| r.session),
            Some(SessionId(2))
        );
    }

    #[tokio::test]
    async fn a_replaced_sessions_unbind_does_not_remove_its_successor() {
        let reg = LocalRegistry::new();
        reg.bind(route("juliet@localhost/balcony", 1), 10)
            .await
            .unwrap();
        reg.bind(route("juliet@localhost/balcony", 2), 10)
            .await
            .unwrap();
        reg.unbind(&"juliet@localhost/balcony".parse().unwrap(), SessionId(1))
            .await;
        assert_eq!(reg.len(), 1);
        reg.unbind(&"juliet@localhost/balcony".parse().unwrap(), SessionId(2))
            .await;
        assert!(reg.is_empty());
    }

    #[tokio::test]
    async fn resource_limit_is_enforced() {
        // RFC 6120 §7.6.2.1 resource-constraint
        let reg = LocalRegistry::new();
        reg.bind(route("juliet@localhost/a", 1), 2).await.unwrap();
        reg.bind(route("juliet@localhost/b", 2), 2).await.unwrap();
        assert_eq!(
            reg.bind(route("juliet@localhost/c", 3), 2).await,
            Err(BindError::TooManyResources)
        );
        // Rebinding an existing resource is a replacement, not a new one.
        assert!(reg.bind(route("juliet@localhost/b", 4), 2).await.is_ok());
    }

    #[tokio::test]
    async fn presence_updates_only_the_named_session() {
        let reg = LocalRegistry::new();
        reg.bind(route("juliet@localhost/a", 1), 10).await.unwrap();
        let jid: FullJid = "juliet@localhost/a".parse().unwrap();
        reg.set_presence(&jid, SessionId(9), true, 5).await;
        assert!(!reg.lookup(&jid).unwrap().available);
        reg.set_presence(&jid, SessionId(1), true, 5).await;
        let r = reg.lookup(&jid).unwrap();
        assert!(r.available);
        assert_eq!(r.priority, 5);
    }
}
