//! Merge records and the link rows a merge re-points, in the database.
//!
//! Links are the references every module registers with core
//! (`crm_core::module::references`), moved by core's generic statements, so
//! a later module that points at accounts or contacts registers a
//! `Reference` in its own crate and its rows follow merges and their undo.
//! Every moved row gets its version bump, audit entry (naming the merge as
//! the reason) and event, like any other change.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use crm_core::access::{Principal, RowFilter};
use crm_core::db::Conn;
use crm_core::error::Result;
use crm_core::module::{Reference, references};
use crm_core::paging::PageQuery;
use crm_core::schema::{account_tags, accounts, contact_tags, contacts, merges};
use crm_core::{apply_row_filter, db_run};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};

use crate::accounts::repo::AccountRow;
use crate::contacts::repo::ContactRow;

/// A merge row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = merges, treat_none_as_default_value = false)]
pub struct MergeRow {
    pub id: String,
    /// `Contact` or `Account`.
    pub entity_type: String,
    pub survivor_id: String,
    /// JSON list of the merged (soft-deleted) ids.
    pub merged_ids: String,
    /// JSON list of every involved row before the merge, survivor first.
    pub snapshot: String,
    /// JSON [`Moved`].
    pub moved: String,
    /// JSON map of record id to the version the merge left it at.
    pub versions: String,
    /// Who merged (user or API key id): the row scope owner.
    pub merged_by: String,
    pub merged_at: NaiveDateTime,
    pub undone_at: Option<NaiveDateTime>,
    pub undone_by: Option<String>,
}

/// Every registered reference that can point at a record of
/// `entity_type` (`Contact`, `Account`), in registration order: the rows a
/// merge moves to the survivor. Any module can add one through its
/// `Module::references`. Tags (a composite key) are moved separately.
pub fn links_of(entity_type: &str) -> Result<Vec<&'static Reference>> {
    references::references_to(entity_type)
}

/// Rows of one link re-pointed from `from` to the survivor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MovedLink {
    pub table: String,
    pub column: String,
    pub type_column: Option<String>,
    pub from: String,
    /// Ids of the re-pointed rows, sorted.
    pub ids: Vec<String>,
    /// The version each re-pointed row had before (rows with a version).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, i64>,
}

/// Tags taken off a merged record; `added` are the ones the survivor did
/// not have already.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MovedTags {
    pub from: String,
    pub tag_ids: Vec<String>,
    pub added: Vec<String>,
}

/// Everything a merge re-pointed, enough to put it back exactly.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Moved {
    pub links: Vec<MovedLink>,
    pub tags: Vec<MovedTags>,
}

fn unknown(table: &str, column: &str) -> crm_core::Error {
    crm_core::Error::Internal(format!("merge names an unknown link {table}.{column}"))
}

/// Re-points every row of `link` from `from` to `to`, each with its version
/// bump, audit entry and event; returns what moved.
#[allow(clippy::too_many_arguments)]
pub async fn repoint(
    conn: &mut Conn<'_>,
    by: &Principal,
    reason: &str,
    link: &Reference,
    entity_type: &str,
    from: &str,
    to: &str,
) -> Result<MovedLink> {
    let rows = references::linked(conn, link, entity_type, from).await?;
    let mut versions = BTreeMap::new();
    for (id, version) in &rows {
        references::point(conn, link, id, Some(to), version.map(|v| (v, v + 1))).await?;
        if let Some(v) = version {
            versions.insert(id.clone(), *v);
        }
    }
    let moves: Vec<(String, Option<&str>, Option<&str>)> = rows
        .iter()
        .map(|(id, _)| (id.clone(), Some(from), Some(to)))
        .collect();
    references::record(conn, by, reason, "relinked", link, &moves).await?;
    Ok(MovedLink {
        table: link.table.to_owned(),
        column: link.column.to_owned(),
        type_column: link.type_column().map(str::to_owned),
        from: from.to_owned(),
        ids: rows.into_iter().map(|(id, _)| id).collect(),
        versions,
    })
}

