//! The HTTP layer's shared state: the platform, the schema, limits,
//! metrics, the shutdown signal and the count of open WebSocket
//! connections; and the request id given to resolvers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crm_core::App;
use crm_core::config::Limits;
use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;
use crate::schema::CrmSchema;

/// The request id, available to resolvers as context data.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Counts upgraded WebSocket connections so shutdown can wait for them
/// (axum's graceful shutdown does not know about upgraded sockets).
#[derive(Clone, Default)]
pub struct Connections {
    open: Arc<AtomicUsize>,
    changed: Arc<Notify>,
}

/// Held while a WebSocket connection runs.
pub struct ConnectionGuard(Connections);

impl Connections {
    /// Marks a connection open until the guard drops.
    pub fn enter(&self) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard(self.clone())
    }

    /// Waits until every connection has closed.
    pub async fn drained(&self) {
        loop {
            let notified = self.changed.notified();
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct AppState {
    /// The platform.
    pub app: App,
    /// The merged schema.
    pub schema: CrmSchema,
    /// Request limits.
    pub limits: Arc<Limits>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Flips to true when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Open WebSocket connections.
    pub connections: Connections,
    /// Rate limits and settings of the public endpoints (web forms).
    pub public: Arc<crm_core::public::Public>,
}
