//! Products, price books and their entries: GraphQL types, queries and the
//! mutations that shape the catalogue. Lists, fetch and writes are the
//! entity kit's; the rules are the hooks in [`repo`]. Nothing is deleted:
//! a product, book or entry is deactivated, so line items priced from it
//! keep their meaning.

pub mod export;
pub mod import;
pub mod repo;

use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, Utc};
use crm_core::access::row_filter;
use crm_core::app::App;
use crm_core::entity::resolve::{self, Paging, Sorting};
use crm_core::entity::sql::Bind;
use crm_core::entity::{Cond, ListQuery};
use crm_core::error::{Result, visible};
use crm_core::graphql::patch as mu;
use crm_core::paging::{Direction, Page};
use crm_customers::values::Money;

use self::repo::{
    EntryFields, EntryRow, PriceBookEntries, PriceBookFields, PriceBookRow, PriceBooks,
    ProductFields, ProductRow, Products,
};

/// Something a deal can sell.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Product {
    /// `prd_…`
    pub id: ID,
    /// Name.
    pub name: String,
    /// Product code (SKU), unique.
    pub code: String,
    /// Product family, for grouping.
    pub family: Option<String>,
    /// Unit of sale (e.g. `seat`, `hour`).
    pub unit: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// False once retired: no new line items use it.
    pub active: bool,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
    #[graphql(skip)]
    pub custom_raw: String,
}

impl From<ProductRow> for Product {
    fn from(r: ProductRow) -> Self {
        Product {
            id: r.id.into(),
            name: r.name,
            code: r.code,
            family: r.family,
            unit: r.unit,
            description: r.description,
            active: r.active,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
            custom_raw: r.custom,
        }
    }
}

#[ComplexObject]
impl Product {
    /// Custom field values by key (those you may read).
    async fn custom(&self, ctx: &Context<'_>) -> Result<Json<serde_json::Value>> {
        crm_customers::loaders::custom_values(ctx, "Product", &self.custom_raw).await
    }
}

/// A list of prices in one currency.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct PriceBook {
    /// `pbk_…`
    pub id: ID,
    /// Name, unique.
    pub name: String,
    /// ISO 4217 code: every entry is priced in it.
    pub currency: String,
    /// The standard book of its currency (each currency has exactly one).
    pub is_standard: bool,
    /// False once retired.
    pub active: bool,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

impl From<PriceBookRow> for PriceBook {
    fn from(r: PriceBookRow) -> Self {
        PriceBook {
            id: r.id.into(),
            name: r.name,
            currency: r.currency,
            is_standard: r.is_standard,
            active: r.active,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        }
    }
}

#[ComplexObject]
impl PriceBook {
    /// Its entries by product code (deactivated ones too with
    /// `includeInactive`).
    async fn entries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] include_inactive: bool,
    ) -> Result<Vec<PriceBookEntry>> {
        row_filter(ctx, "PriceBookEntry", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        Ok(repo::entries_of(
            &mut c.conn(),
            std::slice::from_ref(&self.id.0),
            include_inactive,
        )
        .await?
        .into_iter()
        .map(PriceBookEntry::from)
        .collect())
    }
}

/// A product's unit price in a price book.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct PriceBookEntry {
    /// `pbe_…`
    pub id: ID,
    /// The book.
    pub price_book_id: ID,
    /// The product.
    pub product_id: ID,
    /// Price of one unit, in the book's currency.
    pub unit_price: Money,
    /// False once retired: no new line items use it.
    pub active: bool,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

impl From<EntryRow> for PriceBookEntry {
    fn from(r: EntryRow) -> Self {
        PriceBookEntry {
            id: r.id.into(),
            price_book_id: r.price_book_id.into(),
            product_id: r.product_id.into(),
            unit_price: Money {
                amount_minor: r.unit_price,
                currency: r.currency,
            },
            active: r.active,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        }
    }
}

#[ComplexObject]
impl PriceBookEntry {
    /// The product (null if you may not read products).
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        visible(product_by_id(ctx, &self.product_id).await)
    }

    /// The price book (null if you may not read price books).
    async fn price_book(&self, ctx: &Context<'_>) -> Result<Option<PriceBook>> {
        visible(price_book_by_id(ctx, &self.price_book_id).await)
    }
}

/// One product (NOT_FOUND if there is none).
pub async fn product_by_id(ctx: &Context<'_>, id: &str) -> Result<Product> {
    Ok(resolve::get::<Products>(ctx, id).await?.into())
}

/// One price book (NOT_FOUND if there is none).
pub async fn price_book_by_id(ctx: &Context<'_>, id: &str) -> Result<PriceBook> {
    Ok(resolve::get::<PriceBooks>(ctx, id).await?.into())
}

/// One price book entry (NOT_FOUND if there is none).
pub async fn entry_by_id(ctx: &Context<'_>, id: &str) -> Result<PriceBookEntry> {
    Ok(resolve::get::<PriceBookEntries>(ctx, id).await?.into())
}

