//! The `forecast` query: per period (by close date) and owner, and rolled
//! up the team tree, the closed won, commit, best case and pipeline amounts
//! per currency, the weighted amount, counts, quotas with attainment, and
//! the latest manager adjustments.
//!
//! The figures are one `GROUP BY` of the entity kit over the caller's row
//! scope on opportunities ([`crm_core::entity::aggregate::aggregate_by`],
//! grouped by owner, stage, forecast category, currency and the month of
//! the close date); quotas are a second kit aggregate under the scope on
//! quotas. Roll-ups add up owners' raw sums in memory: a team's row holds
//! the deals (that the caller sees) of the users of the team and of the
//! teams below it. The amounts are computed from `Opportunity.amount`, and
//! the schema declares that, so a role that may not read amounts asking
//! for them is refused as a whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::NaiveDate;
use crm_core::access::{RowFilter, narrow_to_team, principal, row_filter, row_filter_or_nothing};
use crm_core::app::App;
use crm_core::entity::aggregate::{Key, Measure, aggregate, aggregate_by};
use crm_core::entity::list::{by_values, where_sql};
use crm_core::entity::sql::Sql;
use crm_core::entity::{Cond, ListQuery};
use crm_core::error::{Error, Result};
use crm_core::identity::repo as identity;
use crm_customers::values::Money;

use super::adjustments::{ADJUSTMENT_DEF, AdjustmentRow, ForecastAdjustment};
use super::periods;
use super::quotas::Quotas;
use crate::opportunities::line_items::div_half_even;
use crate::opportunities::repo::Opportunities;
use crate::pipelines::repo::Stages;
use crate::values::{self, ForecastCategory, ForecastPeriod, StageKind};

/// What a forecast row adds up.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ForecastLevel {
    /// Everything you see in the period.
    Total,
    /// The users of a team and of the teams below it.
    Team,
    /// One owner's deals.
    Owner,
}

/// A forecast: one row per period for the total, per team of the tree and
/// per owner, in period order, then total, teams, owners.
#[derive(SimpleObject)]
pub struct Forecast {
    /// Months or quarters.
    pub period: ForecastPeriod,
    /// The periods covered, by name (`2026-11`, `2026-Q4`).
    pub periods: Vec<String>,
    /// The rows.
    pub rows: Vec<ForecastRow>,
}

/// One period's figures for the total, a team or an owner. Amounts are per
/// currency, by currency code, and leave out currencies that add nothing.
#[derive(SimpleObject)]
pub struct ForecastRow {
    /// What the row adds up.
    pub level: ForecastLevel,
    /// The period's name (`2026-11`, `2026-Q4`).
    pub period: String,
    /// Its first day.
    pub period_start: NaiveDate,
    /// Its last day.
    pub period_end: NaiveDate,
    /// The owner (`OWNER` rows).
    pub owner_id: Option<ID>,
    /// The team (`TEAM` rows).
    pub team_id: Option<ID>,
    /// Deals in a WON stage.
    pub closed_won: Vec<Money>,
    /// Closed won plus open deals in COMMIT (an open deal marked CLOSED
    /// counts as COMMIT).
    pub commit: Vec<Money>,
    /// Commit plus open deals in BEST_CASE.
    pub best_case: Vec<Money>,
    /// Open deals in PIPELINE, BEST_CASE and COMMIT (not OMITTED).
    pub pipeline: Vec<Money>,
    /// The pipeline's amount × probability / 100, summed per currency and
    /// rounded once to whole minor units, half to even.
    pub weighted: Vec<Money>,
    /// Deals in `closedWon`.
    pub closed_won_count: i64,
    /// Deals in `commit`.
    pub commit_count: i64,
    /// Deals in `bestCase`.
    pub best_case_count: i64,
    /// Deals in `pipeline`.
    pub pipeline_count: i64,
    /// Deals in a LOST stage.
    pub lost_count: i64,
    /// The quotas of the period (an owner's; a team's users' summed), per
    /// currency.
    pub quota: Vec<Money>,
    /// Closed won / quota, per currency with a quota above zero.
    pub attainment: Vec<Attainment>,
    /// The latest adjustment per figure and currency (`OWNER` and `TEAM`
    /// rows), with its author and note; `forecastAdjustments` has the
    /// history.
    pub adjustments: Vec<ForecastAdjustment>,
}

