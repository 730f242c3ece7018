//! Importing tickets from CSV files: what they declare to the kit's import
//! ([`crm_core::entity::import`]). Every row goes through the same `apply`
//! as the API (requester visible to the importer, the account defaulting
//! to the contact's, a new number per created ticket), and batches, modes,
//! duplicates (by id), custom fields, the error report and jobs are the
//! kit's.

use async_graphql::{Context, Object, Upload};
use crm_core::access::Principal;
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::entity::import::{
    self as kit, CellErrors, Cells, ImportColumn as C, ImportOptions, Importable, RowCtx, RowInput,
};
use crm_core::error::Result;
use crm_core::jobs;

use super::repo::{TicketRow, Tickets};
use super::service::TicketFields;
use crate::values::{TicketChannel, TicketPriority, TicketStatus, TicketType};

/// A cell naming one value of an enum, or a cell error listing them.
fn one_of<T>(
    s: &str,
    field: &'static str,
    parse: fn(&str) -> Option<T>,
    names: fn() -> String,
    errs: &mut CellErrors,
) -> Option<T> {
    let v = parse(s);
    if v.is_none() {
        errs.push((field, format!("{s:?} is not one of {}", names())));
    }
    v
}

impl Importable for Tickets {
    const COLUMNS: &'static [C] = &[
        C::new("subject", &["title", "summary", "主题", "标题"]),
        C::new("description", &["body", "details", "描述", "内容"]),
        C::new(
            "contactId",
            &["contact", "requester", "requesterid", "联系人", "请求人"],
        ),
        C::new("accountId", &["account", "客户"]),
        C::new("channel", &["source", "渠道"]),
        C::new("priority", &["优先级"]),
        C::new("status", &["state", "状态"]),
        C::new("type", &["tickettype", "类型"]),
        C::new("assigneeId", &["assignee", "agent", "处理人"]),
        C::new("groupId", &["group", "team", "组"]),
        C::new("tags", &["labels", "标签"]),
    ];
    const IGNORED: &'static [&'static str] = &["number", "solvedat", "closedat"];
    const REQUIRED: &'static [&'static str] = &["subject", "contactId"];
    const JOB_KIND: &'static str = "import.tickets";
    type Session = ();

    async fn session(_app: &App, _by: &Principal, _used: &[&'static str]) -> Result<()> {
        Ok(())
    }

    async fn fields(
        _session: &mut (),
        _conn: &mut Conn<'_>,
        cells: &Cells<'_>,
        _base: Option<&TicketRow>,
        ctx: RowCtx,
        errs: &mut CellErrors,
    ) -> Result<RowInput<TicketFields>> {
        let fields = TicketFields {
            subject: cells.text("subject"),
            description: cells.text("description").map(Some),
            contact_id: cells.text("contactId"),
            account_id: cells.text("accountId").map(Some),
            channel: cells.get("channel").and_then(|s| {
                one_of(
                    s,
                    "channel",
                    TicketChannel::parse,
                    TicketChannel::names,
                    errs,
                )
            }),
            priority: cells.get("priority").and_then(|s| {
                one_of(
                    s,
                    "priority",
                    TicketPriority::parse,
                    TicketPriority::names,
                    errs,
                )
            }),
            status: cells
                .get("status")
                .and_then(|s| one_of(s, "status", TicketStatus::parse, TicketStatus::names, errs)),
            ticket_type: cells
                .get("type")
                .and_then(|s| one_of(s, "type", TicketType::parse, TicketType::names, errs))
                .map(Some),
            assignee_id: cells.text("assigneeId").map(Some),
            group_id: cells.text("groupId").map(Some),
            tags: cells.get("tags").map(|s| {
                s.split([',', ';', '|'])
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            custom: ctx.custom,
        };
        Ok(RowInput {
            fields,
            set: Vec::new(),
        })
    }
}

/// Import mutations.
#[derive(Default)]
pub struct TicketImportMutation;

#[Object]
impl TicketImportMutation {
    /// Starts importing tickets from a CSV file (GraphQL multipart upload);
    /// follow it with `importJob(id)`. Each created ticket takes the next
    /// number.
    async fn import_tickets(
        &self,
        ctx: &Context<'_>,
        file: Upload,
        options: Option<ImportOptions>,
    ) -> Result<jobs::Job> {
        kit::start_upload::<Tickets>(ctx, file, options).await
    }
}
