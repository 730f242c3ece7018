//! An opportunity's line items: a product priced from a price book entry,
//! a quantity, a unit price (the entry's unless overridden), a discount
//! and a total. A line item change is a write of its opportunity (through
//! the entity kit's `update`, so the opportunity's version guards it, its
//! amount becomes the sum of the totals, the amount change goes into the
//! stage history and an `opportunity.updated` event goes out, all in one
//! transaction).
//!
//! Numbers: a quantity has at most 3 decimal places (stored in
//! thousandths), a discount percent at most 2 (stored in hundredths of a
//! percent). A line's total is `unit price × quantity × (1 − discount)`,
//! rounded once to whole minor units, half to even; the amount is the sum
//! of the rounded line totals.

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use crm_core::access::{principal, require_create, row_filter};
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::db_run;
use crm_core::entity::store;
use crm_core::error::{Checks, Error, Result, visible};
use crm_core::graphql::patch as mu;
use crm_core::ids;
use crm_core::schema::opportunity_line_items as li;
use crm_customers::values::Money;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::Opportunity;
use super::repo::{Opportunities, OpportunityRow};
use super::service::OpportunityFields;
use crate::products::repo as catalogue;
use crate::products::{Product, product_by_id};

/// A line item row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = li)]
pub struct LineItemRow {
    pub id: String,
    pub opportunity_id: String,
    pub product_id: String,
    pub price_book_entry_id: String,
    pub position: i64,
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
    pub currency: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

/// A new line.
#[derive(Clone, Debug)]
pub struct NewLine {
    pub price_book_entry_id: String,
    pub quantity: f64,
    pub unit_price: Option<Money>,
    pub discount_percent: Option<f64>,
}

/// Changes to a line; `None` leaves a value alone; a `unit_price` of
/// `Some(None)` goes back to the entry's price.
#[derive(Clone, Debug, Default)]
pub struct LinePatch {
    pub quantity: Option<f64>,
    pub unit_price: Option<Option<Money>>,
    pub discount_percent: Option<f64>,
}

/// One change to an opportunity's line items.
#[derive(Clone, Debug)]
pub enum LineChange {
    /// A new line at the end.
    Add(NewLine),
    /// A line changed.
    Update(String, LinePatch),
    /// A line removed.
    Remove(String),
    /// Every line replaced by these, already priced (a primary quote's
    /// lines; ids, opportunity and positions are set by the plan).
    Replace(Vec<LineItemRow>),
}

/// What a write does to the line items, decided (and validated) before
/// anything is written.
#[derive(Debug)]
pub enum Plan {
    /// Nothing.
    Keep,
    /// Insert this line.
    Insert(LineItemRow),
    /// Store this line as changed.
    Update(LineItemRow),
    /// Delete this line.
    Delete(String),
    /// Delete every line of the opportunity, then insert these.
    Replace(String, Vec<LineItemRow>),
}

/// `unit × quantity_milli / 1000 × (10000 − discount_bp) / 10000`, rounded
/// to whole minor units, half to even (exact integer arithmetic).
pub fn line_total(unit_price: i64, quantity_milli: i64, discount_bp: i64) -> i64 {
    let num =
        i128::from(unit_price) * i128::from(quantity_milli) * i128::from(10_000 - discount_bp);
    div_half_even(num, 10_000_000)
}

/// `num / den` (den > 0) rounded to a whole number, half to even.
pub fn div_half_even(num: i128, den: i128) -> i64 {
    let (q, r) = (num.div_euclid(den), num.rem_euclid(den));
    let rounded = match (2 * r).cmp(&den) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
        std::cmp::Ordering::Less => q,
    };
    i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
}

/// A decimal with at most `places` decimal places as an integer of
/// 10^-places units (VALIDATION naming `field` otherwise).
pub(crate) fn scaled(v: f64, places: i32, field: &str) -> Result<i64> {
    let f = 10f64.powi(places);
    let s = v * f;
    let r = s.round();
    if !v.is_finite() || (s - r).abs() > 1e-6 || r.abs() > 1e15 {
        return Err(Error::invalid(
            field,
            format!("must be a number with at most {places} decimal places"),
        ));
    }
    Ok(r as i64)
}

/// A quantity in thousandths (VALIDATION on `quantity`).
pub(crate) fn quantity(v: f64) -> Result<i64> {
    let q = scaled(v, 3, "quantity")?;
    if q <= 0 || q > 1_000_000_000_000 {
        return Err(Error::invalid(
            "quantity",
            "must be more than 0 and at most 1,000,000,000",
        ));
    }
    Ok(q)
}

/// A discount percent in hundredths (VALIDATION on `discountPercent`).
pub(crate) fn discount(v: f64) -> Result<i64> {
    let d = scaled(v, 2, "discountPercent")?;
    if !(0..=10_000).contains(&d) {
        return Err(Error::invalid("discountPercent", "must be 0 to 100"));
    }
    Ok(d)
}

