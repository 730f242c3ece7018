//! GraphQL over WebSocket, graphql-transport-ws protocol, written to its
//! PROTOCOL.md: `connection_init` within the configured timeout (else 4408),
//! credentials in the init payload (refused: 4403), nothing before init
//! (4401), one init only (4429), unique operation ids (4409), malformed
//! messages close with 4400, ping/pong, and a clean 1001 on shutdown.
//!
//! Rights are not fixed at `connection_init`: whenever a user, token or API
//! key changes (identity events, from any replica) or the policy reloads, the
//! socket authenticates its credentials again. Revoked, logged out or
//! deactivated: closed with 4403. Other rights: every running operation is
//! checked again; one no longer allowed ends with an `error` (FORBIDDEN), the
//! others filter later events under the new rights. Per socket, at most
//! `ws-max-operations` operations and `ws-max-subscriptions` subscriptions
//! run at once; queries and mutations get the HTTP `request-timeout-secs`.

use std::collections::HashMap;
use std::time::Instant;

use async_graphql::Request;
use async_graphql::parser::types::OperationType;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response as HttpResponse};
use crm_core::access::Principal;
use crm_core::error::{ErrorCode, finish_errors};
use crm_core::events::view::LiveCredentials;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::state::{AppState, RequestId};

const PROTOCOL: &str = "graphql-transport-ws";

/// Accepts the upgrade and runs the protocol on the socket.
pub fn upgrade(state: AppState, headers: HeaderMap, ws: WebSocketUpgrade) -> HttpResponse {
    let rid = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let ws = ws.protocols([PROTOCOL]);
    let speaks_protocol = ws.selected_protocol().is_some();
    ws.on_upgrade(move |mut socket| async move {
        let guard = state.connections.enter();
        if speaks_protocol {
            run(state, socket, rid).await;
        } else {
            let _ = socket.send(close(4406, "Subprotocol not acceptable")).await;
        }
        drop(guard);
    })
    .into_response()
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
    Subscribe {
        id: String,
        payload: Box<Request>,
    },
    Complete {
        id: String,
    },
}

/// Messages from operation tasks to the socket writer.
enum Out {
    Send(Value),
    /// The operation ended; `complete` says whether to tell the client (not
    /// after an `error` message, which ends the operation by itself).
    Done {
        id: String,
        complete: bool,
    },
}

