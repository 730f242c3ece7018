//! Exports as CSV or JSON Lines: a background job (or `crm export`)
//! writing a file the caller downloads.
//!
//! An export is the same list the caller could page through in the API:
//! the same row scope (as SQL), the same filters, and only the columns of
//! fields the caller may read ([`crate::access::readable_fields`]). Column
//! names are the API field names, so an exported CSV imports back
//! unchanged.
//!
//! A kit entity declares its export once ([`Exportable`]: the columns, the
//! filter input and how it becomes a [`ListQuery`]) and core runs the rest
//! ([`run`], [`start`], [`kit`]). A list that is not a kit entity declares
//! its columns and gives its pages in id order ([`Listing`]) and shares the
//! same file, progress, cancel and job handling ([`write`], [`start_job`]).

use std::future::Future;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use async_graphql::InputType;
use chrono::NaiveDateTime;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use crate::access::{Principal, RowFilter, narrow_to_team, readable_fields, row_filter_for};
use crate::app::App;
use crate::custom::{self, CustomFieldFilter};
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::jobs::{self, Counters, Job, JobStatus, Outcome};
use crate::module::ExportRun;
use crate::paging::{self, Direction, PageQuery};
use crate::tabular::{ExportFormat, TableWriter};

use super::{Entity, ListQuery, fields_of, list, text_of};

/// Rows read per query.
pub const PAGE: i64 = 1_000;

/// One column of an export.
pub struct ExportColumn<R> {
    /// Header (an API field name, or a part of one: `street`).
    pub name: &'static str,
    /// The API field whose read rule decides whether it is written.
    pub field: &'static str,
    /// The cell of a row.
    pub cell: fn(&R) -> Value,
}

impl<R> ExportColumn<R> {
    /// Column `name` showing `field`, computed by `cell`.
    pub const fn new(name: &'static str, field: &'static str, cell: fn(&R) -> Value) -> Self {
        ExportColumn { name, field, cell }
    }

    /// A column that is its own field.
    pub const fn field(name: &'static str, cell: fn(&R) -> Value) -> Self {
        ExportColumn::new(name, name, cell)
    }
}

/// What an export's filter selects: the list conditions, plus what core
/// resolves against the caller (team, custom field filters).
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Conditions, keyword search, recycle bin (order is the export's own).
    pub query: ListQuery,
    /// Narrows the row scope to this team's members.
    pub team: Option<String>,
    /// Custom field conditions, checked against the caller's read rights.
    pub custom: Vec<CustomFieldFilter>,
}

/// A kit entity that can be exported.
pub trait Exportable: Entity {
    /// List name: job kind `export.<LIST>`, file name, `crm export <LIST>`.
    const LIST: &'static str;
    /// Every column, in file order.
    const COLUMNS: &'static [ExportColumn<Self::Row>];
    /// Keyset order of the file (a declared sort column).
    const ORDER: &'static str = "created_at";
    /// The list's GraphQL filter input.
    type Filter: InputType + Default + Clone + Send + Sync + 'static;

    /// What `filter` selects for `by`.
    fn select(
        app: &App,
        by: &Principal,
        filter: &Self::Filter,
    ) -> impl Future<Output = Result<Selection>> + Send;

    /// The row's stored custom field values (a JSON object), for entities
    /// with custom fields.
    fn custom_values(row: &Self::Row) -> String
    where
        Self: Sized,
    {
        fields_of::<Self>(row)
            .map(|m| text_of(&m, "custom"))
            .unwrap_or_default()
    }
}

