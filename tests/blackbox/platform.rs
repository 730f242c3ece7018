//! Users, teams, versions, transactions, audit log, node, health and metrics.

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

both!(users_teams_and_pagination, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let east = s
        .gql(
            Some(&admin),
            "mutation { createTeam(input: {name: \"East\"}) { id version } }",
            json!({}),
        )
        .await["data"]["createTeam"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .gql(
            Some(&admin),
            "mutation($p:ID!) { createTeam(input: {name: \"East-1\", parentId: $p}) { id parent { name } } }",
            json!({"p": east}),
        )
        .await;
    assert_eq!(r["data"]["createTeam"]["parent"]["name"], "East", "{r}");
    let sub = r["data"]["createTeam"]["id"].as_str().unwrap().to_owned();
    // A cycle is refused.
    let r = s
        .gql(
            Some(&admin),
            "mutation($id:ID!,$p:ID!) { updateTeam(input: {id: $id, version: 1, parentId: $p}) { id } }",
            json!({"id": east, "p": sub}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert_eq!(
        r["errors"][0]["extensions"]["fields"][0]["field"],
        "parentId"
    );
    // Duplicate team names conflict.
    let r = s
        .gql(
            Some(&admin),
            "mutation { createTeam(input: {name: \"East\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "CONFLICT", "{r}");

    for i in 0..7 {
        s.create_user(&admin, &format!("u{i}@test.example"), &["sales_rep"])
            .await;
    }
    // Forward through 8 users, 3 at a time.
    let q = "query($f:Int,$a:String,$l:Int,$b:String){ users(first:$f, after:$a, last:$l, before:$b) { totalCount edges { cursor node { email } } pageInfo { hasNextPage hasPreviousPage endCursor startCursor } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let r = s.gql(Some(&admin), q, json!({"f": 3, "a": after})).await;
        let page = &r["data"]["users"];
        assert_eq!(page["totalCount"], 8, "{r}");
        for e in page["edges"].as_array().unwrap() {
            seen.push(e["node"]["email"].as_str().unwrap().to_owned());
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(seen[0], ADMIN_EMAIL);
    // Backward from the end gives the same order.
    let mut back = Vec::new();
    let mut before = Value::Null;
    loop {
        let r = s.gql(Some(&admin), q, json!({"l": 3, "b": before})).await;
        let page = &r["data"]["users"];
        let mut chunk: Vec<String> = page["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["email"].as_str().unwrap().to_owned())
            .collect();
        chunk.extend(back);
        back = chunk;
        if page["pageInfo"]["hasPreviousPage"] != true {
            break;
        }
        before = page["pageInfo"]["startCursor"].clone();
    }
    assert_eq!(back, seen);
    // Bad paging arguments are VALIDATION errors.
    let r = s.gql(Some(&admin), q, json!({"f": 1, "l": 1})).await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    let r = s.gql(Some(&admin), q, json!({"f": 1000})).await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    // Filter by search text.
    let r = s
        .gql(
            Some(&admin),
            "{ users(filter: {search: \"U3@\"}) { totalCount edges { node { email } } } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["users"]["totalCount"], 1, "{r}");
});

both!(
    stale_versions_conflict_and_nothing_is_lost,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let uid = s
            .create_user(&admin, "v@test.example", &["sales_rep"])
            .await;
        let q =
            "mutation($i:UpdateUserInput!){ updateUser(input:$i) { displayName roles version } }";
        // Two concurrent writers with the same version: one wins, one CONFLICT.
        let a = s.gql(
            Some(&admin),
            q,
            json!({"i": {"id": uid, "version": 1, "displayName": "Alice"}}),
        );
        let c = s.gql(
            Some(&admin),
            q,
            json!({"i": {"id": uid, "version": 1, "roles": ["marketing"]}}),
        );
        let (a, c) = tokio::join!(a, c);
        let codes = [code(&a).to_owned(), code(&c).to_owned()];
        assert!(
            codes.contains(&"CONFLICT".to_owned()) && codes.contains(&"<none>".to_owned()),
            "{a} {c}"
        );
        let winner = if code(&a) == "<none>" { &a } else { &c };
        let now = s
            .gql(
                Some(&admin),
                "query($id:ID!){ user(id:$id) { displayName roles version } }",
                json!({"id": uid}),
            )
            .await;
        assert_eq!(now["data"]["user"], winner["data"]["updateUser"], "{now}");
        assert_eq!(now["data"]["user"]["version"], 2);
        // The loser's change was not applied on top.
        let r = s
            .gql(
                Some(&admin),
                q,
                json!({"i": {"id": uid, "version": 1, "displayName": "Late"}}),
            )
            .await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        // Unknown ids are NOT_FOUND, malformed ones VALIDATION.
        let r = s
            .gql(
                Some(&admin),
                q,
                json!({"i": {"id": "usr_0193b0c6a1f27c3e9d4b5a6f7e8d9c0b", "version": 1}}),
            )
            .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        let r = s
            .gql(Some(&admin), q, json!({"i": {"id": "nope", "version": 1}}))
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
    }
);

both!(a_mutation_failing_half_way_leaves_nothing, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let users = s.db.count("users").await;
    let events = s.db.count("outbox").await;
    let audit = s.db.count("audit_log").await;
    // Make the audit insert, which runs after the user row is written, fail.
    let trigger = match b {
        Backend::Sqlite => "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
            .to_owned(),
        Backend::Postgres => "CREATE FUNCTION fail_audit() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log \
             FOR EACH ROW EXECUTE FUNCTION fail_audit();"
            .to_owned(),
    };
    s.db.exec(&trigger).await;
    let r = s
        .gql(
            Some(&admin),
            "mutation { createUser(input: {email: \"half@test.example\", displayName: \"Half\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "INTERNAL", "{r}");
    assert!(
        !r.to_string().contains("injected"),
        "internal detail leaked: {r}"
    );
    assert_eq!(s.db.count("users").await, users);
    assert_eq!(s.db.count("outbox").await, events);
    assert_eq!(s.db.count("audit_log").await, audit);
    // Bad input changes nothing either.
    let r = s
        .gql(
            Some(&admin),
            "mutation { createUser(input: {email: \"x\", displayName: \"X\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION");
    assert_eq!(r["errors"][0]["extensions"]["fields"][0]["field"], "email");
    assert_eq!(s.db.count("users").await, users);
});

both!(
    audit_log_records_field_changes_and_cannot_be_edited,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let uid = s
            .create_user(&admin, "a@test.example", &["sales_rep"])
            .await;
        s.gql(
            Some(&admin),
            "mutation($i:UpdateUserInput!){ updateUser(input:$i) { id } }",
            json!({"i": {"id": uid, "version": 1, "displayName": "Anna", "roles": ["support"]}}),
        )
        .await;
        s.gql(
            Some(&admin),
            "mutation($id:ID!){ setUserPassword(id:$id, password:\"another-password-2\") { id } }",
            json!({"id": uid}),
        )
        .await;
        let r = s
        .gql(
            Some(&admin),
            "query($id:ID!){ auditLog(filter:{entityId:$id}) { totalCount edges { node { action actorKind actorId credential changes { field old new } } } } }",
            json!({"id": uid}),
        )
        .await;
        let log = &r["data"]["auditLog"];
        assert_eq!(log["totalCount"], 3, "{r}");
        let newest = &log["edges"][0]["node"];
        assert_eq!(newest["action"], "password_set");
        // The password hash is never stored in the audit trail.
        assert_eq!(newest["changes"], json!([]), "{r}");
        let update = &log["edges"][1]["node"];
        assert_eq!(update["action"], "updated");
        assert_eq!(update["actorKind"], "user");
        assert!(update["credential"].as_str().unwrap().starts_with("token:"));
        assert_eq!(
            update["changes"],
            json!([
                {"field": "displayName", "old": "a@test.example", "new": "Anna"},
                {"field": "roles", "old": ["sales_rep"], "new": ["support"]}
            ])
        );
        let raw = s.db.count("audit_log").await;
        assert!(raw >= 4);
        // No mutation can change or delete audit entries.
        let schema = s
            .gql(
                Some(&admin),
                "{ __schema { mutationType { fields { name } } } }",
                json!({}),
            )
            .await;
        let names: Vec<&str> = schema["data"]["__schema"]["mutationType"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert!(
            !names.iter().any(|n| n.to_lowercase().contains("audit")),
            "{names:?}"
        );
        // Non-admins cannot read it.
        s.create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        let r = s
            .gql(Some(&rep), "{ auditLog { totalCount } }", json!({}))
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
    }
);

both!(node_health_and_metrics, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let uid = s.create_user(&admin, "n@test.example", &[]).await;
    let r = s
        .gql(
            Some(&admin),
            "query($id:ID!){ node(id:$id) { id ... on User { email } } }",
            json!({"id": uid}),
        )
        .await;
    assert_eq!(r["data"]["node"]["email"], "n@test.example", "{r}");
    let r = s
        .gql(Some(&admin), "{ node(id:\"zzz_1\") { id } }", json!({}))
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    let base = format!("http://{}", s.addr());
    assert_eq!(
        s.http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        s.http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ide = s
        .http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ide.contains("graphiql"), "IDE page");
    s.gql(Some(&admin), "query Named { me { id } }", json!({}))
        .await;
    let m = s
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("crm_graphql_requests_total{operation=\"Named\",outcome=\"ok\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("crm_graphql_request_duration_seconds_bucket{"),
        "{m}"
    );
    assert!(m.contains("crm_db_pool_connections"), "{m}");
    assert!(m.contains("crm_active_subscriptions"), "{m}");
    // Responses carry a request id.
    let resp = s.http.get(format!("{base}/healthz")).send().await.unwrap();
    assert!(resp.headers().get("x-request-id").is_some());
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_is_unavailable_not_a_hang() {
    // PostgreSQL only: SQLite is a file inside the process and has no server
    // to lose. The test drops the database under the running service.
    let s = server!(Backend::Postgres, &[("db-wait-timeout-ms", "1000")]);
    let admin = s.admin().await;
    let name = s.db.url.rsplit('/').next().unwrap().to_owned();
    let mut c =
        <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(PG_ADMIN_URL)
            .await
            .unwrap();
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut c,
        &format!("DROP DATABASE {name} WITH (FORCE)"),
    )
    .await
    .unwrap();
    let r = s
        .gql(Some(&admin), "{ users { totalCount } }", json!({}))
        .await;
    assert_eq!(code(&r), "UNAVAILABLE", "{r}");
    let ready = s
        .http
        .get(format!("http://{}/readyz", s.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

both!(shutdown_lets_in_flight_requests_finish, |b| async move {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server!(b);
    let body = json!({"query": "{ __typename }"}).to_string();
    // A request whose body is still on its way when shutdown starts.
    let mut sock = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&body.as_bytes()[..5]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    s.running.shutdown.send(true).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // New connections are refused once shutdown began…
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        s.http.get(format!("http://{}/healthz", s.addr())).send(),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(ref r)) if r.status().is_success()),
        "accepted a new request while shutting down"
    );
    // …but the one in flight is answered.
    sock.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"__typename\":\"Query\""), "{answer}");
});

both!(a_failed_write_leaves_no_lock_behind, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let create = "mutation($n:String!){ createTag(input:{name:$n}) { id } }";
    let r = s.gql(Some(&admin), create, json!({"n": "Taken"})).await;
    assert!(r.get("errors").is_none(), "{r}");
    for i in 0..5 {
        // The insert fails inside its transaction (unique name)…
        let r = s.gql(Some(&admin), create, json!({"n": "Taken"})).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        // …its connection is closed, not pooled with the transaction open
        // (PostgreSQL shows such sessions as "idle in transaction")…
        if b == Backend::Postgres {
            let open = "SELECT COUNT(*) AS n FROM pg_stat_activity \
                        WHERE datname = current_database() AND state LIKE 'idle in transaction%'";
            let mut n = s.db.scalar(open).await;
            for _ in 0..50 {
                if n == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(40)).await;
                n = s.db.scalar(open).await;
            }
            assert_eq!(
                n, 0,
                "a failed transaction's connection went back to the pool"
            );
        }
        // …and the next write does not fail on what it had locked.
        let r = s
            .gql(Some(&admin), create, json!({"n": format!("Free {i}")}))
            .await;
        assert!(r.get("errors").is_none(), "{r}");
    }
});
