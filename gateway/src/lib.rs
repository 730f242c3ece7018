//! crm-gateway: the `crm` binary's library half. It turns HTTP and WebSocket
//! traffic into GraphQL requests against the merged schema of every module,
//! and owns the command line. Modules know nothing about HTTP.

pub mod cli;
pub mod cost;
pub mod data_cli;
pub mod demo_cli;
pub mod documents;
pub mod downloads;
pub mod http;
pub mod ide;
pub mod idempotency;
pub mod inspect;
pub mod memory;
pub mod metrics;
pub mod modules;
pub mod policy_cli;
pub mod public;
pub mod respond;
pub mod schema;
pub mod server;
pub mod state;
pub mod webhook_cli;
pub mod ws;
