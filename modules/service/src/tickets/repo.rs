//! Tickets in the database: the row, its declaration to the entity kit
//! (every list, fetch and write applies the caller's row scope through
//! core), the ticket number counter and the conversation's rows.

use chrono::NaiveDateTime;
use crm_core::db::Conn;
use crm_core::entity::sql::Sql;
use crm_core::entity::{Column, DELETED, Def, Kind, Ops, Scope};
use crm_core::error::{Error, Result};
use crm_core::schema::{ticket_comments, tickets};
use diesel::{
    ExpressionMethods, Insertable, QueryDsl, Queryable, QueryableByName, Selectable,
    SelectableHelper,
};

/// A ticket row.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = tickets)]
pub struct TicketRow {
    pub id: String,
    /// `T-000123`.
    pub number: String,
    pub subject: String,
    pub description: Option<String>,
    /// The requester.
    pub contact_id: String,
    pub account_id: Option<String>,
    pub channel: String,
    pub priority: String,
    pub status: String,
    pub ticket_type: Option<String>,
    pub assignee_id: Option<String>,
    /// The team working it.
    pub group_id: Option<String>,
    /// JSON array of tags (lower case).
    pub tags: String,
    /// Custom field values: a JSON object by key.
    pub custom: String,
    pub solved_at: Option<NaiveDateTime>,
    pub closed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
    pub deleted_at: Option<NaiveDateTime>,
    pub deleted_by: Option<String>,
}

/// What to order a list by.
#[derive(async_graphql::Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TicketOrderField {
    /// Creation time (the default, newest first with `DESC`).
    #[default]
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Ticket number.
    Number,
    /// Subject.
    Subject,
}

impl TicketOrderField {
    /// The column it orders by.
    pub fn column(self) -> &'static str {
        match self {
            TicketOrderField::CreatedAt => "created_at",
            TicketOrderField::UpdatedAt => "updated_at",
            TicketOrderField::Number => "number",
            TicketOrderField::Subject => "subject",
        }
    }
}

/// The columns of `tickets`, for the entity kit.
pub const COLUMNS: &[Column] = &[
    Column::new("id", Kind::Text).api("id"),
    Column::text("number", "number")
        .filter(Ops::EQ)
        .sort()
        .search(),
    Column::text("subject", "subject").sort().search(),
    Column::text("description", "description")
        .nullable()
        .search(),
    Column::text("contact_id", "contactId").filter(Ops::EQ),
    Column::text("account_id", "accountId")
        .nullable()
        .filter(Ops::EQ),
    Column::text("channel", "channel").filter(Ops::EQ.and(Ops::IN)),
    Column::text("priority", "priority").filter(Ops::EQ.and(Ops::IN)),
    Column::text("status", "status").filter(Ops::EQ.and(Ops::IN)),
    Column::text("ticket_type", "type")
        .nullable()
        .filter(Ops::EQ),
    Column::text("assignee_id", "assigneeId")
        .nullable()
        .filter(Ops::EQ),
    Column::text("group_id", "groupId")
        .nullable()
        .filter(Ops::EQ),
    Column::new("tags", Kind::Text).api("tags").filter(Ops::HAS),
    Column::new("custom", Kind::Text).api("custom"),
    Column::time("solved_at", "solvedAt")
        .nullable()
        .filter(Ops::RANGE),
    Column::time("closed_at", "closedAt")
        .nullable()
        .filter(Ops::RANGE),
    Column::time("created_at", "createdAt")
        .filter(Ops::RANGE)
        .sort(),
    Column::time("updated_at", "updatedAt")
        .filter(Ops::RANGE)
        .sort(),
    Column::int("version", "version"),
    Column::time("deleted_at", "deletedAt").nullable(),
    Column::new("deleted_by", Kind::Text).nullable(),
];

/// Tickets belong to their account's owner (sales see their accounts'
/// tickets), and are worked by their group and assignee (support).
const OWNED_THROUGH_ACCOUNT: Scope = Scope::Through {
    fk: "account_id",
    table: "accounts",
    owner: "owner_id",
};

/// Tickets, declared to the entity kit; the domain rules are the hooks in
/// [`super::service`].
pub struct Tickets;

/// The declaration of [`Tickets`].
pub const DEF: Def = Def {
    type_name: "Ticket",
    prefix: "tkt",
    label: "ticket",
    table: "tickets",
    topic: crate::TOPIC,
    columns: COLUMNS,
    scope: Scope::Routed {
        owner: &OWNED_THROUGH_ACCOUNT,
        group: "group_id",
        assignee: "assignee_id",
    },
    soft_delete: DELETED,
    custom_fields: true,
};

/// The next ticket number, taken in the creating transaction (`conn`): the
/// counter row stays locked until that transaction ends, so concurrent
/// creations get consecutive numbers, and a creation that rolls back
/// gives its number back.
pub async fn next_number(conn: &mut Conn<'_>) -> Result<String> {
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    let s = Sql::new(
        "INSERT INTO service_counters (name, value) VALUES ('ticket', 1) \
         ON CONFLICT (name) DO UPDATE SET value = service_counters.value + 1 RETURNING value",
    );
    let n = s
        .load::<Value>(conn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal("the ticket counter row is missing".into()))?
        .value;
    Ok(format!("T-{n:06}"))
}

/// One entry of a ticket's conversation.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = ticket_comments)]
pub struct CommentRow {
    pub id: String,
    pub ticket_id: String,
    pub author_id: Option<String>,
    pub body: String,
    /// An internal note (never shown to the customer).
    pub internal: bool,
    pub created_at: NaiveDateTime,
    /// A message from the requester (logged by `author_id`).
    pub from_customer: bool,
}

/// Inserts a conversation entry.
pub async fn insert_comment(conn: &mut Conn<'_>, row: &CommentRow) -> Result<()> {
    use diesel_async::RunQueryDsl;
    crm_core::db_run!(conn, |c| diesel::insert_into(ticket_comments::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    Ok(())
}

/// The public replies (`internal` false) or internal notes (true) of
/// tickets, oldest first. The caller has fetched the tickets within its
/// row scope.
pub async fn comments_of(
    conn: &mut Conn<'_>,
    ticket_ids: &[String],
    internal: bool,
) -> Result<Vec<CommentRow>> {
    use diesel_async::RunQueryDsl;
    Ok(crm_core::db_run!(conn, |c| ticket_comments::table
        .filter(ticket_comments::ticket_id.eq_any(ticket_ids))
        .filter(ticket_comments::internal.eq(internal))
        .order((ticket_comments::created_at.asc(), ticket_comments::id.asc()))
        .select(CommentRow::as_select())
        .load(c)
        .await)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_declaration_is_sound() {
        assert!(
            super::DEF.problems().is_empty(),
            "{:?}",
            super::DEF.problems()
        );
    }
}
