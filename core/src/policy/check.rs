//! The whole-request check: before anything runs, every operation the
//! request calls, every field it selects and every input field it sets is
//! checked against the policy. The result lists every offending name at
//! once, so the caller can fix the request in one go.

use std::collections::{BTreeSet, HashSet};

use async_graphql::Variables;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Value};

use super::catalog::Catalog;
use super::engine::Policy;

struct Walk<'a> {
    catalog: &'a Catalog,
    policy: &'a Policy,
    roles: &'a [String],
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
    denied: BTreeSet<String>,
    visiting: HashSet<Name>,
}

/// Checks a request; returns the offending names (`Query.auditLog`,
/// `User.email`, …), empty when everything is allowed. A document that does
/// not resolve to one operation yields nothing here: validation reports it.
pub fn check(
    catalog: &Catalog,
    policy: &Policy,
    roles: &[String],
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> Vec<String> {
    let op = match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|o| &o.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|o| &o.node)
        }
        _ => None,
    };
    let Some(op) = op else {
        return Vec::new();
    };
    let root = match op.ty {
        OperationType::Query => "Query",
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => "Subscription",
    };
    let mut w = Walk {
        catalog,
        policy,
        roles,
        doc,
        variables,
        denied: BTreeSet::new(),
        visiting: HashSet::new(),
    };
    w.selection_set(root, &op.selection_set.node);
    w.denied.into_iter().collect()
}

impl Walk<'_> {
    fn selection_set(&mut self, parent: &str, set: &SelectionSet) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    let name = f.name.node.as_str();
                    if name.starts_with("__") {
                        continue;
                    }
                    let Some(info) = self.catalog.types.get(parent).and_then(|t| t.get(name))
                    else {
                        continue; // unknown: validation will say so
                    };
                    let resource = format!("{parent}.{name}");
                    if matches!(parent, "Query" | "Mutation" | "Subscription") {
                        if !self.policy.any_allows(self.roles, &resource, "call") {
                            self.denied.insert(resource);
                        }
                    } else if self.catalog.is_resource(parent) {
                        let type_ok = self.policy.scope(self.roles, parent, "read").is_some();
                        if !type_ok || !self.policy.any_allows(self.roles, &resource, "read") {
                            self.denied.insert(resource);
                        }
                    }
                    for (arg_name, value) in &f.arguments {
                        if let Some(ty) = info.args.get(arg_name.node.as_str()) {
                            let ty = ty.clone();
                            // Variables are substituted; a missing one is a
                            // validation error reported elsewhere.
                            let vars = self.variables;
                            if let Ok(v) = value
                                .node
                                .clone()
                                .into_const_with(|name| vars.get(&name).cloned().ok_or(()))
                            {
                                self.input(&ty, &v);
                            }
                        }
                    }
                    let ty = info.ty.clone();
                    self.selection_set(&ty, &f.selection_set.node);
                }
                Selection::InlineFragment(frag) => {
                    let frag = &frag.node;
                    let ty = frag
                        .type_condition
                        .as_ref()
                        .map(|c| c.node.on.node.to_string())
                        .unwrap_or_else(|| parent.to_owned());
                    self.selection_set(&ty, &frag.selection_set.node);
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    let Some(frag) = self.doc.fragments.get(name) else {
                        continue;
                    };
                    // Fragment cycles are a validation error; don't loop.
                    if !self.visiting.insert(name.clone()) {
                        continue;
                    }
                    let ty = frag.node.type_condition.node.on.node.to_string();
                    self.selection_set(&ty, &frag.node.selection_set.node);
                    self.visiting.remove(name);
                }
            }
        }
    }

    /// Walks an argument value of input type `ty`, checking write rights for
    /// every field set on an input that writes a resource.
    fn input(&mut self, ty: &str, value: &Value) {
        match value {
            Value::List(items) => {
                for i in items {
                    self.input(ty, i);
                }
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
                    if let Some(field_ty) = input.get(key) {
                        let field_ty = field_ty.clone();
                        self.input(&field_ty, v);
                    }
                }
            }
            _ => {}
        }
    }
}
