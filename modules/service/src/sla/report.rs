//! `slaReport(from, to)`: how many clocks met their target, per agent (the
//! ticket's assignee), group and policy, over the clocks started in the
//! period on the tickets the caller may read (the kit's row scope for
//! tickets, so a support agent sees its groups' figures and a lead all of
//! them). A clock counts once it is settled: met (in time), or breached
//! (met late, or still running past its due time); clocks not yet due
//! do not count.

use std::collections::BTreeMap;

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, NaiveDateTime, Utc};
use crm_core::access::row_filter;
use crm_core::app::App;
use crm_core::entity::{Entity as _, ListQuery, list::where_sql, sql::Sql};
use crm_core::error::{Error, Result};
use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Text, Timestamp};

use crate::tickets::repo::Tickets;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Text)]
    policy_id: String,
    #[diesel(sql_type = Text)]
    policy_name: String,
    #[diesel(sql_type = Timestamp)]
    due_at: NaiveDateTime,
    #[diesel(sql_type = Nullable<Timestamp>)]
    met_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    paused_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    breached_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    assignee_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    group_id: Option<String>,
}

/// Whether a clock is settled, and met in time: Some(true) met, Some(false)
/// breached, None not settled (running or paused, not yet due).
fn outcome(r: &Row, now: NaiveDateTime) -> Option<bool> {
    match r.state.as_str() {
        "MET" => Some(r.breached_at.is_none() && r.met_at.is_some_and(|m| m <= r.due_at)),
        _ if r.breached_at.is_some() => Some(false),
        "RUNNING" if now >= r.due_at => Some(false),
        "PAUSED" if r.paused_at.is_some_and(|p| p >= r.due_at) => Some(false),
        _ => None,
    }
}

/// Met and breached clocks of one agent, group or policy.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct SlaFigures {
    /// The user, team or policy (null: tickets without an assignee or
    /// group).
    pub id: Option<ID>,
    /// The policy's name (policies only).
    pub name: Option<String>,
    /// Clocks met in time.
    pub met: i64,
    /// Clocks breached (met late or overdue).
    pub breached: i64,
    /// met / (met + breached) in percent, 1 decimal; null without
    /// settled clocks.
    pub met_percent: Option<f64>,
}

/// SLA-met percentages.
#[derive(SimpleObject, Clone, Debug)]
pub struct SlaReport {
    /// Every settled clock in the period.
    pub total: SlaFigures,
    /// Per assignee.
    pub by_agent: Vec<SlaFigures>,
    /// Per group.
    pub by_group: Vec<SlaFigures>,
    /// Per policy.
    pub by_policy: Vec<SlaFigures>,
}

#[derive(Default)]
struct Tally {
    name: Option<String>,
    met: i64,
    breached: i64,
}

impl Tally {
    fn add(&mut self, met: bool) {
        if met {
            self.met += 1;
        } else {
            self.breached += 1;
        }
    }

    fn figures(self, id: Option<String>) -> SlaFigures {
        let n = self.met + self.breached;
        SlaFigures {
            id: id.map(Into::into),
            name: self.name,
            met: self.met,
            breached: self.breached,
            met_percent: (n > 0).then(|| (self.met as f64 * 1000.0 / n as f64).round() / 10.0),
        }
    }
}

fn figures(m: BTreeMap<Option<String>, Tally>) -> Vec<SlaFigures> {
    m.into_iter().map(|(k, t)| t.figures(k)).collect()
}

/// The report query.
#[derive(Default)]
pub struct ReportQuery;

#[Object]
impl ReportQuery {
    /// SLA-met percentages per agent, group and policy, over the clocks
    /// started in [`from`, `to`) on the tickets you may read.
    async fn sla_report(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<SlaReport> {
        if to <= from {
            return Err(Error::invalid("to", "must be after from"));
        }
        let scope = row_filter(ctx, Tickets::DEF.type_name, "read").await?;
        let app = ctx.data_unchecked::<App>();
        let wh = where_sql(&Tickets::DEF, &scope, &ListQuery::default())?;
        let mut s = Sql::new(
            "SELECT sla_clocks.state AS state, sla_clocks.policy_id AS policy_id, \
             sla_clocks.policy_name AS policy_name, sla_clocks.due_at AS due_at, \
             sla_clocks.met_at AS met_at, sla_clocks.paused_at AS paused_at, \
             sla_clocks.breached_at AS breached_at, tickets.assignee_id AS assignee_id, \
             tickets.group_id AS group_id FROM sla_clocks JOIN tickets ON tickets.id = \
             sla_clocks.ticket_id",
        );
        s.append(&wh)
            .push(" AND sla_clocks.started_at >= ")
            .bind(from.naive_utc())
            .push(" AND sla_clocks.started_at < ")
            .bind(to.naive_utc());
        let mut c = app.db.conn().await?;
        let now = super::now(app, &mut c.conn()).await?;
        let rows: Vec<Row> = s.load(&mut c.conn()).await?;
        let (mut total, mut agents, mut groups, mut policies) = (
            Tally::default(),
            BTreeMap::<Option<String>, Tally>::new(),
            BTreeMap::<Option<String>, Tally>::new(),
            BTreeMap::<Option<String>, Tally>::new(),
        );
        for r in &rows {
            let Some(met) = outcome(r, now) else {
                continue;
            };
            total.add(met);
            agents.entry(r.assignee_id.clone()).or_default().add(met);
            groups.entry(r.group_id.clone()).or_default().add(met);
            let p = policies.entry(Some(r.policy_id.clone())).or_default();
            p.name = Some(r.policy_name.clone());
            p.add(met);
        }
        Ok(SlaReport {
            total: total.figures(None),
            by_agent: figures(agents),
            by_group: figures(groups),
            by_policy: figures(policies),
        })
    }
}
