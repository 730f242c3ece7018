//! Task reminders: each process polls for due reminders and claims each one
//! with a conditional update, so exactly one replica turns it into an event
//! (topic `reminders`), once, in the same transaction as the claim.

use std::time::Duration;

use crm_core::access::Actor;
use crm_core::app::App;
use crm_core::error::Result;
use crm_core::events::{self, NewEvent};
use crm_core::ids;
use serde_json::json;
use tokio::sync::watch;

use super::repo;

/// The event topic reminders are published on.
pub const TOPIC: &str = "reminders";

/// Sends every due reminder once; returns how many this process sent.
pub async fn send_due(app: &App) -> Result<usize> {
    let now = ids::now();
    let due = {
        let mut c = app.db.conn().await?;
        repo::due_reminders(&mut c.conn(), now, 100).await?
    };
    let mut sent = 0;
    for task in due {
        let mut tx = app.db.begin().await?;
        if !repo::claim_reminder(&mut tx.conn(), &task.id, now).await? {
            continue; // another replica got it
        }
        let who = task
            .assignee_id
            .clone()
            .unwrap_or_else(|| task.owner_id.clone());
        events::append(
            &mut tx.conn(),
            &Actor {
                kind: "system",
                id: None,
                credential: None,
            },
            &[NewEvent {
                topic: TOPIC,
                entity_type: "Activity",
                entity_id: task.id.clone(),
                kind: "activity.reminder".into(),
                payload: json!({
                    "title": task.title,
                    "dueAt": task.due_at.map(|t| t.and_utc()),
                    "assigneeId": task.assignee_id,
                    "subjectType": task.subject_type,
                    "subjectId": task.subject_id,
                }),
                owner_id: Some(who),
                team_id: None,
            }],
        )
        .await?;
        app.commit(tx).await?;
        sent += 1;
    }
    Ok(sent)
}

/// Runs [`send_due`] every second until shutdown.
pub async fn run(app: App, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = send_due(&app).await {
            tracing::warn!(error = %e, "sending reminders failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
