//! Exports: a job writing CSV or JSON Lines with only the rows in the
//! caller's scope and only the fields the caller may read.

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

async fn export(s: &TestServer, token: &str, mutation: &str, vars: Value) -> (Value, String) {
    let r = s.gql(Some(token), mutation, vars).await;
    let field = mutation
        .split('{')
        .nth(1)
        .and_then(|x| x.split('(').next())
        .unwrap()
        .trim()
        .to_owned();
    let id = r["data"][&field]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let job = s.wait_job(token, "exportJob", &id).await;
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    let url = job["downloadUrl"].as_str().unwrap();
    let (status, body) = s.get(Some(token), url).await;
    assert_eq!(status, 200, "{body}");
    (job, body)
}

both!(exports_follow_row_scope_and_field_rules, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let rep1 = s
        .create_user(&admin, "rep1@test.example", &["sales_rep"])
        .await;
    let rep2 = s
        .create_user(&admin, "rep2@test.example", &["sales_rep"])
        .await;
    s.create_user(&admin, "mkt@test.example", &["marketing"])
        .await;
    let mut accounts = Vec::new();
    for (i, owner) in [&rep1, &rep1, &rep2].iter().enumerate() {
        let r = s
            .gql(
                Some(&admin),
                "mutation($i:CreateAccountInput!){ createAccount(input:$i) { id } }",
                json!({"i": {"name": format!("Acme {i}"), "ownerId": owner,
                    "creditLimit": {"amountMinor": 500_000, "currency": "EUR"},
                    "annualRevenue": {"amountMinor": 123_450, "currency": "EUR"}}}),
            )
            .await;
        accounts.push(
            r["data"]["createAccount"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        let r = s
            .gql(
                Some(&admin),
                "mutation($i:CreatePurchaseInput!){ recordPurchase(input:$i) { id } }",
                json!({"i": {"accountId": accounts[i], "orderNumber": format!("SO-{i}"),
                    "orderedAt": "2026-01-02T03:04:05Z", "amount": {"amountMinor": 9_999, "currency": "EUR"},
                    "lineItems": [{"name": "Widget", "quantity": 1, "unitAmountMinor": 9_999}],
                    "idempotencyKey": format!("k{i}")}}),
            )
            .await;
        assert!(r.get("errors").is_none(), "{r}");
    }
    let mkt = s.login("mkt@test.example", "user-password-1").await;
    let r1 = s.login("rep1@test.example", "user-password-1").await;

    // Marketing: every account, but no credit columns; purchases without amounts.
    let (job, csv) = export(&s, &mkt, "mutation { exportAccounts { id } }", json!({})).await;
    assert_eq!(job["rowsDone"], 3, "{job}");
    let header = csv.lines().next().unwrap();
    assert!(header.starts_with("id,name,industry,"), "{header}");
    assert!(header.contains("annualRevenue,revenueCurrency"), "{header}");
    assert!(!header.contains("credit"), "{header}");
    assert!(!csv.contains("5000.00"), "{csv}");
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let (_, jsonl) = export(
        &s,
        &mkt,
        "mutation { exportPurchases(format: JSON_LINES) { id } }",
        json!({}),
    )
    .await;
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        let o = r.as_object().unwrap();
        assert!(o.contains_key("orderNumber"), "{r}");
        for hidden in ["amount", "currency", "lineItems"] {
            assert!(!o.contains_key(hidden), "{hidden} in {r}");
        }
    }

    // A rep: only their own rows, with every field they may read.
    let (job, csv) = export(&s, &r1, "mutation { exportAccounts { id } }", json!({})).await;
    assert_eq!(job["rowsDone"], 2, "{job}");
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .contains("creditLimit,creditCurrency")
    );
    assert!(csv.contains(&accounts[0]) && csv.contains(&accounts[1]));
    assert!(!csv.contains(&accounts[2]), "{csv}");
    assert!(csv.contains(",5000.00,EUR,"), "{csv}");
    let (_, jsonl) = export(
        &s,
        &r1,
        "mutation { exportPurchases(format: JSON_LINES) { id } }",
        json!({}),
    )
    .await;
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["amount"], "99.99");
    // Filters are those of the list.
    let (job, csv) = export(
        &s,
        &r1,
        "mutation($f:AccountFilterInput){ exportAccounts(filter:$f) { id } }",
        json!({"f": {"search": "acme 1"}}),
    )
    .await;
    assert_eq!(job["rowsDone"], 1, "{job}");
    assert!(csv.contains("Acme 1"), "{csv}");

    // The file is the starter's: others cannot see the job or download it.
    let r = s
        .gql(Some(&r1), "mutation { exportContacts { id } }", json!({}))
        .await;
    let id = r["data"]["exportContacts"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = s.wait_job(&r1, "exportJob", &id).await;
    let url = job["downloadUrl"].as_str().unwrap().to_owned();
    let (status, _) = s.get(Some(&mkt), &url).await;
    assert_eq!(status, 404);
    let (status, _) = s.get(None, &url).await;
    assert_eq!(status, 401);
    let r = s
        .gql(
            Some(&mkt),
            "query($id:ID!){ exportJob(id:$id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    // An import job is not an export job.
    let r = s
        .gql(
            Some(&r1),
            "query($id:ID!){ importJob(id:$id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
});

both!(an_exported_file_imports_back_unchanged, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let r = s
        .gql(
            Some(&admin),
            "mutation($i:CreateAccountInput!){ createAccount(input:$i) { id } }",
            json!({"i": {"name": "Ümlaut GmbH, \"Quoted\"", "sizeBand": "SMALL", "lifecycleStage": "AT_RISK",
                "address": {"city": "Köln", "country": "DE"}, "notes": "=SUM(A1)",
                "creditLimit": {"amountMinor": 1_005, "currency": "USD"}}}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r}");
    let (_, csv) = export(&s, &admin, "mutation { exportAccounts { id } }", json!({})).await;
    // Formula-looking text is defused for spreadsheets.
    assert!(csv.contains("'=SUM(A1)"), "{csv}");
    let csv = csv.replace("'=SUM(A1)", "=SUM(A1)");
    let before = s.db.head().await;
    let r = s
        .upload(
            Some(&admin),
            "mutation($file:Upload!,$o:ImportOptions){ importAccounts(file:$file, options:$o) { id } }",
            json!({"o": {"duplicates": "UPDATE"}}),
            "file",
            "accounts.csv",
            csv.into_bytes(),
        )
        .await;
    let id = r["data"]["importAccounts"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = s.wait_job(&admin, "importJob", &id).await;
    assert_eq!(
        (
            job["status"].clone(),
            job["skipped"].clone(),
            job["updated"].clone()
        ),
        (json!("SUCCEEDED"), json!(1), json!(0)),
        "{job}"
    );
    assert_eq!(s.db.head().await, before, "no change, no event");
});