/// A unit price override in `currency` (VALIDATION on `unitPrice`).
pub(crate) fn price(m: Money, currency: &str) -> Result<i64> {
    let m = m.checked("unitPrice")?;
    if m.currency != currency {
        return Err(Error::invalid(
            "unitPrice",
            format!("must be in the price book entry's currency, {currency}"),
        ));
    }
    Ok(m.amount_minor)
}

/// The line items of some opportunities, in position order.
pub async fn of(conn: &mut Conn<'_>, opportunity_ids: &[String]) -> Result<Vec<LineItemRow>> {
    Ok(db_run!(conn, |c| li::table
        .filter(li::opportunity_id.eq_any(opportunity_ids.to_vec()))
        .order((li::opportunity_id.asc(), li::position.asc(), li::id.asc()))
        .select(LineItemRow::as_select())
        .load(c)
        .await)?)
}

/// The opportunity a line item belongs to (NOT_FOUND without one).
pub async fn opportunity_of(conn: &mut Conn<'_>, id: &str) -> Result<String> {
    let found: Option<String> = db_run!(conn, |c| li::table
        .filter(li::id.eq(id))
        .select(li::opportunity_id)
        .first(c)
        .await
        .optional())?;
    found.ok_or_else(|| Error::NotFound(format!("opportunity line item {id}")))
}

/// Decides what `change` does to `row`'s line items, validating every
/// input (the opportunity's currency must match the entry's); returns the
/// plan and the line items after it.
pub async fn plan(
    conn: &mut Conn<'_>,
    row: &OpportunityRow,
    change: LineChange,
) -> Result<(Plan, Vec<LineItemRow>)> {
    let mut items = if row.id.is_empty() {
        Vec::new()
    } else {
        of(conn, std::slice::from_ref(&row.id)).await?
    };
    let now = ids::now();
    let plan = match change {
        LineChange::Add(n) => {
            let mut c = Checks::default();
            let entry = match catalogue::entry(conn, &n.price_book_entry_id).await? {
                Some(e) if e.active => Some(e),
                Some(_) => {
                    c.take::<()>(Err(Error::invalid(
                        "priceBookEntryId",
                        "the price book entry is deactivated",
                    )))?;
                    None
                }
                None => {
                    c.take::<()>(Err(Error::invalid(
                        "priceBookEntryId",
                        "no such price book entry",
                    )))?;
                    None
                }
            };
            if let Some(e) = &entry {
                match catalogue::product(conn, &e.product_id).await? {
                    Some(p) if p.active => {}
                    _ => {
                        c.take::<()>(Err(Error::invalid(
                            "priceBookEntryId",
                            "its product is deactivated",
                        )))?;
                    }
                }
                let currency = row
                    .currency
                    .clone()
                    .or_else(|| <[LineItemRow]>::first(&items).map(|i| i.currency.clone()));
                if let Some(cur) = currency
                    && cur != e.currency
                {
                    c.take::<()>(Err(Error::invalid(
                        "priceBookEntryId",
                        format!(
                            "is priced in {}: the opportunity's currency is {cur}",
                            e.currency
                        ),
                    )))?;
                }
            }
            let q = c.take(quantity(n.quantity))?;
            let d = c
                .take(n.discount_percent.map(discount).transpose())?
                .flatten();
            let unit = match (&entry, n.unit_price) {
                (Some(e), Some(m)) => c.take(price(m, &e.currency))?,
                (Some(e), None) => Some(e.unit_price),
                (None, _) => None,
            };
            c.finish()?;
            let (Some(e), Some(q), Some(unit)) = (entry, q, unit) else {
                return Err(Error::Internal(
                    "line item checks passed without values".into(),
                ));
            };
            let d = d.unwrap_or(0);
            let line = LineItemRow {
                id: ids::new_id("oli"),
                opportunity_id: row.id.clone(),
                product_id: e.product_id,
                price_book_entry_id: e.id,
                position: items.iter().map(|i| i.position + 1).max().unwrap_or(0),
                quantity_milli: q,
                list_price: e.unit_price,
                unit_price: unit,
                discount_bp: d,
                total: line_total(unit, q, d),
                currency: e.currency,
                created_at: now,
                updated_at: now,
                version: 1,
            };
            items.push(line.clone());
            Plan::Insert(line)
        }
        LineChange::Update(id, p) => {
            let Some(line) = items.iter_mut().find(|i| i.id == id) else {
                return Err(Error::NotFound(format!("opportunity line item {id}")));
            };
            let mut c = Checks::default();
            if let Some(q) = p.quantity
                && let Some(q) = c.take(quantity(q))?
            {
                line.quantity_milli = q;
            }
            if let Some(d) = p.discount_percent
                && let Some(d) = c.take(discount(d))?
            {
                line.discount_bp = d;
            }
            match p.unit_price {
                Some(Some(m)) => {
                    if let Some(u) = c.take(price(m, &line.currency))? {
                        line.unit_price = u;
                    }
                }
                Some(None) => line.unit_price = line.list_price,
                None => {}
            }
            c.finish()?;
            line.total = line_total(line.unit_price, line.quantity_milli, line.discount_bp);
            line.updated_at = now;
            line.version += 1;
            Plan::Update(line.clone())
        }
        LineChange::Replace(lines) => {
            items = lines
                .into_iter()
                .enumerate()
                .map(|(n, l)| LineItemRow {
                    id: ids::new_id("oli"),
                    opportunity_id: row.id.clone(),
                    position: n as i64,
                    created_at: now,
                    updated_at: now,
                    version: 1,
                    ..l
                })
                .collect();
            Plan::Replace(row.id.clone(), items.clone())
        }
        LineChange::Remove(id) => {
            if !items.iter().any(|i| i.id == id) {
                return Err(Error::NotFound(format!("opportunity line item {id}")));
            }
            items.retain(|i| i.id != id);
            Plan::Delete(id)
        }
    };
    Ok((plan, items))
}

