//! Opportunities (deals): GraphQL types, queries and mutations. Lists,
//! fetch, writes, assign and the recycle bin are the entity kit's; the
//! domain rules are the hooks in [`service`].

pub mod board;
pub mod contact_roles;
pub mod export;
pub mod history;
pub mod import;
pub mod line_items;
pub mod prompts;
pub mod repo;
pub mod service;
pub mod stale;

use async_graphql::{
    ComplexObject, Context, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, NaiveDate, Utc};
use crm_core::access::{principal, row_filter};
use crm_core::app::App;
use crm_core::entity::resolve::{self, Paging, Sorting};
use crm_core::entity::{Cond, ListQuery, store};
use crm_core::error::{Error, Result, visible};
use crm_core::graphql::patch as mu;
use crm_core::identity::graphql::{User, visible_user};
use crm_core::paging::{Direction, Page};
use crm_customers::accounts::{Account, account_by_id};
use crm_customers::contacts::{Contact, contact_by_id};
use crm_customers::values::Money;

pub use self::export::OpportunityExportMutation;
use self::repo::{Opportunities, OpportunityOrderField, OpportunityRow};
use self::service::OpportunityFields;
use crate::pipelines::{Pipeline, PipelineStage, pipeline_by_id, stage_by_id};
use crate::values::{self, ForecastCategory};

/// A deal with an account, moving through the stages of a pipeline.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Opportunity {
    /// `opp_…`
    pub id: ID,
    /// Name.
    pub name: String,
    /// The account it is with.
    pub account_id: ID,
    /// The main person on the customer's side.
    pub primary_contact_id: Option<ID>,
    /// The owning user's id.
    pub owner_id: ID,
    /// The pipeline it is in.
    pub pipeline_id: ID,
    /// Its stage in that pipeline.
    pub stage_id: ID,
    /// Expected value.
    pub amount: Option<Money>,
    /// Expected (or actual) close date.
    pub close_date: Option<NaiveDate>,
    /// Win probability, 0–100 (the stage's unless set).
    pub probability: i64,
    /// Forecast category (the stage's unless set).
    pub forecast_category: ForecastCategory,
    /// What happens next.
    pub next_step: Option<String>,
    /// Where it came from.
    pub source: Option<String>,
    /// The campaign credited with it (an id; resolved by the marketing
    /// module).
    pub campaign_id: Option<String>,
    /// Why it was lost (only in a LOST stage).
    pub lost_reason: Option<String>,
    /// When it was won or lost (null while open).
    pub closed_at: Option<DateTime<Utc>>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
    /// When it was moved to the recycle bin, if it was.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Its tags' ids.
    pub tag_ids: Vec<ID>,
    /// When it entered its current stage (or was created).
    pub stage_entered_at: DateTime<Utc>,
    /// The primary quote (its lines are the line items); see `quotes`.
    pub primary_quote_id: Option<ID>,
    #[graphql(skip)]
    pub custom_raw: String,
}

impl TryFrom<OpportunityRow> for Opportunity {
    type Error = Error;

    fn try_from(r: OpportunityRow) -> Result<Self> {
        Ok(Opportunity {
            id: r.id.into(),
            name: r.name,
            account_id: r.account_id.into(),
            primary_contact_id: r.primary_contact_id.map(Into::into),
            owner_id: r.owner_id.into(),
            pipeline_id: r.pipeline_id.into(),
            stage_id: r.stage_id.into(),
            amount: r.amount.map(|a| Money {
                amount_minor: a,
                currency: r.currency.unwrap_or_default(),
            }),
            close_date: r
                .close_date
                .as_deref()
                .map(values::parse_date)
                .transpose()?,
            probability: r.probability,
            forecast_category: ForecastCategory::from_stored(&r.forecast_category)?,
            next_step: r.next_step,
            source: r.source,
            campaign_id: r.campaign_id,
            lost_reason: r.lost_reason,
            closed_at: r.closed_at.map(|t| t.and_utc()),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
            deleted_at: r.deleted_at.map(|t| t.and_utc()),
            tag_ids: serde_json::from_str::<Vec<String>>(&r.tags)
                .map_err(|e| Error::Internal(format!("stored opportunity tags: {e}")))?
                .into_iter()
                .map(Into::into)
                .collect(),
            stage_entered_at: r.stage_entered_at.and_utc(),
            primary_quote_id: r.primary_quote_id.map(Into::into),
            custom_raw: r.custom,
        })
    }
}

