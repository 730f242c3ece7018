//! Who is calling, and the one authorization entry point every resolver uses.
//!
//! Resolvers never inspect roles themselves: they name the operation they are
//! about to perform and call [`authorize`]. Today the decision is a plain role
//! table ([`decide`]); the policy engine replaces that function body, not its
//! callers.

use async_graphql::Context;

use crate::error::{Error, Result};

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
            Principal::Anonymous | Principal::System => &[],
        }
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
            Principal::Anonymous | Principal::System => Actor {
                kind: "system",
                id: None,
                credential: None,
            },
        }
    }
}

/// What an operation needs from the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone, signed in or not (e.g. `login`).
    Public,
    /// Any signed-in caller.
    Authenticated,
    /// Administrators only.
    Admin,
    /// Readers of the event stream (admins and integrators).
    EventReader,
}

/// The plain role table in force until the policy engine lands: each
/// operation name maps to a [`Requirement`].
pub fn decide(principal: &Principal, requirement: Requirement) -> Result<()> {
    let has = |r: &str| principal.roles().iter().any(|x| x == r);
    let signed_in = !matches!(principal, Principal::Anonymous);
    match requirement {
        Requirement::Public => Ok(()),
        _ if matches!(principal, Principal::System) => Ok(()),
        _ if !signed_in => Err(Error::Unauthenticated),
        Requirement::Authenticated => Ok(()),
        Requirement::Admin if has("admin") => Ok(()),
        Requirement::EventReader if has("admin") || has("integrator") => Ok(()),
        _ => Err(Error::forbidden("not allowed for your role")),
    }
}

/// The authorization entry point: checks that the caller may run `operation`
/// and returns the caller.
pub fn authorize<'a>(
    ctx: &Context<'a>,
    operation: &str,
    requirement: Requirement,
) -> Result<&'a Principal> {
    let principal = ctx.data_opt::<Principal>().unwrap_or(&Principal::Anonymous);
    decide(principal, requirement).inspect_err(|e| {
        tracing::debug!(operation, error = %e, "refused");
    })?;
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[&str]) -> Principal {
        Principal::User(UserPrincipal {
            id: "usr_1".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            team_id: None,
            token_id: "t".into(),
        })
    }

    #[test]
    fn role_table() {
        assert!(decide(&Principal::Anonymous, Requirement::Public).is_ok());
        assert!(matches!(
            decide(&Principal::Anonymous, Requirement::Authenticated),
            Err(Error::Unauthenticated)
        ));
        assert!(decide(&user(&["sales_rep"]), Requirement::Authenticated).is_ok());
        assert!(matches!(
            decide(&user(&["sales_rep"]), Requirement::Admin),
            Err(Error::Forbidden { .. })
        ));
        assert!(decide(&user(&["admin"]), Requirement::Admin).is_ok());
        assert!(decide(&user(&["integrator"]), Requirement::EventReader).is_ok());
        assert!(decide(&user(&["marketing"]), Requirement::EventReader).is_err());
    }
}
