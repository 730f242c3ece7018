//! A file's headers resolved to an entity's importable columns (header
//! aliases, explicit mappings, custom fields), and one row's cells.

use std::collections::HashMap;

use crate::custom::Def;
use crate::error::{Error, FieldError, Result};
use crate::tabular::Row;

use super::{ColumnMapping, Importable};

/// What a file column fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Col {
    /// The record's id (matches an existing record).
    Id,
    /// The owner by user id.
    OwnerId,
    /// The owner by e-mail.
    OwnerEmail,
    /// One of the entity's declared columns (index into its table).
    Own(u16),
    /// A custom field (index into the run's definitions).
    Custom(u16),
    /// Read-only columns of an export (createdAt, version, …): skipped.
    Ignore,
}

/// Headers every entity reads as read-only columns of an export.
const IGNORED: &[&str] = &[
    "createdat",
    "updatedat",
    "version",
    "deletedat",
    "tags",
    "team",
    "teamid",
];

/// A header or field name compared after lower-casing and dropping
/// everything but letters and digits.
pub(super) fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The column a header or field name stands for in `E`.
fn lookup<E: Importable>(name: &str) -> Option<Col> {
    let key = normalize(name);
    let owned = E::DEF.scope.owner_column().is_some();
    match key.as_str() {
        "id" => return Some(Col::Id),
        "ownerid" if owned => return Some(Col::OwnerId),
        "owneremail" | "owner" | "负责人" if owned => return Some(Col::OwnerEmail),
        k if IGNORED.contains(&k) => return Some(Col::Ignore),
        _ => {}
    }
    if let Some(i) = E::COLUMNS
        .iter()
        .position(|c| normalize(c.api) == key || c.aliases.contains(&key.as_str()))
    {
        return Some(Col::Own(i as u16));
    }
    E::IGNORED.contains(&key.as_str()).then_some(Col::Ignore)
}

/// The columns of a file resolved to fields.
pub(super) struct Columns {
    pub(super) fields: Vec<Option<Col>>,
    pub(super) headers: Vec<String>,
}

impl Columns {
    pub(super) fn resolve<E: Importable>(
        headers: &[String],
        mapping: &[ColumnMapping],
        defs: &[Def],
    ) -> Result<Columns> {
        let ty = E::DEF.type_name;
        // `custom.<key>` (as exports write it), or a custom field's key or
        // label when no built-in field has that name.
        let custom = |name: &str| -> Option<Col> {
            let n = name.trim();
            let key = n.strip_prefix("custom.").unwrap_or(n);
            defs.iter()
                .position(|d| d.key.eq_ignore_ascii_case(key))
                .or_else(|| defs.iter().position(|d| d.label.eq_ignore_ascii_case(n)))
                .map(|i| Col::Custom(i as u16))
        };
        let mut fields = Vec::with_capacity(headers.len());
        let mut unknown = Vec::new();
        for m in mapping {
            if !headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(m.column.trim()))
            {
                unknown.push(FieldError {
                    field: "mapping".into(),
                    message: format!("the file has no column {:?}", m.column),
                });
            }
        }
        for h in headers {
            let mapped = mapping
                .iter()
                .find(|m| m.column.trim().eq_ignore_ascii_case(h));
            let f = match mapped {
                Some(m) if m.field.eq_ignore_ascii_case("ignore") => Some(Col::Ignore),
                Some(m) => match lookup::<E>(&m.field).or_else(|| custom(&m.field)) {
                    Some(f) => Some(f),
                    None => {
                        unknown.push(FieldError {
                            field: "mapping".into(),
                            message: format!("{:?} is not a field of {ty}", m.field),
                        });
                        None
                    }
                },
                None if h.is_empty() => Some(Col::Ignore),
                None => match lookup::<E>(h).or_else(|| custom(h)) {
                    Some(f) => Some(f),
                    None => {
                        unknown.push(FieldError {
                            field: "file".into(),
                            message: format!(
                                "column {h:?} is not a field of {ty}; map it to a field or to \"ignore\""
                            ),
                        });
                        None
                    }
                },
            };
            fields.push(f);
        }
        let mut seen = HashMap::new();
        for (i, f) in fields.iter().enumerate() {
            if let Some(f) = f.filter(|f| *f != Col::Ignore)
                && let Some(j) = seen.insert(f, i)
            {
                unknown.push(FieldError {
                    field: "file".into(),
                    message: format!(
                        "columns {:?} and {:?} both fill {}",
                        headers[j],
                        headers[i],
                        name::<E>(f)
                    ),
                });
            }
        }
        let cols = Columns {
            fields,
            headers: headers.to_vec(),
        };
        for r in E::REQUIRED {
            if cols.header_of_api::<E>(r).is_none() && cols.header(Col::Id).is_none() {
                unknown.push(FieldError {
                    field: "file".into(),
                    message: format!("a column for {r} is required"),
                });
            }
        }
        if !unknown.is_empty() {
            return Err(Error::Validation(unknown));
        }
        Ok(cols)
    }

    /// The header of the column filling `f`.
    pub(super) fn header(&self, f: Col) -> Option<&str> {
        self.fields
            .iter()
            .position(|x| *x == Some(f))
            .map(|i| self.headers[i].as_str())
    }

    /// The header of the declared column named `api` (or of the id and
    /// owner columns by their API names).
    pub(super) fn header_of_api<E: Importable>(&self, api: &str) -> Option<&str> {
        self.header(col_of::<E>(api)?)
    }

    /// The columns the file fills.
    pub(super) fn used(&self) -> impl Iterator<Item = Col> + '_ {
        self.fields.iter().flatten().copied()
    }

    /// The API names of the declared columns the file fills.
    pub(super) fn used_api<E: Importable>(&self) -> Vec<&'static str> {
        self.used().filter_map(|c| api_of::<E>(c)).collect()
    }

    /// The header an error on the API field `field` belongs to: the column
    /// of that name, else a column writing that field (`ownerEmail` for
    /// `ownerId`), else a custom field's column.
    pub(super) fn column_of<E: Importable>(&self, defs: &[Def], field: &str) -> Option<&str> {
        if let Some(h) = self.header_of_api::<E>(field) {
            return Some(h);
        }
        if let Some(key) = field.strip_prefix("custom.") {
            return self
                .used()
                .find(|c| matches!(c, Col::Custom(i) if defs[*i as usize].key == key))
                .and_then(|c| self.header(c));
        }
        self.used()
            .find(|c| policy_field::<E>(*c) == Some(field))
            .and_then(|c| self.header(c))
    }
}

