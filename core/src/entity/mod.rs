//! The entity kit: a module declares an entity once ([`Def`] and the
//! [`Entity`] trait) and core gives it, through the access layer:
//!
//! - lists with typed conditions, keyword search, custom field filters,
//!   keyset ordering and `totalCount` ([`list`]);
//! - fetch by id within the caller's row scope ([`store::get`]);
//! - create and update with `version` CONFLICT, VALIDATION from the
//!   module's own rules, audit entry and event ([`store::create`],
//!   [`store::update`]);
//! - the recycle bin: soft delete, restore, purge ([`store::delete`],
//!   [`store::restore`], [`store::purge`]).
//!
//! Statements are built at run time from the declaration ([`sql::Sql`]) and
//! rows are read by column name, so one generic function serves every entity
//! without a per-table expansion of diesel's query builder. Domain rules stay
//! in the module as the trait's hooks (`apply`, `after_write`,
//! `before_purge`).

pub mod aggregate;
pub mod export;
pub mod import;
pub mod list;
pub mod pages;
pub mod resolve;
pub mod sql;
pub mod store;
pub mod subject;

use std::future::Future;

use chrono::NaiveDateTime;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::access::Principal;
use crate::app::App;
use crate::db::{Conn, Tx};
use crate::error::{Error, Result};

pub use list::{Cond, ListQuery, list};
pub use subject::SubjectType;

/// The SQL type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text (also ids, enums stored as text, JSON).
    Text,
    /// 64-bit integer (money in minor units, counts, versions).
    Int,
    /// Floating point.
    Float,
    /// Boolean.
    Bool,
    /// Timestamp in UTC.
    Time,
}

/// Which conditions a column accepts in lists (a bit set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ops(u8);

impl Ops {
    /// No condition.
    pub const NONE: Ops = Ops(0);
    /// Equal to a value.
    pub const EQ: Ops = Ops(1);
    /// One of several values.
    pub const IN: Ops = Ops(2);
    /// From (inclusive) and/or to (exclusive).
    pub const RANGE: Ops = Ops(4);
    /// Starts with (case-sensitive, can use an index).
    pub const PREFIX: Ops = Ops(8);
    /// Contains (case-insensitive).
    pub const CONTAINS: Ops = Ops(16);
    /// The column holds a JSON list of strings (tags, ids); one is exactly
    /// the value.
    pub const HAS: Ops = Ops(32);

    /// Both sets.
    pub const fn and(self, other: Ops) -> Ops {
        Ops(self.0 | other.0)
    }

    /// True when every op of `other` is in `self`.
    pub const fn has(self, other: Ops) -> bool {
        self.0 & other.0 == other.0
    }
}

/// One column of an entity's table.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// SQL column name (also the row struct's field name).
    pub name: &'static str,
    /// GraphQL field name ("" when the column is not a field of its own).
    pub api: &'static str,
    /// SQL type.
    pub kind: Kind,
    /// May be NULL.
    pub nullable: bool,
    /// Conditions lists accept on it.
    pub ops: Ops,
    /// Lists may be ordered by it (keyset; the column must not be NULL).
    pub sort: bool,
    /// The keyword search looks in it (case-insensitive contains).
    pub search: bool,
}

impl Column {
    /// A NOT NULL column that is not a field of its own.
    pub const fn new(name: &'static str, kind: Kind) -> Column {
        Column {
            name,
            api: "",
            kind,
            nullable: false,
            ops: Ops::NONE,
            sort: false,
            search: false,
        }
    }

    /// Text column `name` exposed as `api`.
    pub const fn text(name: &'static str, api: &'static str) -> Column {
        Column::new(name, Kind::Text).api(api)
    }

    /// Timestamp column `name` exposed as `api`.
    pub const fn time(name: &'static str, api: &'static str) -> Column {
        Column::new(name, Kind::Time).api(api)
    }

    /// Integer column `name` exposed as `api`.
    pub const fn int(name: &'static str, api: &'static str) -> Column {
        Column::new(name, Kind::Int).api(api)
    }

    /// Names the GraphQL field.
    pub const fn api(mut self, api: &'static str) -> Column {
        self.api = api;
        self
    }

    /// May be NULL.
    pub const fn nullable(mut self) -> Column {
        self.nullable = true;
        self
    }

    /// Accepts these list conditions.
    pub const fn filter(mut self, ops: Ops) -> Column {
        self.ops = self.ops.and(ops);
        self
    }

