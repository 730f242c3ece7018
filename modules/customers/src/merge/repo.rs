//! Merge records and the link rows a merge re-points, in the database.
//!
//! Links are listed as data ([`SUBJECT_LINKS`], [`links_of`]) and moved by
//! typed diesel queries (`linked`, `point`, `owners`: one match arm per
//! link), so a later module that points at accounts or contacts adds a line
//! to the list and an arm to each, and its rows follow merges and their
//! undo. Every moved row gets its version bump, audit entry (naming the
//! merge as the reason) and event, like any other change.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;
use crm_core::access::{Principal, RowFilter};
use crm_core::change::{self, Change};
use crm_core::db::Conn;
use crm_core::error::Result;
use crm_core::ids;
use crm_core::paging::PageQuery;
use crm_core::schema::{
    account_tags, accounts, activities, contact_tags, contacts, merges, purchases,
};
use crm_core::{apply_row_filter, db_run};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use serde_json::json;

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

/// A column that points at a record, optionally qualified by a type column
/// (`activities.subject_id` where `subject_type = 'Contact'`). The table
/// must have a text `id` primary key.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// Table holding the reference.
    pub table: &'static str,
    /// Column holding the record id.
    pub column: &'static str,
    /// Column holding the record's type name, for polymorphic references.
    pub type_column: Option<&'static str>,
}

/// References by `(subject_type, subject_id)`: the one list to extend when a
/// module attaches its rows to accounts or contacts that way.
pub const SUBJECT_LINKS: &[Link] = &[Link {
    table: "activities",
    column: "subject_id",
    type_column: Some("subject_type"),
}];

/// Every link to a record of `entity_type` (`Contact`, `Account`) that a
/// merge moves to the survivor. Tags (a composite key) are moved separately.
pub fn links_of(entity_type: &str) -> Vec<Link> {
    let direct: &[Link] = match entity_type {
        "Contact" => &[Link {
            table: "purchases",
            column: "contact_id",
            type_column: None,
        }],
        "Account" => &[
            Link {
                table: "purchases",
                column: "account_id",
                type_column: None,
            },
            Link {
                table: "contacts",
                column: "account_id",
                type_column: None,
            },
        ],
        _ => &[],
    };
    SUBJECT_LINKS.iter().chain(direct).copied().collect()
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

/// A link row: its id and, for tables that keep one, its version.
type LinkedRow = (String, Option<i64>);

fn unknown(link: &Link) -> crm_core::Error {
    crm_core::Error::Internal(format!(
        "merge names an unknown link {}.{}",
        link.table, link.column
    ))
}

/// The rows of `link` pointing at `id` (a record of `entity_type`), and the
/// version of each (None for tables without one).
async fn linked(
    conn: &mut Conn<'_>,
    link: &Link,
    entity_type: &str,
    id: &str,
) -> Result<Vec<LinkedRow>> {
    let mut rows: Vec<LinkedRow> = match (link.table, link.column) {
        ("activities", "subject_id") => db_run!(conn, |c| activities::table
            .filter(activities::subject_type.eq(entity_type))
            .filter(activities::subject_id.eq(id))
            .select((activities::id, activities::version.nullable()))
            .load(c)
            .await)?,
        ("contacts", "account_id") => db_run!(conn, |c| contacts::table
            .filter(contacts::account_id.eq(id))
            .select((contacts::id, contacts::version.nullable()))
            .load(c)
            .await)?,
        ("purchases", "contact_id") => db_run!(conn, |c| purchases::table
            .filter(purchases::contact_id.eq(id))
            .select(purchases::id)
            .load::<String>(c)
            .await)?
        .into_iter()
        .map(|i| (i, None))
        .collect(),
        ("purchases", "account_id") => db_run!(conn, |c| purchases::table
            .filter(purchases::account_id.eq(id))
            .select(purchases::id)
            .load::<String>(c)
            .await)?
        .into_iter()
        .map(|i| (i, None))
        .collect(),
        _ => return Err(unknown(link)),
    };
    rows.sort();
    Ok(rows)
}

/// Points one row of `link` at `to`. A versioned row must still be at
/// `version.0` (CONFLICT otherwise) and moves to `version.1`.
async fn point(
    conn: &mut Conn<'_>,
    link: &Link,
    row: &str,
    to: &str,
    version: Option<(i64, i64)>,
) -> Result<()> {
    let now = ids::now();
    let n = match (link.table, link.column, version) {
        ("activities", "subject_id", Some((expected, next))) => db_run!(conn, |c| diesel::update(
            activities::table
                .filter(activities::id.eq(row))
                .filter(activities::version.eq(expected))
        )
        .set((
            activities::subject_id.eq(to),
            activities::version.eq(next),
            activities::updated_at.eq(now),
        ))
        .execute(c)
        .await)?,
        ("contacts", "account_id", Some((expected, next))) => db_run!(conn, |c| diesel::update(
            contacts::table
                .filter(contacts::id.eq(row))
                .filter(contacts::version.eq(expected))
        )
        .set((
            contacts::account_id.eq(Some(to)),
            contacts::version.eq(next),
            contacts::updated_at.eq(now),
        ))
        .execute(c)
        .await)?,
        ("purchases", "contact_id", None) => db_run!(conn, |c| diesel::update(
            purchases::table.filter(purchases::id.eq(row))
        )
        .set(purchases::contact_id.eq(Some(to)))
        .execute(c)
        .await)?,
        ("purchases", "account_id", None) => db_run!(conn, |c| diesel::update(
            purchases::table.filter(purchases::id.eq(row))
        )
        .set(purchases::account_id.eq(to))
        .execute(c)
        .await)?,
        _ => return Err(unknown(link)),
    };
    if n == 0 {
        return Err(crm_core::Error::Conflict(format!(
            "{} {row} changed during the merge; retry",
            link.table
        )));
    }
    Ok(())
}

/// The owner of each row (for the row scope of its event): the row's own
/// owner, or for purchases the owner of the purchase's account.
async fn owners(
    conn: &mut Conn<'_>,
    link: &Link,
    ids_in: &[String],
) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for chunk in ids_in.chunks(1_000) {
        let rows: Vec<(String, String)> = match link.table {
            "activities" => db_run!(conn, |c| activities::table
                .filter(activities::id.eq_any(chunk))
                .select((activities::id, activities::owner_id))
                .load(c)
                .await)?,
            "contacts" => db_run!(conn, |c| contacts::table
                .filter(contacts::id.eq_any(chunk))
                .select((contacts::id, contacts::owner_id))
                .load(c)
                .await)?,
            "purchases" => db_run!(conn, |c| purchases::table
                .inner_join(accounts::table)
                .filter(purchases::id.eq_any(chunk))
                .select((purchases::id, accounts::owner_id))
                .load(c)
                .await)?,
            _ => return Err(unknown(link)),
        };
        out.extend(rows);
    }
    Ok(out)
}

