//! One module surface: everything a module crate gives the platform, as one
//! value implementing [`Module`].
//!
//! The gateway lists the compiled-in modules once (`MODULES`) and installs
//! them here at start-up ([`install`]); from then on core reads the
//! [`Registry`] for what it must know about modules without depending on
//! them: which entities have custom fields, which rows point at a record
//! (merge, undo, purge cascades), which id prefix is whose. The gateway reads
//! the same values for policy resources, field uses, ownership, per-request
//! data, background tasks and the command line.
//!
//! A module's GraphQL roots are the one thing a trait object cannot carry
//! (async-graphql merges static types): the gateway adds one line per root
//! for them.

pub mod references;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::access::Principal;
use crate::app::App;
use crate::db::Conn;
use crate::error::Result;
use crate::jobs::{Counters, Outcome};
use crate::ownership::Ownership;
use crate::policy::catalog::FieldUse;
use crate::privacy::Person;
use crate::tabular::ExportFormat;

pub use references::{OnPurge, Reference, RowOwner, Target};

/// An entity a module owns, as far as the platform needs to know it.
#[derive(Clone, Copy, Debug)]
pub struct Entity {
    /// The GraphQL type and policy resource (`Account`).
    pub ty: &'static str,
    /// Its table (`accounts`), with a text `id` primary key.
    pub table: &'static str,
    /// The prefix of its ids (`acc`), which `node(id)` routes on.
    pub id_prefix: &'static str,
    /// Whether admins may define custom fields for it (values in the
    /// table's `custom` JSON text column).
    pub custom_fields: bool,
    /// Its entity kit declaration, if it has one: such records can be
    /// referred to by type and id (timeline subjects), checked through
    /// [`crate::entity::subject::live_in_scope`].
    pub def: Option<&'static crate::entity::Def>,
}

impl Entity {
    /// The registration of an entity declared to the entity kit.
    pub const fn of(def: &'static crate::entity::Def) -> Entity {
        Entity {
            ty: def.type_name,
            table: def.table,
            id_prefix: def.prefix,
            custom_fields: def.custom_fields,
            def: Some(def),
        }
    }

    /// An entity without custom fields.
    pub const fn new(ty: &'static str, table: &'static str, id_prefix: &'static str) -> Entity {
        Entity {
            ty,
            table,
            id_prefix,
            custom_fields: false,
            def: None,
        }
    }

    /// The same, with custom fields.
    pub const fn with_custom_fields(self) -> Entity {
        Entity {
            custom_fields: true,
            ..self
        }
    }
}

/// A count `crm demo` takes as a flag (`--accounts 200`).
#[derive(Clone, Copy, Debug)]
pub struct DemoCount {
    /// The flag's name, also the key in [`DemoRun::counts`].
    pub name: &'static str,
    /// One line of help, without a final full stop (clap style).
    pub help: &'static str,
    /// The default.
    pub default: usize,
}

/// Progress of a data command: counters (imports) or rows, bytes read,
/// file size.
pub type ImportProgress<'a> = &'a (dyn Fn(&Counters, u64, u64) + Send + Sync);

/// One `crm import` run, after the job was created.
pub struct ImportRun<'a> {
    /// The platform.
    pub app: &'a App,
    /// The acting user.
    pub by: &'a Principal,
    /// What the file holds: one of [`Module::imports`].
    pub kind: &'a str,
    /// The file.
    pub file: &'a Path,
    /// The options as returned by [`Module::import_job`].
    pub params: &'a Value,
    /// The job recording it.
    pub job_id: &'a str,
    /// Called as rows are done.
    pub progress: ImportProgress<'a>,
}

/// One `crm export` run.
pub struct ExportRun<'a> {
    /// The platform.
    pub app: &'a App,
    /// The acting user.
    pub by: &'a Principal,
    /// Which list: one of [`Module::exports`].
    pub kind: &'a str,
    /// The list's filter, shaped like its GraphQL filter input.
    pub filter: Option<Value>,
    /// CSV or JSON Lines.
    pub format: ExportFormat,
    /// The file to write.
    pub out: PathBuf,
    /// Called with the rows written so far.
    pub progress: &'a (dyn Fn(i64) + Send + Sync),
}

