//! Duplicate candidates, merging contacts and accounts, and undoing merges.

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

async fn contact(
    s: &TestServer,
    token: &str,
    first: &str,
    last: &str,
    emails: &[&str],
    phones: &[&str],
    account: Option<&str>,
) -> String {
    let emails: Vec<Value> = emails
        .iter()
        .map(|e| json!({"kind": "WORK", "value": e}))
        .collect();
    let phones: Vec<Value> = phones
        .iter()
        .map(|p| json!({"kind": "MOBILE", "value": p}))
        .collect();
    let d = ok(
        s,
        token,
        "mutation($i:CreateContactInput!){ createContact(input:$i) { id } }",
        json!({"i": {"firstName": first, "lastName": last, "emails": emails, "phones": phones, "accountId": account}}),
    )
    .await;
    d["createContact"]["id"].as_str().unwrap().to_owned()
}

async fn tag(s: &TestServer, admin: &str, name: &str) -> String {
    let d = ok(
        s,
        admin,
        "mutation($n:String!){ createTag(input:{name:$n}) { id } }",
        json!({"n": name}),
    )
    .await;
    d["createTag"]["id"].as_str().unwrap().to_owned()
}

async fn note(s: &TestServer, token: &str, subject_type: &str, id: &str, title: &str) {
    ok(
        s,
        token,
        "mutation($i:CreateActivityInput!){ logActivity(input:$i) { id } }",
        json!({"i": {"kind": "NOTE", "subjectType": subject_type, "subjectId": id, "title": title}}),
    )
    .await;
}

async fn purchase(s: &TestServer, admin: &str, account: &str, contact: Option<&str>, key: &str) {
    ok(
        s,
        admin,
        "mutation($i:CreatePurchaseInput!){ recordPurchase(input:$i) { id } }",
        json!({"i": {"accountId": account, "contactId": contact, "orderNumber": key, "orderedAt": "2026-03-01T10:00:00Z",
                     "amount": {"amountMinor": 1000, "currency": "EUR"}, "idempotencyKey": key}}),
    )
    .await;
}

const CONTACT_VIEW: &str = "query($id:ID!){ contact(id:$id) { id firstName lastName title
    emails { kind value } phones { kind value } preferredChannel language accountId ownerId
    consent { state source } createdAt updatedAt version deletedAt tags { id name }
    timeline(first: 50) { totalCount edges { node { id title } } }
    purchases(first: 50) { totalCount edges { node { id orderNumber contactId accountId } } } } }";

const ACCOUNT_VIEW: &str = "query($id:ID!){ account(id:$id) { id name industry website phone
    lifecycleStage ownerId createdAt updatedAt version deletedAt tags { id name }
    contacts(first: 50) { totalCount edges { node { id accountId version } } }
    timeline(first: 50) { totalCount edges { node { id title } } }
    purchases(first: 50) { totalCount edges { node { id orderNumber accountId } } }
    stageHistory { toStage } } }";

/// A record's view without the fields a merge and its undo move on: the
/// record's and its contacts' versions (every write moves a version on,
/// undo included) and its update time.
fn stable(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("version");
    o.remove("updatedAt");
    if let Some(edges) = o
        .get_mut("contacts")
        .and_then(|c| c.get_mut("edges"))
        .and_then(|e| e.as_array_mut())
    {
        for e in edges {
            if let Some(n) = e.get_mut("node").and_then(|n| n.as_object_mut()) {
                n.remove("version");
            }
        }
    }
    v
}

async fn view(s: &TestServer, token: &str, q: &str, field: &str, id: &str) -> Value {
    ok(s, token, q, json!({"id": id})).await[field].clone()
}

/// Row counts of every table a merge touches.
async fn counts(s: &TestServer) -> Vec<i64> {
    let mut out = Vec::new();
    for t in [
        "contacts WHERE deleted_at IS NULL",
        "accounts WHERE deleted_at IS NULL",
        "activities",
        "purchases",
        "contact_tags",
        "account_tags",
        "merges",
    ] {
        out.push(s.db.count(t).await);
    }
    out
}

