//! Domain events through a transactional outbox.
//!
//! A mutation calls [`append`] on the connection of its own transaction, so an
//! event exists exactly when the change it describes committed. The event's
//! `seq` is its cursor. [`hub::EventHub`] tails the table and fans events out
//! to subscriptions and in-process listeners.
//!
//! The cursor must never let a reader pass over an event that commits later
//! with a smaller number (the classic outbox gap under concurrent writers).
//! On PostgreSQL events get their cursor after they commit: writers insert
//! them with `seq` NULL, taking no lock beyond their own rows', and
//! [`sequence`] numbers the committed ones in batches, above every cursor
//! handed out before, in one short transaction under an advisory lock that
//! only sequencers take (any replica's hub runs it when woken). A batch
//! becomes visible at once, so what a reader sees is always a prefix of the
//! cursor order: when `seq = n` is visible, every smaller `seq` already is,
//! and a cursor, once visible, never changes. Two writes to one record are
//! ordered by its row lock, so the later one's event is inserted (its `id`
//! drawn) after the earlier committed, and gets the larger cursor. On
//! SQLite write transactions are serialised, so `seq` is assigned on
//! insert. See ARCHITECTURE.md ("Events") for why this design.

pub mod hub;
pub mod view;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::access::Actor;
use crate::db::Conn;
use crate::error::Result;
use crate::schema::outbox;

/// Advisory lock key that serialises [`sequence`] runs on PostgreSQL.
const SEQUENCER_LOCK: i64 = 0x63726d_6f7574; // "crm out"

/// Events numbered per [`sequence`] statement at most.
pub const SEQUENCE_BATCH: i64 = 10_000;

/// The notification channel that wakes tailers on PostgreSQL.
pub const NOTIFY_CHANNEL: &str = "crm_outbox";

/// An event to append.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// Topic subscribers filter on (`identity`, `customers`, …).
    pub topic: &'static str,
    /// Entity type, e.g. `User`.
    pub entity_type: &'static str,
    /// Entity id.
    pub entity_id: String,
    /// Event kind, e.g. `user.created`.
    pub kind: String,
    /// Payload (changed fields and the like).
    pub payload: Value,
    /// The user who owns the record, for row scope.
    pub owner_id: Option<String>,
    /// The owner's team (or the team itself), for row scope.
    pub team_id: Option<String>,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct Event {
    /// The cursor.
    pub seq: i64,
    /// Topic.
    pub topic: String,
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: String,
    /// Kind.
    pub kind: String,
    /// JSON payload text.
    pub payload: String,
    /// Actor id (`user:usr_…`, `api_key:key_…`), if any.
    pub actor: Option<String>,
    /// When it was written (UTC).
    pub created_at: NaiveDateTime,
    /// Owner of the record, for row scope.
    pub owner_id: Option<String>,
    /// Owner's team, for row scope.
    pub team_id: Option<String>,
}

/// Appends events in the caller's transaction.
pub async fn append(conn: &mut Conn<'_>, actor: &Actor, events: &[NewEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let now = crate::ids::now();
    let actor = actor.id.as_ref().map(|id| format!("{}:{id}", actor.kind));
    let rows: Vec<_> = events
        .iter()
        .map(|e| {
            (
                outbox::topic.eq(e.topic),
                outbox::entity_type.eq(e.entity_type),
                outbox::entity_id.eq(&e.entity_id),
                outbox::kind.eq(&e.kind),
                outbox::payload.eq(e.payload.to_string()),
                outbox::actor.eq(actor.clone()),
                outbox::created_at.eq(now),
                outbox::owner_id.eq(e.owner_id.clone()),
                outbox::team_id.eq(e.team_id.clone()),
            )
        })
        .collect();
    // Multi-row inserts: bulk writers (imports) append thousands at once.
    // On PostgreSQL `seq` stays NULL until [`sequence`] numbers the rows.
    crate::insert_all!(conn, outbox::table, rows);
    if let Conn::Pg(c) = conn {
        // Wakes every replica's hub at commit, which sequences and reads.
        diesel::sql_query(format!("SELECT pg_notify('{NOTIFY_CHANNEL}', '')"))
            .execute(&mut **c)
            .await?;
    }
    Ok(())
}

/// Gives committed events without a cursor theirs (PostgreSQL; a no-op on
/// SQLite, where the insert assigns it), in insertion order, above every
/// cursor handed out before; returns how many. Call it inside a
/// transaction, whose commit publishes the numbers and releases the
/// sequencer lock: the hub's own short one, or an erasure's, which numbers
/// every committed event before scrubbing them. Wakes the replicas' hubs
/// when it numbered any.
pub async fn sequence(conn: &mut Conn<'_>) -> Result<usize> {
    let Conn::Pg(c) = conn else {
        return Ok(0);
    };
    diesel::sql_query(format!("SELECT pg_advisory_xact_lock({SEQUENCER_LOCK})"))
        .execute(&mut **c)
        .await?;
    // The statement's snapshot is taken after the lock: it sees every number
    // the previous sequencer committed, and the rows of every writer that
    // committed by now.
    let n = diesel::sql_query(format!(
        "UPDATE outbox o SET seq = b.base + r.rn \
         FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM outbox \
               WHERE seq IS NULL ORDER BY id LIMIT {SEQUENCE_BATCH}) r, \
              (SELECT COALESCE(MAX(seq), 0) AS base FROM outbox) b \
         WHERE o.id = r.id"
    ))
    .execute(&mut **c)
    .await?;
    if n > 0 {
        diesel::sql_query(format!("SELECT pg_notify('{NOTIFY_CHANNEL}', '')"))
            .execute(&mut **c)
            .await?;
    }
    Ok(n)
}

/// Reads up to `limit` events after `after`, optionally only some topics.
pub async fn read_after(
    conn: &mut Conn<'_>,
    after: i64,
    topics: Option<&[String]>,
    limit: i64,
) -> Result<Vec<Event>> {
    // The body is expanded once per backend, so each arm boxes its own query.
    let rows = crate::db_run!(conn, |c| {
        let mut q = outbox::table
            .filter(outbox::seq.gt(after))
            .order(outbox::seq.asc())
            .limit(limit)
            .select(Event::as_select())
            .into_boxed();
        if let Some(t) = topics {
            q = q.filter(outbox::topic.eq_any(t.to_vec()));
        }
        q.load(c).await
    })?;
    Ok(rows)
}

/// The highest cursor written so far (0 when empty).
pub async fn head(conn: &mut Conn<'_>) -> Result<i64> {
    let max: Option<i64> = crate::db_run!(conn, |c| outbox::table
        .select(diesel::dsl::max(outbox::seq))
        .first(c)
        .await)?;
    Ok(max.unwrap_or(0))
}

/// Encodes a cursor for clients.
pub fn encode_cursor(seq: i64) -> String {
    seq.to_string()
}

/// Decodes a client's cursor (VALIDATION error naming `field` if bad).
pub fn decode_cursor(s: &str, field: &str) -> Result<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| crate::error::Error::invalid(field, "not a valid event cursor"))
}
