//! Importing leads from CSV files: what they declare to the kit's import
//! ([`crm_core::entity::import`]): columns with header aliases and how a
//! row's cells become its fields. Every row goes through the same `apply`
//! as the API (normalised contact points, the status rules, the duplicate
//! check); batches, modes, owners, custom fields, the error report and
//! jobs are the kit's. Imported leads default to the source IMPORT.

use async_graphql::{Context, Object, Upload};
use crm_core::access::Principal;
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::entity::import::{
    self as kit, CellErrors, Cells, ImportColumn as C, ImportOptions, Importable, RowCtx, RowInput,
};
use crm_core::error::Result;
use crm_core::jobs;
use crm_customers::import::split_list;
use crm_customers::values::{ContactPoint, ContactPointKind, SizeBand};

use super::repo::{LeadRow, Leads};
use super::service::LeadFields;
use crate::values::{LeadSource, LeadStatus};

fn enum_cell<T>(
    s: &str,
    parse: impl Fn(&str) -> Option<T>,
    field: &'static str,
    allowed: &str,
    errs: &mut CellErrors,
) -> Option<T> {
    let v = parse(s);
    if v.is_none() {
        errs.push((field, format!("{s:?} is not one of {allowed}")));
    }
    v
}

impl Importable for Leads {
    const COLUMNS: &'static [C] = &[
        C::new("firstName", &["first", "givenname", "名"]),
        C::new("lastName", &["last", "surname", "familyname", "姓"]),
        C::new("title", &["jobtitle", "职位"]),
        C::new("emails", &["email", "emailaddress", "邮箱"]),
        C::new("phones", &["phone", "mobile", "telephone", "电话"]),
        C::new("company", &["companyname", "organization", "公司"]),
        C::new("website", &["web", "url", "网站"]),
        C::new("industry", &["行业"]),
        C::new("sizeBand", &["size", "companysize", "规模"]),
        C::new("country", &["国家"]),
        C::new("region", &["state", "province", "地区"]),
        C::new("city", &["城市"]),
        C::new("source", &["leadsource", "来源"]),
        C::new("campaignId", &["campaign"]),
        C::new("status", &["leadstatus", "状态"]),
        C::new("statusReason", &["reason"]),
        C::new("teamId", &["team"]),
    ];
    const IGNORED: &'static [&'static str] = &[
        "consent",
        "convertedat",
        "convertedaccountid",
        "convertedcontactid",
        "convertedopportunityid",
    ];
    const REQUIRED: &'static [&'static str] = &[];
    const JOB_KIND: &'static str = "import.leads";
    type Session = ();

    async fn session(_app: &App, _by: &Principal, _used: &[&'static str]) -> Result<()> {
        Ok(())
    }

    async fn fields(
        _session: &mut (),
        _conn: &mut Conn<'_>,
        cells: &Cells<'_>,
        base: Option<&LeadRow>,
        ctx: RowCtx,
        errs: &mut CellErrors,
    ) -> Result<RowInput<LeadFields>> {
        let points = |api: &str| {
            cells.get(api).map(|s| {
                split_list(s)
                    .into_iter()
                    .map(|value| ContactPoint {
                        kind: ContactPointKind::Work,
                        value,
                    })
                    .collect::<Vec<_>>()
            })
        };
        let text = |api: &str| cells.text(api).map(Some);
        let size_band = cells.get("sizeBand").map(|s| {
            enum_cell(
                &s.to_lowercase(),
                SizeBand::from_text,
                "sizeBand",
                "micro, small, medium, large, enterprise",
                errs,
            )
        });
        let source = match cells.get("source") {
            Some(s) => enum_cell(
                s,
                LeadSource::parse,
                "source",
                "WEB_FORM, IMPORT, API, CAMPAIGN, REFERRAL, EVENT, OTHER",
                errs,
            ),
            None if base.is_none() => Some(LeadSource::Import),
            None => None,
        };
        let status = cells.get("status").and_then(|s| {
            enum_cell(
                s,
                LeadStatus::parse,
                "status",
                "NEW, WORKING, NURTURING, QUALIFIED, UNQUALIFIED",
                errs,
            )
        });
        let fields = LeadFields {
            first_name: text("firstName"),
            last_name: text("lastName"),
            title: text("title"),
            emails: points("emails"),
            phones: points("phones"),
            company: text("company"),
            website: text("website"),
            industry: text("industry"),
            size_band: size_band.flatten().map(Some),
            country: text("country"),
            region: text("region"),
            city: text("city"),
            source,
            campaign_id: text("campaignId"),
            status,
            status_reason: text("statusReason"),
            owner_id: None,
            team_id: text("teamId"),
            tag_ids: None,
            consent: None,
            custom: ctx.custom,
            conversion: None,
        };
        Ok(RowInput {
            fields,
            set: Vec::new(),
        })
    }
}

/// Import mutations.
#[derive(Default)]
pub struct LeadImportMutation;

#[Object]
impl LeadImportMutation {
    /// Starts importing leads from a CSV file (GraphQL multipart upload);
    /// every row goes through the duplicate check; follow it with
    /// `importJob(id)`.
    async fn import_leads(
        &self,
        ctx: &Context<'_>,
        file: Upload,
        options: Option<ImportOptions>,
    ) -> Result<jobs::Job> {
        kit::start_upload::<Leads>(ctx, file, options).await
    }
}