/// A timestamp cell (RFC 3339, microseconds, UTC).
pub fn time(t: NaiveDateTime) -> Value {
    json!(
        t.and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

/// An optional timestamp cell.
pub fn opt_time(t: Option<NaiveDateTime>) -> Value {
    t.map_or(Value::Null, time)
}

/// Minor units as a decimal amount in major units (`123450` -> `1234.50`).
pub fn major(minor: i64) -> Value {
    json!(format!(
        "{}{}.{:02}",
        if minor < 0 { "-" } else { "" },
        (minor / 100).abs(),
        (minor % 100).abs()
    ))
}

/// An optional amount cell.
pub fn opt_major(minor: Option<i64>) -> Value {
    minor.map_or(Value::Null, major)
}

/// The columns of `columns` the caller may read on `ty`, by the same rule
/// as a GraphQL selection (a column whose field the schema does not have
/// is never written).
pub fn readable_columns<R>(
    app: &App,
    by: &Principal,
    ty: &str,
    columns: &'static [ExportColumn<R>],
) -> Vec<&'static ExportColumn<R>> {
    let readable = readable_fields(app, by, ty);
    columns
        .iter()
        .filter(|c| readable.contains(c.field))
        .collect()
}

/// The cells of `row` in `columns`.
pub fn cells<R>(columns: &[&'static ExportColumn<R>], row: &R) -> Vec<Value> {
    columns.iter().map(|c| (c.cell)(row)).collect()
}

/// A list's filter read from GraphQL-shaped JSON (`{"search": "acme"}`),
/// for the command line. Unknown keys are a VALIDATION error.
pub fn filter_from_json<T: InputType + Default>(v: Option<Value>) -> Result<T> {
    let Some(v) = v else {
        return Ok(T::default());
    };
    let given: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let value = async_graphql::Value::from_json(v)
        .map_err(|e| Error::invalid("filter", format!("not a filter: {e}")))?;
    let parsed = T::parse(Some(value))
        .map_err(|e| Error::invalid("filter", e.into_server_error(Default::default()).message))?;
    // Unknown keys are a typo, not a filter to drop silently.
    let known = parsed.to_value().into_json().unwrap_or_default();
    if let Some(k) = given.iter().find(|k| known.get(k.as_str()).is_none()) {
        return Err(Error::invalid(
            "filter",
            format!("unknown filter field {k:?}"),
        ));
    }
    Ok(parsed)
}

/// Where an export goes.
pub struct Target<'a> {
    /// CSV or JSON Lines.
    pub format: ExportFormat,
    /// The file (written under a temporary name, renamed when complete).
    pub out: PathBuf,
    /// The job to report progress to (and to stop when cancelled).
    pub job_id: Option<&'a str>,
    /// Called with the rows written so far.
    pub progress: &'a (dyn Fn(i64) + Send + Sync),
}

/// The rows of an export, a page at a time.
pub trait Pages: Send {
    /// The next page's rows as cells (fewer than [`PAGE`]: the last one).
    fn next(&mut self) -> impl Future<Output = Result<Vec<Vec<Value>>>> + Send;
}

/// Writes `columns` and the rows of `pages` to the target, reporting
/// progress and stopping when the job is cancelled (no file is kept then).
/// `noun` names the rows in the outcome message.
pub async fn write<P: Pages>(
    app: &App,
    target: &Target<'_>,
    columns: Vec<String>,
    noun: &str,
    mut pages: P,
) -> Result<Outcome> {
    let out = &target.out;
    let dir = out
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Internal(format!("export directory {}: {e}", dir.display())))?;
    let partial = out.with_extension(format!("{}.partial", target.format.extension()));
    let file = std::fs::File::create(&partial)
        .map_err(|e| Error::Internal(format!("export file {}: {e}", partial.display())))?;
    let mut writer = TableWriter::new(BufWriter::new(file), target.format, columns)?;
    let mut written = 0i64;
    let mut cancelled = false;
    loop {
        let rows = pages.next().await?;
        let n = rows.len() as i64;
        for values in &rows {
            writer.write(values)?;
        }
        written += n;
        (target.progress)(written);
        if let Some(id) = target.job_id
            && jobs::progress(
                &app.db,
                id,
                &Counters {
                    rows_done: written,
                    ..Counters::default()
                },
            )
            .await?
        {
            cancelled = true;
            break;
        }
        if n < PAGE {
            break;
        }
    }
    let mut out_file = writer.finish()?;
    out_file
        .flush()
        .map_err(|e| Error::Internal(format!("export write: {e}")))?;
    drop(out_file);
    let counters = Counters {
        rows_done: written,
        ..Counters::default()
    };
    if cancelled {
        let _ = std::fs::remove_file(&partial);
        return Ok(Outcome {
            status: JobStatus::Cancelled,
            counters,
            message: Some(format!("cancelled after {written} rows; no file was kept")),
            result_path: None,
        });
    }
    std::fs::rename(&partial, out).map_err(|e| Error::Internal(format!("export rename: {e}")))?;
    Ok(Outcome {
        status: JobStatus::Succeeded,
        counters,
        message: Some(format!("{written} {noun} exported")),
        result_path: Some(out.clone()),
    })
}

