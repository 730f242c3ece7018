//! Leads: GraphQL types, queries and mutations. Lists, fetch, writes and
//! the recycle bin are the entity kit's; the domain rules are the hooks in
//! [`service`].

pub mod export;
pub mod import;
pub mod repo;
pub mod service;

use async_graphql::{
    ComplexObject, Context, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, Utc};
use crm_core::access::{principal, row_filter_for};
use crm_core::app::App;
use crm_core::entity::resolve::{self, Paging, Sorting};
use crm_core::entity::sql::Sql;
use crm_core::entity::{self, Cond, ListQuery, store};
use crm_core::error::{Error, Result};
use crm_core::graphql::patch as mu;
use crm_core::identity::graphql::{User, visible_user};
use crm_core::paging::{Direction, Page};
use crm_customers::contacts::ConsentInput;
use crm_customers::contacts::repo::Contacts;
use crm_customers::values::{ConsentState, ContactPoint, SizeBand};
use serde_json::Value;

pub use self::export::LeadExportMutation;
use self::repo::{LeadOrderField, LeadRow, Leads};
use self::service::LeadFields;
use crate::scoring::graphql::{ScoreContribution, explanation, scores_of};
use crate::values::{LeadGrade, LeadSource, LeadStatus};

/// Marketing consent of a lead, as contacts have it.
#[derive(SimpleObject, Clone, Debug)]
pub struct LeadConsent {
    /// Current state.
    pub state: ConsentState,
    /// When it last changed.
    pub at: Option<DateTime<Utc>>,
    /// How (web form, phone call, …).
    pub source: Option<String>,
}

/// A person or company that may become a customer.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Lead {
    /// `led_…`
    pub id: ID,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Email addresses (lower case).
    pub emails: Vec<ContactPoint>,
    /// Phone numbers (E.164).
    pub phones: Vec<ContactPoint>,
    /// Company name.
    pub company: Option<String>,
    /// Company website.
    pub website: Option<String>,
    /// Industry.
    pub industry: Option<String>,
    #[graphql(skip)]
    pub size_band_raw: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Region or state.
    pub region: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Where it came from.
    pub source: LeadSource,
    /// The campaign it came from (an id; resolved by the marketing module).
    pub campaign_id: Option<String>,
    /// Where it stands.
    pub status: LeadStatus,
    /// Why it is unqualified (only when UNQUALIFIED).
    pub status_reason: Option<String>,
    /// The owning user's id (null while it waits in its team's queue).
    pub owner_id: Option<ID>,
    /// The team whose queue it is in (or its owner's team, if given).
    pub team_id: Option<ID>,
    /// Its tags' ids.
    pub tag_ids: Vec<ID>,
    #[graphql(skip)]
    pub consent_raw: String,
    #[graphql(skip)]
    pub matched_contact_raw: Option<String>,
    #[graphql(skip)]
    pub duplicate_of_raw: Option<String>,
    /// When it was converted.
    pub converted_at: Option<DateTime<Utc>>,
    /// The account it was converted into.
    pub converted_account_id: Option<ID>,
    /// The contact it was converted into (its timeline moved there).
    pub converted_contact_id: Option<ID>,
    /// The opportunity the conversion opened, if any.
    pub converted_opportunity_id: Option<ID>,
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

impl TryFrom<LeadRow> for Lead {
    type Error = Error;

    fn try_from(r: LeadRow) -> Result<Self> {
        let converted: Value = r
            .converted
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(Value::Null);
        let link = |k: &str| {
            converted
                .get(k)
                .and_then(Value::as_str)
                .map(|s| ID(s.to_owned()))
        };
        let tags: Vec<String> = serde_json::from_str(&r.tags).unwrap_or_default();
        Ok(Lead {
            id: r.id.into(),
            first_name: r.first_name,
            last_name: r.last_name,
            title: r.title,
            emails: service::points(&r.emails),
            phones: service::points(&r.phones),
            company: r.company,
            website: r.website,
            industry: r.industry,
            size_band_raw: r.size_band,
            country: r.country,
            region: r.region,
            city: r.city,
            source: LeadSource::from_stored(&r.source)?,
            campaign_id: r.campaign_id,
            status: LeadStatus::from_stored(&r.status)?,
            status_reason: r.status_reason,
            owner_id: r.owner_id.map(Into::into),
            team_id: r.team_id.map(Into::into),
            tag_ids: tags.into_iter().map(Into::into).collect(),
            consent_raw: r.consent,
            matched_contact_raw: r.matched_contact_id,
            duplicate_of_raw: r.duplicate_of,
            converted_at: r.converted_at.map(|t| t.and_utc()),
            converted_account_id: link("accountId"),
            converted_contact_id: link("contactId"),
            converted_opportunity_id: link("opportunityId"),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
            deleted_at: r.deleted_at.map(|t| t.and_utc()),
            custom_raw: r.custom,
        })
    }
}

