//! The identity part of the GraphQL schema: sign-in, users, teams, API keys.

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::access::{Principal, RowFilter, principal, require_create, row_filter};
use crate::app::App;
use crate::error::{Error, Result};
use crate::identity::repo::{self, ApiKeyRow, TeamRow, UserFilter, UserRow};
use crate::identity::service::{self, NewUser, UserChanges};
use crate::paging::{self, Page};

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// A person who signs in to the CRM.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct User {
    /// `usr_…`
    pub id: ID,
    /// Sign-in email (lower case).
    pub email: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Inactive users cannot sign in.
    pub active: bool,
    /// Role names.
    pub roles: Vec<String>,
    /// The user's team id.
    pub team_id: Option<ID>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass this back on update; a stale value gets CONFLICT.
    pub version: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            roles: r.role_list(),
            id: r.id.into(),
            email: r.email,
            display_name: r.display_name,
            active: r.active,
            team_id: r.team_id.map(Into::into),
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
            version: r.version,
        }
    }
}

#[ComplexObject]
impl User {
    /// The user's team.
    async fn team(&self, ctx: &Context<'_>) -> Result<Option<Team>> {
        let Some(id) = &self.team_id else {
            return Ok(None);
        };
        let visible = team_visibility(ctx, "read").await?;
        if !visible(id) {
            return Ok(None);
        }
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        Ok(repo::team(&mut c.conn(), id).await?.map(Team::from))
    }
}

/// A team; teams form the manager hierarchy through `parent`.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Team {
    /// `team_…`
    pub id: ID,
    /// Unique name.
    pub name: String,
    /// The team above this one.
    pub parent_id: Option<ID>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass this back on update.
    pub version: i64,
}

impl From<TeamRow> for Team {
    fn from(r: TeamRow) -> Self {
        Team {
            id: r.id.into(),
            name: r.name,
            parent_id: r.parent_id.map(Into::into),
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
            version: r.version,
        }
    }
}

#[ComplexObject]
impl Team {
    /// The team above this one (null if outside what you may see).
    async fn parent(&self, ctx: &Context<'_>) -> Result<Option<Team>> {
        let Some(id) = &self.parent_id else {
            return Ok(None);
        };
        if !team_visibility(ctx, "read").await?(id) {
            return Ok(None);
        }
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        Ok(repo::team(&mut c.conn(), id).await?.map(Team::from))
    }

    /// Teams directly below this one (those you may see).
    async fn children(&self, ctx: &Context<'_>) -> Result<Vec<Team>> {
        let visible = team_visibility(ctx, "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let all = repo::all_teams(&mut c.conn()).await?;
        Ok(all
            .into_iter()
            .filter(|t| t.parent_id.as_deref() == Some(self.id.as_str()) && visible(&t.id))
            .map(Team::from)
            .collect())
    }
}

/// An integrator's API key (the secret itself is shown only at creation).
#[derive(SimpleObject, Clone, Debug)]
pub struct ApiKey {
    /// `key_…`
    pub id: ID,
    /// What the key is for.
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    /// The role the key acts as.
    pub role: String,
    /// Who created it.
    pub created_by: ID,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        ApiKey {
            id: r.id.into(),
            name: r.name,
            prefix: r.prefix,
            role: r.role,
            created_by: r.created_by.into(),
            created_at: utc(r.created_at),
            revoked_at: r.revoked_at.map(utc),
        }
    }
}

/// A newly created API key with its secret.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// The key's record.
    pub api_key: ApiKey,
    /// The secret to send as `Authorization: Bearer <key>`. Shown only once.
    pub key: String,
}

/// The result of a successful sign-in.
#[derive(SimpleObject)]
pub struct LoginPayload {
    /// Bearer token for the `Authorization` header.
    pub token: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: User,
}

/// Filter for `users`.
#[derive(InputObject, Default)]
pub struct UserFilterInput {
    /// Only members of this team.
    pub team_id: Option<ID>,
    /// Only active or only inactive users.
    pub active: Option<bool>,
    /// Email or display name contains this text.
    pub search: Option<String>,
}

