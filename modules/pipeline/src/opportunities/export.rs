//! The opportunities export: its columns and filter (core runs it, within
//! the caller's row scope and with only the fields they may read).

use async_graphql::{Context, Object};
use crm_core::access::{Principal, principal};
use crm_core::app::App;
use crm_core::entity::export::{
    ExportColumn as C, Exportable, Selection, opt_major, opt_time, start, time,
};
use crm_core::error::Result;
use crm_core::jobs::Job;
use crm_core::tabular::ExportFormat;
use serde_json::json;

use super::OpportunityFilterInput;
use super::repo::{Opportunities, OpportunityRow};

impl Exportable for Opportunities {
    const LIST: &'static str = "opportunities";
    const COLUMNS: &'static [C<OpportunityRow>] = &[
        C::field("id", |r| json!(r.id)),
        C::field("name", |r| json!(r.name)),
        C::field("accountId", |r| json!(r.account_id)),
        C::field("primaryContactId", |r| json!(r.primary_contact_id)),
        C::field("pipelineId", |r| json!(r.pipeline_id)),
        C::field("stageId", |r| json!(r.stage_id)),
        C::field("amount", |r| opt_major(r.amount)),
        C::new("currency", "amount", |r| json!(r.currency)),
        C::field("closeDate", |r| json!(r.close_date)),
        C::field("probability", |r| json!(r.probability)),
        C::field("forecastCategory", |r| json!(r.forecast_category)),
        C::field("nextStep", |r| json!(r.next_step)),
        C::field("source", |r| json!(r.source)),
        C::field("campaignId", |r| json!(r.campaign_id)),
        C::field("lostReason", |r| json!(r.lost_reason)),
        C::field("closedAt", |r| opt_time(r.closed_at)),
        C::field("ownerId", |r| json!(r.owner_id)),
        C::field("createdAt", |r| time(r.created_at)),
        C::field("updatedAt", |r| time(r.updated_at)),
        C::field("version", |r| json!(r.version)),
    ];
    type Filter = OpportunityFilterInput;

    async fn select(_app: &App, _by: &Principal, f: &OpportunityFilterInput) -> Result<Selection> {
        Ok(Selection {
            query: f.to_query(),
            team: None,
            custom: f.custom.clone().unwrap_or_default(),
        })
    }

    fn custom_values(r: &OpportunityRow) -> String {
        r.custom.clone()
    }
}

/// Export mutations.
#[derive(Default)]
pub struct OpportunityExportMutation;

#[Object]
impl OpportunityExportMutation {
    /// Exports the opportunities matching `filter` that you may see, with
    /// the fields you may read (see `exportAccounts`).
    async fn export_opportunities(
        &self,
        ctx: &Context<'_>,
        filter: Option<OpportunityFilterInput>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        start::<Opportunities>(app, principal(ctx), filter.unwrap_or_default(), format).await
    }
}
