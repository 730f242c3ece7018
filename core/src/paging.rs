//! Relay cursor pagination shared by every list: argument checking, cursor
//! encoding, and turning a fetched page into a connection with `totalCount`.
//!
//! A keyset cursor holds the row's sort value, which may be a field the
//! caller may not read (an account's `updatedAt`). Cursors are therefore
//! sealed (ChaCha20-Poly1305 under a key derived from the token secret, so
//! every replica opens every other's cursors): the client can neither read
//! nor forge them. The nonce is derived from the content, so a row's cursor
//! is the same string on every page and request.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{OutputType, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

/// Largest page a client may ask for.
pub const MAX_PAGE: i64 = 100;
/// Page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE: i64 = 20;

/// The connection type every list returns: edges, pageInfo and totalCount.
pub type Page<N> = Connection<String, N, TotalCount>;

/// Extra connection field.
#[derive(SimpleObject, Debug, Clone, Copy)]
pub struct TotalCount {
    /// Rows matching the filter and visible to the caller, across all pages.
    pub total_count: i64,
}

/// Validated pagination arguments, ready for a keyset query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageQuery {
    /// Return rows whose key is greater than this (forward order).
    pub after: Option<String>,
    /// Return rows whose key is less than this.
    pub before: Option<String>,
    /// Rows to fetch (the caller fetches `limit + 1` to learn if there is more).
    pub limit: i64,
    /// Paging backwards from the end (`last`).
    pub backwards: bool,
}

/// Checks `first/after/last/before` and decodes the cursors.
pub fn query(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> Result<PageQuery> {
    if first.is_some() && last.is_some() {
        return Err(Error::invalid(
            "last",
            "pass either first or last, not both",
        ));
    }
    let check = |n: i32, field: &str| {
        if n < 0 || i64::from(n) > MAX_PAGE {
            Err(Error::invalid(
                field,
                format!("must be between 0 and {MAX_PAGE}"),
            ))
        } else {
            Ok(i64::from(n))
        }
    };
    let (limit, backwards) = match (first, last) {
        (_, Some(l)) => (check(l, "last")?, true),
        (Some(f), _) => (check(f, "first")?, false),
        _ => (DEFAULT_PAGE, false),
    };
    Ok(PageQuery {
        after: after.map(|c| decode(&c, "after")).transpose()?,
        before: before.map(|c| decode(&c, "before")).transpose()?,
        limit,
        backwards,
    })
}

/// The key of a row in a list ordered by `value` then `id`, for
/// [`build`]'s key function.
pub fn pair(value: &str, id: &str) -> String {
    serde_json::json!([value, id]).to_string()
}

/// Splits a decoded cursor made by [`pair`]; VALIDATION names `field`.
pub fn unpair(key: &str, field: &str) -> Result<(String, String)> {
    serde_json::from_str::<(String, String)>(key)
        .map_err(|_| Error::invalid(field, "not a valid cursor for this ordering"))
}

/// A timestamp as a sortable cursor value.
pub fn time_key(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Parses [`time_key`] back.
pub fn parse_time_key(s: &str, field: &str) -> Result<chrono::NaiveDateTime> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.6f")
        .map_err(|_| Error::invalid(field, "not a valid cursor for this ordering"))
}

/// Sort direction of a list.
#[derive(async_graphql::Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

struct Sealer {
    aead: ring::aead::LessSafeKey,
    nonces: ring::hmac::Key,
}

impl Sealer {
    fn new(secret: &[u8]) -> Sealer {
        let root = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let derive = |label: &[u8]| ring::hmac::sign(&root, label);
        let k = derive(b"crm cursor sealing key");
        let unbound = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, k.as_ref())
            .expect("a 32-byte key");
        Sealer {
            aead: ring::aead::LessSafeKey::new(unbound),
            nonces: ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                derive(b"crm cursor nonce key").as_ref(),
            ),
        }
    }
}

static SEALER: std::sync::RwLock<Option<std::sync::Arc<Sealer>>> = std::sync::RwLock::new(None);

