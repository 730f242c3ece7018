//! The real `crm` binary: zero-config start, bad settings, graceful
//! shutdown, the schema file.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::both;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_crm");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawns `crm` in `dir` with no environment but PATH and what is given;
/// returns the child and a channel of its log lines.
fn spawn(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for out in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}

fn wait_for(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains(needle) {
                return line;
            }
            seen.push(line);
        }
    }
    panic!("no log line with {needle:?}; saw:\n{}", seen.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_start_creates_an_admin_who_can_sign_in() {
    let dir = std::env::temp_dir().join(format!("crm_zero_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    // Only the port is chosen, so parallel tests do not collide; everything
    // else is the built-in default (./data/crm.db, generated password).
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (mut child, rx) = spawn(&dir, &[], &[("CRM_LISTEN", &listen)]);
    let line = wait_for(&rx, "generated password");
    let password = line
        .split("password=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    wait_for(&rx, "serving GraphQL");
    assert!(dir.join("data/crm.db").exists());
    let http = reqwest::Client::new();
    let addr = listen.parse().unwrap();
    let r = gql_at(
        &http,
        addr,
        None,
        "mutation($p:String!){ login(email:\"admin@localhost\", password:$p) { token user { roles } } }",
        json!({"p": password}),
    )
    .await;
    assert_eq!(r["data"]["login"]["user"]["roles"], json!(["admin"]), "{r}");
    let token = r["data"]["login"]["token"].as_str().unwrap().to_owned();

    // Graceful shutdown: SIGTERM closes WebSockets with 1001 and exits 0.
    let mut ws = Ws::init(addr, &token).await;
    ws.subscribe("1", "subscription { events { cursor } }", json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(ws.close_code().await, Some(1001));
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");

    // A restart keeps the signing secret: the old token still works.
    let (mut child, rx) = spawn(&dir, &[], &[("CRM_LISTEN", &listen)]);
    wait_for(&rx, "serving GraphQL");
    let r = gql_at(&http, addr, Some(&token), "{ me { email } }", json!({})).await;
    assert_eq!(r["data"]["me"]["email"], "admin@localhost", "{r}");
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_setting_stops_start_up_and_names_it() {
    let dir = std::env::temp_dir();
    for (args, env, needle) in [
        (vec!["--listen", "nowhere"], vec![], "listen"),
        (vec![], vec![("CRM_MAX_DEPTH", "deep")], "max-depth"),
        (vec!["--database-url", "mysql://x"], vec![], "database-url"),
        (vec!["--introspection", "maybe"], vec![], "introspection"),
    ] {
        let (mut child, rx) = spawn(&dir, &args, &env);
        let status = child.wait().unwrap();
        assert!(!status.success(), "{args:?} {env:?}");
        let out: Vec<String> = rx.iter().collect();
        let out = out.join("\n");
        assert!(out.contains(needle), "{args:?}: {out}");
    }
}

#[test]
fn help_documents_every_setting() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for s in crm_core::config::SETTINGS {
        assert!(
            help.contains(&format!("--{}", s.key)),
            "--{} missing",
            s.key
        );
        assert!(help.contains(s.env), "{} missing", s.env);
    }
}

#[test]
fn schema_file_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let built = crm_gateway::schema::sdl();
    let out = Command::new(BIN).arg("schema").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        built,
        "`crm schema` prints the built schema"
    );
    let file = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        file == built,
        "schema.graphql is stale: run `cargo run -q -- schema > schema.graphql` and commit it"
    );
}

both!(
    cli_user_commands_work_on_the_database,
    |backend| async move {
        let db = TestDb::new(backend).await;
        let dir = std::env::temp_dir();
        let url = db.url.clone();
        let env = [
            ("DATABASE_URL", url.as_str()),
            ("CRM_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ];
        let (mut c, _) = spawn(&dir, &["migrate"], &env);
        assert!(c.wait().unwrap().success());
        let (mut c, rx) = spawn(
            &dir,
            &[
                "user",
                "create",
                "--email",
                "Cli@Test.example",
                "--password",
                "cli-password-1",
                "--roles",
                "sales_rep,marketing",
            ],
            &env,
        );
        assert!(
            c.wait().unwrap().success(),
            "{:?}",
            rx.iter().collect::<Vec<_>>()
        );
        let (mut c, rx) = spawn(&dir, &["user", "list"], &env);
        assert!(c.wait().unwrap().success());
        let out: String = rx.iter().collect::<Vec<_>>().join("\n");
        assert!(
            out.contains("cli@test.example") && out.contains("sales_rep,marketing"),
            "{out}"
        );
        let (mut c, _) = spawn(
            &dir,
            &[
                "user",
                "set-password",
                "--email",
                "cli@test.example",
                "--password",
                "short",
            ],
            &env,
        );
        assert!(!c.wait().unwrap().success(), "weak password refused");
        let (mut c, _) = spawn(
            &dir,
            &[
                "user",
                "set-password",
                "--email",
                "cli@test.example",
                "--password",
                "new-cli-password-2",
            ],
            &env,
        );
        assert!(c.wait().unwrap().success());
        // The service sees the CLI's changes.
        let running = crm_gateway::server::start(config(&db, &[])).await.unwrap();
        let http = reqwest::Client::new();
        let r = gql_at(
        &http,
        running.addr,
        None,
        "mutation { login(email:\"cli@test.example\", password:\"new-cli-password-2\") { user { roles } } }",
        json!({}),
    )
    .await;
        assert_eq!(
            r["data"]["login"]["user"]["roles"],
            json!(["sales_rep", "marketing"]),
            "{r}"
        );
    }
);

#[test]
fn policy_check_flags_a_misspelt_field_with_its_line_number() {
    let dir = std::env::temp_dir().join(format!("crm_policy_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    std::fs::copy(format!("{root}/model.conf"), dir.join("model.conf")).unwrap();
    let shipped = std::fs::read_to_string(format!("{root}/policy.csv")).unwrap();
    // The shipped policy is clean.
    let ok = Command::new(BIN)
        .args(["policy", "check", &format!("{root}/policy.csv")])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let line = shipped.lines().count() + 1;
    std::fs::write(
        dir.join("policy.csv"),
        format!("{shipped}p, sales_rep, User.emial, read, allow\n"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["policy", "check", dir.join("policy.csv").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains(&format!(
            "policy.csv:{line}: error: unknown field \"User.emial\""
        )),
        "{text}"
    );
    // Forms that mean different things in other casbin implementations are refused.
    std::fs::write(
        dir.join("policy.csv"),
        format!("{shipped}p, sales_rep, Us*, read:own, allow\n"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["policy", "check", dir.join("policy.csv").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::write(dir.join("policy.csv"), &shipped).unwrap();
    std::fs::write(
        dir.join("model.conf"),
        std::fs::read_to_string(format!("{root}/model.conf"))
            .unwrap()
            .replace("keyMatch(r.obj", "regexMatch(r.obj"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["policy", "check", dir.join("policy.csv").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("regexMatch"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_policy_means_the_same_in_pycasbin() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let python = format!("{root}/tests/python/.venv/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "run tests/run (it creates tests/python/.venv with pycasbin)"
    );
    let model = std::fs::read_to_string(format!("{root}/policies/model.conf")).unwrap();
    let text = std::fs::read_to_string(format!("{root}/policies/policy.csv")).unwrap();
    let catalog = crm_gateway::schema::catalog();
    let policy = crm_core::policy::Policy::build(&model, &text, &catalog, 1, "test".into())
        .await
        .unwrap();
    // Every role against every resource and action the schema has.
    let mut roles: Vec<String> = policy.roles().iter().cloned().collect();
    roles.extend(["anonymous".into(), "authenticated".into(), "nobody".into()]);
    let mut cases: Vec<(String, String, String)> = Vec::new();
    for role in &roles {
        for op in &catalog.operations {
            cases.push((role.clone(), op.clone(), "call".into()));
        }
        for (ty, fields) in &catalog.readable {
            for verb in ["read", "update", "delete"] {
                for scope in ["own", "team", "all", "assigned"] {
                    cases.push((role.clone(), ty.clone(), format!("{verb}:{scope}")));
                }
            }
            cases.push((role.clone(), ty.clone(), "create".into()));
            for f in fields {
                cases.push((role.clone(), format!("{ty}.{f}"), "read".into()));
            }
            for f in &catalog.writable[ty] {
                cases.push((role.clone(), format!("{ty}.{f}"), "write".into()));
            }
        }
    }
    let ours: Vec<bool> = cases
        .iter()
        .map(|(r, o, a)| policy.allows(r, o, a))
        .collect();
    let dir = std::env::temp_dir().join(format!("crm_pycasbin_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases_path = dir.join("cases.json");
    std::fs::write(&cases_path, serde_json::to_string(&cases).unwrap()).unwrap();
    let out = Command::new(&python)
        .arg(format!("{root}/tests/python/casbin_decide.py"))
        .arg(format!("{root}/policies/model.conf"))
        .arg(format!("{root}/policies/policy.csv"))
        .arg(&cases_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), cases.len());
    let differ: Vec<_> = cases
        .iter()
        .zip(ours.iter().zip(&theirs))
        .filter(|(_, (a, b))| a != b)
        .map(|(c, (a, b))| format!("{c:?}: ours {a}, pycasbin {b}"))
        .collect();
    assert!(
        differ.is_empty(),
        "{} of {} decisions differ:\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n")
    );
    assert!(ours.iter().any(|d| *d) && ours.iter().any(|d| !*d));
    let _ = std::fs::remove_dir_all(&dir);
}

both!(
    demo_fills_an_empty_database_for_every_role,
    |backend| async move {
        let db = TestDb::new(backend).await;
        let dir = std::env::temp_dir();
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("CRM_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ];
        let args = [
            "demo",
            "--accounts",
            "30",
            "--contacts",
            "60",
            "--activities",
            "100",
            "--purchases",
            "20",
            "--seed",
            "7",
        ];
        let (mut c, rx) = spawn(&dir, &args, &env);
        assert!(
            c.wait().unwrap().success(),
            "{:?}",
            rx.iter().collect::<Vec<_>>()
        );
        let out: String = rx.iter().collect::<Vec<_>>().join("\n");
        assert!(
            out.contains("rep.east@demo.example") && out.contains("demo-password-1"),
            "{out}"
        );
        assert_eq!(db.count("accounts").await, 30);
        assert_eq!(db.count("contacts").await, 60);
        assert_eq!(db.count("activities").await, 100);
        assert_eq!(db.count("purchases").await, 20);
        // Only into an empty database.
        let (mut c, _) = spawn(&dir, &args, &env);
        assert!(!c.wait().unwrap().success());
        let running = crm_gateway::server::start(config(&db, &[])).await.unwrap();
        let http = reqwest::Client::new();
        let login = |email: &'static str| {
            let http = http.clone();
            let addr = running.addr;
            async move {
                let r = gql_at(&http, addr, None, "mutation($e:String!){ login(email:$e, password:\"demo-password-1\") { token } }", json!({"e": email})).await;
                r["data"]["login"]["token"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{r}"))
                    .to_owned()
            }
        };
        let count = "{ accounts { totalCount } }";
        let total = |v: serde_json::Value| {
            v["data"]["accounts"]["totalCount"]
                .as_i64()
                .unwrap_or_else(|| panic!("{v}"))
        };
        let east = total(
            gql_at(
                &http,
                running.addr,
                Some(&login("rep.east@demo.example").await),
                count,
                json!({}),
            )
            .await,
        );
        let west = total(
            gql_at(
                &http,
                running.addr,
                Some(&login("rep.west@demo.example").await),
                count,
                json!({}),
            )
            .await,
        );
        let manager = total(
            gql_at(
                &http,
                running.addr,
                Some(&login("manager@demo.example").await),
                count,
                json!({}),
            )
            .await,
        );
        assert!(east > 0 && west > 0, "{east} {west}");
        assert_eq!(
            manager, 30,
            "the manager's team covers East and West and its own accounts"
        );
        let it = gql_at(
            &http,
            running.addr,
            Some(&login("it@demo.example").await),
            count,
            json!({}),
        )
        .await;
        assert_eq!(code(&it), "FORBIDDEN", "{it}");
    }
);

both!(
    demo_pipeline_data_looks_like_a_sales_team,
    |backend| async move {
        let db = TestDb::new(backend).await;
        let dir = std::env::temp_dir();
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("CRM_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ];
        let args = [
            "demo",
            "--accounts",
            "40",
            "--contacts",
            "60",
            "--activities",
            "0",
            "--purchases",
            "0",
            "--opportunities",
            "600",
            "--products",
            "9",
            "--seed",
            "3",
        ];
        let (mut c, rx) = spawn(&dir, &args, &env);
        assert!(
            c.wait().unwrap().success(),
            "{:?}",
            rx.iter().collect::<Vec<_>>()
        );
        let out: String = rx.iter().collect::<Vec<_>>().join("\n");
        assert!(out.contains("600 opportunities"), "{out}");
        assert_eq!(db.count("pipelines").await, 3);
        assert_eq!(db.count("products").await, 9);
        assert_eq!(
            db.count("price_books").await,
            4,
            "three standard, one partner"
        );
        assert_eq!(db.count("price_book_entries").await, 36);
        assert_eq!(db.count("opportunities").await, 600);
        let history = db.count("opportunity_history").await;
        assert!(
            history > 1_200,
            "a created entry and stage moves: {history}"
        );
        assert!(db.count("quotas").await > 0);
        assert!(db.count("opportunity_line_items").await > 0);
        // Deals are the accounts' owners', open deals have an amount or
        // none, closed deals are dated, lost deals give a reason.
        let stray = db
            .scalar(
                "SELECT COUNT(*) AS n FROM opportunities o JOIN accounts a ON a.id = o.account_id \
                 WHERE o.owner_id <> a.owner_id",
            )
            .await;
        assert_eq!(stray, 0);
        let unreasoned = db
            .scalar(
                "SELECT COUNT(*) AS n FROM opportunities o JOIN pipeline_stages s ON s.id = o.stage_id \
                 WHERE (s.kind = 'LOST') <> (o.lost_reason IS NOT NULL) \
                 OR (s.kind = 'OPEN') <> (o.closed_at IS NULL)",
            )
            .await;
        assert_eq!(unreasoned, 0);
        // Never twice: the database now has pipelines.
        let (mut again, _) = spawn(
            &dir,
            &[
                "demo",
                "--accounts",
                "0",
                "--contacts",
                "0",
                "--activities",
                "0",
                "--purchases",
                "0",
            ],
            &env,
        );
        assert!(!again.wait().unwrap().success());

        let running = crm_gateway::server::start(config(&db, &[])).await.unwrap();
        let http = reqwest::Client::new();
        let r = gql_at(&http, running.addr, None, "mutation{ login(email:\"manager@demo.example\", password:\"demo-password-1\") { token } }", json!({})).await;
        let manager = r["data"]["login"]["token"].as_str().unwrap().to_owned();
        let r = gql_at(
            &http,
            running.addr,
            Some(&manager),
            "{ pipelines { id name } }",
            json!({}),
        )
        .await;
        let nb = r["data"]["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "New business")
            .unwrap_or_else(|| panic!("{r}"))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = gql_at(
            &http,
            running.addr,
            Some(&manager),
            "query($p:ID!){ pipelineBoard(pipelineId:$p) { columns { stage { name kind } count amounts { currency amountMinor } } } }",
            json!({"p": nb}),
        )
        .await;
        let columns = r["data"]["pipelineBoard"]["columns"]
            .as_array()
            .unwrap_or_else(|| panic!("{r}"))
            .clone();
        let count = |kind: &str| -> i64 {
            columns
                .iter()
                .filter(|c| c["stage"]["kind"] == kind)
                .map(|c| c["count"].as_i64().unwrap())
                .sum()
        };
        let (open, won, lost) = (count("OPEN"), count("WON"), count("LOST"));
        let in_db = db
            .scalar(&format!(
                "SELECT COUNT(*) AS n FROM opportunities WHERE pipeline_id = '{nb}'"
            ))
            .await;
        assert_eq!(
            open + won + lost,
            in_db,
            "the manager sees the whole team: {r}"
        );
        // Most of 18 months is closed; new business wins about a third.
        let rate = won as f64 / (won + lost) as f64;
        assert!(
            open > 0 && (0.15..0.55).contains(&rate),
            "{open} open, {won} won, {lost} lost"
        );
        assert!(
            columns.iter().all(|c| c["count"] == 0
                || c["stage"]["kind"] == "LOST"
                || !c["amounts"].as_array().unwrap().is_empty()),
            "{r}"
        );
        // The history ends where the deal is, and the current quarter has a
        // forecast with quotas.
        let r = gql_at(
            &http,
            running.addr,
            Some(&manager),
            "{ opportunities(first: 100) { edges { node { stageId timeInStage stageHistory { stageChanged changes { field to } } } } } }",
            json!({}),
        )
        .await;
        for e in r["data"]["opportunities"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{r}"))
        {
            let n = &e["node"];
            let last_stage = n["stageHistory"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|h| h["changes"].as_array().unwrap().clone())
                .rfind(|c| c["field"] == "stageId")
                .unwrap()["to"]
                .clone();
            assert_eq!(last_stage, n["stageId"], "{n}");
            assert!(n["timeInStage"].as_i64().unwrap() >= 0);
        }
        let today = chrono::Utc::now().date_naive();
        let r = gql_at(
            &http,
            running.addr,
            Some(&manager),
            "query($f:NaiveDate!,$t:NaiveDate!){ forecast(period: QUARTER, from:$f, to:$t) { rows { level pipelineCount quota { currency amountMinor } } } }",
            json!({"f": today.to_string(), "t": today.to_string()}),
        )
        .await;
        let rows = r["data"]["forecast"]["rows"]
            .as_array()
            .unwrap_or_else(|| panic!("{r}"));
        let total = rows.iter().find(|r| r["level"] == "TOTAL").unwrap();
        assert!(total["pipelineCount"].as_i64().unwrap() > 0, "{r}");
        assert!(!total["quota"].as_array().unwrap().is_empty(), "{r}");
    }
);
