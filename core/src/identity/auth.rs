//! Authentication: passwords, signed bearer tokens, API keys, login
//! throttling, and the in-memory caches that let a request authenticate
//! without a database round trip.
//!
//! Tokens are verified locally (HMAC signature and expiry). The user's roles,
//! team and active flag, revoked token ids and API keys are cached in memory
//! and invalidated by outbox events (topic `identity`), which every replica's
//! dispatcher delivers within about a second, so a logout, a deactivation or a
//! revoked key takes effect everywhere without a per-request query.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::repo::{self, UserRow};
use crate::access::{ApiKeyPrincipal, Principal, UserPrincipal};
use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::events::Event;

/// Every API key starts with this, so the server can tell keys from tokens.
pub const API_KEY_PREFIX: &str = "crmk_";

/// The event topic of identity changes.
pub const TOPIC: &str = "identity";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    jti: String,
    iat: i64,
    exp: i64,
}

#[derive(Clone, Debug)]
struct CachedUser {
    roles: Vec<String>,
    team_id: Option<String>,
    active: bool,
}

#[derive(Clone, Debug)]
struct CachedKey {
    id: String,
    role: String,
}

#[derive(Debug, Default)]
struct Attempts {
    failures: u32,
    locked_until: Option<Instant>,
}

/// An issued token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The bearer token.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Authentication service, one per process.
pub struct AuthService {
    db: Db,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    max_failures: u32,
    lockout: Duration,
    revoked: RwLock<HashMap<String, ()>>,
    users: RwLock<HashMap<String, CachedUser>>,
    keys: RwLock<HashMap<String, CachedKey>>,
    attempts: Mutex<HashMap<String, Attempts>>,
    dummy_hash: String,
    changes: tokio::sync::watch::Sender<u64>,
}

impl AuthService {
    /// Creates the service with the configured (or generated) secret and
    /// loads the revoked tokens that have not expired.
    pub async fn new(db: Db, config: &Config) -> Result<AuthService> {
        let secret = token_secret(config)?;
        crate::paging::set_cursor_secret(secret.as_bytes());
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let svc = AuthService {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl: config.token_ttl,
            max_failures: config.login_max_failures,
            lockout: config.login_lockout,
            revoked: RwLock::default(),
            users: RwLock::default(),
            keys: RwLock::default(),
            attempts: Mutex::default(),
            dummy_hash: hash_password_blocking("not a real password")?,
            changes: tokio::sync::watch::Sender::new(0),
            db,
        };
        svc.reload_revoked().await?;
        Ok(svc)
    }

    /// Reloads the revoked-token set from the database.
    pub async fn reload_revoked(&self) -> Result<()> {
        let mut c = self.db.conn().await?;
        let ids = repo::live_revoked_tokens(&mut c.conn(), crate::ids::now()).await?;
        let mut set = self.revoked.write().expect("revoked lock");
        set.extend(ids.into_iter().map(|j| (j, ())));
        Ok(())
    }

    /// Applies an outbox event to the caches. Register with the event hub.
    pub fn on_event(&self, e: &Event) {
        if e.topic != TOPIC {
            return;
        }
        match e.entity_type.as_str() {
            "User" => {
                self.users.write().expect("users lock").remove(&e.entity_id);
            }
            "Token" => {
                self.revoked
                    .write()
                    .expect("revoked lock")
                    .insert(e.entity_id.clone(), ());
            }
            "ApiKey" => {
                self.keys
                    .write()
                    .expect("keys lock")
                    .retain(|_, k| k.id != e.entity_id);
            }
            _ => return,
        }
        self.changed();
    }

