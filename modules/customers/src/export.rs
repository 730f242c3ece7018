//! Exports of accounts, contacts, the timeline and purchases as CSV or JSON
//! Lines. Core runs them (`crm_core::entity::export`): accounts and
//! contacts are kit entities declaring their columns next to the entity
//! (`accounts/export.rs`, `contacts/export.rs`); the timeline and purchases
//! are declared here as lists read in id order.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use crm_core::access::{RowFilter, principal};
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::entity::export::{
    self, ExportColumn as C, Exporter, Listing, opt_time, start, start_listing, time,
};
use crm_core::error::Result;
use crm_core::jobs::Job;
use crm_core::tabular::ExportFormat;
use serde_json::json;

use crate::accounts::AccountFilterInput;
use crate::accounts::repo::Accounts;
use crate::activities::repo::{self as activity_repo, ActivityRow};
use crate::contacts::ContactFilterInput;
use crate::contacts::repo::Contacts;
use crate::purchases::{self, PurchaseRow};
use crm_core::entity::SubjectType;

/// Every list `crm export` writes.
pub const EXPORTS: &[Exporter] = &[
    export::kit::<Accounts>(),
    export::kit::<Contacts>(),
    export::listing::<Timeline>(),
    export::listing::<Purchases>(),
];

/// Filter of a timeline export.
#[derive(InputObject, Clone, Debug, Default)]
pub struct TimelineExportFilter {
    /// Only entries about this kind of record.
    pub subject_type: Option<SubjectType>,
    /// Only entries about this record.
    pub subject_id: Option<ID>,
    /// Only this kind (`call`, `email`, `meeting`, `note`, `task`).
    pub kind: Option<String>,
    /// Occurred at or after.
    pub occurred_from: Option<DateTime<Utc>>,
    /// Occurred before.
    pub occurred_to: Option<DateTime<Utc>>,
}

/// Filter of a purchases export.
#[derive(InputObject, Clone, Debug, Default)]
pub struct PurchaseExportFilter {
    /// Only this account's orders.
    pub account_id: Option<ID>,
    /// Only this contact's orders.
    pub contact_id: Option<ID>,
    /// Ordered at or after.
    pub ordered_from: Option<DateTime<Utc>>,
    /// Ordered before.
    pub ordered_to: Option<DateTime<Utc>>,
}

/// The timeline as an export.
pub struct Timeline;

impl Listing for Timeline {
    const LIST: &'static str = "timeline";
    const TYPE: &'static str = "Activity";
    type Row = ActivityRow;
    const COLUMNS: &'static [C<ActivityRow>] = &[
        C::field("id", |r| json!(r.id)),
        C::field("kind", |r| json!(r.kind)),
        C::field("subjectType", |r| json!(r.subject_type)),
        C::field("subjectId", |r| json!(r.subject_id)),
        C::field("title", |r| json!(r.title)),
        C::field("body", |r| json!(r.body)),
        C::field("occurredAt", |r| time(r.occurred_at)),
        C::field("durationSecs", |r| json!(r.duration_secs)),
        C::field("outcome", |r| json!(r.outcome)),
        C::field("ownerId", |r| json!(r.owner_id)),
        C::field("assigneeId", |r| json!(r.assignee_id)),
        C::field("dueAt", |r| opt_time(r.due_at)),
        C::field("completedAt", |r| opt_time(r.completed_at)),
        C::field("createdAt", |r| time(r.created_at)),
    ];
    type Filter = TimelineExportFilter;

    async fn page(
        conn: &mut Conn<'_>,
        scope: &RowFilter,
        f: &TimelineExportFilter,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ActivityRow>> {
        let filter = activity_repo::ExportFilter {
            subject_type: f.subject_type.map(|s| s.as_str().to_owned()),
            subject_id: f.subject_id.clone().map(|i| i.0),
            kind: f.kind.clone(),
            from: f.occurred_from.map(|t| t.naive_utc()),
            to: f.occurred_to.map(|t| t.naive_utc()),
        };
        activity_repo::export_page(conn, scope, &filter, after, limit).await
    }

    fn id(r: &ActivityRow) -> &str {
        &r.id
    }
}

