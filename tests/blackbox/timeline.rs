//! The interaction timeline, tasks, reminders and purchases.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

async fn new_account(s: &TestServer, token: &str, name: &str) -> String {
    let r = s
        .gql(
            Some(token),
            "mutation($n:String!){ createAccount(input:{name:$n}) { id } }",
            json!({"n": name}),
        )
        .await;
    r["data"]["createAccount"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

const LOG: &str = "mutation($i:CreateActivityInput!){ logActivity(input:$i) { id kind title assigneeId dueAt version } }";

both!(timeline_tasks_and_exactly_once_reminders, |b| async move {
    let s = server!(b);
    let replica = s.replica(&[]).await;
    let admin = s.admin().await;
    s.create_user(&admin, "rep@test.example", &["sales_rep"])
        .await;
    s.create_user(&admin, "other@test.example", &["sales_rep"])
        .await;
    let rep = s.login("rep@test.example", "user-password-1").await;
    let other = s.login("other@test.example", "user-password-1").await;
    let acc = new_account(&s, &rep, "Timeline Co").await;
    let r = s
        .gql(Some(&rep), LOG, json!({"i": {"kind": "CALL", "subjectType": "ACCOUNT", "subjectId": acc, "title": "Intro call", "durationSecs": 600, "outcome": "reached", "occurredAt": "2026-01-01T10:00:00Z"}}))
        .await;
    assert_eq!(r["data"]["logActivity"]["kind"], "CALL", "{r}");
    s.gql(Some(&rep), LOG, json!({"i": {"kind": "NOTE", "subjectType": "ACCOUNT", "subjectId": acc, "title": "Likes golf", "occurredAt": "2026-02-01T10:00:00Z"}}))
        .await;
    let remind = (chrono::Utc::now() + chrono::Duration::milliseconds(800)).to_rfc3339();
    let due = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let r = s
        .gql(Some(&rep), LOG, json!({"i": {"kind": "TASK", "subjectType": "ACCOUNT", "subjectId": acc, "title": "Send offer", "dueAt": due, "remindAt": remind}}))
        .await;
    let task = r["data"]["logActivity"].clone();
    assert!(task["assigneeId"].is_string(), "{r}");
    // Newest first.
    let r = s
        .gql(Some(&rep), "query($id:ID!){ account(id:$id) { timeline(first: 2) { totalCount edges { node { title } } } } }", json!({"id": acc}))
        .await;
    let titles: Vec<&str> = r["data"]["account"]["timeline"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Send offer", "Likes golf"], "{r}");
    assert_eq!(r["data"]["account"]["timeline"]["totalCount"], 3);
    // Another rep cannot log on (or see) this account.
    let r = s.gql(Some(&other), LOG, json!({"i": {"kind": "NOTE", "subjectType": "ACCOUNT", "subjectId": acc, "title": "x"}})).await;
    assert_eq!(
        r["errors"][0]["extensions"]["fields"][0]["field"], "subjectId",
        "{r}"
    );
    // Only tasks have due times.
    let r = s.gql(Some(&rep), LOG, json!({"i": {"kind": "NOTE", "subjectType": "ACCOUNT", "subjectId": acc, "title": "x", "dueAt": due}})).await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    // My open tasks, by due time.
    let tasks = "query($d:DateTime){ myTasks(dueBefore:$d) { title } }";
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let r = s.gql(Some(&rep), tasks, json!({"d": tomorrow})).await;
    assert_eq!(
        r["data"]["myTasks"],
        json!([{"title": "Send offer"}]),
        "{r}"
    );
    let r = s
        .gql(
            Some(&rep),
            tasks,
            json!({"d": chrono::Utc::now().to_rfc3339()}),
        )
        .await;
    assert_eq!(r["data"]["myTasks"], json!([]), "{r}");
    // The reminder becomes one event, although two replicas are polling.
    let mut ws = Ws::init(s.addr(), &admin).await;
    ws.subscribe(
        "1",
        "subscription { events(after: \"0\", topics:[\"reminders\"]) { kind entityId payload } }",
        json!({}),
    )
    .await;
    let m = ws.recv().await.expect("reminder event");
    assert_eq!(
        m["payload"]["data"]["events"]["kind"], "activity.reminder",
        "{m}"
    );
    assert_eq!(m["payload"]["data"]["events"]["entityId"], task["id"]);
    assert_eq!(
        m["payload"]["data"]["events"]["payload"]["title"],
        "Send offer"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let extra = tokio::time::timeout(Duration::from_millis(300), ws.recv()).await;
    assert!(extra.is_err(), "reminder sent twice: {extra:?}");
    drop(replica);
    // Completing.
    let done =
        "mutation($id:ID!,$v:Int!){ completeTask(id:$id, version:$v) { completedAt version } }";
    let r = s
        .gql(
            Some(&rep),
            done,
            json!({"id": task["id"], "v": task["version"]}),
        )
        .await;
    assert!(r["data"]["completeTask"]["completedAt"].is_string(), "{r}");
    let r = s.gql(Some(&rep), tasks, json!({})).await;
    assert_eq!(r["data"]["myTasks"], json!([]), "{r}");
    let r = s
        .gql(Some(&rep), done, json!({"id": task["id"], "v": 2}))
        .await;
    assert_eq!(code(&r), "CONFLICT", "{r}");
});

both!(purchases_are_idempotent_and_scoped, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    s.create_user(&admin, "rep@test.example", &["sales_rep"])
        .await;
    s.create_user(&admin, "rep2@test.example", &["sales_rep"])
        .await;
    s.create_user(&admin, "mk@test.example", &["marketing"])
        .await;
    let rep = s.login("rep@test.example", "user-password-1").await;
    let rep2 = s.login("rep2@test.example", "user-password-1").await;
    let mk = s.login("mk@test.example", "user-password-1").await;
    let key = s
        .gql(
            Some(&admin),
            "mutation { createApiKey(input:{name:\"erp\", role:\"integrator\"}) { key } }",
            json!({}),
        )
        .await["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let acc = new_account(&s, &rep, "Buyer Co").await;
    let record = "mutation($i:CreatePurchaseInput!){ recordPurchase(input:$i) { id amount { amountMinor currency } lineItems { name quantity } } }";
    let order = json!({"accountId": acc, "orderNumber": "SO-1001", "orderedAt": "2026-03-01T12:00:00Z",
        "amount": {"amountMinor": 129900, "currency": "eur"}, "lineItems": [{"name": "Widget", "quantity": 3, "unitAmountMinor": 43300}],
        "externalId": "erp-77", "idempotencyKey": "erp-order-77"});
    let first = s.gql(Some(&key), record, json!({"i": order})).await;
    let id = first["data"]["recordPurchase"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    assert_eq!(
        first["data"]["recordPurchase"]["amount"],
        json!({"amountMinor": 129900, "currency": "EUR"})
    );
    // Sent again: the same purchase, not a second one.
    let again = s.gql(Some(&key), record, json!({"i": order})).await;
    assert_eq!(
        again["data"]["recordPurchase"]["id"],
        id.as_str(),
        "{again}"
    );
    assert_eq!(s.db.count("purchases").await, 1);
    let mut changed = order.clone();
    changed["amount"]["amountMinor"] = json!(1);
    let r = s.gql(Some(&key), record, json!({"i": changed})).await;
    assert_eq!(code(&r), "CONFLICT", "{r}");
    // The owner sees the history; another rep does not; marketing may not
    // see amounts.
    let hist = "query($id:ID!){ account(id:$id) { purchases { totalCount edges { node { orderNumber amount { amountMinor } } } } } }";
    let r = s.gql(Some(&rep), hist, json!({"id": acc})).await;
    assert_eq!(r["data"]["account"]["purchases"]["totalCount"], 1, "{r}");
    let r = s.gql(Some(&rep2), hist, json!({"id": acc})).await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    let r = s.gql(Some(&mk), hist, json!({"id": acc})).await;
    assert_eq!(
        r["errors"][0]["extensions"]["fields"],
        json!(["Purchase.amount"]),
        "{r}"
    );
    let r = s
        .gql(Some(&mk), "query($id:ID!){ account(id:$id) { purchases { totalCount edges { node { orderNumber } } } } }", json!({"id": acc}))
        .await;
    assert_eq!(r["data"]["account"]["purchases"]["totalCount"], 1, "{r}");
    // Reps cannot write purchases; bad input names its fields.
    let r = s.gql(Some(&rep), record, json!({"i": order})).await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    let mut bad: Value = order.clone();
    bad["idempotencyKey"] = json!("k2");
    bad["amount"]["currency"] = json!("euros");
    bad["lineItems"][0]["quantity"] = json!(0);
    let r = s.gql(Some(&key), record, json!({"i": bad})).await;
    let fields: Vec<&str> = r["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["amount", "lineItems"], "{r}");
});
