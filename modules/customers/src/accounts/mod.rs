//! Accounts (companies): GraphQL types, queries and mutations.

mod export;
pub mod repo;
pub mod service;

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, Utc};
use crm_core::access::{principal, require_create, row_filter};
use crm_core::app::App;
use crm_core::entity::{self, Cond, ListQuery, store};
use crm_core::error::{Error, Result};
use crm_core::identity::graphql::{User, visible_user};
use crm_core::paging::{self, Direction, Page};

use self::repo::{AccountOrderField, AccountRow, Accounts};
use self::service::AccountFields;
use crate::tags::{self, Tag};
use crate::values::{Address, LifecycleStage, Money, SizeBand};

/// A company we sell to or serve.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Account {
    /// `acc_…`
    pub id: ID,
    /// Company name.
    pub name: String,
    /// Industry.
    pub industry: Option<String>,
    #[graphql(skip)]
    pub size_band_raw: Option<String>,
    /// Web site.
    pub website: Option<String>,
    /// Main phone (E.164).
    pub phone: Option<String>,
    /// Postal address.
    pub address: Option<Address>,
    /// Yearly revenue.
    pub annual_revenue: Option<Money>,
    /// Credit limit (sensitive).
    pub credit_limit: Option<Money>,
    #[graphql(skip)]
    pub lifecycle_stage_raw: String,
    /// Rating or tier.
    pub rating: Option<String>,
    /// Where the account came from.
    pub source: Option<String>,
    /// Free-form notes.
    pub notes: Option<String>,
    /// The owning user's id.
    pub owner_id: ID,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
    /// When it was moved to the recycle bin, if it was.
    pub deleted_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub custom_raw: String,
}

fn money(amount: Option<i64>, currency: Option<String>) -> Option<Money> {
    Some(Money {
        amount_minor: amount?,
        currency: currency.unwrap_or_default(),
    })
}

impl From<AccountRow> for Account {
    fn from(r: AccountRow) -> Self {
        Account {
            id: r.id.into(),
            name: r.name,
            industry: r.industry,
            size_band_raw: r.size_band,
            website: r.website,
            phone: r.phone,
            address: r
                .address
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok()),
            annual_revenue: money(r.annual_revenue, r.revenue_currency),
            credit_limit: money(r.credit_limit, r.credit_currency),
            lifecycle_stage_raw: r.lifecycle_stage,
            rating: r.rating,
            source: r.source,
            notes: r.notes,
            owner_id: r.owner_id.into(),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
            deleted_at: r.deleted_at.map(|t| t.and_utc()),
            custom_raw: r.custom,
        }
    }
}

/// One lifecycle change.
#[derive(SimpleObject, Clone, Debug)]
pub struct StageChange {
    /// Stage before (null for the first).
    pub from_stage: Option<LifecycleStage>,
    /// Stage after.
    pub to_stage: LifecycleStage,
    /// Who changed it.
    pub changed_by: Option<ID>,
    /// When (UTC).
    pub changed_at: DateTime<Utc>,
}

#[ComplexObject]
impl Account {
    /// Head-count band.
    async fn size_band(&self) -> Result<Option<SizeBand>> {
        self.size_band_raw
            .as_deref()
            .map(SizeBand::from_stored)
            .transpose()
    }

    /// Lifecycle stage.
    async fn lifecycle_stage(&self) -> Result<LifecycleStage> {
        LifecycleStage::from_stored(&self.lifecycle_stage_raw)
    }

    /// Custom field values by key (those you may read; see
    /// `customFieldDefinitions`).
    async fn custom(&self, ctx: &Context<'_>) -> Result<async_graphql::Json<serde_json::Value>> {
        crate::loaders::custom_values(ctx, "Account", &self.custom_raw).await
    }

