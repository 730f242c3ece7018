//! Every write leaves its trace (version, audit entry, event), and the
//! customers module has no side doors: merges and purges record every row
//! they touch, custom field changes are audited, owners must be users the
//! caller may see, search and merge snapshots show only what the caller may
//! read, and internal details never reach a client.

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

async fn note(s: &TestServer, token: &str, subject_type: &str, id: &str) -> String {
    let d = ok(
        s,
        token,
        "mutation($i:CreateActivityInput!){ logActivity(input:$i) { id } }",
        json!({"i": {"kind": "NOTE", "subjectType": subject_type, "subjectId": id, "title": "Note"}}),
    )
    .await;
    d["logActivity"]["id"].as_str().unwrap().to_owned()
}

const AUDIT: &str = "query($id:ID!){ auditLog(first: 50, filter:{entityId:$id}) { nodes {
    action actorId reason changes { field old new } } } }";

/// The audit entries of a record, newest first.
async fn audit(s: &TestServer, admin: &str, id: &str) -> Vec<Value> {
    ok(s, admin, AUDIT, json!({"id": id})).await["auditLog"]["nodes"]
        .as_array()
        .unwrap()
        .clone()
}

const CONTACT: &str = "query($id:ID!){ contact(id:$id) { id accountId version } }";

both!(
    merging_accounts_records_every_moved_row_of_any_owner,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let rep1_id = s
            .create_user(&admin, "rep1@test.example", &["sales_rep"])
            .await;
        let rep2_id = s
            .create_user(&admin, "rep2@test.example", &["sales_rep"])
            .await;
        let rep1 = s.login("rep1@test.example", "user-password-1").await;
        let keep = account(&s, &rep1, json!({"name": "Acme GmbH"})).await;
        let dup = account(&s, &rep1, json!({"name": "ACME Inc"})).await;
        // Another rep's contact and a timeline entry at the duplicate: rows
        // the merging rep may not even see.
        let theirs = contact(
            &s,
            &admin,
            json!({"firstName": "Tom", "lastName": "Theirs", "accountId": dup, "ownerId": rep2_id}),
        )
        .await;
        let entry = note(&s, &admin, "ACCOUNT", &dup).await;
        let t = ok(
            &s,
            &admin,
            "mutation { createTag(input:{name:\"Partner\"}) { id } }",
            json!({}),
        )
        .await["createTag"]["id"]
            .clone();
        ok(
            &s,
            &rep1,
            "mutation($id:ID!,$t:[ID!]!){ setAccountTags(id:$id, version:1, tagIds:$t) { id } }",
            json!({"id": dup, "t": [t]}),
        )
        .await;
        let d = ok(
            &s,
            &rep1,
            "mutation($s:ID!,$o:[ID!]!){ mergeAccounts(survivorId:$s, otherIds:$o) { merge { id } } }",
            json!({"s": keep, "o": [dup]}),
        )
        .await;
        let merge_id = d["mergeAccounts"]["merge"]["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // The survivor's entry shows the tags it gained, the other's those
        // it lost.
        let entries = audit(&s, &admin, &keep).await;
        assert_eq!(entries[0]["action"], "merged", "{entries:?}");
        assert_eq!(entries[0]["reason"], format!("merge {merge_id}"));
        assert!(
            entries[0]["changes"]
                .as_array()
                .unwrap()
                .contains(&json!({"field": "tagIds", "old": [], "new": [t]})),
            "{entries:?}"
        );
        let entries = audit(&s, &admin, &dup).await;
        assert!(
            entries[0]["changes"]
                .as_array()
                .unwrap()
                .contains(&json!({"field": "tagIds", "old": [t], "new": []})),
            "{entries:?}"
        );
        // The contact moved with a new version, an audit entry that names
        // the merge and who caused it, and an event.
        let c = ok(&s, &admin, CONTACT, json!({"id": theirs})).await;
        assert_eq!(c["contact"]["accountId"], keep.as_str());
        assert_eq!(c["contact"]["version"], 2, "{c}");
        let entries = audit(&s, &admin, &theirs).await;
        assert_eq!(entries[0]["action"], "relinked", "{entries:?}");
        assert_eq!(entries[0]["actorId"], rep1_id.as_str());
        assert_eq!(entries[0]["reason"], format!("merge {merge_id}"));
        assert_eq!(
            entries[0]["changes"],
            json!([{"field": "accountId", "old": dup, "new": keep}])
        );
        let entries = audit(&s, &admin, &entry).await;
        assert_eq!(entries[0]["action"], "relinked", "{entries:?}");
        assert_eq!(
            entries[0]["changes"],
            json!([{"field": "subjectId", "old": dup, "new": keep}])
        );
        for kind in ["contact.relinked", "activity.relinked"] {
            assert_eq!(
                s.db.scalar(&format!(
                    "SELECT COUNT(*) AS n FROM outbox WHERE kind = '{kind}'"
                ))
                .await,
                1,
                "{kind}"
            );
        }
        assert_eq!(
            s.db.scalar(&format!(
                "SELECT version AS n FROM activities WHERE id = '{entry}'"
            ))
            .await,
            2
        );

        // Undo puts the contact back on its account, moves its version on
        // (never back: a client that read version 2 must not be able to
        // overwrite a later change) and records that as well.
        ok(
            &s,
            &admin,
            "mutation($id:ID!){ undoMerge(id:$id) { id } }",
            json!({"id": merge_id}),
        )
        .await;
        let c = ok(&s, &admin, CONTACT, json!({"id": theirs})).await;
        assert_eq!(c["contact"]["accountId"], dup.as_str());
        assert_eq!(c["contact"]["version"], 3, "{c}");
        let entries = audit(&s, &admin, &theirs).await;
        assert_eq!(entries[0]["action"], "relinked", "{entries:?}");
        assert_eq!(entries[0]["reason"], format!("undo of merge {merge_id}"));
        assert_eq!(
            entries[0]["changes"],
            json!([{"field": "accountId", "old": keep, "new": dup}])
        );
    }
);

