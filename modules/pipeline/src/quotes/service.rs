//! The rules of a quote, as the entity kit's hooks: it is for an
//! opportunity the writer may read (its account and the account's address
//! are taken from it); its lines are priced from active price book
//! entries with the opportunity line items' arithmetic; its status moves
//! DRAFT → SENT → ACCEPTED / REJECTED / EXPIRED and nothing else; only a
//! DRAFT changes content, and an ACCEPTED quote takes no write at all (a
//! revision is a new DRAFT record with the same number); the number is
//! taken from the year's counter just before the row is stored
//! (`before_insert`), so dry runs and failed writes use none.

use chrono::{Datelike, Duration, NaiveDate, Utc};
use crm_core::access::{RowFilter, row_filter_or_nothing};
use crm_core::db::{Conn, Tx};
use crm_core::entity::{Def, Entity, WriteCtx, store};
use crm_core::error::{Checks, Error, FieldError, Result};
use crm_core::ids;
use crm_customers::accounts::repo::Accounts;
use crm_customers::values::{Address, Money, opt_text, req_text};
use serde_json::{Map, Value, json};

use super::repo::{self, QuoteLine, QuoteRow, Quotes};
use crate::opportunities::line_items::{self, LineChange, LineItemRow, NewLine};
use crate::opportunities::repo::Opportunities;
use crate::opportunities::service::OpportunityFields;
use crate::products::repo as catalogue;
use crate::values::{self, QuoteStatus};

/// Days a new quote is valid for unless the writer says otherwise.
pub const DEFAULT_VALID_DAYS: i64 = 30;

/// Most lines on one quote.
pub const MAX_LINES: usize = 200;

/// Fields of a quote as entered; `None` leaves a field alone on update,
/// `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct QuoteFields {
    /// On create: the opportunity (required).
    pub opportunity_id: Option<String>,
    pub name: Option<String>,
    pub valid_until: Option<NaiveDate>,
    /// Every line, replacing the current ones.
    pub lines: Option<Vec<NewLine>>,
    pub discount_percent: Option<f64>,
    pub tax_percent: Option<f64>,
    pub billing_address: Option<Option<Address>>,
    pub shipping_address: Option<Option<Address>>,
    pub terms: Option<Option<String>>,
    /// A status move.
    pub status: Option<QuoteStatus>,
    /// On create: make a new revision of this quote (fetched in the
    /// writer's scope) instead of a new quote.
    pub revision_of: Option<QuoteRow>,
}

impl QuoteFields {
    /// The content fields given (the names a non-DRAFT quote refuses).
    fn content(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (given, name) in [
            (self.name.is_some(), "name"),
            (self.valid_until.is_some(), "validUntil"),
            (self.lines.is_some(), "lines"),
            (self.discount_percent.is_some(), "discountPercent"),
            (self.tax_percent.is_some(), "taxPercent"),
            (self.billing_address.is_some(), "billingAddress"),
            (self.shipping_address.is_some(), "shippingAddress"),
            (self.terms.is_some(), "terms"),
        ] {
            if given {
                out.push(name);
            }
        }
        out
    }
}

/// Money of a quote as it appears in snapshots and the API.
fn money(amount: i64, currency: &Option<String>) -> Value {
    match currency {
        Some(c) => json!({"amountMinor": amount, "currency": c}),
        None => Value::Null,
    }
}

fn address(v: &Option<String>) -> Value {
    v.as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or(Value::Null)
}

/// The public fields of a quote, for audit diffs and events (keys are
/// `Quote` field names, so field rules apply to them). Lines appear
/// without their prices and totals (`QuoteLineItem` fields a role may not
/// read); the quote's sums are fields of their own.
pub fn snapshot(r: &QuoteRow) -> Value {
    let lines: Vec<Value> = repo::lines_of(r)
        .unwrap_or_default()
        .iter()
        .map(|l| {
            json!({
                "id": l.id,
                "productId": l.product_id,
                "priceBookEntryId": l.price_book_entry_id,
                "quantity": l.quantity_milli as f64 / 1000.0,
                "discountPercent": l.discount_bp as f64 / 100.0,
            })
        })
        .collect();
    json!({
        "number": r.number,
        "revision": r.revision,
        "revisedFromId": r.revised_from,
        "opportunityId": r.opportunity_id,
        "accountId": r.account_id,
        "name": r.name,
        "status": r.status,
        "validUntil": r.valid_until,
        "lineItems": lines,
        "subtotal": money(r.subtotal, &r.currency),
        "discountPercent": r.discount_bp as f64 / 100.0,
        "discount": money(r.discount, &r.currency),
        "taxPercent": r.tax_bp as f64 / 100.0,
        "tax": money(r.tax, &r.currency),
        "total": money(r.total, &r.currency),
        "billingAddress": address(&r.billing_address),
        "shippingAddress": address(&r.shipping_address),
        "terms": r.terms,
        "sentAt": r.sent_at,
        "decidedAt": r.decided_at,
    })
}