/// One entry of an opportunity's history.
#[derive(SimpleObject, Clone, Debug)]
pub struct OpportunityHistoryEntry {
    /// `oph_…`
    pub id: ID,
    /// Whether the stage changed.
    pub stage_changed: bool,
    /// The changed fields you may read, with their values before and after.
    pub changes: Vec<OpportunityFieldChange>,
    /// Who changed it (a user or API key id).
    pub changed_by: Option<ID>,
    /// When (UTC).
    pub changed_at: DateTime<Utc>,
}

/// One field's change.
#[derive(SimpleObject, Clone, Debug)]
pub struct OpportunityFieldChange {
    /// The `Opportunity` field: `stageId`, `amount`, `closeDate`,
    /// `probability` or `forecastCategory`.
    pub field: String,
    /// Before (null for a new opportunity).
    pub from: Json<serde_json::Value>,
    /// After.
    pub to: Json<serde_json::Value>,
}

#[ComplexObject]
impl Opportunity {
    /// Custom field values by key (those you may read).
    async fn custom(&self, ctx: &Context<'_>) -> Result<Json<serde_json::Value>> {
        crm_customers::loaders::custom_values(ctx, "Opportunity", &self.custom_raw).await
    }

    /// The account (null if you may not see it).
    async fn account(&self, ctx: &Context<'_>) -> Result<Option<Account>> {
        visible(account_by_id(ctx, &self.account_id).await)
    }

