//! Importing CSV files into a kit entity.
//!
//! An entity declares its importable columns ([`ImportColumn`]: API name,
//! header aliases in English and Chinese, the policy field it writes), the
//! columns a new record needs, its duplicate key and one hook that turns a
//! row's cells into its `Fields` ([`Importable`]). The rest is here, once:
//! header resolution and explicit mappings, encodings (UTF-8 / GBK), batches,
//! modes, dry run, duplicates (skip / update / create), owners by id or
//! e-mail, custom field cells, the error report, progress, cancel and jobs.
//! Rows are written through the kit: the entity's `apply` validates each
//! row like an API write, new rows go in with one multi-row insert per
//! batch, then `after_write` and the audit entries and events.
//!
//! Modes:
//! - all-or-nothing (default): the whole file is validated first; if any row
//!   is bad nothing is written, otherwise every row is written in one
//!   transaction.
//! - skip-bad-rows: each batch of good rows is committed on its own; bad rows
//!   are reported and left out. A cancel or failure keeps the batches already
//!   committed, never part of a row.
//!
//! A dry run validates everything and writes nothing but the report.

mod columns;
mod rows;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use async_graphql::{Enum, ID, InputObject};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::access::{self, Principal, row_filter_for};
use crate::app::App;
use crate::custom;
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::jobs::{self, Counters, JobStatus, Outcome, RowError};
use crate::tabular::{CsvSource, Encoding, Row};

use super::Entity;

pub use columns::Cells;
use columns::{Col, Columns};
use rows::Run;

/// Rows per batch (one transaction per batch in skip-bad-rows mode).
const BATCH: usize = 500;

/// What happens to a bad row.
#[derive(Enum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportMode {
    /// Any bad row and nothing is written.
    #[default]
    AllOrNothing,
    /// Bad rows are reported and left out; good rows are written.
    SkipBadRows,
}

/// What happens to a row that matches an existing record (same `id`, same
/// first email for contacts, same name for accounts).
#[derive(Enum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicateHandling {
    /// Leave the existing record alone.
    #[default]
    Skip,
    /// Update the existing record with the row's non-empty cells.
    Update,
    /// Create a new record anyway.
    Create,
}

/// The character encoding of an uploaded file.
#[derive(Enum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(name = "FileEncoding")]
#[serde(rename_all = "lowercase")]
pub enum FileEncoding {
    /// UTF-8 if the file starts as valid UTF-8 (or with a BOM), else GBK.
    #[default]
    Auto,
    /// UTF-8, with or without BOM.
    Utf8,
    /// GBK / GB18030.
    Gbk,
}

impl From<FileEncoding> for Encoding {
    fn from(e: FileEncoding) -> Self {
        match e {
            FileEncoding::Auto => Encoding::Auto,
            FileEncoding::Utf8 => Encoding::Utf8,
            FileEncoding::Gbk => Encoding::Gbk,
        }
    }
}

/// Reads a file column into a field.
#[derive(InputObject, Clone, Debug, Serialize, Deserialize)]
pub struct ColumnMapping {
    /// The header as written in the file.
    pub column: String,
    /// The field it fills (e.g. `lastName`), or `ignore`.
    pub field: String,
}

/// How to import a file.
#[derive(InputObject, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportOptions {
    /// All-or-nothing (default) or skip bad rows.
    #[graphql(default)]
    #[serde(default)]
    pub mode: ImportMode,
    /// Rows matching an existing record: skip (default), update or create.
    #[graphql(default)]
    #[serde(default)]
    pub duplicates: DuplicateHandling,
    /// Validate and report only; write nothing.
    #[graphql(default)]
    #[serde(default)]
    pub dry_run: bool,
    /// The file's character encoding.
    #[graphql(default)]
    #[serde(default)]
    pub encoding: FileEncoding,
    /// Columns whose header is not a field name (others are matched by
    /// name; see the README for the accepted headers).
    #[graphql(default)]
    #[serde(default)]
    pub mapping: Vec<ColumnMapping>,
    /// Owner of rows without an owner column (default: you).
    pub default_owner_id: Option<ID>,
}

