//! Contacts (people): GraphQL types, queries, mutations and their rules.

pub mod repo;

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, Utc};
use crm_core::access::{Principal, RowFilter, principal, require_create, row_filter};
use crm_core::app::App;
use crm_core::change::{self, Change};
use crm_core::db::{Conn, Tx};
use crm_core::error::{Checks, Error, Result};
use crm_core::identity::graphql::User;
use crm_core::identity::repo as users;
use crm_core::ids;
use crm_core::paging::{self, Direction, Page};
use serde_json::{Value, json};

use self::repo::{ContactFilter, ContactOrderField, ContactRow};
use crate::TOPIC;
use crate::accounts::{Account, account_by_id, visible_user};
use crate::tags::{self, Tag};
use crate::values::{
    Channel, ConsentState, ContactPoint, normalize_email, normalize_phone, opt_text, req_text,
};

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

#[ComplexObject]
impl Contact {
    /// How they like to be reached.
    async fn preferred_channel(&self) -> Result<Option<Channel>> {
        self.preferred_channel_raw
            .as_deref()
            .map(Channel::from_stored)
            .transpose()
    }

    /// Marketing consent.
    async fn consent(&self) -> Result<Consent> {
        let (state, at, source) = &self.consent_raw;
        Ok(Consent {
            state: ConsentState::from_stored(state)?,
            at: *at,
            source: source.clone(),
        })
    }

    /// Custom field values by key (those you may read; see
    /// `customFieldDefinitions`).
    async fn custom(&self, ctx: &Context<'_>) -> Result<async_graphql::Json<Value>> {
        crate::loaders::custom_values(ctx, "Contact", &self.custom_raw).await
    }

    /// Their company (null if none or outside your scope).
    async fn account(&self, ctx: &Context<'_>) -> Result<Option<Account>> {
        let Some(id) = &self.account_id else {
            return Ok(None);
        };
        crm_core::error::visible(account_by_id(ctx, id).await)
    }