/// Writes a plan (in the opportunity write's transaction).
pub async fn write(conn: &mut Conn<'_>, plan: Plan) -> Result<()> {
    match plan {
        Plan::Keep => {}
        Plan::Insert(row) => {
            db_run!(conn, |c| diesel::insert_into(li::table)
                .values(row.clone())
                .execute(c)
                .await)?;
        }
        Plan::Update(row) => {
            db_run!(conn, |c| diesel::update(
                li::table.filter(li::id.eq(&row.id))
            )
            .set(row.clone())
            .execute(c)
            .await)?;
        }
        Plan::Delete(id) => {
            db_run!(conn, |c| diesel::delete(li::table.filter(li::id.eq(&id)))
                .execute(c)
                .await)?;
        }
        Plan::Replace(opportunity, rows) => {
            db_run!(conn, |c| diesel::delete(
                li::table.filter(li::opportunity_id.eq(&opportunity))
            )
            .execute(c)
            .await)?;
            for row in rows {
                db_run!(conn, |c| diesel::insert_into(li::table)
                    .values(row.clone())
                    .execute(c)
                    .await)?;
            }
        }
    }
    Ok(())
}

/// A product sold on an opportunity.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct OpportunityLineItem {
    /// `oli_…`
    pub id: ID,
    /// The opportunity.
    pub opportunity_id: ID,
    /// The product.
    pub product_id: ID,
    /// The price book entry it was priced from.
    pub price_book_entry_id: ID,
    /// Order on the opportunity.
    pub position: i64,
    /// How many units (at most 3 decimal places).
    pub quantity: f64,
    /// The entry's unit price when the line was priced.
    pub list_price: Money,
    /// The unit price charged (the list price unless overridden).
    pub unit_price: Money,
    /// Discount in percent (at most 2 decimal places).
    pub discount_percent: f64,
    /// Unit price × quantity × (1 − discount), rounded half to even to
    /// whole minor units.
    pub total: Money,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

impl From<LineItemRow> for OpportunityLineItem {
    fn from(r: LineItemRow) -> Self {
        let money = |a: i64| Money {
            amount_minor: a,
            currency: r.currency.clone(),
        };
        OpportunityLineItem {
            id: r.id.clone().into(),
            opportunity_id: r.opportunity_id.clone().into(),
            product_id: r.product_id.clone().into(),
            price_book_entry_id: r.price_book_entry_id.clone().into(),
            position: r.position,
            quantity: r.quantity_milli as f64 / 1000.0,
            list_price: money(r.list_price),
            unit_price: money(r.unit_price),
            discount_percent: r.discount_bp as f64 / 100.0,
            total: money(r.total),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
        }
    }
}

#[ComplexObject]
impl OpportunityLineItem {
    /// The product (null if you may not read products).
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        visible(product_by_id(ctx, &self.product_id).await)
    }
}

/// Input for `addOpportunityLineItem`.
#[derive(InputObject)]
pub struct CreateOpportunityLineItemInput {
    /// An active entry of an active product, in the opportunity's currency
    /// (it sets the currency of an opportunity without an amount).
    pub price_book_entry_id: ID,
    /// More than 0, at most 3 decimal places.
    pub quantity: f64,
    /// Overrides the entry's unit price (same currency).
    pub unit_price: Option<Money>,
    /// 0–100, at most 2 decimal places (default 0).
    pub discount_percent: Option<f64>,
}