both!(
    purging_an_account_records_every_detached_contact,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        s.create_user(&admin, "rep1@test.example", &["sales_rep"])
            .await;
        let rep2_id = s
            .create_user(&admin, "rep2@test.example", &["sales_rep"])
            .await;
        let rep1 = s.login("rep1@test.example", "user-password-1").await;
        let acc = account(&s, &rep1, json!({"name": "Gone Ltd"})).await;
        let theirs = contact(
            &s,
            &admin,
            json!({"firstName": "Tom", "lastName": "Theirs", "accountId": acc, "ownerId": rep2_id}),
        )
        .await;
        ok(
            &s,
            &rep1,
            "mutation($id:ID!){ deleteAccount(id:$id, version:1) { id } }",
            json!({"id": acc}),
        )
        .await;
        ok(
            &s,
            &admin,
            "mutation($id:ID!){ purgeAccount(id:$id) }",
            json!({"id": acc}),
        )
        .await;
        let c = ok(&s, &admin, CONTACT, json!({"id": theirs})).await;
        assert!(c["contact"]["accountId"].is_null(), "{c}");
        assert_eq!(c["contact"]["version"], 2, "{c}");
        let entries = audit(&s, &admin, &theirs).await;
        assert_eq!(entries[0]["action"], "detached", "{entries:?}");
        assert_eq!(entries[0]["reason"], format!("purge of account {acc}"));
        assert_eq!(
            entries[0]["changes"],
            json!([{"field": "accountId", "old": acc, "new": null}])
        );
        assert_eq!(
            s.db.scalar("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'contact.detached'")
                .await,
            1
        );
    }
);

