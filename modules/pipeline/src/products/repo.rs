//! Products, price books and price book entries, declared to the entity
//! kit (shared catalogue: no owner, no recycle bin; retired by
//! deactivation, never deleted, so the line items that priced from them
//! keep their meaning), with the rules of their fields.

use chrono::NaiveDateTime;
use crm_core::access::RowFilter;
use crm_core::custom;
use crm_core::db::Conn;
use crm_core::entity::sql::{Bind, Sql};
use crm_core::entity::{Column, Def, Entity, Kind, Ops, Scope, WriteCtx, store};
use crm_core::error::{Checks, Error, Result};
use crm_core::ids;
use crm_core::schema::{price_book_entries, price_books, products};
use crm_customers::values::{Money, opt_text, req_text};
use diesel::prelude::*;
use serde_json::{Map, Value, json};

/// A product row.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = products)]
pub struct ProductRow {
    pub id: String,
    pub name: String,
    /// Unique product code (SKU).
    pub code: String,
    pub family: Option<String>,
    pub unit: Option<String>,
    pub description: Option<String>,
    pub active: bool,
    /// Custom field values: a JSON object by key.
    pub custom: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

/// A price book row.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = price_books)]
pub struct PriceBookRow {
    pub id: String,
    pub name: String,
    /// ISO 4217: every entry of the book is priced in it.
    pub currency: String,
    /// The standard book of its currency (exactly one per currency).
    pub is_standard: bool,
    pub active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

/// A price book entry row: a product's unit price in a book.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = price_book_entries)]
pub struct EntryRow {
    pub id: String,
    pub price_book_id: String,
    pub product_id: String,
    /// Minor units of `currency` (the book's).
    pub unit_price: i64,
    pub currency: String,
    pub active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

/// Products, declared to the entity kit.
pub struct Products;
/// Price books, declared to the entity kit.
pub struct PriceBooks;
/// Price book entries, declared to the entity kit.
pub struct PriceBookEntries;

/// The declaration of [`Products`].
pub const PRODUCT_DEF: Def = Def {
    type_name: "Product",
    prefix: "prd",
    label: "product",
    table: "products",
    topic: crate::TOPIC,
    columns: &[
        Column::new("id", Kind::Text).api("id"),
        Column::text("name", "name")
            .filter(Ops::PREFIX)
            .sort()
            .search(),
        Column::text("code", "code").filter(Ops::EQ).sort().search(),
        Column::text("family", "family").nullable().filter(Ops::EQ),
        Column::text("unit", "unit").nullable(),
        Column::text("description", "description").nullable(),
        Column::new("active", Kind::Bool)
            .api("active")
            .filter(Ops::EQ),
        Column::new("custom", Kind::Text).api("custom"),
        Column::time("created_at", "createdAt").sort(),
        Column::time("updated_at", "updatedAt").sort(),
        Column::int("version", "version"),
    ],
    scope: Scope::Shared,
    soft_delete: None,
    custom_fields: true,
};

/// The declaration of [`PriceBooks`].
pub const PRICE_BOOK_DEF: Def = Def {
    type_name: "PriceBook",
    prefix: "pbk",
    label: "price book",
    table: "price_books",
    topic: crate::TOPIC,
    columns: &[
        Column::new("id", Kind::Text).api("id"),
        Column::text("name", "name").sort(),
        Column::text("currency", "currency").filter(Ops::EQ),
        Column::new("is_standard", Kind::Bool)
            .api("isStandard")
            .filter(Ops::EQ),
        Column::new("active", Kind::Bool)
            .api("active")
            .filter(Ops::EQ),
        Column::time("created_at", "createdAt").sort(),
        Column::time("updated_at", "updatedAt"),
        Column::int("version", "version"),
    ],
    scope: Scope::Shared,
    soft_delete: None,
    custom_fields: false,
};

/// The declaration of [`PriceBookEntries`].
pub const ENTRY_DEF: Def = Def {
    type_name: "PriceBookEntry",
    prefix: "pbe",
    label: "price book entry",
    table: "price_book_entries",
    topic: crate::TOPIC,
    columns: &[
        Column::new("id", Kind::Text).api("id"),
        Column::text("price_book_id", "priceBookId").filter(Ops::EQ),
        Column::text("product_id", "productId").filter(Ops::EQ),
        Column::int("unit_price", "unitPrice"),
        Column::new("currency", Kind::Text),
        Column::new("active", Kind::Bool)
            .api("active")
            .filter(Ops::EQ),
        Column::time("created_at", "createdAt").sort(),
        Column::time("updated_at", "updatedAt"),
        Column::int("version", "version"),
    ],
    scope: Scope::Shared,
    soft_delete: None,
    custom_fields: false,
};

/// Fields of a product write; `None` leaves a field alone, `Some(None)`
/// clears it.
#[derive(Clone, Debug, Default)]
pub struct ProductFields {
    pub name: Option<String>,
    pub code: Option<String>,
    pub family: Option<Option<String>>,
    pub unit: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
    /// Custom field values to set (null clears).
    pub custom: Option<Map<String, Value>>,
}

/// Fields of a price book write.
#[derive(Clone, Debug, Default)]
pub struct PriceBookFields {
    pub name: Option<String>,
    /// Only on create: entries are priced in it.
    pub currency: Option<String>,
    pub is_standard: Option<bool>,
    pub active: Option<bool>,
}

/// Fields of a price book entry write.
#[derive(Clone, Debug, Default)]
pub struct EntryFields {
    /// Only on create.
    pub price_book_id: Option<String>,
    /// Only on create.
    pub product_id: Option<String>,
    pub unit_price: Option<Money>,
    pub active: Option<bool>,
}

/// One product (shared catalogue: no row scope).
pub async fn product(conn: &mut Conn<'_>, id: &str) -> Result<Option<ProductRow>> {
    store::get::<Products>(conn, &RowFilter::All, id).await
}

/// One price book.
pub async fn price_book(conn: &mut Conn<'_>, id: &str) -> Result<Option<PriceBookRow>> {
    store::get::<PriceBooks>(conn, &RowFilter::All, id).await
}

/// One price book entry.
pub async fn entry(conn: &mut Conn<'_>, id: &str) -> Result<Option<EntryRow>> {
    store::get::<PriceBookEntries>(conn, &RowFilter::All, id).await
}

fn columns(def: &Def) -> String {
    def.columns
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The product with this code, if any.
pub async fn product_by_code(conn: &mut Conn<'_>, code: &str) -> Result<Option<ProductRow>> {
    let mut s = Sql::new(format!(
        "SELECT {} FROM products WHERE code = ",
        columns(&PRODUCT_DEF)
    ));
    s.bind(code);
    Ok(Sql::load::<ProductRow>(&s, conn).await?.into_iter().next())
}

/// The price book with this name, if any.
pub async fn price_book_by_name(conn: &mut Conn<'_>, name: &str) -> Result<Option<PriceBookRow>> {
    let mut s = Sql::new(format!(
        "SELECT {} FROM price_books WHERE name = ",
        columns(&PRICE_BOOK_DEF)
    ));
    s.bind(name);
    Ok(Sql::load::<PriceBookRow>(&s, conn)
        .await?
        .into_iter()
        .next())
}

/// Price books, by name (only one currency's, inactive ones too, when
/// asked).
pub async fn price_books(
    conn: &mut Conn<'_>,
    currency: Option<&str>,
    inactive: bool,
) -> Result<Vec<PriceBookRow>> {
    let mut s = Sql::new(format!(
        "SELECT {} FROM price_books WHERE 1 = 1",
        columns(&PRICE_BOOK_DEF)
    ));
    if let Some(c) = currency {
        s.push(" AND currency = ").bind(c.to_uppercase().as_str());
    }
    if !inactive {
        s.push(" AND active = ").bind(Bind::Bool(Some(true)));
    }
    s.push(" ORDER BY name, id");
    Sql::load::<PriceBookRow>(&s, conn).await
}

/// The entries of some price books, by product code (inactive ones too
/// when asked).
pub async fn entries_of(
    conn: &mut Conn<'_>,
    books: &[String],
    inactive: bool,
) -> Result<Vec<EntryRow>> {
    let cols: Vec<String> = ENTRY_DEF
        .columns
        .iter()
        .map(|c| format!("e.{}", c.name))
        .collect();
    let mut s = Sql::new(format!(
        "SELECT {} FROM price_book_entries e JOIN products p ON p.id = e.product_id \
         WHERE e.price_book_id IN ",
        cols.join(", ")
    ));
    s.bind_list(books.iter().map(|b| Bind::from(b.as_str())));
    if !inactive {
        s.push(" AND e.active = ").bind(Bind::Bool(Some(true)));
    }
    s.push(" ORDER BY e.price_book_id, p.code, e.id");
    Sql::load::<EntryRow>(&s, conn).await
}

/// The standard book of a currency, if it has one.
async fn standard_book(conn: &mut Conn<'_>, currency: &str) -> Result<Option<PriceBookRow>> {
    let mut s = Sql::new(format!(
        "SELECT {} FROM price_books WHERE is_standard = ",
        columns(&PRICE_BOOK_DEF)
    ));
    s.bind(Bind::Bool(Some(true)))
        .push(" AND currency = ")
        .bind(currency);
    Ok(Sql::load::<PriceBookRow>(&s, conn)
        .await?
        .into_iter()
        .next())
}

/// A currency code as stored (VALIDATION naming `field` unless three
/// letters).
pub fn currency(v: &str, field: &str) -> Result<String> {
    let c = v.trim().to_uppercase();
    if c.len() == 3 && c.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(c)
    } else {
        Err(Error::invalid(
            field,
            "must be a 3-letter ISO 4217 currency code",
        ))
    }
}

impl Entity for Products {
    const DEF: Def = PRODUCT_DEF;
    type Row = ProductRow;
    type Fields = ProductFields;

