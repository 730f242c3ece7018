//! Lead assignment rules over HTTP: round robin (inactive users and capped
//! users skipped, even rotation, one turn per lead across replicas),
//! first match by position, user and queue targets, rules on creation and
//! import unless an owner is named, `reassignLeads`, the audit entry,
//! timeline entry and `lead.assigned` event of each assignment, and who
//! may edit rules.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const RULE: &str = "id position name active targetKind targetUserId teamId openLeadCap version \
    conditions { countries regions industries sizeBands sources minScore }";

async fn team(s: &TestServer, admin: &str, name: &str) -> String {
    let d = ok(
        s,
        admin,
        "mutation($n:String!){ createTeam(input:{name:$n}) { id } }",
        json!({"n": name}),
    )
    .await;
    d["createTeam"]["id"].as_str().unwrap().to_owned()
}

/// Creates a user in `team`; returns its id.
async fn member(s: &TestServer, admin: &str, email: &str, role: &str, team: &str) -> String {
    let d = ok(
        s,
        admin,
        "mutation($i:CreateUserInput!){ createUser(input:$i) { id } }",
        json!({"i": {"email": email, "displayName": email, "password": "user-password-1",
                     "roles": [role], "teamId": team}}),
    )
    .await;
    d["createUser"]["id"].as_str().unwrap().to_owned()
}

async fn rule(s: &TestServer, token: &str, input: Value) -> Value {
    s.gql(
        Some(token),
        &format!("mutation($i:CreateAssignmentRuleInput!){{ createAssignmentRule(input:$i) {{ {RULE} }} }}"),
        json!({"i": input}),
    )
    .await
}

async fn new_lead(s: &TestServer, token: &str, input: Value) -> Value {
    let d = ok(
        s,
        token,
        "mutation($i:CreateLeadInput!){ createLead(input:$i) { id ownerId teamId version } }",
        json!({"i": input}),
    )
    .await;
    d["createLead"].clone()
}

async fn count(s: &TestServer, sql: &str) -> i64 {
    s.db.scalar(sql).await
}

both!(
    round_robin_skips_an_inactive_rep_and_alternates,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let east = team(&s, &admin, "East").await;
        let r1 = member(&s, &admin, "r1@test.example", "sales_rep", &east).await;
        let r2 = member(&s, &admin, "r2@test.example", "sales_rep", &east).await;
        let r3 = member(&s, &admin, "r3@test.example", "sales_rep", &east).await;
        ok(
            &s,
            &admin,
            "mutation($id:ID!){ deactivateUser(id:$id, version:1){ id } }",
            json!({"id": r3}),
        )
        .await;
        let r = rule(
            &s,
            &admin,
            json!({"name": "East rotation", "targetKind": "ROUND_ROBIN", "teamId": east}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        let rule_id = r["data"]["createAssignmentRule"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut owners = Vec::new();
        let mut ids = Vec::new();
        for i in 0..6 {
            let l = new_lead(&s, &admin, json!({"company": format!("Co {i}")})).await;
            // Created (version 1), then assigned (version 2).
            assert_eq!(l["version"], 2, "{l}");
            assert_eq!(l["teamId"], json!(east), "{l}");
            owners.push(l["ownerId"].as_str().unwrap().to_owned());
            ids.push(l["id"].as_str().unwrap().to_owned());
        }
        let (first, second) = if r1 < r2 { (&r1, &r2) } else { (&r2, &r1) };
        for (i, o) in owners.iter().enumerate() {
            assert_eq!(o, if i % 2 == 0 { first } else { second }, "{owners:?}");
        }
        assert!(!owners.contains(&r3));
        // Each assignment: one event, one audit entry naming the change of
        // owner, one timeline entry.
        let events = count(
            &s,
            "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'lead.assigned'",
        )
        .await;
        assert_eq!(events, 6);
        let audits = count(
        &s,
        "SELECT COUNT(*) AS n FROM audit_log WHERE entity_type = 'Lead' AND action = 'assigned'",
    )
    .await;
        assert_eq!(audits, 6);
        let d = ok(
        &s,
        &admin,
        "query($id:ID!){ timeline(subjectType: LEAD, subjectId: $id) { edges { node { title } } } }",
        json!({"id": ids[0]}),
    )
    .await;
        let titles: Vec<&str> = d["timeline"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["node"]["title"].as_str())
            .collect();
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with("Assigned to ") && t.ends_with("by rule East rotation")),
            "{titles:?}"
        );
        let place = count(
            &s,
            &format!("SELECT turns AS n FROM lead_round_robin WHERE rule_id = '{rule_id}'"),
        )
        .await;
        assert_eq!(place, 6);
        // A named owner: the rules do not run, no turn is taken.
        let l = new_lead(&s, &admin, json!({"company": "Named", "ownerId": r1})).await;
        assert_eq!(l["ownerId"], json!(r1));
        assert_eq!(l["version"], 1);
        let place = count(
            &s,
            &format!("SELECT turns AS n FROM lead_round_robin WHERE rule_id = '{rule_id}'"),
        )
        .await;
        assert_eq!(place, 6);
    }
);

