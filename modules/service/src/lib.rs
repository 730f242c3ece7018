//! crm-service: support tickets, their conversation (public replies and
//! internal notes) and the `serviceEvents` subscription.
//!
//! Downstream of `crm-customers` only (a ticket's requester is a contact,
//! its account an account; support staff see no pipeline); customers never
//! names this crate, so a contact's tickets are the root field
//! `tickets(filter: {contactId})`. Exports its schema parts
//! ([`ServiceQuery`], [`ServiceMutation`], [`ServiceSubscription`]) and one
//! [`MODULE`] value implementing `crm_core::module::Module`. Access is
//! decided by core: a ticket's row scope (its account's owner, its group,
//! its assignee) is the kit's `Scope::Routed`, and resolvers only ask
//! `row_filter` for the rows they may touch.

pub mod module;
pub mod sla;
pub mod tickets;
pub mod values;

use async_graphql::{Context, MergedObject, Subscription};
use crm_core::policy::catalog::FieldUse;
use futures_util::Stream;

pub use module::MODULE;

/// Event topic of this module.
pub const TOPIC: &str = "service";

/// Resource types this module exposes to access policies.
pub const RESOURCES: &[&str] = &["Ticket", "TicketComment", "BusinessCalendar", "SlaPolicy"];

/// Arguments that filter or order by fields without naming them in a
/// `Create…Input` / `Update…Input` (see `crm_customers::FIELD_USES`).
pub const FIELD_USES: &[FieldUse] = &[
    FieldUse::read("TicketFilterInput.status", &["Ticket.status"]),
    FieldUse::read("TicketFilterInput.priority", &["Ticket.priority"]),
    FieldUse::read("TicketFilterInput.channel", &["Ticket.channel"]),
    FieldUse::read("TicketFilterInput.type", &["Ticket.type"]),
    FieldUse::read("TicketFilterInput.assigneeId", &["Ticket.assigneeId"]),
    FieldUse::read("TicketFilterInput.groupId", &["Ticket.groupId"]),
    FieldUse::read("TicketFilterInput.contactId", &["Ticket.contactId"]),
    FieldUse::read("TicketFilterInput.accountId", &["Ticket.accountId"]),
    FieldUse::read("TicketFilterInput.number", &["Ticket.number"]),
    FieldUse::read("TicketFilterInput.tag", &["Ticket.tags"]),
    FieldUse::read("TicketFilterInput.createdFrom", &["Ticket.createdAt"]),
    FieldUse::read("TicketFilterInput.createdTo", &["Ticket.createdAt"]),
    FieldUse::read(
        "TicketFilterInput.search",
        &["Ticket.number", "Ticket.subject", "Ticket.description"],
    ),
    FieldUse::read("TicketFilterInput.deleted", &[]),
    FieldUse::read("TicketFilterInput.custom", &["Ticket.custom.{key}"]),
    FieldUse::read("TicketOrder.field", &[]),
    FieldUse::read("TicketOrder.direction", &[]),
    FieldUse::read("TicketOrder.customKey", &["Ticket.custom.{}"]),
    FieldUse::read("TicketOrderField.CREATED_AT", &["Ticket.createdAt"]),
    FieldUse::read("TicketOrderField.UPDATED_AT", &["Ticket.updatedAt"]),
    FieldUse::read("TicketOrderField.NUMBER", &["Ticket.number"]),
    FieldUse::read("TicketOrderField.SUBJECT", &["Ticket.subject"]),
    FieldUse::read("TicketFilterInput.slaDueBefore", &["Ticket.slaClocks"]),
    FieldUse::read("TicketFilterInput.slaBreached", &["Ticket.slaClocks"]),
    // The report's figures are counted from tickets' clocks, assignees
    // and groups: reading them needs read on those fields.
    FieldUse::read("SlaReport.total", &["Ticket.slaClocks"]),
    FieldUse::read(
        "SlaReport.byAgent",
        &["Ticket.slaClocks", "Ticket.assigneeId"],
    ),
    FieldUse::read("SlaReport.byGroup", &["Ticket.slaClocks", "Ticket.groupId"]),
    FieldUse::read("SlaReport.byPolicy", &["Ticket.slaClocks"]),
];

/// How this crate's records are owned: a ticket belongs to its account's
/// owner (sales see their accounts' tickets) and is worked by its group
/// (scope `group`) and its assignee (scope `assigned`); a conversation
/// entry belongs to its ticket.
pub const OWNERSHIP: &[crm_core::ownership::Ownership] = {
    use crm_core::ownership::Ownership;
    &[
        Ownership::through("Ticket", "Account")
            .with_assignee()
            .with_group(),
        Ownership::through("TicketComment", "Ticket"),
        Ownership::shared("BusinessCalendar"),
        Ownership::shared("SlaPolicy"),
    ]
};

/// The module's queries.
#[derive(MergedObject, Default)]
pub struct ServiceQuery(tickets::TicketQuery, sla::SlaQuery);

/// The module's mutations.
#[derive(MergedObject, Default)]
pub struct ServiceMutation(
    tickets::TicketMutation,
    tickets::export::TicketExportMutation,
    tickets::import::TicketImportMutation,
    sla::SlaMutation,
);

/// The module's subscriptions.
#[derive(Default)]
pub struct ServiceSubscription;

#[Subscription]
impl ServiceSubscription {
    /// Changes to tickets that you may see: `ticket.created`,
    /// `ticket.updated`, `ticket.status_changed`, `ticket.solved`,
    /// `ticket.closed`, `ticket.reopened`, `ticket.replied`,
    /// `ticket.noted` (an internal note), `ticket.customer_message`,
    /// `ticket.escalated`, `ticket.deleted`, `sla.warning` and
    /// `sla.breached` (a clock reached its warning share or its target:
    /// `changed.slaClocks` names the clock), `sla.escalated` (to the
    /// manager team of a breached ticket's group), … with the
    /// changed fields you may read (an internal note's event is hidden from
    /// whoever may not read `Ticket.internalNotes`). Stored events after
    /// `after` first, then live ones, none missed and none twice: resume
    /// after a disconnect with the last cursor.
    async fn service_events(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> crm_core::Result<
        impl Stream<Item = async_graphql::Result<crm_core::graphql::DomainEvent>> + use<>,
    > {
        crm_core::graphql::event_stream_where(
            ctx,
            after,
            Some(vec![TOPIC.to_owned()]),
            Box::new(|_| true),
        )
        .await
    }
}