    fn snapshot(r: &ProductRow) -> Value {
        let mut v = json!({
            "name": r.name,
            "code": r.code,
            "family": r.family,
            "unit": r.unit,
            "description": r.description,
            "active": r.active,
        });
        if let Some(o) = v.as_object_mut() {
            o.extend(custom::snapshot_fields(&r.custom));
        }
        v
    }

    fn blank() -> ProductRow {
        let now = ids::now();
        ProductRow {
            id: String::new(),
            name: String::new(),
            code: String::new(),
            family: None,
            unit: None,
            description: None,
            active: true,
            custom: "{}".into(),
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// Name and code required; the code unique (CONFLICT naming the
    /// product that has it).
    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut ProductRow,
        f: ProductFields,
    ) -> Result<()> {
        let mut c = Checks::default();
        if w.creating && f.name.is_none() {
            c.take::<()>(Err(Error::invalid("name", "is required")))?;
        }
        if w.creating && f.code.is_none() {
            c.take::<()>(Err(Error::invalid("code", "is required")))?;
        }
        if f.custom.is_some() || w.creating {
            let defs = custom::definitions(conn, "Product").await?;
            let may_write = |k: &str| custom::allowed(w.app, w.by, "Product", k, "write");
            if let Some(v) = c.take(custom::apply(
                &defs,
                &row.custom,
                f.custom.as_ref(),
                w.creating,
                &may_write,
            ))? {
                row.custom = v;
            }
        }
        if let Some(v) = &f.name
            && let Some(v) = c.take(req_text(v, 200, "name"))?
        {
            row.name = v;
        }
        let mut new_code = None;
        if let Some(v) = &f.code
            && let Some(v) = c.take(req_text(v, 64, "code"))?
        {
            new_code = Some(v);
        }
        for (v, max, field, slot) in [
            (f.family, 100, "family", &mut row.family),
            (f.unit, 30, "unit", &mut row.unit),
            (f.description, 2000, "description", &mut row.description),
        ] {
            if let Some(v) = v
                && let Some(v) = c.take(opt_text(v, max, field))?
            {
                *slot = v;
            }
        }
        if let Some(a) = f.active {
            row.active = a;
        }
        c.finish()?;
        if let Some(code) = new_code {
            if let Some(other) = product_by_code(conn, &code).await?
                && other.id != row.id
            {
                return Err(Error::Conflict(format!(
                    "product {} already has the code {code}",
                    other.id
                )));
            }
            row.code = code;
        }
        Ok(())
    }
}

impl Entity for PriceBooks {
    const DEF: Def = PRICE_BOOK_DEF;
    type Row = PriceBookRow;
    type Fields = PriceBookFields;

