//! Checks a policy before it is used: every line's shape, every name against
//! the catalog, and only matching forms that mean the same in every casbin
//! implementation (exact names, `*`, and a trailing `.*` / `:*` wildcard
//! through `keyMatch`). A typo must not silently open or close access.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::Catalog;

/// Roles every request has implicitly: `anonymous` without credentials,
/// `authenticated` with any valid credential.
pub const IMPLICIT_ROLES: &[&str] = &["anonymous", "authenticated"];

/// Row scopes, narrowest first.
pub const SCOPES: &[&str] = &["own", "team", "all"];

/// The scope of rows assigned to the caller, for types whose ownership
/// declaration names an assignee (`p, support, Activity, update:assigned, allow`).
pub const ASSIGNED: &str = "assigned";

/// The scope of rows routed to the caller's team or a team below it, for
/// types whose ownership declaration names a group (`p, support, Ticket,
/// read:group, allow`).
pub const GROUP: &str = "group";

/// One problem found, with its 1-based line number (0 for the whole file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// File name (`policy.csv`, `model.conf`).
    pub file: String,
    /// Line number, 1-based; 0 when about the whole file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// A `p` line: subject (role), object (resource), action, effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// 1-based line number.
    pub line: usize,
    /// Role.
    pub role: String,
    /// Resource: `Type`, `Type.field`, `Query.op`, with wildcards.
    pub object: String,
    /// Action: `read:own`, `create`, `write`, `call`, with wildcards.
    pub action: String,
    /// `allow` or `deny`.
    pub effect: String,
}

/// A `g` line: `role` inherits everything `parent` may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inherit {
    /// 1-based line number.
    pub line: usize,
    /// The inheriting role.
    pub role: String,
    /// The role inherited from.
    pub parent: String,
}

/// A parsed policy file.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// Permission lines.
    pub rules: Vec<Rule>,
    /// Inheritance lines.
    pub inherits: Vec<Inherit>,
}

impl Parsed {
    /// Every role the file defines (subjects of `p` and `g` lines).
    pub fn roles(&self) -> BTreeSet<String> {
        self.rules
            .iter()
            .map(|r| r.role.clone())
            .chain(self.inherits.iter().map(|g| g.role.clone()))
            .filter(|r| !IMPLICIT_ROLES.contains(&r.as_str()))
            .collect()
    }
}

fn is_role_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Parses and checks `text` (the contents of policy.csv) against `catalog`.
pub fn check_policy(text: &str, catalog: &Catalog) -> (Parsed, Vec<Problem>) {
    let mut parsed = Parsed::default();
    let mut problems = Vec::new();
    let mut problem = |line: usize, message: String| {
        problems.push(Problem {
            file: "policy.csv".into(),
            line,
            message,
        })
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.contains('"') {
            problem(line, "quotes are not allowed in policy lines".into());
            continue;
        }
        let parts: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        match parts[0] {
            "p" => {
                if parts.len() != 5 {
                    problem(
                        line,
                        format!(
                            "a p line needs 4 fields (role, resource, action, allow|deny), found {}",
                            parts.len() - 1
                        ),
                    );
                    continue;
                }
                let rule = Rule {
                    line,
                    role: parts[1].into(),
                    object: parts[2].into(),
                    action: parts[3].into(),
                    effect: parts[4].into(),
                };
                if !is_role_name(&rule.role) {
                    problem(
                        line,
                        format!("role {:?} must be lower_snake_case", rule.role),
                    );
                }
                if rule.effect != "allow" && rule.effect != "deny" {
                    problem(
                        line,
                        format!("effect must be allow or deny, not {:?}", rule.effect),
                    );
                }
                if let Err(m) = check_object_action(&rule.object, &rule.action, catalog) {
                    problem(line, m);
                }
                parsed.rules.push(rule);
            }
            "g" => {
                if parts.len() != 3 {
                    problem(
                        line,
                        format!(
                            "a g line needs 2 fields (role, parent role), found {}",
                            parts.len() - 1
                        ),
                    );
                    continue;
                }
                for r in &parts[1..] {
                    if !is_role_name(r) {
                        problem(line, format!("role {r:?} must be lower_snake_case"));
                    }
                }
                parsed.inherits.push(Inherit {
                    line,
                    role: parts[1].into(),
                    parent: parts[2].into(),
                });
            }
            other => problem(
                line,
                format!("unknown line type {other:?} (expected p or g)"),
            ),
        }
    }
    // Every inherited role must exist: a misspelt parent would silently grant
    // nothing.
    let defined: BTreeSet<&str> = parsed
        .rules
        .iter()
        .map(|r| r.role.as_str())
        .chain(parsed.inherits.iter().map(|g| g.role.as_str()))
        .collect();
    for r in &parsed.rules {
        if let Some(name) = r.object.strip_prefix("Role.")
            && name != "*"
            && !defined.contains(name)
        {
            problem(r.line, format!("role {name:?} is not defined by any line"));
        }
    }
    for g in &parsed.inherits {
        if !defined.contains(g.parent.as_str()) {
            problem(
                g.line,
                format!("role {:?} is not defined by any line", g.parent),
            );
        }
        if g.role == g.parent {
            problem(g.line, format!("role {:?} inherits from itself", g.role));
        }
    }
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for g in &parsed.inherits {
        graph
            .entry(g.role.as_str())
            .or_default()
            .push(g.parent.as_str());
    }
    for g in &parsed.inherits {
        // Walk up; meeting the start again is a cycle.
        let mut stack = vec![g.parent.as_str()];
        let mut seen = BTreeSet::new();
        while let Some(r) = stack.pop() {
            if r == g.role {
                problem(
                    g.line,
                    format!("role inheritance cycle through {:?}", g.role),
                );
                break;
            }
            if seen.insert(r) {
                stack.extend(graph.get(r).into_iter().flatten());
            }
        }
    }
    (parsed, problems)
}