/// Closed won against quota in one currency.
#[derive(SimpleObject, Clone, Debug)]
pub struct Attainment {
    /// ISO 4217 code.
    pub currency: String,
    /// Closed won / quota (1.0 = quota met).
    pub ratio: f64,
}

/// Deals counted in one figure and their amounts per currency.
#[derive(Clone, Debug, Default)]
struct Fig {
    count: i64,
    money: BTreeMap<String, i64>,
}

impl Fig {
    fn add(&mut self, count: i64, currency: Option<&str>, amount: i64) {
        self.count += count;
        if let Some(c) = currency {
            *self.money.entry(c.to_owned()).or_default() += amount;
        }
    }

    fn merge(&mut self, o: &Fig) {
        self.count += o.count;
        for (c, v) in &o.money {
            *self.money.entry(c.clone()).or_default() += v;
        }
    }
}

/// The raw sums of one owner (or team, or total) in one period.
#[derive(Clone, Debug, Default)]
struct Tally {
    won: Fig,
    commit: Fig,
    best: Fig,
    pipeline: Fig,
    lost: i64,
    /// Σ amount × probability per currency (not yet divided by 100).
    weighted: BTreeMap<String, i128>,
    quota: BTreeMap<String, i64>,
}

impl Tally {
    fn merge(&mut self, o: &Tally) {
        self.won.merge(&o.won);
        self.commit.merge(&o.commit);
        self.best.merge(&o.best);
        self.pipeline.merge(&o.pipeline);
        self.lost += o.lost;
        for (c, v) in &o.weighted {
            *self.weighted.entry(c.clone()).or_default() += v;
        }
        for (c, v) in &o.quota {
            *self.quota.entry(c.clone()).or_default() += v;
        }
    }

    /// Adds one group of deals of a stage kind and forecast category.
    fn add(
        &mut self,
        kind: StageKind,
        category: ForecastCategory,
        currency: Option<&str>,
        values: &[i64],
    ) {
        let (count, amount, product) = (values[0], values[1], values[2]);
        match kind {
            StageKind::Won => {
                self.won.add(count, currency, amount);
                self.commit.add(count, currency, amount);
                self.best.add(count, currency, amount);
            }
            StageKind::Lost => self.lost += count,
            StageKind::Open => {
                let (commit, best) = match category {
                    ForecastCategory::Omitted => return,
                    ForecastCategory::Commit | ForecastCategory::Closed => (true, true),
                    ForecastCategory::BestCase => (false, true),
                    ForecastCategory::Pipeline => (false, false),
                };
                if commit {
                    self.commit.add(count, currency, amount);
                }
                if best {
                    self.best.add(count, currency, amount);
                }
                self.pipeline.add(count, currency, amount);
                if let Some(c) = currency {
                    *self.weighted.entry(c.to_owned()).or_default() += i128::from(product);
                }
            }
        }
    }

    fn row(&self, level: ForecastLevel, p: ForecastPeriod, start: NaiveDate) -> ForecastRow {
        let money = |m: &BTreeMap<String, i64>| {
            m.iter()
                .map(|(c, v)| Money {
                    amount_minor: *v,
                    currency: c.clone(),
                })
                .collect::<Vec<_>>()
        };
        let attainment = self
            .quota
            .iter()
            .filter(|(_, q)| **q > 0)
            .map(|(c, q)| Attainment {
                currency: c.clone(),
                ratio: self.won.money.get(c).copied().unwrap_or(0) as f64 / *q as f64,
            })
            .collect();
        ForecastRow {
            level,
            period: periods::name(p, start),
            period_start: start,
            period_end: periods::next(p, start).pred_opt().unwrap_or(start),
            owner_id: None,
            team_id: None,
            closed_won: money(&self.won.money),
            commit: money(&self.commit.money),
            best_case: money(&self.best.money),
            pipeline: money(&self.pipeline.money),
            weighted: self
                .weighted
                .iter()
                .map(|(c, v)| Money {
                    amount_minor: div_half_even(*v, 100),
                    currency: c.clone(),
                })
                .collect(),
            closed_won_count: self.won.count,
            commit_count: self.commit.count,
            best_case_count: self.best.count,
            pipeline_count: self.pipeline.count,
            lost_count: self.lost,
            quota: money(&self.quota),
            attainment,
            adjustments: Vec::new(),
        }
    }
}

