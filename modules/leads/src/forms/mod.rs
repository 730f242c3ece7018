//! Public web forms that capture leads: the `LeadForm` configuration
//! (GraphQL type, queries and the admin mutations; a shared kit entity, so
//! writes are versioned, audited and evented) and, in [`submit`], the
//! public endpoint `POST /forms/{key}` that turns a submission into a lead.

pub mod repo;
pub mod submit;

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use crm_core::access::{principal, require_assignable_owner, require_create, row_filter};
use crm_core::app::App;
use crm_core::entity::resolve;
use crm_core::entity::store;
use crm_core::error::Result;
use crm_core::graphql::patch as mu;

use self::repo::{FieldMap, FormFields, LeadFormRow, LeadForms};
use crate::values::{LeadFormOnMatch, LeadFormTarget, LeadSource};

/// A posted field and the lead field it fills.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "LeadFormFieldInput")]
pub struct LeadFormField {
    /// The field's name in the posted form (`email`, `company_name`).
    pub name: String,
    /// The lead field it fills.
    pub target: LeadFormTarget,
    /// A submission without it is refused (422 naming it).
    #[graphql(default)]
    pub required: bool,
}

/// A web form on another site that captures leads: visitors' browsers
/// post it to `/forms/{key}` without credentials.
#[derive(SimpleObject, Clone, Debug)]
pub struct LeadForm {
    /// `lfm_…`
    pub id: ID,
    /// The unguessable key in its public URL, `/forms/{key}`.
    pub key: String,
    /// Name, for people.
    pub name: String,
    /// False: its URL answers 404.
    pub active: bool,
    /// Posted fields and the lead fields they fill; others are ignored.
    pub fields: Vec<LeadFormField>,
    /// Origins (`https://www.example.com`) whose pages may post it; empty:
    /// any.
    pub allowed_origins: Vec<String>,
    /// Where a browser goes after a submission (303); none: the answer is
    /// `{"ok": true}`.
    pub redirect_url: Option<String>,
    /// Source of its leads.
    pub default_source: LeadSource,
    /// Campaign of its leads.
    pub default_campaign_id: Option<String>,
    /// Tags of its leads.
    pub default_tag_ids: Vec<ID>,
    /// Owner of its leads.
    pub owner_id: Option<ID>,
    /// Team whose queue its leads wait in when there is no owner.
    pub team_id: Option<ID>,
    /// What a submission does when a live lead has the same email.
    pub on_match: LeadFormOnMatch,
    /// A field hidden from people: a submission that fills it is dropped
    /// (answered as a success).
    pub honeypot_field: Option<String>,
    /// The same email submitted again within this many seconds makes no
    /// new lead (double clicks, retries); 0: no such check.
    pub dedupe_window_secs: i64,
    /// The user who made it.
    pub created_by: Option<ID>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

impl TryFrom<LeadFormRow> for LeadForm {
    type Error = crm_core::Error;

    fn try_from(r: LeadFormRow) -> Result<Self> {
        Ok(LeadForm {
            fields: r
                .field_maps()?
                .into_iter()
                .map(|m| LeadFormField {
                    name: m.name,
                    target: m.target,
                    required: m.required,
                })
                .collect(),
            allowed_origins: r.origins(),
            default_tag_ids: r.tag_ids().into_iter().map(ID).collect(),
            default_source: LeadSource::from_stored(&r.default_source)?,
            on_match: LeadFormOnMatch::from_stored(&r.on_match)?,
            id: r.id.into(),
            key: r.form_key,
            name: r.name,
            active: r.active,
            redirect_url: r.redirect_url,
            default_campaign_id: r.default_campaign_id,
            owner_id: r.owner_id.map(ID),
            team_id: r.team_id.map(ID),
            honeypot_field: r.honeypot_field,
            dedupe_window_secs: r.dedupe_window_secs,
            created_by: r.created_by.map(ID),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        })
    }
}

fn maps(list: Vec<LeadFormField>) -> Vec<FieldMap> {
    list.into_iter()
        .map(|f| FieldMap {
            name: f.name,
            target: f.target,
            required: f.required,
        })
        .collect()
}

/// Input for `createLeadForm`.
#[derive(InputObject)]
pub struct CreateLeadFormInput {
    pub name: String,
    pub fields: Vec<LeadFormField>,
    #[graphql(default)]
    pub allowed_origins: Vec<String>,
    pub redirect_url: Option<String>,
    #[graphql(default_with = "LeadSource::WebForm")]
    pub default_source: LeadSource,
    pub default_campaign_id: Option<String>,
    #[graphql(default)]
    pub default_tag_ids: Vec<ID>,
    /// Owner of its leads (needs write on `Lead.ownerId`); without one,
    /// give `teamId`.
    pub owner_id: Option<ID>,
    pub team_id: Option<ID>,
    #[graphql(default_with = "LeadFormOnMatch::CreateNew")]
    pub on_match: LeadFormOnMatch,
    pub honeypot_field: Option<String>,
    /// Default 600 (ten minutes); at most 30 days.
    #[graphql(default_with = "repo::DEFAULT_WINDOW_SECS")]
    pub dedupe_window_secs: i64,
    /// False makes it inactive from the start.
    #[graphql(default_with = "true")]
    pub active: bool,
}

/// Input for `updateLeadForm`: omitted fields stay, null clears.
#[derive(InputObject)]
pub struct UpdateLeadFormInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    /// False deactivates it: its URL answers 404.
    pub active: Option<bool>,
    pub fields: Option<Vec<LeadFormField>>,
    pub allowed_origins: Option<Vec<String>>,
    pub redirect_url: MaybeUndefined<String>,
    pub default_source: Option<LeadSource>,
    pub default_campaign_id: MaybeUndefined<String>,
    pub default_tag_ids: Option<Vec<ID>>,
    pub owner_id: MaybeUndefined<ID>,
    pub team_id: MaybeUndefined<ID>,
    pub on_match: Option<LeadFormOnMatch>,
    pub honeypot_field: MaybeUndefined<String>,
    pub dedupe_window_secs: Option<i64>,
    /// True gives it a new key; the old URL stops working.
    #[graphql(default)]
    pub new_key: bool,
}

