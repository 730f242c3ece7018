//! Recording a change: one call that writes the audit entry and the outbox
//! event for a mutation, inside the mutation's own transaction.

use serde_json::{Map, Value};

use crate::access::Actor;
use crate::audit::{self, FieldChange};
use crate::db::Conn;
use crate::error::Result;
use crate::events::{self, NewEvent};

/// What changed.
#[derive(Clone, Debug)]
pub struct Change {
    /// Event topic (`identity`, `customers`, …).
    pub topic: &'static str,
    /// Entity type (`User`).
    pub entity_type: &'static str,
    /// Entity id.
    pub entity_id: String,
    /// Verb for audit and event kind (`created`, `updated`, `deactivated`…).
    pub action: &'static str,
    /// Snapshot of the public fields before (None on create).
    pub before: Option<Value>,
    /// Snapshot after (None on delete).
    pub after: Option<Value>,
    /// The user who owns the record (row scope of subscribers).
    pub owner_id: Option<String>,
    /// The owner's team, or the team itself for teams. When None and an
    /// owner is given, the owner's current team is looked up.
    pub team_id: Option<String>,
}

/// Writes the audit entry and the event for `change`; returns the field
/// changes. Call it last in the transaction (see [`events`] on why).
pub async fn record(
    conn: &mut Conn<'_>,
    actor: &Actor,
    change: Change,
) -> Result<Vec<FieldChange>> {
    write(conn, actor, change, None, None).await
}

/// [`record`] with `context` keys added to the event's payload beside
/// `changed` (see `entity::Entity::event_context`).
pub async fn record_in_context(
    conn: &mut Conn<'_>,
    actor: &Actor,
    context: Option<Map<String, Value>>,
    change: Change,
) -> Result<Vec<FieldChange>> {
    write(conn, actor, change, None, context).await
}

/// [`record`] for a change the actor did not make to this record directly
/// but caused (a merge re-pointing another owner's timeline entry, a purge
/// detaching contacts): the audit entry keeps `reason` (e.g. `merge
/// mrg_…`), so every such write names why it happened.
pub async fn record_because(
    conn: &mut Conn<'_>,
    actor: &Actor,
    reason: &str,
    change: Change,
) -> Result<Vec<FieldChange>> {
    write(conn, actor, change, Some(reason), None).await
}

async fn write(
    conn: &mut Conn<'_>,
    actor: &Actor,
    change: Change,
    reason: Option<&str>,
    context: Option<Map<String, Value>>,
) -> Result<Vec<FieldChange>> {
    let changes = audit::diff(change.before.as_ref(), change.after.as_ref());
    let team_id = match (&change.team_id, &change.owner_id) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(owner)) => crate::identity::repo::user(conn, owner)
            .await?
            .and_then(|u| u.team_id),
        (None, None) => None,
    };
    audit::record_with_reason(
        conn,
        actor,
        change.entity_type,
        &change.entity_id,
        change.action,
        &changes,
        reason,
    )
    .await?;
    let payload = payload(&changes, change.before.is_some(), context);
    let kind = format!("{}.{}", snake_case(change.entity_type), change.action);
    events::append(
        conn,
        actor,
        &[NewEvent {
            topic: change.topic,
            entity_type: change.entity_type,
            entity_id: change.entity_id,
            kind,
            payload,
            owner_id: change.owner_id,
            team_id,
        }],
    )
    .await?;
    Ok(changes)
}

/// [`record`] for many changes at once (bulk operations such as imports):
/// the same audit entries and events, written with multi-row inserts.
pub async fn record_many(conn: &mut Conn<'_>, actor: &Actor, changes: &[Change]) -> Result<()> {
    write_many(conn, actor, changes, None, &[]).await
}

/// [`record_many`] with each change's event `context` (see
/// [`record_in_context`]; `contexts[i]` belongs to `changes[i]`).
pub async fn record_many_in_context(
    conn: &mut Conn<'_>,
    actor: &Actor,
    changes: &[Change],
    contexts: &[Option<Map<String, Value>>],
) -> Result<()> {
    write_many(conn, actor, changes, None, contexts).await
}

/// [`record_many`] for changes the actor caused rather than made (see
/// [`record_because`]); every audit entry keeps `reason`.
pub async fn record_many_because(
    conn: &mut Conn<'_>,
    actor: &Actor,
    reason: &str,
    changes: &[Change],
) -> Result<()> {
    write_many(conn, actor, changes, Some(reason), &[]).await
}

async fn write_many(
    conn: &mut Conn<'_>,
    actor: &Actor,
    changes: &[Change],
    reason: Option<&str>,
    contexts: &[Option<Map<String, Value>>],
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut teams: std::collections::HashMap<String, Option<String>> = Default::default();
    let mut diffs = Vec::with_capacity(changes.len());
    let mut events_out = Vec::with_capacity(changes.len());
    for (i, change) in changes.iter().enumerate() {
        let diff = audit::diff(change.before.as_ref(), change.after.as_ref());
        let team_id = match (&change.team_id, &change.owner_id) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(owner)) => match teams.get(owner) {
                Some(t) => t.clone(),
                None => {
                    let t = crate::identity::repo::user(conn, owner)
                        .await?
                        .and_then(|u| u.team_id);
                    teams.insert(owner.clone(), t.clone());
                    t
                }
            },
            (None, None) => None,
        };
        events_out.push(NewEvent {
            topic: change.topic,
            entity_type: change.entity_type,
            entity_id: change.entity_id.clone(),
            kind: format!("{}.{}", snake_case(change.entity_type), change.action),
            payload: payload(
                &diff,
                change.before.is_some(),
                contexts.get(i).cloned().flatten(),
            ),
            owner_id: change.owner_id.clone(),
            team_id,
        });
        diffs.push(diff);
    }
    let entries: Vec<audit::Entry<'_>> = changes
        .iter()
        .zip(&diffs)
        .map(|(c, d)| audit::Entry {
            entity_type: c.entity_type,
            entity_id: &c.entity_id,
            action: c.action,
            changes: d,
            reason,
        })
        .collect();
    audit::record_many(conn, actor, &entries).await?;
    events::append(conn, actor, &events_out).await
}

/// An event's payload: `changed` holds each changed field's new value and,
/// when the record existed before, `before` its old one (webhooks deliver
/// both; subscribers see the fields they may read of each).
fn payload(changes: &[FieldChange], existed: bool, context: Option<Map<String, Value>>) -> Value {
    let after: Map<String, Value> = changes
        .iter()
        .map(|c| (c.field.clone(), c.new.clone()))
        .collect();
    let mut out = context.unwrap_or_default();
    out.insert("changed".into(), Value::Object(after));
    if existed {
        let before: Map<String, Value> = changes
            .iter()
            .map(|c| (c.field.clone(), c.old.clone()))
            .collect();
        out.insert("before".into(), Value::Object(before));
    }
    Value::Object(out)
}

/// `ApiKey` -> `api_key`, for event kinds.
fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, ch) in s.chars().enumerate() {
        if ch.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn kinds_are_snake_case() {
        assert_eq!(super::snake_case("ApiKey"), "api_key");
        assert_eq!(super::snake_case("User"), "user");
    }
}
