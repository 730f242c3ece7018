//! Leads over HTTP and WebSocket: lists, filters and the recycle bin, the
//! status rules, team queues, the duplicate check (API and import), the
//! conversion into account, contact and opportunity in one transaction
//! (reuse, rights, concurrency), `leadEvents` row scope and who may do
//! what.

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const LEAD: &str = "id version firstName lastName company status statusReason source ownerId \
    teamId emails { value } phones { value } matchedContactId duplicateOf convertedAt \
    convertedAccountId convertedContactId convertedOpportunityId";

const CONVERT: &str = "mutation($i:ConvertLeadInput!){ convertLead(input:$i) { \
    lead { id status version convertedAt convertedAccountId convertedContactId convertedOpportunityId } \
    account { id name industry website } contact { id firstName lastName accountId emails { value } } \
    opportunity { id name accountId primaryContactId pipelineId stageId amount { amountMinor currency } } } }";

async fn user(s: &TestServer, admin: &str, email: &str, roles: &[&str]) -> String {
    s.create_user(admin, email, roles).await;
    s.login(email, "user-password-1").await
}

async fn team_user(s: &TestServer, admin: &str, email: &str, role: &str, team: &str) -> String {
    ok(
        s,
        admin,
        "mutation($i:CreateUserInput!){ createUser(input:$i) { id } }",
        json!({"i": {"email": email, "displayName": email, "password": "user-password-1",
                     "roles": [role], "teamId": team}}),
    )
    .await;
    s.login(email, "user-password-1").await
}

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

async fn create(s: &TestServer, token: &str, input: Value) -> Value {
    s.gql(
        Some(token),
        &format!("mutation($i:CreateLeadInput!){{ createLead(input:$i) {{ {LEAD} }} }}"),
        json!({"i": input}),
    )
    .await
}

async fn lead(s: &TestServer, token: &str, input: Value) -> Value {
    let r = create(s, token, input).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["createLead"].clone()
}

