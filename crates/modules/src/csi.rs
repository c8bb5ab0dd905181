//! XEP-0352 client state indication (being implemented).

use std::sync::Arc;

use corvid_core::{Module, Registrar, Spec};

/// The module.
#[derive(Default)]
pub struct Csi;

impl Module for Csi {
    fn name(&self) -> &'static str {
        "csi"
    }
    fn specs(&self) -> &'static [Spec] {
        &[]
    }
    fn register(self: Arc<Self>, _r: &mut Registrar) {}
}