/// A column an entity imports. The `id`, `ownerId` and `ownerEmail`
/// columns (owner-scoped entities) and custom fields are the kit's.
#[derive(Clone, Copy, Debug)]
pub struct ImportColumn {
    /// The field's API name (also what an export writes as header).
    pub api: &'static str,
    /// Other accepted headers, lower case, letters and digits only
    /// (`companyname`, `公司`).
    pub aliases: &'static [&'static str],
    /// The policy field the column writes (`api` unless said otherwise;
    /// None for a column that writes nothing of its own).
    pub writes: Option<&'static str>,
}

impl ImportColumn {
    /// Column `api`, also read under `aliases`, writing the field `api`.
    pub const fn new(api: &'static str, aliases: &'static [&'static str]) -> ImportColumn {
        ImportColumn {
            api,
            aliases,
            writes: Some(api),
        }
    }

    /// Writes the policy field `field` (`street` writes `address`).
    pub const fn writes(mut self, field: &'static str) -> ImportColumn {
        self.writes = Some(field);
        self
    }
}

/// How rows match existing records besides by `id`.
#[derive(Clone, Copy, Debug)]
pub struct DuplicateKey {
    /// The table column holding the key.
    pub column: &'static str,
    /// Compared in lower case (`lower(column)`, indexed that way).
    pub lower: bool,
}

/// What the kit gives the row hook.
pub struct RowCtx {
    /// True when the row creates a record (defaults and required fields
    /// apply).
    pub creating: bool,
    /// The row's custom field cells, parsed, as a patch.
    pub custom: Option<Map<String, Value>>,
    /// The entity's live custom field definitions.
    pub defs: Arc<Vec<custom::Def>>,
}

/// A row turned into the entity's input.
pub struct RowInput<F> {
    /// The fields `Entity::apply` validates and applies.
    pub fields: F,
    /// Columns set on the row before `apply`, by column name: values the
    /// hook checked itself (a reference looked up by name) and `apply`
    /// leaves alone. The kit sets the owner column the same way.
    pub set: Vec<(&'static str, Value)>,
}

/// Problems with a row's cells: (API name of the column, message).
pub type CellErrors = Vec<(&'static str, String)>;

/// An entity that imports CSV files.
pub trait Importable: Entity {
    /// The columns a file may have (besides id, owner and custom fields).
    const COLUMNS: &'static [ImportColumn];
    /// Headers read and skipped (export-only columns), normalised.
    const IGNORED: &'static [&'static str] = &[];
    /// Columns a file must have unless it has an `id` column, and a new
    /// record must fill (API names).
    const REQUIRED: &'static [&'static str];
    /// Rows matching an existing record besides by id (None: by id only).
    const KEY: Option<DuplicateKey> = None;
    /// The job kind (`import.accounts`).
    const JOB_KIND: &'static str;
    /// What the row hook keeps across rows (lookups, scopes).
    type Session: Send + Sync;