/// Today (UTC).
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Recomputes the sums of `row` from its lines: subtotal = Σ line totals;
/// discount = subtotal × discount %, tax = (subtotal − discount) × tax %,
/// each rounded once to whole minor units, half to even; total =
/// subtotal − discount + tax.
pub fn recompute(row: &mut QuoteRow, lines: &[QuoteLine]) {
    row.subtotal = lines.iter().map(|l| l.total).sum();
    row.discount = line_items::div_half_even(
        i128::from(row.subtotal) * i128::from(row.discount_bp),
        10_000,
    );
    row.tax = line_items::div_half_even(
        i128::from(row.subtotal - row.discount) * i128::from(row.tax_bp),
        10_000,
    );
    row.total = row.subtotal - row.discount + row.tax;
}

/// Prefixes the fields of a validation error with `lines.<n>.`.
fn in_line(n: usize, e: Error) -> Error {
    match e {
        Error::Validation(fs) => Error::Validation(
            fs.into_iter()
                .map(|f| FieldError {
                    field: format!("lines.{n}.{}", f.field),
                    message: f.message,
                })
                .collect(),
        ),
        other => other,
    }
}

/// Prices one line (an active entry of an active product, in `currency`
/// when the quote has one); sets `currency` from the first line.
async fn price_line(
    conn: &mut Conn<'_>,
    n: usize,
    input: NewLine,
    currency: &mut Option<String>,
) -> Result<QuoteLine> {
    let mut c = Checks::default();
    let bad = |m: &str| in_line(n, Error::invalid("priceBookEntryId", m));
    let entry = match catalogue::entry(conn, &input.price_book_entry_id).await? {
        Some(e) if e.active => Some(e),
        Some(_) => {
            c.take::<()>(Err(bad("the price book entry is deactivated")))?;
            None
        }
        None => {
            c.take::<()>(Err(bad("no such price book entry")))?;
            None
        }
    };
    if let Some(e) = &entry {
        if !matches!(catalogue::product(conn, &e.product_id).await?, Some(p) if p.active) {
            c.take::<()>(Err(bad("its product is deactivated")))?;
        }
        match currency {
            Some(cur) if *cur != e.currency => {
                c.take::<()>(Err(bad(&format!(
                    "is priced in {}: the quote's currency is {cur}",
                    e.currency
                ))))?;
            }
            Some(_) => {}
            None => *currency = Some(e.currency.clone()),
        }
    }
    let q = c.take(line_items::quantity(input.quantity).map_err(|e| in_line(n, e)))?;
    let d = c
        .take(
            input
                .discount_percent
                .map(line_items::discount)
                .transpose()
                .map_err(|e| in_line(n, e)),
        )?
        .flatten()
        .unwrap_or(0);
    let unit = match (&entry, input.unit_price) {
        (Some(e), Some(m)) => {
            c.take(line_items::price(m, &e.currency).map_err(|e| in_line(n, e)))?
        }
        (Some(e), None) => Some(e.unit_price),
        (None, _) => None,
    };
    c.finish()?;
    let (Some(e), Some(q), Some(unit)) = (entry, q, unit) else {
        return Err(Error::Internal(
            "quote line checks passed without values".into(),
        ));
    };
    Ok(QuoteLine {
        id: ids::new_id("qli"),
        product_id: e.product_id,
        price_book_entry_id: e.id,
        quantity_milli: q,
        list_price: e.unit_price,
        unit_price: unit,
        discount_bp: d,
        total: line_items::line_total(unit, q, d),
    })
}

