//! Fetch, create, update and the recycle bin of a kit entity. Every write
//! is one transaction: the module's `apply` (validation), the row, the
//! module's `after_write`, then the audit entry and event through
//! [`change::record`], then commit.

use serde_json::Value;

use crate::access::{Principal, RowFilter, require_assignable_owner};
use crate::app::App;
use crate::change::{self, Change};
use crate::db::{Conn, Tx};
use crate::error::{Error, Result};
use crate::ids;

use super::list::by_values;
use super::sql::{Bind, Sql};
use super::{Entity, Scope, WriteCtx, bind_of, fields_of, row_from, text_of};

/// One live record in scope (None outside scope, binned or missing).
pub async fn get<E: Entity>(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    id: &str,
) -> Result<Option<E::Row>> {
    Ok(by_values::<E>(conn, scope, "id", &[id.to_owned()], false)
        .await?
        .into_iter()
        .next())
}

/// One binned record in scope (for restore and purge).
pub async fn get_deleted<E: Entity>(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    id: &str,
) -> Result<Option<E::Row>> {
    Ok(by_values::<E>(conn, scope, "id", &[id.to_owned()], true)
        .await?
        .into_iter()
        .next())
}

/// [`get`], or NOT_FOUND naming the record.
pub async fn fetch<E: Entity>(conn: &mut Conn<'_>, scope: &RowFilter, id: &str) -> Result<E::Row> {
    get::<E>(conn, scope, id)
        .await?
        .ok_or_else(|| E::DEF.not_found(id))
}

/// Inserts `row` as it is.
pub async fn insert_row<E: Entity>(conn: &mut Conn<'_>, row: &E::Row) -> Result<()> {
    insert_rows::<E>(conn, std::slice::from_ref(row)).await
}

/// Inserts `rows` as they are, many rows per statement (seeding and bulk
/// loads: no events, no audit entries).
pub async fn insert_rows<E: Entity>(conn: &mut Conn<'_>, rows: &[E::Row]) -> Result<()> {
    let maps = rows
        .iter()
        .map(fields_of::<E>)
        .collect::<Result<Vec<_>>>()?;
    insert_values::<E>(conn, &maps).await
}

/// Most parameters one statement binds (SQLite's limit is 32,766).
const MAX_BINDS: usize = 30_000;

/// Inserts rows given by their column values (imports, seeding), many
/// rows per statement: no events, no audit entries.
pub async fn insert_values<E: Entity>(
    conn: &mut Conn<'_>,
    rows: &[serde_json::Map<String, Value>],
) -> Result<()> {
    let def = &E::DEF;
    let names: Vec<&str> = def.columns.iter().map(|c| c.name).collect();
    let per = (MAX_BINDS / names.len().max(1)).max(1);
    for chunk in rows.chunks(per) {
        let mut s = Sql::new(format!(
            "INSERT INTO {} ({}) VALUES ",
            def.table,
            names.join(", ")
        ));
        for (i, row) in chunk.iter().enumerate() {
            if i > 0 {
                s.push(", ");
            }
            let binds = def
                .columns
                .iter()
                .map(|c| bind_value(c, row.get(c.name)))
                .collect::<Result<Vec<Bind>>>()?;
            s.bind_list(binds);
        }
        s.execute(conn).await?;
    }
    Ok(())
}

/// The value of a column as bound: plain values directly, anything else
/// (timestamps) through the kit's conversion.
fn bind_value(c: &super::Column, v: Option<&Value>) -> Result<Bind> {
    use super::Kind;
    Ok(match (c.kind, v.unwrap_or(&Value::Null)) {
        (Kind::Text, Value::String(s)) => Bind::Text(Some(s.clone())),
        (Kind::Text, Value::Null) => Bind::Text(None),
        (Kind::Int, Value::Number(n)) if n.is_i64() => Bind::Int(n.as_i64()),
        (Kind::Int, Value::Null) => Bind::Int(None),
        (Kind::Bool, Value::Bool(b)) => Bind::Bool(Some(*b)),
        (Kind::Bool, Value::Null) => Bind::Bool(None),
        (Kind::Float, Value::Null) => Bind::Float(None),
        (Kind::Time, Value::Null) => Bind::Time(None),
        _ => bind_of(c, v)?,
    })
}

