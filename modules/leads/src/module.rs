//! The module's one surface for the platform and the gateway: [`MODULE`].

use crm_core::App;
use crm_core::access::Principal;
use crm_core::db::Conn;
use crm_core::entity::import;
use crm_core::error::{Error, Result};
use crm_core::jobs::Outcome;
use crm_core::module::{Entity, ExportRun, ImportRun, Module, TimelineWritten};
use crm_core::ownership::Ownership;
use crm_core::policy::catalog::FieldUse;
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::TOPIC;
use crate::leads::repo::Leads;

fn options(v: Value) -> Result<import::ImportOptions> {
    serde_json::from_value(v).map_err(|e| Error::invalid("options", e.to_string()))
}

fn no_import(kind: &str) -> Error {
    Error::invalid("entity", format!("leads imports no {kind}"))
}

/// The leads module, as the gateway lists it.
pub static MODULE: LeadsModule = LeadsModule;

/// The leads module.
pub struct LeadsModule;

/// The module's entities: leads have custom fields, are reachable by
/// `node(id)` and are timeline subjects (`LEAD`); web forms and scoring
/// rules are kit records too (versioned writes, audit, events).
pub const ENTITIES: &[Entity] = &[
    Entity::of(&crate::leads::repo::DEF),
    Entity::of(&crate::forms::repo::DEF),
    Entity::of(&crate::scoring::rules::DEF),
];

impl Module for LeadsModule {
    fn name(&self) -> &'static str {
        "leads"
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

    fn topics(&self) -> &'static [&'static str] {
        &[TOPIC]
    }

    fn public_endpoints(&self) -> &'static [&'static dyn crm_core::public::PublicEndpoint] {
        const ENDPOINTS: &[&dyn crm_core::public::PublicEndpoint] = &[&crate::forms::submit::FORMS];
        ENDPOINTS
    }

    fn request_data(
        &self,
        request: async_graphql::Request,
        app: &App,
        _principal: &Principal,
    ) -> async_graphql::Request {
        request.data(crate::scoring::graphql::loader(app))
    }

    fn spawn_background(&self, app: &App, shutdown: tokio::sync::watch::Receiver<bool>) {
        tokio::spawn(crate::scoring::run_decay(app.clone(), shutdown));
    }

    /// A call, email, meeting or note logged on a lead's timeline is
    /// engagement (`ACTIVITY_LOGGED`) as of when it happened; tasks are not.
    fn timeline_entry<'a>(
        &'a self,
        conn: &'a mut Conn<'_>,
        entry: &'a TimelineWritten,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if entry.subject_type == crate::leads::repo::DEF.type_name
                && !entry.kind.eq_ignore_ascii_case("task")
            {
                crate::scoring::engage(
                    conn,
                    &entry.subject_id,
                    crate::scoring::EngagementEvent::ActivityLogged,
                    entry.occurred_at,
                )
                .await?;
            }
            Ok(())
        })
    }

    fn imports(&self) -> &'static [&'static str] {
        &["leads"]
    }

    fn import_job(
        &self,
        app: &App,
        by: &Principal,
        kind: &str,
        opts: Value,
    ) -> Result<(&'static str, Value)> {
        match kind {
            "leads" => import::job_params::<Leads>(app, by, &options(opts)?),
            other => Err(no_import(other)),
        }
    }

    fn import<'a>(&'a self, run: ImportRun<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let opts = options(run.params.clone())?;
            match run.kind {
                "leads" => {
                    import::run::<Leads>(run.app, run.by, run.file, &opts, run.job_id, run.progress)
                        .await
                }
                other => Err(no_import(other)),
            }
        })
    }

    fn exports(&self) -> &'static [&'static str] {
        &["leads"]
    }

    fn export<'a>(&'a self, run: ExportRun<'a>) -> BoxFuture<'a, Result<Outcome>> {
        crm_core::entity::export::dispatch(self.name(), crate::leads::export::EXPORTS, run)
    }
}
