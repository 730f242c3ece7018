//! Privacy: the right to be forgotten (`eraseContact`) and the right of
//! access (`personalDataReport`).

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

both!(
    erasure_removes_personal_data_everywhere_and_keeps_aggregates,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        s.create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        let r = s
            .gql(
                Some(&admin),
                "mutation { createAccount(input:{name:\"Acme Corp\"}) { id } }",
                json!({}),
            )
            .await;
        let account = r["data"]["createAccount"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = s
        .gql(
            Some(&admin),
            "mutation($a:ID!){ createContact(input:{firstName:\"Jane\", lastName:\"Doe\", title:\"CFO\", accountId:$a,
              emails:[{kind:WORK, value:\"jane.doe@example.com\"}], phones:[{kind:MOBILE, value:\"+4930123456\"}]}) { id } }",
            json!({"a": account}),
        )
        .await;
        let contact = r["data"]["createContact"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // The person in the timeline (about them, and mentioned elsewhere).
        for (ty, subject, title, body) in [
            (
                "CONTACT",
                &contact,
                "Call with Jane Doe",
                "jane.doe@example.com asked for a quote",
            ),
            (
                "ACCOUNT",
                &account,
                "Quarterly review",
                "Met Jane Doe and the team",
            ),
        ] {
            let r = s
            .gql(
                Some(&admin),
                "mutation($i:CreateActivityInput!){ logActivity(input:$i) { id } }",
                json!({"i": {"kind": "CALL", "subjectType": ty, "subjectId": subject, "title": title, "body": body,
                    "occurredAt": "2026-03-01T10:00:00Z"}}),
            )
            .await;
            assert!(r.get("errors").is_none(), "{r}");
        }
        let r = s
        .gql(
            Some(&admin),
            "mutation($i:CreatePurchaseInput!){ recordPurchase(input:$i) { id } }",
            json!({"i": {"accountId": account, "contactId": contact, "orderNumber": "SO-1",
                "orderedAt": "2026-03-02T00:00:00Z", "amount": {"amountMinor": 12_345, "currency": "EUR"},
                "idempotencyKey": "p1"}}),
        )
        .await;
        assert!(r.get("errors").is_none(), "{r}");
        // An import report line and an export file that mention her.
        let r = s
            .upload(
                Some(&admin),
                "mutation($file:Upload!){ importContacts(file:$file) { id } }",
                json!({}),
                "file",
                "c.csv",
                "first name,last name,account\nX,Y,Jane Doe\n".into(),
            )
            .await;
        let id = r["data"]["importContacts"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        s.wait_job(&admin, "importJob", &id).await;
        let r = s
            .gql(
                Some(&admin),
                "mutation { exportContacts { id } }",
                json!({}),
            )
            .await;
        let export = r["data"]["exportContacts"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let job = s.wait_job(&admin, "exportJob", &export).await;
        let download = job["downloadUrl"].as_str().unwrap().to_owned();
        assert!(
            s.get(Some(&admin), &download)
                .await
                .1
                .contains("jane.doe@example.com")
        );

        // The report gathers all of it.
        let report_q = "query($id:ID!){ personalDataReport(contactId:$id) }";
        let r = s.gql(Some(&admin), report_q, json!({"id": contact})).await;
        let rep_v = &r["data"]["personalDataReport"];
        assert_eq!(
            rep_v["contact"]["emails"][0]["value"], "jane.doe@example.com",
            "{r}"
        );
        assert_eq!(rep_v["timeline"].as_array().unwrap().len(), 2, "{r}");
        assert_eq!(rep_v["purchases"][0]["amountMinor"], 12_345, "{r}");
        assert!(!rep_v["auditTrail"].as_array().unwrap().is_empty(), "{r}");
        assert_eq!(
            rep_v["importReportLines"].as_array().unwrap().len(),
            1,
            "{r}"
        );
        assert_eq!(rep_v["exportJobs"], json!([export]), "{r}");
        // Only admins (default policy).
        let r = s.gql(Some(&rep), report_q, json!({"id": contact})).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        let erase = "mutation($id:ID!){ eraseContact(id:$id, reason:\"request of 2026-03-05\") { timelineEntries auditEntries events reportLines exportFiles } }";
        let r = s.gql(Some(&rep), erase, json!({"id": contact})).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");

        let r = s.gql(Some(&admin), erase, json!({"id": contact})).await;
        let e = &r["data"]["eraseContact"];
        assert_eq!(e["timelineEntries"], 2, "{r}");
        assert_eq!(e["reportLines"], 1, "{r}");
        assert_eq!(e["exportFiles"], json!([export]), "{r}");
        assert!(
            e["auditEntries"].as_i64().unwrap() >= 1 && e["events"].as_i64().unwrap() >= 1,
            "{r}"
        );

        // Nothing of hers is left anywhere in the database or the export file.
        for needle in ["jane.doe@example.com", "+4930123456", "Jane Doe", "CFO"] {
            for (table, column) in [
                (
                    "contacts",
                    "emails || phones || first_name || last_name || COALESCE(title, '')",
                ),
                ("activities", "title || COALESCE(body, '') || participants"),
                ("audit_log", "changes"),
                ("outbox", "payload"),
                ("job_errors", "message"),
            ] {
                let n =
                    s.db.scalar(&format!(
                        "SELECT COUNT(*) AS n FROM {table} WHERE ({column}) LIKE '%{needle}%'"
                    ))
                    .await;
                assert_eq!(n, 0, "{needle} still in {table}");
            }
        }
        let (_, file) = s.get(Some(&admin), &download).await;
        assert!(
            !file.contains("jane.doe@example.com") && file.contains("[erased]"),
            "{file}"
        );
        // The record stays as a tombstone; aggregates are intact.
        let r = s
        .gql(
            Some(&admin),
            "query($id:ID!){ contact(id:$id) { firstName lastName emails { value } consent { state }
               purchases { totalCount edges { node { amount { amountMinor } } } } timeline { totalCount } } }",
            json!({"id": contact}),
        )
        .await;
        let c = &r["data"]["contact"];
        assert_eq!(
            (
                c["firstName"].clone(),
                c["lastName"].clone(),
                c["emails"].clone()
            ),
            (json!("[erased]"), json!("[erased]"), json!([])),
            "{r}"
        );
        assert_eq!(c["consent"]["state"], "OPTED_OUT");
        assert_eq!(
            c["purchases"]["edges"][0]["node"]["amount"]["amountMinor"], 12_345,
            "{r}"
        );
        assert_eq!(c["timeline"]["totalCount"], 1);
        let r = s
        .gql(
            Some(&admin),
            "query($a:ID!){ timeline(subjectType:ACCOUNT, subjectId:$a) { edges { node { body } } } }",
            json!({"a": account}),
        )
        .await;
        assert_eq!(
            r["data"]["timeline"]["edges"][0]["node"]["body"], "Met [erased] and the team",
            "{r}"
        );
        // The audit log says that it happened and why, and nothing more.
        let r = s
        .gql(
            Some(&admin),
            "query($id:ID!){ auditLog(filter:{entityType:\"Contact\", entityId:$id}, first:1) { edges { node { action changes { field old new } } } } }",
            json!({"id": contact}),
        )
        .await;
        assert_eq!(
            r["data"]["auditLog"]["edges"][0]["node"],
            json!({"action": "erased", "changes": [{"field": "reason", "old": null, "new": "request of 2026-03-05"}]}),
            "{r}"
        );
        let r = s.gql(Some(&admin), erase, json!({"id": contact})).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        let _: Value = r;
    }
);
