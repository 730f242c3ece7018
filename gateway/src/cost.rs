//! What a request will cost, and whether its input values are acceptable,
//! decided before anything executes.
//!
//! **Cost.** Every selected field counts 1; a field returning a connection
//! (a Relay list) multiplies the cost of everything below it by the page size
//! the request asks for (`last`, else `first`, with variables and their
//! defaults resolved) or the default page size when it asks for none. So
//! `accounts(first: 100) { edges { node { contacts(first: 100) { … } } } }`
//! costs what it would fetch, not the handful of fields it names. The
//! gateway charges a batch the sum of its operations against `max-cost`.
//!
//! **Input values.** Every string in the variables and in the document's
//! argument literals is refused if it holds a NUL character (PostgreSQL
//! cannot store one) or is longer than `max-string-bytes` (SQLite refuses
//! long LIKE patterns; nothing in a CRM needs more). An enum value written as
//! a string literal (`stage: "ACTIVE"`) is refused, as the GraphQL
//! specification asks: enum literals are written without quotes.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
    Type, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Value as ConstValue, Variables};
use crm_core::config::Limits;
use crm_core::error::FieldError;
use crm_core::paging::{DEFAULT_PAGE, MAX_PAGE};

/// An output field's type information.
struct FieldDef {
    /// Named type it returns.
    ty: String,
    /// Argument name to named input type.
    args: HashMap<String, String>,
    /// Returns a paged connection (`first`/`last` set its size).
    connection: bool,
}

/// The schema's type information the walk needs.
#[derive(Default)]
struct Types {
    outputs: HashMap<String, HashMap<String, FieldDef>>,
    inputs: HashMap<String, HashMap<String, String>>,
    /// Input object fields with their full types and whether they have a
    /// default, for checking variable values.
    input_fields: HashMap<String, Vec<(String, Type, bool)>>,
    /// Enum type to its values.
    enum_values: HashMap<String, HashSet<String>>,
    enums: HashSet<String>,
}

fn named(t: &Type) -> String {
    match &t.base {
        BaseType::Named(n) => n.to_string(),
        BaseType::List(inner) => named(inner),
    }
}

impl Types {
    fn from_sdl(sdl: &str) -> Types {
        let doc = async_graphql::parser::parse_schema(sdl).expect("the built schema's SDL parses");
        let mut t = Types::default();
        for def in doc.definitions {
            let TypeSystemDefinition::Type(def) = def else {
                continue;
            };
            let def = def.node;
            let name = def.name.node.to_string();
            let fields = match def.kind {
                TypeKind::Object(o) => o.fields,
                TypeKind::Interface(i) => i.fields,
                TypeKind::InputObject(i) => {
                    t.input_fields.insert(
                        name.clone(),
                        i.fields
                            .iter()
                            .map(|f| {
                                (
                                    f.node.name.node.to_string(),
                                    f.node.ty.node.clone(),
                                    f.node.default_value.is_some(),
                                )
                            })
                            .collect(),
                    );
                    let fields = i
                        .fields
                        .into_iter()
                        .map(|f| (f.node.name.node.to_string(), named(&f.node.ty.node)))
                        .collect();
                    t.inputs.insert(name, fields);
                    continue;
                }
                TypeKind::Enum(e) => {
                    t.enum_values.insert(
                        name.clone(),
                        e.values
                            .iter()
                            .map(|v| v.node.value.node.to_string())
                            .collect(),
                    );
                    t.enums.insert(name);
                    continue;
                }
                // Written as an enum (its values come from the registry).
                TypeKind::Scalar if name == crm_core::entity::subject::SCALAR => {
                    t.enums.insert(name);
                    continue;
                }
                _ => continue,
            };
            let fields = fields
                .into_iter()
                .map(|f| {
                    let f = f.node;
                    let args: HashMap<String, String> = f
                        .arguments
                        .into_iter()
                        .map(|a| (a.node.name.node.to_string(), named(&a.node.ty.node)))
                        .collect();
                    let ty = named(&f.ty.node);
                    let connection = ty.ends_with("Connection")
                        && (args.contains_key("first") || args.contains_key("last"));
                    (
                        f.name.node.to_string(),
                        FieldDef {
                            ty,
                            args,
                            connection,
                        },
                    )
                })
                .collect();
            t.outputs.insert(name, fields);
        }
        t
    }
}