both!(
    purges_cascade_over_every_registered_reference,
    |b| async move {
        // A purged contact's timeline goes with it and its purchases keep
        // their account but lose the contact, each recorded; a purged
        // account's timeline goes with it too.
        let s = server!(b);
        let admin = s.admin().await;
        let acc = account(&s, &admin, json!({"name": "Shop Ltd"})).await;
        let gone = account(&s, &admin, json!({"name": "Gone Ltd"})).await;
        let con = contact(
            &s,
            &admin,
            json!({"firstName": "Pia", "lastName": "Purged", "accountId": acc}),
        )
        .await;
        note(&s, &admin, "CONTACT", &con).await;
        note(&s, &admin, "ACCOUNT", &gone).await;
        let kept = note(&s, &admin, "ACCOUNT", &acc).await;
        let p = ok(
            &s,
            &admin,
            "mutation($i:CreatePurchaseInput!){ recordPurchase(input:$i) { id } }",
            json!({"i": {"accountId": acc, "contactId": con, "orderNumber": "A-1",
                "orderedAt": "2026-03-01T10:00:00Z", "amount": {"amountMinor": 1000, "currency": "EUR"},
                "idempotencyKey": "A-1"}}),
        )
        .await["recordPurchase"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (kind, id) in [("Contact", &con), ("Account", &gone)] {
            ok(
                &s,
                &admin,
                &format!("mutation($id:ID!){{ delete{kind}(id:$id, version:1) {{ id }} }}"),
                json!({"id": id}),
            )
            .await;
            ok(
                &s,
                &admin,
                &format!("mutation($id:ID!){{ purge{kind}(id:$id) }}"),
                json!({"id": id}),
            )
            .await;
        }
        let left = s.db.scalar("SELECT COUNT(*) AS n FROM activities").await;
        assert_eq!(left, 1, "only the note on the live account stays");
        let about_kept =
            s.db.scalar(&format!(
                "SELECT COUNT(*) AS n FROM activities WHERE id = '{kept}'"
            ))
            .await;
        assert_eq!(about_kept, 1);
        let entries = audit(&s, &admin, &p).await;
        assert_eq!(entries[0]["action"], "detached", "{entries:?}");
        assert_eq!(entries[0]["reason"], format!("purge of contact {con}"));
        assert_eq!(
            entries[0]["changes"],
            json!([{"field": "contactId", "old": con, "new": null}])
        );
    }
);

both!(
    custom_field_changes_are_audited_and_sent_as_allowed,
    |b| async move {
        let s = TestServer::start_with_policy(
            b,
            "p, marketing, Account.custom.margin, read, deny",
            &[],
        )
        .await;
        let admin = s.admin().await;
        s.create_user(&admin, "mk@test.example", &["marketing"])
            .await;
        let mk = s.login("mk@test.example", "user-password-1").await;
        for key in ["region", "margin"] {
            ok(
                &s,
                &admin,
                "mutation($i:CreateCustomFieldInput!){ createCustomField(input:$i) { id } }",
                json!({"i": {"entityType": "Account", "key": key, "label": key, "type": "TEXT"}}),
            )
            .await;
        }
        let acc = account(
            &s,
            &admin,
            json!({"name": "Acme", "custom": {"region": "EMEA", "margin": "30%"}}),
        )
        .await;
        let created = audit(&s, &admin, &acc).await;
        assert!(
            created[0]["changes"]
                .as_array()
                .unwrap()
                .contains(&json!({"field": "custom.region", "old": null, "new": "EMEA"})),
            "{created:?}"
        );
        let sub = "subscription($a:String){ customerEvents(after:$a) { kind payload } }";
        let head = s.db.head().await;
        let mut mk_ws = Ws::init(s.addr(), &mk).await;
        mk_ws.subscribe("1", sub, json!({"a": head})).await;
        ok(
            &s,
            &admin,
            "mutation($i:UpdateAccountInput!){ updateAccount(input:$i) { id } }",
            json!({"i": {"id": acc, "version": 1, "custom": {"region": "APAC", "margin": "35%"}}}),
        )
        .await;
        let entries = audit(&s, &admin, &acc).await;
        assert_eq!(entries[0]["action"], "updated");
        assert_eq!(
            entries[0]["changes"],
            json!([{"field": "custom.margin", "old": "30%", "new": "35%"},
               {"field": "custom.region", "old": "EMEA", "new": "APAC"}])
        );
        assert!(entries[0]["reason"].is_null());
        // Subscribers get the keys they may read, never a denied one.
        let m = mk_ws.recv().await.unwrap();
        let e = &m["payload"]["data"]["customerEvents"];
        assert_eq!(e["kind"], "account.updated", "{m}");
        assert_eq!(
            e["payload"]["changed"],
            json!({"custom.region": "APAC"}),
            "{m}"
        );
    }
);

both!(
    contact_search_does_not_match_accounts_the_caller_cannot_see,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        s.create_user(&admin, "rep1@test.example", &["sales_rep"])
            .await;
        let rep2_id = s
            .create_user(&admin, "rep2@test.example", &["sales_rep"])
            .await;
        let rep1 = s.login("rep1@test.example", "user-password-1").await;
        let rep2 = s.login("rep2@test.example", "user-password-1").await;
        let secret = account(&s, &rep1, json!({"name": "Zebracorp Secret Deal"})).await;
        // rep2's own contact works at rep1's account, which rep2 cannot see.
        contact(
            &s,
            &admin,
            json!({"firstName": "Ann", "lastName": "Lee", "accountId": secret, "ownerId": rep2_id}),
        )
        .await;
        let mine = account(&s, &rep2, json!({"name": "Yakfarm"})).await;
        contact(
            &s,
            &rep2,
            json!({"firstName": "Bo", "lastName": "Berg", "accountId": mine}),
        )
        .await;
        let q =
            "query($q:String!){ contacts(filter:{search:$q}) { totalCount nodes { lastName } } }";
        let d = ok(&s, &rep2, q, json!({"q": "zebracorp"})).await;
        assert_eq!(d["contacts"]["totalCount"], 0, "{d}");
        // The names of accounts the caller may read still match.
        let d = ok(&s, &rep2, q, json!({"q": "yakfarm"})).await;
        assert_eq!(d["contacts"]["nodes"], json!([{"lastName": "Berg"}]), "{d}");
        let d = ok(&s, &admin, q, json!({"q": "zebracorp"})).await;
        assert_eq!(d["contacts"]["nodes"], json!([{"lastName": "Lee"}]), "{d}");
    }
);

