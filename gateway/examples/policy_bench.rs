//! Benchmark: does the length of the policy file change request throughput?
//!
//! Serves the same data twice, once under a 10-line policy and once under a
//! 1,000-line policy (the same 10 lines after 990 other valid rules), and
//! runs the same 30-field query against each over real HTTP for a fixed
//! time with concurrent clients. Also times the whole-request access check
//! alone. Run: `cargo run --release --example policy_bench` (see
//! BENCHMARKS.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crm_core::access::{Principal, UserPrincipal};
use crm_core::config::Config;
use crm_core::identity::service::{self, NewUser};
use serde_json::json;

const QUERY: &str = "query Bench { me { id email displayName active roles teamId createdAt updatedAt version \
    team { id name parentId createdAt updatedAt version } } \
    users(first: 5) { totalCount edges { cursor node { id email displayName active roles teamId createdAt } } \
    pageInfo { hasNextPage endCursor } } }";

const BASE: &str = "p, admin, *, *, allow
p, anonymous, Mutation.login, call, allow
p, anonymous, User, read:own, allow
p, anonymous, User.*, read, allow
p, bench, Query.me, call, allow
p, bench, Query.users, call, allow
p, bench, User, read:all, allow
p, bench, User.*, read, allow
p, bench, Team, read:all, allow
p, bench, Team.*, read, allow
";

fn filler(lines: usize) -> String {
    let resources = [
        "User.email",
        "User.roles",
        "Team.name",
        "Query.users",
        "ApiKey.name",
        "User",
    ];
    let actions = ["read", "read", "read", "call", "read", "read:own"];
    (0..lines)
        .map(|i| {
            let k = i % resources.len();
            format!(
                "p, filler_{}, {}, {}, allow\n",
                i / 3,
                resources[k],
                actions[k]
            )
        })
        .collect()
}

async fn serve(
    policy: &str,
    name: &str,
) -> (crm_gateway::server::Running, String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "crm_bench_{name}_{}",
        uuid::Uuid::now_v7().simple()
    ));
    let pdir = dir.join("policies");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(
        pdir.join("model.conf"),
        crm_core::policy::engine::DEFAULT_MODEL,
    )
    .unwrap();
    std::fs::write(pdir.join("policy.csv"), policy).unwrap();
    let config = Config::with(&[
        ("listen", "127.0.0.1:0"),
        ("data-dir", dir.to_str().unwrap()),
        ("policy-dir", pdir.to_str().unwrap()),
        ("admin-password", "bench-admin-password"),
        ("log-format", "text"),
    ])
    .unwrap();
    let running = crm_gateway::server::start(config).await.unwrap();
    for i in 0..20 {
        service::create_user(
            &running.app,
            &Principal::System,
            NewUser {
                email: format!("user{i}@bench.example"),
                display_name: format!("User {i}"),
                password: Some("bench-password-1".into()),
                roles: vec!["bench".into()],
                team_id: None,
            },
        )
        .await
        .unwrap();
    }
    let http = reqwest::Client::new();
    let r: serde_json::Value = http
        .post(format!("http://{}/graphql", running.addr))
        .json(&json!({"query": "mutation { login(email: \"user0@bench.example\", password: \"bench-password-1\") { token } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["data"]["login"]["token"].as_str().unwrap().to_owned();
    (running, token, dir)
}

async fn throughput(addr: std::net::SocketAddr, token: &str, clients: usize, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let done = done.clone();
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let body = json!({"query": QUERY}).to_string();
            while Instant::now() < stop {
                let r = http
                    .post(format!("http://{addr}/graphql"))
                    .header("content-type", "application/json")
                    .bearer_auth(&token)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                let text = r.text().await.unwrap();
                assert!(!text.contains("\"errors\""), "{text}");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

fn check_cost(app: &crm_core::App, principal: &Principal, iterations: u32) -> f64 {
    let doc = async_graphql::parser::parse_query(QUERY).unwrap();
    let vars = async_graphql::Variables::default();
    let started = Instant::now();
    for _ in 0..iterations {
        crm_core::access::check_request(app, principal, &doc, None, &vars).unwrap();
    }
    started.elapsed().as_nanos() as f64 / f64::from(iterations)
}

#[tokio::main]
async fn main() {
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let small = BASE.to_owned();
    let large = format!("{}{BASE}", filler(990));
    assert_eq!(small.lines().count(), 10);
    assert_eq!(large.lines().count(), 1000);
    let (a, token_a, dir_a) = serve(&small, "small").await;
    let (b, token_b, dir_b) = serve(&large, "large").await;
    let fields = QUERY
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .count();
    println!(
        "query: {fields} words (~30 selected fields); {clients} clients; {secs} s per run; {rounds} rounds"
    );
    // Warm up both (fills the decision caches and the connection pools).
    throughput(a.addr, &token_a, clients, 2).await;
    throughput(b.addr, &token_b, clients, 2).await;
    let (mut sum_a, mut sum_b) = (0.0, 0.0);
    // Alternate so drift on the machine hits both equally.
    for round in 1..=rounds {
        let ra = throughput(a.addr, &token_a, clients, secs).await;
        let rb = throughput(b.addr, &token_b, clients, secs).await;
        println!(
            "round {round}: 10-line {ra:.0} req/s, 1000-line {rb:.0} req/s, ratio {:.3}",
            rb / ra
        );
        sum_a += ra;
        sum_b += rb;
    }
    println!(
        "mean: 10-line {:.0} req/s, 1000-line {:.0} req/s, ratio {:.3}",
        sum_a / rounds as f64,
        sum_b / rounds as f64,
        sum_b / sum_a
    );
    let user = |app: &crm_core::App| {
        let app = app.clone();
        async move {
            let mut c = app.db.conn().await.unwrap();
            crm_core::identity::repo::user_by_email(&mut c.conn(), "user0@bench.example")
                .await
                .unwrap()
                .unwrap()
        }
    };
    for (label, app) in [("10-line", &a.app), ("1000-line", &b.app)] {
        let u = user(app).await;
        let p = Principal::User(UserPrincipal {
            roles: u.role_list(),
            id: u.id,
            team_id: None,
            token_id: "bench".into(),
        });
        check_cost(app, &p, 1_000);
        let ns = check_cost(app, &p, 100_000);
        println!(
            "access check alone, {label}: {:.2} µs per request",
            ns / 1000.0
        );
    }
    for (r, d) in [(a, dir_a), (b, dir_b)] {
        let _ = r.shutdown.send(true);
        let _ = r.done.await;
        let _ = std::fs::remove_dir_all(d);
    }
}
