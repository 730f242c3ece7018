//! Who is calling, and the one authorization entry point every resolver uses.
//!
//! Resolvers never inspect roles. The gateway runs [`check_request`] on every
//! request before execution (operations, fields, inputs); resolvers ask
//! [`row_filter`] which rows they may touch and pass it to the repository,
//! so lists, single fetches and counts see the same rows.

use async_graphql::Context;

use crate::error::{Error, Result};
use crate::policy::Scope;

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No credentials were sent.
    Anonymous,
    /// A user signed in with a bearer token.
    User(UserPrincipal),
    /// An integrator's API key.
    ApiKey(ApiKeyPrincipal),
    /// The service itself (CLI, start-up tasks).
    System,
    /// The service acting on a public endpoint's behalf (a web form's
    /// submission): the rights of [`Principal::System`], recorded in the
    /// audit log and events under the endpoint's own actor (`form`, its
    /// id), so every change it makes is traceable to it.
    Public(PublicActor),
}

/// What a [`Principal::Public`] acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicActor {
    /// The actor kind in the audit log (`form`).
    pub kind: &'static str,
    /// The endpoint's id (`lfm_…`).
    pub id: String,
}

/// A signed-in user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPrincipal {
    /// User id.
    pub id: String,
    /// Role names.
    pub roles: Vec<String>,
    /// The user's team.
    pub team_id: Option<String>,
    /// Id of the token used (for logout and the audit trail).
    pub token_id: String,
}

/// An API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyPrincipal {
    /// Key id.
    pub id: String,
    /// The role the key acts as.
    pub role: String,
}

/// Who did something, as recorded in the audit log and outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// `user`, `api_key` or `system`.
    pub kind: &'static str,
    /// User or key id.
    pub id: Option<String>,
    /// The credential used (token id or key id).
    pub credential: Option<String>,
}

impl Principal {
    /// Role names the caller acts with.
    pub fn roles(&self) -> &[String] {
        match self {
            Principal::User(u) => &u.roles,
            Principal::ApiKey(k) => std::slice::from_ref(&k.role),
            Principal::Anonymous | Principal::System | Principal::Public(_) => &[],
        }
    }

    /// Whether this is the service itself ([`Principal::System`], or
    /// [`Principal::Public`] acting for a public endpoint): it is not
    /// subject to policies.
    pub fn is_system(&self) -> bool {
        matches!(self, Principal::System | Principal::Public(_))
    }

    /// The user id, for signed-in users.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Principal::User(u) => Some(&u.id),
            _ => None,
        }
    }

    /// The actor as recorded in the audit log and events.
    pub fn actor(&self) -> Actor {
        match self {
            Principal::User(u) => Actor {
                kind: "user",
                id: Some(u.id.clone()),
                credential: Some(format!("token:{}", u.token_id)),
            },
            Principal::ApiKey(k) => Actor {
                kind: "api_key",
                id: Some(k.id.clone()),
                credential: Some(format!("api_key:{}", k.id)),
            },
            Principal::Public(p) => Actor {
                kind: p.kind,
                id: Some(p.id.clone()),
                credential: None,
            },
            Principal::Anonymous | Principal::System => Actor {
                kind: "system",
                id: None,
                credential: None,
            },
        }
    }
}

/// Which rows of a type a request may touch, as a SQL condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowFilter {
    /// Every row.
    All,
    /// No row: a scope that can own nothing (an API key's `own`, a user
    /// without a team's `team`, `own` or `team` on a type nobody owns).
    Nothing,
    /// Rows owned by this user.
    Own(String),
    /// Rows owned by members of these teams (the user's team and below).
    Team(Vec<String>),
    /// Rows of the inner filter plus rows assigned to this user (the policy
    /// scope `assigned`, for types that declare an assignee).
    OrAssigned(Box<RowFilter>, String),
    /// Rows of the inner filter plus rows routed to one of these teams (the
    /// policy scope `group`, for types that declare a group: the caller's
    /// team and the teams below it).
    OrGroup(Box<RowFilter>, Vec<String>),
}

impl RowFilter {
    /// The owner part of the filter (without rows matched as assignee or
    /// through their group).
    pub fn owner_scope(&self) -> &RowFilter {
        match self {
            RowFilter::OrAssigned(inner, _) | RowFilter::OrGroup(inner, _) => inner.owner_scope(),
            other => other,
        }
    }