both!(owners_must_be_users_the_caller_may_see, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    s.create_user(&admin, "rep1@test.example", &["sales_rep"])
        .await;
    let rep2_id = s
        .create_user(&admin, "rep2@test.example", &["sales_rep"])
        .await;
    let rep1 = s.login("rep1@test.example", "user-password-1").await;
    let mine = contact(&s, &rep1, json!({"firstName": "Al", "lastName": "Mine"})).await;
    let mine_acc = account(&s, &rep1, json!({"name": "Mine Ltd"})).await;
    let before = (s.db.count("contacts").await, s.db.count("accounts").await);
    // Another rep, or a user that does not exist: the same refusal.
    let nobody = "usr_0190b5a0-0000-7000-8000-000000000000";
    let mut messages = Vec::new();
    for owner in [rep2_id.as_str(), nobody] {
        for (q, vars) in [
            (
                "mutation($i:CreateContactInput!){ createContact(input:$i) { id } }",
                json!({"i": {"firstName": "X", "lastName": "Planted", "ownerId": owner}}),
            ),
            (
                "mutation($i:CreateAccountInput!){ createAccount(input:$i) { id } }",
                json!({"i": {"name": "Planted", "ownerId": owner}}),
            ),
            (
                "mutation($i:UpdateContactInput!){ updateContact(input:$i) { id } }",
                json!({"i": {"id": mine, "version": 1, "ownerId": owner}}),
            ),
            (
                "mutation($i:UpdateAccountInput!){ updateAccount(input:$i) { id } }",
                json!({"i": {"id": mine_acc, "version": 1, "ownerId": owner}}),
            ),
        ] {
            let r = s.gql(Some(&rep1), q, vars).await;
            assert_eq!(code(&r), "VALIDATION", "{q}: {r}");
            assert_eq!(
                r["errors"][0]["extensions"]["fields"][0]["field"], "ownerId",
                "{r}"
            );
            messages.push(r["errors"][0]["message"].clone());
        }
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(
        (s.db.count("contacts").await, s.db.count("accounts").await),
        before
    );
    let c = ok(&s, &rep1, CONTACT, json!({"id": mine})).await;
    assert_eq!(c["contact"]["version"], 1);
    // Naming oneself is fine; an admin may give records to anyone.
    let me = ok(&s, &rep1, "{ me { id } }", json!({})).await["me"]["id"].clone();
    contact(
        &s,
        &rep1,
        json!({"firstName": "Y", "lastName": "Mine", "ownerId": me}),
    )
    .await;
    contact(
        &s,
        &admin,
        json!({"firstName": "Z", "lastName": "Given", "ownerId": rep2_id}),
    )
    .await;
});

