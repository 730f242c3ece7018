//! The append-only audit log: who changed what (field, old, new), when, and
//! through which credential. Written in the same transaction as the change;
//! nothing in the API updates or deletes it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Map, Value};

use crate::access::Actor;
use crate::db::Conn;
use crate::error::Result;
use crate::schema::audit_log;

/// One changed field.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FieldChange {
    /// Field name (as in the API, camelCase).
    pub field: String,
    /// Value before (null when created).
    pub old: Value,
    /// Value after (null when deleted).
    pub new: Value,
}

/// A stored audit entry.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    /// Sequence number (newest highest).
    pub id: i64,
    /// When.
    pub at: NaiveDateTime,
    /// `user`, `api_key` or `system`.
    pub actor_kind: String,
    /// User or key id.
    pub actor_id: Option<String>,
    /// Credential used.
    pub credential: Option<String>,
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: String,
    /// What happened (`create`, `update`, `deactivate`, …).
    pub action: String,
    /// JSON list of [`FieldChange`].
    pub changes: String,
    /// Why, when the change was not the actor's own edit of this record
    /// (e.g. a merge re-pointing someone else's timeline entry).
    pub reason: Option<String>,
}

/// The per-field differences between two JSON snapshots of a record. Callers
/// build snapshots from public fields only, so secrets never reach the log.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<FieldChange> {
    let empty = Map::new();
    let b = before.and_then(Value::as_object).unwrap_or(&empty);
    let a = after.and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let old = b.get(k).cloned().unwrap_or(Value::Null);
            let new = a.get(k).cloned().unwrap_or(Value::Null);
            (old != new).then(|| FieldChange {
                field: k.clone(),
                old,
                new,
            })
        })
        .collect()
}

/// Appends an audit entry in the caller's transaction.
pub async fn record(
    conn: &mut Conn<'_>,
    actor: &Actor,
    entity_type: &str,
    entity_id: &str,
    action: &str,
    changes: &[FieldChange],
) -> Result<()> {
    record_with_reason(conn, actor, entity_type, entity_id, action, changes, None).await
}

/// [`record`] with the reason a change was made on the actor's behalf
/// (stored in the entry's `reason`).
pub async fn record_with_reason(
    conn: &mut Conn<'_>,
    actor: &Actor,
    entity_type: &str,
    entity_id: &str,
    action: &str,
    changes: &[FieldChange],
    reason: Option<&str>,
) -> Result<()> {
    let row = (
        audit_log::at.eq(crate::ids::now()),
        audit_log::actor_kind.eq(actor.kind),
        audit_log::actor_id.eq(actor.id.clone()),
        audit_log::credential.eq(actor.credential.clone()),
        audit_log::entity_type.eq(entity_type),
        audit_log::entity_id.eq(entity_id),
        audit_log::action.eq(action),
        audit_log::changes.eq(serde_json::to_string(changes).unwrap_or_else(|_| "[]".into())),
        audit_log::reason.eq(reason.map(str::to_owned)),
    );
    crate::db_run!(conn, |c| diesel::insert_into(audit_log::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    Ok(())
}

/// One entry of [`record_many`].
pub struct Entry<'a> {
    /// Entity type.
    pub entity_type: &'a str,
    /// Entity id.
    pub entity_id: &'a str,
    /// Verb.
    pub action: &'a str,
    /// Field changes.
    pub changes: &'a [FieldChange],
    /// Why, when not the actor's own edit (see [`record_with_reason`]).
    pub reason: Option<&'a str>,
}

/// Appends many audit entries at once (bulk operations such as imports).
pub async fn record_many(conn: &mut Conn<'_>, actor: &Actor, entries: &[Entry<'_>]) -> Result<()> {
    let at = crate::ids::now();
    let rows: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                audit_log::at.eq(at),
                audit_log::actor_kind.eq(actor.kind),
                audit_log::actor_id.eq(actor.id.clone()),
                audit_log::credential.eq(actor.credential.clone()),
                audit_log::entity_type.eq(e.entity_type.to_owned()),
                audit_log::entity_id.eq(e.entity_id.to_owned()),
                audit_log::action.eq(e.action.to_owned()),
                audit_log::changes
                    .eq(serde_json::to_string(e.changes).unwrap_or_else(|_| "[]".into())),
                audit_log::reason.eq(e.reason.map(str::to_owned)),
            )
        })
        .collect();
    crate::insert_all!(conn, audit_log::table, rows);
    Ok(())
}

/// Filter for [`list`].
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only this entity type.
    pub entity_type: Option<String>,
    /// Only this entity.
    pub entity_id: Option<String>,
    /// Only this actor.
    pub actor_id: Option<String>,
    /// At or after.
    pub from: Option<NaiveDateTime>,
    /// Before.
    pub to: Option<NaiveDateTime>,
    /// Only entries about these entity types (`None`: any type).
    pub types: Option<Vec<String>>,
}

/// Lists entries newest first, `limit` of them with id below `before_id`.
pub async fn list(
    conn: &mut Conn<'_>,
    filter: &AuditFilter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<(Vec<AuditRow>, i64)> {
    macro_rules! filtered {
        ($q:expr) => {{
            let mut q = $q;
            if let Some(v) = &filter.entity_type {
                q = q.filter(audit_log::entity_type.eq(v.clone()));
            }
            if let Some(v) = &filter.entity_id {
                q = q.filter(audit_log::entity_id.eq(v.clone()));
            }
            if let Some(v) = &filter.actor_id {
                q = q.filter(audit_log::actor_id.eq(v.clone()));
            }
            if let Some(v) = filter.from {
                q = q.filter(audit_log::at.ge(v));
            }
            if let Some(v) = filter.to {
                q = q.filter(audit_log::at.lt(v));
            }
            if let Some(v) = &filter.types {
                q = q.filter(audit_log::entity_type.eq_any(v.clone()));
            }
            q
        }};
    }
    let rows = crate::db_run!(conn, |c| {
        let mut q = filtered!(audit_log::table.into_boxed());
        if let Some(b) = before_id {
            q = q.filter(audit_log::id.lt(b));
        }
        q.order(audit_log::id.desc())
            .limit(limit)
            .select(AuditRow::as_select())
            .load(c)
            .await
    })?;
    let total: i64 = crate::db_run!(conn, |c| filtered!(audit_log::table.into_boxed())
        .count()
        .get_result(c)
        .await)?;
    Ok((rows, total))
}
