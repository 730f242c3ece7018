//! Quotes: an offer for an opportunity, numbered `Q-<year>-<nnnnn>` per
//! year without gaps, revised rather than changed once sent, moving DRAFT
//! → SENT → ACCEPTED / REJECTED / EXPIRED. GraphQL types, queries and
//! mutations here; lists, fetch and writes are the entity kit's (owned
//! through the opportunity, like its line items); the rules are the hooks
//! in [`service`]; [`expiry`] expires SENT quotes past their date once
//! across replicas; [`document`] renders the printable `GET /quotes/{id}`.

pub mod document;
pub mod expiry;
pub mod repo;
pub mod service;

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, NaiveDate, Utc};
use crm_core::access::{principal, require_create, row_filter};
use crm_core::app::App;
use crm_core::entity::resolve::{self, Paging, Sorting};
use crm_core::entity::sql::Bind;
use crm_core::entity::{Cond, ListQuery, WriteCtx, store};
use crm_core::error::{Error, Result, visible};
use crm_core::graphql::patch as mu;
use crm_core::paging::{Direction, Page};
use crm_customers::accounts::{Account, account_by_id};
use crm_customers::values::{Address, Money};

use self::repo::{QuoteOrderField, QuoteRow, Quotes};
use self::service::{QuoteFields, money_of};
use crate::opportunities::line_items::NewLine;
use crate::opportunities::{Opportunity, opportunity_by_id};
use crate::products::{Product, product_by_id};
use crate::values::{self, QuoteStatus};

/// An offer to a customer for an opportunity.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Quote {
    /// `quo_…`
    pub id: ID,
    /// `Q-2026-00042`: one per quote, kept by its revisions.
    pub number: String,
    /// 1, then one more for each revision.
    pub revision: i64,
    /// The revision this one was made from.
    pub revised_from_id: Option<ID>,
    /// The opportunity it is for.
    pub opportunity_id: ID,
    /// The opportunity's account.
    pub account_id: ID,
    /// Title (the opportunity's name unless given).
    pub name: String,
    /// DRAFT, SENT, ACCEPTED, REJECTED or EXPIRED.
    pub status: QuoteStatus,
    /// Valid through this day (UTC); a SENT quote expires after it.
    pub valid_until: NaiveDate,
    /// What is offered, in order.
    pub line_items: Vec<QuoteLineItem>,
    /// Sum of the line totals (null without lines).
    pub subtotal: Option<Money>,
    /// Discount on the subtotal in percent (at most 2 decimal places).
    pub discount_percent: f64,
    /// Subtotal × discount percent, rounded half to even.
    pub discount: Option<Money>,
    /// Tax in percent of subtotal − discount (at most 2 decimal places).
    pub tax_percent: f64,
    /// (Subtotal − discount) × tax percent, rounded half to even.
    pub tax: Option<Money>,
    /// Subtotal − discount + tax.
    pub total: Option<Money>,
    /// Billing address (the account's when the quote was made).
    pub billing_address: Option<Address>,
    /// Shipping address (the account's when the quote was made).
    pub shipping_address: Option<Address>,
    /// Terms and notes printed on the quote.
    pub terms: Option<String>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was accepted, rejected or expired.
    pub decided_at: Option<DateTime<Utc>>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

/// One product offered on a quote (priced like an opportunity's line
/// item: unit price × quantity × (1 − discount), rounded half to even).
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct QuoteLineItem {
    /// `qli_…`
    pub id: ID,
    /// The product.
    pub product_id: ID,
    /// The price book entry it was priced from.
    pub price_book_entry_id: ID,
    /// Order on the quote.
    pub position: i64,
    /// How many units (at most 3 decimal places).
    pub quantity: f64,
    /// The entry's unit price when the line was priced.
    pub list_price: Money,
    /// The unit price charged (the list price unless overridden).
    pub unit_price: Money,
    /// Discount in percent (at most 2 decimal places).
    pub discount_percent: f64,
    /// Unit price × quantity × (1 − discount), rounded half to even.
    pub total: Money,
}

