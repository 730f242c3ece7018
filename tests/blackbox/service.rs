//! The service module over HTTP and WebSocket: tickets with their numbers,
//! status moves, lists, filters and the recycle bin; the conversation on
//! the customer timeline; row scope by group, assignee and account; field
//! rules on internal notes; `serviceEvents`; who may see nothing.

use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const TICKET: &str = "id number version subject status priority channel type accountId \
    contactId groupId assigneeId tags solvedAt closedAt";

const EVENTS: &str =
    "subscription($a:String){ serviceEvents(after:$a) { cursor kind entityId payload } }";

async fn team(s: &TestServer, admin: &str, name: &str) -> String {
    let d = ok(
        s,
        admin,
        "mutation($n:String!){ createTeam(input:{name:$n}) { id } }",
        json!({"n": name}),
    )
    .await;
    d["createTeam"]["id"].as_str().unwrap().to_owned()
}

/// A user with `roles` in `team`; its id and token.
async fn member(
    s: &TestServer,
    admin: &str,
    email: &str,
    roles: &[&str],
    team: Option<&str>,
) -> (String, String) {
    let d = ok(
        s,
        admin,
        "mutation($i:CreateUserInput!){ createUser(input:$i) { id } }",
        json!({"i": {"email": email, "displayName": email, "password": "user-password-1",
                     "roles": roles, "teamId": team}}),
    )
    .await;
    let id = d["createUser"]["id"].as_str().unwrap().to_owned();
    (id, s.login(email, "user-password-1").await)
}

async fn create(s: &TestServer, token: &str, input: Value) -> Value {
    s.gql(
        Some(token),
        &format!("mutation($i:CreateTicketInput!){{ createTicket(input:$i) {{ {TICKET} }} }}"),
        json!({"i": input}),
    )
    .await
}

async fn ticket(s: &TestServer, token: &str, input: Value) -> Value {
    let r = create(s, token, input).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["createTicket"].clone()
}

async fn update(s: &TestServer, token: &str, input: Value) -> Value {
    s.gql(
        Some(token),
        &format!("mutation($i:UpdateTicketInput!){{ updateTicket(input:$i) {{ {TICKET} }} }}"),
        json!({"i": input}),
    )
    .await
}

async fn numbers(s: &TestServer, token: &str, filter: Value) -> Vec<String> {
    let d = ok(
        s,
        token,
        "query($f:TicketFilterInput){ tickets(first: 100, filter:$f, orderBy:{field: NUMBER, direction: ASC}) { totalCount edges { node { number } } } }",
        json!({"f": filter}),
    )
    .await;
    let edges = d["tickets"]["edges"].as_array().unwrap();
    assert_eq!(d["tickets"]["totalCount"], json!(edges.len()), "{d}");
    edges
        .iter()
        .map(|e| e["node"]["number"].as_str().unwrap().to_owned())
        .collect()
}

async fn next_event(ws: &mut Ws) -> Value {
    let m = ws.recv().await.expect("socket ended");
    assert_eq!(m["type"], "next", "{m}");
    m["payload"]["data"]["serviceEvents"].clone()
}

