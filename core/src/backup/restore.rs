//! Restoring a backup into an empty database of either backend.
//!
//! The file is checked end to end first (header, every line, the trailer's
//! row counts), so a damaged or cut-off file is refused before the database
//! is touched. Rows then go in through one transaction, tables in
//! foreign-key order as the target's catalog declares it; afterwards
//! PostgreSQL's serial sequences are moved past the restored rows so the
//! event cursor (`outbox.seq`) and audit ids continue where they were.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde_json::Value;

use super::catalog::{self, Table, ident, literal};
use super::{FORMAT, Summary, VERSION, native};
use crate::db::{Backend, Conn, Db};
use crate::error::{Error, FieldError, Result};

/// Rows per INSERT statement.
const BATCH_ROWS: usize = 500;
/// Rough bytes of JSON per INSERT statement.
const BATCH_BYTES: usize = 2 << 20;

/// One table section of a backup file.
struct Section {
    name: String,
    columns: Vec<String>,
    /// Byte offset of the first row line.
    offset: u64,
    /// Line number of the section header (for messages).
    line: usize,
    rows: u64,
}

/// What [`scan`] learnt from a well-formed file.
struct Scanned {
    migrations: Vec<String>,
    sections: Vec<Section>,
}

fn bad(line: usize, message: impl std::fmt::Display) -> Error {
    Error::Validation(vec![FieldError {
        field: "backup file".into(),
        message: format!("line {line}: {message}"),
    }])
}

