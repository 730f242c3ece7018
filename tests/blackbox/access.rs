//! Access control through the real service: default roles, row scope,
//! field rules, whole-request refusal, hot reload.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

/// The default roles' sign-ins: (role, token).
async fn sign_in_every_role(s: &TestServer) -> Vec<(&'static str, String)> {
    let admin = s.admin().await;
    let mut out = vec![("admin", admin.clone())];
    for role in [
        "sales_manager",
        "sales_rep",
        "marketing",
        "support",
        "it_admin",
    ] {
        let email = format!("{role}@test.example");
        s.create_user(&admin, &email, &[role]).await;
        out.push((role, s.login(&email, "user-password-1").await));
    }
    let r = s
        .gql(
            Some(&admin),
            "mutation { createApiKey(input: {name: \"sync\", role: \"integrator\"}) { key } }",
            json!({}),
        )
        .await;
    out.push((
        "integrator",
        r["data"]["createApiKey"]["key"]
            .as_str()
            .unwrap()
            .to_owned(),
    ));
    out
}

/// Runs `query` and reports Ok or the sorted FORBIDDEN field list.
async fn outcome(
    s: &TestServer,
    token: &str,
    query: &str,
    vars: Value,
) -> Result<Value, Vec<String>> {
    let r = s.gql(Some(token), query, vars).await;
    if r.get("errors").is_none() {
        return Ok(r["data"].clone());
    }
    assert_eq!(code(&r), "FORBIDDEN", "{query}: {r}");
    // Refused as a whole: no partial data.
    assert!(r.get("data").is_none() || r["data"].is_null(), "{r}");
    let mut fields: Vec<String> = r["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    fields.sort();
    Err(fields)
}

both!(
    every_default_role_against_identity_types_and_fields,
    |b| async move {
        let s = server!(b);
        let tokens = sign_in_every_role(&s).await;
        let user_fields = [
            "id",
            "email",
            "displayName",
            "active",
            "roles",
            "teamId",
            "createdAt",
            "updatedAt",
            "version",
        ];
        let team_fields = [
            "id",
            "name",
            "parentId",
            "createdAt",
            "updatedAt",
            "version",
        ];
        let key_fields = [
            "id",
            "name",
            "prefix",
            "role",
            "createdBy",
            "createdAt",
            "revokedAt",
        ];
        let admins = ["admin", "it_admin"];
        for (role, token) in &tokens {
            // Every role may read every User and Team field of the rows it sees.
            for f in user_fields {
                let q = format!("{{ users(first: 1) {{ edges {{ node {{ {f} }} }} }} }}");
                assert!(
                    outcome(&s, token, &q, json!({})).await.is_ok(),
                    "{role} reading User.{f}"
                );
            }
            for f in team_fields {
                let q = format!("{{ teams {{ {f} }} }}");
                assert!(
                    outcome(&s, token, &q, json!({})).await.is_ok(),
                    "{role} reading Team.{f}"
                );
            }
            // API keys: administrators only.
            for f in key_fields {
                let q = format!("{{ apiKeys {{ {f} }} }}");
                let got = outcome(&s, token, &q, json!({})).await;
                if admins.contains(role) {
                    assert!(got.is_ok(), "{role} reading ApiKey.{f}: {got:?}");
                } else {
                    let mut want = vec!["Query.apiKeys".to_owned()];
                    if !["admin", "it_admin"].contains(role) {
                        want.push(format!("ApiKey.{f}"));
                    }
                    want.sort();
                    assert_eq!(got, Err(want), "{role} reading ApiKey.{f}");
                }
            }
            // Operations: (query, roles allowed).
            let ops: &[(&str, &[&str])] = &[
                ("{ auditLog(first: 1) { totalCount } }", &["admin"]),
                ("{ policyStatus { version } }", &["admin", "it_admin"]),
                (
                    "{ myPermissions { roles } }",
                    &[
                        "admin",
                        "it_admin",
                        "sales_manager",
                        "sales_rep",
                        "marketing",
                        "support",
                        "integrator",
                    ],
                ),
                (
                    "mutation { createTeam(input: {name: \"t-ROLE\"}) { id } }",
                    &["admin", "it_admin"],
                ),
                (
                    "mutation { createUser(input: {email: \"new-ROLE@test.example\", displayName: \"N\"}) { id } }",
                    &["admin", "it_admin"],
                ),
            ];
            for (q, allowed) in ops {
                let q = q.replace("ROLE", role);
                let got = outcome(&s, token, &q, json!({})).await;
                assert_eq!(got.is_ok(), allowed.contains(role), "{role}: {q}: {got:?}");
            }
        }
        // Writes, field by field: only the administrators (on a user whose
        // roles both may grant: see grants.rs for users they may not touch).
        let admin = &tokens[0].1;
        let target = s
            .create_user(admin, "target@test.example", &["it_admin"])
            .await;
        for (role, token) in &tokens {
            let writes: Vec<(&str, Value)> = vec![
                ("displayName", json!(format!("by {role}"))),
                ("email", json!(format!("{role}-target@test.example"))),
                ("roles", json!(["it_admin"])),
                ("active", json!(true)),
                ("teamId", Value::Null),
            ];
            for (field, value) in writes {
                let me = s
                    .gql(
                        Some(admin),
                        "query($id:ID!){ user(id:$id) { version } }",
                        json!({"id": target}),
                    )
                    .await;
                let v = me["data"]["user"]["version"].as_i64().unwrap();
                let got = outcome(
                    &s,
                    token,
                    "mutation($i:UpdateUserInput!){ updateUser(input:$i) { id } }",
                    json!({"i": {"id": target, "version": v, field: value}}),
                )
                .await;
                assert_eq!(
                    got.is_ok(),
                    admins.contains(role),
                    "{role} writing User.{field}: {got:?}"
                );
                if let Err(fields) = got {
                    let mut want = vec!["Mutation.updateUser".to_owned(), format!("User.{field}")];
                    want.sort();
                    assert_eq!(fields, want, "{role} writing User.{field}");
                }
            }
            // Creating: the password is a writable field too.
            let got = outcome(
                &s,
                token,
                "mutation($i:CreateUserInput!){ createUser(input:$i) { id } }",
                json!({"i": {"email": format!("c-{role}@test.example"), "displayName": "C", "password": "created-password-1"}}),
            )
            .await;
            assert_eq!(
                got.is_ok(),
                admins.contains(role),
                "{role} creating a user: {got:?}"
            );
            if let Err(fields) = got {
                let want = vec![
                    "Mutation.createUser",
                    "User.displayName",
                    "User.email",
                    "User.password",
                ];
                assert_eq!(fields, want, "{role} creating a user");
            }
        }
    }
);

both!(row_scope_own_team_all_and_counts_agree, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let team = |name: &str, parent: Option<&str>| {
        let s = &s;
        let admin = admin.clone();
        let name = name.to_owned();
        let parent = parent.map(str::to_owned);
        async move {
            let r = s
                .gql(
                    Some(&admin),
                    "mutation($n:String!,$p:ID){ createTeam(input:{name:$n, parentId:$p}) { id } }",
                    json!({"n": name, "p": parent}),
                )
                .await;
            r["data"]["createTeam"]["id"].as_str().unwrap().to_owned()
        }
    };
    let east = team("East", None).await;
    let east1 = team("East-1", Some(&east)).await;
    let west = team("West", None).await;
    let add = |email: &str, role: &str, team: &str| {
        let s = &s;
        let admin = admin.clone();
        let (email, role, team) = (email.to_owned(), role.to_owned(), team.to_owned());
        async move {
            let r = s
                .gql(
                    Some(&admin),
                    "mutation($i:CreateUserInput!){ createUser(input:$i) { id } }",
                    json!({"i": {"email": email, "displayName": email, "password": "user-password-1", "roles": [role], "teamId": team}}),
                )
                .await;
            r["data"]["createUser"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned()
        }
    };
    let _manager = add("m@test.example", "sales_manager", &east).await;
    let r1 = add("r1@test.example", "sales_rep", &east1).await;
    let r2 = add("r2@test.example", "sales_rep", &west).await;
    let list = "{ users(first: 50) { totalCount edges { node { email } } } }";
    let emails = |v: &Value| -> Vec<String> {
        let mut e: Vec<String> = v["data"]["users"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["email"].as_str().unwrap().to_owned())
            .collect();
        e.sort();
        e
    };
    let rep = s.login("r1@test.example", "user-password-1").await;
    let r = s.gql(Some(&rep), list, json!({})).await;
    assert_eq!(emails(&r), vec!["r1@test.example"], "{r}");
    assert_eq!(r["data"]["users"]["totalCount"], 1);
    let mgr = s.login("m@test.example", "user-password-1").await;
    let r = s.gql(Some(&mgr), list, json!({})).await;
    assert_eq!(emails(&r), vec!["m@test.example", "r1@test.example"], "{r}");
    assert_eq!(r["data"]["users"]["totalCount"], 2);
    let r = s.gql(Some(&admin), list, json!({})).await;
    assert_eq!(r["data"]["users"]["totalCount"], 4);
    assert_eq!(emails(&r).len(), 4);
    // Outside the scope is NOT_FOUND, not FORBIDDEN, by every route.
    for q in [
        "query($id:ID!){ user(id:$id) { email } }",
        "query($id:ID!){ node(id:$id) { id } }",
    ] {
        let r = s.gql(Some(&rep), q, json!({"id": r2})).await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        let r = s.gql(Some(&mgr), q, json!({"id": r2})).await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        let r = s.gql(Some(&mgr), q, json!({"id": r1})).await;
        assert!(r.get("errors").is_none(), "{r}");
    }
    // Teams: a manager sees its team and the ones below it.
    let r = s.gql(Some(&mgr), "{ teams { name } }", json!({})).await;
    let names: Vec<&str> = r["data"]["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["East", "East-1"], "{r}");
    let r = s
        .gql(
            Some(&rep),
            "query($id:ID!){ team(id:$id) { name } }",
            json!({"id": west}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    // myPermissions tells a UI the same.
    let r = s
        .gql(
            Some(&mgr),
            "{ myPermissions { roles operations types { typeName read create readableFields } } }",
            json!({}),
        )
        .await;
    let user_perm = r["data"]["myPermissions"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["typeName"] == "User")
        .unwrap()
        .clone();
    assert_eq!(user_perm["read"], "TEAM", "{r}");
    assert_eq!(user_perm["create"], false);
    assert!(
        user_perm["readableFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "email")
    );
    let ops = r["data"]["myPermissions"]["operations"].as_array().unwrap();
    assert!(ops.iter().any(|o| o == "Query.users"));
    assert!(!ops.iter().any(|o| o == "Mutation.createUser"));
    let _ = east1;
});

both!(
    a_forbidden_input_field_refuses_the_whole_mutation,
    |b| async move {
        let s = match TestServer::start_with_policy(b, "p, it_admin, User.roles, write, deny", &[])
            .await
        {
            Some(s) => s,
            None => return,
        };
        let admin = s.admin().await;
        s.create_user(&admin, "it@test.example", &["it_admin"])
            .await;
        let it = s.login("it@test.example", "user-password-1").await;
        let target = s.create_user(&admin, "t@test.example", &["it_admin"]).await;
        let (events, audit) = (s.db.count("outbox").await, s.db.count("audit_log").await);
        let r = s
        .gql(
            Some(&it),
            "mutation($i:UpdateUserInput!){ updateUser(input:$i) { displayName roles } }",
            json!({"i": {"id": target, "version": 1, "displayName": "Renamed", "roles": ["admin"]}}),
        )
        .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        assert_eq!(
            r["errors"][0]["extensions"]["fields"],
            json!(["User.roles"]),
            "{r}"
        );
        assert!(r.get("data").is_none(), "{r}");
        // Nothing written: not the allowed field either; no event, no audit.
        let u = s
            .gql(
                Some(&admin),
                "query($id:ID!){ user(id:$id) { displayName roles version } }",
                json!({"id": target}),
            )
            .await;
        assert_eq!(
            u["data"]["user"],
            json!({"displayName": "t@test.example", "roles": ["it_admin"], "version": 1})
        );
        assert_eq!(s.db.count("outbox").await, events);
        assert_eq!(s.db.count("audit_log").await, audit);
        // Without the forbidden field it goes through.
        let r = s
            .gql(
                Some(&it),
                "mutation($i:UpdateUserInput!){ updateUser(input:$i) { displayName } }",
                json!({"i": {"id": target, "version": 1, "displayName": "Renamed"}}),
            )
            .await;
        assert_eq!(r["data"]["updateUser"]["displayName"], "Renamed", "{r}");
        // Several offending fields are all named at once.
        let r = s
            .gql(
                Some(&it),
                "{ auditLog { totalCount } users { edges { node { email } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            r["errors"][0]["extensions"]["fields"],
            json!(["Query.auditLog"]),
            "{r}"
        );
    }
);

both!(integrator_keys_cannot_delete, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let r = s
        .gql(
            Some(&admin),
            "mutation { createApiKey(input: {name: \"erp\", role: \"integrator\"}) { key } }",
            json!({}),
        )
        .await;
    let key = r["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let team = s
        .gql(
            Some(&admin),
            "mutation { createTeam(input: {name: \"Doomed\"}) { id } }",
            json!({}),
        )
        .await;
    let team = team["data"]["createTeam"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let del = "mutation($id:ID!){ deleteTeam(id:$id, version: 1) { id } }";
    let r = s.gql(Some(&key), del, json!({"id": team})).await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    assert_eq!(
        r["errors"][0]["extensions"]["fields"],
        json!(["Mutation.deleteTeam"])
    );
    // It can read and subscribe.
    let r = s
        .gql(
            Some(&key),
            "query($id:ID!){ team(id:$id) { name } }",
            json!({"id": team}),
        )
        .await;
    assert_eq!(r["data"]["team"]["name"], "Doomed", "{r}");
    // The admin can delete it.
    let r = s.gql(Some(&admin), del, json!({"id": team})).await;
    assert_eq!(r["data"]["deleteTeam"]["id"], team.as_str(), "{r}");
    // Anonymous callers are told to sign in.
    let r = s.gql(None, "{ users { totalCount } }", json!({})).await;
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
});

both!(
    subscriptions_only_carry_events_in_row_scope,
    |b| async move {
        let s = match TestServer::start_with_policy(
            b,
            "p, sales_rep, Subscription.events, call, allow",
            &[],
        )
        .await
        {
            Some(s) => s,
            None => return,
        };
        let admin = s.admin().await;
        let mine = s
            .create_user(&admin, "mine@test.example", &["sales_rep"])
            .await;
        let other = s
            .create_user(&admin, "other@test.example", &["sales_rep"])
            .await;
        let rep = s.login("mine@test.example", "user-password-1").await;
        let mut ws = Ws::init(s.addr(), &rep).await;
        ws.subscribe(
            "1",
            "subscription($a:String){ events(after: $a, topics: [\"identity\"]) { entityId kind payload } }",
            json!({"a": s.db.head().await}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let upd = "mutation($i:UpdateUserInput!){ updateUser(input:$i) { id } }";
        s.gql(
            Some(&admin),
            upd,
            json!({"i": {"id": other, "version": 1, "displayName": "Other"}}),
        )
        .await;
        s.gql(
            Some(&admin),
            upd,
            json!({"i": {"id": mine, "version": 1, "displayName": "Mine"}}),
        )
        .await;
        let m = match ws.recv().await {
            Some(m) => m,
            None => {
                let r = s
                    .gql(
                        Some(&admin),
                        "{ users { edges { node { email displayName version } } } }",
                        json!({}),
                    )
                    .await;
                panic!(
                    "no event; outbox rows {}; users {r}",
                    s.db.count("outbox").await
                );
            }
        };
        assert_eq!(
            m["payload"]["data"]["events"]["entityId"],
            mine.as_str(),
            "{m}"
        );
        assert_eq!(
            m["payload"]["data"]["events"]["payload"]["changed"]["displayName"],
            "Mine"
        );
        let extra = tokio::time::timeout(Duration::from_millis(500), ws.recv()).await;
        assert!(
            extra.is_err(),
            "event outside the row scope delivered: {extra:?}"
        );
    }
);

both!(
    policy_edits_apply_within_two_seconds_and_bad_edits_are_refused,
    |b| async move {
        let s = match TestServer::start_with_policy(b, "", &[]).await {
            Some(s) => s,
            None => return,
        };
        let admin = s.admin().await;
        s.create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        let count = "{ users { totalCount } }";
        let total = |v: &Value| v["data"]["users"]["totalCount"].as_i64();
        assert_eq!(total(&s.gql(Some(&rep), count, json!({})).await), Some(1));
        let status = "{ policyStatus { version lastError } }";
        let v1 = s.gql(Some(&admin), status, json!({})).await["data"]["policyStatus"]["version"]
            .as_i64()
            .unwrap();

        // A client keeps querying while the file changes under it.
        let path = s.policy_dir().join("policy.csv");
        let original = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            format!("{original}\np, sales_rep, User, read:all, allow\n"),
        )
        .unwrap();
        let edited = Instant::now();
        let mut changed = None;
        while edited.elapsed() < Duration::from_secs(5) {
            let r = s.gql(Some(&rep), count, json!({})).await;
            assert!(
                r.get("errors").is_none(),
                "in-flight query failed during reload: {r}"
            );
            if total(&r) == Some(2) {
                changed = Some(edited.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = changed.expect("the edit never took effect");
        assert!(took < Duration::from_secs(2), "took {took:?}");
        let r = s.gql(Some(&admin), status, json!({})).await;
        assert_eq!(
            r["data"]["policyStatus"]["version"].as_i64(),
            Some(v1 + 1),
            "{r}"
        );

        // A broken edit: a misspelt field. The last good policy stays.
        std::fs::write(
            &path,
            format!("{original}\np, sales_rep, User.emial, read, allow\n"),
        )
        .unwrap();
        let mut reported = None;
        for _ in 0..40 {
            let r = s.gql(Some(&admin), status, json!({})).await;
            if let Some(e) = r["data"]["policyStatus"]["lastError"].as_str() {
                reported = Some(e.to_owned());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reported = reported.expect("the refused edit is reported");
        assert!(
            reported.contains("User.emial") && reported.contains("policy.csv:"),
            "{reported}"
        );
        assert_eq!(
            total(&s.gql(Some(&rep), count, json!({})).await),
            Some(2),
            "old policy still in force"
        );
        // Not even parseable: also refused.
        std::fs::write(&path, "p, sales_rep\n").unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(total(&s.gql(Some(&rep), count, json!({})).await), Some(2));
        let r = s.gql(Some(&admin), status, json!({})).await;
        assert!(
            r["data"]["policyStatus"]["lastError"]
                .as_str()
                .unwrap()
                .contains("4 fields"),
            "{r}"
        );
        // Restoring the original narrows the scope again and clears the error.
        std::fs::write(&path, &original).unwrap();
        let mut back = false;
        for _ in 0..40 {
            if total(&s.gql(Some(&rep), count, json!({})).await) == Some(1) {
                back = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(back);
        let r = s.gql(Some(&admin), status, json!({})).await;
        assert!(r["data"]["policyStatus"]["lastError"].is_null(), "{r}");
    }
);
