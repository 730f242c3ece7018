//! SLA clocks over HTTP: business calendars and policies (who may edit
//! them, what is refused), a ticket's clocks on a fixed calendar (due at
//! the exact minute over a weekend and a holiday, shifted by a PENDING
//! pause, met by a reply), snapshots that policy edits do not rewrite,
//! warning and breach events once each with two replicas, escalation, and
//! the report's figures. Time is the documented `sla-test-clock` setting:
//! the SLA engine reads "now" from the `sla_test_clock` table, which the
//! tests set with SQL (every replica reads the same row).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::support::*;
use crate::{both, server};

const CLOCKS: &str = "slaClocks { kind state policyName targetMinutes businessHours startedAt \
    dueAt elapsedMinutes pausedMinutes paused metAt breached warnedAt breachedAt }";

/// Sets the SLA engine's "now" (UTC, `YYYY-MM-DD HH:MM`).
async fn set_clock(s: &TestServer, at: &str) {
    s.db.exec(&format!(
        "DELETE FROM sla_test_clock; INSERT INTO sla_test_clock (id, now_at) VALUES ('now', '{at}:00')"
    ))
    .await;
}

fn instant(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn team(s: &TestServer, admin: &str, name: &str, parent: Option<&str>) -> String {
    let d = ok(
        s,
        admin,
        "mutation($n:String!,$p:ID){ createTeam(input:{name:$n, parentId:$p}) { id } }",
        json!({"n": name, "p": parent}),
    )
    .await;
    d["createTeam"]["id"].as_str().unwrap().to_owned()
}

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

async fn calendar(s: &TestServer, token: &str, input: Value) -> Value {
    s.gql(
        Some(token),
        "mutation($i:CreateBusinessCalendarInput!){ createBusinessCalendar(input:$i) { id version name timeZone periods { weekday start end } holidays } }",
        json!({"i": input}),
    )
    .await
}

async fn policy(s: &TestServer, token: &str, input: Value) -> Value {
    s.gql(
        Some(token),
        "mutation($i:CreateSlaPolicyInput!){ createSlaPolicy(input:$i) { id version position name calendarId warnPercent targets { priority firstReplyMinutes nextReplyMinutes resolutionMinutes } } }",
        json!({"i": input}),
    )
    .await
}

async fn ticket(s: &TestServer, token: &str, input: Value) -> Value {
    let d = ok(
        s,
        token,
        &format!("mutation($i:CreateTicketInput!){{ createTicket(input:$i) {{ id version priority groupId {CLOCKS} }} }}"),
        json!({"i": input}),
    )
    .await;
    d["createTicket"].clone()
}

async fn read(s: &TestServer, token: &str, id: &str) -> Value {
    let d = ok(
        s,
        token,
        &format!(
            "query($id:ID!){{ ticket(id:$id) {{ id version status priority groupId {CLOCKS} }} }}"
        ),
        json!({"id": id}),
    )
    .await;
    d["ticket"].clone()
}

async fn set_status(s: &TestServer, token: &str, t: &Value, status: &str) -> Value {
    let d = ok(
        s,
        token,
        "mutation($i:UpdateTicketInput!){ updateTicket(input:$i) { id version status } }",
        json!({"i": {"id": t["id"], "version": t["version"], "status": status}}),
    )
    .await;
    d["updateTicket"].clone()
}

async fn reply(s: &TestServer, token: &str, id: &str) {
    ok(
        s,
        token,
        "mutation($t:ID!){ replyToTicket(ticketId:$t, body:\"On it\") { id } }",
        json!({"t": id}),
    )
    .await;
}

fn clock<'a>(t: &'a Value, kind: &str) -> &'a Value {
    t["slaClocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} clock: {t}"))
}

fn weekdays_nine_to_six() -> Value {
    json!(
        ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"]
            .iter()
            .map(|d| json!({"weekday": d, "start": "09:00", "end": "18:00"}))
            .collect::<Vec<_>>()
    )
}

