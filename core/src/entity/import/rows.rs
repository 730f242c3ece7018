//! One import run: rows validated in batches against existing records and
//! owners, then written through the kit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::access::{self, Principal, RowFilter};
use crate::app::App;
use crate::change::{self, Change};
use crate::custom;
use crate::db::{Conn, Tx};
use crate::entity::sql::{Bind, Sql};
use crate::entity::store::{insert_values, update_row};
use crate::entity::{Entity, WriteCtx, fields_of, id_of, list, row_from, text_of};
use crate::error::{Error, FieldError, Result};
use crate::identity::repo as users;
use crate::ids;
use crate::jobs::{Counters, RowError};
use crate::tabular::Row;

use super::columns::{Cells, Col, Columns};
use super::{CellErrors, DuplicateHandling, ImportOptions, Importable, RowCtx};

/// One validated row, ready to write.
pub(super) enum Prepared<R> {
    /// A new record, and whether the importer named its owner (an owner
    /// column or the `defaultOwnerId` option) rather than defaulting to
    /// itself ([`WriteCtx::owner_given`]).
    New(Box<R>, bool),
    Update(Box<R>, Box<R>),
    /// Folded into a record an earlier row of the same batch writes.
    Merged,
    Skip,
}

/// What one batch did.
pub(super) struct BatchResult<R> {
    pub(super) counters: Counters,
    pub(super) errors: Vec<RowError>,
    pub(super) writes: Vec<Prepared<R>>,
}

/// Problems with a row: (header, message).
type Problems = Vec<(String, String)>;

/// An import in progress.
pub(super) struct Run<'a, E: Importable> {
    pub(super) app: &'a App,
    pub(super) by: &'a Principal,
    pub(super) opts: &'a ImportOptions,
    pub(super) cols: Columns,
    pub(super) read_scope: RowFilter,
    pub(super) update_scope: Option<RowFilter>,
    pub(super) default_owner: Option<String>,
    /// Whether `default_owner` is the `defaultOwnerId` option (not the
    /// importer by default).
    pub(super) default_owner_given: bool,
    /// Owner references already checked: key -> user id or the problem.
    pub(super) owners: HashMap<String, std::result::Result<String, String>>,
    /// The entity's live custom field definitions.
    pub(super) defs: Arc<Vec<custom::Def>>,
    /// The entity's own state across rows.
    pub(super) session: E::Session,
    /// The columns of `Entity::blank`, the start of every new record.
    pub(super) blank: Map<String, Value>,
}