/// Puts moved rows back on their original record, but only those still
/// pointing at the survivor (a row re-pointed since stays where it is).
/// Every row put back moves on to a new version, like any other write:
/// handing back an old version number would let a client that read the row
/// between the merge and the undo overwrite a later change unnoticed.
pub async fn unpoint(
    conn: &mut Conn<'_>,
    by: &Principal,
    reason: &str,
    moved: &MovedLink,
    entity_type: &str,
    survivor: &str,
) -> Result<()> {
    // Only links this build knows are used, whatever the stored JSON says.
    let Some(link) = links_of(entity_type)?
        .into_iter()
        .find(|l| l.table == moved.table && l.column == moved.column)
    else {
        return Err(unknown(&moved.table, &moved.column));
    };
    let ours: std::collections::HashSet<&String> = moved.ids.iter().collect();
    let here = references::linked(conn, link, entity_type, survivor).await?;
    let mut moves = Vec::new();
    for (id, version) in here.iter().filter(|(id, _)| ours.contains(id)) {
        let version = version.map(|v| (v, v + 1));
        references::point(conn, link, id, Some(moved.from.as_str()), version).await?;
        moves.push((id.clone(), Some(survivor), Some(moved.from.as_str())));
    }
    references::record(conn, by, reason, "relinked", link, &moves).await
}

/// Tag ids of a record of `entity_type`.
pub async fn tag_ids(conn: &mut Conn<'_>, entity_type: &str, id: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = if entity_type == "Contact" {
        db_run!(conn, |c| contact_tags::table
            .filter(contact_tags::contact_id.eq(id))
            .select(contact_tags::tag_id)
            .load(c)
            .await)?
    } else {
        db_run!(conn, |c| account_tags::table
            .filter(account_tags::account_id.eq(id))
            .select(account_tags::tag_id)
            .load(c)
            .await)?
    };
    out.sort();
    Ok(out)
}

async fn set_tag(
    conn: &mut Conn<'_>,
    entity_type: &str,
    id: &str,
    tag: &str,
    on: bool,
) -> Result<()> {
    match (entity_type == "Contact", on) {
        (true, true) => db_run!(conn, |c| diesel::insert_into(contact_tags::table)
            .values((
                contact_tags::contact_id.eq(id),
                contact_tags::tag_id.eq(tag)
            ))
            .execute(c)
            .await)?,
        (true, false) => db_run!(conn, |c| diesel::delete(
            contact_tags::table
                .filter(contact_tags::contact_id.eq(id))
                .filter(contact_tags::tag_id.eq(tag))
        )
        .execute(c)
        .await)?,
        (false, true) => db_run!(conn, |c| diesel::insert_into(account_tags::table)
            .values((
                account_tags::account_id.eq(id),
                account_tags::tag_id.eq(tag)
            ))
            .execute(c)
            .await)?,
        (false, false) => db_run!(conn, |c| diesel::delete(
            account_tags::table
                .filter(account_tags::account_id.eq(id))
                .filter(account_tags::tag_id.eq(tag))
        )
        .execute(c)
        .await)?,
    };
    Ok(())
}

/// Moves the tags of `from` to `to` without duplicates.
pub async fn move_tags(
    conn: &mut Conn<'_>,
    entity_type: &str,
    from: &str,
    to: &str,
) -> Result<MovedTags> {
    let theirs = tag_ids(conn, entity_type, from).await?;
    let mine = tag_ids(conn, entity_type, to).await?;
    let mut added = Vec::new();
    for t in &theirs {
        set_tag(conn, entity_type, from, t, false).await?;
        if !mine.contains(t) {
            set_tag(conn, entity_type, to, t, true).await?;
            added.push(t.clone());
        }
    }
    Ok(MovedTags {
        from: from.to_owned(),
        tag_ids: theirs,
        added,
    })
}

/// Undoes [`move_tags`]: the survivor loses the tags it gained (if it still
/// has them), the merged record gets its tags back (those that still exist).
pub async fn unmove_tags(
    conn: &mut Conn<'_>,
    entity_type: &str,
    moved: &MovedTags,
    survivor: &str,
) -> Result<()> {
    let mine = tag_ids(conn, entity_type, survivor).await?;
    for t in moved.added.iter().filter(|t| mine.contains(t)) {
        set_tag(conn, entity_type, survivor, t, false).await?;
    }
    let existing: Vec<String> = db_run!(conn, |c| crm_core::schema::tags::table
        .filter(crm_core::schema::tags::id.eq_any(&moved.tag_ids))
        .select(crm_core::schema::tags::id)
        .load(c)
        .await)?;
    let theirs = tag_ids(conn, entity_type, &moved.from).await?;
    for t in existing.iter().filter(|t| !theirs.contains(t)) {
        set_tag(conn, entity_type, &moved.from, t, true).await?;
    }
    Ok(())
}