/// Whether the caller may read the live record `id` of kit entity `E`.
async fn readable<E: entity::Entity>(ctx: &Context<'_>, id: &str) -> Result<bool> {
    let app = ctx.data_unchecked::<App>();
    let Ok(scope) = row_filter_for(app, principal(ctx), E::DEF.type_name, "read").await else {
        return Ok(false);
    };
    let mut c = app.db.conn().await?;
    Ok(store::get::<E>(&mut c.conn(), &scope, id).await?.is_some())
}

#[ComplexObject]
impl Lead {
    /// Size band.
    async fn size_band(&self) -> Result<Option<SizeBand>> {
        self.size_band_raw
            .as_deref()
            .map(SizeBand::from_stored)
            .transpose()
    }

    /// Marketing consent.
    async fn consent(&self) -> Result<LeadConsent> {
        let v: Value = serde_json::from_str(&self.consent_raw).unwrap_or_default();
        let state = v
            .get("state")
            .and_then(Value::as_str)
            .map(ConsentState::from_stored)
            .transpose()?
            .unwrap_or(ConsentState::Unknown);
        Ok(LeadConsent {
            state,
            at: v
                .get("at")
                .and_then(|a| serde_json::from_value::<chrono::NaiveDateTime>(a.clone()).ok())
                .map(|t| t.and_utc()),
            source: v.get("source").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// Custom field values by key (those you may read).
    async fn custom(&self, ctx: &Context<'_>) -> Result<Json<Value>> {
        crm_customers::loaders::custom_values(ctx, "Lead", &self.custom_raw).await
    }

    /// The owning user (null while queued, or if you may not see that
    /// user).
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match &self.owner_id {
            Some(id) => visible_user(ctx, id).await,
            None => Ok(None),
        }
    }

    /// The existing contact sharing an email or phone with this lead (the
    /// duplicate check's link; null unless you may read that contact).
    async fn matched_contact_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        match &self.matched_contact_raw {
            Some(id) if readable::<Contacts>(ctx, id).await? => Ok(Some(id.clone().into())),
            _ => Ok(None),
        }
    }

    /// Fit score, 0–100: the points of the fit rules its fields match,
    /// clamped.
    async fn fit_score(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(scores_of(ctx, &self.id).await?.fit)
    }

    /// Engagement score, 0–100: points from engagement rules for its
    /// events, halving every half-life, as of now (rounded).
    async fn engagement_score(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(scores_of(ctx, &self.id).await?.engagement)
    }

    /// Combined score: fit plus engagement, at most 100.
    async fn score(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(scores_of(ctx, &self.id).await?.score)
    }

    /// Grade of the combined score under the grade thresholds.
    async fn grade(&self, ctx: &Context<'_>) -> Result<LeadGrade> {
        Ok(scores_of(ctx, &self.id).await?.grade)
    }

    /// Every rule that contributed to the scores, with its points.
    async fn score_explanation(&self, ctx: &Context<'_>) -> Result<Vec<ScoreContribution>> {
        Ok(explanation(&scores_of(ctx, &self.id).await?))
    }

    /// The older lead this one duplicates (same email, phone or company
    /// name; null unless you may read that lead).
    async fn duplicate_of(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        match &self.duplicate_of_raw {
            Some(id) if readable::<Leads>(ctx, id).await? => Ok(Some(id.clone().into())),
            _ => Ok(None),
        }
    }
}

/// Filter for `leads`; all given conditions must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct LeadFilterInput {
    /// In one of these statuses.
    pub status: Option<Vec<LeadStatus>>,
    /// From this source.
    pub source: Option<LeadSource>,
    /// From this campaign.
    pub campaign_id: Option<String>,
    /// Owned by this user.
    pub owner_id: Option<ID>,
    /// In this team's queue or owned within it (the lead's `teamId`).
    pub team_id: Option<ID>,
    /// Only unowned leads waiting in a queue.
    pub queued: Option<bool>,
    /// In this country.
    pub country: Option<String>,
    /// In this region.
    pub region: Option<String>,
    /// In this industry.
    pub industry: Option<String>,
    /// Of this size.
    pub size_band: Option<SizeBand>,
    /// Carrying this tag.
    pub tag_id: Option<ID>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    /// Names, company, emails or phones contain this.
    pub search: Option<String>,
    /// The recycle bin instead of live leads (needs delete rights).
    #[graphql(default)]
    pub deleted: bool,
    /// Custom fields with these values (all must hold).
    pub custom: Option<Vec<crm_core::custom::CustomFieldFilter>>,
    /// Stored combined score at least this (stored scores follow every
    /// write and the hourly decay).
    pub min_score: Option<i64>,
    /// Stored grade one of these.
    pub grade: Option<Vec<LeadGrade>>,
}