fn types() -> &'static Types {
    static TYPES: OnceLock<Types> = OnceLock::new();
    TYPES.get_or_init(|| Types::from_sdl(&crate::schema::sdl()))
}

/// What the analysis found about one operation.
#[derive(Debug, Default)]
pub struct Analysis {
    /// Fields times page sizes.
    pub cost: u64,
    /// Selects `__schema` or `__type`.
    pub introspection: bool,
    /// Bad input values, named by where they are (`$input.name`,
    /// `accounts.filter.search`).
    pub invalid: Vec<FieldError>,
}

/// The operation `operation_name` selects in `doc`, if exactly one.
pub fn selected<'a>(
    doc: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|o| &o.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|o| &o.node)
        }
        _ => None,
    }
}

/// Analyses the operation of `doc` that `operation_name` selects, with
/// `variables`. A document without such an operation costs nothing here
/// (execution reports the problem).
pub fn analyse(
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
    limits: &Limits,
) -> Analysis {
    let mut w = Walk {
        types: types(),
        doc,
        variables,
        defaults: HashMap::new(),
        max_string: limits.max_string_bytes,
        out: Analysis::default(),
        fragment_costs: HashMap::new(),
        visiting: HashSet::new(),
    };
    for (name, value) in variables.iter() {
        w.check_const(None, value, &format!("${name}"));
    }
    let Some(op) = selected(doc, operation_name) else {
        return w.out;
    };
    for def in &op.variable_definitions {
        let def = &def.node;
        let path = format!("${}", def.name.node);
        match variables.get(&def.name.node) {
            Some(v) => w.check_variable(&def.var_type.node, v, &path),
            None if !def.var_type.node.nullable && def.default_value.is_none() => w.invalid(
                &path,
                format!("a value of type {} is required", def.var_type.node),
            ),
            None => {}
        }
        if let Some(default) = &def.default_value {
            let ty = named(&def.var_type.node);
            let path = format!("${}", def.name.node);
            w.check_literal(&ty, &default.node, &path);
            w.defaults
                .insert(def.name.node.clone(), default.node.clone());
        }
    }
    let root = match op.ty {
        async_graphql::parser::types::OperationType::Query => "Query",
        async_graphql::parser::types::OperationType::Mutation => "Mutation",
        async_graphql::parser::types::OperationType::Subscription => "Subscription",
    };
    w.out.cost = w.set_cost(root, &op.selection_set.node);
    w.out
}

struct Walk<'a> {
    types: &'a Types,
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
    defaults: HashMap<Name, ConstValue>,
    max_string: usize,
    out: Analysis,
    /// A fragment costs the same wherever it is spread (the variables are
    /// the operation's), so each is walked once: spreading fragments inside
    /// fragments cannot make this walk exponential.
    fragment_costs: HashMap<Name, u64>,
    visiting: HashSet<Name>,
}

