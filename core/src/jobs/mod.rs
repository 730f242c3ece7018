//! Background jobs (imports, exports): a row per job with its options and
//! counters, so progress can be read from any replica, a per-row error
//! report, and the files a job reads or produces under
//! `<data-dir>/jobs/<job id>/`.
//!
//! A job runs in the process that accepted it. Its counters are written as
//! it goes (which also proves it is alive); a job whose process died is
//! marked failed when any replica starts.

mod graphql;

pub use graphql::{Job, JobMutation, JobQuery, JobSubscription};

use std::path::PathBuf;
use std::time::Duration;

use async_graphql::{Enum, SimpleObject};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::access::{Principal, RowFilter, row_filter_for};
use crate::app::App;
use crate::db::{Conn, Db};
use crate::error::{Error, Result};
use crate::schema::{job_errors, jobs};
use crate::{apply_row_filter, db_run, ids};

/// The policy resource of jobs.
pub const RESOURCE: &str = "Job";

/// A job row (columns as in the migration).
#[allow(missing_docs)]
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = jobs, treat_none_as_default_value = false)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub owner_id: Option<String>,
    pub params: String,
    pub file_name: Option<String>,
    pub rows_done: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub message: Option<String>,
    pub result_path: Option<String>,
    pub cancel_requested: bool,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub heartbeat_at: Option<NaiveDateTime>,
}

/// Where a job is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Accepted, not started.
    Queued,
    /// Working.
    Running,
    /// Finished; the counters are final.
    Succeeded,
    /// Stopped by an error; `message` says why.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl JobStatus {
    /// Stored text.
    pub fn as_text(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    fn from_text(s: &str) -> JobStatus {
        match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "cancelled" => JobStatus::Cancelled,
            _ => JobStatus::Failed,
        }
    }

    /// True once the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// Row counters of a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Input rows read (or rows written, for exports).
    pub rows_done: i64,
    /// Records created.
    pub created: i64,
    /// Existing records updated.
    pub updated: i64,
    /// Rows left alone (duplicates in skip mode, dry runs).
    pub skipped: i64,
    /// Rows rejected; see the error report.
    pub failed: i64,
}

/// One problem with one input row.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "JobRowError")]
pub struct RowError {
    /// Line in the file (the header is line 1).
    pub line: i64,
    /// The column (header name), or empty for the row as a whole.
    pub column: String,
    /// What is wrong.
    pub message: String,
}

/// How a job ended, as its work function reports it.
#[derive(Debug)]
pub struct Outcome {
    /// Final status.
    pub status: JobStatus,
    /// Final counters.
    pub counters: Counters,
    /// A one-line summary or reason.
    pub message: Option<String>,
    /// A file the job produced (exports).
    pub result_path: Option<PathBuf>,
}

/// The directory of a job's files.
pub fn dir(app: &App, id: &str) -> PathBuf {
    app.config.data_dir.join("jobs").join(id)
}

