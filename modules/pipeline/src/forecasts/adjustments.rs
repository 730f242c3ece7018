//! Manager adjustments: a manager overrides a forecast figure (commit,
//! best case, pipeline) of a user or a team for a period, in a currency,
//! with a note. Append-only: each adjustment is a new row, never changed
//! or deleted; the forecast shows the latest one per figure and currency
//! and `forecastAdjustments` lists the history.
//!
//! A kit entity owned like a queued lead (owner or, while there is none,
//! the team): an adjustment for a user is in the scope that user's records
//! are in; one for a team is in the scope of that team's members (`own`:
//! the caller's team's; `team`: the caller's teams'). Adjusting a user
//! needs that user to be one the caller may hand records to; adjusting a
//! team needs that team's adjustments in the caller's read scope.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use crm_core::access::row_filter_for;
use crm_core::db::Conn;
use crm_core::entity::resolve::{self, Paging, Sorting};
use crm_core::entity::{Column, Cond, Def, Entity, Kind, ListQuery, Ops, Scope, WriteCtx};
use crm_core::error::{Checks, Error, Result};
use crm_core::identity::repo::check_team;
use crm_core::ids;
use crm_core::paging::{Direction, Page};
use crm_customers::values::Money;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use serde_json::{Value, json};

use super::periods;
use crate::values::{self, ForecastFigure, ForecastPeriod};

/// Longest note, in characters.
const MAX_NOTE: usize = 2000;

/// An adjustment row.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
pub struct AdjustmentRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    /// The user whose figure it adjusts (None for a team's).
    #[diesel(sql_type = Nullable<Text>)]
    pub owner_id: Option<String>,
    /// The team whose figure it adjusts (None for a user's).
    #[diesel(sql_type = Nullable<Text>)]
    pub team_id: Option<String>,
    #[diesel(sql_type = Text)]
    pub period: String,
    #[diesel(sql_type = Text)]
    pub period_start: String,
    #[diesel(sql_type = Text)]
    pub figure: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = Text)]
    pub note: String,
    /// The user who made it (None for the service or an API key).
    #[diesel(sql_type = Nullable<Text>)]
    pub author_id: Option<String>,
    #[diesel(sql_type = Timestamp)]
    pub created_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    pub updated_at: NaiveDateTime,
    #[diesel(sql_type = BigInt)]
    pub version: i64,
}

/// Adjustments, declared to the entity kit.
pub struct Adjustments;

/// The declaration of [`Adjustments`].
pub const ADJUSTMENT_DEF: Def = Def {
    type_name: "ForecastAdjustment",
    prefix: "fca",
    label: "forecast adjustment",
    table: "forecast_adjustments",
    topic: crate::TOPIC,
    columns: &[
        Column::new("id", Kind::Text).api("id"),
        Column::text("owner_id", "ownerId")
            .nullable()
            .filter(Ops::EQ),
        Column::text("team_id", "teamId").nullable().filter(Ops::EQ),
        Column::text("period", "period").filter(Ops::EQ),
        Column::text("period_start", "periodStart").filter(Ops::EQ.and(Ops::RANGE)),
        Column::text("figure", "figure").filter(Ops::EQ),
        Column::new("currency", Kind::Text),
        Column::int("amount", "amount"),
        Column::text("note", "note"),
        Column::text("author_id", "authorId").nullable(),
        Column::time("created_at", "createdAt").sort(),
        Column::time("updated_at", "updatedAt"),
        Column::int("version", "version"),
    ],
    scope: Scope::OwnerOrQueue {
        owner: "owner_id",
        team: "team_id",
    },
    soft_delete: None,
    custom_fields: false,
};

/// The fields of a new adjustment.
#[derive(Clone, Debug)]
pub struct AdjustmentFields {
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub period: ForecastPeriod,
    pub period_start: NaiveDate,
    pub figure: ForecastFigure,
    pub amount: Money,
    pub note: String,
}