    /// The owning user (null if you may not see that user).
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        visible_user(ctx, &self.owner_id).await
    }

    /// The owner's team: accounts belong to a team through their owner
    /// (null if none or not visible to you).
    async fn team(&self, ctx: &Context<'_>) -> Result<Option<crm_core::identity::graphql::Team>> {
        let app = ctx.data_unchecked::<App>();
        let team_id = {
            let mut c = app.db.conn().await?;
            crm_core::identity::repo::user(&mut c.conn(), &self.owner_id)
                .await?
                .and_then(|u| u.team_id)
        };
        let Some(t) = team_id else {
            return Ok(None);
        };
        crm_core::error::visible(crm_core::identity::graphql::team_by_id(ctx, &t).await)
    }

    /// Tags, by name.
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        if let Some(l) = ctx.data_opt::<crate::loaders::Loaders>() {
            let rows = l
                .account_tags
                .load_one(self.id.0.clone())
                .await?
                .unwrap_or_default();
            return Ok(rows.into_iter().map(Tag::from).collect());
        }
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let rows = tags::for_accounts(&mut c.conn(), std::slice::from_ref(&self.id.0)).await?;
        Ok(rows.into_iter().map(|(_, t)| t.into()).collect())
    }

    /// The account's contacts you may see.
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Page<crate::contacts::Contact>> {
        if let (Some(l), None) = (ctx.data_opt::<crate::loaders::Loaders>(), &after) {
            let rows = l
                .contacts
                .load_one(self.id.0.clone())
                .await?
                .unwrap_or_default();
            let keyed = rows
                .into_iter()
                .map(|r| {
                    (
                        paging::pair(&r.last_name, &r.id),
                        crate::contacts::Contact::from(r),
                    )
                })
                .collect();
            return crate::loaders::first_page(keyed, first);
        }
        crate::contacts::list_for_account(ctx, &self.id, first, after).await
    }

    /// The interaction timeline, newest first.
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Page<crate::activities::Activity>> {
        crate::activities::timeline_page(
            ctx,
            crm_core::entity::SubjectType::of("Account")?,
            &self.id,
            first,
            after,
        )
        .await
    }

    /// Order history, newest first.
    async fn purchases(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Page<crate::purchases::Purchase>> {
        crate::purchases::page(ctx, crate::purchases::Of::Account(&self.id), first, after).await
    }

    /// Lifecycle changes, oldest first.
    async fn stage_history(&self, ctx: &Context<'_>) -> Result<Vec<StageChange>> {
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let rows = repo::stage_history(&mut c.conn(), &self.id).await?;
        rows.into_iter()
            .map(|r| {
                Ok(StageChange {
                    from_stage: r
                        .from_stage
                        .as_deref()
                        .map(LifecycleStage::from_stored)
                        .transpose()?,
                    to_stage: LifecycleStage::from_stored(&r.to_stage)?,
                    changed_by: r.changed_by.map(Into::into),
                    changed_at: r.changed_at.and_utc(),
                })
            })
            .collect()
    }
}

/// Filter for `accounts`; all given conditions must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct AccountFilterInput {
    /// Owned by this user.
    pub owner_id: Option<ID>,
    /// Owned by a member of this team.
    pub team_id: Option<ID>,
    /// Carrying this tag.
    pub tag_id: Option<ID>,
    /// In this lifecycle stage.
    pub lifecycle_stage: Option<LifecycleStage>,
    /// In this industry.
    pub industry: Option<String>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    /// Changed at or after.
    pub updated_from: Option<DateTime<Utc>>,
    /// Changed before.
    pub updated_to: Option<DateTime<Utc>>,
    /// Name, website or phone contains this text.
    pub search: Option<String>,
    /// Name starts with this text (case-sensitive).
    pub name_prefix: Option<String>,
    /// The recycle bin instead of live accounts (needs delete rights).
    #[graphql(default)]
    pub deleted: bool,
    /// Custom fields with these values (all must hold).
    pub custom: Option<Vec<crm_core::custom::CustomFieldFilter>>,
}

impl AccountFilterInput {
    /// The list conditions of this filter (all must hold).
    pub(crate) fn to_query(&self) -> ListQuery {
        let mut conds = Vec::new();
        if let Some(v) = &self.owner_id {
            conds.push(Cond::Eq("owner_id", v.0.as_str().into()));
        }
        if let Some(v) = &self.tag_id {
            conds.push(repo::tagged(v));
        }
        if let Some(v) = self.lifecycle_stage {
            conds.push(Cond::Eq("lifecycle_stage", v.as_text().into()));
        }
        if let Some(v) = &self.industry {
            conds.push(Cond::Eq("industry", v.as_str().into()));
        }
        let time = |t: Option<DateTime<Utc>>| t.map(|t| t.naive_utc().into());
        if self.created_from.is_some() || self.created_to.is_some() {
            conds.push(Cond::Range(
                "created_at",
                time(self.created_from),
                time(self.created_to),
            ));
        }
        if self.updated_from.is_some() || self.updated_to.is_some() {
            conds.push(Cond::Range(
                "updated_at",
                time(self.updated_from),
                time(self.updated_to),
            ));
        }
        if let Some(p) = &self.name_prefix {
            conds.push(Cond::Prefix("name", p.clone()));
        }
        ListQuery {
            conds,
            search: self.search.clone(),
            deleted: self.deleted,
            ..Default::default()
        }
    }
}