both!(
    first_matching_rule_wins_with_user_queue_and_cap,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let east = team(&s, &admin, "East").await;
        let west = team(&s, &admin, "West").await;
        let rep = member(&s, &admin, "rep@test.example", "sales_rep", &east).await;
        let admin_id = ok(&s, &admin, "{ me { id } }", json!({})).await["me"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // German software leads wait in West's queue; everything else from the
        // web goes to the rep, up to one open lead.
        let q = rule(
            &s,
            &admin,
            json!({"name": "DE software", "targetKind": "QUEUE", "teamId": west,
               "conditions": {"countries": ["de"], "industries": ["software"]}}),
        )
        .await;
        assert!(q["errors"].is_null(), "{q}");
        assert_eq!(
            q["data"]["createAssignmentRule"]["conditions"]["countries"],
            json!(["DE"])
        );
        let u = rule(
            &s,
            &admin,
            json!({"name": "Web to rep", "targetKind": "USER", "targetUserId": rep,
               "openLeadCap": 1, "conditions": {"sources": ["WEB_FORM"]}}),
        )
        .await;
        assert!(u["errors"].is_null(), "{u}");
        let u = &u["data"]["createAssignmentRule"];
        assert_eq!(u["position"], 2);
        assert_eq!(
            u["teamId"],
            json!(east),
            "a user's rule belongs to the user's team"
        );
        let de = new_lead(
        &s,
        &admin,
        json!({"company": "GmbH", "country": "DE", "industry": "Software", "source": "WEB_FORM"}),
    )
    .await;
        assert_eq!(de["ownerId"], Value::Null, "{de}");
        assert_eq!(de["teamId"], json!(west));
        let web = new_lead(
            &s,
            &admin,
            json!({"company": "Web 1", "source": "WEB_FORM"}),
        )
        .await;
        assert_eq!(web["ownerId"], json!(rep));
        // The rep is at the cap: the rule passes; no other rule matches, so
        // the creator keeps the lead.
        let web2 = new_lead(
            &s,
            &admin,
            json!({"company": "Web 2", "source": "WEB_FORM"}),
        )
        .await;
        assert_eq!(web2["ownerId"], json!(admin_id));
        assert_eq!(web2["version"], 1);
        // A rule with a score condition matches leads scoring at least that
        // (fit plus engagement, from the scoring rules).
        let sc = rule(
            &s,
            &admin,
            json!({"name": "Hot", "targetKind": "USER", "targetUserId": rep, "position": 1,
               "conditions": {"minScore": 50}}),
        )
        .await;
        assert!(sc["errors"].is_null(), "{sc}");
        assert_eq!(sc["data"]["createAssignmentRule"]["position"], 1);
        let other = new_lead(&s, &admin, json!({"company": "Plain"})).await;
        assert_eq!(other["ownerId"], json!(admin_id));
        let r = s
            .gql(
                Some(&admin),
                "mutation($i:CreateScoringRuleInput!){ createScoringRule(input:$i) { id } }",
                json!({"i": {"name": "Fintech", "kind": "FIT", "field": "INDUSTRY",
                             "operator": "IN", "values": ["Fintech"], "points": 60}}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        let hot = new_lead(
            &s,
            &admin,
            json!({"company": "Hot one", "industry": "Fintech"}),
        )
        .await;
        assert_eq!(hot["ownerId"], json!(rep), "{hot}");
        let cool = new_lead(
            &s,
            &admin,
            json!({"company": "Cool one", "industry": "Retail"}),
        )
        .await;
        assert_eq!(cool["ownerId"], json!(admin_id), "{cool}");
        let d = ok(
            &s,
            &admin,
            "{ assignmentRules { name position } }",
            json!({}),
        )
        .await;
        let names: Vec<&str> = d["assignmentRules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Hot", "DE software", "Web to rep"]);
        // Move the user rule first; an inactive rule is skipped.
        let uid = u["id"].as_str().unwrap();
        let d = ok(
        &s,
        &admin,
        "mutation($id:ID!){ moveAssignmentRule(id:$id, version:1, position:1) { name position } }",
        json!({"id": uid}),
    )
    .await;
        let names: Vec<&str> = d["moveAssignmentRule"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Web to rep", "Hot", "DE software"]);
        // A stale version: CONFLICT, nothing moves.
        let r = s
            .gql(
                Some(&admin),
                "mutation($id:ID!){ moveAssignmentRule(id:$id, version:1, position:3) { name } }",
                json!({"id": uid}),
            )
            .await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        // Bad input: VALIDATION naming each field, nothing stored.
        let r = rule(
            &s,
            &admin,
            json!({"name": "", "targetKind": "ROUND_ROBIN", "openLeadCap": 0,
               "conditions": {"countries": ["Germany"]}}),
        )
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let fields: Vec<&str> = r["errors"][0]["extensions"]["fields"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["field"].as_str()).collect())
            .unwrap_or_default();
        for f in ["name", "teamId", "openLeadCap", "conditions.countries"] {
            assert!(fields.contains(&f), "{f} in {r}");
        }
        assert_eq!(
            count(&s, "SELECT COUNT(*) AS n FROM lead_assignment_rules").await,
            3
        );
    }
);

both!(
    reassign_leads_runs_the_rules_over_existing_leads,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let east = team(&s, &admin, "East").await;
        let west = team(&s, &admin, "West").await;
        let a = member(&s, &admin, "a@test.example", "sales_rep", &east).await;
        let c = member(&s, &admin, "c@test.example", "sales_rep", &east).await;
        // The manager is a member of East too: it takes turns with the reps.
        let m = member(&s, &admin, "mgr@test.example", "sales_manager", &east).await;
        member(&s, &admin, "wmgr@test.example", "sales_manager", &west).await;
        let mgr = s.login("mgr@test.example", "user-password-1").await;
        let wmgr = s.login("wmgr@test.example", "user-password-1").await;
        let rep = s.login("a@test.example", "user-password-1").await;
        // Leads of the East team's queue, made before any rule.
        for i in 0..4 {
            let l = new_lead(
                &s,
                &admin,
                json!({"company": format!("FR {i}"), "country": "FR", "teamId": east}),
            )
            .await;
            assert_eq!(l["ownerId"], Value::Null);
        }
        new_lead(
            &s,
            &admin,
            json!({"company": "US", "country": "US", "teamId": east}),
        )
        .await;
        // Only managers (for their teams) and admins edit rules.
        let r = s
            .gql(Some(&rep), "{ assignmentRules { id } }", json!({}))
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        let r = rule(
            &s,
            &wmgr,
            json!({"name": "x", "targetKind": "ROUND_ROBIN", "teamId": east}),
        )
        .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        let r = rule(
            &s,
            &mgr,
            json!({"name": "France", "targetKind": "ROUND_ROBIN", "teamId": east,
               "conditions": {"countries": ["FR"]}}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        let rid = r["data"]["createAssignmentRule"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let d = ok(&s, &wmgr, "{ assignmentRules { id } }", json!({})).await;
        assert_eq!(
            d["assignmentRules"],
            json!([]),
            "another team's manager sees none"
        );
        let r = s
            .gql(
                Some(&wmgr),
                "mutation($id:ID!){ deleteAssignmentRule(id:$id, version:1) }",
                json!({"id": rid}),
            )
            .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        let r = s
            .gql(
                Some(&rep),
                "mutation{ reassignLeads(filter:{country:\"FR\"}) }",
                json!({}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        // The West manager may update no East lead: nothing to reassign.
        let d = ok(&s, &wmgr, "mutation{ reassignLeads(filter:{}) }", json!({})).await;
        assert_eq!(d["reassignLeads"], 0);
        let d = ok(
            &s,
            &mgr,
            "mutation{ reassignLeads(filter:{queued:true}) }",
            json!({}),
        )
        .await;
        assert_eq!(d["reassignLeads"], 4, "the US lead matches no rule");
        let d = ok(
            &s,
            &admin,
            "{ leads(first: 10, filter:{country:\"FR\"}) { edges { node { ownerId } } } }",
            json!({}),
        )
        .await;
        let mut per: HashMap<String, i32> = HashMap::new();
        for e in d["leads"]["edges"].as_array().unwrap() {
            *per.entry(e["node"]["ownerId"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        assert_eq!(per.values().sum::<i32>(), 4, "{per:?}");
        for (owner, n) in &per {
            assert!([&a, &c, &m].contains(&owner), "{per:?}");
            assert!((1..=2).contains(n), "{per:?}");
        }
        assert_eq!(
            count(
                &s,
                "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'lead.assigned'"
            )
            .await,
            4
        );
        // Already where the rules send them: nothing changes the second time
        // (the rotation moves on, the owners stay only if it lands on them).
        let d = ok(
            &s,
            &mgr,
            "mutation{ reassignLeads(filter:{country:\"US\"}) }",
            json!({}),
        )
        .await;
        assert_eq!(d["reassignLeads"], 0);
    }
);

both!(
    imported_leads_without_an_owner_follow_the_rules,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let east = team(&s, &admin, "East").await;
        let a = member(&s, &admin, "a@test.example", "sales_rep", &east).await;
        let c = member(&s, &admin, "c@test.example", "sales_rep", &east).await;
        let r = rule(
            &s,
            &admin,
            json!({"name": "All", "targetKind": "ROUND_ROBIN", "teamId": east}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        let csv = "company,country\nOne,FR\nTwo,FR\nThree,FR\nFour,FR\n";
        let job = import(&s, &admin, csv, json!(null)).await;
        assert_eq!(job, "SUCCEEDED");
        let owners = count(
            &s,
            &format!("SELECT COUNT(*) AS n FROM leads WHERE owner_id IN ('{a}', '{c}')"),
        )
        .await;
        assert_eq!(owners, 4);
        assert_eq!(
            count(
                &s,
                &format!("SELECT COUNT(*) AS n FROM leads WHERE owner_id = '{a}'")
            )
            .await,
            2
        );
        // A default owner named by the importer: the rules do not run.
        let job = import(&s, &admin, "company\nFive\n", json!({"defaultOwnerId": a})).await;
        assert_eq!(job, "SUCCEEDED");
        assert_eq!(
            count(
                &s,
                &format!("SELECT COUNT(*) AS n FROM leads WHERE owner_id = '{a}'")
            )
            .await,
            3
        );
        assert_eq!(
            count(
                &s,
                "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'lead.assigned'"
            )
            .await,
            4
        );
    }
);

/// Imports `csv` as leads; returns the job's final status.
async fn import(s: &TestServer, token: &str, csv: &str, options: Value) -> String {
    let r = s
        .upload(
            Some(token),
            "mutation($file:Upload!, $o:ImportOptions){ importLeads(file:$file, options:$o) { id } }",
            json!({"o": options}),
            "file",
            "leads.csv",
            csv.as_bytes().to_vec(),
        )
        .await;
    let job = r["data"]["importLeads"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let j = s.wait_job(token, "importJob", &job).await;
    j["status"]
        .as_str()
        .unwrap_or_else(|| panic!("{j}"))
        .to_owned()
}

// 200 leads created concurrently, without owners, through a round robin
// over three reps: every lead is assigned exactly once (one owner, one
// event, one turn) and the counts end within one of each other. On
// PostgreSQL the creations are split across two replicas of one
// database; SQLite is a one-process deployment, so one server there.
both!(
    concurrent_captures_assign_each_lead_once_and_evenly,
    |b| async move {
        let s = server!(b);
        let other = match b {
            Backend::Postgres => Some(s.replica(&[]).await),
            Backend::Sqlite => None,
        };
        let admin = s.admin().await;
        let east = team(&s, &admin, "East").await;
        let mut reps = Vec::new();
        for i in 0..3 {
            reps.push(
                member(
                    &s,
                    &admin,
                    &format!("r{i}@test.example"),
                    "sales_rep",
                    &east,
                )
                .await,
            );
        }
        let r = rule(
            &s,
            &admin,
            json!({"name": "All", "targetKind": "ROUND_ROBIN", "teamId": east}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        let addrs = [s.addr(), other.as_ref().map_or(s.addr(), |o| o.addr)];
        let mut tasks = Vec::new();
        for w in 0..20 {
            let addr = addrs[w % 2];
            let token = admin.clone();
            tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut ids = Vec::new();
                for i in 0..10 {
                    let r = gql_at(
                        &http,
                        addr,
                        Some(&token),
                        "mutation($i:CreateLeadInput!){ createLead(input:$i) { id ownerId } }",
                        json!({"i": {"company": format!("Co {w}-{i}")}}),
                    )
                    .await;
                    assert!(r["errors"].is_null(), "{r}");
                    ids.push(r["data"]["createLead"]["id"].as_str().unwrap().to_owned());
                }
                ids
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        assert_eq!(all.len(), 200);
        let mut counts = Vec::new();
        for r in &reps {
            counts.push(
                count(
                    &s,
                    &format!("SELECT COUNT(*) AS n FROM leads WHERE owner_id = '{r}'"),
                )
                .await,
            );
        }
        assert_eq!(counts.iter().sum::<i64>(), 200, "{counts:?}");
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 1, "uneven: {counts:?}");
        assert_eq!(
            count(
                &s,
                "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'lead.assigned'"
            )
            .await,
            200
        );
        assert_eq!(
            count(
                &s,
                "SELECT COUNT(DISTINCT entity_id) AS n FROM outbox WHERE kind = 'lead.assigned'"
            )
            .await,
            200
        );
        assert_eq!(
            count(&s, "SELECT turns AS n FROM lead_round_robin").await,
            200
        );
    }
);

both!(
    lead_assigned_events_reach_the_new_owner_only,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let east = team(&s, &admin, "East").await;
        let r1 = member(&s, &admin, "r1@test.example", "sales_rep", &east).await;
        let r2 = member(&s, &admin, "r2@test.example", "sales_rep", &east).await;
        let r = rule(
            &s,
            &admin,
            json!({"name": "East", "targetKind": "ROUND_ROBIN", "teamId": east}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        let (first, first_email) = if r1 < r2 {
            (&r1, "r1@test.example")
        } else {
            (&r2, "r2@test.example")
        };
        let rep = s.login(first_email, "user-password-1").await;
        let events = "subscription($a:String){ leadEvents(after:$a) { kind entityId } }";
        let mut ws = Ws::init(s.addr(), &rep).await;
        ws.subscribe("1", events, json!({"a": s.db.head().await}))
            .await;
        // Created as the admin's (hidden from the rep), then assigned: the
        // first lead to the rep, the second to the other rep.
        let a = new_lead(&s, &admin, json!({"company": "A"})).await;
        assert_eq!(a["ownerId"], json!(first));
        let b2 = new_lead(&s, &admin, json!({"company": "B"})).await;
        assert_ne!(b2["ownerId"], json!(first));
        let c = new_lead(&s, &rep, json!({"company": "C", "ownerId": first})).await;
        let mut got = Vec::new();
        for _ in 0..2 {
            let m = ws.recv().await.unwrap();
            assert_eq!(m["type"], "next", "{m}");
            let e = &m["payload"]["data"]["leadEvents"];
            got.push((
                e["kind"].as_str().unwrap().to_owned(),
                e["entityId"].as_str().unwrap().to_owned(),
            ));
        }
        assert_eq!(
            got,
            [
                (
                    "lead.assigned".to_owned(),
                    a["id"].as_str().unwrap().to_owned()
                ),
                (
                    "lead.created".to_owned(),
                    c["id"].as_str().unwrap().to_owned()
                ),
            ]
        );
        ws.close().await;
    }
);