/// One `crm demo` run.
pub struct DemoRun<'a> {
    /// The platform.
    pub app: &'a App,
    /// Every [`Module::demo_counts`] flag with its value.
    pub counts: &'a BTreeMap<&'static str, usize>,
    /// Random seed: the same seed gives the same data.
    pub seed: u64,
    /// Users to spread the records' ownership over.
    pub owners: &'a [String],
    /// Called with (stage, done, total) as batches land.
    pub progress: &'a (dyn Fn(&str, usize, usize) + Send + Sync),
}

/// A printable document a module serves for one of its records at
/// `GET /{path}/{id}` (a quote's `/quotes/{id}`), mounted by the gateway
/// with the same bearer credentials as `/graphql`. The module decides
/// what the caller may see: the record within the caller's read scope
/// (NOT_FOUND otherwise, exactly as for an unknown id) and only the
/// fields the caller may read.
pub trait Document: Send + Sync {
    /// The first path segment (`quotes`).
    fn path(&self) -> &'static str;

    /// Renders record `id` for `by`; `accept_language` is the request's
    /// `Accept-Language` header, if any.
    fn render<'a>(
        &'a self,
        app: &'a App,
        by: &'a Principal,
        id: &'a str,
        accept_language: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Rendered>>;
}

/// A rendered document.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// Its media type (`text/html; charset=utf-8`).
    pub content_type: &'static str,
    /// Its content language (`en`, `zh`).
    pub language: &'static str,
    /// The body.
    pub body: String,
}

/// What one module crate gives the platform. Every method but
/// [`Module::name`] has a default meaning "nothing of that kind".
pub trait Module: Send + Sync {
    /// Short name (`customers`), also its cargo feature in the gateway.
    fn name(&self) -> &'static str;

    /// Resource types it exposes to access policies.
    fn resources(&self) -> &'static [&'static str] {
        &[]
    }

    /// Arguments, input fields and enum values that read or write fields
    /// without naming them (filters, orderings, scalar-argument changes).
    fn field_uses(&self) -> &'static [FieldUse] {
        &[]
    }

    /// How its types' rows are owned, for row scope.
    fn ownership(&self) -> &'static [Ownership] {
        &[]
    }

    /// Its entities: id prefixes for `node(id)`, tables, custom fields.
    fn entities(&self) -> &'static [Entity] {
        &[]
    }

    /// Its rows that point at records (its own or upstream modules'):
    /// merges re-point them, undo puts them back, purges cascade.
    fn references(&self) -> &'static [Reference] {
        &[]
    }

    /// Its endpoints open to the internet (web forms), mounted by the
    /// gateway at `/{path}/{key}` behind core's [`crate::public`] rules.
    fn public_endpoints(&self) -> &'static [&'static dyn crate::public::PublicEndpoint] {
        &[]
    }

    /// Its printable documents, mounted by the gateway at
    /// `GET /{path}/{id}` for signed-in callers.
    fn documents(&self) -> &'static [&'static dyn Document] {
        &[]
    }

    /// The event topics its changes are published on.
    fn topics(&self) -> &'static [&'static str] {
        &[]
    }

    /// Adds its per-request data (batch loaders) to a request.
    fn request_data(
        &self,
        request: async_graphql::Request,
        _app: &App,
        _principal: &Principal,
    ) -> async_graphql::Request {
        request
    }

    /// Runs in the transaction that logs an activity (a call, email,
    /// meeting, note or task a person logged) on a record's timeline, so what a module
    /// derives from it (a lead's engagement score) commits with the entry
    /// or not at all. The module owning the timeline calls every module's
    /// hook through [`timeline_entry_written`] without knowing them.
    fn timeline_entry<'a>(
        &'a self,
        _conn: &'a mut Conn<'_>,
        _entry: &'a TimelineWritten,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Starts its background work, which ends when `shutdown` turns true.
    fn spawn_background(&self, _app: &App, _shutdown: tokio::sync::watch::Receiver<bool>) {}

    /// What `crm import` can read into it (`accounts`).
    fn imports(&self) -> &'static [&'static str] {
        &[]
    }

    /// Checks an import of `kind` with `options` (shaped like the GraphQL
    /// `ImportOptions`) before any file is read, and returns the job kind
    /// and the job's parameters.
    fn import_job(
        &self,
        _app: &App,
        _by: &Principal,
        kind: &str,
        _options: Value,
    ) -> Result<(&'static str, Value)> {
        Err(crate::Error::invalid(
            "entity",
            format!("{} imports no {kind}", self.name()),
        ))
    }

    /// Runs an import prepared by [`Module::import_job`].
    fn import<'a>(&'a self, run: ImportRun<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            Err(crate::Error::invalid(
                "entity",
                format!("{} imports no {}", self.name(), run.kind),
            ))
        })
    }

    /// The lists `crm export` can write (`accounts`, `timeline`).
    fn exports(&self) -> &'static [&'static str] {
        &[]
    }

    /// Writes an export of the acting user's rows and readable fields.
    fn export<'a>(&'a self, run: ExportRun<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            Err(crate::Error::invalid(
                "list",
                format!("{} exports no {}", self.name(), run.kind),
            ))
        })
    }

    /// The counts `crm demo` takes for this module.
    fn demo_counts(&self) -> &'static [DemoCount] {
        &[]
    }

    /// Adds demo data; returns a one-line summary of what it made.
    fn demo<'a>(&'a self, _run: DemoRun<'a>) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async { Ok(None) })
    }

    /// Erasure hook: removes `person`'s personal data from this module's
    /// own rows (records about them, text mentioning them), inside the
    /// erasure's transaction, and returns how many rows of which type it
    /// rewrote. The person's own record is the business of the mutation
    /// that erases it; the audit log, events, import reports and export
    /// files are core's ([`crate::privacy::erase_in_modules`] runs the
    /// hooks of every module).
    fn erase<'a>(
        &'a self,
        _conn: &'a mut Conn<'_>,
        _person: &'a Person<'a>,
    ) -> BoxFuture<'a, Result<Vec<(&'static str, i64)>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Right-of-access hook: this module's rows about or mentioning
    /// `person`, as named parts of the personal data report, read within
    /// `by`'s row scope and readable fields.
    fn personal_data<'a>(
        &'a self,
        _app: &'a App,
        _by: &'a Principal,
        _person: &'a Person<'a>,
    ) -> BoxFuture<'a, Result<Vec<(&'static str, Value)>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Every compiled-in module, and what core reads from them.
