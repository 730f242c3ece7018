//! Merging duplicate accounts or contacts into one survivor, and undoing it.
//!
//! A merge runs in one transaction: every involved record must be live and
//! in the caller's `update` scope (NOT_FOUND otherwise, nothing changes);
//! every link (timeline, purchases, contacts of an account, tags) moves to
//! the survivor; the survivor keeps its own fields, and for contacts gains
//! the others' emails and phones (deduplicated); the others go to the
//! recycle bin. The merge record keeps the rows as they were and the link
//! rows moved, so an undo can put everything back exactly.

use std::collections::BTreeMap;

use crm_core::access::{Principal, RowFilter};
use crm_core::app::App;
use crm_core::change::{self, Change};
use crm_core::db::Conn;
use crm_core::error::{Error, Result};
use crm_core::ids;
use serde_json::{Value, json};

use super::repo::{self, MergeRow, Moved};
use crate::TOPIC;
use crate::accounts::repo::{self as accounts, AccountRow};
use crate::contacts::repo::{self as contacts, ContactRow};
use crate::values::ContactPoint;

/// Most records merged into one survivor at once.
pub const MAX_OTHERS: usize = 50;

/// A record of either mergeable type.
#[derive(Clone, Debug)]
pub enum Record {
    /// A contact.
    Contact(ContactRow),
    /// An account.
    Account(AccountRow),
}

impl Record {
    fn entity_type(&self) -> &'static str {
        match self {
            Record::Contact(_) => "Contact",
            Record::Account(_) => "Account",
        }
    }

    /// The record's id.
    pub fn id(&self) -> &str {
        match self {
            Record::Contact(r) => &r.id,
            Record::Account(r) => &r.id,
        }
    }

    fn version(&self) -> i64 {
        match self {
            Record::Contact(r) => r.version,
            Record::Account(r) => r.version,
        }
    }

    fn deleted(&self) -> bool {
        match self {
            Record::Contact(r) => r.deleted_at.is_some(),
            Record::Account(r) => r.deleted_at.is_some(),
        }
    }

    fn owner(&self) -> &str {
        match self {
            Record::Contact(r) => &r.owner_id,
            Record::Account(r) => &r.owner_id,
        }
    }

    /// The public fields, for audit diffs and events.
    fn public(&self) -> Value {
        match self {
            Record::Contact(r) => crate::contacts::snapshot(r),
            Record::Account(r) => crate::accounts::service::snapshot(r),
        }
    }

    /// The whole row, for the merge record.
    fn row_json(&self) -> Value {
        match self {
            Record::Contact(r) => serde_json::to_value(r),
            Record::Account(r) => serde_json::to_value(r),
        }
        .unwrap_or_default()
    }

    /// The snapshot `v` laid over the current row: columns added after the
    /// merge was recorded keep their current values.
    fn restored(&self, v: Value) -> Result<Record> {
        let mut row = self.row_json();
        if let (Some(base), Value::Object(old)) = (row.as_object_mut(), v) {
            base.extend(old);
        }
        let bad = |e: serde_json::Error| Error::Internal(format!("merge snapshot: {e}"));
        Ok(match self {
            Record::Contact(_) => Record::Contact(serde_json::from_value(row).map_err(bad)?),
            Record::Account(_) => Record::Account(serde_json::from_value(row).map_err(bad)?),
        })
    }

    /// Sets the recycle-bin stamp (None takes the record out of it).
    fn set_deleted(&mut self, at: Option<chrono::NaiveDateTime>, by: Option<String>) {
        match self {
            Record::Contact(r) => (r.deleted_at, r.deleted_by) = (at, by),
            Record::Account(r) => (r.deleted_at, r.deleted_by) = (at, by),
        }
    }

    /// Writes every field if the stored version is still `expected`, stamping
    /// `updated_at` and the next version.
    async fn write(&mut self, conn: &mut Conn<'_>, expected: i64) -> Result<()> {
        let now = ids::now();
        match self {
            Record::Contact(r) => {
                r.updated_at = now;
                crm_core::entity::store::update_row::<contacts::Contacts>(conn, r, expected)
                    .await?;
                r.version = expected + 1;
            }
            Record::Account(r) => {
                r.updated_at = now;
                crm_core::entity::store::update_row::<accounts::Accounts>(conn, r, expected)
                    .await?;
                r.version = expected + 1;
            }
        }
        Ok(())
    }

    /// Writes the audit entry and event; `tags` are the record's tag ids
    /// before and after (tags move with a merge and back with its undo).
    async fn record(
        &self,
        conn: &mut Conn<'_>,
        by: &Principal,
        action: &'static str,
        reason: &str,
        before: &Record,
        tags: (&[String], &[String]),
    ) -> Result<()> {
        let (mut old, mut new) = (before.public(), self.public());
        old["tagIds"] = json!(tags.0);
        new["tagIds"] = json!(tags.1);
        change::record_because(
            conn,
            &by.actor(),
            reason,
            Change {
                topic: TOPIC,
                entity_type: self.entity_type(),
                entity_id: self.id().to_owned(),
                action,
                before: Some(old),
                after: Some(new),
                owner_id: Some(self.owner().to_owned()),
                team_id: None,
            },
        )
        .await?;
        Ok(())
    }
}

