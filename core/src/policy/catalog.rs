//! The catalog of what a policy can name, read from the built schema: the
//! resource types (records that have rows and owners), their readable fields
//! (the GraphQL type's fields), their writable fields (the fields of
//! `Create<Type>Input` / `Update<Type>Input`), and the operations (root
//! fields of `Query`, `Mutation`, `Subscription`).
//!
//! Arguments that read or write a field without naming it (a filter on
//! `createdFrom`, an order by `UPDATED_AT`, `assignAccounts(ownerId)`) are
//! declared by the crates that define them as [`FieldUse`]s and compiled in
//! with [`Catalog::with_uses`]; the request check and the lint use them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_graphql::Value;
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
    /// Argument name to its default value, for arguments that have one.
    pub defaults: HashMap<String, Value>,
}

/// Whether a [`FieldUse`] reads or writes the fields it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UseAction {
    /// Filtering, ordering or searching by a field: needs `read` on it.
    Read,
    /// Changing a field: needs `write` on it.
    Write,
}

impl UseAction {
    /// The policy action: `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            UseAction::Read => "read",
            UseAction::Write => "write",
        }
    }
}

/// A place in the schema that reads or writes resource fields without
/// selecting them or setting them in a `Create…Input` / `Update…Input`.
/// Whenever a request gives a value there (literally, through a variable or
/// through a default), the caller needs `action` on every field of `fields`.
///
/// `at` is one of
/// - `Parent.field(argument)`: an argument, e.g.
///   `Mutation.assignAccounts(ownerId)`;
/// - `InputType.field`: a field of an input object, e.g.
///   `AccountFilterInput.createdFrom`;
/// - `EnumType.VALUE`: an enum value, wherever it is used, e.g.
///   `AccountOrderField.UPDATED_AT`;
/// - `OutputType.field`: a field of a type that is not a resource, whose
///   value is computed from resource fields (a sum of amounts), e.g.
///   `BoardColumn.amounts`: selecting it reads `fields`.
///
/// A field name may end in `{}` (the string value given there, e.g.
/// `Account.custom.{}` for a custom field key) or `{name}` (the string in
/// field `name` of each object given there, e.g. `Account.custom.{key}`).
/// An empty `fields` declares that the place touches no field rule (so the
/// completeness check knows it was considered).
#[derive(Clone, Copy, Debug)]
pub struct FieldUse {
    /// Where in the schema.
    pub at: &'static str,
    /// Read or write.
    pub action: UseAction,
    /// `Type.field` names.
    pub fields: &'static [&'static str],
}

