//! XEP-0202 entity time (being implemented).

use std::sync::Arc;

use corvid_core::{Module, Registrar, Spec};

/// The module.
#[derive(Default)]
pub struct EntityTime;

impl Module for EntityTime {
    fn name(&self) -> &'static str {
        "time"
    }
    fn specs(&self) -> &'static [Spec] {
        &[]
    }
    fn register(self: Arc<Self>, _r: &mut Registrar) {}
}
