//! Contacts (people): GraphQL types, queries, mutations and their rules.

mod export;
pub mod repo;
pub mod service;

pub(crate) use self::service::apply;
pub use self::service::{Fields, snapshot};

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use crm_core::access::{RowFilter, principal, require_create, row_filter};
use crm_core::app::App;
use crm_core::entity::{self, Cond, ListQuery, store};
use crm_core::error::Result;
use crm_core::ids;
use crm_core::paging::{self, Direction, Page};
use serde_json::Value;

use self::repo::{ContactOrderField, ContactRow, Contacts};
use crate::tags;
use crate::values::{Channel, ConsentState, ContactPoint};

/// Marketing consent with when and how it was given or withdrawn.
#[derive(SimpleObject, Clone, Debug)]
pub struct Consent {
    /// Current state.
    pub state: ConsentState,
    /// When it last changed.
    pub at: Option<DateTime<Utc>>,
    /// How (web form, phone call, …).
    pub source: Option<String>,
}

/// A person at (or apart from) an account.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Contact {
    /// `con_…`
    pub id: ID,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Job title.
    pub title: Option<String>,
    /// Email addresses (lower case).
    pub emails: Vec<ContactPoint>,
    /// Phone numbers (E.164).
    pub phones: Vec<ContactPoint>,
    #[graphql(skip)]
    pub preferred_channel_raw: Option<String>,
    /// Preferred language (e.g. `de`).
    pub language: Option<String>,
    /// Their company's id.
    pub account_id: Option<ID>,
    /// The owning user's id.
    pub owner_id: ID,
    /// Marketing consent (the state as stored; see the `consent` field).
    #[graphql(skip)]
    pub consent_raw: (String, Option<DateTime<Utc>>, Option<String>),
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update.
    pub version: i64,
    /// When it was moved to the recycle bin, if it was.
    pub deleted_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub custom_raw: String,
}

impl From<ContactRow> for Contact {
    fn from(r: ContactRow) -> Self {
        Contact {
            id: r.id.into(),
            first_name: r.first_name,
            last_name: r.last_name,
            title: r.title,
            emails: serde_json::from_str(&r.emails).unwrap_or_default(),
            phones: serde_json::from_str(&r.phones).unwrap_or_default(),
            preferred_channel_raw: r.preferred_channel,
            language: r.language,
            account_id: r.account_id.map(Into::into),
            owner_id: r.owner_id.into(),
            consent_raw: (
                r.consent_state,
                r.consent_at.map(|t| t.and_utc()),
                r.consent_source,
            ),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
            deleted_at: r.deleted_at.map(|t| t.and_utc()),
            custom_raw: r.custom,
        }
    }
}

/// Filter for `contacts`.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ContactFilterInput {
    /// Owned by this user.
    pub owner_id: Option<ID>,
    /// At this account.
    pub account_id: Option<ID>,
    /// Owned by a member of this team (or a team below it).
    pub team_id: Option<ID>,
    /// Carrying this tag.
    pub tag_id: Option<ID>,
    /// With this consent state.
    pub consent_state: Option<ConsentState>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    /// Names, emails, phones or company name contain this.
    pub search: Option<String>,
    /// The recycle bin instead of live contacts.
    #[graphql(default)]
    pub deleted: bool,
    /// Custom fields with these values (all must hold).
    pub custom: Option<Vec<crm_core::custom::CustomFieldFilter>>,
}