impl FieldUse {
    /// Filtering / ordering / searching at `at` reads `fields`.
    pub const fn read(at: &'static str, fields: &'static [&'static str]) -> FieldUse {
        FieldUse {
            at,
            action: UseAction::Read,
            fields,
        }
    }

    /// A value at `at` changes `fields`.
    pub const fn write(at: &'static str, fields: &'static [&'static str]) -> FieldUse {
        FieldUse {
            at,
            action: UseAction::Write,
            fields,
        }
    }
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
    /// Input object types: field name to its default value.
    pub input_defaults: HashMap<String, HashMap<String, Value>>,
    /// Declared [`FieldUse`]s by their `at`.
    pub uses: HashMap<String, Vec<FieldUse>>,
    /// Output type name to the resource types reachable from it without
    /// passing through another resource (a resource reaches itself;
    /// `ContactConnection` reaches `Contact`).
    pub reaches: HashMap<String, BTreeSet<String>>,
    /// Enum types: their values.
    pub enums: HashMap<String, BTreeSet<String>>,
    /// Union types: their members.
    pub unions: HashMap<String, BTreeSet<String>>,
    /// Declarations that name something the schema does not have.
    pub problems: Vec<String>,
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
                            let mut args = HashMap::new();
                            let mut defaults = HashMap::new();
                            for a in f.arguments {
                                let a = a.node;
                                let arg = a.name.node.to_string();
                                if let Some(d) = a.default_value {
                                    defaults.insert(arg.clone(), d.node);
                                }
                                args.insert(arg, named(&a.ty.node));
                            }
                            (
                                f.name.node.to_string(),
                                FieldInfo {
                                    ty: named(&f.ty.node),
                                    args,
                                    defaults,
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
                                    defaults: HashMap::new(),
                                },
                            )
                        })
                        .collect();
                    c.types.insert(name, fields);
                }
                TypeKind::InputObject(i) => {
                    let mut fields = HashMap::new();
                    let mut defaults = HashMap::new();
                    for f in i.fields {
                        let f = f.node;
                        let field = f.name.node.to_string();
                        if let Some(d) = f.default_value {
                            defaults.insert(field.clone(), d.node);
                        }
                        fields.insert(field, named(&f.ty.node));
                    }
                    c.inputs.insert(name.clone(), fields);
                    c.input_defaults.insert(name, defaults);
                }
                TypeKind::Enum(e) => {
                    c.enums.insert(
                        name,
                        e.values
                            .into_iter()
                            .map(|v| v.node.value.node.to_string())
                            .collect(),
                    );
                }
                TypeKind::Union(u) => {
                    c.types.insert(name.clone(), HashMap::new());
                    c.unions.insert(
                        name,
                        u.members.into_iter().map(|m| m.node.to_string()).collect(),
                    );
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
        let names: Vec<String> = c.types.keys().cloned().collect();
        for t in names {
            let mut seen = HashSet::new();
            let reach = c.reach(&t, &mut seen);
            c.reaches.insert(t, reach);
        }
        c
    }

    fn reach(&self, ty: &str, seen: &mut HashSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if self.is_resource(ty) {
            out.insert(ty.to_owned());
            return out;
        }
        if !seen.insert(ty.to_owned()) {
            return out;
        }
        if let Some(members) = self.unions.get(ty) {
            for m in members.clone() {
                out.extend(self.reach(&m, seen));
            }
        }
        if let Some(fields) = self.types.get(ty) {
            let targets: Vec<String> = fields.values().map(|f| f.ty.clone()).collect();
            for t in targets {
                out.extend(self.reach(&t, seen));
            }
        }
        out
    }

    /// Adds the crates' [`FieldUse`] declarations. Written fields become
    /// writable (so policies may name them); anything a declaration names
    /// that the schema lacks is recorded in `problems`, as is a field of a
    /// declared input type or a value of a declared enum left undeclared
    /// (declaring one place of a type means declaring all of them, so a new
    /// filter field cannot slip past the check unnoticed).
    pub fn with_uses(mut self, uses: &[FieldUse]) -> Catalog {
        let mut declared_types = BTreeSet::new();
        for u in uses {
            if let Err(m) = self.place_exists(u.at) {
                self.problems.push(format!("{}: {m}", u.at));
            } else if !u.at.contains('(')
                && let Some((ty, _)) = u.at.split_once('.')
            {
                declared_types.insert(ty.to_owned());
            }
            for f in u.fields {
                let Some((ty, field)) = f.split_once('.') else {
                    self.problems
                        .push(format!("{}: `{f}` is not Type.field", u.at));
                    continue;
                };
                let known = if field.contains('{') {
                    // `custom.{key}`: a per-key rule under a readable field.
                    let base = field.split('.').next().unwrap_or_default();
                    self.readable.get(ty).is_some_and(|r| r.contains(base))
                } else {
                    self.readable.get(ty).is_some_and(|r| r.contains(field))
                        || self.writable.get(ty).is_some_and(|w| w.contains(field))
                };
                if !known {
                    self.problems
                        .push(format!("{}: `{f}` is not a field of a resource type", u.at));
                    continue;
                }
                if u.action == UseAction::Write && !field.contains('{') {
                    self.writable
                        .entry(ty.to_owned())
                        .or_default()
                        .insert(field.to_owned());
                }
            }
            self.uses.entry(u.at.to_owned()).or_default().push(*u);
        }
        for ty in declared_types {
            let places: Vec<String> = if let Some(fields) = self.inputs.get(&ty) {
                fields.keys().cloned().collect()
            } else if let Some(values) = self.enums.get(&ty) {
                values.iter().cloned().collect()
            } else {
                Vec::new()
            };
            for p in places {
                let at = format!("{ty}.{p}");
                if !self.uses.contains_key(&at) {
                    self.problems
                        .push(format!("{at}: not declared (other places of {ty} are)"));
                }
            }
        }
        self.problems.sort();
        self
    }

    fn place_exists(&self, at: &str) -> Result<(), &'static str> {
        if let Some((field, arg)) = at.strip_suffix(')').and_then(|a| a.split_once('(')) {
            let (parent, name) = field
                .split_once('.')
                .ok_or("expected Parent.field(argument)")?;
            let info = self
                .types
                .get(parent)
                .and_then(|t| t.get(name))
                .ok_or("no such field")?;
            return if info.args.contains_key(arg) {
                Ok(())
            } else {
                Err("no such argument")
            };
        }
        let (ty, place) = at
            .split_once('.')
            .ok_or("expected Type.field or Enum.VALUE")?;
        if let Some(fields) = self.inputs.get(ty) {
            return if fields.contains_key(place) {
                Ok(())
            } else {
                Err("no such input field")
            };
        }
        if let Some(values) = self.enums.get(ty) {
            return if values.contains(place) {
                Ok(())
            } else {
                Err("no such enum value")
            };
        }
        if let Some(fields) = self.types.get(ty) {
            return if self.is_resource(ty) {
                Err("a resource's fields have rules of their own")
            } else if fields.contains_key(place) {
                Ok(())
            } else {
                Err("no such output field")
            };
        }
        Err("no such input, enum or output type")
    }

    /// The resource types a selection of `ty` (an output type) can show
    /// records of, without passing through another resource.
    pub fn reached(&self, ty: &str) -> impl Iterator<Item = &String> {
        self.reaches.get(ty).into_iter().flatten()
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
                keys_own: false,
                group: false,
            })
    }

    /// Whether `name` is a resource type.
    pub fn is_resource(&self, name: &str) -> bool {
        self.readable.contains_key(name)
    }
}
