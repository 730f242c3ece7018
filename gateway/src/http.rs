//! GraphQL over HTTP, safe by default: JSON-only POSTs (no CSRF through
//! `text/plain` or forms), no mutations over GET (405), a body limit that
//! applies to this endpoint (413), capped batches, alias limits checked
//! before execution, a per-request timeout, and `Accept` negotiation between
//! `application/graphql-response+json` and `application/json` as the
//! GraphQL-over-HTTP spec asks.

use std::time::Instant;

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, Request, Response, ServerError};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response as HttpResponse;
use crm_core::error::{ErrorCode, finish_errors};
use serde::Deserialize;

use crate::respond::{
    GRAPHQL_RESPONSE, JSON, MediaType, Wire, is_request_error, json_response, negotiate, refusal,
    request_error, request_id,
};
use crate::state::AppState;

/// `POST /graphql`: a JSON request (or batch), or a GraphQL multipart
/// request carrying file uploads.
pub async fn post(State(state): State<AppState>, request: axum::extract::Request) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let media = negotiate(&headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some(JSON) | Some(GRAPHQL_RESPONSE) => {}
        Some("multipart/form-data") => return multipart(state, headers, media, body).await,
        _ => {
            return request_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                media,
                ErrorCode::Validation,
                "POST requests must have Content-Type: application/json",
            );
        }
    }
    if let Some(resp) = announced_too_large(&headers, state.limits.max_body_bytes, media) {
        return resp;
    }
    let body: Bytes = match read_body(body, &state.limits).await {
        Ok(b) => b,
        Err(e) => return body_error(e, &state.limits, media),
    };
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                media,
                ErrorCode::Validation,
                &format!("request body is not a valid GraphQL request: {e}"),
            );
        }
    };
    if let BatchRequest::Batch(items) = &batch {
        if items.len() > state.limits.max_batch {
            return request_error(
                StatusCode::BAD_REQUEST,
                media,
                ErrorCode::Validation,
                &format!(
                    "batch of {} operations is over the limit of {}",
                    items.len(),
                    state.limits.max_batch
                ),
            );
        }
        if items.is_empty() {
            return request_error(
                StatusCode::BAD_REQUEST,
                media,
                ErrorCode::Validation,
                "empty batch",
            );
        }
    }
    run(state, headers, media, batch, false).await
}

