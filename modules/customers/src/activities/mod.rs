//! The interaction timeline: calls, emails, meetings, notes and tasks on a
//! subject (an account or a contact; later modules attach their records the
//! same way), with tasks' due dates and reminders.

pub mod reminders;
pub mod repo;

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use crm_core::access::{Principal, RowFilter, principal, require_create, row_filter};
use crm_core::app::App;
use crm_core::change::{self, Change};
use crm_core::entity::subject::{self, SubjectType};
use crm_core::error::{Checks, Error, Result};
use crm_core::identity::graphql::{User, visible_user};
use crm_core::identity::repo as users;
use crm_core::ids;
use crm_core::paging::{self, Page};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use self::repo::ActivityRow;
use crate::TOPIC;
use crate::values::{opt_text, req_text};

/// What kind of interaction.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// A phone call.
    Call,
    /// An email.
    Email,
    /// A meeting.
    Meeting,
    /// A note.
    Note,
    /// A task to do.
    Task,
}

/// Someone who took part.
#[derive(SimpleObject, InputObject, Clone, Debug, Serialize, Deserialize)]
#[graphql(input_name = "ParticipantInput")]
pub struct Participant {
    /// Name as shown.
    pub name: String,
    /// Email, if known.
    pub email: Option<String>,
    /// The contact, if one.
    pub contact_id: Option<ID>,
}

/// A timeline entry.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Activity {
    /// `act_…`
    pub id: ID,
    /// Kind.
    pub kind: ActivityKind,
    #[graphql(skip)]
    pub subject_type_raw: String,
    /// The subject's id.
    pub subject_id: ID,
    /// One-line summary.
    pub title: String,
    /// Details.
    pub body: Option<String>,
    /// When it happened (or was logged).
    pub occurred_at: DateTime<Utc>,
    /// How long, in seconds.
    pub duration_secs: Option<i64>,
    /// Result (e.g. `reached`, `voicemail`).
    pub outcome: Option<String>,
    /// Who took part.
    pub participants: Vec<Participant>,
    /// The author's id.
    pub owner_id: ID,
    /// Tasks: who must do it.
    pub assignee_id: Option<ID>,
    /// Tasks: when it is due.
    pub due_at: Option<DateTime<Utc>>,
    /// Tasks: when to remind the assignee.
    pub remind_at: Option<DateTime<Utc>>,
    /// Tasks: when the reminder went out.
    pub reminded_at: Option<DateTime<Utc>>,
    /// Tasks: when it was done.
    pub completed_at: Option<DateTime<Utc>>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back when completing.
    pub version: i64,
}

impl From<ActivityRow> for Activity {
    fn from(r: ActivityRow) -> Self {
        let utc = |t: Option<chrono::NaiveDateTime>| t.map(|t| t.and_utc());
        Activity {
            id: r.id.into(),
            kind: serde_json::from_value(Value::String(r.kind)).unwrap_or(ActivityKind::Note),
            subject_type_raw: r.subject_type,
            subject_id: r.subject_id.into(),
            title: r.title,
            body: r.body,
            occurred_at: r.occurred_at.and_utc(),
            duration_secs: r.duration_secs,
            outcome: r.outcome,
            participants: serde_json::from_str(&r.participants).unwrap_or_default(),
            owner_id: r.owner_id.into(),
            assignee_id: r.assignee_id.map(Into::into),
            due_at: utc(r.due_at),
            remind_at: utc(r.remind_at),
            reminded_at: utc(r.reminded_at),
            completed_at: utc(r.completed_at),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        }
    }
}

#[ComplexObject]
impl Activity {
    /// What it is about.
    async fn subject_type(&self) -> Result<SubjectType> {
        SubjectType::of(&self.subject_type_raw)
    }

    /// The author (null if you may not see that user).
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        visible_user(ctx, &self.owner_id).await
    }

    /// The assignee (null if none or not visible to you).
    async fn assignee(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match &self.assignee_id {
            Some(id) => visible_user(ctx, id).await,
            None => Ok(None),
        }
    }
}

