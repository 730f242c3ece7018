//! Forecasts over HTTP: a fixed data set (two teams in a tree, three reps,
//! deals in several stages, currencies and months) whose figures equal
//! hand-computed values per owner and rolled up the team tree, under each
//! role's row scope; quotas with attainment and version CONFLICT;
//! managers' adjustments with their history.

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const ROWS: &str = "level period periodStart periodEnd ownerId teamId \
    closedWon { amountMinor currency } commit { amountMinor currency } \
    bestCase { amountMinor currency } pipeline { amountMinor currency } \
    weighted { amountMinor currency } closedWonCount commitCount bestCaseCount \
    pipelineCount lostCount quota { amountMinor currency } attainment { currency ratio } \
    adjustments { figure amount { amountMinor currency } note authorId }";

fn forecast_query() -> String {
    format!(
        "query($p:ForecastPeriod!,$f:NaiveDate!,$t:NaiveDate!,$team:ID,$o:ID){{ \
         forecast(period:$p, from:$f, to:$t, teamId:$team, ownerId:$o) {{ periods rows {{ {ROWS} }} }} }}"
    )
}

fn m(v: i64, c: &str) -> Value {
    json!({"amountMinor": v, "currency": c})
}

/// The rows of one period, as (level, subject) → row.
fn rows_of<'a>(f: &'a Value, period: &str) -> Vec<(String, &'a Value)> {
    f["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["period"] == period)
        .map(|r| {
            let who = match r["level"].as_str().unwrap() {
                "TOTAL" => "total".to_owned(),
                "TEAM" => r["teamId"].as_str().unwrap().to_owned(),
                _ => r["ownerId"].as_str().unwrap().to_owned(),
            };
            (who, r)
        })
        .collect()
}

fn row<'a>(f: &'a Value, period: &str, who: &str) -> &'a Value {
    rows_of(f, period)
        .into_iter()
        .find(|(w, _)| w == who)
        .unwrap_or_else(|| panic!("no row {period} {who} in {f}"))
        .1
}

/// The subjects a period's rows should have: the total, then teams and
/// owners each by id.
fn order(teams: &[&String], owners: &[&String]) -> Vec<String> {
    let mut t: Vec<String> = teams.iter().map(|s| (*s).clone()).collect();
    t.sort();
    let mut o: Vec<String> = owners.iter().map(|s| (*s).clone()).collect();
    o.sort();
    let mut v = vec!["total".to_owned()];
    v.extend(t);
    v.extend(o);
    v
}

fn subjects(f: &Value, period: &str) -> Vec<String> {
    rows_of(f, period).into_iter().map(|(w, _)| w).collect()
}

/// Checks one row's figures: (closed won, commit, best case, pipeline,
/// weighted) and counts (won, commit, best case, pipeline, lost).
fn check(r: &Value, money: [Value; 5], counts: [i64; 5]) {
    let names = ["closedWon", "commit", "bestCase", "pipeline", "weighted"];
    for (n, want) in names.iter().zip(money) {
        assert_eq!(r[*n], want, "{n} of {r}");
    }
    let names = [
        "closedWonCount",
        "commitCount",
        "bestCaseCount",
        "pipelineCount",
        "lostCount",
    ];
    for (n, want) in names.iter().zip(counts) {
        assert_eq!(r[*n], want, "{n} of {r}");
    }
}