both!(tickets_lists_filters_and_the_recycle_bin, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let acc = account(&s, &admin, json!({"name": "Initech"})).await;
    let con = contact(
        &s,
        &admin,
        json!({"firstName": "Peter", "lastName": "Gibbons", "accountId": acc}),
    )
    .await;
    let t1 = ticket(
        &s,
        &admin,
        json!({"subject": "Printer on fire", "description": "PC LOAD LETTER", "contactId": con}),
    )
    .await;
    assert_eq!(t1["number"], "T-000001");
    assert_eq!(t1["status"], "NEW");
    assert_eq!(t1["priority"], "NORMAL");
    assert_eq!(t1["channel"], "WEB");
    // The account defaults to the requester's.
    assert_eq!(t1["accountId"], json!(acc));
    let t2 = ticket(
        &s,
        &admin,
        json!({"subject": "Stapler missing", "contactId": con, "priority": "URGENT",
               "channel": "PHONE", "type": "INCIDENT", "tags": ["Office", "red-stapler", "office"]}),
    )
    .await;
    assert_eq!(t2["number"], "T-000002");
    assert_eq!(t2["tags"], json!(["office", "red-stapler"]));

    // Filters.
    assert_eq!(
        numbers(&s, &admin, json!({"priority": ["URGENT", "HIGH"]})).await,
        ["T-000002"]
    );
    assert_eq!(
        numbers(&s, &admin, json!({"tag": "red-stapler"})).await,
        ["T-000002"]
    );
    assert_eq!(
        numbers(&s, &admin, json!({"tag": "red"})).await,
        Vec::<String>::new()
    );
    assert_eq!(
        numbers(&s, &admin, json!({"search": "load letter"})).await,
        ["T-000001"]
    );
    assert_eq!(
        numbers(&s, &admin, json!({"number": "t-000002"})).await,
        ["T-000002"]
    );
    assert_eq!(
        numbers(&s, &admin, json!({"accountId": acc, "status": ["NEW"]})).await,
        ["T-000001", "T-000002"]
    );
    let d = ok(
        &s,
        &admin,
        "query($id:ID!){ node(id:$id) { ... on Ticket { number contact { id } account { name } } } }",
        json!({"id": t1["id"]}),
    )
    .await;
    assert_eq!(d["node"]["number"], "T-000001");
    assert_eq!(d["node"]["account"]["name"], "Initech");

    // A requester that does not exist: VALIDATION, and no number is used.
    let r = create(
        &s,
        &admin,
        json!({"subject": "x", "contactId": "con_0190f0f0-0000-7000-8000-000000000000"}),
    )
    .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert_eq!(
        r["errors"][0]["extensions"]["fields"][0]["field"],
        "contactId"
    );
    // A group that is no team: VALIDATION on groupId.
    let r = create(
        &s,
        &admin,
        json!({"subject": "x", "contactId": con,
               "groupId": "team_0190f0f0-0000-7000-8000-000000000000"}),
    )
    .await;
    assert_eq!(code(&r), "VALIDATION", "{r}");
    assert_eq!(
        r["errors"][0]["extensions"]["fields"][0]["field"],
        "groupId"
    );

    // Status moves stamp solvedAt and closedAt; a stale version conflicts.
    let r = update(
        &s,
        &admin,
        json!({"id": t1["id"], "version": 1, "status": "OPEN"}),
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    let r = update(
        &s,
        &admin,
        json!({"id": t1["id"], "version": 1, "subject": "late"}),
    )
    .await;
    assert_eq!(code(&r), "CONFLICT", "{r}");
    let r = update(
        &s,
        &admin,
        json!({"id": t1["id"], "version": 2, "status": "SOLVED"}),
    )
    .await;
    assert!(r["data"]["updateTicket"]["solvedAt"].is_string(), "{r}");
    let r = update(
        &s,
        &admin,
        json!({"id": t1["id"], "version": 3, "status": "CLOSED"}),
    )
    .await;
    assert!(r["data"]["updateTicket"]["closedAt"].is_string(), "{r}");

    // The recycle bin.
    let r = s
        .gql(
            Some(&admin),
            "mutation($id:ID!){ deleteTicket(id:$id, version: 1) { deletedAt } }",
            json!({"id": t2["id"]}),
        )
        .await;
    assert!(r["data"]["deleteTicket"]["deletedAt"].is_string(), "{r}");
    assert_eq!(numbers(&s, &admin, json!({})).await, ["T-000001"]);
    assert_eq!(
        numbers(&s, &admin, json!({"deleted": true})).await,
        ["T-000002"]
    );
    ok(
        &s,
        &admin,
        "mutation($id:ID!){ restoreTicket(id:$id) { id } }",
        json!({"id": t2["id"]}),
    )
    .await;
    assert_eq!(
        numbers(&s, &admin, json!({})).await,
        ["T-000001", "T-000002"]
    );
    ok(
        &s,
        &admin,
        "mutation($id:ID!){ deleteTicket(id:$id, version: 3) { id } }",
        json!({"id": t2["id"]}),
    )
    .await;
    ok(
        &s,
        &admin,
        "mutation($id:ID!){ purgeTicket(id:$id) }",
        json!({"id": t2["id"]}),
    )
    .await;
    assert_eq!(s.db.count("tickets").await, 1);
    // A purged ticket's number is not reused.
    let t3 = ticket(&s, &admin, json!({"subject": "Again", "contactId": con})).await;
    assert_eq!(t3["number"], "T-000003");
});

