//! Quotas: what a user is expected to close in a month or a quarter, in a
//! currency. A kit entity owned by the user it is for, so row scope decides
//! who reads and changes it (a rep its own, a manager its teams'); creating
//! one for a user needs that user to be one the caller may hand records to
//! (a manager: the users of its teams; an admin: anyone). Versioned: a
//! stale edit gets CONFLICT. One quota per user, period and currency (a
//! second is CONFLICT).

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use crm_core::db::Conn;
use crm_core::entity::resolve::{self, Paging, Sorting};
use crm_core::entity::{Column, Cond, Def, Entity, Kind, ListQuery, Ops, Scope, WriteCtx};
use crm_core::error::{Checks, Error, Result};
use crm_core::ids;
use crm_core::paging::{Direction, Page};
use crm_customers::values::Money;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text, Timestamp};
use serde_json::{Value, json};

use super::periods;
use crate::values::{self, ForecastPeriod};

/// A quota row.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
pub struct QuotaRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    /// The user it is for.
    #[diesel(sql_type = Text)]
    pub owner_id: String,
    /// `MONTH` or `QUARTER`.
    #[diesel(sql_type = Text)]
    pub period: String,
    /// The period's first day, `YYYY-MM-DD`.
    #[diesel(sql_type = Text)]
    pub period_start: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    /// Minor units of `currency`.
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = Timestamp)]
    pub created_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    pub updated_at: NaiveDateTime,
    #[diesel(sql_type = BigInt)]
    pub version: i64,
}

/// Quotas, declared to the entity kit.
pub struct Quotas;

/// The declaration of [`Quotas`].
pub const QUOTA_DEF: Def = Def {
    type_name: "Quota",
    prefix: "quo",
    label: "quota",
    table: "quotas",
    topic: crate::TOPIC,
    columns: &[
        Column::new("id", Kind::Text).api("id"),
        Column::text("owner_id", "ownerId").filter(Ops::EQ),
        Column::text("period", "period").filter(Ops::EQ),
        Column::text("period_start", "periodStart")
            .filter(Ops::RANGE)
            .sort(),
        Column::new("currency", Kind::Text),
        Column::int("amount", "amount"),
        Column::time("created_at", "createdAt").sort(),
        Column::time("updated_at", "updatedAt"),
        Column::int("version", "version"),
    ],
    scope: Scope::Owner("owner_id"),
    soft_delete: None,
    custom_fields: false,
};

/// The fields of a quota write; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct QuotaFields {
    /// Only on create.
    pub owner_id: Option<String>,
    /// Only on create.
    pub period: Option<ForecastPeriod>,
    /// Only on create.
    pub period_start: Option<NaiveDate>,
    pub amount: Option<Money>,
}

impl Entity for Quotas {
    const DEF: Def = QUOTA_DEF;
    type Row = QuotaRow;
    type Fields = QuotaFields;

    fn snapshot(r: &QuotaRow) -> Value {
        json!({
            "ownerId": r.owner_id,
            "period": r.period,
            "periodStart": r.period_start,
            "amount": {"amountMinor": r.amount, "currency": r.currency},
        })
    }