pub struct Registry {
    modules: &'static [&'static dyn Module],
}

impl Registry {
    /// A registry of `modules`.
    pub const fn new(modules: &'static [&'static dyn Module]) -> Registry {
        Registry { modules }
    }

    /// The modules, in the gateway's order.
    pub fn modules(&self) -> &'static [&'static dyn Module] {
        self.modules
    }

    /// Every registered entity.
    pub fn entities(&self) -> impl Iterator<Item = &'static Entity> + '_ {
        self.modules.iter().flat_map(|m| m.entities())
    }

    /// The entity of type `ty`.
    pub fn entity(&self, ty: &str) -> Option<&'static Entity> {
        self.entities().find(|e| e.ty == ty)
    }

    /// The entity whose ids start with `prefix`.
    pub fn entity_by_prefix(&self, prefix: &str) -> Option<&'static Entity> {
        self.entities().find(|e| e.id_prefix == prefix)
    }

    /// Entities that have custom fields.
    pub fn custom_field_entities(&self) -> impl Iterator<Item = &'static Entity> + '_ {
        self.entities().filter(|e| e.custom_fields)
    }

    /// Every registered reference.
    pub fn references(&self) -> impl Iterator<Item = &'static Reference> + '_ {
        self.modules.iter().flat_map(|m| m.references())
    }

    /// The references whose rows can point at a record of type `ty`:
    /// direct ones naming it and every reference by subject.
    pub fn references_to<'s>(
        &'s self,
        ty: &'s str,
    ) -> impl Iterator<Item = &'static Reference> + 's {
        self.references().filter(move |r| r.points_at(ty))
    }

    /// Every module's public endpoints.
    pub fn public_endpoints(
        &self,
    ) -> impl Iterator<Item = &'static dyn crate::public::PublicEndpoint> + '_ {
        self.modules
            .iter()
            .flat_map(|m| m.public_endpoints().iter().copied())
    }

    /// Every module's printable documents.
    pub fn documents(&self) -> impl Iterator<Item = &'static dyn Document> + '_ {
        self.modules
            .iter()
            .flat_map(|m| m.documents().iter().copied())
    }

    /// Every module's event topics.
    pub fn topics(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.modules.iter().flat_map(|m| m.topics().iter().copied())
    }

    /// The module that imports `kind`.
    pub fn importer(&self, kind: &str) -> Option<&'static dyn Module> {
        self.modules
            .iter()
            .find(|m| m.imports().contains(&kind))
            .copied()
    }

    /// The module that exports `kind`.
    pub fn exporter(&self, kind: &str) -> Option<&'static dyn Module> {
        self.modules
            .iter()
            .find(|m| m.exports().contains(&kind))
            .copied()
    }
}

