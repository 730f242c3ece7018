//! Opportunities in the database: the row and its declaration to the
//! entity kit (every list, fetch and write applies the caller's row scope
//! through core).

use chrono::NaiveDateTime;
use crm_core::entity::{Column, DELETED, Def, Kind, Ops, Scope};
use crm_core::schema::opportunities;
use diesel::prelude::*;

/// An opportunity row.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = opportunities)]
pub struct OpportunityRow {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub primary_contact_id: Option<String>,
    pub owner_id: String,
    pub pipeline_id: String,
    pub stage_id: String,
    /// Minor units of `currency`.
    pub amount: Option<i64>,
    pub currency: Option<String>,
    /// `YYYY-MM-DD`.
    pub close_date: Option<String>,
    pub probability: i64,
    pub forecast_category: String,
    pub next_step: Option<String>,
    pub source: Option<String>,
    pub campaign_id: Option<String>,
    /// Set only while the deal is in a LOST stage.
    pub lost_reason: Option<String>,
    /// When it entered its WON or LOST stage (None while open).
    pub closed_at: Option<NaiveDateTime>,
    /// Custom field values: a JSON object by key.
    pub custom: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
    pub deleted_at: Option<NaiveDateTime>,
    pub deleted_by: Option<String>,
    /// JSON array of tag ids.
    pub tags: String,
    /// When it entered its current stage (or was created).
    pub stage_entered_at: NaiveDateTime,
    /// The primary quote, whose lines are the deal's line items.
    pub primary_quote_id: Option<String>,
}

/// What to order a list by.
#[derive(async_graphql::Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OpportunityOrderField {
    /// Name, then id.
    #[default]
    Name,
    /// Creation time.
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Win probability.
    Probability,
}

impl OpportunityOrderField {
    /// The column it orders by.
    pub fn column(self) -> &'static str {
        match self {
            OpportunityOrderField::Name => "name",
            OpportunityOrderField::CreatedAt => "created_at",
            OpportunityOrderField::UpdatedAt => "updated_at",
            OpportunityOrderField::Probability => "probability",
        }
    }
}

/// The columns of `opportunities`, for the entity kit.
pub const COLUMNS: &[Column] = &[
    Column::new("id", Kind::Text).api("id"),
    Column::text("name", "name")
        .filter(Ops::PREFIX)
        .sort()
        .search(),
    Column::text("account_id", "accountId").filter(Ops::EQ),
    Column::text("primary_contact_id", "primaryContactId")
        .nullable()
        .filter(Ops::EQ),
    Column::text("owner_id", "ownerId").filter(Ops::EQ),
    Column::text("pipeline_id", "pipelineId").filter(Ops::EQ),
    Column::text("stage_id", "stageId").filter(Ops::EQ.and(Ops::IN)),
    Column::int("amount", "amount").nullable(),
    Column::new("currency", Kind::Text).nullable(),
    Column::text("close_date", "closeDate")
        .nullable()
        .filter(Ops::RANGE),
    Column::int("probability", "probability")
        .filter(Ops::RANGE)
        .sort(),
    Column::text("forecast_category", "forecastCategory").filter(Ops::EQ),
    Column::text("next_step", "nextStep").nullable().search(),
    Column::text("source", "source").nullable().filter(Ops::EQ),
    Column::text("campaign_id", "campaignId")
        .nullable()
        .filter(Ops::EQ),
    Column::text("lost_reason", "lostReason").nullable(),
    Column::time("closed_at", "closedAt").nullable(),
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
    Column::text("tags", "tagIds").filter(Ops::HAS),
    Column::time("stage_entered_at", "stageEnteredAt").filter(Ops::RANGE),
    Column::text("primary_quote_id", "primaryQuoteId").nullable(),
];

/// Opportunities, declared to the entity kit; the domain rules are the
/// hooks in [`super::service`].
pub struct Opportunities;

/// The declaration of [`Opportunities`].
pub const DEF: Def = Def {
    type_name: "Opportunity",
    prefix: "opp",
    label: "opportunity",
    table: "opportunities",
    topic: crate::TOPIC,
    columns: COLUMNS,
    scope: Scope::Owner("owner_id"),
    soft_delete: DELETED,
    custom_fields: true,
};

/// The event context of a record about opportunity `id` (a quote, a
/// contract): `pipelineId`, that opportunity's pipeline, read on `conn` (the
/// write's transaction; a deal in the recycle bin keeps its pipeline).
/// Empty when there is no such opportunity.
pub async fn pipeline_context(
    conn: &mut crm_core::db::Conn<'_>,
    id: &str,
) -> crm_core::error::Result<serde_json::Map<String, serde_json::Value>> {
    #[derive(QueryableByName)]
    struct Pipeline {
        #[diesel(sql_type = diesel::sql_types::Text)]
        pipeline_id: String,
    }
    let mut s =
        crm_core::entity::sql::Sql::new("SELECT pipeline_id FROM opportunities WHERE id = ");
    s.bind(id);
    Ok(s.load::<Pipeline>(conn)
        .await?
        .into_iter()
        .next()
        .map(|p| serde_json::Map::from_iter([("pipelineId".into(), p.pipeline_id.into())]))
        .unwrap_or_default())
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