    /// Starts an import of a file filling the columns `used` (API names).
    fn session(
        app: &App,
        by: &Principal,
        used: &[&'static str],
    ) -> impl Future<Output = Result<Self::Session>> + Send;

    /// The duplicate key of a row (compared with [`Importable::KEY`]).
    fn key(_cells: &Cells<'_>) -> Option<String> {
        None
    }

    /// Turns a row's cells into the entity's fields; `base` is the record
    /// the row updates, if any. Bad cells go to `errs`.
    fn fields(
        session: &mut Self::Session,
        conn: &mut Conn<'_>,
        cells: &Cells<'_>,
        base: Option<&Self::Row>,
        ctx: RowCtx,
        errs: &mut CellErrors,
    ) -> impl Future<Output = Result<RowInput<Self::Fields>>> + Send;
}

/// Progress as an import goes: counters, bytes read, file size.
pub type OnProgress<'a> = &'a (dyn Fn(&Counters, u64, u64) + Send + Sync);

/// Checks that the caller may import `E` with these options, before any
/// file is read: create (and update, when updating duplicates).
pub fn check_allowed<E: Importable>(app: &App, by: &Principal, opts: &ImportOptions) -> Result<()> {
    let ty = E::DEF.type_name;
    access::require_all(app, by, [ty.to_owned()], "create")?;
    if opts.duplicates == DuplicateHandling::Update && !access::has_scope(app, by, ty, "update") {
        return Err(by.refusal(
            &format!("not allowed to update {ty} (duplicates: update)"),
            vec![ty.to_owned()],
        ));
    }
    Ok(())
}

/// Checks the `defaultOwnerId` option as an API write of `ownerId`: the
/// importer must be allowed to assign owners and see that user.
async fn check_default_owner<E: Importable>(app: &App, by: &Principal, id: &str) -> Result<()> {
    if E::DEF.scope.owner_column().is_none() {
        return Err(Error::invalid(
            "defaultOwnerId",
            format!("{} records have no owner", E::DEF.label),
        ));
    }
    access::require_assignable_owner(app, by, E::DEF.type_name, id)
        .await
        .map_err(|e| match e {
            Error::Validation(_) => Error::invalid("defaultOwnerId", "no such active user"),
            other => other,
        })
}

/// Imports `path` into `E` as job `job_id` (already created); returns the
/// outcome.
pub async fn run<E: Importable>(
    app: &App,
    by: &Principal,
    path: &Path,
    opts: &ImportOptions,
    job_id: &str,
    on_progress: OnProgress<'_>,
) -> Result<Outcome> {
    check_allowed::<E>(app, by, opts)?;
    let ty = E::DEF.type_name;
    let mut source = CsvSource::open(path, opts.encoding.into())?;
    let defs = if E::DEF.custom_fields {
        let mut c = app.db.conn().await?;
        custom::definitions(&mut c.conn(), ty).await?
    } else {
        Vec::new()
    };
    let defs = Arc::new(defs);
    let cols = Columns::resolve::<E>(&source.headers, &opts.mapping, &defs)?;
    // Field rules: every column must be a field the caller may write.
    access::require_all(
        app,
        by,
        cols.used()
            .filter_map(|f| match f {
                Col::Custom(i) => Some(format!("custom.{}", defs[i as usize].key)),
                other => columns::policy_field::<E>(other).map(str::to_owned),
            })
            .map(|f| format!("{ty}.{f}")),
        "write",
    )?;
    let read_scope = row_filter_for(app, by, ty, "read").await?;
    let update_scope = match opts.duplicates {
        DuplicateHandling::Update => Some(row_filter_for(app, by, ty, "update").await?),
        _ => None,
    };
    let default_owner = match (&opts.default_owner_id, E::DEF.scope.owner_column()) {
        (Some(id), _) => {
            check_default_owner::<E>(app, by, id).await?;
            Some(id.0.clone())
        }
        (None, Some(_)) => by.user_id().map(str::to_owned),
        (None, _) => None,
    };
    let used = cols.used_api::<E>();
    let session = E::session(app, by, &used).await?;
    let mut run = Run::<E> {
        app,
        by,
        opts,
        cols,
        read_scope,
        update_scope,
        default_owner_given: opts.default_owner_id.is_some(),
        default_owner,
        owners: HashMap::new(),
        defs,
        session,
        blank: super::fields_of::<E>(&E::blank())?,
    };
    let write_per_batch = !opts.dry_run && opts.mode == ImportMode::SkipBadRows;
    // Pass 1: validate (and, in skip-bad-rows mode, write each batch).
    let mut total = Counters::default();
    let mut cancelled = false;
    let mut batches = 0;
    loop {
        let (rows, unreadable) = next_batch(&mut source);
        if rows.is_empty() && unreadable.is_empty() {
            break;
        }
        batches += 1;
        let mut result = if write_per_batch {
            let mut tx = app.db.begin().await?;
            let mut result = run.prepare(&mut tx.conn(), &rows).await?;
            let writes = std::mem::take(&mut result.writes);
            run.write(&mut tx, writes).await?;
            refresh_stats::<E>(&mut tx.conn(), batches).await?;
            app.commit(tx).await?;
            result
        } else {
            let mut c = app.db.conn().await?;
            run.prepare(&mut c.conn(), &rows).await?
        };
        for (line, message) in unreadable {
            result.counters.rows_done += 1;
            result.counters.failed += 1;
            result.errors.push(RowError {
                line: line as i64,
                column: String::new(),
                message,
            });
        }
        add(&mut total, &result.counters);
        if !result.errors.is_empty() {
            let mut tx = app.db.begin().await?;
            jobs::add_errors(&mut tx.conn(), job_id, &result.errors).await?;
            tx.commit().await?;
        }
        on_progress(&total, source.position(), source.size);
        if jobs::progress(&app.db, job_id, &total).await? {
            cancelled = true;
            break;
        }
    }
    let written = |n: &Counters| n.created + n.updated;
    if cancelled {
        let message = if write_per_batch {
            format!(
                "cancelled after {} rows; the {} rows written before stay",
                total.rows_done,
                written(&total)
            )
        } else {
            format!(
                "cancelled after {} rows; nothing was written",
                total.rows_done
            )
        };
        if !write_per_batch {
            total = Counters {
                rows_done: total.rows_done,
                failed: total.failed,
                ..Counters::default()
            };
        }
        return Ok(outcome(JobStatus::Cancelled, total, message));
    }
    if opts.dry_run {
        let message = format!(
            "dry run: {} rows checked; would create {}, update {}, skip {}; {} bad rows; nothing was written",
            total.rows_done, total.created, total.updated, total.skipped, total.failed
        );
        let counters = Counters {
            rows_done: total.rows_done,
            skipped: total.rows_done - total.failed,
            failed: total.failed,
            ..Counters::default()
        };
        return Ok(outcome(JobStatus::Succeeded, counters, message));
    }
    if write_per_batch {
        let message = format!(
            "{} rows: {} created, {} updated, {} skipped, {} failed",
            total.rows_done, total.created, total.updated, total.skipped, total.failed
        );
        return Ok(outcome(JobStatus::Succeeded, total, message));
    }
    if total.failed > 0 {
        let message = format!(
            "{} of {} rows have errors; nothing was imported (fix them, or import with skip-bad-rows)",
            total.failed, total.rows_done
        );
        let counters = Counters {
            rows_done: total.rows_done,
            failed: total.failed,
            ..Counters::default()
        };
        return Ok(outcome(JobStatus::Failed, counters, message));
    }
    // Pass 2 (all-or-nothing): every row in one transaction, with lookups
    // made afresh.
    let mut source = CsvSource::open(path, opts.encoding.into())?;
    run.owners.clear();
    run.session = E::session(app, by, &used).await?;
    let mut tx = app.db.begin().await?;
    let mut done = Counters::default();
    // SQLite has one writer: progress is reported at the end. PostgreSQL
    // reports as it goes, over a second connection.
    let live = matches!(app.db.backend(), crate::db::Backend::Postgres);
    let mut batches = 0;
    loop {
        let (rows, unreadable) = next_batch(&mut source);
        if rows.is_empty() && unreadable.is_empty() {
            break;
        }
        let mut result = run.prepare(&mut tx.conn(), &rows).await?;
        if result.counters.failed > 0 || !unreadable.is_empty() {
            // The data changed since validation (e.g. an owner was
            // deactivated): nothing is written.
            drop(tx);
            let e = result.errors.first();
            return Err(Error::Conflict(format!(
                "the data changed while importing{}; nothing was imported",
                e.map(|e| format!(" (line {}: {} {})", e.line, e.column, e.message))
                    .unwrap_or_default()
            )));
        }
        let writes = std::mem::take(&mut result.writes);
        run.write(&mut tx, writes).await?;
        batches += 1;
        refresh_stats::<E>(&mut tx.conn(), batches).await?;
        add(&mut done, &result.counters);
        on_progress(&done, source.position(), source.size);
        if live && jobs::progress(&app.db, job_id, &done).await? {
            drop(tx);
            let counters = Counters {
                rows_done: done.rows_done,
                ..Counters::default()
            };
            let message = format!(
                "cancelled after {} rows; nothing was written",
                done.rows_done
            );
            return Ok(outcome(JobStatus::Cancelled, counters, message));
        }
    }
    app.commit(tx).await?;
    let message = format!(
        "{} rows: {} created, {} updated, {} skipped",
        done.rows_done, done.created, done.updated, done.skipped
    );
    Ok(outcome(JobStatus::Succeeded, done, message))
}

fn outcome(status: JobStatus, counters: Counters, message: String) -> Outcome {
    Outcome {
        status,
        counters,
        message: Some(message),
        result_path: None,
    }
}

/// PostgreSQL plans the duplicate lookups with the statistics it has, and
/// a table that grows from empty during a bulk load would keep plans made
/// for an empty table (a full scan per batch). The statistics are refreshed
/// each time the import has grown the table tenfold.
async fn refresh_stats<E: Importable>(conn: &mut Conn<'_>, batch: usize) -> Result<()> {
    if let Conn::Pg(c) = conn
        && [1, 10, 100, 1_000, 10_000].contains(&batch)
    {
        diesel_async::RunQueryDsl::execute(
            diesel::sql_query(format!("ANALYZE {}", E::DEF.table)),
            &mut **c,
        )
        .await?;
    }
    Ok(())
}

fn add(total: &mut Counters, n: &Counters) {
    total.rows_done += n.rows_done;
    total.created += n.created;
    total.updated += n.updated;
    total.skipped += n.skipped;
    total.failed += n.failed;
}

/// Reads up to [`BATCH`] rows: the good ones and the unreadable ones.
fn next_batch(source: &mut CsvSource) -> (Vec<Row>, Vec<(u64, String)>) {
    let mut rows = Vec::with_capacity(BATCH);
    let mut bad = Vec::new();
    while rows.len() + bad.len() < BATCH {
        match source.next_row() {
            None => break,
            Some(Ok(r)) => rows.push(r),
            Some(Err(e)) => bad.push(e),
        }
    }
    (rows, bad)
}

/// Checks an import job's options before it is created (the job's kind
/// and stored parameters).
pub fn job_params<E: Importable>(
    app: &App,
    by: &Principal,
    opts: &ImportOptions,
) -> Result<(&'static str, Value)> {
    check_allowed::<E>(app, by, opts)?;
    let params = serde_json::to_value(opts).map_err(|e| Error::Internal(e.to_string()))?;
    Ok((E::JOB_KIND, params))
}

/// Starts an import job in the background from an uploaded file, which is
/// copied into the job's directory and deleted when the job ends.
pub async fn start_job<E: Importable>(
    app: &App,
    by: &Principal,
    mut upload: std::fs::File,
    file_name: Option<String>,
    opts: ImportOptions,
) -> Result<jobs::JobRow> {
    check_allowed::<E>(app, by, &opts)?;
    if let Some(id) = &opts.default_owner_id {
        check_default_owner::<E>(app, by, id).await?;
    }
    let params = serde_json::to_value(&opts).unwrap_or(Value::Null);
    let job = jobs::create(&app.db, by, E::JOB_KIND, &params, file_name).await?;
    let dir = jobs::dir(app, &job.id);
    let input = dir.join("input.csv");
    let target = input.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Seek;
        std::fs::create_dir_all(&dir)?;
        upload.rewind()?;
        let mut out = std::fs::File::create(&target)?;
        std::io::copy(&mut upload, &mut out)?;
        out.sync_all()
    })
    .await
    .map_err(|e| Error::Internal(format!("storing the upload: {e}")))?
    .map_err(|e| Error::Internal(format!("storing the upload: {e}")))?;
    let (app2, by2, id) = (app.clone(), by.clone(), job.id.clone());
    jobs::spawn(app, job.id.clone(), async move {
        let r = run::<E>(&app2, &by2, &input, &opts, &id, &|_, _, _| {}).await;
        // The upload holds personal data: keep it no longer than needed.
        let _ = std::fs::remove_file(&input);
        r
    });
    Ok(job)
}

/// Starts an import job of `E` from a GraphQL multipart upload.
pub async fn start_upload<E: Importable>(
    ctx: &async_graphql::Context<'_>,
    file: async_graphql::Upload,
    options: Option<ImportOptions>,
) -> Result<jobs::Job> {
    let app = ctx.data_unchecked::<App>();
    let by = access::principal(ctx);
    let upload = file
        .value(ctx)
        .map_err(|e| Error::invalid("file", format!("cannot read the upload: {e}")))?;
    let name = Some(upload.filename.clone()).filter(|n| !n.is_empty());
    let job = start_job::<E>(app, by, upload.content, name, options.unwrap_or_default()).await?;
    Ok(job.into())
}