impl Walk<'_> {
    fn set_cost(&mut self, parent: &str, set: &SelectionSet) -> u64 {
        let mut total: u64 = 0;
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    let name = f.name.node.as_str();
                    if name == "__schema" || name == "__type" {
                        self.out.introspection = true;
                    }
                    let def = self.types.outputs.get(parent).and_then(|t| t.get(name));
                    let mut multiplier = 1;
                    for (arg, value) in &f.arguments {
                        let ty = def
                            .and_then(|d| d.args.get(arg.node.as_str()))
                            .map_or("", String::as_str);
                        // Variables read as null here: only what the
                        // document itself spells is a literal.
                        let literal = value
                            .node
                            .clone()
                            .into_const_with(|_| Ok::<_, ()>(ConstValue::Null))
                            .unwrap_or(ConstValue::Null);
                        self.check_literal(ty, &literal, &format!("{name}.{}", arg.node));
                    }
                    if let Some(d) = def
                        && d.connection
                    {
                        multiplier = self.page_size(f);
                    }
                    let child_ty = def.map_or("", |d| d.ty.as_str());
                    let children = self.set_cost(child_ty, &f.selection_set.node);
                    children.saturating_mul(multiplier).saturating_add(1)
                }
                Selection::InlineFragment(frag) => {
                    let frag = &frag.node;
                    let ty = frag
                        .type_condition
                        .as_ref()
                        .map(|c| c.node.on.node.to_string())
                        .unwrap_or_else(|| parent.to_owned());
                    self.set_cost(&ty, &frag.selection_set.node)
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some(c) = self.fragment_costs.get(name) {
                        *c
                    } else if let Some(frag) = self.doc.fragments.get(name) {
                        if !self.visiting.insert(name.clone()) {
                            0 // a cycle: validation refuses it
                        } else {
                            let ty = frag.node.type_condition.node.on.node.to_string();
                            let c = self.set_cost(&ty, &frag.node.selection_set.node);
                            self.visiting.remove(name);
                            self.fragment_costs.insert(name.clone(), c);
                            c
                        }
                    } else {
                        0
                    }
                }
            };
            total = total.saturating_add(cost);
        }
        total
    }

    /// The page size a connection field asks for: `last`, else `first`,
    /// else the default; capped at the largest page served.
    fn page_size(&self, f: &async_graphql::parser::types::Field) -> u64 {
        let arg = |n: &str| {
            let v = f.get_argument(n)?.node.clone().into_const_with(|var| {
                self.variables
                    .get(&var)
                    .or_else(|| self.defaults.get(&var))
                    .cloned()
                    .ok_or(())
            });
            match v {
                Ok(ConstValue::Number(n)) => n.as_i64(),
                _ => None,
            }
        };
        let n = arg("last").or_else(|| arg("first")).unwrap_or(DEFAULT_PAGE);
        n.clamp(0, MAX_PAGE) as u64
    }

    /// Checks a literal in the document: enum values must not be quoted,
    /// strings must be acceptable. `ty` is the expected named type ("" if
    /// unknown).
    fn check_literal(&mut self, ty: &str, value: &ConstValue, path: &str) {
        match value {
            ConstValue::String(s) => {
                if self.types.enums.contains(ty) {
                    self.invalid(
                        path,
                        format!(
                            "{ty} is an enum: write its value without quotes (e.g. {})",
                            enum_hint(s)
                        ),
                    );
                }
                self.check_string(s, path);
            }
            ConstValue::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.check_literal(ty, item, &format!("{path}.{i}"));
                }
            }
            ConstValue::Object(fields) => {
                for (k, item) in fields {
                    let fty = self
                        .types
                        .inputs
                        .get(ty)
                        .and_then(|f| f.get(k.as_str()))
                        .cloned()
                        .unwrap_or_default();
                    self.check_literal(&fty, item, &format!("{path}.{k}"));
                }
            }
            _ => {}
        }
    }

    /// Checks a variable's value against its declared type, as the
    /// specification's variable coercion does before execution (async-graphql
    /// leaves it to the resolvers, where a mistake looked like a fault).
    /// Custom scalars check themselves when they parse.
    fn check_variable(&mut self, ty: &Type, value: &ConstValue, path: &str) {
        if self.out.invalid.len() >= 20 {
            return;
        }
        if *value == ConstValue::Null {
            if !ty.nullable {
                self.invalid(path, format!("a value of type {ty} is required"));
            }
            return;
        }
        let name = match &ty.base {
            BaseType::List(inner) => {
                match value {
                    ConstValue::List(items) => {
                        for (i, item) in items.iter().enumerate() {
                            self.check_variable(inner, item, &format!("{path}.{i}"));
                        }
                    }
                    // A single value where a list is expected is a list of one.
                    other => self.check_variable(inner, other, path),
                }
                return;
            }
            BaseType::Named(n) => n.as_str(),
        };
        let ok = match name {
            "String" => matches!(value, ConstValue::String(_)),
            "ID" => match value {
                ConstValue::String(_) => true,
                ConstValue::Number(n) => n.is_i64() || n.is_u64(),
                _ => false,
            },
            "Int" => match value {
                ConstValue::Number(n) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
                _ => false,
            },
            "Float" => matches!(value, ConstValue::Number(_)),
            "Boolean" => matches!(value, ConstValue::Boolean(_)),
            _ => {
                if let Some(values) = self.types.enum_values.get(name) {
                    match value {
                        ConstValue::String(v) => values.contains(v.as_str()),
                        ConstValue::Enum(v) => values.contains(v.as_str()),
                        _ => false,
                    }
                } else if let Some(fields) = self.types.input_fields.get(name) {
                    let ConstValue::Object(obj) = value else {
                        self.invalid(path, format!("expected an object of type {name}"));
                        return;
                    };
                    for key in obj.keys() {
                        if !fields.iter().any(|(f, _, _)| f == key.as_str()) {
                            self.invalid(
                                &format!("{path}.{key}"),
                                format!("{name} has no field {key}"),
                            );
                        }
                    }
                    for (f, fty, has_default) in fields {
                        let fpath = format!("{path}.{f}");
                        match obj.get(f.as_str()) {
                            Some(v) => self.check_variable(fty, v, &fpath),
                            None if !fty.nullable && !has_default => {
                                self.invalid(&fpath, format!("a value of type {fty} is required"))
                            }
                            None => {}
                        }
                    }
                    true
                } else {
                    true // a custom scalar: it checks itself
                }
            }
        };
        if !ok {
            self.invalid(path, format!("expected a value of type {name}"));
        }
    }

    /// Checks a variable's value (any string anywhere in it).
    fn check_const(&mut self, _ty: Option<&str>, value: &ConstValue, path: &str) {
        match value {
            ConstValue::String(s) => self.check_string(s, path),
            ConstValue::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.check_const(None, item, &format!("{path}.{i}"));
                }
            }
            ConstValue::Object(fields) => {
                for (k, item) in fields {
                    if k.contains('\0') {
                        self.invalid(path, "field names may not contain NUL characters".into());
                    }
                    self.check_const(None, item, &format!("{path}.{k}"));
                }
            }
            _ => {}
        }
    }

    fn check_string(&mut self, s: &str, path: &str) {
        if s.contains('\0') {
            self.invalid(path, "may not contain NUL characters".into());
        }
        if s.len() > self.max_string {
            self.invalid(
                path,
                format!(
                    "is {} bytes long; the limit is {} (setting max-string-bytes)",
                    s.len(),
                    self.max_string
                ),
            );
        }
    }

    fn invalid(&mut self, path: &str, message: String) {
        // Bounded: one entry per offending place is plenty for a client.
        if self.out.invalid.len() < 20 {
            self.out.invalid.push(FieldError {
                field: path.to_owned(),
                message,
            });
        }
    }
}

