//! The running platform: database, configuration, authentication and events,
//! built once at start-up and shared (via GraphQL context data) with every
//! module's resolvers.

use std::sync::Arc;

use crate::config::Config;
use crate::db::{Db, Tx};
use crate::error::Result;
use crate::events::hub::EventHub;
use crate::identity::auth::AuthService;
use crate::identity::teams::TeamCache;
use crate::policy::{Catalog, PolicyEngine};

/// Shared state of one process.
#[derive(Clone)]
pub struct App {
    /// The database.
    pub db: Db,
    /// The resolved configuration.
    pub config: Arc<Config>,
    /// Authentication and its caches.
    pub auth: Arc<AuthService>,
    /// The event dispatcher.
    pub events: Arc<EventHub>,
    /// The access policy in force.
    pub policy: Arc<PolicyEngine>,
    /// The team hierarchy cache.
    pub teams: Arc<TeamCache>,
}

impl App {
    /// Loads the policy, connects, migrates, and wires the caches to the
    /// event stream. `catalog` lists what policies may name (from the built
    /// schema). Does not spawn the dispatcher or the policy watcher, and
    /// writes no data: creating the first admin on an empty database is
    /// `identity::bootstrap::ensure_admin`, which commands call explicitly.
    pub async fn start(config: Config, catalog: Arc<Catalog>) -> Result<App> {
        let policy = PolicyEngine::start(&config.policy_dir, catalog)
            .await
            .map_err(|problems| {
                crate::Error::Config(format!(
                    "policy in {}: {}",
                    config.policy_dir.display(),
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
            })?;
        let db = Db::connect(&config.database_url, &config.pool).await?;
        let applied = db.migrate().await?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        // The hub is positioned at the end of the outbox before the auth
        // caches load, so no invalidation can fall between the two.
        let events = EventHub::new(db.clone()).await?;
        let auth = Arc::new(AuthService::new(db.clone(), &config).await?);
        let listener = auth.clone();
        events.listen(Box::new(move |e| listener.on_event(e)));
        let teams = Arc::new(TeamCache::default());
        let listener = teams.clone();
        events.listen(Box::new(move |e| listener.on_event(e)));
        Ok(App {
            db,
            config: Arc::new(config),
            auth,
            events,
            policy,
            teams,
        })
    }

    /// Commits a write transaction and wakes the local dispatcher so its
    /// events go out at once.
    pub async fn commit(&self, tx: Tx) -> Result<()> {
        tx.commit().await?;
        self.events.poke();
        Ok(())
    }
}
