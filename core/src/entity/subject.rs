//! Records referred to by type and id (a timeline entry's subject): the
//! GraphQL scalar that names such a type, and the check that a record of it
//! is live and within a row scope. Both read the module registry, so a
//! downstream module's records (an opportunity, a lead, a ticket) become
//! subjects by registering their declaration (`module::Entity::of(&DEF)`),
//! without a change upstream.

use async_graphql::{InputValueError, InputValueResult, Name, Scalar, ScalarType, Value};

use crate::access::RowFilter;
use crate::db::Conn;
use crate::error::{Error, Result};

use super::Def;
use super::list::{ListQuery, where_sql};
use super::sql::Sql;

/// A record type that can be referred to by type and id (see the scalar).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubjectType(&'static str);

/// The scalar's GraphQL name: documents write it as an enum.
pub const SCALAR: &str = "SubjectType";

impl SubjectType {
    /// The subject type of registered entity `type_name` (`Account`).
    /// Stored values go through here: an unknown one is data corruption or
    /// a module compiled out, an INTERNAL error, never a silent default.
    pub fn of(type_name: &str) -> Result<SubjectType> {
        declaration(type_name)
            .map(|d| SubjectType(d.type_name))
            .ok_or_else(|| {
                Error::Internal(format!(
                    "stored subject type {type_name:?} is not a registered entity"
                ))
            })
    }

    /// The type as the API names it (`ACCOUNT`, `PRICE_BOOK`).
    pub fn from_api(name: &str) -> Option<SubjectType> {
        crate::module::registry()
            .entities()
            .filter_map(|e| e.def)
            .find(|d| api_name(d.type_name) == name)
            .map(|d| SubjectType(d.type_name))
    }

    /// The GraphQL type and policy resource (`Account`).
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// `PriceBook` → `PRICE_BOOK`.
pub fn api_name(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len() + 4);
    for (i, ch) in type_name.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(ch.to_uppercase());
    }
    out
}

fn declaration(type_name: &str) -> Option<&'static Def> {
    crate::module::registry()
        .entity(type_name)
        .and_then(|e| e.def)
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::Enum(n) => Some(n.as_str()),
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
}

fn known() -> String {
    crate::module::registry()
        .entities()
        .filter_map(|e| e.def)
        .map(|d| api_name(d.type_name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The type of a record that others refer to by type and id, named as an
/// enum value would be: `ACCOUNT`, `CONTACT`, and the types of the other
/// modules compiled in (`OPPORTUNITY`, `LEAD`, `TICKET`, …). A scalar rather
/// than an enum because each module adds its own types; it reads as an enum
/// does: unquoted in a document (`subjectType: ACCOUNT`, an unknown or
/// quoted name is refused when the document is validated), a string in
/// variables and in results.
#[Scalar(name = "SubjectType")]
impl ScalarType for SubjectType {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Some(s) = text(&value) else {
            return Err(InputValueError::expected_type(value));
        };
        SubjectType::from_api(s).ok_or_else(|| {
            InputValueError::custom(format!("{s:?} is not a record type; one of: {}", known()))
        })
    }

    // Quoted literals are refused before this by the gateway's document
    // check, which treats [`SCALAR`] as an enum; variables (JSON has only
    // strings) arrive as strings.
    fn is_valid(value: &Value) -> bool {
        text(value).is_some_and(|s| SubjectType::from_api(s).is_some())
    }

    fn to_value(&self) -> Value {
        Value::Enum(Name::new(api_name(self.0)))
    }
}

/// Whether a live (not binned) record of type `ty` with `id` lies in
/// `scope` (the caller's scope for `ty`).
pub async fn live_in_scope(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    ty: SubjectType,
    id: &str,
) -> Result<bool> {
    let def = declaration(ty.0)
        .ok_or_else(|| Error::Internal(format!("{} is not a registered entity", ty.0)))?;
    let mut q = Sql::new(format!("SELECT COUNT(*) AS n FROM {}", def.table));
    q.append(&where_sql(def, scope, &ListQuery::default())?)
        .push(&format!(" AND {}.id = ", def.table))
        .bind(id);
    Ok(q.count(conn).await? > 0)
}

#[cfg(test)]
mod tests {
    use super::api_name;

    #[test]
    fn api_names_are_upper_snake_case() {
        assert_eq!(api_name("Account"), "ACCOUNT");
        assert_eq!(api_name("PriceBook"), "PRICE_BOOK");
    }
}
