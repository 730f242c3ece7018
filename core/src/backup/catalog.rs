//! What the database says about itself: tables, column types, primary keys
//! and foreign keys, read from the PostgreSQL catalog or SQLite's pragmas so
//! tables added by later migrations are backed up without code changes.

use std::collections::{BTreeMap, BTreeSet};

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::RunQueryDsl;

use crate::db::Conn;
use crate::error::Result;

/// The diesel bookkeeping table: never dumped, never restored.
pub const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

/// How a column's values are written in the portable format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A JSON string.
    Text,
    /// A JSON integer.
    Integer,
    /// A JSON number.
    Float,
    /// `true` / `false` (SQLite stores 0/1).
    Bool,
    /// `"YYYY-MM-DDTHH:MM:SS.ffffff"` (SQLite stores diesel's text form).
    Timestamp,
}

impl Kind {
    /// Classifies a declared column type of either backend
    /// (`timestamp without time zone`, `TIMESTAMP`, `boolean`, `BIGINT`, …).
    pub fn of_declared(ty: &str) -> Kind {
        let t = ty.to_ascii_lowercase();
        if t.starts_with("timestamp") || t.contains("datetime") {
            Kind::Timestamp
        } else if t.starts_with("bool") {
            Kind::Bool
        } else if t.contains("int") || t == "serial" || t == "bigserial" {
            Kind::Integer
        } else if ["real", "double", "float", "numeric", "decimal"]
            .iter()
            .any(|f| t.contains(f))
        {
            Kind::Float
        } else {
            Kind::Text
        }
    }
}

/// One table as the database declares it.
#[derive(Clone, Debug)]
pub struct Table {
    /// Table name.
    pub name: String,
    /// Columns in declaration order.
    pub columns: Vec<(String, Kind)>,
    /// Primary-key columns in key order (every column when there is none, so
    /// the dump order is still deterministic).
    pub key: Vec<String>,
    /// Foreign keys to this same table: (columns, referenced columns).
    pub self_refs: Vec<(Vec<String>, Vec<String>)>,
}

impl Table {
    /// Position of a column.
    pub fn index(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|(c, _)| c == column)
    }
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

#[derive(QueryableByName)]
struct FkRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    tbl: String,
    #[diesel(sql_type = Text)]
    col: String,
    #[diesel(sql_type = Text)]
    ref_table: String,
    #[diesel(sql_type = Nullable<Text>)]
    ref_col: Option<String>,
}

