//! Contracts: an agreement with an account for a value over a period,
//! made directly or from an ACCEPTED quote, moving DRAFT → ACTIVE →
//! EXPIRED / TERMINATED. GraphQL types, queries and mutations here; lists,
//! fetch, writes and the recycle bin are the entity kit's (owned by
//! `ownerId` like an opportunity); the rules are the hooks in [`service`];
//! [`lifecycle`] expires contracts past their end date and creates each
//! contract's renewal opportunity, each exactly once across replicas;
//! [`export`] is the kit's export of the list.

pub mod export;
pub mod lifecycle;
pub mod repo;
pub mod service;

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, NaiveDate, Utc};
use crm_core::entity::resolve::{self, Paging, Sorting};
use crm_core::entity::sql::Bind;
use crm_core::entity::{Cond, ListQuery};
use crm_core::error::{Error, Result, visible};
use crm_core::graphql::patch as mu;
use crm_core::identity::graphql::{User, visible_user};
use crm_core::paging::{Direction, Page};
use crm_customers::accounts::{Account, account_by_id};
use crm_customers::values::Money;

use self::repo::{ContractOrderField, ContractRow, Contracts};
use self::service::ContractFields;
use crate::opportunities::{Opportunity, opportunity_by_id};
use crate::pipelines::{Pipeline, pipeline_by_id};
use crate::quotes::Quote;
use crate::quotes::repo::Quotes;
use crate::values::{self, ContractStatus};

/// An agreement with an account: its value over a period, and the
/// opportunity that renews it.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Contract {
    /// `ctr_…`
    pub id: ID,
    /// Title (the quote's name when made from one).
    pub name: String,
    /// The account it is with.
    pub account_id: ID,
    /// The opportunity it came from (the quote's when made from one).
    pub opportunity_id: Option<ID>,
    /// The ACCEPTED quote it was made from.
    pub quote_id: Option<ID>,
    /// Who owns it (row scope follows the owner, like an opportunity's).
    pub owner_id: ID,
    /// DRAFT, ACTIVE, EXPIRED or TERMINATED.
    pub status: ContractStatus,
    /// First day in force.
    pub start_date: NaiveDate,
    /// Last day in force (after the start date); an ACTIVE contract
    /// expires after it.
    pub end_date: NaiveDate,
    /// What it is worth (the quote's total when made from one).
    pub value: Money,
    /// The pipeline its renewal opportunity is created in (null: the
    /// contract is not renewed).
    pub renewal_pipeline_id: Option<ID>,
    /// How many days before the end date the renewal opportunity is
    /// created (default 60).
    pub renewal_notice_days: i64,
    /// End date − notice days: the day the renewal opportunity is created
    /// (while ACTIVE, with a renewal pipeline).
    pub renewal_due_on: NaiveDate,
    /// The renewal opportunity, once created.
    pub renewal_opportunity_id: Option<ID>,
    /// When it became ACTIVE.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it expired or was terminated.
    pub ended_at: Option<DateTime<Utc>>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// When it went to the recycle bin (null while live).
    pub deleted_at: Option<DateTime<Utc>>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

impl TryFrom<ContractRow> for Contract {
    type Error = Error;

    fn try_from(r: ContractRow) -> Result<Self> {
        Ok(Contract {
            id: r.id.into(),
            name: r.name,
            account_id: r.account_id.into(),
            opportunity_id: r.opportunity_id.map(Into::into),
            quote_id: r.quote_id.map(Into::into),
            owner_id: r.owner_id.into(),
            status: ContractStatus::from_stored(&r.status)?,
            start_date: values::parse_date(&r.start_date)?,
            end_date: values::parse_date(&r.end_date)?,
            value: Money {
                amount_minor: r.value,
                currency: r.currency,
            },
            renewal_pipeline_id: r.renewal_pipeline_id.map(Into::into),
            renewal_notice_days: r.renewal_notice_days,
            renewal_due_on: values::parse_date(&r.renewal_due_on)?,
            renewal_opportunity_id: r.renewal_opportunity_id.map(Into::into),
            activated_at: r.activated_at.map(|t| t.and_utc()),
            ended_at: r.ended_at.map(|t| t.and_utc()),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            deleted_at: r.deleted_at.map(|t| t.and_utc()),
            version: r.version,
        })
    }
}

