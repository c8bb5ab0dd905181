//! XEP-0012 last activity (being implemented).

use std::sync::Arc;

use corvid_core::{Module, Registrar, Spec};

/// The module.
#[derive(Default)]
pub struct LastActivity;

impl Module for LastActivity {
    fn name(&self) -> &'static str {
        "last"
    }
    fn specs(&self) -> &'static [Spec] {
        &[]
    }
    fn register(self: Arc<Self>, _r: &mut Registrar) {}
}
