//! Custom fields: extra fields admins define per entity (key, label, type,
//! options, required, default). Values live in the record's `custom` JSON
//! column keyed by the definition's key, are validated on every write and
//! import, and are covered by field rules named `<Type>.custom.<key>`.
//!
//! A deleted definition stops being validated, read and written, but the
//! stored values stay until the definition is purged, so a restore brings
//! them back.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Map, Value, json};

use crate::access::{Principal, principal, row_filter};
use crate::app::App;
use crate::change::{self, Change};
use crate::db::{Backend, Conn};
use crate::error::{Error, FieldError, Result};
use crate::module::{Registry, registry};
use crate::schema::custom_field_defs as defs;
use crate::{db_run, ids};

/// The policy resource of definitions.
pub const RESOURCE: &str = "CustomField";

/// The table of an entity with custom fields, from the modules' registered
/// entities ([`crate::module::Entity::custom_fields`]).
pub fn table_of(registry: &Registry, entity_type: &str) -> Option<&'static str> {
    registry
        .custom_field_entities()
        .find(|e| e.ty == entity_type)
        .map(|e| e.table)
}

/// The type of a custom field.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomFieldType {
    /// Free text (up to 1,000 characters).
    Text,
    /// A number.
    Number,
    /// An amount of money: `{"amountMinor": 12345, "currency": "EUR"}`.
    Money,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// true or false.
    Boolean,
    /// One of `options`.
    Select,
    /// Several of `options` (a list).
    MultiSelect,
}

impl CustomFieldType {
    fn as_text(self) -> &'static str {
        match self {
            CustomFieldType::Text => "text",
            CustomFieldType::Number => "number",
            CustomFieldType::Money => "money",
            CustomFieldType::Date => "date",
            CustomFieldType::Boolean => "boolean",
            CustomFieldType::Select => "select",
            CustomFieldType::MultiSelect => "multi_select",
        }
    }

    fn from_text(s: &str) -> CustomFieldType {
        match s {
            "number" => CustomFieldType::Number,
            "money" => CustomFieldType::Money,
            "date" => CustomFieldType::Date,
            "boolean" => CustomFieldType::Boolean,
            "select" => CustomFieldType::Select,
            "multi_select" => CustomFieldType::MultiSelect,
            _ => CustomFieldType::Text,
        }
    }
}

/// A definition row.
#[allow(missing_docs)]
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = defs, treat_none_as_default_value = false)]
pub struct DefRow {
    pub id: String,
    pub entity_type: String,
    pub field_key: String,
    pub label: String,
    pub field_type: String,
    pub options: String,
    pub required: bool,
    pub default_value: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
    pub deleted_at: Option<NaiveDateTime>,
}

/// A definition, ready to validate with.
#[derive(Clone, Debug)]
pub struct Def {
    /// The key (`region`).
    pub key: String,
    /// Its label (`Sales region`).
    pub label: String,
    /// Its type.
    pub ty: CustomFieldType,
    /// Allowed values of select types.
    pub options: Vec<String>,
    /// Must have a value.
    pub required: bool,
    /// Value when none is given on create.
    pub default: Option<Value>,
}

impl From<&DefRow> for Def {
    fn from(r: &DefRow) -> Self {
        Def {
            key: r.field_key.clone(),
            label: r.label.clone(),
            ty: CustomFieldType::from_text(&r.field_type),
            options: serde_json::from_str(&r.options).unwrap_or_default(),
            required: r.required,
            default: r
                .default_value
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok()),
        }
    }
}

/// The live definitions of an entity, by key.
pub async fn definitions(conn: &mut Conn<'_>, entity: &str) -> Result<Vec<Def>> {
    let rows = rows(conn, entity, false).await?;
    Ok(rows.iter().map(Def::from).collect())
}

async fn rows(conn: &mut Conn<'_>, entity: &str, with_deleted: bool) -> Result<Vec<DefRow>> {
    Ok(db_run!(conn, |c| {
        let mut q = defs::table
            .filter(defs::entity_type.eq(entity))
            .into_boxed();
        if !with_deleted {
            q = q.filter(defs::deleted_at.is_null());
        }
        q.order(defs::field_key.asc())
            .select(DefRow::as_select())
            .load(c)
            .await
    })?)
}

fn invalid(key: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: format!("custom.{key}"),
        message: message.into(),
    }
}

