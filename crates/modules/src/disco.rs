//! XEP-0030: Service Discovery. disco#info lists what every installed module registered;
//! disco#items lists nothing yet (no components).

use std::sync::Arc;

use async_trait::async_trait;
use corvid_core::{IqHandler, IqOutcome, IqTarget, Module, Modules, Registrar, Services, Spec};
use corvid_stanza::{ns, Condition, Stanza, StanzaError};
use corvid_xml::Element;

/// The module.
pub struct Disco;

impl Module for Disco {
    fn name(&self) -> &'static str {
        "disco"
    }
    fn specs(&self) -> &'static [Spec] {
        &[Spec {
            id: "XEP-0030",
            version: "2.5rc3",
            status: "complete",
        }]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        let info: Arc<dyn IqHandler> = Arc::new(Info);
        let items: Arc<dyn IqHandler> = Arc::new(Items);
        r.iq(
            IqTarget::Server,
            false,
            "query",
            ns::DISCO_INFO,
            info.clone(),
        );
        r.iq(IqTarget::Account, false, "query", ns::DISCO_INFO, info);
        r.iq(
            IqTarget::Server,
            false,
            "query",
            ns::DISCO_ITEMS,
            items.clone(),
        );
        r.iq(IqTarget::Account, false, "query", ns::DISCO_ITEMS, items);
        r.feature(ns::DISCO_INFO);
        r.feature(ns::DISCO_ITEMS);
        r.account_feature(ns::DISCO_INFO);
        r.identity("server", "im", "Corvid");
    }
}

struct Info;
struct Items;

/// The disco#info answer of the server (XEP-0030 §3.1): identities, then features.
pub fn server_info(modules: &Modules, node: Option<&str>) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO);
    if let Some(n) = node {
        q.set_attr("node", n);
    }
    for id in modules.identities() {
        q.push(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", id.category.clone())
                .with_attr("type", id.kind.clone())
                .with_attr("name", id.name.clone()),
        );
    }
    for f in modules.features() {
        q.push(Element::new("feature", ns::DISCO_INFO).with_attr("var", f.clone()));
    }
    q
}

/// The disco#info answer of an account (XEP-0030 §3.1; the account identity of RFC 6121 §8.5.2.1.3).
pub fn account_info(modules: &Modules) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO).with_child(
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", "account")
            .with_attr("type", "registered"),
    );
    for f in modules.account_features() {
        q.push(Element::new("feature", ns::DISCO_INFO).with_attr("var", f.clone()));
    }
    q
}

#[async_trait]
impl IqHandler for Info {
    async fn handle(&self, services: &Services, iq: &Stanza) -> IqOutcome {
        let node = iq.iq_payload().and_then(|p| p.attr("node"));
        if node.is_some() {
            // XEP-0030 §3.2: no nodes are defined here.
            return Err(StanzaError::new(Condition::ItemNotFound));
        }
        let to_account = iq.to().and_then(|t| t.node()).is_some() || iq.to().is_none();
        if to_account {
            Ok(Some(account_info(&services.modules)))
        } else {
            Ok(Some(server_info(&services.modules, None)))
        }
    }
}

#[async_trait]
impl IqHandler for Items {
    async fn handle(&self, _: &Services, iq: &Stanza) -> IqOutcome {
        if iq.iq_payload().and_then(|p| p.attr("node")).is_some() {
            return Err(StanzaError::new(Condition::ItemNotFound));
        }
        Ok(Some(Element::new("query", ns::DISCO_ITEMS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_info_lists_identity_and_every_registered_feature() {
        // XEP-0030 §3.1: the features come from what modules registered.
        let mut r = Registrar::new();
        for m in crate::defaults() {
            r.install(m);
        }
        let modules = r.freeze();
        let q = server_info(&modules, None);
        let vars: Vec<_> = q
            .child_elements()
            .filter(|e| e.name == "feature")
            .filter_map(|e| e.attr("var"))
            .collect();
        for expected in [ns::DISCO_INFO, ns::DISCO_ITEMS, ns::PING, ns::VERSION] {
            assert!(vars.contains(&expected), "missing {expected} in {vars:?}");
        }
        let id = q.child("identity", ns::DISCO_INFO).unwrap();
        assert_eq!(
            (id.attr("category"), id.attr("type")),
            (Some("server"), Some("im"))
        );
    }
}