    /// Whether rows nobody owns (types declared
    /// [`crate::ownership::Owner::Shared`], such as tags) are in this scope:
    /// only with `all`.
    pub fn admits_unowned(&self) -> bool {
        matches!(self.owner_scope(), RowFilter::All)
    }

    /// Whether a record that belongs to a team rather than to a user (a
    /// team's settings, such as its lead assignment rules) is in this
    /// scope: `all` admits every record, `team` the records of the
    /// caller's team and the teams below it; `own` none (no user owns such
    /// a record), nor a record of no team unless `all`.
    pub fn admits_team(&self, team: Option<&str>) -> bool {
        match (self.owner_scope(), team) {
            (RowFilter::All, _) => true,
            (RowFilter::Team(teams), Some(t)) => teams.iter().any(|x| x == t),
            _ => false,
        }
    }
}

impl Principal {
    /// The roles decisions are made for: the caller's roles plus the implicit
    /// `authenticated`, or just `anonymous`.
    pub fn effective_roles(&self) -> Vec<String> {
        match self {
            Principal::Anonymous => vec!["anonymous".into()],
            Principal::System | Principal::Public(_) => vec!["admin".into()],
            _ => {
                let mut r = self.roles().to_vec();
                r.push("authenticated".into());
                r
            }
        }
    }

    /// The error for a refusal: UNAUTHENTICATED when no credentials were
    /// sent (signing in may help), FORBIDDEN otherwise.
    pub fn refusal(&self, message: &str, fields: Vec<String>) -> Error {
        if matches!(self, Principal::Anonymous) {
            Error::Unauthenticated
        } else {
            Error::Forbidden {
                message: message.to_owned(),
                fields,
            }
        }
    }
}

/// The caller of the current request.
pub fn principal<'a>(ctx: &Context<'a>) -> &'a Principal {
    ctx.data_opt::<Principal>().unwrap_or(&Principal::Anonymous)
}

/// The whole-request check, run before execution: every operation, selected
/// field, input field and declared argument use must be allowed, or the
/// request is refused with one FORBIDDEN naming them all. A document the
/// check cannot follow (no operation to run, unknown names) is refused with
/// VALIDATION: nothing the check has not seen may run.
pub fn check_request(
    app: &crate::App,
    principal: &Principal,
    doc: &async_graphql::parser::types::ExecutableDocument,
    operation_name: Option<&str>,
    variables: &async_graphql::Variables,
) -> Result<()> {
    use crate::policy::check::Refusal;
    let policy = app.policy.current();
    let roles = principal.effective_roles();
    let result = crate::policy::check::check(
        app.policy.catalog(),
        &policy,
        &roles,
        doc,
        operation_name,
        variables,
    );
    match result {
        Ok(()) => Ok(()),
        Err(Refusal::Invalid(mut why, meant)) => {
            if app.config.limits.suggestions && !meant.is_empty() {
                let names: Vec<String> = meant.iter().map(|m| format!("\"{m}\"")).collect();
                why.push_str(&format!(". Did you mean {}?", names.join(" or ")));
            }
            Err(Error::invalid("query", why))
        }
        Err(Refusal::Denied(_)) if principal.is_system() => Ok(()),
        Err(Refusal::Denied(denied)) => {
            let message = format!("not allowed: {}", denied.join(", "));
            Err(principal.refusal(&message, denied))
        }
    }
}

/// A document that could not be parsed, refused before anything runs.
pub fn unparsable(why: &str) -> Error {
    Error::invalid("query", format!("the document does not parse: {why}"))
}

/// The rows of `ty` the caller may `verb` (`read`, `update`, `delete`), as a
/// filter for core's query helpers. Refused when the caller has no scope.
pub async fn row_filter(ctx: &Context<'_>, ty: &str, verb: &str) -> Result<RowFilter> {
    let app = ctx.data_unchecked::<crate::App>();
    row_filter_for(app, principal(ctx), ty, verb).await
}

