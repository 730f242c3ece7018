//! Sign-in, tokens, API keys and throttling.

use serde_json::json;

use crate::support::*;
use crate::{both, server};

const ME: &str = "{ me { id email roles } }";

both!(
    login_failures_do_not_leak_which_part_was_wrong,
    |b| async move {
        let s = server!(b);
        let q = "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}";
        let wrong_pw = s
            .gql(None, q, json!({"e": ADMIN_EMAIL, "p": "not-the-password"}))
            .await;
        let unknown = s
            .gql(
                None,
                q,
                json!({"e": "nobody@test.example", "p": "not-the-password"}),
            )
            .await;
        assert_eq!(code(&wrong_pw), "UNAUTHENTICATED", "{wrong_pw}");
        assert_eq!(code(&unknown), "UNAUTHENTICATED", "{unknown}");
        assert_eq!(
            wrong_pw["errors"][0]["message"],
            unknown["errors"][0]["message"]
        );
        assert_eq!(wrong_pw["data"], unknown["data"]);
        // Emails are case-insensitive; the right password works.
        let token = s.login(&ADMIN_EMAIL.to_uppercase(), ADMIN_PASSWORD).await;
        let me = s.gql(Some(&token), ME, json!({})).await;
        assert_eq!(me["data"]["me"]["email"], ADMIN_EMAIL, "{me}");
    }
);

both!(bad_credentials_get_unauthenticated, |b| async move {
    let s = server!(b);
    let token = s.admin().await;
    // Expired: signed with the right secret, but in the past.
    let past = chrono::Utc::now().timestamp() - 60;
    let me = s.gql(Some(&token), ME, json!({})).await;
    let uid = me["data"]["me"]["id"].as_str().unwrap().to_owned();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": uid, "jti": "tok_x", "iat": past - 100, "exp": past}),
        &jsonwebtoken::EncodingKey::from_secret(TOKEN_SECRET.as_bytes()),
    )
    .unwrap();
    // Forged: right shape, wrong secret.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": uid, "jti": "tok_y", "iat": past, "exp": past + 10_000}),
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    )
    .unwrap();
    for bad in [expired.as_str(), forged.as_str(), "garbage", "crmk_notakey"] {
        let r = s.gql(Some(bad), ME, json!({})).await;
        assert_eq!(code(&r), "UNAUTHENTICATED", "{bad}: {r}");
        assert_eq!(r["errors"][0]["message"], "invalid token");
    }
    // Malformed headers.
    for header in [
        "Basic YWRtaW46YWRtaW4=",
        "Bearer",
        "Bearer ",
        token.as_str(),
    ] {
        let resp = s
            .http
            .post(s.url())
            .header("authorization", header)
            .json(&json!({"query": ME}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{header}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(code(&v), "UNAUTHENTICATED", "{header}: {v}");
    }
    // No header at all: the field needs a user.
    let anon = s.gql(None, ME, json!({})).await;
    assert_eq!(code(&anon), "UNAUTHENTICATED", "{anon}");
});

