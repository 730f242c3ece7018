//! Contracts in the database: the row, its declaration to the entity kit
//! (owned by its `owner_id` like an opportunity: every list, fetch and
//! write applies the caller's scope through core; recycle bin), and the
//! look-ups of the expiry and renewal checks.

use chrono::NaiveDateTime;
use crm_core::db::Conn;
use crm_core::entity::sql::Sql;
use crm_core::entity::{Column, DELETED, Def, Kind, Ops, Scope};
use crm_core::error::Result;
use crm_core::schema::contracts;
use diesel::QueryableByName;
use serde::{Deserialize, Serialize};

/// A contract row.
#[derive(Clone, Debug, QueryableByName, Serialize, Deserialize)]
#[diesel(table_name = contracts)]
pub struct ContractRow {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub opportunity_id: Option<String>,
    /// The ACCEPTED quote it was made from (one contract per quote).
    pub quote_id: Option<String>,
    pub owner_id: String,
    /// A [`crate::values::ContractStatus`] as stored.
    pub status: String,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    /// `YYYY-MM-DD`, after the start date; in force through that day.
    pub end_date: String,
    /// Minor units of `currency`.
    pub value: i64,
    pub currency: String,
    /// The pipeline a renewal opportunity goes to (None: no renewal).
    pub renewal_pipeline_id: Option<String>,
    /// How many days before the end date the renewal is created.
    pub renewal_notice_days: i64,
    /// `YYYY-MM-DD`: end date − notice days (kept by every write).
    pub renewal_due_on: String,
    /// The renewal opportunity, once created.
    pub renewal_opportunity_id: Option<String>,
    pub activated_at: Option<NaiveDateTime>,
    /// When it expired or was terminated.
    pub ended_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
    pub deleted_at: Option<NaiveDateTime>,
    pub deleted_by: Option<String>,
}

/// What to order a list by.
#[derive(async_graphql::Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContractOrderField {
    /// Creation time (the default; newest first with `DESC`).
    #[default]
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Name, then id.
    Name,
    /// Start date.
    StartDate,
    /// End date.
    EndDate,
}

impl ContractOrderField {
    /// The column it orders by.
    pub fn column(self) -> &'static str {
        match self {
            ContractOrderField::CreatedAt => "created_at",
            ContractOrderField::UpdatedAt => "updated_at",
            ContractOrderField::Name => "name",
            ContractOrderField::StartDate => "start_date",
            ContractOrderField::EndDate => "end_date",
        }
    }
}

/// The columns of `contracts`, for the entity kit.
pub const COLUMNS: &[Column] = &[
    Column::new("id", Kind::Text).api("id"),
    Column::text("name", "name").sort().search(),
    Column::text("account_id", "accountId").filter(Ops::EQ),
    Column::text("opportunity_id", "opportunityId")
        .nullable()
        .filter(Ops::EQ),
    Column::text("quote_id", "quoteId")
        .nullable()
        .filter(Ops::EQ),
    Column::text("owner_id", "ownerId").filter(Ops::EQ),
    Column::text("status", "status").filter(Ops::EQ.and(Ops::IN)),
    Column::text("start_date", "startDate")
        .filter(Ops::RANGE)
        .sort(),
    Column::text("end_date", "endDate")
        .filter(Ops::RANGE)
        .sort(),
    Column::int("value", "value"),
    Column::new("currency", Kind::Text),
    Column::text("renewal_pipeline_id", "renewalPipelineId").nullable(),
    Column::int("renewal_notice_days", "renewalNoticeDays"),
    Column::text("renewal_due_on", "renewalDueOn"),
    Column::text("renewal_opportunity_id", "renewalOpportunityId").nullable(),
    Column::time("activated_at", "activatedAt").nullable(),
    Column::time("ended_at", "endedAt").nullable(),
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

/// Contracts, declared to the entity kit; the domain rules are the hooks
/// in [`super::service`].
pub struct Contracts;

/// The declaration of [`Contracts`]: owned like an opportunity, with a
/// recycle bin; no custom fields.
pub const DEF: Def = Def {
    type_name: "Contract",
    prefix: "ctr",
    label: "contract",
    table: "contracts",
    topic: crate::TOPIC,
    columns: COLUMNS,
    scope: Scope::Owner("owner_id"),
    soft_delete: DELETED,
    custom_fields: false,
};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

/// Ids of live ACTIVE contracts that ended before `today`
/// (`YYYY-MM-DD`), at most `limit`.
pub async fn due_for_expiry(conn: &mut Conn<'_>, today: &str, limit: i64) -> Result<Vec<String>> {
    let mut s = Sql::new(
        "SELECT id FROM contracts WHERE status = 'ACTIVE' AND deleted_at IS NULL AND end_date < ",
    );
    s.bind(today)
        .push(" ORDER BY end_date, id LIMIT ")
        .bind(limit);
    Ok(s.load::<Id>(conn)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect())
}

/// Ids of live ACTIVE contracts with a renewal pipeline, no renewal yet
/// and a renewal date on or before `today`, at most `limit`.
pub async fn due_for_renewal(conn: &mut Conn<'_>, today: &str, limit: i64) -> Result<Vec<String>> {
    let mut s = Sql::new(
        "SELECT id FROM contracts WHERE status = 'ACTIVE' AND deleted_at IS NULL \
         AND renewal_pipeline_id IS NOT NULL AND renewal_opportunity_id IS NULL \
         AND NOT EXISTS (SELECT 1 FROM contract_renewals r WHERE r.contract_id = contracts.id) \
         AND renewal_due_on <= ",
    );
    s.bind(today)
        .push(" ORDER BY renewal_due_on, id LIMIT ")
        .bind(limit);
    Ok(s.load::<Id>(conn)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect())
}

/// The contract made from quote `quote_id`, if any (binned ones too).
pub async fn of_quote(conn: &mut Conn<'_>, quote_id: &str) -> Result<Option<String>> {
    let mut s = Sql::new("SELECT id FROM contracts WHERE quote_id = ");
    s.bind(quote_id);
    Ok(s.load::<Id>(conn).await?.into_iter().next().map(|i| i.id))
}

/// Claims the renewal of `contract_id` in the caller's transaction: true
/// for the one transaction whose insert of the marker row wins (on
/// PostgreSQL a concurrent claim waits for the winner's commit, then
/// inserts nothing).
pub async fn claim_renewal(
    conn: &mut Conn<'_>,
    contract_id: &str,
    now: NaiveDateTime,
) -> Result<bool> {
    let mut s = Sql::new("INSERT INTO contract_renewals (contract_id, created_at) VALUES (");
    s.bind(contract_id)
        .push(", ")
        .bind(now)
        .push(") ON CONFLICT (contract_id) DO NOTHING");
    Ok(s.execute(conn).await? == 1)
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
