//! The accounts export: its columns and filter (core runs it).

use crm_core::access::Principal;
use crm_core::app::App;
use crm_core::entity::export::{ExportColumn as C, Exportable, Selection, opt_major, time};
use crm_core::error::Result;
use serde_json::json;

use super::AccountFilterInput;
use super::repo::{AccountRow, Accounts};
use crate::values::Address;

fn address(r: &AccountRow) -> Address {
    r.address
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default()
}

impl Exportable for Accounts {
    const LIST: &'static str = "accounts";
    const COLUMNS: &'static [C<AccountRow>] = &[
        C::field("id", |r| json!(r.id)),
        C::field("name", |r| json!(r.name)),
        C::field("industry", |r| json!(r.industry)),
        C::field("sizeBand", |r| json!(r.size_band)),
        C::field("website", |r| json!(r.website)),
        C::field("phone", |r| json!(r.phone)),
        C::new("street", "address", |r| json!(address(r).street)),
        C::new("city", "address", |r| json!(address(r).city)),
        C::new("postalCode", "address", |r| json!(address(r).postal_code)),
        C::new("region", "address", |r| json!(address(r).region)),
        C::new("country", "address", |r| json!(address(r).country)),
        C::field("annualRevenue", |r| opt_major(r.annual_revenue)),
        C::new("revenueCurrency", "annualRevenue", |r| {
            json!(r.revenue_currency)
        }),
        C::field("creditLimit", |r| opt_major(r.credit_limit)),
        C::new("creditCurrency", "creditLimit", |r| {
            json!(r.credit_currency)
        }),
        C::field("lifecycleStage", |r| json!(r.lifecycle_stage)),
        C::field("rating", |r| json!(r.rating)),
        C::field("source", |r| json!(r.source)),
        C::field("notes", |r| json!(r.notes)),
        C::field("ownerId", |r| json!(r.owner_id)),
        C::field("createdAt", |r| time(r.created_at)),
        C::field("updatedAt", |r| time(r.updated_at)),
        C::field("version", |r| json!(r.version)),
    ];
    type Filter = AccountFilterInput;

    async fn select(_app: &App, _by: &Principal, f: &AccountFilterInput) -> Result<Selection> {
        Ok(Selection {
            query: f.to_query(),
            team: f.team_id.as_ref().map(|t| t.0.clone()),
            custom: f.custom.clone().unwrap_or_default(),
        })
    }

    fn custom_values(r: &AccountRow) -> String {
        r.custom.clone()
    }
}