/// Pages of a kit entity: keyset over [`list`] in the caller's scope.
struct KitPages<'a, E: Exportable> {
    app: &'a App,
    scope: RowFilter,
    query: ListQuery,
    columns: Vec<&'static ExportColumn<E::Row>>,
    custom: Vec<custom::Def>,
    after: Option<String>,
}

impl<E: Exportable> Pages for KitPages<'_, E> {
    async fn next(&mut self) -> Result<Vec<Vec<Value>>> {
        let page = PageQuery {
            after: self.after.clone(),
            before: None,
            limit: PAGE - 1,
            backwards: false,
        };
        let mut rows = {
            let mut c = self.app.db.conn().await?;
            list::<E>(&mut c.conn(), &self.scope, &self.query, &page, false)
                .await?
                .0
        };
        rows.truncate(PAGE as usize);
        if let Some(r) = rows.last() {
            let key = super::list::sort_value::<E>(&self.query, r)?;
            self.after = Some(paging::pair(&key, &super::id_of::<E>(r)?));
        }
        Ok(rows
            .iter()
            .map(|r| {
                let mut v = cells(&self.columns, r);
                if !self.custom.is_empty() {
                    let stored: serde_json::Map<String, Value> =
                        serde_json::from_str(&E::custom_values(r)).unwrap_or_default();
                    v.extend(
                        self.custom
                            .iter()
                            .map(|d| custom::cell(d, stored.get(&d.key))),
                    );
                }
                v
            })
            .collect())
    }
}

/// Writes the export of `E` matching `filter` to the target; checks the
/// caller's rights first. Returns the outcome with the file as the result.
pub async fn run<E: Exportable>(
    app: &App,
    by: &Principal,
    filter: &E::Filter,
    target: &Target<'_>,
) -> Result<Outcome> {
    let def = &E::DEF;
    let ty = def.type_name;
    let selection = E::select(app, by, filter).await?;
    let mut query = selection.query;
    let verb = if query.deleted { "delete" } else { "read" };
    let scope = row_filter_for(app, by, ty, verb).await?;
    let scope = match &selection.team {
        Some(t) => narrow_to_team(app, scope, t).await?,
        None => scope,
    };
    let columns = readable_columns(app, by, ty, E::COLUMNS);
    let mut header: Vec<String> = columns.iter().map(|c| c.name.to_owned()).collect();
    // Custom fields the caller may read, as `custom.<key>` columns, and the
    // list's custom field filters.
    let mut custom_defs = Vec::new();
    if def.custom_fields {
        let defs = {
            let mut c = app.db.conn().await?;
            custom::definitions(&mut c.conn(), ty).await?
        };
        custom_defs = defs
            .into_iter()
            .filter(|d| custom::allowed(app, by, ty, &d.key, "read"))
            .collect();
        (query.custom, _) =
            custom::query_parts(app, by, ty, def.table, &selection.custom, None).await?;
        header.extend(custom_defs.iter().map(|d| format!("custom.{}", d.key)));
    } else if !selection.custom.is_empty() {
        return Err(Error::invalid(
            "filter.custom",
            format!("{ty} has no custom fields"),
        ));
    }
    if header.is_empty() {
        return Err(by.refusal(
            &format!("not allowed to read any field of {ty}"),
            vec![ty.to_owned()],
        ));
    }
    query.order = Some((E::ORDER, Direction::Asc));
    query.custom_sort = None;
    let pages = KitPages::<E> {
        app,
        scope,
        query,
        columns,
        custom: custom_defs,
        after: None,
    };
    write(app, target, header, E::LIST, pages).await
}