impl<E: Importable> Run<'_, E> {
    fn header(&self, c: Col, fallback: &str) -> String {
        self.cols.header(c).unwrap_or(fallback).to_owned()
    }

    /// The header an error on the API field `field` belongs to.
    fn column_of(&self, field: &str) -> String {
        self.cols
            .column_of::<E>(&self.defs, field)
            .unwrap_or(field)
            .to_owned()
    }

    async fn owner(
        &mut self,
        conn: &mut Conn<'_>,
        cells: &Cells<'_>,
    ) -> Result<Option<std::result::Result<String, (Col, String)>>> {
        let (key, field) = if let Some(id) = cells.col(Col::OwnerId) {
            (format!("id:{id}"), Col::OwnerId)
        } else if let Some(email) = cells.col(Col::OwnerEmail) {
            (format!("email:{}", email.to_lowercase()), Col::OwnerEmail)
        } else {
            return Ok(None);
        };
        if !self.owners.contains_key(&key) {
            // The same rule as an API write of `ownerId`: a user the
            // importer may see and assign to; any other user, existing or
            // not, is "no such active user".
            let id = match field {
                Col::OwnerId => Some(key[3..].to_owned()),
                _ => users::user_by_email(conn, &key[6..]).await?.map(|u| u.id),
            };
            let found = match id {
                None => Err("no such active user".to_owned()),
                Some(id) => {
                    match access::require_assignable_owner(self.app, self.by, E::DEF.type_name, &id)
                        .await
                    {
                        Ok(()) => Ok(id),
                        Err(Error::Validation(f)) => {
                            Err(f.first().map(|f| f.message.clone()).unwrap_or_default())
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            self.owners.insert(key.clone(), found);
        }
        Ok(Some(self.owners[&key].clone().map_err(|m| (field, m))))
    }

    /// The row's custom field cells as a patch; bad cells go to `errs`.
    fn custom_patch(&self, cells: &Cells<'_>, errs: &mut Problems) -> Option<Map<String, Value>> {
        let mut patch = Map::new();
        for (f, v) in &cells.values {
            if let Col::Custom(i) = f {
                let def = &self.defs[*i as usize];
                match custom::parse_cell(def, v) {
                    Ok(val) => {
                        patch.insert(def.key.clone(), val);
                    }
                    Err(m) => errs.push((self.header(*f, "custom"), m)),
                }
            }
        }
        (!patch.is_empty()).then_some(patch)
    }

    fn cell_errors(&self, errs: CellErrors) -> Problems {
        errs.into_iter()
            .map(|(api, m)| (self.column_of(api), m))
            .collect()
    }

    fn field_errors(&self, f: Vec<FieldError>) -> Problems {
        f.into_iter()
            .map(|e| match self.cols.column_of::<E>(&self.defs, &e.field) {
                Some(h) => (h.to_owned(), e.message),
                None => (e.field.clone(), format!("{}: {}", e.field, e.message)),
            })
            .collect()
    }

    fn ctx(&self, creating: bool) -> WriteCtx<'_> {
        WriteCtx {
            app: self.app,
            by: self.by,
            creating,
            owner_given: true,
        }
    }

    /// Validates a batch and decides what each row does. Nothing is written.
    pub(super) async fn prepare(
        &mut self,
        conn: &mut Conn<'_>,
        rows: &[Row],
    ) -> Result<BatchResult<E::Row>> {
        let mut out: BatchResult<E::Row> = BatchResult {
            counters: Counters::default(),
            errors: Vec::new(),
            writes: Vec::new(),
        };
        let dups = self.opts.duplicates;
        // Existing records the rows may match, in one lookup per key.
        let mut id_keys = Vec::new();
        let mut dup_keys = Vec::new();
        for row in rows {
            let cells = Cells::new::<E>(&self.cols, row);
            if let Some(id) = cells.col(Col::Id) {
                id_keys.push(id.to_owned());
            }
            if let Some(k) = E::key(&cells) {
                dup_keys.push(k);
            }
        }
        let mut existing: HashMap<String, E::Row> = HashMap::new();
        let mut updatable: HashSet<String> = HashSet::new();
        if dups != DuplicateHandling::Create || !id_keys.is_empty() {
            for r in find::<E>(conn, &self.read_scope, &id_keys, &dup_keys).await? {
                if let Some(k) = key_of::<E>(&r)? {
                    existing
                        .entry(format!("key:{k}"))
                        .or_insert_with(|| r.clone());
                }
                existing.insert(format!("id:{}", id_of::<E>(&r)?), r);
            }
            if let Some(scope) = &self.update_scope {
                for r in find::<E>(conn, scope, &id_keys, &dup_keys).await? {
                    updatable.insert(id_of::<E>(&r)?);
                }
            }
        }
        let label = E::DEF.label;
        // Keys created earlier in this batch, for duplicates within the file.
        let mut batch_keys: HashMap<String, usize> = HashMap::new();
        // Existing records already updated by a row of this batch.
        let mut batch_updates: HashMap<String, usize> = HashMap::new();
        for row in rows {
            out.counters.rows_done += 1;
            let cells = Cells::new::<E>(&self.cols, row);
            let mut errs: Problems = Vec::new();
            let owner = match self.owner(conn, &cells).await? {
                Some(Ok(o)) => Some(o),
                Some(Err((c, m))) => {
                    errs.push((self.header(c, "ownerId"), m));
                    None
                }
                None => None,
            };
            let id = cells.col(Col::Id);
            let key = E::key(&cells);
            let matched = match (id, &key) {
                (Some(id), _) => match existing.get(&format!("id:{id}")) {
                    Some(r) => Some(r.clone()),
                    None => {
                        errs.push((
                            self.header(Col::Id, "id"),
                            format!("no {label} {id} in your scope"),
                        ));
                        None
                    }
                },
                (None, Some(k)) if dups != DuplicateHandling::Create => {
                    existing.get(&format!("key:{k}")).cloned()
                }
                _ => None,
            };
            let in_batch = key
                .as_ref()
                .filter(|_| dups != DuplicateHandling::Create && id.is_none())
                .and_then(|k| batch_keys.get(k).copied());
            let creating = matched.is_none() && in_batch.is_none();
            let custom = self.custom_patch(&cells, &mut errs);
            let mut cell_errs = CellErrors::new();
            let ctx = RowCtx {
                creating,
                custom,
                defs: self.defs.clone(),
            };
            let input = E::fields(
                &mut self.session,
                conn,
                &cells,
                matched.as_ref(),
                ctx,
                &mut cell_errs,
            )
            .await?;
            errs.extend(self.cell_errors(cell_errs));
            let mut sets = input.set;
            if let (Some(o), Some(col)) = (owner, E::DEF.scope.owner_column()) {
                sets.push((col, Value::from(o)));
            }
            let prepared = if !errs.is_empty() {
                Err(errs)
            } else if let Some(before) = matched {
                let before_id = id_of::<E>(&before)?;
                if dups == DuplicateHandling::Skip && id.is_none() {
                    Ok(Prepared::Skip)
                } else if !updatable.contains(&before_id) {
                    Err(vec![(
                        self.header(Col::Id, "id"),
                        format!("you may not update the existing {label} {before_id}"),
                    )])
                } else {
                    // A row further up may already update this record.
                    let pending = batch_updates.get(&before_id).copied();
                    // Owner and references were checked above.
                    let mut after = match pending.map(|i| &out.writes[i]) {
                        Some(Prepared::Update(_, a)) => patched::<E>(a, sets)?,
                        _ => patched::<E>(&before, sets)?,
                    };
                    let r = E::apply(&self.ctx(false), conn, &mut after, input.fields).await;
                    match r {
                        Ok(()) => {
                            if pending.is_none() && E::snapshot(&after) == E::snapshot(&before) {
                                Ok(Prepared::Skip)
                            } else {
                                let after = patched::<E>(&after, vec![("updated_at", now())])?;
                                let p = Prepared::Update(Box::new(before), Box::new(after));
                                match pending {
                                    Some(i) => {
                                        out.writes[i] = p;
                                        Ok(Prepared::Merged)
                                    }
                                    None => {
                                        batch_updates.insert(before_id, out.writes.len());
                                        Ok(p)
                                    }
                                }
                            }
                        }
                        Err(Error::Validation(f)) => Err(self.field_errors(f)),
                        Err(e) => return Err(e),
                    }
                }
            } else if let Some(i) = in_batch {
                match dups {
                    DuplicateHandling::Skip => Ok(Prepared::Skip),
                    _ => {
                        // Update the record this file creates a few rows up.
                        let Prepared::New(prev, given) = &out.writes[i] else {
                            return Err(Error::Internal("batch keys point at new records".into()));
                        };
                        let given = *given
                            || sets
                                .iter()
                                .any(|(c, _)| E::DEF.scope.owner_column() == Some(*c));
                        let mut after = patched::<E>(prev, sets)?;
                        match E::apply(&self.ctx(false), conn, &mut after, input.fields).await {
                            Ok(()) => {
                                out.writes[i] = Prepared::New(Box::new(after), given);
                                Ok(Prepared::Merged)
                            }
                            Err(Error::Validation(f)) => Err(self.field_errors(f)),
                            Err(e) => return Err(e),
                        }
                    }
                }
            } else {
                let owned = E::DEF.scope.owner_column().is_some();
                let has_owner = sets
                    .iter()
                    .any(|(c, _)| E::DEF.scope.owner_column() == Some(*c));
                let default_owner = match (&self.default_owner, E::DEF.scope.owner_column()) {
                    (Some(o), Some(col)) if !has_owner => Some((col, Value::from(o.clone()))),
                    _ => None,
                };
                if owned && !has_owner && default_owner.is_none() {
                    Err(vec![(
                        self.header(Col::OwnerId, "ownerId"),
                        "an owner is required (add an ownerId or ownerEmail column, or set a default owner)"
                            .to_owned(),
                    )])
                } else {
                    sets.extend(default_owner);
                    let mut row = new_row::<E>(&self.blank, sets)?;
                    for r in E::REQUIRED {
                        if cells.get(r).is_none() {
                            errs.push((self.column_of(r), "is required".into()));
                        }
                    }
                    let r = E::apply(&self.ctx(true), conn, &mut row, input.fields).await;
                    match r {
                        Ok(()) if errs.is_empty() => {
                            if let Some(k) = &key {
                                batch_keys.insert(k.clone(), out.writes.len());
                            }
                            Ok(Prepared::New(
                                Box::new(row),
                                has_owner || self.default_owner_given,
                            ))
                        }
                        Ok(()) => Err(errs),
                        Err(Error::Validation(f)) => {
                            for e in self.field_errors(f) {
                                if !errs.contains(&e) {
                                    errs.push(e);
                                }
                            }
                            Err(errs)
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            match prepared {
                Ok(Prepared::Skip) => out.counters.skipped += 1,
                Ok(Prepared::Merged) => out.counters.updated += 1,
                Ok(p) => {
                    match &p {
                        Prepared::New(..) => out.counters.created += 1,
                        _ => out.counters.updated += 1,
                    }
                    out.writes.push(p);
                }
                Err(errs) => {
                    out.counters.failed += 1;
                    for (column, message) in errs {
                        out.errors.push(RowError {
                            line: row.line as i64,
                            column,
                            message,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Writes a prepared batch in the caller's transaction: updates, one
    /// multi-row insert of the new records, the entity's `after_write`,
    /// then the audit entries and events.
    pub(super) async fn write(&self, tx: &mut Tx, writes: Vec<Prepared<E::Row>>) -> Result<()> {
        let mut changes = Vec::with_capacity(writes.len());
        let mut contexts = Vec::with_capacity(writes.len());
        let mut new = Vec::new();
        for w in writes {
            match w {
                Prepared::New(r, given) => new.push((*r, given)),
                Prepared::Update(before, after) => {
                    let version = fields_of::<E>(&before)?
                        .get("version")
                        .and_then(Value::as_i64)
                        .unwrap_or_default();
                    update_row::<E>(&mut tx.conn(), &after, version).await?;
                    E::after_write(&self.ctx(false), tx, Some(&before), &after).await?;
                    let m = fields_of::<E>(&after)?;
                    let action = E::update_action(&before, &after);
                    changes.push(change_of::<E>(action, Some(&before), &after, &m));
                    contexts
                        .push(crate::entity::event_context_of::<E>(&mut tx.conn(), &after).await?);
                }
                Prepared::Skip | Prepared::Merged => {}
            }
        }
        if !new.is_empty() {
            for (r, _) in &mut new {
                E::before_insert(&self.ctx(true), &mut tx.conn(), r).await?;
            }
            let maps = new
                .iter()
                .map(|(r, _)| fields_of::<E>(r))
                .collect::<Result<Vec<_>>>()?;
            insert_values::<E>(&mut tx.conn(), &maps).await?;
            for ((r, _), m) in new.iter().zip(&maps) {
                E::after_write(&self.ctx(true), tx, None, r).await?;
                changes.push(change_of::<E>("created", None, r, m));
                contexts.push(crate::entity::event_context_of::<E>(&mut tx.conn(), r).await?);
            }
        }
        change::record_many_in_context(&mut tx.conn(), &self.by.actor(), &changes, &contexts)
            .await?;
        // Follow-up changes of new records (an assignment rule routing a
        // lead) come after the records' own events.
        for (mut r, given) in new {
            let w = WriteCtx {
                owner_given: given,
                ..self.ctx(true)
            };
            E::after_create(&w, tx, &mut r).await?;
        }
        Ok(())
    }
}

fn now() -> Value {
    serde_json::to_value(ids::now()).unwrap_or_default()
}

/// `row` with these columns set.
fn patched<E: Entity>(row: &E::Row, sets: Vec<(&'static str, Value)>) -> Result<E::Row> {
    if sets.is_empty() {
        return Ok(row.clone());
    }
    let mut m = fields_of::<E>(row)?;
    for (c, v) in sets {
        m.insert(c.into(), v);
    }
    row_from::<E>(m)
}

/// A new record before its cells apply: id, timestamps, version and the
/// columns `sets`.
fn new_row<E: Entity>(
    blank: &Map<String, Value>,
    sets: Vec<(&'static str, Value)>,
) -> Result<E::Row> {
    let mut m = blank.clone();
    m.extend(sets.into_iter().map(|(c, v)| (c.to_owned(), v)));
    m.insert("id".into(), ids::new_id(E::DEF.prefix).into());
    let now = now();
    m.insert("created_at".into(), now.clone());
    m.insert("updated_at".into(), now);
    m.insert("version".into(), 1.into());
    row_from::<E>(m)
}

/// The audit entry and event of a write (`m`: `after`'s columns).
fn change_of<E: Entity>(
    action: &'static str,
    before: Option<&E::Row>,
    after: &E::Row,
    m: &Map<String, Value>,
) -> Change {
    Change {
        topic: E::DEF.topic,
        entity_type: E::DEF.type_name,
        entity_id: text_of(m, "id"),
        action,
        before: before.map(E::snapshot),
        after: Some(E::snapshot(after)),
        owner_id: E::DEF.scope.owner_column().map(|col| text_of(m, col)),
        team_id: None,
    }
}

/// The duplicate key a stored record holds.
fn key_of<E: Importable>(row: &E::Row) -> Result<Option<String>> {
    let Some(k) = E::KEY else {
        return Ok(None);
    };
    let v = text_of(&fields_of::<E>(row)?, k.column);
    Ok((!v.is_empty()).then(|| if k.lower { v.to_lowercase() } else { v }))
}

/// Live records in scope whose id is one of `ids` or whose duplicate key
/// is one of `keys`, oldest first. Two indexed lookups, not one query with
/// OR (which would scan the table).
async fn find<E: Importable>(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    ids: &[String],
    keys: &[String],
) -> Result<Vec<E::Row>> {
    let def = &E::DEF;
    let mut out = if ids.is_empty() {
        Vec::new()
    } else {
        list::by_values::<E>(conn, scope, "id", ids, false).await?
    };
    let Some(k) = E::KEY.filter(|_| !keys.is_empty()) else {
        return Ok(out);
    };
    let t = def.table;
    let cols: Vec<&str> = def.columns.iter().map(|c| c.name).collect();
    let target = if k.lower {
        format!("lower({t}.{})", k.column)
    } else {
        format!("{t}.{}", k.column)
    };
    let mut s = Sql::new(format!(
        "SELECT {} FROM {t} WHERE {target} IN ",
        cols.join(", ")
    ));
    s.bind_list(keys.iter().map(|v| Bind::from(v.as_str())));
    let sc = list::scope_sql(def, scope);
    if !sc.is_empty() {
        s.push(" AND ").append(&sc);
    }
    if let Some(sd) = def.soft_delete {
        s.push(&format!(" AND {t}.{} IS NULL", sd.at));
    }
    s.push(&format!(" ORDER BY {t}.created_at, {t}.id"));
    let mut ids_seen: HashSet<String> = out.iter().map(id_of::<E>).collect::<Result<_>>()?;
    for r in s.load::<E::Row>(conn).await? {
        if ids_seen.insert(id_of::<E>(&r)?) {
            out.push(r);
        }
    }
    Ok(out)
}