/// A GraphQL multipart request (file uploads). Browsers may send
/// `multipart/form-data` across origins without a preflight, so a request
/// must carry a `GraphQL-Preflight` (or `Apollo-Require-Preflight`) header,
/// which forces one. Files are streamed to temporary files, not memory.
async fn multipart(
    state: AppState,
    headers: HeaderMap,
    media: MediaType,
    body: axum::body::Body,
) -> HttpResponse {
    let preflighted = ["graphql-preflight", "apollo-require-preflight"]
        .iter()
        .any(|h| headers.contains_key(*h));
    if !preflighted {
        return request_error(
            StatusCode::BAD_REQUEST,
            media,
            ErrorCode::Validation,
            "multipart requests must carry a GraphQL-Preflight: 1 header",
        );
    }
    if headers.contains_key(crate::idempotency::KEY_HEADER) {
        // The fingerprint would have to cover the uploaded file.
        return request_error(
            StatusCode::BAD_REQUEST,
            media,
            ErrorCode::Validation,
            "Idempotency-Key is not supported on multipart (upload) requests",
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The upload limit is checked on the file part; the whole body may hold
    // a little more (the operations and map parts).
    let announced_limit = state
        .limits
        .max_upload_bytes
        .saturating_add(state.limits.max_body_bytes);
    if let Some(resp) = announced_too_large(&headers, announced_limit, media) {
        return resp;
    }
    use futures_util::TryStreamExt;
    let reader = guarded(body, &state.limits).into_async_read();
    let opts = async_graphql::http::MultipartOptions::default()
        .max_file_size(state.limits.max_upload_bytes)
        .max_num_files(1);
    let batch = match async_graphql::http::receive_batch_body(content_type, reader, opts).await {
        Ok(b) => b,
        Err(e) => {
            let status = match &e {
                async_graphql::ParseRequestError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                async_graphql::ParseRequestError::Io(io)
                    if io.kind() == std::io::ErrorKind::TimedOut =>
                {
                    StatusCode::REQUEST_TIMEOUT
                }
                _ => StatusCode::BAD_REQUEST,
            };
            return request_error(
                status,
                media,
                ErrorCode::Validation,
                &format!("invalid multipart request: {e}"),
            );
        }
    };
    if let BatchRequest::Batch(_) = &batch {
        return request_error(
            StatusCode::BAD_REQUEST,
            media,
            ErrorCode::Validation,
            "multipart requests carry one operation",
        );
    }
    run(state, headers, media, batch, false).await
}

/// Query parameters of a GET request.
#[derive(Deserialize)]
pub struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// `GET /graphql`: a WebSocket upgrade, or a query in the URL.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    params: Result<Query<GetParams>, QueryRejection>,
) -> HttpResponse {
    if let Ok(ws) = ws {
        return crate::ws::upgrade(state, headers, ws);
    }
    // A browser opening the endpoint's URL gets the IDE, not a 400.
    if params.as_ref().is_ok_and(|p| p.0.query.is_none()) && crate::ide::wants_html(&headers) {
        return crate::ide::redirect();
    }
    let media = negotiate(&headers);
    let Ok(params) = params else {
        return request_error(
            StatusCode::BAD_REQUEST,
            media,
            ErrorCode::Validation,
            "malformed query string",
        );
    };
    let Some(query) = params.0.query.clone() else {
        return request_error(
            StatusCode::BAD_REQUEST,
            media,
            ErrorCode::Validation,
            "missing query parameter",
        );
    };
    let mut req = Request::new(query);
    if let Some(op) = params.0.operation_name.clone().filter(|s| !s.is_empty()) {
        req = req.operation_name(op);
    }
    for (name, raw) in [
        ("variables", &params.0.variables),
        ("extensions", &params.0.extensions),
    ] {
        if let Some(raw) = raw.as_deref().filter(|s| !s.is_empty() && *s != "null") {
            match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(v) if name == "variables" => {
                    req.variables = async_graphql::Variables::from_json(v);
                }
                Ok(v) => {
                    req.extensions = serde_json::from_value(v).unwrap_or_default();
                }
                Err(_) => {
                    return request_error(
                        StatusCode::BAD_REQUEST,
                        media,
                        ErrorCode::Validation,
                        &format!("{name} parameter is not valid JSON"),
                    );
                }
            }
        }
    }
    run(state, headers, media, BatchRequest::Single(req), true).await
}

async fn run(
    state: AppState,
    headers: HeaderMap,
    media: MediaType,
    batch: BatchRequest,
    is_get: bool,
) -> HttpResponse {
    let rid = request_id(&headers);
    let started = Instant::now();
    let _active = crate::memory::active();
    let auth_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match state.app.auth.authenticate(auth_header).await {
        Ok(p) => p,
        Err(e) => {
            let mut resp = request_error(StatusCode::UNAUTHORIZED, media, e.code(), &e.to_string());
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
    };
    let requests = match batch {
        BatchRequest::Single(r) => vec![r],
        BatchRequest::Batch(rs) => rs,
    };
    let single = requests.len() == 1;
    // Look at every operation first: a batch is charged the sum of its
    // operations' costs.
    let inspected: Vec<_> = requests
        .into_iter()
        .map(|req| {
            let inspection = crate::inspect::inspect(&req.query, req.operation_name.as_deref());
            let analysis = inspection.as_ref().ok().map(|i| {
                crate::cost::analyse(
                    &i.doc,
                    req.operation_name.as_deref(),
                    &req.variables,
                    &state.limits,
                )
            });
            (req, inspection, analysis)
        })
        .collect();
    let total_cost = inspected
        .iter()
        .filter_map(|(_, _, a)| a.as_ref().map(|a| a.cost))
        .fold(0u64, u64::saturating_add);
    if !is_get {
        let ops: Vec<_> = inspected
            .iter()
            .map(|(req, i, _)| crate::idempotency::Op {
                request: req,
                operation: i.as_ref().ok().and_then(|i| i.operation),
            })
            .collect();
        let begun =
            crate::idempotency::begin(&state, &headers, &principal, media, &ops, !single).await;
        drop(ops);
        match begun {
            crate::idempotency::Begin::NotAsked => {}
            crate::idempotency::Begin::Answer(resp) => return resp,
            crate::idempotency::Begin::Claimed(ticket) => {
                // Run apart from the connection: a client that hangs up
                // must not cut the request between the commit of its
                // mutation and the stored response its retry will get.
                let task = tokio::spawn(async move {
                    if let Some(hold) = state.app.config.idempotency.hold.clone()
                        && let Ok(permit) = hold.acquire_owned().await
                    {
                        permit.forget();
                    }
                    let (resp, keep) = execute(
                        &state, &principal, media, inspected, total_cost, single, false, &rid,
                    )
                    .await;
                    let resp = crate::idempotency::finish(&state, &ticket, resp, keep, &rid).await;
                    tracing::debug!(request_id = %rid, elapsed_ms = started.elapsed().as_millis() as u64, "graphql request");
                    resp
                });
                return task.await.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "idempotent request failed; its key lapses after the request timeout");
                    request_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        media,
                        ErrorCode::Internal,
                        "internal error",
                    )
                });
            }
        }
    }
    let (resp, _) = execute(
        &state, &principal, media, inspected, total_cost, single, is_get, &rid,
    )
    .await;
    tracing::debug!(request_id = %rid, elapsed_ms = started.elapsed().as_millis() as u64, "graphql request");
    resp
}

