//! The leads export: its columns and filter (core runs it, within the
//! caller's row scope and with only the fields they may read).

use async_graphql::{Context, Object};
use crm_core::access::{Principal, principal};
use crm_core::app::App;
use crm_core::entity::export::{
    self, ExportColumn as C, Exportable, Exporter, Selection, opt_time, start, time,
};
use crm_core::error::Result;
use crm_core::jobs::Job;
use crm_core::tabular::ExportFormat;
use serde_json::{Value, json};

use super::LeadFilterInput;
use super::repo::{LeadRow, Leads};
use super::service::points;

/// Every list `crm export` writes for this module.
pub const EXPORTS: &[Exporter] = &[export::kit::<Leads>()];

fn values(stored: &str) -> Value {
    Value::Array(points(stored).into_iter().map(|p| json!(p.value)).collect())
}

fn consent(r: &LeadRow) -> Value {
    serde_json::from_str::<Value>(&r.consent)
        .ok()
        .and_then(|v| v.get("state").cloned())
        .unwrap_or(Value::Null)
}

fn converted(r: &LeadRow, key: &str) -> Value {
    r.converted
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .and_then(|v| v.get(key).cloned())
        .unwrap_or(Value::Null)
}

impl Exportable for Leads {
    const LIST: &'static str = "leads";
    const COLUMNS: &'static [C<LeadRow>] = &[
        C::field("id", |r| json!(r.id)),
        C::field("firstName", |r| json!(r.first_name)),
        C::field("lastName", |r| json!(r.last_name)),
        C::field("title", |r| json!(r.title)),
        C::field("emails", |r| values(&r.emails)),
        C::field("phones", |r| values(&r.phones)),
        C::field("company", |r| json!(r.company)),
        C::field("website", |r| json!(r.website)),
        C::field("industry", |r| json!(r.industry)),
        C::field("sizeBand", |r| json!(r.size_band)),
        C::field("country", |r| json!(r.country)),
        C::field("region", |r| json!(r.region)),
        C::field("city", |r| json!(r.city)),
        C::field("source", |r| json!(r.source)),
        C::field("campaignId", |r| json!(r.campaign_id)),
        C::field("status", |r| json!(r.status)),
        C::field("statusReason", |r| json!(r.status_reason)),
        C::field("ownerId", |r| json!(r.owner_id)),
        C::field("teamId", |r| json!(r.team_id)),
        C::field("consent", consent),
        C::field("convertedAt", |r| opt_time(r.converted_at)),
        C::field("convertedAccountId", |r| converted(r, "accountId")),
        C::field("convertedContactId", |r| converted(r, "contactId")),
        C::field("convertedOpportunityId", |r| converted(r, "opportunityId")),
        C::field("createdAt", |r| time(r.created_at)),
        C::field("updatedAt", |r| time(r.updated_at)),
        C::field("version", |r| json!(r.version)),
    ];
    type Filter = LeadFilterInput;

    async fn select(_app: &App, _by: &Principal, f: &LeadFilterInput) -> Result<Selection> {
        Ok(Selection {
            query: f.to_query(),
            team: None,
            custom: f.custom.clone().unwrap_or_default(),
        })
    }

    fn custom_values(r: &LeadRow) -> String {
        r.custom.clone()
    }
}

/// Export mutations.
#[derive(Default)]
pub struct LeadExportMutation;

#[Object]
impl LeadExportMutation {
    /// Exports the leads matching `filter` that you may see, with the
    /// fields you may read (see `exportAccounts`).
    async fn export_leads(
        &self,
        ctx: &Context<'_>,
        filter: Option<LeadFilterInput>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        start::<Leads>(app, principal(ctx), filter.unwrap_or_default(), format).await
    }
}
