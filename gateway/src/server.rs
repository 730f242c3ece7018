//! The HTTP server: routes, middleware, start-up and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use crm_core::App;
use crm_core::config::{Config, Limits};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::metrics::Metrics;
use crate::schema;
use crate::state::{AppState, Connections};

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
        HeaderName::from_static(crate::idempotency::KEY_HEADER),
    ])
    .expose_headers([HeaderName::from_static(crate::idempotency::REPLAYED_HEADER)])
    .max_age(Duration::from_secs(600));
    let request_id = HeaderName::from_static("x-request-id");
    let body_limit = state.limits.max_body_bytes;
    let api = Router::new()
        .route(
            "/graphql",
            get(crate::http::get)
                .post(crate::http::post)
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/jobs/{id}/{file}", get(crate::downloads::get))
        .merge(crate::documents::routes())
        .route("/", get(crate::ide::page))
        .route("/ide/{file}", get(crate::ide::asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(cors);
    // Public endpoints answer CORS for their own origins, never with
    // credentials: they stay outside the API's CORS layer.
    Router::new()
        .merge(api)
        .merge(crate::public::routes())
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

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> HttpResponse {
    if let Some(token) = &state.limits.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics require the bearer token set in metrics-token",
            )
                .into_response();
        }
    }
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
        .into_response()
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Served on connections over `max-connections` (up to
/// [`HEALTH_HEADROOM`] of them): health checks answer, everything else is
/// told to come back later.
fn overflow_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1"), (header::CONNECTION, "close")],
                "too many open connections",
            )
        })
        .with_state(state)
}

/// Waits until the client has sent enough to tell HTTP/1 from HTTP/2;
/// false if it closed first.
async fn protocol_known(stream: &tokio::net::TcpStream) -> bool {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; 24];
    loop {
        match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n >= H2_PREFACE.len() || !H2_PREFACE.starts_with(&buf[..n]) => return true,
            // A fragment of the preface: wait for more.
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Connections accepted beyond `max-connections`, for health checks only.
pub const HEALTH_HEADROOM: usize = 16;

/// The accept loop: a bounded number of connections (plus headroom for
/// health checks; beyond that a connection is closed at once), a deadline
/// for each request's headers (slowloris), and graceful shutdown: on the
/// signal the listener closes, idle connections close, in-flight requests
/// finish.
async fn serve(
    listener: TcpListener,
    router: Router,
    overflow: Router,
    limits: Arc<Limits>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tokio::sync::Semaphore;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let spare = Arc::new(Semaphore::new(HEALTH_HEADROOM));
    let stopped = async move {
        let _ = stop.wait_for(|v| *v).await;
    };
    tokio::pin!(stopped);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors or similar: back off
                    // instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let (service, permit) = if let Ok(p) = permits.clone().try_acquire_owned() {
            (router.clone(), p)
        } else if let Ok(p) = spare.clone().try_acquire_owned() {
            (overflow.clone(), p)
        } else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_bytes = limits.header_read_timeout;
        tokio::spawn(async move {
            // hyper's header deadline starts once it knows the protocol;
            // a client that sends nothing (or a fragment of the HTTP/2
            // preface) must not hold the connection before that.
            if !matches!(
                tokio::time::timeout(first_bytes, protocol_known(&stream)).await,
                Ok(true)
            ) {
                drop(permit);
                return;
            }
            // The peer address, for handlers that need the client's
            // address (public endpoints' rate limits).
            let service = tower::ServiceExt::map_request(
                service,
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req
                },
            );
            let conn = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service),
                )
                .into_owned();
            let _ = watcher.watch(conn).await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
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
    crm_core::identity::bootstrap::ensure_admin(&app).await?;
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {} (setting `listen`): {e}", config.listen)
    })?;
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(app.events.clone().run(shutdown_rx.clone()));
    let db = app.db.clone();
    tokio::spawn(crate::memory::run(shutdown_rx.clone(), move || {
        let closed = db.close_idle(crate::memory::IDLE_CONNECTION);
        if closed > 0 {
            tracing::debug!(closed, "closed idle database connections");
        }
    }));
    app.policy.clone().watch(shutdown_rx.clone());
    for m in crate::modules::MODULES {
        m.spawn_background(&app, shutdown_rx.clone());
    }
    tokio::spawn(crm_core::webhooks::worker::run(
        app.clone(),
        shutdown_rx.clone(),
    ));
    // Jobs of a process that stopped mid-way will never finish: say so.
    match crm_core::jobs::fail_abandoned(&app.db, Duration::from_secs(600)).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(jobs = n, "marked interrupted jobs as failed"),
        Err(e) => tracing::warn!(error = %e, "could not check for interrupted jobs"),
    }
    tokio::spawn(crm_core::idempotency::run_sweeper(
        app.db.clone(),
        shutdown_rx.clone(),
    ));
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
        public: Arc::new(crm_core::public::Public::new(config.public.clone())),
        app: app.clone(),
    };
    let connections = state.connections.clone();
    let limits = state.limits.clone();
    let overflow = overflow_router(state.clone());
    let router = router(state, &config);
    let stop = shutdown_rx;
    let done = tokio::spawn(async move {
        let result = serve(listener, router, overflow, limits, stop).await;
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
