//! The HTTP server: routes, middleware, start-up and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use crm_core::App;
use crm_core::config::{Config, Limits};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::metrics::Metrics;
use crate::schema::{self, CrmSchema};

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
}

/// Builds the router for `state`.
pub fn router(state: AppState, config: &Config) -> Router {
    let cors = if config.cors_origins.iter().any(|o| o == "*") {
        CorsLayer::new().allow_origin(AllowOrigin::any())
    } else {
        let origins: Vec<HeaderValue> = config
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        CorsLayer::new().allow_origin(origins)
    }
    .allow_methods([Method::GET, Method::POST])
    .allow_headers([
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT,
        HeaderName::from_static("graphql-preflight"),
        HeaderName::from_static("apollo-require-preflight"),
    ])
    .max_age(Duration::from_secs(600));
    let request_id = HeaderName::from_static("x-request-id");
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route(
            "/graphql",
            get(crate::http::get)
                .post(crate::http::post)
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .route(
            "/jobs/{id}/{file}",
            get(crate::downloads::get),
        )
        .route("/", get(crate::ide::page))
        .route("/ide/{file}", get(crate::ide::asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(
            tower::ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                        let rid = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %rid)
                    }),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(cors)
                .layer(CompressionLayer::new().gzip(true)),
        )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if *state.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if state.app.db.ready().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state
        .metrics
        .render(state.app.db.pool_status(), state.app.events.head());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

/// A running server (for tests and `crm serve`).
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// Send `true` to shut down.
    pub shutdown: watch::Sender<bool>,
    /// Resolves when the server has stopped.
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The platform it runs.
    pub app: App,
}

/// Starts the platform and serves it on `config.listen` until told to stop.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let app = App::start(config.clone(), Arc::new(schema::catalog())).await?;
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {} (setting `listen`): {e}", config.listen)
    })?;
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(app.events.clone().run(shutdown_rx.clone()));
    app.policy.clone().watch(shutdown_rx.clone());
    crm_customers::spawn_background(&app, shutdown_rx.clone());
    // Jobs of a process that stopped mid-way will never finish: say so.
    match crm_core::jobs::fail_abandoned(&app.db, Duration::from_secs(600)).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(jobs = n, "marked interrupted jobs as failed"),
        Err(e) => tracing::warn!(error = %e, "could not check for interrupted jobs"),
    }
    tokio::spawn(crm_core::backup::schedule::run(
        app.db.clone(),
        config.backup.clone(),
        shutdown_rx.clone(),
    ));
    let state = AppState {
        schema: schema::build(Some(app.clone()), &config.limits),
        limits: Arc::new(config.limits.clone()),
        metrics: Arc::new(Metrics::new()),
        shutdown: shutdown_rx.clone(),
        connections: Connections::default(),
        app: app.clone(),
    };
    let connections = state.connections.clone();
    let router = router(state, &config);
    let mut stop = shutdown_rx;
    let done = tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|v| *v).await;
        });
        let result = serve.await;
        // In-flight HTTP requests are done; WebSockets were told to close
        // with 1001 by the same signal. Give them a moment to say goodbye.
        let _ = tokio::time::timeout(Duration::from_secs(10), connections.drained()).await;
        result
    });
    tracing::info!(%addr, database = %crm_core::db::redact_url(&config.database_url), "serving GraphQL at http://{addr}/graphql; IDE at http://{addr}/");
    Ok(Running {
        addr,
        shutdown: shutdown_tx,
        done,
        app,
    })
}
