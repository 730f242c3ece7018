//! Portable backup and restore of the whole database.
//!
//! A backup is JSON Lines, the same from either backend, so a CRM moves
//! between SQLite and PostgreSQL by backing up one and restoring into the
//! other:
//!
//! ```text
//! {"format":"crm-backup","version":1,"migrations":[…],"created_at":"…","source":"sqlite"}
//! {"table":"teams","columns":["id","name",…]}
//! ["tea_…","Sales",…]                        one array per row, primary-key order
//! …
//! {"end":"crm-backup","tables":{"teams":6,…}}  row counts: a cut-off file is refused
//! ```
//!
//! Values are canonical: timestamps `"YYYY-MM-DDTHH:MM:SS.ffffff"` (UTC,
//! as both schemas store them), booleans `true`/`false`, integers as numbers,
//! text as strings, NULL as null. Tables come from the database catalog, so
//! a table added by a later migration is included without code changes;
//! they are written parents first (foreign-key order).
//!
//! The snapshot is consistent: every table is read inside one read-only
//! transaction (REPEATABLE READ on PostgreSQL; a WAL read transaction on
//! SQLite), so the service keeps running and writing while it is taken.

pub mod catalog;
mod restore;
pub mod schedule;

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime};
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, TransactionManager};
use futures_util::TryStreamExt;
use serde_json::{Value, json};

pub use restore::restore;

use crate::db::{Backend, Conn, Db, PooledConn};
use crate::error::{Error, Result};
use catalog::{Kind, Table, ident};

/// The `format` of a backup's header line.
pub const FORMAT: &str = "crm-backup";
/// The format version this build writes and reads.
pub const VERSION: u64 = 1;

/// What a backup or restore covered: rows per table, in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// (table, rows).
    pub tables: Vec<(String, u64)>,
}

impl Summary {
    /// Total rows.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} tables, {} rows", self.tables.len(), self.rows())
    }
}

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Text)]
    j: String,
}

fn io(e: std::io::Error) -> Error {
    Error::Internal(format!("writing backup: {e}"))
}

/// Writes a consistent snapshot of every table to `out`.
pub async fn backup<W: Write + Send>(db: &Db, out: &mut W) -> Result<Summary> {
    let backend = db.backend();
    let mut pooled = db.conn().await?;
    match &mut pooled {
        PooledConn::Pg(c) => {
            let c: &mut diesel_async::AsyncPgConnection = c;
            c.build_transaction()
                .read_only()
                .repeatable_read()
                .run(async |c| dump(&mut Conn::Pg(c), backend, out).await)
                .await
        }
        PooledConn::Sqlite(c) => {
            let c: &mut crate::db::SqliteConn = c;
            // A deferred BEGIN: the first read fixes the snapshot (WAL), and
            // no write lock is ever taken, so writers carry on meanwhile.
            type Tm = <crate::db::SqliteConn as AsyncConnection>::TransactionManager;
            Tm::begin_transaction(c).await?;
            let result = dump(&mut Conn::Sqlite(c), backend, out).await;
            // Read-only: rolling back and committing are the same; rollback
            // also cleans up after an error.
            Tm::rollback_transaction(c).await?;
            result
        }
    }
}