impl ContactFilterInput {
    /// The list conditions (the team filter narrows the scope instead; the
    /// caller adds company-name matches to the search).
    pub(crate) fn to_query(&self) -> ListQuery {
        let mut conds = Vec::new();
        if let Some(v) = &self.owner_id {
            conds.push(Cond::Eq("owner_id", v.0.as_str().into()));
        }
        if let Some(v) = &self.account_id {
            conds.push(Cond::Eq("account_id", v.0.as_str().into()));
        }
        if let Some(v) = &self.tag_id {
            conds.push(repo::tagged(v));
        }
        if let Some(v) = self.consent_state {
            conds.push(Cond::Eq("consent_state", v.as_text().into()));
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

/// Ordering for `contacts`.
#[derive(InputObject, Default)]
pub struct ContactOrder {
    /// Sort key.
    #[graphql(default)]
    pub field: ContactOrderField,
    /// Direction.
    #[graphql(default)]
    pub direction: Direction,
    /// Sort by this custom field instead of `field` (not multi-select).
    pub custom_key: Option<String>,
}

/// Consent as entered.
#[derive(InputObject, Clone)]
pub struct ConsentInput {
    /// New state.
    pub state: ConsentState,
    /// How it was given or withdrawn.
    pub source: Option<String>,
}

/// Input for `createContact`.
#[derive(InputObject)]
pub struct CreateContactInput {
    pub first_name: String,
    pub last_name: String,
    pub title: Option<String>,
    #[graphql(default)]
    pub emails: Vec<ContactPoint>,
    #[graphql(default)]
    pub phones: Vec<ContactPoint>,
    pub preferred_channel: Option<Channel>,
    pub language: Option<String>,
    pub account_id: Option<ID>,
    /// Owner (default: you).
    pub owner_id: Option<ID>,
    pub consent: Option<ConsentInput>,
    /// Custom field values by key (see `customFieldDefinitions`).
    pub custom: Option<async_graphql::Json<serde_json::Map<String, Value>>>,
}

/// Input for `updateContact`: omitted fields stay, null clears.
#[derive(InputObject)]
pub struct UpdateContactInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: MaybeUndefined<String>,
    pub emails: Option<Vec<ContactPoint>>,
    pub phones: Option<Vec<ContactPoint>>,
    pub preferred_channel: MaybeUndefined<Channel>,
    pub language: MaybeUndefined<String>,
    pub account_id: MaybeUndefined<ID>,
    pub owner_id: Option<ID>,
    pub consent: Option<ConsentInput>,
    /// Custom field values to change, by key (null clears one).
    pub custom: Option<async_graphql::Json<serde_json::Map<String, Value>>>,
}

use crm_core::graphql::patch as mu;

/// A page of an account's contacts in the caller's scope.
pub async fn list_for_account(
    ctx: &Context<'_>,
    account: &str,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Page<Contact>> {
    let scope = row_filter(ctx, "Contact", "read").await?;
    let q = paging::query(first, after, None, None)?;
    let app = ctx.data_unchecked::<App>();
    let mut c = app.db.conn().await?;
    let lq = ListQuery {
        conds: vec![Cond::Eq("account_id", account.into())],
        order: Some((ContactOrderField::LastName.column(), Direction::Asc)),
        ..Default::default()
    };
    let (rows, total) = entity::list::<Contacts>(&mut c.conn(), &scope, &lq, &q, true).await?;
    page_of(&q, &lq, rows, total)
}

fn page_of(
    q: &paging::PageQuery,
    lq: &ListQuery,
    rows: Vec<ContactRow>,
    total: i64,
) -> Result<Page<Contact>> {
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let key = paging::pair(&entity::list::sort_value::<Contacts>(lq, &r)?, &r.id);
        items.push((key, Contact::from(r)));
    }
    Ok(paging::build_keyed(q, items, total))
}

/// The caller's read scope on accounts (Nothing without any): contacts
/// link only to accounts in it.
async fn accounts_scope(ctx: &Context<'_>) -> RowFilter {
    row_filter(ctx, "Account", "read")
        .await
        .unwrap_or(RowFilter::Nothing)
}

/// Contact queries.
#[derive(Default)]
pub struct ContactQuery;

#[Object]
impl ContactQuery {
    /// Contacts you may see.
    #[allow(clippy::too_many_arguments)]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<ContactFilterInput>,
        order_by: Option<ContactOrder>,
    ) -> Result<Page<Contact>> {
        let f = filter.unwrap_or_default();
        let scope = row_filter(ctx, "Contact", if f.deleted { "delete" } else { "read" }).await?;
        let q = paging::query(first, after, last, before)?;
        let order = order_by.unwrap_or_default();
        let mut lq = f.to_query();
        lq.order = Some((order.field.column(), order.direction));
        let app = ctx.data_unchecked::<App>();
        (lq.custom, lq.custom_sort) = crm_core::custom::query_parts(
            app,
            principal(ctx),
            "Contact",
            "contacts",
            f.custom.as_deref().unwrap_or_default(),
            order.custom_key.as_deref(),
        )
        .await?;
        let scope = match &f.team_id {
            Some(t) => crm_core::access::narrow_to_team(app, scope, t).await?,
            None => scope,
        };
        if let Some(k) = &f.search
            && let Ok(accounts) = row_filter(ctx, "Account", "read").await
        {
            // Company names match only for accounts the caller may read.
            lq.search_also.push(repo::company_matches(&accounts, k));
        }
        let mut c = app.db.conn().await?;
        let (rows, total) = entity::list::<Contacts>(&mut c.conn(), &scope, &lq, &q, true).await?;
        page_of(&q, &lq, rows, total)
    }

    /// One contact (NOT_FOUND if outside your scope).
    async fn contact(&self, ctx: &Context<'_>, id: ID) -> Result<Contact> {
        contact_by_id(ctx, &id).await
    }
}

/// One live contact in the caller's read scope.
pub async fn contact_by_id(ctx: &Context<'_>, id: &str) -> Result<Contact> {
    let scope = row_filter(ctx, "Contact", "read").await?;
    let app = ctx.data_unchecked::<App>();
    let mut c = app.db.conn().await?;
    Ok(store::fetch::<Contacts>(&mut c.conn(), &scope, id)
        .await?
        .into())
}

/// Contact mutations.
#[derive(Default)]
pub struct ContactMutation;

#[Object]
impl ContactMutation {
    /// Creates a contact (owned by you unless `ownerId` says otherwise).
    async fn create_contact(
        &self,
        ctx: &Context<'_>,
        input: CreateContactInput,
    ) -> Result<Contact> {
        require_create(ctx, "Contact")?;
        let fields = Fields {
            first_name: Some(input.first_name),
            last_name: Some(input.last_name),
            title: Some(input.title),
            emails: Some(input.emails),
            phones: Some(input.phones),
            preferred_channel: Some(input.preferred_channel),
            language: Some(input.language),
            account_id: Some(input.account_id.map(|i| i.0)),
            owner_id: input.owner_id.map(|i| i.0),
            consent: input.consent,
            custom: input.custom.map(|c| c.0),
            accounts_scope: Some(accounts_scope(ctx).await),
            ..Default::default()
        };
        let app = ctx.data_unchecked::<App>();
        Ok(store::create::<Contacts>(app, principal(ctx), fields)
            .await?
            .into())
    }

