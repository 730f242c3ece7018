//! The merged GraphQL schema: every module's `Query`, `Mutation` and
//! `Subscription` parts in one place, each behind its module's cargo
//! feature. Adding a module = one line per root it has (and a `Node`
//! variant per type `node(id)` serves); everything else the gateway reads
//! from `modules::MODULES`.

use async_graphql::{Context, ID, Interface, MergedObject, MergedSubscription, Object, Schema};
use crm_core::App;
use crm_core::config::Limits;
use crm_core::custom::{CustomFieldMutation, CustomFieldQuery};
use crm_core::graphql::{PlatformQuery, PlatformSubscription};
use crm_core::identity::graphql::{self as identity, IdentityMutation, IdentityQuery, Team, User};
use crm_core::jobs::{JobMutation, JobQuery, JobSubscription};
use crm_core::policy::Catalog;
use crm_core::policy::graphql::AccessQuery;
use crm_core::webhooks::graphql::{WebhookMutation, WebhookQuery};
use crm_core::{Error, Result};
#[cfg(feature = "customers")]
use crm_customers::accounts::{Account, account_by_id};
#[cfg(feature = "customers")]
use crm_customers::contacts::{Contact, contact_by_id};
#[cfg(feature = "customers")]
use crm_customers::{CustomersMutation, CustomersQuery, CustomersSubscription};
#[cfg(feature = "leads")]
use crm_leads::leads::{Lead, lead_by_id};
#[cfg(feature = "leads")]
use crm_leads::scoring::graphql::{ScoringRule, scoring_rule_by_id};
#[cfg(feature = "leads")]
use crm_leads::{LeadsMutation, LeadsQuery, LeadsSubscription};
#[cfg(feature = "pipeline")]
use crm_pipeline::contracts::{Contract, contract_by_id};
#[cfg(feature = "pipeline")]
use crm_pipeline::opportunities::{Opportunity, opportunity_by_id};
#[cfg(feature = "pipeline")]
use crm_pipeline::pipelines::{Pipeline, PipelineStage, pipeline_by_id, stage_by_id};
#[cfg(feature = "pipeline")]
use crm_pipeline::products::{
    PriceBook, PriceBookEntry, Product, entry_by_id, price_book_by_id, product_by_id,
};
#[cfg(feature = "pipeline")]
use crm_pipeline::{PipelineMutation, PipelineQuery, PipelineSubscription};
#[cfg(feature = "service")]
use crm_service::tickets::{Ticket, ticket_by_id};
#[cfg(feature = "service")]
use crm_service::{ServiceMutation, ServiceQuery, ServiceSubscription};

use crate::modules::{MODULES, registry};

/// Root query: the merge of every module's query part.
#[derive(MergedObject, Default)]
pub struct Query(
    IdentityQuery,
    PlatformQuery,
    AccessQuery,
    NodeQuery,
    JobQuery,
    CustomFieldQuery,
    WebhookQuery,
    #[cfg(feature = "customers")] CustomersQuery,
    #[cfg(feature = "pipeline")] PipelineQuery,
    #[cfg(feature = "leads")] LeadsQuery,
    #[cfg(feature = "service")] ServiceQuery,
);

/// Root mutation.
#[derive(MergedObject, Default)]
pub struct Mutation(
    IdentityMutation,
    JobMutation,
    CustomFieldMutation,
    WebhookMutation,
    #[cfg(feature = "customers")] CustomersMutation,
    #[cfg(feature = "pipeline")] PipelineMutation,
    #[cfg(feature = "leads")] LeadsMutation,
    #[cfg(feature = "service")] ServiceMutation,
);

/// Root subscription.
#[derive(MergedSubscription, Default)]
pub struct Subscription(
    PlatformSubscription,
    JobSubscription,
    #[cfg(feature = "customers")] CustomersSubscription,
    #[cfg(feature = "pipeline")] PipelineSubscription,
    #[cfg(feature = "leads")] LeadsSubscription,
    #[cfg(feature = "service")] ServiceSubscription,
);

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
    #[cfg(feature = "customers")]
    Account(Account),
    /// A contact.
    #[cfg(feature = "customers")]
    Contact(Contact),
    /// An opportunity.
    #[cfg(feature = "pipeline")]
    Opportunity(Opportunity),
    /// A pipeline.
    #[cfg(feature = "pipeline")]
    Pipeline(Pipeline),
    /// A pipeline stage.
    #[cfg(feature = "pipeline")]
    PipelineStage(PipelineStage),
    /// A lead.
    #[cfg(feature = "leads")]
    Lead(Lead),
    /// A lead scoring rule.
    #[cfg(feature = "leads")]
    ScoringRule(ScoringRule),
    /// A support ticket.
    #[cfg(feature = "service")]
    Ticket(Ticket),
    /// A product.
    #[cfg(feature = "pipeline")]
    Product(Product),
    /// A price book.
    #[cfg(feature = "pipeline")]
    PriceBook(PriceBook),
    /// A price book entry.
    #[cfg(feature = "pipeline")]
    PriceBookEntry(PriceBookEntry),
    /// A contract.
    #[cfg(feature = "pipeline")]
    Contract(Contract),
}

