//! XEP-0092: Software Version, for the server.

use std::sync::Arc;

use async_trait::async_trait;
use corvid_core::{IqHandler, IqOutcome, IqTarget, Module, Registrar, Services, Spec};
use corvid_stanza::{ns, Stanza};
use corvid_xml::Element;

/// The module.
pub struct Version;

impl Module for Version {
    fn name(&self) -> &'static str {
        "version"
    }
    fn specs(&self) -> &'static [Spec] {
        &[Spec {
            id: "XEP-0092",
            version: "1.1",
            status: "complete",
        }]
    }
    fn register(self: Arc<Self>, r: &mut Registrar) {
        r.iq(IqTarget::Server, false, "query", ns::VERSION, self);
        r.feature(ns::VERSION);
    }
}

/// The `<query/>` answer: name and version; the OS is left out on purpose (XEP-0092 §4 lets a
/// server withhold it, and it helps attackers).
pub fn answer() -> Element {
    Element::new("query", ns::VERSION)
        .with_child(Element::new("name", ns::VERSION).with_text("Corvid"))
        .with_child(Element::new("version", ns::VERSION).with_text(env!("CARGO_PKG_VERSION")))
}

#[async_trait]
impl IqHandler for Version {
    async fn handle(&self, _: &Services, _: &Stanza) -> IqOutcome {
        Ok(Some(answer()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_has_name_and_version() {
        // XEP-0092 §3: <name/> and <version/> are required.
        let q = answer();
        assert_eq!(
            q.child("name", ns::VERSION).map(|e| e.text()),
            Some("Corvid".into())
        );
        assert!(q
            .child("version", ns::VERSION)
            .is_some_and(|e| !e.text().is_empty()));
        assert!(q.child("os", ns::VERSION).is_none());
    }
}
