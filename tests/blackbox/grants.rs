//! Granting roles is bounded by policy: an IT admin (users, teams, API keys;
//! no customer data) tries every way to give itself customer data and is
//! refused with nothing changed; an admin can still do all of it; a demoted
//! user's old token loses the role.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const PASSWORD: &str = "user-password-1";

/// An admin token, an it_admin token, a sales rep (id, token) and an account
/// with a credit limit the rep owns.
struct World {
    admin: String,
    it: String,
    it_id: String,
    rep_id: String,
    rep: String,
}

async fn world(s: &TestServer) -> World {
    let admin = s.admin().await;
    let it_id = s
        .create_user(&admin, "it@test.example", &["it_admin"])
        .await;
    let rep_id = s
        .create_user(&admin, "rep@test.example", &["sales_rep"])
        .await;
    let it = s.login("it@test.example", PASSWORD).await;
    let rep = s.login("rep@test.example", PASSWORD).await;
    let r = s
        .gql(
            Some(&rep),
            "mutation { createAccount(input: {name: \"Acme\", creditLimit: {amountMinor: 500000, currency: \"EUR\"}}) { id } }",
            json!({}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r}");
    World {
        admin,
        it,
        it_id,
        rep_id,
        rep,
    }
}

const CREDIT: &str = "{ accounts { edges { node { name creditLimit { amountMinor } } } } }";

/// Row counts that a refused request must leave alone.
async fn counts(s: &TestServer) -> (i64, i64, i64, i64) {
    (
        s.db.count("users").await,
        s.db.count("api_keys").await,
        s.db.count("audit_log").await,
        s.db.count("outbox").await,
    )
}

async fn user(s: &TestServer, admin: &str, id: &str) -> Value {
    let r = s
        .gql(
            Some(admin),
            "query($id:ID!){ user(id:$id) { roles active email version } }",
            json!({"id": id}),
        )
        .await;
    r["data"]["user"].clone()
}

async fn forbidden(s: &TestServer, token: &str, query: &str, vars: Value) {
    let r = s.gql(Some(token), query, vars).await;
    assert_eq!(code(&r), "FORBIDDEN", "{query}: {r}");
}

both!(
    it_admin_cannot_mint_api_keys_that_read_customer_data,
    |b| async move {
        let s = server!(b);
        let w = world(&s).await;
        let create = "mutation($r:String!){ createApiKey(input:{name:\"x\", role:$r}) { key } }";
        forbidden(&s, &w.it, CREDIT, json!({})).await;
        let before = counts(&s).await;
        for role in ["admin", "integrator", "sales_rep", "support", "marketing"] {
            forbidden(&s, &w.it, create, json!({"r": role})).await;
        }
        assert_eq!(counts(&s).await, before, "a refused grant changes nothing");

        // Within its own rights it still works.
        let r = s.gql(Some(&w.it), create, json!({"r": "it_admin"})).await;
        assert!(r["data"]["createApiKey"]["key"].is_string(), "{r}");

        // An admin still can, and the key reads credit limits.
        let r = s
            .gql(Some(&w.admin), create, json!({"r": "integrator"}))
            .await;
        let key = r["data"]["createApiKey"]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = s.gql(Some(&key), CREDIT, json!({})).await;
        assert_eq!(
            r["data"]["accounts"]["edges"][0]["node"]["creditLimit"]["amountMinor"],
            json!(500000),
            "{r}"
        );
    }
);

both!(it_admin_cannot_give_itself_roles, |b| async move {
    let s = server!(b);
    let w = world(&s).await;
    let me = user(&s, &w.admin, &w.it_id).await;
    let update = "mutation($i:UpdateUserInput!){ updateUser(input:$i) { roles } }";
    let before = counts(&s).await;
    for roles in [
        json!(["it_admin", "admin"]),
        json!(["it_admin", "sales_rep"]),
        json!(["integrator"]),
    ] {
        forbidden(
            &s,
            &w.it,
            update,
            json!({"i": {"id": w.it_id, "version": me["version"], "roles": roles}}),
        )
        .await;
    }
    assert_eq!(counts(&s).await, before);
    assert_eq!(user(&s, &w.admin, &w.it_id).await, me, "unchanged");
    // The same token still cannot read customer data or the audit log.
    forbidden(&s, &w.it, CREDIT, json!({})).await;
    forbidden(&s, &w.it, "{ auditLog { totalCount } }", json!({})).await;
    // It may still change its own harmless details.
    let r = s
        .gql(
            Some(&w.it),
            update,
            json!({"i": {"id": w.it_id, "version": me["version"], "displayName": "IT"}}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r}");

    // An admin can promote it; the promotion is audited with the roles.
    let me = user(&s, &w.admin, &w.it_id).await;
    let r = s
        .gql(
            Some(&w.admin),
            update,
            json!({"i": {"id": w.it_id, "version": me["version"], "roles": ["it_admin", "sales_rep"]}}),
        )
        .await;
    assert_eq!(
        r["data"]["updateUser"]["roles"],
        json!(["it_admin", "sales_rep"]),
        "{r}"
    );
    let r = s
        .gql(
            Some(&w.admin),
            "query($id:ID!){ auditLog(filter:{entityId:$id}, first: 1) { edges { node { action changes { field old new } } } } }",
            json!({"id": w.it_id}),
        )
        .await;
    let changes = &r["data"]["auditLog"]["edges"][0]["node"]["changes"];
    let roles = changes
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "roles")
        .unwrap_or_else(|| panic!("roles not audited: {r}"));
    assert_eq!(roles["old"], json!(["it_admin"]));
    assert_eq!(roles["new"], json!(["it_admin", "sales_rep"]));
});

both!(it_admin_cannot_become_a_sales_user, |b| async move {
    let s = server!(b);
    let w = world(&s).await;
    let before = counts(&s).await;
    let rep = user(&s, &w.admin, &w.rep_id).await;

    // Create a sales user with a password it knows.
    forbidden(
        &s,
        &w.it,
        "mutation($i:CreateUserInput!){ createUser(input:$i) { id } }",
        json!({"i": {"email": "mole@test.example", "displayName": "Mole", "password": PASSWORD, "roles": ["sales_rep"]}}),
    )
    .await;
    // Even without a password (it would set one next).
    forbidden(
        &s,
        &w.it,
        "mutation($i:CreateUserInput!){ createUser(input:$i) { id } }",
        json!({"i": {"email": "mole2@test.example", "displayName": "Mole", "roles": ["support"]}}),
    )
    .await;
    // Take over the existing rep: password, email, re-activation games.
    forbidden(
        &s,
        &w.it,
        "mutation($id:ID!){ setUserPassword(id:$id, password:\"it-knows-this-1\") { id } }",
        json!({"id": w.rep_id}),
    )
    .await;
    forbidden(
        &s,
        &w.it,
        "mutation($i:UpdateUserInput!){ updateUser(input:$i) { id } }",
        json!({"i": {"id": w.rep_id, "version": rep["version"], "email": "it-inbox@test.example"}}),
    )
    .await;
    forbidden(
        &s,
        &w.it,
        "mutation($i:UpdateUserInput!){ updateUser(input:$i) { id } }",
        json!({"i": {"id": w.rep_id, "version": rep["version"], "roles": []}}),
    )
    .await;
    forbidden(
        &s,
        &w.it,
        "mutation($id:ID!,$v:Int!){ deactivateUser(id:$id, version:$v) { id } }",
        json!({"id": w.rep_id, "v": rep["version"]}),
    )
    .await;
    assert_eq!(counts(&s).await, before, "nothing written");
    assert_eq!(user(&s, &w.admin, &w.rep_id).await, rep, "rep unchanged");
    let r = s
        .gql(
            None,
            "mutation { login(email: \"rep@test.example\", password: \"it-knows-this-1\") { token } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    s.login("rep@test.example", PASSWORD).await;
    let r = s.gql(Some(&w.rep), CREDIT, json!({})).await;
    assert!(r.get("errors").is_none(), "the rep keeps working: {r}");

    // Users within its own rights it still manages.
    let id = s
        .create_user(&w.it, "helpdesk@test.example", &["it_admin"])
        .await;
    let r = s
        .gql(
            Some(&w.it),
            "mutation($id:ID!){ setUserPassword(id:$id, password:\"new-password-22\") { id } }",
            json!({"id": id}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r}");

    // An admin can do all of it (the admin-only reset path).
    let r = s
        .gql(
            Some(&w.admin),
            "mutation($id:ID!){ setUserPassword(id:$id, password:\"reset-by-admin-1\") { id } }",
            json!({"id": w.rep_id}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r}");
    s.login("rep@test.example", "reset-by-admin-1").await;
    s.create_user(&w.admin, "new-rep@test.example", &["sales_rep"])
        .await;
});

both!(a_demoted_users_old_token_loses_the_role, |b| async move {
    let s = server!(b);
    let w = world(&s).await;
    let rep = user(&s, &w.admin, &w.rep_id).await;
    let r = s.gql(Some(&w.rep), CREDIT, json!({})).await;
    assert!(r.get("errors").is_none(), "{r}");
    let r = s
        .gql(
            Some(&w.admin),
            "mutation($i:UpdateUserInput!){ updateUser(input:$i) { roles } }",
            json!({"i": {"id": w.rep_id, "version": rep["version"], "roles": ["support"]}}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r}");
    // Another replica's cache must drop the role too: ask both.
    let other = s.replica(&[]).await;
    let bound = Instant::now() + Duration::from_secs(15);
    for addr in [s.addr(), other.addr] {
        loop {
            let r = gql_at(&s.http, addr, Some(&w.rep), CREDIT, json!({})).await;
            if code(&r) == "FORBIDDEN" {
                break;
            }
            assert!(Instant::now() < bound, "old token kept sales_rep: {r}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // It keeps what support may do.
    let r = s
        .gql(
            Some(&w.rep),
            "{ accounts { edges { node { name } } } }",
            json!({}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r}");
});

both!(
    grant_lines_are_checked_against_the_granter,
    |b| async move {
        let s = TestServer::start_with_policy(b, "", &[]).await;
        let w = world(&s).await;
        let path = s.policy_dir().join("policy.csv");
        let original = std::fs::read_to_string(&path).unwrap();
        let status = "{ policyStatus { version lastError } }";
        let version = |v: &Value| v["data"]["policyStatus"]["version"].as_i64().unwrap();
        let v1 = version(&s.gql(Some(&w.admin), status, json!({})).await);

        // An explicit line granting more than the granter has is refused by the
        // lint; the policy in force stays.
        std::fs::write(
            &path,
            format!("{original}\np, it_admin, Role.sales_rep, grant, allow\n"),
        )
        .unwrap();
        let bound = Instant::now() + Duration::from_secs(15);
        let error = loop {
            let r = s.gql(Some(&w.admin), status, json!({})).await;
            if let Some(e) = r["data"]["policyStatus"]["lastError"].as_str() {
                break e.to_owned();
            }
            assert!(Instant::now() < bound, "the edit was not refused: {r}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            error.contains("may not grant sales_rep") && error.contains("Account"),
            "{error}"
        );

        // A wildcard grant loads, but still cannot exceed the granter at run time.
        std::fs::write(
            &path,
            format!("{original}\np, it_admin, Role.*, grant, allow\n"),
        )
        .unwrap();
        let bound = Instant::now() + Duration::from_secs(15);
        loop {
            let r = s.gql(Some(&w.admin), status, json!({})).await;
            if version(&r) > v1 && r["data"]["policyStatus"]["lastError"].is_null() {
                break;
            }
            assert!(
                Instant::now() < bound,
                "the wildcard edit did not load: {r}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let before = counts(&s).await;
        let r = s
            .gql(
                Some(&w.it),
                "mutation { createApiKey(input:{name:\"x\", role:\"integrator\"}) { key } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        assert!(
            r["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("reaches what you cannot"),
            "{r}"
        );
        assert_eq!(
            r["errors"][0]["extensions"]["fields"],
            json!(["Role.integrator"])
        );
        assert_eq!(counts(&s).await, before);
    }
);
