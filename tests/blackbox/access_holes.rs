//! Holes an attacker would try in the whole-request access check: values
//! that reach execution without being checked (variable defaults), changes
//! made through scalar arguments, documents the check cannot follow, and
//! `myPermissions` disagreeing with enforcement.

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

/// Starts a server with the shipped policy plus `extra`, or returns early
/// when PostgreSQL is unreachable.
macro_rules! server_with {
    ($b:expr, $extra:expr) => {
        TestServer::start_with_policy($b, $extra, &[]).await
    };
}

async fn user(s: &TestServer, admin: &str, email: &str, roles: &[&str]) -> (String, String) {
    let id = s.create_user(admin, email, roles).await;
    (id, s.login(email, "user-password-1").await)
}

fn fields(r: &Value) -> Value {
    r["errors"][0]["extensions"]["fields"].clone()
}

#[test]
fn every_declared_field_use_names_a_real_place() {
    let c = crm_gateway::schema::catalog();
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
    // Fields changed only through scalar arguments are writable names the
    // lint accepts.
    assert!(c.writable["Account"].contains("tags"));
    assert!(c.writable["Contact"].contains("tags"));
}

both!(
    a_variable_default_is_checked_like_a_literal,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let (_, mkt) = user(&s, &admin, "mkt@test.example", &["marketing"]).await;
        let c = s
        .gql(
            Some(&admin),
            "mutation { createContact(input:{firstName:\"Ann\", lastName:\"Lee\"}) { id version } }",
            json!({}),
        )
        .await;
        let id = c["data"]["createContact"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (events, audit) = (s.db.count("outbox").await, s.db.count("audit_log").await);
        // The default of the variable definition is the value execution uses.
        let q = format!(
            "mutation($i: UpdateContactInput! = {{id: \"{id}\", version: 1, firstName: \"X\"}}) {{ updateContact(input: $i) {{ firstName }} }}"
        );
        let r = s.gql(Some(&mkt), &q, json!({})).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        assert_eq!(fields(&r), json!(["Contact.firstName"]), "{r}");
        // A variable nested in a literal, defaulted, too.
        let q = format!(
            "mutation($n: String = \"Y\") {{ updateContact(input: {{id: \"{id}\", version: 1, firstName: $n}}) {{ firstName }} }}"
        );
        let r = s.gql(Some(&mkt), &q, json!({})).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        assert_eq!(fields(&r), json!(["Contact.firstName"]), "{r}");
        // Nothing changed.
        let q = "query($id: ID!) { contact(id: $id) { firstName version } }";
        let now = s.gql(Some(&admin), q, json!({"id": id})).await;
        assert_eq!(
            now["data"]["contact"],
            json!({"firstName": "Ann", "version": 1})
        );
        assert_eq!(s.db.count("outbox").await, events);
        assert_eq!(s.db.count("audit_log").await, audit);
        // A field marketing may write still goes through the same way.
        let q = format!(
            "mutation($i: UpdateContactInput! = {{id: \"{id}\", version: 1, language: \"fr\"}}) {{ updateContact(input: $i) {{ language }} }}"
        );
        let r = s.gql(Some(&mkt), &q, json!({})).await;
        assert_eq!(r["data"]["updateContact"]["language"], "fr", "{r}");
    }
);

