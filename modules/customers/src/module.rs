//! The module's one surface for the platform and the gateway: [`MODULE`].

use std::collections::BTreeMap;

use crm_core::App;
use crm_core::access::Principal;
use crm_core::db::Conn;
use crm_core::error::{Error, Result};
use crm_core::jobs::Outcome;
use crm_core::module::{
    DemoCount, DemoRun, Entity, ExportRun, ImportRun, Module, OnPurge, Reference,
};
use crm_core::ownership::Ownership;
use crm_core::policy::catalog::FieldUse;
use crm_core::privacy::Person;
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::accounts::repo::Accounts;
use crate::contacts::repo::Contacts;
use crate::{TOPIC, demo, export};
use crm_core::entity::import;

/// The customers module, as the gateway lists it.
pub static MODULE: Customers = Customers;

/// The customers module.
pub struct Customers;

/// The lists `crm export` writes (one [`export::EXPORTS`] entry each).
pub const MODULE_EXPORTS: &[&str] = &["accounts", "contacts", "timeline", "purchases"];

/// The module's entities: accounts and contacts have custom fields and are
/// reachable by `node(id)`.
pub const ENTITIES: &[Entity] = &[
    Entity::of(&crate::accounts::repo::DEF),
    Entity::of(&crate::contacts::repo::DEF),
    Entity::new("Tag", "tags", "tag"),
    Entity::new("Activity", "activities", "act"),
    Entity::new("Purchase", "purchases", "pur"),
    Entity::new("Merge", "merges", "mrg"),
];

/// The module's rows that point at records, in the order merges move them.
/// Tags (a composite key) are moved by the merge itself.
pub const REFERENCES: &[Reference] = &[
    // The timeline: entries about a record of any type; they go with it.
    Reference::subject(
        TOPIC,
        "Activity",
        "activities",
        "subject_type",
        "subject_id",
    )
    .on_purge(OnPurge::Delete),
    // Purchases keep their account but lose a purged contact.
    Reference::column(TOPIC, "Purchase", "purchases", "contact_id", "Contact")
        .unversioned()
        .owned_through("accounts", "account_id")
        .on_purge(OnPurge::Detach),
    Reference::column(TOPIC, "Purchase", "purchases", "account_id", "Account")
        .unversioned()
        .owned_through("accounts", "account_id"),
    // Contacts of a purged account stay, without the account.
    Reference::column(TOPIC, "Contact", "contacts", "account_id", "Account")
        .on_purge(OnPurge::Detach),
];

fn no_import(kind: &str) -> Error {
    Error::invalid("entity", format!("customers imports no {kind}"))
}

fn options(v: Value) -> Result<import::ImportOptions> {
    serde_json::from_value(v).map_err(|e| Error::invalid("options", e.to_string()))
}

impl Module for Customers {
    fn name(&self) -> &'static str {
        "customers"
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

    fn request_data(
        &self,
        request: async_graphql::Request,
        app: &App,
        principal: &Principal,
    ) -> async_graphql::Request {
        request.data(crate::loaders::Loaders::new(app, principal))
    }

    fn spawn_background(&self, app: &App, shutdown: tokio::sync::watch::Receiver<bool>) {
        tokio::spawn(crate::activities::reminders::run(app.clone(), shutdown));
    }

    fn imports(&self) -> &'static [&'static str] {
        &["accounts", "contacts"]
    }

    fn import_job(
        &self,
        app: &App,
        by: &Principal,
        kind: &str,
        opts: Value,
    ) -> Result<(&'static str, Value)> {
        let opts = options(opts)?;
        match kind {
            "accounts" => import::job_params::<Accounts>(app, by, &opts),
            "contacts" => import::job_params::<Contacts>(app, by, &opts),
            other => Err(no_import(other)),
        }
    }

    fn import<'a>(&'a self, run: ImportRun<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let opts = options(run.params.clone())?;
            let (app, by, file, job) = (run.app, run.by, run.file, run.job_id);
            match run.kind {
                "accounts" => {
                    import::run::<Accounts>(app, by, file, &opts, job, run.progress).await
                }
                "contacts" => {
                    import::run::<Contacts>(app, by, file, &opts, job, run.progress).await
                }
                other => Err(no_import(other)),
            }
        })
    }

    fn exports(&self) -> &'static [&'static str] {
        MODULE_EXPORTS
    }

    fn export<'a>(&'a self, run: ExportRun<'a>) -> BoxFuture<'a, Result<Outcome>> {
        crm_core::entity::export::dispatch(self.name(), export::EXPORTS, run)
    }

    fn demo_counts(&self) -> &'static [DemoCount] {
        &[
            DemoCount {
                name: "accounts",
                help: "Accounts to create",
                default: 200,
            },
            DemoCount {
                name: "contacts",
                help: "Contacts to create (spread over the accounts)",
                default: 1000,
            },
            DemoCount {
                name: "activities",
                help: "Timeline entries to create",
                default: 3000,
            },
            DemoCount {
                name: "purchases",
                help: "Purchases to create",
                default: 400,
            },
        ]
    }

    fn erase<'a>(
        &'a self,
        conn: &'a mut Conn<'_>,
        person: &'a Person<'a>,
    ) -> BoxFuture<'a, Result<Vec<(&'static str, i64)>>> {
        Box::pin(async move {
            let n = crate::privacy::erase_timeline(conn, person).await?;
            Ok(vec![("Activity", n)])
        })
    }

    fn personal_data<'a>(
        &'a self,
        app: &'a App,
        by: &'a Principal,
        person: &'a Person<'a>,
    ) -> BoxFuture<'a, Result<Vec<(&'static str, Value)>>> {
        Box::pin(async move {
            let timeline = crate::privacy::timeline_report(app, by, person).await?;
            Ok(vec![("timeline", timeline)])
        })
    }

    fn demo<'a>(&'a self, run: DemoRun<'a>) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let count = |k: &str| count(run.counts, k);
            let size = demo::DemoSize {
                accounts: count("accounts"),
                contacts: count("contacts"),
                activities: count("activities"),
                purchases: count("purchases"),
                seed: run.seed,
            };
            let tags = demo::ensure_tags(run.app, &["VIP", "Partner", "Newsletter", "Key account"])
                .await?;
            demo::generate(run.app, &size, run.owners, &tags, run.progress).await?;
            Ok(Some(format!(
                "{} accounts, {} contacts, {} timeline entries, {} purchases",
                size.accounts, size.contacts, size.activities, size.purchases
            )))
        })
    }
}

/// A demo count by name (0 when not given).
fn count(counts: &BTreeMap<&'static str, usize>, name: &str) -> usize {
    counts.get(name).copied().unwrap_or(0)
}
