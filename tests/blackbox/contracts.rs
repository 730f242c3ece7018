//! Contracts over HTTP and WebSocket: direct creation with every rule in
//! one VALIDATION; creation from an ACCEPTED quote, once per quote; status
//! moves and stale versions; the recycle bin; row scope (a rep never sees
//! another rep's contract) and marketing without the value in payloads,
//! events and exports; expiry and the renewal opportunity, each exactly once with
//! two replicas on one database.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::both;
use crate::support::*;

async fn user(s: &TestServer, admin: &str, email: &str, roles: &[&str]) -> String {
    s.create_user(admin, email, roles).await;
    s.login(email, "user-password-1").await
}

fn fields(r: &Value) -> Vec<String> {
    let mut f: Vec<String> = r["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields: {r}"))
        .iter()
        .map(|f| f["field"].as_str().unwrap_or_default().to_owned())
        .collect();
    f.sort();
    f
}

const CONTRACT: &str = "id name status accountId opportunityId quoteId ownerId startDate \
    endDate value { amountMinor currency } renewalPipelineId renewalNoticeDays renewalDueOn \
    renewalOpportunityId activatedAt endedAt version";

fn date(days_from_today: i64) -> String {
    (Utc::now().date_naive() + Duration::days(days_from_today))
        .format("%Y-%m-%d")
        .to_string()
}

async fn create(s: &TestServer, token: &str, input: Value) -> Value {
    s.gql(
        Some(token),
        &format!(
            "mutation($i:CreateContractInput!){{ createContract(input:$i) {{ {CONTRACT} }} }}"
        ),
        json!({"i": input}),
    )
    .await
}

async fn set_status(s: &TestServer, token: &str, c: &Value, status: &str) -> Value {
    s.gql(
        Some(token),
        &format!(
            "mutation($id:ID!,$v:Int!,$s:ContractStatus!){{ setContractStatus(id:$id, \
             version:$v, status:$s) {{ {CONTRACT} }} }}"
        ),
        json!({"id": c["id"], "v": c["version"], "s": status}),
    )
    .await
}

async fn fetch(s: &TestServer, token: &str, id: &Value) -> Value {
    ok(
        s,
        token,
        &format!("query($id:ID!){{ contract(id:$id) {{ {CONTRACT} }} }}"),
        json!({"id": id}),
    )
    .await["contract"]
        .clone()
}

/// A pipeline with an open first stage; its id.
async fn pipeline(s: &TestServer, admin: &str, name: &str) -> String {
    let d = ok(
        s,
        admin,
        "mutation($n:String!){ createPipeline(input:{name:$n}) { id } }",
        json!({"n": name}),
    )
    .await;
    let p = d["createPipeline"]["id"].as_str().unwrap().to_owned();
    ok(
        s,
        admin,
        "mutation($p:ID!){ createPipelineStage(input:{pipelineId:$p, name:\"Talk\", \
         probability:20, forecastCategory:PIPELINE}) { id } }",
        json!({"p": p}),
    )
    .await;
    p
}

/// A direct contract input for `acc`: EUR 1,200.00 over a year from today.
fn input(acc: &str) -> Value {
    json!({"accountId": acc, "name": "Support 2027", "startDate": date(0),
           "endDate": date(365), "value": {"amountMinor": 120000, "currency": "EUR"}})
}