fn percent(v: f64, field: &str) -> Result<i64> {
    let bp = line_items::scaled(v, 2, field)?;
    if !(0..=10_000).contains(&bp) {
        return Err(Error::invalid(field, "must be 0 to 100"));
    }
    Ok(bp)
}

fn store_address(a: Option<Address>) -> Option<String> {
    a.and_then(|a| serde_json::to_string(&a).ok())
}

/// A new revision of `src`: its content, the same number, the next
/// revision, DRAFT.
async fn revise(conn: &mut Conn<'_>, row: &mut QuoteRow, src: QuoteRow) -> Result<()> {
    let status = QuoteStatus::from_stored(&src.status)?;
    if status == QuoteStatus::Draft {
        return Err(Error::invalid(
            "id",
            "a DRAFT quote is changed, not revised",
        ));
    }
    let lines: Vec<QuoteLine> = repo::lines_of(&src)?
        .into_iter()
        .map(|l| QuoteLine {
            id: ids::new_id("qli"),
            ..l
        })
        .collect();
    let min_valid = values::store_date(today());
    *row = QuoteRow {
        id: row.id.clone(),
        revision: repo::last_revision(conn, &src.number).await? + 1,
        revised_from: Some(src.id.clone()),
        status: QuoteStatus::Draft.as_str().into(),
        valid_until: if src.valid_until < min_valid {
            values::store_date(today() + Duration::days(DEFAULT_VALID_DAYS))
        } else {
            src.valid_until.clone()
        },
        lines: serde_json::to_string(&lines).map_err(|e| Error::Internal(e.to_string()))?,
        sent_at: None,
        decided_at: None,
        created_at: row.created_at,
        updated_at: row.updated_at,
        version: row.version,
        ..src
    };
    Ok(())
}

