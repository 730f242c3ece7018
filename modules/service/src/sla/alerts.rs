//! Warning and breach events, each exactly once per clock however many
//! replicas run: every process polls for running clocks whose `warn_at` or
//! `due_at` has passed and claims each event with a conditional UPDATE
//! (`… SET warned_at = now WHERE id = … AND warned_at IS NULL`); only the
//! transaction whose update changed the row writes the event, in the same
//! transaction, so a claim without its event (or the reverse) never
//! commits. A breach also runs the escalation copied onto the clock:
//! raise the priority, move the ticket to a group (one versioned ticket
//! update, audited, with its `ticket.updated` event), and address an
//! `sla.escalated` event to the manager of the ticket's group, i.e. the
//! team above the group in the hierarchy (its members see it in
//! `serviceEvents` through their team scope).

use std::time::Duration;

use chrono::NaiveDateTime;
use crm_core::access::{Actor, Principal, RowFilter};
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::entity::{event_context_of, sql::Sql, store};
use crm_core::error::Result;
use crm_core::events::{self, NewEvent};
use crm_core::identity::repo as users;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::clocks::{self, ClockRow, SlaClock};
use super::policies::Escalation;
use crate::tickets::repo::{TicketRow, Tickets};
use crate::values::TicketPriority;

fn system() -> Actor {
    Actor {
        kind: "system",
        id: None,
        credential: None,
    }
}

/// Claims one event of a clock: true if this transaction set the column.
async fn claim(conn: &mut Conn<'_>, clock: &str, column: &str, now: NaiveDateTime) -> Result<bool> {
    let mut s = Sql::new(format!("UPDATE sla_clocks SET {column} = "));
    s.bind(now)
        .push(" WHERE id = ")
        .bind(clock)
        .push(&format!(" AND {column} IS NULL AND state = 'RUNNING'"));
    Ok(s.execute(conn).await? == 1)
}

/// Appends an SLA event about `ticket`, row-scoped like the ticket's own
/// events (its owner, owner's team, group and assignee); the clock is the
/// changed `slaClocks` field, so whoever may not read that field does not
/// get the event.
async fn announce(
    conn: &mut Conn<'_>,
    ticket: &TicketRow,
    kind: &str,
    clock: &ClockRow,
    now: NaiveDateTime,
    extra: Option<(&str, Value)>,
    team_override: Option<String>,
) -> Result<()> {
    let owner = store::owner_of::<Tickets>(conn, ticket).await?;
    let team = match (&team_override, &owner) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(o)) => users::user(conn, o).await?.and_then(|u| u.team_id),
        (None, None) => None,
    };
    let view = SlaClock::of(clock, now)?;
    let mut payload = event_context_of::<Tickets>(conn, ticket)
        .await?
        .unwrap_or_default();
    payload.insert(
        "changed".into(),
        json!({ "slaClocks": {
            "id": clock.id,
            "kind": clock.kind,
            "policyId": clock.policy_id,
            "policyName": clock.policy_name,
            "targetMinutes": clock.target_minutes,
            "dueAt": view.due_at,
            "elapsedMinutes": view.elapsed_minutes,
        }}),
    );
    payload.insert("number".into(), ticket.number.clone().into());
    if let Some((k, v)) = extra {
        payload.insert(k.into(), v);
    }
    events::append(
        conn,
        &system(),
        &[NewEvent {
            topic: crate::TOPIC,
            entity_type: "Ticket",
            entity_id: ticket.id.clone(),
            kind: kind.into(),
            payload: Value::Object(payload),
            owner_id: if team_override.is_some() { None } else { owner },
            team_id: team,
        }],
    )
    .await?;
    Ok(())
}

/// One step up (URGENT stays URGENT).
fn raised(p: &str) -> &'static str {
    match TicketPriority::parse(p) {
        Some(TicketPriority::Low) => TicketPriority::Normal.as_str(),
        Some(TicketPriority::Normal) => TicketPriority::High.as_str(),
        _ => TicketPriority::Urgent.as_str(),
    }
}

/// Runs a breached clock's escalation on its ticket (in `tx`).
async fn escalate(
    tx: &mut crm_core::db::Tx,
    ticket: TicketRow,
    clock: &ClockRow,
    now: NaiveDateTime,
) -> Result<()> {
    let e: Escalation = serde_json::from_str(&clock.escalation).unwrap_or_default();
    let mut after = ticket.clone();
    if e.raise_priority {
        after.priority = raised(&ticket.priority).into();
    }
    if let Some(g) = &e.reassign_group_id
        && users::team(&mut tx.conn(), g).await?.is_some()
    {
        after.group_id = Some(g.clone());
    }
    let manager = match &ticket.group_id {
        Some(g) if e.notify_manager => users::team(&mut tx.conn(), g)
            .await?
            .and_then(|t| t.parent_id),
        _ => None,
    };
    if let Some(team) = manager {
        announce(
            &mut tx.conn(),
            &ticket,
            "sla.escalated",
            clock,
            now,
            Some(("managerTeamId", team.clone().into())),
            Some(team),
        )
        .await?;
    }
    if after.priority != ticket.priority || after.group_id != ticket.group_id {
        after.updated_at = crm_core::ids::now();
        let after = store::update_row::<Tickets>(&mut tx.conn(), &after, ticket.version).await?;
        // A new priority or group applies the policies again (unmet
        // clocks take the new targets), as any ticket change does.
        clocks::sync(&mut tx.conn(), Some(&ticket), &after, now).await?;
        store::record::<Tickets>(
            tx,
            &Principal::System,
            Some(&ticket),
            Some(&after),
            "escalated",
        )
        .await?;
    }
    Ok(())
}

/// Sends every warning and breach due now that no replica has sent;
/// returns how many events this process sent.
pub async fn send_due(app: &App) -> Result<usize> {
    let now = {
        let mut c = app.db.conn().await?;
        super::now(app, &mut c.conn()).await?
    };
    let due = {
        let mut c = app.db.conn().await?;
        clocks::due(&mut c.conn(), now, 200).await?
    };
    let mut sent = 0;
    for clock in due {
        for (column, kind, at) in [
            ("warned_at", "sla.warning", clock.warn_at),
            ("breached_at", "sla.breached", clock.due_at),
        ] {
            let unclaimed = if column == "warned_at" {
                clock.warned_at.is_none()
            } else {
                clock.breached_at.is_none()
            };
            if !unclaimed || at > now {
                continue;
            }
            let mut tx = app.db.begin().await?;
            if !claim(&mut tx.conn(), &clock.id, column, now).await? {
                continue; // another replica got it, or the clock stopped
            }
            let Some(ticket) =
                store::get::<Tickets>(&mut tx.conn(), &RowFilter::All, &clock.ticket_id).await?
            else {
                // A binned ticket: the claim stands, nothing is announced.
                app.commit(tx).await?;
                continue;
            };
            let current = clocks::get(&mut tx.conn(), &clock.id)
                .await?
                .unwrap_or_else(|| clock.clone());
            announce(&mut tx.conn(), &ticket, kind, &current, now, None, None).await?;
            if kind == "sla.breached" {
                escalate(&mut tx, ticket, &current, now).await?;
            }
            app.commit(tx).await?;
            sent += 1;
        }
    }
    Ok(sent)
}

/// Runs [`send_due`] every `period` until shutdown.
pub async fn run(app: App, period: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = send_due(&app).await {
            tracing::warn!(error = %e, "sending SLA warnings and breaches failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
    }
}
