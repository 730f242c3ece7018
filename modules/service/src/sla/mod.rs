//! SLA clocks on business calendars: business calendars
//! ([`calendars`], arithmetic in [`calendar`]), ordered SLA policies
//! ([`policies`]), the clocks a ticket carries ([`clocks`], run in the
//! ticket's own transactions), the warning and breach events with their
//! escalation ([`alerts`], a background task claiming each event once)
//! and `slaReport` ([`report`]).

pub mod alerts;
pub mod calendar;
pub mod calendars;
pub mod clocks;
pub mod policies;
pub mod report;

use async_graphql::MergedObject;
use chrono::NaiveDateTime;
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::entity::sql::Sql;
use crm_core::error::Result;
use diesel::QueryableByName;

/// "Now" for SLA clocks: the system clock, or, with the `sla-test-clock`
/// setting (tests and demos only), the time in the one row of
/// `sla_test_clock` (the system clock while that table is empty), so
/// every replica sees the same controlled time.
pub async fn now(app: &App, conn: &mut Conn<'_>) -> Result<NaiveDateTime> {
    if !app.config.sla_test_clock {
        return Ok(crm_core::ids::now());
    }
    #[derive(QueryableByName)]
    struct Now {
        #[diesel(sql_type = diesel::sql_types::Timestamp)]
        now_at: NaiveDateTime,
    }
    let s = Sql::new("SELECT now_at FROM sla_test_clock ORDER BY id LIMIT 1");
    Ok(s.load::<Now>(conn)
        .await?
        .into_iter()
        .next()
        .map_or_else(crm_core::ids::now, |n| n.now_at))
}

/// The SLA queries.
#[derive(MergedObject, Default)]
pub struct SlaQuery(
    calendars::CalendarQuery,
    policies::PolicyQuery,
    report::ReportQuery,
);

/// The SLA mutations.
#[derive(MergedObject, Default)]
pub struct SlaMutation(calendars::CalendarMutation, policies::PolicyMutation);