const CONTACT_DUPS: &str =
    "query($m:Float){ contactDuplicates(minScore:$m) { reason reasons score contacts { id } } }";

fn pairs(d: &Value, field: &str, key: &str) -> Vec<(Vec<String>, String, f64)> {
    d[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let ids = c[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].as_str().unwrap().to_owned())
                .collect();
            (
                ids,
                c["reason"].as_str().unwrap().to_owned(),
                c["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

both!(
    duplicates_are_found_with_reasons_within_scope,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        s.create_user(&admin, "rep1@test.example", &["sales_rep"])
            .await;
        s.create_user(&admin, "rep2@test.example", &["sales_rep"])
            .await;
        let rep1 = s.login("rep1@test.example", "user-password-1").await;
        let rep2 = s.login("rep2@test.example", "user-password-1").await;
        let acme = account(&s, &rep1, json!({"name": "Acme GmbH", "website": "https://www.acme.com/", "phone": "+4930999999"})).await;
        let c1 = contact(
            &s,
            &rep1,
            "Jane",
            "Doe",
            &["jane@acme.com"],
            &["+49 30 1111111"],
            Some(&acme),
        )
        .await;
        let c2 = contact(&s, &rep1, "Janie", "Other", &["JANE@acme.com"], &[], None).await;
        let c3 = contact(
            &s,
            &rep1,
            "Max",
            "Mustermann",
            &[],
            &["0049 30 1111111"],
            None,
        )
        .await;
        let c4 = contact(&s, &rep1, "J.", "doe", &[], &[], Some(&acme)).await;
        contact(&s, &rep1, "Zed", "Zulu", &["zed@zulu.example"], &[], None).await;
        let c6 = contact(
            &s,
            &rep2,
            "Jane",
            "Elsewhere",
            &["jane@acme.com"],
            &[],
            None,
        )
        .await;

        // A rep sees the pairs among their own contacts, best first.
        let d = ok(&s, &rep1, CONTACT_DUPS, json!({"m": 0.0})).await;
        assert_eq!(
            pairs(&d, "contactDuplicates", "contacts"),
            vec![
                (vec![c1.clone(), c2.clone()], "SAME_EMAIL".into(), 0.95),
                (vec![c1.clone(), c3.clone()], "SAME_PHONE".into(), 0.8),
                (vec![c1.clone(), c4.clone()], "SIMILAR_NAME".into(), 0.6),
            ],
            "{d}"
        );
        let d = ok(&s, &rep1, CONTACT_DUPS, json!({"m": 0.7})).await;
        assert_eq!(d["contactDuplicates"].as_array().unwrap().len(), 2, "{d}");
        // The default threshold is 0.5; the other rep's contact is not theirs.
        let d = ok(&s, &rep1, "{ contactDuplicates { score } }", json!({})).await;
        assert_eq!(d["contactDuplicates"].as_array().unwrap().len(), 3, "{d}");
        let d = ok(&s, &rep2, CONTACT_DUPS, json!({"m": 0.0})).await;
        assert_eq!(d["contactDuplicates"], json!([]), "{d}");
        // The admin sees every pair, including across owners.
        let d = ok(&s, &admin, CONTACT_DUPS, json!({"m": 0.0})).await;
        let all = pairs(&d, "contactDuplicates", "contacts");
        assert_eq!(all.len(), 5, "{d}");
        assert!(
            all.iter()
                .any(|(ids, r, _)| ids == &vec![c1.clone(), c6.clone()] && r == "SAME_EMAIL")
        );
        let r = s
            .gql(
                Some(&rep1),
                "{ contactDuplicates(first: 0) { score } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");

        // Accounts: same name but for legal form and punctuation, same domain;
        // same phone in another notation.
        let acme2 = account(
            &s,
            &rep1,
            json!({"name": "ACME, Inc.", "website": "acme.com/contact"}),
        )
        .await;
        let o1 = account(
            &s,
            &rep1,
            json!({"name": "Other Ltd", "phone": "+14155550100"}),
        )
        .await;
        let o2 = account(
            &s,
            &rep1,
            json!({"name": "Different", "phone": "(415) 555-0100"}),
        )
        .await;
        account(&s, &rep2, json!({"name": "Acme AG"})).await;
        let d = ok(
            &s,
            &rep1,
            "{ accountDuplicates { reason reasons score accounts { id } } }",
            json!({}),
        )
        .await;
        assert_eq!(
            pairs(&d, "accountDuplicates", "accounts"),
            vec![
                (
                    vec![acme.clone(), acme2.clone()],
                    "SAME_DOMAIN".into(),
                    0.94
                ),
                (vec![o1.clone(), o2.clone()], "SAME_PHONE".into(), 0.8),
            ],
            "{d}"
        );
        assert_eq!(
            d["accountDuplicates"][0]["reasons"],
            json!(["SAME_DOMAIN", "SIMILAR_NAME"])
        );
        let d = ok(
            &s,
            &admin,
            "{ accountDuplicates { accounts { name } } }",
            json!({}),
        )
        .await;
        assert_eq!(d["accountDuplicates"].as_array().unwrap().len(), 4, "{d}");
        // Marketing may look but not merge.
        s.create_user(&admin, "mkt@test.example", &["marketing"])
            .await;
        let mkt = s.login("mkt@test.example", "user-password-1").await;
        let d = ok(&s, &mkt, "{ contactDuplicates { score } }", json!({})).await;
        assert_eq!(d["contactDuplicates"].as_array().unwrap().len(), 5, "{d}");
        let r = s
        .gql(Some(&mkt), "mutation($s:ID!,$o:[ID!]!){ mergeContacts(survivorId:$s, otherIds:$o) { contact { id } } }", json!({"s": c1, "o": [c2]}))
        .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
    }
);

const MERGE_CONTACTS: &str =
    "mutation($s:ID!,$o:[ID!]!){ mergeContacts(survivorId:$s, otherIds:$o) {
    contact { id version emails { value } phones { value } tags { name } }
    merge { id entityType survivorId mergedIds mergedBy undoneAt moved } } }";
