//! Access-control queries: `myPermissions` for UIs, `policyStatus` for admins.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::Scope;
use super::check::field_readable;
use crate::access::principal;
use crate::app::App;
use crate::error::Result;

/// A type's permissions for the caller, for UIs to hide what is not allowed.
#[derive(SimpleObject, Clone, Debug)]
pub struct TypePermissions {
    /// Type name, e.g. `User`.
    pub type_name: String,
    /// Which rows you may read (null: none).
    pub read: Option<Scope>,
    /// Whether you may create records.
    pub create: bool,
    /// Which rows you may update (null: none).
    pub update: Option<Scope>,
    /// Which rows you may delete (null: none).
    pub delete: Option<Scope>,
    /// Fields you may select (the same decision the request check makes:
    /// a field leading to records of another type also needs a read scope
    /// on that type).
    pub readable_fields: Vec<String>,
    /// Fields you may set on create or update.
    pub writable_fields: Vec<String>,
}

/// Everything the caller may do.
#[derive(SimpleObject, Clone, Debug)]
pub struct Permissions {
    /// The roles decisions are made for (including the implicit ones).
    pub roles: Vec<String>,
    /// Operations you may call: `Query.users`, `Mutation.createUser`, …
    pub operations: Vec<String>,
    /// Per resource type.
    pub types: Vec<TypePermissions>,
}

/// The policy in force and the last refused edit.
#[derive(SimpleObject, Clone, Debug)]
pub struct PolicyStatus {
    /// Increases with every successful (re)load.
    pub version: i64,
    /// When the policy in force was loaded.
    pub loaded_at: DateTime<Utc>,
    /// Where it came from: `file` (the policy directory; its path is in the
    /// server log) or `built-in`.
    pub source: String,
    /// Roles it defines.
    pub roles: Vec<String>,
    /// Why the newest edit was refused, if it was (the previous policy stays).
    pub last_error: Option<String>,
    /// When that was.
    pub last_error_at: Option<DateTime<Utc>>,
}

/// Access-control queries.
#[derive(Default)]
pub struct AccessQuery;

#[Object]
impl AccessQuery {
    /// What you may read, write and call, so a UI can hide the rest.
    async fn my_permissions(&self, ctx: &Context<'_>) -> Result<Permissions> {
        let app = ctx.data_unchecked::<App>();
        let roles = principal(ctx).effective_roles();
        let policy = app.policy.current();
        let catalog = app.policy.catalog();
        let operations = catalog
            .operations
            .iter()
            .filter(|o| policy.any_allows(&roles, o, "call"))
            .cloned()
            .collect();
        let types = catalog
            .readable
            .iter()
            .map(|(ty, readable)| {
                let read = policy.scope(&roles, ty, "read");
                TypePermissions {
                    type_name: ty.clone(),
                    read,
                    create: policy.any_allows(&roles, ty, "create"),
                    update: policy.scope(&roles, ty, "update"),
                    delete: policy.scope(&roles, ty, "delete"),
                    readable_fields: readable
                        .iter()
                        .filter(|f| field_readable(catalog, &policy, &roles, ty, f))
                        .cloned()
                        .collect(),
                    writable_fields: catalog.writable[ty]
                        .iter()
                        .filter(|f| policy.any_allows(&roles, &format!("{ty}.{f}"), "write"))
                        .cloned()
                        .collect(),
                }
            })
            .collect();
        Ok(Permissions {
            roles,
            operations,
            types,
        })
    }

    /// The loaded policy's version, load time and the last refused edit.
    async fn policy_status(&self, ctx: &Context<'_>) -> Result<PolicyStatus> {
        let app = ctx.data_unchecked::<App>();
        let policy = app.policy.current();
        let err = app.policy.last_error();
        Ok(PolicyStatus {
            version: policy.version as i64,
            loaded_at: policy.loaded_at,
            source: if policy.source == "built-in" {
                "built-in".to_owned()
            } else {
                "file".to_owned()
            },
            roles: policy.roles().iter().cloned().collect(),
            last_error: err.as_ref().map(|e| e.message.clone()),
            last_error_at: err.and_then(|e| e.at),
        })
    }
}
