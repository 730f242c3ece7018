//! Purchases: order history per account (and contact), written by
//! integrators' ERP or shop sync with an idempotency key, so a re-sent order
//! is stored once. A purchase belongs to its account's owner for row scope.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDateTime, Utc};
use crm_core::access::{Principal, RowFilter, principal, require_create, row_filter};
use crm_core::app::App;
use crm_core::change::{self, Change};
use crm_core::db::Conn;
use crm_core::error::{Checks, Error, Result};
use crm_core::paging::{self, Page, PageQuery};
use crm_core::schema::{accounts, purchases};
use crm_core::{apply_row_filter, db_run, ids};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::TOPIC;
use crate::values::{Money, opt_text, req_text};

/// A purchase row.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = purchases, treat_none_as_default_value = false)]
pub struct PurchaseRow {
    pub id: String,
    pub account_id: String,
    pub contact_id: Option<String>,
    pub order_number: String,
    pub ordered_at: NaiveDateTime,
    pub amount_minor: i64,
    pub currency: String,
    /// JSON list of line items.
    pub line_items: String,
    pub external_id: Option<String>,
    pub idempotency_key: String,
    pub created_by: Option<String>,
    pub created_at: NaiveDateTime,
}

/// One line of an order.
#[derive(SimpleObject, InputObject, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[graphql(input_name = "LineItemInput")]
pub struct LineItem {
    /// Product code.
    pub sku: Option<String>,
    /// Product name.
    pub name: String,
    /// How many.
    pub quantity: i64,
    /// Price of one, in minor units of the order's currency.
    pub unit_amount_minor: i64,
}

/// An order.
#[derive(SimpleObject, Clone, Debug)]
pub struct Purchase {
    /// `pur_…`
    pub id: ID,
    /// The buying account.
    pub account_id: ID,
    /// The buying contact, if known.
    pub contact_id: Option<ID>,
    /// The order number in the source system.
    pub order_number: String,
    /// When it was ordered (UTC).
    pub ordered_at: DateTime<Utc>,
    /// Order total.
    pub amount: Money,
    /// What was bought.
    pub line_items: Vec<LineItem>,
    /// The id in the source system.
    pub external_id: Option<String>,
    /// When it was recorded (UTC).
    pub created_at: DateTime<Utc>,
}

impl From<PurchaseRow> for Purchase {
    fn from(r: PurchaseRow) -> Self {
        Purchase {
            id: r.id.into(),
            account_id: r.account_id.into(),
            contact_id: r.contact_id.map(Into::into),
            order_number: r.order_number,
            ordered_at: r.ordered_at.and_utc(),
            amount: Money {
                amount_minor: r.amount_minor,
                currency: r.currency,
            },
            line_items: serde_json::from_str(&r.line_items).unwrap_or_default(),
            external_id: r.external_id,
            created_at: r.created_at.and_utc(),
        }
    }
}

/// Input for `recordPurchase`.
#[derive(InputObject)]
pub struct CreatePurchaseInput {
    pub account_id: ID,
    pub contact_id: Option<ID>,
    pub order_number: String,
    pub ordered_at: DateTime<Utc>,
    pub amount: Money,
    #[graphql(default)]
    pub line_items: Vec<LineItem>,
    pub external_id: Option<String>,
    /// Unique per order in the source system; sending the same order again
    /// returns the stored purchase instead of a duplicate.
    pub idempotency_key: String,
}

/// Purchases in scope: a purchase is owned through its account (declared in
/// [`crate::OWNERSHIP`]), so the scope applies to the account's owner.
macro_rules! scoped {
    ($q:expr, $scope:expr) => {
        apply_row_filter!(
            $q,
            $scope,
            through = purchases::account_id,
            accounts::table,
            accounts::id,
            accounts::owner_id
        )
    };
}

