//! crm-customers: accounts, contacts, tags and the interaction timeline.
//!
//! Exports its schema parts ([`CustomersQuery`], [`CustomersMutation`]), its
//! policy resources ([`RESOURCES`]) and its background work
//! ([`spawn_background`]) for the gateway to merge. Access is decided by
//! core: resolvers ask `row_filter` for the rows they may touch and never
//! look at roles.

pub mod accounts;
pub mod activities;
pub mod contacts;
pub mod demo;
pub mod export;
pub mod import;
pub mod loaders;
pub mod merge;
pub mod privacy;
pub mod purchases;
pub mod tags;
pub mod values;

use async_graphql::MergedObject;

/// Event topic of this module.
pub const TOPIC: &str = "customers";

/// Resource types this module exposes to access policies.
pub const RESOURCES: &[&str] = &["Account", "Contact", "Tag", "Activity", "Purchase", "Merge"];

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

/// Starts the module's background work (task reminders) until shutdown.
pub fn spawn_background(app: &crm_core::App, shutdown: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(activities::reminders::run(app.clone(), shutdown));
}

/// Adds the module's per-request data (batch loaders) to a request.
pub fn request_data(
    request: async_graphql::Request,
    app: &crm_core::App,
    principal: &crm_core::access::Principal,
) -> async_graphql::Request {
    request.data(loaders::Loaders::new(app, principal))
}