    /// Lists may be ordered by it.
    pub const fn sort(mut self) -> Column {
        self.sort = true;
        self
    }

    /// The keyword search looks in it.
    pub const fn search(mut self) -> Column {
        self.search = true;
        self
    }
}

/// How row scope (own / team / all) reaches a record.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    /// A user id column: `own` is the caller's rows, `team` rows owned by
    /// members of the caller's teams.
    Owner(&'static str),
    /// Owned through a parent: the record is in scope when its parent is.
    Through {
        /// The foreign key column of this table.
        fk: &'static str,
        /// The parent table.
        table: &'static str,
        /// The parent's owner column.
        owner: &'static str,
    },
    /// Everyone with read on the type sees every row.
    Shared,
    /// An owner column, or, while it is NULL, a team's queue: `own` is
    /// the caller's rows plus the unowned rows queued for the caller's
    /// team, `team` the rows owned by members of the caller's teams plus
    /// the unowned rows queued for those teams.
    OwnerOrQueue {
        /// The owner column (a user id, NULL while queued).
        owner: &'static str,
        /// The team column (the queue an unowned row waits in).
        team: &'static str,
    },
    /// Owned as `owner` says, and also worked by a team and a user: the
    /// policy scope `group` adds the rows whose `group` column is one of
    /// the caller's teams, `assigned` the rows whose `assignee` column is
    /// the caller (declare the type's ownership `with_group()` /
    /// `with_assignee()` so policies may name those scopes).
    Routed {
        /// How the rows are owned (`Owner` or `Through`).
        owner: &'static Scope,
        /// The column naming the team that works the row (nullable).
        group: &'static str,
        /// The column naming the user the row is assigned to (nullable).
        assignee: &'static str,
    },
}

impl Scope {
    /// The ownership part (the scope itself unless it is `Routed`).
    pub const fn ownership(&self) -> &Scope {
        match self {
            Scope::Routed { owner, .. } => owner,
            other => other,
        }
    }

    /// The owner column of rows owned by a user column of their own.
    pub const fn owner_column(&self) -> Option<&'static str> {
        match self.ownership() {
            Scope::Owner(c) | Scope::OwnerOrQueue { owner: c, .. } => Some(c),
            _ => None,
        }
    }
}

/// Soft-delete columns (the recycle bin).
#[derive(Clone, Copy, Debug)]
pub struct SoftDelete {
    /// When (NULL: live).
    pub at: &'static str,
    /// By whom.
    pub by: &'static str,
}

/// The recycle bin columns every kit entity uses by default.
pub const DELETED: Option<SoftDelete> = Some(SoftDelete {
    at: "deleted_at",
    by: "deleted_by",
});

/// An entity's declaration.
#[derive(Clone, Copy, Debug)]
pub struct Def {
    /// GraphQL type and policy resource (`Account`).
    pub type_name: &'static str,
    /// Id prefix (`acc`), used by `node(id)` routing and id checks.
    pub prefix: &'static str,
    /// Lower-case name in messages (`account`).
    pub label: &'static str,
    /// Table.
    pub table: &'static str,
    /// Event topic.
    pub topic: &'static str,
    /// Every column of the table, in any order; the row type reads them by
    /// name. Must include `id`, `version`, `created_at`, `updated_at`.
    pub columns: &'static [Column],
    /// How row scope applies.
    pub scope: Scope,
    /// Recycle bin columns (None: deletes are purges).
    pub soft_delete: Option<SoftDelete>,
    /// Whether records carry custom field values (a `custom` JSON column).
    pub custom_fields: bool,
}

