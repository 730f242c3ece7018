//! Record ids: UUIDv7 with a readable type prefix (`usr_…`, `team_…`), so ids
//! sort by creation time and `node(id)` can route by prefix.

use crate::error::{Error, Result};

/// Creates a new id such as `usr_0193b0c6a1f27c3e9d4b5a6f7e8d9c0b`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// An id made at `unix_ms` from the caller's random bytes: seeded data
/// (`crm demo`) gets the same ids from the same seed, sorted by the time
/// given.
pub fn id_at(prefix: &str, unix_ms: u64, random: [u8; 10]) -> String {
    let u = uuid::Builder::from_unix_timestamp_millis(unix_ms, &random).into_uuid();
    format!("{prefix}_{}", u.simple())
}

/// The prefix of an id (`usr` for `usr_…`).
pub fn prefix_of(id: &str) -> Option<&str> {
    id.split_once('_').map(|(p, _)| p)
}

/// Checks that `id` is well formed and of the expected prefix; `field` names
/// the input for the VALIDATION error.
pub fn check(id: &str, prefix: &str, field: &str) -> Result<()> {
    let ok = id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|hex| uuid::Uuid::try_parse(hex).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("not a valid {prefix}_ id")))
    }
}

/// Now, in UTC, at microsecond precision (what both databases store).
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_ordered_and_checked() {
        let a = new_id("usr");
        let b = new_id("usr");
        assert!(a.starts_with("usr_") && a < b);
        assert_eq!(prefix_of(&a), Some("usr"));
        assert!(check(&a, "usr", "id").is_ok());
        assert!(check(&a, "team", "id").is_err());
        assert!(check("usr_nothex", "usr", "id").is_err());
    }
}