/// The `node` root field.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Fetches any record by its global id.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Node> {
        let prefix = crm_core::ids::prefix_of(&id);
        // Platform types, then the type whose module registered the prefix.
        let ty = match prefix {
            Some("usr") => "User",
            Some("team") => "Team",
            Some(p) => registry().entity_by_prefix(p).map_or("", |e| e.ty),
            None => "",
        };
        match ty {
            "User" => Ok(Node::User(identity::user_by_id(ctx, &id).await?)),
            "Team" => Ok(Node::Team(identity::team_by_id(ctx, &id).await?)),
            #[cfg(feature = "customers")]
            "Account" => Ok(Node::Account(account_by_id(ctx, &id).await?)),
            #[cfg(feature = "customers")]
            "Contact" => Ok(Node::Contact(contact_by_id(ctx, &id).await?)),
            #[cfg(feature = "pipeline")]
            "Opportunity" => Ok(Node::Opportunity(opportunity_by_id(ctx, &id).await?)),
            #[cfg(feature = "pipeline")]
            "Pipeline" => Ok(Node::Pipeline(pipeline_by_id(ctx, &id).await?)),
            #[cfg(feature = "pipeline")]
            "PipelineStage" => Ok(Node::PipelineStage(stage_by_id(ctx, &id).await?)),
            #[cfg(feature = "leads")]
            "Lead" => Ok(Node::Lead(lead_by_id(ctx, &id).await?)),
            #[cfg(feature = "leads")]
            "ScoringRule" => Ok(Node::ScoringRule(scoring_rule_by_id(ctx, &id).await?)),
            #[cfg(feature = "service")]
            "Ticket" => Ok(Node::Ticket(ticket_by_id(ctx, &id).await?)),
            #[cfg(feature = "pipeline")]
            "Product" => Ok(Node::Product(product_by_id(ctx, &id).await?)),
            #[cfg(feature = "pipeline")]
            "PriceBook" => Ok(Node::PriceBook(price_book_by_id(ctx, &id).await?)),
            #[cfg(feature = "pipeline")]
            "PriceBookEntry" => Ok(Node::PriceBookEntry(entry_by_id(ctx, &id).await?)),
            #[cfg(feature = "pipeline")]
            "Contract" => Ok(Node::Contract(contract_by_id(ctx, &id).await?)),
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
    MODULES
        .iter()
        .fold(request, |r, m| m.request_data(r, app, principal))
}

/// Builds the schema with the request limits applied.
pub fn build(app: Option<App>, limits: &Limits) -> CrmSchema {
    registry();
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
    let platform = [
        crm_core::identity::RESOURCES,
        &[crm_core::jobs::RESOURCE, crm_core::custom::RESOURCE],
        crm_core::webhooks::RESOURCES,
    ];
    platform
        .into_iter()
        .chain(MODULES.iter().map(|m| m.resources()))
        .flatten()
        .copied()
        .collect()
}

/// Every compiled-in crate's declared argument uses of fields (filters,
/// orderings, scalar-argument changes).
pub fn field_uses() -> Vec<crm_core::policy::catalog::FieldUse> {
    [
        crm_core::identity::FIELD_USES,
        crm_core::webhooks::FIELD_USES,
    ]
    .into_iter()
    .chain(MODULES.iter().map(|m| m.field_uses()))
    .flatten()
    .copied()
    .collect()
}

/// What policies may name, read from the built schema.
pub fn catalog() -> Catalog {
    registry();
    let ownership: Vec<_> = crm_core::webhooks::OWNERSHIP
        .iter()
        .chain(MODULES.iter().flat_map(|m| m.ownership()))
        .copied()
        .collect();
    Catalog::from_sdl(&sdl(), &resources())
        .with_uses(&field_uses())
        .with_ownership(&ownership)
}

/// The SDL of the schema, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    let limits = crm_core::config::Config::with(&[])
        .map(|c| c.limits)
        .expect("default configuration is valid");
    build(None, &limits).sdl()
}
