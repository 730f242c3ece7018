//! `crm backup` / `crm restore` through the real binary: a CRM moves SQLite
//! -> PostgreSQL -> SQLite record for record, restores refuse non-empty
//! targets and damaged files, a backup taken under load is one snapshot,
//! and `crm serve` keeps the newest N scheduled backups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const BIN: &str = env!("CARGO_BIN_EXE_crm");

/// Runs `crm` against `url`; returns (success, stdout, stderr).
async fn crm(url: &str, args: &[&str]) -> (bool, String, String) {
    let data = std::env::temp_dir().join(format!("crm_bk_{}", uuid::Uuid::now_v7().simple()));
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let out = tokio::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .env("CRM_DATA_DIR", &data)
        .env("CRM_POLICY_DIR", policies)
        .env("CRM_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("CRM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("CRM_TOKEN_SECRET", TOKEN_SECRET)
        .args(args)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&data);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `crm backup` of `url` into a new temporary file.
async fn backup(url: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("crm_bk_{}.jsonl", uuid::Uuid::now_v7().simple()));
    let (ok, out, err) = crm(url, &["backup", "--out", path.to_str().unwrap()]).await;
    assert!(ok, "backup failed: {out}{err}");
    path
}

/// A parsed backup: header, then per table its column list and row lines,
/// then the trailer.
struct Parsed {
    header: Value,
    tables: BTreeMap<String, (Value, Vec<String>)>,
    /// Every line after the header, verbatim.
    body: Vec<String>,
    trailer: Value,
}

fn parse(path: &Path) -> Parsed {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let body: Vec<String> = lines.map(str::to_owned).collect();
    let mut tables = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut trailer = Value::Null;
    for line in &body {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(name) = v["table"].as_str() {
            tables.insert(name.to_owned(), (v["columns"].clone(), Vec::new()));
            current = Some(name.to_owned());
        } else if v.is_array() {
            let t = current.as_ref().expect("row before table line");
            tables.get_mut(t).unwrap().1.push(line.clone());
        } else {
            trailer = v;
        }
    }
    Parsed {
        header,
        tables,
        body,
        trailer,
    }
}

impl Parsed {
    fn rows(&self, table: &str) -> Vec<Value> {
        self.tables[table]
            .1
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn column(&self, table: &str, column: &str) -> usize {
        self.tables[table]
            .0
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c == column)
            .unwrap_or_else(|| panic!("{table}.{column}"))
    }

    /// The trailer's counts equal the rows actually in the file.
    fn assert_complete(&self) {
        for (t, (_, rows)) in &self.tables {
            assert_eq!(
                self.trailer["tables"][t].as_u64(),
                Some(rows.len() as u64),
                "trailer count of {t}"
            );
        }
        assert_eq!(
            self.trailer["tables"].as_object().unwrap().len(),
            self.tables.len()
        );
    }
}

/// Starts a server on an existing test database.
async fn serve(db: &TestDb) -> crm_gateway::server::Running {
    crm_gateway::server::start(config(db, &[])).await.unwrap()
}

async fn stop(r: crm_gateway::server::Running) {
    r.shutdown.send(true).unwrap();
    r.done.await.unwrap().unwrap();
}

/// A few GraphQL writes, so the outbox and the audit log have rows that
/// came through the API (and a team hierarchy, for the self-reference).
async fn api_writes(addr: std::net::SocketAddr, tag: &str) {
    let http = reqwest::Client::new();
    let r = gql_at(
        &http,
        addr,
        None,
        "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}",
        json!({"e": ADMIN_EMAIL, "p": ADMIN_PASSWORD}),
    )
    .await;
    let token = r["data"]["login"]["token"].as_str().unwrap().to_owned();
    for i in 0..3 {
        let r = gql_at(
            &http,
            addr,
            Some(&token),
            "mutation($i:CreateAccountInput!){createAccount(input:$i){id}}",
            json!({"i": {"name": format!("Backup Test {i}"), "website": "https://example.com", "lifecycleStage": "ACTIVE"}}),
        )
        .await;
        assert!(r.get("errors").is_none(), "{r}");
    }
    let r = gql_at(
        &http,
        addr,
        Some(&token),
        "mutation($n:String!){createTag(input:{name:$n}){id}}",
        json!({"n": tag}),
    )
    .await;
    assert!(r.get("errors").is_none(), "{r}");
}

