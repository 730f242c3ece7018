//! The whole-request check: before anything runs, every operation the
//! request calls, every field it selects, every input field it sets and
//! every argument that filters, orders or changes a field (declared as
//! [`FieldUse`](super::catalog::FieldUse)s) is checked against the policy.
//! The result lists every offending name at once, so the caller can fix the
//! request in one go.
//!
//! It fails closed: the values checked are the ones execution will use
//! (literals, variables, and the defaults of variables, arguments and input
//! fields), and a document the check cannot follow (no operation to run,
//! an unknown field, type, fragment or variable) is refused as invalid
//! rather than passed on.

use std::collections::{BTreeSet, HashMap, HashSet};

use async_graphql::Variables;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
    SelectionSet,
};
use async_graphql::{Name, Value};

use super::catalog::{Catalog, UseAction};
use super::engine::Policy;

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The document cannot be checked (and so may not run): why, and the
    /// names it may have meant (for an unknown field).
    Invalid(String, Vec<String>),
    /// Names the caller may not call, read or write.
    Denied(Vec<String>),
}

struct Walk<'a> {
    catalog: &'a Catalog,
    policy: &'a Policy,
    roles: &'a [String],
    doc: &'a ExecutableDocument,
    variables: HashMap<Name, Value>,
    denied: BTreeSet<String>,
    visiting: HashSet<Name>,
    meant: Vec<String>,
}

/// The operation a request runs, as execution picks it; an error message
/// when there is none.
pub fn operation<'d>(
    doc: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Result<&'d OperationDefinition, String> {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), None) => Ok(&op.node),
        (DocumentOperations::Single(_), Some(name)) => Err(format!(
            "operationName `{name}` names no operation in the document"
        )),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get(name)
            .map(|o| &o.node)
            .ok_or_else(|| format!("operationName `{name}` names no operation in the document")),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .values()
            .next()
            .map(|o| &o.node)
            .ok_or_else(|| "the document has no operation".to_owned()),
        (DocumentOperations::Multiple(ops), None) if ops.is_empty() => {
            Err("the document has no operation".to_owned())
        }
        (DocumentOperations::Multiple(_), None) => {
            Err("the document has several operations: operationName must name one".to_owned())
        }
    }
}

/// Whether `roles` may read field `field` of resource type `ty`: a read
/// scope on the type, `read` on the field, and a read scope on every
/// resource type the field leads to (`Contact.tags` needs `Tag`). The one
/// decision both the request check and `myPermissions` use.
pub fn field_readable(
    catalog: &Catalog,
    policy: &Policy,
    roles: &[String],
    ty: &str,
    field: &str,
) -> bool {
    policy.has_scope(roles, ty, "read")
        && policy.any_allows(roles, &format!("{ty}.{field}"), "read")
        && catalog
            .types
            .get(ty)
            .and_then(|t| t.get(field))
            .is_none_or(|info| {
                catalog
                    .reached(&info.ty)
                    .all(|r| policy.has_scope(roles, r, "read"))
            })
}

/// Checks a request: `Ok(())` when everything is allowed, otherwise why not.
pub fn check(
    catalog: &Catalog,
    policy: &Policy,
    roles: &[String],
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> Result<(), Refusal> {
    let op = operation(doc, operation_name).map_err(|m| Refusal::Invalid(m, Vec::new()))?;
    let root = match op.ty {
        OperationType::Query => "Query",
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => "Subscription",
    };
    // The value each variable will have: the one sent, else its default,
    // else none (null).
    let mut values = HashMap::new();
    for def in &op.variable_definitions {
        let name = def.node.name.node.clone();
        let v = variables
            .get(&name)
            .cloned()
            .or_else(|| def.node.default_value.as_ref().map(|d| d.node.clone()))
            .unwrap_or(Value::Null);
        values.insert(name, v);
    }
    let mut w = Walk {
        catalog,
        policy,
        roles,
        doc,
        variables: values,
        denied: BTreeSet::new(),
        visiting: HashSet::new(),
        meant: Vec::new(),
    };
    w.selection_set(root, &op.selection_set.node).map_err(|m| {
        let meant = w.meant.clone();
        Refusal::Invalid(m, meant)
    })?;
    if w.denied.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Denied(w.denied.into_iter().collect()))
    }
}

