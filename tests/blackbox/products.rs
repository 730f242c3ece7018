//! Products, price books and opportunity line items over HTTP and
//! WebSocket: the catalogue's typed errors (duplicate code, a second
//! standard book), line items computing the amount with half-even
//! rounding, the amount refused as input once there are line items, the
//! version guard and the `opportunity.updated` event, marketing without
//! prices, row scope on line items, and import/export of the catalogue.

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

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

async fn product(s: &TestServer, admin: &str, code: &str, name: &str) -> String {
    let d = ok(
        s,
        admin,
        "mutation($i:CreateProductInput!){ createProduct(input:$i) { id } }",
        json!({"i": {"code": code, "name": name, "family": "Software", "unit": "seat"}}),
    )
    .await;
    id(&d, "createProduct")
}

async fn book(s: &TestServer, admin: &str, name: &str, currency: &str) -> Value {
    let d = ok(
        s,
        admin,
        "mutation($i:CreatePriceBookInput!){ createPriceBook(input:$i) { id isStandard version } }",
        json!({"i": {"name": name, "currency": currency}}),
    )
    .await;
    d["createPriceBook"].clone()
}

async fn entry(
    s: &TestServer,
    admin: &str,
    book: &str,
    product: &str,
    minor: i64,
    cur: &str,
) -> String {
    let d = ok(
        s,
        admin,
        "mutation($i:CreatePriceBookEntryInput!){ createPriceBookEntry(input:$i) { id } }",
        json!({"i": {"priceBookId": book, "productId": product,
                     "unitPrice": {"amountMinor": minor, "currency": cur}}}),
    )
    .await;
    id(&d, "createPriceBookEntry")
}

/// A pipeline with one open stage.
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

async fn opportunity(s: &TestServer, token: &str, pipeline: &str, name: &str) -> String {
    let acc = account(s, token, json!({"name": format!("{name} Inc")})).await;
    let d = ok(
        s,
        token,
        "mutation($i:CreateOpportunityInput!){ createOpportunity(input:$i) { id } }",
        json!({"i": {"name": name, "accountId": acc, "pipelineId": pipeline}}),
    )
    .await;
    id(&d, "createOpportunity")
}

const ADD: &str = "mutation($o:ID!,$v:Int!,$i:CreateOpportunityLineItemInput!){ \
    addOpportunityLineItem(opportunityId:$o, opportunityVersion:$v, input:$i) { \
    version amount { amountMinor currency } \
    lineItems { id quantity discountPercent listPrice { amountMinor } \
    unitPrice { amountMinor } total { amountMinor currency } product { code } } } }";

