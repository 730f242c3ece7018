//! Open WebSockets follow the caller's rights as they change: a logout, a
//! revoked key or a deactivation closes the socket (4403); a role change or
//! a policy edit applies to running subscriptions; per-socket caps.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const PASSWORD: &str = "user-password-1";
const SUB: &str = "subscription($a:String){ customerEvents(after:$a) { kind entityId payload } }";

async fn account(s: &TestServer, token: &str, name: &str) -> String {
    let r = s
        .gql(
            Some(token),
            "mutation($n:String!){ createAccount(input:{name:$n, creditLimit:{amountMinor: 700000, currency:\"EUR\"}}) { id } }",
            json!({"n": name}),
        )
        .await;
    r["data"]["createAccount"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createAccount: {r}"))
        .to_owned()
}

/// The next message for operation `id` that is not about another entity:
/// either an `error`/`complete` for it or the `next` about `entity`.
async fn next_about(ws: &mut Ws, id: &str, entity: &str) -> Value {
    loop {
        let m = ws.recv().await.expect("socket still open");
        if m["id"] != id {
            continue;
        }
        if m["type"] != "next" || m["payload"]["data"]["customerEvents"]["entityId"] == entity {
            return m;
        }
    }
}

async fn rep_with_socket(s: &TestServer) -> (String, String, String, Ws) {
    let admin = s.admin().await;
    let id = s
        .create_user(&admin, "rep@test.example", &["sales_rep"])
        .await;
    let rep = s.login("rep@test.example", PASSWORD).await;
    let mut ws = Ws::init(s.addr(), &rep).await;
    ws.subscribe("c", SUB, json!({"a": s.db.head().await}))
        .await;
    // The subscription delivers, credit limit included.
    let acc = account(s, &rep, "Before").await;
    let m = next_about(&mut ws, "c", &acc).await;
    assert_eq!(
        m["payload"]["data"]["customerEvents"]["payload"]["changed"]["creditLimit"]["amountMinor"],
        json!(700000),
        "{m}"
    );
    (admin, id, rep, ws)
}

async fn set_roles(s: &TestServer, admin: &str, id: &str, roles: &[&str]) {
    let u = s
        .gql(
            Some(admin),
            "query($id:ID!){ user(id:$id) { version } }",
            json!({"id": id}),
        )
        .await;
    let r = s
        .gql(
            Some(admin),
            "mutation($i:UpdateUserInput!){ updateUser(input:$i) { roles } }",
            json!({"i": {"id": id, "version": u["data"]["user"]["version"], "roles": roles}}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r}");
}

both!(logout_closes_the_socket, |b| async move {
    let s = server!(b);
    let (_, _, rep, mut ws) = rep_with_socket(&s).await;
    // A socket on another replica of the same database closes too.
    let other = s.replica(&[]).await;
    let mut far = Ws::init(other.addr, &rep).await;
    far.subscribe("c", SUB, json!({})).await;
    let r = s.gql(Some(&rep), "mutation { logout }", json!({})).await;
    assert_eq!(r["data"]["logout"], json!(true), "{r}");
    assert_eq!(ws.close_code().await, Some(4403));
    assert_eq!(far.close_code().await, Some(4403));
    // And a new socket with the token is refused.
    let mut ws = Ws::connect(s.addr()).await;
    ws.send(
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {rep}")}}),
    )
    .await;
    assert_eq!(ws.close_code().await, Some(4403));
});

both!(revoking_an_api_key_closes_its_socket, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let r = s
        .gql(
            Some(&admin),
            "mutation { createApiKey(input:{name:\"sync\", role:\"integrator\"}) { key apiKey { id } } }",
            json!({}),
        )
        .await;
    let key = r["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = r["data"]["createApiKey"]["apiKey"]["id"].clone();
    let mut ws = Ws::init(s.addr(), &key).await;
    ws.subscribe("c", SUB, json!({"a": s.db.head().await}))
        .await;
    let acc = account(&s, &admin, "Seen").await;
    let m = next_about(&mut ws, "c", &acc).await;
    assert_eq!(m["type"], "next", "{m}");
    let r = s
        .gql(
            Some(&admin),
            "mutation($id:ID!){ revokeApiKey(id:$id) { revokedAt } }",
            json!({"id": id}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r}");
    assert_eq!(ws.close_code().await, Some(4403));
});

both!(deactivating_a_user_closes_the_socket, |b| async move {
    let s = server!(b);
    let (admin, id, _, mut ws) = rep_with_socket(&s).await;
    let u = s
        .gql(
            Some(&admin),
            "query($id:ID!){ user(id:$id) { version } }",
            json!({"id": id}),
        )
        .await;
    let r = s
        .gql(
            Some(&admin),
            "mutation($id:ID!,$v:Int!){ deactivateUser(id:$id, version:$v) { active } }",
            json!({"id": id, "v": u["data"]["user"]["version"]}),
        )
        .await;
    assert_eq!(r["data"]["deactivateUser"]["active"], json!(false), "{r}");
    assert_eq!(ws.close_code().await, Some(4403));
});

both!(
    a_demoted_rep_stops_receiving_credit_limits,
    |b| async move {
        let s = server!(b);
        let (admin, id, _, mut ws) = rep_with_socket(&s).await;
        set_roles(&s, &admin, &id, &["support"]).await;
        // Support reads every account, never the credit limit: the very next
        // event already follows the new role.
        let acc = account(&s, &admin, "After").await;
        let m = next_about(&mut ws, "c", &acc).await;
        assert_eq!(m["type"], "next", "{m}");
        let changed = &m["payload"]["data"]["customerEvents"]["payload"]["changed"];
        assert_eq!(changed["name"], json!("After"), "{m}");
        assert!(
            changed.get("creditLimit").is_none(),
            "credit limit leaked: {m}"
        );

        // A role without the subscription at all ends it with FORBIDDEN.
        set_roles(&s, &admin, &id, &["it_admin"]).await;
        let m = next_about(&mut ws, "c", "-").await;
        assert_eq!(m["type"], "error", "{m}");
        assert_eq!(m["payload"][0]["extensions"]["code"], "FORBIDDEN", "{m}");
        // Nothing more for it, while the socket itself stays open.
        let acc = account(&s, &admin, "Later").await;
        ws.send(json!({"type": "ping"})).await;
        loop {
            let m = ws.recv().await.expect("socket open");
            assert_ne!(m["id"], "c", "ended operation still delivers: {m} ({acc})");
            if m["type"] == "pong" {
                break;
            }
        }
    }
);

both!(a_policy_edit_reaches_live_subscriptions, |b| async move {
    let s = TestServer::start_with_policy(b, "", &[]).await;
    let (admin, _, rep, mut ws) = rep_with_socket(&s).await;
    let path = s.policy_dir().join("policy.csv");
    let original = std::fs::read_to_string(&path).unwrap();
    let status = "{ policyStatus { version lastError } }";
    let version = |v: &Value| v["data"]["policyStatus"]["version"].as_i64().unwrap();
    let wait_version = async |above: i64| {
        let bound = Instant::now() + Duration::from_secs(15);
        loop {
            let r = s.gql(Some(&admin), status, json!({})).await;
            if version(&r) > above {
                assert!(r["data"]["policyStatus"]["lastError"].is_null(), "{r}");
                return version(&r);
            }
            assert!(Instant::now() < bound, "the edit did not load: {r}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let v1 = version(&s.gql(Some(&admin), status, json!({})).await);

    std::fs::write(
        &path,
        format!("{original}\np, sales_rep, Account.creditLimit, read, deny\n"),
    )
    .unwrap();
    let v2 = wait_version(v1).await;
    let acc = account(&s, &rep, "Edited").await;
    let m = next_about(&mut ws, "c", &acc).await;
    assert_eq!(m["type"], "next", "{m}");
    let changed = &m["payload"]["data"]["customerEvents"]["payload"]["changed"];
    assert_eq!(changed["name"], json!("Edited"), "{m}");
    assert!(
        changed.get("creditLimit").is_none(),
        "credit limit leaked: {m}"
    );

    std::fs::write(
        &path,
        format!("{original}\np, sales_rep, Subscription.customerEvents, call, deny\n"),
    )
    .unwrap();
    wait_version(v2).await;
    let m = next_about(&mut ws, "c", "-").await;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["payload"][0]["extensions"]["code"], "FORBIDDEN", "{m}");
});

both!(per_socket_caps, |b| async move {
    let s = server!(
        b,
        &[("ws-max-subscriptions", "2"), ("ws-max-operations", "10")]
    );
    let admin = s.admin().await;
    let mut ws = Ws::init(s.addr(), &admin).await;
    let sub = "subscription { events { cursor } }";
    ws.subscribe("a", sub, json!({})).await;
    ws.subscribe("b", sub, json!({})).await;
    ws.subscribe("c", sub, json!({})).await;
    let m = ws.recv().await.unwrap();
    assert_eq!(m["id"], "c", "{m}");
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["payload"][0]["extensions"]["code"], "RATE_LIMITED", "{m}");
    // Queries still run; a freed slot can be reused.
    ws.subscribe("q", "{ me { email } }", json!({})).await;
    let m = ws.recv().await.unwrap();
    assert_eq!(m["type"], "next", "{m}");
    assert_eq!(m["payload"]["data"]["me"]["email"], ADMIN_EMAIL, "{m}");
    ws.send(json!({"type": "complete", "id": "a"})).await;
    ws.subscribe("d", sub, json!({})).await;
    ws.send(json!({"type": "ping"})).await;
    loop {
        let m = ws.recv().await.unwrap();
        assert_ne!(m["type"], "error", "{m}");
        if m["type"] == "pong" {
            break;
        }
    }

    let s = server!(
        b,
        &[("ws-max-subscriptions", "5"), ("ws-max-operations", "2")]
    );
    let admin = s.admin().await;
    let mut ws = Ws::init(s.addr(), &admin).await;
    ws.subscribe("a", sub, json!({})).await;
    ws.subscribe("b", sub, json!({})).await;
    ws.subscribe("q", "{ me { email } }", json!({})).await;
    let m = ws.recv().await.unwrap();
    assert_eq!(m["id"], "q", "{m}");
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["payload"][0]["extensions"]["code"], "RATE_LIMITED", "{m}");
    assert!(
        m["payload"][0]["message"]
            .as_str()
            .unwrap()
            .contains("operations"),
        "{m}"
    );
});
