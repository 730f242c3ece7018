//! The catalog of what a policy can name, read from the built schema: the
//! resource types (records that have rows and owners), their readable fields
//! (the GraphQL type's fields), their writable fields (the fields of
//! `Create<Type>Input` / `Update<Type>Input`), and the operations (root
//! fields of `Query`, `Mutation`, `Subscription`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};

/// Input fields that identify or version a record rather than set data.
const NOT_DATA: &[&str] = &["id", "version"];

/// A field of an output type.
#[derive(Clone, Debug)]
pub struct FieldInfo {
    /// The named type it returns (list and non-null stripped).
    pub ty: String,
    /// Argument name to named input type.
    pub args: HashMap<String, String>,
}

/// Everything a policy may name, and the type information the request check
/// needs to walk a query.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Resource type name to its readable fields.
    pub readable: BTreeMap<String, BTreeSet<String>>,
    /// Resource type name to its writable fields.
    pub writable: BTreeMap<String, BTreeSet<String>>,
    /// Operations: `Query.users`, `Mutation.createUser`, …
    pub operations: BTreeSet<String>,
    /// Output types: field name to field info.
    pub types: HashMap<String, HashMap<String, FieldInfo>>,
    /// Input object types: field name to named type.
    pub inputs: HashMap<String, HashMap<String, String>>,
    /// Input type name to the resource it writes (`CreateUserInput` → `User`).
    pub writes: HashMap<String, String>,
    /// How rows of a type are owned, as the crates declare it (types not
    /// declared are owned through their own owner column).
    pub ownership: HashMap<String, crate::ownership::Ownership>,
}

fn named(t: &Type) -> String {
    match &t.base {
        BaseType::Named(n) => n.to_string(),
        BaseType::List(inner) => named(inner),
    }
}

impl Catalog {
    /// Builds the catalog from the schema's SDL and the resource type names
    /// the crates declare.
    pub fn from_sdl(sdl: &str, resources: &[&str]) -> Catalog {
        let doc = async_graphql::parser::parse_schema(sdl).expect("the built schema's SDL parses");
        let mut c = Catalog::default();
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else {
                continue;
            };
            let t = t.node;
            let name = t.name.node.to_string();
            match t.kind {
                TypeKind::Object(o) => {
                    let fields = o
                        .fields
                        .into_iter()
                        .map(|f| {
                            let f = f.node;
                            let args = f
                                .arguments
                                .into_iter()
                                .map(|a| (a.node.name.node.to_string(), named(&a.node.ty.node)))
                                .collect();
                            (
                                f.name.node.to_string(),
                                FieldInfo {
                                    ty: named(&f.ty.node),
                                    args,
                                },
                            )
                        })
                        .collect();
                    c.types.insert(name, fields);
                }
                TypeKind::Interface(i) => {
                    let fields = i
                        .fields
                        .into_iter()
                        .map(|f| {
                            let f = f.node;
                            (
                                f.name.node.to_string(),
                                FieldInfo {
                                    ty: named(&f.ty.node),
                                    args: HashMap::new(),
                                },
                            )
                        })
                        .collect();
                    c.types.insert(name, fields);
                }
                TypeKind::InputObject(i) => {
                    let fields = i
                        .fields
                        .into_iter()
                        .map(|f| (f.node.name.node.to_string(), named(&f.node.ty.node)))
                        .collect();
                    c.inputs.insert(name, fields);
                }
                _ => {}
            }
        }
        for root in ["Query", "Mutation", "Subscription"] {
            if let Some(fields) = c.types.get(root) {
                c.operations
                    .extend(fields.keys().map(|f| format!("{root}.{f}")));
            }
        }
        for r in resources {
            let fields = c
                .types
                .get(*r)
                .map(|f| f.keys().cloned().collect())
                .unwrap_or_default();
            c.readable.insert(r.to_string(), fields);
            let mut writable = BTreeSet::new();
            for input in [format!("Create{r}Input"), format!("Update{r}Input")] {
                if let Some(fields) = c.inputs.get(&input) {
                    writable.extend(
                        fields
                            .keys()
                            .filter(|f| !NOT_DATA.contains(&f.as_str()))
                            .cloned(),
                    );
                    c.writes.insert(input, r.to_string());
                }
            }
            c.writable.insert(r.to_string(), writable);
        }
        c
    }

    /// Adds the crates' ownership declarations.
    pub fn with_ownership(mut self, decls: &[crate::ownership::Ownership]) -> Catalog {
        for d in decls {
            self.ownership.insert(d.ty.to_owned(), *d);
        }
        self
    }

    /// How rows of `ty` are owned.
    pub fn ownership(&self, ty: &str) -> crate::ownership::Ownership {
        self.ownership
            .get(ty)
            .copied()
            .unwrap_or(crate::ownership::Ownership {
                ty: "",
                owner: crate::ownership::Owner::Column,
                assignee: false,
            })
    }

    /// Whether `name` is a resource type.
    pub fn is_resource(&self, name: &str) -> bool {
        self.readable.contains_key(name)
    }
}
