//! References between entities, registered by the modules that hold them:
//! a column pointing at a record of one type (`purchases.account_id` →
//! `Account`) or a subject pair pointing at a record of any type
//! (`activities.subject_type` + `subject_id`).
//!
//! Merges re-point these rows to the survivor, undo puts them back, and a
//! purge detaches or deletes them, all through the generic statements here,
//! so a downstream module that points at an upstream record registers a
//! [`Reference`] in its own [`super::Module`] and its rows follow without
//! any change upstream. Table and column names come from this registry
//! (code, never input); values are always bound.

use std::collections::HashMap;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::access::Principal;
use crate::change::{self, Change};
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::{db_run, ids};

/// What a reference points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Records of one type (`Account`).
    Entity(&'static str),
    /// A record of any type, named in `type_column` (`subject_type`).
    Subject {
        /// The column holding the record's type name.
        type_column: &'static str,
    },
}

/// Who owns a referencing row, for the row scope of the events a merge or
/// purge writes about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowOwner {
    /// The row's own column (`owner_id`).
    Column(&'static str),
    /// The `owner_id` of the `table` row that the row's `column` names (a
    /// purchase belongs to its account's owner).
    Through {
        /// The parent table.
        table: &'static str,
        /// The row's column holding the parent's id.
        column: &'static str,
    },
}

/// What purging the record does to the rows pointing at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnPurge {
    /// Nothing here: the database's foreign key decides (refuses, or
    /// cascades).
    Keep,
    /// The reference is cleared (the column must be nullable); each row
    /// gets its version bump, audit entry naming the purge and event.
    Detach,
    /// The rows go with the record (a timeline entry about it).
    Delete,
}

/// Rows of `table` whose `column` points at a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The event topic of the referencing rows.
    pub topic: &'static str,
    /// The type of the referencing rows (`Purchase`), for audit and events.
    pub from: &'static str,
    /// Their table, with a text `id` primary key.
    pub table: &'static str,
    /// The column holding the record's id.
    pub column: &'static str,
    /// What the column points at.
    pub target: Target,
    /// Whether the rows have `version` and `updated_at` (moved rows then
    /// get a version bump, and a concurrent change is a CONFLICT).
    pub versioned: bool,
    /// Who owns a row.
    pub owner: RowOwner,
    /// What a purge of the record does.
    pub on_purge: OnPurge,
}

impl Reference {
    /// `table.column` holds the id of a `target` record. Versioned rows
    /// with an `owner_id`, left alone by purges (see the builders).
    pub const fn column(
        topic: &'static str,
        from: &'static str,
        table: &'static str,
        column: &'static str,
        target: &'static str,
    ) -> Reference {
        Reference {
            topic,
            from,
            table,
            column,
            target: Target::Entity(target),
            versioned: true,
            owner: RowOwner::Column("owner_id"),
            on_purge: OnPurge::Keep,
        }
    }

    /// `table.type_column` + `table.column` name a record of any type.
    pub const fn subject(
        topic: &'static str,
        from: &'static str,
        table: &'static str,
        type_column: &'static str,
        column: &'static str,
    ) -> Reference {
        Reference {
            target: Target::Subject { type_column },
            ..Reference::column(topic, from, table, column, "")
        }
    }

    /// The rows have no `version` / `updated_at`.
    pub const fn unversioned(self) -> Reference {
        Reference {
            versioned: false,
            ..self
        }
    }

    /// The rows are owned through a parent (`accounts` via `account_id`).
    pub const fn owned_through(self, table: &'static str, column: &'static str) -> Reference {
        Reference {
            owner: RowOwner::Through { table, column },
            ..self
        }
    }

    /// What purging the record does to the rows.
    pub const fn on_purge(self, on_purge: OnPurge) -> Reference {
        Reference { on_purge, ..self }
    }

    /// Whether rows of this reference can point at a record of `ty`.
    pub fn points_at(&self, ty: &str) -> bool {
        match self.target {
            Target::Entity(t) => t == ty,
            Target::Subject { .. } => true,
        }
    }

