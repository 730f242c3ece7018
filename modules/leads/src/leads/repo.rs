//! Leads in the database: the row and its declaration to the entity kit
//! (every list, fetch and write applies the caller's row scope through
//! core), and the duplicate check's lookups.

use chrono::NaiveDateTime;
use crm_core::db::Conn;
use crm_core::entity::sql::Sql;
use crm_core::entity::{Column, DELETED, Def, Kind, Ops, Scope};
use crm_core::error::Result;
use crm_core::schema::leads;
use diesel::prelude::*;
use diesel::sql_types::Text;

/// A lead row.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = leads)]
pub struct LeadRow {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    /// JSON list of `ContactPoint` (lower-case addresses).
    pub emails: String,
    /// JSON list of `ContactPoint` (E.164 numbers).
    pub phones: String,
    pub company: Option<String>,
    /// The company name as the duplicate check compares it.
    pub company_key: Option<String>,
    pub website: Option<String>,
    pub industry: Option<String>,
    pub size_band: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub source: String,
    pub campaign_id: Option<String>,
    pub status: String,
    /// Why it is unqualified (only then).
    pub status_reason: Option<String>,
    /// NULL while it waits in its team's queue.
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    /// JSON list of tag ids.
    pub tags: String,
    /// JSON `{state, at, source}`.
    pub consent: String,
    pub matched_contact_id: Option<String>,
    pub duplicate_of: Option<String>,
    pub converted_at: Option<NaiveDateTime>,
    /// JSON `{accountId, contactId, opportunityId}` once converted.
    pub converted: Option<String>,
    /// Custom field values: a JSON object by key.
    pub custom: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
    pub deleted_at: Option<NaiveDateTime>,
    pub deleted_by: Option<String>,
}

/// What to order a list by.
#[derive(async_graphql::Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeadOrderField {
    /// Creation time.
    #[default]
    CreatedAt,
    /// Last change.
    UpdatedAt,
}

impl LeadOrderField {
    /// The column it orders by.
    pub fn column(self) -> &'static str {
        match self {
            LeadOrderField::CreatedAt => "created_at",
            LeadOrderField::UpdatedAt => "updated_at",
        }
    }
}

/// The columns of `leads`, for the entity kit.
pub const COLUMNS: &[Column] = &[
    Column::new("id", Kind::Text).api("id"),
    Column::text("first_name", "firstName").nullable().search(),
    Column::text("last_name", "lastName").nullable().search(),
    Column::text("title", "title").nullable(),
    Column::text("emails", "emails").search(),
    Column::text("phones", "phones").search(),
    Column::text("company", "company").nullable().search(),
    Column::new("company_key", Kind::Text).nullable(),
    Column::text("website", "website").nullable(),
    Column::text("industry", "industry")
        .nullable()
        .filter(Ops::EQ),
    Column::text("size_band", "sizeBand")
        .nullable()
        .filter(Ops::EQ),
    Column::text("country", "country")
        .nullable()
        .filter(Ops::EQ),
    Column::text("region", "region").nullable().filter(Ops::EQ),
    Column::text("city", "city").nullable(),
    Column::text("source", "source").filter(Ops::EQ),
    Column::text("campaign_id", "campaignId")
        .nullable()
        .filter(Ops::EQ),
    Column::text("status", "status").filter(Ops::EQ.and(Ops::IN)),
    Column::text("status_reason", "statusReason").nullable(),
    Column::text("owner_id", "ownerId")
        .nullable()
        .filter(Ops::EQ),
    Column::text("team_id", "teamId").nullable().filter(Ops::EQ),
    Column::text("tags", "tagIds").filter(Ops::HAS),
    Column::text("consent", "consent"),
    Column::text("matched_contact_id", "matchedContactId").nullable(),
    Column::text("duplicate_of", "duplicateOf").nullable(),
    Column::time("converted_at", "convertedAt")
        .nullable()
        .filter(Ops::RANGE),
    Column::new("converted", Kind::Text).nullable(),
    Column::new("custom", Kind::Text).api("custom"),
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

/// Leads, declared to the entity kit; the domain rules are the hooks in
/// [`super::service`].
pub struct Leads;

/// The declaration of [`Leads`]: owned by a user, or unowned in a team's
/// queue.
pub const DEF: Def = Def {
    type_name: "Lead",
    prefix: "led",
    label: "lead",
    table: "leads",
    topic: crate::TOPIC,
    columns: COLUMNS,
    scope: Scope::OwnerOrQueue {
        owner: "owner_id",
        team: "team_id",
    },
    soft_delete: DELETED,
    custom_fields: true,
};

/// A value as it appears quoted in a stored JSON list, with LIKE's
/// wildcards and escapes turned into `_` (which matches any one character:
/// the pattern finds a superset that the caller then checks exactly).
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace(['\\', '%', '_', '"'], "_"))
}

/// A record the duplicate check found: its id and stored contact points.
#[derive(QueryableByName)]
pub struct Candidate {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub emails: String,
    #[diesel(sql_type = Text)]
    pub phones: String,
    /// A lead's company key (None for contacts).
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub company_key: Option<String>,
}

/// Live records of `table` (`contacts` or `leads`) whose emails or phones
/// may hold one of `values` (a superset, oldest first; the caller compares
/// exactly), and, for leads, whose company key is `company`.
pub async fn candidates(
    conn: &mut Conn<'_>,
    table: &'static str,
    values: &[String],
    company: Option<&str>,
    except: &str,
) -> Result<Vec<Candidate>> {
    let key = if table == "leads" {
        "company_key"
    } else {
        "CAST(NULL AS TEXT)"
    };
    let mut s = Sql::new(format!(
        "SELECT id, emails, phones, {key} AS company_key FROM {table} \
         WHERE deleted_at IS NULL AND id <> "
    ));
    s.bind(except).push(" AND (1 = 0");
    for v in values {
        let p = format!("%{}%", quoted(v));
        s.push(" OR emails LIKE ")
            .bind(p.as_str())
            .push(" OR phones LIKE ")
            .bind(p);
    }
    if let Some(k) = company.filter(|_| table == "leads") {
        s.push(" OR company_key = ").bind(k);
    }
    s.push(") ORDER BY id LIMIT 50");
    s.load(conn).await
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
