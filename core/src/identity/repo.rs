//! Users, teams, revoked tokens and API keys in the database. Functions take a
//! [`Conn`] so they work inside a caller's transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use crate::access::RowFilter;
use crate::db::Conn;
use crate::db_run;
use crate::error::{Error, Result};
use crate::paging::PageQuery;
use crate::schema::{api_keys, revoked_tokens, teams, users};

/// A user row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    /// `usr_…`
    pub id: String,
    /// Lower-cased, unique.
    pub email: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// argon2id PHC string; never leaves the server.
    pub password_hash: Option<String>,
    /// Inactive users cannot sign in.
    pub active: bool,
    /// JSON array of role names.
    pub roles: String,
    /// The user's team.
    pub team_id: Option<String>,
    /// Created (UTC).
    pub created_at: NaiveDateTime,
    /// Last changed (UTC).
    pub updated_at: NaiveDateTime,
    /// Optimistic-concurrency version.
    pub version: i64,
}

impl UserRow {
    /// Role names.
    pub fn role_list(&self) -> Vec<String> {
        serde_json::from_str(&self.roles).unwrap_or_default()
    }

    /// Public fields, for audit diffs and events (no password hash).
    pub fn snapshot(&self) -> Value {
        json!({
            "email": self.email,
            "displayName": self.display_name,
            "active": self.active,
            "roles": self.role_list(),
            "teamId": self.team_id,
        })
    }
}

/// A team row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = teams)]
pub struct TeamRow {
    /// `team_…`
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The team above this one in the manager hierarchy.
    pub parent_id: Option<String>,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Last changed.
    pub updated_at: NaiveDateTime,
    /// Optimistic-concurrency version.
    pub version: i64,
}

impl TeamRow {
    /// Public fields, for audit diffs and events.
    pub fn snapshot(&self) -> Value {
        json!({ "name": self.name, "parentId": self.parent_id })
    }
}

/// An API key row (the key itself is never stored, only its hash).
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    /// `key_…`
    pub id: String,
    /// What the key is for.
    pub name: String,
    /// First characters of the key, to recognise it in lists.
    pub prefix: String,
    /// SHA-256 of the key, hex.
    pub key_hash: String,
    /// Role the key acts as.
    pub role: String,
    /// User who created it.
    pub created_by: String,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Revoked, if it was.
    pub revoked_at: Option<NaiveDateTime>,
}

impl ApiKeyRow {
    /// Public fields, for audit diffs and events.
    pub fn snapshot(&self) -> Value {
        json!({ "name": self.name, "prefix": self.prefix, "role": self.role, "revokedAt": self.revoked_at })
    }
}

/// Filter for [`list_users`].
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Only members of this team.
    pub team_id: Option<String>,
    /// Only active (true) or inactive (false) users.
    pub active: Option<bool>,
    /// Email or display name contains this (case-insensitive).
    pub search: Option<String>,
}