/// The operations of an inspected request.
type Inspected = Vec<(
    Request,
    Result<crate::inspect::Inspection, String>,
    Option<crate::cost::Analysis>,
)>;

/// Checks and executes each operation and serialises the answer; also says
/// whether the answer may be stored for an idempotent retry.
#[allow(clippy::too_many_arguments)]
async fn execute(
    state: &AppState,
    principal: &crm_core::access::Principal,
    media: MediaType,
    inspected: Inspected,
    total_cost: u64,
    single: bool,
    is_get: bool,
    rid: &str,
) -> (HttpResponse, crate::idempotency::Keep) {
    let rid = rid.to_owned();
    let mut responses = Vec::with_capacity(inspected.len());
    let mut kinds = Vec::with_capacity(inspected.len());
    let mut all_request_errors = true;
    for (req, inspection, analysis) in inspected {
        kinds.push(inspection.as_ref().ok().and_then(|i| i.operation));
        let op_name = req.operation_name.clone();
        let label = state.metrics.operation_label(
            inspection
                .as_ref()
                .ok()
                .and_then(|i| i.name.as_deref())
                .or(op_name.as_deref()),
        );
        let (i, a) = match (inspection, analysis) {
            (Ok(i), Some(a)) => (i, a),
            (Err(why), _) => {
                responses.push(refusal(crm_core::access::unparsable(&why), &rid));
                continue;
            }
            (Ok(_), None) => unreachable!("every inspected document is analysed"),
        };
        {
            if is_get && i.operation != Some(OperationType::Query) && i.operation.is_some() {
                let mut resp = request_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    media,
                    ErrorCode::Validation,
                    "only queries may be sent with GET; use POST for mutations",
                );
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                return (resp, crate::idempotency::Keep::Release);
            }
            if let Some(r) = precheck(state, principal, &i, &a, total_cost, single, &rid) {
                responses.push(r);
                continue;
            }
            if let Err(e) = crm_core::access::check_request(
                &state.app,
                principal,
                &i.doc,
                op_name.as_deref(),
                &req.variables,
            ) {
                responses.push(refusal(e, &rid));
                continue;
            }
            if i.operation == Some(OperationType::Subscription) {
                let mut r = Response::from_errors(vec![ServerError::new(
                    "subscriptions are served over WebSocket (graphql-transport-ws) on this path",
                    None,
                )]);
                finish_errors(&mut r.errors, &rid);
                responses.push(r);
                continue;
            }
        }
        let req = crate::schema::request_data(req, &state.app, principal)
            .data(principal.clone())
            .data(crate::state::RequestId(rid.clone()));
        let t0 = Instant::now();
        let mut resp =
            match tokio::time::timeout(state.limits.request_timeout, state.schema.execute(req))
                .await
            {
                Ok(r) => r,
                Err(_) => Response::from_errors(vec![ServerError::new("request timed out", None)]),
            };
        let timed_out = resp.errors.iter().any(|e| e.message == "request timed out");
        finish_errors(&mut resp.errors, &rid);
        if timed_out {
            for e in &mut resp.errors {
                e.extensions
                    .get_or_insert_with(Default::default)
                    .set("code", ErrorCode::Unavailable.as_str());
            }
        }
        state
            .metrics
            .observe(&label, !resp.errors.is_empty(), t0.elapsed());
        if !is_request_error(&resp) {
            all_request_errors = false;
        }
        responses.push(resp);
    }
    let keep = crate::idempotency::keep(
        &kinds
            .iter()
            .copied()
            .zip(responses.iter())
            .collect::<Vec<_>>(),
    );
    let status = if media == MediaType::GraphqlResponse && all_request_errors && single {
        // The spec's "request error": nothing was executed.
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = encode(&responses, single, state.limits.max_response_bytes);
    // The value trees are not needed any more: free them before the body
    // is sent, so a large answer is held once (as bytes), not twice.
    drop(responses);
    let resp = match body {
        Ok(b) => json_response(status, media, b),
        Err(EncodeError::TooLarge) => {
            tracing::warn!(request_id = %rid, limit = state.limits.max_response_bytes, "response over max-response-bytes refused");
            request_error(
                StatusCode::OK,
                media,
                ErrorCode::Validation,
                &format!(
                    "the response would be over the limit of {} bytes (setting max-response-bytes): ask for fewer records or fields",
                    state.limits.max_response_bytes
                ),
            )
        }
        Err(EncodeError::Json(e)) => {
            tracing::error!(request_id = %rid, error = %e, "response serialisation failed");
            request_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                media,
                ErrorCode::Internal,
                "internal error",
            )
        }
    };
    (resp, keep)
}

