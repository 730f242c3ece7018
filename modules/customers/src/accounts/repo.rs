//! Accounts in the database. Every read applies the caller's row scope.

use chrono::NaiveDateTime;
use crm_core::access::RowFilter;
use crm_core::db::Conn;
use crm_core::error::{Error, Result};
use crm_core::paging::{self, Direction, PageQuery};
use crm_core::schema::{account_stage_history, account_tags, accounts};
use crm_core::{apply_row_filter, db_run};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// An account row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
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

/// Filters for [`list`]; all given conditions must hold.
#[derive(Clone, Debug, Default)]
pub struct AccountFilter {
    pub owner_id: Option<String>,
    pub tag_id: Option<String>,
    pub lifecycle_stage: Option<String>,
    pub industry: Option<String>,
    pub created_from: Option<NaiveDateTime>,
    pub created_to: Option<NaiveDateTime>,
    pub updated_from: Option<NaiveDateTime>,
    pub updated_to: Option<NaiveDateTime>,
    /// Name, website or phone contains this (case-insensitive).
    pub search: Option<String>,
    /// Name starts with this (case-sensitive, uses the name index).
    pub name_prefix: Option<String>,
    /// Only soft-deleted accounts (the recycle bin) instead of live ones.
    pub deleted: bool,
    /// Custom field conditions.
    pub custom: Vec<crm_core::custom::CustomCond>,
    /// Sort by a custom field instead of the order field.
    pub custom_sort: Option<crm_core::custom::CustomSort>,
}

/// The sort value of a row for `field` (the cursor's first half).
pub fn sort_value(row: &AccountRow, field: AccountOrderField) -> String {
    match field {
        AccountOrderField::Name => row.name.clone(),
        AccountOrderField::CreatedAt => paging::time_key(row.created_at),
        AccountOrderField::UpdatedAt => paging::time_key(row.updated_at),
    }
}

fn like(s: &str) -> String {
    format!("%{}%", s.to_lowercase().replace(['\\', '%', '_'], ""))
}

/// A page of accounts in scope, and how many match in all.
pub async fn list(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    f: &AccountFilter,
    order: (AccountOrderField, Direction),
    page: &PageQuery,
    with_total: bool,
) -> Result<(Vec<AccountRow>, i64)> {
    let pattern = f.search.as_deref().map(like);
    let prefix = f.name_prefix.as_deref().map(|p| {
        let p = p.replace(['\\', '%', '_'], "");
        (format!("{p}%"), p.clone(), format!("{p}\u{10FFFF}"))
    });
    macro_rules! filtered {
        () => {{
            let mut q = apply_row_filter!(accounts::table.into_boxed(), scope, accounts::owner_id);
            q = if f.deleted {
                q.filter(accounts::deleted_at.is_not_null())
            } else {
                q.filter(accounts::deleted_at.is_null())
            };
            if let Some(v) = &f.owner_id {
                q = q.filter(accounts::owner_id.eq(v.clone()));
            }
            if let Some(v) = &f.tag_id {
                q = q.filter(
                    accounts::id.eq_any(
                        account_tags::table
                            .filter(account_tags::tag_id.eq(v.clone()))
                            .select(account_tags::account_id),
                    ),
                );
            }
            if let Some(v) = &f.lifecycle_stage {
                q = q.filter(accounts::lifecycle_stage.eq(v.clone()));
            }
            if let Some(v) = &f.industry {
                q = q.filter(accounts::industry.eq(v.clone()));
            }
            if let Some(v) = f.created_from {
                q = q.filter(accounts::created_at.ge(v));
            }
            if let Some(v) = f.created_to {
                q = q.filter(accounts::created_at.lt(v));
            }
            if let Some(v) = f.updated_from {
                q = q.filter(accounts::updated_at.ge(v));
            }
            if let Some(v) = f.updated_to {
                q = q.filter(accounts::updated_at.lt(v));
            }
            if let Some((p, low, high)) = &prefix {
                // The range lets the name index serve the (prepared,
                // parameterised) statement; LIKE keeps the match exact.
                q = q.filter(
                    accounts::name
                        .ge(low.clone())
                        .and(accounts::name.lt(high.clone()))
                        .and(accounts::name.like(p.clone())),
                );
            }
            if let Some(p) = &pattern {
                q = q.filter(
                    crm_core::sql::lower(accounts::name)
                        .like(p.clone())
                        .or(accounts::website.like(p.clone()))
                        .or(accounts::phone.like(p.clone())),
                );
            }
            crm_core::custom_filter!(q, &f.custom)
        }};
    }
    let (field, dir) = order;
    let asc = dir == Direction::Asc;
    // Rows strictly after the cursor in list order (or before, for `before`).
    let bound = |cursor: &Option<String>, name: &str| -> Result<Option<(String, String)>> {
        cursor
            .as_deref()
            .map(|c| paging::unpair(c, name))
            .transpose()
    };
    let after = bound(&page.after, "after")?;
    let before = bound(&page.before, "before")?;
    let fetch_asc = asc != page.backwards;
    let rows = db_run!(conn, |c| {
        let mut q = filtered!();
        for (cursor, greater) in [(&after, asc), (&before, !asc)] {
            let Some((value, id)) = cursor else { continue };
            if let Some(cs) = &f.custom_sort {
                q = crm_core::custom_keyset!(q, cs, value, id, greater, "accounts");
                continue;
            }
            q = match field {
                AccountOrderField::Name => {
                    let v = value.clone();
                    if greater {
                        q.filter(
                            accounts::name
                                .gt(v.clone())
                                .or(accounts::name.eq(v).and(accounts::id.gt(id.clone()))),
                        )
                    } else {
                        q.filter(
                            accounts::name
                                .lt(v.clone())
                                .or(accounts::name.eq(v).and(accounts::id.lt(id.clone()))),
                        )
                    }
                }
                AccountOrderField::CreatedAt | AccountOrderField::UpdatedAt => {
                    let t = paging::parse_time_key(value, "after")?;
                    match (field, greater) {
                        (AccountOrderField::CreatedAt, true) => q.filter(
                            accounts::created_at
                                .gt(t)
                                .or(accounts::created_at.eq(t).and(accounts::id.gt(id.clone()))),
                        ),
                        (AccountOrderField::CreatedAt, false) => q.filter(
                            accounts::created_at
                                .lt(t)
                                .or(accounts::created_at.eq(t).and(accounts::id.lt(id.clone()))),
                        ),
                        (_, true) => q.filter(
                            accounts::updated_at
                                .gt(t)
                                .or(accounts::updated_at.eq(t).and(accounts::id.gt(id.clone()))),
                        ),
                        (_, false) => q.filter(
                            accounts::updated_at
                                .lt(t)
                                .or(accounts::updated_at.eq(t).and(accounts::id.lt(id.clone()))),
                        ),
                    }
                }
            };
        }
        q = match (field, fetch_asc) {
            _ if f.custom_sort.is_some() => {
                let cs = f.custom_sort.as_ref().expect("checked");
                crm_core::custom_order!(q, cs, fetch_asc, accounts::id)
            }
            (AccountOrderField::Name, true) => q.order((accounts::name.asc(), accounts::id.asc())),
            (AccountOrderField::Name, false) => {
                q.order((accounts::name.desc(), accounts::id.desc()))
            }
            (AccountOrderField::CreatedAt, true) => {
                q.order((accounts::created_at.asc(), accounts::id.asc()))
            }
            (AccountOrderField::CreatedAt, false) => {
                q.order((accounts::created_at.desc(), accounts::id.desc()))
            }
            (AccountOrderField::UpdatedAt, true) => {
                q.order((accounts::updated_at.asc(), accounts::id.asc()))
            }
            (AccountOrderField::UpdatedAt, false) => {
                q.order((accounts::updated_at.desc(), accounts::id.desc()))
            }
        };
        Ok::<_, Error>(
            q.limit(page.limit + 1)
                .select(AccountRow::as_select())
                .load(c)
                .await?,
        )
    })?;
    // Counting every matching row is the expensive part of a list; only do
    // it when the client asked for totalCount.
    let total = if with_total {
        db_run!(conn, |c| filtered!().count().get_result(c).await)?
    } else {
        -1
    };
    Ok((rows, total))
}

