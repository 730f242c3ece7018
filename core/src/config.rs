//! Typed configuration: built-in defaults < `crm.toml` < `CRM_*` environment
//! variables (and `DATABASE_URL`) < command-line flags.
//!
//! Every setting is listed once in [`SETTINGS`] with its file key, environment
//! variable, flag, default and help text; the CLI builds its flags and help
//! from that table, so documentation cannot drift from behaviour.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::backup::schedule::BackupSettings;
use crate::db::PoolSettings;
use crate::error::{Error, Result};
use crate::idempotency::IdempotencySettings;

/// One configurable setting.
#[derive(Debug)]
pub struct Setting {
    /// Key in `crm.toml` and the long flag (`--listen`).
    pub key: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// Default value as text ("" = unset).
    pub default: &'static str,
    /// One-line description.
    pub help: &'static str,
}

macro_rules! settings {
    ($($key:literal, $env:literal, $default:literal, $help:literal;)*) => {
        /// Every setting the service reads.
        pub const SETTINGS: &[Setting] = &[$(Setting { key: $key, env: $env, default: $default, help: $help }),*];
    };
}

settings! {
    "listen", "CRM_LISTEN", "127.0.0.1:8080", "Address and port to serve HTTP and WebSocket on";
    "data-dir", "CRM_DATA_DIR", "./data", "Directory for the embedded database and generated secrets";
    "database-url", "DATABASE_URL", "", "postgres://user@host/db or sqlite://path (default: sqlite://<data-dir>/crm.db)";
    "policy-dir", "CRM_POLICY_DIR", "./policies", "Directory holding the access policy files";
    "token-secret", "CRM_TOKEN_SECRET", "", "Secret for signing bearer tokens (default: generated once into <data-dir>/token.secret)";
    "token-ttl-secs", "CRM_TOKEN_TTL_SECS", "43200", "Lifetime of a login token in seconds";
    "admin-email", "CRM_ADMIN_EMAIL", "admin@localhost", "Email of the admin created on first start with an empty database";
    "admin-password", "CRM_ADMIN_PASSWORD", "", "Password of that admin (default: generated and printed once to the log)";
    "cors-origins", "CRM_CORS_ORIGINS", "", "Comma-separated origins allowed by CORS (\"*\" for any; empty for none)";
    "max-body-bytes", "CRM_MAX_BODY_BYTES", "1048576", "Largest accepted GraphQL request body";
    "max-upload-bytes", "CRM_MAX_UPLOAD_BYTES", "1073741824", "Largest accepted file upload (imports), in bytes";
    "max-batch", "CRM_MAX_BATCH", "10", "Most operations in one batched request";
    "max-depth", "CRM_MAX_DEPTH", "12", "Deepest allowed query nesting";
    "max-complexity", "CRM_MAX_COMPLEXITY", "1000", "Highest allowed query complexity";
    "max-aliases", "CRM_MAX_ALIASES", "30", "Most aliased fields in one operation";
    "max-directives", "CRM_MAX_DIRECTIVES", "5", "Most directives on one field";
    "max-cost", "CRM_MAX_COST", "50000", "Highest allowed query cost: every field counts 1, multiplied by the page size (first/last, else 20) of each list around it; a batch costs the sum of its operations";
    "max-response-bytes", "CRM_MAX_RESPONSE_BYTES", "16777216", "Largest GraphQL response body; a bigger one is replaced by an error";
    "max-string-bytes", "CRM_MAX_STRING_BYTES", "20000", "Longest string accepted in any argument or variable, in bytes (NUL characters are always refused)";
    "max-connections", "CRM_MAX_CONNECTIONS", "512", "Most open client connections; 16 more are kept for /healthz and /readyz";
    "header-read-timeout-secs", "CRM_HEADER_READ_TIMEOUT_SECS", "10", "Longest time a client may take to send a request's headers";
    "body-read-timeout-secs", "CRM_BODY_READ_TIMEOUT_SECS", "10", "Grace time for sending a request body; after it the client must keep up body-min-bytes-per-sec on average";
    "body-min-bytes-per-sec", "CRM_BODY_MIN_BYTES_PER_SEC", "8192", "Slowest accepted average upload rate of a request body after the grace time";
    "introspection", "CRM_INTROSPECTION", "true", "Allow schema introspection (turn off in production)";
    "introspection-anonymous", "CRM_INTROSPECTION_ANONYMOUS", "true", "Allow introspection without signing in (set false in production)";
    "metrics-token", "CRM_METRICS_TOKEN", "", "Bearer token /metrics requires (empty: /metrics is open; set one in production)";
    "suggestions", "CRM_SUGGESTIONS", "true", "Suggest field names in errors (turn off in production)";
    "request-timeout-secs", "CRM_REQUEST_TIMEOUT_SECS", "30", "Longest a query or mutation may run";
    "idempotency-ttl-secs", "CRM_IDEMPOTENCY_TTL_SECS", "86400", "How long the response to a mutation sent with an Idempotency-Key is kept for retries";
    "ws-init-timeout-secs", "CRM_WS_INIT_TIMEOUT_SECS", "10", "How long a WebSocket may wait before connection_init";
    "ws-max-operations", "CRM_WS_MAX_OPERATIONS", "100", "Operations (queries, mutations, subscriptions) one WebSocket may run at once";
    "ws-max-subscriptions", "CRM_WS_MAX_SUBSCRIPTIONS", "25", "Subscriptions one WebSocket may hold open at once";
    "db-pool-size", "CRM_DB_POOL_SIZE", "16", "Database connections per process";
    "db-wait-timeout-ms", "CRM_DB_WAIT_TIMEOUT_MS", "5000", "Longest wait for a free database connection";
    "login-max-failures", "CRM_LOGIN_MAX_FAILURES", "5", "Failed logins for one account before it is throttled";
    "login-lockout-secs", "CRM_LOGIN_LOCKOUT_SECS", "300", "How long a throttled account must wait";
    "log-format", "CRM_LOG_FORMAT", "text", "Log format: text or json";
    "default-phone-code", "CRM_DEFAULT_PHONE_CODE", "1", "Country calling code for phone numbers entered without one (E.164 normalisation)";
    "backup-dir", "CRM_BACKUP_DIR", "", "Directory for scheduled backups written by `crm serve` (empty: no scheduled backups)";
    "backup-interval-secs", "CRM_BACKUP_INTERVAL_SECS", "86400", "Seconds between scheduled backups";
    "backup-keep", "CRM_BACKUP_KEEP", "7", "Scheduled backups to keep; older ones are deleted";
    "merge-undo-days", "CRM_MERGE_UNDO_DAYS", "30", "Days during which an admin may undo a merge of accounts or contacts";
    "webhook-retry-schedule", "CRM_WEBHOOK_RETRY_SCHEDULE", "5s,5m,30m,2h,5h,10h,14h,20h,20h", "Delays between webhook delivery attempts (units ms, s, m, h, d; ±10% jitter); after the last one fails the endpoint is marked failing. The default spans about three days";
    "webhook-timeout-secs", "CRM_WEBHOOK_TIMEOUT_SECS", "15", "Deadline of one webhook delivery attempt (connect, send, answer)";
    "webhook-allow-hosts", "CRM_WEBHOOK_ALLOW_HOSTS", "", "Comma-separated hosts (names or addresses) webhooks may reach although they are loopback, private or link-local";
    "webhook-ca-file", "CRM_WEBHOOK_CA_FILE", "", "PEM file of extra certificate authorities trusted for https webhook targets (a company CA), besides the public Web PKI roots";
    "trusted-proxies", "CRM_TRUSTED_PROXIES", "", "Comma-separated addresses or ranges (10.0.0.0/8) of reverse proxies whose X-Forwarded-For names the client of public endpoints (empty: the peer address is the client)";
    "public-rate-per-address", "CRM_PUBLIC_RATE_PER_ADDRESS", "20", "Posts to public endpoints (web forms) one client address may make per public-rate-window-secs (IPv6: per /64); more get 429";
    "public-rate-per-form", "CRM_PUBLIC_RATE_PER_FORM", "300", "Posts one public form may receive per public-rate-window-secs from all clients together; more get 429";
    "public-rate-window-secs", "CRM_PUBLIC_RATE_WINDOW_SECS", "60", "Window of the public endpoints' rate limits (counted per process)";
    "public-max-body-bytes", "CRM_PUBLIC_MAX_BODY_BYTES", "16384", "Largest body a public endpoint (web form) accepts; larger gets 413";
    "webhook-log-retention-days", "CRM_WEBHOOK_LOG_RETENTION_DAYS", "30", "Days finished webhook deliveries and their attempts are kept";
    "lead-score-decay-secs", "CRM_LEAD_SCORE_DECAY_SECS", "3600", "Period of the task persisting lead engagement decay (one replica runs it per period); 0 turns it off (scores read are still decayed exactly)";
    "opportunity-stale-check-secs", "CRM_OPPORTUNITY_STALE_CHECK_SECS", "60", "How often each replica looks for open deals that passed their stage's rotting threshold (each fires opportunity.stale once per stage entry); 0 turns the check off";
    "contract-renewal-check-secs", "CRM_CONTRACT_RENEWAL_CHECK_SECS", "60", "How often each replica expires ACTIVE contracts past their end date and creates the renewal opportunity of contracts whose renewal date (end date minus notice days) has come (each exactly once across replicas); 0 turns both off";
    "sla-check-secs", "CRM_SLA_CHECK_SECS", "30", "Period of the task sending SLA warnings and breaches (each once, by whichever replica claims it first); 0 turns it off";
    "sla-test-clock", "CRM_SLA_TEST_CLOCK", "false", "Tests and demos only: SLA clocks take 'now' from the one row of the sla_test_clock table (set with SQL) instead of the system clock; never turn on in production";
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL.
    pub database_url: String,
    /// Policy directory.
    pub policy_dir: PathBuf,
    /// Token secret, if configured.
    pub token_secret: Option<String>,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// First admin's email.
    pub admin_email: String,
    /// First admin's password, if configured.
    pub admin_password: Option<String>,
    /// CORS origins.
    pub cors_origins: Vec<String>,
    /// Request limits.
    pub limits: Limits,
    /// Pool settings.
    pub pool: PoolSettings,
    /// Failed logins before throttling.
    pub login_max_failures: u32,
    /// Throttle duration.
    pub login_lockout: Duration,
    /// `text` or `json`.
    pub log_format: String,
    /// Country calling code assumed for national phone numbers.
    pub default_phone_code: String,
    /// Scheduled backups.
    pub backup: BackupSettings,
    /// Idempotency keys of POST mutations.
    pub idempotency: IdempotencySettings,
    /// How long a merge stays undoable (while the merged records are still
    /// in the recycle bin).
    pub merge_undo: Duration,
    /// Outgoing webhooks.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// Public endpoints (web forms).
    pub public: crate::public::PublicSettings,
    /// Period of the lead engagement decay task (None: off).
    pub score_decay_period: Option<Duration>,
    /// Period of the check for rotting deals (None: off).
    pub stale_check_period: Option<Duration>,
    /// Period of the contract expiry and renewal check (None: off).
    pub contract_check_period: Option<Duration>,
    /// Period of the SLA warning and breach task (None: off).
    pub sla_check_period: Option<Duration>,
    /// SLA clocks read "now" from the `sla_test_clock` table (tests only).
    pub sla_test_clock: bool,
}

