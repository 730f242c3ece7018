//! Identity operations shared by the GraphQL API and the CLI: validation,
//! one transaction per write, audit entry and event in that transaction.

use crate::access::{Principal, RowFilter};
use crate::app::App;
use crate::change::{self, Change};
use crate::error::{Checks, Error, Result};
use crate::identity::auth::{self, TOPIC};
use crate::identity::repo::{self, ApiKeyRow, TeamRow, UserRow};
use crate::ids;

/// Input for [`create_user`].
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Email (normalised to lower case).
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Initial password; None creates a user who cannot sign in yet.
    pub password: Option<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// Team.
    pub team_id: Option<String>,
}

/// Changes for [`update_user`]; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct UserChanges {
    /// New email.
    pub email: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
    /// New roles.
    pub roles: Option<Vec<String>>,
    /// New team (`Some(None)` removes the user from its team).
    pub team_id: Option<Option<String>>,
    /// Activate or deactivate.
    pub active: Option<bool>,
}

/// Normalises and checks an email address.
pub fn normalize_email(email: &str, field: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && !e.chars().any(char::is_whitespace)
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if valid {
        Ok(e)
    } else {
        Err(Error::invalid(field, "not a valid email address"))
    }
}

fn check_name(name: &str, field: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 {
        return Err(Error::invalid(field, "must be 1 to 200 characters"));
    }
    Ok(n.to_owned())
}

/// Roles must be defined by the policy in force.
fn check_roles(app: &App, roles: &[String], field: &str) -> Result<Vec<String>> {
    let policy = app.policy.current();
    let known = policy.roles();
    let mut out: Vec<String> = Vec::new();
    for r in roles {
        if !known.contains(r) {
            let list: Vec<&str> = known.iter().map(String::as_str).collect();
            return Err(Error::invalid(
                field,
                format!("unknown role {r:?} (known: {})", list.join(", ")),
            ));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

/// Refuses (FORBIDDEN, naming `Role.<name>` for each) unless the caller may
/// grant every role in `roles`: the policy must allow it `grant` on
/// `Role.<name>`, and the role may not reach anything the caller cannot
/// (see [`crate::policy::grants`]).
pub fn require_grantable(app: &App, by: &Principal, roles: &[String]) -> Result<()> {
    if by.is_system() {
        return Ok(());
    }
    let policy = app.policy.current();
    let granter = by.effective_roles();
    let mut names = Vec::new();
    let mut reasons = Vec::new();
    for r in roles {
        if let Some(why) =
            crate::policy::grants::refusal(&policy, app.policy.catalog(), &granter, r)
        {
            names.push(crate::policy::grants::role_object(r));
            reasons.push(why);
        }
    }
    if names.is_empty() {
        Ok(())
    } else {
        Err(by.refusal(&reasons.join("; "), names))
    }
}

/// Refuses (FORBIDDEN) to act on a user holding a role the caller could
/// not grant: setting their password, changing or deactivating them would
/// let the caller act as them. Acting on yourself is always allowed here.
fn require_actable(app: &App, by: &Principal, target: &UserRow) -> Result<()> {
    if by.user_id() == Some(target.id.as_str()) {
        return Ok(());
    }
    require_grantable(app, by, &target.role_list()).map_err(|e| match e {
        Error::Forbidden { message, fields } => Error::Forbidden {
            message: format!("user {} holds roles you cannot grant: {message}", target.id),
            fields,
        },
        e => e,
    })
}

async fn check_team(app: &App, team_id: Option<&str>, field: &str) -> Result<()> {
    if let Some(t) = team_id {
        ids::check(t, "team", field)?;
        let mut c = app.db.conn().await?;
        if repo::team(&mut c.conn(), t).await?.is_none() {
            return Err(Error::invalid(field, "no such team"));
        }
    }
    Ok(())
}

/// Creates a user.
pub async fn create_user(app: &App, by: &Principal, input: NewUser) -> Result<UserRow> {
    let mut c = Checks::default();
    let email = c.take(normalize_email(&input.email, "email"))?;
    let name = c.take(check_name(&input.display_name, "displayName"))?;
    let roles = c.take(check_roles(app, &input.roles, "roles"))?;
    if let Some(pw) = &input.password {
        c.take(auth::check_password(pw, "password"))?;
    }
    c.take(check_team(app, input.team_id.as_deref(), "teamId").await)?;
    c.finish()?;
    require_grantable(app, by, roles.as_deref().unwrap_or_default())?;
    let (email, name, roles) = (
        email.unwrap_or_default(),
        name.unwrap_or_default(),
        roles.unwrap_or_default(),
    );
    let hash = match &input.password {
        Some(pw) => Some(auth::hash_password(pw).await?),
        None => None,
    };
    let now = ids::now();
    let row = UserRow {
        id: ids::new_id("usr"),
        email,
        display_name: name,
        password_hash: hash,
        active: true,
        roles: serde_json::to_string(&roles).unwrap_or_else(|_| "[]".into()),
        team_id: input.team_id,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut tx = app.db.begin().await?;
    if repo::user_by_email(&mut tx.conn(), &row.email)
        .await?
        .is_some()
    {
        return Err(Error::Conflict(format!(
            "a user with email {} already exists",
            row.email
        )));
    }
    repo::insert_user(&mut tx.conn(), &row).await?;
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "User",
            entity_id: row.id.clone(),
            action: "created",
            before: None,
            after: Some(row.snapshot()),
            owner_id: Some(row.id.clone()),
            team_id: row.team_id.clone(),
        },
    )
    .await?;
    app.commit(tx).await?;
    Ok(row)
}

/// Loads a user within `scope` for update, or fails NOT_FOUND.
async fn load_user(tx: &mut crate::db::Tx, id: &str, scope: &RowFilter) -> Result<UserRow> {
    ids::check(id, "usr", "id")?;
    repo::user_in(&mut tx.conn(), id, scope)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {id}")))
}

/// Writes a changed user (version-checked), its audit entry and event.
async fn save_user(
    app: &App,
    by: &Principal,
    mut tx: crate::db::Tx,
    before: UserRow,
    mut after: UserRow,
    expected_version: i64,
    action: &'static str,
) -> Result<UserRow> {
    after.updated_at = ids::now();
    repo::update_user(&mut tx.conn(), &after, expected_version).await?;
    after.version = expected_version + 1;
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "User",
            entity_id: after.id.clone(),
            action,
            before: Some(before.snapshot()),
            after: Some(after.snapshot()),
            owner_id: Some(after.id.clone()),
            team_id: after.team_id.clone(),
        },
    )
    .await?;
    app.commit(tx).await?;
    app.auth.forget_user(&after.id);
    Ok(after)
}