    /// The type column, for references by subject.
    pub fn type_column(&self) -> Option<&'static str> {
        match self.target {
            Target::Entity(_) => None,
            Target::Subject { type_column } => Some(type_column),
        }
    }

    /// The API name of the column (`subject_id` → `subjectId`).
    pub fn field(&self) -> String {
        api_name(self.column)
    }
}

/// The API name of a column: `subject_id` → `subjectId`.
pub fn api_name(column: &str) -> String {
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

/// Every registered reference to `ty`. An unregistered type is an
/// internal error, never an empty list: rows pointing at it would be left
/// behind unnoticed (a process that never installed its modules).
pub fn references_to(ty: &str) -> Result<Vec<&'static Reference>> {
    let registry = super::registry();
    if registry.entity(ty).is_none() {
        return Err(Error::Internal(format!(
            "{ty} is not a registered entity (modules not installed?)"
        )));
    }
    Ok(registry.references_to(ty).collect())
}

/// `?` placeholders as the connection's backend writes them.
fn sql(conn: &Conn<'_>, text: &str) -> String {
    match conn {
        Conn::Sqlite(_) => text.to_owned(),
        Conn::Pg(_) => {
            let mut out = String::with_capacity(text.len() + 8);
            let mut n = 0;
            for ch in text.chars() {
                if ch == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(ch);
                }
            }
            out
        }
    }
}

#[derive(QueryableByName)]
struct LinkedRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    version: Option<i64>,
}

#[derive(QueryableByName)]
struct OwnerRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    owner_id: String,
}

/// The rows of `r` pointing at record `id` of type `ty`, sorted by id, with
/// the version of each (None for unversioned tables).
pub async fn linked(
    conn: &mut Conn<'_>,
    r: &Reference,
    ty: &str,
    id: &str,
) -> Result<Vec<(String, Option<i64>)>> {
    let version = if r.versioned {
        "version"
    } else {
        "CAST(NULL AS BIGINT)"
    };
    let mut text = format!(
        "SELECT id, {version} AS version FROM {} WHERE {} = ?",
        r.table, r.column
    );
    if let Some(t) = r.type_column() {
        text.push_str(&format!(" AND {t} = ?"));
    }
    text.push_str(" ORDER BY id");
    let text = sql(conn, &text);
    let typed = r.type_column().is_some();
    let rows: Vec<LinkedRow> = db_run!(conn, |c| {
        let q = diesel::sql_query(text.clone())
            .into_boxed()
            .bind::<Text, _>(id.to_owned());
        let q = if typed {
            q.bind::<Text, _>(ty.to_owned())
        } else {
            q
        };
        q.load(c).await
    })?;
    Ok(rows.into_iter().map(|r| (r.id, r.version)).collect())
}

/// Points row `row` of `r` at `to` (None clears it). A versioned row must
/// still be at `version.0` (CONFLICT otherwise) and moves to `version.1`.
pub async fn point(
    conn: &mut Conn<'_>,
    r: &Reference,
    row: &str,
    to: Option<&str>,
    version: Option<(i64, i64)>,
) -> Result<()> {
    let to = to.map(str::to_owned);
    let n = match (r.versioned, version) {
        (true, Some((expected, next))) => {
            let text = sql(
                conn,
                &format!(
                    "UPDATE {} SET {} = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?",
                    r.table, r.column
                ),
            );
            let now = ids::now();
            db_run!(conn, |c| diesel::sql_query(text.clone())
                .bind::<Nullable<Text>, _>(to.clone())
                .bind::<BigInt, _>(next)
                .bind::<Timestamp, _>(now)
                .bind::<Text, _>(row.to_owned())
                .bind::<BigInt, _>(expected)
                .execute(c)
                .await)?
        }
        (false, None) => {
            let text = sql(
                conn,
                &format!("UPDATE {} SET {} = ? WHERE id = ?", r.table, r.column),
            );
            db_run!(conn, |c| diesel::sql_query(text.clone())
                .bind::<Nullable<Text>, _>(to.clone())
                .bind::<Text, _>(row.to_owned())
                .execute(c)
                .await)?
        }
        _ => {
            return Err(Error::Internal(format!(
                "{}.{}: a version is given exactly for versioned rows",
                r.table, r.column
            )));
        }
    };
    if n == 0 {
        return Err(Error::Conflict(format!(
            "{} {row} changed meanwhile; retry",
            r.table
        )));
    }
    Ok(())
}