fn fields(r: &Value) -> Vec<String> {
    let mut f: Vec<String> = r["errors"][0]["extensions"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    f.sort();
    f
}

async fn ids(s: &TestServer, token: &str, filter: Value) -> Vec<String> {
    let d = ok(
        s,
        token,
        "query($f:LeadFilterInput){ leads(first: 50, filter:$f) { totalCount edges { node { id } } } }",
        json!({"f": filter}),
    )
    .await;
    let list: Vec<String> = d["leads"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(d["leads"]["totalCount"], json!(list.len()), "{d}");
    list
}

/// A pipeline with one open stage, as an admin shapes it: (pipeline, stage).
async fn pipeline(s: &TestServer, admin: &str) -> (String, String) {
    let d = ok(
        s,
        admin,
        "mutation { createPipeline(input:{name:\"Sales\"}) { id } }",
        json!({}),
    )
    .await;
    let p = d["createPipeline"]["id"].as_str().unwrap().to_owned();
    let d = ok(
        s,
        admin,
        "mutation($p:ID!){ createPipelineStage(input:{pipelineId:$p, name:\"Discovery\", probability: 10, forecastCategory: PIPELINE}) { id } }",
        json!({"p": p}),
    )
    .await;
    (
        p,
        d["createPipelineStage"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Rows of the tables a conversion writes to.
async fn counts(s: &TestServer) -> Vec<i64> {
    let mut out = Vec::new();
    for t in [
        "accounts",
        "contacts",
        "opportunities",
        "outbox",
        "audit_log",
    ] {
        out.push(s.db.count(t).await);
    }
    out
}

both!(leads_are_listed_filtered_and_binned, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
    let a = lead(
        &s,
        &rep,
        json!({"firstName": "Ada", "lastName": "Lovelace", "company": "Engines Ltd",
               "emails": [{"kind": "WORK", "value": " Ada@Engines.Example "}],
               "phones": [{"kind": "MOBILE", "value": "(415) 555-0100"}],
               "source": "WEB_FORM", "country": "gb"}),
    )
    .await;
    // Contact points are normalised as contacts' are.
    assert_eq!(a["emails"][0]["value"], "ada@engines.example", "{a}");
    assert_eq!(a["phones"][0]["value"], "+14155550100", "{a}");
    assert_eq!(a["status"], "NEW");
    assert!(a["ownerId"].is_string(), "{a}");
    let b2 = lead(
        &s,
        &rep,
        json!({"lastName": "Hopper", "company": "Compilers Inc", "source": "EVENT", "status": "WORKING"}),
    )
    .await;

    // UNQUALIFIED needs a reason; CONVERTED only through convertLead.
    let r = create(
        &s,
        &rep,
        json!({"lastName": "Nobody", "status": "UNQUALIFIED"}),
    )
    .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert_eq!(fields(&r), vec!["statusReason"], "{r}");
    let r = create(
        &s,
        &rep,
        json!({"lastName": "Nobody", "status": "CONVERTED"}),
    )
    .await;
    assert_eq!(fields(&r), vec!["status"], "{r}");
    let r = create(&s, &rep, json!({"firstName": "Just a first name"})).await;
    assert_eq!(fields(&r), vec!["lastName"], "{r}");
    // A team that does not exist, malformed or well formed: one VALIDATION.
    for team in ["nope", "team_0190f0f0-0000-7000-8000-000000000000"] {
        let r = create(&s, &rep, json!({"lastName": "Nobody", "teamId": team})).await;
        assert_eq!(fields(&r), vec!["teamId"], "{r}");
    }
    let upd =
        "mutation($i:UpdateLeadInput!){ updateLead(input:$i) { id version status statusReason } }";
    let r = s
        .gql(
            Some(&rep),
            upd,
            json!({"i": {"id": b2["id"], "version": 1, "status": "UNQUALIFIED"}}),
        )
        .await;
    assert_eq!(fields(&r), vec!["statusReason"], "{r}");
    let d = ok(
        &s,
        &rep,
        upd,
        json!({"i": {"id": b2["id"], "version": 1, "status": "UNQUALIFIED", "statusReason": "No budget"}}),
    )
    .await;
    assert_eq!(d["updateLead"]["statusReason"], "No budget");
    // A stale version is a conflict.
    let r = s
        .gql(
            Some(&rep),
            upd,
            json!({"i": {"id": b2["id"], "version": 1, "status": "WORKING"}}),
        )
        .await;
    assert_eq!(code(&r), "CONFLICT", "{r}");

    // Filters and search.
    let a_id = a["id"].as_str().unwrap().to_owned();
    let b_id = b2["id"].as_str().unwrap().to_owned();
    assert_eq!(
        ids(&s, &rep, json!({"status": ["UNQUALIFIED"]})).await,
        vec![b_id.clone()]
    );
    assert_eq!(
        ids(&s, &rep, json!({"source": "WEB_FORM"})).await,
        vec![a_id.clone()]
    );
    assert_eq!(
        ids(&s, &rep, json!({"country": "GB"})).await,
        vec![a_id.clone()]
    );
    assert_eq!(
        ids(&s, &rep, json!({"search": "compilers"})).await,
        vec![b_id.clone()]
    );
    assert_eq!(
        ids(&s, &rep, json!({"search": "ada@engines"})).await,
        vec![a_id.clone()]
    );
    // node(id) serves leads.
    let d = ok(
        &s,
        &rep,
        "query($id:ID!){ node(id:$id) { id ... on Lead { company } } }",
        json!({"id": a_id}),
    )
    .await;
    assert_eq!(d["node"]["company"], "Engines Ltd");

    // The recycle bin.
    let d = ok(
        &s,
        &rep,
        "mutation($id:ID!){ deleteLead(id:$id, version: 1) { deletedAt } }",
        json!({"id": a_id}),
    )
    .await;
    assert!(d["deleteLead"]["deletedAt"].is_string());
    assert_eq!(ids(&s, &rep, json!({})).await, vec![b_id.clone()]);
    assert_eq!(
        ids(&s, &rep, json!({"deleted": true})).await,
        vec![a_id.clone()]
    );
    // Restoring and purging are left to admins (as for accounts).
    let r = s
        .gql(
            Some(&rep),
            "mutation($id:ID!){ restoreLead(id:$id) { id } }",
            json!({"id": a_id}),
        )
        .await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    ok(
        &s,
        &admin,
        "mutation($id:ID!){ restoreLead(id:$id) { id } }",
        json!({"id": a_id}),
    )
    .await;
    assert_eq!(ids(&s, &rep, json!({})).await.len(), 2);
    // Purging needs the lead in the bin first.
    let r = s
        .gql(
            Some(&admin),
            "mutation($id:ID!){ purgeLead(id:$id) }",
            json!({"id": a_id}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    ok(
        &s,
        &admin,
        "mutation($id:ID!){ deleteLead(id:$id, version: 3) { id } }",
        json!({"id": a_id}),
    )
    .await;
    ok(
        &s,
        &admin,
        "mutation($id:ID!){ purgeLead(id:$id) }",
        json!({"id": a_id}),
    )
    .await;
    assert_eq!(
        s.db.scalar(&format!(
            "SELECT COUNT(*) AS n FROM leads WHERE id = '{a_id}'"
        ))
        .await,
        0
    );
});

both!(
    team_queues_are_seen_by_the_teams_reps_only,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let east = team(&s, &admin, "East").await;
        let west = team(&s, &admin, "West").await;
        let east_rep = team_user(&s, &admin, "east@test.example", "sales_rep", &east).await;
        let west_rep = team_user(&s, &admin, "west@test.example", "sales_rep", &west).await;
        let east_mgr = team_user(&s, &admin, "boss@test.example", "sales_manager", &east).await;
        // A lead given only a team waits unowned in that team's queue.
        let q = lead(&s, &admin, json!({"company": "Queued Co", "teamId": east})).await;
        assert!(q["ownerId"].is_null(), "{q}");
        assert_eq!(q["teamId"], json!(east));
        let q_id = q["id"].as_str().unwrap().to_owned();
        assert_eq!(
            ids(&s, &east_rep, json!({"queued": true})).await,
            vec![q_id.clone()]
        );
        assert_eq!(ids(&s, &east_mgr, json!({})).await, vec![q_id.clone()]);
        assert!(ids(&s, &west_rep, json!({})).await.is_empty());
        let r = s
            .gql(
                Some(&west_rep),
                "query($id:ID!){ lead(id:$id) { id } }",
                json!({"id": q_id}),
            )
            .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        // An east rep takes it from the queue; then it is theirs only.
        let me = ok(&s, &east_rep, "{ me { id } }", json!({})).await["me"]["id"].clone();
        let d = ok(
            &s,
            &east_rep,
            "mutation($i:UpdateLeadInput!){ updateLead(input:$i) { ownerId version } }",
            json!({"i": {"id": q_id, "version": 1, "ownerId": me}}),
        )
        .await;
        assert_eq!(d["updateLead"]["ownerId"], me);
        assert!(ids(&s, &east_rep, json!({"queued": true})).await.is_empty());
        assert_eq!(ids(&s, &east_rep, json!({})).await, vec![q_id.clone()]);
        // Unowned without a team is refused.
        let r = s
            .gql(
                Some(&east_rep),
                "mutation($i:UpdateLeadInput!){ updateLead(input:$i) { id } }",
                json!({"i": {"id": q_id, "version": 2, "ownerId": null, "teamId": null}}),
            )
            .await;
        assert_eq!(fields(&r), vec!["ownerId"], "{r}");
    }
);

both!(
    conversion_creates_account_contact_and_opportunity,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let (p, stage) = pipeline(&s, &admin).await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let l = lead(
        &s,
        &rep,
        json!({"firstName": "Grace", "lastName": "Hopper", "title": "CTO", "company": "Cobol Corp",
               "industry": "Software", "website": "cobol.example", "country": "US",
               "emails": [{"kind": "WORK", "value": "grace@cobol.example"}]}),
    )
    .await;
        let id = l["id"].as_str().unwrap().to_owned();
        // A timeline entry about the lead moves to the contact.
        ok(
        &s,
        &rep,
        "mutation($i:CreateActivityInput!){ logActivity(input:$i) { id } }",
        json!({"i": {"kind": "CALL", "subjectType": "LEAD", "subjectId": id, "title": "First call",
                     "occurredAt": "2026-01-01T10:00:00Z"}}),
    )
    .await;
        let d = ok(
        &s,
        &rep,
        CONVERT,
        json!({"i": {"id": id, "version": 1, "opportunity": {"name": "Cobol deal", "pipelineId": p,
               "amount": {"amountMinor": 500000, "currency": "USD"}, "closeDate": "2027-03-01"}}}),
    )
    .await;
        let c = &d["convertLead"];
        assert_eq!(c["lead"]["status"], "CONVERTED", "{c}");
        assert!(c["lead"]["convertedAt"].is_string(), "{c}");
        assert_eq!(c["account"]["name"], "Cobol Corp", "{c}");
        assert_eq!(c["account"]["industry"], "Software", "{c}");
        assert_eq!(c["contact"]["lastName"], "Hopper", "{c}");
        assert_eq!(c["contact"]["accountId"], c["account"]["id"], "{c}");
        assert_eq!(c["contact"]["emails"][0]["value"], "grace@cobol.example");
        assert_eq!(c["opportunity"]["accountId"], c["account"]["id"], "{c}");
        assert_eq!(
            c["opportunity"]["primaryContactId"], c["contact"]["id"],
            "{c}"
        );
        assert_eq!(c["opportunity"]["stageId"], json!(stage), "{c}");
        assert_eq!(c["lead"]["convertedAccountId"], c["account"]["id"]);
        assert_eq!(c["lead"]["convertedContactId"], c["contact"]["id"]);
        assert_eq!(c["lead"]["convertedOpportunityId"], c["opportunity"]["id"]);
        let tl = "query($t:SubjectType!,$id:ID!){ timeline(subjectType:$t, subjectId:$id) { totalCount edges { node { title } } } }";
        let d = ok(
            &s,
            &rep,
            tl,
            json!({"t": "CONTACT", "id": c["contact"]["id"]}),
        )
        .await;
        assert_eq!(d["timeline"]["totalCount"], 1, "{d}");
        assert_eq!(d["timeline"]["edges"][0]["node"]["title"], "First call");
        let d = ok(&s, &rep, tl, json!({"t": "LEAD", "id": id})).await;
        assert_eq!(d["timeline"]["totalCount"], 0, "{d}");
        // Converting again: the version is stale.
        let before = counts(&s).await;
        let r = s
            .gql(Some(&rep), CONVERT, json!({"i": {"id": id, "version": 1}}))
            .await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        assert_eq!(counts(&s).await, before);
        // A converted lead stays converted.
        let r = s
            .gql(
                Some(&rep),
                "mutation($i:UpdateLeadInput!){ updateLead(input:$i) { id } }",
                json!({"i": {"id": id, "version": c["lead"]["version"], "status": "NEW"}}),
            )
            .await;
        assert_eq!(fields(&r), vec!["status"], "{r}");
    }
);

both!(
    conversion_into_an_existing_account_fills_only_empty_fields,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let acc = account(&s, &rep, json!({"name": "Acme", "industry": "Retail"})).await;
        let con = contact(
            &s,
            &rep,
            json!({"firstName": "Wile", "lastName": "Coyote", "title": "Engineer"}),
        )
        .await;
        let l = lead(
            &s,
            &rep,
            json!({"firstName": "W.", "lastName": "Coyote", "title": "Chief", "company": "ACME Inc",
                   "industry": "Software", "website": "acme.example",
                   "emails": [{"kind": "WORK", "value": "wile@acme.example"}]}),
        )
        .await;
        let d = ok(
            &s,
            &rep,
            CONVERT,
            json!({"i": {"id": l["id"], "version": 1, "accountId": acc, "contactId": con}}),
        )
        .await;
        let c = &d["convertLead"];
        assert_eq!(c["account"]["id"], json!(acc));
        assert_eq!(c["account"]["name"], "Acme", "{c}");
        assert_eq!(c["account"]["industry"], "Retail", "{c}");
        assert_eq!(c["account"]["website"], "acme.example", "{c}");
        assert_eq!(c["contact"]["id"], json!(con));
        assert_eq!(c["contact"]["firstName"], "Wile", "{c}");
        assert_eq!(c["contact"]["accountId"], json!(acc), "{c}");
        assert_eq!(
            c["contact"]["emails"][0]["value"], "wile@acme.example",
            "{c}"
        );
        assert!(c["opportunity"].is_null());
        let d = ok(
            &s,
            &rep,
            "query($id:ID!){ contact(id:$id) { title } }",
            json!({"id": con}),
        )
        .await;
        assert_eq!(d["contact"]["title"], "Engineer");
        assert_eq!(s.db.count("accounts").await, 1);
        assert_eq!(s.db.count("contacts").await, 1);
    }
);

both!(
    converting_into_another_reps_account_is_not_found_and_writes_nothing,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let (p, _) = pipeline(&s, &admin).await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let other = user(&s, &admin, "other@test.example", &["sales_rep"]).await;
        let theirs = account(&s, &other, json!({"name": "Theirs"})).await;
        let l = lead(
            &s,
            &rep,
            json!({"firstName": "Ann", "lastName": "Other", "company": "X"}),
        )
        .await;
        let before = counts(&s).await;
        let r = s
            .gql(
                Some(&rep),
                CONVERT,
                json!({"i": {"id": l["id"], "version": 1, "accountId": theirs,
                             "opportunity": {"name": "Sneaky", "pipelineId": p}}}),
            )
            .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        assert_eq!(counts(&s).await, before);
        let d = ok(
            &s,
            &rep,
            "query($id:ID!){ lead(id:$id) { status version } }",
            json!({"id": l["id"]}),
        )
        .await;
        assert_eq!(d["lead"], json!({"status": "NEW", "version": 1}));
        // Marketing creates and reads leads but may not convert them;
        // support sees none.
        let mkt = user(&s, &admin, "mkt@test.example", &["marketing"]).await;
        let m = lead(
            &s,
            &mkt,
            json!({"firstName": "Mo", "lastName": "Ket", "company": "Ads"}),
        )
        .await;
        let r = s
            .gql(
                Some(&mkt),
                CONVERT,
                json!({"i": {"id": m["id"], "version": 1}}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        assert_eq!(counts(&s).await[..3], before[..3]);
        assert_eq!(ids(&s, &mkt, json!({})).await.len(), 2);
        let support = user(&s, &admin, "support@test.example", &["support"]).await;
        let r = s
            .gql(
                Some(&support),
                "{ leads(first: 5) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
    }
);

both!(
    concurrent_conversions_give_one_conflict_and_no_duplicates,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let (p, _) = pipeline(&s, &admin).await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        for round in 0..3 {
            let l = lead(
            &s,
            &rep,
            json!({"firstName": "Race", "lastName": format!("Condition {round}"), "company": format!("Race {round}")}),
        )
        .await;
            let vars = json!({"i": {"id": l["id"], "version": 1,
                                "opportunity": {"name": "Race deal", "pipelineId": p}}});
            let (a, b2) = tokio::join!(
                s.gql(Some(&rep), CONVERT, vars.clone()),
                s.gql(Some(&rep), CONVERT, vars.clone())
            );
            let codes: Vec<&str> = [&a, &b2]
                .iter()
                .map(|r| if r["errors"].is_null() { "OK" } else { code(r) })
                .collect();
            let mut sorted = codes.clone();
            sorted.sort();
            assert_eq!(sorted, vec!["CONFLICT", "OK"], "{a} {b2}");
            let n = round + 1;
            assert_eq!(s.db.count("accounts").await, n);
            assert_eq!(s.db.count("contacts").await, n);
            assert_eq!(s.db.count("opportunities").await, n);
        }
    }
);

both!(
    duplicates_are_linked_for_who_may_read_both,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let other = user(&s, &admin, "other@test.example", &["sales_rep"]).await;
        let con = contact(
            &s,
            &rep,
            json!({"firstName": "Dup", "lastName": "Person",
               "emails": [{"kind": "WORK", "value": "dup_person@example.com"}]}),
        )
        .await;
        // Same email, other case: the contact matches.
        let a = lead(
            &s,
            &rep,
            json!({"lastName": "Person", "company": "Globex, Inc.",
               "emails": [{"kind": "HOME", "value": "DUP_PERSON@example.com"}]}),
        )
        .await;
        assert_eq!(a["matchedContactId"], json!(con), "{a}");
        assert!(a["duplicateOf"].is_null(), "{a}");
        // A wildcard look-alike matches nothing.
        let x = lead(
        &s,
        &rep,
        json!({"lastName": "Else", "emails": [{"kind": "WORK", "value": "dupxperson@example.com"}]}),
    )
    .await;
        assert!(x["matchedContactId"].is_null(), "{x}");
        assert!(x["duplicateOf"].is_null(), "{x}");
        // The normalised company name: another lead of the same company.
        let b2 = lead(&s, &rep, json!({"lastName": "Second", "company": "GLOBEX"})).await;
        assert_eq!(b2["duplicateOf"], a["id"], "{b2}");
        assert!(b2["matchedContactId"].is_null());
        // A lead the other rep creates with the same email: the links exist,
        // but that rep may read neither the contact nor the older lead.
        let c = lead(
        &s,
        &other,
        json!({"lastName": "Third", "emails": [{"kind": "WORK", "value": "dup_person@example.com"}]}),
    )
    .await;
        assert!(c["matchedContactId"].is_null(), "{c}");
        assert!(c["duplicateOf"].is_null(), "{c}");
        let d = ok(
            &s,
            &admin,
            "query($id:ID!){ lead(id:$id) { matchedContactId duplicateOf } }",
            json!({"id": c["id"]}),
        )
        .await;
        assert_eq!(d["lead"]["matchedContactId"], json!(con), "{d}");
        assert_eq!(d["lead"]["duplicateOf"], a["id"], "{d}");

        // Imports go through the same check.
        let file = "First name,Last name,Email,Phone,Company\n\
                Imp,Orted,someone@else.example,,Globex\n\
                New,Comer,new@comer.example,,Fresh Co\n";
        let r = s
            .upload(
                Some(&rep),
                "mutation($file:Upload!){ importLeads(file:$file) { id } }",
                json!({}),
                "file",
                "leads.csv",
                file.as_bytes().to_vec(),
            )
            .await;
        let job = r["data"]["importLeads"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_owned();
        let j = s.wait_job(&rep, "importJob", &job).await;
        assert_eq!(j["status"], "SUCCEEDED", "{j}");
        assert_eq!(j["created"], 2, "{j}");
        let d = ok(
        &s,
        &rep,
        &format!("{{ leads(first: 10, filter:{{source: IMPORT}}) {{ edges {{ node {{ {LEAD} }} }} }} }}"),
        json!({}),
    )
    .await;
        let rows = d["leads"]["edges"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{d}");
        let imported = rows
            .iter()
            .find(|e| e["node"]["lastName"] == "Orted")
            .unwrap();
        assert_eq!(imported["node"]["duplicateOf"], a["id"], "{d}");
        let fresh = rows
            .iter()
            .find(|e| e["node"]["lastName"] == "Comer")
            .unwrap();
        assert!(fresh["node"]["duplicateOf"].is_null(), "{d}");
    }
);

both!(
    a_reps_lead_events_never_carry_another_reps_lead,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let other = user(&s, &admin, "other@test.example", &["sales_rep"]).await;
        let events = "subscription($a:String){ leadEvents(after:$a) { kind entityType entityId } }";
        let mut ws = Ws::init(s.addr(), &rep).await;
        ws.subscribe("1", events, json!({"a": s.db.head().await}))
            .await;
        let theirs = lead(&s, &other, json!({"lastName": "Theirs"})).await;
        ok(
            &s,
            &other,
            "mutation($id:ID!){ deleteLead(id:$id, version: 1) { id } }",
            json!({"id": theirs["id"]}),
        )
        .await;
        let mine = lead(&s, &rep, json!({"lastName": "Mine"})).await;
        let m = ws.recv().await.unwrap();
        assert_eq!(m["type"], "next", "{m}");
        let e = &m["payload"]["data"]["leadEvents"];
        assert_eq!(e["kind"], "lead.created", "{e}");
        assert_eq!(e["entityId"], mine["id"], "{e}");
        let extra = tokio::time::timeout(std::time::Duration::from_millis(700), ws.recv()).await;
        assert!(extra.is_err(), "unexpected message: {extra:?}");
        ws.close().await;
        // The admin's stream has all three.
        let mut aws = Ws::init(s.addr(), &admin).await;
        aws.subscribe("1", events, json!({"a": "0"})).await;
        let mut kinds = Vec::new();
        for _ in 0..3 {
            let m = aws.recv().await.unwrap();
            kinds.push(
                m["payload"]["data"]["leadEvents"]["kind"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(kinds, vec!["lead.created", "lead.deleted", "lead.created"]);
    }
);