/// Records a new queued job owned by the caller.
pub async fn create(
    db: &Db,
    by: &Principal,
    kind: &str,
    params: &Value,
    file_name: Option<String>,
) -> Result<JobRow> {
    let row = JobRow {
        id: ids::new_id("job"),
        kind: kind.to_owned(),
        status: JobStatus::Queued.as_text().into(),
        owner_id: by.user_id().map(str::to_owned),
        params: params.to_string(),
        file_name,
        rows_done: 0,
        created: 0,
        updated: 0,
        skipped: 0,
        failed: 0,
        message: None,
        result_path: None,
        cancel_requested: false,
        created_at: ids::now(),
        started_at: None,
        finished_at: None,
        heartbeat_at: None,
    };
    let mut tx = db.begin().await?;
    let mut conn = tx.conn();
    db_run!(&mut conn, |c| diesel::insert_into(jobs::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    tx.commit().await?;
    Ok(row)
}

/// Marks a job running.
pub async fn start(db: &Db, id: &str) -> Result<()> {
    let now = ids::now();
    let mut tx = db.begin().await?;
    let mut conn = tx.conn();
    db_run!(&mut conn, |c| diesel::update(jobs::table.find(id))
        .set((
            jobs::status.eq(JobStatus::Running.as_text()),
            jobs::started_at.eq(Some(now)),
            jobs::heartbeat_at.eq(Some(now)),
        ))
        .execute(c)
        .await)?;
    tx.commit().await
}

/// Stores the counters; returns true when a cancel was requested.
pub async fn progress(db: &Db, id: &str, n: &Counters) -> Result<bool> {
    let mut tx = db.begin().await?;
    let mut conn = tx.conn();
    db_run!(&mut conn, |c| diesel::update(jobs::table.find(id))
        .set((
            jobs::rows_done.eq(n.rows_done),
            jobs::created.eq(n.created),
            jobs::updated.eq(n.updated),
            jobs::skipped.eq(n.skipped),
            jobs::failed.eq(n.failed),
            jobs::heartbeat_at.eq(Some(ids::now())),
        ))
        .execute(c)
        .await)?;
    let cancel = db_run!(&mut conn, |c| jobs::table
        .find(id)
        .select(jobs::cancel_requested)
        .first::<bool>(c)
        .await)?;
    tx.commit().await?;
    Ok(cancel)
}

/// Appends rows to a job's error report (in the caller's transaction or not:
/// the report is kept even when the import's own writes roll back).
pub async fn add_errors(conn: &mut Conn<'_>, id: &str, errors: &[RowError]) -> Result<()> {
    for e in errors {
        let row = (
            job_errors::job_id.eq(id),
            job_errors::line.eq(e.line),
            job_errors::col.eq(&e.column),
            job_errors::message.eq(&e.message),
        );
        // One message per line and column; a second problem with the same
        // cell adds nothing a user can act on.
        match conn {
            Conn::Pg(c) => {
                diesel::insert_into(job_errors::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(&mut **c)
                    .await?
            }
            Conn::Sqlite(c) => {
                diesel::insert_or_ignore_into(job_errors::table)
                    .values(row)
                    .execute(&mut **c)
                    .await?
            }
        };
    }
    Ok(())
}

/// Records how a job ended.
pub async fn finish(db: &Db, id: &str, out: &Outcome) -> Result<()> {
    let n = out.counters;
    let mut tx = db.begin().await?;
    let mut conn = tx.conn();
    let path = out
        .result_path
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    db_run!(&mut conn, |c| diesel::update(jobs::table.find(id))
        .set((
            jobs::status.eq(out.status.as_text()),
            jobs::rows_done.eq(n.rows_done),
            jobs::created.eq(n.created),
            jobs::updated.eq(n.updated),
            jobs::skipped.eq(n.skipped),
            jobs::failed.eq(n.failed),
            jobs::message.eq(&out.message),
            jobs::result_path.eq(&path),
            jobs::finished_at.eq(Some(ids::now())),
            jobs::heartbeat_at.eq(Some(ids::now())),
        ))
        .execute(c)
        .await)?;
    tx.commit().await
}

/// Runs `work` as job `id` on the runtime: marks it running, then records
/// the outcome (an error fails the job with its message).
pub fn spawn<F>(app: &App, id: String, work: F)
where
    F: Future<Output = Result<Outcome>> + Send + 'static,
{
    let app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = start(&app.db, &id).await {
            tracing::error!(job = %id, error = %e, "cannot start job");
        }
        let outcome = match work.await {
            Ok(o) => o,
            Err(e) => {
                let message = match &e {
                    Error::Internal(detail) => {
                        tracing::error!(job = %id, error = %detail, "job failed");
                        "internal error (see the server log)".to_owned()
                    }
                    other => describe(other),
                };
                Outcome {
                    status: JobStatus::Failed,
                    counters: current(&app.db, &id).await.unwrap_or_default(),
                    message: Some(message),
                    result_path: None,
                }
            }
        };
        if let Err(e) = finish(&app.db, &id, &outcome).await {
            tracing::error!(job = %id, error = %e, "cannot record job outcome");
        }
        tracing::info!(job = %id, status = outcome.status.as_text(), "job finished");
    });
}

/// A client-facing one-line description of an error.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Validation(fields) => fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        Error::NotFound(what) => format!("not found: {what}"),
        Error::Conflict(m) | Error::Unavailable(m) => m.clone(),
        other => other.to_string(),
    }
}

async fn current(db: &Db, id: &str) -> Result<Counters> {
    let mut c = db.conn().await?;
    let mut conn = c.conn();
    let r = db_run!(&mut conn, |c| jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(c)
        .await)?;
    Ok(Counters {
        rows_done: r.rows_done,
        created: r.created,
        updated: r.updated,
        skipped: r.skipped,
        failed: r.failed,
    })
}