/// Whose purchases: an account's or a contact's.
pub enum Of<'a> {
    /// Of this account.
    Account(&'a str),
    /// Of this contact.
    Contact(&'a str),
}

/// A page of purchases, newest first, whose accounts are in scope.
pub async fn list(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    of: Of<'_>,
    page: &PageQuery,
) -> Result<(Vec<PurchaseRow>, i64)> {
    let after = page
        .after
        .as_deref()
        .map(|c| paging::unpair(c, "after"))
        .transpose()?;
    macro_rules! filtered {
        () => {{
            let q = scoped!(purchases::table.into_boxed(), scope);
            match of {
                Of::Account(a) => q.filter(purchases::account_id.eq(a)),
                Of::Contact(c) => q.filter(purchases::contact_id.eq(c)),
            }
        }};
    }
    let rows = db_run!(conn, |c| {
        let mut q = filtered!();
        if let Some((t, id)) = &after {
            let t = paging::parse_time_key(t, "after")?;
            q = q.filter(
                purchases::ordered_at.lt(t).or(purchases::ordered_at
                    .eq(t)
                    .and(purchases::id.lt(id.clone()))),
            );
        }
        Ok::<_, Error>(
            q.order((purchases::ordered_at.desc(), purchases::id.desc()))
                .limit(page.limit + 1)
                .select(PurchaseRow::as_select())
                .load(c)
                .await?,
        )
    })?;
    let total = db_run!(conn, |c| filtered!().count().get_result(c).await)?;
    Ok((rows, total))
}

/// Filters of a purchases export.
#[derive(Clone, Debug, Default)]
pub struct ExportFilter {
    pub account_id: Option<String>,
    pub contact_id: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// Purchases of accounts in scope after id `after`, in id order (exports).
pub async fn export_page(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    f: &ExportFilter,
    after: &str,
    limit: i64,
) -> Result<Vec<PurchaseRow>> {
    Ok(db_run!(conn, |c| {
        let mut q = scoped!(purchases::table.into_boxed(), scope)
            .filter(purchases::id.gt(after.to_owned()));
        if let Some(v) = &f.account_id {
            q = q.filter(purchases::account_id.eq(v.clone()));
        }
        if let Some(v) = &f.contact_id {
            q = q.filter(purchases::contact_id.eq(v.clone()));
        }
        if let Some(v) = f.from {
            q = q.filter(purchases::ordered_at.ge(v));
        }
        if let Some(v) = f.to {
            q = q.filter(purchases::ordered_at.lt(v));
        }
        q.order(purchases::id.asc())
            .limit(limit)
            .select(PurchaseRow::as_select())
            .load(c)
            .await
    })?)
}

/// The page of purchases for a field resolver.
pub async fn page(
    ctx: &Context<'_>,
    of: Of<'_>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Page<Purchase>> {
    let scope = row_filter(ctx, "Purchase", "read").await?;
    let q = paging::query(first, after, None, None)?;
    let app = ctx.data_unchecked::<App>();
    let mut c = app.db.conn().await?;
    let (rows, total) = list(&mut c.conn(), &scope, of, &q).await?;
    let items = rows
        .into_iter()
        .map(|r| {
            (
                paging::pair(&paging::time_key(r.ordered_at), &r.id),
                Purchase::from(r),
            )
        })
        .collect();
    Ok(paging::build_keyed(&q, items, total))
}

/// Purchase mutations.
#[derive(Default)]
pub struct PurchaseMutation;

#[Object]
impl PurchaseMutation {
    /// Records an order. Idempotent on `idempotencyKey`: the same order sent
    /// again returns the stored purchase; different data under a used key is
    /// a CONFLICT.
    async fn record_purchase(
        &self,
        ctx: &Context<'_>,
        input: CreatePurchaseInput,
    ) -> Result<Purchase> {
        require_create(ctx, "Purchase")?;
        let account_scope = row_filter(ctx, "Account", "read").await?;
        // The contact must be one the caller may read (any other, existing or
        // not, is the same "no such contact").
        let contact_scope = match &input.contact_id {
            Some(_) => Some(row_filter(ctx, "Contact", "read").await?),
            None => None,
        };
        let app = ctx.data_unchecked::<App>();
        Ok(record(
            app,
            principal(ctx),
            &account_scope,
            contact_scope.as_ref(),
            input,
        )
        .await?
        .into())
    }
}

/// Records an order for an account in `account_scope` (and a contact of
/// that account in `contact_scope`), idempotent on its key: the same order
/// again returns the stored purchase, different data under a used key is a
/// CONFLICT.
pub async fn record(
    app: &App,
    by: &Principal,
    account_scope: &RowFilter,
    contact_scope: Option<&RowFilter>,
    input: CreatePurchaseInput,
) -> Result<PurchaseRow> {
    let mut c = Checks::default();
    let key = c.take(req_text(&input.idempotency_key, 200, "idempotencyKey"))?;
    let number = c.take(req_text(&input.order_number, 100, "orderNumber"))?;
    let external = c
        .take(opt_text(input.external_id, 200, "externalId"))?
        .flatten();
    let amount = c.take(input.amount.checked("amount"))?;
    if input
        .line_items
        .iter()
        .any(|l| l.quantity <= 0 || l.unit_amount_minor < 0 || l.name.trim().is_empty())
    {
        c.take::<()>(Err(Error::invalid(
            "lineItems",
            "each line needs a name, a positive quantity and a non-negative price",
        )))?;
    }
    let mut tx = app.db.begin().await?;
    let account = crm_core::entity::store::get::<crate::accounts::repo::Accounts>(
        &mut tx.conn(),
        account_scope,
        &input.account_id,
    )
    .await?;
    if account.is_none() {
        c.take::<()>(Err(Error::invalid("accountId", "no such account")))?;
    }
    if let (Some(contact), Some(scope)) = (&input.contact_id, contact_scope) {
        let visible = crm_core::entity::store::get::<crate::contacts::repo::Contacts>(
            &mut tx.conn(),
            scope,
            contact,
        )
        .await?;
        if visible.is_none_or(|ct| ct.account_id.as_deref() != Some(input.account_id.as_str())) {
            c.take::<()>(Err(Error::invalid(
                "contactId",
                "no such contact at this account",
            )))?;
        }
    }
    c.finish()?;
    let (key, amount, account) = (
        key.unwrap_or_default(),
        amount.unwrap_or_else(|| Money {
            amount_minor: 0,
            currency: String::new(),
        }),
        account.expect("checked above"),
    );
    let row = PurchaseRow {
        id: ids::new_id("pur"),
        account_id: input.account_id.0,
        contact_id: input.contact_id.map(|i| i.0),
        order_number: number.unwrap_or_default(),
        ordered_at: input.ordered_at.naive_utc().with_nanosecond_trunc(),
        amount_minor: amount.amount_minor,
        currency: amount.currency,
        line_items: serde_json::to_string(&input.line_items).unwrap_or_else(|_| "[]".into()),
        external_id: external,
        idempotency_key: key.clone(),
        created_by: by.actor().id,
        created_at: ids::now(),
    };
    let mut conn = tx.conn();
    let existing: Option<PurchaseRow> = db_run!(&mut conn, |c| purchases::table
        .filter(purchases::idempotency_key.eq(&key))
        .select(PurchaseRow::as_select())
        .first(c)
        .await
        .optional())?;
    if let Some(e) = existing {
        let same = PurchaseRow {
            id: e.id.clone(),
            created_by: e.created_by.clone(),
            created_at: e.created_at,
            ..row.clone()
        };
        if same == e {
            return Ok(e);
        }
        return Err(Error::Conflict(format!(
            "idempotency key {key:?} was already used for a different order"
        )));
    }
    db_run!(&mut conn, |c| diesel::insert_into(purchases::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    change::record(
            &mut tx.conn(),
            &by.actor(),
            Change {
                topic: TOPIC,
                entity_type: "Purchase",
                entity_id: row.id.clone(),
                action: "recorded",
                before: None,
                after: Some(json!({
                    "accountId": row.account_id, "contactId": row.contact_id, "orderNumber": row.order_number,
                    "orderedAt": row.ordered_at, "amount": {"amountMinor": row.amount_minor, "currency": row.currency},
                    "externalId": row.external_id,
                })),
                owner_id: Some(account.owner_id.clone()),
                team_id: None,
            },
        )
        .await?;
    app.commit(tx).await?;
    Ok(row)
}

/// Drops sub-microsecond precision, which the databases do not keep.
trait MicroTrunc {
    fn with_nanosecond_trunc(self) -> Self;
}

impl MicroTrunc for NaiveDateTime {
    fn with_nanosecond_trunc(self) -> Self {
        use chrono::SubsecRound;
        self.trunc_subsecs(6)
    }
}