/// [`row_filter`] without a GraphQL context (subscriptions, CLI).
///
/// The policy gives the scope (`own`, `team`, `all`, `assigned` for types
/// with an assignee, `group` for types routed to a team); the type's ownership declaration
/// ([`crate::ownership`]) says what owning a row means. No scope at all is
/// a refusal, never an empty filter.
pub async fn row_filter_for(
    app: &crate::App,
    p: &Principal,
    ty: &str,
    verb: &str,
) -> Result<RowFilter> {
    use crate::ownership::Owner;
    if p.is_system() {
        return Ok(RowFilter::All);
    }
    let policy = app.policy.current();
    let roles = p.effective_roles();
    let decl = app.policy.catalog().ownership(ty);
    let base = match policy.scope(&roles, ty, verb) {
        None => None,
        Some(Scope::All) => return Ok(RowFilter::All),
        Some(_) if decl.owner == Owner::Shared => Some(RowFilter::Nothing),
        Some(Scope::Own) => Some(match p {
            Principal::User(u) => RowFilter::Own(u.id.clone()),
            Principal::ApiKey(k) if decl.keys_own => RowFilter::Own(k.id.clone()),
            _ => RowFilter::Nothing,
        }),
        Some(Scope::Team) => {
            let team = match p {
                Principal::User(u) => u.team_id.clone(),
                _ => None,
            };
            Some(match team {
                Some(t) => RowFilter::Team(app.teams.below(&app.db, &t).await?),
                None => RowFilter::Nothing,
            })
        }
    };
    let assigned = decl.assignee
        && policy.any_allows(
            &roles,
            ty,
            &format!("{verb}:{}", crate::policy::lint::ASSIGNED),
        );
    let group = decl.group
        && policy.any_allows(
            &roles,
            ty,
            &format!("{verb}:{}", crate::policy::lint::GROUP),
        );
    // The group scope: rows routed to the caller's team or a team below it
    // (a user without a team, or an API key, has none).
    let base = if group {
        let teams = match p {
            Principal::User(UserPrincipal {
                team_id: Some(t), ..
            }) => app.teams.below(&app.db, t).await?,
            _ => Vec::new(),
        };
        Some(RowFilter::OrGroup(
            Box::new(base.unwrap_or(RowFilter::Nothing)),
            teams,
        ))
    } else {
        base
    };
    match (base, p.user_id()) {
        (base, Some(me)) if assigned => Ok(RowFilter::OrAssigned(
            Box::new(base.unwrap_or(RowFilter::Nothing)),
            me.to_owned(),
        )),
        (Some(base), _) => Ok(base),
        (None, _) => Err(p.refusal(&format!("not allowed to {verb} {ty}"), vec![ty.to_owned()])),
    }
}

/// [`row_filter_for`] where a refusal must tell nothing: a caller with no
/// scope on the type reaches no row of it (`RowFilter::Nothing`), so a
/// record it names is NOT_FOUND exactly as one outside its rows is (a
/// conversion reusing an account, a contact role naming a contact).
pub async fn row_filter_or_nothing(
    app: &crate::App,
    p: &Principal,
    ty: &str,
    verb: &str,
) -> Result<RowFilter> {
    match row_filter_for(app, p, ty, verb).await {
        Err(Error::Forbidden { .. } | Error::Unauthenticated) => Ok(RowFilter::Nothing),
        other => other,
    }
}

/// Narrows a row filter to records owned by members of `team` and the teams
/// below it (a list's team filter), never widening the caller's scope. Under
/// `own` scope the caller's records stay only if the caller is in those
/// teams.
pub async fn narrow_to_team(app: &crate::App, scope: RowFilter, team: &str) -> Result<RowFilter> {
    let below = app.teams.below(&app.db, team).await?;
    let narrowed = match scope.owner_scope() {
        RowFilter::All => RowFilter::Team(below),
        RowFilter::Nothing | RowFilter::OrAssigned(..) | RowFilter::OrGroup(..) => {
            RowFilter::Nothing
        }
        RowFilter::Team(mine) => {
            RowFilter::Team(below.into_iter().filter(|t| mine.contains(t)).collect())
        }
        RowFilter::Own(uid) => {
            let mut c = app.db.conn().await?;
            let my_team = crate::identity::repo::user(&mut c.conn(), uid)
                .await?
                .and_then(|u| u.team_id);
            if my_team.is_some_and(|t| below.contains(&t)) {
                RowFilter::Own(uid.clone())
            } else {
                RowFilter::Nothing
            }
        }
    };
    Ok(match narrowed {
        RowFilter::Team(t) if t.is_empty() => RowFilter::Nothing,
        other => other,
    })
}