/// Loads a record in `scope`: live only, or also from the recycle bin.
async fn load(
    conn: &mut Conn<'_>,
    entity_type: &str,
    scope: &RowFilter,
    id: &str,
    live_only: bool,
) -> Result<Option<Record>> {
    let r = match entity_type {
        "Contact" => repo::contact_any(conn, scope, id)
            .await?
            .map(Record::Contact),
        _ => repo::account_any(conn, scope, id)
            .await?
            .map(Record::Account),
    };
    Ok(r.filter(|r| !(live_only && r.deleted())))
}

fn prefix(entity_type: &str) -> &'static str {
    if entity_type == "Contact" {
        "con"
    } else {
        "acc"
    }
}

/// Appends the others' emails and phones to the survivor's, deduplicated.
async fn absorb_points(
    app: &App,
    by: &Principal,
    conn: &mut Conn<'_>,
    survivor: &mut ContactRow,
    others: &[Record],
) -> Result<()> {
    let list = |json: &str| serde_json::from_str::<Vec<ContactPoint>>(json).unwrap_or_default();
    let (mut emails, mut phones) = (list(&survivor.emails), list(&survivor.phones));
    for o in others {
        if let Record::Contact(o) = o {
            emails.extend(list(&o.emails));
            phones.extend(list(&o.phones));
        }
    }
    // `apply` normalises, drops duplicates and recomputes the email key and
    // the search text, as for any contact write.
    let fields = crate::contacts::Fields {
        emails: Some(emails),
        phones: Some(phones),
        ..Default::default()
    };
    crate::contacts::apply(app, by, conn, &RowFilter::All, survivor, fields).await
}

/// Merges `others` into `survivor_id`; returns the survivor as it is now and
/// the merge record.
pub async fn merge(
    app: &App,
    by: &Principal,
    entity_type: &'static str,
    scope: &RowFilter,
    survivor_id: &str,
    other_ids: &[String],
) -> Result<(Record, MergeRow)> {
    let p = prefix(entity_type);
    ids::check(survivor_id, p, "survivorId")?;
    for id in other_ids {
        ids::check(id, p, "otherIds")?;
    }
    let mut distinct = other_ids.to_vec();
    distinct.sort();
    distinct.dedup();
    if other_ids.is_empty() || other_ids.len() > MAX_OTHERS || distinct.len() != other_ids.len() {
        return Err(Error::invalid(
            "otherIds",
            format!("give 1 to {MAX_OTHERS} distinct ids"),
        ));
    }
    if distinct.iter().any(|o| o == survivor_id) {
        return Err(Error::invalid("otherIds", "must not contain the survivor"));
    }
    let mut tx = app.db.begin().await?;
    let not_found = |id: &str| Error::NotFound(format!("{} {id}", entity_type.to_lowercase()));
    let survivor = load(&mut tx.conn(), entity_type, scope, survivor_id, true)
        .await?
        .ok_or_else(|| not_found(survivor_id))?;
    let mut others = Vec::new();
    for id in other_ids {
        let o = load(&mut tx.conn(), entity_type, scope, id, true)
            .await?
            .ok_or_else(|| not_found(id))?;
        others.push(o);
    }
    let snapshot: Vec<Value> = std::iter::once(&survivor)
        .chain(&others)
        .map(Record::row_json)
        .collect();
    let mut tags_before = Vec::new();
    for r in std::iter::once(&survivor).chain(&others) {
        tags_before.push(repo::tag_ids(&mut tx.conn(), entity_type, r.id()).await?);
    }
    let merge_id = ids::new_id("mrg");
    let reason = format!("merge {merge_id}");
    let mut moved = Moved::default();
    for o in &others {
        for link in repo::links_of(entity_type)? {
            let m = repo::repoint(
                &mut tx.conn(),
                by,
                &reason,
                link,
                entity_type,
                o.id(),
                survivor_id,
            )
            .await?;
            if !m.ids.is_empty() {
                moved.links.push(m);
            }
        }
        let t = repo::move_tags(&mut tx.conn(), entity_type, o.id(), survivor_id).await?;
        if !t.tag_ids.is_empty() {
            moved.tags.push(t);
        }
    }
    let mut after = survivor.clone();
    if let Record::Contact(row) = &mut after {
        absorb_points(app, by, &mut tx.conn(), row, &others).await?;
    }
    after.write(&mut tx.conn(), survivor.version()).await?;
    let now = ids::now();
    let mut versions = BTreeMap::from([(after.id().to_owned(), after.version())]);
    let mut others_after = Vec::new();
    for o in &others {
        let mut gone = o.clone();
        gone.set_deleted(Some(now), by.actor().id);
        gone.write(&mut tx.conn(), o.version()).await?;
        versions.insert(gone.id().to_owned(), gone.version());
        others_after.push(gone);
    }
    let row = MergeRow {
        id: merge_id,
        entity_type: entity_type.to_owned(),
        survivor_id: survivor_id.to_owned(),
        merged_ids: json!(other_ids).to_string(),
        snapshot: Value::Array(snapshot).to_string(),
        moved: serde_json::to_string(&moved).unwrap_or_default(),
        versions: json!(versions).to_string(),
        merged_by: by.actor().id.unwrap_or_default(),
        merged_at: now,
        undone_at: None,
        undone_by: None,
    };
    repo::insert(&mut tx.conn(), &row).await?;
    let survivor_tags = repo::tag_ids(&mut tx.conn(), entity_type, survivor_id).await?;
    after
        .record(
            &mut tx.conn(),
            by,
            "merged",
            &reason,
            &survivor,
            (&tags_before[0], &survivor_tags),
        )
        .await?;
    for ((o, gone), before_tags) in others.iter().zip(&others_after).zip(&tags_before[1..]) {
        gone.record(&mut tx.conn(), by, "merged", &reason, o, (before_tags, &[]))
            .await?;
    }
    app.commit(tx).await?;
    Ok((after, row))
}

