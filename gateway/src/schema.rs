//! The merged GraphQL schema: every module's `Query`, `Mutation` and
//! `Subscription` parts in one place. Adding a module = one line per root.

use async_graphql::{Context, ID, Interface, MergedObject, MergedSubscription, Object, Schema};
use crm_core::App;
use crm_core::config::Limits;
use crm_core::custom::{CustomFieldMutation, CustomFieldQuery};
use crm_core::graphql::{PlatformQuery, PlatformSubscription};
use crm_core::identity::graphql::{self as identity, IdentityMutation, IdentityQuery, Team, User};
use crm_core::jobs::{JobMutation, JobQuery, JobSubscription};
use crm_core::policy::Catalog;
use crm_core::policy::graphql::AccessQuery;
use crm_core::{Error, Result};
use crm_customers::accounts::{Account, account_by_id};
use crm_customers::contacts::{Contact, contact_by_id};
use crm_customers::{CustomersMutation, CustomersQuery, CustomersSubscription};

/// Root query: the merge of every module's query part.
#[derive(MergedObject, Default)]
pub struct Query(
    IdentityQuery,
    PlatformQuery,
    AccessQuery,
    NodeQuery,
    JobQuery,
    CustomFieldQuery,
    CustomersQuery,
);

/// Root mutation.
#[derive(MergedObject, Default)]
pub struct Mutation(
    IdentityMutation,
    JobMutation,
    CustomFieldMutation,
    CustomersMutation,
);

/// Root subscription.
#[derive(MergedSubscription, Default)]
pub struct Subscription(PlatformSubscription, JobSubscription, CustomersSubscription);

/// The served schema type.
pub type CrmSchema = Schema<Query, Mutation, Subscription>;

/// Any record with a global id; `node(id)` routes on the id's prefix.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "&ID", desc = "Global id with a type prefix"))]
pub enum Node {
    /// A user.
    User(User),
    /// A team.
    Team(Team),
    /// An account.
    Account(Account),
    /// A contact.
    Contact(Contact),
}

/// The `node` root field.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Fetches any record by its global id.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Node> {
        match crm_core::ids::prefix_of(&id) {
            Some("usr") => Ok(Node::User(identity::user_by_id(ctx, &id).await?)),
            Some("team") => Ok(Node::Team(identity::team_by_id(ctx, &id).await?)),
            Some("acc") => Ok(Node::Account(account_by_id(ctx, &id).await?)),
            Some("con") => Ok(Node::Contact(contact_by_id(ctx, &id).await?)),
            _ => Err(Error::NotFound(format!("node {}", id.0))),
        }
    }
}

/// Adds every module's per-request data (batch loaders) to a request.
pub fn request_data(
    request: async_graphql::Request,
    app: &App,
    principal: &crm_core::access::Principal,
) -> async_graphql::Request {
    crm_customers::request_data(request, app, principal)
}

/// Builds the schema with the request limits applied.
pub fn build(app: Option<App>, limits: &Limits) -> CrmSchema {
    let mut b = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .limit_directives(limits.max_directives);
    if !limits.introspection {
        b = b.disable_introspection();
    }
    if !limits.suggestions {
        b = b.disable_suggestions();
    }
    if let Some(app) = app {
        b = b.data(app);
    }
    b.finish()
}

/// Resource types every compiled-in crate exposes to policies.
pub fn resources() -> Vec<&'static str> {
    [
        crm_core::identity::RESOURCES,
        &[crm_core::jobs::RESOURCE, crm_core::custom::RESOURCE],
        crm_customers::RESOURCES,
    ]
    .concat()
}

/// Every compiled-in crate's declared argument uses of fields (filters,
/// orderings, scalar-argument changes).
pub fn field_uses() -> Vec<crm_core::policy::catalog::FieldUse> {
    [crm_core::identity::FIELD_USES, crm_customers::FIELD_USES].concat()
}

/// What policies may name, read from the built schema.
pub fn catalog() -> Catalog {
    Catalog::from_sdl(&sdl(), &resources())
        .with_uses(&field_uses())
        .with_ownership(crm_customers::OWNERSHIP)
}

/// The SDL of the schema, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    let limits = crm_core::config::Config::with(&[])
        .map(|c| c.limits)
        .expect("default configuration is valid");
    build(None, &limits).sdl()
}