#[ComplexObject]
impl Contract {
    /// The account (null if you may not see it).
    async fn account(&self, ctx: &Context<'_>) -> Result<Option<Account>> {
        visible(account_by_id(ctx, &self.account_id).await)
    }

    /// The opportunity it came from (null if none or you may not see it).
    async fn opportunity(&self, ctx: &Context<'_>) -> Result<Option<Opportunity>> {
        match &self.opportunity_id {
            Some(id) => visible(opportunity_by_id(ctx, id).await),
            None => Ok(None),
        }
    }

    /// The quote it was made from (null if none or you may not see it).
    async fn quote(&self, ctx: &Context<'_>) -> Result<Option<Quote>> {
        match &self.quote_id {
            Some(id) => visible(quote_by_id(ctx, id).await),
            None => Ok(None),
        }
    }

    /// The owner (null if you may not see the user).
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        visible_user(ctx, &self.owner_id).await
    }

    /// The renewal pipeline (null if none).
    async fn renewal_pipeline(&self, ctx: &Context<'_>) -> Result<Option<Pipeline>> {
        match &self.renewal_pipeline_id {
            Some(id) => visible(pipeline_by_id(ctx, id).await),
            None => Ok(None),
        }
    }

    /// The renewal opportunity (null until created, or if you may not see
    /// it).
    async fn renewal_opportunity(&self, ctx: &Context<'_>) -> Result<Option<Opportunity>> {
        match &self.renewal_opportunity_id {
            Some(id) => visible(opportunity_by_id(ctx, id).await),
            None => Ok(None),
        }
    }
}

/// Filter for `contracts`; all given conditions must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ContractFilterInput {
    /// With this account (an account's contracts).
    pub account_id: Option<ID>,
    /// From this opportunity.
    pub opportunity_id: Option<ID>,
    /// Made from this quote.
    pub quote_id: Option<ID>,
    /// In one of these statuses.
    pub status: Option<Vec<ContractStatus>>,
    /// Owned by this user.
    pub owner_id: Option<ID>,
    /// Ending on or after this date.
    pub end_date_from: Option<NaiveDate>,
    /// Ending before this date.
    pub end_date_to: Option<NaiveDate>,
    /// Name contains this text.
    pub search: Option<String>,
    /// The recycle bin instead of live contracts (needs delete rights).
    #[graphql(default)]
    pub deleted: bool,
}

impl ContractFilterInput {
    /// The list conditions of this filter.
    pub(crate) fn to_query(&self) -> ListQuery {
        let mut conds = Vec::new();
        for (col, v) in [
            ("account_id", &self.account_id),
            ("opportunity_id", &self.opportunity_id),
            ("quote_id", &self.quote_id),
            ("owner_id", &self.owner_id),
        ] {
            if let Some(v) = v {
                conds.push(Cond::Eq(col, v.0.as_str().into()));
            }
        }
        if let Some(v) = &self.status {
            conds.push(Cond::In(
                "status",
                v.iter().map(|s| Bind::from(s.as_str())).collect(),
            ));
        }
        if self.end_date_from.is_some() || self.end_date_to.is_some() {
            conds.push(Cond::Range(
                "end_date",
                self.end_date_from.map(|d| values::store_date(d).into()),
                self.end_date_to.map(|d| values::store_date(d).into()),
            ));
        }
        ListQuery {
            conds,
            search: self.search.clone(),
            deleted: self.deleted,
            ..Default::default()
        }
    }
}

