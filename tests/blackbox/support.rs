//! Test support: a real server on a real socket over a fresh database of
//! either backend, and small HTTP and WebSocket clients.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crm_core::config::Config;
use crm_gateway::server::Running;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The PostgreSQL server every dev and CI machine has.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The first admin of every test server.
pub const ADMIN_EMAIL: &str = "admin@test.example";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// A fixed signing secret, so tests can mint tokens.
pub const TOKEN_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database; dropped (PostgreSQL) or deleted (SQLite) at the end.
pub struct TestDb {
    pub url: String,
    dir: PathBuf,
    pg_name: Option<String>,
}

impl TestDb {
    /// Creates a fresh, empty database. A PostgreSQL test fails when no
    /// server is reachable: `tests/run` decides before the run whether the
    /// PostgreSQL tests run or are reported as skipped (never inside a test,
    /// where a skip would read as a pass).
    pub async fn new(backend: Backend) -> TestDb {
        let name = format!("crm_test_{}", uuid::Uuid::now_v7().simple());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.join("crm.db").display()),
                dir,
                pg_name: None,
            },
            Backend::Postgres => {
                let mut admin = AsyncPgConnection::establish(PG_ADMIN_URL)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "no PostgreSQL server at {PG_ADMIN_URL} ({e}); start one, or run \
                             tests/run, which skips the PostgreSQL tests visibly without one"
                        )
                    });
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                TestDb {
                    url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Runs raw SQL against the test database (test set-up only).
    pub async fn exec(&self, sql: &str) {
        let db = crm_core::db::Db::connect(&self.url, &Default::default())
            .await
            .unwrap();
        let mut c = db.conn().await.unwrap();
        let mut conn = c.conn();
        crm_core::db_run!(&mut conn, |c| c.batch_execute(sql).await).unwrap();
    }

    /// The newest event cursor, for subscribing to "everything after now"
    /// without racing the server (a subscription without a cursor starts
    /// whenever the server gets to it). On PostgreSQL events get their
    /// cursor after commit, so this first numbers every committed event, as
    /// the server's sequencer would a moment later: an event written before
    /// the call is never after the cursor it returns.
    pub async fn head(&self) -> String {
        let db = crm_core::db::Db::connect(&self.url, &Default::default())
            .await
            .unwrap();
        loop {
            let mut tx = db.begin().await.unwrap();
            let n = crm_core::events::sequence(&mut tx.conn()).await.unwrap();
            tx.commit().await.unwrap();
            if (n as i64) < crm_core::events::SEQUENCE_BATCH {
                break;
            }
        }
        self.scalar("SELECT COALESCE(MAX(seq), 0) AS n FROM outbox")
            .await
            .to_string()
    }

    /// Counts rows of a table.
    pub async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .await
    }

    /// Runs a query returning one BigInt column named `n`.
    pub async fn scalar(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let db = crm_core::db::Db::connect(&self.url, &Default::default())
            .await
            .unwrap();
        let mut c = db.conn().await.unwrap();
        let mut conn = c.conn();
        let q = diesel::sql_query(sql.to_owned());
        let rows: Vec<N> =
            crm_core::db_run!(&mut conn, |c| diesel_async::RunQueryDsl::load(q.clone(), c)
                .await)
            .unwrap();
        rows[0].n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(name) = self.pg_name.take() {
            // Best effort, on a separate thread: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok(mut c) = AsyncPgConnection::establish(PG_ADMIN_URL).await {
                        let _ = c
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running server on a fresh database.
pub struct TestServer {
    pub db: TestDb,
    pub running: Running,
    pub http: reqwest::Client,
}

/// Settings every test server uses, plus the test's own.
pub fn config(db: &TestDb, overrides: &[(&str, &str)]) -> Config {
    let data_dir = db.dir.display().to_string();
    let mut all: Vec<(&str, &str)> = vec![
        ("listen", "127.0.0.1:0"),
        ("database-url", &db.url),
        ("data-dir", &data_dir),
        ("admin-email", ADMIN_EMAIL),
        ("admin-password", ADMIN_PASSWORD),
        ("token-secret", TOKEN_SECRET),
    ];
    all.extend_from_slice(overrides);
    Config::with(&all).unwrap()
}

impl TestServer {
    /// Starts a server on a fresh database of `backend`.
    pub async fn start(backend: Backend, overrides: &[(&str, &str)]) -> TestServer {
        let db = TestDb::new(backend).await;
        let running = crm_gateway::server::start(config(&db, overrides))
            .await
            .unwrap();
        TestServer {
            db,
            running,
            http: client(),
        }
    }

    /// Starts a server whose policy directory holds the shipped policy plus
    /// `extra` lines; the directory is `policy_dir()` for later edits.
    pub async fn start_with_policy(
        backend: Backend,
        extra: &str,
        overrides: &[(&str, &str)],
    ) -> TestServer {
        let db = TestDb::new(backend).await;
        let dir = db.dir.join("policies");
        std::fs::create_dir_all(&dir).unwrap();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
        std::fs::copy(format!("{root}/model.conf"), dir.join("model.conf")).unwrap();
        let base = std::fs::read_to_string(format!("{root}/policy.csv")).unwrap();
        std::fs::write(dir.join("policy.csv"), format!("{base}\n{extra}\n")).unwrap();
        let dir_s = dir.display().to_string();
        let mut all: Vec<(&str, &str)> = vec![("policy-dir", &dir_s)];
        all.extend_from_slice(overrides);
        let running = crm_gateway::server::start(config(&db, &all)).await.unwrap();
        TestServer {
            db,
            running,
            http: client(),
        }
    }

    /// The policy directory of a server started with `start_with_policy`.
    pub fn policy_dir(&self) -> PathBuf {
        self.db.dir.join("policies")
    }

    /// Starts another replica on the same database.
    pub async fn replica(&self, overrides: &[(&str, &str)]) -> Running {
        crm_gateway::server::start(config(&self.db, overrides))
            .await
            .unwrap()
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr())
    }

    /// Runs a GraphQL operation; returns the response body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        gql_at(&self.http, self.addr(), token, query, variables).await
    }

    /// Signs in; returns the token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .gql(
                None,
                "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}",
                json!({"e": email, "p": password}),
            )
            .await;
        r["data"]["login"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login failed: {r}"))
            .to_owned()
    }

    /// The admin's token.
    pub async fn admin(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Creates a user with roles; returns its id.
    pub async fn create_user(&self, admin: &str, email: &str, roles: &[&str]) -> String {
        let r = self
            .gql(
                Some(admin),
                "mutation($i:CreateUserInput!){createUser(input:$i){id}}",
                json!({"i": {"email": email, "displayName": email, "password": "user-password-1", "roles": roles}}),
            )
            .await;
        r["data"]["createUser"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createUser failed: {r}"))
            .to_owned()
    }
}

/// Runs a GraphQL operation against any server.
pub async fn gql_at(
    http: &reqwest::Client,
    addr: SocketAddr,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut req = http
        .post(format!("http://{addr}/graphql"))
        .json(&json!({"query": query, "variables": variables}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// The `extensions.code` of the first error.
pub fn code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

/// A raw graphql-transport-ws client.
pub struct Ws {
    inner: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    /// Connects with the graphql-transport-ws subprotocol.
    pub async fn connect(addr: SocketAddr) -> Ws {
        let mut req = format!("ws://{addr}/graphql")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (inner, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        Ws { inner }
    }

    /// Connects and completes `connection_init` with `token`.
    pub async fn init(addr: SocketAddr, token: &str) -> Ws {
        let mut ws = Ws::connect(addr).await;
        ws.send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}))
            .await;
        let ack = ws.recv().await.expect("connection_ack");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        ws
    }

    pub async fn send(&mut self, v: Value) {
        self.inner
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.inner
            .send(Message::Text(text.to_owned().into()))
            .await
            .unwrap();
    }

    /// Next JSON message, or `None` when the socket closed (or 10 s passed).
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.inner.next())
                .await
                .ok()??;
            match msg.ok()? {
                Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Waits for the close frame; returns its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.inner.next())
                .await
                .ok()??;
            match msg {
                Ok(Message::Close(Some(f))) => return Some(f.code.into()),
                Ok(Message::Close(None)) => return None,
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Subscribes to `query` under `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": variables}}))
            .await;
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }
}

/// Declares a test that runs once on SQLite and once on PostgreSQL:
/// `both!(name, |backend| async move { … })`.
#[macro_export]
macro_rules! both {
    ($name:ident, |$b:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $b = $crate::support::Backend::Sqlite;
                $body.await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $b = $crate::support::Backend::Postgres;
                $body.await
            }
        }
    };
}

/// Starts a server on a fresh database of `$backend`.
#[macro_export]
macro_rules! server {
    ($backend:expr) => {
        server!($backend, &[])
    };
    ($backend:expr, $overrides:expr) => {
        $crate::support::TestServer::start($backend, $overrides).await
    };
}

impl TestServer {
    /// Sends a GraphQL multipart request with one file in variable `var`.
    pub async fn upload(
        &self,
        token: Option<&str>,
        query: &str,
        mut variables: Value,
        var: &str,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Value {
        variables[var] = Value::Null;
        let form = reqwest::multipart::Form::new()
            .text(
                "operations",
                json!({"query": query, "variables": variables}).to_string(),
            )
            .text(
                "map",
                json!({"0": [format!("variables.{var}")]}).to_string(),
            )
            .part(
                "0",
                reqwest::multipart::Part::bytes(bytes)
                    .file_name(file_name.to_owned())
                    .mime_str("text/csv")
                    .unwrap(),
            );
        let mut req = self
            .http
            .post(self.url())
            .header("GraphQL-Preflight", "1")
            .multipart(form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    /// Polls `importJob` / `exportJob` until the job has finished.
    pub async fn wait_job(&self, token: &str, field: &str, id: &str) -> Value {
        let q = format!(
            "query($id:ID!){{ {field}(id:$id) {{ id status rowsDone created updated skipped failed message errorReportUrl downloadUrl }} }}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let r = self.gql(Some(token), &q, json!({"id": id})).await;
            let job = r["data"][field].clone();
            let status = job["status"].as_str().unwrap_or_else(|| panic!("{r}"));
            if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&status) {
                return job;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {id} did not finish: {r}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GETs a path of the server; returns the status and body.
    pub async fn get(&self, token: Option<&str>, path: &str) -> (u16, String) {
        let mut req = self.http.get(format!("http://{}{path}", self.addr()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// Runs `q` as `token` and returns its `data`, failing the test on any error.
pub async fn ok(s: &TestServer, token: &str, q: &str, vars: Value) -> Value {
    let r = s.gql(Some(token), q, vars).await;
    assert!(r["errors"].is_null(), "{q}: {r}");
    r["data"].clone()
}

/// Creates an account as `token`; its id.
pub async fn account(s: &TestServer, token: &str, input: Value) -> String {
    let d = ok(
        s,
        token,
        "mutation($i:CreateAccountInput!){ createAccount(input:$i) { id } }",
        json!({"i": input}),
    )
    .await;
    d["createAccount"]["id"].as_str().unwrap().to_owned()
}

/// Creates a contact as `token`; its id.
pub async fn contact(s: &TestServer, token: &str, input: Value) -> String {
    let d = ok(
        s,
        token,
        "mutation($i:CreateContactInput!){ createContact(input:$i) { id } }",
        json!({"i": input}),
    )
    .await;
    d["createContact"]["id"].as_str().unwrap().to_owned()
}

/// The test client: like a browser, it drops an idle pooled connection
/// before the server's header-read timeout (10 s) closes it, so a request
/// never races the server's close of a kept-alive connection.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// The server's count of SQL statements started so far (`/metrics`).
pub async fn statements(s: &TestServer) -> u64 {
    let m = s
        .http
        .get(format!("http://{}/metrics", s.addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    m.lines()
        .find_map(|l| l.strip_prefix("crm_db_statements_started "))
        .unwrap_or_else(|| panic!("no statement counter in {m}"))
        .trim()
        .parse()
        .unwrap()
}
