//! The `Idempotency-Key` header of POST mutations: the first request with a
//! key runs and its response is stored (per caller, in core's
//! `idempotency` table); a retry with the same key and the same request
//! gets the stored response, marked `Idempotent-Replayed: true`, without
//! running again. The same key with another request is refused (422), and
//! a retry while the first still runs too (409, `Retry-After`).
//!
//! Operations that are not mutations ignore the header (running a query
//! twice changes nothing); anonymous mutations with a key are refused
//! (400), since keys belong to a caller. A response is stored unless the
//! request was refused before anything ran, or failed in a way worth
//! retrying (INTERNAL, UNAVAILABLE, a timeout, RATE_LIMITED) before any
//! mutation field returned data.

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response as HttpResponse;
use crm_core::access::Principal;
use crm_core::error::{Error, ErrorCode};
use crm_core::idempotency::{self, Claim, Stored, Ticket};

use crate::respond::{MediaType, json_response, request_id};
use crate::state::AppState;

/// The request header.
pub const KEY_HEADER: &str = "idempotency-key";
/// The response header marking a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// How long past the request timeout a claim is kept before another
/// request may take the key over (the time to store the response).
const CLAIM_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// One operation of the request, as the fingerprint and the mutation test
/// see it.
pub(crate) struct Op<'a> {
    pub(crate) request: &'a Request,
    pub(crate) operation: Option<OperationType>,
}

/// What to do with a request before it runs.
pub(crate) enum Begin {
    /// No key, or nothing to protect (no mutation): run as usual.
    NotAsked,
    /// Answered without running: a replay or a refusal.
    Answer(HttpResponse),
    /// The key is this request's: run it, then [`finish`].
    Claimed(Ticket),
}

/// Whether a response to a claimed request is stored for retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Store it: retries get this answer.
    Store,
    /// Release the key: a retry runs again.
    Release,
}