/// Ordering for `contracts`.
#[derive(InputObject, Default)]
pub struct ContractOrder {
    /// Sort key.
    #[graphql(default)]
    pub field: ContractOrderField,
    /// Direction.
    #[graphql(default)]
    pub direction: Direction,
}

/// Input for `createContract`.
#[derive(InputObject)]
pub struct CreateContractInput {
    /// An account you may see.
    pub account_id: ID,
    /// An opportunity of that account you may see.
    pub opportunity_id: Option<ID>,
    /// 1–200 characters.
    pub name: String,
    /// First day in force.
    pub start_date: NaiveDate,
    /// Last day in force: after the start date.
    pub end_date: NaiveDate,
    /// At least 0.
    pub value: Money,
    /// Default: you.
    pub owner_id: Option<ID>,
    /// The pipeline the renewal opportunity is created in. Omitted: the
    /// renewals pipeline, if one is flagged (`Pipeline.renewals`); null: no
    /// renewal.
    pub renewal_pipeline_id: MaybeUndefined<ID>,
    /// 0–3650 (default 60).
    pub renewal_notice_days: Option<i64>,
}

/// Input for `createContractFromQuote`.
#[derive(InputObject)]
pub struct CreateContractFromQuoteInput {
    /// An ACCEPTED quote you may see that made no contract yet; the
    /// contract takes its account, opportunity, name, total and currency.
    pub quote_id: ID,
    /// Default: the quote's name.
    pub name: Option<String>,
    /// Default: today.
    pub start_date: Option<NaiveDate>,
    /// Default: a year after the start date, less a day.
    pub end_date: Option<NaiveDate>,
    /// Default: you.
    pub owner_id: Option<ID>,
    /// Omitted: the renewals pipeline, if one is flagged
    /// (`Pipeline.renewals`); null: no renewal.
    pub renewal_pipeline_id: MaybeUndefined<ID>,
    /// 0–3650 (default 60).
    pub renewal_notice_days: Option<i64>,
}

/// Input for `updateContract` (a DRAFT or ACTIVE contract): omitted fields
/// stay, null clears.
#[derive(InputObject)]
pub struct UpdateContractInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    pub opportunity_id: MaybeUndefined<ID>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub value: Option<Money>,
    pub owner_id: Option<ID>,
    pub renewal_pipeline_id: MaybeUndefined<ID>,
    pub renewal_notice_days: Option<i64>,
}

fn id_of(v: Option<ID>) -> Option<String> {
    v.map(|i| i.0)
}

/// One page of contracts in the caller's scope.
pub async fn list(
    ctx: &Context<'_>,
    page: Paging,
    filter: ContractFilterInput,
    order: ContractOrder,
) -> Result<Page<Contract>> {
    let sorting = Sorting::by(order.field.column(), order.direction);
    resolve::list::<Contracts, _>(ctx, page, filter.to_query(), sorting, Contract::try_from).await
}

/// Contract queries.
#[derive(Default)]
pub struct ContractQuery;

#[Object]
impl ContractQuery {
    /// Contracts you may see: an account's with `filter: {accountId}`, a
    /// deal's with `filter: {opportunityId}`.
    #[allow(clippy::too_many_arguments)]
    async fn contracts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<ContractFilterInput>,
        order_by: Option<ContractOrder>,
    ) -> Result<Page<Contract>> {
        let page = Paging {
            first,
            after,
            last,
            before,
        };
        list(
            ctx,
            page,
            filter.unwrap_or_default(),
            order_by.unwrap_or_default(),
        )
        .await
    }

    /// One contract (NOT_FOUND if outside your scope).
    async fn contract(&self, ctx: &Context<'_>, id: ID) -> Result<Contract> {
        contract_by_id(ctx, &id).await
    }
}

/// One live contract in the caller's read scope.
pub async fn contract_by_id(ctx: &Context<'_>, id: &str) -> Result<Contract> {
    resolve::get::<Contracts>(ctx, id).await?.try_into()
}

