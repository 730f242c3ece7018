//! Timeline entries in the database.

use chrono::NaiveDateTime;
use crm_core::access::RowFilter;
use crm_core::db::Conn;
use crm_core::error::{Error, Result};
use crm_core::paging::{self, PageQuery};
use crm_core::schema::activities;
use crm_core::{apply_row_filter, db_run};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// A timeline entry.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = activities, treat_none_as_default_value = false)]
pub struct ActivityRow {
    pub id: String,
    pub kind: String,
    pub subject_type: String,
    pub subject_id: String,
    pub title: String,
    pub body: Option<String>,
    pub occurred_at: NaiveDateTime,
    pub duration_secs: Option<i64>,
    pub outcome: Option<String>,
    /// JSON list of participants.
    pub participants: String,
    pub owner_id: String,
    pub assignee_id: Option<String>,
    pub due_at: Option<NaiveDateTime>,
    pub remind_at: Option<NaiveDateTime>,
    pub reminded_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
    pub completed_by: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
    pub deleted_at: Option<NaiveDateTime>,
}

/// Cursor key of an entry in timeline order (newest first).
pub fn key(r: &ActivityRow) -> String {
    paging::pair(&paging::time_key(r.occurred_at), &r.id)
}

/// A subject's timeline, newest first, within scope.
pub async fn timeline(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    subject_type: &str,
    subject_id: &str,
    page: &PageQuery,
) -> Result<(Vec<ActivityRow>, i64)> {
    let after = page
        .after
        .as_deref()
        .map(|c| paging::unpair(c, "after"))
        .transpose()?;
    macro_rules! filtered {
        () => {
            apply_row_filter!(
                activities::table.into_boxed(),
                scope,
                activities::owner_id,
                assignee = activities::assignee_id
            )
            .filter(activities::subject_type.eq(subject_type))
            .filter(activities::subject_id.eq(subject_id))
            .filter(activities::deleted_at.is_null())
        };
    }
    let rows = db_run!(conn, |c| {
        let mut q = filtered!();
        if let Some((t, id)) = &after {
            let t = paging::parse_time_key(t, "after")?;
            q = q.filter(
                activities::occurred_at.lt(t).or(activities::occurred_at
                    .eq(t)
                    .and(activities::id.lt(id.clone()))),
            );
        }
        Ok::<_, Error>(
            q.order((activities::occurred_at.desc(), activities::id.desc()))
                .limit(page.limit + 1)
                .select(ActivityRow::as_select())
                .load(c)
                .await?,
        )
    })?;
    let total = db_run!(conn, |c| filtered!().count().get_result(c).await)?;
    Ok((rows, total))
}

/// A user's open tasks in scope due before `due_before` (all open ones
/// without it), soonest first.
pub async fn open_tasks(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    user: &str,
    due_before: Option<NaiveDateTime>,
    limit: i64,
) -> Result<Vec<ActivityRow>> {
    Ok(db_run!(conn, |c| {
        let q = activities::table.into_boxed();
        let mut q = apply_row_filter!(
            q,
            scope,
            activities::owner_id,
            assignee = activities::assignee_id
        )
        .filter(activities::kind.eq("task"))
        .filter(activities::assignee_id.eq(user))
        .filter(activities::completed_at.is_null())
        .filter(activities::deleted_at.is_null());
        if let Some(t) = due_before {
            q = q.filter(activities::due_at.lt(t));
        }
        q.order((activities::due_at.asc(), activities::id.asc()))
            .limit(limit)
            .select(ActivityRow::as_select())
            .load(c)
            .await
    })?)
}

/// One live entry in scope.
pub async fn get(conn: &mut Conn<'_>, scope: &RowFilter, id: &str) -> Result<Option<ActivityRow>> {
    Ok(db_run!(conn, |c| {
        let q = activities::table.filter(activities::id.eq(id)).into_boxed();
        apply_row_filter!(
            q,
            scope,
            activities::owner_id,
            assignee = activities::assignee_id
        )
        .filter(activities::deleted_at.is_null())
        .select(ActivityRow::as_select())
        .first(c)
        .await
        .optional()
    })?)
}

