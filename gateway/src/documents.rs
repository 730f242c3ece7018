//! `GET /{path}/{id}` for every module's printable documents
//! (`Module::documents`, e.g. a quote at `/quotes/{id}`): the caller
//! authenticates as for `/graphql` (bearer token or API key); the module
//! renders the record within the caller's read scope and readable fields,
//! and a record the caller may not read is NOT_FOUND (404) like an
//! unknown id. No per-module code here.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use crm_core::error::Error;
use crm_core::module::Document;

use crate::respond::error_response;
use crate::state::AppState;

/// The routes of every compiled-in module's documents.
pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    for doc in crate::modules::registry().documents() {
        let path = format!("/{}/{{id}}", doc.path());
        r = r.route(
            &path,
            get(
                move |State(s): State<AppState>, Path(id): Path<String>, headers: HeaderMap| {
                    serve(s, doc, id, headers)
                },
            ),
        );
    }
    r
}

async fn serve(
    state: AppState,
    doc: &'static dyn Document,
    id: String,
    headers: HeaderMap,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match state.app.auth.authenticate(auth).await {
        Ok(p) => p,
        Err(e) => return error_response(&e, &headers),
    };
    if matches!(principal, crm_core::access::Principal::Anonymous) {
        return error_response(&Error::Unauthenticated, &headers);
    }
    let lang = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    match doc.render(&state.app, &principal, &id, lang).await {
        Ok(d) => {
            let mut r = (StatusCode::OK, d.body).into_response();
            let h = r.headers_mut();
            if let Ok(v) = HeaderValue::from_str(d.content_type) {
                h.insert(header::CONTENT_TYPE, v);
            }
            if let Ok(v) = HeaderValue::from_str(d.language) {
                h.insert(header::CONTENT_LANGUAGE, v);
            }
            h.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            );
            r
        }
        Err(e) => error_response(&e, &headers),
    }
}
