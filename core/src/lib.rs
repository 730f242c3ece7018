//! crm-core: the platform every CRM module builds on.
//!
//! Config, the dual-backend database layer, the one error type, ids,
//! identity (users, teams, tokens, API keys), the authorization entry point,
//! the transactional outbox with its dispatcher, and the audit log. Core knows
//! nothing about HTTP: the gateway turns requests into [`access::Principal`]s
//! and runs the schema.
#![warn(missing_docs)]

pub mod access;
pub mod app;
pub mod audit;
pub mod backup;
pub mod change;
pub mod config;
pub mod custom;
pub mod db;
pub mod entity;
pub mod error;
pub mod events;
pub mod graphql;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod jobs;
pub mod module;
pub mod ownership;
pub mod paging;
pub mod policy;
pub mod privacy;
pub mod public;
pub mod schema;
pub mod sql;
pub mod tabular;
pub mod webhooks;

pub use app::App;
pub use error::{Error, ErrorCode, Result};