async fn quote_by_id(ctx: &Context<'_>, id: &str) -> Result<Quote> {
    resolve::get::<Quotes>(ctx, id).await?.try_into()
}

/// Contract mutations.
#[derive(Default)]
pub struct ContractMutation;

#[Object]
impl ContractMutation {
    /// Creates a DRAFT contract with an account you may see (owned by you
    /// unless `ownerId` says otherwise).
    async fn create_contract(
        &self,
        ctx: &Context<'_>,
        input: CreateContractInput,
    ) -> Result<Contract> {
        let fields = ContractFields {
            name: Some(input.name),
            account_id: Some(input.account_id.0),
            opportunity_id: input.opportunity_id.map(|i| Some(i.0)),
            owner_id: id_of(input.owner_id),
            start_date: Some(input.start_date),
            end_date: Some(input.end_date),
            value: Some(input.value),
            renewal_pipeline_id: mu(input.renewal_pipeline_id).map(|o| o.map(|i| i.0)),
            renewal_notice_days: input.renewal_notice_days,
            ..Default::default()
        };
        resolve::create::<Contracts>(ctx, fields).await?.try_into()
    }

    /// Creates a DRAFT contract from an ACCEPTED quote you may see
    /// (VALIDATION for another status; CONFLICT if the quote already made
    /// a contract).
    async fn create_contract_from_quote(
        &self,
        ctx: &Context<'_>,
        input: CreateContractFromQuoteInput,
    ) -> Result<Contract> {
        let quote = resolve::get_referenced::<Quotes>(ctx, &input.quote_id, "quoteId").await?;
        let fields = ContractFields {
            name: input.name,
            owner_id: id_of(input.owner_id),
            start_date: input.start_date,
            end_date: input.end_date,
            renewal_pipeline_id: mu(input.renewal_pipeline_id).map(|o| o.map(|i| i.0)),
            renewal_notice_days: input.renewal_notice_days,
            from_quote: Some(quote),
            ..Default::default()
        };
        resolve::create::<Contracts>(ctx, fields).await?.try_into()
    }

    /// Changes a DRAFT or ACTIVE contract in your scope if `version` is
    /// current.
    async fn update_contract(
        &self,
        ctx: &Context<'_>,
        input: UpdateContractInput,
    ) -> Result<Contract> {
        let fields = ContractFields {
            name: input.name,
            opportunity_id: mu(input.opportunity_id).map(|o| o.map(|i| i.0)),
            owner_id: id_of(input.owner_id),
            start_date: input.start_date,
            end_date: input.end_date,
            value: input.value,
            renewal_pipeline_id: mu(input.renewal_pipeline_id).map(|o| o.map(|i| i.0)),
            renewal_notice_days: input.renewal_notice_days,
            ..Default::default()
        };
        resolve::update::<Contracts>(ctx, &input.id, input.version, fields)
            .await?
            .try_into()
    }

    /// Moves a contract on if `version` is current: DRAFT → ACTIVE or
    /// TERMINATED, ACTIVE → EXPIRED or TERMINATED. Any other move is a
    /// VALIDATION naming both statuses.
    async fn set_contract_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
        status: ContractStatus,
    ) -> Result<Contract> {
        let fields = ContractFields {
            status: Some(status),
            ..Default::default()
        };
        resolve::update::<Contracts>(ctx, &id, version, fields)
            .await?
            .try_into()
    }

    /// Moves a contract to the recycle bin.
    async fn delete_contract(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<Contract> {
        resolve::delete::<Contracts>(ctx, &id, version)
            .await?
            .try_into()
    }

    /// Brings a contract back from the recycle bin.
    async fn restore_contract(&self, ctx: &Context<'_>, id: ID) -> Result<Contract> {
        resolve::restore::<Contracts>(ctx, &id).await?.try_into()
    }
}
