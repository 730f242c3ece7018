//! Idempotency keys: the storage behind the `Idempotency-Key` header of
//! POST mutations (the IETF httpapi draft's semantics, as Stripe uses them).
//!
//! A request claims its key by inserting a row keyed by (principal, key) as
//! `running`; the primary key decides between concurrent requests, so
//! several replicas on one PostgreSQL database agree on which one runs. The
//! claim lapses at `locked_until` (the request timeout, plus a margin), so a
//! key whose process died is not stuck. When the request ends, the row
//! becomes `done` with the response to replay; a request that must stay
//! retryable (a timeout, an internal failure) releases its claim instead.
//! Rows are kept until `expires_at` (`idempotency-ttl-secs` after the
//! first request), then deleted by [`run_sweeper`]; an expired row still
//! present reads as absent.
//!
//! Settings: `idempotency-ttl-secs` (`CRM_IDEMPOTENCY_TTL_SECS`, default
//! 86400). The claim's lifetime follows `request-timeout-secs`.
//!
//! Core knows nothing about HTTP: the gateway decides what a request's
//! fingerprint covers and what of a response is stored.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::access::Principal;
use crate::db::{Conn, Db};
use crate::db_run;
use crate::error::{Error, Result};
use crate::schema::idempotency_keys as ik;

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;

const RUNNING: &str = "running";
const DONE: &str = "done";

/// How often each process deletes expired keys.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Idempotency settings.
#[derive(Clone, Debug)]
pub struct IdempotencySettings {
    /// How long a key and its stored response are kept after the first
    /// request.
    pub ttl: Duration,
    /// Tests only (never set from configuration): a request that claimed
    /// its key takes a permit here before it runs, so a test can hold one
    /// in flight and send a concurrent retry deterministically.
    pub hold: Option<Arc<tokio::sync::Semaphore>>,
}

/// A response as stored for replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// HTTP status.
    pub status: u16,
    /// The headers replayed with it (name, value).
    pub headers: Vec<(String, String)>,
    /// The body (JSON text).
    pub body: String,
}

/// A key this request holds: complete or release it.
#[derive(Clone, Debug)]
pub struct Ticket {
    principal: String,
    key: String,
    claim_id: String,
}

/// The outcome of [`claim`].
#[derive(Debug)]
pub enum Claim {
    /// The key is this request's: run it, then [`complete`] or [`release`].
    Claimed(Ticket),
    /// An earlier request with this key and body finished: its response.
    Replay(Stored),
    /// An earlier request with this key and body is still running.
    InFlight,
    /// The key was used with a different request.
    Mismatch,
}

/// The key space of a caller: `user:<id>` or `api_key:<id>`. Anonymous
/// callers (and the service itself) have none.
pub fn principal_key(p: &Principal) -> Option<String> {
    match p {
        Principal::User(u) => Some(format!("user:{}", u.id)),
        Principal::ApiKey(k) => Some(format!("api_key:{}", k.id)),
        Principal::Anonymous | Principal::System | Principal::Public(_) => None,
    }
}

/// Checks a key as sent: 1 to [`MAX_KEY_LEN`] bytes. The draft sends it as
/// a structured-field string (`"…"`); the quotes are not part of the key.
pub fn parse_key(raw: &str) -> Result<String> {
    let key = raw
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(raw);
    if key.is_empty() {
        return Err(Error::invalid("Idempotency-Key", "must not be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(
            "Idempotency-Key",
            format!("is {} bytes long; the limit is {MAX_KEY_LEN}", key.len()),
        ));
    }
    Ok(key.to_owned())
}

