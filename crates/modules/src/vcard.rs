//! XEP-0054 vcard-temp (being implemented).

use std::sync::Arc;

use corvid_core::{Module, Registrar, Spec};

/// The module.
#[derive(Default)]
pub struct Vcard;

impl Module for Vcard {
    fn name(&self) -> &'static str {
        "vcard"
    }
    fn specs(&self) -> &'static [Spec] {
        &[]
    }
    fn register(self: Arc<Self>, _r: &mut Registrar) {}
}