/// Web form queries.
#[derive(Default)]
pub struct LeadFormQuery;

#[Object]
impl LeadFormQuery {
    /// Every web form, by name.
    async fn lead_forms(&self, ctx: &Context<'_>) -> Result<Vec<LeadForm>> {
        row_filter(ctx, "LeadForm", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        repo::all(&mut c.conn())
            .await?
            .into_iter()
            .map(LeadForm::try_from)
            .collect()
    }

    /// One web form.
    async fn lead_form(&self, ctx: &Context<'_>, id: ID) -> Result<LeadForm> {
        resolve::get::<LeadForms>(ctx, &id).await?.try_into()
    }
}

/// The mutations that manage web forms.
#[derive(Default)]
pub struct LeadFormMutation;

#[Object]
impl LeadFormMutation {
    /// Makes a web form with a new random key.
    async fn create_lead_form(
        &self,
        ctx: &Context<'_>,
        input: CreateLeadFormInput,
    ) -> Result<LeadForm> {
        require_create(ctx, "LeadForm")?;
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        if let Some(o) = &input.owner_id {
            require_assignable_owner(app, by, "Lead", o).await?;
        }
        let fields = FormFields {
            name: Some(input.name),
            active: Some(input.active),
            fields: Some(maps(input.fields)),
            allowed_origins: Some(input.allowed_origins),
            redirect_url: Some(input.redirect_url),
            default_source: Some(input.default_source),
            default_campaign_id: Some(input.default_campaign_id),
            default_tag_ids: Some(input.default_tag_ids),
            owner_id: Some(input.owner_id.map(|i| i.0)),
            team_id: Some(input.team_id.map(|i| i.0)),
            on_match: Some(input.on_match),
            honeypot_field: Some(input.honeypot_field),
            dedupe_window_secs: Some(input.dedupe_window_secs),
            new_key: false,
        };
        store::create::<LeadForms>(app, by, fields)
            .await?
            .try_into()
    }

    /// Changes a web form if `version` is current (`active: false`
    /// deactivates it).
    async fn update_lead_form(
        &self,
        ctx: &Context<'_>,
        input: UpdateLeadFormInput,
    ) -> Result<LeadForm> {
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        if let MaybeUndefined::Value(o) = &input.owner_id {
            require_assignable_owner(app, by, "Lead", o).await?;
        }
        let fields = FormFields {
            name: input.name,
            active: input.active,
            fields: input.fields.map(maps),
            allowed_origins: input.allowed_origins,
            redirect_url: mu(input.redirect_url),
            default_source: input.default_source,
            default_campaign_id: mu(input.default_campaign_id),
            default_tag_ids: input.default_tag_ids,
            owner_id: mu(input.owner_id).map(|o| o.map(|i| i.0)),
            team_id: mu(input.team_id).map(|o| o.map(|i| i.0)),
            on_match: input.on_match,
            honeypot_field: mu(input.honeypot_field),
            dedupe_window_secs: input.dedupe_window_secs,
            new_key: input.new_key,
        };
        resolve::update::<LeadForms>(ctx, &input.id, input.version, fields)
            .await?
            .try_into()
    }

    /// Deletes a web form (its URL answers 404; its leads stay).
    async fn delete_lead_form(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<ID> {
        resolve::remove::<LeadForms>(ctx, &id, version).await
    }
}
