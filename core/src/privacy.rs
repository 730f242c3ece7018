//! Erasure of a person's data from what the platform keeps: the audit log,
//! the event outbox, import error reports and export files on disk. The
//! module owning the person's record erases it, runs every module's
//! erasure hook on their rows ([`erase_in_modules`]), then calls
//! [`scrub_platform`] and [`scrub_exports`]; the right-of-access report
//! gathers the modules' parts the same way ([`report_from_modules`]).
//!
//! Identifiers (emails, phone numbers, the full name) are replaced with
//! [`TOMBSTONE`] wherever they appear; every value in the audit entries and
//! events of the erased record itself is replaced, whatever it was.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Map, Value};

use crate::access::Principal;
use crate::app::App;
use crate::db::Conn;
use crate::db_run;
use crate::error::{Error, Result};
use crate::schema::{audit_log, job_errors, jobs, outbox};

/// A person whose data is erased or reported, as modules' hooks see them.
#[derive(Clone, Copy, Debug)]
pub struct Person<'a> {
    /// The type of the record that is the person (`Contact`, `Lead`).
    pub ty: &'static str,
    /// Its id.
    pub id: &'a str,
    /// What identifies them in free text: emails, phone numbers, the full
    /// name.
    pub identifiers: &'a [String],
}

/// Runs every installed module's erasure hook inside the erasure's
/// transaction; the rows rewritten per record type.
pub async fn erase_in_modules(
    conn: &mut Conn<'_>,
    person: &Person<'_>,
) -> Result<BTreeMap<&'static str, i64>> {
    let mut out = BTreeMap::new();
    for m in crate::module::registry().modules() {
        for (ty, n) in m.erase(conn, person).await? {
            *out.entry(ty).or_default() += n;
        }
    }
    Ok(out)
}

/// Every installed module's parts of a right-of-access report about
/// `person`, read within `by`'s scope and readable fields.
pub async fn report_from_modules(
    app: &App,
    by: &Principal,
    person: &Person<'_>,
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for m in crate::module::registry().modules() {
        for (key, part) in m.personal_data(app, by, person).await? {
            out.insert(key.to_owned(), part);
        }
    }
    Ok(out)
}

/// What erased values become.
pub const TOMBSTONE: &str = "[erased]";

/// Identifiers shorter than this are not searched for in free text (they
/// would match unrelated words).
const MIN_LEN: usize = 5;

/// `text` with every identifier replaced, if any was there.
pub fn scrub_text(text: &str, identifiers: &[String]) -> Option<String> {
    let mut out = text.to_owned();
    for i in identifiers.iter().filter(|i| i.chars().count() >= MIN_LEN) {
        if out.contains(i.as_str()) {
            out = out.replace(i.as_str(), TOMBSTONE);
        }
        // Names are often written in another case.
        let lower = i.to_lowercase();
        if lower != *i && out.to_lowercase().contains(&lower) {
            out = replace_ci(&out, &lower);
        }
    }
    (out != text).then_some(out)
}

fn replace_ci(text: &str, lower_needle: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.to_lowercase().find(lower_needle) {
        // Positions agree when lower-casing keeps byte lengths (ASCII and
        // most scripts); otherwise fall back to leaving the text as is.
        if rest.to_lowercase().len() != rest.len() {
            out.push_str(rest);
            return out;
        }
        out.push_str(&rest[..pos]);
        out.push_str(TOMBSTONE);
        rest = &rest[pos + lower_needle.len()..];
    }
    out.push_str(rest);
    out
}

/// Every non-null value in a JSON document replaced with the tombstone,
/// keeping keys (field names) and structure.
fn tombstone_values(v: &mut Value) {
    match v {
        Value::Object(m) => m.values_mut().for_each(tombstone_values),
        Value::Array(a) => a.iter_mut().for_each(tombstone_values),
        Value::Null => {}
        other => *other = Value::String(TOMBSTONE.into()),
    }
}

