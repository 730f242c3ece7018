//! Tickets: GraphQL types, queries and mutations. Lists, fetch, writes and
//! the recycle bin are the entity kit's; the domain rules are the hooks in
//! [`service`], the conversation is [`comments`].

pub mod comments;
pub mod export;
pub mod import;
pub mod repo;
pub mod service;

use async_graphql::{
    ComplexObject, Context, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, Utc};
use crm_core::access::{principal, row_filter};
use crm_core::app::App;
use crm_core::entity::resolve::{self, Paging, Sorting};
use crm_core::entity::sql::{Bind, Sql};
use crm_core::entity::{Cond, ListQuery};
use crm_core::error::{Error, Result, visible};
use crm_core::graphql::patch as mu;
use crm_core::identity::graphql::{Team, User, team_by_id, visible_user};
use crm_core::paging::{Direction, Page};
use crm_customers::accounts::{Account, account_by_id};
use crm_customers::contacts::{Contact, contact_by_id};

use self::repo::{CommentRow, TicketOrderField, TicketRow, Tickets};
use self::service::{TicketFields, normalize_tag, tags_of};
use crate::values::{TicketChannel, TicketPriority, TicketStatus, TicketType};

/// A customer's request to support.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Ticket {
    /// `tkt_…`
    pub id: ID,
    /// `T-000123`: consecutive, never reused.
    pub number: String,
    /// One line.
    pub subject: String,
    /// The request as the customer wrote it.
    pub description: Option<String>,
    /// The requester.
    pub contact_id: ID,
    /// The requester's account (by default the contact's).
    pub account_id: Option<ID>,
    /// How it came in.
    pub channel: TicketChannel,
    /// How urgent.
    pub priority: TicketPriority,
    /// Where it is in its life.
    pub status: TicketStatus,
    /// What kind of request.
    #[graphql(name = "type")]
    pub ticket_type: Option<TicketType>,
    /// The agent working it.
    pub assignee_id: Option<ID>,
    /// The team (support group) working it.
    pub group_id: Option<ID>,
    /// Tags (lower case).
    pub tags: Vec<String>,
    /// When it was last solved (null while unsolved or reopened).
    pub solved_at: Option<DateTime<Utc>>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
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

impl TryFrom<TicketRow> for Ticket {
    type Error = Error;

    fn try_from(r: TicketRow) -> Result<Self> {
        let tags = tags_of(&r);
        Ok(Ticket {
            id: r.id.into(),
            number: r.number,
            subject: r.subject,
            description: r.description,
            contact_id: r.contact_id.into(),
            account_id: r.account_id.map(Into::into),
            channel: TicketChannel::from_stored(&r.channel)?,
            priority: TicketPriority::from_stored(&r.priority)?,
            status: TicketStatus::from_stored(&r.status)?,
            ticket_type: r
                .ticket_type
                .as_deref()
                .map(TicketType::from_stored)
                .transpose()?,
            assignee_id: r.assignee_id.map(Into::into),
            group_id: r.group_id.map(Into::into),
            tags,
            solved_at: r.solved_at.map(|t| t.and_utc()),
            closed_at: r.closed_at.map(|t| t.and_utc()),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
            deleted_at: r.deleted_at.map(|t| t.and_utc()),
            custom_raw: r.custom,
        })
    }
}

/// One entry of a ticket's conversation.
#[derive(SimpleObject, Clone, Debug)]
pub struct TicketComment {
    /// `tkc_…`
    pub id: ID,
    /// The ticket.
    pub ticket_id: ID,
    /// The author (a user id).
    pub author_id: Option<ID>,
    /// The text.
    pub body: String,
    /// True for an internal note (never shown to the customer).
    pub internal: bool,
    /// True for a message from the requester (`authorId` logged it).
    pub from_customer: bool,
    /// When (UTC).
    pub created_at: DateTime<Utc>,
}

impl From<CommentRow> for TicketComment {
    fn from(r: CommentRow) -> Self {
        TicketComment {
            id: r.id.into(),
            ticket_id: r.ticket_id.into(),
            author_id: r.author_id.map(Into::into),
            body: r.body,
            internal: r.internal,
            from_customer: r.from_customer,
            created_at: r.created_at.and_utc(),
        }
    }
}

#[ComplexObject]
impl Ticket {
    /// Custom field values by key (those you may read).
    async fn custom(&self, ctx: &Context<'_>) -> Result<Json<serde_json::Value>> {
        crm_customers::loaders::custom_values(ctx, "Ticket", &self.custom_raw).await
    }