impl Def {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Result<&'static Column> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::Internal(format!("{} has no column {name}", self.type_name)))
    }

    /// Problems with the declaration (empty when it is sound): missing
    /// bookkeeping columns, nullable sort columns, unknown scope columns.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for needed in ["id", "version", "created_at", "updated_at"] {
            if !self.columns.iter().any(|c| c.name == needed) {
                out.push(format!("{}: column {needed} is missing", self.type_name));
            }
        }
        if let Some(sd) = self.soft_delete {
            for c in [sd.at, sd.by] {
                if !self.columns.iter().any(|k| k.name == c && k.nullable) {
                    out.push(format!(
                        "{}: soft-delete column {c} is missing or not nullable",
                        self.type_name
                    ));
                }
            }
        }
        if self.custom_fields && !self.columns.iter().any(|c| c.name == "custom") {
            out.push(format!(
                "{}: custom fields need a custom column",
                self.type_name
            ));
        }
        for c in self.columns {
            if c.sort && c.nullable {
                out.push(format!(
                    "{}: sort column {} may be NULL",
                    self.type_name, c.name
                ));
            }
        }
        let mut scope_columns = Vec::new();
        match self.scope.ownership() {
            Scope::Owner(o) | Scope::Through { fk: o, .. } => scope_columns.push(*o),
            Scope::OwnerOrQueue { owner, team } => scope_columns.extend([*owner, *team]),
            _ => {}
        }
        if let Scope::Routed {
            owner,
            group,
            assignee,
        } = self.scope
        {
            scope_columns.extend([group, assignee]);
            if matches!(owner, Scope::Routed { .. }) {
                out.push(format!("{}: a routed scope nests another", self.type_name));
            }
        }
        for o in scope_columns {
            if !self.columns.iter().any(|c| c.name == o) {
                out.push(format!("{}: scope column {o} is missing", self.type_name));
            }
        }
        out
    }

    /// CONFLICT for a stale `version`.
    pub fn stale(&self, id: &str, version: i64) -> Error {
        Error::stale(self.label, id, version)
    }

    /// NOT_FOUND for a record outside the caller's scope or missing.
    pub fn not_found(&self, id: &str) -> Error {
        Error::NotFound(format!("{} {id}", self.label))
    }
}

/// What a write hook may use.
pub struct WriteCtx<'a> {
    /// The platform.
    pub app: &'a App,
    /// Who writes.
    pub by: &'a Principal,
    /// True for a new record (defaults and required fields apply).
    pub creating: bool,
    /// For a new record: whether the writer named its owner (an API
    /// `ownerId`, an import's owner column or `defaultOwnerId`), rather than
    /// the kit defaulting it to the writer or leaving it queued. Always
    /// true for updates.
    pub owner_given: bool,
}

