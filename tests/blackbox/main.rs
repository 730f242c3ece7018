//! Black-box tests: each starts the real service on a real socket (or the
//! real `crm` binary) over a fresh SQLite file or PostgreSQL database and
//! talks HTTP and WebSocket to it like a client would.

mod support;

mod access;
mod access_holes;
mod auth;
mod backup;
mod binary;
mod contracts;
mod custom_fields;
mod customers;
mod entity_kit;
mod events;
mod exports;
mod first_hour;
mod forecast;
mod grants;
mod hostile;
mod http_safety;
mod idempotency;
mod imports;
mod lead_assignment;
mod lead_forms;
mod lead_scoring;
mod leads;
mod merge;
mod module_access;
mod node;
mod pipeline;
mod platform;
mod privacy;
mod products;
mod quotes;
mod service;
mod sla;
mod socket_rights;
mod timeline;
mod webhooks;
mod write_trace;
mod ws_protocol;