/// Input for `createUser`.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// Sign-in email.
    pub email: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Initial password (at least 10 characters); omit to set one later.
    pub password: Option<String>,
    /// Role names.
    #[graphql(default)]
    pub roles: Vec<String>,
    /// Team.
    pub team_id: Option<ID>,
}

/// Input for `updateUser`: omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateUserInput {
    /// The user.
    pub id: ID,
    /// The version you read; a stale one gets CONFLICT.
    pub version: i64,
    /// New email.
    pub email: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
    /// New roles.
    pub roles: Option<Vec<String>>,
    /// New team; null removes the user from its team.
    pub team_id: MaybeUndefined<ID>,
    /// Activate or deactivate.
    pub active: Option<bool>,
}

/// Input for `createTeam`.
#[derive(InputObject)]
pub struct CreateTeamInput {
    /// Unique name.
    pub name: String,
    /// The team above this one.
    pub parent_id: Option<ID>,
}

/// Input for `updateTeam`.
#[derive(InputObject)]
pub struct UpdateTeamInput {
    /// The team.
    pub id: ID,
    /// The version you read.
    pub version: i64,
    /// New name.
    pub name: Option<String>,
    /// New parent; null makes it a top-level team.
    pub parent_id: MaybeUndefined<ID>,
}

/// Input for `createApiKey`.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// What the key is for.
    pub name: String,
    /// Role the key acts as (usually `integrator`).
    pub role: String,
}

fn maybe(v: MaybeUndefined<ID>) -> Option<Option<String>> {
    crate::graphql::patch(v).map(|o| o.map(|id| id.0))
}

/// Which teams the caller may `verb`: `own` is the caller's team, `team`
/// the caller's team and those below it.
pub async fn team_visibility(
    ctx: &Context<'_>,
    verb: &str,
) -> Result<impl Fn(&str) -> bool + use<>> {
    let filter = row_filter(ctx, "Team", verb).await?;
    let mine = match principal(ctx) {
        Principal::User(u) => u.team_id.clone(),
        _ => None,
    };
    Ok(move |id: &str| match filter.owner_scope() {
        RowFilter::All => true,
        RowFilter::Own(_) => mine.as_deref() == Some(id),
        RowFilter::Team(teams) => teams.iter().any(|t| t == id),
        RowFilter::Nothing | RowFilter::OrAssigned(..) | RowFilter::OrGroup(..) => false,
    })
}

/// Which API keys the caller may `verb`, by their creator.
async fn key_visibility(
    ctx: &Context<'_>,
    verb: &str,
) -> Result<impl Fn(&ApiKeyRow) -> bool + use<>> {
    let filter = row_filter(ctx, "ApiKey", verb).await?;
    let app = ctx.data_unchecked::<App>();
    // Keys are few; for `team` scope look up which creators are in the teams.
    let team_members: Vec<String> = match filter.owner_scope() {
        RowFilter::Team(teams) => {
            let mut c = app.db.conn().await?;
            let page = crate::paging::PageQuery {
                after: None,
                before: None,
                limit: i64::MAX - 1,
                backwards: false,
            };
            repo::list_users(
                &mut c.conn(),
                &RowFilter::Team(teams.clone()),
                &UserFilter::default(),
                &page,
            )
            .await?
            .0
            .into_iter()
            .map(|u| u.id)
            .collect()
        }
        _ => Vec::new(),
    };
    Ok(move |k: &ApiKeyRow| match filter.owner_scope() {
        RowFilter::All => true,
        RowFilter::Own(uid) => *uid == k.created_by,
        RowFilter::Team(_) => team_members.contains(&k.created_by),
        RowFilter::Nothing | RowFilter::OrAssigned(..) | RowFilter::OrGroup(..) => false,
    })
}