    fn snapshot(r: &PriceBookRow) -> Value {
        json!({
            "name": r.name,
            "currency": r.currency,
            "isStandard": r.is_standard,
            "active": r.active,
        })
    }

    fn blank() -> PriceBookRow {
        let now = ids::now();
        PriceBookRow {
            id: String::new(),
            name: String::new(),
            currency: String::new(),
            is_standard: false,
            active: true,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// Name unique (CONFLICT); the currency fixed at creation; exactly one
    /// standard book per currency: the first book of a currency is its
    /// standard one, a second standard book is a CONFLICT, and the standard
    /// book can be neither demoted nor deactivated.
    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut PriceBookRow,
        f: PriceBookFields,
    ) -> Result<()> {
        let mut c = Checks::default();
        if w.creating {
            match &f.currency {
                None => {
                    c.take::<()>(Err(Error::invalid("currency", "is required")))?;
                }
                Some(v) => {
                    if let Some(v) = c.take(currency(v, "currency"))? {
                        row.currency = v;
                    }
                }
            }
            if f.name.is_none() {
                c.take::<()>(Err(Error::invalid("name", "is required")))?;
            }
        } else if f.currency.is_some() {
            c.take::<()>(Err(Error::invalid(
                "currency",
                "cannot change: the book's entries are priced in it",
            )))?;
        }
        let mut new_name = None;
        if let Some(v) = &f.name
            && let Some(v) = c.take(req_text(v, 100, "name"))?
        {
            new_name = Some(v);
        }
        if let Some(a) = f.active {
            if !a && row.is_standard && f.is_standard != Some(false) {
                c.take::<()>(Err(Error::invalid(
                    "active",
                    "the standard price book of a currency cannot be deactivated",
                )))?;
            }
            row.active = a;
        }
        c.finish()?;
        if let Some(name) = new_name {
            if let Some(other) = price_book_by_name(conn, &name).await?
                && other.id != row.id
            {
                return Err(Error::Conflict(format!(
                    "price book {} is already named {name}",
                    other.id
                )));
            }
            row.name = name;
        }
        let standard = standard_book(conn, &row.currency).await?;
        let others = standard.filter(|s| s.id != row.id);
        match (f.is_standard, others) {
            (Some(true), Some(s)) => {
                return Err(Error::Conflict(format!(
                    "{} already has a standard price book ({})",
                    row.currency, s.id
                )));
            }
            (Some(false), None) if w.creating => {
                return Err(Error::invalid(
                    "isStandard",
                    format!(
                        "the first price book of {} is its standard one",
                        row.currency
                    ),
                ));
            }
            (Some(false), None) if row.is_standard => {
                return Err(Error::invalid(
                    "isStandard",
                    format!("{} keeps exactly one standard price book", row.currency),
                ));
            }
            (Some(v), _) => row.is_standard = v,
            (None, None) if w.creating => row.is_standard = true,
            (None, _) => {}
        }
        if row.is_standard && !row.active {
            return Err(Error::invalid(
                "active",
                "the standard price book of a currency cannot be deactivated",
            ));
        }
        Ok(())
    }
}

impl Entity for PriceBookEntries {
    const DEF: Def = ENTRY_DEF;
    type Row = EntryRow;
    type Fields = EntryFields;