/// One live account in scope.
pub async fn get(conn: &mut Conn<'_>, scope: &RowFilter, id: &str) -> Result<Option<AccountRow>> {
    Ok(db_run!(conn, |c| {
        let q = accounts::table.filter(accounts::id.eq(id)).into_boxed();
        apply_row_filter!(q, scope, accounts::owner_id)
            .filter(accounts::deleted_at.is_null())
            .select(AccountRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// One soft-deleted account in scope (for restore and purge).
pub async fn get_deleted(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    id: &str,
) -> Result<Option<AccountRow>> {
    Ok(db_run!(conn, |c| {
        let q = accounts::table.filter(accounts::id.eq(id)).into_boxed();
        apply_row_filter!(q, scope, accounts::owner_id)
            .filter(accounts::deleted_at.is_not_null())
            .select(AccountRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// Inserts an account.
pub async fn insert(conn: &mut Conn<'_>, row: &AccountRow) -> Result<()> {
    db_run!(conn, |c| diesel::insert_into(accounts::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    Ok(())
}

/// Writes `row` if the stored version is still `expected`; CONFLICT if not.
pub async fn update(conn: &mut Conn<'_>, row: &AccountRow, expected: i64) -> Result<()> {
    let mut next = row.clone();
    next.version = expected + 1;
    let n = db_run!(conn, |c| diesel::update(
        accounts::table
            .filter(accounts::id.eq(&row.id))
            .filter(accounts::version.eq(expected))
    )
    .set((
        accounts::name.eq(&next.name),
        accounts::industry.eq(&next.industry),
        accounts::size_band.eq(&next.size_band),
        accounts::website.eq(&next.website),
        accounts::phone.eq(&next.phone),
        accounts::address.eq(&next.address),
        accounts::annual_revenue.eq(next.annual_revenue),
        accounts::revenue_currency.eq(&next.revenue_currency),
        accounts::credit_limit.eq(next.credit_limit),
        accounts::credit_currency.eq(&next.credit_currency),
        accounts::lifecycle_stage.eq(&next.lifecycle_stage),
        accounts::rating.eq(&next.rating),
        accounts::source.eq(&next.source),
        accounts::notes.eq(&next.notes),
        accounts::owner_id.eq(&next.owner_id),
        accounts::updated_at.eq(next.updated_at),
        accounts::version.eq(next.version),
        accounts::deleted_at.eq(next.deleted_at),
        accounts::deleted_by.eq(&next.deleted_by),
        accounts::custom.eq(&next.custom),
    ))
    .execute(c)
    .await)?;
    if n == 0 {
        return Err(Error::stale("account", &row.id, expected));
    }
    Ok(())
}

/// Deletes an account for good (its tags and history go with it).
pub async fn purge(conn: &mut Conn<'_>, id: &str) -> Result<()> {
    db_run!(conn, |c| diesel::delete(
        accounts::table.filter(accounts::id.eq(id))
    )
    .execute(c)
    .await)?;
    Ok(())
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

/// Inserts many accounts (multi-row statements on PostgreSQL).
pub async fn insert_many(conn: &mut Conn<'_>, rows: &[AccountRow]) -> Result<()> {
    crm_core::insert_all!(conn, accounts::table, rows);
    Ok(())
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
