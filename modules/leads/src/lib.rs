//! crm-leads: leads (owned, or waiting in a team's queue), their duplicate
//! check against contacts and other leads, the assignment rules that route
//! new leads (round robin, user, queue), their conversion into accounts,
//! contacts and opportunities, lead scoring (fit and engagement rules,
//! decay, grades), and the `leadEvents` subscription.
//!
//! Downstream of `crm-customers` and `crm-pipeline` (a conversion writes
//! their records through their kit entities); neither names this crate.
//! Exports its schema parts ([`LeadsQuery`], [`LeadsMutation`],
//! [`LeadsSubscription`]) and one [`MODULE`] value implementing
//! `crm_core::module::Module`. Access is decided by core: resolvers ask
//! `row_filter` for the rows they may touch and never look at roles.

pub mod assignment;
pub mod convert;
pub mod forms;
pub mod leads;
pub mod module;
pub mod scoring;
pub mod values;

use async_graphql::{Context, MergedObject, Subscription};
use crm_core::policy::catalog::FieldUse;
use futures_util::Stream;

pub use module::MODULE;

/// Event topic of this module.
pub const TOPIC: &str = "leads";

/// Resource types this module exposes to access policies.
pub const RESOURCES: &[&str] = &["Lead", "LeadForm", "ScoringRule", "AssignmentRule"];

/// Arguments and input fields that filter by, order by or change fields
/// without naming them in `CreateLeadInput` / `UpdateLeadInput` (see
/// `crm_customers::FIELD_USES`).
pub const FIELD_USES: &[FieldUse] = &[
    FieldUse::write(
        "Mutation.moveAssignmentRule(position)",
        &["AssignmentRule.position"],
    ),
    // Running the rules over leads gives them owners and queues.
    FieldUse::write(
        "Mutation.reassignLeads(filter)",
        &["Lead.ownerId", "Lead.teamId"],
    ),
    FieldUse::read("LeadFilterInput.status", &["Lead.status"]),
    FieldUse::read("LeadFilterInput.source", &["Lead.source"]),
    FieldUse::read("LeadFilterInput.campaignId", &["Lead.campaignId"]),
    FieldUse::read("LeadFilterInput.ownerId", &["Lead.ownerId"]),
    FieldUse::read("LeadFilterInput.teamId", &["Lead.teamId"]),
    FieldUse::read("LeadFilterInput.queued", &["Lead.ownerId"]),
    FieldUse::read("LeadFilterInput.country", &["Lead.country"]),
    FieldUse::read("LeadFilterInput.region", &["Lead.region"]),
    FieldUse::read("LeadFilterInput.industry", &["Lead.industry"]),
    FieldUse::read("LeadFilterInput.sizeBand", &["Lead.sizeBand"]),
    FieldUse::read("LeadFilterInput.tagId", &["Lead.tagIds"]),
    FieldUse::read("LeadFilterInput.createdFrom", &["Lead.createdAt"]),
    FieldUse::read("LeadFilterInput.createdTo", &["Lead.createdAt"]),
    FieldUse::read(
        "LeadFilterInput.search",
        &[
            "Lead.firstName",
            "Lead.lastName",
            "Lead.company",
            "Lead.emails",
            "Lead.phones",
        ],
    ),
    FieldUse::read("LeadFilterInput.deleted", &[]),
    FieldUse::read("LeadFilterInput.custom", &["Lead.custom.{key}"]),
    FieldUse::read("LeadFilterInput.minScore", &["Lead.score"]),
    FieldUse::read("LeadFilterInput.grade", &["Lead.grade"]),
    FieldUse::read("LeadOrder.field", &[]),
    FieldUse::read("LeadOrder.direction", &[]),
    FieldUse::read("LeadOrder.customKey", &["Lead.custom.{}"]),
    FieldUse::read("LeadOrderField.CREATED_AT", &["Lead.createdAt"]),
    FieldUse::read("LeadOrderField.UPDATED_AT", &["Lead.updatedAt"]),
    // A conversion sets the lead's status and links, and writes the
    // account and opportunity fields it is given.
    FieldUse::write(
        "ConvertLeadInput.id",
        &[
            "Lead.status",
            "Lead.convertedAt",
            "Lead.convertedContactId",
            "Lead.convertedAccountId",
        ],
    ),
    FieldUse::read("ConvertLeadInput.version", &[]),
    FieldUse::write("ConvertLeadInput.accountId", &["Lead.convertedAccountId"]),
    FieldUse::write("ConvertLeadInput.contactId", &["Lead.convertedContactId"]),
    FieldUse::write(
        "ConvertLeadInput.account",
        &[
            "Account.name",
            "Account.industry",
            "Account.website",
            "Account.sizeBand",
        ],
    ),
    FieldUse::write(
        "ConvertLeadInput.opportunity",
        &[
            "Lead.convertedOpportunityId",
            "Opportunity.name",
            "Opportunity.pipelineId",
            "Opportunity.stageId",
            "Opportunity.amount",
            "Opportunity.closeDate",
        ],
    ),
];

/// How this crate's records are owned: a lead by its owner, or, unowned,
/// by its team's queue (the kit's `OwnerOrQueue` scope). Web forms and
/// scoring rules are shared configuration (only `all` scopes match). An
/// assignment rule belongs to a team, not a user (`RowFilter::admits_team`):
/// `team` is the rules of the caller's teams, `own` none.
pub const OWNERSHIP: &[crm_core::ownership::Ownership] = &[
    crm_core::ownership::Ownership::column("Lead"),
    crm_core::ownership::Ownership::shared("LeadForm"),
    crm_core::ownership::Ownership::shared("ScoringRule"),
    crm_core::ownership::Ownership::column("AssignmentRule"),
];

/// The module's queries.
#[derive(MergedObject, Default)]
pub struct LeadsQuery(
    leads::LeadQuery,
    forms::LeadFormQuery,
    scoring::graphql::ScoringQuery,
    assignment::AssignmentQuery,
);

/// The module's mutations.
#[derive(MergedObject, Default)]
pub struct LeadsMutation(
    leads::LeadMutation,
    leads::LeadExportMutation,
    leads::import::LeadImportMutation,
    convert::ConvertMutation,
    forms::LeadFormMutation,
    scoring::graphql::ScoringMutation,
    assignment::AssignmentMutation,
);

/// The module's subscriptions.
#[derive(Default)]
pub struct LeadsSubscription;

#[Subscription]
impl LeadsSubscription {
    /// Changes to leads you may see: `lead.created`, `lead.updated`,
    /// `lead.assigned` (an assignment rule gave it an owner or queue),
    /// `lead.converted`, `lead.deleted`, `lead.restored`, `lead.purged`,
    /// with the changed fields you may read. Stored events after `after`
    /// first, then live ones, none missed and none twice: resume after a
    /// disconnect with the last cursor.
    async fn lead_events(
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
            Box::new(|e| e.entity_type == "Lead"),
        )
        .await
    }
}
