//! What one subscriber may see of the event stream: per resource type its
//! read scope and readable fields, fixed when the subscription starts.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::Event;
use crate::access::{Principal, RowFilter, row_filter_for};
use crate::app::App;
use crate::error::Result;

/// A subscriber's view of events.
#[derive(Clone)]
pub struct EventView {
    teams: Vec<String>,
    types: Arc<HashMap<String, (RowFilter, Vec<String>)>>,
}

impl EventView {
    /// Computes the view for `p` from the policy in force.
    pub async fn for_principal(app: &App, p: &Principal) -> Result<EventView> {
        let policy = app.policy.current();
        let roles = p.effective_roles();
        let mut types = HashMap::new();
        let mut teams = Vec::new();
        for (ty, fields) in &app.policy.catalog().readable {
            let Ok(filter) = row_filter_for(app, p, ty, "read").await else {
                continue;
            };
            if let RowFilter::Team(t) = filter.owner_scope() {
                teams = t.clone();
            }
            let readable = fields
                .iter()
                .filter(|f| {
                    matches!(p, Principal::System)
                        || policy.any_allows(&roles, &format!("{ty}.{f}"), "read")
                })
                .cloned()
                .collect();
            types.insert(ty.clone(), (filter, readable));
        }
        Ok(EventView {
            teams,
            types: Arc::new(types),
        })
    }

    /// Events about a resource type follow that type's row scope; events
    /// about anything else (a session, say) follow the owner's `User` scope.
    pub fn visible(&self, e: &Event) -> bool {
        let key = if self.types.contains_key(&e.entity_type) {
            e.entity_type.as_str()
        } else {
            "User"
        };
        let Some((filter, _)) = self.types.get(key) else {
            return false;
        };
        // Events carry the owner, not the assignee: `assigned` rows are
        // not streamed beyond the owner scope.
        match filter.owner_scope() {
            RowFilter::All => true,
            RowFilter::Own(uid) => e.owner_id.as_deref() == Some(uid.as_str()),
            RowFilter::Team(_) => e.team_id.as_ref().is_some_and(|t| self.teams.contains(t)),
            RowFilter::Nothing | RowFilter::OrAssigned(..) => false,
        }
    }

    /// Drops changed fields the subscriber may not read from a payload.
    pub fn redact(&self, entity_type: &str, payload: &mut Value) {
        if let Some((_, readable)) = self.types.get(entity_type)
            && let Some(changed) = payload.get_mut("changed").and_then(|c| c.as_object_mut())
        {
            changed.retain(|k, _| readable.contains(k));
        }
    }
}