/// Limits applied to every GraphQL request.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Body size in bytes.
    pub max_body_bytes: usize,
    /// Largest file upload in bytes.
    pub max_upload_bytes: usize,
    /// Operations per batch.
    pub max_batch: usize,
    /// Query depth.
    pub max_depth: usize,
    /// Query complexity.
    pub max_complexity: usize,
    /// Aliases per operation.
    pub max_aliases: usize,
    /// Directives per field.
    pub max_directives: usize,
    /// Query cost (fields times page sizes), summed over a batch.
    pub max_cost: u64,
    /// Response body size in bytes.
    pub max_response_bytes: usize,
    /// Longest string argument or variable, in bytes.
    pub max_string_bytes: usize,
    /// Open client connections (health checks get a few more).
    pub max_connections: usize,
    /// Time allowed for a request's headers.
    pub header_read_timeout: Duration,
    /// Grace time for a request body.
    pub body_read_timeout: Duration,
    /// Slowest average body rate after the grace time, in bytes per second.
    pub body_min_bytes_per_sec: u64,
    /// Introspection allowed.
    pub introspection: bool,
    /// Introspection allowed without credentials.
    pub introspection_anonymous: bool,
    /// Bearer token `/metrics` requires, if any.
    pub metrics_token: Option<String>,
    /// Field suggestions in errors.
    pub suggestions: bool,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// WebSocket `connection_init` timeout.
    pub ws_init_timeout: Duration,
    /// Operations one WebSocket may run at once.
    pub ws_max_operations: usize,
    /// Subscriptions one WebSocket may hold open at once.
    pub ws_max_subscriptions: usize,
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug)]
struct Sourced {
    value: String,
    source: String,
}