/// Ordering for `accounts`.
#[derive(InputObject, Default)]
pub struct AccountOrder {
    /// Sort key.
    #[graphql(default)]
    pub field: AccountOrderField,
    /// Direction.
    #[graphql(default)]
    pub direction: Direction,
    /// Sort by this custom field instead of `field` (not multi-select).
    pub custom_key: Option<String>,
}

/// Input for `createAccount`.
#[derive(InputObject)]
pub struct CreateAccountInput {
    pub name: String,
    pub industry: Option<String>,
    pub size_band: Option<SizeBand>,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub address: Option<Address>,
    pub annual_revenue: Option<Money>,
    pub credit_limit: Option<Money>,
    pub lifecycle_stage: Option<LifecycleStage>,
    pub rating: Option<String>,
    pub source: Option<String>,
    pub notes: Option<String>,
    /// Owner (default: you).
    pub owner_id: Option<ID>,
    /// Custom field values by key (see `customFieldDefinitions`).
    pub custom: Option<async_graphql::Json<serde_json::Map<String, serde_json::Value>>>,
}

/// Input for `updateAccount`: omitted fields stay, null clears.
#[derive(InputObject)]
pub struct UpdateAccountInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    pub industry: MaybeUndefined<String>,
    pub size_band: MaybeUndefined<SizeBand>,
    pub website: MaybeUndefined<String>,
    pub phone: MaybeUndefined<String>,
    pub address: MaybeUndefined<Address>,
    pub annual_revenue: MaybeUndefined<Money>,
    pub credit_limit: MaybeUndefined<Money>,
    pub lifecycle_stage: Option<LifecycleStage>,
    pub rating: MaybeUndefined<String>,
    pub source: MaybeUndefined<String>,
    pub notes: MaybeUndefined<String>,
    pub owner_id: Option<ID>,
    /// Custom field values to change, by key (null clears one).
    pub custom: Option<async_graphql::Json<serde_json::Map<String, serde_json::Value>>>,
}

use crm_core::graphql::patch as mu;

/// Account queries.
#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// Accounts you may see.
    #[allow(clippy::too_many_arguments)]
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<AccountFilterInput>,
        order_by: Option<AccountOrder>,
    ) -> Result<Page<Account>> {
        let f = filter.unwrap_or_default();
        let scope = row_filter(ctx, "Account", if f.deleted { "delete" } else { "read" }).await?;
        let q = paging::query(first, after, last, before)?;
        let order = order_by.unwrap_or_default();
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let scope = match &f.team_id {
            // A team filter narrows the scope to that team's members.
            Some(t) => crm_core::access::narrow_to_team(app, scope, t).await?,
            None => scope,
        };
        let mut lq = f.to_query();
        lq.order = Some((order.field.column(), order.direction));
        (lq.custom, lq.custom_sort) = crm_core::custom::query_parts(
            app,
            principal(ctx),
            "Account",
            "accounts",
            f.custom.as_deref().unwrap_or_default(),
            order.custom_key.as_deref(),
        )
        .await?;
        let (rows, total) = entity::list::<Accounts>(
            &mut c.conn(),
            &scope,
            &lq,
            &q,
            ctx.look_ahead().field("totalCount").exists(),
        )
        .await?;
        drop(c);
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        crate::loaders::prefetch_accounts(ctx, &ids).await?;
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            let key = paging::pair(&entity::list::sort_value::<Accounts>(&lq, &r)?, &r.id);
            items.push((key, Account::from(r)));
        }
        Ok(paging::build_keyed(&q, items, total))
    }

    /// One account (NOT_FOUND if outside your scope).
    async fn account(&self, ctx: &Context<'_>, id: ID) -> Result<Account> {
        account_by_id(ctx, &id).await
    }
}

/// One live account in the caller's read scope.
pub async fn account_by_id(ctx: &Context<'_>, id: &str) -> Result<Account> {
    let scope = row_filter(ctx, "Account", "read").await?;
    let app = ctx.data_unchecked::<App>();
    let mut c = app.db.conn().await?;
    Ok(store::fetch::<Accounts>(&mut c.conn(), &scope, id)
        .await?
        .into())
}

