//! Importing opportunities from CSV files: what they declare to the kit's
//! import ([`crm_core::entity::import`]): columns with header aliases, the
//! columns a new deal needs, and how a row's cells become its fields.
//! Every row goes through the same `apply` as the API (account and contact
//! visible to the importer, the stage rules, required fields), and batches,
//! modes, duplicates (by id), owners, custom fields, the error report and
//! jobs are the kit's.

use async_graphql::{Context, Object, Upload};
use chrono::NaiveDate;
use crm_core::access::Principal;
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::entity::import::{
    self as kit, CellErrors, Cells, ImportColumn as C, ImportOptions, Importable, RowCtx, RowInput,
};
use crm_core::error::Result;
use crm_core::jobs;
use crm_customers::import::money_cell;
use crm_customers::values::Money;

use super::repo::{Opportunities, OpportunityRow};
use super::service::OpportunityFields;
use crate::values::ForecastCategory;

fn forecast(s: &str, errs: &mut CellErrors) -> Option<ForecastCategory> {
    let key = s.trim().to_uppercase().replace([' ', '-'], "_");
    match ForecastCategory::from_stored(&key) {
        Ok(v) => Some(v),
        Err(_) => {
            errs.push((
                "forecastCategory",
                format!("{s:?} is not one of PIPELINE, BEST_CASE, COMMIT, CLOSED, OMITTED"),
            ));
            None
        }
    }
}

impl Importable for Opportunities {
    const COLUMNS: &'static [C] = &[
        C::new(
            "name",
            &[
                "opportunity",
                "opportunityname",
                "deal",
                "dealname",
                "商机",
                "商机名称",
            ],
        ),
        C::new("accountId", &["account", "客户"]),
        C::new("primaryContactId", &["contactid", "contact", "联系人"]),
        C::new("pipelineId", &["pipeline", "销售管道"]),
        C::new("stageId", &["stage", "阶段"]),
        C::new("amount", &["value", "金额"]),
        C::new("currency", &["币种"]).writes("amount"),
        C::new("closeDate", &["close", "expectedclose", "预计成交日期"]),
        C::new("probability", &["winprobability", "赢率"]),
        C::new("forecastCategory", &["forecast"]),
        C::new("nextStep", &["下一步"]),
        C::new("source", &["leadsource", "来源"]),
        C::new("campaignId", &["campaign"]),
        C::new("lostReason", &["丢单原因"]),
    ];
    const IGNORED: &'static [&'static str] = &["closedat"];
    const REQUIRED: &'static [&'static str] = &["name", "accountId", "pipelineId"];
    const JOB_KIND: &'static str = "import.opportunities";
    type Session = ();

    async fn session(_app: &App, _by: &Principal, _used: &[&'static str]) -> Result<()> {
        Ok(())
    }

    async fn fields(
        _session: &mut (),
        _conn: &mut Conn<'_>,
        cells: &Cells<'_>,
        base: Option<&OpportunityRow>,
        ctx: RowCtx,
        errs: &mut CellErrors,
    ) -> Result<RowInput<OpportunityFields>> {
        let amount = cells.get("amount").and_then(|s| match money_cell(s) {
            Ok((minor, cur)) => {
                let currency = cur
                    .or_else(|| cells.get("currency").map(str::to_uppercase))
                    .or_else(|| base.and_then(|b| b.currency.clone()));
                match currency {
                    Some(currency) => Some(Some(Money {
                        amount_minor: minor,
                        currency,
                    })),
                    None => {
                        errs.push((
                            "amount",
                            format!(
                                "needs a currency: add a currency column or write e.g. \"{s} EUR\""
                            ),
                        ));
                        None
                    }
                }
            }
            Err(m) => {
                errs.push(("amount", m));
                None
            }
        });
        let close_date = cells.get("closeDate").and_then(|s| {
            match NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
                Ok(d) => Some(Some(d)),
                Err(_) => {
                    errs.push(("closeDate", format!("{s:?} is not a date (YYYY-MM-DD)")));
                    None
                }
            }
        });
        let probability = cells.get("probability").and_then(|s| {
            match s.trim().trim_end_matches('%').trim().parse::<i64>() {
                Ok(p) => Some(p),
                Err(_) => {
                    errs.push(("probability", format!("{s:?} is not a whole number")));
                    None
                }
            }
        });
        let fields = OpportunityFields {
            name: cells.text("name"),
            account_id: cells.text("accountId"),
            primary_contact_id: cells.text("primaryContactId").map(Some),
            owner_id: None,
            pipeline_id: cells.text("pipelineId"),
            stage_id: cells.text("stageId"),
            amount,
            close_date,
            probability,
            forecast_category: cells
                .get("forecastCategory")
                .and_then(|s| forecast(s, errs)),
            next_step: cells.text("nextStep").map(Some),
            source: cells.text("source").map(Some),
            campaign_id: cells.text("campaignId").map(Some),
            lost_reason: cells.text("lostReason").map(Some),
            custom: ctx.custom,
            line_items: None,
            contact_roles: None,
            tag_ids: None,
            primary_quote_id: None,
        };
        Ok(RowInput {
            fields,
            set: Vec::new(),
        })
    }
}

/// Import mutations.
#[derive(Default)]
pub struct OpportunityImportMutation;

#[Object]
impl OpportunityImportMutation {
    /// Starts importing opportunities from a CSV file (GraphQL multipart
    /// upload); follow it with `importJob(id)`.
    async fn import_opportunities(
        &self,
        ctx: &Context<'_>,
        file: Upload,
        options: Option<ImportOptions>,
    ) -> Result<jobs::Job> {
        kit::start_upload::<Opportunities>(ctx, file, options).await
    }
}