/// Quotes an identifier for both backends.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for both backends.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Migration versions recorded in the database, sorted.
pub async fn applied_migrations(conn: &mut Conn<'_>) -> Result<Vec<String>> {
    let q = diesel::sql_query(format!(
        "SELECT CAST(version AS TEXT) AS name FROM {MIGRATIONS_TABLE} ORDER BY version"
    ));
    let rows: Vec<NameRow> = crate::db_run!(conn, |c| q.load(c).await)?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

/// Every table except diesel's bookkeeping and SQLite internals, parents
/// before the tables that reference them (ties and cycles broken by name),
/// so inserting in this order satisfies foreign keys.
pub async fn tables(conn: &mut Conn<'_>) -> Result<Vec<Table>> {
    let pg = matches!(conn, Conn::Pg(_));
    let names: Vec<NameRow> = if pg {
        let q = diesel::sql_query(format!(
            "SELECT c.relname::text AS name FROM pg_class c \
             WHERE c.relnamespace = current_schema()::regnamespace \
               AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND c.relname <> '{MIGRATIONS_TABLE}' \
             ORDER BY c.relname::text COLLATE \"C\""
        ));
        crate::db_run!(conn, |c| q.load(c).await)?
    } else {
        let q = diesel::sql_query(format!(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
               AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '{MIGRATIONS_TABLE}' \
             ORDER BY name"
        ));
        crate::db_run!(conn, |c| q.load(c).await)?
    };
    let mut fks: Vec<FkRow> = Vec::new();
    let mut out = BTreeMap::new();
    for NameRow { name } in names {
        let cols: Vec<ColumnRow> = if pg {
            let q = diesel::sql_query(
                "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS ty, \
                   COALESCE((SELECT k.n FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(att, n) \
                             WHERE k.att = a.attnum), 0)::bigint AS pk \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
                 WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = $1 \
                   AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
            )
            .bind::<Text, _>(name.clone());
            crate::db_run!(conn, |c| q.load(c).await)?
        } else {
            let q = diesel::sql_query(
                "SELECT name, type AS ty, pk FROM pragma_table_info(?) ORDER BY cid",
            )
            .bind::<Text, _>(name.clone());
            let cols: Vec<ColumnRow> = crate::db_run!(conn, |c| q.load(c).await)?;
            let q = diesel::sql_query(
                "SELECT CAST(id AS TEXT) AS id, ? AS tbl, \"from\" AS col, \
                   \"table\" AS ref_table, \"to\" AS ref_col \
                 FROM pragma_foreign_key_list(?) ORDER BY id, seq",
            )
            .bind::<Text, _>(name.clone())
            .bind::<Text, _>(name.clone());
            fks.extend(crate::db_run!(conn, |c| q.load::<FkRow>(c).await)?);
            cols
        };
        let mut key: Vec<(i64, String)> = cols
            .iter()
            .filter(|c| c.pk > 0)
            .map(|c| (c.pk, c.name.clone()))
            .collect();
        key.sort();
        let mut key: Vec<String> = key.into_iter().map(|(_, n)| n).collect();
        if key.is_empty() {
            key = cols.iter().map(|c| c.name.clone()).collect();
        }
        let columns = cols
            .into_iter()
            .map(|c| {
                let kind = Kind::of_declared(&c.ty);
                (c.name, kind)
            })
            .collect();
        out.insert(
            name.clone(),
            Table {
                name,
                columns,
                key,
                self_refs: Vec::new(),
            },
        );
    }
    if pg {
        let q = diesel::sql_query(
            "SELECT con.conname::text AS id, cl.relname::text AS tbl, a.attname::text AS col, \
               rl.relname::text AS ref_table, ra.attname::text AS ref_col \
             FROM pg_constraint con \
             JOIN pg_class cl ON cl.oid = con.conrelid \
             JOIN pg_class rl ON rl.oid = con.confrelid \
             CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(att, ref_att, n) \
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.att \
             JOIN pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = k.ref_att \
             WHERE con.contype = 'f' AND cl.relnamespace = current_schema()::regnamespace \
             ORDER BY con.conname, k.n",
        );
        fks = crate::db_run!(conn, |c| q.load(c).await)?;
    }
    // Group the foreign-key rows into constraints: (table, id) ->
    // (referenced table, columns, referenced columns).
    type Constraint = (String, Vec<String>, Vec<Option<String>>);
    let mut groups: BTreeMap<(String, String), Constraint> = BTreeMap::new();
    for fk in fks {
        let g = groups
            .entry((fk.tbl, fk.id))
            .or_insert_with(|| (fk.ref_table, Vec::new(), Vec::new()));
        g.1.push(fk.col);
        g.2.push(fk.ref_col);
    }
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((tbl, _), (ref_table, cols, ref_cols)) in groups {
        if tbl == ref_table {
            let Some(t) = out.get_mut(&tbl) else { continue };
            // SQLite leaves `to` empty when the key references the primary key.
            let ref_cols = if ref_cols.iter().any(Option::is_none) {
                t.key.clone()
            } else {
                ref_cols.into_iter().flatten().collect()
            };
            t.self_refs.push((cols, ref_cols));
        } else {
            parents.entry(tbl).or_default().insert(ref_table);
        }
    }
    // Kahn's algorithm over names in order; a cycle (none exists today) is
    // broken by taking the first remaining table by name.
    let mut remaining: BTreeSet<String> = out.keys().cloned().collect();
    let mut ordered = Vec::with_capacity(out.len());
    while !remaining.is_empty() {
        let next = remaining
            .iter()
            .find(|t| {
                parents
                    .get(*t)
                    .is_none_or(|ps| ps.iter().all(|p| !remaining.contains(p)))
            })
            .or_else(|| remaining.iter().next())
            .cloned()
            .expect("remaining is not empty");
        remaining.remove(&next);
        ordered.push(out.remove(&next).expect("table is known"));
    }
    Ok(ordered)
}
