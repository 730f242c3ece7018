//! Tags: a shared vocabulary for classifying accounts and contacts.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDateTime, Utc};
use crm_core::access::{Principal, RowFilter, principal, require_create, row_filter};
use crm_core::app::App;
use crm_core::change::{self, Change};
use crm_core::db::{Conn, Tx};
use crm_core::error::{Error, Result};
use crm_core::schema::{account_tags, contact_tags, tags};
use crm_core::{db_run, ids};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::TOPIC;
use crate::values::req_text;

/// A tag row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = tags)]
pub struct TagRow {
    pub id: String,
    pub name: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

/// A label for classifying customers.
#[derive(SimpleObject, Clone, Debug)]
pub struct Tag {
    /// `tag_…`
    pub id: ID,
    /// Unique name.
    pub name: String,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last renamed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on rename or delete.
    pub version: i64,
}

impl From<TagRow> for Tag {
    fn from(r: TagRow) -> Self {
        Tag {
            id: r.id.into(),
            name: r.name,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        }
    }
}

/// Tags of several accounts at once: (account id, tag).
pub async fn for_accounts(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<(String, TagRow)>> {
    Ok(db_run!(conn, |c| account_tags::table
        .inner_join(tags::table)
        .filter(account_tags::account_id.eq_any(ids))
        .order(tags::name.asc())
        .select((account_tags::account_id, TagRow::as_select()))
        .load(c)
        .await)?)
}

/// Tags of several contacts at once: (contact id, tag).
pub async fn for_contacts(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<(String, TagRow)>> {
    Ok(db_run!(conn, |c| contact_tags::table
        .inner_join(tags::table)
        .filter(contact_tags::contact_id.eq_any(ids))
        .order(tags::name.asc())
        .select((contact_tags::contact_id, TagRow::as_select()))
        .load(c)
        .await)?)
}

/// Checks that every id names a tag; returns them deduplicated.
pub async fn check_ids(conn: &mut Conn<'_>, ids: &[ID], field: &str) -> Result<Vec<String>> {
    let mut wanted: Vec<String> = ids.iter().map(|i| i.0.clone()).collect();
    wanted.sort();
    wanted.dedup();
    let found: Vec<String> = db_run!(conn, |c| tags::table
        .filter(tags::id.eq_any(&wanted))
        .select(tags::id)
        .load(c)
        .await)?;
    if found.len() != wanted.len() {
        let missing: Vec<&String> = wanted.iter().filter(|w| !found.contains(w)).collect();
        return Err(Error::invalid(field, format!("no such tag: {missing:?}")));
    }
    Ok(wanted)
}

/// Replaces an account's tags.
pub async fn set_account_tags(
    conn: &mut Conn<'_>,
    account: &str,
    tag_ids: &[String],
) -> Result<()> {
    db_run!(conn, |c| diesel::delete(
        account_tags::table.filter(account_tags::account_id.eq(account))
    )
    .execute(c)
    .await)?;
    for t in tag_ids {
        db_run!(conn, |c| diesel::insert_into(account_tags::table)
            .values((
                account_tags::account_id.eq(account),
                account_tags::tag_id.eq(t)
            ))
            .execute(c)
            .await)?;
    }
    Ok(())
}

/// Replaces a contact's tags.
pub async fn set_contact_tags(
    conn: &mut Conn<'_>,
    contact: &str,
    tag_ids: &[String],
) -> Result<()> {
    db_run!(conn, |c| diesel::delete(
        contact_tags::table.filter(contact_tags::contact_id.eq(contact))
    )
    .execute(c)
    .await)?;
    for t in tag_ids {
        db_run!(conn, |c| diesel::insert_into(contact_tags::table)
            .values((
                contact_tags::contact_id.eq(contact),
                contact_tags::tag_id.eq(t)
            ))
            .execute(c)
            .await)?;
    }
    Ok(())
}

/// Input for `createTag`.
#[derive(InputObject)]
pub struct CreateTagInput {
    /// Unique name.
    pub name: String,
}

/// Input for `updateTag` (rename).
#[derive(InputObject)]
pub struct UpdateTagInput {
    /// The tag.
    pub id: ID,
    /// The version you read.
    pub version: i64,
    /// New name.
    pub name: String,
}

/// Tag queries.
#[derive(Default)]
pub struct TagQuery;

#[Object]
impl TagQuery {
    /// Every tag, by name.
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        if !row_filter(ctx, "Tag", "read").await?.admits_unowned() {
            return Ok(Vec::new());
        }
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let mut conn = c.conn();
        let rows: Vec<TagRow> = db_run!(&mut conn, |c| tags::table
            .order(tags::name.asc())
            .select(TagRow::as_select())
            .load(c)
            .await)?;
        Ok(rows.into_iter().map(Tag::from).collect())
    }
}

/// Tag mutations.
#[derive(Default)]
pub struct TagMutation;

#[Object]
impl TagMutation {
    /// Creates a tag.
    async fn create_tag(&self, ctx: &Context<'_>, input: CreateTagInput) -> Result<Tag> {
        require_create(ctx, "Tag")?;
        let app = ctx.data_unchecked::<App>();
        Ok(create(app, principal(ctx), &input.name).await?.into())
    }

    /// Renames a tag.
    async fn update_tag(&self, ctx: &Context<'_>, input: UpdateTagInput) -> Result<Tag> {
        let scope = row_filter(ctx, "Tag", "update").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(rename(
            app,
            principal(ctx),
            &scope,
            &input.id,
            input.version,
            &input.name,
        )
        .await?
        .into())
    }

    /// Deletes a tag and removes it from every account and contact.
    async fn delete_tag(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<Tag> {
        let scope = row_filter(ctx, "Tag", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(delete(app, principal(ctx), &scope, &id, version)
            .await?
            .into())
    }
}

/// Writes the audit entry and event of a tag change and commits.
async fn record(
    app: &App,
    by: &Principal,
    mut tx: Tx,
    id: &str,
    action: &'static str,
    before: Option<&TagRow>,
    after: Option<&TagRow>,
) -> Result<()> {
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "Tag",
            entity_id: id.to_owned(),
            action,
            before: before.map(|t| json!({"name": t.name})),
            after: after.map(|t| json!({"name": t.name})),
            owner_id: None,
            team_id: None,
        },
    )
    .await?;
    app.commit(tx).await
}

/// Creates a tag.
pub async fn create(app: &App, by: &Principal, name: &str) -> Result<TagRow> {
    let now = ids::now();
    let row = TagRow {
        id: ids::new_id("tag"),
        name: req_text(name, 100, "name")?,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut tx = app.db.begin().await?;
    let mut conn = tx.conn();
    db_run!(&mut conn, |c| diesel::insert_into(tags::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    record(app, by, tx, &row.id, "created", None, Some(&row)).await?;
    Ok(row)
}

/// Renames a tag in `scope` if `version` is still its version.
pub async fn rename(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    version: i64,
    name: &str,
) -> Result<TagRow> {
    let name = req_text(name, 100, "name")?;
    let mut tx = app.db.begin().await?;
    let before = find(&mut tx.conn(), scope, id).await?;
    let mut after = before.clone();
    after.name = name;
    after.updated_at = ids::now();
    after.version = version + 1;
    let mut conn = tx.conn();
    let n = db_run!(&mut conn, |c| diesel::update(
        tags::table
            .filter(tags::id.eq(&after.id))
            .filter(tags::version.eq(version))
    )
    .set((
        tags::name.eq(&after.name),
        tags::updated_at.eq(after.updated_at),
        tags::version.eq(after.version)
    ))
    .execute(c)
    .await)?;
    if n == 0 {
        return Err(Error::stale("tag", &after.id, version));
    }
    record(
        app,
        by,
        tx,
        &after.id,
        "updated",
        Some(&before),
        Some(&after),
    )
    .await?;
    Ok(after)
}

/// Deletes a tag in `scope` (and with it every use on accounts and
/// contacts) if `version` is still its version.
pub async fn delete(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    version: i64,
) -> Result<TagRow> {
    let mut tx = app.db.begin().await?;
    let before = find(&mut tx.conn(), scope, id).await?;
    let mut conn = tx.conn();
    let n = db_run!(&mut conn, |c| diesel::delete(
        tags::table
            .filter(tags::id.eq(&before.id))
            .filter(tags::version.eq(version))
    )
    .execute(c)
    .await)?;
    if n == 0 {
        return Err(Error::stale("tag", &before.id, version));
    }
    record(app, by, tx, &before.id, "deleted", Some(&before), None).await?;
    Ok(before)
}

/// A tag in scope. Tags belong to nobody (see [`crate::OWNERSHIP`]): an
/// `own` or `team` scope holds none of them.
async fn find(conn: &mut Conn<'_>, scope: &RowFilter, id: &str) -> Result<TagRow> {
    ids::check(id, "tag", "id")?;
    if !scope.admits_unowned() {
        return Err(Error::NotFound(format!("tag {id}")));
    }
    db_run!(conn, |c| tags::table
        .find(id)
        .select(TagRow::as_select())
        .first(c)
        .await
        .optional())?
    .ok_or_else(|| Error::NotFound(format!("tag {id}")))
}