/// The entity type of a link's rows, for audit entries and events.
fn row_type(link: &Link) -> &'static str {
    match link.table {
        "activities" => "Activity",
        "contacts" => "Contact",
        _ => "Purchase",
    }
}

/// `subject_id` -> `subjectId`.
pub(crate) fn field_name(column: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for ch in column.chars() {
        if ch == '_' {
            up = true;
        } else if up {
            out.extend(ch.to_uppercase());
            up = false;
        } else {
            out.push(ch);
        }
    }
    out
}

/// Records a version bump, audit entry (with `reason`) and event for every
/// re-pointed row: these rows may belong to other owners, so the caller did
/// not edit them; the merge did, and the entry says so.
async fn record_moves(
    conn: &mut Conn<'_>,
    by: &Principal,
    reason: &str,
    link: &Link,
    moves: &[(String, &str, &str)],
) -> Result<()> {
    let ids_in: Vec<String> = moves.iter().map(|(id, _, _)| id.clone()).collect();
    let owners = owners(conn, link, &ids_in).await?;
    let field = field_name(link.column);
    let changes: Vec<Change> = moves
        .iter()
        .map(|(id, from, to)| Change {
            topic: crate::TOPIC,
            entity_type: row_type(link),
            entity_id: id.clone(),
            action: "relinked",
            before: Some(json!({ &field: from })),
            after: Some(json!({ &field: to })),
            owner_id: owners.get(id).cloned(),
            team_id: None,
        })
        .collect();
    change::record_many_because(conn, &by.actor(), reason, &changes).await
}

/// Re-points every row of `link` from `from` to `to`, each with its version
/// bump, audit entry and event; returns what moved.
#[allow(clippy::too_many_arguments)]
pub async fn repoint(
    conn: &mut Conn<'_>,
    by: &Principal,
    reason: &str,
    link: &Link,
    entity_type: &str,
    from: &str,
    to: &str,
) -> Result<MovedLink> {
    let rows = linked(conn, link, entity_type, from).await?;
    let mut versions = BTreeMap::new();
    for (id, version) in &rows {
        point(conn, link, id, to, version.map(|v| (v, v + 1))).await?;
        if let Some(v) = version {
            versions.insert(id.clone(), *v);
        }
    }
    let moves: Vec<(String, &str, &str)> =
        rows.iter().map(|(id, _)| (id.clone(), from, to)).collect();
    record_moves(conn, by, reason, link, &moves).await?;
    Ok(MovedLink {
        table: link.table.to_owned(),
        column: link.column.to_owned(),
        type_column: link.type_column.map(str::to_owned),
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
    let Some(link) = links_of(entity_type)
        .into_iter()
        .find(|l| l.table == moved.table && l.column == moved.column)
    else {
        return Err(unknown(&Link {
            table: "?",
            column: "?",
            type_column: None,
        }));
    };
    let ours: std::collections::HashSet<&String> = moved.ids.iter().collect();
    let here = linked(conn, &link, entity_type, survivor).await?;
    let mut moves = Vec::new();
    for (id, version) in here.iter().filter(|(id, _)| ours.contains(id)) {
        let version = version.map(|v| (v, v + 1));
        point(conn, &link, id, &moved.from, version).await?;
        moves.push((id.clone(), survivor, moved.from.as_str()));
    }
    record_moves(conn, by, reason, &link, &moves).await
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