fn refused(message: String) -> Error {
    Error::Conflict(format!("restore refused: {message}"))
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct TableColumn {
    #[diesel(sql_type = Text)]
    tbl: String,
    #[diesel(sql_type = Text)]
    col: String,
}

/// Restores the backup at `path` into the database behind `db`, which must
/// be empty (it is migrated first); returns rows per table.
pub async fn restore(db: &Db, path: &Path) -> Result<Summary> {
    let scanned = scan(path)?;
    let expected = crate::db::migration_versions(db.backend());
    if scanned.migrations != expected {
        return Err(refused(format!(
            "the backup was taken at migrations [{}] but this build has [{}]; \
             restore it with the crm version that made it",
            scanned.migrations.join(", "),
            expected.join(", ")
        )));
    }
    // Refuse a database with data before migrating it, so a mistaken target
    // is left exactly as it was.
    {
        let mut c = db.conn().await?;
        let tables = catalog::tables(&mut c.conn()).await?;
        refuse_non_empty(&mut c.conn(), &tables).await?;
    }
    db.migrate().await?;
    let mut tx = db.begin().await?;
    match load_all(&mut tx.conn(), db.backend(), path, &scanned, &expected).await {
        Ok(summary) => {
            tx.commit().await?;
            db.analyze().await?;
            Ok(summary)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Reads the whole file once: header, sections, row shapes, trailer counts.
fn scan(path: &Path) -> Result<Scanned> {
    let file = std::fs::File::open(path).map_err(|e| {
        Error::Validation(vec![FieldError {
            field: "backup file".into(),
            message: format!("cannot open {}: {e}", path.display()),
        }])
    })?;
    let mut r = BufReader::new(file);
    let mut buf = String::new();
    let mut offset = 0u64;
    let mut line_no = 0usize;
    let mut migrations = None;
    let mut sections: Vec<Section> = Vec::new();
    let mut ended = false;
    loop {
        buf.clear();
        let n = r
            .read_line(&mut buf)
            .map_err(|e| bad(line_no + 1, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        offset += n as u64;
        let text = buf.trim_end();
        if text.is_empty() {
            continue;
        }
        if ended {
            return Err(bad(line_no, "data after the end line"));
        }
        let v: Value = serde_json::from_str(text).map_err(|e| bad(line_no, e))?;
        if migrations.is_none() {
            if v["format"] != FORMAT {
                return Err(bad(line_no, "not a crm backup (no crm-backup header)"));
            }
            if v["version"] != VERSION {
                return Err(bad(
                    line_no,
                    format!(
                        "format version {} is not supported (this build reads {VERSION})",
                        v["version"]
                    ),
                ));
            }
            let list = v["migrations"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|m| m.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| bad(line_no, "header has no migrations list"))?;
            migrations = Some(list);
            continue;
        }
        match v {
            Value::Array(values) => {
                let s = sections
                    .last_mut()
                    .ok_or_else(|| bad(line_no, "row before any table line"))?;
                if values.len() != s.columns.len() {
                    return Err(bad(
                        line_no,
                        format!(
                            "{} values for {} columns of {}",
                            values.len(),
                            s.columns.len(),
                            s.name
                        ),
                    ));
                }
                s.rows += 1;
            }
            Value::Object(o) if o.contains_key("table") => {
                let name = o["table"]
                    .as_str()
                    .ok_or_else(|| bad(line_no, "table name is not a string"))?;
                if sections.iter().any(|s| s.name == name) {
                    return Err(bad(line_no, format!("table {name} appears twice")));
                }
                let columns = o
                    .get("columns")
                    .and_then(Value::as_array)
                    .and_then(|a| {
                        a.iter()
                            .map(|c| c.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| bad(line_no, "table line has no columns list"))?;
                sections.push(Section {
                    name: name.to_owned(),
                    columns,
                    offset,
                    line: line_no,
                    rows: 0,
                });
            }
            Value::Object(o) if o.get("end").and_then(Value::as_str) == Some(FORMAT) => {
                let counts = o
                    .get("tables")
                    .and_then(Value::as_object)
                    .ok_or_else(|| bad(line_no, "end line has no row counts"))?;
                let listed: BTreeSet<&str> = counts.keys().map(String::as_str).collect();
                let found: BTreeSet<&str> = sections.iter().map(|s| s.name.as_str()).collect();
                if listed != found {
                    return Err(bad(
                        line_no,
                        "end line lists other tables than the file holds",
                    ));
                }
                for s in &sections {
                    if counts[&s.name].as_u64() != Some(s.rows) {
                        return Err(bad(
                            line_no,
                            format!(
                                "table {} has {} rows but the end line says {}",
                                s.name, s.rows, counts[&s.name]
                            ),
                        ));
                    }
                }
                ended = true;
            }
            _ => return Err(bad(line_no, "unexpected line")),
        }
    }
    let Some(migrations) = migrations else {
        return Err(bad(1, "empty file"));
    };
    if !ended {
        return Err(bad(
            line_no,
            "the file ends without its end line: it is incomplete (cut off while writing or copying?)",
        ));
    }
    Ok(Scanned {
        migrations,
        sections,
    })
}

async fn refuse_non_empty(conn: &mut Conn<'_>, tables: &[Table]) -> Result<()> {
    for t in tables {
        let q = diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM {} LIMIT 1) x",
            ident(&t.name)
        ));
        let rows: Vec<N> = crate::db_run!(conn, |c| q.load(c).await)?;
        if rows.iter().any(|r| r.n > 0) {
            return Err(refused(format!(
                "the database is not empty (table {} has rows); restore into a new, empty database",
                t.name
            )));
        }
    }
    Ok(())
}

async fn load_all(
    conn: &mut Conn<'_>,
    backend: Backend,
    path: &Path,
    scanned: &Scanned,
    expected: &[String],
) -> Result<Summary> {
    let applied = catalog::applied_migrations(conn).await?;
    if applied != expected {
        return Err(refused(format!(
            "the database has migrations [{}] but this build has [{}]",
            applied.join(", "),
            expected.join(", ")
        )));
    }
    let tables = catalog::tables(conn).await?;
    refuse_non_empty(conn, &tables).await?;
    let mut by_name: HashMap<&str, &Section> = scanned
        .sections
        .iter()
        .map(|s| (s.name.as_str(), s))
        .collect();
    let mut plan = Vec::new();
    for t in &tables {
        let s = by_name.remove(t.name.as_str()).ok_or_else(|| {
            refused(format!(
                "the backup has no table {} although its migrations match",
                t.name
            ))
        })?;
        let have: BTreeSet<&str> = t.columns.iter().map(|(c, _)| c.as_str()).collect();
        let got: BTreeSet<&str> = s.columns.iter().map(String::as_str).collect();
        if have != got {
            return Err(bad(
                s.line,
                format!(
                    "table {} has columns {got:?} but the database has {have:?}",
                    t.name
                ),
            ));
        }
        plan.push((t, s));
    }
    if let Some(s) = by_name.values().next() {
        return Err(bad(
            s.line,
            format!("table {} does not exist in this database", s.name),
        ));
    }
    if backend == Backend::Sqlite {
        // Belt and braces: tables already go parents first, and this lets a
        // self-reference or a cycle resolve by the end of the transaction.
        crate::db_run!(conn, |c| c
            .batch_execute("PRAGMA defer_foreign_keys = ON")
            .await)?;
    }
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::Internal(format!("cannot reopen {}: {e}", path.display())))?;
    let mut summary = Summary::default();
    for (t, s) in plan {
        file.seek(SeekFrom::Start(s.offset))
            .map_err(|e| Error::Internal(format!("reading {}: {e}", path.display())))?;
        let mut lines = BufReader::new(&mut file).lines();
        let kinds: Vec<_> = s
            .columns
            .iter()
            .map(|c| t.columns[t.index(c).expect("columns checked")].1)
            .collect();
        let mut rows = Vec::with_capacity(if t.self_refs.is_empty() {
            BATCH_ROWS
        } else {
            s.rows as usize
        });
        let mut bytes = 0;
        let mut inserted = 0u64;
        let mut read = 0u64;
        while read < s.rows {
            let line = lines
                .next()
                .ok_or_else(|| bad(s.line, "file changed while restoring"))?
                .map_err(|e| Error::Internal(format!("reading {}: {e}", path.display())))?;
            if line.trim().is_empty() {
                continue;
            }
            read += 1;
            bytes += line.len();
            let values: Vec<Value> = serde_json::from_str(&line)
                .map_err(|e| bad(s.line, format!("table {}: {e}", t.name)))?;
            let row = values
                .into_iter()
                .zip(&kinds)
                .zip(&s.columns)
                .map(|((v, k), c)| {
                    native(*k, backend, v).map_err(|e| bad(s.line, format!("{}.{c}: {e}", t.name)))
                })
                .collect::<Result<Vec<_>>>()?;
            rows.push(row);
            // A table that references itself is inserted whole, parents
            // first; others go in batches.
            if t.self_refs.is_empty() && (rows.len() >= BATCH_ROWS || bytes >= BATCH_BYTES) {
                inserted += insert(conn, backend, t, &s.columns, &rows).await?;
                rows.clear();
                bytes = 0;
            }
        }
        if !t.self_refs.is_empty() {
            rows = parents_first(rows, t, &s.columns);
            for chunk in rows.chunks(BATCH_ROWS) {
                inserted += insert(conn, backend, t, &s.columns, chunk).await?;
            }
        } else if !rows.is_empty() {
            inserted += insert(conn, backend, t, &s.columns, &rows).await?;
        }
        if inserted != s.rows {
            return Err(Error::Internal(format!(
                "table {}: inserted {inserted} rows of {}",
                t.name, s.rows
            )));
        }
        summary.tables.push((t.name.clone(), inserted));
    }
    if backend == Backend::Postgres {
        reset_sequences(conn).await?;
    }
    Ok(summary)
}

async fn insert(
    conn: &mut Conn<'_>,
    backend: Backend,
    t: &Table,
    columns: &[String],
    rows: &[Vec<Value>],
) -> Result<u64> {
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let n = match backend {
        Backend::Postgres => {
            let objects: Vec<serde_json::Map<String, Value>> = rows
                .iter()
                .map(|r| columns.iter().cloned().zip(r.iter().cloned()).collect())
                .collect();
            let q = diesel::sql_query(format!(
                "INSERT INTO {t} ({cols}) SELECT {cols} FROM json_populate_recordset(NULL::{t}, $1::json)",
                t = ident(&t.name),
                cols = cols.join(", ")
            ))
            .bind::<Text, _>(Value::from(objects.into_iter().map(Value::Object).collect::<Vec<_>>()).to_string());
            crate::db_run!(conn, |c| q.execute(c).await)?
        }
        Backend::Sqlite => {
            let extracts: Vec<String> = (0..columns.len())
                .map(|i| format!("json_extract(value, '$[{i}]')"))
                .collect();
            let q = diesel::sql_query(format!(
                "INSERT INTO {} ({}) SELECT {} FROM json_each(?)",
                ident(&t.name),
                cols.join(", "),
                extracts.join(", ")
            ))
            .bind::<Text, _>(
                serde_json::to_string(rows).map_err(|e| Error::Internal(e.to_string()))?,
            );
            crate::db_run!(conn, |c| q.execute(c).await)?
        }
    };
    Ok(n as u64)
}

/// Orders the rows of a self-referencing table so every row comes after the
/// row it points at (a team after its parent team). Rows pointing at a key
/// not in the table, and rows in a cycle, keep their place at the end.
fn parents_first(rows: Vec<Vec<Value>>, t: &Table, columns: &[String]) -> Vec<Vec<Value>> {
    let pos = |c: &String| columns.iter().position(|x| x == c);
    let refs: Vec<(Vec<usize>, Vec<usize>)> = t
        .self_refs
        .iter()
        .filter_map(|(from, to)| {
            Some((
                from.iter().map(pos).collect::<Option<Vec<_>>>()?,
                to.iter().map(pos).collect::<Option<Vec<_>>>()?,
            ))
        })
        .collect();
    let key = |row: &[Value], idx: &[usize]| -> Option<String> {
        let vals: Vec<&Value> = idx.iter().map(|&i| &row[i]).collect();
        (!vals.iter().any(|v| v.is_null()))
            .then(|| serde_json::to_string(&vals).unwrap_or_default())
    };
    let present: Vec<HashSet<String>> = refs
        .iter()
        .map(|(_, to)| rows.iter().filter_map(|r| key(r, to)).collect())
        .collect();
    let mut placed: Vec<HashSet<String>> = vec![HashSet::new(); refs.len()];
    let mut pending: Vec<Vec<Value>> = rows;
    let mut out = Vec::with_capacity(pending.len());
    loop {
        let before = pending.len();
        let mut rest = Vec::new();
        for row in pending {
            let ready = refs
                .iter()
                .enumerate()
                .all(|(i, (from, to))| match key(&row, from) {
                    None => true,
                    Some(k) => {
                        !present[i].contains(&k)
                            || placed[i].contains(&k)
                            || key(&row, to) == Some(k)
                    }
                });
            if ready {
                for (i, (_, to)) in refs.iter().enumerate() {
                    if let Some(k) = key(&row, to) {
                        placed[i].insert(k);
                    }
                }
                out.push(row);
            } else {
                rest.push(row);
            }
        }
        pending = rest;
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    out.extend(pending);
    out
}

/// Moves every serial sequence past the largest restored value, so the next
/// event gets a cursor after the restored ones.
async fn reset_sequences(conn: &mut Conn<'_>) -> Result<()> {
    let q = diesel::sql_query(
        "SELECT c.relname::text AS tbl, a.attname::text AS col \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') \
           AND a.attnum > 0 AND NOT a.attisdropped \
           AND pg_get_serial_sequence(quote_ident(c.relname), a.attname::text) IS NOT NULL \
         ORDER BY 1, 2",
    );
    let serials: Vec<TableColumn> = crate::db_run!(conn, |c| q.load(c).await)?;
    let mut sql = String::new();
    for TableColumn { tbl, col } in serials {
        sql.push_str(&format!(
            "SELECT setval(pg_get_serial_sequence({}, {}), COALESCE(MAX({}), 0) + 1, false) FROM {};",
            literal(&ident(&tbl)),
            literal(&col),
            ident(&col),
            ident(&tbl)
        ));
    }
    if !sql.is_empty() {
        crate::db_run!(conn, |c| c.batch_execute(&sql).await)?;
    }
    Ok(())
}
