//! Lead scoring over HTTP: fixed fit rules give exact fit scores and
//! explanations (and follow lead writes and rule changes in the same
//! transaction), engagement from logged activities decays by the
//! half-life to exact numbers (at read time and when persisted "as of" a
//! time), grade thresholds, filters by stored score and grade, who may
//! manage rules and who sees scores, and VALIDATION / CONFLICT on bad
//! input.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const RULE: &str = "id version name kind active field operator values event points";

const SCORES: &str =
    "id fitScore engagementScore score grade scoreExplanation { ruleId rule kind points }";

async fn user(s: &TestServer, admin: &str, email: &str, roles: &[&str]) -> String {
    s.create_user(admin, email, roles).await;
    s.login(email, "user-password-1").await
}

async fn create_rule(s: &TestServer, token: &str, input: Value) -> Value {
    s.gql(
        Some(token),
        &format!(
            "mutation($i:CreateScoringRuleInput!){{ createScoringRule(input:$i) {{ {RULE} }} }}"
        ),
        json!({"i": input}),
    )
    .await
}

async fn rule(s: &TestServer, token: &str, input: Value) -> Value {
    let r = create_rule(s, token, input).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["createScoringRule"].clone()
}

async fn lead(s: &TestServer, token: &str, input: Value) -> Value {
    ok(
        s,
        token,
        &format!("mutation($i:CreateLeadInput!){{ createLead(input:$i) {{ version {SCORES} }} }}"),
        json!({"i": input}),
    )
    .await["createLead"]
        .clone()
}

async fn scores(s: &TestServer, token: &str, id: &str) -> Value {
    ok(
        s,
        token,
        &format!("query($id:ID!){{ lead(id:$id) {{ version {SCORES} }} }}"),
        json!({"id": id}),
    )
    .await["lead"]
        .clone()
}

