//! Response helpers shared by the HTTP endpoints and the WebSocket
//! protocol: `Accept` negotiation, JSON bodies with the right content type,
//! request-level error responses, refusals in GraphQL shape, and the
//! serialisation of a GraphQL response.

use async_graphql::{Response, ServerError};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use crm_core::error::{Error, ErrorCode, finish_errors};

pub(crate) const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
pub(crate) const JSON: &str = "application/json";

/// Which response media type the client accepts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum MediaType {
    /// `application/graphql-response+json`
    GraphqlResponse,
    /// `application/json`
    Json,
}

/// The response media type for a request's `Accept` header.
pub(crate) fn negotiate(headers: &HeaderMap) -> MediaType {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return MediaType::Json;
    };
    // Take the first acceptable type in the client's order.
    for part in accept.split(',') {
        let ty = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match ty.as_str() {
            GRAPHQL_RESPONSE => return MediaType::GraphqlResponse,
            JSON | "application/*" | "*/*" => return MediaType::Json,
            _ => {}
        }
    }
    MediaType::Json
}

/// The request id set by the middleware, for logs.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// A request-level error response (nothing executed).
pub(crate) fn request_error(
    status: StatusCode,
    media: MediaType,
    code: ErrorCode,
    message: &str,
) -> HttpResponse {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
    });
    json_response(status, media, body.to_string())
}

/// A JSON body with the negotiated content type.
pub(crate) fn json_response(
    status: StatusCode,
    media: MediaType,
    body: impl Into<axum::body::Body>,
) -> HttpResponse {
    let ct = match media {
        MediaType::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        MediaType::Json => "application/json; charset=utf-8",
    };
    let mut resp = (status, body.into()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp
}

/// A response refusing the whole request with one of our errors.
pub(crate) fn refusal(e: crm_core::Error, rid: &str) -> Response {
    let mut err = ServerError::new(e.to_string(), None);
    err.source = Some(std::sync::Arc::new(e));
    let mut r = Response::from_errors(vec![err]);
    finish_errors(&mut r.errors, rid);
    r
}

/// A request error in the spec's sense: nothing was executed (parse,
/// validation or limit failure), so there is no data at all.
pub(crate) fn is_request_error(resp: &Response) -> bool {
    resp.data == async_graphql::Value::Null
        && !resp.errors.is_empty()
        && resp.errors.iter().all(|e| e.path.is_empty())
}

/// Serialises a response, leaving out `data` for request errors as the
/// GraphQL-over-HTTP spec asks.
pub(crate) fn response_json(resp: Response) -> serde_json::Value {
    serde_json::to_value(Wire(&resp)).unwrap_or_default()
}

/// A response as it goes on the wire: `data` is left out for request
/// errors, as the GraphQL-over-HTTP spec asks; fields keep the order of
/// the selection.
pub(crate) struct Wire<'a>(pub(crate) &'a Response);

impl serde::Serialize for Wire<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let resp = self.0;
        let mut map = serializer.serialize_map(None)?;
        if !is_request_error(resp) {
            map.serialize_entry("data", &resp.data)?;
        }
        if !resp.errors.is_empty() {
            map.serialize_entry("errors", &resp.errors)?;
        }
        if !resp.extensions.is_empty() {
            map.serialize_entry("extensions", &resp.extensions)?;
        }
        map.end()
    }
}

/// An error response through core's one mapping (status, code, what is
/// logged and what the client sees).
pub(crate) fn error_response(e: &Error, headers: &HeaderMap) -> HttpResponse {
    let (status, body) = crm_core::error::http_error(e, &request_id(headers));
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, MediaType::Json, body.to_string())
}
