//! Outgoing webhooks against a real local HTTP receiver; every signature is
//! checked with the `standardwebhooks` package (an independent
//! implementation of the specification, run by tests/python).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    at: Instant,
    path: String,
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Inbox {
    got: Vec<Got>,
    /// Answers to give first (status, Retry-After); then 200.
    plan: VecDeque<(u16, Option<u64>)>,
    /// Answer after the plan (default 200).
    then: Option<u16>,
}

/// A local webhook receiver on a real socket.
struct Receiver {
    addr: SocketAddr,
    inbox: Arc<Mutex<Inbox>>,
    /// Dropping the receiver stops it.
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut inbox = inbox.lock().unwrap();
    inbox.got.push(Got {
        at: Instant::now(),
        path: uri.path().to_owned(),
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        body,
    });
    let (status, retry) = inbox
        .plan
        .pop_front()
        .unwrap_or((inbox.then.unwrap_or(200), None));
    let mut r = axum::response::IntoResponse::into_response((
        StatusCode::from_u16(status).unwrap(),
        "receiver says hello",
    ));
    if let Some(s) = retry {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

impl Receiver {
    async fn start(port: u16) -> Receiver {
        let inbox: Arc<Mutex<Inbox>> = Arc::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(inbox.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Receiver {
            addr,
            inbox,
            _stop: stop,
        }
    }

    /// A receiver speaking HTTPS only, with the certificate and key of
    /// `tls` (PEM files).
    async fn start_tls(tls: &TestPki) -> Receiver {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.leaf)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&tls.leaf_key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let inbox: Arc<Mutex<Inbox>> = Arc::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(inbox.clone());
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    c = listener.accept() => c.unwrap(),
                    _ = &mut stopped => return,
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that refuses our certificate ends here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(tls),
                            hyper_util::service::TowerToHyperService::new(app),
                        )
                        .await;
                });
            }
        });
        Receiver {
            addr,
            inbox,
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn got(&self) -> Vec<Got> {
        self.inbox.lock().unwrap().got.clone()
    }

    fn plan(&self, answers: &[(u16, Option<u64>)]) {
        self.inbox
            .lock()
            .unwrap()
            .plan
            .extend(answers.iter().copied());
    }

    /// Waits until `n` requests came (at most 60 s).
    async fn wait(&self, n: usize) -> Vec<Got> {
        wait_for(&self.inbox, n).await
    }
}

async fn wait_for(inbox: &Arc<Mutex<Inbox>>, n: usize) -> Vec<Got> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = inbox.lock().unwrap().got.clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} requests arrived: {got:#?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Verifies each (secret, request) with the `standardwebhooks` package;
/// returns, per case, the parsed body or the error.
fn verify(cases: &[(&str, &Got)]) -> Vec<Result<Value, String>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let python = format!("{root}/tests/python/.venv/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "run tests/run (it creates tests/python/.venv with standardwebhooks)"
    );
    let input: Vec<Value> = cases
        .iter()
        .map(|(secret, g)| {
            json!({"secret": secret, "body": g.body, "headers": {
                "webhook-id": g.id, "webhook-timestamp": g.timestamp, "webhook-signature": g.signature}})
        })
        .collect();
    let file = std::env::temp_dir().join(format!("wh_{}.json", uuid::Uuid::now_v7().simple()));
    std::fs::write(&file, Value::from(input).to_string()).unwrap();
    let out = std::process::Command::new(python)
        .arg(format!("{root}/tests/python/verify_webhooks.py"))
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|r| match r.get("ok") {
            Some(ok) => Ok(ok.clone()),
            None => Err(r["error"].to_string()),
        })
        .collect()
}

const CREATE: &str = "mutation($i:CreateWebhookEndpointInput!){ createWebhookEndpoint(input:$i) { secret endpoint { id version status cursor topics } } }";

/// Creates an endpoint as `token`; (id, secret).
async fn endpoint(s: &TestServer, token: &str, url: &str, topics: &[&str]) -> (String, String) {
    let d = ok(
        s,
        token,
        CREATE,
        json!({"i": {"url": url, "topics": topics}}),
    )
    .await;
    let e = &d["createWebhookEndpoint"];
    (
        e["endpoint"]["id"].as_str().unwrap().to_owned(),
        e["secret"].as_str().unwrap().to_owned(),
    )
}

const ALLOW: (&str, &str) = ("webhook-allow-hosts", "127.0.0.1");