both!(logout_revokes_the_token_on_every_replica, |b| async move {
    let s = server!(b);
    let other = s.replica(&[]).await;
    let token = s.admin().await;
    let on_other = gql_at(&s.http, other.addr, Some(&token), ME, json!({})).await;
    assert!(on_other["data"]["me"]["id"].is_string(), "{on_other}");
    let r = s.gql(Some(&token), "mutation { logout }", json!({})).await;
    assert_eq!(r["data"]["logout"], true, "{r}");
    let again = s.gql(Some(&token), ME, json!({})).await;
    assert_eq!(code(&again), "UNAUTHENTICATED");
    // The other replica learns through the outbox within a couple of seconds.
    let mut revoked = false;
    for _ in 0..40 {
        let r = gql_at(&s.http, other.addr, Some(&token), ME, json!({})).await;
        if code(&r) == "UNAUTHENTICATED" {
            revoked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(revoked, "token still accepted by the other replica");
    // A fresh login still works.
    let fresh = s.admin().await;
    assert!(s.gql(Some(&fresh), ME, json!({})).await["data"]["me"].is_object());
});

both!(repeated_failures_are_throttled, |b| async move {
    let s = server!(
        b,
        &[("login-max-failures", "3"), ("login-lockout-secs", "60")]
    );
    let q = "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}";
    for _ in 0..3 {
        let r = s
            .gql(None, q, json!({"e": ADMIN_EMAIL, "p": "wrong-password"}))
            .await;
        assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    }
    // Even the right password is refused while throttled.
    let r = s
        .gql(None, q, json!({"e": ADMIN_EMAIL, "p": ADMIN_PASSWORD}))
        .await;
    assert_eq!(code(&r), "RATE_LIMITED", "{r}");
    // Unknown accounts are throttled the same way (no existence leak).
    for _ in 0..3 {
        s.gql(None, q, json!({"e": "ghost@test.example", "p": "x"}))
            .await;
    }
    let r = s
        .gql(None, q, json!({"e": "ghost@test.example", "p": "x"}))
        .await;
    assert_eq!(code(&r), "RATE_LIMITED", "{r}");
});

both!(
    api_keys_are_shown_once_hashed_and_revocable,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let r = s
        .gql(
            Some(&admin),
            "mutation { createApiKey(input: {name: \"erp\", role: \"integrator\"}) { key apiKey { id prefix role } } }",
            json!({}),
        )
        .await;
        let key = r["data"]["createApiKey"]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let id = r["data"]["createApiKey"]["apiKey"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            key.starts_with(
                r["data"]["createApiKey"]["apiKey"]["prefix"]
                    .as_str()
                    .unwrap()
            )
        );
        // The key works as a bearer credential.
        let users = s
            .gql(Some(&key), "{ users { totalCount } }", json!({}))
            .await;
        assert!(
            users["data"]["users"]["totalCount"].as_i64().unwrap() >= 1,
            "{users}"
        );
        // Listing keys never shows the secret; the database holds only a hash.
        let list = s
            .gql(Some(&admin), "{ apiKeys { id prefix } }", json!({}))
            .await;
        assert!(!list.to_string().contains(&key));
        assert_eq!(s.db.count("api_keys").await, 1);
        // Integrators cannot administer.
        let r = s
            .gql(
                Some(&key),
                "mutation { createTeam(input: {name: \"x\"}) { id } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        // Revoked: refused.
        let r = s
            .gql(
                Some(&admin),
                "mutation($id:ID!){ revokeApiKey(id: $id) { revokedAt } }",
                json!({"id": id}),
            )
            .await;
        assert!(r["data"]["revokeApiKey"]["revokedAt"].is_string(), "{r}");
        let r = s
            .gql(Some(&key), "{ users { totalCount } }", json!({}))
            .await;
        assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    }
);

both!(
    deactivated_users_cannot_sign_in_or_use_tokens,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let uid = s
            .create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        assert!(s.gql(Some(&rep), ME, json!({})).await["data"]["me"].is_object());
        // Non-admins cannot administer users.
        let r = s
            .gql(
                Some(&rep),
                "mutation($id:ID!){ deactivateUser(id:$id, version:1){ id } }",
                json!({"id": uid}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        let r = s
            .gql(
                Some(&admin),
                "mutation($id:ID!){ deactivateUser(id:$id, version:1){ active version } }",
                json!({"id": uid}),
            )
            .await;
        assert_eq!(r["data"]["deactivateUser"]["active"], false, "{r}");
        assert_eq!(
            code(&s.gql(Some(&rep), ME, json!({})).await),
            "UNAUTHENTICATED"
        );
        let q = "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}";
        let r = s
            .gql(
                None,
                q,
                json!({"e": "rep@test.example", "p": "user-password-1"}),
            )
            .await;
        assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    }
);

both!(users_change_their_own_password, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    s.create_user(&admin, "pw@test.example", &["sales_rep"])
        .await;
    let me = s.login("pw@test.example", "user-password-1").await;
    let change =
        "mutation($c:String!,$n:String!){ changePassword(currentPassword:$c, newPassword:$n) }";
    let r = s
        .gql(
            Some(&me),
            change,
            json!({"c": "wrong-password", "n": "another-password-9"}),
        )
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["fields"][0]["field"], "currentPassword",
        "{r}"
    );
    let r = s
        .gql(
            Some(&me),
            change,
            json!({"c": "user-password-1", "n": "short"}),
        )
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["fields"][0]["field"], "newPassword",
        "{r}"
    );
    let r = s
        .gql(
            Some(&me),
            change,
            json!({"c": "user-password-1", "n": "another-password-9"}),
        )
        .await;
    assert_eq!(r["data"]["changePassword"], true, "{r}");
    let q = "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}";
    let old = s
        .gql(
            None,
            q,
            json!({"e": "pw@test.example", "p": "user-password-1"}),
        )
        .await;
    assert_eq!(code(&old), "UNAUTHENTICATED", "{old}");
    s.login("pw@test.example", "another-password-9").await;
});
