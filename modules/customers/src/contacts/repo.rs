//! Contacts in the database. Every read applies the caller's row scope.

use chrono::NaiveDateTime;
use crm_core::access::RowFilter;
use crm_core::db::Conn;
use crm_core::error::{Error, Result};
use crm_core::paging::{self, Direction, PageQuery};
use crm_core::schema::{accounts, contact_tags, contacts};
use crm_core::{apply_row_filter, db_run};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// A contact row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = contacts, treat_none_as_default_value = false)]
pub struct ContactRow {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub title: Option<String>,
    /// JSON list of `ContactPoint`.
    pub emails: String,
    /// JSON list of `ContactPoint`.
    pub phones: String,
    /// Lower-case names, emails and phones, for keyword search.
    pub search_text: String,
    pub preferred_channel: Option<String>,
    pub language: Option<String>,
    pub account_id: Option<String>,
    pub owner_id: String,
    pub consent_state: String,
    pub consent_at: Option<NaiveDateTime>,
    pub consent_source: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
    pub deleted_at: Option<NaiveDateTime>,
    pub deleted_by: Option<String>,
    /// The first email, normalised: the duplicate key of imports.
    pub email_key: Option<String>,
    /// Custom field values: a JSON object by key.
    pub custom: String,
}

/// What to order contacts by.
#[derive(async_graphql::Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContactOrderField {
    /// Last name, then id.
    #[default]
    LastName,
    /// Creation time.
    CreatedAt,
}

/// Filters for [`list`].
#[derive(Clone, Debug, Default)]
pub struct ContactFilter {
    pub owner_id: Option<String>,
    pub account_id: Option<String>,
    pub tag_id: Option<String>,
    pub consent_state: Option<String>,
    pub created_from: Option<NaiveDateTime>,
    pub created_to: Option<NaiveDateTime>,
    /// Names, emails, phones or the company name contain this.
    pub search: Option<String>,
    /// The caller's read scope on accounts: `search` matches the names of
    /// live accounts in it only (None: names, emails and phones only).
    pub account_scope: Option<RowFilter>,
    pub deleted: bool,
    /// Custom field conditions.
    pub custom: Vec<crm_core::custom::CustomCond>,
    /// Sort by a custom field instead of the order field.
    pub custom_sort: Option<crm_core::custom::CustomSort>,
}

/// The sort value of a row (the cursor's first half).
pub fn sort_value(row: &ContactRow, field: ContactOrderField) -> String {
    match field {
        ContactOrderField::LastName => row.last_name.clone(),
        ContactOrderField::CreatedAt => paging::time_key(row.created_at),
    }
}