async fn max_seq(db: &TestDb) -> i64 {
    db.scalar("SELECT COALESCE(MAX(seq), 0) AS n FROM outbox")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sqlite_to_postgres_to_sqlite_keeps_every_record() {
    let pg = TestDb::new(Backend::Postgres).await;
    let src = TestDb::new(Backend::Sqlite).await;
    let (ok, out, err) = crm(
        &src.url,
        &[
            "demo",
            "--accounts",
            "20",
            "--contacts",
            "50",
            "--activities",
            "40",
            "--purchases",
            "10",
        ],
    )
    .await;
    assert!(ok, "demo failed: {out}{err}");
    let running = serve(&src).await;
    api_writes(running.addr, "Before").await;
    stop(running).await;

    let first = backup(&src.url).await;
    let (ok, out, err) = crm(&pg.url, &["restore", first.to_str().unwrap()]).await;
    assert!(ok, "restore into PostgreSQL failed: {out}{err}");
    assert!(out.contains("restored"), "{out}");
    let second = backup(&pg.url).await;

    let back = TestDb::new(Backend::Sqlite).await;
    let (ok, out, err) = crm(&back.url, &["restore", second.to_str().unwrap()]).await;
    assert!(ok, "restore into SQLite failed: {out}{err}");
    let third = backup(&back.url).await;

    let (a, b, c) = (parse(&first), parse(&second), parse(&third));
    assert_eq!(a.header["source"], "sqlite");
    assert_eq!(b.header["source"], "postgres");
    assert_eq!(a.header["migrations"], b.header["migrations"]);
    a.assert_complete();
    // Every table with data that matters made the trip.
    for t in [
        "users",
        "teams",
        "accounts",
        "contacts",
        "activities",
        "purchases",
        "outbox",
        "audit_log",
        "tags",
    ] {
        assert!(
            !a.tables[t].1.is_empty(),
            "{t} is empty in the first backup"
        );
    }
    assert_eq!(
        a.tables.keys().collect::<Vec<_>>(),
        c.tables.keys().collect::<Vec<_>>()
    );
    for (t, (cols, rows)) in &a.tables {
        assert_eq!(cols, &c.tables[t].0, "columns of {t}");
        assert_eq!(rows.len(), c.tables[t].1.len(), "rows of {t}");
        for (i, (x, y)) in rows.iter().zip(&c.tables[t].1).enumerate() {
            assert_eq!(
                x, y,
                "{t} row {i} differs after SQLite -> PostgreSQL -> SQLite"
            );
        }
        assert_eq!(
            rows, &b.tables[t].1,
            "{t} differs between the SQLite and PostgreSQL backups"
        );
    }
    assert_eq!(a.body, c.body, "the backups differ outside the header");

    // The restored PostgreSQL database serves: the admin signs in with the
    // restored password hash, and the next event continues the cursor.
    let restored_max = max_seq(&pg).await;
    let outbox_max = a
        .rows("outbox")
        .iter()
        .map(|r| r[a.column("outbox", "seq")].as_i64().unwrap())
        .max()
        .unwrap();
    assert_eq!(restored_max, outbox_max);
    let running = serve(&pg).await;
    api_writes(running.addr, "After").await;
    stop(running).await;
    let new_min = pg
        .scalar(&format!(
            "SELECT COALESCE(MIN(seq), 0) AS n FROM outbox WHERE seq > {restored_max}"
        ))
        .await;
    assert!(
        new_min > restored_max,
        "no new event after the restored cursor"
    );
    assert_eq!(
        pg.scalar(&format!(
            "SELECT COUNT(*) AS n FROM outbox WHERE seq <= {restored_max}"
        ))
        .await,
        a.tables["outbox"].1.len() as i64
    );
    let audit_max = a
        .rows("audit_log")
        .iter()
        .map(|r| r[a.column("audit_log", "id")].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(
        pg.scalar("SELECT MAX(id) AS n FROM audit_log").await > audit_max,
        "audit ids did not continue"
    );
    for f in [first, second, third] {
        let _ = std::fs::remove_file(f);
    }
}

both!(
    restore_refuses_a_non_empty_database_and_a_damaged_file,
    |b| async move {
        let s = server!(b);
        api_writes(s.addr(), "Tag").await;
        let file = backup(&s.db.url).await;
        let before = (
            s.db.count("accounts").await,
            s.db.count("outbox").await,
            s.db.count("users").await,
        );

        let (ok, _, err) = crm(&s.db.url, &["restore", file.to_str().unwrap()]).await;
        assert!(!ok, "restore into a non-empty database succeeded");
        assert!(err.contains("not empty"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "not a one-line error: {err}");
        let after = (
            s.db.count("accounts").await,
            s.db.count("outbox").await,
            s.db.count("users").await,
        );
        assert_eq!(before, after, "a refused restore changed the database");

        // A cut-off file (no trailer) is refused before the target is touched.
        let text = std::fs::read_to_string(&file).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.pop();
        let cut = file.with_extension("cut");
        std::fs::write(&cut, lines.join("\n") + "\n").unwrap();
        let fresh = TestDb::new(b).await;
        let (ok, _, err) = crm(&fresh.url, &["restore", cut.to_str().unwrap()]).await;
        assert!(!ok);
        assert!(err.contains("incomplete"), "{err}");

        // A trailer that disagrees with the rows is refused too.
        let mut trailer: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        trailer["tables"]["accounts"] = json!(999);
        let last = lines.len();
        let mut tampered: Vec<String> = text.lines().map(str::to_owned).collect();
        tampered[last] = trailer.to_string();
        std::fs::write(&cut, tampered.join("\n") + "\n").unwrap();
        let (ok, _, err) = crm(&fresh.url, &["restore", cut.to_str().unwrap()]).await;
        assert!(!ok);
        assert!(err.contains("accounts") && err.contains("999"), "{err}");

        // A backup from other migrations is refused.
        let mut other: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut header: Value = serde_json::from_str(&other[0]).unwrap();
        header["migrations"] = json!(["20261122000001"]);
        other[0] = header.to_string();
        std::fs::write(&cut, other.join("\n") + "\n").unwrap();
        let (ok, _, err) = crm(&fresh.url, &["restore", cut.to_str().unwrap()]).await;
        assert!(!ok);
        assert!(err.contains("migrations"), "{err}");

        // The intact file restores into that fresh database.
        let (ok, out, err) = crm(&fresh.url, &["restore", file.to_str().unwrap()]).await;
        assert!(ok, "{out}{err}");
        assert_eq!(fresh.count("accounts").await, before.0);
        let _ = std::fs::remove_file(file);
        let _ = std::fs::remove_file(cut);
    }
);

both!(
    a_backup_under_concurrent_writes_is_one_snapshot,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let stop_writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (http, addr, stop) = (s.http.clone(), s.addr(), stop_writing.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = gql_at(
                        &http,
                        addr,
                        Some(&admin),
                        "mutation($i:CreateAccountInput!){createAccount(input:$i){id}}",
                        json!({"i": {"name": format!("Concurrent {n}")}}),
                    )
                    .await;
                    assert!(r.get("errors").is_none(), "{r}");
                    n += 1;
                }
                n
            })
        };
        // Let some writes land, then back up three times while they continue.
        while s.db.count("accounts").await < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut files = Vec::new();
        for _ in 0..3 {
            files.push(backup(&s.db.url).await);
        }
        stop_writing.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.await.unwrap();
        assert!(written > 0);
        let mut seen = Vec::new();
        for f in &files {
            let p = parse(f);
            p.assert_complete();
            // Each account commits together with its event and audit entry:
            // in one snapshot the three always agree, although the outbox and
            // the audit log are read before the accounts table.
            let accounts = p.tables["accounts"].1.len();
            let kind = p.column("outbox", "entity_type");
            let events = p
                .rows("outbox")
                .iter()
                .filter(|r| r[kind] == "Account")
                .count();
            let et = p.column("audit_log", "entity_type");
            let audits = p
                .rows("audit_log")
                .iter()
                .filter(|r| r[et] == "Account")
                .count();
            assert_eq!(accounts, events, "accounts vs their events in one backup");
            assert!(
                audits >= accounts && (accounts == 0) == (audits == 0),
                "accounts {accounts} vs audit entries {audits}"
            );
            seen.push(accounts);
        }
        assert!(seen[0] >= 5, "{seen:?}");
        // The snapshot taken under load restores.
        let fresh = TestDb::new(b).await;
        let (ok, out, err) = crm(&fresh.url, &["restore", files[2].to_str().unwrap()]).await;
        assert!(ok, "{out}{err}");
        assert_eq!(fresh.count("accounts").await as usize, seen[2]);
        for f in files {
            let _ = std::fs::remove_file(f);
        }
    }
);

