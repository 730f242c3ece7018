//! Importing products and price book entries from CSV files: what they
//! declare to the kit's import ([`crm_core::entity::import`]). Products
//! match existing ones by code; an entry names its product by id or code
//! and its book by id or name. Every row goes through the same `apply` as
//! the API.

use async_graphql::{Context, Object, Upload};
use crm_core::access::Principal;
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::entity::import::{
    self as kit, CellErrors, Cells, DuplicateKey, ImportColumn as C, ImportOptions, Importable,
    RowCtx, RowInput,
};
use crm_core::error::Result;
use crm_core::jobs;
use crm_customers::import::money_cell;
use crm_customers::values::Money;

use super::repo::{
    self, EntryFields, EntryRow, PriceBookEntries, ProductFields, ProductRow, Products,
};

/// A yes/no cell.
fn flag(s: &str, column: &'static str, errs: &mut CellErrors) -> Option<bool> {
    match s.trim().to_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "active" | "是" => Some(true),
        "false" | "no" | "n" | "0" | "inactive" | "否" => Some(false),
        _ => {
            errs.push((column, format!("{s:?} is not true or false")));
            None
        }
    }
}

impl Importable for Products {
    const COLUMNS: &'static [C] = &[
        C::new("name", &["product", "productname", "产品", "产品名称"]),
        C::new("code", &["productcode", "sku", "产品编码"]),
        C::new("family", &["productfamily", "产品系列"]),
        C::new("unit", &["unitofmeasure", "单位"]),
        C::new("description", &["描述"]),
        C::new("active", &["isactive", "启用"]),
    ];
    const IGNORED: &'static [&'static str] = &["createdat", "updatedat", "version"];
    const REQUIRED: &'static [&'static str] = &["name", "code"];
    const KEY: Option<DuplicateKey> = Some(DuplicateKey {
        column: "code",
        lower: false,
    });
    const JOB_KIND: &'static str = "import.products";
    type Session = ();

    async fn session(_app: &App, _by: &Principal, _used: &[&'static str]) -> Result<()> {
        Ok(())
    }

    fn key(cells: &Cells<'_>) -> Option<String> {
        cells.text("code").map(|c| c.trim().to_owned())
    }

    async fn fields(
        _session: &mut (),
        _conn: &mut Conn<'_>,
        cells: &Cells<'_>,
        _base: Option<&ProductRow>,
        ctx: RowCtx,
        errs: &mut CellErrors,
    ) -> Result<RowInput<ProductFields>> {
        let fields = ProductFields {
            name: cells.text("name"),
            code: cells.text("code"),
            family: cells.text("family").map(Some),
            unit: cells.text("unit").map(Some),
            description: cells.text("description").map(Some),
            active: cells.get("active").and_then(|s| flag(s, "active", errs)),
            custom: ctx.custom,
        };
        Ok(RowInput {
            fields,
            set: Vec::new(),
        })
    }
}

impl Importable for PriceBookEntries {
    const COLUMNS: &'static [C] = &[
        C::new("priceBookId", &["pricebook", "pricebookname", "价格表"]),
        C::new(
            "productId",
            &["product", "productcode", "sku", "产品", "产品编码"],
        ),
        C::new("unitPrice", &["price", "listprice", "单价"]),
        C::new("currency", &["币种"]).writes("unitPrice"),
        C::new("active", &["isactive", "启用"]),
    ];
    const IGNORED: &'static [&'static str] = &["createdat", "updatedat", "version"];
    const REQUIRED: &'static [&'static str] = &["priceBookId", "productId", "unitPrice"];
    const JOB_KIND: &'static str = "import.price-book-entries";
    type Session = ();

    async fn session(_app: &App, _by: &Principal, _used: &[&'static str]) -> Result<()> {
        Ok(())
    }

    async fn fields(
        _session: &mut (),
        conn: &mut Conn<'_>,
        cells: &Cells<'_>,
        base: Option<&EntryRow>,
        _ctx: RowCtx,
        errs: &mut CellErrors,
    ) -> Result<RowInput<EntryFields>> {
        // A book by id or name, a product by id or code.
        let mut book_currency = base.map(|b| b.currency.clone());
        let price_book_id = match cells.text("priceBookId") {
            Some(v) if v.starts_with("pbk_") => {
                if let Some(b) = repo::price_book(conn, &v).await? {
                    book_currency = Some(b.currency);
                }
                Some(v)
            }
            Some(v) => match repo::price_book_by_name(conn, v.trim()).await? {
                Some(b) => {
                    book_currency = Some(b.currency);
                    Some(b.id)
                }
                None => {
                    errs.push(("priceBookId", format!("no price book named {v:?}")));
                    None
                }
            },
            None => None,
        };
        let product_id = match cells.text("productId") {
            Some(v) if v.starts_with("prd_") => Some(v),
            Some(v) => match repo::product_by_code(conn, v.trim()).await? {
                Some(p) => Some(p.id),
                None => {
                    errs.push(("productId", format!("no product with code {v:?}")));
                    None
                }
            },
            None => None,
        };
        let unit_price = cells.get("unitPrice").and_then(|s| match money_cell(s) {
            Ok((minor, cur)) => {
                let currency = cur
                    .or_else(|| cells.get("currency").map(str::to_uppercase))
                    .or(book_currency.clone());
                match currency {
                    Some(currency) => Some(Money {
                        amount_minor: minor,
                        currency,
                    }),
                    None => {
                        errs.push(("unitPrice", "needs a currency column".to_owned()));
                        None
                    }
                }
            }
            Err(m) => {
                errs.push(("unitPrice", m));
                None
            }
        });
        // On an update the book and product stay (the kit matched the
        // row by id); naming them again is fine when they are the same.
        let (price_book_id, product_id) = match base {
            Some(b) => (
                price_book_id.filter(|p| *p != b.price_book_id),
                product_id.filter(|p| *p != b.product_id),
            ),
            None => (price_book_id, product_id),
        };
        let fields = EntryFields {
            price_book_id,
            product_id,
            unit_price,
            active: cells.get("active").and_then(|s| flag(s, "active", errs)),
        };
        Ok(RowInput {
            fields,
            set: Vec::new(),
        })
    }
}

/// Import mutations of the catalogue.
#[derive(Default)]
pub struct ProductImportMutation;

#[Object]
impl ProductImportMutation {
    /// Starts importing products from a CSV file (rows match existing
    /// products by id or code); follow it with `importJob(id)`.
    async fn import_products(
        &self,
        ctx: &Context<'_>,
        file: Upload,
        options: Option<ImportOptions>,
    ) -> Result<jobs::Job> {
        kit::start_upload::<Products>(ctx, file, options).await
    }

    /// Starts importing price book entries from a CSV file (a product by
    /// id or code, a book by id or name); follow it with `importJob(id)`.
    async fn import_price_book_entries(
        &self,
        ctx: &Context<'_>,
        file: Upload,
        options: Option<ImportOptions>,
    ) -> Result<jobs::Job> {
        kit::start_upload::<PriceBookEntries>(ctx, file, options).await
    }
}