    /// Ticks whenever a user, token or API key may have changed (after the
    /// caches forgot it): long-lived connections re-authenticate on it.
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// How many identity changes this process has seen.
    pub fn generation(&self) -> u64 {
        *self.changes.borrow()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Resolves the `Authorization` header to a principal. No header means
    /// anonymous; anything malformed, expired, revoked or unknown is
    /// UNAUTHENTICATED with one generic message, "invalid token".
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal> {
        let Some(header) = header else {
            return Ok(Principal::Anonymous);
        };
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or(Error::InvalidToken)?;
        if token.starts_with(API_KEY_PREFIX) {
            return self.authenticate_key(token).await;
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| Error::InvalidToken)?
            .claims;
        if self
            .revoked
            .read()
            .expect("revoked lock")
            .contains_key(&claims.jti)
        {
            return Err(Error::InvalidToken);
        }
        let user = self.cached_user(&claims.sub).await?;
        if !user.active {
            return Err(Error::InvalidToken);
        }
        Ok(Principal::User(UserPrincipal {
            id: claims.sub,
            roles: user.roles,
            team_id: user.team_id,
            token_id: claims.jti,
        }))
    }

    async fn cached_user(&self, id: &str) -> Result<CachedUser> {
        if let Some(u) = self.users.read().expect("users lock").get(id) {
            return Ok(u.clone());
        }
        let mut c = self.db.conn().await?;
        let row = repo::user(&mut c.conn(), id)
            .await?
            .ok_or(Error::InvalidToken)?;
        let cached = CachedUser {
            roles: row.role_list(),
            team_id: row.team_id.clone(),
            active: row.active,
        };
        self.users
            .write()
            .expect("users lock")
            .insert(id.to_owned(), cached.clone());
        Ok(cached)
    }

    async fn authenticate_key(&self, key: &str) -> Result<Principal> {
        let hash = hash_api_key(key);
        if let Some(k) = self.keys.read().expect("keys lock").get(&hash) {
            return Ok(Principal::ApiKey(ApiKeyPrincipal {
                id: k.id.clone(),
                role: k.role.clone(),
            }));
        }
        let mut c = self.db.conn().await?;
        let row = repo::api_key_by_hash(&mut c.conn(), &hash)
            .await?
            .filter(|k| k.revoked_at.is_none())
            .ok_or(Error::InvalidToken)?;
        self.keys.write().expect("keys lock").insert(
            hash,
            CachedKey {
                id: row.id.clone(),
                role: row.role.clone(),
            },
        );
        Ok(Principal::ApiKey(ApiKeyPrincipal {
            id: row.id,
            role: row.role,
        }))
    }

    /// Checks an email and password. Unknown email, wrong password and
    /// inactive user all fail the same way (and take the same time);
    /// repeated failures for one email are throttled.
    pub async fn login(&self, email: &str, password: &str) -> Result<(IssuedToken, UserRow)> {
        let email = email.trim().to_lowercase();
        self.check_throttle(&email)?;
        let user = {
            let mut c = self.db.conn().await?;
            repo::user_by_email(&mut c.conn(), &email).await?
        };
        let hash = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        let ok = verify_password(password, &hash).await?;
        match user {
            Some(u) if ok && u.active && u.password_hash.is_some() => {
                self.attempts.lock().expect("attempts lock").remove(&email);
                let token = self.issue(&u.id)?;
                Ok((token, u))
            }
            _ => {
                self.record_failure(&email);
                Err(Error::LoginFailed)
            }
        }
    }

    fn check_throttle(&self, email: &str) -> Result<()> {
        let mut map = self.attempts.lock().expect("attempts lock");
        if let Some(a) = map.get_mut(email)
            && let Some(until) = a.locked_until
        {
            {
                let now = Instant::now();
                if until > now {
                    return Err(Error::RateLimited(format!(
                        "too many failed sign-in attempts; try again in {} s",
                        (until - now).as_secs().max(1)
                    )));
                }
                *a = Attempts::default();
            }
        }
        Ok(())
    }

    fn record_failure(&self, email: &str) {
        let mut map = self.attempts.lock().expect("attempts lock");
        // Bound the map so a flood of random emails cannot grow it forever.
        if map.len() > 100_000 {
            let now = Instant::now();
            map.retain(|_, a| a.locked_until.is_some_and(|u| u > now));
        }
        let a = map.entry(email.to_owned()).or_default();
        a.failures += 1;
        if a.failures >= self.max_failures {
            a.locked_until = Some(Instant::now() + self.lockout);
        }
    }

    /// Issues a signed token for a user.
    pub fn issue(&self, user_id: &str) -> Result<IssuedToken> {
        let now = Utc::now();
        let exp = now + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::hours(12));
        let claims = Claims {
            sub: user_id.to_owned(),
            jti: crate::ids::new_id("tok"),
            iat: now.timestamp(),
            exp: exp.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("token signing: {e}")))?;
        Ok(IssuedToken {
            token,
            expires_at: DateTime::from_timestamp(exp.timestamp(), 0).unwrap_or(exp),
        })
    }

    /// A time after which every token issued until now has expired: how long
    /// a revocation must be remembered.
    pub fn revocation_horizon(&self) -> NaiveDateTime {
        crate::ids::now()
            + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::hours(12))
    }

    /// Forgets a cached user now (the event does the same on every replica).
    pub fn forget_user(&self, id: &str) {
        self.users.write().expect("users lock").remove(id);
        self.changed();
    }

    /// Marks a token revoked now (the event does the same on every replica).
    pub fn forget_token(&self, jti: &str) {
        self.revoked
            .write()
            .expect("revoked lock")
            .insert(jti.to_owned(), ());
        self.changed();
    }

    /// Forgets a cached API key now (the event does the same everywhere).
    pub fn forget_key(&self, id: &str) {
        self.keys
            .write()
            .expect("keys lock")
            .retain(|_, k| k.id != id);
        self.changed();
    }
}

