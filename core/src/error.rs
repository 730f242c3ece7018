//! The one error type of the platform and its mapping to GraphQL errors.
//!
//! Every error that reaches a client carries `extensions.code` from a small
//! closed set ([`ErrorCode`]). Database and internal failures are logged with
//! the request id and reach the client only as a generic message.

use serde::Serialize;

/// The closed set of error codes clients can rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// No or invalid credentials.
    Unauthenticated,
    /// Authenticated, but not allowed.
    Forbidden,
    /// The record does not exist (or is outside the caller's scope).
    NotFound,
    /// The input is invalid; `fields` names the offending inputs.
    Validation,
    /// A concurrent change or a uniqueness clash.
    Conflict,
    /// Too many attempts; retry later.
    RateLimited,
    /// The database is down or the pool is exhausted.
    Unavailable,
    /// Anything else; details are in the server log only.
    Internal,
}

impl ErrorCode {
    /// The wire name, e.g. `NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Validation => "VALIDATION",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// The HTTP status for a plain (non-GraphQL) response with this code,
    /// e.g. a file download.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Validation => 400,
            ErrorCode::Conflict => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// One invalid input field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The input field's name as the client sent it (e.g. `email`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The platform error.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// No credentials where they are needed.
    #[error("authentication required")]
    Unauthenticated,
    /// Credentials were sent but are malformed, expired, revoked or unknown
    /// (one message for all, so it reveals nothing about valid tokens).
    #[error("invalid token")]
    InvalidToken,
    /// A sign-in failed. Deliberately says nothing about which part was wrong.
    #[error("invalid email or password")]
    LoginFailed,
    /// The caller may not do this; `fields` lists offending `Type.field`s.
    #[error("{message}")]
    Forbidden {
        /// Human-readable reason.
        message: String,
        /// Offending fields, if the refusal is about fields.
        fields: Vec<String>,
    },
    /// Not found (or not visible to the caller).
    #[error("{0} not found")]
    NotFound(String),
    /// Invalid input.
    #[error("invalid input: {}", .0.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    /// Stale version or uniqueness clash.
    #[error("{0}")]
    Conflict(String),
    /// Throttled.
    #[error("{0}")]
    RateLimited(String),
    /// Database unreachable or pool exhausted.
    #[error("service temporarily unavailable")]
    Unavailable(String),
    /// A bad setting (start-up only).
    #[error("configuration error: {0}")]
    Config(String),
    /// Anything unexpected; the text is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

/// A related record the caller may not see reads as null instead of failing
/// the whole field: NOT_FOUND and FORBIDDEN become `None`, other errors stay.
pub fn visible<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::NotFound(_) | Error::Forbidden { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Collects the validation errors of several checks so one VALIDATION error
/// can name every bad input at once.
#[derive(Debug, Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    /// The value of a passed check; a failed validation is recorded (and
    /// `None` returned), any other error is passed on.
    pub fn take<T>(&mut self, r: Result<T>) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(Error::Validation(mut f)) => {
                self.0.append(&mut f);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// VALIDATION naming every recorded field, or Ok when all passed.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}

/// Shorthand result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A single-field validation error.
    pub fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::Validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    /// A plain FORBIDDEN.
    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::Forbidden {
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// CONFLICT for a write based on a stale `version` (optimistic
    /// concurrency): the one wording for every record kind. `entity` is the
    /// record kind as users say it (`"account"`, `"custom field"`).
    pub fn stale(entity: &str, id: impl std::fmt::Display, version: i64) -> Error {
        Error::Conflict(format!(
            "{entity} {id} was changed by someone else (version {version} is stale); reload and retry"
        ))
    }

    /// The client-facing code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Unauthenticated | Error::InvalidToken | Error::LoginFailed => {
                ErrorCode::Unauthenticated
            }
            Error::Forbidden { .. } => ErrorCode::Forbidden,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Validation(_) => ErrorCode::Validation,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::RateLimited(_) => ErrorCode::RateLimited,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Config(_) | Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Maps a pool checkout error: timeouts and connection failures mean the
    /// database is unavailable.
    pub fn from_pool<E: std::fmt::Display>(e: E) -> Error {
        Error::Unavailable(format!("database pool: {e}"))
    }

    /// The `extensions` entries a client sees for this error.
    fn extensions(&self) -> Vec<(&'static str, async_graphql::Value)> {
        let mut out = vec![("code", async_graphql::Value::from(self.code().as_str()))];
        let fields = match self {
            Error::Validation(f) => serde_json::to_value(f).ok(),
            Error::Forbidden { fields, .. } if !fields.is_empty() => {
                serde_json::to_value(fields).ok()
            }
            _ => None,
        };
        if let Some(v) = fields.and_then(|f| async_graphql::Value::from_json(f).ok()) {
            out.push(("fields", v));
        }
        out
    }
}

/// Gives every error of a response its `extensions.code` and logs what must
/// not reach the client. Resolvers return [`Error`] with `?`; async-graphql
/// keeps it as the error's source, and this is the one place that maps it.
/// Errors without one of ours as source come from async-graphql itself:
/// parse, validation and limit errors (no path) and argument coercion are
/// VALIDATION; anything else is INTERNAL.
pub fn finish_errors(errors: &mut [async_graphql::ServerError], request_id: &str) {
    for err in errors.iter_mut() {
        let ours = err.source.as_ref().and_then(|s| s.downcast_ref::<Error>());
        let exts = err.extensions.get_or_insert_with(Default::default);
        match ours {
            Some(e) => {
                log_details(e, request_id);
                for (k, v) in e.extensions() {
                    exts.set(k, v);
                }
            }
            None if exts.get("code").is_some() => {}
            None => {
                let validation = err.path.is_empty()
                    || err.message.starts_with("Invalid value for argument")
                    || err.message.starts_with("Failed to parse")
                    || (err.message.starts_with("Variable ")
                        && err.message.ends_with(" is not defined."));
                if !validation {
                    tracing::error!(request_id, error = %err.message, "unexpected resolver error");
                }
                let code = if validation {
                    ErrorCode::Validation
                } else {
                    ErrorCode::Internal
                };
                exts.set("code", code.as_str());
            }
        }
    }
}

/// Logs what of `e` must not reach a client.
fn log_details(e: &Error, request_id: &str) {
    match e {
        Error::Internal(detail) | Error::Config(detail) => {
            tracing::error!(request_id, error = %detail, "internal error");
        }
        Error::Unavailable(detail) => {
            tracing::warn!(request_id, error = %detail, "database unavailable");
        }
        _ => {}
    }
}

/// `e` for a plain HTTP response (downloads): the status and a GraphQL-style
/// body `{"errors": [{message, extensions: {code, fields}}]}`, logged and
/// redacted exactly as [`finish_errors`] does for GraphQL responses.
pub fn http_error(e: &Error, request_id: &str) -> (u16, serde_json::Value) {
    log_details(e, request_id);
    let mut extensions = serde_json::Map::new();
    extensions.insert("code".into(), e.code().as_str().into());
    match e {
        Error::Validation(f) => {
            extensions.insert("fields".into(), serde_json::to_value(f).unwrap_or_default());
        }
        Error::Forbidden { fields, .. } if !fields.is_empty() => {
            extensions.insert("fields".into(), fields.clone().into());
        }
        _ => {}
    }
    (
        e.code().http_status(),
        serde_json::json!({ "errors": [{ "message": e.to_string(), "extensions": extensions }] }),
    )
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as D};
        match &e {
            D::NotFound => Error::NotFound("record".into()),
            D::DatabaseError(K::UniqueViolation, info) => Error::Conflict(format!(
                "already exists ({})",
                constraint_hint(info.as_ref())
            )),
            D::DatabaseError(K::SerializationFailure, _) => {
                Error::Conflict("concurrent change, retry".into())
            }
            D::DatabaseError(K::ForeignKeyViolation, info) => Error::Validation(vec![FieldError {
                field: constraint_hint(info.as_ref()),
                message: "refers to a record that does not exist".into(),
            }]),
            D::DatabaseError(K::ClosedConnection, _) => Error::Unavailable(e.to_string()),
            D::DatabaseError(K::Unknown, info) if info.message().contains("database is locked") => {
                Error::Unavailable(e.to_string())
            }
            _ => Error::Internal(e.to_string()),
        }
    }
}

fn constraint_hint(info: &dyn diesel::result::DatabaseErrorInformation) -> String {
    info.column_name()
        .map(str::to_owned)
        .or_else(|| info.constraint_name().map(str::to_owned))
        .unwrap_or_else(|| {
            // SQLite reports "UNIQUE constraint failed: users.email".
            info.message()
                .rsplit(['.', ' '])
                .next()
                .unwrap_or("value")
                .to_owned()
        })
}

impl From<diesel::ConnectionError> for Error {
    fn from(e: diesel::ConnectionError) -> Self {
        Error::Unavailable(e.to_string())
    }
}