/// `team` and every team below it in `tree` ((id, parent) pairs).
fn subtree(tree: &[(String, Option<String>)], team: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::from([team.to_owned()]);
    let mut todo = vec![team.to_owned()];
    while let Some(cur) = todo.pop() {
        for (id, parent) in tree {
            if parent.as_deref() == Some(cur.as_str()) && out.insert(id.clone()) {
                todo.push(id.clone());
            }
        }
    }
    out
}

/// The forecast query.
#[derive(Default)]
pub struct ForecastQuery;

#[Object]
impl ForecastQuery {
    /// The sales forecast of the deals you see whose close date falls in
    /// the periods from the one holding `from` to the one holding `to`:
    /// per period the total, each team of the tree (its users and the
    /// teams below) and each owner; narrowed to a team's tree with
    /// `teamId` and to one owner with `ownerId`. Asking for amounts needs
    /// read on `Opportunity.amount`.
    async fn forecast(
        &self,
        ctx: &Context<'_>,
        period: ForecastPeriod,
        from: NaiveDate,
        to: NaiveDate,
        team_id: Option<ID>,
        owner_id: Option<ID>,
    ) -> Result<Forecast> {
        let starts = periods::covering(period, from, to)?;
        let (first, end) = match (starts.first(), starts.last()) {
            (Some(f), Some(l)) => (*f, periods::next(period, *l)),
            _ => return Err(Error::invalid("to", "must not be before from")),
        };
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        let mut opp_scope = row_filter(ctx, "Opportunity", "read").await?;
        let mut quota_scope = row_filter_or_nothing(app, by, "Quota", "read").await?;
        let mut c = app.db.conn().await?;
        let tree: Vec<(String, Option<String>)> = identity::all_teams(&mut c.conn())
            .await?
            .into_iter()
            .map(|t| (t.id, t.parent_id))
            .collect();
        let teams: BTreeSet<String> = match &team_id {
            Some(t) => {
                // The tree holds every team: no second look-up.
                if !tree.iter().any(|(id, _)| id == t.as_str()) {
                    return Err(Error::invalid("teamId", "no such team"));
                }
                opp_scope = narrow_to_team(app, opp_scope, t).await?;
                quota_scope = narrow_to_team(app, quota_scope, t).await?;
                subtree(&tree, t)
            }
            None => tree.iter().map(|(id, _)| id.clone()).collect(),
        };
        let range = |col: &'static str| {
            Cond::Range(
                col,
                Some(values::store_date(first).as_str().into()),
                Some(values::store_date(end).as_str().into()),
            )
        };
        let mut q = ListQuery::default();
        q.conds.push(range("close_date"));
        let mut qq = ListQuery::default();
        qq.conds.push(range("period_start"));
        qq.conds.push(Cond::Eq("period", period.as_str().into()));
        if let Some(o) = &owner_id {
            q.conds.push(Cond::Eq("owner_id", o.as_str().into()));
            qq.conds.push(Cond::Eq("owner_id", o.as_str().into()));
        }
        let groups = aggregate_by::<Opportunities>(
            &mut c.conn(),
            &opp_scope,
            &q,
            &[
                Key::Column("owner_id"),
                Key::Column("stage_id"),
                Key::Column("forecast_category"),
                Key::Column("currency"),
                Key::Prefix("close_date", 7),
            ],
            &[
                Measure::Count,
                Measure::Sum("amount"),
                Measure::SumProduct("amount", "probability"),
            ],
        )
        .await?;
        let quotas = aggregate::<Quotas>(
            &mut c.conn(),
            &quota_scope,
            &qq,
            &["owner_id", "period_start", "currency"],
            &[Measure::Sum("amount")],
        )
        .await?;
        let stage_ids: Vec<String> = groups
            .iter()
            .filter_map(|g| g.keys[1].clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let kinds: HashMap<String, StageKind> =
            by_values::<Stages>(&mut c.conn(), &RowFilter::All, "id", &stage_ids, false)
                .await?
                .into_iter()
                .map(|s| Ok((s.id, StageKind::from_stored(&s.kind)?)))
                .collect::<Result<_>>()?;

        // Per (period start, owner).
        let mut owners: BTreeMap<(NaiveDate, String), Tally> = BTreeMap::new();
        for g in &groups {
            let (Some(owner), Some(stage), Some(cat), Some(month)) = (
                g.keys[0].as_deref(),
                g.keys[1].as_deref(),
                g.keys[2].as_deref(),
                g.keys[4].as_deref(),
            ) else {
                continue;
            };
            let month = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
                .map_err(|e| Error::Internal(e.to_string()))?;
            let kind = kinds.get(stage).copied().unwrap_or(StageKind::Open);
            owners
                .entry((periods::start_of(period, month), owner.to_owned()))
                .or_default()
                .add(
                    kind,
                    ForecastCategory::from_stored(cat)?,
                    g.keys[3].as_deref(),
                    &g.values,
                );
        }
        for g in &quotas {
            let (Some(owner), Some(start), Some(cur)) = (
                g.keys[0].as_deref(),
                g.keys[1].as_deref(),
                g.keys[2].as_deref(),
            ) else {
                continue;
            };
            let start = values::parse_date(start)?;
            *owners
                .entry((start, owner.to_owned()))
                .or_default()
                .quota
                .entry(cur.to_owned())
                .or_default() += g.values[0];
        }

        // The owners' teams, for the roll-up.
        let owner_ids: Vec<String> = owners
            .keys()
            .map(|(_, o)| o.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let team_of: HashMap<String, Option<String>> =
            identity::users_by_ids(&mut c.conn(), &owner_ids)
                .await?
                .into_iter()
                .map(|u| (u.id, u.team_id))
                .collect();
        let subtrees: Vec<(String, BTreeSet<String>)> = teams
            .iter()
            .map(|t| (t.clone(), subtree(&tree, t)))
            .collect();

        let adjustments = if ctx.look_ahead().field("rows").field("adjustments").exists() {
            let scope = row_filter_or_nothing(app, by, "ForecastAdjustment", "read").await?;
            let mut aq = ListQuery::default();
            aq.conds.push(Cond::Eq("period", period.as_str().into()));
            aq.conds.push(range("period_start"));
            let cols: Vec<&str> = ADJUSTMENT_DEF.columns.iter().map(|c| c.name).collect();
            let mut s = Sql::new(format!(
                "SELECT {} FROM {}",
                cols.join(", "),
                ADJUSTMENT_DEF.table
            ));
            s.append(&where_sql(&ADJUSTMENT_DEF, &scope, &aq)?);
            s.push(" ORDER BY created_at, id");
            s.load::<AdjustmentRow>(&mut c.conn()).await?
        } else {
            Vec::new()
        };
        drop(c);
        // The latest per subject, period, figure and currency (rows come
        // oldest first, so later ones replace earlier ones).
        let mut latest: BTreeMap<(String, String, String, String), AdjustmentRow> = BTreeMap::new();
        for a in adjustments {
            let subject = match (&a.owner_id, &a.team_id) {
                (Some(o), _) => format!("o:{o}"),
                (None, Some(t)) => format!("t:{t}"),
                _ => continue,
            };
            latest.insert(
                (
                    subject,
                    a.period_start.clone(),
                    a.figure.clone(),
                    a.currency.clone(),
                ),
                a,
            );
        }
        let adjusted = |subject: String, start: NaiveDate| -> Result<Vec<ForecastAdjustment>> {
            let start = values::store_date(start);
            latest
                .iter()
                .filter(|((s, p, _, _), _)| *s == subject && *p == start)
                .map(|(_, a)| ForecastAdjustment::try_from(a.clone()))
                .collect()
        };

        let mut rows = Vec::new();
        for start in &starts {
            let mine: Vec<(&String, &Tally)> = owners
                .iter()
                .filter(|((p, _), _)| p == start)
                .map(|((_, o), t)| (o, t))
                .collect();
            let mut total = Tally::default();
            for (_, t) in &mine {
                total.merge(t);
            }
            rows.push(total.row(ForecastLevel::Total, period, *start));
            for (team, below) in &subtrees {
                let members: Vec<&Tally> = mine
                    .iter()
                    .filter(|(o, _)| {
                        team_of
                            .get(*o)
                            .and_then(|t| t.as_ref())
                            .is_some_and(|t| below.contains(t))
                    })
                    .map(|(_, t)| *t)
                    .collect();
                if members.is_empty() {
                    continue;
                }
                let mut sum = Tally::default();
                for t in members {
                    sum.merge(t);
                }
                let mut row = sum.row(ForecastLevel::Team, period, *start);
                row.team_id = Some(team.clone().into());
                row.adjustments = adjusted(format!("t:{team}"), *start)?;
                rows.push(row);
            }
            for (owner, t) in &mine {
                let mut row = t.row(ForecastLevel::Owner, period, *start);
                row.owner_id = Some((*owner).clone().into());
                row.adjustments = adjusted(format!("o:{owner}"), *start)?;
                rows.push(row);
            }
        }
        Ok(Forecast {
            period,
            periods: starts.iter().map(|s| periods::name(period, *s)).collect(),
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_cumulative_and_weighted_once() {
        let mut t = Tally::default();
        t.add(
            StageKind::Won,
            ForecastCategory::Closed,
            Some("EUR"),
            &[1, 1000, 100_000],
        );
        t.add(
            StageKind::Open,
            ForecastCategory::Commit,
            Some("EUR"),
            &[2, 300, 27_000],
        );
        t.add(
            StageKind::Open,
            ForecastCategory::BestCase,
            Some("EUR"),
            &[1, 101, 5050],
        );
        t.add(
            StageKind::Open,
            ForecastCategory::Pipeline,
            Some("USD"),
            &[1, 5, 50],
        );
        t.add(
            StageKind::Open,
            ForecastCategory::Omitted,
            Some("USD"),
            &[1, 7, 70],
        );
        t.add(
            StageKind::Lost,
            ForecastCategory::Omitted,
            Some("EUR"),
            &[3, 9, 0],
        );
        t.quota.insert("EUR".into(), 4000);
        let r = t.row(
            ForecastLevel::Owner,
            ForecastPeriod::Quarter,
            NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
        );
        let m = |v: i64, c: &str| Money {
            amount_minor: v,
            currency: c.into(),
        };
        assert_eq!(r.closed_won, vec![m(1000, "EUR")]);
        assert_eq!(r.commit, vec![m(1300, "EUR")]);
        assert_eq!(r.best_case, vec![m(1401, "EUR")]);
        assert_eq!(r.pipeline, vec![m(401, "EUR"), m(5, "USD")]);
        // 32,050 / 100 = 320.5 → 320 (half to even); 50 / 100 = 0.5 → 0.
        assert_eq!(r.weighted, vec![m(320, "EUR"), m(0, "USD")]);
        assert_eq!(
            (
                r.closed_won_count,
                r.commit_count,
                r.best_case_count,
                r.pipeline_count
            ),
            (1, 3, 4, 4)
        );
        assert_eq!(r.lost_count, 3);
        assert_eq!(r.period, "2026-Q4");
        assert_eq!(r.period_end, NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
        assert_eq!(r.attainment[0].ratio, 0.25);
    }

    #[test]
    fn subtrees_follow_parents() {
        let tree = vec![
            ("a".to_owned(), None),
            ("b".to_owned(), Some("a".to_owned())),
            ("c".to_owned(), Some("b".to_owned())),
            ("d".to_owned(), None),
        ];
        assert_eq!(subtree(&tree, "a").len(), 3);
        assert_eq!(subtree(&tree, "b").len(), 2);
        assert_eq!(subtree(&tree, "d").len(), 1);
    }
}
