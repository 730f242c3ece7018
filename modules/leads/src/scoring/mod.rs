//! Lead scoring: fit rules on a lead's fields and engagement rules on
//! events, managed over GraphQL; each lead's fit (0–100), engagement
//! (0–100, halving every half-life), combined score, grade and the rules
//! behind them.
//!
//! Where scores move, in the transaction of the change that moves them:
//! - a lead's create, update or import row: [`store::refresh_fit`] from
//!   the lead's `after_write` hook;
//! - a fit rule's create, update or delete: every lead re-scored
//!   ([`store::rescore_all`], from the rule's kit hooks);
//! - an activity logged on a lead's timeline (not a task): the platform's
//!   timeline hook (`Module::timeline_entry`, called by the customers
//!   module without knowing leads) calls [`engage`] with
//!   `ACTIVITY_LOGGED`;
//! - anything else that engages (a web form, a marketing email) calls
//!   [`engage`] in its own transaction.
//!
//! Decay is exact at read time (`engagement × 0.5^((t − at) / half-life)`);
//! [`run_decay`] persists it once per period (setting
//! `lead-score-decay-secs`, an hour by default) across replicas (a
//! conditional update of the settings row's `decay_period` decides which
//! replica), so the stored `score` and `grade` that lead filters use stay
//! current.

pub mod graphql;
pub mod rules;
pub mod store;

use std::time::Duration;

use chrono::NaiveDateTime;
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::entity::sql::Sql;
use crm_core::error::Result;
use crm_core::ids;
use tokio::sync::watch;

pub use crate::values::EngagementEvent;
pub use store::{Scores, fit_score, scores_now};

/// Gives `lead_id` the points of the active engagement rules for `event`
/// as of `at` (clamped to now), in the caller's transaction; returns the
/// points given. For a capture path such as a web form:
/// `scoring::engage(&mut tx.conn(), &lead.id, EngagementEvent::FormSubmitted, now)`.
pub async fn engage(
    conn: &mut Conn<'_>,
    lead_id: &str,
    event: EngagementEvent,
    at: NaiveDateTime,
) -> Result<i64> {
    store::engage(conn, lead_id, event, at).await
}

/// Persists the decay as of `now` if the run of `now`'s period (periods
/// of `period_secs` since the epoch) is still unclaimed; returns how many
/// leads changed, or None when another replica (or an earlier call) had
/// the period, or nothing is engaged.
pub async fn decay_due(app: &App, now: NaiveDateTime, period_secs: i64) -> Result<Option<usize>> {
    let engaged = {
        let mut c = app.db.conn().await?;
        let mut q = Sql::new("SELECT COUNT(*) AS n FROM lead_scores WHERE engagement > 0");
        q.push(" AND engagement_at < ").bind(now);
        q.count(&mut c.conn()).await?
    };
    if engaged == 0 {
        return Ok(None);
    }
    let period = now.and_utc().timestamp() / period_secs.max(1);
    let mut tx = app.db.begin().await?;
    store::ensure_settings(&mut tx.conn()).await?;
    let mut claim = Sql::new("UPDATE scoring_settings SET decay_period = ");
    claim
        .bind(period)
        .push(" WHERE id = ")
        .bind(store::SETTINGS_ID)
        .push(" AND (decay_period IS NULL OR decay_period < ")
        .bind(period)
        .push(")");
    if claim.execute(&mut tx.conn()).await? == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    let n = store::decay(&mut tx.conn(), now).await?;
    app.commit(tx).await?;
    Ok(Some(n))
}

/// The decay task (setting `lead-score-decay-secs`; off when 0): tries
/// [`decay_due`] every period or every minute, whichever is shorter,
/// until shutdown.
pub async fn run_decay(app: App, mut shutdown: watch::Receiver<bool>) {
    let Some(period) = app.config.score_decay_period else {
        return;
    };
    let tick = period.min(Duration::from_secs(60));
    let secs = period.as_secs().min(i64::MAX as u64) as i64;
    loop {
        match decay_due(&app, ids::now(), secs).await {
            Ok(Some(n)) => tracing::debug!(leads = n, "lead engagement decayed"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "lead score decay failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => return,
        }
    }
}
