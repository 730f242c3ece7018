//! Quotes in the database: the row, its declaration to the entity kit
//! (owned through its opportunity: every list, fetch and write applies the
//! caller's opportunity scope through core), the per-year number counter
//! and the stored form of its lines.

use chrono::NaiveDateTime;
use crm_core::db::Conn;
use crm_core::entity::sql::Sql;
use crm_core::entity::{Column, Def, Kind, Ops, Scope};
use crm_core::error::{Error, Result};
use crm_core::schema::quotes;
use diesel::QueryableByName;
use serde::{Deserialize, Serialize};

/// A quote row.
#[derive(Clone, Debug, QueryableByName, Serialize, Deserialize)]
#[diesel(table_name = quotes)]
pub struct QuoteRow {
    pub id: String,
    /// `Q-2026-00042`, shared by every revision.
    pub number: String,
    /// 1 for the first, then one more per revision.
    pub revision: i64,
    /// The revision this one was made from.
    pub revised_from: Option<String>,
    pub opportunity_id: String,
    /// The opportunity's account when the quote was made.
    pub account_id: String,
    pub name: String,
    /// A [`crate::values::QuoteStatus`] as stored.
    pub status: String,
    /// `YYYY-MM-DD`: valid through that day (UTC).
    pub valid_until: String,
    /// Every line's currency (None until the first line).
    pub currency: Option<String>,
    /// JSON list of [`QuoteLine`].
    pub lines: String,
    /// Sum of the line totals (minor units).
    pub subtotal: i64,
    /// Quote discount in hundredths of a percent of the subtotal.
    pub discount_bp: i64,
    /// The discount (minor units, rounded half to even).
    pub discount: i64,
    /// Tax rate in hundredths of a percent of subtotal − discount.
    pub tax_bp: i64,
    /// The tax (minor units, rounded half to even).
    pub tax: i64,
    /// Subtotal − discount + tax.
    pub total: i64,
    /// JSON `Address`, copied from the account.
    pub billing_address: Option<String>,
    /// JSON `Address`, copied from the account.
    pub shipping_address: Option<String>,
    pub terms: Option<String>,
    pub sent_at: Option<NaiveDateTime>,
    /// When it was accepted, rejected or expired.
    pub decided_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

/// One line of a quote, as stored in [`QuoteRow::lines`]; priced like an
/// opportunity's line item (`opportunities::line_items::line_total`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteLine {
    /// `qli_…`
    pub id: String,
    pub product_id: String,
    pub price_book_entry_id: String,
    /// Thousandths of a unit.
    pub quantity_milli: i64,
    /// The entry's unit price when the line was priced (minor units).
    pub list_price: i64,
    /// The unit price charged (minor units).
    pub unit_price: i64,
    /// Hundredths of a percent.
    pub discount_bp: i64,
    /// Minor units, rounded half to even.
    pub total: i64,
}

/// The lines of a row.
pub fn lines_of(r: &QuoteRow) -> Result<Vec<QuoteLine>> {
    serde_json::from_str(&r.lines).map_err(|e| Error::Internal(format!("quote lines: {e}")))
}

/// What to order a list by.
#[derive(async_graphql::Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QuoteOrderField {
    /// Creation time (the default; newest first with `DESC`).
    #[default]
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Number, then revision order by id.
    Number,
    /// Valid-until date.
    ValidUntil,
}

impl QuoteOrderField {
    /// The column it orders by.
    pub fn column(self) -> &'static str {
        match self {
            QuoteOrderField::CreatedAt => "created_at",
            QuoteOrderField::UpdatedAt => "updated_at",
            QuoteOrderField::Number => "number",
            QuoteOrderField::ValidUntil => "valid_until",
        }
    }
}

