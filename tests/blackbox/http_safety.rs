//! The HTTP endpoint's safety rules: methods, media types, limits.

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

async fn post_raw(
    s: &TestServer,
    content_type: &str,
    accept: Option<&str>,
    body: String,
) -> (u16, String, Value) {
    let mut req = s
        .http
        .post(s.url())
        .header("content-type", content_type)
        .body(body);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    (
        status,
        ct,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

both!(csrf_vectors_and_get_mutations_are_refused, |b| async move {
    let s = server!(b);
    let body = json!({"query": "mutation { logout }"}).to_string();
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, _, v) = post_raw(&s, ct, None, body.clone()).await;
        assert_eq!(status, 415, "{ct}: {v}");
        assert_eq!(code(&v), "VALIDATION");
    }
    // Multipart (file uploads) needs a header a cross-site form cannot set.
    let (status, _, v) = post_raw(&s, "multipart/form-data; boundary=x", None, body.clone()).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(code(&v), "VALIDATION");
    assert!(v.to_string().contains("GraphQL-Preflight"), "{v}");
    let resp = s
        .http
        .get(format!("{}?query=mutation%7Blogout%7D", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    // Queries over GET work.
    let resp = s
        .http
        .get(format!("{}?query=%7B__typename%7D", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"]["__typename"], "Query");
});

both!(media_types_are_negotiated, |b| async move {
    let s = server!(b);
    let q = json!({"query": "{ __typename }"}).to_string();
    let (status, ct, _) =
        post_raw(&s, "application/json", Some("application/json"), q.clone()).await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/json; charset=utf-8")
    );
    let (status, ct, _) = post_raw(
        &s,
        "application/json",
        Some("application/graphql-response+json"),
        q.clone(),
    )
    .await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/graphql-response+json; charset=utf-8")
    );
    // A document that does not parse is a request error: 400 under the new
    // media type (no data entry), 200 with errors under plain JSON.
    let bad = json!({"query": "{"}).to_string();
    let (status, _, v) = post_raw(
        &s,
        "application/json",
        Some("application/graphql-response+json"),
        bad.clone(),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v.get("data").is_none(), "{v}");
    assert_eq!(code(&v), "VALIDATION");
    let (status, _, v) = post_raw(&s, "application/json", Some("application/json"), bad).await;
    assert_eq!(status, 200, "{v}");
    // Body that is not JSON at all.
    let (status, _, v) = post_raw(&s, "application/json", None, "{nope".into()).await;
    assert_eq!(status, 400, "{v}");
});

both!(limits_are_applied_before_execution, |b| async move {
    let s = server!(
        b,
        &[
            ("max-depth", "4"),
            ("max-complexity", "8"),
            ("max-aliases", "3"),
            ("max-batch", "2"),
            ("max-body-bytes", "2000"),
            ("max-directives", "2")
        ]
    );
    let admin = s.admin().await;
    let deep = "{ me { team { parent { parent { parent { id } } } } } }";
    let r = s.gql(Some(&admin), deep, json!({})).await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{r}"
    );
    assert!(r.get("data").is_none() || r["data"].is_null());
    let complex = "{ me { id email displayName active roles version teamId createdAt updatedAt } }";
    let r = s.gql(Some(&admin), complex, json!({})).await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{r}"
    );
    let aliases = "{ a: __typename b: __typename c: __typename d: __typename }";
    let r = s.gql(Some(&admin), aliases, json!({})).await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases"),
        "{r}"
    );
    let directives = "{ __typename @include(if: true) @skip(if: false) @include(if: true) }";
    let r = s.gql(Some(&admin), directives, json!({})).await;
    assert!(r["errors"].is_array(), "{r}");
    // A logout that would have run inside a refused query must not run.
    let r = s
        .gql(
            Some(&admin),
            "mutation { a: logout b: logout c: logout d: logout }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert!(s.gql(Some(&admin), "{ me { id } }", json!({})).await["data"]["me"].is_object());
    // Batches: within the cap they run, over it they are refused whole.
    let two = json!([{"query": "{ __typename }"}, {"query": "{ __typename }"}]).to_string();
    let (status, _, v) = post_raw(&s, "application/json", None, two).await;
    assert_eq!(status, 200);
    assert_eq!(v.as_array().unwrap().len(), 2);
    let three = json!([{"query": "{ __typename }"}, {"query": "{ __typename }"}, {"query": "{ __typename }"}]).to_string();
    let (status, _, v) = post_raw(&s, "application/json", None, three).await;
    assert_eq!(status, 400, "{v}");
    // Oversized bodies: 413.
    let big = json!({"query": format!("{{ __typename }} # {}", "x".repeat(5000))}).to_string();
    let (status, _, _) = post_raw(&s, "application/json", None, big).await;
    assert_eq!(status, 413);
});

both!(
    introspection_and_suggestions_can_be_switched_off,
    |b| async move {
        let s = server!(b, &[("introspection", "false"), ("suggestions", "false")]);
        // async-graphql answers introspection with null when it is off.
        let r = s
            .gql(None, "{ __schema { queryType { name } } }", json!({}))
            .await;
        assert!(r["data"]["__schema"].is_null(), "{r}");
        let r = s.gql(None, "{ userss { totalCount } }", json!({})).await;
        let msg = r["errors"][0]["message"].as_str().unwrap();
        assert!(!msg.contains("Did you mean"), "{msg}");
        let on = server!(b);
        let r = on.gql(None, "{ userss { totalCount } }", json!({})).await;
        assert!(
            r["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Did you mean"),
            "{r}"
        );
    }
);

both!(cors_from_config_and_gzip, |b| async move {
    let s = server!(b, &[("cors-origins", "https://app.example")]);
    let preflight = |origin: &'static str| {
        s.http
            .request(reqwest::Method::OPTIONS, s.url())
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // Large answers are compressed for clients that accept gzip.
    let resp = s
        .http
        .post(s.url())
        .header("accept-encoding", "gzip")
        .json(&json!({"query": "{ __schema { types { name description fields { name description } } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
});
