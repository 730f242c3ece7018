//! Third-party conformance: the `graphql-http` audit suite and the
//! `graphql-ws` client, run with Node against a real server.

use std::process::Command;

use crate::server;
use crate::support::*;

fn node_script(script: &str, args: &[&str]) -> (bool, String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/node");
    assert!(
        std::path::Path::new(dir).join("node_modules").exists(),
        "run `npm ci --prefix tests/node` first (the test command in README.md does)"
    );
    let out = Command::new("node")
        .arg(format!("{dir}/{script}"))
        .args(args)
        .output()
        .expect("node is installed");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_http_audit_has_no_must_failure() {
    let s = server!(Backend::Sqlite);
    let url = s.url();
    let (ok, out) = tokio::task::spawn_blocking(move || node_script("audit.mjs", &[&url]))
        .await
        .unwrap();
    println!("{out}");
    assert!(ok, "graphql-http audit failed:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_ws_client_subscribes() {
    let s = server!(Backend::Sqlite);
    let token = s.admin().await;
    let url = s.url();
    let (ok, out) = tokio::task::spawn_blocking(move || node_script("ws.mjs", &[&url, &token]))
        .await
        .unwrap();
    println!("{out}");
    assert!(ok, "graphql-ws client test failed:\n{out}");
}