impl TryFrom<QuoteRow> for Quote {
    type Error = Error;

    fn try_from(r: QuoteRow) -> Result<Self> {
        let currency = r.currency.clone().unwrap_or_default();
        let m = |a: i64| Money {
            amount_minor: a,
            currency: currency.clone(),
        };
        let line_items = repo::lines_of(&r)?
            .into_iter()
            .enumerate()
            .map(|(n, l)| QuoteLineItem {
                id: l.id.into(),
                product_id: l.product_id.into(),
                price_book_entry_id: l.price_book_entry_id.into(),
                position: n as i64,
                quantity: l.quantity_milli as f64 / 1000.0,
                list_price: m(l.list_price),
                unit_price: m(l.unit_price),
                discount_percent: l.discount_bp as f64 / 100.0,
                total: m(l.total),
            })
            .collect();
        let addr = |a: &Option<String>| a.as_deref().and_then(|a| serde_json::from_str(a).ok());
        Ok(Quote {
            id: r.id.clone().into(),
            number: r.number.clone(),
            revision: r.revision,
            revised_from_id: r.revised_from.clone().map(Into::into),
            opportunity_id: r.opportunity_id.clone().into(),
            account_id: r.account_id.clone().into(),
            name: r.name.clone(),
            status: QuoteStatus::from_stored(&r.status)?,
            valid_until: values::parse_date(&r.valid_until)?,
            line_items,
            subtotal: money_of(r.subtotal, &r.currency),
            discount_percent: r.discount_bp as f64 / 100.0,
            discount: money_of(r.discount, &r.currency),
            tax_percent: r.tax_bp as f64 / 100.0,
            tax: money_of(r.tax, &r.currency),
            total: money_of(r.total, &r.currency),
            billing_address: addr(&r.billing_address),
            shipping_address: addr(&r.shipping_address),
            terms: r.terms,
            sent_at: r.sent_at.map(|t| t.and_utc()),
            decided_at: r.decided_at.map(|t| t.and_utc()),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        })
    }
}

#[ComplexObject]
impl Quote {
    /// The opportunity (null if you may not see it).
    async fn opportunity(&self, ctx: &Context<'_>) -> Result<Option<Opportunity>> {
        visible(opportunity_by_id(ctx, &self.opportunity_id).await)
    }

    /// The account (null if you may not see it).
    async fn account(&self, ctx: &Context<'_>) -> Result<Option<Account>> {
        visible(account_by_id(ctx, &self.account_id).await)
    }

    /// Whether it is its opportunity's primary quote (whose lines are the
    /// opportunity's line items).
    async fn is_primary(&self, ctx: &Context<'_>) -> Result<bool> {
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let opp = store::get::<crate::opportunities::repo::Opportunities>(
            &mut c.conn(),
            &crm_core::access::RowFilter::All,
            &self.opportunity_id,
        )
        .await?;
        Ok(opp.and_then(|o| o.primary_quote_id).as_deref() == Some(self.id.as_str()))
    }
}

#[ComplexObject]
impl QuoteLineItem {
    /// The product (null if you may not read products).
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        visible(product_by_id(ctx, &self.product_id).await)
    }
}

/// Filter for `quotes`; all given conditions must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct QuoteFilterInput {
    /// For this opportunity.
    pub opportunity_id: Option<ID>,
    /// For this account.
    pub account_id: Option<ID>,
    /// In one of these statuses.
    pub status: Option<Vec<QuoteStatus>>,
    /// With this number (every revision).
    pub number: Option<String>,
    /// Number or name contains this text.
    pub search: Option<String>,
}

