//! What one subscriber may see of the event stream: per resource type its
//! read scope and readable fields. Computed when the subscription starts and
//! again whenever the policy or the caller's rights ([`LiveCredentials`])
//! change. Events about any other entity type follow the policy's rules for
//! that type name too (no scope: not shown), never another type's scope.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::Event;
use crate::access::{Principal, RowFilter, row_filter_for};
use crate::app::App;
use crate::error::Result;
use crate::policy::{Policy, Scope};

/// The credentials a long-lived operation (a WebSocket subscription) was
/// started with. An event stream that has them authenticates them again
/// whenever identity changes (a logout, a revoked key, a deactivation, new
/// roles), in event order, so later events follow the caller's rights as
/// they are now, and a revoked caller gets nothing more.
#[derive(Clone)]
pub struct LiveCredentials(pub Option<String>);

/// A subscriber's view of events.
#[derive(Clone)]
pub struct EventView {
    teams: Vec<String>,
    types: Arc<HashMap<String, (RowFilter, Vec<String>)>>,
    /// For entity types that are not policy resources, and custom field
    /// values (`custom.<key>`), which are readable per key.
    policy: Arc<Policy>,
    roles: Arc<Vec<String>>,
    user: Option<String>,
    system: bool,
}

impl EventView {
    /// Computes the view for `p` from the policy in force.
    pub async fn for_principal(app: &App, p: &Principal) -> Result<EventView> {
        let policy = app.policy.current();
        let roles = p.effective_roles();
        let system = p.is_system();
        let catalog = app.policy.catalog();
        let mut types = HashMap::new();
        let mut teams = Vec::new();
        for (ty, fields) in &catalog.readable {
            let Ok(filter) = row_filter_for(app, p, ty, "read").await else {
                continue;
            };
            if let RowFilter::Team(t) = filter.owner_scope() {
                teams = t.clone();
            }
            let readable = fields
                .iter()
                .filter(|f| {
                    system || crate::policy::check::field_readable(catalog, &policy, &roles, ty, f)
                })
                .cloned()
                .collect();
            types.insert(ty.clone(), (filter, readable));
        }
        Ok(EventView {
            teams,
            types: Arc::new(types),
            policy,
            roles: Arc::new(roles),
            user: p.user_id().map(str::to_owned),
            system,
        })
    }

    /// Events about a resource type follow that type's row scope; events
    /// about another entity type (a session token, say) follow the policy's
    /// read scope for that type name (admins' `*`), or are not shown.
    pub fn visible(&self, e: &Event) -> bool {
        if self.system {
            return true;
        }
        let filter = match self.types.get(&e.entity_type) {
            Some((f, _)) => f.clone(),
            None => match self.policy.scope(&self.roles, &e.entity_type, "read") {
                None => return false,
                Some(Scope::All) => RowFilter::All,
                Some(Scope::Own) => match &self.user {
                    Some(u) => RowFilter::Own(u.clone()),
                    None => RowFilter::Nothing,
                },
                Some(Scope::Team) => RowFilter::Team(self.teams.clone()),
            },
        };
        // Events carry the owner and the owner's team; events of routed
        // records (`entity::Scope::Routed`) also carry their group and
        // assignee (`entity::ROUTING_KEY`), which the scopes `group` and
        // `assigned` match. Other events are not streamed beyond the owner
        // scope.
        let routing = || {
            serde_json::from_str::<Value>(&e.payload)
                .ok()
                .and_then(|p| p.get(crate::entity::ROUTING_KEY).cloned())
                .unwrap_or_default()
        };
        self.admits(&filter, e, &routing)
    }

    fn admits(&self, filter: &RowFilter, e: &Event, routing: &dyn Fn() -> Value) -> bool {
        let routed = |key: &str| {
            routing()
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match filter {
            RowFilter::All => true,
            RowFilter::Own(uid) => e.owner_id.as_deref() == Some(uid.as_str()),
            RowFilter::Team(_) => e.team_id.as_ref().is_some_and(|t| self.teams.contains(t)),
            RowFilter::Nothing => false,
            RowFilter::OrAssigned(inner, me) => {
                self.admits(inner, e, routing) || routed("assignee").is_some_and(|a| &a == me)
            }
            RowFilter::OrGroup(inner, teams) => {
                self.admits(inner, e, routing)
                    || routed("group").is_some_and(|g| teams.contains(&g))
            }
        }
    }

    /// Drops changed fields the subscriber may not read from a payload
    /// (their new values in `changed` and old ones in `before`).
    pub fn redact(&self, entity_type: &str, payload: &mut Value) {
        if self.system {
            return;
        }
        let custom_readable = |key: &str| {
            self.policy
                .any_allows(&self.roles, &format!("{entity_type}.custom.{key}"), "read")
        };
        let keep = |k: &str| match self.types.get(entity_type) {
            Some((_, readable)) => match k.strip_prefix("custom.") {
                Some(key) => readable.iter().any(|f| f == "custom") && custom_readable(key),
                None => readable.iter().any(|f| f == k),
            },
            None => self
                .policy
                .any_allows(&self.roles, &format!("{entity_type}.{k}"), "read"),
        };
        for part in ["changed", "before"] {
            if let Some(values) = payload.get_mut(part).and_then(|c| c.as_object_mut()) {
                values.retain(|k, _| keep(k));
            }
        }
    }

    /// The event as this subscriber may see it: its payload with the
    /// fields it may not read removed, or `None` when the event is outside
    /// its row scope, or when every field the event changed is hidden from
    /// it (an update of hidden fields alone would still tell it that
    /// something it may not see moved). Subscriptions and webhooks both
    /// deliver through this.
    pub fn present(&self, e: &Event) -> Option<Value> {
        if !self.visible(e) {
            return None;
        }
        let mut payload: Value = serde_json::from_str(&e.payload).unwrap_or_default();
        if let Some(p) = payload.as_object_mut() {
            p.remove(crate::entity::ROUTING_KEY);
        }
        let had_changes = changed_count(&payload) > 0;
        self.redact(&e.entity_type, &mut payload);
        if had_changes && changed_count(&payload) == 0 {
            return None;
        }
        Some(payload)
    }
}

fn changed_count(payload: &Value) -> usize {
    payload
        .get("changed")
        .and_then(Value::as_object)
        .map_or(0, |c| c.len())
}