/// Writes `row` if the stored version is still `expected` (CONFLICT if
/// not) and returns it with its new version.
pub async fn update_row<E: Entity>(
    conn: &mut Conn<'_>,
    row: &E::Row,
    expected: i64,
) -> Result<E::Row> {
    let def = &E::DEF;
    let mut m = fields_of::<E>(row)?;
    let id = text_of(&m, "id");
    m.insert("version".into(), Value::from(expected + 1));
    let mut s = Sql::new(format!("UPDATE {} SET ", def.table));
    let mut first = true;
    for c in def
        .columns
        .iter()
        .filter(|c| !matches!(c.name, "id" | "created_at"))
    {
        if !first {
            s.push(", ");
        }
        first = false;
        s.push(&format!("{} = ", c.name))
            .bind(bind_of(c, m.get(c.name))?);
    }
    s.push(" WHERE id = ")
        .bind(id.as_str())
        .push(" AND version = ")
        .bind(expected);
    if s.execute(conn).await? == 0 {
        return Err(def.stale(&id, expected));
    }
    row_from::<E>(m)
}

/// The owner of a record, for events' row scope: its owner column (None
/// while it waits unowned in a queue), or its parent's owner for a record
/// owned through a parent (looked up in `conn`).
pub async fn owner_of<E: Entity>(conn: &mut Conn<'_>, row: &E::Row) -> Result<Option<String>> {
    #[derive(diesel::QueryableByName)]
    struct Owner {
        #[diesel(sql_type = diesel::sql_types::Text)]
        owner: String,
    }
    Ok(match E::DEF.scope.ownership() {
        Scope::Owner(col) | Scope::OwnerOrQueue { owner: col, .. } => {
            Some(text_of(&fields_of::<E>(row)?, col)).filter(|o| !o.is_empty())
        }
        Scope::Through { fk, table, owner } => {
            let parent = text_of(&fields_of::<E>(row)?, fk);
            if parent.is_empty() {
                return Ok(None);
            }
            let mut s = Sql::new(format!("SELECT {owner} AS owner FROM {table} WHERE id = "));
            s.bind(parent);
            s.load::<Owner>(conn)
                .await?
                .into_iter()
                .next()
                .map(|o| o.owner)
        }
        _ => None,
    })
}

/// The team of an unowned queued record, for events' row scope (the
/// owner's team otherwise, which the change record looks up).
pub fn queue_of<E: Entity>(row: &E::Row) -> Result<Option<String>> {
    Ok(match E::DEF.scope {
        Scope::OwnerOrQueue { owner, team } => {
            let m = fields_of::<E>(row)?;
            Some(text_of(&m, team)).filter(|t| !t.is_empty() && text_of(&m, owner).is_empty())
        }
        _ => None,
    })
}

/// The audit entry and event of a change to `E` (in `tx`).
pub async fn record<E: Entity>(
    tx: &mut Tx,
    by: &Principal,
    before: Option<&E::Row>,
    after: Option<&E::Row>,
    action: &'static str,
) -> Result<()> {
    let some = after
        .or(before)
        .ok_or_else(|| Error::Internal("empty change".into()))?;
    let owner_id = owner_of::<E>(&mut tx.conn(), some).await?;
    let context = super::event_context_of::<E>(&mut tx.conn(), some).await?;
    change::record_in_context(
        &mut tx.conn(),
        &by.actor(),
        context,
        Change {
            topic: E::DEF.topic,
            entity_type: E::DEF.type_name,
            entity_id: super::id_of::<E>(some)?,
            action,
            before: before.map(E::snapshot),
            after: after.map(E::snapshot),
            owner_id,
            team_id: queue_of::<E>(some)?,
        },
    )
    .await?;
    Ok(())
}