/// Writes a backup to `path` through a temporary name beside it, so a file
/// under the final name is always complete.
pub async fn backup_to_file(db: &Db, path: &Path) -> Result<Summary> {
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::Internal(format!("{}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(".{}.partial", file_name.to_string_lossy()));
    let result = async {
        let file = std::fs::File::create(&tmp)
            .map_err(|e| Error::Internal(format!("cannot create {}: {e}", tmp.display())))?;
        let mut w = std::io::BufWriter::new(file);
        let summary = backup(db, &mut w).await?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::Internal(format!("cannot rename to {}: {e}", path.display())))?;
        Ok(summary)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

async fn dump<W: Write + Send>(
    conn: &mut Conn<'_>,
    backend: Backend,
    out: &mut W,
) -> Result<Summary> {
    let migrations = catalog::applied_migrations(conn)
        .await
        .map_err(|e| match e {
            Error::Internal(d) if d.contains(catalog::MIGRATIONS_TABLE) => Error::Internal(
                format!("the database has no CRM schema (never migrated?): {d}"),
            ),
            e => e,
        })?;
    let tables = catalog::tables(conn).await?;
    // Structs rather than json! so the keys come out in this order
    // (readable with `head`); readers do not depend on it.
    #[derive(serde::Serialize)]
    struct Header<'a> {
        format: &'a str,
        version: u64,
        migrations: &'a [String],
        created_at: String,
        source: &'a str,
    }
    let header = serde_json::to_string(&Header {
        format: FORMAT,
        version: VERSION,
        migrations: &migrations,
        created_at: crate::ids::now().format(TS_FORMAT).to_string(),
        source: match backend {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        },
    })
    .map_err(|e| io(e.into()))?;
    writeln!(out, "{header}").map_err(io)?;
    let mut summary = Summary::default();
    for t in &tables {
        let names: Vec<&str> = t.columns.iter().map(|(c, _)| c.as_str()).collect();
        #[derive(serde::Serialize)]
        struct Section<'a> {
            table: &'a str,
            columns: Vec<&'a str>,
        }
        let section = Section {
            table: &t.name,
            columns: names,
        };
        serde_json::to_writer(&mut *out, &section).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
        let n = dump_table(conn, t, out).await?;
        summary.tables.push((t.name.clone(), n));
    }
    let counts: serde_json::Map<String, Value> = summary
        .tables
        .iter()
        .map(|(t, n)| (t.clone(), json!(n)))
        .collect();
    writeln!(out, "{}", json!({"end": FORMAT, "tables": counts})).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(summary)
}

async fn dump_table<W: Write>(conn: &mut Conn<'_>, t: &Table, out: &mut W) -> Result<u64> {
    let mut n = 0u64;
    match conn {
        Conn::Pg(c) => {
            // Text keys sort bytewise ("C"), as SQLite sorts them, so both
            // backends write rows in the same order.
            let order: Vec<String> = t
                .key
                .iter()
                .map(|k| match t.index(k).map(|i| t.columns[i].1) {
                    Some(Kind::Text) => format!("t.{} COLLATE \"C\"", ident(k)),
                    _ => format!("t.{}", ident(k)),
                })
                .collect();
            let q = diesel::sql_query(format!(
                "SELECT row_to_json(t)::text AS j FROM {} t ORDER BY {}",
                ident(&t.name),
                order.join(", ")
            ));
            let mut rows = diesel_async::RunQueryDsl::load_stream::<JsonRow>(q, &mut **c).await?;
            while let Some(row) = rows.try_next().await? {
                let obj: serde_json::Map<String, Value> = serde_json::from_str(&row.j)
                    .map_err(|e| Error::Internal(format!("{}: bad row JSON: {e}", t.name)))?;
                let values = t
                    .columns
                    .iter()
                    .map(|(c, _)| obj.get(c).cloned().unwrap_or(Value::Null))
                    .collect();
                write_row(t, values, out)?;
                n += 1;
            }
        }
        Conn::Sqlite(c) => {
            let cols: Vec<String> = t.columns.iter().map(|(c, _)| ident(c)).collect();
            let order: Vec<String> = t.key.iter().map(|k| ident(k)).collect();
            let q = diesel::sql_query(format!(
                "SELECT json_array({}) AS j FROM {} ORDER BY {}",
                cols.join(", "),
                ident(&t.name),
                order.join(", ")
            ));
            let mut rows = diesel_async::RunQueryDsl::load_stream::<JsonRow>(q, &mut **c).await?;
            while let Some(row) = rows.try_next().await? {
                let values: Vec<Value> = serde_json::from_str(&row.j)
                    .map_err(|e| Error::Internal(format!("{}: bad row JSON: {e}", t.name)))?;
                write_row(t, values, out)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn write_row<W: Write>(t: &Table, values: Vec<Value>, out: &mut W) -> Result<()> {
    let row = values
        .into_iter()
        .zip(&t.columns)
        .map(|(v, (col, kind))| {
            canonical(*kind, v).map_err(|e| Error::Internal(format!("{}.{col}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    serde_json::to_writer(&mut *out, &row).map_err(|e| io(e.into()))?;
    out.write_all(b"\n").map_err(io)
}

/// The canonical timestamp form.
const TS_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";
/// How diesel stores a timestamp in SQLite (and reads it back fastest).
const SQLITE_TS_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

/// Parses a timestamp as either backend writes it (`T` or space separated,
/// 0–9 fraction digits, optionally with an offset, which is folded into UTC).
fn parse_ts(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    let normal = if s.len() > 10 && s.as_bytes()[10] == b' ' {
        format!("{}T{}", &s[..10], &s[11..])
    } else {
        s.to_owned()
    };
    NaiveDateTime::parse_from_str(&normal, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.fZ"]
                .iter()
                .find_map(|f| DateTime::parse_from_str(&normal, f).ok())
                .map(|d| d.naive_utc())
        })
        .or_else(|| NaiveDateTime::parse_from_str(&normal, "%Y-%m-%dT%H:%M").ok())
}

/// A value as the database gave it -> its canonical JSON form.
fn canonical(kind: Kind, v: Value) -> std::result::Result<Value, String> {
    Ok(match (kind, v) {
        (_, Value::Null) => Value::Null,
        (Kind::Bool, Value::Bool(b)) => Value::Bool(b),
        (Kind::Bool, Value::Number(n)) => Value::Bool(n.as_f64() != Some(0.0)),
        (Kind::Timestamp, Value::String(s)) => {
            let ts = parse_ts(&s).ok_or_else(|| format!("not a timestamp: {s:?}"))?;
            Value::String(ts.format(TS_FORMAT).to_string())
        }
        (Kind::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n),
        (Kind::Float | Kind::Integer, Value::Number(n)) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("not a finite number: {n}"))?,
        (Kind::Text, v @ Value::String(_)) => v,
        // SQLite's dynamic typing can hold anything in any column; keep the
        // value as it is rather than lose it.
        (_, v) => v,
    })
}

/// A canonical value -> what the target backend stores for `kind`.
fn native(kind: Kind, backend: Backend, v: Value) -> std::result::Result<Value, String> {
    match (kind, backend, v) {
        (Kind::Timestamp, Backend::Sqlite, Value::String(s)) => {
            let ts = parse_ts(&s).ok_or_else(|| format!("not a timestamp: {s:?}"))?;
            // Exactly diesel's own encoding: queries compare timestamps as
            // text, so a different spelling of the same instant would sort
            // and match differently.
            Ok(Value::String(ts.format(SQLITE_TS_FORMAT).to_string()))
        }
        (Kind::Timestamp, Backend::Postgres, Value::String(s)) => {
            let ts = parse_ts(&s).ok_or_else(|| format!("not a timestamp: {s:?}"))?;
            Ok(Value::String(ts.format(TS_FORMAT).to_string()))
        }
        (_, _, v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_canonical_from_either_backend() {
        for raw in [
            "2026-11-22 10:15:00.1234",
            "2026-11-22T10:15:00.123400",
            "2026-11-22T10:15:00.1234",
            "2026-11-22T12:15:00.1234+02:00",
        ] {
            assert_eq!(
                canonical(Kind::Timestamp, json!(raw)).unwrap(),
                json!("2026-11-22T10:15:00.123400"),
                "{raw}"
            );
        }
        assert_eq!(
            canonical(Kind::Timestamp, json!("2026-11-22 10:15:00")).unwrap(),
            json!("2026-11-22T10:15:00.000000")
        );
        assert!(canonical(Kind::Timestamp, json!("yesterday")).is_err());
    }

    #[test]
    fn sqlite_timestamps_are_stored_as_diesel_writes_them() {
        assert_eq!(
            native(
                Kind::Timestamp,
                Backend::Sqlite,
                json!("2026-11-22T10:15:00.120000")
            )
            .unwrap(),
            json!("2026-11-22 10:15:00.120")
        );
        assert_eq!(
            native(
                Kind::Timestamp,
                Backend::Sqlite,
                json!("2026-11-22T10:15:00.000000")
            )
            .unwrap(),
            json!("2026-11-22 10:15:00")
        );
    }

    #[test]
    fn booleans_and_numbers_are_canonical() {
        assert_eq!(canonical(Kind::Bool, json!(1)).unwrap(), json!(true));
        assert_eq!(canonical(Kind::Bool, json!(0)).unwrap(), json!(false));
        assert_eq!(canonical(Kind::Integer, json!(42)).unwrap(), json!(42));
        assert_eq!(canonical(Kind::Float, json!(1)).unwrap(), json!(1.0));
        assert_eq!(canonical(Kind::Text, Value::Null).unwrap(), Value::Null);
    }

    #[test]
    fn declared_types_are_classified() {
        assert_eq!(
            Kind::of_declared("timestamp without time zone"),
            Kind::Timestamp
        );
        assert_eq!(Kind::of_declared("TIMESTAMP"), Kind::Timestamp);
        assert_eq!(Kind::of_declared("BOOLEAN"), Kind::Bool);
        assert_eq!(Kind::of_declared("bigint"), Kind::Integer);
        assert_eq!(Kind::of_declared("INTEGER"), Kind::Integer);
        assert_eq!(Kind::of_declared("double precision"), Kind::Float);
        assert_eq!(Kind::of_declared("TEXT"), Kind::Text);
    }
}
