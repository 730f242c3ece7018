//! The append-only history of an opportunity: one entry per write that
//! changed its stage, amount, close date, probability or forecast category,
//! written in that write's transaction, with every such field's from and to
//! values. Entries are read under the opportunity's field rules (the same
//! decision as the request check, the audit log and events), so a role that
//! may not read `Opportunity.amount` sees no amounts here either.

use chrono::NaiveDateTime;
use crm_core::access::Principal;
use crm_core::app::App;
use crm_core::db::{Conn, Tx};
use crm_core::db_run;
use crm_core::error::Result;
use crm_core::ids;
use crm_core::schema::opportunity_history;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use super::repo::OpportunityRow;

/// A history row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = opportunity_history)]
pub struct HistoryRow {
    pub id: String,
    pub opportunity_id: String,
    pub stage_changed: bool,
    /// JSON array of `{field, from, to}`.
    pub changes: String,
    pub changed_by: Option<String>,
    pub changed_at: NaiveDateTime,
}

/// One field's change in an entry.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FieldChange {
    /// The `Opportunity` field (`stageId`, `amount`, `closeDate`,
    /// `probability`, `forecastCategory`).
    pub field: String,
    /// Before (null for a new opportunity).
    pub from: Value,
    /// After.
    pub to: Value,
}

fn money(amount: Option<i64>, currency: &Option<String>) -> Value {
    match amount {
        Some(a) => json!({"amountMinor": a, "currency": currency}),
        None => Value::Null,
    }
}

/// The tracked fields of a row, by API name.
fn tracked(r: &OpportunityRow) -> [(&'static str, Value); 5] {
    [
        ("stageId", json!(r.stage_id)),
        ("amount", money(r.amount, &r.currency)),
        ("closeDate", json!(r.close_date)),
        ("probability", json!(r.probability)),
        ("forecastCategory", json!(r.forecast_category)),
    ]
}

/// The tracked fields that differ between `before` (None: a new record)
/// and `after`.
pub fn changes(before: Option<&OpportunityRow>, after: &OpportunityRow) -> Vec<FieldChange> {
    let old = before.map(tracked);
    tracked(after)
        .into_iter()
        .enumerate()
        .filter_map(|(i, (field, to))| {
            let from = old.as_ref().map_or(Value::Null, |o| o[i].1.clone());
            (from != to).then(|| FieldChange {
                field: field.to_owned(),
                from,
                to,
            })
        })
        .collect()
}

/// The entry `id` of a write from `before` (None: a new record) to
/// `after` by `by` at `at`; None when no tracked field changed.
pub fn entry(
    id: String,
    before: Option<&OpportunityRow>,
    after: &OpportunityRow,
    by: Option<String>,
    at: NaiveDateTime,
) -> Option<HistoryRow> {
    let changes = changes(before, after);
    (!changes.is_empty()).then(|| HistoryRow {
        id,
        opportunity_id: after.id.clone(),
        stage_changed: changes.iter().any(|c| c.field == "stageId"),
        changes: serde_json::to_string(&changes).unwrap_or_else(|_| "[]".into()),
        changed_by: by,
        changed_at: at,
    })
}

/// Appends the entry of a write, if it changed a tracked field.
pub async fn record(
    tx: &mut Tx,
    by: &Principal,
    before: Option<&OpportunityRow>,
    after: &OpportunityRow,
) -> Result<()> {
    let Some(row) = entry(ids::new_id("oph"), before, after, by.actor().id, ids::now()) else {
        return Ok(());
    };
    let mut conn = tx.conn();
    db_run!(&mut conn, |c| diesel::insert_into(
        opportunity_history::table
    )
    .values(row.clone())
    .execute(c)
    .await)?;
    Ok(())
}

/// The entries of some opportunities, oldest first.
pub async fn of(conn: &mut Conn<'_>, opportunity_ids: &[String]) -> Result<Vec<HistoryRow>> {
    Ok(db_run!(conn, |c| opportunity_history::table
        .filter(opportunity_history::opportunity_id.eq_any(opportunity_ids.to_vec()))
        .order((
            opportunity_history::changed_at.asc(),
            opportunity_history::id.asc()
        ))
        .select(HistoryRow::as_select())
        .load(c)
        .await)?)
}

/// The changes of an entry that `by` may read: each field under the
/// `Opportunity` field rule of the same name (`field_readable`, the one
/// decision the request check, the audit log and events share).
pub fn readable_changes(app: &App, by: &Principal, row: &HistoryRow) -> Vec<FieldChange> {
    let all: Vec<FieldChange> = serde_json::from_str(&row.changes).unwrap_or_default();
    if by.is_system() {
        return all;
    }
    let policy = app.policy.current();
    let catalog = app.policy.catalog();
    let roles = by.effective_roles();
    all.into_iter()
        .filter(|c| {
            crm_core::policy::check::field_readable(
                catalog,
                &policy,
                &roles,
                "Opportunity",
                &c.field,
            )
        })
        .collect()
}