/// Checks a wildcard: only `*` alone, or once at the very end after `sep`.
fn wildcard_ok(s: &str, sep: char) -> bool {
    match s.find('*') {
        None => true,
        Some(i) => {
            i == s.len() - 1
                && (s.len() == 1 || s[..i].ends_with(sep))
                && s.matches('*').count() == 1
        }
    }
}

fn check_object_action(object: &str, action: &str, catalog: &Catalog) -> Result<(), String> {
    if !wildcard_ok(object, '.') {
        return Err(format!(
            "resource {object:?}: `*` is allowed only alone or as a final `.*` (e.g. Account.*)"
        ));
    }
    if !wildcard_ok(action, ':') {
        return Err(format!(
            "action {action:?}: `*` is allowed only alone or as a final `:*` (e.g. read:*)"
        ));
    }
    if object
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '*' || c == '_'))
    {
        return Err(format!(
            "resource {object:?} has characters a type or field name cannot have"
        ));
    }
    if object == "*" {
        return Ok(());
    }
    let (ty, field) = match object.split_once('.') {
        Some((t, f)) => (t, Some(f)),
        None => (object, None),
    };
    if ty == "Role" {
        // `Role.<name>`: who may give that role to users and API keys.
        if field.is_none_or(str::is_empty) {
            return Err(format!(
                "resource {object:?}: name a role, e.g. Role.support or Role.*"
            ));
        }
        if action != super::grants::GRANT && action != "*" {
            return Err(format!("roles take the action `grant`, not {action:?}"));
        }
        return Ok(());
    }
    if action == super::grants::GRANT {
        return Err(format!(
            "the action `grant` applies to roles (Role.<name>), not {object:?}"
        ));
    }
    let is_root = matches!(ty, "Query" | "Mutation" | "Subscription");
    let scoped = |verb: &str| {
        action == verb
            || action == "*"
            || action
                .strip_prefix(verb)
                .and_then(|r| r.strip_prefix(':'))
                .is_some_and(|s| s == "*" || SCOPES.contains(&s))
    };
    let special = |verb: &str, scope: &str| {
        action
            .strip_prefix(verb)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|s| s == scope)
    };
    let assigned = |verb: &str| special(verb, ASSIGNED);
    let group = |verb: &str| special(verb, GROUP);
    if is_root {
        let Some(op) = field else {
            return Err(format!(
                "resource {object:?}: name an operation, e.g. {ty}.users or {ty}.*"
            ));
        };
        if op != "*" && !catalog.operations.contains(object) {
            return Err(format!("unknown operation {object:?}"));
        }
        if action != "call" && action != "*" {
            return Err(format!("operations take the action `call`, not {action:?}"));
        }
        return Ok(());
    }
    let Some(readable) = catalog.readable.get(ty) else {
        return Err(format!(
            "unknown type {ty:?} (not a resource of any compiled-in module)"
        ));
    };
    match field {
        None if ["read", "update", "delete"].iter().any(|v| assigned(v)) => {
            if !catalog.ownership(ty).assignee {
                return Err(format!(
                    "{ty} rows have no assignee, so the scope `{ASSIGNED}` cannot apply to them"
                ));
            }
        }
        None if ["read", "update", "delete"].iter().any(|v| group(v)) => {
            if !catalog.ownership(ty).group {
                return Err(format!(
                    "{ty} rows are not routed to a group, so the scope `{GROUP}` cannot apply to them"
                ));
            }
        }
        None => {
            let ok = action == "*"
                || action == "create"
                || scoped("read")
                || scoped("update")
                || scoped("delete");
            if !ok || matches!(action, "read" | "update" | "delete") {
                return Err(format!(
                    "type actions are read:<scope>, create, update:<scope>, delete:<scope> \
                     with scope own, team, all, * (or assigned, for types with an assignee; \
                     group, for types routed to a group); \
                     got {action:?}"
                ));
            }
        }
        Some(f) if f.starts_with("custom.") && readable.contains("custom") => {
            // Custom fields are defined at run time: any well-formed key.
            let key = &f["custom.".len()..];
            let ok = key == "*"
                || (key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            if !ok {
                return Err(format!(
                    "{object:?}: a custom field key is letters, digits and _"
                ));
            }
            if !matches!(action, "read" | "write" | "*") {
                return Err(format!("field actions are read and write, not {action:?}"));
            }
        }
        Some(f) => {
            let writable = &catalog.writable[ty];
            if f != "*" && !readable.contains(f) && !writable.contains(f) {
                return Err(format!("unknown field {object:?}"));
            }
            match action {
                "read" if f != "*" && !readable.contains(f) => {
                    return Err(format!("{object:?} can be written but not read"));
                }
                "write" if f != "*" && !writable.contains(f) => {
                    return Err(format!("{object:?} cannot be written through the API"));
                }
                "read" | "write" | "*" => {}
                _ => return Err(format!("field actions are read and write, not {action:?}")),
            }
        }
    }
    Ok(())
}