/// Why a response body could not be made.
enum EncodeError {
    /// Over `max-response-bytes`; encoding stopped at the limit.
    TooLarge,
    Json(serde_json::Error),
}

/// Serialises the responses straight from their value trees into one
/// buffer (no intermediate JSON tree), stopping as soon as the body would
/// pass `limit` bytes.
fn encode(responses: &[Response], single: bool, limit: usize) -> Result<Vec<u8>, EncodeError> {
    let mut out = Bounded {
        buf: Vec::new(),
        limit,
        over: false,
    };
    let written = if single {
        serde_json::to_writer(&mut out, &Wire(&responses[0]))
    } else {
        serde_json::to_writer(&mut out, &responses.iter().map(Wire).collect::<Vec<_>>())
    };
    match written {
        Ok(()) => Ok(out.buf),
        Err(_) if out.over => Err(EncodeError::TooLarge),
        Err(e) => Err(EncodeError::Json(e)),
    }
}

/// A byte buffer that refuses to grow past its limit.
struct Bounded {
    buf: Vec<u8>,
    limit: usize,
    over: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("response over max-response-bytes"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The checks made before an operation runs, beyond the access check:
/// acceptable input values, aliases, cost (of the whole batch), and
/// introspection for anonymous callers. `Some` is the refusal.
pub(crate) fn precheck(
    state: &AppState,
    principal: &crm_core::access::Principal,
    i: &crate::inspect::Inspection,
    a: &crate::cost::Analysis,
    total_cost: u64,
    single: bool,
    rid: &str,
) -> Option<Response> {
    let limits = &state.limits;
    let total_cost = total_cost.max(a.cost);
    if !a.invalid.is_empty() {
        return Some(refusal(crm_core::Error::Validation(a.invalid.clone()), rid));
    }
    let message = if i.aliases > limits.max_aliases {
        format!(
            "operation uses {} aliases; the limit is {}",
            i.aliases, limits.max_aliases
        )
    } else if total_cost > limits.max_cost {
        let what = if single {
            format!("operation costs {}", a.cost)
        } else {
            format!("batch costs {} (this operation {})", total_cost, a.cost)
        };
        format!(
            "{what}; the limit is {} (setting max-cost). Every field counts 1, multiplied by the page size (first/last, default {}) of each list around it: ask for smaller pages or fewer nested lists",
            limits.max_cost,
            crm_core::paging::DEFAULT_PAGE
        )
    } else if a.introspection
        && !limits.introspection_anonymous
        && matches!(principal, crm_core::access::Principal::Anonymous)
    {
        let mut r = Response::from_errors(vec![ServerError::new(
            "introspection requires signing in",
            None,
        )]);
        for e in &mut r.errors {
            e.extensions
                .get_or_insert_with(Default::default)
                .set("code", ErrorCode::Unauthenticated.as_str());
        }
        return Some(r);
    } else {
        return None;
    };
    let mut r = Response::from_errors(vec![ServerError::new(message, None)]);
    finish_errors(&mut r.errors, rid);
    Some(r)
}

/// `413` at once when the announced `Content-Length` is over `limit`: the
/// body is never read, and the connection is closed after the answer.
fn announced_too_large(
    headers: &HeaderMap,
    limit: usize,
    media: MediaType,
) -> Option<HttpResponse> {
    let announced = headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    (announced > limit as u64).then(|| {
        let mut resp = request_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            media,
            ErrorCode::Validation,
            &format!("request body of {announced} bytes is over the limit of {limit} bytes"),
        );
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp
    })
}

/// A request body as a stream that fails with `TimedOut` when the client
/// sends too slowly: after the grace time `body-read-timeout-secs`, the
/// body must have arrived at `body-min-bytes-per-sec` on average. A client
/// that announces a body and stops sending is cut off after the grace time.
fn guarded(
    body: axum::body::Body,
    limits: &crm_core::config::Limits,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use futures_util::StreamExt;
    let grace = limits.body_read_timeout;
    let rate = limits.body_min_bytes_per_sec.max(1) as f64;
    let started = tokio::time::Instant::now();
    futures_util::stream::unfold(
        (body.into_data_stream(), 0u64, false),
        move |(mut stream, received, done)| async move {
            if done {
                return None;
            }
            let allowed = grace + std::time::Duration::from_secs_f64(received as f64 / rate);
            match tokio::time::timeout_at(started + allowed, stream.next()).await {
                Err(_) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body arrives too slowly",
                    )),
                    (stream, received, true),
                )),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), (stream, received, true))),
                Ok(Some(Ok(chunk))) => {
                    let n = received + chunk.len() as u64;
                    Some((Ok(chunk), (stream, n, false)))
                }
            }
        },
    )
}