/// Rows changed by a scrub.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Scrubbed {
    /// Audit entries rewritten.
    pub audit_entries: i64,
    /// Stored events rewritten.
    pub events: i64,
    /// Import error report lines rewritten.
    pub report_lines: i64,
}

/// LIKE patterns matching text that contains any identifier long enough to
/// search for.
pub fn like_any(identifiers: &[String]) -> Vec<String> {
    identifiers
        .iter()
        .filter(|i| i.chars().count() >= MIN_LEN)
        .map(|i| format!("%{}%", i.replace(['%', '_', '\\'], "")))
        .collect()
}

/// Erases `(entity_type, entity_id)`'s values from its own audit entries and
/// events, and the identifiers from every other audit entry, event and
/// import report line, in the caller's transaction.
pub async fn scrub_platform(
    conn: &mut Conn<'_>,
    entity_type: &str,
    entity_id: &str,
    identifiers: &[String],
) -> Result<Scrubbed> {
    let mut n = Scrubbed::default();
    let patterns = like_any(identifiers);
    // Audit entries.
    let rows: Vec<(i64, String, String, String)> = db_run!(conn, |c| {
        let mut q = audit_log::table
            .filter(
                audit_log::entity_type
                    .eq(entity_type)
                    .and(audit_log::entity_id.eq(entity_id)),
            )
            .into_boxed();
        for p in &patterns {
            q = q.or_filter(audit_log::changes.like(p.clone()));
        }
        q.select((
            audit_log::id,
            audit_log::entity_type,
            audit_log::entity_id,
            audit_log::changes,
        ))
        .load(c)
        .await
    })?;
    for (id, ty, eid, changes) in rows {
        let new = if ty == entity_type && eid == entity_id {
            let mut v: Value = serde_json::from_str(&changes).unwrap_or(Value::Null);
            if let Value::Array(items) = &mut v {
                for item in items {
                    for k in ["old", "new"] {
                        if let Some(x) = item.get_mut(k) {
                            tombstone_values(x);
                        }
                    }
                }
            }
            Some(v.to_string()).filter(|s| *s != changes)
        } else {
            scrub_text(&changes, identifiers)
        };
        if let Some(new) = new {
            db_run!(conn, |c| diesel::update(audit_log::table.find(id))
                .set(audit_log::changes.eq(&new))
                .execute(c)
                .await)?;
            n.audit_entries += 1;
        }
    }
    // Stored events: every committed one gets its cursor first (an event
    // without one has no key to rewrite it by, and would be published
    // unscrubbed after this commit).
    crate::events::sequence(conn).await?;
    let rows: Vec<(i64, String, String, String)> = db_run!(conn, |c| {
        let mut q = outbox::table
            .filter(
                outbox::entity_type
                    .eq(entity_type)
                    .and(outbox::entity_id.eq(entity_id)),
            )
            .into_boxed();
        for p in &patterns {
            q = q.or_filter(outbox::payload.like(p.clone()));
        }
        q.filter(outbox::seq.is_not_null())
            .select((
                outbox::seq,
                outbox::entity_type,
                outbox::entity_id,
                outbox::payload,
            ))
            .load(c)
            .await
    })?;
    for (seq, ty, eid, payload) in rows {
        let new = if ty == entity_type && eid == entity_id {
            let mut v: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
            for part in ["changed", "before"] {
                if let Some(values) = v.get_mut(part) {
                    tombstone_values(values);
                }
            }
            Some(v.to_string()).filter(|s| *s != payload)
        } else {
            scrub_text(&payload, identifiers)
        };
        if let Some(new) = new {
            db_run!(conn, |c| diesel::update(outbox::table.find(seq))
                .set(outbox::payload.eq(&new))
                .execute(c)
                .await)?;
            n.events += 1;
        }
    }
    // Import error reports.
    if !patterns.is_empty() {
        let rows: Vec<(String, i64, String, String)> = db_run!(conn, |c| {
            let mut q = job_errors::table
                .into_boxed()
                .filter(job_errors::line.lt(0));
            for p in &patterns {
                q = q.or_filter(job_errors::message.like(p.clone()));
            }
            q.select((
                job_errors::job_id,
                job_errors::line,
                job_errors::col,
                job_errors::message,
            ))
            .load(c)
            .await
        })?;
        for (job, line, col, message) in rows {
            if let Some(new) = scrub_text(&message, identifiers) {
                db_run!(conn, |c| diesel::update(
                    job_errors::table.find((&job, line, &col))
                )
                .set(job_errors::message.eq(&new))
                .execute(c)
                .await)?;
                n.report_lines += 1;
            }
        }
    }
    // Responses kept for idempotent retries.
    crate::idempotency::forget_mentions(conn, entity_id, &patterns).await?;
    Ok(n)
}