    /// Updates a contact in your scope if `version` is current.
    async fn update_contact(
        &self,
        ctx: &Context<'_>,
        input: UpdateContactInput,
    ) -> Result<Contact> {
        let scope = row_filter(ctx, "Contact", "update").await?;
        let fields = Fields {
            first_name: input.first_name,
            last_name: input.last_name,
            title: mu(input.title),
            emails: input.emails,
            phones: input.phones,
            preferred_channel: mu(input.preferred_channel),
            language: mu(input.language),
            account_id: mu(input.account_id).map(|a| a.map(|i| i.0)),
            owner_id: input.owner_id.map(|i| i.0),
            consent: input.consent,
            custom: input.custom.map(|c| c.0),
            accounts_scope: Some(accounts_scope(ctx).await),
            ..Default::default()
        };
        let app = ctx.data_unchecked::<App>();
        Ok(store::update::<Contacts>(
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

    /// Replaces a contact's tags.
    async fn set_contact_tags(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
        tag_ids: Vec<ID>,
    ) -> Result<Contact> {
        let scope = row_filter(ctx, "Contact", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let mut tx = app.db.begin().await?;
        ids::check(&id, "con", "id")?;
        let before = store::fetch::<Contacts>(&mut tx.conn(), &scope, &id).await?;
        let wanted = tags::check_ids(&mut tx.conn(), &tag_ids, "tagIds").await?;
        let mut after = before.clone();
        after.updated_at = ids::now();
        let after = store::update_row::<Contacts>(&mut tx.conn(), &after, version).await?;
        tags::set_contact_tags(&mut tx.conn(), &id, &wanted).await?;
        store::record::<Contacts>(
            &mut tx,
            principal(ctx),
            Some(&before),
            Some(&after),
            "tagged",
        )
        .await?;
        app.commit(tx).await?;
        Ok(after.into())
    }

    /// Moves a contact to the recycle bin.
    async fn delete_contact(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<Contact> {
        let scope = row_filter(ctx, "Contact", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(
            store::delete::<Contacts>(app, principal(ctx), &scope, &id, version)
                .await?
                .into(),
        )
    }

    /// Brings a contact back from the recycle bin.
    async fn restore_contact(&self, ctx: &Context<'_>, id: ID) -> Result<Contact> {
        let scope = row_filter(ctx, "Contact", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(store::restore::<Contacts>(app, principal(ctx), &scope, &id)
            .await?
            .into())
    }

    /// Deletes a recycled contact for good.
    async fn purge_contact(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let scope = row_filter(ctx, "Contact", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(store::purge::<Contacts>(app, principal(ctx), &scope, &id)
            .await?
            .into())
    }

    /// Gives contacts to another owner, all or none; contacts outside your
    /// update scope are NOT_FOUND and nothing changes.
    async fn assign_contacts(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        owner_id: ID,
    ) -> Result<Vec<Contact>> {
        let scope = row_filter(ctx, "Contact", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let ids: Vec<String> = ids.into_iter().map(|i| i.0).collect();
        let rows = store::assign::<Contacts>(app, principal(ctx), &scope, &ids, &owner_id).await?;
        Ok(rows.into_iter().map(Contact::from).collect())
    }
}