/// Inserts a merge record.
pub async fn insert(conn: &mut Conn<'_>, row: &MergeRow) -> Result<()> {
    db_run!(conn, |c| diesel::insert_into(merges::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    Ok(())
}

/// One merge in scope.
pub async fn get(conn: &mut Conn<'_>, scope: &RowFilter, id: &str) -> Result<Option<MergeRow>> {
    Ok(db_run!(conn, |c| {
        let q = merges::table.filter(merges::id.eq(id)).into_boxed();
        apply_row_filter!(q, scope, merges::merged_by)
            .select(MergeRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// Merges in scope, newest first (ids are time-ordered), optionally those
/// whose survivor is `record`.
pub async fn list(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    entity_type: Option<&str>,
    survivor: Option<&str>,
    page: &PageQuery,
) -> Result<(Vec<MergeRow>, i64)> {
    macro_rules! filtered {
        () => {{
            let mut q = apply_row_filter!(merges::table.into_boxed(), scope, merges::merged_by);
            if let Some(t) = entity_type {
                q = q.filter(merges::entity_type.eq(t.to_owned()));
            }
            if let Some(s) = survivor {
                q = q.filter(merges::survivor_id.eq(s.to_owned()));
            }
            q
        }};
    }
    let rows = db_run!(conn, |c| {
        let mut q = filtered!();
        if let Some(a) = &page.after {
            q = q.filter(merges::id.lt(a.clone()));
        }
        q.order(merges::id.desc())
            .limit(page.limit + 1)
            .select(MergeRow::as_select())
            .load(c)
            .await
    })?;
    let total = db_run!(conn, |c| filtered!().count().get_result(c).await)?;
    Ok((rows, total))
}

/// Marks a merge undone if it was not already; false if it was.
pub async fn mark_undone(
    conn: &mut Conn<'_>,
    id: &str,
    at: NaiveDateTime,
    by: Option<String>,
) -> Result<bool> {
    let n = db_run!(conn, |c| diesel::update(
        merges::table
            .filter(merges::id.eq(id))
            .filter(merges::undone_at.is_null())
    )
    .set((
        merges::undone_at.eq(Some(at)),
        merges::undone_by.eq(by.clone())
    ))
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// A contact in scope whether live or in the recycle bin.
pub async fn contact_any(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    id: &str,
) -> Result<Option<ContactRow>> {
    Ok(db_run!(conn, |c| {
        let q = contacts::table.filter(contacts::id.eq(id)).into_boxed();
        apply_row_filter!(q, scope, contacts::owner_id)
            .select(ContactRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// An account in scope whether live or in the recycle bin.
pub async fn account_any(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    id: &str,
) -> Result<Option<AccountRow>> {
    Ok(db_run!(conn, |c| {
        let q = accounts::table.filter(accounts::id.eq(id)).into_boxed();
        apply_row_filter!(q, scope, accounts::owner_id)
            .select(AccountRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// Live contacts in scope, oldest first, at most `limit`.
pub async fn live_contacts(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    limit: i64,
) -> Result<Vec<ContactRow>> {
    Ok(db_run!(conn, |c| {
        apply_row_filter!(contacts::table.into_boxed(), scope, contacts::owner_id)
            .filter(contacts::deleted_at.is_null())
            .order((contacts::created_at.asc(), contacts::id.asc()))
            .limit(limit)
            .select(ContactRow::as_select())
            .load(c)
            .await
    })?)
}

/// Live accounts in scope, oldest first, at most `limit`.
pub async fn live_accounts(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    limit: i64,
) -> Result<Vec<AccountRow>> {
    Ok(db_run!(conn, |c| {
        apply_row_filter!(accounts::table.into_boxed(), scope, accounts::owner_id)
            .filter(accounts::deleted_at.is_null())
            .order((accounts::created_at.asc(), accounts::id.asc()))
            .limit(limit)
            .select(AccountRow::as_select())
            .load(c)
            .await
    })?)
}