/// Creates a record from `fields`, owned by the requested owner or the
/// caller (an API key must name one).
pub async fn create<E: Entity>(app: &App, by: &Principal, fields: E::Fields) -> Result<E::Row> {
    // The owner checks read on a connection of their own, before the
    // transaction holds one.
    let given = E::requested_owner(&fields).is_some();
    let row = new_row::<E>(app, by, &fields).await?;
    let mut tx = app.db.begin().await?;
    let row = insert_new::<E>(&mut tx, app, by, row, fields, given).await?;
    app.commit(tx).await?;
    Ok(row)
}

/// [`create`] inside the caller's transaction `tx` (a workflow writing
/// several records at once, all or none); the caller commits.
pub async fn create_in<E: Entity>(
    tx: &mut Tx,
    app: &App,
    by: &Principal,
    fields: E::Fields,
) -> Result<E::Row> {
    let given = E::requested_owner(&fields).is_some();
    let row = new_row::<E>(app, by, &fields).await?;
    insert_new::<E>(tx, app, by, row, fields, given).await
}

/// A new record before its fields apply: id, timestamps, version and the
/// owner (the requested one, which the caller must be allowed to give it,
/// or the caller).
async fn new_row<E: Entity>(app: &App, by: &Principal, fields: &E::Fields) -> Result<E::Row> {
    let def = &E::DEF;
    let requested = E::requested_owner(fields).map(str::to_owned);
    if let Some(o) = &requested {
        require_assignable_owner(app, by, def.type_name, o).await?;
    }
    let now = ids::now();
    let mut m = fields_of::<E>(&E::blank())?;
    m.insert("id".into(), ids::new_id(def.prefix).into());
    m.insert(
        "created_at".into(),
        serde_json::to_value(now).unwrap_or_default(),
    );
    m.insert(
        "updated_at".into(),
        serde_json::to_value(now).unwrap_or_default(),
    );
    m.insert("version".into(), 1.into());
    let queued = matches!(def.scope, Scope::OwnerOrQueue { .. });
    if let Some(col) = def.scope.owner_column() {
        let owner = requested.or_else(|| by.user_id().map(str::to_owned));
        // A record that may wait in a queue starts unowned when nobody
        // could own it; the entity's `apply` then needs its queue.
        let Some(owner) = owner.or_else(|| queued.then(String::new)) else {
            return Err(Error::invalid(
                "ownerId",
                format!(
                    "is required when an API key creates {} {}",
                    article(def.label),
                    def.label
                ),
            ));
        };
        let owner = if owner.is_empty() {
            Value::Null
        } else {
            owner.into()
        };
        m.insert(col.into(), owner);
    }
    row_from::<E>(m)
}

/// Applies `fields` to a [`new_row`] and stores it, with its audit entry
/// and event, in `tx`; then the entity's follow-up (`after_create`).
async fn insert_new<E: Entity>(
    tx: &mut Tx,
    app: &App,
    by: &Principal,
    mut row: E::Row,
    fields: E::Fields,
    owner_given: bool,
) -> Result<E::Row> {
    let w = WriteCtx {
        app,
        by,
        creating: true,
        owner_given,
    };
    E::apply(&w, &mut tx.conn(), &mut row, fields).await?;
    E::before_insert(&w, &mut tx.conn(), &mut row).await?;
    insert_row::<E>(&mut tx.conn(), &row).await?;
    E::after_write(&w, tx, None, &row).await?;
    record::<E>(tx, by, None, Some(&row), "created").await?;
    E::after_create(&w, tx, &mut row).await?;
    Ok(row)
}

fn article(label: &str) -> &'static str {
    if label.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Updates a record in `scope` if `version` is current.
pub async fn update<E: Entity>(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    version: i64,
    fields: E::Fields,
) -> Result<E::Row> {
    ids::check(id, E::DEF.prefix, "id")?;
    if let Some(o) = E::requested_owner(&fields) {
        require_assignable_owner(app, by, E::DEF.type_name, o).await?;
    }
    let mut tx = app.db.begin().await?;
    let row = apply_update::<E>(&mut tx, app, by, scope, id, version, fields).await?;
    app.commit(tx).await?;
    Ok(row)
}