/// Finds a user by id.
pub async fn user(conn: &mut Conn<'_>, id: &str) -> Result<Option<UserRow>> {
    Ok(db_run!(conn, |c| users::table
        .find(id)
        .select(UserRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Finds a user by id within a row scope.
pub async fn user_in(conn: &mut Conn<'_>, id: &str, scope: &RowFilter) -> Result<Option<UserRow>> {
    Ok(db_run!(conn, |c| {
        let q = users::table.filter(users::id.eq(id)).into_boxed();
        crate::apply_row_filter!(q, scope, users::id, team = users::team_id)
            .select(UserRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// Finds a user by (lower-cased) email.
pub async fn user_by_email(conn: &mut Conn<'_>, email: &str) -> Result<Option<UserRow>> {
    Ok(db_run!(conn, |c| users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Checks that `id` names an active user; VALIDATION names `field`
/// otherwise. For owner and assignee inputs of every module.
pub async fn check_active_user(conn: &mut Conn<'_>, id: &str, field: &str) -> Result<()> {
    let active = crate::ids::check(id, "usr", field).is_ok()
        && user(conn, id).await?.is_some_and(|u| u.active);
    if active {
        Ok(())
    } else {
        Err(Error::invalid(field, "no such active user"))
    }
}

/// Loads several users by id.
pub async fn users_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<UserRow>> {
    Ok(db_run!(conn, |c| users::table
        .filter(users::id.eq_any(ids))
        .select(UserRow::as_select())
        .load(c)
        .await)?)
}

/// Counts users (used to detect the first start).
pub async fn count_users(conn: &mut Conn<'_>) -> Result<i64> {
    Ok(db_run!(conn, |c| users::table.count().get_result(c).await)?)
}

/// Lists a page of users ordered by id (creation order).
pub async fn list_users(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    filter: &UserFilter,
    page: &PageQuery,
) -> Result<(Vec<UserRow>, i64)> {
    let pattern = filter
        .search
        .as_ref()
        .map(|s| format!("%{}%", s.to_lowercase().replace(['\\', '%', '_'], "")));
    macro_rules! filtered {
        () => {{
            let mut q = crate::apply_row_filter!(
                users::table.into_boxed(),
                scope,
                users::id,
                team = users::team_id
            );
            if let Some(t) = &filter.team_id {
                q = q.filter(users::team_id.eq(t.clone()));
            }
            if let Some(a) = filter.active {
                q = q.filter(users::active.eq(a));
            }
            if let Some(p) = &pattern {
                q = q.filter(
                    users::email
                        .like(p.clone())
                        .or(crate::sql::lower(users::display_name).like(p.clone())),
                );
            }
            q
        }};
    }
    let rows = db_run!(conn, |c| {
        let mut q = filtered!();
        if let Some(a) = &page.after {
            q = q.filter(users::id.gt(a.clone()));
        }
        if let Some(b) = &page.before {
            q = q.filter(users::id.lt(b.clone()));
        }
        let q = if page.backwards {
            q.order(users::id.desc())
        } else {
            q.order(users::id.asc())
        };
        q.limit(page.limit + 1)
            .select(UserRow::as_select())
            .load(c)
            .await
    })?;
    let total = db_run!(conn, |c| filtered!().count().get_result(c).await)?;
    Ok((rows, total))
}

/// Inserts a user.
pub async fn insert_user(conn: &mut Conn<'_>, row: &UserRow) -> Result<()> {
    db_run!(conn, |c| diesel::insert_into(users::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    Ok(())
}

/// Writes `row` over the stored user if its stored version is still
/// `expected_version`; bumps the version. CONFLICT when it changed meanwhile.
pub async fn update_user(conn: &mut Conn<'_>, row: &UserRow, expected_version: i64) -> Result<()> {
    let n = db_run!(conn, |c| diesel::update(
        users::table
            .filter(users::id.eq(&row.id))
            .filter(users::version.eq(expected_version))
    )
    .set((
        users::email.eq(&row.email),
        users::display_name.eq(&row.display_name),
        users::password_hash.eq(&row.password_hash),
        users::active.eq(row.active),
        users::roles.eq(&row.roles),
        users::team_id.eq(&row.team_id),
        users::updated_at.eq(row.updated_at),
        users::version.eq(expected_version + 1),
    ))
    .execute(c)
    .await)?;
    if n == 0 {
        return Err(Error::stale("user", &row.id, expected_version));
    }
    Ok(())
}

/// Finds a team by id.
pub async fn team(conn: &mut Conn<'_>, id: &str) -> Result<Option<TeamRow>> {
    Ok(db_run!(conn, |c| teams::table
        .find(id)
        .select(TeamRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Checks that `id` names an existing team: one VALIDATION on `field`
/// ("no such team") for a malformed id and an unknown one alike.
pub async fn check_team(conn: &mut Conn<'_>, id: &str, field: &str) -> Result<()> {
    if crate::ids::check(id, "team", field).is_ok() && team(conn, id).await?.is_some() {
        Ok(())
    } else {
        Err(crate::error::Error::invalid(field, "no such team"))
    }
}

/// All teams (the hierarchy is small: tens to hundreds of rows).
pub async fn all_teams(conn: &mut Conn<'_>) -> Result<Vec<TeamRow>> {
    Ok(db_run!(conn, |c| teams::table
        .order(teams::name.asc())
        .select(TeamRow::as_select())
        .load(c)
        .await)?)
}

/// Inserts a team.
pub async fn insert_team(conn: &mut Conn<'_>, row: &TeamRow) -> Result<()> {
    db_run!(conn, |c| diesel::insert_into(teams::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    Ok(())
}

/// Version-checked team update (see [`update_user`]).
pub async fn update_team(conn: &mut Conn<'_>, row: &TeamRow, expected_version: i64) -> Result<()> {
    let n = db_run!(conn, |c| diesel::update(
        teams::table
            .filter(teams::id.eq(&row.id))
            .filter(teams::version.eq(expected_version))
    )
    .set((
        teams::name.eq(&row.name),
        teams::parent_id.eq(&row.parent_id),
        teams::updated_at.eq(row.updated_at),
        teams::version.eq(expected_version + 1),
    ))
    .execute(c)
    .await)?;
    if n == 0 {
        return Err(Error::stale("team", &row.id, expected_version));
    }
    Ok(())
}

/// Whether a team has members or teams below it.
pub async fn team_in_use(conn: &mut Conn<'_>, id: &str) -> Result<bool> {
    let members: i64 = db_run!(conn, |c| users::table
        .filter(users::team_id.eq(id))
        .count()
        .get_result(c)
        .await)?;
    let children: i64 = db_run!(conn, |c| teams::table
        .filter(teams::parent_id.eq(id))
        .count()
        .get_result(c)
        .await)?;
    Ok(members + children > 0)
}

/// Deletes a team if its version is still `version`.
pub async fn delete_team(conn: &mut Conn<'_>, id: &str, version: i64) -> Result<()> {
    let n = db_run!(conn, |c| diesel::delete(
        teams::table
            .filter(teams::id.eq(id))
            .filter(teams::version.eq(version))
    )
    .execute(c)
    .await)?;
    if n == 0 {
        return Err(Error::stale("team", id, version));
    }
    Ok(())
}

/// Records a revoked token until it would have expired anyway.
pub async fn revoke_token(
    conn: &mut Conn<'_>,
    jti: &str,
    user_id: &str,
    expires_at: NaiveDateTime,
) -> Result<()> {
    db_run!(conn, |c| diesel::insert_into(revoked_tokens::table)
        .values((
            revoked_tokens::jti.eq(jti),
            revoked_tokens::user_id.eq(user_id),
            revoked_tokens::expires_at.eq(expires_at),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)?;
    Ok(())
}

/// Ids of revoked tokens that have not expired yet.
pub async fn live_revoked_tokens(conn: &mut Conn<'_>, now: NaiveDateTime) -> Result<Vec<String>> {
    Ok(db_run!(conn, |c| revoked_tokens::table
        .filter(revoked_tokens::expires_at.gt(now))
        .select(revoked_tokens::jti)
        .load(c)
        .await)?)
}

/// Inserts an API key.
pub async fn insert_api_key(conn: &mut Conn<'_>, row: &ApiKeyRow) -> Result<()> {
    db_run!(conn, |c| diesel::insert_into(api_keys::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    Ok(())
}

/// Finds an API key by id.
pub async fn api_key(conn: &mut Conn<'_>, id: &str) -> Result<Option<ApiKeyRow>> {
    Ok(db_run!(conn, |c| api_keys::table
        .find(id)
        .select(ApiKeyRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Finds an API key by the hash of its secret.
pub async fn api_key_by_hash(conn: &mut Conn<'_>, hash: &str) -> Result<Option<ApiKeyRow>> {
    Ok(db_run!(conn, |c| api_keys::table
        .filter(api_keys::key_hash.eq(hash))
        .select(ApiKeyRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// All API keys, newest first.
pub async fn all_api_keys(conn: &mut Conn<'_>) -> Result<Vec<ApiKeyRow>> {
    Ok(db_run!(conn, |c| api_keys::table
        .order(api_keys::id.desc())
        .select(ApiKeyRow::as_select())
        .load(c)
        .await)?)
}

/// Marks a key revoked (no-op if it already is); returns whether it changed.
pub async fn revoke_api_key(conn: &mut Conn<'_>, id: &str, at: NaiveDateTime) -> Result<bool> {
    let n = db_run!(conn, |c| diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::revoked_at.is_null())
    )
    .set(api_keys::revoked_at.eq(Some(at)))
    .execute(c)
    .await)?;
    Ok(n > 0)
}