/// The columns of `quotes`, for the entity kit.
pub const COLUMNS: &[Column] = &[
    Column::new("id", Kind::Text).api("id"),
    Column::text("number", "number")
        .filter(Ops::EQ)
        .sort()
        .search(),
    Column::int("revision", "revision"),
    Column::text("revised_from", "revisedFromId").nullable(),
    Column::text("opportunity_id", "opportunityId").filter(Ops::EQ),
    Column::text("account_id", "accountId").filter(Ops::EQ),
    Column::text("name", "name").search(),
    Column::text("status", "status").filter(Ops::EQ.and(Ops::IN)),
    Column::text("valid_until", "validUntil")
        .filter(Ops::RANGE)
        .sort(),
    Column::new("currency", Kind::Text).nullable(),
    Column::new("lines", Kind::Text).api("lineItems"),
    Column::int("subtotal", "subtotal"),
    Column::int("discount_bp", "discountPercent"),
    Column::int("discount", "discount"),
    Column::int("tax_bp", "taxPercent"),
    Column::int("tax", "tax"),
    Column::int("total", "total"),
    Column::text("billing_address", "billingAddress").nullable(),
    Column::text("shipping_address", "shippingAddress").nullable(),
    Column::text("terms", "terms").nullable(),
    Column::time("sent_at", "sentAt").nullable(),
    Column::time("decided_at", "decidedAt").nullable(),
    Column::time("created_at", "createdAt")
        .filter(Ops::RANGE)
        .sort(),
    Column::time("updated_at", "updatedAt")
        .filter(Ops::RANGE)
        .sort(),
    Column::int("version", "version"),
];

/// A quote belongs to its opportunity's owner (like the deal's line items).
const OWNED_THROUGH_OPPORTUNITY: Scope = Scope::Through {
    fk: "opportunity_id",
    table: "opportunities",
    owner: "owner_id",
};

/// Quotes, declared to the entity kit; the domain rules are the hooks in
/// [`super::service`].
pub struct Quotes;

/// The declaration of [`Quotes`]: no recycle bin (a quote is revised or
/// rejected, never deleted; it goes only with its opportunity's purge).
pub const DEF: Def = Def {
    type_name: "Quote",
    prefix: "quo",
    label: "quote",
    table: "quotes",
    topic: crate::TOPIC,
    columns: COLUMNS,
    scope: OWNED_THROUGH_OPPORTUNITY,
    soft_delete: None,
    custom_fields: false,
};

/// The next quote number of `year`, taken in the creating transaction
/// (`conn`): the year's counter row stays locked until that transaction
/// ends, so concurrent creations get consecutive numbers, and a creation
/// that rolls back gives its number back (no gaps).
pub async fn next_number(conn: &mut Conn<'_>, year: i32) -> Result<String> {
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    let mut s = Sql::new("INSERT INTO quote_counters (year, value) VALUES (");
    s.bind(i64::from(year)).push(
        ", 1) ON CONFLICT (year) DO UPDATE SET value = quote_counters.value + 1 RETURNING value",
    );
    let n = s
        .load::<Value>(conn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal("the quote counter row is missing".into()))?
        .value;
    Ok(format!("Q-{year}-{n:05}"))
}

/// The highest revision of quote `number`.
pub async fn last_revision(conn: &mut Conn<'_>, number: &str) -> Result<i64> {
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    let mut s = Sql::new("SELECT COALESCE(MAX(revision), 0) AS value FROM quotes WHERE number = ");
    s.bind(number);
    Ok(s.load::<Value>(conn)
        .await?
        .into_iter()
        .next()
        .map_or(0, |v| v.value))
}

/// Ids of SENT quotes valid only before `today` (`YYYY-MM-DD`), at most
/// `limit`.
pub async fn due_for_expiry(conn: &mut Conn<'_>, today: &str, limit: i64) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let mut s = Sql::new("SELECT id FROM quotes WHERE status = 'SENT' AND valid_until < ");
    s.bind(today)
        .push(" ORDER BY valid_until, id LIMIT ")
        .bind(limit);
    Ok(s.load::<Id>(conn)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect())
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
