//! The CRM modules compiled into this binary, one cargo feature each.
//! Adding a module = one entry here plus one line per GraphQL root it has
//! in `schema.rs` (and a `Node` variant for each type `node(id)` serves).

use crm_core::module::{Module, Registry};

/// Every compiled-in module, in dependency order.
pub static MODULES: &[&dyn Module] = &[
    #[cfg(feature = "customers")]
    &crm_customers::MODULE,
    #[cfg(feature = "pipeline")]
    &crm_pipeline::MODULE,
    #[cfg(feature = "leads")]
    &crm_leads::MODULE,
    #[cfg(feature = "service")]
    &crm_service::MODULE,
];

/// The module registry, installed in core on first use (core reads it for
/// custom fields and references).
pub fn registry() -> &'static Registry {
    crm_core::module::install(MODULES)
}
