//! The running platform: database, configuration, authentication and events,
//! built once at start-up and shared (via GraphQL context data) with every
//! module's resolvers.

use std::sync::Arc;

use crate::config::Config;
use crate::db::{Db, Tx};
use crate::error::Result;
use crate::events::hub::EventHub;
use crate::identity::auth::AuthService;

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
}

impl App {
    /// Connects, migrates, and wires the caches to the event stream. Does not
    /// spawn the dispatcher: call [`EventHub::run`].
    pub async fn start(config: Config) -> Result<App> {
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
        let app = App {
            db,
            config: Arc::new(config),
            auth,
            events,
        };
        crate::identity::bootstrap::ensure_admin(&app).await?;
        Ok(app)
    }

    /// Commits a write transaction and wakes the local dispatcher so its
    /// events go out at once.
    pub async fn commit(&self, tx: Tx) -> Result<()> {
        tx.commit().await?;
        self.events.poke();
        Ok(())
    }
}
