//! crm-gateway: the `crm` binary's library half. It turns HTTP and WebSocket
//! traffic into GraphQL requests against the merged schema of every module,
//! and owns the command line. Modules know nothing about HTTP.

// The merged roots nest one async resolver per schema part; with every
// module's parts the compiler's default query depth (128) is too shallow
// for the root mutation's future (see STACK-NOTES: async-graphql 7.x).
#![recursion_limit = "256"]

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
