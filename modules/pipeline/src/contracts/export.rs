//! The contracts export: its columns and filter (core runs it, within the
//! caller's row scope and with only the fields they may read: marketing's
//! file has no `value` or `currency` column).

use async_graphql::{Context, Object};
use crm_core::access::{Principal, principal};
use crm_core::app::App;
use crm_core::entity::export::{
    ExportColumn as C, Exportable, Selection, major, opt_time, start, time,
};
use crm_core::error::Result;
use crm_core::jobs::Job;
use crm_core::tabular::ExportFormat;
use serde_json::json;

use super::ContractFilterInput;
use super::repo::{ContractRow, Contracts};

impl Exportable for Contracts {
    const LIST: &'static str = "contracts";
    const COLUMNS: &'static [C<ContractRow>] = &[
        C::field("id", |r| json!(r.id)),
        C::field("name", |r| json!(r.name)),
        C::field("accountId", |r| json!(r.account_id)),
        C::field("opportunityId", |r| json!(r.opportunity_id)),
        C::field("quoteId", |r| json!(r.quote_id)),
        C::field("status", |r| json!(r.status)),
        C::field("startDate", |r| json!(r.start_date)),
        C::field("endDate", |r| json!(r.end_date)),
        C::field("value", |r| major(r.value)),
        C::new("currency", "value", |r| json!(r.currency)),
        C::field("renewalPipelineId", |r| json!(r.renewal_pipeline_id)),
        C::field("renewalNoticeDays", |r| json!(r.renewal_notice_days)),
        C::field("renewalOpportunityId", |r| json!(r.renewal_opportunity_id)),
        C::field("activatedAt", |r| opt_time(r.activated_at)),
        C::field("endedAt", |r| opt_time(r.ended_at)),
        C::field("ownerId", |r| json!(r.owner_id)),
        C::field("createdAt", |r| time(r.created_at)),
        C::field("updatedAt", |r| time(r.updated_at)),
        C::field("version", |r| json!(r.version)),
    ];
    type Filter = ContractFilterInput;

    async fn select(_app: &App, _by: &Principal, f: &ContractFilterInput) -> Result<Selection> {
        Ok(Selection {
            query: f.to_query(),
            team: None,
            custom: Vec::new(),
        })
    }
}

/// Export mutations.
#[derive(Default)]
pub struct ContractExportMutation;

#[Object]
impl ContractExportMutation {
    /// Exports the contracts matching `filter` that you may see, with the
    /// fields you may read (see `exportAccounts`).
    async fn export_contracts(
        &self,
        ctx: &Context<'_>,
        filter: Option<ContractFilterInput>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        start::<Contracts>(app, principal(ctx), filter.unwrap_or_default(), format).await
    }
}