impl QuoteFilterInput {
    /// The list conditions of this filter.
    pub(crate) fn to_query(&self) -> ListQuery {
        let mut conds = Vec::new();
        if let Some(v) = &self.opportunity_id {
            conds.push(Cond::Eq("opportunity_id", v.0.as_str().into()));
        }
        if let Some(v) = &self.account_id {
            conds.push(Cond::Eq("account_id", v.0.as_str().into()));
        }
        if let Some(v) = &self.status {
            conds.push(Cond::In(
                "status",
                v.iter().map(|s| Bind::from(s.as_str())).collect(),
            ));
        }
        if let Some(v) = &self.number {
            conds.push(Cond::Eq("number", v.as_str().into()));
        }
        ListQuery {
            conds,
            search: self.search.clone(),
            ..Default::default()
        }
    }
}

/// Ordering for `quotes`.
#[derive(InputObject, Default)]
pub struct QuoteOrder {
    /// Sort key.
    #[graphql(default)]
    pub field: QuoteOrderField,
    /// Direction.
    #[graphql(default)]
    pub direction: Direction,
}

/// One line of a quote as entered.
#[derive(InputObject, Clone)]
pub struct QuoteLineInput {
    /// An active entry of an active product; every line of a quote in one
    /// currency.
    pub price_book_entry_id: ID,
    /// More than 0, at most 3 decimal places.
    pub quantity: f64,
    /// Overrides the entry's unit price (same currency).
    pub unit_price: Option<Money>,
    /// 0–100, at most 2 decimal places (default 0).
    pub discount_percent: Option<f64>,
}

fn new_lines(v: Vec<QuoteLineInput>) -> Vec<NewLine> {
    v.into_iter()
        .map(|l| NewLine {
            price_book_entry_id: l.price_book_entry_id.0,
            quantity: l.quantity,
            unit_price: l.unit_price,
            discount_percent: l.discount_percent,
        })
        .collect()
}

/// Input for `createQuote`.
#[derive(InputObject)]
pub struct CreateQuoteInput {
    /// An opportunity you may see (the quote's account is its account).
    pub opportunity_id: ID,
    /// Default: the opportunity's name.
    pub name: Option<String>,
    /// Default: 30 days from today; today or later.
    pub valid_until: Option<NaiveDate>,
    /// The lines, in order.
    pub lines: Option<Vec<QuoteLineInput>>,
    /// 0–100, at most 2 decimal places (default 0).
    pub discount_percent: Option<f64>,
    /// 0–100, at most 2 decimal places (default 0).
    pub tax_percent: Option<f64>,
    /// Default: the account's address.
    pub billing_address: Option<Address>,
    /// Default: the account's address.
    pub shipping_address: Option<Address>,
    pub terms: Option<String>,
}

/// Input for `updateQuote` (a DRAFT quote only): omitted fields stay,
/// null clears; `lines` replaces every line.
#[derive(InputObject)]
pub struct UpdateQuoteInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    pub valid_until: Option<NaiveDate>,
    pub lines: Option<Vec<QuoteLineInput>>,
    pub discount_percent: Option<f64>,
    pub tax_percent: Option<f64>,
    pub billing_address: MaybeUndefined<Address>,
    pub shipping_address: MaybeUndefined<Address>,
    pub terms: MaybeUndefined<String>,
}

/// One page of quotes in the caller's scope.
pub async fn list(
    ctx: &Context<'_>,
    page: Paging,
    filter: QuoteFilterInput,
    order: QuoteOrder,
) -> Result<Page<Quote>> {
    let sorting = Sorting::by(order.field.column(), order.direction);
    resolve::list::<Quotes, _>(ctx, page, filter.to_query(), sorting, Quote::try_from).await
}

/// Quote queries.
#[derive(Default)]
pub struct QuoteQuery;

#[Object]
impl QuoteQuery {
    /// Quotes you may see (those of the opportunities you may see): an
    /// account's with `filter: {accountId}`, a deal's with
    /// `filter: {opportunityId}`.
    #[allow(clippy::too_many_arguments)]
    async fn quotes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<QuoteFilterInput>,
        order_by: Option<QuoteOrder>,
    ) -> Result<Page<Quote>> {
        let page = Paging {
            first,
            after,
            last,
            before,
        };
        list(
            ctx,
            page,
            filter.unwrap_or_default(),
            order_by.unwrap_or_default(),
        )
        .await
    }

    /// One quote (NOT_FOUND if outside your scope).
    async fn quote(&self, ctx: &Context<'_>, id: ID) -> Result<Quote> {
        resolve::get::<Quotes>(ctx, &id).await?.try_into()
    }
}