impl LeadFilterInput {
    /// The list conditions of this filter (all must hold).
    pub(crate) fn to_query(&self) -> ListQuery {
        let mut conds = Vec::new();
        if let Some(v) = &self.status {
            conds.push(Cond::In(
                "status",
                v.iter().map(|s| s.as_str().into()).collect(),
            ));
        }
        if let Some(v) = self.source {
            conds.push(Cond::Eq("source", v.as_str().into()));
        }
        for (col, v) in [
            ("campaign_id", self.campaign_id.as_deref()),
            ("owner_id", self.owner_id.as_ref().map(|i| i.0.as_str())),
            ("team_id", self.team_id.as_ref().map(|i| i.0.as_str())),
            ("region", self.region.as_deref()),
            ("industry", self.industry.as_deref()),
        ] {
            if let Some(v) = v {
                conds.push(Cond::Eq(col, v.into()));
            }
        }
        if let Some(v) = &self.country {
            conds.push(Cond::Eq("country", v.to_uppercase().into()));
        }
        if let Some(v) = self.size_band {
            conds.push(Cond::Eq("size_band", v.as_text().into()));
        }
        if let Some(q) = self.queued {
            let s = if q {
                "leads.owner_id IS NULL"
            } else {
                "leads.owner_id IS NOT NULL"
            };
            conds.push(Cond::Sql(crm_core::entity::sql::Sql::new(s)));
        }
        if let Some(v) = &self.tag_id {
            conds.push(Cond::Has("tags", v.to_string()));
        }
        if let Some(min) = self.min_score {
            let mut s = Sql::new(
                "leads.id IN (SELECT lead_id FROM lead_scores WHERE lead_scores.score >= ",
            );
            s.bind(min).push(")");
            conds.push(Cond::Sql(s));
        }
        if let Some(grades) = &self.grade {
            let mut s = Sql::new(
                "leads.id IN (SELECT lead_id FROM lead_scores WHERE lead_scores.grade IN ",
            );
            s.bind_list(grades.iter().map(|g| g.as_str().into()));
            s.push(")");
            conds.push(Cond::Sql(s));
        }
        if self.created_from.is_some() || self.created_to.is_some() {
            let time = |t: Option<DateTime<Utc>>| t.map(|t| t.naive_utc().into());
            conds.push(Cond::Range(
                "created_at",
                time(self.created_from),
                time(self.created_to),
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

/// Ordering for `leads`.
#[derive(InputObject, Default)]
pub struct LeadOrder {
    /// Sort key.
    #[graphql(default)]
    pub field: LeadOrderField,
    /// Direction.
    #[graphql(default)]
    pub direction: Direction,
    /// Sort by this custom field instead of `field` (not multi-select).
    pub custom_key: Option<String>,
}

/// Input for `createLead`: a last name or a company at least.
#[derive(InputObject)]
pub struct CreateLeadInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    #[graphql(default)]
    pub emails: Vec<ContactPoint>,
    #[graphql(default)]
    pub phones: Vec<ContactPoint>,
    pub company: Option<String>,
    pub website: Option<String>,
    pub industry: Option<String>,
    pub size_band: Option<SizeBand>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    /// Default: API.
    pub source: Option<LeadSource>,
    pub campaign_id: Option<String>,
    /// Default: NEW (CONVERTED only through `convertLead`).
    pub status: Option<LeadStatus>,
    /// Required for UNQUALIFIED.
    pub status_reason: Option<String>,
    /// Owner (default: you, unless `teamId` alone puts it in a queue).
    pub owner_id: Option<ID>,
    /// The team; without `ownerId` the lead waits unowned in its queue.
    pub team_id: Option<ID>,
    #[graphql(default)]
    pub tag_ids: Vec<ID>,
    pub consent: Option<ConsentInput>,
    /// Custom field values by key (see `customFieldDefinitions`).
    pub custom: Option<Json<serde_json::Map<String, Value>>>,
}

/// Input for `updateLead`: omitted fields stay, null clears (`ownerId:
/// null` puts the lead in its team's queue).
#[derive(InputObject)]
pub struct UpdateLeadInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub first_name: MaybeUndefined<String>,
    pub last_name: MaybeUndefined<String>,
    pub title: MaybeUndefined<String>,
    pub emails: Option<Vec<ContactPoint>>,
    pub phones: Option<Vec<ContactPoint>>,
    pub company: MaybeUndefined<String>,
    pub website: MaybeUndefined<String>,
    pub industry: MaybeUndefined<String>,
    pub size_band: MaybeUndefined<SizeBand>,
    pub country: MaybeUndefined<String>,
    pub region: MaybeUndefined<String>,
    pub city: MaybeUndefined<String>,
    pub source: Option<LeadSource>,
    pub campaign_id: MaybeUndefined<String>,
    pub status: Option<LeadStatus>,
    pub status_reason: MaybeUndefined<String>,
    pub owner_id: MaybeUndefined<ID>,
    pub team_id: MaybeUndefined<ID>,
    pub tag_ids: Option<Vec<ID>>,
    pub consent: Option<ConsentInput>,
    /// Custom field values to change, by key (null clears one).
    pub custom: Option<Json<serde_json::Map<String, Value>>>,
}

fn id_text(v: MaybeUndefined<ID>) -> Option<Option<String>> {
    mu(v).map(|o| o.map(|i| i.0))
}

/// Lead queries.
#[derive(Default)]
pub struct LeadQuery;

#[Object]
impl LeadQuery {
    /// Leads you may see: your own and your team's queue (managers: their
    /// teams'), filtered and ordered.
    #[allow(clippy::too_many_arguments)]
    async fn leads(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<LeadFilterInput>,
        order_by: Option<LeadOrder>,
    ) -> Result<Page<Lead>> {
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
        resolve::list::<Leads, _>(ctx, page, query, sorting, Lead::try_from).await
    }

    /// One lead (NOT_FOUND if outside your scope).
    async fn lead(&self, ctx: &Context<'_>, id: ID) -> Result<Lead> {
        lead_by_id(ctx, &id).await
    }
}

/// One live lead in the caller's read scope.
pub async fn lead_by_id(ctx: &Context<'_>, id: &str) -> Result<Lead> {
    resolve::get::<Leads>(ctx, id).await?.try_into()
}

/// Lead mutations.
#[derive(Default)]
pub struct LeadMutation;

#[Object]
impl LeadMutation {
    /// Creates a lead (owned by you unless `ownerId` or `teamId` says
    /// otherwise); links it to a matching contact and an older matching
    /// lead.
    async fn create_lead(&self, ctx: &Context<'_>, input: CreateLeadInput) -> Result<Lead> {
        let fields = LeadFields {
            first_name: Some(input.first_name),
            last_name: Some(input.last_name),
            title: Some(input.title),
            emails: Some(input.emails),
            phones: Some(input.phones),
            company: Some(input.company),
            website: Some(input.website),
            industry: Some(input.industry),
            size_band: Some(input.size_band),
            country: Some(input.country),
            region: Some(input.region),
            city: Some(input.city),
            source: input.source,
            campaign_id: Some(input.campaign_id),
            status: input.status,
            status_reason: input.status_reason.map(Some),
            owner_id: input.owner_id.map(|i| Some(i.0)),
            team_id: input.team_id.map(|i| Some(i.0)),
            tag_ids: Some(input.tag_ids),
            consent: input.consent,
            custom: input.custom.map(|c| c.0),
            conversion: None,
        };
        resolve::create::<Leads>(ctx, fields).await?.try_into()
    }

    /// Updates a lead in your scope if `version` is current.
    async fn update_lead(&self, ctx: &Context<'_>, input: UpdateLeadInput) -> Result<Lead> {
        let fields = LeadFields {
            first_name: mu(input.first_name),
            last_name: mu(input.last_name),
            title: mu(input.title),
            emails: input.emails,
            phones: input.phones,
            company: mu(input.company),
            website: mu(input.website),
            industry: mu(input.industry),
            size_band: mu(input.size_band),
            country: mu(input.country),
            region: mu(input.region),
            city: mu(input.city),
            source: input.source,
            campaign_id: mu(input.campaign_id),
            status: input.status,
            status_reason: mu(input.status_reason),
            owner_id: id_text(input.owner_id),
            team_id: id_text(input.team_id),
            tag_ids: input.tag_ids,
            consent: input.consent,
            custom: input.custom.map(|c| c.0),
            conversion: None,
        };
        resolve::update::<Leads>(ctx, &input.id, input.version, fields)
            .await?
            .try_into()
    }

    /// Moves a lead to the recycle bin.
    async fn delete_lead(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<Lead> {
        resolve::delete::<Leads>(ctx, &id, version)
            .await?
            .try_into()
    }

    /// Brings a lead back from the recycle bin.
    async fn restore_lead(&self, ctx: &Context<'_>, id: ID) -> Result<Lead> {
        resolve::restore::<Leads>(ctx, &id).await?.try_into()
    }

    /// Deletes a recycled lead for good, with its timeline.
    async fn purge_lead(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        resolve::purge::<Leads>(ctx, &id).await
    }
}