    fn blank() -> QuotaRow {
        let now = ids::now();
        QuotaRow {
            id: String::new(),
            owner_id: String::new(),
            period: ForecastPeriod::Month.as_str().into(),
            period_start: String::new(),
            currency: String::new(),
            amount: 0,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    fn requested_owner(f: &QuotaFields) -> Option<&str> {
        f.owner_id.as_deref()
    }

    async fn apply(
        w: &WriteCtx<'_>,
        _conn: &mut Conn<'_>,
        row: &mut QuotaRow,
        f: QuotaFields,
    ) -> Result<()> {
        let mut c = Checks::default();
        if w.creating {
            match (f.period, f.period_start) {
                (Some(p), Some(start)) => {
                    if let Some(start) = c.take(periods::checked_start(p, start, "periodStart"))? {
                        row.period = p.as_str().into();
                        row.period_start = values::store_date(start);
                    }
                }
                _ => {
                    c.take::<()>(Err(Error::invalid(
                        "periodStart",
                        "period and periodStart are required",
                    )))?;
                }
            }
            if f.amount.is_none() {
                c.take::<()>(Err(Error::invalid("amount", "is required")))?;
            }
        }
        if let Some(m) = f.amount
            && let Some(m) = c.take(m.checked("amount"))?
        {
            row.amount = m.amount_minor;
            row.currency = m.currency;
        }
        c.finish()
    }
}

/// A user's quota for a period.
#[derive(SimpleObject, Clone, Debug)]
pub struct Quota {
    /// `quo_…`
    pub id: ID,
    /// The user it is for.
    pub owner_id: ID,
    /// Month or quarter.
    pub period: ForecastPeriod,
    /// The period's first day.
    pub period_start: NaiveDate,
    /// What the user should close in the period, in one currency.
    pub amount: Money,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

impl TryFrom<QuotaRow> for Quota {
    type Error = crm_core::Error;

    fn try_from(r: QuotaRow) -> Result<Self> {
        Ok(Quota {
            id: r.id.into(),
            owner_id: r.owner_id.into(),
            period: ForecastPeriod::from_stored(&r.period)?,
            period_start: values::parse_date(&r.period_start)?,
            amount: Money {
                amount_minor: r.amount,
                currency: r.currency,
            },
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        })
    }
}

/// Input for `createQuota`.
#[derive(InputObject)]
pub struct CreateQuotaInput {
    /// The user it is for: one of your teams' users (anyone for an admin).
    pub owner_id: ID,
    pub period: ForecastPeriod,
    /// The period's first day (the 1st of a month; of January, April, July
    /// or October for a quarter).
    pub period_start: NaiveDate,
    pub amount: Money,
}

/// Input for `updateQuota`.
#[derive(InputObject)]
pub struct UpdateQuotaInput {
    pub id: ID,
    /// The version you read; a stale one gets CONFLICT.
    pub version: i64,
    pub amount: Money,
}

/// Which quotas to list.
#[derive(InputObject, Clone, Default)]
pub struct QuotaFilterInput {
    /// One user's.
    pub owner_id: Option<ID>,
    /// Months or quarters.
    pub period: Option<ForecastPeriod>,
    /// Periods starting on or after this day.
    pub from: Option<NaiveDate>,
    /// Periods starting before this day.
    pub to: Option<NaiveDate>,
}

impl QuotaFilterInput {
    fn to_query(&self) -> ListQuery {
        let mut q = ListQuery::default();
        if let Some(o) = &self.owner_id {
            q.conds.push(Cond::Eq("owner_id", o.as_str().into()));
        }
        if let Some(p) = self.period {
            q.conds.push(Cond::Eq("period", p.as_str().into()));
        }
        if self.from.is_some() || self.to.is_some() {
            let b = |d: Option<NaiveDate>| d.map(|d| values::store_date(d).as_str().into());
            q.conds
                .push(Cond::Range("period_start", b(self.from), b(self.to)));
        }
        q
    }
}

/// Quota queries.
#[derive(Default)]
pub struct QuotaQuery;

#[Object]
impl QuotaQuery {
    /// The quotas you may see (yours; your teams' for a manager), by
    /// period start then id.
    async fn quotas(
        &self,
        ctx: &Context<'_>,
        filter: Option<QuotaFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Page<Quota>> {
        let f = filter.unwrap_or_default();
        let page = Paging {
            first,
            after,
            ..Default::default()
        };
        resolve::list::<Quotas, _>(
            ctx,
            page,
            f.to_query(),
            Sorting::by("period_start", Direction::Asc),
            Quota::try_from,
        )
        .await
    }
}

/// Quota mutations.
#[derive(Default)]
pub struct QuotaMutation;

#[Object]
impl QuotaMutation {
    /// Sets a user's quota for a period and currency (CONFLICT if it has
    /// one already: change that one with `updateQuota`).
    async fn create_quota(&self, ctx: &Context<'_>, input: CreateQuotaInput) -> Result<Quota> {
        let fields = QuotaFields {
            owner_id: Some(input.owner_id.0),
            period: Some(input.period),
            period_start: Some(input.period_start),
            amount: Some(input.amount),
        };
        resolve::create::<Quotas>(ctx, fields).await?.try_into()
    }

    /// Changes a quota's amount if `version` is current.
    async fn update_quota(&self, ctx: &Context<'_>, input: UpdateQuotaInput) -> Result<Quota> {
        let fields = QuotaFields {
            amount: Some(input.amount),
            ..Default::default()
        };
        resolve::update::<Quotas>(ctx, &input.id, input.version, fields)
            .await?
            .try_into()
    }

    /// Deletes a quota if `version` is current; its id.
    async fn delete_quota(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<ID> {
        resolve::remove::<Quotas>(ctx, &id, version).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_declaration_is_sound() {
        assert!(
            super::QUOTA_DEF.problems().is_empty(),
            "{:?}",
            super::QUOTA_DEF.problems()
        );
    }
}
