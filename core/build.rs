//! Rebuilds the crate when a migration is added or changed: the migrations
//! are embedded at compile time (`db.rs`), and cargo does not otherwise
//! notice a new migration directory.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