both!(
    forbidden_status_moves_are_validation_errors,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let con = contact(
            &s,
            &admin,
            json!({"firstName": "Milton", "lastName": "Doe"}),
        )
        .await;
        let t = ticket(&s, &admin, json!({"subject": "Basement", "contactId": con})).await;
        // NEW cannot jump to CLOSED.
        let r = update(
            &s,
            &admin,
            json!({"id": t["id"], "version": 1, "status": "CLOSED", "subject": "Changed"}),
        )
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let e = &r["errors"][0]["extensions"]["fields"][0];
        assert_eq!(e["field"], "status", "{r}");
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains("from NEW to CLOSED"), "{msg}");
        // Nothing changed.
        let d = ok(
            &s,
            &admin,
            "query($id:ID!){ ticket(id:$id) { subject status version } }",
            json!({"id": t["id"]}),
        )
        .await;
        assert_eq!(
            d["ticket"],
            json!({"subject": "Basement", "status": "NEW", "version": 1})
        );
        // A closed ticket is not reopened.
        for (v, st) in [(1, "SOLVED"), (2, "CLOSED")] {
            let r = update(
                &s,
                &admin,
                json!({"id": t["id"], "version": v, "status": st}),
            )
            .await;
            assert!(r["errors"].is_null(), "{r}");
        }
        let r = update(
            &s,
            &admin,
            json!({"id": t["id"], "version": 3, "status": "OPEN"}),
        )
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(r["errors"][0]["extensions"]["fields"][0]["field"], "status");
    }
);

both!(
    numbers_are_gap_free_under_concurrent_creation,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let con = contact(&s, &admin, json!({"firstName": "Bill", "lastName": "Doe"})).await;
        let calls = (0..20).map(|i| {
            let (s, admin, con) = (&s, &admin, &con);
            async move {
                // Every fifth call fails validation inside the creating
                // transaction; it must not use up a number.
                let subject = if i % 5 == 0 {
                    String::new()
                } else {
                    format!("T{i}")
                };
                create(s, admin, json!({"subject": subject, "contactId": con})).await
            }
        });
        let results = futures_util::future::join_all(calls).await;
        let mut got: Vec<String> = Vec::new();
        for r in &results {
            match r["data"]["createTicket"]["number"].as_str() {
                Some(n) => got.push(n.to_owned()),
                None => assert_eq!(code(r), "VALIDATION", "{r}"),
            }
        }
        assert_eq!(got.len(), 16);
        got.sort();
        let want: Vec<String> = (1..=16).map(|n| format!("T-{n:06}")).collect();
        assert_eq!(got, want);
        // 20 more at once, all valid.
        let calls = (0..20).map(|i| {
            let (s, admin, con) = (&s, &admin, &con);
            async move {
                create(
                    s,
                    admin,
                    json!({"subject": format!("U{i}"), "contactId": con}),
                )
                .await
            }
        });
        let mut got: Vec<String> = futures_util::future::join_all(calls)
            .await
            .iter()
            .map(|r| {
                r["data"]["createTicket"]["number"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{r}"))
                    .to_owned()
            })
            .collect();
        got.sort();
        let want: Vec<String> = (17..=36).map(|n| format!("T-{n:06}")).collect();
        assert_eq!(got, want);
    }
);

