//! XEP-0199: XMPP Ping. A ping to the server (or to one's own account) gets an empty result.

use std::sync::Arc;

use async_trait::async_trait;
use corvid_core::{IqHandler, IqOutcome, IqTarget, Module, Registrar, Services, Spec};
use corvid_stanza::{ns, Stanza};

/// The module.
pub struct Ping;

impl Module for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }
    fn specs(&self) -> &'static [Spec] {
        &[Spec {
            id: "XEP-0199",
            version: "2.0.1",
            status: "complete",
        }]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        r.iq(IqTarget::Server, false, "ping", ns::PING, self.clone());
        r.iq(IqTarget::Account, false, "ping", ns::PING, self);
        r.feature(ns::PING);
    }
}

#[async_trait]
impl IqHandler for Ping {
    /// XEP-0199 §4.2: the server answers with an empty result.
    async fn handle(&self, _: &Services, _: &Stanza) -> IqOutcome {
        Ok(None)
    }
}
