//! Imports: CSV files uploaded over GraphQL multipart or given to
//! `crm import`, in both modes, with the error report, duplicate handling,
//! encodings, progress and access rules.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const IMPORT_CONTACTS: &str = "mutation($file:Upload!,$o:ImportOptions){ importContacts(file:$file, options:$o) { id status kind fileName } }";
const IMPORT_ACCOUNTS: &str = "mutation($file:Upload!,$o:ImportOptions){ importAccounts(file:$file, options:$o) { id status kind } }";

/// A contacts file of `n` rows where every 33rd row is bad in one of three
/// ways; returns the file and the line numbers of the bad rows.
fn contacts_file(n: usize) -> (Vec<u8>, BTreeSet<i64>) {
    let mut out = String::from("\u{feff}First Name,Last Name,Email,Phone,Title,Consent\n");
    let mut bad = BTreeSet::new();
    for i in 1..=n {
        let line = i as i64 + 1;
        let (last, email, consent) = match (i % 33 == 0, (i / 33) % 3) {
            (true, 0) => (format!("Lee{i}"), "not-an-email".to_owned(), "opted_in"),
            (true, 1) => (String::new(), format!("p{i}@example.com"), "opted_in"),
            (true, _) => (format!("Lee{i}"), format!("p{i}@example.com"), "maybe"),
            (false, _) => (format!("Lee{i}"), format!("p{i}@example.com"), "opted_in"),
        };
        if i % 33 == 0 {
            bad.insert(line);
        }
        out.push_str(&format!(
            "Ann{i},{last},{email},+4930{i:07},\"Buyer, {i}\",{consent}\n"
        ));
    }
    (out.into_bytes(), bad)
}

