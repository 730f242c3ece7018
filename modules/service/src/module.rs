//! The module's one surface for the platform and the gateway: [`MODULE`].

use crm_core::App;
use crm_core::access::Principal;
use crm_core::entity::import;
use crm_core::error::{Error, Result};
use crm_core::jobs::Outcome;
use crm_core::module::{Entity, ExportRun, ImportRun, Module, OnPurge, Reference};
use crm_core::ownership::Ownership;
use crm_core::policy::catalog::FieldUse;
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::TOPIC;
use crate::tickets::repo::Tickets;

fn options(v: Value) -> Result<import::ImportOptions> {
    serde_json::from_value(v).map_err(|e| Error::invalid("options", e.to_string()))
}

fn no_import(kind: &str) -> Error {
    Error::invalid("entity", format!("service imports no {kind}"))
}

/// The service module, as the gateway lists it.
pub static MODULE: ServiceModule = ServiceModule;

/// The service module.
pub struct ServiceModule;

/// The module's entities: tickets have custom fields and are reachable by
/// `node(id)`.
pub const ENTITIES: &[Entity] = &[
    Entity::of(&crate::tickets::repo::DEF),
    Entity::of(&crate::sla::calendars::DEF),
    Entity::of(&crate::sla::policies::DEF),
];

/// The module's rows that point at upstream records: merges of contacts
/// and accounts move tickets to the survivor; purging a contact that
/// requested tickets is refused by the foreign key; a purged account is
/// detached.
pub const REFERENCES: &[Reference] = &[
    Reference::column(TOPIC, "Ticket", "tickets", "contact_id", "Contact"),
    Reference::column(TOPIC, "Ticket", "tickets", "account_id", "Account")
        .on_purge(OnPurge::Detach),
];

impl Module for ServiceModule {
    fn name(&self) -> &'static str {
        "service"
    }

    fn resources(&self) -> &'static [&'static str] {
        crate::RESOURCES
    }

    fn field_uses(&self) -> &'static [FieldUse] {
        crate::FIELD_USES
    }

    fn ownership(&self) -> &'static [Ownership] {
        crate::OWNERSHIP
    }

    fn entities(&self) -> &'static [Entity] {
        ENTITIES
    }

    fn references(&self) -> &'static [Reference] {
        REFERENCES
    }

    fn topics(&self) -> &'static [&'static str] {
        &[TOPIC]
    }

    /// The task sending SLA warnings and breaches (`sla-check-secs`).
    fn spawn_background(&self, app: &App, shutdown: tokio::sync::watch::Receiver<bool>) {
        if let Some(period) = app.config.sla_check_period {
            tokio::spawn(crate::sla::alerts::run(app.clone(), period, shutdown));
        }
    }

    fn imports(&self) -> &'static [&'static str] {
        &["tickets"]
    }

    fn import_job(
        &self,
        app: &App,
        by: &Principal,
        kind: &str,
        opts: Value,
    ) -> Result<(&'static str, Value)> {
        match kind {
            "tickets" => import::job_params::<Tickets>(app, by, &options(opts)?),
            other => Err(no_import(other)),
        }
    }

    fn import<'a>(&'a self, run: ImportRun<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let opts = options(run.params.clone())?;
            match run.kind {
                "tickets" => {
                    import::run::<Tickets>(
                        run.app,
                        run.by,
                        run.file,
                        &opts,
                        run.job_id,
                        run.progress,
                    )
                    .await
                }
                other => Err(no_import(other)),
            }
        })
    }

    fn exports(&self) -> &'static [&'static str] {
        &["tickets"]
    }

    fn export<'a>(&'a self, run: ExportRun<'a>) -> BoxFuture<'a, Result<Outcome>> {
        crm_core::entity::export::dispatch(self.name(), crate::tickets::export::EXPORTS, run)
    }
}