/// Undoes a merge in `merge_scope`: every record back to its snapshot
/// (versions move on), the merged ones out of the recycle bin, every moved
/// link back. CONFLICT when it was undone already, is older than the undo
/// window, or any record changed since the merge (its version is not the one
/// the merge left, or a merged record left the recycle bin or was purged).
pub async fn undo(
    app: &App,
    by: &Principal,
    merge_scope: &RowFilter,
    id: &str,
) -> Result<MergeRow> {
    ids::check(id, "mrg", "id")?;
    let mut tx = app.db.begin().await?;
    let mut m = repo::get(&mut tx.conn(), merge_scope, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("merge {id}")))?;
    if m.undone_at.is_some() {
        return Err(Error::Conflict(format!("merge {id} was already undone")));
    }
    let now = ids::now();
    let window = chrono::Duration::from_std(app.config.merge_undo).unwrap_or_default();
    if now - m.merged_at > window {
        return Err(Error::Conflict(format!(
            "merge {id} is older than merge-undo-days ({} days) and can no longer be undone",
            window.num_days()
        )));
    }
    let entity_type: &'static str = if m.entity_type == "Contact" {
        "Contact"
    } else {
        "Account"
    };
    let snapshot: Vec<Value> = serde_json::from_str(&m.snapshot)
        .map_err(|e| Error::Internal(format!("merge snapshot: {e}")))?;
    let versions: BTreeMap<String, i64> = serde_json::from_str(&m.versions)
        .map_err(|e| Error::Internal(format!("merge versions: {e}")))?;
    let moved: Moved =
        serde_json::from_str(&m.moved).map_err(|e| Error::Internal(format!("merge links: {e}")))?;
    let mut pairs = Vec::new();
    for (i, v) in snapshot.into_iter().enumerate() {
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        let current = load(&mut tx.conn(), entity_type, &RowFilter::All, &id, false).await?;
        let survivor = i == 0;
        let current = current
            .filter(|c| Some(&c.version()) == versions.get(c.id()) && c.deleted() != survivor)
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "{} {id} changed since the merge (edited, restored or purged); undo is not safe",
                    entity_type.to_lowercase(),
                ))
            })?;
        pairs.push((current.restored(v)?, current));
    }
    let mut tags_before = Vec::new();
    for (_, current) in &pairs {
        tags_before.push(repo::tag_ids(&mut tx.conn(), entity_type, current.id()).await?);
    }
    let reason = format!("undo of merge {id}");
    for l in moved.links.iter().rev() {
        repo::unpoint(&mut tx.conn(), by, &reason, l, entity_type, &m.survivor_id).await?;
    }
    for t in moved.tags.iter().rev() {
        repo::unmove_tags(&mut tx.conn(), entity_type, t, &m.survivor_id).await?;
    }
    let mut restored = Vec::new();
    for (old, current) in &pairs {
        let mut back = old.clone();
        back.set_deleted(None, None);
        back.write(&mut tx.conn(), current.version()).await?;
        restored.push(back);
    }
    let undone_by = by.actor().id;
    if !repo::mark_undone(&mut tx.conn(), id, now, undone_by.clone()).await? {
        return Err(Error::Conflict(format!("merge {id} was already undone")));
    }
    for ((back, (_, current)), before_tags) in restored.iter().zip(&pairs).zip(&tags_before) {
        let tags_after = repo::tag_ids(&mut tx.conn(), entity_type, back.id()).await?;
        back.record(
            &mut tx.conn(),
            by,
            "unmerged",
            &reason,
            current,
            (before_tags, &tags_after),
        )
        .await?;
    }
    app.commit(tx).await?;
    m.undone_at = Some(now);
    m.undone_by = undone_by;
    Ok(m)
}