/// Why a body could not be read.
pub(crate) enum BodyError {
    TooLarge,
    TooSlow,
    Broken,
}

/// Reads a whole (JSON) body within the size limit and the rate rule.
async fn read_body(
    body: axum::body::Body,
    limits: &crm_core::config::Limits,
) -> Result<Bytes, BodyError> {
    read_body_within(body, limits, limits.max_body_bytes).await
}

/// Reads a whole body of at most `max` bytes within the rate rule.
pub(crate) async fn read_body_within(
    body: axum::body::Body,
    limits: &crm_core::config::Limits,
    max: usize,
) -> Result<Bytes, BodyError> {
    use futures_util::StreamExt;
    let stream = guarded(body, limits);
    futures_util::pin_mut!(stream);
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                if buf.len() + c.len() > max {
                    return Err(BodyError::TooLarge);
                }
                buf.extend_from_slice(&c);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err(BodyError::TooSlow),
            Err(_) => return Err(BodyError::Broken),
        }
    }
    Ok(Bytes::from(buf))
}

fn body_error(e: BodyError, limits: &crm_core::config::Limits, media: MediaType) -> HttpResponse {
    let (status, message) = match e {
        BodyError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is over the limit of {} bytes",
                limits.max_body_bytes
            ),
        ),
        BodyError::TooSlow => (
            StatusCode::REQUEST_TIMEOUT,
            "request body arrives too slowly".to_owned(),
        ),
        BodyError::Broken => (
            StatusCode::BAD_REQUEST,
            "request body could not be read".to_owned(),
        ),
    };
    let mut resp = request_error(status, media, ErrorCode::Validation, &message);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}