impl Config {
    /// Builds the configuration from the layers. `config_file` is an explicit
    /// file (must exist); without one, `./crm.toml` is read if present.
    /// `flags` maps setting keys to command-line values.
    pub fn load(
        config_file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &BTreeMap<String, String>,
    ) -> Result<Config> {
        let mut values: BTreeMap<&'static str, Sourced> = BTreeMap::new();
        for s in SETTINGS {
            if !s.default.is_empty() {
                values.insert(
                    s.key,
                    Sourced {
                        value: s.default.into(),
                        source: "default".into(),
                    },
                );
            }
        }
        let file = match config_file {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("crm.toml")).filter(|p| p.exists()),
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))?;
            for (k, v) in table {
                let key = k.replace('_', "-");
                let Some(s) = SETTINGS.iter().find(|s| s.key == key) else {
                    return Err(Error::Config(format!(
                        "config file {}: unknown setting `{k}`",
                        path.display()
                    )));
                };
                let value = match v {
                    toml::Value::String(s) => s,
                    toml::Value::Array(items) => {
                        items.iter().map(toml_scalar).collect::<Vec<_>>().join(",")
                    }
                    other => toml_scalar(&other),
                };
                values.insert(
                    s.key,
                    Sourced {
                        value,
                        source: format!("{} ({k})", path.display()),
                    },
                );
            }
        }
        for s in SETTINGS {
            if let Some(v) = env(s.env) {
                values.insert(
                    s.key,
                    Sourced {
                        value: v,
                        source: format!("environment {}", s.env),
                    },
                );
            }
        }
        for (k, v) in flags {
            let Some(s) = SETTINGS.iter().find(|s| s.key == k) else {
                return Err(Error::Config(format!("unknown flag --{k}")));
            };
            values.insert(
                s.key,
                Sourced {
                    value: v.clone(),
                    source: format!("flag --{k}"),
                },
            );
        }
        Self::from_values(&values)
    }

    fn from_values(v: &BTreeMap<&'static str, Sourced>) -> Result<Config> {
        fn get<T: FromStr>(v: &BTreeMap<&'static str, Sourced>, key: &str) -> Result<Option<T>>
        where
            T::Err: std::fmt::Display,
        {
            match v.get(key) {
                None => Ok(None),
                Some(s) if s.value.trim().is_empty() => Ok(None),
                Some(s) => s.value.trim().parse::<T>().map(Some).map_err(|e| {
                    Error::Config(format!(
                        "setting `{key}` from {}: {:?}: {e}",
                        s.source, s.value
                    ))
                }),
            }
        }
        fn req<T: FromStr>(v: &BTreeMap<&'static str, Sourced>, key: &str) -> Result<T>
        where
            T::Err: std::fmt::Display,
        {
            get(v, key)?.ok_or_else(|| Error::Config(format!("setting `{key}` is required")))
        }
        fn positive(v: &BTreeMap<&'static str, Sourced>, key: &str) -> Result<u64> {
            let n: u64 = req(v, key)?;
            if n == 0 {
                return Err(Error::Config(format!(
                    "setting `{key}` must be greater than 0"
                )));
            }
            Ok(n)
        }
        fn boolean(v: &BTreeMap<&'static str, Sourced>, key: &str) -> Result<bool> {
            let s: String = req(v, key)?;
            match s.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(Error::Config(format!(
                    "setting `{key}` from {}: expected true or false, got {s:?}",
                    v[key].source
                ))),
            }
        }
        let data_dir: PathBuf = req(v, "data-dir")?;
        let database_url = get::<String>(v, "database-url")?
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("crm.db").display()));
        let log_format: String = req(v, "log-format")?;
        if log_format != "text" && log_format != "json" {
            return Err(Error::Config(format!(
                "setting `log-format`: expected text or json, got {log_format:?}"
            )));
        }
        let token_secret: Option<String> = get(v, "token-secret")?;
        if token_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(Error::Config(
                "setting `token-secret` must be at least 32 characters".into(),
            ));
        }
        Ok(Config {
            listen: req(v, "listen")?,
            data_dir,
            database_url,
            policy_dir: req(v, "policy-dir")?,
            token_secret,
            token_ttl: Duration::from_secs(positive(v, "token-ttl-secs")?),
            admin_email: req::<String>(v, "admin-email")?.trim().to_lowercase(),
            admin_password: get(v, "admin-password")?,
            cors_origins: get::<String>(v, "cors-origins")?
                .map(|s| {
                    s.split(',')
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            limits: Limits {
                max_body_bytes: positive(v, "max-body-bytes")? as usize,
                max_upload_bytes: positive(v, "max-upload-bytes")? as usize,
                max_batch: positive(v, "max-batch")? as usize,
                max_depth: positive(v, "max-depth")? as usize,
                max_complexity: positive(v, "max-complexity")? as usize,
                max_aliases: req(v, "max-aliases")?,
                max_directives: req(v, "max-directives")?,
                max_cost: positive(v, "max-cost")?,
                max_response_bytes: positive(v, "max-response-bytes")? as usize,
                max_string_bytes: positive(v, "max-string-bytes")? as usize,
                max_connections: positive(v, "max-connections")? as usize,
                header_read_timeout: Duration::from_secs(positive(v, "header-read-timeout-secs")?),
                body_read_timeout: Duration::from_secs(positive(v, "body-read-timeout-secs")?),
                body_min_bytes_per_sec: positive(v, "body-min-bytes-per-sec")?,
                introspection: boolean(v, "introspection")?,
                introspection_anonymous: boolean(v, "introspection-anonymous")?,
                metrics_token: get::<String>(v, "metrics-token")?,
                suggestions: boolean(v, "suggestions")?,
                request_timeout: Duration::from_secs(positive(v, "request-timeout-secs")?),
                ws_init_timeout: Duration::from_secs(positive(v, "ws-init-timeout-secs")?),
                ws_max_operations: positive(v, "ws-max-operations")? as usize,
                ws_max_subscriptions: positive(v, "ws-max-subscriptions")? as usize,
            },
            pool: PoolSettings {
                max_size: positive(v, "db-pool-size")? as usize,
                wait_timeout: Duration::from_millis(positive(v, "db-wait-timeout-ms")?),
                ..PoolSettings::default()
            },
            login_max_failures: positive(v, "login-max-failures")? as u32,
            login_lockout: Duration::from_secs(positive(v, "login-lockout-secs")?),
            log_format,
            default_phone_code: {
                let code: String = req(v, "default-phone-code")?;
                let code = code.trim_start_matches('+').to_owned();
                if code.is_empty() || code.len() > 3 || !code.chars().all(|c| c.is_ascii_digit()) {
                    return Err(Error::Config(format!(
                        "setting `default-phone-code`: expected 1 to 3 digits, got {code:?}"
                    )));
                }
                code
            },
            backup: BackupSettings {
                dir: get(v, "backup-dir")?,
                interval: Duration::from_secs(positive(v, "backup-interval-secs")?),
                keep: positive(v, "backup-keep")? as usize,
            },
            idempotency: IdempotencySettings {
                ttl: Duration::from_secs(positive(v, "idempotency-ttl-secs")?),
                hold: None,
            },
            merge_undo: Duration::from_secs(positive(v, "merge-undo-days")? * 86_400),
            score_decay_period: match req::<u64>(v, "lead-score-decay-secs")? {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            stale_check_period: match req::<u64>(v, "opportunity-stale-check-secs")? {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            contract_check_period: match req::<u64>(v, "contract-renewal-check-secs")? {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            sla_check_period: match req::<u64>(v, "sla-check-secs")? {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            sla_test_clock: boolean(v, "sla-test-clock")?,
            webhooks: crate::webhooks::WebhookSettings {
                retry_schedule: {
                    let s: String = req(v, "webhook-retry-schedule")?;
                    crate::webhooks::parse_schedule(&s).map_err(|e| {
                        Error::Config(format!("setting `webhook-retry-schedule`: {e}"))
                    })?
                },
                timeout: Duration::from_secs(positive(v, "webhook-timeout-secs")?),
                allow_hosts: get::<String>(v, "webhook-allow-hosts")?
                    .map(|s| {
                        s.split(',')
                            .map(|h| h.trim().to_owned())
                            .filter(|h| !h.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
                tls: crate::webhooks::outbound::tls_config(
                    get::<String>(v, "webhook-ca-file")?
                        .filter(|p| !p.trim().is_empty())
                        .map(PathBuf::from)
                        .as_deref(),
                )
                .map_err(|e| Error::Config(format!("setting `webhook-ca-file`: {e}")))?,
                log_retention: Duration::from_secs(
                    positive(v, "webhook-log-retention-days")? * 86_400,
                ),
            },
            public: crate::public::PublicSettings {
                per_address: positive(v, "public-rate-per-address")?.min(u32::MAX as u64) as u32,
                per_form: positive(v, "public-rate-per-form")?.min(u32::MAX as u64) as u32,
                window: Duration::from_secs(positive(v, "public-rate-window-secs")?),
                max_body_bytes: positive(v, "public-max-body-bytes")? as usize,
                trusted_proxies: get::<String>(v, "trusted-proxies")?
                    .map(|s| {
                        s.split(',')
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                            .map(crate::public::Cidr::parse)
                            .collect::<std::result::Result<Vec<_>, String>>()
                    })
                    .transpose()
                    .map_err(|e| Error::Config(format!("setting `trusted-proxies`: {e}")))?
                    .unwrap_or_default(),
            },
        })
    }

    /// The configuration with nothing but defaults (and `overrides`), for
    /// tests and tools.
    pub fn with(overrides: &[(&str, &str)]) -> Result<Config> {
        let flags = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(None, &|_| None, &flags)
    }
}

fn toml_scalar(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        // Tables, nested arrays and dates are not valid for any setting; the
        // typed parse below then names the setting.
        _ => String::from("<unsupported value>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let env = |k: &str| (k == "CRM_LISTEN").then(|| "127.0.0.1:9000".to_string());
        let c = Config::load(None, &env, &BTreeMap::new()).unwrap();
        assert_eq!(c.listen.port(), 9000);
        let flags = BTreeMap::from([("listen".to_string(), "127.0.0.1:9001".to_string())]);
        let c = Config::load(None, &env, &flags).unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.database_url, "sqlite://./data/crm.db");
    }

    #[test]
    fn bad_setting_is_named() {
        let err = Config::with(&[("listen", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listen") && err.contains("flag --listen"),
            "{err}"
        );
        let err = Config::with(&[("introspection", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("introspection"), "{err}");
    }
}