async fn start_import(
    s: &TestServer,
    token: &str,
    query: &str,
    file: Vec<u8>,
    opts: Value,
) -> String {
    let field = if query.contains("importContacts") {
        "importContacts"
    } else {
        "importAccounts"
    };
    let r = s
        .upload(
            Some(token),
            query,
            json!({"o": opts}),
            "file",
            "people.csv",
            file,
        )
        .await;
    r["data"][field]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

both!(
    ten_thousand_rows_in_both_modes_with_report_and_idempotent_update,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let (file, bad) = contacts_file(10_000);
        assert_eq!(bad.len(), 303);

        // All-or-nothing: the bad rows are reported and nothing is written.
        let id = start_import(&s, &admin, IMPORT_CONTACTS, file.clone(), json!({})).await;
        let job = s.wait_job(&admin, "importJob", &id).await;
        assert_eq!(job["status"], "FAILED", "{job}");
        assert_eq!(job["rowsDone"], 10_000, "{job}");
        assert_eq!(job["failed"], 303, "{job}");
        assert_eq!(job["created"], 0, "{job}");
        assert_eq!(s.db.count("contacts").await, 0);
        // The report lists each bad row once, with its column.
        let url = job["errorReportUrl"].as_str().unwrap();
        let (status, csv) = s.get(Some(&admin), url).await;
        assert_eq!(status, 200);
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("line,column,message"));
        let rows: Vec<&str> = lines.collect();
        let reported: BTreeSet<i64> = rows
            .iter()
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(reported, bad);
        assert_eq!(rows.len(), bad.len(), "one problem per bad row");
        assert!(rows.contains(&"34,Last Name,is required"), "{csv}");
        assert!(rows.iter().any(|r| r.starts_with("67,Consent,")), "{csv}");
        assert!(
            rows.contains(&"100,Email,not a valid email address"),
            "{csv}"
        );
        // The same report through GraphQL.
        let r = s
            .gql(
                Some(&admin),
                "query($id:ID!){ importJob(id:$id) { errors(first:2) { line column message } } }",
                json!({"id": id}),
            )
            .await;
        assert_eq!(
            r["data"]["importJob"]["errors"][0],
            json!({"line": 34, "column": "Last Name", "message": "is required"}),
            "{r}"
        );

        // Skip bad rows: exactly the good rows are written.
        let events_before = s.db.count("outbox").await;
        let id = start_import(
            &s,
            &admin,
            IMPORT_CONTACTS,
            file.clone(),
            json!({"mode": "SKIP_BAD_ROWS"}),
        )
        .await;
        let job = s.wait_job(&admin, "importJob", &id).await;
        assert_eq!(job["status"], "SUCCEEDED", "{job}");
        assert_eq!(
            (
                job["created"].clone(),
                job["failed"].clone(),
                job["skipped"].clone()
            ),
            (json!(9_697), json!(303), json!(0)),
            "{job}"
        );
        assert_eq!(s.db.count("contacts").await, 9_697);
        // Every created contact is an event, for integrators.
        assert_eq!(s.db.count("outbox").await - events_before, 9_697);
        let r = s
        .gql(
            Some(&admin),
            "{ contacts(filter:{search:\"p1234@example.com\"}) { nodes { firstName lastName title emails { value } phones { value } consent { state } owner { email } } } }",
            json!({}),
        )
        .await;
        assert_eq!(
            r["data"]["contacts"]["nodes"][0],
            json!({"firstName": "Ann1234", "lastName": "Lee1234", "title": "Buyer, 1234",
               "emails": [{"value": "p1234@example.com"}], "phones": [{"value": "+49300001234"}],
               "consent": {"state": "OPTED_IN"}, "owner": {"email": ADMIN_EMAIL}}),
            "{r}"
        );

        // Re-import with "update": nothing changes, no new events.
        let events_before = s.db.count("outbox").await;
        let id = start_import(
            &s,
            &admin,
            IMPORT_CONTACTS,
            file,
            json!({"mode": "SKIP_BAD_ROWS", "duplicates": "UPDATE"}),
        )
        .await;
        let job = s.wait_job(&admin, "importJob", &id).await;
        assert_eq!(
            (
                job["created"].clone(),
                job["updated"].clone(),
                job["skipped"].clone(),
                job["failed"].clone()
            ),
            (json!(0), json!(0), json!(9_697), json!(303)),
            "{job}"
        );
        assert_eq!(s.db.count("contacts").await, 9_697);
        assert_eq!(s.db.count("outbox").await, events_before);
        assert_eq!(
            s.db.scalar("SELECT MAX(version) AS n FROM contacts").await,
            1
        );
    }
);