/// Filter for `products`; all given conditions must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ProductFilterInput {
    /// Name or code contains this text.
    pub search: Option<String>,
    /// Exactly this code.
    pub code: Option<String>,
    /// In this family.
    pub family: Option<String>,
    /// Only active (true) or retired (false) products.
    pub active: Option<bool>,
    /// Custom fields with these values (all must hold).
    pub custom: Option<Vec<crm_core::custom::CustomFieldFilter>>,
}

impl ProductFilterInput {
    /// The list conditions of this filter.
    pub(crate) fn to_query(&self) -> ListQuery {
        let mut conds = Vec::new();
        if let Some(v) = &self.code {
            conds.push(Cond::Eq("code", v.trim().into()));
        }
        if let Some(v) = &self.family {
            conds.push(Cond::Eq("family", v.trim().into()));
        }
        if let Some(v) = self.active {
            conds.push(Cond::Eq("active", Bind::Bool(Some(v))));
        }
        ListQuery {
            conds,
            search: self.search.clone(),
            ..Default::default()
        }
    }
}

/// What to order products by.
#[derive(Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProductOrderField {
    /// Name, then id.
    #[default]
    Name,
    /// Product code.
    Code,
    /// Creation time.
    CreatedAt,
    /// Last change.
    UpdatedAt,
}

impl ProductOrderField {
    fn column(self) -> &'static str {
        match self {
            ProductOrderField::Name => "name",
            ProductOrderField::Code => "code",
            ProductOrderField::CreatedAt => "created_at",
            ProductOrderField::UpdatedAt => "updated_at",
        }
    }
}

/// Ordering for `products`.
#[derive(InputObject, Default)]
pub struct ProductOrder {
    /// Sort key.
    #[graphql(default)]
    pub field: ProductOrderField,
    /// Direction.
    #[graphql(default)]
    pub direction: Direction,
}

/// Input for `createProduct`.
#[derive(InputObject)]
pub struct CreateProductInput {
    pub name: String,
    /// Unique product code (SKU).
    pub code: String,
    pub family: Option<String>,
    pub unit: Option<String>,
    pub description: Option<String>,
    /// Default: true.
    pub active: Option<bool>,
    /// Custom field values by key (see `customFieldDefinitions`).
    pub custom: Option<Json<serde_json::Map<String, serde_json::Value>>>,
}

/// Input for `updateProduct`: omitted fields stay, null clears.
#[derive(InputObject)]
pub struct UpdateProductInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    pub code: Option<String>,
    pub family: MaybeUndefined<String>,
    pub unit: MaybeUndefined<String>,
    pub description: MaybeUndefined<String>,
    /// False retires the product; true brings it back.
    pub active: Option<bool>,
    /// Custom field values to change, by key (null clears one).
    pub custom: Option<Json<serde_json::Map<String, serde_json::Value>>>,
}

/// Input for `createPriceBook`.
#[derive(InputObject)]
pub struct CreatePriceBookInput {
    /// Unique name.
    pub name: String,
    /// ISO 4217 code; fixed once created.
    pub currency: String,
    /// Default: true for the currency's first book (which must be its
    /// standard one), else false. A second standard book is a CONFLICT.
    pub is_standard: Option<bool>,
}

/// Input for `updatePriceBook`: omitted fields stay.
#[derive(InputObject)]
pub struct UpdatePriceBookInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    /// True makes it the standard book (CONFLICT while its currency has
    /// another); the standard book cannot be demoted.
    pub is_standard: Option<bool>,
    /// False retires the book (not the standard one).
    pub active: Option<bool>,
}

/// Input for `createPriceBookEntry`.
#[derive(InputObject)]
pub struct CreatePriceBookEntryInput {
    pub price_book_id: ID,
    pub product_id: ID,
    /// In the book's currency.
    pub unit_price: Money,
}

/// Input for `updatePriceBookEntry`: omitted fields stay.
#[derive(InputObject)]
pub struct UpdatePriceBookEntryInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    /// In the book's currency (line items already priced keep theirs).
    pub unit_price: Option<Money>,
    /// False retires the entry; true brings it back.
    pub active: Option<bool>,
}

/// Product and price book queries.
#[derive(Default)]
pub struct ProductQuery;

