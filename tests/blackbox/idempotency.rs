//! `Idempotency-Key` on POST mutations: a retry with the same key and body
//! gets the stored response without running again (one record, one event),
//! another body is 422, a retry while the first still runs is 409, keys are
//! per caller, replicas on one database agree, and claims of dead
//! processes and expired keys do not block a key forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const CREATE: &str =
    "mutation($i:CreateAccountInput!){ createAccount(input:$i) { id name version } }";

/// What a client sees of one response.
struct Answer {
    status: u16,
    replayed: bool,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// POSTs `body` to `addr` with an optional bearer token and key.
async fn post(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    token: Option<&str>,
    key: Option<&str>,
    body: &Value,
) -> Answer {
    post_text(http, addr, token, key, body.to_string()).await
}

/// POSTs a JSON body written as given.
async fn post_text(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    token: Option<&str>,
    key: Option<&str>,
    body: String,
) -> Answer {
    let mut req = http
        .post(format!("http://{addr}/graphql"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let replayed = header("idempotent-replayed").as_deref() == Some("true");
    let retry_after = header("retry-after");
    Answer {
        status: resp.status().as_u16(),
        replayed,
        retry_after,
        body: resp.text().await.unwrap(),
    }
}

fn create(name: &str) -> Value {
    json!({"query": CREATE, "variables": {"i": {"name": name}}})
}

async fn accounts_named(s: &TestServer, name: &str) -> i64 {
    s.db.scalar(&format!(
        "SELECT COUNT(*) AS n FROM accounts WHERE name = '{name}'"
    ))
    .await
}

async fn created_events(s: &TestServer) -> i64 {
    s.db.scalar("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'account.created'")
        .await
}

/// Waits until `n` keys are claimed and still running.
async fn wait_running(s: &TestServer, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let running =
            s.db.scalar("SELECT COUNT(*) AS n FROM idempotency_keys WHERE status = 'running'")
                .await;
        if running == n {
            return;
        }
        assert!(Instant::now() < deadline, "{running} running keys, not {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server whose claimed idempotent requests wait for a permit of the
/// returned semaphore before they run.
async fn held_server(b: Backend) -> (TestServer, Arc<tokio::sync::Semaphore>) {
    let db = TestDb::new(b).await;
    let hold = Arc::new(tokio::sync::Semaphore::new(0));
    let mut cfg = config(&db, &[]);
    cfg.idempotency.hold = Some(hold.clone());
    let running = crm_gateway::server::start(cfg).await.unwrap();
    let s = TestServer {
        db,
        running,
        http: reqwest::Client::new(),
    };
    (s, hold)
}

both!(
    a_retry_gets_the_stored_response_and_runs_nothing,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let body = create("Once Ltd");
        let first = post(&s.http, s.addr(), Some(&admin), Some("order-1"), &body).await;
        assert_eq!(first.status, 200, "{}", first.body);
        assert!(!first.replayed);
        assert!(
            first.json()["data"]["createAccount"]["id"].is_string(),
            "{}",
            first.body
        );
        // The same body with its keys in another order is the same request,
        // and extensions are not part of its meaning.
        let reordered = format!(
            r#"{{ "variables": {{"i": {{"name": "Once Ltd"}}}}, "extensions": {{"trace": true}}, "operationName": null, "query": {} }}"#,
            json!(CREATE)
        );
        for retry in [body.to_string(), reordered] {
            let again = post_text(&s.http, s.addr(), Some(&admin), Some("order-1"), retry).await;
            assert_eq!(again.status, 200);
            assert!(again.replayed, "a retry is marked as replayed");
            assert_eq!(again.body, first.body, "the stored response, byte for byte");
        }
        assert_eq!(accounts_named(&s, "Once Ltd").await, 1, "one record");
        assert_eq!(created_events(&s).await, 1, "one event in the outbox");
        // The header is ignored on queries: they run, nothing is stored.
        let q = json!({"query": "{ accounts(first: 5) { totalCount } }"});
        for _ in 0..2 {
            let r = post(&s.http, s.addr(), Some(&admin), Some("a-query"), &q).await;
            assert_eq!(r.status, 200);
            assert!(!r.replayed);
            assert_eq!(r.json()["data"]["accounts"]["totalCount"], 1, "{}", r.body);
        }
        assert_eq!(s.db.count("idempotency_keys").await, 1);
        // Without a key, the same mutation runs again.
        let plain = post(&s.http, s.addr(), Some(&admin), None, &body).await;
        assert!(!plain.replayed);
        assert_eq!(accounts_named(&s, "Once Ltd").await, 2);
    }
);

both!(
    a_failed_validation_is_replayed_but_a_refusal_is_not_stored,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        // The resolver refuses the input: that answer is the request's result.
        let bad = json!({"query": CREATE, "variables": {"i": {"name": " "}}});
        let first = post(&s.http, s.addr(), Some(&admin), Some("bad-1"), &bad).await;
        assert_eq!(code(&first.json()), "VALIDATION", "{}", first.body);
        let again = post(&s.http, s.addr(), Some(&admin), Some("bad-1"), &bad).await;
        assert!(again.replayed);
        assert_eq!(again.body, first.body);
        // Refused before anything ran (a variable of the wrong type): nothing
        // is stored, so a retry is checked again.
        let refused = json!({"query": CREATE, "variables": {"i": {"name": 5}}});
        for _ in 0..2 {
            let r = post(&s.http, s.addr(), Some(&admin), Some("bad-2"), &refused).await;
            assert_eq!(code(&r.json()), "VALIDATION", "{}", r.body);
            assert!(!r.replayed);
        }
        let stored =
            s.db.scalar("SELECT COUNT(*) AS n FROM idempotency_keys WHERE idem_key = 'bad-2'")
                .await;
        assert_eq!(stored, 0);
        assert_eq!(s.db.count("accounts").await, 0);
    }
);

both!(the_same_key_with_another_body_is_422, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let first = post(
        &s.http,
        s.addr(),
        Some(&admin),
        Some("k-1"),
        &create("First"),
    )
    .await;
    assert_eq!(first.status, 200);
    let r = post(
        &s.http,
        s.addr(),
        Some(&admin),
        Some("k-1"),
        &create("Second"),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let v = r.json();
    assert_eq!(code(&v), "VALIDATION", "{v}");
    assert_eq!(
        v["errors"][0]["extensions"]["fields"][0]["field"],
        "Idempotency-Key"
    );
    assert!(!r.replayed);
    // A batch holding the same operation is another request too.
    let batch = json!([create("First"), create("First")]);
    let r = post(&s.http, s.addr(), Some(&admin), Some("k-1"), &batch).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(s.db.count("accounts").await, 1);
    assert_eq!(created_events(&s).await, 1);
});

both!(a_retry_while_the_first_runs_is_409, |b| async move {
    let (s, hold) = held_server(b).await;
    let admin = s.admin().await;
    let body = create("Slow Ltd");
    let first = {
        let (http, addr, admin, body) = (s.http.clone(), s.addr(), admin.clone(), body.clone());
        tokio::spawn(async move { post(&http, addr, Some(&admin), Some("slow"), &body).await })
    };
    // The first request has claimed its key and waits.
    wait_running(&s, 1).await;
    let second = post(&s.http, s.addr(), Some(&admin), Some("slow"), &body).await;
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(code(&second.json()), "CONFLICT", "{}", second.body);
    assert_eq!(second.retry_after.as_deref(), Some("1"));
    assert_eq!(
        accounts_named(&s, "Slow Ltd").await,
        0,
        "the first has not run yet"
    );
    hold.add_permits(1);
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.json()["data"]["createAccount"]["id"].is_string());
    let third = post(&s.http, s.addr(), Some(&admin), Some("slow"), &body).await;
    assert!(third.replayed);
    assert_eq!(third.body, first.body);
    assert_eq!(accounts_named(&s, "Slow Ltd").await, 1);
    assert_eq!(created_events(&s).await, 1);
});

both!(two_replicas_agree_on_a_key, |b| async move {
    let (s, hold) = held_server(b).await;
    let other = s.replica(&[]).await;
    let admin = s.admin().await;
    let body = create("Replicated Ltd");
    // Running on one replica: the other refuses the retry.
    let first = {
        let (http, addr, admin, body) = (s.http.clone(), s.addr(), admin.clone(), body.clone());
        tokio::spawn(async move { post(&http, addr, Some(&admin), Some("rep-1"), &body).await })
    };
    wait_running(&s, 1).await;
    let during = post(&s.http, other.addr, Some(&admin), Some("rep-1"), &body).await;
    assert_eq!(during.status, 409, "{}", during.body);
    hold.add_permits(1);
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{}", first.body);
    // Done on one replica: the other replays it.
    let after = post(&s.http, other.addr, Some(&admin), Some("rep-1"), &body).await;
    assert!(after.replayed);
    assert_eq!(after.body, first.body);
    let changed = post(
        &s.http,
        other.addr,
        Some(&admin),
        Some("rep-1"),
        &create("Else"),
    )
    .await;
    assert_eq!(changed.status, 422);
    // A key first used on the other replica is replayed by this one.
    let body2 = create("Other Side");
    let on_other = post(&s.http, other.addr, Some(&admin), Some("rep-2"), &body2).await;
    assert_eq!(on_other.status, 200);
    let here = post(&s.http, s.addr(), Some(&admin), Some("rep-2"), &body2).await;
    assert!(here.replayed);
    assert_eq!(here.body, on_other.body);
    assert_eq!(accounts_named(&s, "Replicated Ltd").await, 1);
    assert_eq!(accounts_named(&s, "Other Side").await, 1);
    assert_eq!(created_events(&s).await, 2);
});

both!(keys_belong_to_their_caller, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    s.create_user(&admin, "rep@test.example", &["sales_rep"])
        .await;
    let rep = s.login("rep@test.example", "user-password-1").await;
    let key = post(
        &s.http,
        s.addr(),
        Some(&admin),
        None,
        &json!({"query": "mutation { createApiKey(input: {name: \"erp\", role: \"admin\"}) { key } }"}),
    )
    .await;
    let api_key = key.json()["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", key.body))
        .to_owned();
    let me = s.gql(Some(&admin), "{ me { id } }", json!({})).await;
    let admin_id = me["data"]["me"]["id"].as_str().unwrap().to_owned();
    // An API key names the owner of what it creates: one body for all.
    let body = json!({"query": CREATE, "variables": {"i": {"name": "Shared Key Ltd", "ownerId": admin_id}}});
    let mine = create("Shared Key Ltd");
    let mut ids = Vec::new();
    for (token, key, body) in [
        (&admin, "key-a", &body),
        (&api_key, "key-a", &body),
        (&admin, "key-b", &mine),
        (&rep, "key-b", &mine),
    ] {
        let r = post(&s.http, s.addr(), Some(token), Some(key), body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(!r.replayed, "another caller's key does not apply");
        ids.push(
            r.json()["data"]["createAccount"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{}", r.body))
                .to_owned(),
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    assert_eq!(accounts_named(&s, "Shared Key Ltd").await, 4);
    // A second token of the same user shares the user's keys.
    let admin2 = s.admin().await;
    for (key, body) in [("key-a", &body), ("key-b", &mine)] {
        let r = post(&s.http, s.addr(), Some(&admin2), Some(key), body).await;
        assert!(r.replayed, "{}", r.body);
    }
    assert_eq!(accounts_named(&s, "Shared Key Ltd").await, 4);
});

both!(malformed_keys_and_anonymous_keys_are_400, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let body = create("Never");
    let long = "k".repeat(256);
    for key in ["", "\"\"", long.as_str()] {
        let r = post(&s.http, s.addr(), Some(&admin), Some(key), &body).await;
        assert_eq!(r.status, 400, "{key:?}: {}", r.body);
        let v = r.json();
        assert_eq!(code(&v), "VALIDATION", "{v}");
        assert_eq!(
            v["errors"][0]["extensions"]["fields"][0]["field"],
            "Idempotency-Key"
        );
    }
    assert_eq!(s.db.count("accounts").await, 0);
    let max = "k".repeat(255);
    let r = post(&s.http, s.addr(), Some(&admin), Some(&max), &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Anonymous callers have no key space.
    let login = json!({"query": "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}",
        "variables": {"e": ADMIN_EMAIL, "p": ADMIN_PASSWORD}});
    let r = post(&s.http, s.addr(), None, Some("anon"), &login).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(code(&r.json()), "VALIDATION");
    // Uploads cannot be fingerprinted: refused.
    let form = reqwest::multipart::Form::new().text("operations", "{}");
    let r = s
        .http
        .post(s.url())
        .bearer_auth(&admin)
        .header("GraphQL-Preflight", "1")
        .header("Idempotency-Key", "upload")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
});

both!(
    a_dead_claim_lapses_and_expired_keys_are_deleted,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let me = s.gql(Some(&admin), "{ me { id } }", json!({})).await;
        let principal = format!("user:{}", me["data"]["me"]["id"].as_str().unwrap());
        let body = create("Recovered Ltd");
        let fingerprint = crm_core::idempotency::fingerprint(&json!({
            "method": "POST", "path": "/graphql", "batch": false,
            "operations": [{"query": CREATE, "operationName": null, "variables": {"i": {"name": "Recovered Ltd"}}}],
        }));
        let db = &s.running.app.db;
        let day = Duration::from_secs(86_400);
        // A process claimed the key and died: while its claim holds, retries
        // are told to wait; once it lapses, the next retry runs.
        let claim = crm_core::idempotency::claim(db, &principal, "dead", &fingerprint, day, day)
            .await
            .unwrap();
        assert!(
            matches!(claim, crm_core::idempotency::Claim::Claimed(_)),
            "{claim:?}"
        );
        let r = post(&s.http, s.addr(), Some(&admin), Some("dead"), &body).await;
        assert_eq!(r.status, 409, "{}", r.body);
        s.db.exec("UPDATE idempotency_keys SET locked_until = created_at WHERE idem_key = 'dead'")
            .await;
        let r = post(&s.http, s.addr(), Some(&admin), Some("dead"), &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(!r.replayed);
        assert!(
            r.json()["data"]["createAccount"]["id"].is_string(),
            "{}",
            r.body
        );
        let again = post(&s.http, s.addr(), Some(&admin), Some("dead"), &body).await;
        assert!(again.replayed);
        assert_eq!(accounts_named(&s, "Recovered Ltd").await, 1);
        // Expired keys are deleted; an expired key still stored starts over.
        let now = chrono::Utc::now().naive_utc();
        assert_eq!(
            crm_core::idempotency::delete_expired(db, now)
                .await
                .unwrap(),
            0
        );
        s.db.exec("UPDATE idempotency_keys SET expires_at = created_at")
            .await;
        let fresh = post(&s.http, s.addr(), Some(&admin), Some("dead"), &body).await;
        assert!(!fresh.replayed, "an expired key runs again");
        assert_eq!(accounts_named(&s, "Recovered Ltd").await, 2);
        let later = now + chrono::Duration::days(2);
        assert_eq!(
            crm_core::idempotency::delete_expired(db, later)
                .await
                .unwrap(),
            1
        );
        assert_eq!(s.db.count("idempotency_keys").await, 0);
    }
);

both!(
    erasing_a_person_forgets_stored_responses_about_them,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let contact = json!({
            "query": "mutation($i:CreateContactInput!){ createContact(input:$i) { id firstName lastName emails { value } } }",
            "variables": {"i": {"firstName": "Jane", "lastName": "Erasable",
                "emails": [{"kind": "WORK", "value": "jane.erasable@example.com"}]}},
        });
        let first = post(&s.http, s.addr(), Some(&admin), Some("contact-1"), &contact).await;
        let id = first.json()["data"]["createContact"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", first.body))
            .to_owned();
        // Another stored response that does not mention her stays.
        post(
            &s.http,
            s.addr(),
            Some(&admin),
            Some("account-1"),
            &create("Unrelated Ltd"),
        )
        .await;
        assert_eq!(s.db.count("idempotency_keys").await, 2);
        let r = s
            .gql(
                Some(&admin),
                "mutation($id:ID!){ eraseContact(id:$id, reason:\"asked\") { events } }",
                json!({"id": id}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        let left =
            s.db.scalar("SELECT COUNT(*) AS n FROM idempotency_keys WHERE idem_key = 'account-1'")
                .await;
        assert_eq!(left, 1);
        assert_eq!(
            s.db.count("idempotency_keys").await,
            1,
            "her response is gone"
        );
    }
);