/// Files produced by jobs (exports) that still exist.
async fn job_files(app: &App) -> Result<Vec<(String, String)>> {
    let mut c = app.db.conn().await?;
    let mut conn = c.conn();
    let rows: Vec<(String, Option<String>)> = db_run!(&mut conn, |c| jobs::table
        .filter(jobs::result_path.is_not_null())
        .select((jobs::id, jobs::result_path))
        .load(c)
        .await)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, p)| p.map(|p| (id, p)))
        .filter(|(_, p)| std::path::Path::new(p).exists())
        .collect())
}

/// The jobs whose files on disk mention any identifier.
pub async fn exports_mentioning(app: &App, identifiers: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (id, path) in job_files(app).await? {
        let ids = identifiers.to_vec();
        let found = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            let f = std::fs::File::open(&path)?;
            for line in BufReader::new(f).lines() {
                if scrub_text(&line?, &ids).is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .await
        .map_err(|e| Error::Internal(format!("scanning exports: {e}")))?
        .map_err(|e| Error::Internal(format!("scanning exports: {e}")))?;
        if found {
            out.push(id);
        }
    }
    Ok(out)
}

/// Rewrites every export file on disk that mentions an identifier, with
/// the identifiers replaced; returns the jobs whose files changed.
pub async fn scrub_exports(app: &App, identifiers: &[String]) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    for (id, path) in job_files(app).await? {
        let ids = identifiers.to_vec();
        let did = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            let tmp = format!("{path}.scrub");
            let mut any = false;
            {
                let input = BufReader::new(std::fs::File::open(&path)?);
                let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
                for line in input.lines() {
                    let line = line?;
                    match scrub_text(&line, &ids) {
                        Some(s) => {
                            any = true;
                            writeln!(out, "{s}")?;
                        }
                        None => writeln!(out, "{line}")?,
                    }
                }
                out.flush()?;
            }
            if any {
                std::fs::rename(&tmp, &path)?;
            } else {
                std::fs::remove_file(&tmp)?;
            }
            Ok(any)
        })
        .await
        .map_err(|e| Error::Internal(format!("scrubbing exports: {e}")))?
        .map_err(|e| Error::Internal(format!("scrubbing exports: {e}")))?;
        if did {
            changed.push(id);
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_replaced_in_any_case() {
        let ids = vec!["jane@example.com".to_owned(), "Jane Doe".to_owned()];
        assert_eq!(
            scrub_text("Call JANE DOE at jane@example.com", &ids).as_deref(),
            Some("Call [erased] at [erased]")
        );
        assert_eq!(scrub_text("nothing here", &ids), None);
        // Too short to search for safely.
        assert_eq!(scrub_text("Li met Bo", &["Li".to_owned()]), None);
    }

    #[test]
    fn values_become_tombstones_but_keys_stay() {
        let mut v = serde_json::json!({"firstName": "Jane", "emails": ["a@b.c"], "title": null});
        tombstone_values(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"firstName": "[erased]", "emails": ["[erased]"], "title": null})
        );
    }
}