both!(
    merge_snapshots_and_custom_filters_need_read_on_the_field,
    |b| async move {
        let rules = "p, sales_rep, Account.creditLimit, read, deny\np, sales_rep, Account.custom.margin, read, deny";
        let s = TestServer::start_with_policy(b, rules, &[]).await;
        let admin = s.admin().await;
        let rep_id = s
            .create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        for key in ["margin", "region"] {
            ok(
                &s,
                &admin,
                "mutation($i:CreateCustomFieldInput!){ createCustomField(input:$i) { id } }",
                json!({"i": {"entityType": "Account", "key": key, "label": key, "type": "TEXT"}}),
            )
            .await;
        }
        let mut ids = Vec::new();
        for name in ["Acme GmbH", "ACME Inc"] {
            ids.push(
                account(
                    &s,
                    &admin,
                    json!({"name": name, "ownerId": rep_id,
                           "creditLimit": {"amountMinor": 500000, "currency": "EUR"},
                           "custom": {"margin": "31%", "region": "EMEA"}}),
                )
                .await,
            );
        }
        // Filtering or sorting by a denied custom key is refused.
        let r = s
            .gql(
                Some(&rep),
                "{ accounts(filter:{custom:[{key:\"margin\", equals:\"31%\"}]}) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        let d = ok(
            &s,
            &rep,
            "mutation($s:ID!,$o:[ID!]!){ mergeAccounts(survivorId:$s, otherIds:$o) { merge { snapshot } } }",
            json!({"s": ids[0], "o": [ids[1]]}),
        )
        .await;
        let snapshot = d["mergeAccounts"]["merge"]["snapshot"].clone();
        let rows = snapshot.as_array().unwrap();
        assert_eq!(rows.len(), 2, "{snapshot}");
        for row in rows {
            assert!(row["name"].as_str().is_some(), "{row}");
            for hidden in ["credit_limit", "credit_currency"] {
                assert!(row.get(hidden).is_none(), "{hidden} in {row}");
            }
            let custom: Value = serde_json::from_str(row["custom"].as_str().unwrap()).unwrap();
            assert_eq!(custom, json!({"region": "EMEA"}), "{row}");
        }
        // The admin sees the whole snapshot.
        let d = ok(&s, &admin, "{ merges { nodes { snapshot } } }", json!({})).await;
        let row = &d["merges"]["nodes"][0]["snapshot"][0];
        assert_eq!(row["credit_limit"], 500000, "{row}");
    }
);