/// The fields of `ty` the caller may read: the catalog's fields of the type
/// that the policy lets the caller read, by the one decision the GraphQL
/// check, `myPermissions` and event redaction use
/// ([`crate::policy::check::field_readable`]), for exports, reports and
/// merge snapshots.
pub fn readable_fields(
    app: &crate::App,
    p: &Principal,
    ty: &str,
) -> std::collections::BTreeSet<String> {
    let catalog = app.policy.catalog();
    let policy = app.policy.current();
    let roles = p.effective_roles();
    let system = p.is_system();
    catalog
        .readable
        .get(ty)
        .into_iter()
        .flatten()
        .filter(|f| system || crate::policy::check::field_readable(catalog, &policy, &roles, ty, f))
        .cloned()
        .collect()
}

/// Refuses unless the caller may give a record of `ty` to `owner_id`: it
/// needs `write` on `<ty>.ownerId` (FORBIDDEN otherwise), and the owner
/// must be an active user the caller may see under its `User` read scope.
/// Any other user, existing or not, is the same VALIDATION error on
/// `ownerId` (no such user), so the answer never tells which users exist.
pub async fn require_assignable_owner(
    app: &crate::App,
    p: &Principal,
    ty: &str,
    owner_id: &str,
) -> Result<()> {
    require_all(app, p, [format!("{ty}.ownerId")], "write")?;
    let no_such = || Error::invalid("ownerId", "no such active user");
    if crate::ids::check(owner_id, "usr", "ownerId").is_err() {
        return Err(no_such());
    }
    let Ok(scope) = row_filter_for(app, p, "User", "read").await else {
        return Err(no_such());
    };
    let mut c = app.db.conn().await?;
    match crate::identity::repo::user_in(&mut c.conn(), owner_id, &scope).await? {
        Some(u) if u.active => Ok(()),
        _ => Err(no_such()),
    }
}

/// Whether the caller may `action` a policy object (`Contact` create,
/// `Account.creditLimit` read, `Account.custom.region` write): the decision
/// for work outside a GraphQL document (imports, exports, custom field
/// values), from the same cached policy as [`check_request`].
pub fn allows(app: &crate::App, p: &Principal, object: &str, action: &str) -> bool {
    p.is_system()
        || app
            .policy
            .current()
            .any_allows(&p.effective_roles(), object, action)
}

/// Whether the caller has any row scope for `verb` on `ty`.
pub fn has_scope(app: &crate::App, p: &Principal, ty: &str, verb: &str) -> bool {
    p.is_system()
        || app
            .policy
            .current()
            .has_scope(&p.effective_roles(), ty, verb)
}

/// Refuses with one error naming every object of `objects` the caller may
/// not `action` (FORBIDDEN, or UNAUTHENTICATED without credentials).
pub fn require_all(
    app: &crate::App,
    p: &Principal,
    objects: impl IntoIterator<Item = String>,
    action: &str,
) -> Result<()> {
    let mut denied: Vec<String> = objects
        .into_iter()
        .filter(|o| !allows(app, p, o, action))
        .collect();
    denied.sort();
    denied.dedup();
    if denied.is_empty() {
        Ok(())
    } else {
        Err(p.refusal(
            &format!("not allowed to {action}: {}", denied.join(", ")),
            denied,
        ))
    }
}

/// Refuses unless the caller may create records of `ty`.
pub fn require_create(ctx: &Context<'_>, ty: &str) -> Result<()> {
    let app = ctx.data_unchecked::<crate::App>();
    let p = principal(ctx);
    if p.is_system()
        || app
            .policy
            .current()
            .any_allows(&p.effective_roles(), ty, "create")
    {
        Ok(())
    } else {
        Err(p.refusal(&format!("not allowed to create {ty}"), vec![ty.to_owned()]))
    }
}

