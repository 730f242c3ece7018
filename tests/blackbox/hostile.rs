//! Hostile input (issue #9): fan-out costed before execution, slow and
//! lying clients cut off, bad input reported as VALIDATION (never INTERNAL,
//! never an ERROR log line), enum literals as the specification wants them,
//! nothing for anonymous callers under the production settings, and a
//! deterministic fuzz run.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Mutex, Once};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;
use crate::{both, server};

/// The settings README tells production to set.
const METRICS_TOKEN: &str = "metrics-token-for-tests-0123456789";
const PRODUCTION: &[(&str, &str)] = &[
    ("metrics-token", METRICS_TOKEN),
    ("introspection-anonymous", "false"),
    ("suggestions", "false"),
];

// ---- the server's ERROR log lines -------------------------------------

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts collecting the ERROR lines the server logs (in this test
/// process: nextest runs each test in its own).
fn capture_errors() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::ERROR)
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
    });
}

fn error_lines() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned()
}

// ---- raw HTTP ------------------------------------------------------------

/// Writes `bytes` on a fresh connection and reads until the server closes
/// it. Panics if the server keeps it open (the guard is generous: it only
/// turns a hang into a failure, it measures nothing).
async fn until_closed(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open: {}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// GET on a connection of its own (no pooling).
async fn fresh_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut req = http.get(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn message(v: &Value) -> String {
    v["errors"][0]["message"].as_str().unwrap_or("").to_owned()
}

// ---- 1. fan-out ------------------------------------------------------------

const FAN_OUT: &str = "{ accounts(first: 100) { edges { node { id contacts(first: 100) { edges { node { id timeline(first: 100) { edges { node { id title } } } } } } } } } }";

both!(fan_out_is_costed_before_execution, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let r = s.gql(Some(&admin), FAN_OUT, json!({})).await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert!(r.get("data").is_none_or(Value::is_null), "{r}");
    let m = message(&r);
    // 1 + 100 × (3 + (1 + 100 × (3 + (1 + 100 × 4)))) = 4,040,401
    assert!(m.contains("costs 4040401"), "{m}");
    assert!(m.contains("limit is 50000"), "{m}");

    // The same through a variable, and through a variable's default.
    let q = "query($n: Int) { accounts(first: $n) { edges { node { contacts(first: $n) { edges { node { timeline(first: $n) { edges { node { id } } } } } } } } } }";
    let r = s.gql(Some(&admin), q, json!({"n": 100})).await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert!(message(&r).contains("limit is 50000"), "{r}");
    let q_default = q.replace("$n: Int", "$n: Int = 100");
    let r = s.gql(Some(&admin), &q_default, json!({})).await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    // Without page sizes the default page (20) counts: 20 × 20 × 20 lists.
    let r = s
        .gql(Some(&admin), &q.replace("(first: $n)", ""), json!({}))
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    // Small pages are answered.
    let r = s.gql(Some(&admin), q, json!({"n": 5})).await;
    assert!(r["errors"].is_null(), "{r}");

    // Over WebSocket too.
    let mut ws = Ws::init(s.addr(), &admin).await;
    ws.subscribe("1", FAN_OUT, json!({})).await;
    let msg = ws.recv().await.expect("an answer");
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(
        msg["payload"][0]["extensions"]["code"], "VALIDATION",
        "{msg}"
    );
    assert!(msg.to_string().contains("limit is 50000"), "{msg}");
    ws.subscribe(
        "2",
        "query($s: String) { accounts(filter: {search: $s}) { totalCount } }",
        json!({"s": "a\u{0}"}),
    )
    .await;
    let msg = ws.recv().await.expect("an answer");
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(
        msg["payload"][0]["extensions"]["code"], "VALIDATION",
        "{msg}"
    );
    ws.close().await;

    // A batch is charged the sum of its operations: ten of cost 6,401
    // each pass one by one but not together.
    let one = "{ accounts(first: 100) { edges { node { id contacts(first: 20) { edges { node { id } } } } } } }";
    let r = s.gql(Some(&admin), one, json!({})).await;
    assert!(r["errors"].is_null(), "{r}");
    let batch: Vec<Value> = (0..10).map(|_| json!({"query": one})).collect();
    let r: Value = s
        .http
        .post(s.url())
        .bearer_auth(&admin)
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = r.as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(items.len(), 10);
    for item in items {
        assert_eq!(code(item), "VALIDATION", "{item}");
        assert!(message(item).contains("batch costs 64010"), "{item}");
    }
});

both!(
    responses_over_the_size_ceiling_are_an_error,
    |b| async move {
        let s = server!(b, &[("max-response-bytes", "3000")]);
        let admin = s.admin().await;
        for i in 0..20 {
            let r = s
                .gql(
                    Some(&admin),
                    "mutation($i:CreateAccountInput!){ createAccount(input:$i) { id } }",
                    json!({"i": {"name": format!("Account number {i} with a long enough name")}}),
                )
                .await;
            assert!(r["errors"].is_null(), "{r}");
        }
        let resp = s
        .http
        .post(s.url())
        .bearer_auth(&admin)
        .json(&json!({"query": "{ accounts(first: 100) { edges { cursor node { id name createdAt } } } }"}))
        .send()
        .await
        .unwrap();
        let text = resp.text().await.unwrap();
        let r: Value = serde_json::from_str(&text).expect("a whole JSON body, not a truncated one");
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert!(message(&r).contains("max-response-bytes"), "{r}");
        // Small answers are untouched.
        let r = s
            .gql(
                Some(&admin),
                "{ accounts(first: 2) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(r["data"]["accounts"]["totalCount"], 20, "{r}");
    }
);

// ---- 2. slow and lying clients ---------------------------------------------

both!(slow_and_lying_clients_are_cut_off, |b| async move {
    let s = server!(
        b,
        &[
            ("header-read-timeout-secs", "1"),
            ("body-read-timeout-secs", "1"),
            ("body-min-bytes-per-sec", "1000"),
        ]
    );
    let addr = s.addr();
    // Headers that never finish (slowloris).
    let slowloris = tokio::spawn(until_closed(
        addr,
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n",
    ));
    // Nothing at all, or a fragment of the HTTP/2 preface.
    let silent = tokio::spawn(until_closed(addr, b""));
    let preface = tokio::spawn(until_closed(addr, b"PRI * HTTP/2"));
    // A 99 GB Content-Length with two bytes behind it: 413 at once.
    let lying = until_closed(
        addr,
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99000000000\r\n\r\n{}",
    )
    .await;
    assert!(lying.starts_with("HTTP/1.1 413"), "{lying}");
    // A body shorter than announced, within the limit: cut off.
    let short = until_closed(
        addr,
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}",
    )
    .await;
    assert!(short.starts_with("HTTP/1.1 408"), "{short}");
    // Health checks are answered all along.
    let (status, body) = fresh_get(addr, "/healthz", None).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    for task in [slowloris, silent, preface] {
        let held = task.await.unwrap();
        assert!(!held.contains("200 OK"), "{held}");
    }
    // The service still works.
    let r = s.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(r["data"]["__typename"], "Query");
});

both!(
    connections_are_bounded_with_room_for_health_checks,
    |b| async move {
        let s = server!(
            b,
            &[("max-connections", "4"), ("header-read-timeout-secs", "60")]
        );
        let addr = s.addr();
        // Four connections that never finish their headers fill the limit.
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /graphql HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            held.push(c);
        }
        // A fifth still gets health checks, and a clear 503 for the rest.
        let (status, body) = fresh_get(addr, "/healthz", None).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        let (status, _) = fresh_get(addr, "/graphql?query=%7B__typename%7D", None).await;
        assert_eq!(status, 503);
        // Once they go, the service answers again.
        drop(held);
        let mut answered = false;
        for _ in 0..200 {
            let (status, _) = fresh_get(addr, "/graphql?query=%7B__typename%7D", None).await;
            if status == 200 {
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(answered, "the service did not recover its connection slots");
    }
);

// ---- 3. bad input ------------------------------------------------------------

both!(bad_input_is_validation_and_logs_no_error, |b| async move {
    capture_errors();
    let s = server!(b);
    let admin = s.admin().await;
    let acc = s
        .gql(
            Some(&admin),
            "mutation { createAccount(input: {name: \"Acme\"}) { id } }",
            json!({}),
        )
        .await;
    let acc_id = acc["data"]["createAccount"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "missing required variable",
            "query($id: ID!) { node(id: $id) { id } }",
            json!({}),
            "id",
        ),
        (
            "undeclared variable",
            "query { node(id: $id) { id } }",
            json!({}),
            "id",
        ),
        (
            "wrong type inside an input object",
            "mutation($i: CreateAccountInput!) { createAccount(input: $i) { id } }",
            json!({"i": {"name": "X", "address": {"city": 5}}}),
            "city",
        ),
        (
            "wrong type inside an update",
            "mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { id } }",
            json!({"i": {"id": acc_id, "version": "one", "name": "Y"}}),
            "version",
        ),
        (
            "NUL in an id",
            "query($id: ID!) { node(id: $id) { id } }",
            json!({"id": "acc_\u{0}x"}),
            "$id",
        ),
        (
            "NUL in an id literal",
            "{ account(id: \"acc_\\u0000x\") { id } }",
            json!({}),
            "account.id",
        ),
        (
            "NUL in a search",
            "query($s: String) { accounts(filter: {search: $s}) { totalCount } }",
            json!({"s": "ac\u{0}me"}),
            "$s",
        ),
        (
            "NUL in a name",
            "mutation($i: CreateAccountInput!) { createAccount(input: $i) { id } }",
            json!({"i": {"name": "Ac\u{0}me"}}),
            "$i.name",
        ),
        (
            "a 60 KB search",
            "query($s: String) { accounts(filter: {search: $s}) { totalCount } }",
            json!({"s": "%_".repeat(30_000)}),
            "$s",
        ),
        (
            "a 60 KB name literal",
            &*Box::leak(
                format!(
                    "mutation {{ createAccount(input: {{name: \"{}\"}}) {{ id }} }}",
                    "n".repeat(60_000)
                )
                .into_boxed_str(),
            ),
            json!({}),
            "createAccount.input.name",
        ),
    ];
    for (what, query, vars, names) in cases {
        let r = s.gql(Some(&admin), query, vars).await;
        assert_eq!(code(&r), "VALIDATION", "{what}: {r}");
        assert!(r.to_string().contains(names), "{what} names {names}: {r}");
    }
    // Just under the limit, a search is answered on both backends (SQLite
    // refuses LIKE patterns over 50,000 bytes; the limit keeps clear of it).
    for list in ["accounts", "contacts"] {
        let q = format!("query($s: String) {{ {list}(filter: {{search: $s}}) {{ totalCount }} }}");
        let r = s
            .gql(Some(&admin), &q, json!({"s": "Ab%_".repeat(4_999)}))
            .await;
        assert!(r["errors"].is_null(), "{list}: {r}");
    }
    assert_eq!(s.db.count("accounts").await, 1, "nothing was written");
    let errors = error_lines();
    assert!(
        errors.is_empty(),
        "ERROR lines for client mistakes:\n{errors}"
    );
});

// ---- 4. enum literals ----------------------------------------------------------

both!(enum_values_as_string_literals_are_refused, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let r = s
        .gql(
            Some(&admin),
            "{ accounts(filter: {lifecycleStage: \"ACTIVE\"}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert!(r.to_string().contains("lifecycleStage"), "{r}");
    let r = s
        .gql(
            Some(&admin),
            "mutation { createAccount(input: {name: \"Quoted\", lifecycleStage: \"ACTIVE\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert_eq!(s.db.count("accounts").await, 0);
    // Unquoted literals and variables (JSON has only strings) are fine.
    let r = s
        .gql(
            Some(&admin),
            "{ accounts(filter: {lifecycleStage: ACTIVE}) { totalCount } }",
            json!({}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let r = s
        .gql(
            Some(&admin),
            "query($f: AccountFilterInput) { accounts(filter: $f) { totalCount } }",
            json!({"f": {"lifecycleStage": "ACTIVE"}}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
});

// ---- 5. anonymous callers --------------------------------------------------------

both!(anonymous_callers_get_no_metrics_or_schema, |b| async move {
    let s = server!(b, PRODUCTION);
    let (status, _) = s.get(None, "/metrics").await;
    assert_eq!(status, 401);
    let (status, _) = s.get(Some("wrong-token"), "/metrics").await;
    assert_eq!(status, 401);
    let (status, body) = s.get(Some(METRICS_TOKEN), "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("crm_"), "{body}");

    for q in [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"Account\") { fields { name } } }",
        "query { ...F } fragment F on Query { __schema { types { name } } }",
    ] {
        let r = s.gql(None, q, json!({})).await;
        assert_eq!(code(&r), "UNAUTHENTICATED", "{q}: {r}");
        assert!(r.get("data").is_none_or(Value::is_null), "{r}");
    }
    // Over GET too.
    let (status, body) = s
        .get(
            None,
            "/graphql?query=%7B__schema%7BqueryType%7Bname%7D%7D%7D",
        )
        .await;
    assert!(body.contains("UNAUTHENTICATED"), "{status} {body}");
    // Signed-in users may introspect; anyone may ask for __typename.
    let admin = s.admin().await;
    let r = s
        .gql(
            Some(&admin),
            "{ __schema { queryType { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["__schema"]["queryType"]["name"], "Query", "{r}");
    let r = s.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(r["data"]["__typename"], "Query");
});

// ---- fuzz ------------------------------------------------------------------------

/// A small deterministic PRNG (xorshift64*): the same requests every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SEEDS: &[(&str, &str)] = &[
    ("{ me { id email roles } }", "{}"),
    (
        "query($n: Int, $a: String) { accounts(first: $n, after: $a) { totalCount edges { cursor node { id name lifecycleStage } } pageInfo { hasNextPage endCursor } } }",
        r#"{"n": 5, "a": null}"#,
    ),
    (
        "query($f: AccountFilterInput, $o: AccountOrder) { accounts(filter: $f, orderBy: $o, first: 3) { totalCount } }",
        r#"{"f": {"search": "acme", "lifecycleStage": "ACTIVE"}, "o": {"field": "NAME", "direction": "DESC"}}"#,
    ),
    (
        "query($id: ID!) { node(id: $id) { id ... on Account { name contacts(first: 2) { totalCount } } } }",
        r#"{"id": "acc_0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee"}"#,
    ),
    (
        "mutation($i: CreateAccountInput!) { createAccount(input: $i) { id name version } }",
        r#"{"i": {"name": "Fuzz", "industry": "x", "sizeBand": "SMALL", "annualRevenue": {"amount": 100, "currency": "EUR"}}}"#,
    ),
    (
        "mutation($i: CreateContactInput!) { createContact(input: $i) { id } }",
        r#"{"i": {"firstName": "F", "lastName": "Z", "emails": [{"value": "f@z.example", "kind": "WORK"}]}}"#,
    ),
    (
        "query($c: String) { contacts(first: 2, after: $c) { edges { node { id firstName } } } }",
        r#"{"c": "WyJhIiwiYiJd"}"#,
    ),
    (
        "query($t: SubjectType!, $s: ID!) { timeline(subjectType: $t, subjectId: $s, first: 3) { totalCount } }",
        r#"{"t": "ACCOUNT", "s": "acc_1"}"#,
    ),
    ("{ users(first: 2) { edges { node { id email } } } }", "{}"),
    (
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        r#"{"e": "nobody@example.com", "p": "wrong"}"#,
    ),
    ("{ __typename a: __typename }", "{}"),
];

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    "$",
    "...",
    "@skip(if: true)",
    "@include(if: $x)",
    "\"",
    "\\u0000",
    "null",
    "true",
    "-1",
    "99999999999999999999",
    "1e308",
    "\"ACTIVE\"",
    "ACTIVE",
    "__schema",
    "on",
    "fragment",
    "query",
    "mutation",
    "subscription",
    "#",
    "\u{0}",
    "é",
    "💥",
    "first: 100",
    "last: -5",
    "after: \"!!\"",
    "id: \"\"",
];

fn json_noise(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(rng.next() as i64),
        2 => json!(-1),
        3 => json!(1e300),
        4 => json!(""),
        5 => json!("\u{0}"),
        6 => json!("x".repeat(rng.below(3) * 30_000)),
        7 => json!([1, "a", null, {"b": []}]),
        8 => json!({"amount": "ten", "currency": 5}),
        9 => json!(true),
        10 => json!("acc_\u{0}"),
        _ => json!("ACTIVE"),
    }
}

fn mutate_value(rng: &mut Rng, v: &mut Value) {
    match v {
        Value::Object(map) if !map.is_empty() && rng.below(3) > 0 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.below(4) {
                0 => {
                    map.remove(&k);
                }
                1 => {
                    map.insert(format!("{k}x"), json_noise(rng));
                }
                _ => mutate_value(rng, map.get_mut(&k).unwrap()),
            }
        }
        _ => *v = json_noise(rng),
    }
}

fn mutate_query(rng: &mut Rng, q: &str) -> String {
    let mut chars: Vec<char> = q.chars().collect();
    for _ in 0..=rng.below(3) {
        if chars.is_empty() {
            break;
        }
        let at = rng.below(chars.len());
        match rng.below(6) {
            0 => {
                chars.remove(at);
            }
            1 => chars.truncate(at),
            2 => {
                let t: Vec<char> = rng.pick(TOKENS).chars().collect();
                chars.splice(at..at, t);
            }
            3 => {
                let end = (at + rng.below(20)).min(chars.len());
                let dup: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, dup);
            }
            4 => chars[at] = char::from(b" {}():$!\"@"[rng.below(10)]),
            _ => {
                let t: Vec<char> = rng.pick(TOKENS).chars().collect();
                chars.splice(at..(at + 1).min(chars.len()), t);
            }
        }
    }
    chars.into_iter().collect()
}

both!(fuzzed_requests_get_no_5xx_and_no_internal, |b| async move {
    capture_errors();
    let s = server!(b);
    let admin = s.admin().await;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ 2026);
    let n = 4000;
    for i in 0..n {
        let (q, vars) = rng.pick(SEEDS);
        let mut vars: Value = serde_json::from_str(vars).unwrap();
        let query = if rng.below(3) == 0 {
            q.to_string()
        } else {
            mutate_query(&mut rng, q)
        };
        if rng.below(2) == 0 {
            mutate_value(&mut rng, &mut vars);
        }
        let token = match rng.below(4) {
            0 => None,
            1 => Some("not.a.token"),
            _ => Some(admin.as_str()),
        };
        let body = match rng.below(10) {
            0 => json!([{"query": query, "variables": vars}, {"query": q}]),
            1 => json!({"query": query, "variables": json_noise(&mut rng)}),
            2 => json!({"query": query, "operationName": "Nope"}),
            _ => json!({"query": query, "variables": vars}),
        };
        let mut req = s.http.post(s.url()).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(status < 500, "request {i} {body}: {status} {text}");
        assert!(!text.contains("\"INTERNAL\""), "request {i} {body}: {text}");
    }
    let errors = error_lines();
    assert!(errors.is_empty(), "ERROR lines while fuzzing:\n{errors}");
    // Still healthy.
    let r = s.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(r["data"]["__typename"], "Query");
});
