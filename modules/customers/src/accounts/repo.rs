//! Accounts in the database. Every read applies the caller's row scope.

use chrono::NaiveDateTime;
use crm_core::access::RowFilter;
use crm_core::db::Conn;
use crm_core::entity::sql::Sql;
use crm_core::entity::{Column, Cond, DELETED, Def, Kind, Ops, Scope};
use crm_core::error::Result;
use crm_core::schema::{account_stage_history, accounts};
use crm_core::{apply_row_filter, db_run};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// An account row.
#[derive(
    Clone,
    Debug,
    Queryable,
    QueryableByName,
    Selectable,
    Insertable,
    serde::Serialize,
    serde::Deserialize,
)]
#[diesel(table_name = accounts, treat_none_as_default_value = false)]
pub struct AccountRow {
    pub id: String,
    pub name: String,
    pub industry: Option<String>,
    pub size_band: Option<String>,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub annual_revenue: Option<i64>,
    pub revenue_currency: Option<String>,
    pub credit_limit: Option<i64>,
    pub credit_currency: Option<String>,
    pub lifecycle_stage: String,
    pub rating: Option<String>,
    pub source: Option<String>,
    pub notes: Option<String>,
    pub owner_id: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
    pub deleted_at: Option<NaiveDateTime>,
    pub deleted_by: Option<String>,
    /// Custom field values: a JSON object by key.
    pub custom: String,
}

/// A lifecycle change.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = account_stage_history)]
pub struct StageChangeRow {
    pub id: String,
    pub account_id: String,
    pub from_stage: Option<String>,
    pub to_stage: String,
    pub changed_by: Option<String>,
    pub changed_at: NaiveDateTime,
}

/// What to order a list by.
#[derive(async_graphql::Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccountOrderField {
    /// Name, then id.
    #[default]
    Name,
    /// Creation time.
    CreatedAt,
    /// Last change.
    UpdatedAt,
}

impl AccountOrderField {
    /// The column it orders by.
    pub fn column(self) -> &'static str {
        match self {
            AccountOrderField::Name => "name",
            AccountOrderField::CreatedAt => "created_at",
            AccountOrderField::UpdatedAt => "updated_at",
        }
    }
}

/// The columns of `accounts`, for the entity kit.
pub const COLUMNS: &[Column] = &[
    Column::new("id", Kind::Text).api("id"),
    Column::text("name", "name")
        .filter(Ops::PREFIX)
        .sort()
        .search(),
    Column::text("industry", "industry")
        .nullable()
        .filter(Ops::EQ),
    Column::text("size_band", "sizeBand").nullable(),
    Column::text("website", "website").nullable().search(),
    Column::text("phone", "phone").nullable().search(),
    Column::text("address", "address").nullable(),
    Column::int("annual_revenue", "annualRevenue").nullable(),
    Column::new("revenue_currency", Kind::Text).nullable(),
    Column::int("credit_limit", "creditLimit").nullable(),
    Column::new("credit_currency", Kind::Text).nullable(),
    Column::text("lifecycle_stage", "lifecycleStage").filter(Ops::EQ),
    Column::text("rating", "rating").nullable(),
    Column::text("source", "source").nullable(),
    Column::text("notes", "notes").nullable(),
    Column::text("owner_id", "ownerId").filter(Ops::EQ),
    Column::time("created_at", "createdAt")
        .filter(Ops::RANGE)
        .sort(),
    Column::time("updated_at", "updatedAt")
        .filter(Ops::RANGE)
        .sort(),
    Column::int("version", "version"),
    Column::time("deleted_at", "deletedAt").nullable(),
    Column::new("deleted_by", Kind::Text).nullable(),
    Column::new("custom", Kind::Text).api("custom"),
];

/// Accounts, declared to the entity kit (lists, fetch, writes, recycle
/// bin); the domain rules are the hooks in [`super::service`].
pub struct Accounts;

/// The declaration of [`Accounts`].
pub const DEF: Def = Def {
    type_name: "Account",
    prefix: "acc",
    label: "account",
    table: "accounts",
    topic: crate::TOPIC,
    columns: COLUMNS,
    scope: Scope::Owner("owner_id"),
    soft_delete: DELETED,
    custom_fields: true,
};

/// Accounts tagged with `tag_id` (a list condition).
pub fn tagged(tag_id: &str) -> Cond {
    let mut s = Sql::new("accounts.id IN (SELECT account_id FROM account_tags WHERE tag_id = ");
    s.bind(tag_id).push(")");
    Cond::Sql(s)
}

/// Appends a lifecycle change.
pub async fn insert_stage_change(conn: &mut Conn<'_>, row: &StageChangeRow) -> Result<()> {
    db_run!(conn, |c| diesel::insert_into(account_stage_history::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    Ok(())
}

/// An account's lifecycle history, oldest first.
pub async fn stage_history(conn: &mut Conn<'_>, account_id: &str) -> Result<Vec<StageChangeRow>> {
    Ok(db_run!(conn, |c| account_stage_history::table
        .filter(account_stage_history::account_id.eq(account_id))
        .order((
            account_stage_history::changed_at.asc(),
            account_stage_history::id.asc()
        ))
        .select(StageChangeRow::as_select())
        .load(c)
        .await)?)
}

/// Live accounts in scope whose id is one of `ids` or whose name is one of
/// `lower_names` (compared in lower case). Two indexed lookups, not one
/// query with OR (which would scan the table).
pub async fn find_keys(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    ids: &[String],
    lower_names: &[String],
) -> Result<Vec<AccountRow>> {
    let mut out: Vec<AccountRow> = Vec::new();
    for by_id in [true, false] {
        let keys = if by_id { ids } else { lower_names };
        if keys.is_empty() {
            continue;
        }
        let rows: Vec<AccountRow> = db_run!(conn, |c| {
            let q = if by_id {
                accounts::table
                    .filter(accounts::id.eq_any(keys.to_vec()))
                    .into_boxed()
            } else {
                accounts::table
                    .filter(crm_core::sql::lower(accounts::name).eq_any(keys.to_vec()))
                    .into_boxed()
            };
            apply_row_filter!(q, scope, accounts::owner_id)
                .filter(accounts::deleted_at.is_null())
                .order(accounts::created_at.asc())
                .select(AccountRow::as_select())
                .load(c)
                .await
        })?;
        for r in rows {
            if !out.iter().any(|o| o.id == r.id) {
                out.push(r);
            }
        }
    }
    Ok(out)
}
