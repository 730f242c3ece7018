//! Rotting deals: an open deal that stays in a stage longer than the
//! stage's `rottingDays` gets one `opportunity.stale` event per stage
//! entry. Every replica checks periodically (`opportunity-stale-check-secs`);
//! the event goes in the same transaction as a mark keyed by the deal and
//! the time it entered the stage, so of several replicas (or several
//! checks) exactly one inserts the mark and sends the event; a deal that
//! leaves the stage and comes back enters it anew.

use std::time::Duration;

use chrono::NaiveDateTime;
use crm_core::access::Actor;
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::db_run;
use crm_core::error::Result;
use crm_core::events::{self, NewEvent};
use crm_core::identity::repo as users;
use crm_core::ids;
use crm_core::schema::{opportunities, opportunity_stale_marks, pipeline_stages};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::json;
use tokio::sync::watch;

/// Most deals one check marks per stage (the next check takes the rest).
const BATCH: i64 = 500;

/// A deal past its stage's threshold.
struct Rotting {
    id: String,
    owner_id: String,
    pipeline_id: String,
    stage_id: String,
    entered_at: NaiveDateTime,
    rotting_days: i64,
}

/// Open, live deals in stages with a rotting threshold that entered their
/// stage at or before the threshold and have no mark for that entry.
async fn rotting(conn: &mut Conn<'_>, now: NaiveDateTime) -> Result<Vec<Rotting>> {
    let stages: Vec<(String, i64)> = db_run!(conn, |c| pipeline_stages::table
        .filter(pipeline_stages::rotting_days.is_not_null())
        .filter(pipeline_stages::kind.eq("OPEN"))
        .select((
            pipeline_stages::id,
            pipeline_stages::rotting_days.assume_not_null(),
        ))
        .load(c)
        .await)?;
    let mut out = Vec::new();
    for (stage, days) in stages {
        let cutoff = now - chrono::Duration::days(days);
        let rows: Vec<(String, String, String, NaiveDateTime)> = db_run!(conn, |c| {
            opportunities::table
                .filter(opportunities::stage_id.eq(&stage))
                .filter(opportunities::stage_entered_at.le(cutoff))
                .filter(opportunities::deleted_at.is_null())
                .filter(opportunities::closed_at.is_null())
                .filter(diesel::dsl::not(diesel::dsl::exists(
                    opportunity_stale_marks::table
                        .filter(opportunity_stale_marks::opportunity_id.eq(opportunities::id))
                        .filter(
                            opportunity_stale_marks::entered_at.eq(opportunities::stage_entered_at),
                        ),
                )))
                .select((
                    opportunities::id,
                    opportunities::owner_id,
                    opportunities::pipeline_id,
                    opportunities::stage_entered_at,
                ))
                .order(opportunities::stage_entered_at)
                .limit(BATCH)
                .load(c)
                .await
        })?;
        out.extend(
            rows.into_iter()
                .map(|(id, owner_id, pipeline_id, entered_at)| Rotting {
                    id,
                    owner_id,
                    pipeline_id,
                    stage_id: stage.clone(),
                    entered_at,
                    rotting_days: days,
                }),
        );
    }
    Ok(out)
}

/// Marks every rotting deal and sends its event; returns how many this
/// call sent (a deal another replica marked first is skipped).
pub async fn mark_due(app: &App) -> Result<usize> {
    let now = ids::now();
    let due = {
        let mut c = app.db.conn().await?;
        rotting(&mut c.conn(), now).await?
    };
    let mut sent = 0;
    for d in due {
        let mut tx = app.db.begin().await?;
        let mut conn = tx.conn();
        let inserted = db_run!(&mut conn, |c| diesel::insert_into(
            opportunity_stale_marks::table
        )
        .values((
            opportunity_stale_marks::opportunity_id.eq(&d.id),
            opportunity_stale_marks::entered_at.eq(d.entered_at),
            opportunity_stale_marks::marked_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
        // The deal may have moved on since it was read: the mark is only
        // good while it is still in that stage since that time.
        let still: i64 = db_run!(&mut conn, |c| opportunities::table
            .filter(opportunities::id.eq(&d.id))
            .filter(opportunities::stage_id.eq(&d.stage_id))
            .filter(opportunities::stage_entered_at.eq(d.entered_at))
            .filter(opportunities::deleted_at.is_null())
            .filter(opportunities::closed_at.is_null())
            .count()
            .get_result(c)
            .await)?;
        if inserted == 0 || still == 0 {
            continue; // another replica got it, or the deal moved
        }
        let team_id = users::user(&mut conn, &d.owner_id)
            .await?
            .and_then(|u| u.team_id);
        events::append(
            &mut conn,
            &Actor {
                kind: "system",
                id: None,
                credential: None,
            },
            &[NewEvent {
                topic: crate::TOPIC,
                entity_type: "Opportunity",
                entity_id: d.id.clone(),
                kind: "opportunity.stale".into(),
                payload: json!({
                    "pipelineId": d.pipeline_id,
                    "stageId": d.stage_id,
                    "stageEnteredAt": d.entered_at.and_utc(),
                    "rottingDays": d.rotting_days,
                }),
                owner_id: Some(d.owner_id.clone()),
                team_id,
            }],
        )
        .await?;
        app.commit(tx).await?;
        sent += 1;
    }
    Ok(sent)
}

/// Runs [`mark_due`] every `opportunity-stale-check-secs` until shutdown.
pub async fn run(app: App, mut shutdown: watch::Receiver<bool>) {
    let Some(period) = app.config.stale_check_period else {
        return;
    };
    loop {
        match mark_due(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deals = n, "rotting deals marked stale"),
            Err(e) => tracing::warn!(error = %e, "checking for rotting deals failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(period.max(Duration::from_millis(100))) => {}
            _ = shutdown.changed() => return,
        }
    }
}