/// Fetches one user within the caller's read scope (NOT_FOUND otherwise).
pub async fn user_by_id(ctx: &Context<'_>, id: &str) -> Result<User> {
    let scope = row_filter(ctx, "User", "read").await?;
    let app = ctx.data_unchecked::<App>();
    let mut c = app.db.conn().await?;
    repo::user_in(&mut c.conn(), id, &scope)
        .await?
        .map(User::from)
        .ok_or_else(|| Error::NotFound(format!("user {id}")))
}

/// A related user (an owner, an assignee) as a nullable field: null when
/// outside the caller's read scope.
pub async fn visible_user(ctx: &Context<'_>, id: &str) -> Result<Option<User>> {
    crate::error::visible(user_by_id(ctx, id).await)
}

/// Fetches one team within the caller's read scope (NOT_FOUND otherwise).
pub async fn team_by_id(ctx: &Context<'_>, id: &str) -> Result<Team> {
    let visible = team_visibility(ctx, "read").await?;
    let app = ctx.data_unchecked::<App>();
    let mut c = app.db.conn().await?;
    repo::team(&mut c.conn(), id)
        .await?
        .filter(|t| visible(&t.id))
        .map(Team::from)
        .ok_or_else(|| Error::NotFound(format!("team {id}")))
}

/// Identity queries.
#[derive(Default)]
pub struct IdentityQuery;

#[Object]
impl IdentityQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let Some(id) = principal(ctx).user_id() else {
            return Err(Error::NotFound("user (API keys have no user)".into()));
        };
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let row = repo::user(&mut c.conn(), id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        Ok(row.into())
    }

    /// One user (NOT_FOUND if outside your row scope).
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<User> {
        user_by_id(ctx, &id).await
    }

    /// Users you may see, in creation order.
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<UserFilterInput>,
    ) -> Result<Page<User>> {
        let scope = row_filter(ctx, "User", "read").await?;
        let q = paging::query(first, after, last, before)?;
        let f = filter.unwrap_or_default();
        let filter = UserFilter {
            team_id: f.team_id.map(|t| t.0),
            active: f.active,
            search: f.search,
        };
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let (rows, total) = repo::list_users(&mut c.conn(), &scope, &filter, &q).await?;
        let users = rows.into_iter().map(User::from).collect();
        Ok(paging::build(&q, users, total, |u: &User| u.id.0.clone()))
    }

    /// One team (NOT_FOUND if outside your row scope).
    async fn team(&self, ctx: &Context<'_>, id: ID) -> Result<Team> {
        team_by_id(ctx, &id).await
    }

    /// The teams you may see, by name.
    async fn teams(&self, ctx: &Context<'_>) -> Result<Vec<Team>> {
        let visible = team_visibility(ctx, "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        Ok(repo::all_teams(&mut c.conn())
            .await?
            .into_iter()
            .filter(|t| visible(&t.id))
            .map(Team::from)
            .collect())
    }

    /// API keys you may see, newest first.
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let visible = key_visibility(ctx, "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        Ok(repo::all_api_keys(&mut c.conn())
            .await?
            .into_iter()
            .filter(|k| visible(k))
            .map(ApiKey::from)
            .collect())
    }
}

/// Identity mutations.
#[derive(Default)]
pub struct IdentityMutation;

#[Object]
impl IdentityMutation {
    /// Signs in. Wrong email and wrong password fail alike (UNAUTHENTICATED);
    /// repeated failures are throttled (RATE_LIMITED).
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<LoginPayload> {
        let app = ctx.data_unchecked::<App>();
        let (token, user) = app.auth.login(&email, &password).await?;
        Ok(LoginPayload {
            token: token.token,
            expires_at: token.expires_at,
            user: user.into(),
        })
    }