both!(
    update_skip_and_create_duplicates_and_dry_run,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let first = "first name,last name,email,title\nAda,One,ada@example.com,CEO\nBob,Two,bob@example.com,\n";
        let id = start_import(&s, &admin, IMPORT_CONTACTS, first.into(), json!({})).await;
        let job = s.wait_job(&admin, "importJob", &id).await;
        assert_eq!(job["created"], 2, "{job}");
        // The second file changes Ada's title, repeats Bob, adds Cy twice.
        let second = "first name,last name,email,title\nAda,One,ADA@example.com,CTO\nBob,Two,bob@example.com,\nCy,Three,cy@example.com,Buyer\nCy,Three,cy@example.com,Head buyer\n";
        // Dry run: counts what would happen, writes nothing.
        let id = start_import(
            &s,
            &admin,
            IMPORT_CONTACTS,
            second.into(),
            json!({"dryRun": true, "duplicates": "UPDATE"}),
        )
        .await;
        let job = s.wait_job(&admin, "importJob", &id).await;
        assert_eq!(job["status"], "SUCCEEDED", "{job}");
        assert_eq!(job["created"], 0, "{job}");
        assert!(
            job["message"]
                .as_str()
                .unwrap()
                .contains("would create 1, update 2"),
            "{job}"
        );
        assert_eq!(s.db.count("contacts").await, 2);
        // Skip: only Cy is new (once: the second Cy duplicates the first).
        let id = start_import(&s, &admin, IMPORT_CONTACTS, second.into(), json!({})).await;
        let job = s.wait_job(&admin, "importJob", &id).await;
        assert_eq!(
            (
                job["created"].clone(),
                job["updated"].clone(),
                job["skipped"].clone()
            ),
            (json!(1), json!(0), json!(3)),
            "{job}"
        );
        // Update: Ada's title changes, the rest is as it is.
        let id = start_import(
            &s,
            &admin,
            IMPORT_CONTACTS,
            second.into(),
            json!({"duplicates": "UPDATE"}),
        )
        .await;
        let job = s.wait_job(&admin, "importJob", &id).await;
        assert_eq!(
            (
                job["created"].clone(),
                job["updated"].clone(),
                job["skipped"].clone()
            ),
            (json!(0), json!(2), json!(2)),
            "{job}"
        );
        let r = s
            .gql(
                Some(&admin),
                "{ contacts(orderBy:{field:LAST_NAME}) { nodes { firstName title version } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            r["data"]["contacts"]["nodes"],
            json!([{"firstName": "Ada", "title": "CTO", "version": 2},
               {"firstName": "Cy", "title": "Head buyer", "version": 2},
               {"firstName": "Bob", "title": null, "version": 1}]),
            "{r}"
        );
        // Create: duplicates are created anyway.
        let id = start_import(
            &s,
            &admin,
            IMPORT_CONTACTS,
            first.into(),
            json!({"duplicates": "CREATE"}),
        )
        .await;
        let job = s.wait_job(&admin, "importJob", &id).await;
        assert_eq!(job["created"], 2, "{job}");
        assert_eq!(s.db.count("contacts").await, 5);
    }
);

both!(gbk_files_mapping_and_accounts, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    // A GBK file as a Chinese spreadsheet tool writes it, detected as such.
    let text = "公司名称,行业,城市,annualRevenue\n北京科技有限公司,软件,北京,1234.50 CNY\n上海贸易公司,贸易,上海,99\n";
    let (gbk, _, _) = encoding_rs::GBK.encode(text);
    let id = start_import(&s, &admin, IMPORT_ACCOUNTS, gbk.to_vec(), json!({})).await;
    let job = s.wait_job(&admin, "importJob", &id).await;
    // The second row has an amount without a currency.
    assert_eq!(job["status"], "FAILED", "{job}");
    let r = s
        .gql(
            Some(&admin),
            "query($id:ID!){ importJob(id:$id) { errors { line column message } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        r["data"]["importJob"]["errors"],
        json!([{"line": 3, "column": "annualRevenue",
                "message": "needs a currency: add a revenueCurrency column or write e.g. \"99 EUR\""}]),
        "{r}"
    );
    let text = text.replace(",99\n", ",99 CNY\n");
    let (gbk, _, _) = encoding_rs::GBK.encode(&text);
    let id = start_import(
        &s,
        &admin,
        IMPORT_ACCOUNTS,
        gbk.to_vec(),
        json!({"encoding": "GBK"}),
    )
    .await;
    let job = s.wait_job(&admin, "importJob", &id).await;
    assert_eq!(job["created"], 2, "{job}");
    let r = s
        .gql(
            Some(&admin),
            "{ accounts { nodes { name industry address { city } annualRevenue { amountMinor currency } } } }",
            json!({}),
        )
        .await;
    let mut nodes = r["data"]["accounts"]["nodes"].as_array().unwrap().clone();
    nodes.sort_by_key(|n| n["annualRevenue"]["amountMinor"].as_i64());
    assert_eq!(
        nodes,
        vec![
            json!({"name": "上海贸易公司", "industry": "贸易", "address": {"city": "上海"},
                "annualRevenue": {"amountMinor": 9900, "currency": "CNY"}}),
            json!({"name": "北京科技有限公司", "industry": "软件", "address": {"city": "北京"},
                "annualRevenue": {"amountMinor": 123450, "currency": "CNY"}})
        ],
        "{r}"
    );
    // Contacts linked by company name; an unknown column must be mapped.
    let people = "Vorname,Nachname,Firma,Notiz\nLi,Wei,北京科技有限公司,x\n";
    let r = s
        .upload(
            Some(&admin),
            IMPORT_CONTACTS,
            json!({"o": {}}),
            "file",
            "p.csv",
            people.into(),
        )
        .await;
    let id = r["data"]["importContacts"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = s.wait_job(&admin, "importJob", &id).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    let msg = job["message"].as_str().unwrap();
    assert!(
        msg.contains("column \"Vorname\" is not a field of Contact"),
        "{msg}"
    );
    let opts = json!({"mapping": [
        {"column": "Vorname", "field": "firstName"},
        {"column": "Nachname", "field": "lastName"},
        {"column": "Firma", "field": "account"},
        {"column": "Notiz", "field": "ignore"}]});
    let id = start_import(&s, &admin, IMPORT_CONTACTS, people.into(), opts).await;
    let job = s.wait_job(&admin, "importJob", &id).await;
    assert_eq!(job["created"], 1, "{job}");
    let r = s
        .gql(
            Some(&admin),
            "{ contacts { nodes { firstName account { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["contacts"]["nodes"],
        json!([{"firstName": "Li", "account": {"name": "北京科技有限公司"}}]),
        "{r}"
    );
});

