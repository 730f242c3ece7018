//! Public web forms over real HTTP, as a browser on another site posts
//! them: a submission (urlencoded and JSON) becomes a lead with the form's
//! mapping and defaults, an audit entry under the form and a timeline
//! entry; honeypot, origin, rate limits, body limit, 404 for unknown or
//! inactive keys, 422 naming fields; one lead per email within the dedupe
//! window, also for concurrent double submissions; who may manage forms.

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const ORIGIN: &str = "https://www.example.com";

const FORM: &str = "id key version active ownerId teamId defaultSource defaultCampaignId \
    defaultTagIds onMatch dedupeWindowSecs fields { name target required } allowedOrigins";

/// What a form answered.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client that does not follow redirects (to see the 303).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Posts `body` as `content_type` to `/forms/{key}` with extra headers.
async fn post(
    s: &TestServer,
    key: &str,
    content_type: &str,
    body: String,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = browser()
        .post(format!("http://{}/forms/{key}", s.addr()))
        .header("content-type", content_type)
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

/// Posts url-encoded `pairs` from `ORIGIN`.
async fn post_form(s: &TestServer, key: &str, pairs: &[(&str, &str)]) -> Answer {
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    post(
        s,
        key,
        "application/x-www-form-urlencoded",
        body,
        &[("origin", ORIGIN)],
    )
    .await
}

/// Percent-encodes a form value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Makes a form as `token`; returns it.
async fn form(s: &TestServer, token: &str, input: Value) -> Value {
    let d = ok(
        s,
        token,
        &format!("mutation($i:CreateLeadFormInput!){{ createLeadForm(input:$i) {{ {FORM} }} }}"),
        json!({"i": input}),
    )
    .await;
    d["createLeadForm"].clone()
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

/// The standard fields: email (required), surname, company, phone, message.
fn fields() -> Value {
    json!([
        {"name": "email", "target": "EMAIL", "required": true},
        {"name": "surname", "target": "LAST_NAME"},
        {"name": "given", "target": "FIRST_NAME"},
        {"name": "org", "target": "COMPANY"},
        {"name": "tel", "target": "PHONE"},
        {"name": "message", "target": "NOTE"},
        {"name": "cc", "target": "COUNTRY"}
    ])
}

/// Every live lead with `email`, as the admin sees them.
async fn leads_with(s: &TestServer, admin: &str, email: &str) -> Vec<Value> {
    let d = ok(
        s,
        admin,
        "query($q:String){ leads(first: 50, filter:{search:$q}) { edges { node { id version \
         firstName lastName company source campaignId ownerId teamId tagIds country \
         emails { value } phones { value } } } } }",
        json!({"q": email}),
    )
    .await;
    d["leads"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

both!(
    a_submission_becomes_a_lead_with_mapping_and_defaults,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        s.create_user(&admin, "mkt@example.com", &["marketing"])
            .await;
        let mkt = s.login("mkt@example.com", "user-password-1").await;
        let queue = team(&s, &admin, "Inbound").await;
        let tag = ok(
            &s,
            &admin,
            "mutation { createTag(input:{name:\"webinar\"}) { id } }",
            json!({}),
        )
        .await["createTag"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let f = form(
        &s,
        &mkt,
        json!({"name": "Contact us", "fields": fields(), "allowedOrigins": [format!("{ORIGIN}/")],
               "defaultCampaignId": "cmp-2026-spring", "defaultTagIds": [tag], "teamId": queue}),
    )
    .await;
        let key = f["key"].as_str().unwrap().to_owned();
        assert!(key.len() >= 24, "{f}");
        assert_eq!(f["allowedOrigins"], json!([ORIGIN]), "normalised: {f}");
        assert_eq!(f["defaultSource"], "WEB_FORM");
        assert_eq!(f["dedupeWindowSecs"], 600);
        // A submission is engagement for lead scoring (the timeline entry
        // it writes is not a logged activity).
        for (name, event, points) in [
            ("Submitted a form", "FORM_SUBMITTED", 25),
            ("Logged", "ACTIVITY_LOGGED", 40),
        ] {
            ok(
                &s,
                &mkt,
                "mutation($i:CreateScoringRuleInput!){ createScoringRule(input:$i) { id } }",
                json!({"i": {"name": name, "kind": "ENGAGEMENT", "event": event, "points": points}}),
            )
            .await;
        }

        // A browser's url-encoded post.
        let r = post_form(
            &s,
            &key,
            &[
                ("email", " Ada@Example.COM "),
                ("surname", "Lovelace"),
                ("given", "Ada"),
                ("org", "Analytical Engines"),
                ("tel", "+44 20 7946 0000"),
                ("message", "Call me about the engine"),
                ("cc", "gb"),
                ("unmapped", "ignored"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json(), json!({"ok": true}));
        assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
        assert_eq!(r.header("access-control-allow-credentials"), None);
        let found = leads_with(&s, &admin, "ada@example.com").await;
        assert_eq!(found.len(), 1, "{found:?}");
        let lead = &found[0];
        assert_eq!(lead["lastName"], "Lovelace");
        assert_eq!(lead["firstName"], "Ada");
        assert_eq!(lead["company"], "Analytical Engines");
        assert_eq!(lead["emails"], json!([{"value": "ada@example.com"}]));
        assert_eq!(lead["phones"], json!([{"value": "+442079460000"}]));
        assert_eq!(lead["country"], "GB");
        assert_eq!(lead["source"], "WEB_FORM");
        assert_eq!(lead["campaignId"], "cmp-2026-spring");
        assert_eq!(lead["tagIds"], json!([tag]));
        assert_eq!(lead["teamId"], json!(queue));
        assert_eq!(lead["ownerId"], Value::Null, "waits in the team's queue");
        let id = lead["id"].as_str().unwrap();
        let scored = ok(
            &s,
            &admin,
            "query($id:ID!){ lead(id:$id) { engagementScore scoreExplanation { rule points } } }",
            json!({"id": id}),
        )
        .await;
        assert_eq!(scored["lead"]["engagementScore"], 25, "{scored}");
        // The capture is an audited event under the form, and a timeline entry.
        let form_id = f["id"].as_str().unwrap();
        assert_eq!(
        s.db.scalar(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE entity_id = '{id}' AND action = 'created' \
             AND actor_kind = 'form' AND actor_id = '{form_id}'"
        ))
        .await,
        1
    );
        assert_eq!(
        s.db.scalar(&format!(
            "SELECT COUNT(*) AS n FROM outbox WHERE entity_id = '{id}' AND kind = 'lead.created'"
        ))
        .await,
        1
    );
        assert_eq!(
        s.db.scalar(&format!(
            "SELECT COUNT(*) AS n FROM activities WHERE subject_type = 'Lead' AND subject_id = '{id}' \
             AND title = 'Form submitted: Contact us' AND body = 'Call me about the engine'"
        ))
        .await,
        1
    );

        // JSON from another site's script, to a form that redirects and
        // whose leads the admin owns.
        let admin_id = ok(&s, &admin, "{ me { id } }", json!({})).await["me"]["id"].clone();
        let g = form(
            &s,
            &admin,
            json!({"name": "Trial", "fields": fields(), "allowedOrigins": [ORIGIN],
               "redirectUrl": "https://www.example.com/thanks", "defaultSource": "EVENT",
               "ownerId": admin_id}),
        )
        .await;
        let r = post(
            &s,
            g["key"].as_str().unwrap(),
            "application/json",
            json!({"email": "grace@example.com", "org": "Cobol Corp", "tel": 12345678}).to_string(),
            &[("origin", ORIGIN)],
        )
        .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(r.header("location"), Some("https://www.example.com/thanks"));
        let found = leads_with(&s, &admin, "grace@example.com").await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["source"], "EVENT");
        assert_eq!(found[0]["company"], "Cobol Corp");
        assert_eq!(found[0]["ownerId"], admin_id);

        // A preflight is answered for the allowed origin only, never with
        // credentials.
        let pre = |origin: &'static str| {
            let url = format!("http://{}/forms/{key}", s.addr());
            async move {
                browser()
                    .request(reqwest::Method::OPTIONS, url)
                    .header("origin", origin)
                    .header("access-control-request-method", "POST")
                    .header("access-control-request-headers", "content-type")
                    .send()
                    .await
                    .unwrap()
            }
        };
        let r = pre(ORIGIN).await;
        assert_eq!(r.status().as_u16(), 204);
        assert_eq!(
            r.headers()["access-control-allow-origin"].to_str().unwrap(),
            ORIGIN
        );
        assert!(
            r.headers()
                .get("access-control-allow-credentials")
                .is_none()
        );
        let r = pre("https://evil.example").await;
        assert_eq!(r.status().as_u16(), 403);
        assert!(r.headers().get("access-control-allow-origin").is_none());
    }
);

both!(
    bad_submissions_change_nothing_and_reveal_nothing,
    |b| async move {
        let s = server!(b, &[("public-max-body-bytes", "2048")]);
        let admin = s.admin().await;
        let queue = team(&s, &admin, "Inbound").await;
        let f = form(
            &s,
            &admin,
            json!({"name": "Contact", "fields": fields(), "allowedOrigins": [ORIGIN],
               "teamId": queue, "honeypotField": "website_url"}),
        )
        .await;
        let key = f["key"].as_str().unwrap().to_owned();
        let before = (s.db.count("leads").await, s.db.count("outbox").await);

        // Missing required field, invalid email, invalid country: 422 naming
        // the posted fields only.
        let r = post_form(&s, &key, &[("surname", "X")]).await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.json(), json!({"ok": false, "fields": ["email"]}));
        let r = post_form(
            &s,
            &key,
            &[
                ("email", "not-an-email"),
                ("surname", "X"),
                ("tel", "call me"),
            ],
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.json(), json!({"ok": false, "fields": ["email", "tel"]}));
        let r = post_form(
            &s,
            &key,
            &[
                ("email", "x@example.com"),
                ("surname", "X"),
                ("cc", "Germany"),
            ],
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.json(), json!({"ok": false, "fields": ["cc"]}));
        // Neither a last name nor a company: both of their fields are named.
        let r = post_form(&s, &key, &[("email", "a@b.example")]).await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.json(), json!({"ok": false, "fields": ["org", "surname"]}));

        // A filled honeypot: answered like a success, nothing written.
        let r = post_form(
            &s,
            &key,
            &[
                ("email", "bot@spam.example"),
                ("surname", "Bot"),
                ("website_url", "http://spam"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json(), json!({"ok": true}));

        // Another site, no origin at all, a forged referer from another site.
        let body = "email=eve%40example.com&surname=Eve".to_owned();
        let ct = "application/x-www-form-urlencoded";
        let r = post(
            &s,
            &key,
            ct,
            body.clone(),
            &[("origin", "https://evil.example")],
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.header("access-control-allow-origin").is_none());
        let r = post(&s, &key, ct, body.clone(), &[]).await;
        assert_eq!(r.status, 403, "{}", r.body);
        let r = post(
            &s,
            &key,
            ct,
            body.clone(),
            &[("referer", "https://evil.example/page")],
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.body);

        // Over the body limit, another media type.
        let big = format!("email=a%40b.example&surname={}", "x".repeat(4000));
        let r = post(&s, &key, ct, big, &[("origin", ORIGIN)]).await;
        assert_eq!(r.status, 413, "{}", r.body);
        let r = post(&s, &key, "text/plain", body.clone(), &[("origin", ORIGIN)]).await;
        assert_eq!(r.status, 415, "{}", r.body);

        // Unknown key, and an inactive form: the same plain 404.
        let r = post(
            &s,
            "no-such-key-at-all",
            ct,
            body.clone(),
            &[("origin", ORIGIN)],
        )
        .await;
        assert_eq!((r.status, r.body.as_str()), (404, "not found"));
        ok(
            &s,
            &admin,
            "mutation($i:UpdateLeadFormInput!){ updateLeadForm(input:$i) { active } }",
            json!({"i": {"id": f["id"], "version": f["version"], "active": false}}),
        )
        .await;
        let r = post_form(
            &s,
            &key,
            &[("email", "late@example.com"), ("surname", "Late")],
        )
        .await;
        assert_eq!((r.status, r.body.as_str()), (404, "not found"));

        assert_eq!(
            (s.db.count("leads").await, s.db.count("outbox").await),
            (before.0, before.1 + 1),
            "only the form's own update event was written"
        );
    }
);

both!(
    rate_limits_per_client_address_and_per_form,
    |b| async move {
        let s = server!(
            b,
            &[
                ("public-rate-per-address", "3"),
                ("public-rate-per-form", "5"),
                ("public-rate-window-secs", "3600"),
                ("trusted-proxies", "127.0.0.1"),
            ]
        );
        let admin = s.admin().await;
        let queue = team(&s, &admin, "Inbound").await;
        let f = form(
        &s,
        &admin,
        json!({"name": "Contact", "fields": fields(), "allowedOrigins": [ORIGIN], "teamId": queue}),
    )
    .await;
        let key = f["key"].as_str().unwrap().to_owned();
        let send = |client: &'static str, n: usize| {
            let (s, key) = (&s, key.clone());
            async move {
                post(
                    s,
                    &key,
                    "application/x-www-form-urlencoded",
                    format!("email=c{n}%40example.com&surname=C{n}"),
                    &[("origin", ORIGIN), ("x-forwarded-for", client)],
                )
                .await
            }
        };
        // One client (as the trusted proxy on 127.0.0.1 names it): three, then 429.
        for n in 0..3 {
            assert_eq!(send("203.0.113.1", n).await.status, 200);
        }
        let r = send("203.0.113.1", 3).await;
        assert_eq!(r.status, 429, "{}", r.body);
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(wait > 0 && wait <= 3600, "{wait}");
        // An unknown key counts against the client too (no free key scanning).
        let r = post(
            &s,
            "guessing-keys",
            "application/json",
            "{}".into(),
            &[("x-forwarded-for", "203.0.113.1")],
        )
        .await;
        assert_eq!(r.status, 429);
        // Another client may post until the form's own limit (5) is reached.
        assert_eq!(send("203.0.113.2", 10).await.status, 200);
        assert_eq!(send("203.0.113.2", 11).await.status, 200);
        let r = send("203.0.113.2", 12).await;
        assert_eq!(r.status, 429, "{}", r.body);
        assert!(r.header("retry-after").is_some());
        // A third client is refused by the form's limit at its first post.
        assert_eq!(send("203.0.113.3", 20).await.status, 429);
        assert_eq!(s.db.count("leads").await, 5);
    }
);

both!(
    the_same_email_within_the_window_is_one_lead,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let queue = team(&s, &admin, "Inbound").await;
        let f = form(
        &s,
        &admin,
        json!({"name": "Contact", "fields": fields(), "allowedOrigins": [ORIGIN], "teamId": queue}),
    )
    .await;
        let key = f["key"].as_str().unwrap().to_owned();
        let fields_of = |email: &'static str| vec![("email", email), ("surname", "Twice")];

        // A double click, one after the other.
        for _ in 0..2 {
            assert_eq!(
                post_form(&s, &key, &fields_of("twice@example.com"))
                    .await
                    .status,
                200
            );
        }
        assert_eq!(leads_with(&s, &admin, "twice@example.com").await.len(), 1);

        // Two submissions at the same moment.
        let race = fields_of("race@example.com");
        let (a, c) = tokio::join!(post_form(&s, &key, &race), post_form(&s, &key, &race));
        assert_eq!((a.status, c.status), (200, 200), "{} {}", a.body, c.body);
        assert_eq!(leads_with(&s, &admin, "race@example.com").await.len(), 1);
        assert_eq!(
        s.db.scalar(
            "SELECT COUNT(*) AS n FROM activities WHERE subject_type = 'Lead' AND title LIKE 'Form submitted%'"
        )
        .await,
        2,
        "one capture per lead"
    );

        // Without a window every submission is a capture: CREATE_NEW makes a
        // second lead (linked by the duplicate check), UPDATE_MATCHING writes
        // into the existing one.
        let open = ok(
        &s,
        &admin,
        "mutation($i:UpdateLeadFormInput!){ updateLeadForm(input:$i) { version dedupeWindowSecs } }",
        json!({"i": {"id": f["id"], "version": f["version"], "dedupeWindowSecs": 0}}),
    )
    .await;
        assert_eq!(
            post_form(&s, &key, &fields_of("twice@example.com"))
                .await
                .status,
            200
        );
        assert_eq!(leads_with(&s, &admin, "twice@example.com").await.len(), 2);
        ok(
        &s,
        &admin,
        "mutation($i:UpdateLeadFormInput!){ updateLeadForm(input:$i) { version } }",
        json!({"i": {"id": f["id"], "version": open["updateLeadForm"]["version"], "onMatch": "UPDATE_MATCHING"}}),
    )
    .await;
        let r = post_form(
            &s,
            &key,
            &[
                ("email", "race@example.com"),
                ("surname", "Racer"),
                ("org", "Speed Ltd"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let found = leads_with(&s, &admin, "race@example.com").await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["lastName"], "Racer");
        assert_eq!(found[0]["company"], "Speed Ltd");
        assert_eq!(found[0]["version"], 2);
    }
);

both!(
    marketing_manages_forms_sales_reads_them_others_nothing,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let queue = team(&s, &admin, "Inbound").await;
        let mut tokens = Vec::new();
        for (email, role) in [
            ("mkt@example.com", "marketing"),
            ("rep@example.com", "sales_rep"),
            ("sup@example.com", "support"),
            ("it@example.com", "it_admin"),
        ] {
            s.create_user(&admin, email, &[role]).await;
            tokens.push(s.login(email, "user-password-1").await);
        }
        let input = json!({"name": "Contact", "fields": fields(), "teamId": queue});
        let create = "mutation($i:CreateLeadFormInput!){ createLeadForm(input:$i) { id version } }";
        let f = ok(&s, &tokens[0], create, json!({"i": input})).await["createLeadForm"].clone();
        let list = "{ leadForms { id key } }";
        assert_eq!(
            ok(&s, &tokens[1], list, json!({})).await["leadForms"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let r = s.gql(Some(&tokens[1]), create, json!({"i": input})).await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        for t in &tokens[2..] {
            assert_eq!(code(&s.gql(Some(t), list, json!({})).await), "FORBIDDEN");
            assert_eq!(
                code(&s.gql(Some(t), create, json!({"i": input})).await),
                "FORBIDDEN"
            );
        }
        // Bad configuration: one VALIDATION naming every field.
        let r = s
            .gql(
                Some(&tokens[0]),
                create,
                json!({"i": {"name": "", "fields": [{"name": "e mail", "target": "EMAIL"}],
                         "allowedOrigins": ["example.com"], "redirectUrl": "javascript:alert(1)",
                         "dedupeWindowSecs": -1}}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let mut named: Vec<&str> = r["errors"][0]["extensions"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        named.sort();
        named.dedup();
        assert_eq!(
            named,
            [
                "allowedOrigins",
                "dedupeWindowSecs",
                "fields",
                "name",
                "ownerId",
                "redirectUrl"
            ]
        );
        // A stale version is a CONFLICT; delete makes the URL a 404.
        let r = s
            .gql(
                Some(&tokens[0]),
                "mutation($id:ID!){ deleteLeadForm(id:$id, version: 7) }",
                json!({"id": f["id"]}),
            )
            .await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        ok(
            &s,
            &tokens[0],
            "mutation($id:ID!,$v:Int!){ deleteLeadForm(id:$id, version:$v) }",
            json!({"id": f["id"], "v": f["version"]}),
        )
        .await;
        assert_eq!(
            ok(&s, &tokens[1], list, json!({})).await["leadForms"],
            json!([])
        );
    }
);