/// The column named `api`.
fn col_of<E: Importable>(api: &str) -> Option<Col> {
    match api {
        "id" => Some(Col::Id),
        "ownerId" => Some(Col::OwnerId),
        "ownerEmail" => Some(Col::OwnerEmail),
        _ => E::COLUMNS
            .iter()
            .position(|c| c.api == api)
            .map(|i| Col::Own(i as u16)),
    }
}

fn api_of<E: Importable>(c: Col) -> Option<&'static str> {
    match c {
        Col::Id => Some("id"),
        Col::OwnerId => Some("ownerId"),
        Col::OwnerEmail => Some("ownerEmail"),
        Col::Own(i) => Some(E::COLUMNS[i as usize].api),
        Col::Custom(_) | Col::Ignore => None,
    }
}

/// The column's name in messages.
pub(super) fn name<E: Importable>(c: Col) -> &'static str {
    match c {
        Col::Custom(_) => "custom",
        Col::Ignore => "ignore",
        other => api_of::<E>(other).unwrap_or_default(),
    }
}

/// The policy field a column writes (`Contact.emails`), if any; custom
/// fields are checked by key.
pub(super) fn policy_field<E: Importable>(c: Col) -> Option<&'static str> {
    match c {
        Col::Id | Col::Ignore | Col::Custom(_) => None,
        Col::OwnerId | Col::OwnerEmail => Some("ownerId"),
        Col::Own(i) => E::COLUMNS[i as usize].writes,
    }
}

/// The non-empty cells of one row.
pub struct Cells<'a> {
    pub(super) values: Vec<(Col, &'a str)>,
    columns: &'static [super::ImportColumn],
}

impl<'a> Cells<'a> {
    pub(super) fn new<E: Importable>(cols: &Columns, row: &'a Row) -> Self {
        let values = cols
            .fields
            .iter()
            .zip(&row.values)
            .filter_map(|(f, v)| {
                let v = v.trim();
                match f {
                    Some(f) if *f != Col::Ignore && !v.is_empty() => Some((*f, v)),
                    _ => None,
                }
            })
            .collect();
        Cells {
            values,
            columns: E::COLUMNS,
        }
    }

    pub(super) fn col(&self, c: Col) -> Option<&'a str> {
        self.values.iter().find(|(k, _)| *k == c).map(|(_, v)| *v)
    }

    /// The trimmed, non-empty cell of the declared column `api`.
    pub fn get(&self, api: &str) -> Option<&'a str> {
        let i = self.columns.iter().position(|c| c.api == api)?;
        self.col(Col::Own(i as u16))
    }

    /// [`Cells::get`] as an owned string.
    pub fn text(&self, api: &str) -> Option<String> {
        self.get(api).map(str::to_owned)
    }
}
