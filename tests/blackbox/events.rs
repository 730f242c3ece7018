//! The outbox, the `events` subscription, resume and replicas.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const SUB: &str = "subscription($a:String,$t:[String!]){ events(after:$a, topics:$t) { cursor kind entityType entityId payload actor } }";

async fn next_events(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = ws
            .recv()
            .await
            .unwrap_or_else(|| panic!("socket ended after {} of {n} events", out.len()));
        assert_eq!(m["type"], "next", "{m}");
        out.push(m["payload"]["data"]["events"].clone());
    }
    out
}

async fn create_teams(s: &TestServer, admin: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = s
            .gql(
                Some(admin),
                "mutation($n:String!){ createTeam(input:{name:$n}) { id } }",
                json!({"n": format!("{prefix}-{i}")}),
            )
            .await;
        ids.push(
            r["data"]["createTeam"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned(),
        );
    }
    ids
}

both!(
    subscription_resumes_from_a_cursor_with_no_gap_or_duplicate,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let mut ws = Ws::init(s.addr(), &admin).await;
        // From the current end of the stream.
        ws.subscribe("1", SUB, json!({"a": s.db.head().await, "t": ["identity"]}))
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let first = create_teams(&s, &admin, "first", 4).await;
        let got = next_events(&mut ws, 4).await;
        let ids: Vec<&str> = got
            .iter()
            .map(|e| e["entityId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, first.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(got.iter().all(|e| e["kind"] == "team.created"));
        assert_eq!(got[0]["payload"]["changed"]["name"], "first-0");
        assert!(got[0]["actor"].as_str().unwrap().starts_with("user:usr_"));
        let last = got[3]["cursor"].as_str().unwrap().to_owned();
        ws.close().await;

        let second = create_teams(&s, &admin, "second", 3).await;
        let mut ws = Ws::init(s.addr(), &admin).await;
        ws.subscribe("1", SUB, json!({"a": last, "t": ["identity"]}))
            .await;
        let got = next_events(&mut ws, 3).await;
        let ids: Vec<&str> = got
            .iter()
            .map(|e| e["entityId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, second.iter().map(String::as_str).collect::<Vec<_>>());
        // Then it continues live, still in order, with nothing replayed twice.
        let third = create_teams(&s, &admin, "third", 2).await;
        let got = next_events(&mut ws, 2).await;
        let ids: Vec<&str> = got
            .iter()
            .map(|e| e["entityId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, third.iter().map(String::as_str).collect::<Vec<_>>());
        // Nothing else arrives.
        let extra = tokio::time::timeout(std::time::Duration::from_millis(700), ws.recv()).await;
        assert!(extra.is_err(), "unexpected extra message: {extra:?}");
        // Topic filters apply: nothing of another topic.
        let mut other = Ws::init(s.addr(), &admin).await;
        other
            .subscribe("x", SUB, json!({"a": "0", "t": ["customers"]}))
            .await;
        let none = tokio::time::timeout(std::time::Duration::from_millis(500), other.recv()).await;
        assert!(none.is_err(), "{none:?}");
    }
);

both!(concurrent_writers_never_leave_a_gap, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let start = {
        let mut ws = Ws::init(s.addr(), &admin).await;
        ws.subscribe("1", SUB, json!({"a": "0"})).await;
        let first = ws.recv().await.unwrap();
        first["payload"]["data"]["events"]["cursor"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A live subscriber from the current position, while many writers commit
    // concurrently; and afterwards a replaying subscriber from the start.
    let mut live = Ws::init(s.addr(), &admin).await;
    live.subscribe("1", SUB, json!({"a": start, "t": ["identity"]}))
        .await;
    let writers = 8;
    let per_writer = 15;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let http = s.http.clone();
        let addr = s.addr();
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..per_writer {
                let r = gql_at(
                    &http,
                    addr,
                    Some(&admin),
                    "mutation($n:String!){ createTeam(input:{name:$n}) { id } }",
                    json!({"n": format!("w{w}-{i}")}),
                )
                .await;
                ids.push(
                    r["data"]["createTeam"]["id"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{r}"))
                        .to_owned(),
                );
            }
            ids
        }));
    }
    let mut created = HashSet::new();
    for t in tasks {
        created.extend(t.await.unwrap());
    }
    let total = writers * per_writer;
    let got = next_events(&mut live, total).await;
    let mut cursors: Vec<u64> = got
        .iter()
        .map(|e| e["cursor"].as_str().unwrap().parse().unwrap())
        .collect();
    let seen: HashSet<String> = got
        .iter()
        .map(|e| e["entityId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, created, "every event exactly once");
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors strictly increase"
    );
    cursors.dedup();
    assert_eq!(cursors.len(), total);
    let extra = tokio::time::timeout(std::time::Duration::from_millis(500), live.recv()).await;
    assert!(extra.is_err(), "duplicate or extra event: {extra:?}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_event_written_on_one_replica_reaches_a_subscriber_on_another() {
    let a = server!(Backend::Postgres);
    let b = a.replica(&[]).await;
    let admin = a.admin().await;
    let mut ws = Ws::init(b.addr, &admin).await;
    ws.subscribe("1", SUB, json!({"a": a.db.head().await, "t": ["identity"]}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let ids = create_teams(&a, &admin, "via-a", 3).await;
    let got = next_events(&mut ws, 3).await;
    let seen: Vec<&str> = got
        .iter()
        .map(|e| e["entityId"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ids.iter().map(String::as_str).collect::<Vec<_>>());
}

both!(only_event_readers_may_subscribe, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    s.create_user(&admin, "rep@test.example", &["sales_rep"])
        .await;
    let rep = s.login("rep@test.example", "user-password-1").await;
    let mut ws = Ws::init(s.addr(), &rep).await;
    ws.subscribe("1", SUB, json!({})).await;
    let m = ws.recv().await.unwrap();
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["payload"][0]["extensions"]["code"], "FORBIDDEN", "{m}");
    // Bad cursor: VALIDATION.
    let mut ws = Ws::init(s.addr(), &admin).await;
    ws.subscribe("1", SUB, json!({"a": "not-a-cursor"})).await;
    let m = ws.recv().await.unwrap();
    assert_eq!(m["payload"][0]["extensions"]["code"], "VALIDATION", "{m}");
});

// Many writers on two replicas, subscribers on both, one of which stops
// halfway and resumes from its last cursor: each sees every event exactly
// once, in cursor order, and each writer's events in the order it wrote
// them. Writers take no lock but their own rows' (see core/src/events).
both!(
    many_writers_on_two_replicas_reach_every_subscriber_once_in_order,
    |b| async move {
        use crm_core::access::Principal;
        use crm_core::events::{self, Event, NewEvent};
        use futures_util::StreamExt;
        use std::sync::Arc;

        const WRITERS: usize = 64;
        const PER_WRITER: usize = 500;
        const TOTAL: usize = WRITERS * PER_WRITER;
        let s = server!(b);
        let other = s.replica(&[]).await;
        let apps = [s.running.app.clone(), other.app.clone()];
        let start: i64 = s.db.head().await.parse().unwrap();
        let collect = |app: crm_core::App, after: i64, n: usize| {
            let mut stream = app.events.subscribe(
                Some(after),
                Some(vec!["proof".into()]),
                Box::new(|_: &Event| true),
            );
            tokio::spawn(async move {
                let mut out: Vec<Arc<Event>> = Vec::with_capacity(n);
                while out.len() < n {
                    let next =
                        tokio::time::timeout(std::time::Duration::from_secs(60), stream.next())
                            .await
                            .unwrap_or_else(|_| panic!("stalled after {} of {n}", out.len()));
                    out.push(next.expect("stream ended").unwrap());
                }
                // Nothing more: no duplicate, no stray event.
                let extra =
                    tokio::time::timeout(std::time::Duration::from_millis(300), stream.next())
                        .await;
                assert!(extra.is_err() || n < TOTAL, "extra event: {extra:?}");
                out
            })
        };
        let on_first = collect(apps[0].clone(), start, TOTAL);
        let on_second = collect(apps[1].clone(), start, TOTAL);
        let halfway = collect(apps[1].clone(), start, TOTAL / 2);
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let app = apps[w % 2].clone();
            writers.push(tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let mut tx = app.db.begin().await.unwrap();
                    events::append(
                        &mut tx.conn(),
                        &Principal::System.actor(),
                        &[NewEvent {
                            topic: "proof",
                            entity_type: "Proof",
                            entity_id: format!("w{w}"),
                            kind: "proof.written".into(),
                            payload: json!({"w": w, "i": i}),
                            owner_id: None,
                            team_id: None,
                        }],
                    )
                    .await
                    .unwrap();
                    app.commit(tx).await.unwrap();
                }
            }));
        }
        let mut resumed_run = halfway.await.unwrap();
        let resume_from = resumed_run.last().unwrap().seq;
        let rest = collect(apps[1].clone(), resume_from, TOTAL - TOTAL / 2);
        for w in writers {
            w.await.unwrap();
        }
        resumed_run.extend(rest.await.unwrap());
        for (name, got) in [
            ("first replica", on_first.await.unwrap()),
            ("second replica", on_second.await.unwrap()),
            ("resumed", resumed_run),
        ] {
            assert_eq!(got.len(), TOTAL, "{name}");
            assert!(
                got.windows(2).all(|p| p[0].seq < p[1].seq),
                "{name}: cursors strictly increase"
            );
            let mut next = vec![0u64; WRITERS];
            for e in &got {
                let p: Value = serde_json::from_str(&e.payload).unwrap();
                let (w, i) = (p["w"].as_u64().unwrap() as usize, p["i"].as_u64().unwrap());
                assert_eq!(
                    i, next[w],
                    "{name}: writer {w}'s events in order, once each"
                );
                next[w] += 1;
            }
            assert!(next.iter().all(|n| *n == PER_WRITER as u64), "{name}");
        }
    }
);