both!(
    a_direct_contract_checks_every_rule_moves_on_and_refuses_stale_writes,
    |b| async move {
        let s = TestServer::start(b, &[]).await;
        let admin = s.admin().await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let other = user(&s, &admin, "other@test.example", &["sales_rep"]).await;
        let acc = account(&s, &rep, json!({"name": "Acme"})).await;
        let theirs = account(&s, &other, json!({"name": "Theirs"})).await;
        let pipe = pipeline(&s, &admin, "Renewals").await;

        let r = create(&s, &rep, input(&acc)).await;
        assert!(r["errors"].is_null(), "{r}");
        let c = r["data"]["createContract"].clone();
        assert!(c["id"].as_str().unwrap().starts_with("ctr_"), "{c}");
        assert_eq!(c["status"], "DRAFT");
        assert_eq!(
            c["value"],
            json!({"amountMinor": 120000, "currency": "EUR"})
        );
        assert_eq!(c["renewalNoticeDays"], 60);
        assert_eq!(c["renewalDueOn"], date(305));
        assert_eq!(c["renewalPipelineId"], Value::Null);

        // Every problem in one VALIDATION, nothing written.
        let before = s.db.count("contracts").await;
        let r = create(
            &s,
            &rep,
            json!({"accountId": theirs, "name": " ", "startDate": date(10), "endDate": date(10),
                   "value": {"amountMinor": -1, "currency": "EUR"},
                   "renewalPipelineId": "pip_nope", "renewalNoticeDays": -1}),
        )
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(
            fields(&r),
            vec![
                "accountId",
                "endDate",
                "name",
                "renewalNoticeDays",
                "renewalPipelineId",
                "value"
            ]
        );
        let r = create(
            &s,
            &rep,
            json!({"accountId": "acc_0", "name": "X",
            "startDate": date(0), "endDate": date(-1),
            "value": {"amountMinor": 0, "currency": "EUR"}}),
        )
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(fields(&r), vec!["accountId", "endDate"]);
        // An opportunity of another account is refused.
        let acc2 = account(&s, &rep, json!({"name": "Other Co"})).await;
        let d = ok(
            &s,
            &rep,
            "mutation($i:CreateOpportunityInput!){ createOpportunity(input:$i) { id } }",
            json!({"i": {"name": "Deal", "accountId": acc2, "pipelineId": pipe}}),
        )
        .await;
        let opp = d["createOpportunity"]["id"].clone();
        let mut i = input(&acc);
        i["opportunityId"] = opp.clone();
        let r = create(&s, &rep, i).await;
        assert_eq!(fields(&r), vec!["opportunityId"], "{r}");
        assert_eq!(s.db.count("contracts").await, before);

        // Update: version checked, renewal date kept.
        let upd = "mutation($i:UpdateContractInput!){ updateContract(input:$i) { version \
                   renewalDueOn renewalPipelineId endDate } }";
        let d = ok(
            &s,
            &rep,
            upd,
            json!({"i": {"id": c["id"], "version": c["version"], "renewalNoticeDays": 30,
                         "renewalPipelineId": pipe}}),
        )
        .await;
        assert_eq!(d["updateContract"]["renewalDueOn"], date(335));
        assert_eq!(d["updateContract"]["renewalPipelineId"], json!(pipe));
        let r = s
            .gql(
                Some(&rep),
                upd,
                json!({"i": {"id": c["id"], "version": c["version"], "name": "Stale"}}),
            )
            .await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        let r = set_status(&s, &rep, &c, "ACTIVE").await;
        assert_eq!(code(&r), "CONFLICT", "{r}");

        // Moves: DRAFT → ACTIVE → TERMINATED; nothing leaves TERMINATED;
        // DRAFT cannot expire.
        let c = fetch(&s, &rep, &c["id"]).await;
        let r = set_status(&s, &rep, &c, "EXPIRED").await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(fields(&r), vec!["status"]);
        let r = set_status(&s, &rep, &c, "ACTIVE").await;
        assert!(r["errors"].is_null(), "{r}");
        let c = r["data"]["setContractStatus"].clone();
        assert_eq!(c["status"], "ACTIVE");
        assert!(c["activatedAt"].is_string(), "{c}");
        let r = set_status(&s, &rep, &c, "DRAFT").await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let r = set_status(&s, &rep, &c, "TERMINATED").await;
        assert!(r["errors"].is_null(), "{r}");
        let c = r["data"]["setContractStatus"].clone();
        assert!(c["endedAt"].is_string(), "{c}");
        for to in ["ACTIVE", "EXPIRED"] {
            let r = set_status(&s, &rep, &c, to).await;
            assert_eq!(code(&r), "VALIDATION", "{r}");
            assert_eq!(fields(&r), vec!["status"], "{r}");
        }
        let r = s
            .gql(
                Some(&rep),
                upd,
                json!({"i": {"id": c["id"], "version": c["version"], "name": "Again"}}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(fields(&r), vec!["name"]);
        // A DRAFT contract is terminated directly.
        let r = create(&s, &rep, input(&acc)).await;
        let d2 = r["data"]["createContract"].clone();
        let r = set_status(&s, &rep, &d2, "TERMINATED").await;
        assert_eq!(
            r["data"]["setContractStatus"]["status"], "TERMINATED",
            "{r}"
        );

        // The recycle bin, and node(id).
        let d = ok(
            &s,
            &rep,
            "mutation($id:ID!,$v:Int!){ deleteContract(id:$id, version:$v) { id } }",
            json!({"id": c["id"], "v": c["version"]}),
        )
        .await;
        assert_eq!(d["deleteContract"]["id"], c["id"]);
        let d = ok(
            &s,
            &rep,
            "{ live: contracts { totalCount } bin: contracts(filter:{deleted:true}) { totalCount } }",
            json!({}),
        )
        .await;
        assert_eq!(d["live"]["totalCount"], 1);
        assert_eq!(d["bin"]["totalCount"], 1);
        ok(
            &s,
            &rep,
            "mutation($id:ID!){ restoreContract(id:$id) { id } }",
            json!({"id": c["id"]}),
        )
        .await;
        let d = ok(
            &s,
            &rep,
            "query($id:ID!){ node(id:$id) { ... on Contract { status account { name } } } }",
            json!({"id": c["id"]}),
        )
        .await;
        assert_eq!(d["node"]["status"], "TERMINATED");
        assert_eq!(d["node"]["account"]["name"], "Acme");
        // Filters: by account and status.
        let d = ok(
            &s,
            &rep,
            "query($a:ID!){ contracts(filter:{accountId:$a, status:[TERMINATED]}, \
             orderBy:{field:NAME}) { totalCount } }",
            json!({"a": acc}),
        )
        .await;
        assert_eq!(d["contracts"]["totalCount"], 2);
    }
);

/// A quote of `rep` for a new deal, priced 19.99 × 2; its id and version.
async fn quote(s: &TestServer, admin: &str, rep: &str) -> (Value, String) {
    let d = ok(
        s,
        admin,
        "mutation{ createPriceBook(input:{name:\"Std\", currency:\"EUR\"}) { id } }",
        json!({}),
    )
    .await;
    let book = d["createPriceBook"]["id"].clone();
    let d = ok(
        s,
        admin,
        "mutation{ createProduct(input:{code:\"P-1\", name:\"Product\"}) { id } }",
        json!({}),
    )
    .await;
    let d = ok(
        s,
        admin,
        "mutation($b:ID!,$p:ID!){ createPriceBookEntry(input:{priceBookId:$b, productId:$p, \
         unitPrice:{amountMinor:1999, currency:\"EUR\"}}) { id } }",
        json!({"b": book, "p": d["createProduct"]["id"]}),
    )
    .await;
    let entry = d["createPriceBookEntry"]["id"].clone();
    let pipe = pipeline(s, admin, "New business").await;
    let acc = account(s, rep, json!({"name": "Quoted Inc"})).await;
    let d = ok(
        s,
        rep,
        "mutation($i:CreateOpportunityInput!){ createOpportunity(input:$i) { id } }",
        json!({"i": {"name": "Deal", "accountId": acc, "pipelineId": pipe}}),
    )
    .await;
    let opp = d["createOpportunity"]["id"].as_str().unwrap().to_owned();
    let d = ok(
        s,
        rep,
        "mutation($i:CreateQuoteInput!){ createQuote(input:$i) { id version } }",
        json!({"i": {"opportunityId": opp, "name": "Offer",
                     "lines": [{"priceBookEntryId": entry, "quantity": 2}]}}),
    )
    .await;
    (d["createQuote"].clone(), opp)
}

async fn quote_status(s: &TestServer, rep: &str, q: &Value, status: &str) -> Value {
    ok(
        s,
        rep,
        "mutation($id:ID!,$v:Int!,$s:QuoteStatus!){ setQuoteStatus(id:$id, version:$v, \
         status:$s) { id version } }",
        json!({"id": q["id"], "v": q["version"], "s": status}),
    )
    .await["setQuoteStatus"]
        .clone()
}

async fn from_quote(s: &TestServer, token: &str, q: &Value) -> Value {
    s.gql(
        Some(token),
        &format!(
            "mutation($q:ID!){{ createContractFromQuote(input:{{quoteId:$q}}) {{ {CONTRACT} \
             quote {{ number }} opportunity {{ name }} }} }}"
        ),
        json!({"q": q["id"]}),
    )
    .await
}

both!(
    a_contract_is_made_once_from_an_accepted_quote,
    |b| async move {
        let s = TestServer::start(b, &[]).await;
        let admin = s.admin().await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let (q, opp) = quote(&s, &admin, &rep).await;
        // A quote id that is malformed, unknown, or outside the caller's
        // scope is a bad input, named.
        let stranger = user(&s, &admin, "stranger@test.example", &["sales_rep"]).await;
        for id in [
            json!("nonsense"),
            json!("quo_0190f0f0f0f07000800000000000000"),
            q["id"].clone(),
        ] {
            let who = if id == q["id"] { &stranger } else { &rep };
            let r = from_quote(&s, who, &json!({"id": id})).await;
            assert_eq!(code(&r), "VALIDATION", "{r}");
            assert_eq!(fields(&r), vec!["quoteId"], "{r}");
        }
        // A DRAFT (then a SENT) quote makes no contract.
        let r = from_quote(&s, &rep, &q).await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(fields(&r), vec!["quoteId"]);
        let q = quote_status(&s, &rep, &q, "SENT").await;
        let r = from_quote(&s, &rep, &q).await;
        assert_eq!(fields(&r), vec!["quoteId"], "{r}");
        let q = quote_status(&s, &rep, &q, "ACCEPTED").await;
        let r = from_quote(&s, &rep, &q).await;
        assert!(r["errors"].is_null(), "{r}");
        let c = &r["data"]["createContractFromQuote"];
        assert_eq!(c["value"], json!({"amountMinor": 3998, "currency": "EUR"}));
        assert_eq!(c["opportunityId"], json!(opp));
        assert_eq!(c["quoteId"], q["id"]);
        assert_eq!(c["name"], "Offer");
        assert_eq!(c["status"], "DRAFT");
        assert_eq!(c["startDate"], date(0));
        assert!(c["quote"]["number"].is_string(), "{c}");
        assert_eq!(c["opportunity"]["name"], "Deal");
        // A second contract from the same quote: CONFLICT, nothing written.
        let r = from_quote(&s, &rep, &q).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        assert_eq!(s.db.count("contracts").await, 1);
        // Another rep cannot use the quote.
        let other = user(&s, &admin, "other@test.example", &["sales_rep"]).await;
        let r = from_quote(&s, &other, &q).await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        // The deal's contracts, in the customer-360 way.
        let d = ok(
            &s,
            &rep,
            "query($o:ID!){ contracts(filter:{opportunityId:$o}) { edges { node { quoteId } } } }",
            json!({"o": opp}),
        )
        .await;
        assert_eq!(d["contracts"]["edges"][0]["node"]["quoteId"], q["id"]);
    }
);

/// Every event a socket gets until it is quiet.
async fn drain(ws: &mut Ws) -> Vec<Value> {
    let Some(first) = ws.recv().await else {
        return Vec::new();
    };
    let mut out = vec![first["payload"]["data"]["pipelineEvents"].clone()];
    while let Ok(Some(m)) =
        tokio::time::timeout(std::time::Duration::from_millis(2000), ws.recv()).await
    {
        out.push(m["payload"]["data"]["pipelineEvents"].clone());
    }
    out
}

async fn contract_events(s: &TestServer, token: &str) -> Vec<Value> {
    let mut ws = Ws::init(s.addr(), token).await;
    ws.subscribe(
        "1",
        "subscription{ pipelineEvents(after:\"0\") { kind entityId payload } }",
        json!({}),
    )
    .await;
    drain(&mut ws)
        .await
        .into_iter()
        .filter(|e| {
            e["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("contract."))
        })
        .collect()
}

both!(
    reps_see_their_own_contracts_and_marketing_never_the_value,
    |b| async move {
        let s = TestServer::start(b, &[]).await;
        let admin = s.admin().await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let other = user(&s, &admin, "other@test.example", &["sales_rep"]).await;
        let mk = user(&s, &admin, "mk@test.example", &["marketing"]).await;
        let acc = account(&s, &rep, json!({"name": "Acme"})).await;
        let r = create(&s, &rep, input(&acc)).await;
        let c = r["data"]["createContract"].clone();
        let r = set_status(&s, &rep, &c, "ACTIVE").await;
        assert!(r["errors"].is_null(), "{r}");

        // The other rep: no contract in lists, NOT_FOUND by id.
        let d = ok(&s, &other, "{ contracts { totalCount } }", json!({})).await;
        assert_eq!(d["contracts"]["totalCount"], 0);
        let r = s
            .gql(
                Some(&other),
                "query($id:ID!){ contract(id:$id) { id } }",
                json!({"id": c["id"]}),
            )
            .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        let r = set_status(&s, &other, &c, "TERMINATED").await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");

        // Marketing: every contract without its value.
        let d = ok(
            &s,
            &mk,
            "{ contracts { totalCount edges { node { name status endDate } } } }",
            json!({}),
        )
        .await;
        assert_eq!(d["contracts"]["totalCount"], 1);
        assert_eq!(d["contracts"]["edges"][0]["node"]["status"], "ACTIVE");
        let r = s
            .gql(
                Some(&mk),
                "{ contracts { edges { node { name value { amountMinor } } } } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        assert_eq!(
            r["errors"][0]["extensions"]["fields"],
            json!(["Contract.value"]),
            "{r}"
        );
        assert!(r.get("data").is_none(), "{r}");
        let r = create(&s, &mk, input(&acc)).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        // Exports: the same rows and fields as the lists.
        // (who, rows, may read the value)
        for (token, rows, value) in [(&rep, 1, true), (&mk, 1, false), (&other, 0, true)] {
            let body = export(&s, token).await;
            let mut lines = body.lines();
            let header = lines.next().unwrap_or_default();
            assert!(header.contains("endDate"), "{header}");
            assert_eq!(header.contains("value"), value, "{header}");
            assert_eq!(header.contains("currency"), value, "{header}");
            assert_eq!(lines.count(), rows, "{body}");
            assert_eq!(body.contains("1200.00"), value && rows > 0, "{body}");
        }
        // support and it_admin see nothing of contracts.
        for role in ["support", "it_admin"] {
            let t = user(&s, &admin, &format!("{role}@test.example"), &[role]).await;
            let r = s
                .gql(Some(&t), "{ contracts { totalCount } }", json!({}))
                .await;
            assert_eq!(code(&r), "FORBIDDEN", "{role}: {r}");
        }

        // Events: the rep sees created and activated with the value;
        // marketing the same without it; the other rep none.
        let mine = contract_events(&s, &rep).await;
        let kinds: Vec<&str> = mine.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            vec!["contract.created", "contract.activated"],
            "{mine:?}"
        );
        assert_eq!(
            mine[0]["payload"]["changed"]["value"]["amountMinor"], 120000,
            "{mine:?}"
        );
        assert_eq!(mine[0]["payload"]["accountId"], json!(acc));
        let theirs = contract_events(&s, &mk).await;
        let kinds: Vec<&str> = theirs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            vec!["contract.created", "contract.activated"],
            "{theirs:?}"
        );
        for e in &theirs {
            let text = e["payload"].to_string();
            for k in ["\"value\"", "amountMinor", "120000"] {
                assert!(!text.contains(k), "{k} in {text}");
            }
        }
        assert_eq!(contract_events(&s, &other).await, Vec::<Value>::new());
    }
);

/// The CSV export of the contracts `token` may see.
async fn export(s: &TestServer, token: &str) -> String {
    let d = ok(s, token, "mutation{ exportContracts { id } }", json!({})).await;
    let id = d["exportContracts"]["id"].as_str().unwrap().to_owned();
    let job = s.wait_job(token, "exportJob", &id).await;
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    let (status, body) = s
        .get(Some(token), job["downloadUrl"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls `contract(id)` until `done` holds (at most 30 s).
async fn until(s: &TestServer, token: &str, id: &Value, done: impl Fn(&Value) -> bool) -> Value {
    let mut now = Value::Null;
    for _ in 0..120 {
        now = fetch(s, token, id).await;
        if done(&now) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    now
}

both!(
    a_contract_renews_once_and_expires_once_with_two_replicas,
    |b| async move {
        let fast = [("contract-renewal-check-secs", "1")];
        let s = TestServer::start(b, &fast).await;
        let _replica = s.replica(&fast).await;
        let admin = s.admin().await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let acc = account(&s, &rep, json!({"name": "Acme"})).await;
        let renewals = pipeline(&s, &admin, "Renewals").await;

        // Ends in 30 days with 60 days' notice: due as soon as it is ACTIVE.
        let mut i = input(&acc);
        i["endDate"] = json!(date(30));
        i["renewalPipelineId"] = json!(renewals);
        let r = create(&s, &rep, i).await;
        assert!(r["errors"].is_null(), "{r}");
        let c = r["data"]["createContract"].clone();
        // A DRAFT contract is not renewed.
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        assert_eq!(
            fetch(&s, &rep, &c["id"]).await["renewalOpportunityId"],
            Value::Null
        );
        let r = set_status(&s, &rep, &c, "ACTIVE").await;
        assert!(r["errors"].is_null(), "{r}");
        let now = until(&s, &rep, &c["id"], |v| {
            v["renewalOpportunityId"].is_string()
        })
        .await;
        let opp = now["renewalOpportunityId"].clone();
        assert!(opp.is_string(), "{now}");
        // Both replicas keep checking: still one renewal.
        tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
        let id = c["id"].as_str().unwrap();
        assert_eq!(
            s.db.scalar(&format!(
                "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'contract.renewal_created' \
                 AND entity_id = '{id}'"
            ))
            .await,
            1
        );
        assert_eq!(
            s.db.scalar("SELECT COUNT(*) AS n FROM opportunities WHERE source = 'renewal'")
                .await,
            1
        );
        assert_eq!(
            s.db.scalar(&format!(
                "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'opportunity.created' \
                 AND entity_id = '{}'",
                opp.as_str().unwrap()
            ))
            .await,
            1
        );
        assert_eq!(s.db.count("contract_renewals").await, 1);
        let d = ok(
            &s,
            &rep,
            "query($id:ID!){ contract(id:$id) { renewalOpportunity { name source \
             amount { amountMinor currency } closeDate pipelineId owner { email } \
             stage { name } account { name } } } }",
            json!({"id": c["id"]}),
        )
        .await;
        let o = &d["contract"]["renewalOpportunity"];
        assert_eq!(o["name"], "Renewal: Support 2027");
        assert_eq!(o["source"], "renewal");
        assert_eq!(
            o["amount"],
            json!({"amountMinor": 120000, "currency": "EUR"})
        );
        assert_eq!(o["closeDate"], date(30));
        assert_eq!(o["pipelineId"], json!(renewals));
        assert_eq!(o["owner"]["email"], "rep@test.example");
        assert_eq!(o["stage"]["name"], "Talk");
        assert_eq!(o["account"]["name"], "Acme");
        // The renewal is in the stage history like any new deal.
        assert_eq!(
            s.db.scalar(&format!(
                "SELECT COUNT(*) AS n FROM opportunity_history WHERE opportunity_id = '{}'",
                opp.as_str().unwrap()
            ))
            .await,
            1
        );

        // Its end date passes (set in the database): it expires once.
        s.db.exec(&format!(
            "UPDATE contracts SET start_date = '2000-01-01', end_date = '2000-12-31' \
             WHERE id = '{id}'"
        ))
        .await;
        let now = until(&s, &rep, &c["id"], |v| v["status"] == "EXPIRED").await;
        assert_eq!(now["status"], "EXPIRED", "{now}");
        assert!(now["endedAt"].is_string(), "{now}");
        tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
        assert_eq!(
            s.db.scalar(&format!(
                "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'contract.expired' \
                 AND entity_id = '{id}'"
            ))
            .await,
            1
        );
    }
);

/// Deal, quote (SENT, then ACCEPTED) and contract from it in `pipe`, by
/// `rep`; the ids of the deal, the quote and the contract.
async fn deal_to_contract(
    s: &TestServer,
    rep: &str,
    pipe: &str,
    entry: &Value,
    name: &str,
) -> [String; 3] {
    let acc = account(s, rep, json!({"name": name})).await;
    let d = ok(
        s,
        rep,
        "mutation($i:CreateOpportunityInput!){ createOpportunity(input:$i) { id } }",
        json!({"i": {"name": name, "accountId": acc, "pipelineId": pipe}}),
    )
    .await;
    let opp = d["createOpportunity"]["id"].as_str().unwrap().to_owned();
    let d = ok(
        s,
        rep,
        "mutation($i:CreateQuoteInput!){ createQuote(input:$i) { id version } }",
        json!({"i": {"opportunityId": opp, "name": name,
                     "lines": [{"priceBookEntryId": entry, "quantity": 1}]}}),
    )
    .await;
    let q = quote_status(s, rep, &d["createQuote"], "SENT").await;
    let q = quote_status(s, rep, &q, "ACCEPTED").await;
    let r = from_quote(s, rep, &q).await;
    assert!(r["errors"].is_null(), "{r}");
    let c = r["data"]["createContractFromQuote"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    [opp, q["id"].as_str().unwrap().to_owned(), c]
}

both!(
    quote_and_contract_events_follow_their_deals_pipeline,
    |b| async move {
        let s = TestServer::start(b, &[]).await;
        let admin = s.admin().await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let mkt = user(&s, &admin, "mkt@test.example", &["marketing"]).await;
        let d = ok(
            &s,
            &admin,
            "mutation{ createPriceBook(input:{name:\"Std\", currency:\"EUR\"}) { id } }",
            json!({}),
        )
        .await;
        let book = d["createPriceBook"]["id"].clone();
        let d = ok(
            &s,
            &admin,
            "mutation{ createProduct(input:{code:\"P-1\", name:\"Product\"}) { id } }",
            json!({}),
        )
        .await;
        let d = ok(
            &s,
            &admin,
            "mutation($b:ID!,$p:ID!){ createPriceBookEntry(input:{priceBookId:$b, \
             productId:$p, unitPrice:{amountMinor:1999, currency:\"EUR\"}}) { id } }",
            json!({"b": book, "p": d["createProduct"]["id"]}),
        )
        .await;
        let entry = d["createPriceBookEntry"]["id"].clone();
        let pipe_a = pipeline(&s, &admin, "New business").await;
        let pipe_b = pipeline(&s, &admin, "Channel").await;
        let head = s.db.head().await;
        let query = "subscription($a:String,$p:ID){ pipelineEvents(after:$a, pipelineId:$p) \
                     { cursor kind entityId payload } }";
        // Subscribed before the writes (live) and after them (replay).
        let mut live = Ws::init(s.addr(), &admin).await;
        live.subscribe("1", query, json!({"a": head, "p": pipe_a}))
            .await;
        let mut marketing = Ws::init(s.addr(), &mkt).await;
        marketing
            .subscribe("1", query, json!({"a": head, "p": pipe_a}))
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        let a = deal_to_contract(&s, &rep, &pipe_a, &entry, "Alpha").await;
        let b_ids = deal_to_contract(&s, &rep, &pipe_b, &entry, "Beta").await;
        // A contract without a deal is in no pipeline.
        let acc = account(&s, &rep, json!({"name": "Direct"})).await;
        let r = create(&s, &rep, input(&acc)).await;
        assert!(r["errors"].is_null(), "{r}");
        let direct = r["data"]["createContract"]["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // Everything after the head, unfiltered: A's entities' events in
        // cursor order are what pipeline A's subscribers must get.
        let mut all_ws = Ws::init(s.addr(), &admin).await;
        all_ws
            .subscribe("1", query, json!({"a": head, "p": null}))
            .await;
        let all = drain(&mut all_ws).await;
        let ids = |es: &[Value]| -> Vec<(String, String)> {
            es.iter()
                .map(|e| {
                    (
                        e["kind"].as_str().unwrap().to_owned(),
                        e["entityId"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let all_ids = ids(&all);
        assert!(all_ids.iter().any(|(_, id)| id == &direct), "{all_ids:?}");
        let expected: Vec<(String, String)> = all_ids
            .iter()
            .filter(|(_, id)| a.contains(id))
            .cloned()
            .collect();
        for kind in [
            "opportunity.created",
            "quote.created",
            "quote.sent",
            "quote.accepted",
            "contract.created",
        ] {
            assert!(
                expected.iter().any(|(k, _)| k == kind),
                "{kind} missing: {expected:?}"
            );
        }
        // Every quote and contract event of a deal names its pipeline; the
        // direct contract's names none.
        for e in &all {
            let id = e["entityId"].as_str().unwrap();
            let p = &e["payload"]["pipelineId"];
            if a.iter().any(|x| x == id) {
                assert_eq!(p, &json!(pipe_a), "{e}");
            } else if b_ids.iter().any(|x| x == id) {
                assert_eq!(p, &json!(pipe_b), "{e}");
            } else if id == direct {
                assert!(p.is_null(), "{e}");
            }
        }

        let got = drain(&mut live).await;
        assert_eq!(ids(&got), expected);
        let cursors: Vec<&str> = got.iter().map(|e| e["cursor"].as_str().unwrap()).collect();
        let in_all: Vec<&str> = all
            .iter()
            .filter(|e| a.iter().any(|x| e["entityId"] == json!(x)))
            .map(|e| e["cursor"].as_str().unwrap())
            .collect();
        assert_eq!(cursors, in_all);
        let mut replay = Ws::init(s.addr(), &admin).await;
        replay
            .subscribe("1", query, json!({"a": head, "p": pipe_a}))
            .await;
        assert_eq!(ids(&drain(&mut replay).await), expected);

        // Marketing gets the same events, without the quote's prices or
        // the contract's value.
        let seen = drain(&mut marketing).await;
        assert_eq!(ids(&seen), expected);
        for e in &seen {
            assert_eq!(e["payload"]["pipelineId"], json!(pipe_a), "{e}");
            let changed = e["payload"]["changed"].as_object().unwrap();
            for hidden in ["subtotal", "discount", "tax", "total", "value"] {
                assert!(!changed.contains_key(hidden), "{hidden}: {e}");
            }
        }
    }
);

both!(
    the_renewals_pipeline_is_where_new_contracts_renew_unless_they_say_otherwise,
    |b| async move {
        let s = TestServer::start(b, &[]).await;
        let admin = s.admin().await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let acc = account(&s, &rep, json!({"name": "Acme"})).await;
        let other = pipeline(&s, &admin, "Channel").await;
        let make = |name: &'static str, renewals: bool| {
            let (s, admin) = (&s, &admin);
            async move {
                s.gql(
                    Some(admin),
                    "mutation($n:String!,$r:Boolean!){ createPipeline(input:{name:$n, renewals:$r}) { id version renewals } }",
                    json!({"n": name, "r": renewals}),
                )
                .await
            }
        };
        let r = make("Renewals", true).await;
        let renewals = r["data"]["createPipeline"].clone();
        assert_eq!(renewals["renewals"], true, "{r}");
        // At most one renewals pipeline.
        let r = make("Second renewals", true).await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        assert!(
            r["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Renewals"),
            "{r}"
        );
        assert_eq!(s.db.count("pipelines").await, 2);

        // Omitted: the renewals pipeline; null: no renewal; named: that one.
        let c = ok(
            &s,
            &rep,
            &format!(
                "mutation($i:CreateContractInput!){{ createContract(input:$i) {{ {CONTRACT} }} }}"
            ),
            json!({"i": input(&acc)}),
        )
        .await;
        assert_eq!(c["createContract"]["renewalPipelineId"], renewals["id"]);
        let mut none = input(&acc);
        none["renewalPipelineId"] = Value::Null;
        let r = create(&s, &rep, none).await;
        assert_eq!(
            r["data"]["createContract"]["renewalPipelineId"],
            Value::Null,
            "{r}"
        );
        let mut named = input(&acc);
        named["renewalPipelineId"] = json!(other);
        let r = create(&s, &rep, named).await;
        assert_eq!(
            r["data"]["createContract"]["renewalPipelineId"],
            json!(other),
            "{r}"
        );
        // The flag is the admin's: a rep may not set it.
        let r = s
            .gql(
                Some(&rep),
                "mutation($id:ID!){ updatePipeline(input:{id:$id, version:1, renewals:true}) { id } }",
                json!({"id": other}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");

        // Retiring the renewals pipeline clears the flag; new contracts
        // then renew nowhere until another pipeline takes it.
        let d = ok(
            &s,
            &admin,
            "mutation($id:ID!,$v:Int!){ updatePipeline(input:{id:$id, version:$v, active:false}) { renewals version } }",
            json!({"id": renewals["id"], "v": renewals["version"]}),
        )
        .await;
        assert_eq!(d["updatePipeline"]["renewals"], false);
        let r = s
            .gql(
                Some(&admin),
                "mutation($id:ID!,$v:Int!){ updatePipeline(input:{id:$id, version:$v, renewals:true}) { renewals } }",
                json!({"id": renewals["id"], "v": d["updatePipeline"]["version"]}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let r = create(&s, &rep, input(&acc)).await;
        assert_eq!(
            r["data"]["createContract"]["renewalPipelineId"],
            Value::Null,
            "{r}"
        );
        let d = ok(
            &s,
            &admin,
            "mutation($id:ID!){ updatePipeline(input:{id:$id, version:1, renewals:true}) { renewals } }",
            json!({"id": other}),
        )
        .await;
        assert_eq!(d["updatePipeline"]["renewals"], true);
        let r = create(&s, &rep, input(&acc)).await;
        assert_eq!(
            r["data"]["createContract"]["renewalPipelineId"],
            json!(other),
            "{r}"
        );
        let d = ok(
            &s,
            &admin,
            "{ pipelines(includeInactive: true) { name renewals } }",
            json!({}),
        )
        .await;
        let flagged: Vec<&Value> = d["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["renewals"] == true)
            .collect();
        assert_eq!(flagged, vec![&json!({"name": "Channel", "renewals": true})]);
    }
);