/// Checks and normalises one value for `def` (`null` is allowed here; the
/// caller decides about required fields).
pub fn check_value(def: &Def, v: &Value) -> std::result::Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let options = || def.options.join(", ");
    match def.ty {
        CustomFieldType::Text => match v.as_str() {
            Some(s) if s.chars().count() <= 1000 => Ok(json!(s.trim())),
            Some(_) => Err("is longer than 1000 characters".into()),
            None => Err("must be text".into()),
        },
        CustomFieldType::Number => match v.as_f64() {
            Some(n) if n.is_finite() => Ok(json!(n)),
            _ => Err("must be a number".into()),
        },
        CustomFieldType::Money => {
            let amount = v.get("amountMinor").and_then(Value::as_i64);
            let currency = v
                .get("currency")
                .and_then(Value::as_str)
                .map(|c| c.trim().to_uppercase());
            match (amount, currency) {
                (Some(a), Some(c)) if c.len() == 3 && c.chars().all(|x| x.is_ascii_uppercase()) => {
                    Ok(json!({"amountMinor": a, "currency": c}))
                }
                _ => Err(
                    "must be {\"amountMinor\": <integer>, \"currency\": <ISO 4217 code>}".into(),
                ),
            }
        }
        CustomFieldType::Date => match v
            .as_str()
            .map(|s| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d"))
        {
            Some(Ok(d)) => Ok(json!(d.format("%Y-%m-%d").to_string())),
            _ => Err("must be a date written YYYY-MM-DD".into()),
        },
        CustomFieldType::Boolean => match v.as_bool() {
            Some(b) => Ok(json!(b)),
            None => Err("must be true or false".into()),
        },
        CustomFieldType::Select => match v.as_str() {
            Some(s) if def.options.iter().any(|o| o == s) => Ok(json!(s)),
            Some(s) => Err(format!("{s:?} is not one of the options ({})", options())),
            None => Err("must be one of the options as text".into()),
        },
        CustomFieldType::MultiSelect => {
            let Some(items) = v.as_array() else {
                return Err("must be a list of options".into());
            };
            let mut out: Vec<String> = Vec::new();
            for i in items {
                match i.as_str() {
                    Some(s) if def.options.iter().any(|o| o == s) => {
                        if !out.iter().any(|o| o == s) {
                            out.push(s.to_owned());
                        }
                    }
                    Some(s) => {
                        return Err(format!("{s:?} is not one of the options ({})", options()));
                    }
                    None => return Err("must be a list of options".into()),
                }
            }
            Ok(json!(out))
        }
    }
}

/// Applies `patch` (key -> value, null clears) to the stored `current`
/// values, validating every key against `defs`: unknown keys, wrong types,
/// missing required values and keys the caller may not write are reported
/// together as one VALIDATION / FORBIDDEN. On create, defaults fill the
/// gaps. Keys of deleted definitions already stored are kept untouched.
pub fn apply(
    defs: &[Def],
    current: &str,
    patch: Option<&Map<String, Value>>,
    creating: bool,
    may_write: &dyn Fn(&str) -> bool,
) -> Result<String> {
    let mut values: Map<String, Value> = serde_json::from_str(current).unwrap_or_default();
    let mut problems = Vec::new();
    let mut denied = Vec::new();
    if let Some(patch) = patch {
        for (k, v) in patch {
            let Some(def) = defs.iter().find(|d| &d.key == k) else {
                problems.push(invalid(k, "no such custom field"));
                continue;
            };
            if !may_write(k) {
                denied.push(k.clone());
                continue;
            }
            match check_value(def, v) {
                Ok(Value::Null) => {
                    values.remove(k);
                }
                Ok(v) => {
                    values.insert(k.clone(), v);
                }
                Err(m) => problems.push(invalid(k, m)),
            }
        }
    }
    for def in defs {
        let missing = values.get(&def.key).is_none_or(|v| {
            v.is_null()
                || v.as_str().is_some_and(str::is_empty)
                || v.as_array().is_some_and(Vec::is_empty)
        });
        if creating
            && missing
            && let Some(d) = &def.default
        {
            values.insert(def.key.clone(), d.clone());
            continue;
        }
        if def.required
            && missing
            && !problems
                .iter()
                .any(|p| p.field == format!("custom.{}", def.key))
        {
            problems.push(invalid(&def.key, "is required"));
        }
    }
    if !denied.is_empty() {
        return Err(Error::Forbidden {
            message: format!(
                "not allowed to write custom field(s): {}",
                denied.join(", ")
            ),
            fields: denied.iter().map(|k| format!("custom.{k}")).collect(),
        });
    }
    if !problems.is_empty() {
        return Err(Error::Validation(problems));
    }
    Ok(Value::Object(values).to_string())
}

/// The stored values the caller may read, of live definitions only.
pub fn readable(defs: &[Def], stored: &str, may_read: &dyn Fn(&str) -> bool) -> Value {
    let values: Map<String, Value> = serde_json::from_str(stored).unwrap_or_default();
    Value::Object(
        values
            .into_iter()
            .filter(|(k, _)| defs.iter().any(|d| &d.key == k) && may_read(k))
            .collect(),
    )
}

/// The stored values as audit snapshot fields, `custom.<key>` -> value, so a
/// record's audit diff and event show each custom field like any other
/// field. Merge them into the record's snapshot.
pub fn snapshot_fields(stored: &str) -> Map<String, Value> {
    let values: Map<String, Value> = serde_json::from_str(stored).unwrap_or_default();
    values
        .into_iter()
        .map(|(k, v)| (format!("custom.{k}"), v))
        .collect()
}

