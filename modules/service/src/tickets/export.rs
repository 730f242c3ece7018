//! The tickets export: its columns and filter (core runs it, within the
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
use serde_json::json;

use super::TicketFilterInput;
use super::repo::{TicketRow, Tickets};
use super::service::tags_of;

/// Every list `crm export` writes for this module.
pub const EXPORTS: &[Exporter] = &[export::kit::<Tickets>()];

impl Exportable for Tickets {
    const LIST: &'static str = "tickets";
    const COLUMNS: &'static [C<TicketRow>] = &[
        C::field("id", |r| json!(r.id)),
        C::field("number", |r| json!(r.number)),
        C::field("subject", |r| json!(r.subject)),
        C::field("description", |r| json!(r.description)),
        C::field("contactId", |r| json!(r.contact_id)),
        C::field("accountId", |r| json!(r.account_id)),
        C::field("channel", |r| json!(r.channel)),
        C::field("priority", |r| json!(r.priority)),
        C::field("status", |r| json!(r.status)),
        C::field("type", |r| json!(r.ticket_type)),
        C::field("assigneeId", |r| json!(r.assignee_id)),
        C::field("groupId", |r| json!(r.group_id)),
        C::field("tags", |r| json!(tags_of(r).join(", "))),
        C::field("solvedAt", |r| opt_time(r.solved_at)),
        C::field("closedAt", |r| opt_time(r.closed_at)),
        C::field("createdAt", |r| time(r.created_at)),
        C::field("updatedAt", |r| time(r.updated_at)),
        C::field("version", |r| json!(r.version)),
    ];
    type Filter = TicketFilterInput;

    async fn select(_app: &App, _by: &Principal, f: &TicketFilterInput) -> Result<Selection> {
        Ok(Selection {
            query: f.to_query()?,
            team: None,
            custom: f.custom.clone().unwrap_or_default(),
        })
    }

    fn custom_values(r: &TicketRow) -> String {
        r.custom.clone()
    }
}

/// Export mutations.
#[derive(Default)]
pub struct TicketExportMutation;

#[Object]
impl TicketExportMutation {
    /// Exports the tickets matching `filter` that you may see, with the
    /// fields you may read (see `exportAccounts`).
    async fn export_tickets(
        &self,
        ctx: &Context<'_>,
        filter: Option<TicketFilterInput>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        start::<Tickets>(app, principal(ctx), filter.unwrap_or_default(), format).await
    }
}
