//! The customers module decides no access itself: owners set by imports,
//! tasks, purchases, the personal data report, tags, team filters and
//! exports all follow the policy through core, as an attacker would probe
//! them.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const IMPORT_CONTACTS: &str =
    "mutation($file:Upload!,$o:ImportOptions){ importContacts(file:$file, options:$o) { id } }";
const LOG: &str = "mutation($i:CreateActivityInput!){ logActivity(input:$i) { id version } }";
const COMPLETE: &str =
    "mutation($id:ID!,$v:Int!){ completeTask(id:$id, version:$v) { completedAt } }";

macro_rules! server_with_policy {
    ($b:expr, $extra:expr) => {
        TestServer::start_with_policy($b, $extra, &[]).await
    };
}

async fn account(s: &TestServer, admin: &str, owner: &str, name: &str) -> String {
    let r = s
        .gql(
            Some(admin),
            "mutation($i:CreateAccountInput!){ createAccount(input:$i) { id } }",
            json!({"i": {"name": name, "ownerId": owner}}),
        )
        .await;
    r["data"]["createAccount"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

async fn task(s: &TestServer, token: &str, account: &str, assignee: &str, title: &str) -> Value {
    let r = s
        .gql(
            Some(token),
            LOG,
            json!({"i": {"kind": "TASK", "subjectType": "ACCOUNT", "subjectId": account,
                "title": title, "assigneeId": assignee}}),
        )
        .await;
    assert!(r["data"]["logActivity"]["id"].is_string(), "{r}");
    r["data"]["logActivity"].clone()
}

async fn import(s: &TestServer, token: &str, csv: &str, opts: Value) -> Value {
    let r = s
        .upload(
            Some(token),
            IMPORT_CONTACTS,
            json!({ "o": opts }),
            "file",
            "people.csv",
            csv.as_bytes().to_vec(),
        )
        .await;
    let id = r["data"]["importContacts"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    s.wait_job(token, "importJob", &id).await
}

both!(
    import_owner_columns_assign_only_visible_users,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let me = s
            .create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        let other = s
            .create_user(&admin, "other@test.example", &["sales_rep"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        // A rep sees only itself among users: handing rows to a colleague it
        // cannot see fails like naming a user that does not exist, so the
        // report cannot be used to probe which users exist.
        let csv = "firstName,lastName,emails,ownerEmail\n\
            Ann,Gift,ann@example.com,other@test.example\n\
            Bob,Ghost,bob@example.com,nobody@test.example\n\
            Cat,Mine,cat@example.com,rep@test.example\n";
        let job = import(&s, &rep, csv, json!({"mode": "SKIP_BAD_ROWS"})).await;
        assert_eq!(
            (job["created"].clone(), job["failed"].clone()),
            (json!(1), json!(2)),
            "{job}"
        );
        let r = s
            .gql(
                Some(&rep),
                "query($id:ID!){ importJob(id:$id) { errors { line column message } } }",
                json!({"id": job["id"]}),
            )
            .await;
        assert_eq!(
            r["data"]["importJob"]["errors"],
            json!([
                {"line": 2, "column": "ownerEmail", "message": "no such active user"},
                {"line": 3, "column": "ownerEmail", "message": "no such active user"},
            ]),
            "{r}"
        );
        // The same through an ownerId column.
        let csv = format!("firstName,lastName,emails,ownerId\nDan,Gift,dan@example.com,{other}\n");
        let job = import(&s, &rep, &csv, json!({})).await;
        assert_eq!(
            (job["status"].clone(), job["created"].clone()),
            (json!("FAILED"), json!(0)),
            "{job}"
        );
        // The default owner option: refused at once, nothing written.
        let r = s
            .upload(
                Some(&rep),
                IMPORT_CONTACTS,
                json!({"o": {"defaultOwnerId": other}}),
                "file",
                "people.csv",
                b"firstName,lastName,emails\nEve,Gift,eve@example.com\n".to_vec(),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(
            r["errors"][0]["extensions"]["fields"][0]["field"], "defaultOwnerId",
            "{r}"
        );
        let owners =
            s.db.scalar(&format!(
                "SELECT COUNT(*) AS n FROM contacts WHERE owner_id <> '{me}'"
            ))
            .await;
        assert_eq!(owners, 0, "no contact was given to anyone else");
        assert_eq!(s.db.count("contacts").await, 1);
    }
);

both!(import_owner_columns_need_owner_write, |b| async move {
    let s = server_with_policy!(b, "p, sales_rep, Contact.ownerId, write, deny");
    let admin = s.admin().await;
    let me = s
        .create_user(&admin, "rep@test.example", &["sales_rep"])
        .await;
    let rep = s.login("rep@test.example", "user-password-1").await;
    // An ownerEmail column writes the owner as much as an ownerId column.
    let job = import(
        &s,
        &rep,
        "firstName,lastName,emails,ownerEmail\nAnn,Gift,ann@example.com,rep@test.example\n",
        json!({"mode": "SKIP_BAD_ROWS"}),
    )
    .await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(
        job["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Contact.ownerId"),
        "{job}"
    );
    let r = s
        .upload(
            Some(&rep),
            IMPORT_CONTACTS,
            json!({"o": {"defaultOwnerId": me}}),
            "file",
            "people.csv",
            b"firstName,lastName,emails\nEve,Gift,eve@example.com\n".to_vec(),
        )
        .await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    assert_eq!(
        r["errors"][0]["extensions"]["fields"],
        json!(["Contact.ownerId"]),
        "{r}"
    );
    assert_eq!(s.db.count("contacts").await, 0);
});

both!(my_tasks_follow_the_activity_read_scope, |b| async move {
    let s = server_with_policy!(
        b,
        "p, field_agent, Query.myTasks, call, allow\n\
         p, field_agent, Activity, read:own, allow\n\
         p, field_agent, Activity.*, read, allow"
    );
    let admin = s.admin().await;
    let agent_id = s
        .create_user(&admin, "agent@test.example", &["field_agent"])
        .await;
    let rep_id = s
        .create_user(&admin, "rep@test.example", &["sales_rep"])
        .await;
    let agent = s.login("agent@test.example", "user-password-1").await;
    let rep = s.login("rep@test.example", "user-password-1").await;
    let admin_id = s.gql(Some(&admin), "{ me { id } }", json!({})).await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let acc = account(&s, &admin, &admin_id, "Secret Co").await;
    task(&s, &admin, &acc, &agent_id, "Visit the secret site").await;
    task(&s, &admin, &acc, &rep_id, "Call back").await;
    // The agent's role reads only its own activities: a task someone else
    // owns is not readable through myTasks either.
    let r = s
        .gql(Some(&agent), "{ myTasks { title } }", json!({}))
        .await;
    assert_eq!(r["data"]["myTasks"], json!([]), "{r}");
    // Reps read tasks assigned to them (`read:assigned` in the policy).
    let r = s.gql(Some(&rep), "{ myTasks { title } }", json!({})).await;
    assert_eq!(r["data"]["myTasks"], json!([{"title": "Call back"}]), "{r}");
});

both!(task_assignee_rule_is_policy, |b| async move {
    // Shipped policy: support may complete tasks assigned to it.
    {
        let s = server!(b);
        let admin = s.admin().await;
        let admin_id = s.gql(Some(&admin), "{ me { id } }", json!({})).await["data"]["me"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let sup = s
            .create_user(&admin, "sup@test.example", &["support"])
            .await;
        s.create_user(&admin, "sup2@test.example", &["support"])
            .await;
        let acc = account(&s, &admin, &admin_id, "Help Co").await;
        let t = task(&s, &admin, &acc, &sup, "Fix it").await;
        let other = s.login("sup2@test.example", "user-password-1").await;
        let r = s
            .gql(
                Some(&other),
                COMPLETE,
                json!({"id": t["id"], "v": t["version"]}),
            )
            .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        let token = s.login("sup@test.example", "user-password-1").await;
        let r = s
            .gql(
                Some(&token),
                COMPLETE,
                json!({"id": t["id"], "v": t["version"]}),
            )
            .await;
        assert!(r["data"]["completeTask"]["completedAt"].is_string(), "{r}");
    }
    // An admin withdraws it in the policy file: the assignee no longer may.
    let s = server_with_policy!(b, "p, support, Activity, update:assigned, deny");
    let admin = s.admin().await;
    let admin_id = s.gql(Some(&admin), "{ me { id } }", json!({})).await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sup = s
        .create_user(&admin, "sup@test.example", &["support"])
        .await;
    let acc = account(&s, &admin, &admin_id, "Help Co").await;
    let t = task(&s, &admin, &acc, &sup, "Fix it").await;
    let token = s.login("sup@test.example", "user-password-1").await;
    let r = s
        .gql(
            Some(&token),
            COMPLETE,
            json!({"id": t["id"], "v": t["version"]}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    let open =
        s.db.scalar("SELECT COUNT(*) AS n FROM activities WHERE completed_at IS NULL")
            .await;
    assert_eq!(open, 1);
});

both!(
    purchase_cannot_link_a_contact_outside_scope,
    |b| async move {
        let s = server_with_policy!(
            b,
            "p, shop, Mutation.recordPurchase, call, allow\n\
         p, shop, Purchase, create, allow\n\
         p, shop, Purchase, read:own, allow\n\
         p, shop, Purchase.*, read, allow\n\
         p, shop, Purchase.*, write, allow\n\
         p, shop, Account, read:all, allow\n\
         p, shop, Contact, read:own, allow"
        );
        let admin = s.admin().await;
        let admin_id = s.gql(Some(&admin), "{ me { id } }", json!({})).await["data"]["me"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let shop_id = s.create_user(&admin, "shop@test.example", &["shop"]).await;
        let shop = s.login("shop@test.example", "user-password-1").await;
        let acc = account(&s, &admin, &admin_id, "Buyer Co").await;
        let hidden = contact(
            &s,
            &admin,
            json!({"firstName": "Hid", "lastName": "Den", "accountId": acc}),
        )
        .await;
        let mine = contact(
            &s,
            &admin,
            json!({"firstName": "Sho", "lastName": "Pper", "accountId": acc, "ownerId": shop_id}),
        )
        .await;
        let record = "mutation($i:CreatePurchaseInput!){ recordPurchase(input:$i) { id } }";
        let order = |key: &str, contact: &str| {
            json!({"i": {"accountId": acc, "contactId": contact, "orderNumber": key,
            "orderedAt": "2026-03-01T12:00:00Z", "amount": {"amountMinor": 100, "currency": "EUR"},
            "idempotencyKey": key}})
        };
        // A contact outside the caller's scope reads like one that does not exist.
        let r = s.gql(Some(&shop), record, order("k1", &hidden)).await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let missing = "con_0190000000007000800000000000000";
        let r2 = s.gql(Some(&shop), record, order("k2", missing)).await;
        assert_eq!(
            r["errors"][0]["extensions"]["fields"],
            r2["errors"][0]["extensions"]["fields"]
        );
        assert_eq!(
            r["errors"][0]["extensions"]["fields"][0]["field"], "contactId",
            "{r}"
        );
        assert_eq!(s.db.count("purchases").await, 0);
        let r = s.gql(Some(&shop), record, order("k3", &mine)).await;
        assert!(r["data"]["recordPurchase"]["id"].is_string(), "{r}");
    }
);

both!(
    personal_data_report_follows_scope_and_field_rules,
    |b| async move {
        let s = server_with_policy!(
            b,
            "p, dpo, Query.personalDataReport, call, allow\n\
         p, dpo, Contact, read:all, allow\n\
         p, dpo, Contact, delete:all, allow\n\
         p, dpo, Contact.*, read, allow\n\
         p, dpo, Contact.title, read, deny\n\
         p, dpo, Activity, read:own, allow\n\
         p, dpo, Activity.*, read, allow\n\
         p, dpo, Purchase, read:all, allow\n\
         p, dpo, Purchase.*, read, allow\n\
         p, dpo, Purchase.amount, read, deny"
        );
        let admin = s.admin().await;
        let admin_id = s.gql(Some(&admin), "{ me { id } }", json!({})).await["data"]["me"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        s.create_user(&admin, "dpo@test.example", &["dpo"]).await;
        let dpo = s.login("dpo@test.example", "user-password-1").await;
        let acc = account(&s, &admin, &admin_id, "Buyer Co").await;
        let person = contact(
            &s,
            &admin,
            json!({"firstName": "Jane", "lastName": "Doe", "title": "CFO", "accountId": acc,
                "emails": [{"kind": "WORK", "value": "jane.doe@example.com"}]}),
        )
        .await;
        let r = s
        .gql(
            Some(&admin),
            LOG,
            json!({"i": {"kind": "NOTE", "subjectType": "CONTACT", "subjectId": person, "title": "Jane likes golf"}}),
        )
        .await;
        assert!(r["data"]["logActivity"]["id"].is_string(), "{r}");
        let r = s
        .gql(
            Some(&admin),
            "mutation($i:CreatePurchaseInput!){ recordPurchase(input:$i) { id } }",
            json!({"i": {"accountId": acc, "contactId": person, "orderNumber": "SO-1",
                "orderedAt": "2026-03-01T12:00:00Z", "amount": {"amountMinor": 12345, "currency": "EUR"},
                "idempotencyKey": "o1"}}),
        )
        .await;
        assert!(r["data"]["recordPurchase"]["id"].is_string(), "{r}");
        // An export the admin made (its file names the person) is the admin's job.
        let r = s
            .gql(
                Some(&admin),
                "mutation { exportContacts(format: JSON_LINES) { id } }",
                json!({}),
            )
            .await;
        let export = r["data"]["exportContacts"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_owned();
        let job = s.wait_job(&admin, "exportJob", &export).await;
        assert_eq!(job["status"], "SUCCEEDED", "{job}");
        let q = "query($id:ID!){ personalDataReport(contactId:$id) }";
        let r = s.gql(Some(&dpo), q, json!({"id": person})).await;
        assert_eq!(
            r["data"]["personalDataReport"]["exportJobs"],
            json!([]),
            "{r}"
        );
        let report = &r["data"]["personalDataReport"];
        assert_eq!(report["contact"]["lastName"], "Doe", "{r}");
        assert!(report["contact"].get("title").is_none(), "{r}");
        // The admin's note is outside the dpo's own Activity scope.
        assert_eq!(report["timeline"], json!([]), "{r}");
        let bought = &report["purchases"][0];
        assert_eq!(bought["orderNumber"], "SO-1", "{r}");
        assert!(bought.get("amountMinor").is_none(), "{r}");
        let trail = report["auditTrail"].to_string();
        assert!(!trail.contains("CFO"), "{trail}");
        // The admin still gets everything.
        let r = s.gql(Some(&admin), q, json!({"id": person})).await;
        let report = &r["data"]["personalDataReport"];
        assert_eq!(report["contact"]["title"], "CFO", "{r}");
        assert_eq!(report["timeline"].as_array().map(Vec::len), Some(1), "{r}");
        assert_eq!(report["purchases"][0]["amountMinor"], 12345, "{r}");
        assert_eq!(report["exportJobs"], json!([export]), "{r}");
    }
);

both!(tag_scopes_apply, |b| async move {
    let s = server_with_policy!(
        b,
        "p, sales_rep, Mutation.updateTag, call, allow\n\
         p, sales_rep, Mutation.deleteTag, call, allow\n\
         p, sales_rep, Tag, update:own, allow\n\
         p, sales_rep, Tag, delete:team, allow\n\
         p, sales_rep, Tag.*, write, allow"
    );
    let admin = s.admin().await;
    s.create_user(&admin, "rep@test.example", &["sales_rep"])
        .await;
    let rep = s.login("rep@test.example", "user-password-1").await;
    let r = s
        .gql(
            Some(&admin),
            "mutation { createTag(input:{name:\"vip\"}) { id version } }",
            json!({}),
        )
        .await;
    let tag = r["data"]["createTag"].clone();
    // Tags belong to nobody: `own` and `team` scopes hold none of them.
    let r = s
        .gql(
            Some(&rep),
            "mutation($i:UpdateTagInput!){ updateTag(input:$i) { name } }",
            json!({"i": {"id": tag["id"], "version": tag["version"], "name": "pwned"}}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    let r = s
        .gql(
            Some(&rep),
            "mutation($id:ID!,$v:Int!){ deleteTag(id:$id, version:$v) { name } }",
            json!({"id": tag["id"], "v": tag["version"]}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    let r = s.gql(Some(&admin), "{ tags { name } }", json!({})).await;
    assert_eq!(r["data"]["tags"], json!([{"name": "vip"}]), "{r}");
});

both!(team_filter_narrows_under_own_scope, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let team = |name: &'static str| {
        let s = &s;
        let admin = admin.clone();
        async move {
            let r = s
                .gql(
                    Some(&admin),
                    "mutation($n:String!){ createTeam(input:{name:$n}) { id } }",
                    json!({ "n": name }),
                )
                .await;
            r["data"]["createTeam"]["id"].as_str().unwrap().to_owned()
        }
    };
    let east = team("East").await;
    let west = team("West").await;
    let r = s
        .gql(
            Some(&admin),
            "mutation($i:CreateUserInput!){createUser(input:$i){id}}",
            json!({"i": {"email": "rep@test.example", "displayName": "Rep", "password": "user-password-1",
                "roles": ["sales_rep"], "teamId": east}}),
        )
        .await;
    let rep_id = r["data"]["createUser"]["id"].as_str().unwrap().to_owned();
    let rep = s.login("rep@test.example", "user-password-1").await;
    account(&s, &admin, &rep_id, "Mine").await;
    let q = "query($t:ID){ accounts(filter:{teamId:$t}) { totalCount nodes { name } } }";
    let r = s.gql(Some(&rep), q, json!({ "t": west })).await;
    assert_eq!(r["data"]["accounts"]["totalCount"], 0, "{r}");
    assert_eq!(r["data"]["accounts"]["nodes"], json!([]), "{r}");
    let r = s.gql(Some(&rep), q, json!({ "t": east })).await;
    assert_eq!(
        r["data"]["accounts"]["nodes"],
        json!([{"name": "Mine"}]),
        "{r}"
    );
});

both!(export_timeline_follows_the_activity_scope, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let admin_id = s.gql(Some(&admin), "{ me { id } }", json!({})).await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rep1_id = s
        .create_user(&admin, "rep1@test.example", &["sales_rep"])
        .await;
    let rep2_id = s
        .create_user(&admin, "rep2@test.example", &["sales_rep"])
        .await;
    let rep1 = s.login("rep1@test.example", "user-password-1").await;
    let rep2 = s.login("rep2@test.example", "user-password-1").await;
    let a1 = account(&s, &admin, &rep1_id, "One").await;
    let a2 = account(&s, &admin, &rep2_id, "Two").await;
    let boss = account(&s, &admin, &admin_id, "Boss").await;
    for (token, acc, title) in [(&rep1, &a1, "mine"), (&rep2, &a2, "theirs")] {
        let r = s
            .gql(
                Some(token),
                LOG,
                json!({"i": {"kind": "NOTE", "subjectType": "ACCOUNT", "subjectId": acc, "title": title}}),
            )
            .await;
        assert!(r["data"]["logActivity"]["id"].is_string(), "{r}");
    }
    task(&s, &admin, &boss, &rep1_id, "assigned to me").await;
    task(&s, &admin, &boss, &admin_id, "the boss's").await;
    let export = |filter: Value| {
        let s = &s;
        let rep1 = rep1.clone();
        async move {
            let r = s
                .gql(
                    Some(&rep1),
                    "mutation($f:TimelineExportFilter){ exportTimeline(filter:$f, format: JSON_LINES) { id } }",
                    json!({ "f": filter }),
                )
                .await;
            let id = r["data"]["exportTimeline"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned();
            let job = s.wait_job(&rep1, "exportJob", &id).await;
            assert_eq!(job["status"], "SUCCEEDED", "{job}");
            let (status, body) = s
                .get(Some(&rep1), job["downloadUrl"].as_str().unwrap())
                .await;
            assert_eq!(status, 200, "{body}");
            let mut titles: Vec<String> = body
                .lines()
                .map(|l| {
                    serde_json::from_str::<Value>(l).unwrap()["title"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            titles.sort();
            titles
        }
    };
    assert_eq!(export(Value::Null).await, ["assigned to me", "mine"]);
    // Filtering by another rep's account finds nothing.
    assert!(export(json!({"subjectId": a2})).await.is_empty());
});

const BIN: &str = env!("CARGO_BIN_EXE_crm");

fn crm(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(BIN)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn line_of(text: &str, line: &str) -> usize {
    text.lines()
        .position(|l| l.trim() == line)
        .unwrap_or_else(|| panic!("policy.csv has no line {line:?}"))
        + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_explain_names_the_scope_ownership_and_deciding_lines() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let shipped = std::fs::read_to_string(format!("{root}/policy.csv")).unwrap();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend).await;
        let dir =
            std::env::temp_dir().join(format!("crm_explain_{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("CRM_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ];
        for (email, role) in [
            ("sup@test.example", "support"),
            ("mk@test.example", "marketing"),
        ] {
            let (ok, out) = crm(
                &dir,
                &[
                    "user",
                    "create",
                    "--email",
                    email,
                    "--password",
                    "cli-password-1",
                    "--roles",
                    role,
                ],
                &env,
            );
            assert!(ok, "{out}");
        }
        let explain = |user: &str, resource: &str, action: &str| {
            crm(
                &dir,
                &[
                    "policy",
                    "explain",
                    "--user",
                    user,
                    "--resource",
                    resource,
                    "--action",
                    action,
                ],
                &env,
            )
        };
        // The assignee rule is a policy line, and explain shows it.
        let (ok, out) = explain("sup@test.example", "Activity", "update");
        assert!(ok, "{out}");
        assert!(
            out.contains("decision: allow (row scope: Own, plus rows assigned to the user)"),
            "{out}"
        );
        let n = line_of(&shipped, "p, support, Activity, update:assigned, allow");
        assert!(
            out.contains(&format!(
                "policy.csv:{n}: p, support, Activity, update:assigned, allow"
            )),
            "{out}"
        );
        // Derived ownership is visible too.
        let (ok, out) = explain("mk@test.example", "Purchase", "read");
        assert!(ok, "{out}");
        assert!(out.contains("decision: allow (row scope: All)"), "{out}");
        assert!(
            out.contains("a Purchase row belongs to the owner of its Account"),
            "{out}"
        );
        // A field denial names the deny line.
        let (ok, out) = explain("mk@test.example", "Purchase.amount", "read");
        assert!(ok, "{out}");
        assert!(out.contains("decision: deny"), "{out}");
        let n = line_of(&shipped, "p, marketing, Purchase.amount, read, deny");
        assert!(
            out.contains(&format!(
                "policy.csv:{n}: p, marketing, Purchase.amount, read, deny"
            )),
            "{out}"
        );
        // An unknown user is an error, not a silent deny.
        let (ok, out) = explain("ghost@test.example", "Activity", "read");
        assert!(!ok, "{out}");
        assert!(
            out.contains("no user with email ghost@test.example"),
            "{out}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    // `assigned` is refused for a type without an assignee.
    let dir = std::env::temp_dir().join(format!("crm_assigned_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(format!("{root}/model.conf"), dir.join("model.conf")).unwrap();
    std::fs::write(
        dir.join("policy.csv"),
        format!("{shipped}\np, sales_rep, Account, update:assigned, allow\n"),
    )
    .unwrap();
    let file = dir.join("policy.csv");
    let (ok, out) = crm(&dir, &["policy", "check", file.to_str().unwrap()], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("Account rows have no assignee"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