/// Updates a user if `version` is current (CONFLICT otherwise).
pub async fn update_user(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    version: i64,
    changes: UserChanges,
) -> Result<UserRow> {
    let mut c = Checks::default();
    let email = c
        .take(
            changes
                .email
                .as_deref()
                .map(|e| normalize_email(e, "email"))
                .transpose(),
        )?
        .flatten();
    let name = c
        .take(
            changes
                .display_name
                .as_deref()
                .map(|n| check_name(n, "displayName"))
                .transpose(),
        )?
        .flatten();
    let roles = c
        .take(
            changes
                .roles
                .as_deref()
                .map(|r| check_roles(app, r, "roles"))
                .transpose(),
        )?
        .flatten();
    if let Some(t) = &changes.team_id {
        c.take(check_team(app, t.as_deref(), "teamId").await)?;
    }
    c.finish()?;
    let mut tx = app.db.begin().await?;
    let before = load_user(&mut tx, id, scope).await?;
    require_actable(app, by, &before)?;
    if let Some(r) = &roles {
        let current = before.role_list();
        let added: Vec<String> = r.iter().filter(|x| !current.contains(x)).cloned().collect();
        require_grantable(app, by, &added)?;
    }
    let mut after = before.clone();
    if let Some(e) = email {
        if e != before.email && repo::user_by_email(&mut tx.conn(), &e).await?.is_some() {
            return Err(Error::Conflict(format!(
                "a user with email {e} already exists"
            )));
        }
        after.email = e;
    }
    if let Some(n) = name {
        after.display_name = n;
    }
    if let Some(r) = roles {
        after.roles = serde_json::to_string(&r).unwrap_or_else(|_| "[]".into());
    }
    if let Some(t) = changes.team_id {
        after.team_id = t;
    }
    if let Some(a) = changes.active {
        after.active = a;
    }
    save_user(app, by, tx, before, after, version, "updated").await
}

