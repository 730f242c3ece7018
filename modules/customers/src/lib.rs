//! crm-customers: accounts, contacts, tags and the interaction timeline.
//!
//! Exports its schema parts ([`CustomersQuery`], [`CustomersMutation`],
//! [`CustomersSubscription`]) and one [`MODULE`] value implementing
//! `crm_core::module::Module` (policy resources, field uses, ownership,
//! entities, references, loaders, background work, the command line's
//! import, export and demo) for the gateway to list. Access is decided by
//! core: resolvers ask `row_filter` for the rows they may touch and never
//! look at roles.

pub mod accounts;
pub mod activities;
pub mod contacts;
pub mod demo;
pub mod export;
pub mod import;
pub mod links;
pub mod loaders;
pub mod merge;
pub mod module;
pub mod privacy;
pub mod purchases;
pub mod tags;
pub mod values;

use async_graphql::MergedObject;
use crm_core::policy::catalog::FieldUse;

pub use module::MODULE;

/// Event topic of this module.
pub const TOPIC: &str = "customers";

/// Resource types this module exposes to access policies.
pub const RESOURCES: &[&str] = &["Account", "Contact", "Tag", "Activity", "Purchase", "Merge"];

/// Arguments that filter, order by or change fields without naming them in a
/// `Create…Input` / `Update…Input`: the request check needs `read` (filters,
/// orderings, searches) or `write` (changes) on these fields. Every field of
/// a filter input and every value of an order enum is declared (an empty
/// list: no field rule applies).
pub const FIELD_USES: &[FieldUse] = &[
    // Changes made by mutations with scalar arguments.
    FieldUse::write("Mutation.assignAccounts(ownerId)", &["Account.ownerId"]),
    FieldUse::write("Mutation.assignContacts(ownerId)", &["Contact.ownerId"]),
    FieldUse::write(
        "Mutation.changeLifecycleStage(stage)",
        &["Account.lifecycleStage"],
    ),
    FieldUse::write("Mutation.setAccountTags(tagIds)", &["Account.tags"]),
    FieldUse::write("Mutation.setContactTags(tagIds)", &["Contact.tags"]),
    FieldUse::write("Mutation.completeTask(id)", &["Activity.completedAt"]),
    // A merge gives the survivor the others' emails, phones, tags and
    // contacts.
    FieldUse::write(
        "Mutation.mergeContacts(otherIds)",
        &["Contact.emails", "Contact.phones", "Contact.tags"],
    ),
    FieldUse::write(
        "Mutation.mergeAccounts(otherIds)",
        &["Account.tags", "Contact.accountId"],
    ),
    // Account lists and exports.
    FieldUse::read("AccountFilterInput.ownerId", &["Account.ownerId"]),
    FieldUse::read("AccountFilterInput.teamId", &["Account.team"]),
    FieldUse::read("AccountFilterInput.tagId", &["Account.tags"]),
    FieldUse::read(
        "AccountFilterInput.lifecycleStage",
        &["Account.lifecycleStage"],
    ),
    FieldUse::read("AccountFilterInput.industry", &["Account.industry"]),
    FieldUse::read("AccountFilterInput.createdFrom", &["Account.createdAt"]),
    FieldUse::read("AccountFilterInput.createdTo", &["Account.createdAt"]),
    FieldUse::read("AccountFilterInput.updatedFrom", &["Account.updatedAt"]),
    FieldUse::read("AccountFilterInput.updatedTo", &["Account.updatedAt"]),
    FieldUse::read(
        "AccountFilterInput.search",
        &["Account.name", "Account.website", "Account.phone"],
    ),
    FieldUse::read("AccountFilterInput.namePrefix", &["Account.name"]),
    FieldUse::read("AccountFilterInput.deleted", &[]),
    FieldUse::read("AccountFilterInput.custom", &["Account.custom.{key}"]),
    FieldUse::read("AccountOrder.field", &[]),
    FieldUse::read("AccountOrder.direction", &[]),
    FieldUse::read("AccountOrder.customKey", &["Account.custom.{}"]),
    FieldUse::read("AccountOrderField.NAME", &["Account.name"]),
    FieldUse::read("AccountOrderField.CREATED_AT", &["Account.createdAt"]),
    FieldUse::read("AccountOrderField.UPDATED_AT", &["Account.updatedAt"]),
    // Contact lists and exports.
    FieldUse::read("ContactFilterInput.ownerId", &["Contact.ownerId"]),
    FieldUse::read("ContactFilterInput.accountId", &["Contact.accountId"]),
    FieldUse::read("ContactFilterInput.teamId", &["Contact.ownerId"]),
    FieldUse::read("ContactFilterInput.tagId", &["Contact.tags"]),
    FieldUse::read("ContactFilterInput.consentState", &["Contact.consent"]),
    FieldUse::read("ContactFilterInput.createdFrom", &["Contact.createdAt"]),
    FieldUse::read("ContactFilterInput.createdTo", &["Contact.createdAt"]),
    FieldUse::read(
        "ContactFilterInput.search",
        &[
            "Contact.firstName",
            "Contact.lastName",
            "Contact.emails",
            "Contact.phones",
            "Contact.account",
            "Account.name",
        ],
    ),
    FieldUse::read("ContactFilterInput.deleted", &[]),
    FieldUse::read("ContactFilterInput.custom", &["Contact.custom.{key}"]),
    FieldUse::read("ContactOrder.field", &[]),
    FieldUse::read("ContactOrder.direction", &[]),
    FieldUse::read("ContactOrder.customKey", &["Contact.custom.{}"]),
    FieldUse::read("ContactOrderField.LAST_NAME", &["Contact.lastName"]),
    FieldUse::read("ContactOrderField.CREATED_AT", &["Contact.createdAt"]),
    // Timeline and purchase exports, tasks.
    FieldUse::read(
        "TimelineExportFilter.subjectType",
        &["Activity.subjectType"],
    ),
    FieldUse::read("TimelineExportFilter.subjectId", &["Activity.subjectId"]),
    FieldUse::read("TimelineExportFilter.kind", &["Activity.kind"]),
    FieldUse::read(
        "TimelineExportFilter.occurredFrom",
        &["Activity.occurredAt"],
    ),
    FieldUse::read("TimelineExportFilter.occurredTo", &["Activity.occurredAt"]),
    FieldUse::read("PurchaseExportFilter.accountId", &["Purchase.accountId"]),
    FieldUse::read("PurchaseExportFilter.contactId", &["Purchase.contactId"]),
    FieldUse::read("PurchaseExportFilter.orderedFrom", &["Purchase.orderedAt"]),
    FieldUse::read("PurchaseExportFilter.orderedTo", &["Purchase.orderedAt"]),
    FieldUse::read("Query.myTasks(dueBefore)", &["Activity.dueAt"]),
    FieldUse::read("Query.timeline(subjectType)", &["Activity.subjectType"]),
    FieldUse::read("Query.timeline(subjectId)", &["Activity.subjectId"]),
    FieldUse::read("Query.merges(entityType)", &["Merge.entityType"]),
    FieldUse::read("Query.merges(survivorId)", &["Merge.survivorId"]),
];

