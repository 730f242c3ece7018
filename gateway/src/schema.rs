//! The merged GraphQL schema: every module's `Query`, `Mutation` and
//! `Subscription` parts in one place. Adding a module = one line per root.

use async_graphql::{Context, ID, Interface, MergedObject, MergedSubscription, Object, Schema};
use crm_core::App;
use crm_core::config::Limits;
use crm_core::graphql::{PlatformQuery, PlatformSubscription};
use crm_core::identity::graphql::{IdentityMutation, IdentityQuery, Team, User};
use crm_core::identity::repo;
use crm_core::{Error, Result};

/// Root query: the merge of every module's query part.
#[derive(MergedObject, Default)]
pub struct Query(IdentityQuery, PlatformQuery, NodeQuery);

/// Root mutation.
#[derive(MergedObject, Default)]
pub struct Mutation(IdentityMutation);

/// Root subscription.
#[derive(MergedSubscription, Default)]
pub struct Subscription(PlatformSubscription);

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
}

/// The `node` root field.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Fetches any record by its global id.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Node> {
        crm_core::access::authorize(ctx, "node", crm_core::access::Requirement::Authenticated)?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let not_found = || Error::NotFound(format!("node {}", id.0));
        match crm_core::ids::prefix_of(&id) {
            Some("usr") => Ok(Node::User(
                repo::user(&mut c.conn(), &id)
                    .await?
                    .ok_or_else(not_found)?
                    .into(),
            )),
            Some("team") => Ok(Node::Team(
                repo::team(&mut c.conn(), &id)
                    .await?
                    .ok_or_else(not_found)?
                    .into(),
            )),
            _ => Err(not_found()),
        }
    }
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

/// The SDL of the schema, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    let limits = crm_core::config::Config::with(&[])
        .map(|c| c.limits)
        .expect("default configuration is valid");
    build(None, &limits).sdl()
}