    /// The primary contact (null if none or you may not see it).
    async fn primary_contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        match &self.primary_contact_id {
            Some(id) => visible(contact_by_id(ctx, id).await),
            None => Ok(None),
        }
    }

    /// The owning user (null if you may not see that user).
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        visible_user(ctx, &self.owner_id).await
    }

    /// The pipeline.
    async fn pipeline(&self, ctx: &Context<'_>) -> Result<Option<Pipeline>> {
        visible(pipeline_by_id(ctx, &self.pipeline_id).await)
    }

    /// The stage.
    async fn stage(&self, ctx: &Context<'_>) -> Result<Option<PipelineStage>> {
        visible(stage_by_id(ctx, &self.stage_id).await)
    }

    /// Stage, amount, close date, probability and forecast category
    /// changes, oldest first, with only the fields you may read (an entry
    /// with none of them is left out).
    async fn stage_history(&self, ctx: &Context<'_>) -> Result<Vec<OpportunityHistoryEntry>> {
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        let rows = {
            let mut c = app.db.conn().await?;
            history::of(&mut c.conn(), std::slice::from_ref(&self.id.0)).await?
        };
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let changes: Vec<OpportunityFieldChange> = history::readable_changes(app, by, &r)
                    .into_iter()
                    .map(|c| OpportunityFieldChange {
                        field: c.field,
                        from: Json(c.from),
                        to: Json(c.to),
                    })
                    .collect();
                (!changes.is_empty()).then(|| OpportunityHistoryEntry {
                    id: r.id.into(),
                    stage_changed: r.stage_changed,
                    changes,
                    changed_by: r.changed_by.map(Into::into),
                    changed_at: r.changed_at.and_utc(),
                })
            })
            .collect())
    }

    /// Products sold, in order (the amount is their totals' sum when there
    /// are any).
    async fn line_items(&self, ctx: &Context<'_>) -> Result<Vec<line_items::OpportunityLineItem>> {
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        Ok(
            line_items::of(&mut c.conn(), std::slice::from_ref(&self.id.0))
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        )
    }

    /// Its quotes you may see, newest first unless `orderBy` says
    /// otherwise (the same list as `quotes(filter: {opportunityId})`).
    async fn quotes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        order_by: Option<crate::quotes::QuoteOrder>,
    ) -> Result<Page<crate::quotes::Quote>> {
        let filter = crate::quotes::QuoteFilterInput {
            opportunity_id: Some(self.id.clone()),
            ..Default::default()
        };
        let order = order_by.unwrap_or(crate::quotes::QuoteOrder {
            field: crate::quotes::repo::QuoteOrderField::CreatedAt,
            direction: Direction::Desc,
        });
        let page = Paging {
            first,
            after,
            ..Default::default()
        };
        crate::quotes::list(ctx, page, filter, order).await
    }

    /// The people on the customer's side and their part in the deal.
    async fn contact_roles(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<contact_roles::OpportunityContactRole>> {
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        contact_roles::of(&mut c.conn(), std::slice::from_ref(&self.id.0))
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    /// Seconds in the current stage.
    async fn time_in_stage(&self) -> i64 {
        (crm_core::ids::now() - self.stage_entered_at.naive_utc())
            .num_seconds()
            .max(0)
    }

    /// Whole days since the last stage change.
    async fn days_since_stage_change(&self) -> i64 {
        (crm_core::ids::now() - self.stage_entered_at.naive_utc())
            .num_days()
            .max(0)
    }

    /// True when it has been in an open stage longer than the stage's
    /// rotting threshold.
    async fn rotting(&self, ctx: &Context<'_>) -> Result<bool> {
        let stage = match visible(stage_by_id(ctx, &self.stage_id).await)? {
            Some(s) => s,
            None => return Ok(false),
        };
        let Some(days) = stage.rotting_days else {
            return Ok(false);
        };
        if self.closed_at.is_some() {
            return Ok(false);
        }
        let since = self.stage_entered_at.naive_utc();
        Ok((crm_core::ids::now() - since).num_days() >= days)
    }
}

/// Filter for `opportunities`; all given conditions must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct OpportunityFilterInput {
    /// With this account (an account's deals).
    pub account_id: Option<ID>,
    /// In this pipeline.
    pub pipeline_id: Option<ID>,
    /// In one of these stages.
    pub stage_id: Option<Vec<ID>>,
    /// Owned by this user.
    pub owner_id: Option<ID>,
    /// Closing on or after this date.
    pub close_date_from: Option<NaiveDate>,
    /// Closing before this date.
    pub close_date_to: Option<NaiveDate>,
    /// In this forecast category.
    pub forecast_category: Option<ForecastCategory>,
    /// Carrying this tag.
    pub tag_id: Option<ID>,
    /// Name or next step contains this text.
    pub search: Option<String>,
    /// The recycle bin instead of live deals (needs delete rights).
    #[graphql(default)]
    pub deleted: bool,
    /// Custom fields with these values (all must hold).
    pub custom: Option<Vec<crm_core::custom::CustomFieldFilter>>,
}

impl OpportunityFilterInput {
    /// The list conditions of this filter (all must hold).
    pub(crate) fn to_query(&self) -> ListQuery {
        let mut conds = Vec::new();
        if let Some(v) = &self.account_id {
            conds.push(Cond::Eq("account_id", v.0.as_str().into()));
        }
        if let Some(v) = &self.pipeline_id {
            conds.push(Cond::Eq("pipeline_id", v.0.as_str().into()));
        }
        if let Some(v) = &self.stage_id {
            conds.push(Cond::In(
                "stage_id",
                v.iter().map(|s| s.0.as_str().into()).collect(),
            ));
        }
        if let Some(v) = &self.owner_id {
            conds.push(Cond::Eq("owner_id", v.0.as_str().into()));
        }
        if self.close_date_from.is_some() || self.close_date_to.is_some() {
            let d = |d: Option<NaiveDate>| -> Option<crm_core::entity::sql::Bind> {
                d.map(|d| values::store_date(d).into())
            };
            conds.push(Cond::Range(
                "close_date",
                d(self.close_date_from),
                d(self.close_date_to),
            ));
        }
        if let Some(v) = self.forecast_category {
            conds.push(Cond::Eq("forecast_category", v.as_str().into()));
        }
        if let Some(v) = &self.tag_id {
            conds.push(Cond::Has("tags", v.to_string()));
        }
        ListQuery {
            conds,
            search: self.search.clone(),
            deleted: self.deleted,
            ..Default::default()
        }
    }
}