/// Reads the header and claims the key if the request holds a mutation.
pub(crate) async fn begin(
    state: &AppState,
    headers: &HeaderMap,
    principal: &Principal,
    media: MediaType,
    ops: &[Op<'_>],
    batch: bool,
) -> Begin {
    let rid = request_id(headers);
    let key = match key(headers) {
        Ok(None) => return Begin::NotAsked,
        Ok(Some(k)) => k,
        Err(e) => return Begin::Answer(refuse(&e, None, media, &rid)),
    };
    if !ops
        .iter()
        .any(|o| o.operation == Some(OperationType::Mutation))
    {
        return Begin::NotAsked;
    }
    let Some(who) = idempotency::principal_key(principal) else {
        let e = Error::invalid(
            "Idempotency-Key",
            "needs a signed-in caller (a bearer token or an API key): keys belong to a caller",
        );
        return Begin::Answer(refuse(&e, None, media, &rid));
    };
    let operations: Vec<_> = ops
        .iter()
        .map(|o| {
            serde_json::json!({
                "query": o.request.query,
                "operationName": o.request.operation_name,
                "variables": serde_json::to_value(&o.request.variables).unwrap_or_default(),
            })
        })
        .collect();
    let fingerprint = idempotency::fingerprint(&serde_json::json!({
        "method": "POST",
        "path": "/graphql",
        "batch": batch,
        "operations": operations,
    }));
    // Each operation may run up to the request timeout.
    let lock = state
        .limits
        .request_timeout
        .saturating_mul(u32::try_from(ops.len()).unwrap_or(u32::MAX))
        .saturating_add(CLAIM_GRACE);
    let settings = &state.app.config.idempotency;
    match idempotency::claim(&state.app.db, &who, &key, &fingerprint, lock, settings.ttl).await {
        Ok(Claim::Claimed(ticket)) => Begin::Claimed(ticket),
        Ok(Claim::Replay(stored)) => Begin::Answer(replay(stored)),
        Ok(Claim::InFlight) => {
            let e = Error::Conflict(
                "a request with this Idempotency-Key is still running; retry once it has finished"
                    .into(),
            );
            let mut resp = refuse(&e, None, media, &rid);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Begin::Answer(resp)
        }
        Ok(Claim::Mismatch) => {
            let e = Error::invalid(
                "Idempotency-Key",
                "was used for a different request (query, variables or operation name); use a new key for a new request",
            );
            Begin::Answer(refuse(
                &e,
                Some(StatusCode::UNPROCESSABLE_ENTITY),
                media,
                &rid,
            ))
        }
        Err(e) => Begin::Answer(refuse(&e, None, media, &rid)),
    }
}

/// The key of a request, if it sent one; VALIDATION if it is malformed.
fn key(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let mut values = headers.get_all(KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::invalid(
            "Idempotency-Key",
            "must be sent once per request",
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| Error::invalid("Idempotency-Key", "must be printable ASCII"))?;
    idempotency::parse_key(text.trim()).map(Some)
}

/// Whether a claimed request's responses may be stored: not when nothing
/// ran (every operation was refused before execution: a retry is checked
/// afresh), nor when an operation failed in a way worth retrying unless a
/// mutation field had already returned data (its change is committed, so
/// a retry must not repeat it).
pub(crate) fn keep(responses: &[(Option<OperationType>, &Response)]) -> Keep {
    let executed = responses
        .iter()
        .any(|(_, r)| !crate::respond::is_request_error(r));
    let transient = responses.iter().any(|(_, r)| {
        r.errors.iter().any(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .is_some_and(|c| {
                    matches!(c, async_graphql::Value::String(s) if [
                        ErrorCode::Internal.as_str(),
                        ErrorCode::Unavailable.as_str(),
                        ErrorCode::RateLimited.as_str(),
                    ].contains(&s.as_str()))
                })
        })
    });
    let mutated = responses.iter().any(|(op, r)| {
        *op == Some(OperationType::Mutation)
            && matches!(&r.data, async_graphql::Value::Object(fields)
                if fields.values().any(|v| *v != async_graphql::Value::Null))
    });
    if executed && (!transient || mutated) {
        Keep::Store
    } else {
        Keep::Release
    }
}

/// Stores (or releases) a claimed request's response and passes it on.
pub(crate) async fn finish(
    state: &AppState,
    ticket: &Ticket,
    resp: HttpResponse,
    keep: Keep,
    rid: &str,
) -> HttpResponse {
    if keep == Keep::Release {
        if let Err(e) = idempotency::release(&state.app.db, ticket).await {
            tracing::warn!(request_id = %rid, error = %e, "could not release an idempotency key; it lapses after the request timeout");
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // The body is one buffer already (responses are serialised whole).
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(request_id = %rid, error = %e, "response body could not be read back");
            let _ = idempotency::release(&state.app.db, ticket).await;
            return crate::respond::request_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                MediaType::Json,
                ErrorCode::Internal,
                "internal error",
            );
        }
    };
    let stored = Stored {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| vec![(header::CONTENT_TYPE.as_str().to_owned(), ct.to_owned())])
            .unwrap_or_default(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    match idempotency::complete(&state.app.db, ticket, &stored).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(request_id = %rid, "idempotency claim lapsed before the response was stored")
        }
        Err(e) => {
            tracing::warn!(request_id = %rid, error = %e, "could not store the response of an idempotent request")
        }
    }
    HttpResponse::from_parts(parts, Body::from(bytes))
}

/// A stored response, marked as replayed.
fn replay(stored: Stored) -> HttpResponse {
    let mut resp = HttpResponse::new(Body::from(stored.body));
    *resp.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in &stored.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp.headers_mut().insert(
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("true"),
    );
    resp
}

/// A refusal with core's error body (code, fields); `status` overrides the
/// code's usual HTTP status.
fn refuse(e: &Error, status: Option<StatusCode>, media: MediaType, rid: &str) -> HttpResponse {
    let (code_status, body) = crm_core::error::http_error(e, rid);
    let status = status.unwrap_or_else(|| {
        StatusCode::from_u16(code_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    });
    json_response(status, media, body.to_string())
}
