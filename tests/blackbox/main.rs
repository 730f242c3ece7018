//! Black-box tests: each starts the real service on a real socket (or the
//! real `crm` binary) over a fresh SQLite file or PostgreSQL database and
//! talks HTTP and WebSocket to it like a client would.

mod support;

mod access;
mod auth;
mod backup;
mod binary;
mod custom_fields;
mod customers;
mod events;
mod exports;
mod first_hour;
mod http_safety;
mod imports;
mod merge;
mod node;
mod platform;
mod privacy;
mod timeline;
mod ws_protocol;