/// Deactivates a user: they can no longer sign in and their tokens stop
/// working on every replica.
pub async fn deactivate_user(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    version: i64,
) -> Result<UserRow> {
    if by.user_id() == Some(id) {
        return Err(Error::invalid("id", "you cannot deactivate yourself"));
    }
    let mut tx = app.db.begin().await?;
    let before = load_user(&mut tx, id, scope).await?;
    require_actable(app, by, &before)?;
    let mut after = before.clone();
    after.active = false;
    save_user(app, by, tx, before, after, version, "deactivated").await
}

/// Sets a user's password (admin or CLI).
pub async fn set_password(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    password: &str,
) -> Result<UserRow> {
    auth::check_password(password, "password")?;
    let hash = auth::hash_password(password).await?;
    let mut tx = app.db.begin().await?;
    let before = load_user(&mut tx, id, scope).await?;
    require_actable(app, by, &before)?;
    let mut after = before.clone();
    after.password_hash = Some(hash);
    let version = before.version;
    save_user(app, by, tx, before, after, version, "password_set").await
}

/// Signs the caller's token out on every replica.
pub async fn logout(app: &App, by: &Principal) -> Result<()> {
    let Principal::User(u) = by else {
        return Err(Error::invalid(
            "authorization",
            "only a signed-in user's token can be logged out",
        ));
    };
    let mut tx = app.db.begin().await?;
    repo::revoke_token(
        &mut tx.conn(),
        &u.token_id,
        &u.id,
        app.auth.revocation_horizon(),
    )
    .await?;
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "Token",
            entity_id: u.token_id.clone(),
            action: "revoked",
            before: None,
            after: Some(serde_json::json!({ "userId": u.id })),
            owner_id: Some(u.id.clone()),
            team_id: u.team_id.clone(),
        },
    )
    .await?;
    app.commit(tx).await?;
    app.auth.forget_token(&u.token_id);
    Ok(())
}

/// Creates a team.
pub async fn create_team(
    app: &App,
    by: &Principal,
    name: &str,
    parent_id: Option<String>,
) -> Result<TeamRow> {
    let name = check_name(name, "name")?;
    if let Some(p) = &parent_id {
        ids::check(p, "team", "parentId")?;
    }
    let now = ids::now();
    let row = TeamRow {
        id: ids::new_id("team"),
        name,
        parent_id,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut tx = app.db.begin().await?;
    if let Some(p) = &row.parent_id
        && repo::team(&mut tx.conn(), p).await?.is_none()
    {
        return Err(Error::invalid("parentId", "no such team"));
    }
    repo::insert_team(&mut tx.conn(), &row).await?;
    app.teams.invalidate();
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "Team",
            entity_id: row.id.clone(),
            action: "created",
            before: None,
            after: Some(row.snapshot()),
            owner_id: None,
            team_id: Some(row.id.clone()),
        },
    )
    .await?;
    app.commit(tx).await?;
    Ok(row)
}

/// Renames or re-parents a team (refusing cycles) if `version` is current.
pub async fn update_team(
    app: &App,
    by: &Principal,
    visible: &(dyn Fn(&str) -> bool + Sync),
    id: &str,
    version: i64,
    name: Option<String>,
    parent_id: Option<Option<String>>,
) -> Result<TeamRow> {
    ids::check(id, "team", "id")?;
    let name = name.as_deref().map(|n| check_name(n, "name")).transpose()?;
    let mut tx = app.db.begin().await?;
    let before = repo::team(&mut tx.conn(), id)
        .await?
        .filter(|t| visible(&t.id))
        .ok_or_else(|| Error::NotFound(format!("team {id}")))?;
    let mut after = before.clone();
    if let Some(n) = name {
        after.name = n;
    }
    if let Some(parent) = parent_id {
        if let Some(p) = &parent {
            ids::check(p, "team", "parentId")?;
            // Walk up from the new parent: meeting this team means a cycle.
            let teams = repo::all_teams(&mut tx.conn()).await?;
            let mut cur = Some(p.clone());
            let mut steps = 0;
            while let Some(c) = cur {
                if c == id || steps > teams.len() {
                    return Err(Error::invalid(
                        "parentId",
                        "would make the team hierarchy a cycle",
                    ));
                }
                let Some(t) = teams.iter().find(|t| t.id == c) else {
                    return Err(Error::invalid("parentId", "no such team"));
                };
                cur = t.parent_id.clone();
                steps += 1;
            }
        }
        after.parent_id = parent;
    }
    after.updated_at = ids::now();
    repo::update_team(&mut tx.conn(), &after, version).await?;
    app.teams.invalidate();
    after.version = version + 1;
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "Team",
            entity_id: after.id.clone(),
            action: "updated",
            before: Some(before.snapshot()),
            after: Some(after.snapshot()),
            owner_id: None,
            team_id: Some(after.id.clone()),
        },
    )
    .await?;
    app.commit(tx).await?;
    Ok(after)
}

