//! The webhook dispatcher: one per process, started by `crm serve`.
//!
//! It wakes on every new event (and twice a second, for retries that fall
//! due and for work other replicas left), and runs one task per endpoint
//! that has work. A task first takes the endpoint's lease (a conditional
//! update of `lease_owner` / `lease_until`, so with several replicas on
//! one database exactly one of them works on an endpoint at a time, and so
//! each attempt is made by one replica); then, in a loop, it sends the
//! oldest pending delivery when it is due, or else turns the next outbox
//! events after the endpoint's cursor into deliveries (those it matches and
//! its principal may see, redacted for it) and moves the cursor past them,
//! in one transaction.
//!
//! Retries: the n-th failed attempt schedules the next one after the n-th
//! delay of `webhook-retry-schedule` (±10 % jitter), or after the
//! receiver's `Retry-After` on `429` / `503`. When the last delay is used
//! up the delivery is failed and the endpoint marked failing: later events
//! wait in the outbox until `redeliver` or an update resumes it. `410 Gone`
//! disables the endpoint at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::outbound::{self, Answer};
use super::{
    AttemptRow, DeliveryRow, EndpointRow, TOPIC, delivery, endpoint, new_message_id, principal_of,
    sign, status,
};
use crate::access::Principal;
use crate::app::App;
use crate::change::{self, Change};
use crate::db::Conn;
use crate::error::Result;
use crate::events::{self, Event, view::EventView};
use crate::schema::{webhook_deliveries, webhook_endpoints};
use crate::{db_run, ids};

const POLL: Duration = Duration::from_millis(500);
/// Events turned into deliveries per step.
const BATCH: i64 = 200;
/// A task waits itself for a retry due this soon; later ones are left to
/// the dispatcher (and the lease released meanwhile).
const MAX_WAIT: Duration = Duration::from_secs(10);
/// A lease lasts one attempt's deadline plus [`LEASE_MARGIN`]; it is
/// renewed before an attempt once this much of the margin has passed, so
/// it never runs out during one.
const LEASE_MARGIN: Duration = Duration::from_secs(15);
const RENEW_AFTER: Duration = Duration::from_millis(7_500);
const CLEANUP_EVERY: Duration = Duration::from_secs(3600);