/// Purchases as an export.
pub struct Purchases;

impl Listing for Purchases {
    const LIST: &'static str = "purchases";
    const TYPE: &'static str = "Purchase";
    type Row = PurchaseRow;
    const COLUMNS: &'static [C<PurchaseRow>] = &[
        C::field("id", |r| json!(r.id)),
        C::field("accountId", |r| json!(r.account_id)),
        C::field("contactId", |r| json!(r.contact_id)),
        C::field("orderNumber", |r| json!(r.order_number)),
        C::field("orderedAt", |r| time(r.ordered_at)),
        C::field("amount", |r| export::major(r.amount_minor)),
        C::new("currency", "amount", |r| json!(r.currency)),
        C::field("lineItems", |r| json!(r.line_items)),
        C::field("externalId", |r| json!(r.external_id)),
        C::field("createdAt", |r| time(r.created_at)),
    ];
    type Filter = PurchaseExportFilter;

    async fn page(
        conn: &mut Conn<'_>,
        scope: &RowFilter,
        f: &PurchaseExportFilter,
        after: &str,
        limit: i64,
    ) -> Result<Vec<PurchaseRow>> {
        let filter = purchases::ExportFilter {
            account_id: f.account_id.clone().map(|i| i.0),
            contact_id: f.contact_id.clone().map(|i| i.0),
            from: f.ordered_from.map(|t| t.naive_utc()),
            to: f.ordered_to.map(|t| t.naive_utc()),
        };
        purchases::export_page(conn, scope, &filter, after, limit).await
    }

    fn id(r: &PurchaseRow) -> &str {
        &r.id
    }
}

/// Export mutations.
#[derive(Default)]
pub struct ExportMutation;

#[Object]
impl ExportMutation {
    /// Exports the accounts matching `filter` that you may see, with the
    /// fields you may read. Follow it with `exportJob(id)`; its
    /// `downloadUrl` serves the file.
    async fn export_accounts(
        &self,
        ctx: &Context<'_>,
        filter: Option<AccountFilterInput>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        start::<Accounts>(app, principal(ctx), filter.unwrap_or_default(), format).await
    }

    /// Exports contacts (see `exportAccounts`).
    async fn export_contacts(
        &self,
        ctx: &Context<'_>,
        filter: Option<ContactFilterInput>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        start::<Contacts>(app, principal(ctx), filter.unwrap_or_default(), format).await
    }

    /// Exports timeline entries (see `exportAccounts`).
    async fn export_timeline(
        &self,
        ctx: &Context<'_>,
        filter: Option<TimelineExportFilter>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        start_listing::<Timeline>(app, principal(ctx), filter.unwrap_or_default(), format).await
    }

    /// Exports purchases (see `exportAccounts`).
    async fn export_purchases(
        &self,
        ctx: &Context<'_>,
        filter: Option<PurchaseExportFilter>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let app = ctx.data_unchecked::<App>();
        start_listing::<Purchases>(app, principal(ctx), filter.unwrap_or_default(), format).await
    }
}

#[cfg(test)]
mod tests {
    use crm_core::entity::export::filter_from_json;

    use crate::accounts::AccountFilterInput;
    use crate::contacts::ContactFilterInput;

    #[test]
    fn filters_parse_from_graphql_shaped_json() {
        let f: AccountFilterInput = filter_from_json(Some(
            serde_json::json!({"search": "acme", "lifecycleStage": "ACTIVE"}),
        ))
        .unwrap();
        assert_eq!(f.search.as_deref(), Some("acme"));
        assert!(
            filter_from_json::<ContactFilterInput>(Some(serde_json::json!({"nope": 1}))).is_err()
        );
    }

    #[test]
    fn every_export_is_listed_once() {
        let names: Vec<&str> = super::EXPORTS.iter().map(|e| e.list).collect();
        assert_eq!(names, crate::module::MODULE_EXPORTS);
    }
}