/// [`update`] inside the caller's transaction `tx`; the caller commits.
pub async fn update_in<E: Entity>(
    tx: &mut Tx,
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    version: i64,
    fields: E::Fields,
) -> Result<E::Row> {
    ids::check(id, E::DEF.prefix, "id")?;
    if let Some(o) = E::requested_owner(&fields) {
        require_assignable_owner(app, by, E::DEF.type_name, o).await?;
    }
    apply_update::<E>(tx, app, by, scope, id, version, fields).await
}

/// The checked update of [`update`] in `tx`.
async fn apply_update<E: Entity>(
    tx: &mut Tx,
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    version: i64,
    fields: E::Fields,
) -> Result<E::Row> {
    let def = &E::DEF;
    let w = WriteCtx {
        app,
        by,
        creating: false,
        owner_given: true,
    };
    let before = fetch::<E>(&mut tx.conn(), scope, id).await?;
    let mut m = fields_of::<E>(&before)?;
    if m.get("version").and_then(Value::as_i64) != Some(version) {
        return Err(def.stale(id, version));
    }
    let mut after = before.clone();
    E::apply(&w, &mut tx.conn(), &mut after, fields).await?;
    m = fields_of::<E>(&after)?;
    m.insert(
        "updated_at".into(),
        serde_json::to_value(ids::now()).unwrap_or_default(),
    );
    let after = update_row::<E>(&mut tx.conn(), &row_from::<E>(m)?, version).await?;
    E::after_write(&w, tx, Some(&before), &after).await?;
    let action = E::update_action(&before, &after);
    record::<E>(tx, by, Some(&before), Some(&after), action).await?;
    Ok(after)
}

fn bin_of<E: Entity>() -> Result<super::SoftDelete> {
    E::DEF
        .soft_delete
        .ok_or_else(|| Error::Internal(format!("{} has no recycle bin", E::DEF.type_name)))
}

/// Moves a record to the recycle bin (version-checked).
pub async fn delete<E: Entity>(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    version: i64,
) -> Result<E::Row> {
    let def = &E::DEF;
    let sd = bin_of::<E>()?;
    ids::check(id, def.prefix, "id")?;
    let mut tx = app.db.begin().await?;
    let before = fetch::<E>(&mut tx.conn(), scope, id).await?;
    let mut m = fields_of::<E>(&before)?;
    let now = serde_json::to_value(ids::now()).unwrap_or_default();
    m.insert(sd.at.into(), now.clone());
    m.insert(sd.by.into(), by.actor().id.into());
    m.insert("updated_at".into(), now);
    let after = update_row::<E>(&mut tx.conn(), &row_from::<E>(m)?, version).await?;
    record::<E>(&mut tx, by, Some(&before), Some(&after), "deleted").await?;
    app.commit(tx).await?;
    Ok(after)
}

/// Brings a record back from the recycle bin.
pub async fn restore<E: Entity>(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
) -> Result<E::Row> {
    let def = &E::DEF;
    let sd = bin_of::<E>()?;
    ids::check(id, def.prefix, "id")?;
    let mut tx = app.db.begin().await?;
    let before = get_deleted::<E>(&mut tx.conn(), scope, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("deleted {} {id}", def.label)))?;
    let mut m = fields_of::<E>(&before)?;
    let version = m.get("version").and_then(Value::as_i64).unwrap_or_default();
    m.insert(sd.at.into(), Value::Null);
    m.insert(sd.by.into(), Value::Null);
    m.insert(
        "updated_at".into(),
        serde_json::to_value(ids::now()).unwrap_or_default(),
    );
    let after = update_row::<E>(&mut tx.conn(), &row_from::<E>(m)?, version).await?;
    record::<E>(&mut tx, by, Some(&before), Some(&after), "restored").await?;
    app.commit(tx).await?;
    Ok(after)
}

/// Deletes a binned record for good, after the rows pointing at it (the
/// registered references) and the module's `before_purge` are dealt with.
pub async fn purge<E: Entity>(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
) -> Result<String> {
    let def = &E::DEF;
    ids::check(id, def.prefix, "id")?;
    let mut tx = app.db.begin().await?;
    let before = get_deleted::<E>(&mut tx.conn(), scope, id)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "deleted {} {id} (only recycled {}s can be purged)",
                def.label, def.label
            ))
        })?;
    erase::<E>(app, by, tx, before).await?;
    Ok(id.to_owned())
}

