//! Exports of products and price book entries: their columns and filters
//! (core runs them, with only the fields the caller may read, so a role
//! that may not read `PriceBookEntry.unitPrice` gets files without prices).

use async_graphql::{Context, ID, InputObject, Object};
use crm_core::access::{Principal, principal};
use crm_core::app::App;
use crm_core::entity::export::{ExportColumn as C, Exportable, Selection, major, start, time};
use crm_core::entity::sql::Bind;
use crm_core::entity::{Cond, ListQuery};
use crm_core::error::Result;
use crm_core::jobs::Job;
use crm_core::tabular::ExportFormat;
use serde_json::json;

use super::ProductFilterInput;
use super::repo::{EntryRow, PriceBookEntries, ProductRow, Products};

impl Exportable for Products {
    const LIST: &'static str = "products";
    const COLUMNS: &'static [C<ProductRow>] = &[
        C::field("id", |r| json!(r.id)),
        C::field("name", |r| json!(r.name)),
        C::field("code", |r| json!(r.code)),
        C::field("family", |r| json!(r.family)),
        C::field("unit", |r| json!(r.unit)),
        C::field("description", |r| json!(r.description)),
        C::field("active", |r| json!(r.active)),
        C::field("createdAt", |r| time(r.created_at)),
        C::field("updatedAt", |r| time(r.updated_at)),
        C::field("version", |r| json!(r.version)),
    ];
    type Filter = ProductFilterInput;

    async fn select(_app: &App, _by: &Principal, f: &ProductFilterInput) -> Result<Selection> {
        Ok(Selection {
            query: f.to_query(),
            team: None,
            custom: f.custom.clone().unwrap_or_default(),
        })
    }
}

/// Filter for `exportPriceBookEntries`.
#[derive(InputObject, Clone, Debug, Default)]
pub struct PriceBookEntryFilterInput {
    /// In this price book.
    pub price_book_id: Option<ID>,
    /// Of this product.
    pub product_id: Option<ID>,
    /// Only active (true) or retired (false) entries.
    pub active: Option<bool>,
}

impl PriceBookEntryFilterInput {
    fn to_query(&self) -> ListQuery {
        let mut conds = Vec::new();
        if let Some(v) = &self.price_book_id {
            conds.push(Cond::Eq("price_book_id", v.0.as_str().into()));
        }
        if let Some(v) = &self.product_id {
            conds.push(Cond::Eq("product_id", v.0.as_str().into()));
        }
        if let Some(v) = self.active {
            conds.push(Cond::Eq("active", Bind::Bool(Some(v))));
        }
        ListQuery {
            conds,
            ..Default::default()
        }
    }
}

impl Exportable for PriceBookEntries {
    const LIST: &'static str = "price-book-entries";
    const COLUMNS: &'static [C<EntryRow>] = &[
        C::field("id", |r| json!(r.id)),
        C::field("priceBookId", |r| json!(r.price_book_id)),
        C::field("productId", |r| json!(r.product_id)),
        C::field("unitPrice", |r| major(r.unit_price)),
        C::new("currency", "unitPrice", |r| json!(r.currency)),
        C::field("active", |r| json!(r.active)),
        C::field("createdAt", |r| time(r.created_at)),
        C::field("updatedAt", |r| time(r.updated_at)),
        C::field("version", |r| json!(r.version)),
    ];
    type Filter = PriceBookEntryFilterInput;

    async fn select(
        _app: &App,
        _by: &Principal,
        f: &PriceBookEntryFilterInput,
    ) -> Result<Selection> {
        Ok(Selection {
            query: f.to_query(),
            team: None,
            custom: Vec::new(),
        })
    }
}

/// Export mutations of the catalogue.
#[derive(Default)]
pub struct ProductExportMutation;

#[Object]
impl ProductExportMutation {
    /// Exports the products matching `filter`, with the fields you may read.
    async fn export_products(
        &self,
        ctx: &Context<'_>,
        filter: Option<ProductFilterInput>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        start::<Products>(app, principal(ctx), filter.unwrap_or_default(), format).await
    }

    /// Exports the price book entries matching `filter`, with the fields
    /// you may read.
    async fn export_price_book_entries(
        &self,
        ctx: &Context<'_>,
        filter: Option<PriceBookEntryFilterInput>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        start::<PriceBookEntries>(app, principal(ctx), filter.unwrap_or_default(), format).await
    }
}