/// Inserts an entry.
pub async fn insert(conn: &mut Conn<'_>, row: &ActivityRow) -> Result<()> {
    db_run!(conn, |c| diesel::insert_into(activities::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    Ok(())
}

/// Marks a task done if `expected` is still its version.
pub async fn complete(
    conn: &mut Conn<'_>,
    id: &str,
    expected: i64,
    by: Option<String>,
    at: NaiveDateTime,
) -> Result<()> {
    let n = db_run!(conn, |c| diesel::update(
        activities::table
            .filter(activities::id.eq(id))
            .filter(activities::version.eq(expected))
    )
    .set((
        activities::completed_at.eq(Some(at)),
        activities::completed_by.eq(by.clone()),
        activities::updated_at.eq(at),
        activities::version.eq(expected + 1),
    ))
    .execute(c)
    .await)?;
    if n == 0 {
        return Err(Error::stale("task", id, expected));
    }
    Ok(())
}

/// Ids of open tasks whose reminder is due and not yet sent.
pub async fn due_reminders(
    conn: &mut Conn<'_>,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<ActivityRow>> {
    Ok(db_run!(conn, |c| activities::table
        .filter(activities::remind_at.le(now))
        .filter(activities::reminded_at.is_null())
        .filter(activities::completed_at.is_null())
        .filter(activities::deleted_at.is_null())
        .order(activities::remind_at.asc())
        .limit(limit)
        .select(ActivityRow::as_select())
        .load(c)
        .await)?)
}

/// Claims a reminder: true for exactly one caller however many replicas try.
pub async fn claim_reminder(conn: &mut Conn<'_>, id: &str, now: NaiveDateTime) -> Result<bool> {
    let n = db_run!(conn, |c| diesel::update(
        activities::table
            .filter(activities::id.eq(id))
            .filter(activities::reminded_at.is_null())
    )
    .set(activities::reminded_at.eq(Some(now)))
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// Filters of a timeline export.
#[derive(Clone, Debug, Default)]
pub struct ExportFilter {
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    pub kind: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// Live timeline entries in scope after id `after`, in id order (exports).
pub async fn export_page(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    f: &ExportFilter,
    after: &str,
    limit: i64,
) -> Result<Vec<ActivityRow>> {
    Ok(db_run!(conn, |c| {
        let mut q = apply_row_filter!(
            activities::table.into_boxed(),
            scope,
            activities::owner_id,
            assignee = activities::assignee_id
        )
        .filter(activities::deleted_at.is_null())
        .filter(activities::id.gt(after.to_owned()));
        if let Some(v) = &f.subject_type {
            q = q.filter(activities::subject_type.eq(v.clone()));
        }
        if let Some(v) = &f.subject_id {
            q = q.filter(activities::subject_id.eq(v.clone()));
        }
        if let Some(v) = &f.kind {
            q = q.filter(activities::kind.eq(v.clone()));
        }
        if let Some(v) = f.from {
            q = q.filter(activities::occurred_at.ge(v));
        }
        if let Some(v) = f.to {
            q = q.filter(activities::occurred_at.lt(v));
        }
        q.order(activities::id.asc())
            .limit(limit)
            .select(ActivityRow::as_select())
            .load(c)
            .await
    })?)
}

/// Moves every timeline entry about one record to another, of any types
/// (a converted lead's history goes to its contact): each entry gets its
/// version bump (CONFLICT if it changed meanwhile), its audit entry giving
/// `reason`, and its event. Returns how many moved. Runs in the caller's
/// transaction.
pub async fn move_subject(
    conn: &mut Conn<'_>,
    by: &crm_core::access::Principal,
    reason: &str,
    from: (&str, &str),
    to: (&str, &str),
) -> Result<usize> {
    let (from_type, from_id) = (from.0.to_owned(), from.1.to_owned());
    let rows: Vec<(String, i64, String)> = db_run!(conn, |c| activities::table
        .filter(activities::subject_type.eq(&from_type))
        .filter(activities::subject_id.eq(&from_id))
        .select((activities::id, activities::version, activities::owner_id))
        .order(activities::id)
        .load(c)
        .await)?;
    let now = crm_core::ids::now();
    let mut changes = Vec::with_capacity(rows.len());
    for (id, version, owner) in &rows {
        let n = db_run!(conn, |c| diesel::update(
            activities::table
                .filter(activities::id.eq(id))
                .filter(activities::version.eq(version))
        )
        .set((
            activities::subject_type.eq(to.0),
            activities::subject_id.eq(to.1),
            activities::version.eq(version + 1),
            activities::updated_at.eq(now),
        ))
        .execute(c)
        .await)?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "timeline entry {id} changed meanwhile; retry"
            )));
        }
        changes.push(crm_core::change::Change {
            topic: crate::TOPIC,
            entity_type: "Activity",
            entity_id: id.clone(),
            action: "moved",
            before: Some(serde_json::json!({"subjectType": from.0, "subjectId": from.1})),
            after: Some(serde_json::json!({"subjectType": to.0, "subjectId": to.1})),
            owner_id: Some(owner.clone()),
            team_id: None,
        });
    }
    crm_core::change::record_many_because(conn, &by.actor(), reason, &changes).await?;
    Ok(rows.len())
}