impl Walk<'_> {
    fn selection_set(&mut self, parent: &str, set: &SelectionSet) -> Result<(), String> {
        if !set.items.is_empty() && !self.catalog.types.contains_key(parent) {
            return Err(format!("unknown type `{parent}`"));
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    let name = f.name.node.as_str();
                    if name.starts_with("__") {
                        continue;
                    }
                    let fields = self.catalog.types.get(parent);
                    let Some(info) = fields.and_then(|t| t.get(name)) else {
                        self.meant = fields
                            .into_iter()
                            .flat_map(|t| t.keys())
                            .filter(|k| close(k, name))
                            .cloned()
                            .collect();
                        self.meant.sort();
                        return Err(format!("unknown field `{name}` on `{parent}`"));
                    };
                    let resource = format!("{parent}.{name}");
                    if matches!(parent, "Query" | "Mutation" | "Subscription") {
                        if !self.policy.any_allows(self.roles, &resource, "call") {
                            self.denied.insert(resource.clone());
                        }
                    } else if self.catalog.is_resource(parent)
                        && !field_readable(self.catalog, self.policy, self.roles, parent, name)
                    {
                        self.denied.insert(resource.clone());
                    } else {
                        // A computed field of a plain type reads what its
                        // declared uses name.
                        self.uses(&resource, &Value::Boolean(true));
                    }
                    let mut given = HashSet::new();
                    for (arg_name, value) in &f.arguments {
                        let arg = arg_name.node.as_str();
                        given.insert(arg);
                        let Some(ty) = info.args.get(arg) else {
                            return Err(format!("unknown argument `{arg}` of `{resource}`"));
                        };
                        let vars = &self.variables;
                        let v = value.node.clone().into_const_with(|n| {
                            vars.get(&n)
                                .cloned()
                                .ok_or_else(|| format!("variable `${n}` is not defined"))
                        })?;
                        self.argument(&resource, arg, ty, &v);
                    }
                    for (arg, default) in &info.defaults {
                        if !given.contains(arg.as_str())
                            && let Some(ty) = info.args.get(arg)
                        {
                            self.argument(&resource, arg, ty, default);
                        }
                    }
                    self.selection_set(&info.ty, &f.selection_set.node)?;
                }
                Selection::InlineFragment(frag) => {
                    let frag = &frag.node;
                    let ty = frag
                        .type_condition
                        .as_ref()
                        .map(|c| c.node.on.node.to_string())
                        .unwrap_or_else(|| parent.to_owned());
                    self.selection_set(&ty, &frag.selection_set.node)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    let Some(frag) = self.doc.fragments.get(name) else {
                        return Err(format!("unknown fragment `{name}`"));
                    };
                    if !self.visiting.insert(name.clone()) {
                        return Err(format!("fragment `{name}` spreads itself"));
                    }
                    let ty = frag.node.type_condition.node.on.node.to_string();
                    self.selection_set(&ty, &frag.node.selection_set.node)?;
                    self.visiting.remove(name);
                }
            }
        }
        Ok(())
    }

    /// Checks argument `arg` of `field` (`Mutation.assignAccounts`) with
    /// value `value` of input type `ty`.
    fn argument(&mut self, field: &str, arg: &str, ty: &str, value: &Value) {
        self.uses(&format!("{field}({arg})"), value);
        self.input(ty, value);
    }

    /// Applies the [`FieldUse`]s declared at `at` to the value given there.
    fn uses(&mut self, at: &str, value: &Value) {
        let Some(uses) = self.catalog.uses.get(at) else {
            return;
        };
        for u in uses {
            // No filter / no order given reads nothing; null written is a write.
            if u.action == UseAction::Read && *value == Value::Null {
                continue;
            }
            for f in u.fields {
                for name in expand(f, value) {
                    if !self.policy.any_allows(self.roles, &name, u.action.as_str()) {
                        self.denied.insert(name);
                    }
                }
            }
        }
    }

    /// Walks a value of input type `ty`, checking write rights for every
    /// field set on an input that writes a resource, and the declared uses
    /// of every input field and enum value given (or defaulted).
    fn input(&mut self, ty: &str, value: &Value) {
        match value {
            Value::List(items) => {
                for i in items {
                    self.input(ty, i);
                }
            }
            Value::Enum(v) => self.uses(&format!("{ty}.{v}"), value),
            Value::String(v) if self.catalog.enums.contains_key(ty) => {
                self.uses(&format!("{ty}.{v}"), value);
            }
            Value::Object(fields) => {
                let Some(input) = self.catalog.inputs.get(ty) else {
                    return;
                };
                let resource = self.catalog.writes.get(ty).cloned();
                for (k, v) in fields {
                    let key = k.as_str();
                    if let Some(r) = &resource
                        && self
                            .catalog
                            .writable
                            .get(r)
                            .is_some_and(|w| w.contains(key))
                    {
                        let name = format!("{r}.{key}");
                        if !self.policy.any_allows(self.roles, &name, "write") {
                            self.denied.insert(name);
                        }
                    }
                    self.uses(&format!("{ty}.{key}"), v);
                    if let Some(field_ty) = input.get(key) {
                        self.input(field_ty, v);
                    }
                }
                // Defaults of fields left out are used too (an order
                // without `field` sorts by its default).
                if let Some(defaults) = self.catalog.input_defaults.get(ty) {
                    for (key, v) in defaults {
                        if !fields.contains_key(key.as_str()) {
                            self.uses(&format!("{ty}.{key}"), v);
                            if let Some(field_ty) = input.get(key) {
                                self.input(field_ty, v);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether `a` is close enough to `b` to suggest it (edit distance at most
/// a third of the name's length).
fn close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()] <= (b.len() / 3).max(1)
}

/// The policy names a declared field stands for, given the value: itself,
/// or with `{}` / `{name}` replaced by the string(s) given.
fn expand(field: &str, value: &Value) -> Vec<String> {
    let Some((prefix, rest)) = field.split_once('{') else {
        return vec![field.to_owned()];
    };
    let key = rest.trim_end_matches('}');
    let mut out = Vec::new();
    let mut push = |v: &Value| {
        let s = match (v, key) {
            (Value::String(s), "") => Some(s),
            (Value::Object(o), k) if !k.is_empty() => match o.get(k) {
                Some(Value::String(s)) => Some(s),
                _ => None,
            },
            _ => None,
        };
        if let Some(s) = s {
            out.push(format!("{prefix}{s}"));
        }
    };
    match value {
        Value::List(items) => items.iter().for_each(&mut push),
        v => push(v),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::catalog::FieldUse;
    use super::*;

    const SDL: &str = "type Query { me: User users(filter: UserFilter, order: Order = {}): [User!]!
                      stats: Stats }
        type Stats { count: Int! secrets: Int! }
        type Mutation { updateUser(input: UpdateUserInput!): User
                        rename(id: ID!, name: String!): User }
        type User { id: ID! name: String! secret: String! friends: [Friend!]! }
        type Friend { id: ID! }
        input UpdateUserInput { id: ID! name: String secret: String }
        input UserFilter { secret: String }
        input Order { field: OrderField! = SECRET }
        enum OrderField { NAME SECRET }";

    const USES: &[FieldUse] = &[
        FieldUse::write("Mutation.rename(name)", &["User.name"]),
        FieldUse::read("UserFilter.secret", &["User.secret"]),
        FieldUse::read("Order.field", &[]),
        FieldUse::read("OrderField.NAME", &["User.name"]),
        FieldUse::read("OrderField.SECRET", &["User.secret"]),
        FieldUse::read("Stats.secrets", &["User.secret"]),
    ];

    async fn setup() -> (Catalog, Policy) {
        let catalog = Catalog::from_sdl(SDL, &["User", "Friend"]).with_uses(USES);
        assert!(catalog.problems.is_empty(), "{:?}", catalog.problems);
        let model = super::super::engine::DEFAULT_MODEL;
        let policy = "p, r, Query.me, call, allow\np, r, Query.users, call, allow\n\
                      p, r, Query.stats, call, allow\n\
                      p, r, Mutation.updateUser, call, allow\np, r, Mutation.rename, call, allow\n\
                      p, r, User, read:all, allow\np, r, User.id, read, allow\n\
                      p, r, User.friends, read, allow\np, r, Friend.id, read, allow\n";
        let policy = Policy::build(model, policy, &catalog, 1, "test".into())
            .await
            .unwrap();
        (catalog, policy)
    }

    fn run(
        c: &Catalog,
        p: &Policy,
        q: &str,
        name: Option<&str>,
        vars: &str,
    ) -> Result<(), Refusal> {
        let doc = async_graphql::parser::parse_query(q).unwrap();
        let vars = Variables::from_json(serde_json::from_str(vars).unwrap());
        check(c, p, &["r".to_owned()], &doc, name, &vars)
    }

    #[tokio::test]
    async fn a_computed_field_reads_what_it_is_computed_from() {
        let (c, p) = setup().await;
        assert_eq!(run(&c, &p, "{ stats { count } }", None, "{}"), Ok(()));
        assert_eq!(
            run(&c, &p, "{ stats { count secrets } }", None, "{}"),
            denied(&["User.secret"])
        );
        let bad = Catalog::from_sdl(SDL, &["User", "Friend"]).with_uses(&[
            FieldUse::read("Stats.nothing", &["User.secret"]),
            FieldUse::read("User.name", &["User.secret"]),
        ]);
        assert_eq!(bad.problems.len(), 2, "{:?}", bad.problems);
    }

    fn denied(names: &[&str]) -> Result<(), Refusal> {
        Err(Refusal::Denied(
            names.iter().map(|s| s.to_string()).collect(),
        ))
    }

    #[tokio::test]
    async fn documents_it_cannot_follow_are_refused() {
        let (c, p) = setup().await;
        let invalid = |r: Result<(), Refusal>| matches!(r, Err(Refusal::Invalid(..)));
        // Several operations and no name, or a name that is not there.
        let two = "query A { me { id } } query B { me { id } }";
        assert!(invalid(run(&c, &p, two, None, "{}")));
        assert!(invalid(run(&c, &p, two, Some("C"), "{}")));
        assert!(invalid(run(&c, &p, "{ me { id } }", Some("A"), "{}")));
        assert_eq!(run(&c, &p, two, Some("B"), "{}"), Ok(()));
        // Unknown fields, fragments, types, variables.
        assert!(invalid(run(&c, &p, "{ me { nope } }", None, "{}")));
        assert!(invalid(run(&c, &p, "{ me { ...F } }", None, "{}")));
        assert!(invalid(run(
            &c,
            &p,
            "{ me { ... on Nope { id } } }",
            None,
            "{}"
        )));
        assert!(invalid(run(
            &c,
            &p,
            "mutation { rename(id: \"1\", name: $n) { id } }",
            None,
            "{}"
        )));
        assert!(invalid(run(
            &c,
            &p,
            "{ me { ...F } } fragment F on User { ...F }",
            None,
            "{}"
        )));
    }

    #[tokio::test]
    async fn checks_the_values_execution_will_use() {
        let (c, p) = setup().await;
        // A variable's default is checked like a literal.
        let q = "mutation($i: UpdateUserInput! = {id: \"1\", secret: \"x\"}) { updateUser(input: $i) { id } }";
        assert_eq!(run(&c, &p, q, None, "{}"), denied(&["User.secret"]));
        // Variables nested in literals.
        let q = "mutation($s: String) { updateUser(input: {id: \"1\", secret: $s}) { id } }";
        assert_eq!(
            run(&c, &p, q, None, "{\"s\": \"x\"}"),
            denied(&["User.secret"])
        );
        // Declared scalar arguments, filters, enum values and their defaults.
        let q = "mutation { rename(id: \"1\", name: \"x\") { id } }";
        assert_eq!(run(&c, &p, q, None, "{}"), denied(&["User.name"]));
        let q = "query($f: UserFilter) { users(filter: $f) { id } }";
        assert_eq!(
            run(&c, &p, q, None, "{\"f\": {\"secret\": \"a\"}}"),
            denied(&["User.secret"])
        );
        // `order` defaults to `{}`, whose `field` defaults to SECRET.
        assert_eq!(
            run(&c, &p, "{ users { id } }", None, "{}"),
            denied(&["User.secret"])
        );
        let q = "query($o: OrderField!) { users(order: {field: $o}) { id } }";
        assert_eq!(
            run(&c, &p, q, None, "{\"o\": \"NAME\"}"),
            denied(&["User.name"])
        );
        // A field leading to a type without read scope is not readable,
        // whatever is selected below it.
        assert_eq!(
            run(&c, &p, "{ me { friends { __typename } } }", None, "{}"),
            denied(&["User.friends"])
        );
        assert!(!field_readable(
            &c,
            &p,
            &["r".to_owned()],
            "User",
            "friends"
        ));
        assert!(field_readable(&c, &p, &["r".to_owned()], "User", "id"));
    }
}
