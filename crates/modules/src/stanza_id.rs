//! XEP-0359 unique and stable stanza ids (being implemented).

use std::sync::Arc;

use corvid_core::{Module, Registrar, Spec};

/// The module.
#[derive(Default)]
pub struct StanzaId;

impl Module for StanzaId {
    fn name(&self) -> &'static str {
        "stanza_id"
    }
    fn specs(&self) -> &'static [Spec] {
        &[]
    }
    fn register(self: Arc<Self>, _r: &mut Registrar) {}
}