/// Quote mutations.
#[derive(Default)]
pub struct QuoteMutation;

#[Object]
impl QuoteMutation {
    /// Creates a DRAFT quote for an opportunity you may see, numbered
    /// with the year's next number.
    async fn create_quote(&self, ctx: &Context<'_>, input: CreateQuoteInput) -> Result<Quote> {
        let fields = QuoteFields {
            opportunity_id: Some(input.opportunity_id.0),
            name: input.name,
            valid_until: input.valid_until,
            lines: input.lines.map(new_lines),
            discount_percent: input.discount_percent,
            tax_percent: input.tax_percent,
            billing_address: input.billing_address.map(Some),
            shipping_address: input.shipping_address.map(Some),
            terms: input.terms.map(Some),
            ..Default::default()
        };
        resolve::create::<Quotes>(ctx, fields).await?.try_into()
    }

    /// Changes a DRAFT quote in your scope if `version` is current.
    async fn update_quote(&self, ctx: &Context<'_>, input: UpdateQuoteInput) -> Result<Quote> {
        let fields = QuoteFields {
            name: input.name,
            valid_until: input.valid_until,
            lines: input.lines.map(new_lines),
            discount_percent: input.discount_percent,
            tax_percent: input.tax_percent,
            billing_address: mu(input.billing_address),
            shipping_address: mu(input.shipping_address),
            terms: mu(input.terms),
            ..Default::default()
        };
        resolve::update::<Quotes>(ctx, &input.id, input.version, fields)
            .await?
            .try_into()
    }

    /// Moves a quote on if `version` is current: DRAFT → SENT (with lines,
    /// still valid), SENT → ACCEPTED (still valid), REJECTED or EXPIRED.
    /// Any other move is a VALIDATION naming both statuses.
    async fn set_quote_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
        status: QuoteStatus,
    ) -> Result<Quote> {
        let fields = QuoteFields {
            status: Some(status),
            ..Default::default()
        };
        resolve::update::<Quotes>(ctx, &id, version, fields)
            .await?
            .try_into()
    }

    /// Makes a new DRAFT revision of a quote that is no longer a draft
    /// (the same number, the next revision, the same content); the
    /// original stays as it is.
    async fn revise_quote(&self, ctx: &Context<'_>, id: ID) -> Result<Quote> {
        crm_core::ids::check(&id, repo::DEF.prefix, "id")?;
        let src = resolve::get::<Quotes>(ctx, &id).await?;
        let fields = QuoteFields {
            revision_of: Some(src),
            ..Default::default()
        };
        resolve::create::<Quotes>(ctx, fields).await?.try_into()
    }

    /// Makes a quote its opportunity's primary one if the opportunity's
    /// `opportunityVersion` is current: the opportunity's line items become
    /// the quote's lines and its amount their sum, in one transaction.
    async fn make_quote_primary(
        &self,
        ctx: &Context<'_>,
        id: ID,
        opportunity_version: i64,
    ) -> Result<Opportunity> {
        crm_core::ids::check(&id, repo::DEF.prefix, "id")?;
        let read = row_filter(ctx, "Quote", "read").await?;
        let scope = row_filter(ctx, "Opportunity", "update").await?;
        require_create(ctx, "OpportunityLineItem")?;
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        let w = WriteCtx {
            app,
            by,
            creating: false,
            owner_given: true,
        };
        let mut tx = app.db.begin().await?;
        let q = store::fetch::<Quotes>(&mut tx.conn(), &read, &id).await?;
        let opp = service::make_primary(&mut tx, &w, &scope, &q, opportunity_version).await?;
        app.commit(tx).await?;
        opp.try_into()
    }
}
