//! XEP-0191 blocking command (being implemented).

use std::sync::Arc;

use corvid_core::{Module, Registrar, Spec};

/// The module.
#[derive(Default)]
pub struct Blocking;

impl Module for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }
    fn specs(&self) -> &'static [Spec] {
        &[]
    }
    fn register(self: Arc<Self>, _r: &mut Registrar) {}
}