both!(
    imports_follow_access_rules_and_report_progress,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        s.create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        s.create_user(&admin, "mkt@test.example", &["marketing"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        let mkt = s.login("mkt@test.example", "user-password-1").await;
        let file = "first name,last name,email\nRia,Rep,ria@example.com\n";
        // Marketing may not import; nothing is started.
        let r = s
            .upload(
                Some(&mkt),
                IMPORT_CONTACTS,
                json!({}),
                "file",
                "f.csv",
                file.into(),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        assert_eq!(s.db.count("jobs").await, 0);
        // A multipart request without the preflight header is refused (CSRF).
        let form = reqwest::multipart::Form::new()
            .text(
                "operations",
                json!({"query": IMPORT_CONTACTS, "variables": {"file": null}}).to_string(),
            )
            .text("map", json!({"0": ["variables.file"]}).to_string())
            .part(
                "0",
                reqwest::multipart::Part::bytes(file.as_bytes().to_vec()).file_name("f.csv"),
            );
        let resp = s
            .http
            .post(s.url())
            .bearer_auth(&rep)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        assert_eq!(s.db.count("jobs").await, 0);
        // A rep's import: the rows are the rep's; the job is the rep's alone.
        let mut ws = Ws::init(s.addr(), &rep).await;
        let id = start_import(&s, &rep, IMPORT_CONTACTS, file.into(), json!({})).await;
        ws.subscribe(
            "p",
            "subscription($id:ID!){ importProgress(id:$id) { status created rowsDone } }",
            json!({"id": id}),
        )
        .await;
        let mut last = Value::Null;
        while let Some(m) = ws.recv().await {
            match m["type"].as_str() {
                Some("next") => last = m["payload"]["data"]["importProgress"].clone(),
                Some("complete") => break,
                other => panic!("unexpected {other:?}: {m}"),
            }
        }
        assert_eq!(
            last,
            json!({"status": "SUCCEEDED", "created": 1, "rowsDone": 1})
        );
        let r = s
            .gql(
                Some(&rep),
                "{ contacts { nodes { lastName owner { email } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            r["data"]["contacts"]["nodes"],
            json!([{"lastName": "Rep", "owner": {"email": "rep@test.example"}}])
        );
        let r = s
            .gql(
                Some(&mkt),
                "query($id:ID!){ importJob(id:$id) { id } }",
                json!({"id": id}),
            )
            .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        let r = s
            .gql(
                Some(&admin),
                "query($id:ID!){ importJob(id:$id) { status } }",
                json!({"id": id}),
            )
            .await;
        assert_eq!(r["data"]["importJob"]["status"], "SUCCEEDED", "{r}");
        // Downloads need the credentials of someone who may see the job.
        let (status, _) = s.get(None, &format!("/jobs/{id}/errors.csv")).await;
        assert_eq!(status, 401);
        let (status, _) = s.get(Some(&mkt), &format!("/jobs/{id}/errors.csv")).await;
        assert_eq!(status, 404);
        // Updating a record outside the importer's update scope is a row error.
        let r = s
        .gql(
            Some(&admin),
            "mutation { createContact(input:{firstName:\"Ada\", lastName:\"Admin\", emails:[{kind:WORK, value:\"ada@example.com\"}]}) { id } }",
            json!({}),
        )
        .await;
        assert!(r.get("errors").is_none(), "{r}");
        let mine = "first name,last name,email\nAda,Changed,ada@example.com\n";
        let id = start_import(
            &s,
            &rep,
            IMPORT_CONTACTS,
            mine.into(),
            json!({"duplicates": "UPDATE"}),
        )
        .await;
        let job = s.wait_job(&rep, "importJob", &id).await;
        // The rep cannot see the admin's contact, so it is a new one for them.
        assert_eq!(job["created"], 1, "{job}");
        let r = s
            .gql(
                Some(&admin),
                "{ contacts(filter:{search:\"ada@\"}) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(r["data"]["contacts"]["totalCount"], 2, "{r}");
    }
);

both!(crm_import_and_export_commands, |backend| async move {
    let db = TestDb::new(backend).await;
    let dir = std::env::temp_dir().join(format!("crm_import_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (gbk, _, _) =
        encoding_rs::GBK.encode("名,姓,邮箱\n三,张,zhang@example.cn\n四,李,bad-email\n");
    let file = dir.join("people.csv");
    std::fs::write(&file, &gbk).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--database-url".to_owned(),
            db.url.clone(),
            "--data-dir".to_owned(),
            dir.display().to_string(),
            "--admin-email".to_owned(),
            ADMIN_EMAIL.to_owned(),
            "--admin-password".to_owned(),
            ADMIN_PASSWORD.to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        std::process::Command::new(env!("CARGO_BIN_EXE_crm"))
            .args(&args)
            .output()
            .unwrap()
    };
    let path = file.display().to_string();
    let out = run(&["import", "contacts", &path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("2 rows read, 0 created, 0 updated, 0 skipped, 1 failed"),
        "{stdout}"
    );
    let report = std::fs::read_to_string(dir.join("people.csv.errors.csv")).unwrap();
    assert_eq!(
        report,
        "line,column,message\n3,邮箱,not a valid email address\n"
    );
    assert_eq!(db.count("contacts").await, 0);
    let out = run(&[
        "import",
        "contacts",
        &path,
        "--mode",
        "skip-bad-rows",
        "--encoding",
        "gbk",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 created"), "{stdout}");
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) AS n FROM contacts WHERE first_name = '三' AND last_name = '张'"
        )
        .await,
        1
    );
    // The export command writes what the acting user may read.
    let jsonl = dir.join("out.jsonl").display().to_string();
    let out = run(&[
        "export",
        "contacts",
        "--out",
        &jsonl,
        "--format",
        "jsonl",
        "--filter",
        "{\"search\":\"zhang\"}",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["emails"], json!(["zhang@example.cn"]), "{text}");
    assert_eq!(rows[0]["lastName"], "张", "{text}");
    // A typo in the filter and an unknown acting user are errors.
    let out = run(&[
        "export",
        "contacts",
        "--out",
        &jsonl,
        "--filter",
        "{\"serch\":\"x\"}",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown filter field \"serch\""), "{err}");
    let out = run(&[
        "export",
        "contacts",
        "--out",
        &jsonl,
        "--as",
        "nobody@test.example",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no user with email nobody@test.example"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
});

both!(
    a_cancelled_import_keeps_whole_batches_or_nothing,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let (file, _) = contacts_file(30_000);
        for (mode, keeps_rows) in [("SKIP_BAD_ROWS", true), ("ALL_OR_NOTHING", false)] {
            let before = s.db.count("contacts").await;
            let id = start_import(
                &s,
                &admin,
                IMPORT_CONTACTS,
                file.clone(),
                json!({"mode": mode}),
            )
            .await;
            // Let it get going, then stop it.
            loop {
                let r = s
                    .gql(
                        Some(&admin),
                        "query($id:ID!){ importJob(id:$id) { rowsDone status } }",
                        json!({"id": id}),
                    )
                    .await;
                if r["data"]["importJob"]["rowsDone"].as_i64().unwrap_or(0) > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let r = s
                .gql(
                    Some(&admin),
                    "mutation($id:ID!){ cancelJob(id:$id) { cancelRequested } }",
                    json!({"id": id}),
                )
                .await;
            assert_eq!(r["data"]["cancelJob"]["cancelRequested"], true, "{r}");
            let job = s.wait_job(&admin, "importJob", &id).await;
            assert_eq!(job["status"], "CANCELLED", "{job}");
            let written = s.db.count("contacts").await - before;
            if keeps_rows {
                // Exactly the rows of the committed batches, each one whole.
                assert_eq!(written, job["created"].as_i64().unwrap(), "{job}");
                assert!(written > 0 && written < 29_091, "{job}");
                assert_eq!(
                s.db.scalar("SELECT COUNT(*) AS n FROM contacts WHERE email_key IS NULL OR search_text = ''").await,
                0
            );
            } else {
                assert_eq!(written, 0, "{job}");
            }
            // A finished job cannot be cancelled again.
            let r = s
                .gql(
                    Some(&admin),
                    "mutation($id:ID!){ cancelJob(id:$id) { id } }",
                    json!({"id": id}),
                )
                .await;
            assert_eq!(code(&r), "CONFLICT", "{r}");
        }
    }
);

both!(
    jobs_of_a_stopped_process_are_marked_failed_at_start,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let me = s.gql(Some(&admin), "{ me { id } }", json!({})).await["data"]["me"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // A job that was running when its process died, long ago, and one that
        // is alive now.
        for (id, beat) in [
            (
                "job_00000000000000000000000000000001",
                "2020-01-01 00:00:00",
            ),
            (
                "job_00000000000000000000000000000002",
                "2999-01-01 00:00:00",
            ),
        ] {
            s.db.exec(&format!(
            "INSERT INTO jobs (id, kind, status, owner_id, params, rows_done, created, updated, skipped, failed, \
             cancel_requested, created_at, started_at, heartbeat_at) VALUES ('{id}', 'import.contacts', 'running', \
             '{me}', '{{}}', 0, 0, 0, 0, 0, FALSE, '2020-01-01 00:00:00', '2020-01-01 00:00:00', '{beat}')"
        ))
        .await;
        }
        // Another replica starts.
        let _replica = s.replica(&[]).await;
        let q = "query($id:ID!){ importJob(id:$id) { status message } }";
        let r = s
            .gql(
                Some(&admin),
                q,
                json!({"id": "job_00000000000000000000000000000001"}),
            )
            .await;
        assert_eq!(
            r["data"]["importJob"],
            json!({"status": "FAILED", "message": "interrupted: the server stopped while the job ran"}),
            "{r}"
        );
        let r = s
            .gql(
                Some(&admin),
                q,
                json!({"id": "job_00000000000000000000000000000002"}),
            )
            .await;
        assert_eq!(r["data"]["importJob"]["status"], "RUNNING", "{r}");
    }
);