/// Ordering for `opportunities`.
#[derive(InputObject, Default)]
pub struct OpportunityOrder {
    /// Sort key.
    #[graphql(default)]
    pub field: OpportunityOrderField,
    /// Direction.
    #[graphql(default)]
    pub direction: Direction,
    /// Sort by this custom field instead of `field` (not multi-select).
    pub custom_key: Option<String>,
}

/// Input for `createOpportunity`.
#[derive(InputObject)]
pub struct CreateOpportunityInput {
    pub name: String,
    /// A live account you may see.
    pub account_id: ID,
    /// A live contact you may see.
    pub primary_contact_id: Option<ID>,
    /// Owner (default: you).
    pub owner_id: Option<ID>,
    pub pipeline_id: ID,
    /// Default: the pipeline's first active stage.
    pub stage_id: Option<ID>,
    pub amount: Option<Money>,
    pub close_date: Option<NaiveDate>,
    /// Default: the stage's.
    pub probability: Option<i64>,
    /// Default: the stage's.
    pub forecast_category: Option<ForecastCategory>,
    pub next_step: Option<String>,
    pub source: Option<String>,
    pub campaign_id: Option<String>,
    /// Required when the stage is a LOST one.
    pub lost_reason: Option<String>,
    /// Custom field values by key (see `customFieldDefinitions`).
    pub custom: Option<Json<serde_json::Map<String, serde_json::Value>>>,
    /// Tags (ids of existing tags).
    #[graphql(default)]
    pub tag_ids: Vec<ID>,
}

/// Input for `updateOpportunity`: omitted fields stay, null clears. A new
/// stage of another pipeline needs `pipelineId` in the same write; entering
/// a stage sets its probability and forecast category unless given here.
#[derive(InputObject)]
pub struct UpdateOpportunityInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    pub account_id: Option<ID>,
    pub primary_contact_id: MaybeUndefined<ID>,
    pub owner_id: Option<ID>,
    pub pipeline_id: Option<ID>,
    pub stage_id: Option<ID>,
    pub amount: MaybeUndefined<Money>,
    pub close_date: MaybeUndefined<NaiveDate>,
    pub probability: Option<i64>,
    pub forecast_category: Option<ForecastCategory>,
    pub next_step: MaybeUndefined<String>,
    pub source: MaybeUndefined<String>,
    pub campaign_id: MaybeUndefined<String>,
    pub lost_reason: MaybeUndefined<String>,
    /// Custom field values to change, by key (null clears one).
    pub custom: Option<Json<serde_json::Map<String, serde_json::Value>>>,
    /// Replaces the tags (ids of existing tags; `[]` removes all).
    pub tag_ids: Option<Vec<ID>>,
}

fn id_text(v: MaybeUndefined<ID>) -> Option<Option<String>> {
    mu(v).map(|o| o.map(|i| i.0))
}

/// Opportunity queries.
#[derive(Default)]
pub struct OpportunityQuery;

#[Object]
impl OpportunityQuery {
    /// Opportunities you may see (an account's deals:
    /// `filter: {accountId}`).
    #[allow(clippy::too_many_arguments)]
    async fn opportunities(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<OpportunityFilterInput>,
        order_by: Option<OpportunityOrder>,
    ) -> Result<Page<Opportunity>> {
        let f = filter.unwrap_or_default();
        let o = order_by.unwrap_or_default();
        let query = f.to_query();
        let sorting = Sorting {
            by: (o.field.column(), o.direction),
            custom: f.custom.as_deref().unwrap_or_default(),
            custom_key: o.custom_key.as_deref(),
        };
        let page = Paging {
            first,
            after,
            last,
            before,
        };
        resolve::list::<Opportunities, _>(ctx, page, query, sorting, Opportunity::try_from).await
    }