/// Sets the secret cursors are sealed with (the token secret: the same on
/// every replica). Until it is set, a random per-process key is used.
pub fn set_cursor_secret(secret: &[u8]) {
    let s = std::sync::Arc::new(Sealer::new(secret));
    *SEALER.write().unwrap_or_else(|e| e.into_inner()) = Some(s);
}

fn sealer() -> std::sync::Arc<Sealer> {
    if let Some(s) = SEALER.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return s.clone();
    }
    let mut guard = SEALER.write().unwrap_or_else(|e| e.into_inner());
    guard
        .get_or_insert_with(|| {
            let random: [u8; 32] = rand::random();
            std::sync::Arc::new(Sealer::new(&random))
        })
        .clone()
}

/// Seals a sort key into an opaque cursor.
pub fn encode(key: &str) -> String {
    let s = sealer();
    let tag = ring::hmac::sign(&s.nonces, key.as_bytes());
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&tag.as_ref()[..12]);
    let mut body = key.as_bytes().to_vec();
    s.aead
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::empty(),
            &mut body,
        )
        .expect("sealing a cursor cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    URL_SAFE_NO_PAD.encode(out)
}

fn decode(cursor: &str, field: &str) -> Result<String> {
    let invalid = || Error::invalid(field, "not a valid cursor");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    if raw.len() < 12 {
        return Err(invalid());
    }
    let (nonce, body) = raw.split_at(12);
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| invalid())?;
    let mut body = body.to_vec();
    let plain = sealer()
        .aead
        .open_in_place(nonce, ring::aead::Aad::empty(), &mut body)
        .map_err(|_| invalid())?;
    String::from_utf8(plain.to_vec()).map_err(|_| invalid())
}

/// Builds the connection from rows fetched with `limit + 1` in query order
/// (descending when paging backwards). `key` gives each row's sort key.
pub fn build<N: OutputType>(
    q: &PageQuery,
    rows: Vec<N>,
    total: i64,
    key: impl Fn(&N) -> String,
) -> Page<N> {
    let keyed = rows.into_iter().map(|n| (key(&n), n)).collect();
    build_keyed(q, keyed, total)
}

/// [`build`] for rows that come with their keys already (`(key, node)`).
pub fn build_keyed<N: OutputType>(
    q: &PageQuery,
    mut rows: Vec<(String, N)>,
    total: i64,
) -> Page<N> {
    let more = rows.len() as i64 > q.limit;
    rows.truncate(q.limit as usize);
    if q.backwards {
        rows.reverse();
    }
    let (has_prev, has_next) = if q.backwards {
        (more, q.before.is_some())
    } else {
        (q.after.is_some(), more)
    };
    let mut conn =
        Connection::with_additional_fields(has_prev, has_next, TotalCount { total_count: total });
    conn.edges
        .extend(rows.into_iter().map(|(k, n)| Edge::new(encode(&k), n)));
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked() {
        assert!(query(Some(1), None, Some(1), None).is_err());
        assert!(query(Some(101), None, None, None).is_err());
        assert!(query(None, Some("!!".into()), None, None).is_err());
        let q = query(None, Some(encode("k")), Some(5), None).unwrap();
        assert_eq!(
            (q.after.as_deref(), q.limit, q.backwards),
            (Some("k"), 5, true)
        );
    }

    #[test]
    fn cursors_are_sealed() {
        let key = pair("2026-01-01T00:00:00.000000", "acc_1");
        let c = encode(&key);
        assert_eq!(encode(&key), c, "the same row gets the same cursor");
        let raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("2026"));
        assert_eq!(decode(&c, "after").unwrap(), key);
        // Neither a plain encoding nor a changed byte is accepted.
        assert!(decode(&URL_SAFE_NO_PAD.encode(&key), "after").is_err());
        let mut bad = raw.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(decode(&URL_SAFE_NO_PAD.encode(bad), "after").is_err());
    }
}
