//! Quotes over HTTP and WebSocket: line totals and the quote's sums with
//! half-even rounding; gap-free numbers under 20 concurrent creations;
//! status moves (VALIDATION naming from and to), the immutable accepted
//! quote and its revision; the primary quote syncing its lines to the
//! deal; expiry once with two replicas; the printable document in English
//! and Chinese for readers only; marketing without amounts in payloads and
//! events.

use chrono::Datelike;
use serde_json::{Value, json};

use crate::both;
use crate::support::*;

async fn user(s: &TestServer, admin: &str, email: &str, roles: &[&str]) -> String {
    s.create_user(admin, email, roles).await;
    s.login(email, "user-password-1").await
}

fn id(d: &Value, field: &str) -> String {
    d[field]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{d}"))
        .to_owned()
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

/// A catalogue: EUR entries at 19.99, 10.01, 9.99, 12.35 and one USD entry.
struct Catalogue {
    eur: Vec<String>,
    usd: String,
}

async fn catalogue(s: &TestServer, admin: &str) -> Catalogue {
    let book = |name: &'static str, cur: &'static str| {
        let admin = admin.to_owned();
        async move {
            let d = ok(
                s,
                &admin,
                "mutation($i:CreatePriceBookInput!){ createPriceBook(input:$i) { id } }",
                json!({"i": {"name": name, "currency": cur}}),
            )
            .await;
            id(&d, "createPriceBook")
        }
    };
    let eur = book("Standard EUR", "EUR").await;
    let usd = book("Standard USD", "USD").await;
    let mut entries = Vec::new();
    for (n, (price, b)) in [
        (1999, &eur),
        (1001, &eur),
        (999, &eur),
        (1235, &eur),
        (5000, &usd),
    ]
    .into_iter()
    .enumerate()
    {
        let d = ok(
            s,
            admin,
            "mutation($i:CreateProductInput!){ createProduct(input:$i) { id } }",
            json!({"i": {"code": format!("P-{n}"), "name": format!("Product <{n}>")}}),
        )
        .await;
        let p = id(&d, "createProduct");
        let cur = if b == &eur { "EUR" } else { "USD" };
        let d = ok(
            s,
            admin,
            "mutation($i:CreatePriceBookEntryInput!){ createPriceBookEntry(input:$i) { id } }",
            json!({"i": {"priceBookId": b, "productId": p,
                         "unitPrice": {"amountMinor": price, "currency": cur}}}),
        )
        .await;
        entries.push(id(&d, "createPriceBookEntry"));
    }
    let usd = entries.pop().unwrap();
    Catalogue { eur: entries, usd }
}

async fn pipeline(s: &TestServer, admin: &str) -> String {
    let d = ok(
        s,
        admin,
        "mutation{ createPipeline(input:{name:\"New business\"}) { id } }",
        json!({}),
    )
    .await;
    let p = id(&d, "createPipeline");
    ok(
        s,
        admin,
        "mutation($p:ID!){ createPipelineStage(input:{pipelineId:$p, name:\"Qualify\", \
         probability:10, forecastCategory:PIPELINE}) { id } }",
        json!({"p": p}),
    )
    .await;
    p
}

/// An opportunity of `token` on a new account with an address.
async fn opportunity(s: &TestServer, token: &str, pipeline: &str, name: &str) -> String {
    let acc = account(
        s,
        token,
        json!({"name": format!("{name} Inc"),
               "address": {"street": "1 Main St", "city": "Springfield", "country": "US"}}),
    )
    .await;
    let d = ok(
        s,
        token,
        "mutation($i:CreateOpportunityInput!){ createOpportunity(input:$i) { id } }",
        json!({"i": {"name": name, "accountId": acc, "pipelineId": pipeline}}),
    )
    .await;
    id(&d, "createOpportunity")
}

const QUOTE: &str = "id number revision revisedFromId status version validUntil name \
    opportunityId accountId isPrimary discountPercent taxPercent \
    subtotal { amountMinor currency } discount { amountMinor } tax { amountMinor } \
    total { amountMinor currency } billingAddress { street city } \
    shippingAddress { city } lineItems { id position quantity discountPercent \
    listPrice { amountMinor } unitPrice { amountMinor } total { amountMinor currency } \
    product { code } }";

async fn create(s: &TestServer, token: &str, input: Value) -> Value {
    s.gql(
        Some(token),
        &format!("mutation($i:CreateQuoteInput!){{ createQuote(input:$i) {{ {QUOTE} }} }}"),
        json!({"i": input}),
    )
    .await
}

async fn set_status(s: &TestServer, token: &str, q: &Value, status: &str) -> Value {
    s.gql(
        Some(token),
        &format!(
            "mutation($id:ID!,$v:Int!,$s:QuoteStatus!){{ setQuoteStatus(id:$id, version:$v, \
             status:$s) {{ {QUOTE} }} }}"
        ),
        json!({"id": q["id"], "v": q["version"], "s": status}),
    )
    .await
}

async fn fetch(s: &TestServer, token: &str, id: &Value) -> Value {
    ok(
        s,
        token,
        &format!("query($id:ID!){{ quote(id:$id) {{ {QUOTE} }} }}"),
        json!({"id": id}),
    )
    .await["quote"]
        .clone()
}

/// A rep with a deal and a DRAFT quote of one line (19.99 × 2).
struct Setup {
    s: TestServer,
    admin: String,
    rep: String,
    pipe: String,
    opp: String,
    cat: Catalogue,
    quote: Value,
}

async fn setup(b: Backend, overrides: &[(&str, &str)]) -> Setup {
    let s = TestServer::start(b, overrides).await;
    let admin = s.admin().await;
    let cat = catalogue(&s, &admin).await;
    let pipe = pipeline(&s, &admin).await;
    let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
    let opp = opportunity(&s, &rep, &pipe, "Deal").await;
    let r = create(
        &s,
        &rep,
        json!({"opportunityId": opp, "lines": [{"priceBookEntryId": cat.eur[0], "quantity": 2}]}),
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    let quote = r["data"]["createQuote"].clone();
    Setup {
        s,
        admin,
        rep,
        pipe,
        opp,
        cat,
        quote,
    }
}

both!(
    line_totals_and_the_quote_sums_round_half_to_even,
    |b| async move {
        let Setup {
            s,
            admin,
            rep,
            pipe,
            opp,
            cat,
            ..
        } = setup(b, &[]).await;
        let r = create(
            &s,
            &rep,
            json!({"opportunityId": opp, "name": "Offer", "discountPercent": 12.5, "taxPercent": 10,
            "lines": [
                {"priceBookEntryId": cat.eur[0], "quantity": 2.5},
                {"priceBookEntryId": cat.eur[1], "quantity": 0.5},
                {"priceBookEntryId": cat.eur[2], "quantity": 1, "discountPercent": 50},
                {"priceBookEntryId": cat.eur[3], "quantity": 3, "discountPercent": 12.5},
                {"priceBookEntryId": cat.eur[0], "quantity": 1,
                 "unitPrice": {"amountMinor": 1500, "currency": "EUR"}},
            ]}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        let q = &r["data"]["createQuote"];
        let totals: Vec<i64> = q["lineItems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["total"]["amountMinor"].as_i64().unwrap())
            .collect();
        // 49.975 → 49.98; 5.005 → 5.00; 4.995 → 5.00; 32.41875 → 32.42; 15.00.
        assert_eq!(totals, vec![4998, 500, 500, 3242, 1500]);
        assert_eq!(q["lineItems"][4]["listPrice"]["amountMinor"], 1999);
        assert_eq!(q["lineItems"][4]["unitPrice"]["amountMinor"], 1500);
        // Subtotal 107.40; discount 12.5 % = 13.425 → 13.42; tax 10 % of
        // 93.98 = 9.398 → 9.40; total 103.38.
        assert_eq!(
            q["subtotal"],
            json!({"amountMinor": 10740, "currency": "EUR"})
        );
        assert_eq!(q["discount"]["amountMinor"], 1342);
        assert_eq!(q["tax"]["amountMinor"], 940);
        assert_eq!(q["total"], json!({"amountMinor": 10338, "currency": "EUR"}));
        assert_eq!(q["status"], "DRAFT");
        assert_eq!(q["revision"], 1);
        assert_eq!(q["name"], "Offer");
        // The account and its address come from the opportunity.
        assert_eq!(q["billingAddress"]["city"], "Springfield");
        assert_eq!(q["shippingAddress"]["city"], "Springfield");
        assert!(q["accountId"].as_str().unwrap().starts_with("acc_"), "{q}");

        // Bad lines: every problem in one VALIDATION, by line, nothing written.
        let before = s.db.count("quotes").await;
        let r = create(
            &s,
            &rep,
            json!({"opportunityId": opp, "taxPercent": 100.5, "lines": [
                {"priceBookEntryId": cat.eur[0], "quantity": 0.0005},
                {"priceBookEntryId": "pbe_nope", "quantity": 1},
                {"priceBookEntryId": cat.usd, "quantity": 1},
            ]}),
        )
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(
            fields(&r),
            vec![
                "lines.0.quantity",
                "lines.1.priceBookEntryId",
                "lines.2.priceBookEntryId",
                "taxPercent"
            ]
        );
        assert_eq!(s.db.count("quotes").await, before);

        // Another rep's deal reads as missing; so does a malformed id.
        let other = user(&s, &admin, "other@test.example", &["sales_rep"]).await;
        let theirs = opportunity(&s, &other, &pipe, "Theirs").await;
        for o in [theirs.as_str(), "opp_0"] {
            let r = create(&s, &rep, json!({"opportunityId": o})).await;
            assert_eq!(code(&r), "VALIDATION", "{r}");
            assert_eq!(fields(&r), vec!["opportunityId"]);
        }
        assert_eq!(s.db.count("quotes").await, before);
    }
);

both!(
    twenty_concurrent_creations_get_twenty_numbers_without_a_gap,
    |b| async move {
        let Setup {
            s,
            rep,
            opp,
            cat,
            quote,
            ..
        } = setup(b, &[]).await;
        let year = chrono::Utc::now().year();
        assert_eq!(quote["number"], format!("Q-{year}-00001"));
        let s = std::sync::Arc::new(s);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (s, rep, opp, e) = (s.clone(), rep.clone(), opp.clone(), cat.eur[1].clone());
            tasks.push(tokio::spawn(async move {
                create(
                &s,
                &rep,
                json!({"opportunityId": opp, "lines": [{"priceBookEntryId": e, "quantity": 1}]}),
            )
            .await
            }));
        }
        let mut numbers = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            assert!(r["errors"].is_null(), "{r}");
            numbers.push(
                r["data"]["createQuote"]["number"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        numbers.sort();
        let expected: Vec<String> = (2..=21).map(|n| format!("Q-{year}-{n:05}")).collect();
        assert_eq!(numbers, expected);
        // A refused creation takes no number.
        let r = create(&s, &rep, json!({"opportunityId": opp, "taxPercent": -1})).await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let r = create(&s, &rep, json!({"opportunityId": opp})).await;
        assert_eq!(
            r["data"]["createQuote"]["number"],
            format!("Q-{year}-00022"),
            "{r}"
        );
    }
);

both!(
    status_moves_are_enforced_and_an_accepted_quote_is_revised_not_changed,
    |b| async move {
        let Setup {
            s,
            rep,
            opp,
            cat,
            quote,
            ..
        } = setup(b, &[]).await;
        // DRAFT → ACCEPTED is not a move; the error names both.
        let r = set_status(&s, &rep, &quote, "ACCEPTED").await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(fields(&r), vec!["status"]);
        let msg = r["errors"][0]["message"].as_str().unwrap();
        assert!(msg.contains("DRAFT") && msg.contains("ACCEPTED"), "{msg}");
        // A quote without lines is not sent.
        let empty = create(&s, &rep, json!({"opportunityId": opp})).await;
        let r = set_status(&s, &rep, &empty["data"]["createQuote"], "SENT").await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        // DRAFT → SENT → ACCEPTED.
        let r = set_status(&s, &rep, &quote, "SENT").await;
        assert!(r["errors"].is_null(), "{r}");
        let sent = r["data"]["setQuoteStatus"].clone();
        assert_eq!(sent["status"], "SENT");
        // A sent quote's content does not change.
        let r = s
            .gql(
                Some(&rep),
                "mutation($i:UpdateQuoteInput!){ updateQuote(input:$i) { id } }",
                json!({"i": {"id": sent["id"], "version": sent["version"], "name": "Changed",
                         "lines": [{"priceBookEntryId": cat.eur[1], "quantity": 1}]}}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(fields(&r), vec!["lines", "name"]);
        // A stale version is a CONFLICT.
        let r = set_status(&s, &rep, &quote, "REJECTED").await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        let r = set_status(&s, &rep, &sent, "ACCEPTED").await;
        assert!(r["errors"].is_null(), "{r}");
        let accepted = r["data"]["setQuoteStatus"].clone();
        // Accepted: no write of any kind, nothing changes.
        for r in [
            set_status(&s, &rep, &accepted, "REJECTED").await,
            s.gql(
                Some(&rep),
                "mutation($i:UpdateQuoteInput!){ updateQuote(input:$i) { id } }",
                json!({"i": {"id": accepted["id"], "version": accepted["version"], "terms": "x"}}),
            )
            .await,
        ] {
            assert_eq!(code(&r), "VALIDATION", "{r}");
            assert_eq!(fields(&r), vec!["status"], "{r}");
        }
        assert_eq!(fetch(&s, &rep, &accepted["id"]).await, accepted);
        // A revision: same number, next revision, DRAFT, same lines.
        let r = s
            .gql(
                Some(&rep),
                &format!("mutation($id:ID!){{ reviseQuote(id:$id) {{ {QUOTE} }} }}"),
                json!({"id": accepted["id"]}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        let rev = &r["data"]["reviseQuote"];
        assert_eq!(rev["number"], accepted["number"]);
        assert_eq!(rev["revision"], 2);
        assert_eq!(rev["status"], "DRAFT");
        assert_eq!(rev["revisedFromId"], accepted["id"]);
        assert_ne!(rev["id"], accepted["id"]);
        assert_eq!(rev["total"], accepted["total"]);
        assert_eq!(rev["lineItems"].as_array().unwrap().len(), 1);
        assert_eq!(fetch(&s, &rep, &accepted["id"]).await, accepted);
        // The revision is a draft: it is changed, not revised.
        let r = s
            .gql(
                Some(&rep),
                "mutation($id:ID!){ reviseQuote(id:$id) { id } }",
                json!({"id": rev["id"]}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let r = s
            .gql(
                Some(&rep),
                "mutation($i:UpdateQuoteInput!){ updateQuote(input:$i) { revision status \
             total { amountMinor } } }",
                json!({"i": {"id": rev["id"], "version": rev["version"],
                         "lines": [{"priceBookEntryId": cat.eur[1], "quantity": 3}]}}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        assert_eq!(r["data"]["updateQuote"]["total"]["amountMinor"], 3003);
        // Every revision of the number, by filter.
        let d = ok(
            &s,
            &rep,
            "query($n:String){ quotes(filter:{number:$n}, orderBy:{field:CREATED_AT}) { totalCount \
         edges { node { revision } } } }",
            json!({"n": accepted["number"]}),
        )
        .await;
        assert_eq!(d["quotes"]["totalCount"], 2);
    }
);

both!(
    the_primary_quote_syncs_its_lines_to_the_opportunity,
    |b| async move {
        let Setup {
            s,
            rep,
            opp,
            cat,
            quote,
            ..
        } = setup(b, &[]).await;
        const OPP: &str = "query($id:ID!){ opportunity(id:$id) { version primaryQuoteId \
        amount { amountMinor currency } lineItems { quantity unitPrice { amountMinor } \
        total { amountMinor } } quotes { totalCount edges { node { id isPrimary } } } } }";
        let o = ok(&s, &rep, OPP, json!({"id": opp})).await["opportunity"].clone();
        assert_eq!(o["quotes"]["totalCount"], 1);
        const PRIMARY: &str = "mutation($id:ID!,$v:Int!){ makeQuotePrimary(id:$id, \
        opportunityVersion:$v) { version primaryQuoteId amount { amountMinor } } }";
        // A stale opportunity version changes nothing.
        let r = s
            .gql(
                Some(&rep),
                PRIMARY,
                json!({"id": quote["id"], "v": o["version"].as_i64().unwrap() + 5}),
            )
            .await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        assert_eq!(s.db.count("opportunity_line_items").await, 0);
        let r = s
            .gql(
                Some(&rep),
                PRIMARY,
                json!({"id": quote["id"], "v": o["version"]}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        let o = ok(&s, &rep, OPP, json!({"id": opp})).await["opportunity"].clone();
        assert_eq!(o["primaryQuoteId"], quote["id"]);
        assert_eq!(o["amount"], json!({"amountMinor": 3998, "currency": "EUR"}));
        assert_eq!(
            o["lineItems"],
            json!([{"quantity": 2.0, "unitPrice": {"amountMinor": 1999}, "total": {"amountMinor": 3998}}])
        );
        assert_eq!(o["quotes"]["edges"][0]["node"]["isPrimary"], true);
        // Changing the primary draft's lines changes the deal's in the same
        // write.
        let q = fetch(&s, &rep, &quote["id"]).await;
        let r = s
            .gql(
                Some(&rep),
                "mutation($i:UpdateQuoteInput!){ updateQuote(input:$i) { version } }",
                json!({"i": {"id": q["id"], "version": q["version"], "lines": [
                    {"priceBookEntryId": cat.eur[0], "quantity": 1},
                    {"priceBookEntryId": cat.eur[1], "quantity": 2, "discountPercent": 10},
                ]}}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        let o = ok(&s, &rep, OPP, json!({"id": opp})).await["opportunity"].clone();
        // 19.99 + 20.02 × 0.9 = 19.99 + 18.018 → 18.02 = 38.01.
        assert_eq!(o["amount"]["amountMinor"], 3801);
        assert_eq!(o["lineItems"].as_array().unwrap().len(), 2);
        // Another quote made primary takes over.
        let other = create(
        &s,
        &rep,
        json!({"opportunityId": opp, "lines": [{"priceBookEntryId": cat.eur[2], "quantity": 1}]}),
    )
    .await;
        let other = other["data"]["createQuote"].clone();
        let r = s
            .gql(
                Some(&rep),
                PRIMARY,
                json!({"id": other["id"], "v": o["version"]}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        assert_eq!(r["data"]["makeQuotePrimary"]["amount"]["amountMinor"], 999);
        assert_eq!(fetch(&s, &rep, &quote["id"]).await["isPrimary"], false);
    }
);

both!(
    a_sent_quote_expires_once_with_two_replicas,
    |b| async move {
        let Setup { s, rep, quote, .. } = setup(b, &[]).await;
        let _replica = s.replica(&[]).await;
        let r = set_status(&s, &rep, &quote, "SENT").await;
        assert!(r["errors"].is_null(), "{r}");
        let sent = r["data"]["setQuoteStatus"].clone();
        let id = sent["id"].as_str().unwrap();
        // Its date passes (set in the database: no test waits for a day).
        s.db.exec(&format!(
            "UPDATE quotes SET valid_until = '2000-01-01' WHERE id = '{id}'"
        ))
        .await;
        let mut now = Value::Null;
        for _ in 0..120 {
            now = fetch(&s, &rep, &sent["id"]).await;
            if now["status"] == "EXPIRED" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert_eq!(now["status"], "EXPIRED", "{now}");
        assert_eq!(now["version"], sent["version"].as_i64().unwrap() + 1);
        assert_eq!(
        s.db
            .scalar(&format!(
                "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'quote.expired' AND entity_id = '{id}'"
            ))
            .await,
        1
    );
        // An expired quote is not accepted.
        let r = set_status(&s, &rep, &now, "ACCEPTED").await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
    }
);

async fn document(s: &TestServer, token: &str, id: &str, lang: Option<&str>) -> (u16, String) {
    let mut req = s
        .http
        .get(format!("http://{}/quotes/{id}", s.addr()))
        .bearer_auth(token);
    if let Some(l) = lang {
        req = req.header("accept-language", l);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

both!(
    the_document_renders_for_readers_in_english_and_chinese,
    |b| async move {
        let Setup {
            s,
            admin,
            rep,
            quote,
            ..
        } = setup(b, &[]).await;
        let q = quote["id"].as_str().unwrap();
        let r = s
            .gql(
                Some(&rep),
                "mutation($i:UpdateQuoteInput!){ updateQuote(input:$i) { id } }",
                json!({"i": {"id": q, "version": quote["version"],
                         "name": "<script>alert(1)</script> & Co", "terms": "Net 30"}}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        let (status, en) = document(&s, &rep, q, Some("en-US,en;q=0.9")).await;
        assert_eq!(status, 200, "{en}");
        assert!(en.contains("<html lang=\"en\">"), "{en}");
        for s in [
            "Unit price",
            "Subtotal",
            "39.98 EUR",
            "Springfield",
            "Net 30",
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co",
            "Product &lt;0&gt; (P-0)",
            quote["number"].as_str().unwrap(),
        ] {
            assert!(en.contains(s), "{s} missing: {en}");
        }
        assert!(!en.contains("<script>"), "{en}");
        let (status, zh) = document(&s, &rep, q, Some("zh-CN,zh;q=0.9,en;q=0.8")).await;
        assert_eq!(status, 200);
        for s in ["<html lang=\"zh\">", "报价单", "单价", "小计", "39.98 EUR"] {
            assert!(zh.contains(s), "{s} missing: {zh}");
        }
        // Another rep, an unknown id and a malformed one: 404 alike.
        let other = user(&s, &admin, "other@test.example", &["sales_rep"]).await;
        for id in [q, "quo_0196f0c0a0a07000800000000000000", "nope"] {
            let (status, body) = document(&s, &other, id, None).await;
            assert_eq!(status, 404, "{id}: {body}");
            assert!(body.contains("NOT_FOUND"), "{body}");
        }
        // Support sees nothing of the pipeline: 404 too.
        let sp = user(&s, &admin, "sp@test.example", &["support"]).await;
        assert_eq!(document(&s, &sp, q, None).await.0, 404);
        // Marketing reads it without any price or sum.
        let mk = user(&s, &admin, "mk@test.example", &["marketing"]).await;
        let (status, body) = document(&s, &mk, q, None).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Quantity"), "{body}");
        for s in [
            "Unit price",
            "List price",
            "Subtotal",
            "Total",
            "EUR",
            "19.99",
            "39.98",
        ] {
            assert!(!body.contains(s), "{s} shown to marketing: {body}");
        }
    }
);

/// Every event a socket gets until it is quiet (the first may take a
/// while: the replay starts once the subscription is checked).
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

async fn quote_events(s: &TestServer, token: &str) -> Vec<Value> {
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
        .filter(|e| e["kind"].as_str().is_some_and(|k| k.starts_with("quote.")))
        .collect()
}

both!(
    marketing_sees_quotes_but_no_amounts_in_payloads_or_events,
    |b| async move {
        let Setup {
            s,
            admin,
            rep,
            quote,
            ..
        } = setup(b, &[]).await;
        let r = set_status(&s, &rep, &quote, "SENT").await;
        assert!(r["errors"].is_null(), "{r}");
        let mk = user(&s, &admin, "mk@test.example", &["marketing"]).await;
        for (q, field) in [
            (
                "query($id:ID!){ quote(id:$id) { total { amountMinor } } }",
                "Quote.total",
            ),
            (
                "query($id:ID!){ quote(id:$id) { subtotal { amountMinor } } }",
                "Quote.subtotal",
            ),
            (
                "query($id:ID!){ quote(id:$id) { lineItems { unitPrice { amountMinor } } } }",
                "QuoteLineItem.unitPrice",
            ),
        ] {
            let r = s.gql(Some(&mk), q, json!({"id": quote["id"]})).await;
            assert_eq!(code(&r), "FORBIDDEN", "{r}");
            assert_eq!(
                r["errors"][0]["extensions"]["fields"],
                json!([field]),
                "{r}"
            );
            assert!(r.get("data").is_none(), "{r}");
        }
        let d = ok(
        &s,
        &mk,
        "{ quotes { totalCount edges { node { number status lineItems { quantity product { code } } } } } }",
        json!({}),
    )
    .await;
        assert_eq!(d["quotes"]["totalCount"], 1);
        assert_eq!(
            d["quotes"]["edges"][0]["node"]["lineItems"][0]["quantity"],
            2.0
        );
        // Marketing may not write quotes.
        let r = set_status(&s, &mk, &quote, "REJECTED").await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");

        // Events: the rep sees created and sent with amounts; marketing the
        // same events without any; another rep none.
        let mine = quote_events(&s, &rep).await;
        let kinds: Vec<&str> = mine.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["quote.created", "quote.sent"], "{mine:?}");
        assert_eq!(
            mine[0]["payload"]["changed"]["total"]["amountMinor"], 3998,
            "{mine:?}"
        );
        assert_eq!(mine[1]["payload"]["changed"]["status"], "SENT");
        assert!(mine[0]["payload"]["opportunityId"].is_string(), "{mine:?}");
        let theirs = quote_events(&s, &mk).await;
        let kinds: Vec<&str> = theirs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["quote.created", "quote.sent"], "{theirs:?}");
        for e in &theirs {
            let text = e["payload"].to_string();
            for k in [
                "subtotal",
                "\"total\"",
                "\"tax\"",
                "\"discount\"",
                "unitPrice",
                "amountMinor",
            ] {
                assert!(!text.contains(k), "{k} in {text}");
            }
        }
        assert!(theirs[0]["payload"]["changed"]["number"].is_string());
        let other = user(&s, &admin, "other@test.example", &["sales_rep"]).await;
        assert_eq!(quote_events(&s, &other).await, Vec::<Value>::new());
    }
);
