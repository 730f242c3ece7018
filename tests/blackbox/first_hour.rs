//! The first hour of a new user: command help that shows the command first,
//! an IDE that works offline, a browser sent from `/graphql` to the IDE, a
//! start-up log that names the IDE and the password reset, a placeholder
//! token told apart from no token, and ASCII demo email addresses.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::both;
use crate::server;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_crm");

/// The `--help` text of `crm <args>`.
fn help(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--help")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(out.status.success(), "crm {args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Where `flag` (e.g. `--email`) is listed in a help text.
fn position(text: &str, flag: &str) -> Option<usize> {
    text.find(&format!("--{flag} "))
}

#[test]
fn command_help_shows_its_own_options_before_the_settings_it_reads() {
    // (command, its own options, settings it reads)
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (
            &["user", "create"],
            &["email", "name", "password", "roles"],
            &["database-url", "data-dir", "policy-dir"],
        ),
        (
            &["import"],
            &[
                "as",
                "mode",
                "duplicates",
                "dry-run",
                "encoding",
                "map",
                "errors",
            ],
            &[
                "database-url",
                "data-dir",
                "policy-dir",
                "default-phone-code",
            ],
        ),
        (
            &["demo"],
            &["accounts", "contacts", "activities", "purchases", "seed"],
            &["database-url", "data-dir", "policy-dir"],
        ),
        (
            &["policy", "explain"],
            &["user", "resource", "action"],
            &["database-url", "data-dir", "policy-dir"],
        ),
    ];
    // Server-only settings a command like these never reads.
    let server_only = [
        "listen",
        "cors-origins",
        "max-depth",
        "introspection",
        "suggestions",
        "request-timeout-secs",
        "ws-init-timeout-secs",
        "backup-interval-secs",
    ];
    for (cmd, own, settings) in cases {
        let text = help(cmd);
        let heading = text
            .find("\nSettings:")
            .unwrap_or_else(|| panic!("crm {cmd:?}: no Settings heading:\n{text}"));
        for o in *own {
            let at = position(&text, o).unwrap_or_else(|| panic!("crm {cmd:?}: no --{o}:\n{text}"));
            assert!(
                at < heading,
                "crm {cmd:?}: --{o} is not before the settings:\n{text}"
            );
        }
        for s in settings.iter().chain(["config"].iter()) {
            let at = position(&text, s).unwrap_or_else(|| panic!("crm {cmd:?}: no --{s}:\n{text}"));
            assert!(
                at > heading,
                "crm {cmd:?}: --{s} is not under Settings:\n{text}"
            );
        }
        for s in server_only {
            assert!(
                position(&text, s).is_none(),
                "crm {cmd:?} lists --{s}, which it does not read:\n{text}"
            );
        }
        assert!(text.contains("[env: CRM_CONFIG]"), "crm {cmd:?}:\n{text}");
    }
}

#[test]
fn serve_help_lists_every_setting_the_log_filter_and_accepted_values() {
    let text = help(&["serve"]);
    for s in crm_core::config::SETTINGS {
        assert!(position(&text, s.key).is_some(), "no --{}:\n{text}", s.key);
        assert!(
            text.contains(&format!("[env: {}]", s.env)),
            "no {}:\n{text}",
            s.env
        );
    }
    assert!(text.contains("CRM_LOG"), "{text}");
    assert!(text.contains("[env: CRM_CONFIG]"), "{text}");
    for flag in ["introspection", "suggestions"] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("--{flag} ")))
            .unwrap();
        let rest = &text[text.find(line).unwrap()..];
        let entry = &rest[..rest[1..].find("\n  -").map_or(rest.len(), |i| i + 1)];
        assert!(
            entry.contains("[possible values: true, false]"),
            "--{flag} does not show its values:\n{entry}"
        );
    }
    // A value outside them is refused, naming them.
    let out = Command::new(BIN)
        .args(["serve", "--introspection", "maybe"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("possible values: true, false"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn start_up_log_names_the_ide_and_how_to_reset_the_admin_password() {
    let dir = std::env::temp_dir().join(format!("crm_first_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let mut child = Command::new(BIN)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CRM_LISTEN", format!("127.0.0.1:{port}"))
        .env("CRM_POLICY_DIR", policies)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !seen.iter().any(|l: &String| l.contains("serving")) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let log = seen.join("\n");
    let serving = seen.iter().find(|l| l.contains("serving")).expect(&log);
    assert!(
        serving.contains(&format!("IDE at http://127.0.0.1:{port}/")),
        "{serving}"
    );
    let password = seen
        .iter()
        .find(|l| l.contains("generated password"))
        .expect(&log);
    assert!(password.contains("crm user set-password"), "{password}");
}

both!(
    a_browser_opening_the_endpoint_is_sent_to_the_ide,
    |b| async move {
        let s = server!(b);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        let r = http
            .get(s.url())
            .header("accept", browser_accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/");
        // The IDE is there, and only this server's files are on the page.
        let r = http
            .get(format!("http://{}/", s.addr()))
            .header("accept", browser_accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe") && !csp.contains("http"), "{csp}");
        let page = r.text().await.unwrap();
        assert!(
            !page.contains("://"),
            "the IDE page refers to another host:\n{page}"
        );
        assert!(!page.contains("<script>"), "inline script:\n{page}");
        for src in page
            .split("src=\"")
            .skip(1)
            .chain(page.split("href=\"").skip(1))
        {
            let path = &src[..src.find('"').unwrap()];
            if path.starts_with("data:") {
                continue;
            }
            assert!(path.starts_with("/ide/"), "{path}");
            let r = http
                .get(format!("http://{}{path}", s.addr()))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
        }
        // A client that is not a browser keeps the GraphQL-over-HTTP answer.
        for accept in [
            None,
            Some("application/json"),
            Some("application/graphql-response+json"),
        ] {
            let mut req = http.get(s.url());
            if let Some(a) = accept {
                req = req.header("accept", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 400, "{accept:?}");
        }
        // A browser with a query in the URL gets the answer, not the IDE.
        let r = http
            .get(format!("{}?query=%7B__typename%7D", s.url()))
            .header("accept", browser_accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["data"]["__typename"], "Query");
    }
);

both!(
    a_malformed_token_is_an_invalid_token_not_a_missing_one,
    |b| async move {
        let s = server!(b);
        const ME: &str = "{ me { id } }";
        // The placeholder from the docs, and other malformed values.
        for header in [
            "Bearer <token>",
            "Bearer <from the log>",
            "Bearer not.a.jwt",
            "Bearer crmk_notakey",
            "Bearer ",
            "Basic YWRtaW46YWRtaW4=",
        ] {
            let resp = s
                .http
                .post(s.url())
                .header("authorization", header)
                .json(&json!({"query": "{ __typename }"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 401, "{header}");
            assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{header}");
            let v: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(code(&v), "UNAUTHENTICATED", "{header}: {v}");
            assert_eq!(v["errors"][0]["message"], "invalid token", "{header}: {v}");
            assert!(v.get("data").is_none(), "{header}: {v}");
        }
        // No token at all is a different case.
        let anon = s.gql(None, ME, json!({})).await;
        assert_eq!(code(&anon), "UNAUTHENTICATED", "{anon}");
        assert_eq!(anon["errors"][0]["message"], "authentication required");
        // A real token still works.
        let token = s.admin().await;
        let me = s.gql(Some(&token), ME, json!({})).await;
        assert!(me["data"]["me"]["id"].is_string(), "{me}");
    }
);

both!(
    demo_emails_are_ascii_and_names_keep_their_letters,
    |b| async move {
        let s = server!(b);
        let token = s.admin().await;
        let dir = std::env::temp_dir().join(format!("crm_demo_{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        // Beside the running server, as the README says.
        let url = s.db.url.clone();
        let dir_s = dir.display().to_string();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["demo", "--accounts", "20", "--contacts", "100"])
                .args(["--activities", "0", "--purchases", "0"])
                .args(["--database-url", &url, "--data-dir", &dir_s])
                .args([
                    "--admin-email",
                    ADMIN_EMAIL,
                    "--admin-password",
                    ADMIN_PASSWORD,
                ])
                .args(["--token-secret", TOKEN_SECRET])
                .args([
                    "--policy-dir",
                    concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"),
                ])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The running server sees the data at once.
        let r = s
        .gql(
            Some(&token),
            "{ contacts(first: 100) { totalCount edges { node { firstName lastName emails { value } } } } }",
            json!({}),
        )
        .await;
        assert_eq!(r["data"]["contacts"]["totalCount"], 100, "{r}");
        let mut accented = 0;
        for edge in r["data"]["contacts"]["edges"].as_array().unwrap() {
            let node = &edge["node"];
            let name = format!("{} {}", node["firstName"], node["lastName"]);
            if !name.is_ascii() {
                accented += 1;
            }
            for e in node["emails"].as_array().unwrap() {
                let email = e["value"].as_str().unwrap();
                assert!(email.is_ascii(), "{name}: {email}");
                assert!(email.contains('@'), "{email}");
            }
        }
        // García and Müller are among the demo names and keep their letters.
        assert!(accented > 0, "no non-ASCII names left: {r}");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ide_works_offline_in_chromium() {
    let s = server!(Backend::Sqlite);
    let token = s.admin().await;
    let base = format!("http://{}/", s.addr());
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/node");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/puppeteer-core")
            .exists(),
        "run `npm ci --prefix tests/node` first (tests/run does)"
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(format!("{dir}/ide.mjs"))
            .args([&base, &token])
            .output()
            .expect("node is installed")
    })
    .await
    .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "the IDE check failed:\n{text}");
    assert!(text.contains("the IDE works offline"), "{text}");
}
