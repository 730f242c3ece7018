//! The printable quote, `GET /quotes/{id}` (core's `module::Document`,
//! mounted by the gateway): an HTML page with labels in English or Chinese
//! (`Accept-Language`), for whoever may read the quote. A quote outside the
//! caller's read scope is NOT_FOUND like an unknown id; a field the caller
//! may not read (marketing: prices and sums) is left out, label and all;
//! every value is HTML-escaped.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crm_core::access::{Principal, RowFilter, readable_fields, row_filter_or_nothing};
use crm_core::app::App;
use crm_core::entity::store;
use crm_core::error::{Error, Result};
use crm_core::ids;
use crm_core::module::{Document, Rendered};
use crm_customers::accounts::repo::Accounts;
use crm_customers::values::Address;
use futures_util::future::BoxFuture;

use super::repo::{self, QuoteRow, Quotes};
use crate::products::repo as catalogue;

/// The document, as the module lists it.
pub static QUOTE_DOCUMENT: QuoteDocument = QuoteDocument;

/// `GET /quotes/{id}`.
pub struct QuoteDocument;

/// The languages the document is printed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// English (the default).
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// The caller's preferred language of the two, from an
    /// `Accept-Language` header (`zh-CN,zh;q=0.9,en;q=0.8`): the highest
    /// `q` wins, the earlier entry on a tie; English when neither is named.
    pub fn from_header(h: Option<&str>) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in h.unwrap_or_default().split(',') {
            let mut bits = part.split(';');
            let tag = bits.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = bits
                .find_map(|b| b.trim().strip_prefix("q=").map(str::to_owned))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Lang::Zh
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, l)| l)
    }

    fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// A label.
    pub fn label(self, key: &str) -> &'static str {
        const LABELS: &[(&str, &str, &str)] = &[
            ("quote", "Quote", "报价单"),
            ("number", "Number", "编号"),
            ("revision", "Revision", "修订版本"),
            ("status", "Status", "状态"),
            ("validUntil", "Valid until", "有效期至"),
            ("account", "Customer", "客户"),
            ("billingAddress", "Billing address", "账单地址"),
            ("shippingAddress", "Shipping address", "收货地址"),
            ("product", "Product", "产品"),
            ("quantity", "Quantity", "数量"),
            ("listPrice", "List price", "目录价"),
            ("unitPrice", "Unit price", "单价"),
            ("discountPercent", "Discount %", "折扣 %"),
            ("total", "Total", "合计"),
            ("subtotal", "Subtotal", "小计"),
            ("discount", "Discount", "折扣"),
            ("tax", "Tax", "税额"),
            ("terms", "Terms", "条款"),
            ("DRAFT", "Draft", "草稿"),
            ("SENT", "Sent", "已发送"),
            ("ACCEPTED", "Accepted", "已接受"),
            ("REJECTED", "Rejected", "已拒绝"),
            ("EXPIRED", "Expired", "已过期"),
        ];
        LABELS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or("", |(_, en, zh)| match self {
                Lang::En => en,
                Lang::Zh => zh,
            })
    }
}

/// `s` safe inside HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Minor units as a decimal amount with its currency (`1234.50 EUR`);
/// two decimal places.
fn amount(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02} {}", m / 100, m % 100, escape(currency))
}