/// A running operation, kept so it can be checked again when rights change.
struct Op {
    handle: AbortHandle,
    query: String,
    operation_name: Option<String>,
    variables: async_graphql::Variables,
    subscription: bool,
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

async fn run(state: AppState, socket: WebSocket, rid: String) {
    let (mut sink, mut stream) = socket.split();
    // The client must speak our subprotocol.
    let init_deadline = Instant::now() + state.limits.ws_init_timeout;
    let mut principal: Option<Principal> = None;
    // The credentials sent at init, checked again when rights may change.
    let mut credentials: Option<String> = None;
    let mut identity_changes = state.app.auth.watch_changes();
    let mut policy_changes = state.app.policy.watch_changes();
    let mut ops: HashMap<String, Op> = HashMap::new();
    let (tx, mut rx) = mpsc::channel::<Out>(256);
    let mut shutdown = state.shutdown.clone();
    state.metrics.ws_connections.inc();

    let close_with = loop {
        let init_timer = async {
            if principal.is_none() {
                tokio::time::sleep_until(init_deadline.into()).await
            } else {
                std::future::pending::<()>().await
            }
        };
        tokio::select! {
            _ = init_timer => break Some(close(4408, "Connection initialisation timeout")),
            _ = shutdown.changed() => break Some(close(1001, "Server shutting down")),
            changed = identity_changes.changed(), if principal.is_some() => {
                if changed.is_err() {
                    continue;
                }
                match recheck(&state, &credentials, &mut principal, &mut ops, &rid, false).await {
                    Recheck::Close => break Some(close(4403, "Forbidden")),
                    Recheck::Send(msgs) => {
                        if send_all(&mut sink, msgs).await.is_err() {
                            break None;
                        }
                    }
                }
            }
            changed = policy_changes.changed(), if principal.is_some() => {
                if changed.is_err() {
                    continue;
                }
                match recheck(&state, &credentials, &mut principal, &mut ops, &rid, true).await {
                    Recheck::Close => break Some(close(4403, "Forbidden")),
                    Recheck::Send(msgs) => {
                        if send_all(&mut sink, msgs).await.is_err() {
                            break None;
                        }
                    }
                }
            }
            out = rx.recv() => {
                let Some(out) = out else { break None };
                let msg = match out {
                    Out::Send(v) => v,
                    Out::Done { id, complete } => {
                        // Gone already if the client completed it first.
                        if ops.remove(&id).is_none() {
                            continue;
                        }
                        state.metrics.subscriptions.dec();
                        if !complete {
                            continue;
                        }
                        json!({ "type": "complete", "id": id })
                    }
                };
                if sink.send(Message::Text(msg.to_string().into())).await.is_err() {
                    break None;
                }
            }
            incoming = stream.next() => {
                let text = match incoming {
                    None | Some(Err(_)) => break None,
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) => break None,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => break Some(close(4400, "Binary messages are not supported")),
                };
                let msg: ClientMessage = match serde_json::from_str(&text) {
                    Ok(m) => m,
                    Err(_) => break Some(close(4400, "Invalid message")),
                };
                match msg {
                    ClientMessage::ConnectionInit { payload } => {
                        if principal.is_some() {
                            break Some(close(4429, "Too many initialisation requests"));
                        }
                        let header = payload.as_ref().and_then(auth_from_payload);
                        // Changes from here on are seen by the re-check.
                        identity_changes.mark_unchanged();
                        policy_changes.mark_unchanged();
                        match state.app.auth.authenticate(header.as_deref()).await {
                            Ok(p) => principal = Some(p),
                            Err(_) => break Some(close(4403, "Forbidden")),
                        }
                        credentials = header;
                        let ack = json!({ "type": "connection_ack" });
                        if sink.send(Message::Text(ack.to_string().into())).await.is_err() {
                            break None;
                        }
                    }
                    ClientMessage::Ping { .. } => {
                        let pong = json!({ "type": "pong" });
                        if sink.send(Message::Text(pong.to_string().into())).await.is_err() {
                            break None;
                        }
                    }
                    ClientMessage::Pong { .. } => {}
                    ClientMessage::Subscribe { id, payload } => {
                        let Some(p) = principal.clone() else {
                            break Some(close(4401, "Unauthorized"));
                        };
                        if ops.contains_key(&id) {
                            break Some(close(4409, "Subscriber for this id already exists"));
                        }
                        let inspection = crate::inspect::inspect(&payload.query, payload.operation_name.as_deref());
                        let checked = match &inspection {
                            Ok(i) => crm_core::access::check_request(&state.app, &p, &i.doc, payload.operation_name.as_deref(), &payload.variables),
                            Err(why) => Err(crm_core::access::unparsable(why)),
                        };
                        if let Err(e) = checked {
                            let r = crate::respond::refusal(e, &rid);
                            let err = json!({ "type": "error", "id": id, "payload": r.errors });
                            if sink.send(Message::Text(err.to_string().into())).await.is_err() {
                                break None;
                            }
                            continue;
                        }
                        if let Ok(i) = &inspection
                            && let Some(r) = crate::http::precheck(&state, &p, i, &crate::cost::analyse(&i.doc, payload.operation_name.as_deref(), &payload.variables, &state.limits), 0, true, &rid)
                        {
                            let err = json!({ "type": "error", "id": id, "payload": r.errors });
                            if sink.send(Message::Text(err.to_string().into())).await.is_err() {
                                break None;
                            }
                            continue;
                        }
                        let subscription = inspection
                            .as_ref()
                            .is_ok_and(|i| i.operation == Some(OperationType::Subscription));
                        let running_subscriptions = ops.values().filter(|o| o.subscription).count();
                        let over = if ops.len() >= state.limits.ws_max_operations {
                            Some(format!("this socket already runs {} operations; the limit is {}", ops.len(), state.limits.ws_max_operations))
                        } else if subscription && running_subscriptions >= state.limits.ws_max_subscriptions {
                            Some(format!("this socket already holds {running_subscriptions} subscriptions; the limit is {}", state.limits.ws_max_subscriptions))
                        } else {
                            None
                        };
                        if let Some(message) = over {
                            let err = json!({ "type": "error", "id": id, "payload": [{
                                "message": message,
                                "extensions": { "code": ErrorCode::RateLimited.as_str() }
                            }]});
                            if sink.send(Message::Text(err.to_string().into())).await.is_err() {
                                break None;
                            }
                            continue;
                        }
                        let (query, operation_name, variables) = (
                            payload.query.clone(),
                            payload.operation_name.clone(),
                            payload.variables.clone(),
                        );
                        let handle = spawn_operation(&state, id.clone(), *payload, p, credentials.clone(), subscription, rid.clone(), tx.clone());
                        state.metrics.subscriptions.inc();
                        ops.insert(id, Op { handle, query, operation_name, variables, subscription });
                    }
                    ClientMessage::Complete { id } => {
                        if let Some(op) = ops.remove(&id) {
                            op.handle.abort();
                            state.metrics.subscriptions.dec();
                        }
                    }
                }
            }
        }
    };
    for (_, op) in ops.drain() {
        op.handle.abort();
        state.metrics.subscriptions.dec();
    }
    state.metrics.ws_connections.dec();
    if let Some(frame) = close_with {
        let _ = sink.send(frame).await;
    }
    let _ = sink.close().await;
}

/// What a re-check decided.
enum Recheck {
    /// The credentials no longer authenticate: close with 4403.
    Close,
    /// Messages for operations it ended.
    Send(Vec<Value>),
}