/// Marks jobs whose process stopped (no progress for `stale`) as failed.
pub async fn fail_abandoned(db: &Db, stale: Duration) -> Result<usize> {
    let cutoff = ids::now() - chrono::Duration::from_std(stale).unwrap_or_default();
    let mut tx = db.begin().await?;
    let mut conn = tx.conn();
    let n = db_run!(&mut conn, |c| diesel::update(
        jobs::table
            .filter(jobs::status.eq_any(["queued", "running"]))
            .filter(
                jobs::heartbeat_at.lt(cutoff).or(jobs::heartbeat_at
                    .is_null()
                    .and(jobs::created_at.lt(cutoff)))
            )
    )
    .set((
        jobs::status.eq("failed"),
        jobs::message.eq("interrupted: the server stopped while the job ran"),
        jobs::finished_at.eq(Some(ids::now())),
    ))
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(n)
}

/// A job the caller may see (NOT_FOUND otherwise), of a kind starting with
/// `kind_prefix`.
pub async fn visible(app: &App, by: &Principal, id: &str, kind_prefix: &str) -> Result<JobRow> {
    ids::check(id, "job", "id")?;
    let scope = row_filter_for(app, by, RESOURCE, "read").await?;
    get(app, &scope, id)
        .await?
        .filter(|j| j.kind.starts_with(kind_prefix))
        .ok_or_else(|| Error::NotFound(format!("job {id}")))
}

pub(crate) async fn get(app: &App, scope: &RowFilter, id: &str) -> Result<Option<JobRow>> {
    let mut c = app.db.conn().await?;
    let mut conn = c.conn();
    Ok(db_run!(&mut conn, |c| {
        let q = jobs::table.filter(jobs::id.eq(id)).into_boxed();
        apply_row_filter!(q, scope, jobs::owner_id.assume_not_null())
            .select(JobRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// The error report of a job in (line, column) order, after `after`.
pub async fn errors(
    conn: &mut Conn<'_>,
    id: &str,
    after: (i64, &str),
    limit: i64,
) -> Result<Vec<RowError>> {
    let (line, col) = (after.0, after.1.to_owned());
    let rows: Vec<(i64, String, String)> = db_run!(conn, |c| job_errors::table
        .filter(job_errors::job_id.eq(id))
        .filter(
            job_errors::line.gt(line).or(job_errors::line
                .eq(line)
                .and(job_errors::col.gt(col.clone())))
        )
        .order((job_errors::line.asc(), job_errors::col.asc()))
        .limit(limit)
        .select((job_errors::line, job_errors::col, job_errors::message))
        .load(c)
        .await)?;
    Ok(rows
        .into_iter()
        .map(|(line, column, message)| RowError {
            line,
            column,
            message,
        })
        .collect())
}

/// Writes the whole error report of a job as CSV (line, column, message).
pub async fn error_report_csv(db: &Db, id: &str) -> Result<Vec<u8>> {
    let csv_err = |e: csv::Error| Error::Internal(format!("error report: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["line", "column", "message"])
        .map_err(csv_err)?;
    let mut c = db.conn().await?;
    let mut after = (0, String::new());
    loop {
        let batch = errors(&mut c.conn(), id, (after.0, &after.1), 5_000).await?;
        let Some(last) = batch.last() else { break };
        after = (last.line, last.column.clone());
        for e in &batch {
            w.write_record([e.line.to_string(), e.column.clone(), e.message.clone()])
                .map_err(csv_err)?;
        }
    }
    w.into_inner()
        .map_err(|e| Error::Internal(format!("error report: {e}")))
}

/// Asks a running job to stop at its next checkpoint.
pub async fn request_cancel(app: &App, by: &Principal, id: &str) -> Result<JobRow> {
    ids::check(id, "job", "id")?;
    let scope = row_filter_for(app, by, RESOURCE, "update").await?;
    let job = get(app, &scope, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
    if JobStatus::from_text(&job.status).is_final() {
        return Err(Error::Conflict(format!(
            "job {id} has already finished ({})",
            job.status
        )));
    }
    let mut tx = app.db.begin().await?;
    let mut conn = tx.conn();
    db_run!(&mut conn, |c| diesel::update(jobs::table.find(id))
        .set(jobs::cancel_requested.eq(true))
        .execute(c)
        .await)?;
    tx.commit().await?;
    Ok(JobRow {
        cancel_requested: true,
        ..job
    })
}