/// How this crate's records are owned, for row scope: a purchase belongs
/// to its account's owner; tags to nobody; a task's assignee is the
/// `assigned` scope of `Activity`.
pub const OWNERSHIP: &[crm_core::ownership::Ownership] = {
    use crm_core::ownership::Ownership;
    &[
        Ownership::column("Account"),
        Ownership::column("Contact"),
        Ownership::shared("Tag"),
        Ownership::column("Activity").with_assignee(),
        Ownership::through("Purchase", "Account"),
        Ownership::column("Merge"),
    ]
};

/// The module's queries.
#[derive(MergedObject, Default)]
pub struct CustomersQuery(
    accounts::AccountQuery,
    contacts::ContactQuery,
    tags::TagQuery,
    activities::ActivityQuery,
    privacy::PrivacyQuery,
    merge::MergeQuery,
);

/// The module's mutations.
#[derive(MergedObject, Default)]
pub struct CustomersMutation(
    accounts::AccountMutation,
    contacts::ContactMutation,
    tags::TagMutation,
    activities::ActivityMutation,
    purchases::PurchaseMutation,
    import::ImportMutation,
    export::ExportMutation,
    privacy::PrivacyMutation,
    merge::MergeMutation,
);

/// The module's subscriptions.
#[derive(Default)]
pub struct CustomersSubscription;

#[async_graphql::Subscription]
impl CustomersSubscription {
    /// Changes to accounts, contacts, tags, the timeline and purchases that
    /// you may see: `account.created`, `contact.updated`, … with the changed
    /// fields you may read. Resume after a disconnect with the last cursor.
    async fn customer_events(
        &self,
        ctx: &async_graphql::Context<'_>,
        after: Option<String>,
    ) -> crm_core::Result<
        impl futures_util::Stream<Item = async_graphql::Result<crm_core::graphql::DomainEvent>> + use<>,
    > {
        crm_core::graphql::event_stream(ctx, after, Some(vec![TOPIC.to_owned()])).await
    }
}