/// Authenticates the socket's credentials again and, if the caller's rights
/// or the policy changed, checks every running operation again: those no
/// longer allowed are ended with an `error` message.
async fn recheck(
    state: &AppState,
    credentials: &Option<String>,
    principal: &mut Option<Principal>,
    ops: &mut HashMap<String, Op>,
    rid: &str,
    policy_changed: bool,
) -> Recheck {
    let Ok(now) = state.app.auth.authenticate(credentials.as_deref()).await else {
        return Recheck::Close;
    };
    if !policy_changed && principal.as_ref() == Some(&now) {
        return Recheck::Send(Vec::new());
    }
    *principal = Some(now.clone());
    let mut ended = Vec::new();
    let mut msgs = Vec::new();
    for (id, op) in ops.iter() {
        let refused = match crate::inspect::inspect(&op.query, op.operation_name.as_deref()) {
            Ok(i) => crm_core::access::check_request(
                &state.app,
                &now,
                &i.doc,
                op.operation_name.as_deref(),
                &op.variables,
            )
            .err(),
            // It parsed when it started; refuse rather than guess.
            Err(why) => Some(crm_core::access::unparsable(&why)),
        };
        if let Some(e) = refused {
            let r = crate::respond::refusal(e, rid);
            msgs.push(json!({ "type": "error", "id": id, "payload": r.errors }));
            ended.push(id.clone());
        }
    }
    for id in ended {
        if let Some(op) = ops.remove(&id) {
            op.handle.abort();
            state.metrics.subscriptions.dec();
        }
    }
    Recheck::Send(msgs)
}

async fn send_all<S>(sink: &mut S, msgs: Vec<Value>) -> Result<(), S::Error>
where
    S: futures_util::Sink<Message> + Unpin,
{
    for m in msgs {
        sink.send(Message::Text(m.to_string().into())).await?;
    }
    Ok(())
}

/// Reads the credentials from the `connection_init` payload:
/// `{"Authorization": "Bearer …"}` (any case) or `{"token": "…"}`.
fn auth_from_payload(payload: &Value) -> Option<String> {
    let obj = payload.as_object()?;
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("authorization") {
            return v.as_str().map(str::to_owned);
        }
    }
    obj.get("token")
        .and_then(Value::as_str)
        .map(|t| format!("Bearer {t}"))
}

#[allow(clippy::too_many_arguments)]
fn spawn_operation(
    state: &AppState,
    id: String,
    req: Request,
    principal: Principal,
    credentials: Option<String>,
    subscription: bool,
    rid: String,
    tx: mpsc::Sender<Out>,
) -> AbortHandle {
    let schema = state.schema.clone();
    let app = state.app.clone();
    let timeout = state.limits.request_timeout;
    let task = tokio::spawn(async move {
        let req = crate::schema::request_data(req, &app, &principal)
            .data(principal)
            .data(LiveCredentials(credentials))
            .data(RequestId(rid.clone()));
        if !subscription {
            // A query or mutation: one result, within the HTTP time limit.
            let _active = crate::memory::active();
            let mut resp = match tokio::time::timeout(timeout, schema.execute(req)).await {
                Ok(r) => r,
                Err(_) => {
                    let mut r = async_graphql::Response::from_errors(vec![
                        async_graphql::ServerError::new("request timed out", None),
                    ]);
                    finish_errors(&mut r.errors, &rid);
                    for e in &mut r.errors {
                        e.extensions
                            .get_or_insert_with(Default::default)
                            .set("code", ErrorCode::Unavailable.as_str());
                    }
                    r
                }
            };
            finish_errors(&mut resp.errors, &rid);
            let request_error = resp.data == async_graphql::Value::Null && !resp.errors.is_empty();
            let msg = if request_error {
                json!({ "type": "error", "id": id, "payload": resp.errors })
            } else {
                json!({ "type": "next", "id": id, "payload": crate::respond::response_json(resp) })
            };
            if tx.send(Out::Send(msg)).await.is_ok() {
                let _ = tx
                    .send(Out::Done {
                        id,
                        complete: !request_error,
                    })
                    .await;
            }
            return;
        }
        let mut stream = schema.execute_stream(req);
        let mut first = true;
        while let Some(mut resp) = stream.next().await {
            finish_errors(&mut resp.errors, &rid);
            let request_error =
                first && resp.data == async_graphql::Value::Null && !resp.errors.is_empty();
            first = false;
            let msg = if request_error {
                json!({ "type": "error", "id": id, "payload": resp.errors })
            } else {
                json!({ "type": "next", "id": id, "payload": crate::respond::response_json(resp) })
            };
            if tx.send(Out::Send(msg)).await.is_err() {
                return;
            }
            if request_error {
                let _ = tx
                    .send(Out::Done {
                        id,
                        complete: false,
                    })
                    .await;
                return;
            }
        }
        let _ = tx.send(Out::Done { id, complete: true }).await;
    });
    task.abort_handle()
}