both!(
    no_file_paths_no_silent_defaults_and_one_error_mapping,
    |b| async move {
        // A policy directory (not the built-in policy), as in production.
        let s = TestServer::start_with_policy(b, "", &[]).await;
        let admin = s.admin().await;
        // policyStatus names the kind of source, not a server path.
        let d = ok(&s, &admin, "{ policyStatus { source } }", json!({})).await;
        assert_eq!(d["policyStatus"]["source"], "file", "{d}");
        // A policy file that cannot be read is reported without its path.
        std::fs::remove_file(s.policy_dir().join("policy.csv")).unwrap();
        let mut reported = None;
        for _ in 0..100 {
            let r = ok(&s, &admin, "{ policyStatus { lastError } }", json!({})).await;
            if let Some(e) = r["policyStatus"]["lastError"].as_str() {
                reported = Some(e.to_owned());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let reported = reported.expect("the unreadable policy is reported");
        assert!(reported.contains("policy.csv"), "{reported}");
        let dir = s.policy_dir().display().to_string();
        assert!(!reported.contains(&dir), "{reported}");

        // An unknown stage in the database is corruption: INTERNAL, not
        // a made-up PROSPECT.
        let acc = account(&s, &admin, json!({"name": "Corrupt"})).await;
        s.db.exec(&format!(
            "UPDATE accounts SET lifecycle_stage = 'bogus' WHERE id = '{acc}'"
        ))
        .await;
        let r = s
            .gql(
                Some(&admin),
                "query($id:ID!){ account(id:$id) { name lifecycleStage } }",
                json!({"id": acc}),
            )
            .await;
        assert_eq!(code(&r), "INTERNAL", "{r}");
        assert!(!r.to_string().contains("bogus"), "{r}");
        let c = contact(&s, &admin, json!({"firstName": "C", "lastName": "Orrupt"})).await;
        s.db.exec(&format!(
            "UPDATE contacts SET consent_state = 'maybe' WHERE id = '{c}'"
        ))
        .await;
        let r = s
            .gql(
                Some(&admin),
                "query($id:ID!){ contact(id:$id) { consent { state } } }",
                json!({"id": c}),
            )
            .await;
        assert_eq!(code(&r), "INTERNAL", "{r}");
        let d = ok(
            &s,
            &admin,
            "mutation($i:CreateActivityInput!){ logActivity(input:$i) { id } }",
            json!({"i": {"kind": "TASK", "subjectType": "ACCOUNT", "subjectId": acc,
                         "title": "Call back", "dueAt": "2030-01-01T09:00:00Z"}}),
        )
        .await;
        let task = d["logActivity"]["id"].as_str().unwrap().to_owned();
        let tasks = "{ myTasks { id subjectType } }";
        let d = ok(&s, &admin, tasks, json!({})).await;
        assert_eq!(d["myTasks"][0]["subjectType"], "ACCOUNT", "{d}");
        s.db.exec(&format!(
            "UPDATE activities SET subject_type = 'Spaceship' WHERE id = '{task}'"
        ))
        .await;
        let r = s.gql(Some(&admin), tasks, json!({})).await;
        assert_eq!(code(&r), "INTERNAL", "{r}");

        // A download failing inside is a 500 INTERNAL with nothing of the
        // cause in it, mapped like any GraphQL error.
        let r = ok(&s, &admin, "mutation { exportAccounts { id } }", json!({})).await;
        let id = r["exportAccounts"]["id"].as_str().unwrap().to_owned();
        s.wait_job(&admin, "exportJob", &id).await;
        s.db.exec("DROP TABLE job_errors").await;
        let (status, body) = s.get(Some(&admin), &format!("/jobs/{id}/errors.csv")).await;
        assert_eq!(status, 500, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL");
        assert!(!body.to_string().contains("job_errors"), "{body}");
        let (status, body) = s.get(Some(&admin), "/jobs/not-a-job/download").await;
        assert_eq!(status, 400, "{body}");
    }
);