/// The explanation as (rule, kind, points) triples.
fn explained(l: &Value) -> Vec<(String, String, f64)> {
    l["scoreExplanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["rule"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
                c["points"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn e(rule: &str, kind: &str, points: f64) -> (String, String, f64) {
    (rule.to_owned(), kind.to_owned(), points)
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
    f.dedup();
    f
}

async fn settings(s: &TestServer, token: &str, input: Value) -> Value {
    s.gql(
        Some(token),
        "mutation($i:UpdateScoringSettingsInput!){ updateScoringSettings(input:$i) { halfLifeDays gradeA gradeB gradeC gradeD version } }",
        json!({"i": input}),
    )
    .await
}

async fn settings_version(s: &TestServer, token: &str) -> i64 {
    ok(s, token, "{ scoringSettings { version } }", json!({})).await["scoringSettings"]["version"]
        .as_i64()
        .unwrap()
}

async fn filtered(s: &TestServer, token: &str, filter: Value) -> Vec<String> {
    let d = ok(
        s,
        token,
        "query($f:LeadFilterInput){ leads(first:50, filter:$f) { edges { node { id } } } }",
        json!({"f": filter}),
    )
    .await;
    let mut v: Vec<String> = d["leads"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// Stored engagement of a lead in thousandths of a point.
async fn stored_engagement(s: &TestServer, id: &str) -> i64 {
    s.db.scalar(&format!(
        "SELECT CAST(ROUND(engagement * 1000) AS BIGINT) AS n FROM lead_scores WHERE lead_id = '{id}'"
    ))
    .await
}

both!(
    fit_rules_give_exact_scores_and_explanations,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let mkt = user(&s, &admin, "mkt@example.com", &["marketing"]).await;
        let industry = rule(
            &s,
            &mkt,
            json!({"name": "Target industry", "kind": "FIT", "field": "INDUSTRY",
               "operator": "IN", "values": ["Software", "Fintech"], "points": 10}),
        )
        .await;
        assert_eq!(industry["values"], json!(["Software", "Fintech"]));
        rule(
            &s,
            &mkt,
            json!({"name": "Mid-size or larger", "kind": "FIT", "field": "SIZE_BAND",
               "operator": "AT_LEAST", "values": ["medium"], "points": 15}),
        )
        .await;
        rule(
            &s,
            &mkt,
            json!({"name": "Free mail", "kind": "FIT", "field": "EMAIL",
               "operator": "FREE_MAIL", "points": -10}),
        )
        .await;
        let domain = rule(
            &s,
            &mkt,
            json!({"name": "Known domain", "kind": "FIT", "field": "EMAIL",
               "operator": "EMAIL_DOMAIN_IN", "values": ["@Acme.example"], "points": 20}),
        )
        .await;
        assert_eq!(domain["values"], json!(["acme.example"]));
        rule(
            &s,
            &mkt,
            json!({"name": "Outside DE", "kind": "FIT", "field": "COUNTRY",
               "operator": "NOT_IN", "values": ["de"], "points": 5}),
        )
        .await;

        // 10 + 15 + 20 + 5, in rule order.
        let a = lead(
            &s,
            &admin,
            json!({"lastName": "Able", "company": "Acme", "industry": "software",
               "sizeBand": "LARGE", "country": "FR",
               "emails": [{"kind": "WORK", "value": "ann@acme.example"}]}),
        )
        .await;
        assert_eq!(a["fitScore"], 50, "{a}");
        assert_eq!(a["engagementScore"], 0);
        assert_eq!(a["score"], 50);
        assert_eq!(a["grade"], "C");
        assert_eq!(
            explained(&a),
            vec![
                e("Target industry", "FIT", 10.0),
                e("Mid-size or larger", "FIT", 15.0),
                e("Known domain", "FIT", 20.0),
                e("Outside DE", "FIT", 5.0),
            ]
        );
        assert_eq!(a["scoreExplanation"][0]["ruleId"], industry["id"]);
        let a_id = a["id"].as_str().unwrap().to_owned();

        // Only the free mail rule: -10, clamped to 0; no country, so NOT_IN
        // does not match.
        let b_lead = lead(
            &s,
            &admin,
            json!({"lastName": "Baker", "industry": "Retail", "sizeBand": "SMALL",
               "emails": [{"kind": "HOME", "value": "bob@gmail.com"}]}),
        )
        .await;
        assert_eq!(b_lead["fitScore"], 0, "{b_lead}");
        assert_eq!(b_lead["grade"], "F");
        assert_eq!(explained(&b_lead), vec![e("Free mail", "FIT", -10.0)]);
        let b_id = b_lead["id"].as_str().unwrap().to_owned();

        // A lead update re-scores it in its transaction: 10 + 15 - 10.
        let u = ok(
            &s,
            &admin,
            &format!("mutation($i:UpdateLeadInput!){{ updateLead(input:$i) {{ {SCORES} }} }}"),
            json!({"i": {"id": b_id, "version": b_lead["version"], "industry": "Fintech",
                     "sizeBand": "ENTERPRISE", "country": "DE"}}),
        )
        .await["updateLead"]
            .clone();
        assert_eq!(u["fitScore"], 15, "{u}");
        assert_eq!(u["grade"], "F");

        // A rule change re-scores every lead at once.
        let r = ok(
            &s,
            &mkt,
            &format!(
                "mutation($i:UpdateScoringRuleInput!){{ updateScoringRule(input:$i) {{ {RULE} }} }}"
            ),
            json!({"i": {"id": industry["id"], "version": industry["version"], "points": 30}}),
        )
        .await;
        assert_eq!(r["updateScoringRule"]["points"], 30);
        assert_eq!(scores(&s, &admin, &a_id).await["fitScore"], 70);
        assert_eq!(scores(&s, &admin, &b_id).await["fitScore"], 35);
        // The same version again is stale.
        let stale = s
            .gql(
                Some(&mkt),
                "mutation($i:UpdateScoringRuleInput!){ updateScoringRule(input:$i) { id } }",
                json!({"i": {"id": industry["id"], "version": industry["version"], "points": 1}}),
            )
            .await;
        assert_eq!(code(&stale), "CONFLICT", "{stale}");
        assert_eq!(scores(&s, &admin, &a_id).await["fitScore"], 70);

        // Deleting a rule takes its points away from every lead.
        ok(
            &s,
            &mkt,
            "mutation($id:ID!,$v:Int!){ deleteScoringRule(id:$id, version:$v) }",
            json!({"id": domain["id"], "v": domain["version"]}),
        )
        .await;
        let a = scores(&s, &admin, &a_id).await;
        assert_eq!(a["fitScore"], 50, "{a}");
        assert_eq!(
            explained(&a),
            vec![
                e("Target industry", "FIT", 30.0),
                e("Mid-size or larger", "FIT", 15.0),
                e("Outside DE", "FIT", 5.0),
            ]
        );
        // An inactive rule scores nothing.
        let rules = ok(
            &s,
            &mkt,
            &format!("{{ scoringRules(kind: FIT) {{ {RULE} }} }}"),
            json!({}),
        )
        .await["scoringRules"]
            .clone();
        assert_eq!(rules.as_array().unwrap().len(), 4);
        let outside = rules
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "Outside DE")
            .unwrap()
            .clone();
        ok(
            &s,
            &mkt,
            "mutation($i:UpdateScoringRuleInput!){ updateScoringRule(input:$i) { id } }",
            json!({"i": {"id": outside["id"], "version": outside["version"], "active": false}}),
        )
        .await;
        assert_eq!(scores(&s, &admin, &a_id).await["fitScore"], 45);

        // Grades follow the thresholds: defaults 80/60/40/20.
        assert_eq!(scores(&s, &admin, &a_id).await["grade"], "C");
        assert_eq!(scores(&s, &admin, &b_id).await["grade"], "D");
        let v = settings_version(&s, &mkt).await;
        let r = settings(
            &s,
            &mkt,
            json!({"version": v, "gradeB": 45, "gradeC": 30, "gradeD": 5}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        assert_eq!(
            r["data"]["updateScoringSettings"],
            json!({"halfLifeDays": 30, "gradeA": 80, "gradeB": 45, "gradeC": 30, "gradeD": 5,
               "version": v + 1})
        );
        assert_eq!(scores(&s, &admin, &a_id).await["grade"], "B");
        assert_eq!(scores(&s, &admin, &b_id).await["grade"], "C");
        // Stored scores and grades (regraded with the settings) filter lists.
        assert_eq!(
            filtered(&s, &admin, json!({"grade": ["B"]})).await,
            vec![a_id.clone()]
        );
        assert_eq!(
            filtered(&s, &admin, json!({"grade": ["C", "D"]})).await,
            vec![b_id.clone()]
        );
        assert_eq!(
            filtered(&s, &admin, json!({"minScore": 40})).await,
            vec![a_id.clone()]
        );
        let mut both_ids = vec![a_id.clone(), b_id.clone()];
        both_ids.sort();
        assert_eq!(
            filtered(&s, &admin, json!({"minScore": 35})).await,
            both_ids
        );

        // A stale settings version and thresholds out of order change nothing.
        let r = settings(&s, &mkt, json!({"version": v, "gradeA": 90})).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        let r = settings(&s, &mkt, json!({"version": v + 1, "gradeA": 40})).await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let r = settings(&s, &mkt, json!({"version": v + 1, "halfLifeDays": 0})).await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(fields(&r), vec!["halfLifeDays"]);
        assert_eq!(settings_version(&s, &mkt).await, v + 1);
        assert_eq!(scores(&s, &admin, &a_id).await["grade"], "B");
    }
);

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

both!(engagement_decays_by_the_half_life, |b| async move {
    // The periodic decay is off, so stored values change only as asked.
    let s = server!(b, &[("lead-score-decay-secs", "0")]);
    let admin = s.admin().await;
    let mkt = user(&s, &admin, "mkt@example.com", &["marketing"]).await;
    let v = settings_version(&s, &mkt).await;
    let r = settings(&s, &mkt, json!({"version": v, "halfLifeDays": 10})).await;
    assert!(r["errors"].is_null(), "{r}");
    rule(
        &s,
        &mkt,
        json!({"name": "Logged activity", "kind": "ENGAGEMENT",
               "event": "ACTIVITY_LOGGED", "points": 40}),
    )
    .await;
    let l = lead(
        &s,
        &admin,
        json!({"lastName": "Engaged", "company": "Busy Ltd"}),
    )
    .await;
    let id = l["id"].as_str().unwrap().to_owned();
    assert_eq!(l["engagementScore"], 0);
    let log = |kind: &'static str, when: DateTime<Utc>| {
        let (s, admin, id) = (&s, &admin, &id);
        async move {
            ok(
                s,
                admin,
                "mutation($i:CreateActivityInput!){ logActivity(input:$i) { id } }",
                json!({"i": {"kind": kind, "subjectType": "LEAD", "subjectId": id,
                             "title": "touch", "occurredAt": at(when)}}),
            )
            .await;
        }
    };

    // A call 30 days ago: 40 points stored as of then; three half-lives
    // later 5 are left.
    let t0 = Utc::now().trunc_subsecs(0) - Duration::days(30);
    log("CALL", t0).await;
    assert_eq!(stored_engagement(&s, &id).await, 40_000);
    let now = scores(&s, &admin, &id).await;
    assert_eq!(now["engagementScore"], 5, "{now}");
    assert_eq!(now["score"], 5);
    assert_eq!(now["grade"], "F");
    assert_eq!(
        explained(&now),
        vec![e("Logged activity", "ENGAGEMENT", 5.0)]
    );

    // A task is not engagement.
    log("TASK", t0 + Duration::days(29)).await;
    assert_eq!(stored_engagement(&s, &id).await, 40_000);

    // Persisting the decay as of 10 days after the call halves the stored
    // value and leaves what a reader sees unchanged; as of an earlier
    // time, nothing is older, so nothing changes.
    let n = ok(
        &s,
        &mkt,
        "mutation($t:DateTime){ applyScoreDecay(asOf:$t) }",
        json!({"t": at(t0 + Duration::days(10))}),
    )
    .await;
    assert_eq!(n["applyScoreDecay"], 1);
    assert_eq!(stored_engagement(&s, &id).await, 20_000);
    assert_eq!(scores(&s, &admin, &id).await["engagementScore"], 5);
    let n = ok(
        &s,
        &mkt,
        "mutation($t:DateTime){ applyScoreDecay(asOf:$t) }",
        json!({"t": at(t0 + Duration::days(5))}),
    )
    .await;
    assert_eq!(n["applyScoreDecay"], 0);
    assert_eq!(stored_engagement(&s, &id).await, 20_000);
    let r = s
        .gql(
            Some(&mkt),
            "mutation($t:DateTime){ applyScoreDecay(asOf:$t) }",
            json!({"t": at(Utc::now() + Duration::days(1))}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");

    // A meeting 20 days after the call: 20 halved to 10, plus 40 = 50 as
    // of then; 10 days later (now) 25.
    log("MEETING", t0 + Duration::days(20)).await;
    assert_eq!(stored_engagement(&s, &id).await, 50_000);
    let now = scores(&s, &admin, &id).await;
    assert_eq!(now["engagementScore"], 25, "{now}");
    assert_eq!(
        explained(&now),
        vec![e("Logged activity", "ENGAGEMENT", 25.0)]
    );

    // A back-dated note (at the first call) adds what is left of its
    // points at the stored time: 40 / 4 = 10.
    log("NOTE", t0).await;
    assert_eq!(stored_engagement(&s, &id).await, 60_000);
    let now = scores(&s, &admin, &id).await;
    assert_eq!(now["engagementScore"], 30, "{now}");
    assert_eq!(now["score"], 30);
    assert_eq!(now["grade"], "D");

    // Fit and engagement add up: a fit rule of 55 makes 85, grade A.
    rule(
        &s,
        &mkt,
        json!({"name": "Has company", "kind": "FIT", "field": "COMPANY",
               "operator": "PRESENT", "points": 55}),
    )
    .await;
    let now = scores(&s, &admin, &id).await;
    assert_eq!(
        (now["fitScore"].clone(), now["score"].clone()),
        (json!(55), json!(85)),
        "{now}"
    );
    assert_eq!(now["grade"], "A");
    assert_eq!(
        explained(&now),
        vec![
            e("Has company", "FIT", 55.0),
            e("Logged activity", "ENGAGEMENT", 30.0)
        ]
    );
});

both!(who_manages_rules_and_who_sees_scores, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let mkt = user(&s, &admin, "mkt@example.com", &["marketing"]).await;
    let rep = user(&s, &admin, "rep@example.com", &["sales_rep"]).await;
    let other = user(&s, &admin, "other@example.com", &["sales_rep"]).await;

    let fit = json!({"name": "Software", "kind": "FIT", "field": "INDUSTRY",
                     "operator": "EQUALS", "values": ["Software"], "points": 25});
    let r = create_rule(&s, &rep, fit.clone()).await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    let r = s
        .gql(
            Some(&rep),
            &format!("{{ scoringRules {{ {RULE} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    let r = settings(&s, &rep, json!({"version": 1, "halfLifeDays": 3})).await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    let r = s
        .gql(Some(&rep), "mutation { applyScoreDecay }", json!({}))
        .await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    assert_eq!(s.db.count("scoring_rules").await, 0);
    assert_eq!(s.db.count("scoring_settings").await, 0);
    let created = rule(&s, &mkt, fit).await;
    assert_eq!(created["kind"], "FIT");

    // Each rep sees scores on its own leads only.
    let mine = lead(
        &s,
        &rep,
        json!({"lastName": "Mine", "industry": "Software"}),
    )
    .await;
    assert_eq!(mine["fitScore"], 25);
    let theirs = lead(
        &s,
        &other,
        json!({"lastName": "Theirs", "industry": "Software"}),
    )
    .await;
    let seen = ok(
        &s,
        &rep,
        "{ leads(first:10) { edges { node { id fitScore score grade scoreExplanation { rule points } } } } }",
        json!({}),
    )
    .await;
    let edges = seen["leads"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{seen}");
    assert_eq!(edges[0]["node"]["id"], mine["id"]);
    assert_eq!(edges[0]["node"]["score"], 25);
    assert_eq!(
        edges[0]["node"]["scoreExplanation"],
        json!([{"rule": "Software", "points": 25.0}])
    );
    let r = s
        .gql(
            Some(&rep),
            "query($id:ID!){ lead(id:$id) { fitScore } }",
            json!({"id": theirs["id"]}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    // Filters by score apply the row scope too.
    assert_eq!(
        filtered(&s, &rep, json!({"minScore": 20})).await,
        vec![mine["id"].as_str().unwrap().to_owned()]
    );
});

both!(bad_rules_are_refused_whole, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let mkt = user(&s, &admin, "mkt@example.com", &["marketing"]).await;
    let cases = [
        (
            json!({"name": "No field", "kind": "FIT", "operator": "IN", "values": ["x"], "points": 5}),
            vec!["field"],
        ),
        (
            json!({"name": "Band on industry", "kind": "FIT", "field": "INDUSTRY",
                   "operator": "AT_LEAST", "values": ["x"], "points": 5}),
            vec!["operator"],
        ),
        (
            json!({"name": "Bad band", "kind": "FIT", "field": "SIZE_BAND",
                   "operator": "IN", "values": ["huge"], "points": 5}),
            vec!["values"],
        ),
        (
            json!({"name": "Two for equals", "kind": "FIT", "field": "CITY",
                   "operator": "EQUALS", "values": ["Paris", "Lyon"], "points": 5}),
            vec!["values"],
        ),
        (
            json!({"name": "Zero", "kind": "FIT", "field": "CITY",
                   "operator": "PRESENT", "points": 0}),
            vec!["points"],
        ),
        (
            json!({"name": " ", "kind": "FIT", "field": "CITY",
                   "operator": "PRESENT", "points": 101}),
            vec!["name", "points"],
        ),
        (
            json!({"name": "Event with a field", "kind": "ENGAGEMENT", "field": "CITY",
                   "event": "FORM_SUBMITTED", "points": 5}),
            vec!["field"],
        ),
        (
            json!({"name": "No event", "kind": "ENGAGEMENT", "points": 5}),
            vec!["event"],
        ),
        (
            json!({"name": "Fit with event", "kind": "FIT", "field": "CITY",
                   "operator": "PRESENT", "event": "EMAIL_OPENED", "points": 5}),
            vec!["event"],
        ),
        (
            json!({"name": "Bad domain", "kind": "FIT", "field": "EMAIL",
                   "operator": "EMAIL_DOMAIN_IN", "values": ["not a domain"], "points": 5}),
            vec!["values"],
        ),
    ];
    for (input, want) in cases {
        let r = create_rule(&s, &mkt, input.clone()).await;
        assert_eq!(code(&r), "VALIDATION", "{input}: {r}");
        assert_eq!(fields(&r), want, "{input}: {r}");
    }
    assert_eq!(s.db.count("scoring_rules").await, 0);

    // An update that breaks a rule changes nothing; a rule keeps its kind.
    let ok_rule = rule(
        &s,
        &mkt,
        json!({"name": "Paris", "kind": "FIT", "field": "CITY", "operator": "EQUALS",
               "values": ["Paris"], "points": 5}),
    )
    .await;
    let r = s
        .gql(
            Some(&mkt),
            "mutation($i:UpdateScoringRuleInput!){ updateScoringRule(input:$i) { id } }",
            json!({"i": {"id": ok_rule["id"], "version": ok_rule["version"], "operator": "FREE_MAIL"}}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    let r = s
        .gql(
            Some(&mkt),
            "mutation($i:UpdateScoringRuleInput!){ updateScoringRule(input:$i) { id } }",
            json!({"i": {"id": ok_rule["id"], "version": ok_rule["version"], "event": "EMAIL_OPENED"}}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    let now = ok(
        &s,
        &mkt,
        &format!("query($id:ID!){{ scoringRule(id:$id) {{ {RULE} }} }}"),
        json!({"id": ok_rule["id"]}),
    )
    .await;
    assert_eq!(now["scoringRule"], ok_rule);
});

both!(
    the_decay_task_persists_decay_on_one_of_the_replicas,
    |b| async move {
        let s = server!(b, &[("lead-score-decay-secs", "2")]);
        let _replica = s.replica(&[("lead-score-decay-secs", "2")]).await;
        let admin = s.admin().await;
        let mkt = user(&s, &admin, "mkt@example.com", &["marketing"]).await;
        let v = settings_version(&s, &mkt).await;
        let r = settings(&s, &mkt, json!({"version": v, "halfLifeDays": 10})).await;
        assert!(r["errors"].is_null(), "{r}");
        rule(
            &s,
            &mkt,
            json!({"name": "Form", "kind": "ENGAGEMENT", "event": "ACTIVITY_LOGGED", "points": 40}),
        )
        .await;
        let l = lead(&s, &admin, json!({"lastName": "Decaying"})).await;
        let id = l["id"].as_str().unwrap().to_owned();
        let t0 = Utc::now().trunc_subsecs(0) - Duration::days(30);
        ok(
            &s,
            &admin,
            "mutation($i:CreateActivityInput!){ logActivity(input:$i) { id } }",
            json!({"i": {"kind": "EMAIL", "subjectType": "LEAD", "subjectId": id,
                     "title": "replied", "occurredAt": at(t0)}}),
        )
        .await;
        // Wait (bounded) for a replica's task to persist it: 40 points three
        // half-lives ago are 5 now.
        let mut stored = 40_000;
        for _ in 0..120 {
            stored = stored_engagement(&s, &id).await;
            if stored < 40_000 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert!(
            (4_990..=5_000).contains(&stored),
            "stored engagement {stored}"
        );
        assert_eq!(
            s.db.scalar(
                "SELECT COUNT(*) AS n FROM scoring_settings WHERE decay_period IS NOT NULL"
            )
            .await,
            1
        );
        let now = scores(&s, &admin, &id).await;
        assert_eq!(now["engagementScore"], 5, "{now}");
        assert_eq!(
            filtered(&s, &admin, json!({"minScore": 5})).await,
            vec![id.clone()]
        );
        assert_eq!(
            filtered(&s, &admin, json!({"minScore": 6})).await,
            Vec::<String>::new()
        );
    }
);