    /// Revokes the token this request was sent with, on every replica.
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        service::logout(ctx.data_unchecked::<App>(), principal(ctx)).await?;
        Ok(true)
    }

    /// Changes the signed-in user's own password.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> Result<bool> {
        let p = principal(ctx);
        let app = ctx.data_unchecked::<App>();
        let id = p.user_id().ok_or(Error::Unauthenticated)?;
        let hash = {
            let mut c = app.db.conn().await?;
            repo::user(&mut c.conn(), id)
                .await?
                .and_then(|u| u.password_hash)
        };
        let ok = match hash {
            Some(h) => crate::identity::auth::verify_password(&current_password, &h).await?,
            None => false,
        };
        if !ok {
            return Err(Error::invalid("currentPassword", "does not match"));
        }
        crate::identity::auth::check_password(&new_password, "newPassword")?;
        // Your own password is yours to change whatever your row scope.
        service::set_password(app, p, &RowFilter::All, id, &new_password).await?;
        Ok(true)
    }

    /// Creates a user.
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User> {
        require_create(ctx, "User")?;
        let row = service::create_user(
            ctx.data_unchecked::<App>(),
            principal(ctx),
            NewUser {
                email: input.email,
                display_name: input.display_name,
                password: input.password,
                roles: input.roles,
                team_id: input.team_id.map(|t| t.0),
            },
        )
        .await?;
        Ok(row.into())
    }

    /// Updates a user within your update scope.
    async fn update_user(&self, ctx: &Context<'_>, input: UpdateUserInput) -> Result<User> {
        let scope = row_filter(ctx, "User", "update").await?;
        let row = service::update_user(
            ctx.data_unchecked::<App>(),
            principal(ctx),
            &scope,
            &input.id,
            input.version,
            UserChanges {
                email: input.email,
                display_name: input.display_name,
                roles: input.roles,
                team_id: maybe(input.team_id),
                active: input.active,
            },
        )
        .await?;
        Ok(row.into())
    }

    /// Deactivates a user; their tokens stop working everywhere.
    async fn deactivate_user(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<User> {
        let scope = row_filter(ctx, "User", "update").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(
            service::deactivate_user(app, principal(ctx), &scope, &id, version)
                .await?
                .into(),
        )
    }

    /// Sets another user's password.
    async fn set_user_password(&self, ctx: &Context<'_>, id: ID, password: String) -> Result<User> {
        let scope = row_filter(ctx, "User", "update").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(
            service::set_password(app, principal(ctx), &scope, &id, &password)
                .await?
                .into(),
        )
    }

    /// Creates a team.
    async fn create_team(&self, ctx: &Context<'_>, input: CreateTeamInput) -> Result<Team> {
        require_create(ctx, "Team")?;
        let app = ctx.data_unchecked::<App>();
        let row = service::create_team(
            app,
            principal(ctx),
            &input.name,
            input.parent_id.map(|i| i.0),
        )
        .await?;
        Ok(row.into())
    }

    /// Renames or moves a team.
    async fn update_team(&self, ctx: &Context<'_>, input: UpdateTeamInput) -> Result<Team> {
        let visible = team_visibility(ctx, "update").await?;
        let row = service::update_team(
            ctx.data_unchecked::<App>(),
            principal(ctx),
            &visible,
            &input.id,
            input.version,
            input.name,
            maybe(input.parent_id),
        )
        .await?;
        Ok(row.into())
    }

    /// Deletes a team that has no members and no teams below it.
    async fn delete_team(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<Team> {
        let visible = team_visibility(ctx, "delete").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(
            service::delete_team(app, principal(ctx), &visible, &id, version)
                .await?
                .into(),
        )
    }

    /// Creates an API key; the secret is in the answer and nowhere else.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> Result<CreatedApiKey> {
        require_create(ctx, "ApiKey")?;
        let app = ctx.data_unchecked::<App>();
        let (row, key) =
            service::create_api_key(app, principal(ctx), &input.name, &input.role).await?;
        Ok(CreatedApiKey {
            api_key: row.into(),
            key,
        })
    }

    /// Revokes an API key on every replica.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKey> {
        let visible = key_visibility(ctx, "delete").await?;
        let app = ctx.data_unchecked::<App>();
        Ok(service::revoke_api_key(app, principal(ctx), &visible, &id)
            .await?
            .into())
    }
}