    /// The owning user (null if you may not see that user).
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        visible_user(ctx, &self.owner_id).await
    }

    /// Order history, newest first.
    async fn purchases(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Page<crate::purchases::Purchase>> {
        crate::purchases::page(ctx, crate::purchases::Of::Contact(&self.id), first, after).await
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
            crate::activities::SubjectType::Contact,
            &self.id,
            first,
            after,
        )
        .await
    }

    /// Tags, by name.
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        if let Some(l) = ctx.data_opt::<crate::loaders::Loaders>() {
            let rows = l
                .contact_tags
                .load_one(self.id.0.clone())
                .await?
                .unwrap_or_default();
            return Ok(rows.into_iter().map(Tag::from).collect());
        }
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let rows = tags::for_contacts(&mut c.conn(), std::slice::from_ref(&self.id.0)).await?;
        Ok(rows.into_iter().map(|(_, t)| t.into()).collect())
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
    /// The repository filter (the team filter narrows the scope instead).
    pub(crate) fn to_filter(&self) -> ContactFilter {
        ContactFilter {
            owner_id: self.owner_id.clone().map(|v| v.0),
            account_id: self.account_id.clone().map(|v| v.0),
            tag_id: self.tag_id.clone().map(|v| v.0),
            consent_state: self.consent_state.map(ConsentState::as_text),
            created_from: self.created_from.map(|t| t.naive_utc()),
            created_to: self.created_to.map(|t| t.naive_utc()),
            search: self.search.clone(),
            account_scope: None,
            deleted: self.deleted,
            custom: Vec::new(),
            custom_sort: None,
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

/// A contact's fields as entered; `None` leaves a field alone.
#[derive(Default)]
pub(crate) struct Fields {
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) title: Option<Option<String>>,
    pub(crate) emails: Option<Vec<ContactPoint>>,
    pub(crate) phones: Option<Vec<ContactPoint>>,
    pub(crate) preferred_channel: Option<Option<Channel>>,
    pub(crate) language: Option<Option<String>>,
    pub(crate) account_id: Option<Option<String>>,
    pub(crate) owner_id: Option<String>,
    pub(crate) consent: Option<ConsentInput>,
    /// Custom field values to set (null clears).
    pub(crate) custom: Option<serde_json::Map<String, Value>>,
    /// True for a new record: defaults and required custom fields apply.
    pub(crate) creating: bool,
    /// The definitions to check against (loaded when None).
    pub(crate) custom_defs: Option<std::sync::Arc<Vec<crm_core::custom::Def>>>,
}

use crm_core::graphql::patch as mu;

/// The public fields of a contact, for audit diffs and events; custom
/// field values appear as `custom.<key>`.
pub fn snapshot(r: &ContactRow) -> Value {
    let mut v = json!({
        "firstName": r.first_name,
        "lastName": r.last_name,
        "title": r.title,
        "emails": serde_json::from_str::<Value>(&r.emails).unwrap_or_default(),
        "phones": serde_json::from_str::<Value>(&r.phones).unwrap_or_default(),
        "preferredChannel": r.preferred_channel,
        "language": r.language,
        "accountId": r.account_id,
        "ownerId": r.owner_id,
        "consent": {"state": r.consent_state, "at": r.consent_at, "source": r.consent_source},
        "deletedAt": r.deleted_at,
    });
    if let Some(o) = v.as_object_mut() {
        o.extend(crm_core::custom::snapshot_fields(&r.custom));
    }
    v
}

pub(crate) async fn apply(
    app: &App,
    by: &Principal,
    conn: &mut Conn<'_>,
    scope_for_accounts: &RowFilter,
    row: &mut ContactRow,
    f: Fields,
) -> Result<()> {
    let mut c = Checks::default();
    if f.custom.is_some() || f.creating {
        let defs = match &f.custom_defs {
            Some(d) => d.clone(),
            None => std::sync::Arc::new(crm_core::custom::definitions(conn, "Contact").await?),
        };
        let may_write = |k: &str| crm_core::custom::allowed(app, by, "Contact", k, "write");
        if let Some(v) = c.take(crm_core::custom::apply(
            &defs,
            &row.custom,
            f.custom.as_ref(),
            f.creating,
            &may_write,
        ))? {
            row.custom = v;
        }
    }
    if let Some(v) = f.first_name.map(|v| req_text(&v, 100, "firstName"))
        && let Some(v) = c.take(v)?
    {
        row.first_name = v;
    }
    if let Some(v) = f.last_name.map(|v| req_text(&v, 100, "lastName"))
        && let Some(v) = c.take(v)?
    {
        row.last_name = v;
    }
    if let Some(v) = f.title
        && let Some(v) = c.take(opt_text(v, 200, "title"))?
    {
        row.title = v;
    }
    if let Some(v) = f.language
        && let Some(v) = c.take(opt_text(v, 20, "language"))?
    {
        row.language = v;
    }
    if let Some(list) = f.emails {
        let mut out = Vec::new();
        for p in list {
            if let Some(v) = c.take(normalize_email(&p.value, "emails"))?
                && !out.iter().any(|o: &ContactPoint| o.value == v)
            {
                out.push(ContactPoint {
                    kind: p.kind,
                    value: v,
                });
            }
        }
        row.emails = serde_json::to_string(&out).unwrap_or_else(|_| "[]".into());
    }
    if let Some(list) = f.phones {
        let mut out = Vec::new();
        for p in list {
            if let Some(v) = c.take(normalize_phone(
                &p.value,
                &app.config.default_phone_code,
                "phones",
            ))? && !out.iter().any(|o: &ContactPoint| o.value == v)
            {
                out.push(ContactPoint {
                    kind: p.kind,
                    value: v,
                });
            }
        }
        row.phones = serde_json::to_string(&out).unwrap_or_else(|_| "[]".into());
    }
    if let Some(v) = f.preferred_channel {
        row.preferred_channel = v.map(Channel::as_text);
    }
    if let Some(v) = f.account_id {
        if let Some(a) = &v {
            // You may only attach a contact to an account you can see.
            let visible = ids::check(a, "acc", "accountId").is_ok()
                && crate::accounts::repo::get(conn, scope_for_accounts, a)
                    .await?
                    .is_some();
            if !visible {
                c.take::<()>(Err(Error::invalid("accountId", "no such account")))?;
            }
        }
        row.account_id = v;
    }
    if let Some(owner) = f.owner_id
        && c.take(users::check_active_user(conn, &owner, "ownerId").await)?
            .is_some()
    {
        row.owner_id = owner;
    }
    if let Some(consent) = f.consent {
        let state = consent.state.as_text();
        if state != row.consent_state {
            row.consent_state = state;
            row.consent_at = Some(ids::now());
        }
        if let Some(v) = c.take(opt_text(consent.source, 200, "consent"))? {
            row.consent_source = v;
        }
    }
    c.finish()?;
    let emails: Vec<ContactPoint> = serde_json::from_str(&row.emails).unwrap_or_default();
    let phones: Vec<ContactPoint> = serde_json::from_str(&row.phones).unwrap_or_default();
    row.email_key = emails.first().map(|e| e.value.clone());
    row.search_text = std::iter::once(format!("{} {}", row.first_name, row.last_name))
        .chain(row.title.clone())
        .chain(emails.into_iter().map(|e| e.value))
        .chain(phones.into_iter().map(|p| p.value))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    Ok(())
}

async fn finish(
    app: &App,
    by: &Principal,
    mut tx: Tx,
    before: Option<&ContactRow>,
    after: &ContactRow,
    action: &'static str,
) -> Result<()> {
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "Contact",
            entity_id: after.id.clone(),
            action,
            before: before.map(snapshot),
            after: Some(snapshot(after)),
            owner_id: Some(after.owner_id.clone()),
            team_id: None,
        },
    )
    .await?;
    app.commit(tx).await
}

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
    let f = ContactFilter {
        account_id: Some(account.to_owned()),
        ..Default::default()
    };
    let order = (ContactOrderField::LastName, Direction::Asc);
    let (rows, total) = repo::list(&mut c.conn(), &scope, &f, order, &q, true).await?;
    let items = rows
        .into_iter()
        .map(|r| {
            (
                paging::pair(&repo::sort_value(&r, order.0), &r.id),
                Contact::from(r),
            )
        })
        .collect();
    Ok(paging::build_keyed(&q, items, total))
}