/// Whether `by` may `action` (read/write) `<ty>.custom.<key>`.
pub fn allowed(app: &App, by: &Principal, ty: &str, key: &str, action: &str) -> bool {
    crate::access::allows(app, by, &format!("{ty}.custom.{key}"), action)
}

/// Reads a CSV cell into a value for `def` (empty = null).
pub fn parse_cell(def: &Def, cell: &str) -> std::result::Result<Value, String> {
    let s = cell.trim();
    if s.is_empty() {
        return Ok(Value::Null);
    }
    let v = match def.ty {
        CustomFieldType::Number => {
            let n: f64 = s
                .replace(',', "")
                .parse()
                .map_err(|_| format!("{s:?} is not a number"))?;
            json!(n)
        }
        CustomFieldType::Boolean => match s.to_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "是" => json!(true),
            "false" | "no" | "n" | "0" | "否" => json!(false),
            _ => return Err(format!("{s:?} is not true or false")),
        },
        CustomFieldType::Money => {
            let (num, cur) = s
                .rsplit_once(' ')
                .ok_or_else(|| format!("{s:?} is not an amount with a currency (1234.50 EUR)"))?;
            let amount: f64 = num
                .replace(',', "")
                .parse()
                .map_err(|_| format!("{s:?} is not an amount with a currency (1234.50 EUR)"))?;
            json!({"amountMinor": (amount * 100.0).round() as i64, "currency": cur})
        }
        CustomFieldType::MultiSelect => json!(
            s.split([';', '；'])
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
        ),
        _ => json!(s),
    };
    check_value(def, &v)
}

/// A stored value as a CSV cell or JSON Lines value.
pub fn cell(def: &Def, v: Option<&Value>) -> Value {
    match (def.ty, v) {
        (_, None) | (_, Some(Value::Null)) => Value::Null,
        (CustomFieldType::Money, Some(m)) => {
            let minor = m.get("amountMinor").and_then(Value::as_i64).unwrap_or(0);
            let cur = m.get("currency").and_then(Value::as_str).unwrap_or("");
            json!(format!("{}.{:02} {cur}", minor / 100, (minor % 100).abs()))
        }
        (CustomFieldType::MultiSelect, Some(Value::Array(items))) => json!(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        (_, Some(v)) => v.clone(),
    }
}

/// SQL pieces for filtering and sorting by a custom field, per backend.
/// Keys are validated identifiers, so they can be written into the SQL.
pub struct CustomSql;

impl CustomSql {
    /// A condition "the field equals the bound JSON text" (for multi-select:
    /// "the list contains the bound option", bound as plain text).
    pub fn equals(backend: Backend, table: &str, def: &Def) -> String {
        let k = &def.key;
        match (backend, def.ty) {
            (Backend::Postgres, CustomFieldType::MultiSelect) => {
                format!("({table}.custom::jsonb -> '{k}') ? ")
            }
            (Backend::Sqlite, CustomFieldType::MultiSelect) => format!(
                "EXISTS (SELECT 1 FROM json_each({table}.custom, '$.{k}') WHERE json_each.value = "
            ),
            (Backend::Postgres, _) => format!("({table}.custom::jsonb -> '{k}')::text = "),
            (Backend::Sqlite, _) => format!("({table}.custom -> '$.{k}') = "),
        }
    }

    /// The closing text after the bound value of [`CustomSql::equals`].
    pub fn equals_end(backend: Backend, def: &Def) -> &'static str {
        match (backend, def.ty) {
            (Backend::Sqlite, CustomFieldType::MultiSelect) => ")",
            _ => "",
        }
    }

    /// The sort expression and whether it is numeric; None when the type
    /// cannot be sorted (multi-select).
    pub fn sort(backend: Backend, table: &str, def: &Def) -> Option<(String, bool)> {
        let k = &def.key;
        let pg = backend == Backend::Postgres;
        Some(match def.ty {
            CustomFieldType::MultiSelect => return None,
            CustomFieldType::Text | CustomFieldType::Date | CustomFieldType::Select => (
                if pg {
                    format!("COALESCE({table}.custom::jsonb ->> '{k}', '')")
                } else {
                    format!("COALESCE({table}.custom ->> '$.{k}', '')")
                },
                false,
            ),
            CustomFieldType::Number => (
                if pg {
                    format!("COALESCE(({table}.custom::jsonb ->> '{k}')::float8, -1e300)")
                } else {
                    format!("COALESCE(CAST({table}.custom ->> '$.{k}' AS REAL), -1e300)")
                },
                true,
            ),
            CustomFieldType::Money => (
                if pg {
                    format!(
                        "COALESCE(({table}.custom::jsonb -> '{k}' ->> 'amountMinor')::float8, -1e300)"
                    )
                } else {
                    format!(
                        "COALESCE(CAST({table}.custom ->> '$.{k}.amountMinor' AS REAL), -1e300)"
                    )
                },
                true,
            ),
            CustomFieldType::Boolean => (
                if pg {
                    format!(
                        "COALESCE(CASE {table}.custom::jsonb ->> '{k}' WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 END, -1e300)"
                    )
                } else {
                    format!("COALESCE(CAST({table}.custom ->> '$.{k}' AS REAL), -1e300)")
                },
                true,
            ),
        })
    }

    /// A row's sort value as the expression of [`CustomSql::sort`] computes
    /// it, as cursor text.
    pub fn sort_value(def: &Def, stored: &str) -> String {
        let values: Map<String, Value> = serde_json::from_str(stored).unwrap_or_default();
        let v = values.get(&def.key);
        match def.ty {
            CustomFieldType::Text | CustomFieldType::Date | CustomFieldType::Select => {
                v.and_then(Value::as_str).unwrap_or("").to_owned()
            }
            CustomFieldType::Number => v.and_then(Value::as_f64).unwrap_or(-1e300).to_string(),
            CustomFieldType::Money => v
                .and_then(|m| m.get("amountMinor"))
                .and_then(Value::as_f64)
                .unwrap_or(-1e300)
                .to_string(),
            CustomFieldType::Boolean => match v.and_then(Value::as_bool) {
                Some(true) => "1".into(),
                Some(false) => "0".into(),
                None => (-1e300f64).to_string(),
            },
            CustomFieldType::MultiSelect => String::new(),
        }
    }
}

