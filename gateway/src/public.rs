//! The public endpoints modules offer (web forms): `POST` and `OPTIONS`
//! on `/{path}/{key}` for every `Module::public_endpoints` entry, outside
//! the API's CORS layer (each endpoint answers CORS for its own allowed
//! origins). Everything else is core's `crm_core::public`: this file only
//! finds the client's address, reads the body with the connection rules of
//! `http.rs`, and turns the answer into an HTTP response.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::header;
use axum::response::Response;
use axum::routing::post;
use crm_core::public::{BodyRead, PublicEndpoint, Reply, client_addr};

use crate::http::{BodyError, read_body_within};
use crate::state::AppState;

/// The routes of every compiled-in module's public endpoints.
pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    for ep in crate::modules::registry().public_endpoints() {
        let path = format!("/{}/{{key}}", ep.path());
        r = r.route(
            &path,
            post(
                move |State(s): State<AppState>, Path(key): Path<String>, req: Request| {
                    submit(s, ep, key, req)
                },
            )
            .options(
                move |State(s): State<AppState>, Path(key): Path<String>, req: Request| {
                    preflight(s, ep, key, req)
                },
            ),
        );
    }
    r
}

/// The client's address (core applies `trusted-proxies`).
fn client(s: &AppState, req: &Request) -> IpAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    client_addr(peer, req.headers(), &s.app.config.public.trusted_proxies)
}

fn response(r: Reply) -> Response {
    r.map(Body::from)
}

async fn preflight(
    s: AppState,
    ep: &'static dyn PublicEndpoint,
    key: String,
    req: Request,
) -> Response {
    let addr = client(&s, &req);
    response(
        s.public
            .preflight(&s.app, ep, &key, req.headers(), addr)
            .await,
    )
}

async fn submit(
    s: AppState,
    ep: &'static dyn PublicEndpoint,
    key: String,
    req: Request,
) -> Response {
    let addr = client(&s, &req);
    let (parts, body) = req.into_parts();
    let max = s.public.max_body_bytes();
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limits = s.limits.clone();
    let read = Box::pin(async move {
        if announced.is_some_and(|n| n > max as u64) {
            return Err(BodyRead::TooLarge);
        }
        match read_body_within(body, &limits, max).await {
            Ok(b) => Ok(b.to_vec()),
            Err(BodyError::TooLarge) => Err(BodyRead::TooLarge),
            Err(BodyError::TooSlow) => Err(BodyRead::TooSlow),
            Err(BodyError::Broken) => Err(BodyRead::Broken),
        }
    });
    response(
        s.public
            .post(&s.app, ep, &key, &parts.headers, addr, read)
            .await,
    )
}