/// Hashes a password with argon2id (blocking; call from a blocking context or
/// use [`hash_password`]).
pub fn hash_password_blocking(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing: {e}")))
}

/// Hashes a password with argon2id off the async threads.
pub async fn hash_password(password: &str) -> Result<String> {
    let p = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password_blocking(&p))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

/// Verifies a password against a PHC hash off the async threads.
pub async fn verify_password(password: &str, hash: &str) -> Result<bool> {
    let (p, h) = (password.to_owned(), hash.to_owned());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&h)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(p.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))
}

/// Checks a new password's strength; VALIDATION names `field`.
pub fn check_password(password: &str, field: &str) -> Result<()> {
    if password.chars().count() < 10 {
        return Err(Error::invalid(field, "must be at least 10 characters"));
    }
    if password.len() > 1024 {
        return Err(Error::invalid(field, "must be at most 1024 bytes"));
    }
    Ok(())
}

/// Generates a new API key secret.
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of an API key: SHA-256, hex. Keys carry 256 random bits,
/// so a fast hash is enough (unlike passwords).
pub fn hash_api_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Generates a random password for the first admin.
pub fn generate_password() -> String {
    let mut bytes = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The configured secret, or one generated once and kept in the data
/// directory so restarts do not sign everyone out.
fn token_secret(config: &Config) -> Result<String> {
    if let Some(s) = &config.token_secret {
        return Ok(s.clone());
    }
    let path = config.data_dir.join("token.secret");
    read_or_create_secret(&path)
}

fn read_or_create_secret(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().to_owned()),
        Ok(_) => {
            return Err(Error::Config(format!(
                "token secret file {} is shorter than 32 characters",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::Config(format!(
                "token secret file {}: {e}",
                path.display()
            )));
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("data-dir {}: {e}", dir.display())))?;
    }
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(secret.as_bytes())
                .map_err(|e| Error::Config(format!("token secret file {}: {e}", path.display())))?;
            Ok(secret)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_or_create_secret(path),
        Err(e) => Err(Error::Config(format!(
            "token secret file {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_keys() {
        let h = hash_password_blocking("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        let k = generate_api_key();
        assert!(k.starts_with(API_KEY_PREFIX) && k.len() > 40);
        assert_eq!(hash_api_key(&k).len(), 64);
        assert!(check_password("short", "password").is_err());
    }

    #[test]
    fn secret_is_generated_once() {
        let dir = std::env::temp_dir().join(crate::ids::new_id("secret"));
        let p = dir.join("token.secret");
        let a = read_or_create_secret(&p).unwrap();
        let b = read_or_create_secret(&p).unwrap();
        assert_eq!(a, b);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