/// The fingerprint of a request: SHA-256 (hex) of `value` written as
/// canonical JSON (object keys sorted at every level), so the order in
/// which a client writes keys does not matter.
pub fn fingerprint(value: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::from(k.as_str()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut canonical = String::new();
    write(value, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored state of a key.
#[derive(Queryable)]
struct Row {
    claim_id: String,
    fingerprint: String,
    status: String,
    locked_until: NaiveDateTime,
    expires_at: NaiveDateTime,
    response_status: Option<i64>,
    response_headers: Option<String>,
    response_body: Option<String>,
}

/// `now + d`, capped at a century (settings are only bounded below).
fn after(now: NaiveDateTime, d: Duration) -> NaiveDateTime {
    let cap = chrono::Duration::days(36_500);
    let d = chrono::Duration::from_std(d).unwrap_or(cap).min(cap);
    now + d
}

/// Claims `key` for `principal`'s request with `fingerprint`. The claim is
/// held for `lock` (after which another request may take it over); the
/// row lives for `ttl`. One short transaction.
pub async fn claim(
    db: &Db,
    principal: &str,
    key: &str,
    fingerprint: &str,
    lock: Duration,
    ttl: Duration,
) -> Result<Claim> {
    let now = crate::ids::now();
    let claim_id = uuid::Uuid::now_v7().simple().to_string();
    let ticket = Ticket {
        principal: principal.to_owned(),
        key: key.to_owned(),
        claim_id: claim_id.clone(),
    };
    let mut tx = db.begin().await?;
    let mut conn = tx.conn();
    let row = (
        ik::principal.eq(principal),
        ik::idem_key.eq(key),
        ik::claim_id.eq(&claim_id),
        ik::fingerprint.eq(fingerprint),
        ik::status.eq(RUNNING),
        ik::created_at.eq(now),
        ik::locked_until.eq(after(now, lock)),
        ik::expires_at.eq(after(now, ttl)),
    );
    // On PostgreSQL a concurrent claim of the same key waits here for the
    // other transaction, then inserts nothing.
    let inserted = db_run!(&mut conn, |c| diesel::insert_into(ik::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    let outcome = if inserted == 1 {
        Claim::Claimed(ticket)
    } else {
        let existing: Row = db_run!(&mut conn, |c| ik::table
            .filter(ik::principal.eq(principal))
            .filter(ik::idem_key.eq(key))
            .select((
                ik::claim_id,
                ik::fingerprint,
                ik::status,
                ik::locked_until,
                ik::expires_at,
                ik::response_status,
                ik::response_headers,
                ik::response_body,
            ))
            .first(c)
            .await)?;
        let expired = existing.expires_at <= now;
        let stale = existing.status == RUNNING && existing.locked_until <= now;
        if expired || (stale && existing.fingerprint == fingerprint) {
            // A lapsed key starts over; a claim whose process died is taken
            // over. Conditional on the claim we read, so of two requests
            // taking over one key only one wins.
            let taken = take_over(
                &mut conn,
                &ticket,
                &existing.claim_id,
                fingerprint,
                now,
                lock,
                ttl,
            )
            .await?;
            if taken {
                Claim::Claimed(ticket)
            } else {
                Claim::InFlight
            }
        } else if existing.fingerprint != fingerprint {
            Claim::Mismatch
        } else if existing.status == DONE {
            Claim::Replay(stored(existing)?)
        } else {
            Claim::InFlight
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

async fn take_over(
    conn: &mut Conn<'_>,
    ticket: &Ticket,
    old_claim: &str,
    fingerprint: &str,
    now: NaiveDateTime,
    lock: Duration,
    ttl: Duration,
) -> Result<bool> {
    let target = ik::table
        .filter(ik::principal.eq(&ticket.principal))
        .filter(ik::idem_key.eq(&ticket.key))
        .filter(ik::claim_id.eq(old_claim));
    let changes = (
        ik::claim_id.eq(&ticket.claim_id),
        ik::fingerprint.eq(fingerprint),
        ik::status.eq(RUNNING),
        ik::created_at.eq(now),
        ik::locked_until.eq(after(now, lock)),
        ik::expires_at.eq(after(now, ttl)),
        ik::response_status.eq(None::<i64>),
        ik::response_headers.eq(None::<String>),
        ik::response_body.eq(None::<String>),
    );
    let n = db_run!(conn, |c| diesel::update(target)
        .set(changes)
        .execute(c)
        .await)?;
    Ok(n == 1)
}

fn stored(row: Row) -> Result<Stored> {
    let bad = || Error::Internal("idempotency key row marked done without a response".into());
    let headers: Vec<(String, String)> = match &row.response_headers {
        Some(h) => serde_json::from_str(h)
            .map_err(|e| Error::Internal(format!("stored response headers: {e}")))?,
        None => Vec::new(),
    };
    Ok(Stored {
        status: u16::try_from(row.response_status.ok_or_else(bad)?).map_err(|_| bad())?,
        headers,
        body: row.response_body.ok_or_else(bad)?,
    })
}

/// Stores the response of a claimed request for replay. False if the claim
/// had lapsed and another request took the key over (nothing stored).
pub async fn complete(db: &Db, ticket: &Ticket, response: &Stored) -> Result<bool> {
    let headers = serde_json::to_string(&response.headers)
        .map_err(|e| Error::Internal(format!("response headers: {e}")))?;
    let mut tx = db.begin().await?;
    let mut conn = tx.conn();
    let target = ik::table
        .filter(ik::principal.eq(&ticket.principal))
        .filter(ik::idem_key.eq(&ticket.key))
        .filter(ik::claim_id.eq(&ticket.claim_id));
    let changes = (
        ik::status.eq(DONE),
        ik::response_status.eq(i64::from(response.status)),
        ik::response_headers.eq(headers),
        ik::response_body.eq(&response.body),
    );
    let n = db_run!(&mut conn, |c| diesel::update(target)
        .set(changes)
        .execute(c)
        .await)?;
    tx.commit().await?;
    Ok(n == 1)
}

/// Gives a claimed key up without storing anything, so a retry runs again.
pub async fn release(db: &Db, ticket: &Ticket) -> Result<()> {
    let mut tx = db.begin().await?;
    let mut conn = tx.conn();
    let target = ik::table
        .filter(ik::principal.eq(&ticket.principal))
        .filter(ik::idem_key.eq(&ticket.key))
        .filter(ik::claim_id.eq(&ticket.claim_id))
        .filter(ik::status.eq(RUNNING));
    db_run!(&mut conn, |c| diesel::delete(target).execute(c).await)?;
    tx.commit().await
}

/// Forgets the stored responses that mention a record (its id) or match
/// any of the LIKE `patterns` (a person's identifiers), in the caller's
/// transaction: erasing a person must not leave their data replayable. A
/// retry with such a key runs again. Returns how many were forgotten.
pub async fn forget_mentions(
    conn: &mut Conn<'_>,
    entity_id: &str,
    patterns: &[String],
) -> Result<usize> {
    // `_` stays: as a LIKE wildcard it also matches itself.
    let id_pattern = format!("%{}%", entity_id.replace(['%', '\\'], ""));
    let keys: Vec<(String, String)> = db_run!(conn, |c| {
        let mut q = ik::table
            .filter(ik::response_body.like(id_pattern.clone()))
            .into_boxed();
        for p in patterns {
            q = q.or_filter(ik::response_body.like(p.clone()));
        }
        q.select((ik::principal, ik::idem_key)).load(c).await
    })?;
    for (principal, key) in &keys {
        let target = ik::table
            .filter(ik::principal.eq(principal))
            .filter(ik::idem_key.eq(key));
        db_run!(conn, |c| diesel::delete(target).execute(c).await)?;
    }
    Ok(keys.len())
}

/// Deletes the keys that expired before `now`; returns how many.
pub async fn delete_expired(db: &Db, now: NaiveDateTime) -> Result<usize> {
    let mut tx = db.begin().await?;
    let mut conn = tx.conn();
    let n = db_run!(&mut conn, |c| diesel::delete(
        ik::table.filter(ik::expires_at.le(now))
    )
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(n)
}

/// Deletes expired keys at start and every ten minutes until shutdown.
/// Every replica runs it; the statement is the same whoever runs it.
pub async fn run_sweeper(db: Db, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        match delete_expired(&db, crate::ids::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "expired idempotency keys deleted"),
            Err(e) => tracing::warn!(error = %e, "could not delete expired idempotency keys"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_key_order_only() {
        let a = serde_json::json!({"query": "q", "variables": {"a": 1, "b": {"x": 1, "y": 2}}});
        let b = serde_json::json!({"variables": {"b": {"y": 2, "x": 1}, "a": 1}, "query": "q"});
        let c = serde_json::json!({"query": "q", "variables": {"a": 2, "b": {"x": 1, "y": 2}}});
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
        assert_eq!(fingerprint(&a).len(), 64);
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(parse_key("abc").unwrap(), "abc");
        assert_eq!(parse_key("\"abc\"").unwrap(), "abc");
        assert!(parse_key("").is_err());
        assert!(parse_key("\"\"").is_err());
        assert!(parse_key(&"k".repeat(255)).is_ok());
        assert!(parse_key(&"k".repeat(256)).is_err());
    }
}