/// A page of contacts in scope and the total matching.
pub async fn list(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    f: &ContactFilter,
    order: (ContactOrderField, Direction),
    page: &PageQuery,
    with_total: bool,
) -> Result<(Vec<ContactRow>, i64)> {
    let pattern = f
        .search
        .as_deref()
        .map(|s| format!("%{}%", s.to_lowercase().replace(['\\', '%', '_'], "")));
    macro_rules! filtered {
        () => {{
            let mut q = apply_row_filter!(contacts::table.into_boxed(), scope, contacts::owner_id);
            q = if f.deleted {
                q.filter(contacts::deleted_at.is_not_null())
            } else {
                q.filter(contacts::deleted_at.is_null())
            };
            if let Some(v) = &f.owner_id {
                q = q.filter(contacts::owner_id.eq(v.clone()));
            }
            if let Some(v) = &f.account_id {
                q = q.filter(contacts::account_id.eq(v.clone()));
            }
            if let Some(v) = &f.tag_id {
                q = q.filter(
                    contacts::id.eq_any(
                        contact_tags::table
                            .filter(contact_tags::tag_id.eq(v.clone()))
                            .select(contact_tags::contact_id),
                    ),
                );
            }
            if let Some(v) = &f.consent_state {
                q = q.filter(contacts::consent_state.eq(v.clone()));
            }
            if let Some(v) = f.created_from {
                q = q.filter(contacts::created_at.ge(v));
            }
            if let Some(v) = f.created_to {
                q = q.filter(contacts::created_at.lt(v));
            }
            if let Some(p) = &pattern {
                q = match &f.account_scope {
                    Some(account_scope) => {
                        let named = apply_row_filter!(
                            accounts::table.into_boxed(),
                            account_scope,
                            accounts::owner_id
                        )
                        .filter(accounts::deleted_at.is_null())
                        .filter(crm_core::sql::lower(accounts::name).like(p.clone()))
                        .select(accounts::id.nullable());
                        q.filter(
                            contacts::search_text
                                .like(p.clone())
                                .or(contacts::account_id.eq_any(named)),
                        )
                    }
                    None => q.filter(contacts::search_text.like(p.clone())),
                };
            }
            crm_core::custom_filter!(q, &f.custom)
        }};
    }
    let (field, dir) = order;
    let asc = dir == Direction::Asc;
    let after = page
        .after
        .as_deref()
        .map(|c| paging::unpair(c, "after"))
        .transpose()?;
    let before = page
        .before
        .as_deref()
        .map(|c| paging::unpair(c, "before"))
        .transpose()?;
    let fetch_asc = asc != page.backwards;
    let rows =
        db_run!(conn, |c| {
            let mut q = filtered!();
            for (cursor, greater) in [(&after, asc), (&before, !asc)] {
                let Some((value, id)) = cursor else { continue };
                if let Some(cs) = &f.custom_sort {
                    q = crm_core::custom_keyset!(q, cs, value, id, greater, "contacts");
                    continue;
                }
                q =
                    match (field, greater) {
                        (ContactOrderField::LastName, true) => q.filter(
                            contacts::last_name.gt(value.clone()).or(contacts::last_name
                                .eq(value.clone())
                                .and(contacts::id.gt(id.clone()))),
                        ),
                        (ContactOrderField::LastName, false) => q.filter(
                            contacts::last_name.lt(value.clone()).or(contacts::last_name
                                .eq(value.clone())
                                .and(contacts::id.lt(id.clone()))),
                        ),
                        (ContactOrderField::CreatedAt, g) => {
                            let t = paging::parse_time_key(value, "after")?;
                            if g {
                                q.filter(contacts::created_at.gt(t).or(
                                    contacts::created_at.eq(t).and(contacts::id.gt(id.clone())),
                                ))
                            } else {
                                q.filter(contacts::created_at.lt(t).or(
                                    contacts::created_at.eq(t).and(contacts::id.lt(id.clone())),
                                ))
                            }
                        }
                    };
            }
            q = match (field, fetch_asc) {
                _ if f.custom_sort.is_some() => {
                    let cs = f.custom_sort.as_ref().expect("checked");
                    crm_core::custom_order!(q, cs, fetch_asc, contacts::id)
                }
                (ContactOrderField::LastName, true) => {
                    q.order((contacts::last_name.asc(), contacts::id.asc()))
                }
                (ContactOrderField::LastName, false) => {
                    q.order((contacts::last_name.desc(), contacts::id.desc()))
                }
                (ContactOrderField::CreatedAt, true) => {
                    q.order((contacts::created_at.asc(), contacts::id.asc()))
                }
                (ContactOrderField::CreatedAt, false) => {
                    q.order((contacts::created_at.desc(), contacts::id.desc()))
                }
            };
            Ok::<_, Error>(
                q.limit(page.limit + 1)
                    .select(ContactRow::as_select())
                    .load(c)
                    .await?,
            )
        })?;
    let total = if with_total {
        db_run!(conn, |c| filtered!().count().get_result(c).await)?
    } else {
        0
    };
    Ok((rows, total))
}