/// Starts export job `export.<list>` of resource `ty` for the caller (who
/// must have read on it); `work` writes the file (the job's directory)
/// given the platform, the caller, the file and the job id.
pub async fn start_job<F, Fut>(
    app: &App,
    by: &Principal,
    ty: &str,
    list: &str,
    format: ExportFormat,
    filter: Value,
    work: F,
) -> Result<Job>
where
    F: FnOnce(App, Principal, PathBuf, String) -> Fut,
    Fut: Future<Output = Result<Outcome>> + Send + 'static,
{
    // Refuse at once what the job would refuse.
    row_filter_for(app, by, ty, "read").await?;
    let params = json!({"list": list, "format": format, "filter": filter});
    let job = jobs::create(&app.db, by, &format!("export.{list}"), &params, None).await?;
    let out = jobs::dir(app, &job.id).join(format!(
        "{list}-{}.{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        format.extension()
    ));
    let work = work(app.clone(), by.clone(), out, job.id.clone());
    jobs::spawn(app, job.id.clone(), work);
    Ok(job.into())
}

/// Starts the export job of `E` matching `filter` (GraphQL `export…`
/// mutations); `exportJob(id)` follows it and its `downloadUrl` serves
/// the file.
pub async fn start<E: Exportable>(
    app: &App,
    by: &Principal,
    filter: E::Filter,
    format: ExportFormat,
) -> Result<Job> {
    let json = filter.to_value().into_json().unwrap_or_default();
    start_job(
        app,
        by,
        E::DEF.type_name,
        E::LIST,
        format,
        json,
        move |app, by, out, id| async move {
            let target = Target {
                format,
                out,
                job_id: Some(&id),
                progress: &|_| {},
            };
            run::<E>(&app, &by, &filter, &target).await
        },
    )
    .await
}

/// A list that is not a kit entity (a log, a child table), exported in id
/// order: the module gives its pages, core the rest.
pub trait Listing: Send + Sync + 'static {
    /// List name: job kind `export.<LIST>`, file name, `crm export <LIST>`.
    const LIST: &'static str;
    /// Resource type whose row scope and read rules apply.
    const TYPE: &'static str;
    /// A row.
    type Row: Send + Sync;
    /// Every column, in file order.
    const COLUMNS: &'static [ExportColumn<Self::Row>];
    /// The list's GraphQL filter input.
    type Filter: InputType + Default + Clone + Send + Sync + 'static;

    /// Up to `limit` rows in `scope` matching `filter` with an id above
    /// `after`, in id order.
    fn page(
        conn: &mut Conn<'_>,
        scope: &RowFilter,
        filter: &Self::Filter,
        after: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;

    /// The row's id.
    fn id(row: &Self::Row) -> &str;
}

struct ListingPages<'a, L: Listing> {
    app: &'a App,
    scope: RowFilter,
    filter: &'a L::Filter,
    columns: Vec<&'static ExportColumn<L::Row>>,
    after: String,
}

impl<L: Listing> Pages for ListingPages<'_, L> {
    async fn next(&mut self) -> Result<Vec<Vec<Value>>> {
        let rows = {
            let mut c = self.app.db.conn().await?;
            L::page(&mut c.conn(), &self.scope, self.filter, &self.after, PAGE).await?
        };
        if let Some(r) = rows.last() {
            self.after = L::id(r).to_owned();
        }
        Ok(rows.iter().map(|r| cells(&self.columns, r)).collect())
    }
}