both!(support_works_its_groups_tickets, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let a = team(&s, &admin, "Support A").await;
    let bt = team(&s, &admin, "Support B").await;
    let (sa_id, sa) = member(&s, &admin, "sa@example.com", &["support"], Some(&a)).await;
    let (_, sb) = member(&s, &admin, "sb@example.com", &["support"], Some(&bt)).await;
    let (_, lead) = member(&s, &admin, "lead@example.com", &["support_lead"], Some(&a)).await;
    let con = contact(&s, &admin, json!({"firstName": "Samir", "lastName": "Doe"})).await;
    let ta = ticket(
        &s,
        &admin,
        json!({"subject": "For A", "contactId": con, "groupId": a}),
    )
    .await;
    let tb = ticket(
        &s,
        &admin,
        json!({"subject": "For B", "contactId": con, "groupId": bt}),
    )
    .await;
    let tn = ticket(&s, &admin, json!({"subject": "Nobody's", "contactId": con})).await;
    assert_eq!(numbers(&s, &sa, json!({})).await, ["T-000001"]);
    assert_eq!(numbers(&s, &sb, json!({})).await, ["T-000002"]);
    assert_eq!(
        numbers(&s, &lead, json!({})).await,
        ["T-000001", "T-000002", "T-000003"]
    );
    // Another group's ticket does not exist for the agent.
    let r = s
        .gql(
            Some(&sa),
            "query($id:ID!){ ticket(id:$id) { id } }",
            json!({"id": tb["id"]}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    let r = update(
        &s,
        &sa,
        json!({"id": tb["id"], "version": 1, "priority": "LOW"}),
    )
    .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    let r = s
        .gql(
            Some(&sa),
            "mutation($id:ID!){ replyToTicket(ticketId:$id, body:\"hi\") { id } }",
            json!({"id": tb["id"]}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    // Its own group's: works it, replies, notes.
    let r = update(
        &s,
        &sa,
        json!({"id": ta["id"], "version": 1, "priority": "HIGH"}),
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    // A ticket assigned to the agent is its, whatever the group.
    let r = update(
        &s,
        &admin,
        json!({"id": tn["id"], "version": 1, "assigneeId": sa_id}),
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(numbers(&s, &sa, json!({})).await, ["T-000001", "T-000003"]);
    // Moving a ticket to another group takes it out of the agent's view.
    let r = update(
        &s,
        &sa,
        json!({"id": ta["id"], "version": 2, "groupId": bt}),
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(numbers(&s, &sa, json!({})).await, ["T-000003"]);
    assert_eq!(numbers(&s, &sb, json!({})).await, ["T-000001", "T-000002"]);
    // Agents do not empty the recycle bin; leads do.
    let r = s
        .gql(
            Some(&sb),
            "mutation($id:ID!){ deleteTicket(id:$id, version: 1) { id } }",
            json!({"id": tb["id"]}),
        )
        .await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");
    let r = s
        .gql(
            Some(&lead),
            "mutation($id:ID!){ deleteTicket(id:$id, version: 1) { id } }",
            json!({"id": tb["id"]}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
});

both!(
    conversation_and_sales_reps_without_internal_notes,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let a = team(&s, &admin, "Support A").await;
        let (_, agent) = member(&s, &admin, "agent@example.com", &["support"], Some(&a)).await;
        let (_, rep) = member(&s, &admin, "rep@example.com", &["sales_rep"], None).await;
        let (_, other) = member(&s, &admin, "other@example.com", &["sales_rep"], None).await;
        let acc = account(&s, &rep, json!({"name": "Rep's account"})).await;
        let con = contact(
            &s,
            &rep,
            json!({"firstName": "Joanna", "lastName": "Doe", "accountId": acc}),
        )
        .await;
        let mine = ticket(
            &s,
            &agent,
            json!({"subject": "Flair", "contactId": con, "groupId": a}),
        )
        .await;
        let con2 = contact(
            &s,
            &admin,
            json!({"firstName": "Lumbergh", "lastName": "Doe"}),
        )
        .await;
        ticket(
            &s,
            &admin,
            json!({"subject": "TPS", "contactId": con2, "groupId": a}),
        )
        .await;

        let head = s.db.head().await;
        let mut rep_ws = Ws::init(s.addr(), &rep).await;
        rep_ws.subscribe("1", EVENTS, json!({"a": head})).await;

        // A public reply opens the ticket; an internal note does not.
        let d = ok(
        &s,
        &agent,
        "mutation($id:ID!){ replyToTicket(ticketId:$id, body:\"We are on it\") { id internal } }",
        json!({"id": mine["id"]}),
    )
    .await;
        assert_eq!(d["replyToTicket"]["internal"], false);
        let d = ok(
        &s,
        &agent,
        "mutation($id:ID!){ replyToTicket(ticketId:$id, body:\"Customer is upset\", internal: true) { id internal } }",
        json!({"id": mine["id"]}),
    )
    .await;
        assert_eq!(d["replyToTicket"]["internal"], true);
        let d = ok(
        &s,
        &agent,
        "query($id:ID!){ ticket(id:$id) { status version comments { body internal } internalNotes { body } } }",
        json!({"id": mine["id"]}),
    )
    .await;
        assert_eq!(d["ticket"]["status"], "OPEN");
        assert_eq!(
            d["ticket"]["comments"],
            json!([{"body": "We are on it", "internal": false}])
        );
        assert_eq!(
            d["ticket"]["internalNotes"],
            json!([{"body": "Customer is upset"}])
        );

        // Both are on the requester's and the account's timeline; the note
        // without its text.
        let d = ok(
        &s,
        &admin,
        "query($c:ID!,$a:ID!){ contact(id:$c) { timeline(first: 10) { totalCount edges { node { title body } } } } account(id:$a) { timeline(first: 10) { totalCount } } }",
        json!({"c": con, "a": acc}),
    )
    .await;
        assert_eq!(d["contact"]["timeline"]["totalCount"], 2, "{d}");
        assert_eq!(d["account"]["timeline"]["totalCount"], 2, "{d}");
        let entries = d["contact"]["timeline"]["edges"].as_array().unwrap();
        assert!(
            entries.iter().any(|e| e["node"]["body"] == "We are on it"),
            "{d}"
        );
        assert!(
            entries
                .iter()
                .all(|e| e["node"]["body"] != "Customer is upset"),
            "{d}"
        );

        // The rep reads its account's ticket and the public conversation...
        assert_eq!(numbers(&s, &rep, json!({})).await, ["T-000001"]);
        assert_eq!(numbers(&s, &other, json!({})).await, Vec::<String>::new());
        let d = ok(
            &s,
            &rep,
            "query($id:ID!){ ticket(id:$id) { subject comments { body } } }",
            json!({"id": mine["id"]}),
        )
        .await;
        assert_eq!(d["ticket"]["comments"], json!([{"body": "We are on it"}]));
        // ...but not the internal notes, and may not write.
        let r = s
            .gql(
                Some(&rep),
                "query($id:ID!){ ticket(id:$id) { subject internalNotes { body } } }",
                json!({"id": mine["id"]}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");
        assert!(r["data"].is_null() || r["data"]["ticket"].is_null(), "{r}");
        let r = s
            .gql(
                Some(&rep),
                "mutation($id:ID!){ replyToTicket(ticketId:$id, body:\"x\") { id } }",
                json!({"id": mine["id"]}),
            )
            .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");

        // Its event stream: the reply, not the note (nor the other account's
        // ticket); then the next change it may see.
        let e = next_event(&mut rep_ws).await;
        assert_eq!(e["kind"], "ticket.replied", "{e}");
        let payload = &e["payload"];
        assert!(payload["changed"]["comments"].is_object(), "{payload}");
        assert!(payload.get("rowScope").is_none(), "{payload}");
        let r = update(
            &s,
            &agent,
            json!({"id": mine["id"], "version": 3, "priority": "HIGH"}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        let e = next_event(&mut rep_ws).await;
        assert_eq!(e["kind"], "ticket.updated", "{e}");
        assert_eq!(e["entityId"], mine["id"]);
        rep_ws.close().await;
    }
);

both!(service_events_follow_the_group_scope, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let a = team(&s, &admin, "Support A").await;
    let bt = team(&s, &admin, "Support B").await;
    let (sa_id, sa) = member(&s, &admin, "sa@example.com", &["support"], Some(&a)).await;
    let con = contact(&s, &admin, json!({"firstName": "Dom", "lastName": "Doe"})).await;
    let head = s.db.head().await;
    let mut ws = Ws::init(s.addr(), &sa).await;
    ws.subscribe("1", EVENTS, json!({"a": head})).await;
    let tb = ticket(
        &s,
        &admin,
        json!({"subject": "B's", "contactId": con, "groupId": bt}),
    )
    .await;
    let ta = ticket(
        &s,
        &admin,
        json!({"subject": "A's", "contactId": con, "groupId": a}),
    )
    .await;
    let e = next_event(&mut ws).await;
    assert_eq!(e["kind"], "ticket.created");
    assert_eq!(e["entityId"], ta["id"], "{e}");
    // Assigned to the agent: its events come through too.
    let r = update(
        &s,
        &admin,
        json!({"id": tb["id"], "version": 1, "assigneeId": sa_id}),
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    let e = next_event(&mut ws).await;
    assert_eq!(e["entityId"], tb["id"], "{e}");
    assert_eq!(e["kind"], "ticket.updated");
    ws.close().await;
});

both!(
    marketing_and_it_admin_see_nothing_of_tickets,
    |b| async move {
        let s = server!(b);
        let admin = s.admin().await;
        let con = contact(&s, &admin, json!({"firstName": "Nina", "lastName": "Doe"})).await;
        let t = ticket(&s, &admin, json!({"subject": "Hidden", "contactId": con})).await;
        for role in ["marketing", "it_admin"] {
            let (_, token) =
                member(&s, &admin, &format!("{role}@example.com"), &[role], None).await;
            let r = s
                .gql(
                    Some(&token),
                    "{ tickets(first: 5) { totalCount } }",
                    json!({}),
                )
                .await;
            assert_eq!(code(&r), "FORBIDDEN", "{role}: {r}");
            let r = s
                .gql(
                    Some(&token),
                    "query($id:ID!){ ticket(id:$id) { id } }",
                    json!({"id": t["id"]}),
                )
                .await;
            assert_eq!(code(&r), "FORBIDDEN", "{role}: {r}");
            let r = create(&s, &token, json!({"subject": "x", "contactId": con})).await;
            assert_eq!(code(&r), "FORBIDDEN", "{role}: {r}");
            let mut ws = Ws::init(s.addr(), &token).await;
            ws.subscribe("1", EVENTS, json!({})).await;
            let m = ws.recv().await.expect("an answer");
            assert_eq!(m["type"], "error", "{role}: {m}");
            ws.close().await;
        }
        assert_eq!(s.db.count("tickets").await, 1);
    }
);

both!(tickets_import_and_export_through_the_kit, |b| async move {
    let s = server!(b);
    let admin = s.admin().await;
    let a = team(&s, &admin, "Support A").await;
    let (_, lead) = member(&s, &admin, "lead@example.com", &["support_lead"], Some(&a)).await;
    let (_, rep) = member(&s, &admin, "rep@example.com", &["sales_rep"], None).await;
    let acc = account(&s, &rep, json!({"name": "Rep's"})).await;
    let con = contact(
        &s,
        &rep,
        json!({"firstName": "Ann", "lastName": "Lee", "accountId": acc}),
    )
    .await;
    let other = contact(&s, &admin, json!({"firstName": "Bob", "lastName": "Roe"})).await;
    // A lead imports history: numbers are taken in order, statuses as given,
    // bad rows reported by header.
    let file = format!(
        "主题,联系人,优先级,状态,标签,组\n\
         Old question,{con},high,solved,billing;vip,{a}\n\
         New one,{other},low,new,,{a}\n\
         Broken,{other},whenever,new,,\n"
    );
    let q =
        "mutation($file:Upload!,$o:ImportOptions){ importTickets(file:$file, options:$o) { id } }";
    // A dry run checks every row and takes no number.
    let r = s
        .upload(
            Some(&lead),
            q,
            json!({"o": {"dryRun": true}}),
            "file",
            "tickets.csv",
            file.clone().into_bytes(),
        )
        .await;
    let id = r["data"]["importTickets"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let job = s.wait_job(&lead, "importJob", &id).await;
    assert_eq!(job["failed"], 1, "{job}");
    assert_eq!(s.db.count("tickets").await, 0);
    let r = s
        .upload(
            Some(&lead),
            q,
            json!({"o": {"mode": "SKIP_BAD_ROWS"}}),
            "file",
            "tickets.csv",
            file.into_bytes(),
        )
        .await;
    let id = r["data"]["importTickets"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let job = s.wait_job(&lead, "importJob", &id).await;
    assert_eq!(job["created"], 2, "{job}");
    assert_eq!(job["failed"], 1, "{job}");
    let d = ok(
        &s,
        &lead,
        "{ tickets(orderBy:{field: NUMBER, direction: ASC}) { edges { node { number subject status priority tags accountId solvedAt } } } }",
        json!({}),
    )
    .await;
    let first = &d["tickets"]["edges"][0]["node"];
    assert_eq!(first["number"], "T-000001", "{d}");
    assert_eq!(first["status"], "SOLVED");
    assert_eq!(first["priority"], "HIGH");
    assert_eq!(first["tags"], json!(["billing", "vip"]));
    assert_eq!(first["accountId"], json!(acc));
    assert!(first["solvedAt"].is_string());
    assert_eq!(d["tickets"]["edges"][1]["node"]["number"], "T-000002");

    // The rep's export holds its account's ticket only.
    let r = s
        .gql(Some(&rep), "mutation { exportTickets { id } }", json!({}))
        .await;
    let id = r["data"]["exportTickets"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let job = s.wait_job(&rep, "exportJob", &id).await;
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    let (status, body) = s
        .get(Some(&rep), job["downloadUrl"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Old question"), "{body}");
    assert!(!body.contains("New one"), "{body}");
});