    /// The requester (null if you may not see the contact).
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        visible(contact_by_id(ctx, &self.contact_id).await)
    }

    /// The account (null if none or you may not see it).
    async fn account(&self, ctx: &Context<'_>) -> Result<Option<Account>> {
        match &self.account_id {
            Some(id) => visible(account_by_id(ctx, id).await),
            None => Ok(None),
        }
    }

    /// The assigned agent (null if none or you may not see that user).
    async fn assignee(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match &self.assignee_id {
            Some(id) => visible_user(ctx, id).await,
            None => Ok(None),
        }
    }

    /// The group (null if none or you may not see that team).
    async fn group(&self, ctx: &Context<'_>) -> Result<Option<Team>> {
        match &self.group_id {
            Some(id) => visible(team_by_id(ctx, id).await),
            None => Ok(None),
        }
    }

    /// The public conversation (replies the customer sees), oldest first.
    async fn comments(&self, ctx: &Context<'_>) -> Result<Vec<TicketComment>> {
        self.conversation(ctx, false).await
    }

    /// The ticket's SLA clocks (first reply, next replies, resolution),
    /// oldest first, as of now.
    async fn sla_clocks(&self, ctx: &Context<'_>) -> Result<Vec<crate::sla::clocks::SlaClock>> {
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let now = crate::sla::now(app, &mut c.conn()).await?;
        crate::sla::clocks::of_tickets(&mut c.conn(), std::slice::from_ref(&self.id.0))
            .await?
            .iter()
            .map(|r| crate::sla::clocks::SlaClock::of(r, now))
            .collect()
    }

    /// Internal notes between agents, oldest first (a field of its own, so
    /// policies can let a role read tickets but not their notes).
    async fn internal_notes(&self, ctx: &Context<'_>) -> Result<Vec<TicketComment>> {
        self.conversation(ctx, true).await
    }
}

impl Ticket {
    async fn conversation(&self, ctx: &Context<'_>, internal: bool) -> Result<Vec<TicketComment>> {
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        Ok(
            repo::comments_of(&mut c.conn(), std::slice::from_ref(&self.id.0), internal)
                .await?
                .into_iter()
                .map(TicketComment::from)
                .collect(),
        )
    }
}

/// Filter for `tickets`; all given conditions must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct TicketFilterInput {
    /// In one of these statuses.
    pub status: Option<Vec<TicketStatus>>,
    /// With one of these priorities.
    pub priority: Option<Vec<TicketPriority>>,
    /// Came in through one of these channels.
    pub channel: Option<Vec<TicketChannel>>,
    /// Of this type.
    #[graphql(name = "type")]
    pub ticket_type: Option<TicketType>,
    /// Assigned to this user.
    pub assignee_id: Option<ID>,
    /// Worked by this team.
    pub group_id: Option<ID>,
    /// Requested by this contact (a contact's tickets).
    pub contact_id: Option<ID>,
    /// For this account (an account's tickets).
    pub account_id: Option<ID>,
    /// With this number (`T-000123`).
    pub number: Option<String>,
    /// Carrying this tag.
    pub tag: Option<String>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    /// Number, subject or description contains this text.
    pub search: Option<String>,
    /// With a running SLA clock due before this instant ("due soonest":
    /// narrow this bound).
    pub sla_due_before: Option<DateTime<Utc>>,
    /// With (true) or without (false) a breached SLA clock: one whose
    /// breach went out or that was met late.
    pub sla_breached: Option<bool>,
    /// The recycle bin instead of live tickets (needs delete rights).
    #[graphql(default)]
    pub deleted: bool,
    /// Custom fields with these values (all must hold).
    pub custom: Option<Vec<crm_core::custom::CustomFieldFilter>>,
}

