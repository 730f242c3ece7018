//! Records referred to by type and id (a timeline entry's subject, a
//! contact's account): the seam that lets the timeline and contacts check a
//! reference without importing the code of the entity it names. Only core's
//! schema is used here, so every file of the crate may depend on this one.

use crm_core::access::RowFilter;
use crm_core::db::Conn;
use crm_core::error::{Error, Result};
use crm_core::schema::{accounts, contacts};
use crm_core::{apply_row_filter, db_run};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Whether a live (not deleted) record of resource type `type_name`
/// ("Account", "Contact") with `id` lies in `scope`.
pub async fn live_in_scope(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    type_name: &str,
    id: &str,
) -> Result<bool> {
    let found: Option<String> = match type_name {
        "Account" => db_run!(conn, |c| {
            let q = accounts::table.filter(accounts::id.eq(id)).into_boxed();
            apply_row_filter!(q, scope, accounts::owner_id)
                .filter(accounts::deleted_at.is_null())
                .select(accounts::id)
                .first(c)
                .await
                .optional()
        })?,
        "Contact" => db_run!(conn, |c| {
            let q = contacts::table.filter(contacts::id.eq(id)).into_boxed();
            apply_row_filter!(q, scope, contacts::owner_id)
                .filter(contacts::deleted_at.is_null())
                .select(contacts::id)
                .first(c)
                .await
                .optional()
        })?,
        other => {
            return Err(Error::Internal(format!(
                "no record type {other:?} can be referred to by type and id"
            )));
        }
    };
    Ok(found.is_some())
}
