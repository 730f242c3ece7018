//! Users, teams, roles, sign-in, tokens and API keys.

pub mod auth;
pub mod bootstrap;
pub mod graphql;
pub mod repo;
pub mod service;
