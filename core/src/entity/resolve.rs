//! The kit's resolvers: what a module's list, fetch, create, update and
//! recycle-bin fields do once the module has turned its GraphQL input into a
//! [`ListQuery`] or its `Fields`. Each asks the access layer for the
//! caller's row scope on the entity's type (reading the recycle bin, and
//! restoring or purging from it, need `delete`), then calls the store.
//!
//! A module's resolver is then one call:
//!
//! ```ignore
//! async fn leads(&self, ctx: &Context<'_>, first: Option<i32>, …) -> Result<Page<Lead>> {
//!     let f = filter.unwrap_or_default();
//!     let o = order_by.unwrap_or_default();
//!     resolve::list::<Leads, _>(ctx, Paging { first, after, last, before },
//!         f.to_query(), Sorting { by: (o.field.column(), o.direction),
//!         custom: f.custom.as_deref().unwrap_or_default(), custom_key: o.custom_key.as_deref() },
//!         Lead::try_from).await
//! }
//! ```

use async_graphql::{Context, OutputType};

use crate::access::{principal, require_create, row_filter};
use crate::app::App;
use crate::custom::CustomFieldFilter;
use crate::error::Result;
use crate::paging::{self, Direction, Page};

use super::{Entity, ListQuery, store};

/// A list's page arguments, as the GraphQL field received them.
#[derive(Default)]
pub struct Paging {
    /// At most this many from the start (or after `after`).
    pub first: Option<i32>,
    /// Cursor: rows after this one.
    pub after: Option<String>,
    /// At most this many from the end (or before `before`).
    pub last: Option<i32>,
    /// Cursor: rows before this one.
    pub before: Option<String>,
}

/// A list's ordering and custom field conditions.
pub struct Sorting<'a> {
    /// Declared column and direction.
    pub by: (&'static str, Direction),
    /// Custom field conditions of the filter.
    pub custom: &'a [CustomFieldFilter],
    /// Sort by this custom field instead of `by`.
    pub custom_key: Option<&'a str>,
}

impl Sorting<'_> {
    /// Ordering by a declared column alone.
    pub fn by(column: &'static str, direction: Direction) -> Sorting<'static> {
        Sorting {
            by: (column, direction),
            custom: &[],
            custom_key: None,
        }
    }
}

/// One page of `E` in the caller's scope: the live records, or the recycle
/// bin when `query.deleted` (which needs `delete` on the type). `totalCount`
/// is counted only when the selection asks for it.
pub async fn list<E, N>(
    ctx: &Context<'_>,
    page: Paging,
    mut query: ListQuery,
    sorting: Sorting<'_>,
    node: impl Fn(E::Row) -> Result<N>,
) -> Result<Page<N>>
where
    E: Entity,
    N: OutputType,
{
    let (scope, q) = prepare::<E>(ctx, page, &mut query, &sorting).await?;
    let app = ctx.data_unchecked::<App>();
    let counted = ctx.look_ahead().field("totalCount").exists();
    let (rows, total) = {
        let mut c = app.db.conn().await?;
        super::list::<E>(&mut c.conn(), &scope, &query, &q, counted).await?
    };
    page_of::<E, N>(&query, &q, rows, total, &node)
}

/// What every list resolver does first: the caller's row scope on `E`
/// (`delete` for the recycle bin), the checked page arguments, and the
/// query's order and custom field parts.
async fn prepare<E: Entity>(
    ctx: &Context<'_>,
    page: Paging,
    query: &mut ListQuery,
    sorting: &Sorting<'_>,
) -> Result<(crate::access::RowFilter, paging::PageQuery)> {
    let def = &E::DEF;
    let verb = if query.deleted { "delete" } else { "read" };
    let scope = row_filter(ctx, def.type_name, verb).await?;
    let q = paging::query(page.first, page.after, page.last, page.before)?;
    query.order = Some(sorting.by);
    (query.custom, query.custom_sort) = crate::custom::query_parts(
        ctx.data_unchecked::<App>(),
        principal(ctx),
        def.type_name,
        def.table,
        sorting.custom,
        sorting.custom_key,
    )
    .await?;
    Ok((scope, q))
}

/// A page of nodes from the rows of a list, with their cursors.
fn page_of<E: Entity, N: OutputType>(
    query: &ListQuery,
    q: &paging::PageQuery,
    rows: Vec<E::Row>,
    total: i64,
    node: &impl Fn(E::Row) -> Result<N>,
) -> Result<Page<N>> {
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let key = paging::pair(
            &super::list::sort_value::<E>(query, &r)?,
            &super::id_of::<E>(&r)?,
        );
        items.push((key, node(r)?));
    }
    Ok(paging::build_keyed(q, items, total))
}

