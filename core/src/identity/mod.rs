//! Users, teams, roles, sign-in, tokens and API keys.

/// The resource types identity exposes to access policies.
pub const RESOURCES: &[&str] = &["User", "Team", "ApiKey"];

/// Arguments that filter by or change user fields without naming them in an
/// input type (see [`FieldUse`](crate::policy::catalog::FieldUse)).
pub const FIELD_USES: &[crate::policy::catalog::FieldUse] = {
    use crate::policy::catalog::FieldUse;
    &[
        FieldUse::write("Mutation.deactivateUser(id)", &["User.active"]),
        FieldUse::write("Mutation.setUserPassword(password)", &["User.password"]),
        FieldUse::read("UserFilterInput.teamId", &["User.teamId"]),
        FieldUse::read("UserFilterInput.active", &["User.active"]),
        FieldUse::read(
            "UserFilterInput.search",
            &["User.email", "User.displayName"],
        ),
    ]
};

pub mod auth;
pub mod bootstrap;
pub mod graphql;
pub mod repo;
pub mod service;
pub mod teams;