both!(
    scheduled_backups_are_written_and_only_the_newest_kept,
    |b| async move {
        let dir =
            std::env::temp_dir().join(format!("crm_bk_dir_{}", uuid::Uuid::now_v7().simple()));
        let dir_s = dir.display().to_string();
        let s = server!(
            b,
            &[
                ("backup-dir", &dir_s),
                ("backup-interval-secs", "1"),
                ("backup-keep", "2")
            ]
        );
        let complete = || -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .filter(|n| n.starts_with("crm-backup-") && n.ends_with(".jsonl"))
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        };
        let mut seen = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < 4 {
            assert!(
                Instant::now() < deadline,
                "only {} backups written: {seen:?}",
                seen.len()
            );
            seen.extend(complete());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s.running.shutdown.send(true).unwrap();
        // Pruning follows each rename at once; give a backup that was running
        // at shutdown a moment to finish.
        let deadline = Instant::now() + Duration::from_secs(10);
        while complete().len() > 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let kept = complete();
        assert_eq!(kept.len(), 2, "{kept:?}");
        let newest: Vec<&String> = seen.iter().rev().take(2).collect();
        assert!(
            kept.iter().all(|k| k >= newest[1]),
            "kept {kept:?}, not the newest of {seen:?}"
        );
        for k in &kept {
            let p = parse(&dir.join(k));
            p.assert_complete();
            assert_eq!(p.tables["users"].1.len(), 1, "the admin is in the backup");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
);