/// An entity declared to the kit. Implemented on a marker type by the
/// module; every method but [`Entity::snapshot`] and the write hooks has a
/// default.
pub trait Entity: Send + Sync + 'static {
    /// The declaration.
    const DEF: Def;
    /// The row as stored: serde field names are the column names, and it
    /// reads by column name on both backends.
    type Row: Clone
        + Send
        + Sync
        + Serialize
        + DeserializeOwned
        + diesel::QueryableByName<diesel::pg::Pg>
        + diesel::QueryableByName<diesel::sqlite::Sqlite>
        + 'static;
    /// The fields of a create or update (the module's input).
    type Fields: Send;

    /// The public fields of a record, for audit diffs and events.
    fn snapshot(row: &Self::Row) -> Value;

    /// A new record before the input applies: ids, owner and timestamps
    /// are set by the kit afterwards.
    fn blank() -> Self::Row;

    /// The owner the input asks for, if any (checked by the kit: the caller
    /// must be allowed to hand records to that user).
    fn requested_owner(_fields: &Self::Fields) -> Option<&str> {
        None
    }

    /// The verb of an update's audit entry and event (the event kind is
    /// `<type>.<verb>`): `updated` unless the entity names a workflow step
    /// the change made (an opportunity entering a won stage: `won`).
    fn update_action(_before: &Self::Row, _after: &Self::Row) -> &'static str {
        "updated"
    }

    /// Keys added to every event about the record beside `changed` (e.g.
    /// the id of the pipeline an opportunity is in), so subscribers can
    /// filter on them whether or not they changed. Everyone who may see the
    /// event sees them: ids to filter on, never a value a field rule could
    /// hide.
    fn event_context(_row: &Self::Row) -> Option<Map<String, Value>> {
        None
    }

    /// Keys of the event context that are read from the database, in the
    /// write's transaction, rather than from the row (the pipeline of a
    /// quote's opportunity), added to [`Entity::event_context`]'s; the same
    /// rule holds: ids to filter on, never a value a field rule could hide.
    fn event_context_read(
        _conn: &mut Conn<'_>,
        _row: &Self::Row,
    ) -> impl Future<Output = Result<Map<String, Value>>> + Send {
        async { Ok(Map::new()) }
    }

    /// Applies and validates `fields` on `row` (every problem in one
    /// VALIDATION error).
    fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut Self::Row,
        fields: Self::Fields,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Runs in the write's transaction just before a new record, already
    /// validated, is stored (API creations and imports alike; never in a
    /// dry run or a validation pass): values that must not be taken for a
    /// record that is not written, such as the next number of a counter.
    fn before_insert(
        _w: &WriteCtx<'_>,
        _conn: &mut Conn<'_>,
        _row: &mut Self::Row,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Runs in the write's transaction after the row is stored (history
    /// tables, denormalised keys).
    fn after_write(
        _w: &WriteCtx<'_>,
        _tx: &mut Tx,
        _before: Option<&Self::Row>,
        _after: &Self::Row,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Runs in the creating transaction after a new record, its audit entry
    /// and its event are stored (API creations, `create_in` and imports
    /// alike; never in a dry run or a validation pass): a follow-up change
    /// that is an event of its own, such as a rule routing a new lead to
    /// an owner (written with `store::update_row` + `store::record`). It
    /// may replace `row`, which is then what the creation returns.
    fn after_create(
        _w: &WriteCtx<'_>,
        _tx: &mut Tx,
        _row: &mut Self::Row,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Runs in the purge's transaction before the row goes, after the
    /// registered references to it were detached or deleted: anything else
    /// the module keeps about the record.
    fn before_purge(
        _app: &App,
        _by: &Principal,
        _tx: &mut Tx,
        _row: &Self::Row,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}

/// The key of an event's payload that holds what routes a `Routed`
/// record (its group and assignee), for subscribers' row scope; removed
/// before an event is delivered.
pub const ROUTING_KEY: &str = "rowScope";

/// The event context of a record: the entity's own
/// ([`Entity::event_context`] and [`Entity::event_context_read`], read on
/// `conn`, the write's transaction) plus, for a `Routed` scope, the group
/// and assignee under [`ROUTING_KEY`], so subscriptions apply the scopes
/// `group` and `assigned` to events as lists do to rows.
pub async fn event_context_of<E: Entity>(
    conn: &mut Conn<'_>,
    row: &E::Row,
) -> Result<Option<Map<String, Value>>> {
    let mut mine = E::event_context(row);
    let read = E::event_context_read(conn, row).await?;
    if !read.is_empty() {
        mine.get_or_insert_with(Map::new).extend(read);
    }
    let Scope::Routed {
        group, assignee, ..
    } = E::DEF.scope
    else {
        return Ok(mine);
    };
    let m = fields_of::<E>(row)?;
    let mut out = mine.unwrap_or_default();
    out.insert(
        ROUTING_KEY.into(),
        serde_json::json!({
            "group": m.get(group).cloned().unwrap_or(Value::Null),
            "assignee": m.get(assignee).cloned().unwrap_or(Value::Null),
        }),
    );
    Ok(Some(out))
}

/// The row's columns as JSON values by column name.
pub fn fields_of<E: Entity>(row: &E::Row) -> Result<Map<String, Value>> {
    match serde_json::to_value(row).map_err(|e| Error::Internal(e.to_string()))? {
        Value::Object(m) => Ok(m),
        _ => Err(Error::Internal(format!(
            "{} row is not a record",
            E::DEF.type_name
        ))),
    }
}

/// The row from column values.
pub fn row_from<E: Entity>(m: Map<String, Value>) -> Result<E::Row> {
    serde_json::from_value(Value::Object(m)).map_err(|e| Error::Internal(e.to_string()))
}

/// A text column of a row ("" when NULL or absent).
pub fn text_of(m: &Map<String, Value>, column: &str) -> String {
    m.get(column)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The id of a row.
pub fn id_of<E: Entity>(row: &E::Row) -> Result<String> {
    Ok(text_of(&fields_of::<E>(row)?, "id"))
}

/// The value of `column` of a row, bound as its kind.
pub fn bind_of(c: &Column, v: Option<&Value>) -> Result<sql::Bind> {
    use sql::Bind;
    let v = v.cloned().unwrap_or(Value::Null);
    let bad = |_| Error::Internal(format!("column {} does not hold its kind", c.name));
    Ok(match c.kind {
        Kind::Text => Bind::Text(serde_json::from_value(v).map_err(bad)?),
        Kind::Int => Bind::Int(serde_json::from_value(v).map_err(bad)?),
        Kind::Float => Bind::Float(serde_json::from_value(v).map_err(bad)?),
        Kind::Bool => Bind::Bool(serde_json::from_value(v).map_err(bad)?),
        Kind::Time => Bind::Time(serde_json::from_value::<Option<NaiveDateTime>>(v).map_err(bad)?),
    })
}