/// A prepared SQL condition on a custom field (see [`query_parts`]).
#[derive(Clone, Debug)]
pub struct CustomCond {
    /// SQL up to the bound value.
    pub sql: String,
    /// The bound value (text).
    pub value: String,
    /// SQL after the bound value.
    pub end: &'static str,
}

/// A prepared SQL ordering by a custom field.
#[derive(Clone, Debug)]
pub struct CustomSort {
    /// The sort expression (never NULL).
    pub expr: String,
    /// Whether it is a number (bind cursor values as doubles).
    pub numeric: bool,
    /// The definition, to compute a row's cursor value.
    pub def: Def,
}

/// Turns a list's custom field filters and sort key into SQL for `table`,
/// refusing keys that do not exist or that the caller may not read.
pub async fn query_parts(
    app: &App,
    by: &Principal,
    entity: &str,
    table: &str,
    filters: &[CustomFieldFilter],
    sort_key: Option<&str>,
) -> Result<(Vec<CustomCond>, Option<CustomSort>)> {
    if filters.is_empty() && sort_key.is_none() {
        return Ok((Vec::new(), None));
    }
    let defs = {
        let mut c = app.db.conn().await?;
        definitions(&mut c.conn(), entity).await?
    };
    let backend = app.db.backend();
    let find = |key: &str, field: &str| -> Result<&Def> {
        let def = defs
            .iter()
            .find(|d| d.key == key)
            .ok_or_else(|| Error::invalid(field, format!("no custom field {key:?} on {entity}")))?;
        if !allowed(app, by, entity, key, "read") {
            return Err(by.refusal(
                &format!("not allowed to read {entity}.custom.{key}"),
                vec![format!("{entity}.custom.{key}")],
            ));
        }
        Ok(def)
    };
    let mut conds = Vec::new();
    for f in filters {
        let def = find(&f.key, "filter.custom")?;
        let value = if def.ty == CustomFieldType::MultiSelect {
            match f.equals.0.as_str() {
                Some(o) if def.options.iter().any(|x| x == o) => o.to_owned(),
                _ => {
                    return Err(Error::invalid(
                        "filter.custom",
                        format!(
                            "{}: give one of the options ({})",
                            f.key,
                            def.options.join(", ")
                        ),
                    ));
                }
            }
        } else {
            check_value(def, &f.equals.0)
                .map_err(|m| Error::invalid("filter.custom", format!("{}: {m}", f.key)))?
                .to_string()
        };
        conds.push(CustomCond {
            sql: CustomSql::equals(backend, table, def),
            value,
            end: CustomSql::equals_end(backend, def),
        });
    }
    let sort = match sort_key {
        None => None,
        Some(k) => {
            let def = find(k, "orderBy.customKey")?;
            let (expr, numeric) = CustomSql::sort(backend, table, def).ok_or_else(|| {
                Error::invalid(
                    "orderBy.customKey",
                    "multi-select fields cannot be sorted by",
                )
            })?;
            Some(CustomSort {
                expr,
                numeric,
                def: def.clone(),
            })
        }
    };
    Ok((conds, sort))
}

/// A condition on a custom field in a list filter.
#[derive(InputObject, Clone, Debug)]
pub struct CustomFieldFilter {
    /// The field's key.
    pub key: String,
    /// The value it must have (for multi-select: an option it must include).
    pub equals: Json<Value>,
}