both!(
    scalar_argument_mutations_need_the_fields_write_rule,
    |b| async move {
        let s = server_with!(
            b,
            "p, sales_rep, Account.ownerId, write, deny\n\
             p, sales_rep, Account.lifecycleStage, write, deny\n\
             p, sales_rep, Account.tags, write, deny\n\
             p, sales_rep, Contact.ownerId, write, deny\n\
             p, sales_rep, Contact.tags, write, deny"
        );
        let admin = s.admin().await;
        let (rep_id, rep) = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let (other, _) = user(&s, &admin, "other@test.example", &["sales_rep"]).await;
        let a = s
            .gql(
                Some(&rep),
                "mutation { createAccount(input:{name:\"Acme\"}) { id } }",
                json!({}),
            )
            .await;
        let account = a["data"]["createAccount"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let c = s
            .gql(
                Some(&rep),
                "mutation { createContact(input:{firstName:\"Bo\", lastName:\"Ng\"}) { id } }",
                json!({}),
            )
            .await;
        let contact = c["data"]["createContact"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let t = s
            .gql(
                Some(&admin),
                "mutation { createTag(input:{name:\"vip\"}) { id } }",
                json!({}),
            )
            .await;
        let tag = t["data"]["createTag"]["id"].as_str().unwrap().to_owned();
        let (events, audit) = (s.db.count("outbox").await, s.db.count("audit_log").await);
        let cases = [
            (
                "mutation($a: ID!, $o: ID!) { assignAccounts(ids: [$a], ownerId: $o) { id } }",
                "Account.ownerId",
            ),
            (
                "mutation($a: ID!) { changeLifecycleStage(id: $a, version: 1, stage: ACTIVE) { id } }",
                "Account.lifecycleStage",
            ),
            (
                "mutation($a: ID!, $t: ID!) { setAccountTags(id: $a, version: 1, tagIds: [$t]) { id } }",
                "Account.tags",
            ),
            (
                "mutation($c: ID!, $o: ID!) { assignContacts(ids: [$c], ownerId: $o) { id } }",
                "Contact.ownerId",
            ),
            (
                "mutation($c: ID!, $t: ID!) { setContactTags(id: $c, version: 1, tagIds: [$t]) { id } }",
                "Contact.tags",
            ),
        ];
        let vars = json!({"a": account, "c": contact, "o": other, "t": tag});
        for (q, field) in cases {
            let r = s.gql(Some(&rep), q, vars.clone()).await;
            assert_eq!(code(&r), "FORBIDDEN", "{q}: {r}");
            assert_eq!(fields(&r), json!([field]), "{q}: {r}");
        }
        // Nothing changed.
        let q = "query($a: ID!, $c: ID!) { account(id: $a) { ownerId lifecycleStage version tags { id } }
                 contact(id: $c) { ownerId version tags { id } } }";
        let now = s.gql(Some(&admin), q, vars.clone()).await;
        assert_eq!(now["data"]["account"]["ownerId"], json!(rep_id), "{now}");
        assert_eq!(now["data"]["account"]["version"], 1, "{now}");
        assert_eq!(now["data"]["account"]["tags"], json!([]), "{now}");
        assert_eq!(now["data"]["contact"]["ownerId"], json!(rep_id), "{now}");
        assert_eq!(now["data"]["contact"]["tags"], json!([]), "{now}");
        assert_eq!(s.db.count("outbox").await, events);
        assert_eq!(s.db.count("audit_log").await, audit);
    }
);

both!(
    a_merge_needs_write_on_the_fields_it_gives_the_survivor,
    |b| async move {
        let s = server_with!(b, "p, sales_rep, Contact.emails, write, deny");
        let admin = s.admin().await;
        let (_, rep) = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let mut ids = Vec::new();
        for n in ["Ann", "Anne"] {
            let c = s
            .gql(
                Some(&rep),
                &format!("mutation {{ createContact(input:{{firstName:\"{n}\", lastName:\"Lee\"}}) {{ id }} }}"),
                json!({}),
            )
            .await;
            ids.push(
                c["data"]["createContact"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let r = s
        .gql(
            Some(&rep),
            "mutation($s: ID!, $o: [ID!]!) { mergeContacts(survivorId: $s, otherIds: $o) { contact { id } } }",
            json!({"s": ids[0], "o": [ids[1]]}),
        )
        .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        assert_eq!(fields(&r), json!(["Contact.emails"]), "{r}");
        let live = s
            .gql(Some(&admin), "{ contacts { totalCount } }", json!({}))
            .await;
        assert_eq!(live["data"]["contacts"]["totalCount"], 2, "{live}");
    }
);

both!(
    documents_the_check_cannot_follow_are_refused_over_http,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let teams = || async { s.db.count("teams").await };
        let before = teams().await;
        let http = reqwest::Client::new();
        let post = |body: Value| {
            let http = http.clone();
            let url = s.url();
            let admin = admin.clone();
            async move {
                http.post(url)
                    .bearer_auth(admin)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }
        };
        let two = "mutation A { createTeam(input: {name: \"a\"}) { id } } mutation B { createTeam(input: {name: \"b\"}) { id } }";
        let cases = [
            (json!({"query": two}), "operationName"),
            (
                json!({"query": two, "operationName": "C"}),
                "names no operation",
            ),
            (
                json!({"query": "{ me { id } }", "operationName": "Me"}),
                "names no operation",
            ),
            (
                json!({"query": "mutation { createTeam(input: {name: \"c\"}) { id } "}),
                "does not parse",
            ),
            (json!({"query": "{ me { id nope } }"}), "unknown field"),
        ];
        for (body, says) in cases {
            let r = post(body.clone()).await;
            assert_eq!(code(&r), "VALIDATION", "{body}: {r}");
            let msg = r["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(msg.contains(says), "{body}: {r}");
            assert!(r.get("data").is_none_or(Value::is_null), "{body}: {r}");
        }
        assert_eq!(teams().await, before);
        // The named operation runs.
        let r = post(json!({"query": two, "operationName": "B"})).await;
        assert!(r["data"]["createTeam"]["id"].is_string(), "{r}");
    }
);

both!(
    documents_the_check_cannot_follow_are_refused_over_websocket,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let mut ws = Ws::init(s.addr(), &admin).await;
        let two = "subscription A { events { cursor } } subscription B { events { topic } }";
        let cases = [
            (json!({"query": two}), "operationName"),
            (
                json!({"query": two, "operationName": "C"}),
                "names no operation",
            ),
            (
                json!({"query": "subscription { events { cursor "}),
                "does not parse",
            ),
        ];
        for (i, (payload, says)) in cases.into_iter().enumerate() {
            let id = format!("s{i}");
            ws.send(json!({"type": "subscribe", "id": id, "payload": payload}))
                .await;
            let m = ws.recv().await.expect("an answer");
            assert_eq!(m["type"], "error", "{m}");
            assert_eq!(m["id"], json!(id), "{m}");
            assert_eq!(m["payload"][0]["extensions"]["code"], "VALIDATION", "{m}");
            let msg = m["payload"][0]["message"].as_str().unwrap_or_default();
            assert!(msg.contains(says), "{payload}: {m}");
        }
        ws.close().await;
    }
);

// Every default role: what `myPermissions` reports readable can be
// selected, and what it leaves out is refused.
both!(my_permissions_agrees_with_enforcement, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    // Which fields return objects (they need a sub-selection).
    let intro = s
        .gql(
            Some(&admin),
            "{ __schema { types { name kind fields { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }",
            json!({}),
        )
        .await;
    let mut objects = std::collections::HashMap::new();
    let mut all_fields = std::collections::HashMap::new();
    for t in intro["data"]["__schema"]["types"].as_array().unwrap() {
        let ty = t["name"].as_str().unwrap().to_owned();
        let mut names = Vec::new();
        for f in t["fields"].as_array().into_iter().flatten() {
            let name = f["name"].as_str().unwrap().to_owned();
            let mut inner = &f["type"];
            while inner["name"].is_null() {
                inner = &inner["ofType"];
            }
            if matches!(
                inner["kind"].as_str(),
                Some("OBJECT" | "INTERFACE" | "UNION")
            ) {
                objects.insert(
                    (ty.clone(), name.clone()),
                    inner["name"].as_str().unwrap().to_owned(),
                );
            }
            names.push(name);
        }
        all_fields.insert(ty, names);
    }
    let mut tokens = vec![("admin".to_owned(), admin.clone())];
    for role in [
        "it_admin",
        "sales_manager",
        "sales_rep",
        "marketing",
        "support",
        "integrator",
    ] {
        let (_, t) = user(&s, &admin, &format!("{role}@test.example"), &[role]).await;
        tokens.push((role.to_owned(), t));
    }
    let mut checked = 0;
    for (role, token) in &tokens {
        let p = s
            .gql(
                Some(token),
                "{ myPermissions { types { typeName readableFields } } }",
                json!({}),
            )
            .await;
        for t in p["data"]["myPermissions"]["types"].as_array().unwrap() {
            let ty = t["typeName"].as_str().unwrap();
            let readable: Vec<&str> = t["readableFields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            // A resource without a GraphQL type of its name (`CustomField`)
            // has no fields to select.
            for f in all_fields.get(ty).into_iter().flatten() {
                let sub = objects
                    .get(&(ty.to_owned(), f.clone()))
                    .map(|target| {
                        format!(
                            " {{ {} }}",
                            what_a_client_selects(&all_fields, &objects, target)
                        )
                    })
                    .unwrap_or_default();
                let q = format!("{{ node(id: \"x\") {{ ... on {ty} {{ {f}{sub} }} }} }}");
                let r = s.gql(Some(token), &q, json!({})).await;
                let name = format!("{ty}.{f}");
                let refused = code(&r) == "FORBIDDEN"
                    && fields(&r)
                        .as_array()
                        .is_some_and(|a| a.contains(&json!(name)));
                if readable.contains(&f.as_str()) {
                    assert_ne!(
                        code(&r),
                        "FORBIDDEN",
                        "{role}: {name} reported readable: {r}"
                    );
                } else {
                    assert!(refused, "{role}: {name} reported unreadable: {r}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "{checked}");
});

/// What a client selects below a field returning `ty`: the record's `id`,
/// through a connection's edges if need be.
fn what_a_client_selects(
    fields: &std::collections::HashMap<String, Vec<String>>,
    objects: &std::collections::HashMap<(String, String), String>,
    ty: &str,
) -> String {
    let has = |f: &str| fields.get(ty).is_some_and(|fs| fs.iter().any(|x| x == f));
    if has("id") {
        "id".to_owned()
    } else if has("edges") {
        let edge = &objects[&(ty.to_owned(), "edges".to_owned())];
        let node = &objects[&(edge.clone(), "node".to_owned())];
        format!(
            "edges {{ node {{ {} }} }}",
            what_a_client_selects(fields, objects, node)
        )
    } else {
        "__typename".to_owned()
    }
}

both!(
    ordering_and_filtering_need_read_on_the_field,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let (_, support) = user(&s, &admin, "support@test.example", &["support"]).await;
        for name in ["Acme", "Beta", "Gamma"] {
            s.gql(
                Some(&admin),
                &format!("mutation {{ createAccount(input:{{name:\"{name}\"}}) {{ id }} }}"),
                json!({}),
            )
            .await;
        }
        let list = "query($o: AccountOrder, $f: AccountFilterInput) { accounts(first: 1, orderBy: $o, filter: $f) { edges { cursor node { name } } } }";
        let cases = [
            (json!({"o": {"field": "UPDATED_AT"}}), "Account.updatedAt"),
            (
                json!({"o": {"field": "CREATED_AT", "direction": "DESC"}}),
                "Account.createdAt",
            ),
            (
                json!({"f": {"createdFrom": "2000-01-01T00:00:00Z"}}),
                "Account.createdAt",
            ),
            (
                json!({"f": {"updatedTo": "2100-01-01T00:00:00Z"}}),
                "Account.updatedAt",
            ),
            (json!({"f": {"tagId": "tag_x"}}), "Account.tags"),
            (
                json!({"f": {"custom": [{"key": "margin", "equals": 1}]}}),
                "Account.custom.margin",
            ),
        ];
        for (vars, field) in cases {
            let r = s.gql(Some(&support), list, vars.clone()).await;
            assert_eq!(code(&r), "FORBIDDEN", "{vars}: {r}");
            assert_eq!(fields(&r), json!([field]), "{vars}: {r}");
        }
        // The same holds for literals, order defaults and exports.
        let r = s
            .gql(
                Some(&support),
                "{ accounts(orderBy: {field: UPDATED_AT}) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(fields(&r), json!(["Account.updatedAt"]), "{r}");
        let r = s
        .gql(
            Some(&support),
            "mutation { exportAccounts(filter: {createdFrom: \"2000-01-01T00:00:00Z\"}) { id } }",
            json!({}),
        )
        .await;
        assert_eq!(fields(&r), json!(["Account.createdAt"]), "{r}");
        // What support may read it may sort and filter by.
        let r = s
            .gql(
                Some(&support),
                list,
                json!({"o": {"field": "NAME"}, "f": {"lifecycleStage": "PROSPECT"}}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
    }
);

both!(cursors_do_not_carry_readable_values, |b| async move {
    use base64::Engine;
    let s = server!(b);
    let admin = s.admin().await;
    let names = ["Acme Secret", "Beta Secret", "Gamma Secret"];
    for name in names {
        s.gql(
            Some(&admin),
            &format!("mutation {{ createAccount(input:{{name:\"{name}\"}}) {{ id }} }}"),
            json!({}),
        )
        .await;
    }
    let q = "query($a: String, $o: AccountOrder) { accounts(first: 1, after: $a, orderBy: $o) { edges { cursor node { id name } } pageInfo { hasNextPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    for order in ["NAME", "UPDATED_AT"] {
        loop {
            let r = s
                .gql(Some(&admin), q, json!({"a": after, "o": {"field": order}}))
                .await;
            let page = &r["data"]["accounts"];
            let edge = &page["edges"][0];
            let cursor = edge["cursor"].as_str().unwrap_or_else(|| panic!("{r}"));
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(cursor)
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&raw);
            let id = edge["node"]["id"].as_str().unwrap();
            assert!(
                !text.contains("Secret") && !text.contains(id),
                "cursor shows {text}"
            );
            assert!(!text.contains("20"), "cursor shows a time: {text}");
            seen.push(edge["node"]["name"].as_str().unwrap().to_owned());
            if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                break;
            }
            after = page["pageInfo"]["endCursor"].clone();
        }
        after = Value::Null;
    }
    // Keyset paging still walks every row once per ordering.
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(&seen[..3], &names[..]);
    // A forged cursor is refused.
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("[\"Beta Secret\",\"x\"]");
    let r = s
        .gql(
            Some(&admin),
            q,
            json!({"a": forged, "o": {"field": "NAME"}}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
});

both!(
    audit_log_granted_to_a_role_shows_only_what_it_may_read,
    |b| async move {
        let s = server_with!(b, "p, marketing, Query.auditLog, call, allow");
        let admin = s.admin().await;
        let (_, mkt) = user(&s, &admin, "mkt@test.example", &["marketing"]).await;
        s.create_user(&admin, "someone@test.example", &["sales_rep"])
            .await;
        s.gql(
            Some(&admin),
            "mutation { createTeam(input: {name: \"East\"}) { id } }",
            json!({}),
        )
        .await;
        let a = s
        .gql(
            Some(&admin),
            "mutation { createAccount(input:{name:\"Acme\", industry: \"Retail\", creditLimit: {amountMinor: 500000, currency: \"EUR\"}}) { id } }",
            json!({}),
        )
        .await;
        let account = a["data"]["createAccount"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // The admin sees every entry, marketing only those it may read.
        let q = "{ auditLog(first: 100) { totalCount edges { node { entityType entityId changes { field } } } } }";
        let all = s.gql(Some(&admin), q, json!({})).await;
        let types = |v: &Value| -> Vec<String> {
            v["data"]["auditLog"]["edges"]
                .as_array()
                .unwrap_or_else(|| panic!("{v}"))
                .iter()
                .map(|e| e["node"]["entityType"].as_str().unwrap().to_owned())
                .collect()
        };
        assert!(types(&all).contains(&"User".to_owned()), "{all}");
        assert!(types(&all).contains(&"Team".to_owned()), "{all}");
        let r = s.gql(Some(&mkt), q, json!({})).await;
        let seen = types(&r);
        assert!(
            seen.iter().all(|t| t == "Account" || t == "Contact"),
            "marketing may read only its own user and team: {r}"
        );
        assert_eq!(
            r["data"]["auditLog"]["totalCount"],
            json!(seen.len()),
            "{r}"
        );
        let entry = r["data"]["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["node"]["entityId"] == json!(account))
            .unwrap_or_else(|| panic!("{r}"));
        let changed: Vec<&str> = entry["node"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        assert!(changed.contains(&"industry"), "{changed:?}");
        assert!(!changed.contains(&"creditLimit"), "{changed:?}");
    }
);

both!(events_granted_to_a_role_follow_its_rules, |b| async move {
    let s = server_with!(b, "p, support, Subscription.events, call, allow");
    let admin = s.admin().await;
    let (_, support) = user(&s, &admin, "support@test.example", &["support"]).await;
    let second = s.login("support@test.example", "user-password-1").await;
    let a = s
        .gql(
            Some(&admin),
            "mutation { createAccount(input:{name:\"Acme\"}) { id version } }",
            json!({}),
        )
        .await;
    let account = a["data"]["createAccount"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let head = s.db.head().await;
    let mut ws = Ws::init(s.addr(), &support).await;
    ws.subscribe(
        "1",
        "subscription($a: String) { events(after: $a) { entityType entityId payload } }",
        json!({"a": head}),
    )
    .await;
    // Support's own session ends: a `Token` event, which no rule lets
    // support read (it used to be shown through the `User` scope).
    let r = s.gql(Some(&second), "mutation { logout }", json!({})).await;
    assert!(r["errors"].is_null(), "{r}");
    // An API key is made: support may not read keys.
    s.gql(
        Some(&admin),
        "mutation { createApiKey(input: {name: \"k\", role: \"integrator\"}) { key } }",
        json!({}),
    )
    .await;
    // An account change: shown without the fields support may not read.
    let r = s
        .gql(
            Some(&admin),
            "mutation($id: ID!) { updateAccount(input: {id: $id, version: 1, name: \"Acme 2\", notes: \"private\", creditLimit: {amountMinor: 1, currency: \"EUR\"}}) { id } }",
            json!({"id": account}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let m = ws.recv().await.expect("an event");
    assert_eq!(m["type"], "next", "{m}");
    let e = &m["payload"]["data"]["events"];
    assert_eq!(
        e["entityType"], "Account",
        "the first event support may see: {m}"
    );
    assert_eq!(e["entityId"], json!(account), "{m}");
    let changed = e["payload"]["changed"].as_object().unwrap();
    assert!(changed.contains_key("name"), "{m}");
    assert!(
        !changed.contains_key("notes") && !changed.contains_key("creditLimit"),
        "{m}"
    );
    ws.close().await;
});