both!(
    a_friday_ticket_is_due_on_tuesday_and_a_pause_shifts_it,
    |b| async move {
        let s = server!(b, &[("sla-test-clock", "true"), ("sla-check-secs", "0")]);
        let admin = s.admin().await;
        let support = team(&s, &admin, "Support", None).await;
        let (_, lead) = member(
            &s,
            &admin,
            "lead@example.com",
            &["support_lead"],
            Some(&support),
        )
        .await;
        let (_, agent) = member(
            &s,
            &admin,
            "agent@example.com",
            &["support"],
            Some(&support),
        )
        .await;

        // Calendars: a period crossing midnight and an unknown zone are refused.
        let r = calendar(
            &s,
            &lead,
            json!({"name": "Night", "timeZone": "UTC",
               "periods": [{"weekday": "MONDAY", "start": "22:00", "end": "02:00"}]}),
        )
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        let r = calendar(
            &s,
            &lead,
            json!({"name": "Mars", "timeZone": "Mars/Olympus",
               "periods": [{"weekday": "MONDAY", "start": "09:00", "end": "17:00"}]}),
        )
        .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
        assert_eq!(s.db.count("sla_calendars").await, 0);
        // Support reads calendars and policies but does not edit them.
        let r = calendar(
        &s,
        &agent,
        json!({"name": "Office", "timeZone": "Asia/Shanghai", "periods": weekdays_nine_to_six()}),
    )
    .await;
        assert_eq!(code(&r), "FORBIDDEN", "{r}");

        // Shanghai office hours, Monday 7 December 2026 a holiday.
        let cal = calendar(
            &s,
            &lead,
            json!({"name": "Shanghai office", "timeZone": "Asia/Shanghai",
               "periods": weekdays_nine_to_six(), "holidays": ["2026-12-07"]}),
        )
        .await;
        assert!(cal["errors"].is_null(), "{cal}");
        let cal = cal["data"]["createBusinessCalendar"].clone();
        assert_eq!(cal["periods"].as_array().unwrap().len(), 5);
        let p = policy(
        &s,
        &lead,
        json!({"name": "Standard", "calendarId": cal["id"],
               "targets": [{"priority": "NORMAL", "firstReplyMinutes": 240, "resolutionMinutes": 1440}]}),
    )
    .await;
        assert!(p["errors"].is_null(), "{p}");
        let p = p["data"]["createSlaPolicy"].clone();
        let listed = ok(
            &s,
            &agent,
            "{ slaPolicies { id name } businessCalendars { id } }",
            json!({}),
        )
        .await;
        assert_eq!(listed["slaPolicies"][0]["id"], p["id"]);

        let acc = account(&s, &admin, json!({"name": "Initech"})).await;
        let con = contact(
            &s,
            &admin,
            json!({"firstName": "Peter", "lastName": "Gibbons", "accountId": acc}),
        )
        .await;
        // Friday 4 December 2026, 17:30 in Shanghai (UTC+8).
        set_clock(&s, "2026-12-04 09:30").await;
        let t = ticket(
            &s,
            &agent,
            json!({"subject": "Printer", "contactId": con, "groupId": support}),
        )
        .await;
        let first = clock(&t, "FIRST_REPLY");
        assert_eq!(first["state"], "RUNNING");
        assert_eq!(first["policyName"], "Standard");
        assert_eq!(first["businessHours"], true);
        assert_eq!(instant(&first["startedAt"]), utc("2026-12-04T09:30:00Z"));
        // 30 minutes on Friday, nothing on the weekend or the holiday, 3.5
        // hours on Tuesday: 12:30 in Shanghai.
        assert_eq!(instant(&first["dueAt"]), utc("2026-12-08T04:30:00Z"));
        assert_eq!(clock(&t, "RESOLUTION")["targetMinutes"], 1440);

        // Tuesday 09:30 local: PENDING for an hour.
        set_clock(&s, "2026-12-08 01:30").await;
        let now = read(&s, &agent, t["id"].as_str().unwrap()).await;
        assert_eq!(clock(&now, "FIRST_REPLY")["elapsedMinutes"], 60, "{now}");
        let moved = set_status(&s, &agent, &now, "PENDING").await;
        set_clock(&s, "2026-12-08 02:30").await;
        let paused = read(&s, &agent, t["id"].as_str().unwrap()).await;
        let c = clock(&paused, "FIRST_REPLY");
        assert_eq!(c["state"], "PAUSED");
        assert_eq!(c["paused"], true);
        assert_eq!(c["elapsedMinutes"], 60, "{paused}");
        assert_eq!(c["pausedMinutes"], 60);
        assert_eq!(instant(&c["dueAt"]), utc("2026-12-08T05:30:00Z"));
        let mut moved = moved;
        moved["id"] = t["id"].clone();
        set_status(&s, &agent, &moved, "OPEN").await;
        let resumed = read(&s, &agent, t["id"].as_str().unwrap()).await;
        let c = clock(&resumed, "FIRST_REPLY");
        assert_eq!(c["state"], "RUNNING");
        assert_eq!(c["pausedMinutes"], 60);
        // The due time moved by the paused business hour: 13:30 local.
        assert_eq!(instant(&c["dueAt"]), utc("2026-12-08T05:30:00Z"));

        // A reply at 11:00 local meets the first-reply clock in time.
        set_clock(&s, "2026-12-08 03:00").await;
        reply(&s, &agent, t["id"].as_str().unwrap()).await;
        let replied = read(&s, &agent, t["id"].as_str().unwrap()).await;
        let c = clock(&replied, "FIRST_REPLY");
        assert_eq!(c["state"], "MET");
        assert_eq!(c["breached"], false);
        assert_eq!(instant(&c["metAt"]), utc("2026-12-08T03:00:00Z"));
        assert_eq!(c["elapsedMinutes"], 90);
        assert_eq!(clock(&replied, "RESOLUTION")["state"], "RUNNING");

        // Changing the policy does not rewrite the clocks already running.
        let r = s
        .gql(
            Some(&lead),
            "mutation($i:UpdateSlaPolicyInput!){ updateSlaPolicy(input:$i) { version } }",
            json!({"i": {"id": p["id"], "version": p["version"],
                   "targets": [{"priority": "NORMAL", "firstReplyMinutes": 30, "resolutionMinutes": 60}]}}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        // A stale version is a CONFLICT.
        let r = s
            .gql(
                Some(&lead),
                "mutation($i:UpdateSlaPolicyInput!){ updateSlaPolicy(input:$i) { version } }",
                json!({"i": {"id": p["id"], "version": p["version"], "name": "Late"}}),
            )
            .await;
        assert_eq!(code(&r), "CONFLICT", "{r}");
        let after = read(&s, &agent, t["id"].as_str().unwrap()).await;
        assert_eq!(clock(&after, "RESOLUTION")["targetMinutes"], 1440);
        assert_eq!(clock(&after, "FIRST_REPLY")["targetMinutes"], 240);
        assert_eq!(
            instant(&clock(&after, "FIRST_REPLY")["dueAt"]),
            utc("2026-12-08T05:30:00Z")
        );
        // A new ticket gets the new targets.
        let t2 = ticket(
            &s,
            &agent,
            json!({"subject": "Fax", "contactId": con, "groupId": support}),
        )
        .await;
        assert_eq!(clock(&t2, "FIRST_REPLY")["targetMinutes"], 30);
        // A calendar in use is not deleted.
        let r = s
            .gql(
                Some(&lead),
                "mutation($id:ID!,$v:Int!){ deleteBusinessCalendar(id:$id, version:$v) }",
                json!({"id": cal["id"], "v": cal["version"]}),
            )
            .await;
        assert_eq!(code(&r), "VALIDATION", "{r}");
    }
);

both!(
    a_customer_message_starts_a_next_reply_clock,
    |b| async move {
        let s = server!(b, &[("sla-test-clock", "true"), ("sla-check-secs", "0")]);
        let admin = s.admin().await;
        let p = policy(
        &s,
        &admin,
        json!({"name": "Around the clock",
               "targets": [{"priority": "NORMAL", "firstReplyMinutes": 60, "nextReplyMinutes": 30}]}),
    )
    .await;
        assert!(p["errors"].is_null(), "{p}");
        let con = contact(&s, &admin, json!({"firstName": "Ann", "lastName": "Ito"})).await;
        set_clock(&s, "2026-12-01 10:00").await;
        let t = ticket(&s, &admin, json!({"subject": "Login", "contactId": con})).await;
        let id = t["id"].as_str().unwrap().to_owned();
        assert_eq!(clock(&t, "FIRST_REPLY")["businessHours"], false);
        assert_eq!(
            instant(&clock(&t, "FIRST_REPLY")["dueAt"]),
            utc("2026-12-01T11:00:00Z")
        );
        set_clock(&s, "2026-12-01 10:20").await;
        reply(&s, &admin, &id).await;
        set_clock(&s, "2026-12-01 12:00").await;
        let d = ok(
        &s,
        &admin,
        "mutation($t:ID!){ logCustomerMessage(ticketId:$t, body:\"Still broken\") { fromCustomer } }",
        json!({"t": id}),
    )
    .await;
        assert_eq!(d["logCustomerMessage"]["fromCustomer"], true);
        let now = read(&s, &admin, &id).await;
        let next = clock(&now, "NEXT_REPLY");
        assert_eq!(next["state"], "RUNNING");
        assert_eq!(instant(&next["dueAt"]), utc("2026-12-01T12:30:00Z"));
        // Replying 45 minutes later meets it late.
        set_clock(&s, "2026-12-01 12:45").await;
        reply(&s, &admin, &id).await;
        let now = read(&s, &admin, &id).await;
        let next = clock(&now, "NEXT_REPLY");
        assert_eq!(next["state"], "MET");
        assert_eq!(next["breached"], true);
        assert_eq!(clock(&now, "FIRST_REPLY")["breached"], false);
        // The list filter finds it among tickets with a breached clock.
        let d = ok(
        &s,
        &admin,
        "{ yes: tickets(filter:{slaBreached: true}) { totalCount } no: tickets(filter:{slaBreached: false}) { totalCount } }",
        json!({}),
    )
    .await;
        assert_eq!(d["yes"]["totalCount"], 1);
        assert_eq!(d["no"]["totalCount"], 0);
    }
);

async fn kind_count(s: &TestServer, kind: &str) -> i64 {
    s.db.scalar(&format!(
        "SELECT COUNT(*) AS n FROM outbox WHERE kind = '{kind}'"
    ))
    .await
}

async fn wait_for(s: &TestServer, kind: &str) -> i64 {
    for _ in 0..120 {
        let n = kind_count(s, kind).await;
        if n > 0 {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    kind_count(s, kind).await
}

both!(
    warning_and_breach_go_out_once_with_two_replicas,
    |b| async move {
        let settings = [("sla-test-clock", "true"), ("sla-check-secs", "1")];
        let s = server!(b, &settings);
        let _replica = s.replica(&settings).await;
        let admin = s.admin().await;
        let managers = team(&s, &admin, "Support managers", None).await;
        let first_line = team(&s, &admin, "First line", Some(&managers)).await;
        let second_line = team(&s, &admin, "Second line", Some(&managers)).await;
        let (_, manager) = member(
            &s,
            &admin,
            "boss@example.com",
            &["support_lead"],
            Some(&managers),
        )
        .await;
        let p = policy(
        &s,
        &admin,
        json!({"name": "Fast", "warnPercent": 75,
               "escalation": {"raisePriority": true, "reassignGroupId": second_line, "notifyManager": true},
               "targets": [{"priority": "NORMAL", "firstReplyMinutes": 100}]}),
    )
    .await;
        assert!(p["errors"].is_null(), "{p}");
        let con = contact(&s, &admin, json!({"firstName": "Bo", "lastName": "Li"})).await;
        set_clock(&s, "2026-12-01 10:00").await;
        let t = ticket(
            &s,
            &admin,
            json!({"subject": "Down", "contactId": con, "groupId": first_line}),
        )
        .await;
        let id = t["id"].as_str().unwrap().to_owned();

        // 75 minutes: the warning, once.
        set_clock(&s, "2026-12-01 11:15").await;
        assert_eq!(wait_for(&s, "sla.warning").await, 1);
        assert_eq!(kind_count(&s, "sla.breached").await, 0);
        // 100 minutes: the breach, once, with its escalation.
        set_clock(&s, "2026-12-01 11:40").await;
        assert_eq!(wait_for(&s, "sla.breached").await, 1);
        let now = read(&s, &manager, &id).await;
        assert_eq!(now["priority"], "HIGH", "{now}");
        assert_eq!(now["groupId"], json!(second_line));
        let c = clock(&now, "FIRST_REPLY");
        assert_eq!(c["breached"], true);
        assert_eq!(instant(&c["warnedAt"]), utc("2026-12-01T11:15:00Z"));
        assert_eq!(instant(&c["breachedAt"]), utc("2026-12-01T11:40:00Z"));
        assert_eq!(kind_count(&s, "sla.escalated").await, 1);
        assert_eq!(kind_count(&s, "ticket.escalated").await, 1);
        // Both replicas keep polling (every second); nothing goes out again.
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        assert_eq!(kind_count(&s, "sla.warning").await, 1);
        assert_eq!(kind_count(&s, "sla.breached").await, 1);
        assert_eq!(kind_count(&s, "sla.escalated").await, 1);
        // The manager team's lead sees the events on serviceEvents.
        let mut ws = Ws::init(s.addr(), &manager).await;
        ws.subscribe(
            "1",
            "subscription{ serviceEvents(after:\"0\") { kind entityId } }",
            json!({}),
        )
        .await;
        let mut kinds = Vec::new();
        while kinds.len() < 10 {
            let Some(m) = ws.recv().await else { break };
            if m["type"] != "next" {
                break;
            }
            let e = &m["payload"]["data"]["serviceEvents"];
            kinds.push(e["kind"].as_str().unwrap().to_owned());
            if e["kind"] == "sla.escalated" {
                break;
            }
        }
        assert!(kinds.contains(&"sla.warning".to_owned()), "{kinds:?}");
        assert!(kinds.contains(&"sla.breached".to_owned()), "{kinds:?}");
        assert!(kinds.contains(&"sla.escalated".to_owned()), "{kinds:?}");
        ws.close().await;
    }
);

both!(the_report_counts_met_and_breached_clocks, |b| async move {
    let s = server!(b, &[("sla-test-clock", "true"), ("sla-check-secs", "0")]);
    let admin = s.admin().await;
    let g1 = team(&s, &admin, "G1", None).await;
    let g2 = team(&s, &admin, "G2", None).await;
    let (u1, _) = member(&s, &admin, "u1@example.com", &["support"], Some(&g1)).await;
    let (u2, agent2) = member(&s, &admin, "u2@example.com", &["support"], Some(&g2)).await;
    let p = policy(
        &s,
        &admin,
        json!({"name": "Report",
               "targets": [{"priority": "NORMAL", "firstReplyMinutes": 60},
                           {"priority": "HIGH", "firstReplyMinutes": 30}]}),
    )
    .await;
    assert!(p["errors"].is_null(), "{p}");
    let pid = p["data"]["createSlaPolicy"]["id"].clone();
    let con = contact(&s, &admin, json!({"firstName": "Cy", "lastName": "Ng"})).await;
    set_clock(&s, "2026-12-01 10:00").await;
    let mk = |a: &str, g: &str, pr: &str| json!({"subject": "x", "contactId": con, "assigneeId": a, "groupId": g, "priority": pr});
    let t1 = ticket(&s, &admin, mk(&u1, &g1, "NORMAL")).await; // replied at +30: met
    let t2 = ticket(&s, &admin, mk(&u1, &g1, "NORMAL")).await; // replied at +90: breached
    let t6 = ticket(&s, &admin, mk(&u1, &g1, "NORMAL")).await; // replied at +20: met
    let t3 = ticket(&s, &admin, mk(&u2, &g2, "HIGH")).await; // replied at +10: met
    ticket(&s, &admin, mk(&u2, &g2, "NORMAL")).await; // never: overdue at +120
    let id = |t: &Value| t["id"].as_str().unwrap().to_owned();
    set_clock(&s, "2026-12-01 10:10").await;
    reply(&s, &admin, &id(&t3)).await;
    set_clock(&s, "2026-12-01 10:20").await;
    reply(&s, &admin, &id(&t6)).await;
    set_clock(&s, "2026-12-01 10:30").await;
    reply(&s, &admin, &id(&t1)).await;
    set_clock(&s, "2026-12-01 11:30").await;
    reply(&s, &admin, &id(&t2)).await;
    set_clock(&s, "2026-12-01 11:40").await;
    // Started at +100: not yet due at +120, so not counted.
    ticket(&s, &admin, json!({"subject": "new", "contactId": con})).await;
    set_clock(&s, "2026-12-01 12:00").await;
    let q = "query($f:DateTime!,$t:DateTime!){ slaReport(from:$f, to:$t) { \
             total { met breached metPercent } \
             byAgent { id met breached metPercent } \
             byGroup { id met breached metPercent } \
             byPolicy { id name met breached metPercent } } }";
    let vars = json!({"f": "2026-12-01T00:00:00Z", "t": "2026-12-02T00:00:00Z"});
    let r = ok(&s, &admin, q, vars.clone()).await["slaReport"].clone();
    assert_eq!(
        r["total"],
        json!({"met": 3, "breached": 2, "metPercent": 60.0})
    );
    let row = |list: &Value, id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in {list}"))
    };
    assert_eq!(
        row(&r["byAgent"], &u1),
        json!({"id": u1, "met": 2, "breached": 1, "metPercent": 66.7})
    );
    assert_eq!(
        row(&r["byAgent"], &u2),
        json!({"id": u2, "met": 1, "breached": 1, "metPercent": 50.0})
    );
    assert_eq!(r["byAgent"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(row(&r["byGroup"], &g1)["metPercent"], 66.7);
    assert_eq!(row(&r["byGroup"], &g2)["metPercent"], 50.0);
    assert_eq!(
        r["byPolicy"],
        json!([{"id": pid, "name": "Report", "met": 3, "breached": 2, "metPercent": 60.0}])
    );
    // A support agent counts only the tickets of its group.
    let r = ok(&s, &agent2, q, vars.clone()).await["slaReport"].clone();
    assert_eq!(
        r["total"],
        json!({"met": 1, "breached": 1, "metPercent": 50.0})
    );
    assert_eq!(r["byGroup"].as_array().unwrap().len(), 1, "{r}");
    // A period without clocks.
    let r = ok(
        &s,
        &admin,
        q,
        json!({"f": "2027-01-01T00:00:00Z", "t": "2027-01-02T00:00:00Z"}),
    )
    .await["slaReport"]
        .clone();
    assert_eq!(
        r["total"],
        json!({"met": 0, "breached": 0, "metPercent": null})
    );
});