/// Applies `f` to `row`, validating every field; collects all problems.
async fn apply(
    w: &WriteCtx<'_>,
    conn: &mut Conn<'_>,
    row: &mut QuoteRow,
    f: QuoteFields,
) -> Result<()> {
    if w.creating
        && let Some(src) = f.revision_of.clone()
    {
        return revise(conn, row, src).await;
    }
    let (app, by) = (w.app, w.by);
    let from = if w.creating {
        QuoteStatus::Draft
    } else {
        QuoteStatus::from_stored(&row.status)?
    };
    if !w.creating && from == QuoteStatus::Accepted {
        return Err(Error::invalid(
            "status",
            format!(
                "quote {} revision {} is ACCEPTED and cannot change: revise it",
                row.number, row.revision
            ),
        ));
    }
    if !w.creating && from != QuoteStatus::Draft {
        let mut c = Checks::default();
        for field in f.content() {
            c.take::<()>(Err(Error::invalid(
                field,
                format!(
                    "changes only while the quote is DRAFT (it is {}): revise it",
                    from.as_str()
                ),
            )))?;
        }
        c.finish()?;
    }
    let mut c = Checks::default();
    if w.creating {
        // The opportunity must be one the writer may read; its account
        // (and that account's address, if the writer may read it) come
        // with it.
        let missing = || Error::invalid("opportunityId", "no such opportunity");
        let opp = match &f.opportunity_id {
            None => {
                c.take::<()>(Err(Error::invalid("opportunityId", "is required")))?;
                None
            }
            Some(id) if ids::check(id, "opp", "opportunityId").is_err() => {
                c.take::<()>(Err(missing()))?;
                None
            }
            Some(id) => {
                let scope = row_filter_or_nothing(app, by, "Opportunity", "read").await?;
                let found = store::get::<Opportunities>(conn, &scope, id).await?;
                if found.is_none() {
                    c.take::<()>(Err(missing()))?;
                }
                found
            }
        };
        if let Some(o) = opp {
            row.opportunity_id = o.id.clone();
            row.account_id = o.account_id.clone();
            row.name = o.name.clone();
            let scope = row_filter_or_nothing(app, by, "Account", "read").await?;
            if let Some(a) = store::get::<Accounts>(conn, &scope, &o.account_id).await? {
                row.billing_address = a.address.clone();
                row.shipping_address = a.address;
            }
        }
        row.status = QuoteStatus::Draft.as_str().into();
        row.revision = 1;
        row.valid_until = values::store_date(today() + Duration::days(DEFAULT_VALID_DAYS));
    }
    if let Some(v) = &f.name
        && let Some(v) = c.take(req_text(v, 200, "name"))?
    {
        row.name = v;
    }
    if let Some(d) = f.valid_until {
        if d < today() {
            c.take::<()>(Err(Error::invalid("validUntil", "must be today or later")))?;
        } else {
            row.valid_until = values::store_date(d);
        }
    }
    if let Some(v) = f.terms.clone()
        && let Some(v) = c.take(opt_text(v, 5000, "terms"))?
    {
        row.terms = v;
    }
    if let Some(a) = f.billing_address.clone() {
        row.billing_address = store_address(a);
    }
    if let Some(a) = f.shipping_address.clone() {
        row.shipping_address = store_address(a);
    }
    if let Some(v) = f.discount_percent
        && let Some(v) = c.take(percent(v, "discountPercent"))?
    {
        row.discount_bp = v;
    }
    if let Some(v) = f.tax_percent
        && let Some(v) = c.take(percent(v, "taxPercent"))?
    {
        row.tax_bp = v;
    }
    let mut lines = repo::lines_of(row)?;
    if let Some(new) = f.lines.clone() {
        if new.len() > MAX_LINES {
            c.take::<()>(Err(Error::invalid(
                "lines",
                format!("at most {MAX_LINES} lines"),
            )))?;
        } else {
            // Every line in one currency: the first line's (a quote
            // without lines has none yet).
            let mut currency = None;
            let mut priced = Vec::with_capacity(new.len());
            for (n, l) in new.into_iter().enumerate() {
                if let Some(l) = c.take(price_line(conn, n, l, &mut currency).await)? {
                    priced.push(l);
                }
            }
            row.currency = currency;
            lines = priced;
        }
    }
    if let Some(to) = f.status
        && to != from
    {
        if !from.may_become(to) {
            c.take::<()>(Err(Error::invalid(
                "status",
                format!(
                    "a quote cannot go from {} to {}",
                    from.as_str(),
                    to.as_str()
                ),
            )))?;
        } else {
            let today = values::store_date(today());
            match to {
                QuoteStatus::Sent if lines.is_empty() => {
                    c.take::<()>(Err(Error::invalid(
                        "status",
                        "a quote without lines cannot be SENT",
                    )))?;
                }
                QuoteStatus::Sent | QuoteStatus::Accepted if row.valid_until < today => {
                    c.take::<()>(Err(Error::invalid(
                        "status",
                        format!(
                            "the quote was valid until {}: it cannot become {}",
                            row.valid_until,
                            to.as_str()
                        ),
                    )))?;
                }
                _ => {}
            }
            row.status = to.as_str().into();
            match to {
                QuoteStatus::Sent => row.sent_at = Some(ids::now()),
                QuoteStatus::Accepted | QuoteStatus::Rejected | QuoteStatus::Expired => {
                    row.decided_at = Some(ids::now())
                }
                QuoteStatus::Draft => {}
            }
        }
    }
    c.finish()?;
    recompute(row, &lines);
    row.lines = serde_json::to_string(&lines).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(())
}

/// The opportunity line items a quote's lines become.
pub fn as_line_items(q: &QuoteRow) -> Result<Vec<LineItemRow>> {
    let currency = q.currency.clone().unwrap_or_default();
    let now = ids::now();
    Ok(repo::lines_of(q)?
        .into_iter()
        .map(|l| LineItemRow {
            id: String::new(),
            opportunity_id: q.opportunity_id.clone(),
            product_id: l.product_id,
            price_book_entry_id: l.price_book_entry_id,
            position: 0,
            quantity_milli: l.quantity_milli,
            list_price: l.list_price,
            unit_price: l.unit_price,
            discount_bp: l.discount_bp,
            total: l.total,
            currency: currency.clone(),
            created_at: now,
            updated_at: now,
            version: 1,
        })
        .collect())
}