/// A test certificate authority and a server certificate it issued for
/// `localhost` only, made with the `openssl` command.
struct TestPki {
    dir: std::path::PathBuf,
    ca: std::path::PathBuf,
    leaf: std::path::PathBuf,
    leaf_key: std::path::PathBuf,
}

impl TestPki {
    fn new() -> TestPki {
        let dir = std::env::temp_dir().join(format!("pki_{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = |f: &str| dir.join(f);
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("the openssl command (tests/run installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509", "-days", "2", "-subj", "/CN=CRM Test CA"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat());
        run(&[
            &["req", "-subj", "/CN=localhost"][..],
            &ec,
            &["-keyout", "leaf.key", "-out", "leaf.csr"],
        ]
        .concat());
        std::fs::write(
            p("leaf.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ]);
        TestPki {
            ca: p("ca.pem"),
            leaf: p("leaf.pem"),
            leaf_key: p("leaf.key"),
            dir,
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn create_team(s: &TestServer, admin: &str, name: &str) -> String {
    let d = ok(
        s,
        admin,
        "mutation($n:String!){ createTeam(input:{name:$n}) { id } }",
        json!({"n": name}),
    )
    .await;
    d["createTeam"]["id"].as_str().unwrap().to_owned()
}

fn names(got: &[Got]) -> Vec<String> {
    got.iter()
        .map(|g| {
            g.json()["data"]["after"]["name"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

async fn endpoint_state(s: &TestServer, token: &str, id: &str) -> Value {
    ok(
        s,
        token,
        "query($id:ID!){ webhookEndpoint(id:$id) { status statusReason active version cursor } }",
        json!({"id": id}),
    )
    .await["webhookEndpoint"]
        .clone()
}

both!(
    webhook_endpoints_are_managed_with_typed_errors,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        s.create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        s.create_user(&admin, "rep2@test.example", &["sales_rep"])
            .await;
        s.create_user(&admin, "it@test.example", &["it_admin"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        let rep2 = s.login("rep2@test.example", "user-password-1").await;
        let it = s.login("it@test.example", "user-password-1").await;
        // Private targets are refused without the allowlist, and bad topics.
        for (url, topics, field) in [
            ("http://127.0.0.1:9/hook", json!(["*"]), "url"),
            ("http://169.254.169.254/latest", json!(["*"]), "url"),
            ("http://10.0.0.1/hook", json!(["*"]), "url"),
            ("ftp://example.com/", json!(["*"]), "url"),
            ("http://example.com/", json!([]), "topics"),
            ("http://example.com/", json!(["a b"]), "topics"),
        ] {
            let r = s
                .gql(
                    Some(&rep),
                    CREATE,
                    json!({"i": {"url": url, "topics": topics}}),
                )
                .await;
            assert_eq!(code(&r), "VALIDATION", "{url}: {r}");
            assert_eq!(
                r["errors"][0]["extensions"]["fields"][0]["field"], field,
                "{r}"
            );
        }
        assert_eq!(s.db.count("webhook_endpoints").await, 0);
        // it_admin may not use webhooks at all.
        let r = s
            .gql(
                Some(&it),
                CREATE,
                json!({"i": {"url": "http://example.com/", "topics": ["*"]}}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        let (id, secret) = endpoint(&s, &rep, "http://example.com/hook", &["account.*"]).await;
        assert!(secret.starts_with("whsec_"), "{secret}");
        // The secret is stored to sign with, but never shown again.
        let r = s
            .gql(
                Some(&rep),
                "query($id:ID!){ webhookEndpoint(id:$id) { secret } }",
                json!({"id": id}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        // Another rep sees nothing of it and cannot change it.
        let list = ok(&s, &rep2, "{ webhookEndpoints { id } }", json!({})).await;
        assert_eq!(list["webhookEndpoints"], json!([]));
        let upd = "mutation($i:UpdateWebhookEndpointInput!){ updateWebhookEndpoint(input:$i) { version topics fields active } }";
        let r = s
            .gql(
                Some(&rep2),
                upd,
                json!({"i": {"id": id, "version": 1, "active": false}}),
            )
            .await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
        let d = ok(&s, &rep, upd, json!({"i": {"id": id, "version": 1, "topics": ["account.updated"], "fields": ["name"]}})).await;
        assert_eq!(d["updateWebhookEndpoint"]["version"], 2);
        assert_eq!(d["updateWebhookEndpoint"]["fields"], json!(["name"]));
        // A stale version is a CONFLICT and changes nothing.
        let r = s
            .gql(
                Some(&rep),
                upd,
                json!({"i": {"id": id, "version": 1, "active": false}}),
            )
            .await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        assert_eq!(endpoint_state(&s, &rep, &id).await["active"], true);
        // Admins see every endpoint; the audit log has the changes, no secret.
        let list = ok(&s, &admin, "{ webhookEndpoints { id } }", json!({})).await;
        assert_eq!(list["webhookEndpoints"][0]["id"], id.as_str());
        let audit = ok(
        &s,
        &admin,
        "query($id:ID!){ auditLog(filter:{entityId:$id}) { edges { node { action changes { field } } } } }",
        json!({"id": id}),
    )
    .await;
        assert!(!audit.to_string().contains("whsec_"), "{audit}");
        assert_eq!(
            audit["auditLog"]["edges"].as_array().unwrap().len(),
            2,
            "{audit}"
        );
        let d = ok(
            &s,
            &rep,
            "mutation($id:ID!){ deleteWebhookEndpoint(id:$id) { id } }",
            json!({"id": id}),
        )
        .await;
        assert_eq!(d["deleteWebhookEndpoint"]["id"], id.as_str());
        assert_eq!(s.db.count("webhook_endpoints").await, 0);
    }
);

both!(
    webhooks_are_signed_per_standard_webhooks_also_during_rotation,
    |b| async move {
        let s = server!(b, &[ALLOW]);
        let admin = s.admin().await;
        let rx = Receiver::start(0).await;
        let (id, old) = endpoint(&s, &admin, &rx.url("/in"), &["team.*"]).await;
        let team = create_team(&s, &admin, "One").await;
        ok(
            &s,
            &admin,
            "mutation($i:UpdateTeamInput!){ updateTeam(input:$i) { id } }",
            json!({"i": {"id": team, "version": 1, "name": "Uno"}}),
        )
        .await;
        let got = rx.wait(2).await;
        let first = got[0].json();
        assert_eq!(first["type"], "team.created", "{first}");
        assert_eq!(first["data"]["entityId"], team.as_str());
        assert_eq!(first["data"]["after"]["name"], "One");
        assert!(
            first["data"]["cursor"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
                > 0
        );
        assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
        let second = got[1].json();
        assert_eq!(second["type"], "team.updated");
        assert_eq!(second["data"]["before"], json!({"name": "One"}));
        assert_eq!(second["data"]["after"], json!({"name": "Uno"}));
        assert_eq!(got[0].path, "/in");
        // Rotation: for the overlap, both secrets sign; afterwards only the new.
        let d = ok(
        &s,
        &admin,
        "mutation($id:ID!){ rotateWebhookSecret(id:$id, overlapSecs: 3600) { secret endpoint { previousSecretExpiresAt } } }",
        json!({"id": id}),
    )
    .await;
        let new = d["rotateWebhookSecret"]["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!d["rotateWebhookSecret"]["endpoint"]["previousSecretExpiresAt"].is_null());
        create_team(&s, &admin, "Two").await;
        let during = rx.wait(3).await[2].clone();
        assert_eq!(during.signature.split(' ').count(), 2, "{during:?}");
        let d = ok(
            &s,
            &admin,
            "mutation($id:ID!){ rotateWebhookSecret(id:$id, overlapSecs: 0) { secret } }",
            json!({"id": id}),
        )
        .await;
        let third = d["rotateWebhookSecret"]["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let newest = {
            let d = ok(
                &s,
                &admin,
                "mutation($id:ID!){ pingWebhookEndpoint(id:$id) { id kind status } }",
                json!({"id": id}),
            )
            .await;
            assert_eq!(d["pingWebhookEndpoint"]["kind"], "webhook.ping");
            rx.wait(4).await[3].clone()
        };
        assert_eq!(newest.json()["type"], "webhook.ping");
        let results = verify(&[
            (&old, &got[0]),
            (&old, &got[1]),
            (&old, &during),
            (&new, &during),
            (&new, &got[0]),
            (&old, &newest),
            (&new, &newest),
            (&third, &newest),
        ]);
        assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
        assert!(
            results[2].is_ok() && results[3].is_ok(),
            "both secrets verify during the overlap: {results:?}"
        );
        assert!(
            results[4].is_err(),
            "the new secret did not sign before the rotation: {results:?}"
        );
        // After the second rotation (no overlap) neither earlier secret verifies.
        assert!(results[5].is_err() && results[6].is_err(), "{results:?}");
        assert!(results[7].is_ok(), "{results:?}");
        assert_eq!(newest.signature.split(' ').count(), 1);
        // Ids are unique per message; the delivery log has them.
        let ids: std::collections::HashSet<_> = rx.got().iter().map(|g| g.id.clone()).collect();
        assert_eq!(ids.len(), 4);
        let log = ok(
        &s,
        &admin,
        "query($id:ID!){ webhookDeliveries(endpointId:$id) { messageId kind status attempts { statusCode succeeded latencyMs responseExcerpt } } }",
        json!({"id": id}),
    )
    .await;
        let log = log["webhookDeliveries"].as_array().unwrap().clone();
        assert_eq!(log.len(), 4, "{log:?}");
        assert_eq!(log[0]["kind"], "webhook.ping");
        assert!(log.iter().all(|d| d["status"] == "SUCCEEDED"), "{log:?}");
        assert_eq!(log[3]["attempts"][0]["statusCode"], 200);
        assert_eq!(
            log[3]["attempts"][0]["responseExcerpt"],
            "receiver says hello"
        );
        assert_eq!(log[3]["messageId"], got[0].id.as_str());
    }
);

both!(
    webhook_retries_back_off_then_deliver_later_events_in_order,
    |b| async move {
        let s = server!(
            b,
            &[ALLOW, ("webhook-retry-schedule", "300ms,600ms,1200ms,10s")]
        );
        let admin = s.admin().await;
        let rx = Receiver::start(0).await;
        rx.plan(&[(500, None), (502, None), (500, None)]);
        let (id, secret) = endpoint(&s, &admin, &rx.url("/"), &["team.created"]).await;
        for n in ["t1", "t2", "t3"] {
            create_team(&s, &admin, n).await;
        }
        let got = rx.wait(6).await;
        assert_eq!(names(&got), ["t1", "t1", "t1", "t1", "t2", "t3"]);
        // The same message id on every attempt; gaps grow.
        assert!(got[..4].iter().all(|g| g.id == got[0].id));
        assert_ne!(got[4].id, got[0].id);
        let gaps: Vec<Duration> = got[..4].windows(2).map(|w| w[1].at - w[0].at).collect();
        assert!(gaps[0] >= Duration::from_millis(250), "{gaps:?}");
        assert!(
            gaps[1] > gaps[0] && gaps[2] > gaps[1],
            "gaps must grow: {gaps:?}"
        );
        let cases: Vec<(&str, &Got)> = got.iter().map(|g| (secret.as_str(), g)).collect();
        assert!(verify(&cases).iter().all(Result::is_ok));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(rx.got().len(), 6, "nothing twice");
        let log = ok(
        &s,
        &admin,
        "query($id:ID!){ webhookDeliveries(endpointId:$id, status: SUCCEEDED) { attemptCount attempts { statusCode succeeded } } }",
        json!({"id": id}),
    )
    .await;
        let oldest = log["webhookDeliveries"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(oldest["attemptCount"], 4, "{oldest}");
        let codes: Vec<Value> = oldest["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["statusCode"].clone())
            .collect();
        assert_eq!(codes, [json!(500), json!(502), json!(500), json!(200)]);
    }
);

both!(
    webhook_gone_disables_and_the_last_failure_marks_failing,
    |b| async move {
        let s = server!(b, &[ALLOW, ("webhook-retry-schedule", "100ms,100ms")]);
        let admin = s.admin().await;
        let gone = Receiver::start(0).await;
        gone.inbox.lock().unwrap().then = Some(410);
        let failing = Receiver::start(0).await;
        failing.inbox.lock().unwrap().then = Some(500);
        // 429 with Retry-After is honoured: the next attempt waits that long.
        failing.plan(&[(429, Some(1))]);
        let (gone_id, _) = endpoint(&s, &admin, &gone.url("/"), &["team.created"]).await;
        let (fail_id, _) = endpoint(&s, &admin, &failing.url("/"), &["team.created"]).await;
        create_team(&s, &admin, "a").await;
        let got = failing.wait(3).await;
        assert!(
            got[1].at - got[0].at >= Duration::from_millis(950),
            "Retry-After ignored"
        );
        gone.wait(1).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while endpoint_state(&s, &admin, &fail_id).await["status"] != "FAILING"
            || endpoint_state(&s, &admin, &gone_id).await["status"] != "DISABLED"
        {
            assert!(Instant::now() < deadline, "states not reached");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let st = endpoint_state(&s, &admin, &fail_id).await;
        assert!(
            st["statusReason"]
                .as_str()
                .unwrap()
                .contains("failed 3 times"),
            "{st}"
        );
        // Admins get an event; later events wait rather than skip.
        let n = s
        .db
        .scalar("SELECT COUNT(*) AS n FROM outbox WHERE kind IN ('webhook_endpoint.failing', 'webhook_endpoint.disabled')")
        .await;
        assert_eq!(n, 2);
        create_team(&s, &admin, "b").await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(gone.got().len(), 1);
        assert_eq!(failing.got().len(), 3);
        // Redelivering the failed delivery resumes, then the waiting one follows.
        failing.inbox.lock().unwrap().then = Some(204);
        let log = ok(
            &s,
            &admin,
            "query($id:ID!){ webhookDeliveries(endpointId:$id, status: FAILED) { id messageId } }",
            json!({"id": fail_id}),
        )
        .await;
        let failed = log["webhookDeliveries"][0].clone();
        let d = ok(
            &s,
            &admin,
            "mutation($id:ID!){ redeliver(deliveryId:$id) { messageId status } }",
            json!({"id": failed["id"]}),
        )
        .await;
        assert_eq!(d["redeliver"]["messageId"], failed["messageId"]);
        let got = failing.wait(5).await;
        assert_eq!(names(&got[3..]), ["a", "b"]);
        assert_eq!(
            got[3].id, got[0].id,
            "the same webhook-id as the failed attempts"
        );
        assert_eq!(
            endpoint_state(&s, &admin, &fail_id).await["status"],
            "ACTIVE"
        );
    }
);

both!(
    webhook_receiver_down_across_a_restart_gets_every_event_once_in_order,
    |b| async move {
        let overrides = [
            ALLOW,
            (
                "webhook-retry-schedule",
                "200ms,400ms,800ms,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
            ),
            ("webhook-timeout-secs", "2"),
        ];
        let s = server!(b, &overrides);
        let admin = s.admin().await;
        // A port with nobody listening (yet).
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (_, secret) = endpoint(
            &s,
            &admin,
            &format!("http://127.0.0.1:{port}/"),
            &["team.created"],
        )
        .await;
        for i in 0..5 {
            create_team(&s, &admin, &format!("before-{i}")).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Restart the service while the receiver is down.
        let _ = s.running.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(20), s.running.done).await;
        let second = crm_gateway::server::start(config(&s.db, &overrides))
            .await
            .unwrap();
        let rx = Receiver::start(port).await;
        let admin = {
            let r = gql_at(
                &s.http,
                second.addr,
                None,
                "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}",
                json!({"e": ADMIN_EMAIL, "p": ADMIN_PASSWORD}),
            )
            .await;
            r["data"]["login"]["token"].as_str().unwrap().to_owned()
        };
        for i in 0..5 {
            let r = gql_at(
                &s.http,
                second.addr,
                Some(&admin),
                "mutation($n:String!){ createTeam(input:{name:$n}) { id } }",
                json!({"n": format!("after-{i}")}),
            )
            .await;
            assert!(r["errors"].is_null(), "{r}");
        }
        let got = rx.wait(10).await;
        let expected: Vec<String> = (0..5)
            .map(|i| format!("before-{i}"))
            .chain((0..5).map(|i| format!("after-{i}")))
            .collect();
        assert_eq!(names(&got), expected);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(rx.got().len(), 10, "none twice");
        let cases: Vec<(&str, &Got)> = got.iter().map(|g| (secret.as_str(), g)).collect();
        assert!(verify(&cases).iter().all(Result::is_ok));
        let _ = second.shutdown.send(true);
    }
);

both!(
    webhooks_follow_the_endpoint_principal_scope_and_field_rules,
    |b| async move {
        let s = server!(b, &[ALLOW]);
        let admin = s.admin().await;
        s.create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        s.create_user(&admin, "rep2@test.example", &["sales_rep"])
            .await;
        s.create_user(&admin, "mk@test.example", &["marketing"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        let rep2 = s.login("rep2@test.example", "user-password-1").await;
        let mk = s.login("mk@test.example", "user-password-1").await;
        let rx = Receiver::start(0).await;
        endpoint(&s, &rep, &rx.url("/rep"), &["customers"]).await;
        endpoint(&s, &mk, &rx.url("/mk"), &["account.*"]).await;
        let other = account(
            &s,
            &rep2,
            json!({"name": "Not yours", "creditLimit": {"amountMinor": 5, "currency": "EUR"}}),
        )
        .await;
        let mine = account(
            &s,
            &rep,
            json!({"name": "Yours", "creditLimit": {"amountMinor": 9, "currency": "EUR"}}),
        )
        .await;
        let upd = "mutation($i:UpdateAccountInput!){ updateAccount(input:$i) { version } }";
        // Only the credit limit: marketing may not read it, so gets nothing.
        ok(&s, &rep, upd, json!({"i": {"id": mine, "version": 1, "creditLimit": {"amountMinor": 10, "currency": "EUR"}}})).await;
        ok(&s, &rep, upd, json!({"i": {"id": mine, "version": 2, "name": "Yours truly", "creditLimit": {"amountMinor": 11, "currency": "EUR"}}})).await;
        // rep: its account's create and both updates; marketing: both creates
        // and the second update, without credit limits.
        let got = rx.wait(6).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got_all = rx.got();
        assert_eq!(got_all.len(), 6, "{got:#?}");
        let rep_got: Vec<Value> = got_all
            .iter()
            .filter(|g| g.path == "/rep")
            .map(Got::json)
            .collect();
        let mk_got: Vec<Value> = got_all
            .iter()
            .filter(|g| g.path == "/mk")
            .map(Got::json)
            .collect();
        assert_eq!(rep_got.len(), 3, "{rep_got:#?}");
        assert!(
            rep_got
                .iter()
                .all(|e| e["data"]["entityId"] == mine.as_str()),
            "another rep's record leaked: {rep_got:#?}"
        );
        assert_eq!(
            rep_got[1]["data"]["after"]["creditLimit"]["amountMinor"],
            10
        );
        assert_eq!(
            rep_got[1]["data"]["before"]["creditLimit"]["amountMinor"],
            9
        );
        let kinds: Vec<&str> = mk_got.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["account.created", "account.created", "account.updated"]
        );
        assert_eq!(mk_got[0]["data"]["entityId"], other.as_str());
        let text = Value::from(mk_got.clone()).to_string();
        assert!(
            !text.contains("creditLimit"),
            "credit limit leaked to marketing: {text}"
        );
        assert_eq!(mk_got[2]["data"]["after"], json!({"name": "Yours truly"}));
        assert_eq!(mk_got[2]["data"]["before"], json!({"name": "Yours"}));
    }
);

both!(
    subscriptions_skip_updates_whose_changed_fields_are_all_hidden,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        s.create_user(&admin, "sup@test.example", &["support"])
            .await;
        let sup = s.login("sup@test.example", "user-password-1").await;
        let id = account(
            &s,
            &admin,
            json!({"name": "Acme", "creditLimit": {"amountMinor": 1, "currency": "EUR"}}),
        )
        .await;
        let head = s.db.head().await;
        let mut ws = Ws::init(s.addr(), &sup).await;
        ws.subscribe(
            "1",
            "subscription($a:String){ customerEvents(after:$a) { kind entityId payload } }",
            json!({"a": head}),
        )
        .await;
        let upd = "mutation($i:UpdateAccountInput!){ updateAccount(input:$i) { version } }";
        ok(&s, &admin, upd, json!({"i": {"id": id, "version": 1, "creditLimit": {"amountMinor": 2, "currency": "EUR"}}})).await;
        ok(
            &s,
            &admin,
            upd,
            json!({"i": {"id": id, "version": 2, "name": "Acme Ltd"}}),
        )
        .await;
        let m = ws.recv().await.unwrap();
        let e = &m["payload"]["data"]["customerEvents"];
        // The first event support sees is the name change: the credit-limit-only
        // update is not sent at all (not even as `changed: {}`).
        assert_eq!(e["payload"]["changed"], json!({"name": "Acme Ltd"}), "{m}");
        assert_eq!(e["payload"]["before"], json!({"name": "Acme"}), "{m}");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_deliver_each_webhook_once_postgres() {
    const N: usize = 500;
    let overrides = [ALLOW, ("webhook-retry-schedule", "200ms,400ms")];
    let s = TestServer::start(Backend::Postgres, &overrides).await;
    let replica = s.replica(&overrides).await;
    let admin = s.admin().await;
    let rx = Receiver::start(0).await;
    endpoint(&s, &admin, &rx.url("/"), &["team.created"]).await;
    // Writes through both replicas.
    for i in 0..N {
        let addr = if i % 2 == 0 { s.addr() } else { replica.addr };
        let r = gql_at(
            &s.http,
            addr,
            Some(&admin),
            "mutation($n:String!){ createTeam(input:{name:$n}) { id } }",
            json!({"n": format!("team-{i:04}")}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
    }
    let got = rx.wait(N).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got_all = rx.got();
    assert_eq!(got_all.len(), N, "each event once");
    let expected: Vec<String> = (0..N).map(|i| format!("team-{i:04}")).collect();
    assert_eq!(names(&got), expected);
    let _ = replica.shutdown.send(true);
}

/// Runs the real `crm` binary against the test database.
fn crm(s: &TestServer, args: &[&str]) -> String {
    let dir = std::env::temp_dir().join(format!("crm_cli_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(args)
        .env("DATABASE_URL", &s.db.url)
        .env("CRM_DATA_DIR", &dir)
        .env("CRM_TOKEN_SECRET", TOKEN_SECRET)
        .env(
            "CRM_POLICY_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"),
        )
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "crm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

both!(crm_webhook_cli_lists_and_redelivers, |b| async move {
    let s = server!(b, &[ALLOW, ("webhook-retry-schedule", "100ms")]);
    let admin = s.admin().await;
    let rx = Receiver::start(0).await;
    rx.plan(&[(500, None), (500, None)]);
    let (id, _) = endpoint(&s, &admin, &rx.url("/"), &["team.created"]).await;
    create_team(&s, &admin, "x").await;
    rx.wait(2).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while endpoint_state(&s, &admin, &id).await["status"] != "FAILING" {
        assert!(Instant::now() < deadline, "not failing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = crm(&s, &["webhook", "list"]);
    assert!(list.contains(&id) && list.contains("failing"), "{list}");
    let log = crm(&s, &["webhook", "deliveries", &id, "--status", "failed"]);
    assert!(
        log.contains("team.created") && log.contains("HTTP 500"),
        "{log}"
    );
    let delivery = log
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .next()
                .filter(|w| w.starts_with("whd_"))
        })
        .unwrap()
        .to_owned();
    let out = crm(&s, &["webhook", "redeliver", &delivery]);
    assert!(out.contains("queued"), "{out}");
    // The running server picks it up: the same message, now accepted.
    let got = rx.wait(3).await;
    assert_eq!(got[2].id, got[0].id);
    assert_eq!(names(&got), ["x", "x", "x"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while endpoint_state(&s, &admin, &id).await["status"] != "ACTIVE" {
        assert!(Instant::now() < deadline, "not resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
});

both!(
    https_targets_are_reached_only_with_a_valid_certificate_for_their_name,
    |b| async move {
        let pki = TestPki::new();
        let ca = pki.ca.to_str().unwrap().to_owned();
        let s = server!(
            b,
            &[
                ("webhook-allow-hosts", "localhost,127.0.0.1"),
                ("webhook-ca-file", ca.as_str()),
                ("webhook-retry-schedule", "60s"),
            ]
        );
        let admin = s.admin().await;
        let rx = Receiver::start_tls(&pki).await;
        let port = rx.addr.port();
        let (good, secret) = endpoint(
            &s,
            &admin,
            &format!("https://localhost:{port}/tls"),
            &["team.*"],
        )
        .await;
        // The certificate names `localhost`, not the address.
        let (wrong_name, _) = endpoint(
            &s,
            &admin,
            &format!("https://127.0.0.1:{port}/by-address"),
            &["team.*"],
        )
        .await;
        let team = create_team(&s, &admin, "Secure").await;
        let got = rx.wait(1).await;
        assert_eq!(got[0].path, "/tls");
        assert_eq!(got[0].json()["data"]["entityId"], team.as_str());
        assert!(verify(&[(&secret, &got[0])])[0].is_ok());
        let log = |id: String| {
            let s = &s;
            let admin = admin.clone();
            async move {
                let d = ok(
                    s,
                    &admin,
                    "query($id:ID!){ webhookDeliveries(endpointId:$id) { status attempts { statusCode succeeded error } } }",
                    json!({"id": id}),
                )
                .await;
                d["webhookDeliveries"].as_array().unwrap().clone()
            }
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let failed = loop {
            let l = log(wrong_name.clone()).await;
            if l.first()
                .is_some_and(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
            {
                break l;
            }
            assert!(Instant::now() < deadline, "no attempt logged: {l:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let attempt = &failed[0]["attempts"][0];
        assert_eq!(attempt["succeeded"], false, "{failed:?}");
        assert!(attempt["statusCode"].is_null(), "{failed:?}");
        let error = attempt["error"].as_str().unwrap();
        assert!(
            error.contains("TLS handshake") && error.contains("certificate"),
            "{error}"
        );
        assert_eq!(
            rx.got().len(),
            1,
            "nothing reached the receiver without a valid name"
        );
        let l = log(good).await;
        assert_eq!(l[0]["status"], "SUCCEEDED", "{l:?}");
        assert_eq!(l[0]["attempts"][0]["statusCode"], 200);
    }
);

both!(
    an_api_key_manages_only_the_endpoints_it_created,
    |b| async move {
        let s = server!(b, &[ALLOW]);
        let admin = s.admin().await;
        s.create_user(&admin, "rep@test.example", &["sales_rep"])
            .await;
        let rep = s.login("rep@test.example", "user-password-1").await;
        let mut keys = Vec::new();
        for name in ["erp", "shop"] {
            let d = ok(
                &s,
                &admin,
                "mutation($n:String!){ createApiKey(input: {name: $n, role: \"integrator\"}) { key apiKey { id } } }",
                json!({"n": name}),
            )
            .await;
            keys.push((
                d["createApiKey"]["key"].as_str().unwrap().to_owned(),
                d["createApiKey"]["apiKey"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ));
        }
        let ((erp, erp_id), (shop, _)) = (keys[0].clone(), keys[1].clone());
        let rx = Receiver::start(0).await;
        let (mine, _) = endpoint(&s, &erp, &rx.url("/erp"), &["team.*"]).await;
        let (reps, _) = endpoint(&s, &rep, &rx.url("/rep"), &["team.*"]).await;
        let list = |token: String| {
            let s = &s;
            async move {
                let d = ok(s, &token, "{ webhookEndpoints { id ownerId } }", json!({})).await;
                d["webhookEndpoints"].as_array().unwrap().clone()
            }
        };
        assert_eq!(
            list(erp.clone()).await,
            vec![json!({"id": mine, "ownerId": erp_id})]
        );
        assert_eq!(list(shop.clone()).await, Vec::<Value>::new());
        assert_eq!(list(admin.clone()).await.len(), 2);
        // Another principal's endpoint does not exist for a key: it can
        // neither read, redirect, replay nor delete it.
        for (q, vars) in [
            (
                "query($id:ID!){ webhookEndpoint(id:$id) { id } }",
                json!({"id": reps}),
            ),
            (
                "query($id:ID!){ webhookDeliveries(endpointId:$id) { id } }",
                json!({"id": reps}),
            ),
            (
                "mutation($i:UpdateWebhookEndpointInput!){ updateWebhookEndpoint(input:$i) { id } }",
                json!({"i": {"id": reps, "version": 1, "url": rx.url("/stolen")}}),
            ),
            (
                "mutation($id:ID!){ replayWebhook(endpointId:$id, fromCursor: \"0\") { id } }",
                json!({"id": reps}),
            ),
            (
                "mutation($id:ID!){ deleteWebhookEndpoint(id:$id) { id } }",
                json!({"id": reps}),
            ),
            (
                "mutation($id:ID!){ deleteWebhookEndpoint(id:$id) { id } }",
                json!({"id": mine}),
            ),
        ] {
            let token = if vars["id"] == mine.as_str() {
                &shop
            } else {
                &erp
            };
            let r = s.gql(Some(token), q, vars).await;
            assert_eq!(code(&r), "NOT_FOUND", "{q}: {r}");
        }
        let r = ok(
            &s,
            &admin,
            "query($id:ID!){ webhookEndpoint(id:$id) { url version } }",
            json!({"id": reps}),
        )
        .await;
        assert_eq!(
            r["webhookEndpoint"],
            json!({"url": rx.url("/rep"), "version": 1})
        );
        // Its own endpoint the key manages.
        let d = ok(
            &s,
            &erp,
            "mutation($i:UpdateWebhookEndpointInput!){ updateWebhookEndpoint(input:$i) { description version } }",
            json!({"i": {"id": mine, "version": 1, "description": "ERP sync"}}),
        )
        .await;
        assert_eq!(
            d["updateWebhookEndpoint"],
            json!({"description": "ERP sync", "version": 2})
        );
    }
);
