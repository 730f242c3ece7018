//! The GraphQL face of jobs: `importJob`, `exportJob`, `cancelJob` and the
//! `importProgress` subscription.

use std::pin::Pin;
use std::time::Duration;

use async_graphql::{ComplexObject, Context, ID, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde_json::Value;

use super::{JobRow, JobStatus, RESOURCE, RowError, errors, get, request_cancel, visible};
use crate::access::{principal, row_filter, row_filter_for};
use crate::app::App;
use crate::error::Result;

/// A background job as clients see it.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Job {
    /// `job_…`
    pub id: ID,
    /// `import.contacts`, `export.accounts`, …
    pub kind: String,
    /// Where it is.
    pub status: JobStatus,
    /// The uploaded file's name (imports).
    pub file_name: Option<String>,
    /// Rows read so far (exports: rows written).
    pub rows_done: i64,
    /// Records created.
    pub created: i64,
    /// Existing records updated.
    pub updated: i64,
    /// Rows left alone (duplicates skipped; every row of a dry run).
    pub skipped: i64,
    /// Rows rejected (see `errors`).
    pub failed: i64,
    /// Summary, or why it failed.
    pub message: Option<String>,
    /// The options it runs with.
    pub options: async_graphql::Json<Value>,
    /// True when a cancel was requested.
    pub cancel_requested: bool,
    /// Accepted (UTC).
    pub created_at: DateTime<Utc>,
    /// Started (UTC).
    pub started_at: Option<DateTime<Utc>>,
    /// Finished (UTC).
    pub finished_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    has_result: bool,
}

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Self {
        Job {
            id: r.id.into(),
            kind: r.kind,
            status: JobStatus::from_text(&r.status),
            file_name: r.file_name,
            rows_done: r.rows_done,
            created: r.created,
            updated: r.updated,
            skipped: r.skipped,
            failed: r.failed,
            message: r.message,
            options: async_graphql::Json(serde_json::from_str(&r.params).unwrap_or_default()),
            cancel_requested: r.cancel_requested,
            created_at: r.created_at.and_utc(),
            started_at: r.started_at.map(|t| t.and_utc()),
            finished_at: r.finished_at.map(|t| t.and_utc()),
            has_result: r.result_path.is_some(),
        }
    }
}

#[ComplexObject]
impl Job {
    /// The rejected rows in line order (row number, column, message), from
    /// the line after `afterLine`.
    async fn errors(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
        #[graphql(default = 0)] after_line: i64,
    ) -> Result<Vec<RowError>> {
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        errors(
            &mut c.conn(),
            &self.id,
            (after_line, ""),
            i64::from(first.clamp(1, 1000)),
        )
        .await
    }

    /// Where to download the error report as CSV (send your credentials),
    /// when there is one.
    async fn error_report_url(&self) -> Option<String> {
        (self.failed > 0).then(|| format!("/jobs/{}/errors.csv", self.id.0))
    }

    /// Where to download the file the job produced (exports), once done.
    async fn download_url(&self) -> Option<String> {
        (self.has_result && self.status == JobStatus::Succeeded)
            .then(|| format!("/jobs/{}/download", self.id.0))
    }
}

/// Job queries.
#[derive(Default)]
pub struct JobQuery;

#[Object]
impl JobQuery {
    /// An import job you started (admins: any).
    async fn import_job(&self, ctx: &Context<'_>, id: ID) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        Ok(visible(app, principal(ctx), &id, "import.").await?.into())
    }

    /// An export job you started (admins: any).
    async fn export_job(&self, ctx: &Context<'_>, id: ID) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        Ok(visible(app, principal(ctx), &id, "export.").await?.into())
    }
}

/// Job mutations.
#[derive(Default)]
pub struct JobMutation;

#[Object]
impl JobMutation {
    /// Stops an import or export at its next checkpoint. An all-or-nothing
    /// import then writes nothing; a skip-bad-rows import keeps the rows it
    /// had committed.
    async fn cancel_job(&self, ctx: &Context<'_>, id: ID) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        row_filter(ctx, RESOURCE, "update").await?;
        Ok(request_cancel(app, principal(ctx), &id).await?.into())
    }
}

/// Job subscriptions.
#[derive(Default)]
pub struct JobSubscription;

/// State of a progress subscription.
struct Poll {
    first: Option<JobRow>,
    last: Option<(String, [i64; 5])>,
    done: bool,
}

/// How often progress subscriptions look at the job.
const POLL: Duration = Duration::from_millis(250);

#[Subscription]
impl JobSubscription {
    /// The job's state whenever its counters or status change, ending after
    /// the final state. Works on any replica.
    async fn import_progress(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<Pin<Box<dyn Stream<Item = Job> + Send>>> {
        let app = ctx.data_unchecked::<App>().clone();
        let by = principal(ctx).clone();
        let first = visible(&app, &by, &id, "import.").await?;
        let scope = row_filter_for(&app, &by, RESOURCE, "read").await?;
        let id = first.id.clone();
        let state = Poll {
            first: Some(first),
            last: None,
            done: false,
        };
        let stream = futures_util::stream::unfold(state, move |mut st| {
            let app = app.clone();
            let scope = scope.clone();
            let id = id.clone();
            async move {
                if st.done {
                    return None;
                }
                loop {
                    let row = match st.first.take() {
                        Some(r) => r,
                        None => {
                            tokio::time::sleep(POLL).await;
                            match get(&app, &scope, &id).await {
                                Ok(Some(r)) => r,
                                _ => return None,
                            }
                        }
                    };
                    let key = (
                        row.status.clone(),
                        [
                            row.rows_done,
                            row.created,
                            row.updated,
                            row.skipped,
                            row.failed,
                        ],
                    );
                    if st.last.as_ref() != Some(&key) {
                        st.last = Some(key);
                        let job = Job::from(row);
                        st.done = job.status.is_final();
                        return Some((job, st));
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }
}