/// The owner of each of `rows` of `r`.
pub async fn owners(
    conn: &mut Conn<'_>,
    r: &Reference,
    rows: &[String],
) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for chunk in rows.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let text = match r.owner {
            RowOwner::Column(col) => format!(
                "SELECT id, {col} AS owner_id FROM {} WHERE id IN ({marks})",
                r.table
            ),
            RowOwner::Through { table, column } => format!(
                "SELECT t.id AS id, p.owner_id AS owner_id FROM {} t \
                 JOIN {table} p ON p.id = t.{column} WHERE t.id IN ({marks})",
                r.table
            ),
        };
        let text = sql(conn, &text);
        let found: Vec<OwnerRow> = db_run!(conn, |c| {
            let mut q = diesel::sql_query(text.clone()).into_boxed();
            for id in chunk {
                q = q.bind::<Text, _>(id.clone());
            }
            q.load(c).await
        })?;
        out.extend(found.into_iter().map(|o| (o.id, o.owner_id)));
    }
    Ok(out)
}

/// Records, for rows of `r` a merge, undo or purge changed on the caller's
/// behalf, the audit entry (with `reason`) and event of each: `(row, old
/// value, new value)` of the reference's field.
pub async fn record(
    conn: &mut Conn<'_>,
    by: &Principal,
    reason: &str,
    action: &'static str,
    r: &Reference,
    moves: &[(String, Option<&str>, Option<&str>)],
) -> Result<()> {
    if moves.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = moves.iter().map(|(id, _, _)| id.clone()).collect();
    let owners = owners(conn, r, &rows).await?;
    let field = r.field();
    let changes: Vec<Change> = moves
        .iter()
        .map(|(id, from, to)| Change {
            topic: r.topic,
            entity_type: r.from,
            entity_id: id.clone(),
            action,
            before: Some(json!({ &field: from })),
            after: Some(json!({ &field: to })),
            owner_id: owners.get(id).cloned(),
            team_id: None,
        })
        .collect();
    change::record_many_because(conn, &by.actor(), reason, &changes).await
}

/// Applies what every registered reference to `ty` does on purge
/// ([`OnPurge`]) to the rows pointing at record `id`, before the record
/// itself is deleted in the same transaction. Detached rows are recorded
/// with `reason`.
pub async fn purge_cascade(
    conn: &mut Conn<'_>,
    by: &Principal,
    reason: &str,
    ty: &str,
    id: &str,
) -> Result<()> {
    for r in references_to(ty)? {
        match r.on_purge {
            OnPurge::Keep => {}
            OnPurge::Delete => {
                let mut text = format!("DELETE FROM {} WHERE {} = ?", r.table, r.column);
                if let Some(t) = r.type_column() {
                    text.push_str(&format!(" AND {t} = ?"));
                }
                let text = sql(conn, &text);
                let typed = r.type_column().is_some();
                db_run!(conn, |c| {
                    let q = diesel::sql_query(text.clone())
                        .into_boxed()
                        .bind::<Text, _>(id.to_owned());
                    let q = if typed {
                        q.bind::<Text, _>(ty.to_owned())
                    } else {
                        q
                    };
                    q.execute(c).await
                })?;
            }
            OnPurge::Detach => {
                let rows = linked(conn, r, ty, id).await?;
                for (row, version) in &rows {
                    point(conn, r, row, None, version.map(|v| (v, v + 1))).await?;
                }
                let moves: Vec<(String, Option<&str>, Option<&str>)> = rows
                    .into_iter()
                    .map(|(row, _)| (row, Some(id), None))
                    .collect();
                record(conn, by, reason, "detached", r, &moves).await?;
            }
        }
    }
    Ok(())
}