/// One soft-deleted contact in scope (for restore and purge).
pub async fn get_deleted(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    id: &str,
) -> Result<Option<ContactRow>> {
    Ok(db_run!(conn, |c| {
        let q = contacts::table.filter(contacts::id.eq(id)).into_boxed();
        apply_row_filter!(q, scope, contacts::owner_id)
            .filter(contacts::deleted_at.is_not_null())
            .select(ContactRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// Deletes a contact for good (its tags go with it). Rows of other tables
/// pointing at it are handled before, by `references::purge_cascade`.
pub async fn purge(conn: &mut Conn<'_>, id: &str) -> Result<()> {
    db_run!(conn, |c| diesel::delete(
        contacts::table.filter(contacts::id.eq(id))
    )
    .execute(c)
    .await)?;
    Ok(())
}

/// One live contact in scope.
pub async fn get(conn: &mut Conn<'_>, scope: &RowFilter, id: &str) -> Result<Option<ContactRow>> {
    Ok(db_run!(conn, |c| {
        let q = contacts::table.filter(contacts::id.eq(id)).into_boxed();
        apply_row_filter!(q, scope, contacts::owner_id)
            .filter(contacts::deleted_at.is_null())
            .select(ContactRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// Inserts a contact.
pub async fn insert(conn: &mut Conn<'_>, row: &ContactRow) -> Result<()> {
    db_run!(conn, |c| diesel::insert_into(contacts::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    Ok(())
}

/// Version-checked write of every field.
pub async fn update(conn: &mut Conn<'_>, row: &ContactRow, expected: i64) -> Result<()> {
    let n = db_run!(conn, |c| diesel::update(
        contacts::table
            .filter(contacts::id.eq(&row.id))
            .filter(contacts::version.eq(expected))
    )
    .set((
        contacts::first_name.eq(&row.first_name),
        contacts::last_name.eq(&row.last_name),
        contacts::title.eq(&row.title),
        contacts::emails.eq(&row.emails),
        contacts::phones.eq(&row.phones),
        contacts::search_text.eq(&row.search_text),
        contacts::preferred_channel.eq(&row.preferred_channel),
        contacts::language.eq(&row.language),
        contacts::account_id.eq(&row.account_id),
        contacts::owner_id.eq(&row.owner_id),
        contacts::consent_state.eq(&row.consent_state),
        contacts::consent_at.eq(row.consent_at),
        contacts::consent_source.eq(&row.consent_source),
        contacts::updated_at.eq(row.updated_at),
        contacts::version.eq(expected + 1),
        contacts::deleted_at.eq(row.deleted_at),
        contacts::deleted_by.eq(&row.deleted_by),
        contacts::email_key.eq(&row.email_key),
        contacts::custom.eq(&row.custom),
    ))
    .execute(c)
    .await)?;
    if n == 0 {
        return Err(Error::Conflict(format!(
            "contact {} was changed by someone else (version {expected} is stale); reload and retry",
            row.id
        )));
    }
    Ok(())
}

/// Inserts many contacts (multi-row statements on PostgreSQL).
pub async fn insert_many(conn: &mut Conn<'_>, rows: &[ContactRow]) -> Result<()> {
    crm_core::insert_all!(conn, contacts::table, rows);
    Ok(())
}

/// Live contacts in scope whose id or first email is one of these. Two
/// indexed lookups, not one query with OR (which would scan the table).
pub async fn find_keys(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    ids: &[String],
    email_keys: &[String],
) -> Result<Vec<ContactRow>> {
    let mut out: Vec<ContactRow> = Vec::new();
    for by_id in [true, false] {
        let keys = if by_id { ids } else { email_keys };
        if keys.is_empty() {
            continue;
        }
        let rows: Vec<ContactRow> = db_run!(conn, |c| {
            let q = if by_id {
                contacts::table
                    .filter(contacts::id.eq_any(keys.to_vec()))
                    .into_boxed()
            } else {
                contacts::table
                    .filter(contacts::email_key.eq_any(keys.to_vec()))
                    .into_boxed()
            };
            apply_row_filter!(q, scope, contacts::owner_id)
                .filter(contacts::deleted_at.is_null())
                .order(contacts::created_at.asc())
                .select(ContactRow::as_select())
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
