//! Prometheus metrics at `/metrics`: GraphQL requests and latency by
//! operation, database pool usage, WebSocket connections and active
//! subscriptions.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Most distinct operation names tracked; later ones count as `other`, so a
/// client cannot blow up the label set.
const MAX_OPERATIONS: usize = 200;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    operation: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpOnly {
    operation: String,
}

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<OpLabels, Counter>,
    latency: Family<OpOnly, Histogram>,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    /// Open WebSocket connections.
    pub ws_connections: Gauge,
    /// Running WebSocket operations (subscriptions).
    pub subscriptions: Gauge,
    event_head: Gauge,
    statements: Gauge,
    known_ops: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("crm");
        let requests = Family::<OpLabels, Counter>::default();
        let latency = Family::<OpOnly, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let m = Metrics {
            pool_size: Gauge::default(),
            pool_idle: Gauge::default(),
            pool_max: Gauge::default(),
            ws_connections: Gauge::default(),
            subscriptions: Gauge::default(),
            event_head: Gauge::default(),
            statements: Gauge::default(),
            known_ops: Mutex::default(),
            requests: requests.clone(),
            latency: latency.clone(),
            registry: Registry::default(),
        };
        registry.register("graphql_requests", "GraphQL operations executed", requests);
        registry.register(
            "graphql_request_duration_seconds",
            "GraphQL operation latency",
            latency,
        );
        registry.register(
            "db_pool_connections",
            "Open database connections",
            m.pool_size.clone(),
        );
        registry.register(
            "db_pool_idle",
            "Idle database connections",
            m.pool_idle.clone(),
        );
        registry.register(
            "db_pool_max",
            "Database pool size limit",
            m.pool_max.clone(),
        );
        registry.register(
            "websocket_connections",
            "Open WebSocket connections",
            m.ws_connections.clone(),
        );
        registry.register(
            "active_subscriptions",
            "Running WebSocket operations",
            m.subscriptions.clone(),
        );
        registry.register(
            "event_cursor",
            "Last event cursor dispatched by this process",
            m.event_head.clone(),
        );
        registry.register(
            "db_statements_started",
            "SQL statements started by this process",
            m.statements.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The label for an operation name (bounded).
    pub fn operation_label(&self, name: Option<&str>) -> String {
        let name = name.unwrap_or("anonymous");
        let name: String = name.chars().take(64).collect();
        let mut known = self.known_ops.lock().expect("metrics lock");
        if known.contains(&name) {
            return name;
        }
        if known.len() < MAX_OPERATIONS {
            known.insert(name.clone());
            return name;
        }
        "other".into()
    }

    /// Records one executed operation.
    pub fn observe(&self, operation: &str, failed: bool, elapsed: Duration) {
        self.requests
            .get_or_create(&OpLabels {
                operation: operation.to_owned(),
                outcome: if failed { "error" } else { "ok" },
            })
            .inc();
        self.latency
            .get_or_create(&OpOnly {
                operation: operation.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Renders the text exposition format, refreshing the pool gauges.
    pub fn render(&self, pool: (usize, usize, usize), event_head: i64) -> String {
        self.pool_size.set(pool.0 as i64);
        self.pool_idle.set(pool.1 as i64);
        self.pool_max.set(pool.2 as i64);
        self.event_head.set(event_head);
        self.statements
            .set(crm_core::db::statements_started() as i64);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}