fn address_lines(stored: &Option<String>) -> String {
    let Some(a) = stored
        .as_deref()
        .and_then(|a| serde_json::from_str::<Address>(a).ok())
    else {
        return String::new();
    };
    let city = [a.postal_code, a.city]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    [a.street, Some(city), a.region, a.country]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(|s| escape(&s))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// What the page shows beside the quote itself.
struct Context {
    lang: Lang,
    quote: BTreeSet<String>,
    line: BTreeSet<String>,
    account_name: Option<String>,
    products: Vec<(String, String)>,
}

/// The page (pure: the caller has applied scope and field rights).
fn page(q: &QuoteRow, cx: &Context) -> Result<String> {
    let l = |k: &str| cx.lang.label(k);
    let may = |f: &str| cx.quote.contains(f);
    let line_may = |f: &str| cx.line.contains(f);
    let currency = q.currency.clone().unwrap_or_default();
    let mut h = String::new();
    let title = format!("{} {}", l("quote"), escape(&q.number));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #999;padding:4px 8px}}.n{{text-align:right}}\
         @media print{{body{{margin:0}}}}</style></head><body>\n<h1>{title}</h1>\n<dl>",
        cx.lang.code()
    );
    let mut field = |label: &str, value: String| {
        let _ = write!(h, "<dt>{label}</dt><dd>{value}</dd>");
    };
    if may("name") {
        field(l("quote"), escape(&q.name));
    }
    if may("number") {
        field(l("number"), escape(&q.number));
    }
    if may("revision") {
        field(l("revision"), q.revision.to_string());
    }
    if may("status") {
        field(l("status"), escape(l(&q.status)));
    }
    if may("validUntil") {
        field(l("validUntil"), escape(&q.valid_until));
    }
    if let Some(name) = &cx.account_name {
        field(l("account"), escape(name));
    }
    if may("billingAddress") {
        field(l("billingAddress"), address_lines(&q.billing_address));
    }
    if may("shippingAddress") {
        field(l("shippingAddress"), address_lines(&q.shipping_address));
    }
    h.push_str("</dl>\n");
    if may("lineItems") {
        let cols: Vec<&str> = [
            "quantity",
            "listPrice",
            "unitPrice",
            "discountPercent",
            "total",
        ]
        .into_iter()
        .filter(|c| line_may(c))
        .collect();
        h.push_str("<table><thead><tr>");
        let _ = write!(h, "<th>{}</th>", l("product"));
        for c in &cols {
            let _ = write!(h, "<th>{}</th>", l(c));
        }
        h.push_str("</tr></thead><tbody>");
        for line in repo::lines_of(q)? {
            let product = cx
                .products
                .iter()
                .find(|(id, _)| *id == line.product_id)
                .map_or(line.product_id.clone(), |(_, n)| n.clone());
            let _ = write!(h, "<tr><td>{}</td>", escape(&product));
            for c in &cols {
                let v = match *c {
                    "quantity" => format!("{}", line.quantity_milli as f64 / 1000.0),
                    "listPrice" => amount(line.list_price, &currency),
                    "unitPrice" => amount(line.unit_price, &currency),
                    "discountPercent" => format!("{}", line.discount_bp as f64 / 100.0),
                    _ => amount(line.total, &currency),
                };
                let _ = write!(h, "<td class=\"n\">{v}</td>");
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table>\n");
    }
    let sums: Vec<(&str, i64)> = [
        ("subtotal", q.subtotal),
        ("discount", q.discount),
        ("tax", q.tax),
        ("total", q.total),
    ]
    .into_iter()
    .filter(|(f, _)| may(f))
    .collect();
    if !sums.is_empty() && q.currency.is_some() {
        h.push_str("<table class=\"sums\">");
        for (f, v) in sums {
            let _ = write!(
                h,
                "<tr><th>{}</th><td class=\"n\">{}</td></tr>",
                l(f),
                amount(v, &currency)
            );
        }
        h.push_str("</table>\n");
    }
    if may("terms")
        && let Some(t) = &q.terms
    {
        let _ = writeln!(h, "<h2>{}</h2><p>{}</p>", l("terms"), escape(t));
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

async fn render(app: &App, by: &Principal, id: &str, lang: Lang) -> Result<Rendered> {
    let not_found = || Error::NotFound(format!("quote {id}"));
    if ids::check(id, repo::DEF.prefix, "id").is_err() {
        return Err(not_found());
    }
    let scope = row_filter_or_nothing(app, by, "Quote", "read").await?;
    let mut c = app.db.conn().await?;
    let q = store::get::<Quotes>(&mut c.conn(), &scope, id)
        .await?
        .ok_or_else(not_found)?;
    let account_name = {
        let scope = row_filter_or_nothing(app, by, "Account", "read").await?;
        let readable = readable_fields(app, by, "Account").contains("name");
        match store::get::<Accounts>(&mut c.conn(), &scope, &q.account_id).await? {
            Some(a) if readable => Some(a.name),
            _ => None,
        }
    };
    let mut products = Vec::new();
    let product_scope = row_filter_or_nothing(app, by, "Product", "read").await?;
    if !matches!(product_scope, RowFilter::Nothing)
        && readable_fields(app, by, "Product").contains("name")
    {
        for line in repo::lines_of(&q)? {
            if let Some(p) = catalogue::product(&mut c.conn(), &line.product_id).await? {
                products.push((p.id, format!("{} ({})", p.name, p.code)));
            }
        }
    }
    let cx = Context {
        lang,
        quote: readable_fields(app, by, "Quote"),
        line: readable_fields(app, by, "QuoteLineItem"),
        account_name,
        products,
    };
    Ok(Rendered {
        content_type: "text/html; charset=utf-8",
        language: lang.code(),
        body: page(&q, &cx)?,
    })
}

impl Document for QuoteDocument {
    fn path(&self) -> &'static str {
        "quotes"
    }

    fn render<'a>(
        &'a self,
        app: &'a App,
        by: &'a Principal,
        id: &'a str,
        accept_language: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Rendered>> {
        Box::pin(render(app, by, id, Lang::from_header(accept_language)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_follows_accept_language() {
        assert_eq!(Lang::from_header(None), Lang::En);
        assert_eq!(Lang::from_header(Some("zh-CN,zh;q=0.9,en;q=0.8")), Lang::Zh);
        assert_eq!(Lang::from_header(Some("en-US,zh;q=0.5")), Lang::En);
        assert_eq!(Lang::from_header(Some("fr, zh;q=0.4, en;q=0.3")), Lang::Zh);
        assert_eq!(Lang::from_header(Some("de")), Lang::En);
        assert_eq!(Lang::from_header(Some("zh;q=0")), Lang::En);
    }

    #[test]
    fn values_are_escaped_and_amounts_printed_in_major_units() {
        assert_eq!(
            escape("<b>\"A&B\"</b> 'x'"),
            "&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt; &#39;x&#39;"
        );
        assert_eq!(amount(123_450, "EUR"), "1234.50 EUR");
        assert_eq!(amount(5, "USD"), "0.05 USD");
    }
}