/// Runs the dispatcher until `shutdown`.
pub async fn run(app: App, mut shutdown: watch::Receiver<bool>) {
    let me = format!("proc_{}", uuid::Uuid::now_v7().simple());
    let wake = Arc::new(Notify::new());
    let w = wake.clone();
    app.events.listen(Box::new(move |_: &Event| w.notify_one()));
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut not_before: HashMap<String, Instant> = HashMap::new();
    let (later_tx, mut later_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut last_cleanup: Option<Instant> = None;
    loop {
        while let Ok((id, at)) = later_rx.try_recv() {
            not_before.insert(id, at);
        }
        let now = Instant::now();
        not_before.retain(|_, at| *at > now);
        match due_endpoints(&app).await {
            Ok(ids) => {
                for id in ids {
                    if not_before.contains_key(&id)
                        || !running.lock().expect("running lock").insert(id.clone())
                    {
                        continue;
                    }
                    let (app, me, running, later, stop) = (
                        app.clone(),
                        me.clone(),
                        running.clone(),
                        later_tx.clone(),
                        shutdown.clone(),
                    );
                    tokio::spawn(async move {
                        match work(&app, &id, &me, stop).await {
                            Ok(Some(at)) => {
                                let _ = later.send((id.clone(), at));
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(endpoint = %id, error = %e, "webhook delivery step failed; retrying");
                            }
                        }
                        let _ = release(&app, &id, &me).await;
                        running.lock().expect("running lock").remove(&id);
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing webhook endpoints failed; retrying"),
        }
        if last_cleanup.is_none_or(|t| t.elapsed() >= CLEANUP_EVERY) {
            last_cleanup = Some(Instant::now());
            match cleanup(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deliveries = n, "old webhook deliveries removed"),
                Err(e) => tracing::warn!(error = %e, "webhook log clean-up failed"),
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Endpoints that have work (events after their cursor, or a pending
/// delivery that is due) and that no other process holds.
async fn due_endpoints(app: &App) -> Result<Vec<String>> {
    let mut c = app.db.conn().await?;
    let mut conn = c.conn();
    let now = ids::now();
    let head = app.events.head();
    Ok(db_run!(&mut conn, |c| webhook_endpoints::table
        .filter(webhook_endpoints::active.eq(true))
        .filter(webhook_endpoints::status.eq(status::ACTIVE))
        .filter(
            webhook_endpoints::lease_until
                .is_null()
                .or(webhook_endpoints::lease_until.lt(now))
        )
        .filter(
            webhook_endpoints::event_cursor
                .lt(head)
                .or(diesel::dsl::exists(
                    webhook_deliveries::table
                        .filter(webhook_deliveries::endpoint_id.eq(webhook_endpoints::id))
                        .filter(webhook_deliveries::status.eq(delivery::PENDING))
                        .filter(webhook_deliveries::next_attempt_at.le(now))
                ))
        )
        .select(webhook_endpoints::id)
        .load::<String>(c)
        .await)?)
}

/// Takes (or extends) the lease on an endpoint; the row if this process
/// holds it now.
async fn claim(app: &App, id: &str, me: &str) -> Result<Option<EndpointRow>> {
    // In a transaction: on SQLite that serialises it with the process's
    // other writers, so it never invalidates their snapshots mid-way.
    let mut tx = app.db.begin().await?;
    let mut conn = tx.conn();
    let now = ids::now();
    let lease = app.config.webhooks.timeout + LEASE_MARGIN;
    let until = now + chrono::Duration::from_std(lease).unwrap_or_default();
    let n = db_run!(&mut conn, |c| diesel::update(
        webhook_endpoints::table
            .filter(webhook_endpoints::id.eq(id))
            .filter(
                webhook_endpoints::lease_owner
                    .is_null()
                    .or(webhook_endpoints::lease_owner.eq(me))
                    .or(webhook_endpoints::lease_until.lt(now))
            )
    )
    .set((
        webhook_endpoints::lease_owner.eq(me),
        webhook_endpoints::lease_until.eq(until),
    ))
    .execute(c)
    .await)?;
    if n == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    let ep = endpoint(&mut conn, id).await?;
    tx.commit().await?;
    Ok(ep)
}

async fn release(app: &App, id: &str, me: &str) -> Result<()> {
    let mut tx = app.db.begin().await?;
    let mut conn = tx.conn();
    db_run!(&mut conn, |c| diesel::update(
        webhook_endpoints::table
            .filter(webhook_endpoints::id.eq(id))
            .filter(webhook_endpoints::lease_owner.eq(me))
    )
    .set((
        webhook_endpoints::lease_owner.eq(None::<String>),
        webhook_endpoints::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(())
}

/// Works on one endpoint until it has nothing due. Returns when to look
/// again if a retry is due later.
async fn work(
    app: &App,
    id: &str,
    me: &str,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Option<Instant>> {
    // The lease is renewed (a committed write) only when a good part of
    // its margin over one attempt is used: not once per delivery.
    let mut claimed: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            return Ok(None);
        }
        let ep = if claimed.is_some_and(|t| t.elapsed() < RENEW_AFTER) {
            // Still ours; the row is read again, so a change of state or a
            // replay shows at once.
            let mut c = app.db.conn().await?;
            match endpoint(&mut c.conn(), id).await? {
                Some(ep) if ep.lease_owner.as_deref() == Some(me) => ep,
                _ => return Ok(None),
            }
        } else {
            let at = Instant::now();
            let Some(ep) = claim(app, id, me).await? else {
                return Ok(None);
            };
            claimed = Some(at);
            ep
        };
        if !ep.active || ep.status != status::ACTIVE {
            return Ok(None);
        }
        if let Some(d) = next_pending(app, id).await? {
            let now = ids::now();
            if let Some(at) = d.next_attempt_at
                && at > now
            {
                let wait = (at - now).to_std().unwrap_or_default();
                if wait > MAX_WAIT {
                    return Ok(Some(Instant::now() + wait));
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = shutdown.changed() => return Ok(None),
                }
            }
            attempt(app, ep, d).await?;
            continue;
        }
        if !enqueue(app, &ep, me).await? {
            return Ok(None);
        }
    }
}

async fn next_pending(app: &App, endpoint_id: &str) -> Result<Option<DeliveryRow>> {
    let mut c = app.db.conn().await?;
    let mut conn = c.conn();
    Ok(db_run!(&mut conn, |c| webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
        .filter(webhook_deliveries::status.eq(delivery::PENDING))
        .order((
            webhook_deliveries::created_at.asc(),
            webhook_deliveries::event_seq.asc(),
            webhook_deliveries::id.asc()
        ))
        .select(DeliveryRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The body of an event's message, as `view` may see it; `None` when the
/// endpoint does not get it (topic, row scope, hidden fields, field filter).
pub fn message(
    ep_topics: &[String],
    fields: Option<&[String]>,
    view: &EventView,
    e: &Event,
) -> Option<Value> {
    if !super::matches(ep_topics, &e.topic, &e.kind) {
        return None;
    }
    let payload = view.present(e)?;
    let after = payload.get("changed").cloned().unwrap_or_else(|| json!({}));
    if let Some(fields) = fields
        && e.kind.ends_with(".updated")
        && !after
            .as_object()
            .is_some_and(|o| o.keys().any(|k| fields.contains(k)))
    {
        return None;
    }
    let mut data = json!({
        "cursor": events::encode_cursor(e.seq),
        "topic": e.topic,
        "kind": e.kind,
        "entityType": e.entity_type,
        "entityId": e.entity_id,
        "actor": e.actor,
        "after": after,
    });
    if let Some(before) = payload.get("before") {
        data["before"] = before.clone();
    }
    Some(json!({
        "type": e.kind,
        "timestamp": e.created_at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": data,
    }))
}

/// Turns the next events after the endpoint's cursor into deliveries and
/// moves the cursor. False when there were no events.
async fn enqueue(app: &App, ep: &EndpointRow, me: &str) -> Result<bool> {
    let mut c = app.db.conn().await?;
    let mut conn = c.conn();
    let Some(principal) = principal_of(&mut conn, ep).await? else {
        drop(c);
        set_status(
            app,
            ep,
            status::DISABLED,
            "the user or API key it acts as was deactivated or revoked",
        )
        .await?;
        return Ok(false);
    };
    let batch = events::read_after(&mut conn, ep.event_cursor, None, BATCH).await?;
    let Some(last) = batch.last().map(|e| e.seq) else {
        return Ok(false);
    };
    drop(c);
    let view = EventView::for_principal(app, &principal).await?;
    let topics = ep.topic_list();
    let fields = ep.field_list();
    let mut rows: Vec<DeliveryRow> = batch
        .iter()
        .filter_map(|e| {
            message(&topics, fields.as_deref(), &view, e).map(|body| {
                DeliveryRow::pending(
                    &ep.id,
                    new_message_id(),
                    Some(e.seq),
                    &e.kind,
                    body.to_string(),
                )
            })
        })
        .collect();
    // One creation time for the batch: pending deliveries go out in
    // (created_at, event cursor) order.
    let now = ids::now();
    for r in &mut rows {
        r.created_at = now;
        r.next_attempt_at = Some(now);
    }
    let mut tx = app.db.begin().await?;
    let mut conn = tx.conn();
    let moved = db_run!(&mut conn, |c| diesel::update(
        webhook_endpoints::table
            .filter(webhook_endpoints::id.eq(&ep.id))
            .filter(webhook_endpoints::event_cursor.eq(ep.event_cursor))
            .filter(webhook_endpoints::lease_owner.eq(me))
    )
    .set(webhook_endpoints::event_cursor.eq(last))
    .execute(c)
    .await)?;
    if moved == 0 {
        // Replayed or taken over meanwhile: look again.
        tx.rollback().await?;
        return Ok(true);
    }
    if !rows.is_empty() {
        crate::insert_all!(&mut conn, webhook_deliveries::table, rows);
    }
    tx.commit().await?;
    Ok(true)
}

/// The delay before attempt `n + 1` after `n` failed attempts, or `None`
/// when the schedule is used up.
fn next_delay(app: &App, failed: usize, answer: &Answer) -> Option<Duration> {
    let base = *app.config.webhooks.retry_schedule.get(failed - 1)?;
    if matches!(answer.status, Some(429 | 503))
        && let Some(secs) = answer.retry_after
    {
        return Some(Duration::from_secs(secs));
    }
    let jitter = 0.9 + rand::random::<f64>() * 0.2;
    Some(base.mul_f64(jitter))
}

/// Makes one attempt of `d` and records it.
async fn attempt(app: &App, ep: EndpointRow, d: DeliveryRow) -> Result<()> {
    let settings = &app.config.webhooks;
    let sent_at = chrono::Utc::now();
    let timestamp = sent_at.timestamp();
    let signature = sign::signature(
        &ep.signing_secrets(sent_at.naive_utc()),
        &d.message_id,
        timestamp,
        &d.payload,
    );
    let headers = [
        ("webhook-id", d.message_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ];
    let answer = match outbound::parse(&ep.url) {
        Ok(target) => {
            outbound::post(
                &target,
                outbound::Reach {
                    allow: &settings.allow_hosts,
                    tls: &settings.tls,
                },
                &headers,
                d.payload.clone(),
                settings.timeout,
            )
            .await
        }
        Err(why) => Answer {
            error: Some(format!("URL {why}")),
            ..Answer::default()
        },
    };
    let ok = answer.status.is_some_and(|s| (200..300).contains(&s));
    let failed = (d.attempts + 1) as usize;
    let now = ids::now();
    let row = AttemptRow {
        id: ids::new_id("wha"),
        delivery_id: d.id.clone(),
        attempted_at: sent_at.naive_utc(),
        status_code: answer.status.map(i64::from),
        latency_ms: answer.latency.as_millis() as i64,
        error: answer.error.clone(),
        response_excerpt: answer.excerpt.clone(),
        succeeded: ok,
    };
    let gone = answer.status == Some(410);
    let next = if ok || gone {
        None
    } else {
        next_delay(app, failed, &answer)
    };
    let (state, next_at) = match (ok, next) {
        (true, _) => (delivery::SUCCEEDED, None),
        (false, Some(delay)) => (
            delivery::PENDING,
            Some(now + chrono::Duration::from_std(delay).unwrap_or_default()),
        ),
        (false, None) => (delivery::FAILED, None),
    };
    if !ok {
        tracing::info!(
            endpoint = %ep.id, delivery = %d.id, attempt = failed,
            status = ?answer.status, error = ?answer.error,
            "webhook attempt failed"
        );
    }
    let mut tx = app.db.begin().await?;
    let mut conn = tx.conn();
    if state != delivery::FAILED
        && let Conn::Pg(c) = &mut conn
    {
        // The record of an attempt need not wait for the disk: if the
        // database loses it in a crash, the delivery is still pending and
        // is sent again with the same `webhook-id`, which receivers
        // de-duplicate on. (A failure that changes the endpoint's state
        // writes an event and commits durably.)
        diesel::sql_query("SET LOCAL synchronous_commit = off")
            .execute(&mut **c)
            .await?;
    }
    db_run!(&mut conn, |c| diesel::insert_into(
        crate::schema::webhook_attempts::table
    )
    .values(row.clone())
    .execute(c)
    .await)?;
    db_run!(&mut conn, |c| diesel::update(
        webhook_deliveries::table.find(&d.id)
    )
    .set((
        webhook_deliveries::attempts.eq(d.attempts + 1),
        webhook_deliveries::status.eq(state),
        webhook_deliveries::next_attempt_at.eq(next_at),
        webhook_deliveries::finished_at.eq((state != delivery::PENDING).then_some(now)),
    ))
    .execute(c)
    .await)?;
    if state == delivery::FAILED {
        let (to, why) = if gone {
            (
                status::DISABLED,
                "the receiver answered 410 Gone".to_owned(),
            )
        } else {
            let last = match (answer.status, &answer.error) {
                (Some(s), _) => format!("HTTP {s}"),
                (None, Some(e)) => e.clone(),
                (None, None) => "no answer".into(),
            };
            (
                status::FAILING,
                format!("delivery {} failed {failed} times (last: {last})", d.id),
            )
        };
        change_status(&mut conn, &ep, to, &why).await?;
    }
    app.commit(tx).await
}

/// Sets an endpoint's state, with its audit entry and event (topic
/// `webhooks`, e.g. `webhook_endpoint.failing`), in the caller's
/// transaction.
async fn change_status(
    conn: &mut Conn<'_>,
    ep: &EndpointRow,
    to: &'static str,
    why: &str,
) -> Result<()> {
    // Re-read: the owner may have changed it since the attempt began.
    let Some(current) = endpoint(conn, &ep.id).await? else {
        return Ok(());
    };
    let mut next = current.clone();
    next.status = to.to_owned();
    next.status_reason = Some(why.to_owned());
    next.version += 1;
    next.updated_at = ids::now();
    super::update_endpoint(conn, &next, current.version).await?;
    change::record(
        conn,
        &Principal::System.actor(),
        Change {
            topic: TOPIC,
            entity_type: "WebhookEndpoint",
            entity_id: ep.id.clone(),
            action: to,
            before: Some(current.snapshot()),
            after: Some(next.snapshot()),
            owner_id: current.owner_id.clone(),
            team_id: None,
        },
    )
    .await?;
    tracing::warn!(endpoint = %ep.id, status = to, reason = why, "webhook endpoint state changed");
    Ok(())
}

async fn set_status(app: &App, ep: &EndpointRow, to: &'static str, why: &str) -> Result<()> {
    let mut tx = app.db.begin().await?;
    let mut conn = tx.conn();
    change_status(&mut conn, ep, to, why).await?;
    app.commit(tx).await
}

/// Removes finished deliveries (and their attempts) older than the
/// retention setting.
async fn cleanup(app: &App) -> Result<usize> {
    let keep = chrono::Duration::from_std(app.config.webhooks.log_retention).unwrap_or_default();
    let cutoff = ids::now() - keep;
    let mut tx = app.db.begin().await?;
    let mut conn = tx.conn();
    let old: Vec<String> = db_run!(&mut conn, |c| webhook_deliveries::table
        .filter(webhook_deliveries::finished_at.lt(cutoff))
        .select(webhook_deliveries::id)
        .load::<String>(c)
        .await)?;
    for chunk in old.chunks(500) {
        let chunk = chunk.to_vec();
        db_run!(&mut conn, |c| diesel::delete(
            crate::schema::webhook_attempts::table
                .filter(crate::schema::webhook_attempts::delivery_id.eq_any(chunk.clone()))
        )
        .execute(c)
        .await)?;
        db_run!(&mut conn, |c| diesel::delete(
            webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(chunk.clone()))
        )
        .execute(c)
        .await)?;
    }
    tx.commit().await?;
    Ok(old.len())
}
