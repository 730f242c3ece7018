//! Decisions of the shipped model without casbin's matcher: casbin walks
//! every policy line through its expression engine (about a millisecond per
//! first decision on the shipped policy); here a decision reads only the
//! lines of the role and the roles it inherits. [`super::engine::Policy`]
//! uses it when `model.conf` is the shipped one and casbin otherwise.

use std::collections::HashMap;

use casbin::{CoreApi, Enforcer};

use super::lint::Parsed;

/// The shipped model decided directly: `role` may do `action` on `object`
/// when a line of the role or of a role it inherits (casbin's own role
/// manager answers that, hierarchy limit included) matches both with
/// `keyMatch` and allows, and no such line denies: the model's
/// `g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && keyMatch(r.act, p.act)`
/// with `some(allow) && !some(deny)`, looking only at the lines of the
/// role's ancestors. A unit test holds it equal to casbin on the shipped
/// policy.
pub(crate) struct Compiled {
    /// Lines per subject: (object, action, allow).
    lines: HashMap<String, Vec<(String, String, bool)>>,
}

impl Compiled {
    /// Compiles `parsed` when `model` is `shipped`, the shipped model (comments and
    /// spacing aside); any other model is left to casbin.
    pub(crate) fn for_model(model: &str, shipped: &str, parsed: &Parsed) -> Option<Compiled> {
        if normalized(model) != normalized(shipped) {
            return None;
        }
        let mut lines: HashMap<String, Vec<(String, String, bool)>> = HashMap::new();
        for r in &parsed.rules {
            lines.entry(r.role.clone()).or_default().push((
                r.object.clone(),
                r.action.clone(),
                r.effect == "allow",
            ));
        }
        Some(Compiled { lines })
    }

    pub(crate) fn allows(
        &self,
        enforcer: &Enforcer,
        role: &str,
        object: &str,
        action: &str,
    ) -> bool {
        use casbin::function_map::key_match;
        let rm = enforcer.get_role_manager();
        let rm = rm.read();
        let mut allowed = false;
        for (subject, lines) in &self.lines {
            if !rm.has_link(role, subject, None) {
                continue;
            }
            for (obj, act, allow) in lines {
                if key_match(object, obj) && key_match(action, act) {
                    if !allow {
                        return false;
                    }
                    allowed = true;
                }
            }
        }
        allowed
    }
}

/// A model text without comments, blank lines or spaces.
fn normalized(model: &str) -> Vec<String> {
    model
        .lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .replace(char::is_whitespace, "")
        })
        .filter(|l| !l.is_empty())
        .collect()
}