static INSTALLED: OnceLock<Registry> = OnceLock::new();

/// Installs the compiled-in modules for the life of the process. The
/// gateway calls it before building the schema or starting the platform;
/// calling it again with the same list does nothing. A test may install
/// the gateway's modules followed by modules of its own first; the
/// gateway's later call then finds its list at the start and keeps it.
///
/// # Panics
///
/// When a list that does not start with `modules` was installed before:
/// the modules of a process are fixed at build time, so that is a
/// programming error.
pub fn install(modules: &'static [&'static dyn Module]) -> &'static Registry {
    let r = INSTALLED.get_or_init(|| Registry::new(modules));
    let same = r.modules.len() >= modules.len()
        && r.modules
            .iter()
            .zip(modules)
            .all(|(a, b)| a.name() == b.name());
    assert!(same, "a different module list was installed before");
    r
}

/// An entry just written on a record's timeline, as modules hear of it.
#[derive(Clone, Debug)]
pub struct TimelineWritten {
    /// The subject's type (`Lead`, `Contact`).
    pub subject_type: String,
    /// The subject's id.
    pub subject_id: String,
    /// The entry's kind as stored (`call`, `email`, `meeting`, `note`,
    /// `task`).
    pub kind: String,
    /// When it happened (UTC).
    pub occurred_at: chrono::NaiveDateTime,
}

/// Runs every installed module's [`Module::timeline_entry`] hook in the
/// writer's transaction (`conn`); the first error aborts the write.
pub async fn timeline_entry_written(conn: &mut Conn<'_>, entry: &TimelineWritten) -> Result<()> {
    for m in registry().modules() {
        m.timeline_entry(conn, entry).await?;
    }
    Ok(())
}

/// The installed modules; none before [`install`] (core alone, its unit
/// tests).
pub fn registry() -> &'static Registry {
    static NONE: Registry = Registry::new(&[]);
    INSTALLED.get().unwrap_or(&NONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Shop;

    impl Module for Shop {
        fn name(&self) -> &'static str {
            "shop"
        }
        fn entities(&self) -> &'static [Entity] {
            const ENTITIES: &[Entity] = &[
                Entity::new("Store", "stores", "sto").with_custom_fields(),
                Entity::new("Clerk", "clerks", "clk"),
            ];
            ENTITIES
        }
        fn references(&self) -> &'static [Reference] {
            const REFERENCES: &[Reference] = &[
                Reference::column("shop", "Clerk", "clerks", "store_id", "Store")
                    .on_purge(OnPurge::Detach),
                Reference::subject("shop", "Note", "notes", "subject_type", "subject_id")
                    .on_purge(OnPurge::Delete),
            ];
            REFERENCES
        }
    }

    /// A module downstream of `Shop` that points at its stores without
    /// touching it.
    struct Deliveries;

    impl Module for Deliveries {
        fn name(&self) -> &'static str {
            "deliveries"
        }
        fn references(&self) -> &'static [Reference] {
            const REFERENCES: &[Reference] =
                &[
                    Reference::column("deliveries", "Delivery", "deliveries", "store_id", "Store")
                        .unversioned(),
                ];
            REFERENCES
        }
    }

    static MODULES: &[&dyn Module] = &[&Shop, &Deliveries];

    #[test]
    fn the_registry_answers_what_points_at_an_entity() {
        let r = Registry::new(MODULES);
        let to_store: Vec<(&str, &str)> = r
            .references_to("Store")
            .map(|l| (l.table, l.column))
            .collect();
        assert_eq!(
            to_store,
            [
                ("clerks", "store_id"),
                ("notes", "subject_id"),
                ("deliveries", "store_id")
            ]
        );
        let to_clerk: Vec<&str> = r.references_to("Clerk").map(|l| l.table).collect();
        assert_eq!(to_clerk, ["notes"], "only subject references");
        assert_eq!(r.entity_by_prefix("clk").map(|e| e.ty), Some("Clerk"));
        assert_eq!(
            r.custom_field_entities().map(|e| e.ty).collect::<Vec<_>>(),
            ["Store"]
        );
        assert!(r.entity("Nothing").is_none());
    }

    #[test]
    fn references_to_an_unregistered_type_are_an_error_not_an_empty_list() {
        // Core's own tests install no modules.
        assert!(registry().modules().is_empty());
        assert!(matches!(
            references::references_to("Account"),
            Err(crate::Error::Internal(_))
        ));
    }
}