const UNDO: &str = "mutation($id:ID!){ undoMerge(id:$id) { id undoneAt undoneBy } }";

both!(
    merging_contacts_moves_links_and_undo_restores_them,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let rep_id = s
            .create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        let acme = account(&s, &rep, json!({"name": "Acme"})).await;
        let keep = contact(
            &s,
            &rep,
            "Jane",
            "Doe",
            &["jane@acme.com"],
            &["+4930111111"],
            Some(&acme),
        )
        .await;
        let dup = contact(
            &s,
            &rep,
            "Jane",
            "Doe",
            &["jane.doe@home.example", "jane@acme.com"],
            &["+4930222222"],
            Some(&acme),
        )
        .await;
        let (vip, gold) = (tag(&s, &admin, "VIP").await, tag(&s, &admin, "Gold").await);
        let set_tags =
            "mutation($id:ID!,$t:[ID!]!){ setContactTags(id:$id, version:1, tagIds:$t) { id } }";
        ok(&s, &rep, set_tags, json!({"id": keep, "t": [vip]})).await;
        ok(&s, &rep, set_tags, json!({"id": dup, "t": [vip, gold]})).await;
        note(&s, &rep, "CONTACT", &keep, "Call with keep").await;
        note(&s, &rep, "CONTACT", &dup, "Call with dup").await;
        note(&s, &rep, "CONTACT", &dup, "Mail to dup").await;
        purchase(&s, &admin, &acme, Some(&dup), "ORD-1").await;
        purchase(&s, &admin, &acme, Some(&keep), "ORD-2").await;

        let keep_before = view(&s, &rep, CONTACT_VIEW, "contact", &keep).await;
        let dup_before = view(&s, &rep, CONTACT_VIEW, "contact", &dup).await;
        let counts_before = counts(&s).await;

        let d = ok(&s, &rep, MERGE_CONTACTS, json!({"s": keep, "o": [dup]})).await;
        let m = &d["mergeContacts"];
        let merge_id = m["merge"]["id"].as_str().unwrap().to_owned();
        assert!(merge_id.starts_with("mrg_"));
        assert_eq!(m["merge"]["entityType"], "CONTACT");
        assert_eq!(m["merge"]["mergedIds"], json!([dup]));
        assert_eq!(m["merge"]["mergedBy"], rep_id);
        assert_eq!(
            m["contact"]["version"],
            keep_before["version"].as_i64().unwrap() + 1
        );
        // The survivor keeps its fields and gains the other's points once each.
        assert_eq!(
            m["contact"]["emails"],
            json!([{"value": "jane@acme.com"}, {"value": "jane.doe@home.example"}])
        );
        assert_eq!(
            m["contact"]["phones"],
            json!([{"value": "+4930111111"}, {"value": "+4930222222"}])
        );
        assert_eq!(
            m["contact"]["tags"],
            json!([{"name": "Gold"}, {"name": "VIP"}])
        );
        let merged = view(&s, &rep, CONTACT_VIEW, "contact", &keep).await;
        assert_eq!(merged["timeline"]["totalCount"], 3, "{merged}");
        assert_eq!(merged["purchases"]["totalCount"], 2, "{merged}");
        assert!(
            merged["purchases"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["node"]["contactId"] == keep.as_str())
        );
        let r = s.gql(Some(&rep), CONTACT_VIEW, json!({"id": dup})).await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        assert_eq!(
            s.db.scalar(&format!(
                "SELECT COUNT(*) AS n FROM contacts WHERE id = '{dup}' AND deleted_at IS NOT NULL"
            ))
            .await,
            1
        );
        assert_eq!(
            s.db.scalar("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'merged'")
                .await,
            2
        );
        assert_eq!(
            s.db.scalar("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'contact.merged'")
                .await,
            2
        );
        // Whoever merged reads the record; no duplicates remain.
        let d = ok(
            &s,
            &rep,
            "{ merges { totalCount edges { node { id survivorId snapshot } } } }",
            json!({}),
        )
        .await;
        assert_eq!(d["merges"]["totalCount"], 1, "{d}");
        assert_eq!(
            d["merges"]["edges"][0]["node"]["snapshot"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let d = ok(&s, &rep, "{ contactDuplicates { score } }", json!({})).await;
        assert_eq!(d["contactDuplicates"], json!([]));

        // Only admins undo.
        let r = s.gql(Some(&rep), UNDO, json!({"id": merge_id})).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        let d = ok(&s, &admin, UNDO, json!({"id": merge_id})).await;
        assert!(d["undoMerge"]["undoneAt"].is_string(), "{d}");
        let keep_after = view(&s, &rep, CONTACT_VIEW, "contact", &keep).await;
        let dup_after = view(&s, &rep, CONTACT_VIEW, "contact", &dup).await;
        assert_eq!(stable(keep_after.clone()), stable(keep_before.clone()));
        assert_eq!(stable(dup_after.clone()), stable(dup_before.clone()));
        // Versions move on (merge, then undo) so stale writes still conflict.
        assert_eq!(
            keep_after["version"],
            keep_before["version"].as_i64().unwrap() + 2
        );
        assert_eq!(
            dup_after["version"],
            dup_before["version"].as_i64().unwrap() + 2
        );
        assert_eq!(counts(&s).await[..6], counts_before[..6]);
        assert_eq!(
            s.db.scalar("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'contact.unmerged'")
                .await,
            2
        );
        // A second undo is a conflict.
        let r = s.gql(Some(&admin), UNDO, json!({"id": merge_id})).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
    }
);

both!(
    merge_outside_scope_is_not_found_and_unsafe_undo_conflicts,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        s.create_user(&admin, "rep1@test.example", &["sales_rep"])
            .await;
        s.create_user(&admin, "rep2@test.example", &["sales_rep"])
            .await;
        let rep1 = s.login("rep1@test.example", "user-password-1").await;
        let rep2 = s.login("rep2@test.example", "user-password-1").await;
        let mine = contact(&s, &rep1, "Ann", "Lee", &["ann@lee.example"], &[], None).await;
        let mine2 = contact(&s, &rep1, "Ann", "Lee", &["ann@lee.example"], &[], None).await;
        let theirs = contact(&s, &rep2, "Ann", "Lee", &["ann@lee.example"], &[], None).await;
        let acc1 = account(&s, &rep1, json!({"name": "Lee Ltd"})).await;
        let acc2 = account(&s, &rep2, json!({"name": "Lee Limited"})).await;
        let before = counts(&s).await;
        let audit = s.db.count("audit_log").await;
        for (sv, other) in [(&mine, &theirs), (&theirs, &mine)] {
            let r = s
                .gql(Some(&rep1), MERGE_CONTACTS, json!({"s": sv, "o": [other]}))
                .await;
            assert_eq!(code(&r), "NOT_FOUND", "{r}");
        }
        // One record out of scope spoils the whole merge.
        let r = s
            .gql(
                Some(&rep1),
                MERGE_CONTACTS,
                json!({"s": mine, "o": [mine2, theirs]}),
            )
            .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        let r = s
        .gql(Some(&rep1), "mutation($s:ID!,$o:[ID!]!){ mergeAccounts(survivorId:$s, otherIds:$o) { account { id } } }", json!({"s": acc1, "o": [acc2]}))
        .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        assert_eq!(counts(&s).await, before);
        assert_eq!(s.db.count("audit_log").await, audit);
        for id in [&mine, &mine2] {
            assert_eq!(
                view(&s, &rep1, CONTACT_VIEW, "contact", id).await["version"],
                1
            );
        }
        assert_eq!(
            view(&s, &rep2, CONTACT_VIEW, "contact", &theirs).await["version"],
            1
        );
        let r = s
            .gql(Some(&rep1), MERGE_CONTACTS, json!({"s": mine, "o": [mine]}))
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let r = s
            .gql(Some(&rep1), MERGE_CONTACTS, json!({"s": mine, "o": []}))
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        // Another rep cannot see the merge record.
        let d = ok(&s, &rep1, MERGE_CONTACTS, json!({"s": mine, "o": [mine2]})).await;
        let merge_id = d["mergeContacts"]["merge"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = s
            .gql(
                Some(&rep2),
                "query($id:ID!){ merge(id:$id) { id } }",
                json!({"id": merge_id}),
            )
            .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        // Once the survivor is edited, undo would lose that edit: refused.
        let v = d["mergeContacts"]["contact"]["version"].as_i64().unwrap();
        ok(
            &s,
            &rep1,
            "mutation($i:UpdateContactInput!){ updateContact(input:$i) { id } }",
            json!({"i": {"id": mine, "version": v, "title": "CTO"}}),
        )
        .await;
        let r = s.gql(Some(&admin), UNDO, json!({"id": merge_id})).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        let d = ok(
            &s,
            &admin,
            "query($id:ID!){ merge(id:$id) { undoneAt } }",
            json!({"id": merge_id}),
        )
        .await;
        assert!(d["merge"]["undoneAt"].is_null());
        let r = s.gql(Some(&rep1), CONTACT_VIEW, json!({"id": mine2})).await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        // Past merge-undo-days, or with a merged record purged, undo is refused.
        let merge_of = |d: Value| {
            d["mergeContacts"]["merge"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let old1 = contact(&s, &rep1, "Bo", "Old", &["bo@old.example"], &[], None).await;
        let old2 = contact(&s, &rep1, "Bo", "Old", &["bo@old.example"], &[], None).await;
        let old = merge_of(ok(&s, &rep1, MERGE_CONTACTS, json!({"s": old1, "o": [old2]})).await);
        s.db.exec(&format!(
            "UPDATE merges SET merged_at = '2000-01-01 00:00:00' WHERE id = '{old}'"
        ))
        .await;
        let r = s.gql(Some(&admin), UNDO, json!({"id": old})).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        assert!(
            r["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("merge-undo-days"),
            "{r}"
        );
        let p1 = contact(
            &s,
            &rep1,
            "Pat",
            "Purged",
            &["pat@purged.example"],
            &[],
            None,
        )
        .await;
        let p2 = contact(
            &s,
            &rep1,
            "Pat",
            "Purged",
            &["pat@purged.example"],
            &[],
            None,
        )
        .await;
        let purged = merge_of(ok(&s, &rep1, MERGE_CONTACTS, json!({"s": p1, "o": [p2]})).await);
        ok(
            &s,
            &admin,
            "mutation($id:ID!){ purgeContact(id:$id) }",
            json!({"id": p2}),
        )
        .await;
        let r = s.gql(Some(&admin), UNDO, json!({"id": purged})).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
    }
);

both!(
    merging_accounts_moves_contacts_timeline_purchases_and_back,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        s.create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        let keep = account(
            &s,
            &rep,
            json!({"name": "Acme GmbH", "website": "acme.com"}),
        )
        .await;
        let dup = account(&s, &rep, json!({"name": "ACME Inc", "industry": "Tools"})).await;
        let k1 = contact(&s, &rep, "Kim", "Keep", &[], &[], Some(&keep)).await;
        let d1 = contact(&s, &rep, "Dan", "Dup", &[], &[], Some(&dup)).await;
        let d2 = contact(&s, &rep, "Dora", "Dup", &[], &[], Some(&dup)).await;
        let t = tag(&s, &admin, "Partner").await;
        ok(
            &s,
            &rep,
            "mutation($id:ID!,$t:[ID!]!){ setAccountTags(id:$id, version:1, tagIds:$t) { id } }",
            json!({"id": dup, "t": [t]}),
        )
        .await;
        note(&s, &rep, "ACCOUNT", &keep, "Keep meeting").await;
        note(&s, &rep, "ACCOUNT", &dup, "Dup meeting").await;
        purchase(&s, &admin, &dup, Some(&d1), "ORD-9").await;
        purchase(&s, &admin, &keep, None, "ORD-8").await;
        let keep_before = view(&s, &rep, ACCOUNT_VIEW, "account", &keep).await;
        let dup_before = view(&s, &rep, ACCOUNT_VIEW, "account", &dup).await;
        let counts_before = counts(&s).await;

        let d = ok(
        &s,
        &rep,
        "mutation($s:ID!,$o:[ID!]!){ mergeAccounts(survivorId:$s, otherIds:$o) { account { id name industry version } merge { id entityType moved } } }",
        json!({"s": keep, "o": [dup]}),
    )
    .await;
        let merge_id = d["mergeAccounts"]["merge"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // The survivor keeps its own fields.
        assert_eq!(d["mergeAccounts"]["account"]["name"], "Acme GmbH");
        assert!(d["mergeAccounts"]["account"]["industry"].is_null());
        let merged = view(&s, &rep, ACCOUNT_VIEW, "account", &keep).await;
        let ids = |v: &Value, f: &str| -> Vec<String> {
            let mut out: Vec<String> = v[f]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
                .collect();
            out.sort();
            out
        };
        let mut want = vec![k1.clone(), d1.clone(), d2.clone()];
        want.sort();
        assert_eq!(ids(&merged, "contacts"), want, "{merged}");
        assert_eq!(merged["timeline"]["totalCount"], 2);
        assert_eq!(merged["purchases"]["totalCount"], 2);
        assert_eq!(merged["tags"], json!([{"id": t, "name": "Partner"}]));
        let r = s.gql(Some(&rep), ACCOUNT_VIEW, json!({"id": dup})).await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        let c = view(&s, &rep, CONTACT_VIEW, "contact", &d1).await;
        assert_eq!(c["accountId"], keep.as_str());
        assert_eq!(
            c["purchases"]["edges"][0]["node"]["accountId"],
            keep.as_str()
        );

        ok(&s, &admin, UNDO, json!({"id": merge_id})).await;
        let keep_after = view(&s, &rep, ACCOUNT_VIEW, "account", &keep).await;
        let dup_after = view(&s, &rep, ACCOUNT_VIEW, "account", &dup).await;
        assert_eq!(stable(keep_after), stable(keep_before));
        assert_eq!(stable(dup_after), stable(dup_before));
        assert_eq!(counts(&s).await[..6], counts_before[..6]);
        let r = s.gql(Some(&admin), UNDO, json!({"id": merge_id})).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
    }
);
