//! Contacts in the database. Every read applies the caller's row scope.

use chrono::NaiveDateTime;
use crm_core::access::RowFilter;
use crm_core::entity::sql::Sql;
use crm_core::entity::{Column, Cond, DELETED, Def, Kind, Ops, Scope, list};
use crm_core::schema::contacts;
use diesel::prelude::*;

/// A contact row.
#[derive(
    Clone,
    Debug,
    Queryable,
    QueryableByName,
    Selectable,
    Insertable,
    serde::Serialize,
    serde::Deserialize,
)]
#[diesel(table_name = contacts, treat_none_as_default_value = false)]
pub struct ContactRow {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub title: Option<String>,
    /// JSON list of `ContactPoint`.
    pub emails: String,
    /// JSON list of `ContactPoint`.
    pub phones: String,
    /// Lower-case names, emails and phones, for keyword search.
    pub search_text: String,
    pub preferred_channel: Option<String>,
    pub language: Option<String>,
    pub account_id: Option<String>,
    pub owner_id: String,
    pub consent_state: String,
    pub consent_at: Option<NaiveDateTime>,
    pub consent_source: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
    pub deleted_at: Option<NaiveDateTime>,
    pub deleted_by: Option<String>,
    /// The first email, normalised: the duplicate key of imports.
    pub email_key: Option<String>,
    /// Custom field values: a JSON object by key.
    pub custom: String,
}

/// What to order contacts by.
#[derive(async_graphql::Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContactOrderField {
    /// Last name, then id.
    #[default]
    LastName,
    /// Creation time.
    CreatedAt,
}

impl ContactOrderField {
    /// The column it orders by.
    pub fn column(self) -> &'static str {
        match self {
            ContactOrderField::LastName => "last_name",
            ContactOrderField::CreatedAt => "created_at",
        }
    }
}

/// The columns of `contacts`, for the entity kit.
pub const COLUMNS: &[Column] = &[
    Column::new("id", Kind::Text).api("id"),
    Column::text("first_name", "firstName"),
    Column::text("last_name", "lastName").sort(),
    Column::text("title", "title").nullable(),
    Column::text("emails", "emails"),
    Column::text("phones", "phones"),
    // Lower-case names, title, emails and phones: the keyword search.
    Column::new("search_text", Kind::Text).search(),
    Column::text("preferred_channel", "preferredChannel").nullable(),
    Column::text("language", "language").nullable(),
    Column::text("account_id", "accountId")
        .nullable()
        .filter(Ops::EQ),
    Column::text("owner_id", "ownerId").filter(Ops::EQ),
    Column::text("consent_state", "consent").filter(Ops::EQ),
    Column::new("consent_at", Kind::Time).nullable(),
    Column::new("consent_source", Kind::Text).nullable(),
    Column::time("created_at", "createdAt")
        .filter(Ops::RANGE)
        .sort(),
    Column::time("updated_at", "updatedAt").filter(Ops::RANGE),
    Column::int("version", "version"),
    Column::time("deleted_at", "deletedAt").nullable(),
    Column::new("deleted_by", Kind::Text).nullable(),
    Column::new("email_key", Kind::Text).nullable(),
    Column::new("custom", Kind::Text).api("custom"),
];

/// Contacts, declared to the entity kit; the domain rules (contact point
/// normalisation, the search text, the account link) are the hooks in
/// [`super`].
pub struct Contacts;

/// The declaration of [`Contacts`].
pub const DEF: Def = Def {
    type_name: "Contact",
    prefix: "con",
    label: "contact",
    table: "contacts",
    topic: crate::TOPIC,
    columns: COLUMNS,
    scope: Scope::Owner("owner_id"),
    soft_delete: DELETED,
    custom_fields: true,
};

/// Contacts tagged with `tag_id` (a list condition).
pub fn tagged(tag_id: &str) -> Cond {
    let mut s = Sql::new("contacts.id IN (SELECT contact_id FROM contact_tags WHERE tag_id = ");
    s.bind(tag_id).push(")");
    Cond::Sql(s)
}

/// The keyword also matches contacts whose company name contains it, among
/// the live accounts of `account_scope`.
pub fn company_matches(account_scope: &RowFilter, keyword: &str) -> Sql {
    let mut s = Sql::new("contacts.account_id IN (SELECT accounts.id FROM accounts WHERE ");
    let scope = list::owner_scope_sql("accounts", "owner_id", account_scope);
    if !scope.is_empty() {
        s.append(&scope).push(" AND ");
    }
    s.push("accounts.deleted_at IS NULL AND lower(accounts.name) LIKE ")
        .bind(list::like_pattern(keyword))
        .push(")");
    s
}