/// The same page of `E` for each of `values` of `column` in the caller's
/// scope, in one statement ([`super::pages::list_each`]): the pages a
/// parent resolver prefetches for its children (a board's stage columns).
/// `with_total` when the children's selection asks for `totalCount`. Not
/// for an order by a custom field.
#[allow(clippy::too_many_arguments)]
pub async fn list_each<E, N>(
    ctx: &Context<'_>,
    page: Paging,
    mut query: ListQuery,
    sorting: Sorting<'_>,
    column: &'static str,
    values: &[String],
    with_total: bool,
    node: impl Fn(E::Row) -> Result<N>,
) -> Result<std::collections::HashMap<String, Page<N>>>
where
    E: Entity,
    N: OutputType,
{
    if sorting.custom_key.is_some() {
        return Err(crate::error::Error::Internal(
            "list_each does not order by custom fields".into(),
        ));
    }
    let (scope, q) = prepare::<E>(ctx, page, &mut query, &sorting).await?;
    let app = ctx.data_unchecked::<App>();
    let pages = {
        let mut c = app.db.conn().await?;
        super::pages::list_each::<E>(
            &mut c.conn(),
            &scope,
            &query,
            &q,
            column,
            values,
            with_total,
        )
        .await?
    };
    let mut out = std::collections::HashMap::with_capacity(pages.len());
    for (value, (rows, total)) in pages {
        out.insert(value, page_of::<E, N>(&query, &q, rows, total, &node)?);
    }
    Ok(out)
}

/// One live record in the caller's read scope (NOT_FOUND otherwise).
pub async fn get<E: Entity>(ctx: &Context<'_>, id: &str) -> Result<E::Row> {
    let scope = row_filter(ctx, E::DEF.type_name, "read").await?;
    let app = ctx.data_unchecked::<App>();
    let mut c = app.db.conn().await?;
    store::fetch::<E>(&mut c.conn(), &scope, id).await
}

/// A record another record's input names in `field`: checks the id's form
/// and fetches it under the caller's read scope; an id that is malformed,
/// unknown or outside the scope is a VALIDATION error on `field` (never
/// NOT_FOUND, which would name the record being written).
pub async fn get_referenced<E: Entity>(ctx: &Context<'_>, id: &str, field: &str) -> Result<E::Row> {
    crate::ids::check(id, E::DEF.prefix, field)?;
    match get::<E>(ctx, id).await {
        Err(crate::error::Error::NotFound(_)) => Err(crate::error::Error::invalid(
            field,
            format!("no such {}", E::DEF.label),
        )),
        other => other,
    }
}

/// Creates a record if the caller may create the type.
pub async fn create<E: Entity>(ctx: &Context<'_>, fields: E::Fields) -> Result<E::Row> {
    require_create(ctx, E::DEF.type_name)?;
    let app = ctx.data_unchecked::<App>();
    store::create::<E>(app, principal(ctx), fields).await
}

/// Updates a record in the caller's update scope if `version` is current.
pub async fn update<E: Entity>(
    ctx: &Context<'_>,
    id: &str,
    version: i64,
    fields: E::Fields,
) -> Result<E::Row> {
    let scope = row_filter(ctx, E::DEF.type_name, "update").await?;
    let app = ctx.data_unchecked::<App>();
    store::update::<E>(app, principal(ctx), &scope, id, version, fields).await
}

/// Moves a record of the caller's delete scope to the recycle bin.
pub async fn delete<E: Entity>(ctx: &Context<'_>, id: &str, version: i64) -> Result<E::Row> {
    let scope = row_filter(ctx, E::DEF.type_name, "delete").await?;
    let app = ctx.data_unchecked::<App>();
    store::delete::<E>(app, principal(ctx), &scope, id, version).await
}

/// Brings a record of the caller's delete scope back from the recycle bin.
pub async fn restore<E: Entity>(ctx: &Context<'_>, id: &str) -> Result<E::Row> {
    let scope = row_filter(ctx, E::DEF.type_name, "delete").await?;
    let app = ctx.data_unchecked::<App>();
    store::restore::<E>(app, principal(ctx), &scope, id).await
}

/// Deletes a recycled record of the caller's delete scope for good; its id.
pub async fn purge<E: Entity>(ctx: &Context<'_>, id: &str) -> Result<async_graphql::ID> {
    let scope = row_filter(ctx, E::DEF.type_name, "delete").await?;
    let app = ctx.data_unchecked::<App>();
    Ok(store::purge::<E>(app, principal(ctx), &scope, id)
        .await?
        .into())
}

/// Deletes a record of a type without a recycle bin (configuration) for
/// good if it is in the caller's delete scope and `version` is current.
pub async fn remove<E: Entity>(
    ctx: &Context<'_>,
    id: &str,
    version: i64,
) -> Result<async_graphql::ID> {
    let scope = row_filter(ctx, E::DEF.type_name, "delete").await?;
    let app = ctx.data_unchecked::<App>();
    Ok(store::remove::<E>(app, principal(ctx), &scope, id, version)
        .await?
        .into())
}