async fn id_of(s: &TestServer, token: &str, q: &str, vars: Value, field: &str) -> String {
    ok(s, token, q, vars).await[field]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

both!(
    forecasts_add_up_per_owner_and_team_tree_under_each_scope,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let team = |name: &str, parent: Option<&str>| {
            let (s, admin) = (&s, admin.clone());
            let (name, parent) = (name.to_owned(), parent.map(str::to_owned));
            async move {
                id_of(
                    s,
                    &admin,
                    "mutation($n:String!,$p:ID){ createTeam(input:{name:$n, parentId:$p}) { id } }",
                    json!({"n": name, "p": parent}),
                    "createTeam",
                )
                .await
            }
        };
        let sales = team("Sales", None).await;
        let east = team("East", Some(&sales)).await;
        let add = |email: &str, role: &str, team: Option<&str>| {
            let (s, admin) = (&s, admin.clone());
            let (email, role, team) = (email.to_owned(), role.to_owned(), team.map(str::to_owned));
            async move {
                let id = id_of(
                    s,
                    &admin,
                    "mutation($i:CreateUserInput!){ createUser(input:$i) { id } }",
                    json!({"i": {"email": email, "displayName": email,
                                 "password": "user-password-1", "roles": [role], "teamId": team}}),
                    "createUser",
                )
                .await;
                (id, s.login(&email, "user-password-1").await)
            }
        };
        let (mgr_id, mgr) = add("mgr@test.example", "sales_manager", Some(&sales)).await;
        let (_, mgr2) = add("mgr2@test.example", "sales_manager", Some(&east)).await;
        let (rep1_id, rep1) = add("rep1@test.example", "sales_rep", Some(&sales)).await;
        let (rep2_id, rep2) = add("rep2@test.example", "sales_rep", Some(&east)).await;
        let (rep3_id, rep3) = add("rep3@test.example", "sales_rep", Some(&east)).await;
        let (_, mkt) = add("mkt@test.example", "marketing", None).await;
        let (_, it) = add("it@test.example", "it_admin", None).await;

        // One pipeline: Qualify (10 %, PIPELINE), Proposal (50 %,
        // BEST_CASE), Negotiate (80 %, COMMIT), Won, Lost.
        let pipeline = id_of(
            &s,
            &admin,
            "mutation{ createPipeline(input:{name:\"New business\"}) { id } }",
            json!({}),
            "createPipeline",
        )
        .await;
        let stage = |name: &str, p: i64, cat: &str, kind: &str| {
            let (s, admin, pipeline) = (&s, admin.clone(), pipeline.clone());
            let input = json!({"pipelineId": pipeline, "name": name, "probability": p,
                               "forecastCategory": cat, "kind": kind});
            async move {
                id_of(
                    s,
                    &admin,
                    "mutation($i:CreatePipelineStageInput!){ createPipelineStage(input:$i) { id } }",
                    json!({"i": input}),
                    "createPipelineStage",
                )
                .await
            }
        };
        let qualify = stage("Qualify", 10, "PIPELINE", "OPEN").await;
        let proposal = stage("Proposal", 50, "BEST_CASE", "OPEN").await;
        let negotiate = stage("Negotiate", 80, "COMMIT", "OPEN").await;
        let won = stage("Won", 100, "CLOSED", "WON").await;
        let lost = stage("Lost", 0, "OMITTED", "LOST").await;

        let deal = |token: &str, stage: &str, amount: Option<(i64, &str)>, close: &str| {
            let s = &s;
            let token = token.to_owned();
            let mut input = json!({"name": format!("Deal {close}"), "pipelineId": pipeline,
                                   "stageId": stage, "closeDate": close});
            if let Some((v, c)) = amount {
                input["amount"] = m(v, c);
            }
            if stage == lost {
                input["lostReason"] = json!("Price");
            }
            let acc_name = json!({"name": format!("Acc {close}")});
            async move {
                let acc = account(s, &token, acc_name).await;
                input["accountId"] = json!(acc);
                ok(
                    s,
                    &token,
                    "mutation($i:CreateOpportunityInput!){ createOpportunity(input:$i) { id } }",
                    json!({"i": input}),
                )
                .await;
            }
        };
        // rep1 (Sales)
        deal(&rep1, &qualify, Some((10_000, "EUR")), "2027-01-15").await;
        deal(&rep1, &negotiate, Some((20_001, "EUR")), "2027-02-10").await;
        deal(&rep1, &won, Some((5_000, "EUR")), "2027-03-31").await;
        deal(&rep1, &proposal, Some((3_333, "USD")), "2027-04-02").await;
        // rep2 (East)
        deal(&rep2, &won, Some((7_000, "EUR")), "2027-01-05").await;
        deal(&rep2, &proposal, Some((4_001, "EUR")), "2027-02-20").await;
        deal(&rep2, &lost, Some((9_999, "EUR")), "2027-03-01").await;
        deal(&rep2, &qualify, None, "2027-01-20").await;
        // rep3 (East); the last deal closes after the range.
        deal(&rep3, &negotiate, Some((10_000, "USD")), "2027-03-15").await;
        deal(&rep3, &won, Some((1_000, "EUR")), "2027-07-01").await;

        // Quotas, set by the manager of the tree.
        let quota = |token: &str, owner: &str, start: &str, amount: i64| {
            let s = &s;
            let token = token.to_owned();
            let vars = json!({"i": {"ownerId": owner, "period": "QUARTER",
                                    "periodStart": start, "amount": m(amount, "EUR")}});
            async move {
                s.gql(
                    Some(&token),
                    "mutation($i:CreateQuotaInput!){ createQuota(input:$i) { id version ownerId amount { amountMinor currency } } }",
                    vars,
                )
                .await
            }
        };
        let q1 = quota(&mgr, &rep1_id, "2027-01-01", 20_000).await;
        assert!(q1["errors"].is_null(), "{q1}");
        let q2 = quota(&mgr, &rep2_id, "2027-01-01", 10_000).await;
        let q2_id = q2["data"]["createQuota"]["id"].as_str().unwrap().to_owned();
        // A second quota for the same user, period and currency.
        let r = quota(&mgr, &rep2_id, "2027-01-01", 1).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        // East's manager may not set a quota for a user above its team; a
        // rep sets none; a period start must start a quarter.
        let r = quota(&mgr2, &rep1_id, "2027-01-01", 1).await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let r = quota(&rep1, &rep1_id, "2027-04-01", 1).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        let r = quota(&mgr, &rep1_id, "2027-02-01", 1).await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        // Two managers change rep2's quota from the same version: one wins,
        // the other gets CONFLICT; then the stale version is refused.
        let upd = |token: &str, version: i64, amount: i64| {
            let s = &s;
            let token = token.to_owned();
            let vars = json!({"i": {"id": q2_id, "version": version, "amount": m(amount, "EUR")}});
            async move {
                s.gql(
                    Some(&token),
                    "mutation($i:UpdateQuotaInput!){ updateQuota(input:$i) { version amount { amountMinor } } }",
                    vars,
                )
                .await
            }
        };
        let (a, b2) = tokio::join!(upd(&mgr, 1, 14_000), upd(&mgr2, 1, 15_000));
        let oks = [&a, &b2].iter().filter(|r| r["errors"].is_null()).count();
        assert_eq!(oks, 1, "{a} {b2}");
        let loser = if a["errors"].is_null() { &b2 } else { &a };
        assert_eq!(code(loser), "CONFLICT", "{loser}");
        let r = upd(&mgr, 1, 14_000).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        let r = upd(&mgr, 2, 14_000).await;
        assert_eq!(r["data"]["updateQuota"]["version"], 3, "{r}");
        assert_eq!(
            s.db
                .scalar("SELECT amount AS n FROM quotas WHERE period_start = '2027-01-01' AND amount = 14000")
                .await,
            14_000
        );

        // Adjustments: two of rep2's commit (the latest shows), one of
        // East's best case.
        let adjust = |token: &str, input: Value| {
            let s = &s;
            let token = token.to_owned();
            async move {
                s.gql(
                    Some(&token),
                    "mutation($i:CreateForecastAdjustmentInput!){ createForecastAdjustment(input:$i) { id authorId } }",
                    json!({"i": input}),
                )
                .await
            }
        };
        let base = |extra: Value| {
            let mut v = json!({"period": "QUARTER", "periodStart": "2027-01-01",
                               "figure": "COMMIT", "amount": m(9_000, "EUR"), "note": "Big deal slipping"});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        let r = adjust(&mgr, base(json!({"ownerId": rep2_id}))).await;
        assert_eq!(
            r["data"]["createForecastAdjustment"]["authorId"], mgr_id,
            "{r}"
        );
        let r = adjust(
            &mgr,
            base(json!({"ownerId": rep2_id, "amount": m(8_500, "EUR"), "note": "Revised"})),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        let r = adjust(
            &mgr,
            base(json!({"teamId": east, "figure": "BEST_CASE", "amount": m(20_000, "EUR"), "note": "East call"})),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        // Refused: both subjects; a team above the manager's; a rep; a bad
        // period start. Nothing is written.
        let r = adjust(&mgr, base(json!({"ownerId": rep2_id, "teamId": east}))).await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let r = adjust(&mgr2, base(json!({"teamId": sales}))).await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let r = adjust(&rep1, base(json!({"ownerId": rep1_id}))).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        let r = adjust(
            &mgr,
            base(json!({"ownerId": rep2_id, "periodStart": "2027-01-02"})),
        )
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(s.db.count("forecast_adjustments").await, 3);

        let fq = forecast_query();
        let run = |token: &str, vars: Value| {
            let (s, fq) = (&s, fq.clone());
            let token = token.to_owned();
            async move { ok(s, &token, &fq, vars).await["forecast"].clone() }
        };
        let vars = json!({"p": "QUARTER", "f": "2027-01-01", "t": "2027-06-30"});

        // The manager of the whole tree: everything, by hand:
        // rep1 Q1: won 5,000; open commit 20,001; pipeline 10,000 + 20,001;
        //   weighted (10,000×10 + 20,001×80) / 100 = 17,000.8 → 17,001.
        // rep2 Q1: won 7,000; best case 4,001; a deal without amount;
        //   weighted 4,001×50 / 100 = 2,000.5 → 2,000 (half to even); lost 1.
        // rep3 Q1: commit 10,000 USD; weighted 8,000 USD.
        // rep1 Q2: best case 3,333 USD; weighted 1,666.5 → 1,666.
        let f = run(&mgr, vars.clone()).await;
        assert_eq!(f["periods"], json!(["2027-Q1", "2027-Q2"]));
        assert_eq!(
            subjects(&f, "2027-Q1"),
            order(&[&sales, &east], &[&rep1_id, &rep2_id, &rep3_id])
        );
        let r1 = row(&f, "2027-Q1", &rep1_id);
        check(
            r1,
            [
                json!([m(5_000, "EUR")]),
                json!([m(25_001, "EUR")]),
                json!([m(25_001, "EUR")]),
                json!([m(30_001, "EUR")]),
                json!([m(17_001, "EUR")]),
            ],
            [1, 2, 2, 2, 0],
        );
        assert_eq!(r1["quota"], json!([m(20_000, "EUR")]));
        assert_eq!(
            r1["attainment"],
            json!([{"currency": "EUR", "ratio": 0.25}])
        );
        assert_eq!(r1["periodStart"], "2027-01-01");
        assert_eq!(r1["periodEnd"], "2027-03-31");
        let r2 = row(&f, "2027-Q1", &rep2_id);
        check(
            r2,
            [
                json!([m(7_000, "EUR")]),
                json!([m(7_000, "EUR")]),
                json!([m(11_001, "EUR")]),
                json!([m(4_001, "EUR")]),
                json!([m(2_000, "EUR")]),
            ],
            [1, 1, 2, 2, 1],
        );
        assert_eq!(r2["quota"], json!([m(14_000, "EUR")]));
        assert_eq!(r2["attainment"], json!([{"currency": "EUR", "ratio": 0.5}]));
        assert_eq!(
            r2["adjustments"],
            json!([{"figure": "COMMIT", "amount": m(8_500, "EUR"), "note": "Revised", "authorId": mgr_id}])
        );
        let r3 = row(&f, "2027-Q1", &rep3_id);
        check(
            r3,
            [
                json!([]),
                json!([m(10_000, "USD")]),
                json!([m(10_000, "USD")]),
                json!([m(10_000, "USD")]),
                json!([m(8_000, "USD")]),
            ],
            [0, 1, 1, 1, 0],
        );
        assert_eq!(r3["quota"], json!([]));
        assert_eq!(r3["attainment"], json!([]));
        // East = rep2 + rep3.
        let te = row(&f, "2027-Q1", &east);
        check(
            te,
            [
                json!([m(7_000, "EUR")]),
                json!([m(7_000, "EUR"), m(10_000, "USD")]),
                json!([m(11_001, "EUR"), m(10_000, "USD")]),
                json!([m(4_001, "EUR"), m(10_000, "USD")]),
                json!([m(2_000, "EUR"), m(8_000, "USD")]),
            ],
            [1, 2, 3, 3, 1],
        );
        assert_eq!(te["quota"], json!([m(14_000, "EUR")]));
        assert_eq!(
            te["adjustments"],
            json!([{"figure": "BEST_CASE", "amount": m(20_000, "EUR"), "note": "East call", "authorId": mgr_id}])
        );
        // Sales = rep1 + East; weighted EUR (1,700,080 + 200,050) / 100 =
        // 19,001.3 → 19,001.
        let sales_q1 = [
            json!([m(12_000, "EUR")]),
            json!([m(32_001, "EUR"), m(10_000, "USD")]),
            json!([m(36_002, "EUR"), m(10_000, "USD")]),
            json!([m(34_002, "EUR"), m(10_000, "USD")]),
            json!([m(19_001, "EUR"), m(8_000, "USD")]),
        ];
        let ts = row(&f, "2027-Q1", &sales);
        check(ts, sales_q1.clone(), [2, 4, 5, 5, 1]);
        assert_eq!(ts["quota"], json!([m(34_000, "EUR")]));
        assert_eq!(
            ts["attainment"],
            json!([{"currency": "EUR", "ratio": 12_000.0 / 34_000.0}])
        );
        assert_eq!(ts["adjustments"], json!([]));
        check(row(&f, "2027-Q1", "total"), sales_q1, [2, 4, 5, 5, 1]);
        // Q2: only rep1's proposal.
        assert_eq!(subjects(&f, "2027-Q2"), order(&[&sales], &[&rep1_id]));
        let rep1_q2 = [
            json!([]),
            json!([]),
            json!([m(3_333, "USD")]),
            json!([m(3_333, "USD")]),
            json!([m(1_666, "USD")]),
        ];
        check(
            row(&f, "2027-Q2", &rep1_id),
            rep1_q2.clone(),
            [0, 0, 1, 1, 0],
        );
        check(row(&f, "2027-Q2", &sales), rep1_q2.clone(), [0, 0, 1, 1, 0]);

        // Monthly: rep1's February holds only the commit deal.
        let fm = run(
            &mgr,
            json!({"p": "MONTH", "f": "2027-02-01", "t": "2027-02-28", "o": rep1_id}),
        )
        .await;
        assert_eq!(fm["periods"], json!(["2027-02"]));
        check(
            row(&fm, "2027-02", &rep1_id),
            [
                json!([]),
                json!([m(20_001, "EUR")]),
                json!([m(20_001, "EUR")]),
                json!([m(20_001, "EUR")]),
                json!([m(16_001, "EUR")]),
            ],
            [0, 1, 1, 1, 0],
        );
        assert_eq!(subjects(&fm, "2027-02"), order(&[&sales], &[&rep1_id]));

        // Narrowed to East's tree: East and its reps only.
        let fe = run(
            &mgr,
            json!({"p": "QUARTER", "f": "2027-01-01", "t": "2027-03-31", "team": east}),
        )
        .await;
        assert_eq!(
            subjects(&fe, "2027-Q1"),
            order(&[&east], &[&rep2_id, &rep3_id])
        );
        assert_eq!(row(&fe, "2027-Q1", "total")["pipeline"], te["pipeline"]);

        // East's manager: its team's deals only, whatever it asks; Sales'
        // row rolls up only what it sees.
        let f2 = run(&mgr2, vars.clone()).await;
        assert_eq!(
            subjects(&f2, "2027-Q1"),
            order(&[&sales, &east], &[&rep2_id, &rep3_id])
        );
        assert_eq!(row(&f2, "2027-Q1", &sales)["bestCase"], te["bestCase"]);
        assert_eq!(subjects(&f2, "2027-Q2"), vec!["total".to_owned()]);
        check(
            row(&f2, "2027-Q2", "total"),
            [json!([]), json!([]), json!([]), json!([]), json!([])],
            [0, 0, 0, 0, 0],
        );

        // A rep: its own deals, quota and adjustments only.
        let f1 = run(&rep1, vars.clone()).await;
        assert_eq!(subjects(&f1, "2027-Q1"), order(&[&sales], &[&rep1_id]));
        assert_eq!(row(&f1, "2027-Q1", "total")["commit"], r1["commit"]);
        assert_eq!(
            row(&f1, "2027-Q1", &sales)["quota"],
            json!([m(20_000, "EUR")])
        );
        let f3 = run(&rep3, vars.clone()).await;
        assert_eq!(
            subjects(&f3, "2027-Q1"),
            order(&[&sales, &east], &[&rep3_id])
        );
        check(
            row(&f3, "2027-Q1", &east),
            [
                json!([]),
                json!([m(10_000, "USD")]),
                json!([m(10_000, "USD")]),
                json!([m(10_000, "USD")]),
                json!([m(8_000, "USD")]),
            ],
            [0, 1, 1, 1, 0],
        );
        // Asking for another owner shows nothing of theirs.
        let f = run(
            &rep1,
            json!({"p": "QUARTER", "f": "2027-01-01", "t": "2027-03-31", "o": rep2_id}),
        )
        .await;
        assert_eq!(subjects(&f, "2027-Q1"), vec!["total".to_owned()]);

        // The history: rep2's two adjustments, newest first; rep1 sees none
        // of them; rep2 sees its own and its team's.
        let hist = "query($f:ForecastAdjustmentFilterInput){ forecastAdjustments(filter:$f) { totalCount edges { node { note amount { amountMinor } ownerId teamId authorId } } } }";
        let h = ok(&s, &mgr, hist, json!({"f": {"ownerId": rep2_id}})).await;
        let notes: Vec<&str> = h["forecastAdjustments"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["note"].as_str().unwrap())
            .collect();
        assert_eq!(notes, ["Revised", "Big deal slipping"]);
        let h = ok(&s, &rep1, hist, json!({})).await;
        assert_eq!(h["forecastAdjustments"]["totalCount"], 0);
        let h = ok(&s, &rep2, hist, json!({})).await;
        assert_eq!(h["forecastAdjustments"]["totalCount"], 3);
        let quotas = "{ quotas { totalCount edges { node { ownerId amount { amountMinor } } } } }";
        assert_eq!(
            ok(&s, &rep1, quotas, json!({})).await["quotas"]["totalCount"],
            1
        );
        assert_eq!(
            ok(&s, &mgr, quotas, json!({})).await["quotas"]["totalCount"],
            2
        );
        assert_eq!(
            ok(&s, &mgr2, quotas, json!({})).await["quotas"]["totalCount"],
            1
        );

        // Marketing may not read amounts: refused as a whole, naming the
        // field; it_admin reads nothing of forecasts.
        let r = s.gql(Some(&mkt), &fq, vars.clone()).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        assert!(
            r["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Opportunity.amount"),
            "{r}"
        );
        let r = s.gql(Some(&it), &fq, vars.clone()).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        // Bad input: `to` before `from`, an unknown team.
        let r = s
            .gql(
                Some(&mgr),
                &fq,
                json!({"p": "MONTH", "f": "2027-02-01", "t": "2027-01-01"}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let r = s
            .gql(
                Some(&mgr),
                &fq,
                json!({"p": "MONTH", "f": "2027-01-01", "t": "2027-01-31", "team": "team_0190a0a0a0a07000800000000000000a"}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
    }
);