/// Checks model.conf: the matcher may only use `g` and `keyMatch`, whose
/// meaning is the same in every casbin implementation.
pub fn check_model(text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if !l.starts_with("m ") && !l.starts_with("m=") {
            continue;
        }
        let expr = l.split_once('=').map(|(_, e)| e).unwrap_or("");
        let mut rest = expr;
        while let Some(pos) = rest.find('(') {
            let before = &rest[..pos];
            let name: String = before
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if !name.is_empty() && name != "g" && name != "keyMatch" {
                problems.push(Problem {
                    file: "model.conf".into(),
                    line: i + 1,
                    message: format!(
                        "matcher function {name}() is not allowed: only g() and keyMatch() mean the same in every casbin implementation"
                    ),
                });
            }
            rest = &rest[pos + 1..];
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let sdl = "type Query { users: [User!]! me: User }
                   type Mutation { createUser(input: CreateUserInput!): User }
                   type User { id: ID! email: String! roles: [String!]! }
                   input CreateUserInput { email: String! password: String }";
        Catalog::from_sdl(sdl, &["User"])
    }

    #[test]
    fn finds_misspelt_names_with_line_numbers() {
        let text = "# comment\np, sales_rep, User, read:own, allow\np, sales_rep, User.emial, read, allow\n\
                    p, sales_rep, Query.userz, call, allow\np, x, Account, read:all, allow\n\
                    g, boss, nobody\np, r, User.*, read, allow\np, r, Us*, read, allow\n\
                    p, r, User, read, allow\np, r, User.password, read, allow\np, r, User.password, write, allow\n";
        let (parsed, problems) = check_policy(text, &catalog());
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 8, 9, 10, 6], "{problems:#?}");
        assert!(problems[0].message.contains("User.emial"));
        assert_eq!(parsed.rules.len(), 9);
    }

    #[test]
    fn role_grants_name_defined_roles() {
        let text = "p, r, User, read:own, allow\np, r, Role.r, grant, allow\np, r, Role.*, grant, allow\n\
                    p, r, Role.nobody, grant, allow\np, r, User, grant, allow\np, r, Role.r, read, allow\n\
                    p, r, Role, grant, allow\n";
        let (_, problems) = check_policy(text, &catalog());
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![5, 6, 7, 4], "{problems:#?}");
        assert!(problems[3].message.contains("nobody"));
    }

    #[test]
    fn assigned_scope_needs_a_declared_assignee() {
        let text = "p, r, User, update:assigned, allow\n";
        let (_, problems) = check_policy(text, &catalog());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].message.contains("no assignee"));
        let with = catalog()
            .with_ownership(&[crate::ownership::Ownership::column("User").with_assignee()]);
        let (_, problems) = check_policy(text, &with);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn group_scope_needs_a_declared_group() {
        let text = "p, r, User, read:group, allow\n";
        let (_, problems) = check_policy(text, &catalog());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].message.contains("not routed to a group"));
        let with =
            catalog().with_ownership(&[crate::ownership::Ownership::column("User").with_group()]);
        let (_, problems) = check_policy(text, &with);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn model_functions_are_restricted() {
        assert!(
            check_model("[matchers]\nm = g(r.sub, p.sub) && keyMatch(r.obj, p.obj)").is_empty()
        );
        let p = check_model("[matchers]\nm = g(r.sub, p.sub) && regexMatch(r.obj, p.obj)");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, 2);
    }
}