async fn load(tx: &mut Tx, scope: &RowFilter, id: &str) -> Result<ContactRow> {
    ids::check(id, "con", "id")?;
    repo::get(&mut tx.conn(), scope, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("contact {id}")))
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
        let f_team = f.team_id.clone();
        let mut filter = f.to_filter();
        let app = ctx.data_unchecked::<App>();
        (filter.custom, filter.custom_sort) = crm_core::custom::query_parts(
            app,
            principal(ctx),
            "Contact",
            "contacts",
            f.custom.as_deref().unwrap_or_default(),
            order.custom_key.as_deref(),
        )
        .await?;
        let scope = match f_team {
            Some(t) => crm_core::access::narrow_to_team(app, scope, &t).await?,
            None => scope,
        };
        if filter.search.is_some() {
            // Company names match only for accounts the caller may read.
            filter.account_scope = row_filter(ctx, "Account", "read").await.ok();
        }
        let mut c = app.db.conn().await?;
        let (rows, total) = repo::list(
            &mut c.conn(),
            &scope,
            &filter,
            (order.field, order.direction),
            &q,
            true,
        )
        .await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let v = match &filter.custom_sort {
                    Some(cs) => crm_core::custom::CustomSql::sort_value(&cs.def, &r.custom),
                    None => repo::sort_value(&r, order.field),
                };
                (paging::pair(&v, &r.id), Contact::from(r))
            })
            .collect();
        Ok(paging::build_keyed(&q, items, total))
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
    repo::get(&mut c.conn(), &scope, id)
        .await?
        .map(Contact::from)
        .ok_or_else(|| Error::NotFound(format!("contact {id}")))
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
        let p = principal(ctx);
        let app = ctx.data_unchecked::<App>();
        if let Some(o) = &input.owner_id {
            crm_core::access::require_assignable_owner(app, p, "Contact", o).await?;
        }
        let owner = input
            .owner_id
            .map(|i| i.0)
            .or_else(|| p.user_id().map(str::to_owned))
            .ok_or_else(|| {
                Error::invalid("ownerId", "is required when an API key creates a contact")
            })?;
        // Without any Account read scope no account can be linked.
        let accounts_scope = row_filter(ctx, "Account", "read")
            .await
            .unwrap_or(RowFilter::Nothing);
        let now = ids::now();
        let mut row = ContactRow {
            id: ids::new_id("con"),
            first_name: String::new(),
            last_name: String::new(),
            title: None,
            emails: "[]".into(),
            phones: "[]".into(),
            search_text: String::new(),
            preferred_channel: None,
            language: None,
            account_id: None,
            owner_id: String::new(),
            consent_state: ConsentState::Unknown.as_text(),
            consent_at: None,
            consent_source: None,
            created_at: now,
            updated_at: now,
            version: 1,
            deleted_at: None,
            deleted_by: None,
            custom: "{}".into(),
            email_key: None,
        };
        let fields = Fields {
            first_name: Some(input.first_name),
            last_name: Some(input.last_name),
            title: Some(input.title),
            emails: Some(input.emails),
            phones: Some(input.phones),
            preferred_channel: Some(input.preferred_channel),
            language: Some(input.language),
            account_id: Some(input.account_id.map(|i| i.0)),
            owner_id: Some(owner),
            consent: input.consent,
            custom: input.custom.map(|c| c.0),
            creating: true,
            custom_defs: None,
        };
        let mut tx = app.db.begin().await?;
        apply(app, p, &mut tx.conn(), &accounts_scope, &mut row, fields).await?;
        repo::insert(&mut tx.conn(), &row).await?;
        finish(app, p, tx, None, &row, "created").await?;
        Ok(row.into())
    }

    /// Updates a contact in your scope if `version` is current.
    async fn update_contact(
        &self,
        ctx: &Context<'_>,
        input: UpdateContactInput,
    ) -> Result<Contact> {
        let scope = row_filter(ctx, "Contact", "update").await?;
        // Without any Account read scope no account can be linked.
        let accounts_scope = row_filter(ctx, "Account", "read")
            .await
            .unwrap_or(RowFilter::Nothing);
        let app = ctx.data_unchecked::<App>();
        if let Some(o) = &input.owner_id {
            crm_core::access::require_assignable_owner(app, principal(ctx), "Contact", o).await?;
        }
        let mut tx = app.db.begin().await?;
        let before = load(&mut tx, &scope, &input.id).await?;
        if before.version != input.version {
            return Err(Error::Conflict(format!(
                "contact {} was changed by someone else (version {} is stale); reload and retry",
                before.id, input.version
            )));
        }
        let mut after = before.clone();
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
            ..Default::default()
        };
        let p = principal(ctx);
        apply(app, p, &mut tx.conn(), &accounts_scope, &mut after, fields).await?;
        after.updated_at = ids::now();
        repo::update(&mut tx.conn(), &after, input.version).await?;
        after.version = input.version + 1;
        finish(app, principal(ctx), tx, Some(&before), &after, "updated").await?;
        Ok(after.into())
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
        let before = load(&mut tx, &scope, &id).await?;
        let wanted = tags::check_ids(&mut tx.conn(), &tag_ids, "tagIds").await?;
        let mut after = before.clone();
        after.updated_at = ids::now();
        repo::update(&mut tx.conn(), &after, version).await?;
        after.version = version + 1;
        tags::set_contact_tags(&mut tx.conn(), &id, &wanted).await?;
        finish(app, principal(ctx), tx, Some(&before), &after, "tagged").await?;
        Ok(after.into())
    }

    /// Moves a contact to the recycle bin.
    async fn delete_contact(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<Contact> {
        let scope = row_filter(ctx, "Contact", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        let mut tx = app.db.begin().await?;
        let before = load(&mut tx, &scope, &id).await?;
        let mut after = before.clone();
        after.deleted_at = Some(ids::now());
        after.deleted_by = principal(ctx).actor().id;
        after.updated_at = ids::now();
        repo::update(&mut tx.conn(), &after, version).await?;
        after.version = version + 1;
        finish(app, principal(ctx), tx, Some(&before), &after, "deleted").await?;
        Ok(after.into())
    }

    /// Brings a contact back from the recycle bin.
    async fn restore_contact(&self, ctx: &Context<'_>, id: ID) -> Result<Contact> {
        let scope = row_filter(ctx, "Contact", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        let mut tx = app.db.begin().await?;
        ids::check(&id, "con", "id")?;
        let before = repo::get_deleted(&mut tx.conn(), &scope, &id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("deleted contact {}", id.0)))?;
        let mut after = before.clone();
        after.deleted_at = None;
        after.deleted_by = None;
        after.updated_at = ids::now();
        repo::update(&mut tx.conn(), &after, before.version).await?;
        after.version = before.version + 1;
        finish(app, principal(ctx), tx, Some(&before), &after, "restored").await?;
        Ok(after.into())
    }

    /// Deletes a recycled contact for good.
    async fn purge_contact(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let scope = row_filter(ctx, "Contact", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        let mut tx = app.db.begin().await?;
        ids::check(&id, "con", "id")?;
        let before = repo::get_deleted(&mut tx.conn(), &scope, &id)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "deleted contact {} (only recycled contacts can be purged)",
                    id.0
                ))
            })?;
        // Rows pointing at the contact (any module's registered references)
        // are detached or deleted first, each detached row recorded.
        crm_core::module::references::purge_cascade(
            &mut tx.conn(),
            principal(ctx),
            &format!("purge of contact {}", before.id),
            "Contact",
            &before.id,
        )
        .await?;
        repo::purge(&mut tx.conn(), &id).await?;
        change::record(
            &mut tx.conn(),
            &principal(ctx).actor(),
            Change {
                topic: TOPIC,
                entity_type: "Contact",
                entity_id: before.id.clone(),
                action: "purged",
                before: Some(snapshot(&before)),
                after: None,
                owner_id: Some(before.owner_id.clone()),
                team_id: None,
            },
        )
        .await?;
        app.commit(tx).await?;
        Ok(id)
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
        if ids.is_empty() || ids.len() > 500 {
            return Err(Error::invalid("ids", "give 1 to 500 contact ids"));
        }
        let app = ctx.data_unchecked::<App>();
        let mut tx = app.db.begin().await?;
        let mut rows = Vec::new();
        for id in &ids {
            rows.push(load(&mut tx, &scope, id).await?);
        }
        // Handing records over to any active user (another team's, too) is
        // what assigning is for; creating in or moving to a book the caller
        // cannot see is not (see `require_assignable_owner` on create and
        // update).
        users::check_active_user(&mut tx.conn(), &owner_id, "ownerId").await?;
        let mut out = Vec::new();
        for before in rows {
            let mut after = before.clone();
            after.owner_id = owner_id.0.clone();
            after.updated_at = crm_core::ids::now();
            repo::update(&mut tx.conn(), &after, before.version).await?;
            after.version = before.version + 1;
            change::record(
                &mut tx.conn(),
                &principal(ctx).actor(),
                Change {
                    topic: TOPIC,
                    entity_type: "Contact",
                    entity_id: after.id.clone(),
                    action: "assigned",
                    before: Some(snapshot(&before)),
                    after: Some(snapshot(&after)),
                    owner_id: Some(after.owner_id.clone()),
                    team_id: None,
                },
            )
            .await?;
            out.push(after);
        }
        app.commit(tx).await?;
        Ok(out.into_iter().map(Contact::from).collect())
    }
}