/// Input for `logActivity`.
#[derive(InputObject)]
pub struct CreateActivityInput {
    pub kind: ActivityKind,
    pub subject_type: SubjectType,
    pub subject_id: ID,
    pub title: String,
    pub body: Option<String>,
    /// Default: now.
    pub occurred_at: Option<DateTime<Utc>>,
    pub duration_secs: Option<i64>,
    pub outcome: Option<String>,
    #[graphql(default)]
    pub participants: Vec<Participant>,
    /// Tasks only (default: you).
    pub assignee_id: Option<ID>,
    /// Tasks only.
    pub due_at: Option<DateTime<Utc>>,
    /// Tasks only; must not be after `dueAt`.
    pub remind_at: Option<DateTime<Utc>>,
}

fn snapshot(r: &ActivityRow) -> Value {
    json!({
        "kind": r.kind, "subjectType": r.subject_type, "subjectId": r.subject_id, "title": r.title,
        "body": r.body, "occurredAt": r.occurred_at, "durationSecs": r.duration_secs, "outcome": r.outcome,
        "assigneeId": r.assignee_id, "dueAt": r.due_at, "remindAt": r.remind_at, "completedAt": r.completed_at,
    })
}

/// A page of a subject's timeline in the caller's scope.
pub async fn timeline_page(
    ctx: &Context<'_>,
    subject: SubjectType,
    id: &str,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Page<Activity>> {
    if let (Some(l), None) = (ctx.data_opt::<crate::loaders::Loaders>(), &after) {
        let key = (subject.as_str().to_owned(), id.to_owned());
        let rows = l.activities.load_one(key).await?.unwrap_or_default();
        let keyed = rows
            .into_iter()
            .map(|r| (repo::key(&r), Activity::from(r)))
            .collect();
        return crate::loaders::first_page(keyed, first);
    }
    let scope = row_filter(ctx, "Activity", "read").await?;
    let q = paging::query(first, after, None, None)?;
    let app = ctx.data_unchecked::<App>();
    let mut c = app.db.conn().await?;
    let (rows, total) = repo::timeline(&mut c.conn(), &scope, subject.as_str(), id, &q).await?;
    let items = rows
        .into_iter()
        .map(|r| (repo::key(&r), Activity::from(r)))
        .collect();
    Ok(paging::build_keyed(&q, items, total))
}

/// Timeline queries.
#[derive(Default)]
pub struct ActivityQuery;

#[Object]
impl ActivityQuery {
    /// A subject's timeline, newest first.
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        subject_type: SubjectType,
        subject_id: ID,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Page<Activity>> {
        timeline_page(ctx, subject_type, &subject_id, first, after).await
    }

    /// Your open tasks, soonest due first; with `dueBefore`, only those due
    /// before that time (e.g. the end of today). Only tasks in your
    /// `Activity` read scope (a policy's `read:assigned` covers tasks others
    /// assigned to you).
    async fn my_tasks(
        &self,
        ctx: &Context<'_>,
        due_before: Option<DateTime<Utc>>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<Activity>> {
        let Some(me) = principal(ctx).user_id() else {
            return Ok(Vec::new());
        };
        if !(1..=paging::MAX_PAGE as i32).contains(&first) {
            return Err(Error::invalid(
                "first",
                format!("must be between 1 and {}", paging::MAX_PAGE),
            ));
        }
        let scope = row_filter(ctx, "Activity", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let rows = repo::open_tasks(
            &mut c.conn(),
            &scope,
            me,
            due_before.map(|t| t.naive_utc()),
            i64::from(first),
        )
        .await?;
        Ok(rows.into_iter().map(Activity::from).collect())
    }
}

/// Timeline mutations.
#[derive(Default)]
pub struct ActivityMutation;

#[Object]
impl ActivityMutation {
    /// Logs a call, email, meeting or note, or creates a task.
    async fn log_activity(
        &self,
        ctx: &Context<'_>,
        input: CreateActivityInput,
    ) -> Result<Activity> {
        require_create(ctx, "Activity")?;
        let subject_scope = row_filter(ctx, input.subject_type.as_str(), "read").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(log(app, principal(ctx), &subject_scope, input)
            .await?
            .into())
    }

    /// Marks a task done.
    async fn complete_task(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<Activity> {
        let scope = row_filter(ctx, "Activity", "update").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(complete(app, principal(ctx), &scope, &id, version)
            .await?
            .into())
    }
}

/// Logs an activity on a subject in `subject_scope` (the caller's read
/// scope for the subject's type), owned by the calling user.
pub async fn log(
    app: &App,
    by: &Principal,
    subject_scope: &RowFilter,
    input: CreateActivityInput,
) -> Result<ActivityRow> {
    let owner = by
        .user_id()
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid("authorization", "only users can log activities"))?;
    let mut c = Checks::default();
    let title = c.take(req_text(&input.title, 300, "title"))?;
    let body = c.take(opt_text(input.body, 20_000, "body"))?.flatten();
    let outcome = c.take(opt_text(input.outcome, 100, "outcome"))?.flatten();
    if input.duration_secs.is_some_and(|d| d < 0) {
        c.take::<()>(Err(Error::invalid("durationSecs", "must not be negative")))?;
    }
    let is_task = input.kind == ActivityKind::Task;
    if !is_task
        && (input.assignee_id.is_some() || input.due_at.is_some() || input.remind_at.is_some())
    {
        c.take::<()>(Err(Error::invalid(
            "kind",
            "only tasks have an assignee, a due time or a reminder",
        )))?;
    }
    if let (Some(r), Some(d)) = (input.remind_at, input.due_at)
        && r > d
    {
        c.take::<()>(Err(Error::invalid("remindAt", "must not be after dueAt")))?;
    }
    let visible = {
        let mut conn = app.db.conn().await?;
        subject::live_in_scope(
            &mut conn.conn(),
            subject_scope,
            input.subject_type,
            &input.subject_id,
        )
        .await?
    };
    if !visible {
        c.take::<()>(Err(Error::invalid("subjectId", "no such record")))?;
    }
    let assignee = if is_task {
        Some(
            input
                .assignee_id
                .map(|a| a.0)
                .unwrap_or_else(|| owner.clone()),
        )
    } else {
        None
    };
    if let Some(a) = &assignee {
        let mut conn = app.db.conn().await?;
        c.take(users::check_active_user(&mut conn.conn(), a, "assigneeId").await)?;
    }
    c.finish()?;
    let now = ids::now();
    let row = ActivityRow {
        id: ids::new_id("act"),
        kind: serde_json::to_value(input.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        subject_type: input.subject_type.as_str().to_owned(),
        subject_id: input.subject_id.0,
        title: title.unwrap_or_default(),
        body,
        occurred_at: input.occurred_at.map(|t| t.naive_utc()).unwrap_or(now),
        duration_secs: input.duration_secs,
        outcome,
        participants: serde_json::to_string(&input.participants).unwrap_or_else(|_| "[]".into()),
        owner_id: owner,
        assignee_id: assignee,
        due_at: input.due_at.map(|t| t.naive_utc()),
        remind_at: input.remind_at.map(|t| t.naive_utc()),
        reminded_at: None,
        completed_at: None,
        completed_by: None,
        created_at: now,
        updated_at: now,
        version: 1,
        deleted_at: None,
    };
    let mut tx = app.db.begin().await?;
    repo::insert(&mut tx.conn(), &row).await?;
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "Activity",
            entity_id: row.id.clone(),
            action: "logged",
            before: None,
            after: Some(snapshot(&row)),
            owner_id: Some(row.owner_id.clone()),
            team_id: None,
        },
    )
    .await?;
    crm_core::module::timeline_entry_written(&mut tx.conn(), &written(&row)).await?;
    app.commit(tx).await?;
    Ok(row)
}

/// What other modules hear of a timeline entry (see
/// `crm_core::module::Module::timeline_entry`).
fn written(row: &ActivityRow) -> crm_core::module::TimelineWritten {
    crm_core::module::TimelineWritten {
        subject_type: row.subject_type.clone(),
        subject_id: row.subject_id.clone(),
        kind: row.kind.clone(),
        occurred_at: row.occurred_at,
    }
}

/// An entry another module puts on a customer's timeline as part of its
/// own write (a reply to a ticket on the requester's timeline).
#[derive(Clone, Debug)]
pub struct TimelineEntry {
    /// Kind (not a task: entries written this way have no assignee).
    pub kind: ActivityKind,
    /// The subject's type (`Contact`, `Account`).
    pub subject_type: SubjectType,
    /// The subject's id (the caller checked it is live and visible).
    pub subject_id: String,
    /// One-line summary.
    pub title: String,
    /// Details.
    pub body: Option<String>,
    /// The author (a user id).
    pub owner_id: String,
}

/// Writes `entry` on its subject's timeline in the caller's transaction
/// (`conn`), with its audit entry and `activity.logged` event, so the
/// entry exists exactly when the caller's change commits. Such entries
/// record what the system did (a form submitted, a lead assigned, a ticket
/// reply): they are not activities a person logged, so the modules'
/// `timeline_entry` hooks do not run for them.
pub async fn record_entry(
    conn: &mut crm_core::db::Conn<'_>,
    by: &Principal,
    entry: TimelineEntry,
) -> Result<ActivityRow> {
    if entry.kind == ActivityKind::Task {
        return Err(Error::Internal(
            "timeline entries of modules are not tasks (see record_task)".into(),
        ));
    }
    let row = entry_row(
        entry.kind,
        entry.subject_type,
        entry.subject_id,
        entry.title,
        entry.body,
        entry.owner_id,
    );
    write_entry(conn, by, row).await
}

/// A task another module creates on a record's timeline as part of its own
/// write (the next steps a pipeline stage prompts).
#[derive(Clone, Debug)]
pub struct TaskEntry {
    /// The subject's type (`Opportunity`).
    pub subject_type: SubjectType,
    /// The subject's id (the caller checked it is live).
    pub subject_id: String,
    /// What to do.
    pub title: String,
    /// The owner (a user id).
    pub owner_id: String,
    /// Who should do it (a user id).
    pub assignee_id: String,
    /// When it is due.
    pub due_at: Option<chrono::NaiveDateTime>,
}

/// Writes `task` on its subject's timeline in the caller's transaction,
/// with its audit entry and `activity.logged` event; its reminder (none)
/// and completion work as for any task.
pub async fn record_task(
    conn: &mut crm_core::db::Conn<'_>,
    by: &Principal,
    task: TaskEntry,
) -> Result<ActivityRow> {
    let mut row = entry_row(
        ActivityKind::Task,
        task.subject_type,
        task.subject_id,
        task.title,
        None,
        task.owner_id,
    );
    row.assignee_id = Some(task.assignee_id);
    row.due_at = task.due_at;
    write_entry(conn, by, row).await
}

fn entry_row(
    kind: ActivityKind,
    subject_type: SubjectType,
    subject_id: String,
    title: String,
    body: Option<String>,
    owner_id: String,
) -> ActivityRow {
    let now = ids::now();
    ActivityRow {
        id: ids::new_id("act"),
        kind: serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        subject_type: subject_type.as_str().to_owned(),
        subject_id,
        title,
        body,
        occurred_at: now,
        duration_secs: None,
        outcome: None,
        participants: "[]".into(),
        owner_id,
        assignee_id: None,
        due_at: None,
        remind_at: None,
        reminded_at: None,
        completed_at: None,
        completed_by: None,
        created_at: now,
        updated_at: now,
        version: 1,
        deleted_at: None,
    }
}

async fn write_entry(
    conn: &mut crm_core::db::Conn<'_>,
    by: &Principal,
    row: ActivityRow,
) -> Result<ActivityRow> {
    repo::insert(conn, &row).await?;
    change::record(
        conn,
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "Activity",
            entity_id: row.id.clone(),
            action: "logged",
            before: None,
            after: Some(snapshot(&row)),
            owner_id: Some(row.owner_id.clone()),
            team_id: None,
        },
    )
    .await?;
    Ok(row)
}

/// Marks a task in `scope` done if `version` is still its version (the
/// update scope decides, including the policy's `update:assigned`).
pub async fn complete(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    version: i64,
) -> Result<ActivityRow> {
    let mut tx = app.db.begin().await?;
    ids::check(id, "act", "id")?;
    // The update scope decides, including the policy's `update:assigned`
    // (the assignee may complete a task it does not own).
    let before = repo::get(&mut tx.conn(), scope, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("activity {id}")))?;
    if before.kind != "task" {
        return Err(Error::invalid("id", "only tasks can be completed"));
    }
    if before.completed_at.is_some() {
        return Err(Error::Conflict(format!("task {id} is already done")));
    }
    let now = ids::now();
    repo::complete(&mut tx.conn(), id, version, by.actor().id, now).await?;
    let mut after = before.clone();
    after.completed_at = Some(now);
    after.completed_by = by.actor().id;
    after.updated_at = now;
    after.version = version + 1;
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "Activity",
            entity_id: after.id.clone(),
            action: "completed",
            before: Some(snapshot(&before)),
            after: Some(snapshot(&after)),
            owner_id: Some(after.owner_id.clone()),
            team_id: None,
        },
    )
    .await?;
    app.commit(tx).await?;
    Ok(after)
}