impl TicketFilterInput {
    /// The list conditions of this filter (all must hold).
    pub(crate) fn to_query(&self) -> Result<ListQuery> {
        let mut conds = Vec::new();
        let texts = |v: &[&'static str]| v.iter().map(|s| Bind::from(*s)).collect::<Vec<_>>();
        if let Some(v) = &self.status {
            conds.push(Cond::In(
                "status",
                texts(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            ));
        }
        if let Some(v) = &self.priority {
            conds.push(Cond::In(
                "priority",
                texts(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            ));
        }
        if let Some(v) = &self.channel {
            conds.push(Cond::In(
                "channel",
                texts(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            ));
        }
        if let Some(v) = self.ticket_type {
            conds.push(Cond::Eq("ticket_type", v.as_str().into()));
        }
        for (col, v) in [
            ("assignee_id", &self.assignee_id),
            ("group_id", &self.group_id),
            ("contact_id", &self.contact_id),
            ("account_id", &self.account_id),
        ] {
            if let Some(v) = v {
                conds.push(Cond::Eq(col, v.0.as_str().into()));
            }
        }
        if let Some(v) = &self.number {
            conds.push(Cond::Eq("number", v.trim().to_uppercase().into()));
        }
        if let Some(t) = &self.tag {
            // Tags are stored normalised, so the normalised tag is compared.
            let t = normalize_tag(t).map_err(|_| Error::invalid("filter.tag", "not a tag"))?;
            conds.push(Cond::Has("tags", t));
        }
        if self.created_from.is_some() || self.created_to.is_some() {
            let t = |d: Option<DateTime<Utc>>| d.map(|d| Bind::from(d.naive_utc()));
            conds.push(Cond::Range(
                "created_at",
                t(self.created_from),
                t(self.created_to),
            ));
        }
        if let Some(t) = self.sla_due_before {
            let mut s = Sql::new(
                "tickets.id IN (SELECT ticket_id FROM sla_clocks WHERE state = 'RUNNING' \
                 AND due_at < ",
            );
            s.bind(t.naive_utc()).push(")");
            conds.push(Cond::Sql(s));
        }
        if let Some(b) = self.sla_breached {
            conds.push(Cond::Sql(Sql::new(format!(
                "tickets.id {}IN (SELECT ticket_id FROM sla_clocks WHERE breached_at IS NOT NULL \
                 OR met_at > due_at)",
                if b { "" } else { "NOT " }
            ))));
        }
        Ok(ListQuery {
            conds,
            search: self.search.clone(),
            deleted: self.deleted,
            ..Default::default()
        })
    }
}

/// Ordering for `tickets`.
#[derive(InputObject)]
pub struct TicketOrder {
    /// Sort key.
    #[graphql(default)]
    pub field: TicketOrderField,
    /// Direction.
    #[graphql(default_with = "Direction::Desc")]
    pub direction: Direction,
    /// Sort by this custom field instead of `field` (not multi-select).
    pub custom_key: Option<String>,
}

impl Default for TicketOrder {
    fn default() -> Self {
        TicketOrder {
            field: TicketOrderField::CreatedAt,
            direction: Direction::Desc,
            custom_key: None,
        }
    }
}

/// Input for `createTicket`.
#[derive(InputObject)]
pub struct CreateTicketInput {
    pub subject: String,
    pub description: Option<String>,
    /// The requester: a live contact you may see.
    pub contact_id: ID,
    /// Default: the contact's account.
    pub account_id: Option<ID>,
    /// Default: WEB.
    pub channel: Option<TicketChannel>,
    /// Default: NORMAL.
    pub priority: Option<TicketPriority>,
    /// Default: NEW.
    pub status: Option<TicketStatus>,
    #[graphql(name = "type")]
    pub ticket_type: Option<TicketType>,
    /// An active user.
    pub assignee_id: Option<ID>,
    /// A team.
    pub group_id: Option<ID>,
    pub tags: Option<Vec<String>>,
    /// Custom field values by key (see `customFieldDefinitions`).
    pub custom: Option<Json<serde_json::Map<String, serde_json::Value>>>,
}

/// Input for `updateTicket`: omitted fields stay, null clears. A status
/// change must be an allowed move (see `TicketStatus`).
#[derive(InputObject)]
pub struct UpdateTicketInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub subject: Option<String>,
    pub description: MaybeUndefined<String>,
    /// A new requester; the account follows it unless given too.
    pub contact_id: Option<ID>,
    pub account_id: MaybeUndefined<ID>,
    pub channel: Option<TicketChannel>,
    pub priority: Option<TicketPriority>,
    pub status: Option<TicketStatus>,
    #[graphql(name = "type")]
    pub ticket_type: MaybeUndefined<TicketType>,
    pub assignee_id: MaybeUndefined<ID>,
    pub group_id: MaybeUndefined<ID>,
    /// Replaces the tags.
    pub tags: Option<Vec<String>>,
    /// Custom field values to change, by key (null clears one).
    pub custom: Option<Json<serde_json::Map<String, serde_json::Value>>>,
}

fn id_text(v: MaybeUndefined<ID>) -> Option<Option<String>> {
    mu(v).map(|o| o.map(|i| i.0))
}

/// Ticket queries.
#[derive(Default)]
pub struct TicketQuery;

#[Object]
impl TicketQuery {
    /// Tickets you may see (a contact's or an account's:
    /// `filter: {contactId}` / `{accountId}`), newest first by default.
    #[allow(clippy::too_many_arguments)]
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<TicketFilterInput>,
        order_by: Option<TicketOrder>,
    ) -> Result<Page<Ticket>> {
        let f = filter.unwrap_or_default();
        let o = order_by.unwrap_or_default();
        let query = f.to_query()?;
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
        resolve::list::<Tickets, _>(ctx, page, query, sorting, Ticket::try_from).await
    }

    /// One ticket (NOT_FOUND if outside your scope).
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> Result<Ticket> {
        ticket_by_id(ctx, &id).await
    }
}

/// One live ticket in the caller's read scope.
pub async fn ticket_by_id(ctx: &Context<'_>, id: &str) -> Result<Ticket> {
    resolve::get::<Tickets>(ctx, id).await?.try_into()
}

/// Ticket mutations.
#[derive(Default)]
pub struct TicketMutation;

#[Object]
impl TicketMutation {
    /// Opens a ticket; it takes the next number.
    async fn create_ticket(&self, ctx: &Context<'_>, input: CreateTicketInput) -> Result<Ticket> {
        let fields = TicketFields {
            subject: Some(input.subject),
            description: Some(input.description),
            contact_id: Some(input.contact_id.0),
            account_id: input.account_id.map(|i| Some(i.0)),
            channel: input.channel,
            priority: input.priority,
            status: input.status,
            ticket_type: input.ticket_type.map(Some),
            assignee_id: input.assignee_id.map(|i| Some(i.0)),
            group_id: input.group_id.map(|i| Some(i.0)),
            tags: input.tags,
            custom: input.custom.map(|c| c.0),
        };
        resolve::create::<Tickets>(ctx, fields).await?.try_into()
    }

    /// Updates a ticket in your scope if `version` is current.
    async fn update_ticket(&self, ctx: &Context<'_>, input: UpdateTicketInput) -> Result<Ticket> {
        let fields = TicketFields {
            subject: input.subject,
            description: mu(input.description),
            contact_id: input.contact_id.map(|i| i.0),
            account_id: id_text(input.account_id),
            channel: input.channel,
            priority: input.priority,
            status: input.status,
            ticket_type: mu(input.ticket_type),
            assignee_id: id_text(input.assignee_id),
            group_id: id_text(input.group_id),
            tags: input.tags,
            custom: input.custom.map(|c| c.0),
        };
        resolve::update::<Tickets>(ctx, &input.id, input.version, fields)
            .await?
            .try_into()
    }

    /// Adds a public reply (`internal: false`, the customer sees it) or an
    /// internal note (`internal: true`) to a ticket you may update; each is
    /// also noted on the requester's and the account's timeline.
    async fn reply_to_ticket(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        body: String,
        #[graphql(default)] internal: bool,
    ) -> Result<TicketComment> {
        let scope = row_filter(ctx, "Ticket", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let entry = if internal {
            comments::Entry::Note
        } else {
            comments::Entry::Reply
        };
        let (_, comment) =
            comments::reply(app, principal(ctx), &scope, &ticket_id, &body, entry).await?;
        Ok(comment.into())
    }

    /// Logs a message from the requester on a ticket you may update (a
    /// phone call, a message that came another way): part of the public
    /// conversation and the timeline; a PENDING or SOLVED ticket opens
    /// again, and unless a reply clock already runs, a next-reply SLA
    /// clock starts.
    async fn log_customer_message(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        body: String,
    ) -> Result<TicketComment> {
        let scope = row_filter(ctx, "Ticket", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let (_, comment) = comments::reply(
            app,
            principal(ctx),
            &scope,
            &ticket_id,
            &body,
            comments::Entry::Customer,
        )
        .await?;
        Ok(comment.into())
    }

    /// Moves a ticket to the recycle bin.
    async fn delete_ticket(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<Ticket> {
        resolve::delete::<Tickets>(ctx, &id, version)
            .await?
            .try_into()
    }

    /// Brings a ticket back from the recycle bin.
    async fn restore_ticket(&self, ctx: &Context<'_>, id: ID) -> Result<Ticket> {
        resolve::restore::<Tickets>(ctx, &id).await?.try_into()
    }

    /// Deletes a recycled ticket for good, with its conversation (its
    /// number is not reused).
    async fn purge_ticket(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        resolve::purge::<Tickets>(ctx, &id).await
    }
}
