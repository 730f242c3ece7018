//! GraphQL over WebSocket, graphql-transport-ws protocol, written to its
//! PROTOCOL.md: `connection_init` within the configured timeout (else 4408),
//! credentials in the init payload (refused: 4403), nothing before init
//! (4401), one init only (4429), unique operation ids (4409), malformed
//! messages close with 4400, ping/pong, and a clean 1001 on shutdown.

use std::collections::HashMap;
use std::time::Instant;

use async_graphql::Request;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response as HttpResponse};
use crm_core::access::Principal;
use crm_core::error::finish_errors;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::server::{AppState, RequestId};

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
    let mut ops: HashMap<String, AbortHandle> = HashMap::new();
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
                        match state.app.auth.authenticate(header.as_deref()).await {
                            Ok(p) => principal = Some(p),
                            Err(_) => break Some(close(4403, "Forbidden")),
                        }
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
                        if let Some(i) = &inspection
                            && let Err(e) = crm_core::access::check_request(&state.app, &p, &i.doc, payload.operation_name.as_deref(), &payload.variables)
                        {
                            let r = crate::http::refusal(e, &rid);
                            let err = json!({ "type": "error", "id": id, "payload": r.errors });
                            if sink.send(Message::Text(err.to_string().into())).await.is_err() {
                                break None;
                            }
                            continue;
                        }
                        if let Some(i) = inspection
                            && let Some(r) = crate::http::precheck(&state, &p, &i, &crate::cost::analyse(&i.doc, payload.operation_name.as_deref(), &payload.variables, &state.limits), 0, true, &rid)
                        {
                            let err = json!({ "type": "error", "id": id, "payload": r.errors });
                            if sink.send(Message::Text(err.to_string().into())).await.is_err() {
                                break None;
                            }
                            continue;
                        }
                        let handle = spawn_operation(&state, id.clone(), *payload, p, rid.clone(), tx.clone());
                        state.metrics.subscriptions.inc();
                        ops.insert(id, handle);
                    }
                    ClientMessage::Complete { id } => {
                        if let Some(h) = ops.remove(&id) {
                            h.abort();
                            state.metrics.subscriptions.dec();
                        }
                    }
                }
            }
        }
    };
    for (_, h) in ops.drain() {
        h.abort();
        state.metrics.subscriptions.dec();
    }
    state.metrics.ws_connections.dec();
    if let Some(frame) = close_with {
        let _ = sink.send(frame).await;
    }
    let _ = sink.close().await;
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

fn spawn_operation(
    state: &AppState,
    id: String,
    req: Request,
    principal: Principal,
    rid: String,
    tx: mpsc::Sender<Out>,
) -> AbortHandle {
    let schema = state.schema.clone();
    let app = state.app.clone();
    let task = tokio::spawn(async move {
        let req = crate::schema::request_data(req, &app, &principal)
            .data(principal)
            .data(RequestId(rid.clone()));
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
                json!({ "type": "next", "id": id, "payload": crate::http::response_json(resp) })
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