/// Writes the export of list `L` matching `filter` to the target; checks
/// the caller's rights first.
pub async fn run_listing<L: Listing>(
    app: &App,
    by: &Principal,
    filter: &L::Filter,
    target: &Target<'_>,
) -> Result<Outcome> {
    let scope = row_filter_for(app, by, L::TYPE, "read").await?;
    let columns = readable_columns(app, by, L::TYPE, L::COLUMNS);
    if columns.is_empty() {
        return Err(by.refusal(
            &format!("not allowed to read any field of {}", L::TYPE),
            vec![L::TYPE.to_owned()],
        ));
    }
    let header = columns.iter().map(|c| c.name.to_owned()).collect();
    let pages = ListingPages::<L> {
        app,
        scope,
        filter,
        columns,
        after: String::new(),
    };
    write(app, target, header, L::LIST, pages).await
}

/// Starts the export job of list `L` (see [`start`]).
pub async fn start_listing<L: Listing>(
    app: &App,
    by: &Principal,
    filter: L::Filter,
    format: ExportFormat,
) -> Result<Job> {
    let json = filter.to_value().into_json().unwrap_or_default();
    start_job(
        app,
        by,
        L::TYPE,
        L::LIST,
        format,
        json,
        move |app, by, out, id| async move {
            let target = Target {
                format,
                out,
                job_id: Some(&id),
                progress: &|_| {},
            };
            run_listing::<L>(&app, &by, &filter, &target).await
        },
    )
    .await
}

/// One list a module exports on the command line (`crm export <list>`).
#[derive(Clone, Copy)]
pub struct Exporter {
    /// The list's name.
    pub list: &'static str,
    /// Writes the file.
    pub run: for<'a> fn(ExportRun<'a>) -> BoxFuture<'a, Result<Outcome>>,
}

fn run_command<E: Exportable>(run: ExportRun<'_>) -> BoxFuture<'_, Result<Outcome>> {
    Box::pin(async move {
        let filter: E::Filter = filter_from_json(run.filter)?;
        let target = Target {
            format: run.format,
            out: run.out,
            job_id: None,
            progress: run.progress,
        };
        self::run::<E>(run.app, run.by, &filter, &target).await
    })
}

fn run_listing_command<L: Listing>(run: ExportRun<'_>) -> BoxFuture<'_, Result<Outcome>> {
    Box::pin(async move {
        let filter: L::Filter = filter_from_json(run.filter)?;
        let target = Target {
            format: run.format,
            out: run.out,
            job_id: None,
            progress: run.progress,
        };
        run_listing::<L>(run.app, run.by, &filter, &target).await
    })
}

/// The command-line export of list `L`.
pub const fn listing<L: Listing>() -> Exporter {
    Exporter {
        list: L::LIST,
        run: run_listing_command::<L>,
    }
}

/// The command-line export of kit entity `E`.
pub const fn kit<E: Exportable>() -> Exporter {
    Exporter {
        list: E::LIST,
        run: run_command::<E>,
    }
}

/// Runs the exporter of `run.kind` among `exporters` (VALIDATION when
/// there is none); `module` names the module in the message.
pub fn dispatch<'a>(
    module: &str,
    exporters: &[Exporter],
    run: ExportRun<'a>,
) -> BoxFuture<'a, Result<Outcome>> {
    match exporters.iter().find(|e| e.list == run.kind) {
        Some(e) => (e.run)(run),
        None => {
            let err = Error::invalid("list", format!("{module} exports no {}", run.kind));
            Box::pin(async move { Err(err) })
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_are_written_in_major_units() {
        assert_eq!(super::major(123450), "1234.50");
        assert_eq!(super::major(5), "0.05");
        assert_eq!(super::major(-250), "-2.50");
    }
}
