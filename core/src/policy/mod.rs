//! Access policy: what each role may read, write and call, and on which rows.
//!
//! Admins edit `model.conf` and `policy.csv` (standard casbin syntax) in the
//! policy directory; [`engine::PolicyEngine`] lints, loads and hot-reloads
//! them. [`check`] applies them to a whole request before anything runs.

pub mod catalog;
pub mod check;
mod compiled;
pub mod engine;
pub mod grants;
pub mod graphql;
pub mod lint;

pub use catalog::Catalog;
pub use engine::{Policy, PolicyEngine, Scope};
