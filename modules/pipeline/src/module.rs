//! The module's one surface for the platform and the gateway: [`MODULE`].

use crm_core::App;
use crm_core::access::Principal;
use crm_core::entity::import;
use crm_core::error::{Error, Result};
use crm_core::jobs::Outcome;
use crm_core::module::{
    DemoCount, DemoRun, Entity, ExportRun, ImportRun, Module, OnPurge, Reference,
};
use crm_core::ownership::Ownership;
use crm_core::policy::catalog::FieldUse;
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::TOPIC;
use crate::opportunities::repo::Opportunities;
use crate::products::repo::{PriceBookEntries, Products};

fn options(v: Value) -> Result<import::ImportOptions> {
    serde_json::from_value(v).map_err(|e| Error::invalid("options", e.to_string()))
}

fn no_import(kind: &str) -> Error {
    Error::invalid("entity", format!("pipeline imports no {kind}"))
}

/// Every list `crm export` writes for this module.
const EXPORTS: &[crm_core::entity::export::Exporter] = {
    use crm_core::entity::export::kit;
    &[
        kit::<Opportunities>(),
        kit::<Products>(),
        kit::<PriceBookEntries>(),
        kit::<crate::contracts::repo::Contracts>(),
    ]
};

/// The pipeline module, as the gateway lists it.
pub static MODULE: PipelineModule = PipelineModule;

/// The pipeline module.
pub struct PipelineModule;

/// The module's entities: opportunities have custom fields; all three are
/// reachable by `node(id)`.
pub const ENTITIES: &[Entity] = &[
    Entity::of(&crate::opportunities::repo::DEF),
    Entity::of(&crate::pipelines::repo::PIPELINE_DEF),
    Entity::of(&crate::pipelines::repo::STAGE_DEF),
    Entity::of(&crate::products::repo::PRODUCT_DEF),
    Entity::of(&crate::products::repo::PRICE_BOOK_DEF),
    Entity::of(&crate::products::repo::ENTRY_DEF),
    Entity::of(&crate::forecasts::quotas::QUOTA_DEF),
    Entity::of(&crate::forecasts::adjustments::ADJUSTMENT_DEF),
    Entity::of(&crate::quotes::repo::DEF),
    Entity::of(&crate::contracts::repo::DEF),
];

/// The module's rows that point at upstream records: merges of accounts
/// and contacts move opportunities to the survivor; purging an account
/// with opportunities is refused by the foreign key; a purged contact is
/// detached.
pub const REFERENCES: &[Reference] = &[
    Reference::column(
        TOPIC,
        "Opportunity",
        "opportunities",
        "account_id",
        "Account",
    ),
    Reference::column(
        TOPIC,
        "Opportunity",
        "opportunities",
        "primary_contact_id",
        "Contact",
    )
    .on_purge(OnPurge::Detach),
    // A merged contact's roles move to the survivor; a purged contact's
    // roles go with it.
    Reference::column(
        TOPIC,
        "OpportunityContactRole",
        "opportunity_contact_roles",
        "contact_id",
        "Contact",
    )
    .owned_through("opportunities", "opportunity_id")
    .on_purge(OnPurge::Delete),
    // A merged account's quotes follow it; a purged opportunity's quotes
    // go with it.
    Reference::column(TOPIC, "Quote", "quotes", "account_id", "Account")
        .owned_through("opportunities", "opportunity_id"),
    Reference::column(TOPIC, "Quote", "quotes", "opportunity_id", "Opportunity")
        .owned_through("opportunities", "opportunity_id")
        .on_purge(OnPurge::Delete),
    // A merged account's contracts follow it (a purge of an account with
    // contracts is refused by the foreign key); a purged opportunity's
    // contracts forget it.
    Reference::column(TOPIC, "Contract", "contracts", "account_id", "Account"),
    Reference::column(
        TOPIC,
        "Contract",
        "contracts",
        "opportunity_id",
        "Opportunity",
    )
    .on_purge(OnPurge::Detach),
];

/// The module's printable documents: `GET /quotes/{id}`.
const DOCUMENTS: &[&dyn crm_core::module::Document] = &[&crate::quotes::document::QUOTE_DOCUMENT];

impl Module for PipelineModule {
    fn name(&self) -> &'static str {
        "pipeline"
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

    fn documents(&self) -> &'static [&'static dyn crm_core::module::Document] {
        DOCUMENTS
    }

    /// Expires SENT quotes past their date, marks rotting deals stale,
    /// expires ended contracts and creates contract renewals (each once
    /// across replicas).
    fn spawn_background(&self, app: &App, shutdown: tokio::sync::watch::Receiver<bool>) {
        tokio::spawn(crate::quotes::expiry::run(app.clone(), shutdown.clone()));
        tokio::spawn(crate::contracts::lifecycle::run(
            app.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(crate::opportunities::stale::run(app.clone(), shutdown));
    }

    fn imports(&self) -> &'static [&'static str] {
        &["opportunities", "products", "price-book-entries"]
    }

    fn import_job(
        &self,
        app: &App,
        by: &Principal,
        kind: &str,
        opts: Value,
    ) -> Result<(&'static str, Value)> {
        match kind {
            "opportunities" => import::job_params::<Opportunities>(app, by, &options(opts)?),
            "products" => import::job_params::<Products>(app, by, &options(opts)?),
            "price-book-entries" => {
                import::job_params::<PriceBookEntries>(app, by, &options(opts)?)
            }
            other => Err(no_import(other)),
        }
    }

    fn import<'a>(&'a self, run: ImportRun<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let opts = options(run.params.clone())?;
            match run.kind {
                "opportunities" => {
                    import::run::<Opportunities>(
                        run.app,
                        run.by,
                        run.file,
                        &opts,
                        run.job_id,
                        run.progress,
                    )
                    .await
                }
                "products" => {
                    import::run::<Products>(
                        run.app,
                        run.by,
                        run.file,
                        &opts,
                        run.job_id,
                        run.progress,
                    )
                    .await
                }
                "price-book-entries" => {
                    import::run::<PriceBookEntries>(
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
        &[
            "opportunities",
            "products",
            "price-book-entries",
            "contracts",
        ]
    }

    fn export<'a>(&'a self, run: ExportRun<'a>) -> BoxFuture<'a, Result<Outcome>> {
        crm_core::entity::export::dispatch(self.name(), EXPORTS, run)
    }

    fn demo_counts(&self) -> &'static [DemoCount] {
        &[
            DemoCount {
                name: "opportunities",
                help: "Opportunities to create, with 18 months of stage history (spread over the accounts)",
                default: 3000,
            },
            DemoCount {
                name: "products",
                help: "Products to create, priced in every price book",
                default: 20,
            },
        ]
    }

    fn demo<'a>(&'a self, run: DemoRun<'a>) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let count = |k: &str| run.counts.get(k).copied().unwrap_or(0);
            let size = crate::demo::DemoSize {
                opportunities: count("opportunities"),
                products: count("products"),
                seed: run.seed,
            };
            let m = crate::demo::generate(run.app, &size, run.progress).await?;
            Ok(Some(format!(
                "{} pipelines, {} products, {} opportunities ({} won, {} lost, {} open) \
                 with {} history entries and {} line items, {} quotas",
                m.pipelines,
                m.products,
                m.opportunities,
                m.won,
                m.lost,
                m.opportunities - m.won - m.lost,
                m.history,
                m.line_items,
                m.quotas
            )))
        })
    }
}
