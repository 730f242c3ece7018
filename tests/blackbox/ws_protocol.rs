//! graphql-transport-ws as its PROTOCOL.md says, close code by close code.

use serde_json::json;

use crate::support::*;
use crate::{both, server};

both!(protocol_close_codes, |b| async move {
    let s = server!(b, &[("ws-init-timeout-secs", "1")]);
    let admin = s.admin().await;

    // 4400: a message that is not valid.
    let mut ws = Ws::connect(s.addr()).await;
    ws.send_raw("{this is not json").await;
    assert_eq!(ws.close_code().await, Some(4400));
    let mut ws = Ws::connect(s.addr()).await;
    ws.send(json!({"type": "unknown_type"})).await;
    assert_eq!(ws.close_code().await, Some(4400));

    // 4401: subscribe before connection_init.
    let mut ws = Ws::connect(s.addr()).await;
    ws.subscribe("1", "{ __typename }", json!({})).await;
    assert_eq!(ws.close_code().await, Some(4401));

    // 4408: no connection_init within the timeout.
    let mut ws = Ws::connect(s.addr()).await;
    assert_eq!(ws.close_code().await, Some(4408));

    // 4429: a second connection_init.
    let mut ws = Ws::init(s.addr(), &admin).await;
    ws.send(json!({"type": "connection_init"})).await;
    assert_eq!(ws.close_code().await, Some(4429));

    // 4409: a second subscribe with an id still in use.
    let mut ws = Ws::init(s.addr(), &admin).await;
    let sub = "subscription { events { cursor } }";
    ws.subscribe("dup", sub, json!({})).await;
    ws.subscribe("dup", sub, json!({})).await;
    assert_eq!(ws.close_code().await, Some(4409));

    // 4403: credentials refused at init.
    let mut ws = Ws::connect(s.addr()).await;
    ws.send(json!({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}}))
        .await;
    assert_eq!(ws.close_code().await, Some(4403));
});

both!(operations_ping_and_complete, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let mut ws = Ws::init(s.addr(), &admin).await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.recv().await.unwrap()["type"], "pong");
    // Queries run over the socket too: next, then complete.
    ws.subscribe("q", "{ me { email } }", json!({})).await;
    let m = ws.recv().await.unwrap();
    assert_eq!(m["type"], "next");
    assert_eq!(m["payload"]["data"]["me"]["email"], ADMIN_EMAIL);
    let m = ws.recv().await.unwrap();
    assert_eq!(
        (m["type"].as_str(), m["id"].as_str()),
        (Some("complete"), Some("q"))
    );
    // An id may be reused once its operation completed.
    ws.subscribe("q", "{ __typename }", json!({})).await;
    assert_eq!(ws.recv().await.unwrap()["type"], "next");
    assert_eq!(ws.recv().await.unwrap()["type"], "complete");
    // A client `complete` stops a subscription; the id is free again.
    ws.subscribe("s", "subscription { events { cursor } }", json!({}))
        .await;
    ws.send(json!({"type": "complete", "id": "s"})).await;
    ws.subscribe("s", "subscription { events { cursor } }", json!({}))
        .await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(
        ws.recv().await.unwrap()["type"],
        "pong",
        "socket still open"
    );
    // Validation errors come as an `error` message with our codes.
    ws.subscribe("bad", "subscription { nope }", json!({}))
        .await;
    let m = ws.recv().await.unwrap();
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["payload"][0]["extensions"]["code"], "VALIDATION");
});