/// Makes `q` its opportunity's primary quote in `tx`: the opportunity
/// (in `scope`, at `version`, through the kit: version CONFLICT, history,
/// `opportunity.updated`) names it, its line items become the quote's
/// lines and its amount their sum.
pub async fn make_primary(
    tx: &mut Tx,
    w: &WriteCtx<'_>,
    scope: &RowFilter,
    q: &QuoteRow,
    version: i64,
) -> Result<crate::opportunities::repo::OpportunityRow> {
    let fields = OpportunityFields {
        primary_quote_id: Some(q.id.clone()),
        line_items: Some(LineChange::Replace(as_line_items(q)?)),
        ..Default::default()
    };
    store::update_in::<Opportunities>(tx, w.app, w.by, scope, &q.opportunity_id, version, fields)
        .await
}

impl Entity for Quotes {
    const DEF: Def = repo::DEF;
    type Row = QuoteRow;
    type Fields = QuoteFields;

    fn snapshot(row: &QuoteRow) -> Value {
        snapshot(row)
    }

    fn blank() -> QuoteRow {
        let now = ids::now();
        QuoteRow {
            id: String::new(),
            number: String::new(),
            revision: 1,
            revised_from: None,
            opportunity_id: String::new(),
            account_id: String::new(),
            name: String::new(),
            status: QuoteStatus::Draft.as_str().into(),
            valid_until: values::store_date(today() + Duration::days(DEFAULT_VALID_DAYS)),
            currency: None,
            lines: "[]".into(),
            subtotal: 0,
            discount_bp: 0,
            discount: 0,
            tax_bp: 0,
            tax: 0,
            total: 0,
            billing_address: None,
            shipping_address: None,
            terms: None,
            sent_at: None,
            decided_at: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// A status move is `quote.sent`, `quote.accepted`, `quote.rejected`
    /// or `quote.expired`; anything else `quote.updated`.
    fn update_action(before: &QuoteRow, after: &QuoteRow) -> &'static str {
        if before.status == after.status {
            return "updated";
        }
        match QuoteStatus::from_stored(&after.status) {
            Ok(QuoteStatus::Sent) => "sent",
            Ok(QuoteStatus::Accepted) => "accepted",
            Ok(QuoteStatus::Rejected) => "rejected",
            Ok(QuoteStatus::Expired) => "expired",
            _ => "updated",
        }
    }

    /// Subscribers can follow one deal's or one account's quotes.
    fn event_context(r: &QuoteRow) -> Option<Map<String, Value>> {
        Some(Map::from_iter([
            ("opportunityId".into(), json!(r.opportunity_id)),
            ("accountId".into(), json!(r.account_id)),
        ]))
    }

    /// And one pipeline's (`pipelineEvents(pipelineId:)`): the pipeline of
    /// the quote's opportunity.
    async fn event_context_read(conn: &mut Conn<'_>, r: &QuoteRow) -> Result<Map<String, Value>> {
        crate::opportunities::repo::pipeline_context(conn, &r.opportunity_id).await
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut QuoteRow,
        f: QuoteFields,
    ) -> Result<()> {
        apply(w, conn, row, f).await
    }

    /// A new quote's number: the next of the current year (UTC); a
    /// revision keeps its quote's.
    async fn before_insert(
        _w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut QuoteRow,
    ) -> Result<()> {
        if row.number.is_empty() {
            row.number = repo::next_number(conn, Utc::now().year()).await?;
        }
        Ok(())
    }

    /// A primary quote's changed lines become its opportunity's line items
    /// in the same transaction (at the opportunity's current version).
    async fn after_write(
        w: &WriteCtx<'_>,
        tx: &mut Tx,
        before: Option<&QuoteRow>,
        after: &QuoteRow,
    ) -> Result<()> {
        let Some(before) = before else {
            return Ok(());
        };
        if before.lines == after.lines {
            return Ok(());
        }
        let opp =
            store::get::<Opportunities>(&mut tx.conn(), &RowFilter::All, &after.opportunity_id)
                .await?;
        if let Some(o) = opp
            && o.primary_quote_id.as_deref() == Some(after.id.as_str())
        {
            make_primary(tx, w, &RowFilter::All, after, o.version).await?;
        }
        Ok(())
    }
}

/// Amounts as `Money` (None until the quote has a currency).
pub fn money_of(amount: i64, currency: &Option<String>) -> Option<Money> {
    currency.as_ref().map(|c| Money {
        amount_minor: amount,
        currency: c.clone(),
    })
}