/// Account mutations.
#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates an account (owned by you unless `ownerId` says otherwise).
    async fn create_account(
        &self,
        ctx: &Context<'_>,
        input: CreateAccountInput,
    ) -> Result<Account> {
        require_create(ctx, "Account")?;
        let fields = AccountFields {
            name: Some(input.name),
            industry: Some(input.industry),
            size_band: Some(input.size_band),
            website: Some(input.website),
            phone: Some(input.phone),
            address: Some(input.address),
            annual_revenue: Some(input.annual_revenue),
            credit_limit: Some(input.credit_limit),
            lifecycle_stage: input.lifecycle_stage,
            rating: Some(input.rating),
            source: Some(input.source),
            notes: Some(input.notes),
            owner_id: input.owner_id.map(|i| i.0),
            custom: input.custom.map(|c| c.0),
            ..Default::default()
        };
        let app = ctx.data_unchecked::<App>();
        Ok(store::create::<Accounts>(app, principal(ctx), fields)
            .await?
            .into())
    }

    /// Updates an account in your scope if `version` is current.
    async fn update_account(
        &self,
        ctx: &Context<'_>,
        input: UpdateAccountInput,
    ) -> Result<Account> {
        let scope = row_filter(ctx, "Account", "update").await?;
        let fields = AccountFields {
            name: input.name,
            industry: mu(input.industry),
            size_band: mu(input.size_band),
            website: mu(input.website),
            phone: mu(input.phone),
            address: mu(input.address),
            annual_revenue: mu(input.annual_revenue),
            credit_limit: mu(input.credit_limit),
            lifecycle_stage: input.lifecycle_stage,
            rating: mu(input.rating),
            source: mu(input.source),
            notes: mu(input.notes),
            owner_id: input.owner_id.map(|i| i.0),
            custom: input.custom.map(|c| c.0),
            ..Default::default()
        };
        let app = ctx.data_unchecked::<App>();
        Ok(store::update::<Accounts>(
            app,
            principal(ctx),
            &scope,
            &input.id,
            input.version,
            fields,
        )
        .await?
        .into())
    }

    /// Moves an account to another lifecycle stage (recorded in its history).
    async fn change_lifecycle_stage(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
        stage: LifecycleStage,
    ) -> Result<Account> {
        let scope = row_filter(ctx, "Account", "update").await?;
        let fields = AccountFields {
            lifecycle_stage: Some(stage),
            ..Default::default()
        };
        let app = ctx.data_unchecked::<App>();
        Ok(
            store::update::<Accounts>(app, principal(ctx), &scope, &id, version, fields)
                .await?
                .into(),
        )
    }

    /// Gives accounts to another owner, all or none.
    async fn assign_accounts(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        owner_id: ID,
    ) -> Result<Vec<Account>> {
        let scope = row_filter(ctx, "Account", "update").await?;
        if ids.is_empty() || ids.len() > 500 {
            return Err(Error::invalid("ids", "give 1 to 500 account ids"));
        }
        let app = ctx.data_unchecked::<App>();
        let rows = service::assign(app, principal(ctx), &scope, &ids, &owner_id).await?;
        Ok(rows.into_iter().map(Account::from).collect())
    }

    /// Replaces an account's tags.
    async fn set_account_tags(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
        tag_ids: Vec<ID>,
    ) -> Result<Account> {
        let scope = row_filter(ctx, "Account", "update").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(
            service::set_tags(app, principal(ctx), &scope, &id, version, &tag_ids)
                .await?
                .into(),
        )
    }

    /// Moves an account to the recycle bin (an admin can restore it).
    async fn delete_account(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<Account> {
        let scope = row_filter(ctx, "Account", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(
            store::delete::<Accounts>(app, principal(ctx), &scope, &id, version)
                .await?
                .into(),
        )
    }

    /// Brings an account back from the recycle bin.
    async fn restore_account(&self, ctx: &Context<'_>, id: ID) -> Result<Account> {
        let scope = row_filter(ctx, "Account", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(store::restore::<Accounts>(app, principal(ctx), &scope, &id)
            .await?
            .into())
    }

    /// Deletes a recycled account for good; its contacts stay, unlinked.
    async fn purge_account(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let scope = row_filter(ctx, "Account", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(store::purge::<Accounts>(app, principal(ctx), &scope, &id)
            .await?
            .into())
    }
}