/// Deletes a record of a type without a recycle bin (configuration: forms,
/// rules) for good if `version` is current (CONFLICT otherwise), in one
/// transaction with the same cascade, hook, audit entry and event as a
/// purge. NOT_FOUND outside `scope`.
pub async fn remove<E: Entity>(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    version: i64,
) -> Result<String> {
    let def = &E::DEF;
    if def.soft_delete.is_some() {
        return Err(Error::Internal(format!(
            "{} has a recycle bin: delete, then purge",
            def.type_name
        )));
    }
    ids::check(id, def.prefix, "id")?;
    let mut tx = app.db.begin().await?;
    let before = fetch::<E>(&mut tx.conn(), scope, id).await?;
    if version_of::<E>(&before)? != version {
        return Err(def.stale(id, version));
    }
    erase::<E>(app, by, tx, before).await?;
    Ok(id.to_owned())
}

fn version_of<E: Entity>(row: &E::Row) -> Result<i64> {
    super::fields_of::<E>(row)?
        .get("version")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| Error::Internal(format!("{} row without a version", E::DEF.type_name)))
}

/// The end of a purge or a removal: what points at the record, the
/// module's hook, the row, the audit entry and event, the commit.
async fn erase<E: Entity>(app: &App, by: &Principal, mut tx: Tx, before: E::Row) -> Result<()> {
    let def = &E::DEF;
    let id = super::id_of::<E>(&before)?;
    let id = id.as_str();
    // Rows pointing at it (every module's registered references) are
    // detached or deleted first, each detached row recorded with the purge
    // as its reason; then the module's own hook.
    crate::module::references::purge_cascade(
        &mut tx.conn(),
        by,
        &format!("purge of {} {id}", def.label),
        def.type_name,
        id,
    )
    .await?;
    E::before_purge(app, by, &mut tx, &before).await?;
    let mut s = Sql::new(format!("DELETE FROM {} WHERE id = ", def.table));
    s.bind(id);
    s.execute(&mut tx.conn()).await?;
    record::<E>(&mut tx, by, Some(&before), None, "purged").await?;
    app.commit(tx).await
}

/// Most records one assign call hands over.
pub const MAX_ASSIGN: usize = 500;

/// Gives records to `owner`, in one transaction: all or none. Records
/// outside the caller's `scope` (update) are NOT_FOUND. Handing records over
/// to any active user (another team's, too) is what assigning is for;
/// creating in or moving to a book the caller cannot see is not (see
/// `require_assignable_owner` on create and update).
pub async fn assign<E: Entity>(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    ids_in: &[String],
    owner: &str,
) -> Result<Vec<E::Row>> {
    let def = &E::DEF;
    let Some(col) = def.scope.owner_column() else {
        return Err(Error::Internal(format!("{} has no owner", def.type_name)));
    };
    if ids_in.is_empty() || ids_in.len() > MAX_ASSIGN {
        return Err(Error::invalid(
            "ids",
            format!("give 1 to {MAX_ASSIGN} {} ids", def.label),
        ));
    }
    let mut tx = app.db.begin().await?;
    let mut rows = Vec::new();
    for id in ids_in {
        ids::check(id, def.prefix, "ids")?;
        rows.push(fetch::<E>(&mut tx.conn(), scope, id).await?);
    }
    crate::identity::repo::check_active_user(&mut tx.conn(), owner, "ownerId").await?;
    let mut out = Vec::new();
    for before in rows {
        let mut m = fields_of::<E>(&before)?;
        let version = m.get("version").and_then(Value::as_i64).unwrap_or_default();
        m.insert(col.into(), owner.into());
        m.insert(
            "updated_at".into(),
            serde_json::to_value(ids::now()).unwrap_or_default(),
        );
        let after = update_row::<E>(&mut tx.conn(), &row_from::<E>(m)?, version).await?;
        record::<E>(&mut tx, by, Some(&before), Some(&after), "assigned").await?;
        out.push(after);
    }
    app.commit(tx).await?;
    Ok(out)
}