fn enum_hint(s: &str) -> String {
    let ok = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        s.to_owned()
    } else {
        "ACTIVE".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(query: &str, vars: serde_json::Value) -> Analysis {
        let limits = crm_core::config::Config::with(&[]).unwrap().limits;
        let doc = async_graphql::parser::parse_query(query).unwrap();
        analyse(&doc, None, &Variables::from_json(vars), &limits)
    }

    #[test]
    fn page_sizes_multiply() {
        let q = "query($n: Int = 100) { accounts(first: $n) { edges { node { id contacts(first: 10) { edges { node { id } } } } } } }";
        // accounts: 1 + 100 * (edges 1 + node 1 + id 1 + contacts (1 + 10 * 3))
        let a = cost(q, serde_json::json!({}));
        assert_eq!(a.cost, 1 + 100 * (1 + 1 + 1 + (1 + 10 * 3)));
        let b = cost(q, serde_json::json!({"n": 5}));
        assert_eq!(b.cost, 1 + 5 * (1 + 1 + 1 + (1 + 10 * 3)));
        let c = cost(
            "{ accounts { edges { node { id } } } }",
            serde_json::json!({}),
        );
        assert_eq!(c.cost, 1 + DEFAULT_PAGE as u64 * 3);
    }

    #[test]
    fn strings_and_enum_literals() {
        let a = cost(
            "{ accounts(filter: {lifecycleStage: \"ACTIVE\"}) { totalCount } }",
            serde_json::json!({}),
        );
        assert_eq!(a.invalid.len(), 1, "{a:?}");
        let a = cost(
            "query($s: String) { accounts(filter: {search: $s}) { totalCount } }",
            serde_json::json!({"s": "a\u{0}b"}),
        );
        assert_eq!(a.invalid[0].field, "$s");
    }
}