/// Applies a [`RowFilter`] to a boxed diesel query.
///
/// - `apply_row_filter!(q, filter, owner)`: rows whose owner column is
///   `owner` (a user id): `own` keeps the caller's rows, `team` rows owned by
///   members of the caller's teams.
/// - `apply_row_filter!(q, filter, owner, assignee = column)`: the same, plus
///   the rows assigned to the caller when the policy grants `assigned`.
/// - `apply_row_filter!(q, filter, through = fk, parent_table, parent_id,
///   parent_owner)`: rows owned through their parent (declared
///   [`crate::ownership::Owner::Through`]): the parent must be in scope.
/// - `apply_row_filter!(q, filter, owner, team = column)`: the users table
///   itself, where the owner's team is a column of the row.
///
/// [`RowFilter::Nothing`] matches no row.
#[macro_export]
macro_rules! apply_row_filter {
    ($q:expr, $filter:expr, through = $fk:expr, $ptable:expr, $pkey:expr, $powner:expr) => {{
        use ::diesel::prelude::*;
        match $crate::access::RowFilter::owner_scope($filter) {
            $crate::access::RowFilter::All => $q,
            $crate::access::RowFilter::Own(uid) => {
                $q.filter($fk.eq_any($ptable.filter($powner.eq(uid.clone())).select($pkey)))
            }
            $crate::access::RowFilter::Team(teams) => $q.filter(
                $fk.eq_any(
                    $ptable
                        .filter(
                            $powner.eq_any(
                                $crate::schema::users::table
                                    .filter($crate::schema::users::team_id.eq_any(teams.clone()))
                                    .select($crate::schema::users::id),
                            ),
                        )
                        .select($pkey),
                ),
            ),
            _ => $q.filter($fk.eq_any(::std::vec::Vec::<String>::new())),
        }
    }};
    ($q:expr, $filter:expr, $owner:expr, team = $team:expr) => {{
        use ::diesel::prelude::*;
        match $crate::access::RowFilter::owner_scope($filter) {
            $crate::access::RowFilter::All => $q,
            $crate::access::RowFilter::Own(uid) => $q.filter($owner.eq(uid.clone())),
            $crate::access::RowFilter::Team(teams) => $q.filter($team.eq_any(teams.clone())),
            _ => $q.filter($owner.eq_any(::std::vec::Vec::<String>::new())),
        }
    }};
    ($q:expr, $filter:expr, $owner:expr, assignee = $assignee:expr) => {{
        use ::diesel::prelude::*;
        match $filter {
            $crate::access::RowFilter::OrAssigned(inner, me) => match &**inner {
                $crate::access::RowFilter::All => $q,
                $crate::access::RowFilter::Own(uid) => {
                    $q.filter($owner.eq(uid.clone()).or($assignee.eq(me.clone())))
                }
                $crate::access::RowFilter::Team(teams) => $q.filter(
                    $owner
                        .eq_any(
                            $crate::schema::users::table
                                .filter($crate::schema::users::team_id.eq_any(teams.clone()))
                                .select($crate::schema::users::id),
                        )
                        .or($assignee.eq(me.clone())),
                ),
                _ => $q.filter($assignee.eq(me.clone())),
            },
            other => $crate::apply_row_filter!($q, other, $owner),
        }
    }};
    ($q:expr, $filter:expr, $owner:expr) => {{
        use ::diesel::prelude::*;
        match $crate::access::RowFilter::owner_scope($filter) {
            $crate::access::RowFilter::All => $q,
            $crate::access::RowFilter::Own(uid) => $q.filter($owner.eq(uid.clone())),
            $crate::access::RowFilter::Team(teams) => $q.filter(
                $owner.eq_any(
                    $crate::schema::users::table
                        .filter($crate::schema::users::team_id.eq_any(teams.clone()))
                        .select($crate::schema::users::id),
                ),
            ),
            _ => $q.filter($owner.eq_any(::std::vec::Vec::<String>::new())),
        }
    }};
}

#[cfg(test)]
mod team_scope_tests {
    use super::RowFilter;

    #[test]
    fn team_records_are_in_all_and_in_their_teams_scope_only() {
        let team = RowFilter::Team(vec!["team_a".into(), "team_b".into()]);
        assert!(team.admits_team(Some("team_b")));
        assert!(!team.admits_team(Some("team_c")));
        assert!(!team.admits_team(None));
        assert!(RowFilter::All.admits_team(None));
        assert!(!RowFilter::Own("usr_1".into()).admits_team(Some("team_a")));
        assert!(!RowFilter::Nothing.admits_team(Some("team_a")));
    }
}