impl Entity for Adjustments {
    const DEF: Def = ADJUSTMENT_DEF;
    type Row = AdjustmentRow;
    type Fields = AdjustmentFields;

    fn snapshot(r: &AdjustmentRow) -> Value {
        json!({
            "ownerId": r.owner_id,
            "teamId": r.team_id,
            "period": r.period,
            "periodStart": r.period_start,
            "figure": r.figure,
            "amount": {"amountMinor": r.amount, "currency": r.currency},
            "note": r.note,
            "authorId": r.author_id,
        })
    }

    fn blank() -> AdjustmentRow {
        let now = ids::now();
        AdjustmentRow {
            id: String::new(),
            owner_id: None,
            team_id: None,
            period: ForecastPeriod::Month.as_str().into(),
            period_start: String::new(),
            figure: ForecastFigure::Commit.as_str().into(),
            currency: String::new(),
            amount: 0,
            note: String::new(),
            author_id: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    fn requested_owner(f: &AdjustmentFields) -> Option<&str> {
        f.owner_id.as_deref()
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut AdjustmentRow,
        f: AdjustmentFields,
    ) -> Result<()> {
        if !w.creating {
            return Err(Error::Internal("adjustments are never changed".into()));
        }
        let mut c = Checks::default();
        match (&f.owner_id, &f.team_id) {
            (Some(_), None) => row.team_id = None,
            (None, Some(team)) => {
                // A team's figure: the kit made the writer the owner; the
                // row belongs to the team alone.
                row.owner_id = None;
                if c.take(check_team(conn, team, "teamId").await)?.is_some() {
                    let scope = row_filter_for(w.app, w.by, ADJUSTMENT_DEF.type_name, "read")
                        .await
                        .ok();
                    if scope.is_some_and(|s| s.admits_team(Some(team))) {
                        row.team_id = Some(team.clone());
                    } else {
                        c.take::<()>(Err(Error::invalid("teamId", "no such team")))?;
                    }
                }
            }
            _ => {
                c.take::<()>(Err(Error::invalid(
                    "ownerId",
                    "give either ownerId or teamId",
                )))?;
            }
        }
        if let Some(start) = c.take(periods::checked_start(
            f.period,
            f.period_start,
            "periodStart",
        ))? {
            row.period = f.period.as_str().into();
            row.period_start = values::store_date(start);
        }
        row.figure = f.figure.as_str().into();
        if let Some(m) = c.take(f.amount.checked("amount"))? {
            row.amount = m.amount_minor;
            row.currency = m.currency;
        }
        let note = f.note.trim();
        if note.is_empty() || note.chars().count() > MAX_NOTE {
            c.take::<()>(Err(Error::invalid(
                "note",
                format!("must be 1 to {MAX_NOTE} characters"),
            )))?;
        }
        row.note = note.to_owned();
        row.author_id = w.by.user_id().map(str::to_owned);
        c.finish()
    }
}

/// A manager's override of a forecast figure, with its note.
#[derive(SimpleObject, Clone, Debug)]
pub struct ForecastAdjustment {
    /// `fca_…`
    pub id: ID,
    /// The user whose figure it adjusts (null for a team's).
    pub owner_id: Option<ID>,
    /// The team whose figure it adjusts (null for a user's).
    pub team_id: Option<ID>,
    /// Month or quarter.
    pub period: ForecastPeriod,
    /// The period's first day.
    pub period_start: NaiveDate,
    /// The figure it overrides.
    pub figure: ForecastFigure,
    /// The figure's new value, in one currency.
    pub amount: Money,
    /// Why.
    pub note: String,
    /// Who made it.
    pub author_id: Option<ID>,
    /// When (UTC).
    pub created_at: DateTime<Utc>,
}

impl TryFrom<AdjustmentRow> for ForecastAdjustment {
    type Error = crm_core::Error;

    fn try_from(r: AdjustmentRow) -> Result<Self> {
        Ok(ForecastAdjustment {
            id: r.id.into(),
            owner_id: r.owner_id.map(ID::from),
            team_id: r.team_id.map(ID::from),
            period: ForecastPeriod::from_stored(&r.period)?,
            period_start: values::parse_date(&r.period_start)?,
            figure: ForecastFigure::from_stored(&r.figure)?,
            amount: Money {
                amount_minor: r.amount,
                currency: r.currency,
            },
            note: r.note,
            author_id: r.author_id.map(ID::from),
            created_at: r.created_at.and_utc(),
        })
    }
}

/// Input for `createForecastAdjustment`: a user's figure (`ownerId`) or a
/// team's (`teamId`), not both.
#[derive(InputObject)]
pub struct CreateForecastAdjustmentInput {
    pub owner_id: Option<ID>,
    pub team_id: Option<ID>,
    pub period: ForecastPeriod,
    /// The period's first day.
    pub period_start: NaiveDate,
    pub figure: ForecastFigure,
    pub amount: Money,
    /// Why (1 to 2000 characters).
    pub note: String,
}

/// Which adjustments to list.
#[derive(InputObject, Clone, Default)]
pub struct ForecastAdjustmentFilterInput {
    /// A user's.
    pub owner_id: Option<ID>,
    /// A team's.
    pub team_id: Option<ID>,
    /// Months or quarters.
    pub period: Option<ForecastPeriod>,
    /// One period's (its first day).
    pub period_start: Option<NaiveDate>,
    /// One figure's.
    pub figure: Option<ForecastFigure>,
}

impl ForecastAdjustmentFilterInput {
    fn to_query(&self) -> ListQuery {
        let mut q = ListQuery::default();
        if let Some(o) = &self.owner_id {
            q.conds.push(Cond::Eq("owner_id", o.as_str().into()));
        }
        if let Some(t) = &self.team_id {
            q.conds.push(Cond::Eq("team_id", t.as_str().into()));
        }
        if let Some(p) = self.period {
            q.conds.push(Cond::Eq("period", p.as_str().into()));
        }
        if let Some(d) = self.period_start {
            q.conds.push(Cond::Eq(
                "period_start",
                values::store_date(d).as_str().into(),
            ));
        }
        if let Some(f) = self.figure {
            q.conds.push(Cond::Eq("figure", f.as_str().into()));
        }
        q
    }
}

/// Adjustment queries.
#[derive(Default)]
pub struct AdjustmentQuery;

#[Object]
impl AdjustmentQuery {
    /// The history of forecast adjustments you may see, newest first.
    async fn forecast_adjustments(
        &self,
        ctx: &Context<'_>,
        filter: Option<ForecastAdjustmentFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Page<ForecastAdjustment>> {
        let f = filter.unwrap_or_default();
        let page = Paging {
            first,
            after,
            ..Default::default()
        };
        resolve::list::<Adjustments, _>(
            ctx,
            page,
            f.to_query(),
            Sorting::by("created_at", Direction::Desc),
            ForecastAdjustment::try_from,
        )
        .await
    }
}

/// Adjustment mutations.
#[derive(Default)]
pub struct AdjustmentMutation;

#[Object]
impl AdjustmentMutation {
    /// Overrides a forecast figure of a user of your teams (or of one of
    /// your teams) for a period, with a note. Earlier adjustments stay in
    /// the history; the forecast shows the latest.
    async fn create_forecast_adjustment(
        &self,
        ctx: &Context<'_>,
        input: CreateForecastAdjustmentInput,
    ) -> Result<ForecastAdjustment> {
        let fields = AdjustmentFields {
            owner_id: input.owner_id.map(|i| i.0),
            team_id: input.team_id.map(|i| i.0),
            period: input.period,
            period_start: input.period_start,
            figure: input.figure,
            amount: input.amount,
            note: input.note,
        };
        resolve::create::<Adjustments>(ctx, fields)
            .await?
            .try_into()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_declaration_is_sound() {
        assert!(
            super::ADJUSTMENT_DEF.problems().is_empty(),
            "{:?}",
            super::ADJUSTMENT_DEF.problems()
        );
    }
}