/// A custom field definition.
#[derive(SimpleObject, Clone, Debug)]
pub struct CustomFieldDefinition {
    /// `cfd_…`
    pub id: ID,
    /// `Account` or `Contact`.
    pub entity_type: String,
    /// The key values are stored under (and the policy name
    /// `<entityType>.custom.<key>`).
    pub key: String,
    /// Label for forms.
    pub label: String,
    /// Type.
    #[graphql(name = "type")]
    pub field_type: CustomFieldType,
    /// Options of select types.
    pub options: Vec<String>,
    /// Must every record have a value?
    pub required: bool,
    /// Value new records get when none is given.
    pub default_value: Option<Json<Value>>,
    /// Pass back on update.
    pub version: i64,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// When it was deleted (its values are kept until it is purged).
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<DefRow> for CustomFieldDefinition {
    fn from(r: DefRow) -> Self {
        CustomFieldDefinition {
            id: r.id.into(),
            entity_type: r.entity_type,
            key: r.field_key,
            label: r.label,
            field_type: CustomFieldType::from_text(&r.field_type),
            options: serde_json::from_str(&r.options).unwrap_or_default(),
            required: r.required,
            default_value: r
                .default_value
                .and_then(|d| serde_json::from_str(&d).ok())
                .map(Json),
            version: r.version,
            created_at: r.created_at.and_utc(),
            deleted_at: r.deleted_at.map(|t| t.and_utc()),
        }
    }
}

/// Input of `createCustomField`.
#[derive(InputObject)]
pub struct CreateCustomFieldInput {
    /// `Account` or `Contact`.
    pub entity_type: String,
    /// Letters, digits and `_`, starting with a letter (at most 40).
    pub key: String,
    /// Label for forms.
    pub label: String,
    /// Type.
    #[graphql(name = "type")]
    pub field_type: CustomFieldType,
    /// Options of select types.
    #[graphql(default)]
    pub options: Vec<String>,
    /// Must every record have a value? (Applies to writes from now on.)
    #[graphql(default)]
    pub required: bool,
    /// Value new records get when none is given.
    pub default_value: Option<Json<Value>>,
}

/// Input of `updateCustomField`: omitted fields stay.
#[derive(InputObject)]
pub struct UpdateCustomFieldInput {
    /// The definition.
    pub id: ID,
    /// The version you read.
    pub version: i64,
    /// New label.
    pub label: Option<String>,
    /// New options (values no longer listed stay stored but fail the next
    /// write that touches them).
    pub options: Option<Vec<String>>,
    /// Required or not.
    pub required: Option<bool>,
    /// New default (null clears).
    pub default_value: async_graphql::MaybeUndefined<Json<Value>>,
}

fn check_definition(row: &DefRow, registry: &Registry) -> Result<()> {
    let mut problems = Vec::new();
    let key_ok = row.field_key.len() <= 40
        && row
            .field_key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && row
            .field_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !key_ok {
        problems.push(FieldError {
            field: "key".into(),
            message: "use letters, digits and _, starting with a letter (at most 40)".into(),
        });
    }
    if table_of(registry, &row.entity_type).is_none() {
        problems.push(FieldError {
            field: "entityType".into(),
            message: format!(
                "custom fields exist for {}",
                registry
                    .custom_field_entities()
                    .map(|e| e.ty)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    if row.label.trim().is_empty() || row.label.chars().count() > 100 {
        problems.push(FieldError {
            field: "label".into(),
            message: "must be 1 to 100 characters".into(),
        });
    }
    let def = Def::from(row);
    let selects = matches!(
        def.ty,
        CustomFieldType::Select | CustomFieldType::MultiSelect
    );
    if selects && def.options.is_empty() {
        problems.push(FieldError {
            field: "options".into(),
            message: "a select field needs at least one option".into(),
        });
    }
    if !selects && !def.options.is_empty() {
        problems.push(FieldError {
            field: "options".into(),
            message: "only select fields have options".into(),
        });
    }
    if let Some(d) = &def.default
        && let Err(m) = check_value(&def, d)
    {
        problems.push(FieldError {
            field: "defaultValue".into(),
            message: m,
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(problems))
    }
}

async fn load(conn: &mut Conn<'_>, id: &str) -> Result<DefRow> {
    ids::check(id, "cfd", "id")?;
    db_run!(conn, |c| defs::table
        .find(id)
        .select(DefRow::as_select())
        .first(c)
        .await
        .optional())?
    .ok_or_else(|| Error::NotFound(format!("custom field {id}")))
}

fn snapshot(r: &DefRow) -> Value {
    json!({"entityType": r.entity_type, "key": r.field_key, "label": r.label,
           "type": r.field_type, "options": serde_json::from_str::<Value>(&r.options).unwrap_or_default(),
           "required": r.required, "defaultValue": r.default_value, "deletedAt": r.deleted_at})
}

async fn save(
    app: &App,
    by: &Principal,
    before: Option<&DefRow>,
    after: &DefRow,
    action: &'static str,
) -> Result<()> {
    let mut tx = app.db.begin().await?;
    let mut conn = tx.conn();
    match before {
        None => {
            db_run!(&mut conn, |c| diesel::insert_into(defs::table)
                .values(after.clone())
                .execute(c)
                .await)?;
        }
        Some(b) => {
            let n = db_run!(&mut conn, |c| diesel::update(
                defs::table
                    .filter(defs::id.eq(&after.id))
                    .filter(defs::version.eq(b.version))
            )
            .set((
                defs::label.eq(&after.label),
                defs::options.eq(&after.options),
                defs::required.eq(after.required),
                defs::default_value.eq(&after.default_value),
                defs::updated_at.eq(after.updated_at),
                defs::version.eq(b.version + 1),
                defs::deleted_at.eq(after.deleted_at),
            ))
            .execute(c)
            .await)?;
            if n == 0 {
                return Err(Error::stale("custom field", &after.id, b.version));
            }
        }
    }
    change::record(
        &mut conn,
        &by.actor(),
        Change {
            topic: "customization",
            entity_type: RESOURCE,
            entity_id: after.id.clone(),
            action,
            before: before.map(snapshot),
            after: Some(snapshot(after)),
            owner_id: None,
            team_id: None,
        },
    )
    .await?;
    app.commit(tx).await
}

/// Custom field queries.
#[derive(Default)]
pub struct CustomFieldQuery;

#[Object]
impl CustomFieldQuery {
    /// The custom fields of an entity (`Account`, `Contact`), so forms can
    /// show them. Deleted ones only when asked.
    async fn custom_field_definitions(
        &self,
        ctx: &Context<'_>,
        entity_type: String,
        #[graphql(default)] include_deleted: bool,
    ) -> Result<Vec<CustomFieldDefinition>> {
        row_filter(ctx, RESOURCE, "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let rows = rows(&mut c.conn(), &entity_type, include_deleted).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

/// Custom field mutations (admins, by default policy).
#[derive(Default)]
pub struct CustomFieldMutation;

#[Object]
impl CustomFieldMutation {
    /// Defines a custom field.
    async fn create_custom_field(
        &self,
        ctx: &Context<'_>,
        input: CreateCustomFieldInput,
    ) -> Result<CustomFieldDefinition> {
        crate::access::require_create(ctx, RESOURCE)?;
        let app = ctx.data_unchecked::<App>();
        let now = ids::now();
        let row = DefRow {
            id: ids::new_id("cfd"),
            entity_type: input.entity_type.trim().to_owned(),
            field_key: input.key.trim().to_owned(),
            label: input.label.trim().to_owned(),
            field_type: input.field_type.as_text().into(),
            options: json!(input.options.iter().map(|o| o.trim()).collect::<Vec<_>>()).to_string(),
            required: input.required,
            default_value: input.default_value.map(|d| d.0.to_string()),
            created_at: now,
            updated_at: now,
            version: 1,
            deleted_at: None,
        };
        check_definition(&row, registry())?;
        save(app, principal(ctx), None, &row, "created")
            .await
            .map_err(|e| match e {
                Error::Conflict(_) => Error::Conflict(format!(
                    "{} already has a custom field {:?} (a deleted one keeps its key until purged)",
                    row.entity_type, row.field_key
                )),
                other => other,
            })?;
        Ok(row.into())
    }

    /// Changes a custom field's label, options, required flag or default.
    async fn update_custom_field(
        &self,
        ctx: &Context<'_>,
        input: UpdateCustomFieldInput,
    ) -> Result<CustomFieldDefinition> {
        row_filter(ctx, RESOURCE, "update").await?;
        let app = ctx.data_unchecked::<App>();
        let before = {
            let mut c = app.db.conn().await?;
            load(&mut c.conn(), &input.id).await?
        };
        let mut after = before.clone();
        if let Some(l) = input.label {
            after.label = l.trim().to_owned();
        }
        if let Some(o) = input.options {
            after.options = json!(o.iter().map(|o| o.trim()).collect::<Vec<_>>()).to_string();
        }
        if let Some(r) = input.required {
            after.required = r;
        }
        if let Some(d) = crate::graphql::patch(input.default_value) {
            after.default_value = d.map(|d| d.0.to_string());
        }
        after.updated_at = ids::now();
        check_definition(&after, registry())?;
        if before.version != input.version {
            return Err(Error::stale("custom field", &before.id, input.version));
        }
        save(app, principal(ctx), Some(&before), &after, "updated").await?;
        after.version += 1;
        Ok(after.into())
    }

    /// Deletes a custom field: it is no longer shown, validated or written,
    /// but stored values are kept until `purgeCustomField`.
    async fn delete_custom_field(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
    ) -> Result<CustomFieldDefinition> {
        row_filter(ctx, RESOURCE, "delete").await?;
        let app = ctx.data_unchecked::<App>();
        let before = {
            let mut c = app.db.conn().await?;
            load(&mut c.conn(), &id).await?
        };
        if before.version != version {
            return Err(Error::stale("custom field", &before.id, version));
        }
        let mut after = before.clone();
        after.deleted_at = Some(ids::now());
        after.updated_at = ids::now();
        save(app, principal(ctx), Some(&before), &after, "deleted").await?;
        after.version += 1;
        Ok(after.into())
    }

    /// Brings a deleted custom field back, with its stored values.
    async fn restore_custom_field(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<CustomFieldDefinition> {
        row_filter(ctx, RESOURCE, "delete").await?;
        let app = ctx.data_unchecked::<App>();
        let before = {
            let mut c = app.db.conn().await?;
            load(&mut c.conn(), &id).await?
        };
        if before.deleted_at.is_none() {
            return Err(Error::Conflict(format!(
                "custom field {} is not deleted",
                before.id
            )));
        }
        let mut after = before.clone();
        after.deleted_at = None;
        after.updated_at = ids::now();
        save(app, principal(ctx), Some(&before), &after, "restored").await?;
        after.version += 1;
        Ok(after.into())
    }

    /// Removes a deleted custom field for good, with every stored value.
    async fn purge_custom_field(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        row_filter(ctx, RESOURCE, "delete").await?;
        let app = ctx.data_unchecked::<App>();
        let before = {
            let mut c = app.db.conn().await?;
            load(&mut c.conn(), &id).await?
        };
        if before.deleted_at.is_none() {
            return Err(Error::Conflict(format!(
                "custom field {} must be deleted before it is purged",
                before.id
            )));
        }
        let table = table_of(registry(), &before.entity_type)
            .ok_or_else(|| Error::Internal(format!("no table for {}", before.entity_type)))?;
        let k = &before.field_key;
        let mut tx = app.db.begin().await?;
        let mut conn = tx.conn();
        let sql = match app.db.backend() {
            Backend::Postgres => format!(
                "UPDATE {table} SET custom = (custom::jsonb - '{k}')::text WHERE custom::jsonb ? '{k}'"
            ),
            Backend::Sqlite => format!(
                "UPDATE {table} SET custom = json_remove(custom, '$.{k}') WHERE json_type(custom, '$.{k}') IS NOT NULL"
            ),
        };
        db_run!(&mut conn, |c| diesel::sql_query(sql.clone())
            .execute(c)
            .await)?;
        db_run!(&mut conn, |c| diesel::delete(defs::table.find(&before.id))
            .execute(c)
            .await)?;
        change::record(
            &mut conn,
            &principal(ctx).actor(),
            Change {
                topic: "customization",
                entity_type: RESOURCE,
                entity_id: before.id.clone(),
                action: "purged",
                before: Some(snapshot(&before)),
                after: None,
                owner_id: None,
                team_id: None,
            },
        )
        .await?;
        app.commit(tx).await?;
        Ok(id)
    }
}

/// Keeps the rows after (`greater`) or before a `(value, id)` cursor in a
/// list sorted by a [`CustomSort`]; `$table` names the list's table.
#[macro_export]
macro_rules! custom_keyset {
    ($q:expr, $cs:expr, $value:expr, $id:expr, $greater:expr, $table:literal) => {{
        use ::diesel::prelude::*;
        use ::diesel::sql_types::{Bool, Double, Text};
        let cmp = if $greater { ">" } else { "<" };
        let e = &$cs.expr;
        let id_col = concat!($table, ".id");
        if $cs.numeric {
            let v: f64 = $value
                .parse()
                .map_err(|_| $crate::error::Error::invalid("after", "not a valid cursor"))?;
            $q.filter(
                ::diesel::dsl::sql::<Bool>(&format!("((({e}) {cmp} "))
                    .bind::<Double, _>(v)
                    .sql(&format!(") OR (({e}) = "))
                    .bind::<Double, _>(v)
                    .sql(&format!(" AND {id_col} {cmp} "))
                    .bind::<Text, _>($id.clone())
                    .sql("))"),
            )
        } else {
            $q.filter(
                ::diesel::dsl::sql::<Bool>(&format!("((({e}) {cmp} "))
                    .bind::<Text, _>($value.clone())
                    .sql(&format!(") OR (({e}) = "))
                    .bind::<Text, _>($value.clone())
                    .sql(&format!(" AND {id_col} {cmp} "))
                    .bind::<Text, _>($id.clone())
                    .sql("))"),
            )
        }
    }};
}

/// Orders a list by a [`CustomSort`], then by `$id`.
#[macro_export]
macro_rules! custom_order {
    ($q:expr, $cs:expr, $asc:expr, $id:expr) => {{
        use ::diesel::prelude::*;
        use ::diesel::sql_types::{Double, Text};
        if $cs.numeric {
            let o = ::diesel::dsl::sql::<Double>(&$cs.expr);
            if $asc {
                $q.order((o.asc(), $id.asc()))
            } else {
                $q.order((o.desc(), $id.desc()))
            }
        } else {
            let o = ::diesel::dsl::sql::<Text>(&$cs.expr);
            if $asc {
                $q.order((o.asc(), $id.asc()))
            } else {
                $q.order((o.desc(), $id.desc()))
            }
        }
    }};
}

/// Adds prepared custom field conditions to a boxed query.
#[macro_export]
macro_rules! custom_filter {
    ($q:expr, $conds:expr) => {{
        let mut q = $q;
        for c in $conds {
            q = q.filter(
                ::diesel::dsl::sql::<::diesel::sql_types::Bool>(&c.sql)
                    .bind::<::diesel::sql_types::Text, _>(c.value.clone())
                    .sql(c.end),
            );
        }
        q
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(ty: CustomFieldType, options: &[&str]) -> Def {
        Def {
            key: "k".into(),
            label: "K".into(),
            ty,
            options: options.iter().map(|s| (*s).to_owned()).collect(),
            required: false,
            default: None,
        }
    }

    #[test]
    fn values_are_checked_by_type() {
        let sel = def(CustomFieldType::Select, &["EMEA", "APAC"]);
        assert_eq!(check_value(&sel, &json!("EMEA")), Ok(json!("EMEA")));
        assert!(
            check_value(&sel, &json!("Mars"))
                .unwrap_err()
                .contains("not one of the options")
        );
        let multi = def(CustomFieldType::MultiSelect, &["a", "b"]);
        assert_eq!(
            check_value(&multi, &json!(["b", "a", "b"])),
            Ok(json!(["b", "a"]))
        );
        let date = def(CustomFieldType::Date, &[]);
        assert!(check_value(&date, &json!("2026-02-30")).is_err());
        let money = def(CustomFieldType::Money, &[]);
        assert_eq!(
            parse_cell(&money, "1,234.50 eur"),
            Ok(json!({"amountMinor": 123450, "currency": "EUR"}))
        );
        assert_eq!(
            cell(
                &money,
                Some(&json!({"amountMinor": 123450, "currency": "EUR"}))
            ),
            json!("1234.50 EUR")
        );
    }

    struct Shop;

    impl crate::module::Module for Shop {
        fn name(&self) -> &'static str {
            "shop"
        }
        fn entities(&self) -> &'static [crate::module::Entity] {
            use crate::module::Entity;
            const ENTITIES: &[Entity] = &[
                Entity::new("Store", "stores", "sto").with_custom_fields(),
                Entity::new("Clerk", "clerks", "clk"),
            ];
            ENTITIES
        }
    }

    #[test]
    fn definitions_are_for_registered_entities_with_custom_fields() {
        static MODULES: &[&dyn crate::module::Module] = &[&Shop];
        let registry = Registry::new(MODULES);
        let now = chrono::Utc::now().naive_utc();
        let row = |entity: &str| DefRow {
            id: "cfd_1".into(),
            entity_type: entity.into(),
            field_key: "region".into(),
            label: "Region".into(),
            field_type: "text".into(),
            options: "[]".into(),
            required: false,
            default_value: None,
            created_at: now,
            updated_at: now,
            version: 1,
            deleted_at: None,
        };
        assert!(check_definition(&row("Store"), &registry).is_ok());
        assert_eq!(table_of(&registry, "Store"), Some("stores"));
        for refused in ["Clerk", "Account", "store"] {
            let e = check_definition(&row(refused), &registry).unwrap_err();
            assert!(
                matches!(e, Error::Validation(ref f)
                    if f[0].field == "entityType" && f[0].message == "custom fields exist for Store"),
                "{refused}: {e:?}"
            );
        }
    }

    #[test]
    fn required_defaults_unknown_and_forbidden_keys() {
        let mut region = def(CustomFieldType::Select, &["EMEA", "APAC"]);
        region.key = "region".into();
        region.required = true;
        let mut score = def(CustomFieldType::Number, &[]);
        score.key = "score".into();
        score.default = Some(json!(5));
        let defs = vec![region, score];
        let all = |_: &str| true;
        let e = apply(&defs, "{}", None, true, &all).unwrap_err();
        assert!(matches!(e, Error::Validation(ref f) if f[0].field == "custom.region"));
        let patch: Map<String, Value> = serde_json::from_value(json!({"region": "EMEA"})).unwrap();
        let out = apply(&defs, "{}", Some(&patch), true, &all).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"region": "EMEA", "score": 5})
        );
        let bad: Map<String, Value> = serde_json::from_value(json!({"nope": 1})).unwrap();
        assert!(apply(&defs, &out, Some(&bad), false, &all).is_err());
        let no_score = |k: &str| k != "score";
        let p: Map<String, Value> = serde_json::from_value(json!({"score": 7})).unwrap();
        assert!(matches!(
            apply(&defs, &out, Some(&p), false, &no_score),
            Err(Error::Forbidden { .. })
        ));
    }
}
