//! Users, teams, roles, sign-in, tokens and API keys.

/// The resource types identity exposes to access policies.
pub const RESOURCES: &[&str] = &["User", "Team", "ApiKey"];

pub mod auth;
pub mod bootstrap;
pub mod graphql;
pub mod repo;
pub mod service;
pub mod teams;