#[Object]
impl ProductQuery {
    /// The product catalogue.
    #[allow(clippy::too_many_arguments)]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<ProductFilterInput>,
        order_by: Option<ProductOrder>,
    ) -> Result<Page<Product>> {
        let f = filter.unwrap_or_default();
        let o = order_by.unwrap_or_default();
        let query = f.to_query();
        let sorting = Sorting {
            by: (o.field.column(), o.direction),
            custom: f.custom.as_deref().unwrap_or_default(),
            custom_key: None,
        };
        let page = Paging {
            first,
            after,
            last,
            before,
        };
        resolve::list::<Products, _>(ctx, page, query, sorting, |r| Ok(Product::from(r))).await
    }

    /// One product.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Product> {
        product_by_id(ctx, &id).await
    }

    /// Price books by name (one currency's with `currency`; retired ones
    /// too with `includeInactive`).
    async fn price_books(
        &self,
        ctx: &Context<'_>,
        currency: Option<String>,
        #[graphql(default)] include_inactive: bool,
    ) -> Result<Vec<PriceBook>> {
        row_filter(ctx, "PriceBook", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        Ok(
            repo::price_books(&mut c.conn(), currency.as_deref(), include_inactive)
                .await?
                .into_iter()
                .map(PriceBook::from)
                .collect(),
        )
    }

    /// One price book, with its entries.
    async fn price_book(&self, ctx: &Context<'_>, id: ID) -> Result<PriceBook> {
        price_book_by_id(ctx, &id).await
    }

    /// One price book entry.
    async fn price_book_entry(&self, ctx: &Context<'_>, id: ID) -> Result<PriceBookEntry> {
        entry_by_id(ctx, &id).await
    }
}

/// The mutations that shape the catalogue.
#[derive(Default)]
pub struct ProductMutation;

#[Object]
impl ProductMutation {
    /// Adds a product (a duplicate code is a CONFLICT).
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        input: CreateProductInput,
    ) -> Result<Product> {
        let fields = ProductFields {
            name: Some(input.name),
            code: Some(input.code),
            family: Some(input.family),
            unit: Some(input.unit),
            description: Some(input.description),
            active: input.active,
            custom: input.custom.map(|c| c.0),
        };
        Ok(resolve::create::<Products>(ctx, fields).await?.into())
    }

    /// Changes a product if `version` is current.
    async fn update_product(
        &self,
        ctx: &Context<'_>,
        input: UpdateProductInput,
    ) -> Result<Product> {
        let fields = ProductFields {
            name: input.name,
            code: input.code,
            family: mu(input.family),
            unit: mu(input.unit),
            description: mu(input.description),
            active: input.active,
            custom: input.custom.map(|c| c.0),
        };
        Ok(
            resolve::update::<Products>(ctx, &input.id, input.version, fields)
                .await?
                .into(),
        )
    }

    /// Retires a product (products are never deleted).
    async fn deactivate_product(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<Product> {
        let fields = ProductFields {
            active: Some(false),
            ..Default::default()
        };
        Ok(resolve::update::<Products>(ctx, &id, version, fields)
            .await?
            .into())
    }

    /// Adds a price book (the first of a currency is its standard one).
    async fn create_price_book(
        &self,
        ctx: &Context<'_>,
        input: CreatePriceBookInput,
    ) -> Result<PriceBook> {
        let fields = PriceBookFields {
            name: Some(input.name),
            currency: Some(input.currency),
            is_standard: input.is_standard,
            active: None,
        };
        Ok(resolve::create::<PriceBooks>(ctx, fields).await?.into())
    }

    /// Changes a price book if `version` is current.
    async fn update_price_book(
        &self,
        ctx: &Context<'_>,
        input: UpdatePriceBookInput,
    ) -> Result<PriceBook> {
        let fields = PriceBookFields {
            name: input.name,
            currency: None,
            is_standard: input.is_standard,
            active: input.active,
        };
        Ok(
            resolve::update::<PriceBooks>(ctx, &input.id, input.version, fields)
                .await?
                .into(),
        )
    }

    /// Retires a price book (not a currency's standard one).
    async fn deactivate_price_book(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
    ) -> Result<PriceBook> {
        let fields = PriceBookFields {
            active: Some(false),
            ..Default::default()
        };
        Ok(resolve::update::<PriceBooks>(ctx, &id, version, fields)
            .await?
            .into())
    }

    /// Prices a product in a book (one entry per product and book).
    async fn create_price_book_entry(
        &self,
        ctx: &Context<'_>,
        input: CreatePriceBookEntryInput,
    ) -> Result<PriceBookEntry> {
        let fields = EntryFields {
            price_book_id: Some(input.price_book_id.0),
            product_id: Some(input.product_id.0),
            unit_price: Some(input.unit_price),
            active: None,
        };
        Ok(resolve::create::<PriceBookEntries>(ctx, fields)
            .await?
            .into())
    }

    /// Changes an entry's price or brings it back, if `version` is current.
    async fn update_price_book_entry(
        &self,
        ctx: &Context<'_>,
        input: UpdatePriceBookEntryInput,
    ) -> Result<PriceBookEntry> {
        let fields = EntryFields {
            unit_price: input.unit_price,
            active: input.active,
            ..Default::default()
        };
        Ok(
            resolve::update::<PriceBookEntries>(ctx, &input.id, input.version, fields)
                .await?
                .into(),
        )
    }

    /// Retires an entry (entries are never deleted).
    async fn deactivate_price_book_entry(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
    ) -> Result<PriceBookEntry> {
        let fields = EntryFields {
            active: Some(false),
            ..Default::default()
        };
        Ok(
            resolve::update::<PriceBookEntries>(ctx, &id, version, fields)
                .await?
                .into(),
        )
    }
}