/// Creates an API key; returns the row and the secret, which is never
/// stored and cannot be shown again.
pub async fn create_api_key(
    app: &App,
    by: &Principal,
    name: &str,
    role: &str,
) -> Result<(ApiKeyRow, String)> {
    let name = check_name(name, "name")?;
    let role = check_roles(app, &[role.to_owned()], "role")?.remove(0);
    require_grantable(app, by, std::slice::from_ref(&role))?;
    let secret = auth::generate_api_key();
    let row = ApiKeyRow {
        id: ids::new_id("key"),
        name,
        prefix: secret[..auth::API_KEY_PREFIX.len() + 6].to_owned(),
        key_hash: auth::hash_api_key(&secret),
        role,
        created_by: by.actor().id.unwrap_or_else(|| "system".into()),
        created_at: ids::now(),
        revoked_at: None,
    };
    let mut tx = app.db.begin().await?;
    repo::insert_api_key(&mut tx.conn(), &row).await?;
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "ApiKey",
            entity_id: row.id.clone(),
            action: "created",
            before: None,
            after: Some(row.snapshot()),
            owner_id: Some(row.created_by.clone()),
            team_id: None,
        },
    )
    .await?;
    app.commit(tx).await?;
    Ok((row, secret))
}

/// Revokes an API key on every replica.
pub async fn revoke_api_key(
    app: &App,
    by: &Principal,
    visible: &(dyn Fn(&ApiKeyRow) -> bool + Sync),
    id: &str,
) -> Result<ApiKeyRow> {
    ids::check(id, "key", "id")?;
    let mut tx = app.db.begin().await?;
    let before = repo::api_key(&mut tx.conn(), id)
        .await?
        .filter(|k| visible(k))
        .ok_or_else(|| Error::NotFound(format!("API key {id}")))?;
    let now = ids::now();
    if !repo::revoke_api_key(&mut tx.conn(), id, now).await? {
        return Ok(before);
    }
    let mut after = before.clone();
    after.revoked_at = Some(now);
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "ApiKey",
            entity_id: id.to_owned(),
            action: "revoked",
            before: Some(before.snapshot()),
            after: Some(after.snapshot()),
            owner_id: Some(after.created_by.clone()),
            team_id: None,
        },
    )
    .await?;
    app.commit(tx).await?;
    app.auth.forget_key(id);
    Ok(after)
}

/// Deletes an empty team (no members, no teams below it).
pub async fn delete_team(
    app: &App,
    by: &Principal,
    visible: &(dyn Fn(&str) -> bool + Sync),
    id: &str,
    version: i64,
) -> Result<TeamRow> {
    ids::check(id, "team", "id")?;
    let mut tx = app.db.begin().await?;
    let before = repo::team(&mut tx.conn(), id)
        .await?
        .filter(|t| visible(&t.id))
        .ok_or_else(|| Error::NotFound(format!("team {id}")))?;
    if before.version != version {
        return Err(Error::stale("team", id, version));
    }
    if repo::team_in_use(&mut tx.conn(), id).await? {
        return Err(Error::invalid(
            "id",
            "the team still has members or teams below it",
        ));
    }
    repo::delete_team(&mut tx.conn(), id, version).await?;
    app.teams.invalidate();
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "Team",
            entity_id: id.to_owned(),
            action: "deleted",
            before: Some(before.snapshot()),
            after: None,
            owner_id: None,
            team_id: Some(id.to_owned()),
        },
    )
    .await?;
    app.commit(tx).await?;
    Ok(before)
}