async fn add(s: &TestServer, token: &str, opp: &str, version: i64, input: Value) -> Value {
    s.gql(
        Some(token),
        ADD,
        json!({"o": opp, "v": version, "i": input}),
    )
    .await
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

both!(catalogue_writes_and_their_typed_errors, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let p = product(&s, &admin, "CRM-SEAT", "CRM seat").await;

    // A duplicate code is a CONFLICT and writes nothing.
    let r = s
        .gql(
            Some(&admin),
            "mutation{ createProduct(input:{code:\"CRM-SEAT\", name:\"Other\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "CONFLICT", "{r}");
    assert_eq!(s.db.count("products").await, 1);
    // Bad fields are VALIDATION naming each.
    let r = s
        .gql(
            Some(&admin),
            "mutation{ createProduct(input:{code:\" \", name:\"\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert_eq!(fields(&r), vec!["code", "name"]);
    // Updates are versioned; deactivation keeps the product.
    let r = s
        .gql(
            Some(&admin),
            "mutation($id:ID!){ updateProduct(input:{id:$id, version:7, name:\"x\"}) { id } }",
            json!({"id": p}),
        )
        .await;
    assert_eq!(code(&r), "CONFLICT", "{r}");
    let d = ok(
        &s,
        &admin,
        "mutation($id:ID!){ updateProduct(input:{id:$id, version:1, family:null, code:\"CRM-SEAT-2\"}) { version code family } }",
        json!({"id": p}),
    )
    .await;
    assert_eq!(d["updateProduct"]["code"], "CRM-SEAT-2");
    assert!(d["updateProduct"]["family"].is_null());

    // The first book of a currency is its standard one; a second standard
    // book is a CONFLICT; the standard one is neither demoted nor retired.
    let std_eur = book(&s, &admin, "Standard EUR", "eur").await;
    assert_eq!(std_eur["isStandard"], true);
    let r = s
        .gql(
            Some(&admin),
            "mutation{ createPriceBook(input:{name:\"Partner EUR\", currency:\"EUR\", isStandard:true}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "CONFLICT", "{r}");
    assert_eq!(s.db.count("price_books").await, 1);
    let partner = book(&s, &admin, "Partner EUR", "EUR").await;
    assert_eq!(partner["isStandard"], false);
    let r = s
        .gql(
            Some(&admin),
            "mutation($id:ID!){ updatePriceBook(input:{id:$id, version:1, isStandard:true}) { id } }",
            json!({"id": partner["id"]}),
        )
        .await;
    assert_eq!(code(&r), "CONFLICT", "{r}");
    let r = s
        .gql(
            Some(&admin),
            "mutation($id:ID!){ updatePriceBook(input:{id:$id, version:1, isStandard:false}) { id } }",
            json!({"id": std_eur["id"]}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert_eq!(fields(&r), vec!["isStandard"]);
    let r = s
        .gql(
            Some(&admin),
            "mutation($id:ID!){ deactivatePriceBook(id:$id, version:1) { id } }",
            json!({"id": std_eur["id"]}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert_eq!(fields(&r), vec!["active"]);
    // Another currency gets its own standard book.
    let usd = book(&s, &admin, "Standard USD", "USD").await;
    assert_eq!(usd["isStandard"], true);

    // Entries: one per product and book, priced in the book's currency.
    let e = entry(&s, &admin, std_eur["id"].as_str().unwrap(), &p, 1999, "EUR").await;
    let r = s
        .gql(
            Some(&admin),
            "mutation($b:ID!,$p:ID!){ createPriceBookEntry(input:{priceBookId:$b, productId:$p, unitPrice:{amountMinor:5, currency:\"EUR\"}}) { id } }",
            json!({"b": std_eur["id"], "p": p}),
        )
        .await;
    assert_eq!(code(&r), "CONFLICT", "{r}");
    let r = s
        .gql(
            Some(&admin),
            "mutation($b:ID!,$p:ID!){ createPriceBookEntry(input:{priceBookId:$b, productId:$p, unitPrice:{amountMinor:5, currency:\"USD\"}}) { id } }",
            json!({"b": partner["id"], "p": p}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert_eq!(fields(&r), vec!["unitPrice"]);
    assert_eq!(s.db.count("price_book_entries").await, 1);
    // Deactivated, not deleted: gone from the book's entries unless asked.
    ok(
        &s,
        &admin,
        "mutation($id:ID!){ deactivatePriceBookEntry(id:$id, version:1) { active } }",
        json!({"id": e}),
    )
    .await;
    let q = "query($id:ID!){ priceBook(id:$id) { name currency isStandard \
             live: entries { id } all: entries(includeInactive:true) { id active unitPrice { amountMinor currency } product { code } } } }";
    let d = ok(&s, &admin, q, json!({"id": std_eur["id"]})).await;
    let pb = &d["priceBook"];
    assert_eq!(pb["live"], json!([]));
    assert_eq!(pb["all"][0]["active"], false);
    assert_eq!(
        pb["all"][0]["unitPrice"],
        json!({"amountMinor": 1999, "currency": "EUR"})
    );
    assert_eq!(pb["all"][0]["product"]["code"], "CRM-SEAT-2");

    // Sales reads the catalogue but cannot shape it; support sees none of it.
    let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
    let d = ok(
        &s,
        &rep,
        "{ products(filter:{search:\"seat\"}) { totalCount edges { node { code active } } } priceBooks(currency:\"EUR\") { name isStandard } }",
        json!({}),
    )
    .await;
    assert_eq!(d["products"]["totalCount"], 1);
    assert_eq!(d["priceBooks"].as_array().unwrap().len(), 2);
    let r = s
        .gql(
            Some(&rep),
            "mutation{ createProduct(input:{code:\"X\", name:\"X\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    let sp = user(&s, &admin, "sp@test.example", &["support"]).await;
    let r = s
        .gql(Some(&sp), "{ products { totalCount } }", json!({}))
        .await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
});

/// Every event a socket gets until it is quiet (the first may take a
/// while: the replay starts once the subscription is checked).
async fn drain(ws: &mut Ws) -> Vec<Value> {
    let first = ws.recv().await.expect("no event at all");
    let mut out = vec![first["payload"]["data"]["pipelineEvents"].clone()];
    while let Ok(Some(m)) =
        tokio::time::timeout(std::time::Duration::from_millis(1500), ws.recv()).await
    {
        out.push(m["payload"]["data"]["pipelineEvents"].clone());
    }
    out
}

both!(
    line_items_compute_the_amount_rounding_half_to_even,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let pipe = pipeline(&s, &admin).await;
        let eur = book(&s, &admin, "Standard EUR", "EUR").await;
        let eur = eur["id"].as_str().unwrap().to_owned();
        let usd = book(&s, &admin, "Standard USD", "USD").await;
        let usd = usd["id"].as_str().unwrap().to_owned();
        let seat = product(&s, &admin, "SEAT", "Seat").await;
        let hours = product(&s, &admin, "HOURS", "Consulting hour").await;
        let kit = product(&s, &admin, "KIT", "Starter kit").await;
        let e_seat = entry(&s, &admin, &eur, &seat, 1999, "EUR").await;
        let e_hours = entry(&s, &admin, &eur, &hours, 1235, "EUR").await;
        let e_kit = entry(&s, &admin, &eur, &kit, 999, "EUR").await;
        let e_usd = entry(&s, &admin, &usd, &seat, 2500, "USD").await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let opp = opportunity(&s, &rep, &pipe, "Big deal").await;

        // 19.99 × 2.5 = 49.975 → 49.98 (half to even: 4998).
        let r = add(
            &s,
            &rep,
            &opp,
            1,
            json!({"priceBookEntryId": e_seat, "quantity": 2.5}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        let o = &r["data"]["addOpportunityLineItem"];
        assert_eq!(o["version"], 2);
        assert_eq!(o["amount"], json!({"amountMinor": 4998, "currency": "EUR"}));
        // 10.01 (overriding 19.99) × 0.5 = 5.005 → 5.00 (500.5 → 500).
        let r = add(
            &s,
            &rep,
            &opp,
            2,
            json!({"priceBookEntryId": e_seat, "quantity": 0.5,
                   "unitPrice": {"amountMinor": 1001, "currency": "EUR"}}),
        )
        .await;
        let o = &r["data"]["addOpportunityLineItem"];
        assert_eq!(o["lineItems"][1]["total"]["amountMinor"], 500, "{r}");
        assert_eq!(o["lineItems"][1]["listPrice"]["amountMinor"], 1999);
        assert_eq!(o["lineItems"][1]["unitPrice"]["amountMinor"], 1001);
        // 9.99 × 1 − 50 % = 4.995 → 5.00 (499.5 → 500).
        let r = add(
            &s,
            &rep,
            &opp,
            3,
            json!({"priceBookEntryId": e_kit, "quantity": 1, "discountPercent": 50}),
        )
        .await;
        assert_eq!(
            r["data"]["addOpportunityLineItem"]["lineItems"][2]["total"]["amountMinor"], 500,
            "{r}"
        );
        // 12.35 × 3 − 12.5 % = 32.41875 → 32.42.
        let r = add(
            &s,
            &rep,
            &opp,
            4,
            json!({"priceBookEntryId": e_hours, "quantity": 3, "discountPercent": 12.5}),
        )
        .await;
        let o = &r["data"]["addOpportunityLineItem"];
        assert_eq!(o["lineItems"][3]["total"]["amountMinor"], 3242, "{r}");
        // The amount is the sum of the rounded lines: 4998 + 500 + 500 + 3242.
        assert_eq!(o["amount"]["amountMinor"], 9240);
        assert_eq!(o["version"], 5);
        let items: Vec<String> = o["lineItems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();

        // A stale version is a CONFLICT; bad input VALIDATION naming each
        // field; another currency is refused. Nothing is written.
        let r = add(
            &s,
            &rep,
            &opp,
            4,
            json!({"priceBookEntryId": e_seat, "quantity": 1}),
        )
        .await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        let r = add(
            &s,
            &rep,
            &opp,
            5,
            json!({"priceBookEntryId": e_seat, "quantity": 0.0005, "discountPercent": 101}),
        )
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(fields(&r), vec!["discountPercent", "quantity"]);
        let r = add(
            &s,
            &rep,
            &opp,
            5,
            json!({"priceBookEntryId": e_usd, "quantity": 1}),
        )
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(fields(&r), vec!["priceBookEntryId"]);
        assert_eq!(s.db.count("opportunity_line_items").await, 4);

        // The amount is no input while there are line items.
        let r = s
            .gql(
                Some(&rep),
                "mutation($id:ID!){ updateOpportunity(input:{id:$id, version:5, amount:{amountMinor:1, currency:\"EUR\"}}) { id } }",
                json!({"id": opp}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(fields(&r), vec!["amount"]);

        // Changing and removing lines recomputes the amount.
        let r = s
            .gql(
                Some(&rep),
                "mutation($v:Int!,$i:UpdateOpportunityLineItemInput!){ updateOpportunityLineItem(opportunityVersion:$v, input:$i) { version amount { amountMinor } lineItems { total { amountMinor } unitPrice { amountMinor } } } }",
                json!({"v": 5, "i": {"id": items[1], "unitPrice": null, "quantity": 1.5}}),
            )
            .await;
        let o = &r["data"]["updateOpportunityLineItem"];
        // 19.99 × 1.5 = 29.985 → 29.98 (2998.5 → 2998).
        assert_eq!(o["lineItems"][1]["total"]["amountMinor"], 2998, "{r}");
        assert_eq!(o["amount"]["amountMinor"], 4998 + 2998 + 500 + 3242);
        let r = s
            .gql(
                Some(&rep),
                "mutation($id:ID!){ removeOpportunityLineItem(id:$id, opportunityVersion:6) { version amount { amountMinor } lineItems { id } } }",
                json!({"id": items[0]}),
            )
            .await;
        let o = &r["data"]["removeOpportunityLineItem"];
        assert_eq!(o["version"], 7, "{r}");
        assert_eq!(o["amount"]["amountMinor"], 2998 + 500 + 3242);
        assert_eq!(o["lineItems"].as_array().unwrap().len(), 3);

        // Each change is in the stage history and an `opportunity.updated`
        // event with the amount before and after.
        let d = ok(
            &s,
            &rep,
            "query($id:ID!){ opportunity(id:$id) { stageHistory { changes { field from to } } } }",
            json!({"id": opp}),
        )
        .await;
        let amounts: Vec<Value> = d["opportunity"]["stageHistory"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|h| h["changes"].as_array().unwrap().clone())
            .filter(|c| c["field"] == "amount")
            .map(|c| c["to"]["amountMinor"].clone())
            .collect();
        assert_eq!(
            amounts,
            vec![
                json!(4998),
                json!(5498),
                json!(5998),
                json!(9240),
                json!(11738),
                json!(6740)
            ]
        );
        let mut ws = Ws::init(s.addr(), &rep).await;
        ws.subscribe(
            "1",
            "subscription($p:ID){ pipelineEvents(after:\"0\", pipelineId:$p) { kind entityId payload } }",
            json!({"p": pipe}),
        )
        .await;
        let events = drain(&mut ws).await;
        let updates: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "opportunity.updated" && e["entityId"] == json!(opp))
            .collect();
        assert_eq!(updates.len(), 6, "{events:?}");
        let last = &updates[5]["payload"];
        assert_eq!(last["changed"]["amount"]["amountMinor"], 6740, "{last}");
        assert_eq!(last["before"]["amount"]["amountMinor"], 11738, "{last}");
    }
);

both!(
    line_items_follow_row_scope_and_marketing_sees_no_prices,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let pipe = pipeline(&s, &admin).await;
        let eur = book(&s, &admin, "Standard EUR", "EUR").await;
        let seat = product(&s, &admin, "SEAT", "Seat").await;
        let e = entry(&s, &admin, eur["id"].as_str().unwrap(), &seat, 1000, "EUR").await;
        let rep = user(&s, &admin, "rep@test.example", &["sales_rep"]).await;
        let other = user(&s, &admin, "other@test.example", &["sales_rep"]).await;
        let mk = user(&s, &admin, "mk@test.example", &["marketing"]).await;
        let opp = opportunity(&s, &rep, &pipe, "Mine").await;
        let r = add(
            &s,
            &rep,
            &opp,
            1,
            json!({"priceBookEntryId": e, "quantity": 2}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");

        // Another rep's deal is NOT_FOUND, and nothing changes.
        let r = add(
            &s,
            &other,
            &opp,
            2,
            json!({"priceBookEntryId": e, "quantity": 1}),
        )
        .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        assert_eq!(s.db.count("opportunity_line_items").await, 1);

        // Marketing: products and line items, never a price or total.
        for (q, field) in [
            (
                "query($id:ID!){ priceBook(id:$id) { entries { unitPrice { amountMinor } } } }",
                "PriceBookEntry.unitPrice",
            ),
            (
                "query($id:ID!){ opportunity(id:$id) { lineItems { total { amountMinor } } } }",
                "OpportunityLineItem.total",
            ),
            (
                "query($id:ID!){ opportunity(id:$id) { lineItems { unitPrice { amountMinor } } } }",
                "OpportunityLineItem.unitPrice",
            ),
        ] {
            let id = if field.starts_with("Price") {
                eur["id"].clone()
            } else {
                json!(opp)
            };
            let r = s.gql(Some(&mk), q, json!({"id": id})).await;
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
            "query($b:ID!,$o:ID!){ priceBook(id:$b) { entries { product { code name } } } \
             opportunity(id:$o) { lineItems { quantity product { code } } } }",
            json!({"b": eur["id"], "o": opp}),
        )
        .await;
        assert_eq!(d["priceBook"]["entries"][0]["product"]["code"], "SEAT");
        assert_eq!(d["opportunity"]["lineItems"][0]["quantity"], 2.0);
        // Nor may marketing change line items.
        let r = add(
            &s,
            &mk,
            &opp,
            2,
            json!({"priceBookEntryId": e, "quantity": 1}),
        )
        .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
    }
);

both!(products_and_entries_import_and_export, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    book(&s, &admin, "Standard EUR", "EUR").await;
    let upload = |q: &'static str, file: String| {
        let s = &s;
        let admin = admin.clone();
        async move {
            let r = s
                .upload(
                    Some(&admin),
                    q,
                    json!({"o": {}}),
                    "file",
                    "f.csv",
                    file.into_bytes(),
                )
                .await;
            let field = if q.contains("importProducts") {
                "importProducts"
            } else {
                "importPriceBookEntries"
            };
            let id = r["data"][field]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned();
            s.wait_job(&admin, "importJob", &id).await
        }
    };
    let products =
        "mutation($file:Upload!,$o:ImportOptions){ importProducts(file:$file, options:$o) { id } }";
    let entries = "mutation($file:Upload!,$o:ImportOptions){ importPriceBookEntries(file:$file, options:$o) { id } }";
    let job = upload(
        products,
        "SKU,Product Name,Family\nA-1,Alpha,Software\nB-2,Beta,Services\n".into(),
    )
    .await;
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    assert_eq!(job["created"], 2, "{job}");
    // Rows match existing products by code: skipped, not duplicated.
    let job = upload(products, "code,name\nA-1,Alpha again\n".into()).await;
    assert_eq!(job["skipped"], 1, "{job}");
    assert_eq!(s.db.count("products").await, 2);
    // Entries name products by code and books by name; a bad row fails
    // the whole file (all or nothing).
    let job = upload(
        entries,
        "product,price book,price\nA-1,Standard EUR,12.50\nZ-9,Standard EUR,1\n".into(),
    )
    .await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert_eq!(s.db.count("price_book_entries").await, 0);
    let job = upload(
        entries,
        "product,price book,price\nA-1,Standard EUR,12.50\nB-2,Standard EUR,99\n".into(),
    )
    .await;
    assert_eq!(job["created"], 2, "{job}");
    let d = ok(
        &s,
        &admin,
        "{ priceBooks { entries { unitPrice { amountMinor currency } product { code } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        d["priceBooks"][0]["entries"],
        json!([
            {"unitPrice": {"amountMinor": 1250, "currency": "EUR"}, "product": {"code": "A-1"}},
            {"unitPrice": {"amountMinor": 9900, "currency": "EUR"}, "product": {"code": "B-2"}},
        ])
    );
    // Exports write what was imported.
    let r = ok(
        &s,
        &admin,
        "mutation{ exportPriceBookEntries { id } }",
        json!({}),
    )
    .await;
    let job = s
        .wait_job(
            &admin,
            "exportJob",
            r["exportPriceBookEntries"]["id"].as_str().unwrap(),
        )
        .await;
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    let (status, body) = s
        .get(Some(&admin), job["downloadUrl"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "{body}");
    let header = body.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("id,priceBookId,productId,unitPrice,currency,active"),
        "{body}"
    );
    assert!(body.contains(",12.50,EUR,true"), "{body}");
    assert!(body.contains(",99.00,EUR,true"), "{body}");
    let r = ok(
        &s,
        &admin,
        "mutation{ exportProducts(filter:{family:\"Services\"}) { id } }",
        json!({}),
    )
    .await;
    let job = s
        .wait_job(
            &admin,
            "exportJob",
            r["exportProducts"]["id"].as_str().unwrap(),
        )
        .await;
    let (_, body) = s
        .get(Some(&admin), job["downloadUrl"].as_str().unwrap())
        .await;
    assert_eq!(body.lines().count(), 2, "{body}");
    assert!(body.contains(",Beta,B-2,Services,"), "{body}");
});
