//! crm-customers: accounts, contacts and tags.
//!
//! Exports its schema parts ([`CustomersQuery`], [`CustomersMutation`]) and
//! its policy resources ([`RESOURCES`]) for the gateway to merge. Access is
//! decided by core: resolvers ask `row_filter` for the rows they may touch
//! and never look at roles.

pub mod accounts;
pub mod contacts;
pub mod tags;
pub mod values;

use async_graphql::MergedObject;

/// Event topic of this module.
pub const TOPIC: &str = "customers";

/// Resource types this module exposes to access policies.
pub const RESOURCES: &[&str] = &["Account", "Contact", "Tag"];

/// The module's queries.
#[derive(MergedObject, Default)]
pub struct CustomersQuery(
    accounts::AccountQuery,
    contacts::ContactQuery,
    tags::TagQuery,
);

/// The module's mutations.
#[derive(MergedObject, Default)]
pub struct CustomersMutation(
    accounts::AccountMutation,
    contacts::ContactMutation,
    tags::TagMutation,
);