/// Input for `updateOpportunityLineItem`: omitted fields stay.
#[derive(InputObject)]
pub struct UpdateOpportunityLineItemInput {
    pub id: ID,
    pub quantity: Option<f64>,
    /// Null goes back to the list price.
    pub unit_price: MaybeUndefined<Money>,
    pub discount_percent: Option<f64>,
}

/// Line item mutations: each is a write of the opportunity, guarded by its
/// version, and answers with the opportunity as it is after it.
#[derive(Default)]
pub struct LineItemMutation;

impl LineItemMutation {
    async fn change(
        ctx: &Context<'_>,
        opportunity_id: &str,
        version: i64,
        change: LineChange,
    ) -> Result<Opportunity> {
        // Editing line items is updating the opportunity: both rights, and
        // the line items' scope (owned through the opportunity) picks rows.
        row_filter(ctx, "Opportunity", "update").await?;
        let verb = match change {
            LineChange::Add(_) => {
                require_create(ctx, "OpportunityLineItem")?;
                "update"
            }
            LineChange::Update(..) => "update",
            LineChange::Remove(_) | LineChange::Replace(_) => "delete",
        };
        let scope = row_filter(ctx, "OpportunityLineItem", verb).await?;
        let app = ctx.data_unchecked::<App>();
        let fields = OpportunityFields {
            line_items: Some(change),
            ..Default::default()
        };
        store::update::<Opportunities>(app, principal(ctx), &scope, opportunity_id, version, fields)
            .await?
            .try_into()
    }

    async fn owner_of(ctx: &Context<'_>, id: &str) -> Result<String> {
        ids::check(id, "oli", "id")?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        opportunity_of(&mut c.conn(), id).await
    }
}

#[Object]
impl LineItemMutation {
    /// Adds a line item to an opportunity if `opportunityVersion` is
    /// current; the opportunity's amount becomes the sum of its line items.
    async fn add_opportunity_line_item(
        &self,
        ctx: &Context<'_>,
        opportunity_id: ID,
        opportunity_version: i64,
        input: CreateOpportunityLineItemInput,
    ) -> Result<Opportunity> {
        let change = LineChange::Add(NewLine {
            price_book_entry_id: input.price_book_entry_id.0,
            quantity: input.quantity,
            unit_price: input.unit_price,
            discount_percent: input.discount_percent,
        });
        Self::change(ctx, &opportunity_id, opportunity_version, change).await
    }

    /// Changes a line item if its opportunity's `opportunityVersion` is
    /// current.
    async fn update_opportunity_line_item(
        &self,
        ctx: &Context<'_>,
        opportunity_version: i64,
        input: UpdateOpportunityLineItemInput,
    ) -> Result<Opportunity> {
        let opp = Self::owner_of(ctx, &input.id).await?;
        let change = LineChange::Update(
            input.id.0,
            LinePatch {
                quantity: input.quantity,
                unit_price: mu(input.unit_price),
                discount_percent: input.discount_percent,
            },
        );
        Self::change(ctx, &opp, opportunity_version, change).await
    }

    /// Removes a line item if its opportunity's `opportunityVersion` is
    /// current (without line items the amount is entered again; it keeps
    /// the last sum until then).
    async fn remove_opportunity_line_item(
        &self,
        ctx: &Context<'_>,
        id: ID,
        opportunity_version: i64,
    ) -> Result<Opportunity> {
        let opp = Self::owner_of(ctx, &id).await?;
        Self::change(ctx, &opp, opportunity_version, LineChange::Remove(id.0)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_round_half_to_even_per_line() {
        // 19.99 × 2.5 = 49.975 → 49.98 (4997.5 minor: 4998 is even).
        assert_eq!(line_total(1999, 2500, 0), 4998);
        // 10.01 × 0.5 = 5.005 → 5.00 (500.5: 500 is even).
        assert_eq!(line_total(1001, 500, 0), 500);
        // 9.99 × 1 − 50 % = 4.995 → 5.00 (499.5: 500 is even).
        assert_eq!(line_total(999, 1000, 5000), 500);
        // 12.35 × 3 − 12.5 % = 32.41875 → 32.42.
        assert_eq!(line_total(1235, 3000, 1250), 3242);
        // 0.01 × 0.001 → 0.
        assert_eq!(line_total(1, 1, 0), 0);
        assert_eq!(line_total(1000, 3000, 10_000), 0);
    }

    #[test]
    fn decimals_are_checked() {
        assert_eq!(quantity(2.5).unwrap(), 2500);
        assert_eq!(quantity(0.001).unwrap(), 1);
        assert!(quantity(0.0005).is_err());
        assert!(quantity(0.0).is_err());
        assert_eq!(discount(12.5).unwrap(), 1250);
        assert!(discount(100.01).is_err());
        assert!(discount(1.234).is_err());
    }
}
