//! The legacy session IQ (RFC 3921 §3): old clients send it after binding; it is a no-op,
//! advertised as optional in stream features (draft-cridland-xmpp-session-01).

use std::sync::Arc;

use async_trait::async_trait;
use corvid_core::{IqHandler, IqOutcome, IqTarget, Module, Registrar, Services, Spec};
use corvid_stanza::{ns, Stanza};

/// The module.
pub struct LegacySession;

impl Module for LegacySession {
    fn name(&self) -> &'static str {
        "session"
    }
    fn specs(&self) -> &'static [Spec] {
        &[Spec {
            id: "RFC 3921",
            version: "1.0",
            status: "partial",
        }]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        r.iq(
            IqTarget::Account,
            true,
            "session",
            ns::SESSION,
            self.clone(),
        );
        r.iq(IqTarget::Server, true, "session", ns::SESSION, self);
    }
}

#[async_trait]
impl IqHandler for LegacySession {
    async fn handle(&self, _: &Services, _: &Stanza) -> IqOutcome {
        Ok(None)
    }
}