    fn snapshot(r: &EntryRow) -> Value {
        json!({
            "priceBookId": r.price_book_id,
            "productId": r.product_id,
            "unitPrice": {"amountMinor": r.unit_price, "currency": r.currency},
            "active": r.active,
        })
    }

    fn blank() -> EntryRow {
        let now = ids::now();
        EntryRow {
            id: String::new(),
            price_book_id: String::new(),
            product_id: String::new(),
            unit_price: 0,
            currency: String::new(),
            active: true,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// A live product and book on create, one entry per product and book
    /// (CONFLICT: reactivate the existing one instead), the unit price in
    /// the book's currency.
    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut EntryRow,
        f: EntryFields,
    ) -> Result<()> {
        let mut c = Checks::default();
        if w.creating {
            match &f.price_book_id {
                None => {
                    c.take::<()>(Err(Error::invalid("priceBookId", "is required")))?;
                }
                Some(id) => match price_book(conn, id).await? {
                    Some(b) => {
                        row.price_book_id = b.id;
                        row.currency = b.currency;
                    }
                    None => {
                        c.take::<()>(Err(Error::invalid("priceBookId", "no such price book")))?;
                    }
                },
            }
            match &f.product_id {
                None => {
                    c.take::<()>(Err(Error::invalid("productId", "is required")))?;
                }
                Some(id) => match product(conn, id).await? {
                    Some(p) => row.product_id = p.id,
                    None => {
                        c.take::<()>(Err(Error::invalid("productId", "no such product")))?;
                    }
                },
            }
            if f.unit_price.is_none() {
                c.take::<()>(Err(Error::invalid("unitPrice", "is required")))?;
            }
        } else {
            if f.price_book_id.is_some() {
                c.take::<()>(Err(Error::invalid("priceBookId", "cannot change")))?;
            }
            if f.product_id.is_some() {
                c.take::<()>(Err(Error::invalid("productId", "cannot change")))?;
            }
        }
        if let Some(m) = f.unit_price
            && let Some(m) = c.take(m.checked("unitPrice"))?
        {
            if !row.currency.is_empty() && m.currency != row.currency {
                c.take::<()>(Err(Error::invalid(
                    "unitPrice",
                    format!("must be in the price book's currency, {}", row.currency),
                )))?;
            } else {
                row.unit_price = m.amount_minor;
            }
        }
        if let Some(a) = f.active {
            row.active = a;
        }
        c.finish()?;
        if w.creating {
            let mut s = Sql::new("SELECT id FROM price_book_entries WHERE product_id = ");
            s.bind(row.product_id.as_str())
                .push(" AND price_book_id = ")
                .bind(row.price_book_id.as_str());
            if let Some(other) = Sql::load::<IdRow>(&s, conn).await?.into_iter().next() {
                return Err(Error::Conflict(format!(
                    "the product already has an entry in this price book ({}); \
                     update or reactivate it",
                    other.id
                )));
            }
        }
        Ok(())
    }
}

/// An id read by name.
#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

#[cfg(test)]
mod tests {
    #[test]
    fn declarations_are_sound() {
        for d in [super::PRODUCT_DEF, super::PRICE_BOOK_DEF, super::ENTRY_DEF] {
            assert!(d.problems().is_empty(), "{:?}", d.problems());
        }
    }
}