    /// One opportunity (NOT_FOUND if outside your scope).
    async fn opportunity(&self, ctx: &Context<'_>, id: ID) -> Result<Opportunity> {
        opportunity_by_id(ctx, &id).await
    }
}

/// One live opportunity in the caller's read scope.
pub async fn opportunity_by_id(ctx: &Context<'_>, id: &str) -> Result<Opportunity> {
    resolve::get::<Opportunities>(ctx, id).await?.try_into()
}

/// Opportunity mutations.
#[derive(Default)]
pub struct OpportunityMutation;

#[Object]
impl OpportunityMutation {
    /// Creates an opportunity (owned by you unless `ownerId` says
    /// otherwise).
    async fn create_opportunity(
        &self,
        ctx: &Context<'_>,
        input: CreateOpportunityInput,
    ) -> Result<Opportunity> {
        let fields = OpportunityFields {
            name: Some(input.name),
            account_id: Some(input.account_id.0),
            primary_contact_id: Some(input.primary_contact_id.map(|i| i.0)),
            owner_id: input.owner_id.map(|i| i.0),
            pipeline_id: Some(input.pipeline_id.0),
            stage_id: input.stage_id.map(|i| i.0),
            amount: Some(input.amount),
            close_date: Some(input.close_date),
            probability: input.probability,
            forecast_category: input.forecast_category,
            next_step: Some(input.next_step),
            source: Some(input.source),
            campaign_id: Some(input.campaign_id),
            lost_reason: input.lost_reason.map(Some),
            custom: input.custom.map(|c| c.0),
            line_items: None,
            contact_roles: None,
            tag_ids: Some(input.tag_ids),
            primary_quote_id: None,
        };
        resolve::create::<Opportunities>(ctx, fields)
            .await?
            .try_into()
    }

    /// Updates an opportunity in your scope if `version` is current.
    async fn update_opportunity(
        &self,
        ctx: &Context<'_>,
        input: UpdateOpportunityInput,
    ) -> Result<Opportunity> {
        let fields = OpportunityFields {
            name: input.name,
            account_id: input.account_id.map(|i| i.0),
            primary_contact_id: id_text(input.primary_contact_id),
            owner_id: input.owner_id.map(|i| i.0),
            pipeline_id: input.pipeline_id.map(|i| i.0),
            stage_id: input.stage_id.map(|i| i.0),
            amount: mu(input.amount),
            close_date: mu(input.close_date),
            probability: input.probability,
            forecast_category: input.forecast_category,
            next_step: mu(input.next_step),
            source: mu(input.source),
            campaign_id: mu(input.campaign_id),
            lost_reason: mu(input.lost_reason),
            custom: input.custom.map(|c| c.0),
            line_items: None,
            contact_roles: None,
            tag_ids: input.tag_ids,
            primary_quote_id: None,
        };
        resolve::update::<Opportunities>(ctx, &input.id, input.version, fields)
            .await?
            .try_into()
    }

    /// Gives opportunities to another owner, all or none.
    async fn assign_opportunities(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        owner_id: ID,
    ) -> Result<Vec<Opportunity>> {
        let scope = row_filter(ctx, "Opportunity", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let ids: Vec<String> = ids.into_iter().map(|i| i.0).collect();
        store::assign::<Opportunities>(app, principal(ctx), &scope, &ids, &owner_id)
            .await?
            .into_iter()
            .map(Opportunity::try_from)
            .collect()
    }

    /// Moves an opportunity to the recycle bin.
    async fn delete_opportunity(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
    ) -> Result<Opportunity> {
        resolve::delete::<Opportunities>(ctx, &id, version)
            .await?
            .try_into()
    }

    /// Brings an opportunity back from the recycle bin.
    async fn restore_opportunity(&self, ctx: &Context<'_>, id: ID) -> Result<Opportunity> {
        resolve::restore::<Opportunities>(ctx, &id)
            .await?
            .try_into()
    }

    /// Deletes a recycled opportunity for good, with its history.
    async fn purge_opportunity(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        resolve::purge::<Opportunities>(ctx, &id).await
    }
}
