//! Custom fields: definitions, validation on write and import, filters,
//! sorting, field rules per key, exports, delete / restore / purge.

use serde_json::{Value, json};

use crate::both;
use crate::support::*;

const DEFINE: &str =
    "mutation($i:CreateCustomFieldInput!){ createCustomField(input:$i) { id key version } }";
const CREATE_ACCOUNT: &str =
    "mutation($i:CreateAccountInput!){ createAccount(input:$i) { id custom } }";

async fn define(s: &TestServer, admin: &str, input: Value) -> (String, i64) {
    let r = s.gql(Some(admin), DEFINE, json!({"i": input})).await;
    let d = &r["data"]["createCustomField"];
    (
        d["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned(),
        d["version"].as_i64().unwrap(),
    )
}

both!(
    custom_fields_are_validated_filtered_sorted_and_ruled,
    |b| async move {
        let rules = "p, marketing, Account.custom.margin, read, deny\np, sales_rep, Account.custom.margin, write, deny";
        let s = TestServer::start_with_policy(b, rules, &[]).await;
        let admin = s.admin().await;
        s.create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        s.create_user(&admin, "mkt@test.example", &["marketing"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        let mkt = s.login("mkt@test.example", "user-password-1").await;
        let (region_id, region_v) = define(
            &s,
            &admin,
            json!({"entityType": "Account", "key": "region", "label": "Sales region",
               "type": "SELECT", "options": ["EMEA", "APAC", "AMER"]}),
        )
        .await;
        define(
            &s,
            &admin,
            json!({"entityType": "Account", "key": "tier", "label": "Tier", "type": "NUMBER"}),
        )
        .await;
        define(
            &s,
            &admin,
            json!({"entityType": "Account", "key": "margin", "label": "Margin", "type": "NUMBER"}),
        )
        .await;
        // Definitions are checked too; only admins define.
        let r = s
        .gql(Some(&admin), DEFINE, json!({"i": {"entityType": "Account", "key": "9 bad", "label": "x", "type": "SELECT"}}))
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let fields: Vec<&str> = r["errors"][0]["extensions"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["key", "options"], "{r}");
        let r = s
            .gql(
                Some(&rep),
                DEFINE,
                json!({"i": {"entityType": "Account", "key": "x", "label": "x", "type": "TEXT"}}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        let r = s
            .gql(
                Some(&rep),
                "{ customFieldDefinitions(entityType: \"Account\") { key type options } }",
                json!({}),
            )
            .await;
        assert_eq!(
            r["data"]["customFieldDefinitions"][0],
            json!({"key": "margin", "type": "NUMBER", "options": []}),
            "{r}"
        );

        // A value outside the options is refused, naming the field; nothing is written.
        let r = s
            .gql(
                Some(&rep),
                CREATE_ACCOUNT,
                json!({"i": {"name": "Bad", "custom": {"region": "Mars"}}}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(
            r["errors"][0]["extensions"]["fields"][0],
            json!({"field": "custom.region", "message": "\"Mars\" is not one of the options (EMEA, APAC, AMER)"}),
            "{r}"
        );
        let r = s
            .gql(
                Some(&rep),
                CREATE_ACCOUNT,
                json!({"i": {"name": "Bad", "custom": {"nope": 1}}}),
            )
            .await;
        assert_eq!(
            r["errors"][0]["extensions"]["fields"][0]["field"], "custom.nope",
            "{r}"
        );
        assert_eq!(s.db.count("accounts").await, 0);
        // Per-key write rules.
        let r = s
            .gql(
                Some(&rep),
                CREATE_ACCOUNT,
                json!({"i": {"name": "Bad", "custom": {"margin": 3}}}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        for (name, custom) in [
            ("Alpha", json!({"region": "EMEA", "tier": 3, "margin": 0.2})),
            ("Beta", json!({"region": "APAC", "tier": 1})),
            ("Gamma", json!({"tier": 2})),
            ("Delta", json!({})),
        ] {
            let r = s
                .gql(
                    Some(&admin),
                    CREATE_ACCOUNT,
                    json!({"i": {"name": name, "custom": custom}}),
                )
                .await;
            assert!(r.get("errors").is_none(), "{r}");
        }
        // Read rules per key.
        let q = "{ accounts(filter:{search:\"alpha\"}) { nodes { custom } } }";
        let r = s.gql(Some(&admin), q, json!({})).await;
        assert_eq!(
            r["data"]["accounts"]["nodes"][0]["custom"],
            json!({"region": "EMEA", "tier": 3.0, "margin": 0.2})
        );
        let r = s.gql(Some(&mkt), q, json!({})).await;
        assert_eq!(
            r["data"]["accounts"]["nodes"][0]["custom"],
            json!({"region": "EMEA", "tier": 3.0})
        );
        let r = s
            .gql(
                Some(&mkt),
                "{ accounts(orderBy:{customKey:\"margin\"}) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");

        // Filter and sort.
        let r = s
            .gql(
                Some(&admin),
                "query($f:AccountFilterInput){ accounts(filter:$f) { totalCount nodes { name } } }",
                json!({"f": {"custom": [{"key": "region", "equals": "EMEA"}]}}),
            )
            .await;
        assert_eq!(
            r["data"]["accounts"]["nodes"],
            json!([{"name": "Alpha"}]),
            "{r}"
        );
        let page = "query($a:String,$d:Direction!){ accounts(first:2, after:$a, orderBy:{customKey:\"tier\", direction:$d}) { nodes { name } pageInfo { endCursor hasNextPage } } }";
        let r = s.gql(Some(&admin), page, json!({"d": "ASC"})).await;
        assert_eq!(
            r["data"]["accounts"]["nodes"],
            json!([{"name": "Delta"}, {"name": "Beta"}]),
            "{r}"
        );
        let after = r["data"]["accounts"]["pageInfo"]["endCursor"].clone();
        let r = s
            .gql(Some(&admin), page, json!({"d": "ASC", "a": after}))
            .await;
        assert_eq!(
            r["data"]["accounts"]["nodes"],
            json!([{"name": "Gamma"}, {"name": "Alpha"}]),
            "{r}"
        );
        assert_eq!(
            r["data"]["accounts"]["pageInfo"]["hasNextPage"], false,
            "{r}"
        );
        let r = s.gql(Some(&admin), page, json!({"d": "DESC"})).await;
        assert_eq!(
            r["data"]["accounts"]["nodes"],
            json!([{"name": "Alpha"}, {"name": "Gamma"}]),
            "{r}"
        );
        let r = s
            .gql(
                Some(&admin),
                "{ accounts(orderBy:{customKey:\"region\"}) { nodes { name } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            r["data"]["accounts"]["nodes"],
            // No region sorts first; ties go by id (creation order).
            json!([{"name": "Gamma"}, {"name": "Delta"}, {"name": "Beta"}, {"name": "Alpha"}]),
            "{r}"
        );

        // Import: the same rule, with the row and the column named.
        let file = "name,custom.region,Tier\nEcho,AMER,4\nFoxtrot,Mars,5\n";
        let r = s
            .upload(
                Some(&admin),
                "mutation($file:Upload!){ importAccounts(file:$file) { id } }",
                json!({}),
                "file",
                "a.csv",
                file.into(),
            )
            .await;
        let id = r["data"]["importAccounts"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let job = s.wait_job(&admin, "importJob", &id).await;
        assert_eq!(job["status"], "FAILED", "{job}");
        let (_, report) = s
            .get(Some(&admin), job["errorReportUrl"].as_str().unwrap())
            .await;
        assert_eq!(
            report,
            "line,column,message\n3,custom.region,\"\"\"Mars\"\" is not one of the options (EMEA, APAC, AMER)\"\n"
        );
        let r = s
        .upload(
            Some(&admin),
            "mutation($file:Upload!){ importAccounts(file:$file, options:{mode: SKIP_BAD_ROWS}) { id } }",
            json!({}),
            "file",
            "a.csv",
            file.into(),
        )
        .await;
        let id = r["data"]["importAccounts"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let job = s.wait_job(&admin, "importJob", &id).await;
        assert_eq!(job["created"], 1, "{job}");
        let r = s
            .gql(
                Some(&admin),
                "{ accounts(filter:{search:\"echo\"}) { nodes { custom } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            r["data"]["accounts"]["nodes"][0]["custom"],
            json!({"region": "AMER", "tier": 4.0}),
            "{r}"
        );

        // Exports carry the custom columns the caller may read.
        for (token, has_margin) in [(&admin, true), (&mkt, false)] {
            let r = s
                .gql(Some(token), "mutation { exportAccounts { id } }", json!({}))
                .await;
            let id = r["data"]["exportAccounts"]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let job = s.wait_job(token, "exportJob", &id).await;
            let (_, csv) = s
                .get(Some(token), job["downloadUrl"].as_str().unwrap())
                .await;
            let header = csv.lines().next().unwrap();
            assert!(
                header.ends_with(if has_margin {
                    "custom.margin,custom.region,custom.tier"
                } else {
                    "custom.region,custom.tier"
                }),
                "{header}"
            );
        }

        // Deleting a definition hides its values; restoring brings them back;
        // purging removes them.
        let r = s
            .gql(
                Some(&admin),
                "mutation($id:ID!,$v:Int!){ deleteCustomField(id:$id, version:$v) { deletedAt } }",
                json!({"id": region_id, "v": region_v}),
            )
            .await;
        assert!(
            r["data"]["deleteCustomField"]["deletedAt"].is_string(),
            "{r}"
        );
        let r = s.gql(Some(&admin), q, json!({})).await;
        assert_eq!(
            r["data"]["accounts"]["nodes"][0]["custom"],
            json!({"tier": 3.0, "margin": 0.2})
        );
        let r = s
            .gql(
                Some(&admin),
                "mutation($id:ID!){ restoreCustomField(id:$id) { version } }",
                json!({"id": region_id}),
            )
            .await;
        assert!(r.get("errors").is_none(), "{r}");
        let r = s.gql(Some(&admin), q, json!({})).await;
        assert_eq!(
            r["data"]["accounts"]["nodes"][0]["custom"]["region"],
            "EMEA"
        );
        let r = s
            .gql(
                Some(&admin),
                "mutation($id:ID!){ purgeCustomField(id:$id) }",
                json!({"id": region_id}),
            )
            .await;
        assert_eq!(
            code(&r),
            "CONFLICT",
            "only deleted fields can be purged: {r}"
        );
        let r = s
            .gql(
                Some(&admin),
                "mutation($id:ID!,$v:Int!){ deleteCustomField(id:$id, version:$v) { id } }",
                json!({"id": region_id, "v": region_v + 2}),
            )
            .await;
        assert!(r.get("errors").is_none(), "{r}");
        let r = s
            .gql(
                Some(&admin),
                "mutation($id:ID!){ purgeCustomField(id:$id) }",
                json!({"id": region_id}),
            )
            .await;
        assert!(r.get("errors").is_none(), "{r}");
        assert_eq!(
            s.db.scalar("SELECT COUNT(*) AS n FROM accounts WHERE custom LIKE '%region%'")
                .await,
            0
        );
    }
);

both!(required_custom_fields_and_defaults, |b| async move {
    let s = TestServer::start(b, &[]).await;
    let admin = s.admin().await;
    define(
        &s,
        &admin,
        json!({"entityType": "Contact", "key": "segment", "label": "Segment", "type": "MULTI_SELECT",
               "options": ["smb", "mid", "ent"], "required": true, "defaultValue": ["smb"]}),
    )
    .await;
    define(
        &s,
        &admin,
        json!({"entityType": "Contact", "key": "birthday", "label": "Birthday", "type": "DATE"}),
    )
    .await;
    let r = s
        .gql(Some(&admin), "mutation { createContact(input:{firstName:\"A\", lastName:\"B\", custom:{birthday:\"1990-02-30\"}}) { id } }", json!({}))
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["fields"][0],
        json!({"field": "custom.birthday", "message": "must be a date written YYYY-MM-DD"}),
        "{r}"
    );
    let r = s
        .gql(Some(&admin), "mutation { createContact(input:{firstName:\"A\", lastName:\"B\", custom:{birthday:\"1990-02-28\"}}) { id version custom } }", json!({}))
        .await;
    let c = &r["data"]["createContact"];
    assert_eq!(
        c["custom"],
        json!({"segment": ["smb"], "birthday": "1990-02-28"}),
        "{r}"
    );
    let id = c["id"].as_str().unwrap().to_owned();
    // Clearing a required field is refused; changing it is fine.
    let upd = "mutation($id:ID!,$v:Int!,$c:JSON){ updateContact(input:{id:$id, version:$v, custom:$c}) { version custom } }";
    let r = s
        .gql(
            Some(&admin),
            upd,
            json!({"id": id, "v": 1, "c": {"segment": null}}),
        )
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["fields"][0]["field"], "custom.segment",
        "{r}"
    );
    let r = s
        .gql(
            Some(&admin),
            upd,
            json!({"id": id, "v": 1, "c": {"segment": ["ent", "mid"]}}),
        )
        .await;
    assert_eq!(
        r["data"]["updateContact"]["custom"]["segment"],
        json!(["ent", "mid"]),
        "{r}"
    );
    // Multi-select filters match one option.
    let r = s
        .gql(
            Some(&admin),
            "{ contacts(filter:{custom:[{key:\"segment\", equals:\"mid\"}]}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["contacts"]["totalCount"], 1, "{r}");
    let r = s
        .gql(
            Some(&admin),
            "{ contacts(filter:{custom:[{key:\"segment\", equals:\"smb\"}]}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["contacts"]["totalCount"], 0, "{r}");
});
