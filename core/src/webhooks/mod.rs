//! Outgoing webhooks: the outbox's events delivered as signed HTTP POSTs
//! ([Standard Webhooks](https://www.standardwebhooks.com/) v1) to systems
//! that cannot hold a socket open.
//!
//! An endpoint acts as the principal (user or API key) that created it: its
//! events are row-scoped and field-redacted by the same
//! [`EventView`](crate::events::view::EventView) a subscription of that
//! principal uses. Each endpoint keeps its own cursor over the outbox in the
//! database and gets its events in cursor order; a failed delivery is
//! retried on the `webhook-retry-schedule` (exponential, with jitter) and
//! holds back the events after it. The parts:
//!
//! - [`sign`]: secrets and signatures;
//! - [`outbound`]: target checks (no private addresses unless allowed) and
//!   the one HTTP POST;
//! - [`worker`]: the per-process dispatcher (leases, enqueueing, attempts,
//!   retries, log retention);
//! - [`graphql`]: endpoints, deliveries, redelivery, replay, ping;
//! - this file: settings, rows, repository functions, topic matching.

pub mod graphql;
pub mod outbound;
pub mod sign;
pub mod worker;

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use crate::access::{ApiKeyPrincipal, Principal, RowFilter, UserPrincipal};
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::ownership::Ownership;
use crate::schema::{webhook_attempts, webhook_deliveries, webhook_endpoints};
use crate::{apply_row_filter, db_run, ids};

/// Policy resources: endpoints (owned by their creator) and their
/// deliveries (owned through the endpoint).
pub const RESOURCES: &[&str] = &["WebhookEndpoint", "WebhookDelivery"];

/// How rows of the resources are owned.
pub const OWNERSHIP: &[Ownership] = &[
    Ownership::column("WebhookEndpoint").owned_by_keys(),
    Ownership::through("WebhookDelivery", "WebhookEndpoint").owned_by_keys(),
];

/// Arguments that read delivery fields without selecting them.
pub const FIELD_USES: &[crate::policy::catalog::FieldUse] = {
    use crate::policy::catalog::FieldUse;
    &[FieldUse::read(
        "Query.webhookDeliveries(status)",
        &["WebhookDelivery.status"],
    )]
};

/// The topic of endpoint events (created, updated, failing, disabled, …).
pub const TOPIC: &str = "webhooks";

/// Endpoint states the service sets (the owner's switch is `active`).
pub mod status {
    /// Delivering.
    pub const ACTIVE: &str = "active";
    /// The last retry failed; later events wait until it is resumed.
    pub const FAILING: &str = "failing";
    /// The receiver answered `410 Gone`, or the principal is gone.
    pub const DISABLED: &str = "disabled";
}

/// Delivery states.
pub mod delivery {
    /// Waiting for its (next) attempt.
    pub const PENDING: &str = "pending";
    /// A 2xx answer came.
    pub const SUCCEEDED: &str = "succeeded";
    /// Every attempt failed, or the receiver answered 410.
    pub const FAILED: &str = "failed";
}

/// Webhook settings (`webhook-*`).
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Delays before the 2nd, 3rd, … attempt; after the last one fails the
    /// endpoint is marked failing.
    pub retry_schedule: Vec<Duration>,
    /// Deadline of one attempt (connect, send, answer).
    pub timeout: Duration,
    /// Hosts (names or addresses) that may be private or loopback.
    pub allow_hosts: Vec<String>,
    /// TLS client settings for `https` targets: the Web PKI roots and the
    /// `webhook-ca-file` authorities.
    pub tls: std::sync::Arc<rustls::ClientConfig>,
    /// How long finished deliveries and their attempts are kept.
    pub log_retention: Duration,
}

/// Parses a retry schedule: comma-separated durations with a unit (`ms`,
/// `s`, `m`, `h`, `d`), e.g. `5s,5m,30m,2h`.
pub fn parse_schedule(s: &str) -> std::result::Result<Vec<Duration>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let digits = p.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let n: u64 = digits
                .parse()
                .map_err(|_| format!("{p:?} is not a number with a unit"))?;
            let unit = &p[digits.len()..];
            Ok(match unit {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n * 60),
                "h" => Duration::from_secs(n * 3600),
                "d" => Duration::from_secs(n * 86_400),
                _ => return Err(format!("{p:?}: unit must be ms, s, m, h or d")),
            })
        })
        .collect()
}

/// An endpoint row (columns as in the migration).
#[allow(missing_docs)]
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints, treat_none_as_default_value = false)]
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub description: String,
    /// JSON list of topic / kind patterns.
    pub topics: String,
    /// JSON list of field names, or none for any change.
    pub fields: Option<String>,
    pub active: bool,
    pub status: String,
    pub status_reason: Option<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<NaiveDateTime>,
    pub principal_kind: String,
    pub principal_id: String,
    pub owner_id: Option<String>,
    pub event_cursor: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

impl EndpointRow {
    /// The topic patterns.
    pub fn topic_list(&self) -> Vec<String> {
        serde_json::from_str(&self.topics).unwrap_or_default()
    }

    /// The changed-fields filter, if any.
    pub fn field_list(&self) -> Option<Vec<String>> {
        self.fields
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok())
    }

    /// What the audit log and events show of an endpoint (never secrets).
    pub fn snapshot(&self) -> Value {
        json!({
            "url": self.url,
            "description": self.description,
            "topics": self.topic_list(),
            "fields": self.field_list(),
            "active": self.active,
            "status": self.status,
            "statusReason": self.status_reason,
        })
    }

    /// The secrets to sign with at `now`: the current one, and the previous
    /// one while its overlap lasts.
    pub fn signing_secrets(&self, now: NaiveDateTime) -> Vec<&str> {
        let mut s = vec![self.secret.as_str()];
        if let (Some(old), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && until > now
        {
            s.push(old);
        }
        s
    }
}

/// A delivery row.
#[allow(missing_docs)]
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries, treat_none_as_default_value = false)]
pub struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub message_id: String,
    pub event_seq: Option<i64>,
    pub kind: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

impl DeliveryRow {
    /// A new pending delivery of `payload` to `endpoint_id`.
    pub fn pending(
        endpoint_id: &str,
        message_id: String,
        event_seq: Option<i64>,
        kind: &str,
        payload: String,
    ) -> DeliveryRow {
        let now = ids::now();
        DeliveryRow {
            id: ids::new_id("whd"),
            endpoint_id: endpoint_id.to_owned(),
            message_id,
            event_seq,
            kind: kind.to_owned(),
            payload,
            status: delivery::PENDING.into(),
            attempts: 0,
            next_attempt_at: Some(now),
            created_at: now,
            finished_at: None,
        }
    }
}

/// An attempt row.
#[allow(missing_docs)]
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts, treat_none_as_default_value = false)]
pub struct AttemptRow {
    pub id: String,
    pub delivery_id: String,
    pub attempted_at: NaiveDateTime,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub succeeded: bool,
}

/// A new message id (the `webhook-id` header; the same on every attempt).
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// Whether an event of `topic` and `kind` matches any pattern. A pattern
/// is a topic (`customers`), a kind (`account.updated`) or either with `*`
/// standing for any characters (`account.*`, `*.deleted`, `*`).
pub fn matches(patterns: &[String], topic: &str, kind: &str) -> bool {
    patterns
        .iter()
        .any(|p| glob(p.as_bytes(), topic.as_bytes()) || glob(p.as_bytes(), kind.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// The principal an endpoint acts as, as it is now: `None` when the user
/// was deactivated or the API key revoked.
pub async fn principal_of(conn: &mut Conn<'_>, ep: &EndpointRow) -> Result<Option<Principal>> {
    Ok(match ep.principal_kind.as_str() {
        "user" => crate::identity::repo::user(conn, &ep.principal_id)
            .await?
            .filter(|u| u.active)
            .map(|u| {
                Principal::User(UserPrincipal {
                    roles: u.role_list(),
                    team_id: u.team_id,
                    id: u.id,
                    token_id: format!("webhook:{}", ep.id),
                })
            }),
        "api_key" => crate::identity::repo::api_key(conn, &ep.principal_id)
            .await?
            .filter(|k| k.revoked_at.is_none())
            .map(|k| {
                Principal::ApiKey(ApiKeyPrincipal {
                    id: k.id,
                    role: k.role,
                })
            }),
        _ => None,
    })
}

/// The endpoint `id` within `scope`.
pub async fn endpoint_in(
    conn: &mut Conn<'_>,
    id: &str,
    scope: &RowFilter,
) -> Result<Option<EndpointRow>> {
    Ok(db_run!(conn, |c| {
        let q = webhook_endpoints::table
            .filter(webhook_endpoints::id.eq(id))
            .into_boxed();
        apply_row_filter!(q, scope, webhook_endpoints::owner_id.assume_not_null())
            .select(EndpointRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// Every endpoint within `scope`, oldest first.
pub async fn endpoints_in(conn: &mut Conn<'_>, scope: &RowFilter) -> Result<Vec<EndpointRow>> {
    Ok(db_run!(conn, |c| {
        let q = webhook_endpoints::table.into_boxed();
        apply_row_filter!(q, scope, webhook_endpoints::owner_id.assume_not_null())
            .order(webhook_endpoints::id.asc())
            .select(EndpointRow::as_select())
            .load(c)
            .await
    })?)
}

/// The endpoint `id`, whatever its owner.
pub async fn endpoint(conn: &mut Conn<'_>, id: &str) -> Result<Option<EndpointRow>> {
    endpoint_in(conn, id, &RowFilter::All).await
}

/// The delivery `id`.
pub async fn delivery_by_id(conn: &mut Conn<'_>, id: &str) -> Result<Option<DeliveryRow>> {
    Ok(db_run!(conn, |c| webhook_deliveries::table
        .find(id)
        .select(DeliveryRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Deliveries of an endpoint, newest first, before `before` (a delivery
/// id), optionally in one state.
pub async fn deliveries(
    conn: &mut Conn<'_>,
    endpoint_id: &str,
    status: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>> {
    Ok(db_run!(conn, |c| {
        let mut q = webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
            .into_boxed();
        if let Some(s) = status {
            q = q.filter(webhook_deliveries::status.eq(s.to_owned()));
        }
        if let Some(b) = before {
            q = q.filter(webhook_deliveries::id.lt(b.to_owned()));
        }
        q.order(webhook_deliveries::id.desc())
            .limit(limit)
            .select(DeliveryRow::as_select())
            .load(c)
            .await
    })?)
}

/// The attempts of some deliveries, in time order.
pub async fn attempts_of(conn: &mut Conn<'_>, delivery_ids: &[String]) -> Result<Vec<AttemptRow>> {
    Ok(db_run!(conn, |c| webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(delivery_ids.to_vec()))
        .order((
            webhook_attempts::attempted_at.asc(),
            webhook_attempts::id.asc()
        ))
        .select(AttemptRow::as_select())
        .load(c)
        .await)?)
}

/// Inserts a delivery.
pub async fn insert_delivery(conn: &mut Conn<'_>, row: &DeliveryRow) -> Result<()> {
    db_run!(conn, |c| diesel::insert_into(webhook_deliveries::table)
        .values(row.clone())
        .execute(c)
        .await)?;
    Ok(())
}

/// Writes an endpoint's changed columns if its version is still
/// `expected`; the row's `version` must already be the next one. The event
/// cursor is the dispatcher's and is left alone (see [`set_cursor`]).
pub async fn update_endpoint(conn: &mut Conn<'_>, row: &EndpointRow, expected: i64) -> Result<()> {
    let n = db_run!(conn, |c| diesel::update(
        webhook_endpoints::table
            .filter(webhook_endpoints::id.eq(&row.id))
            .filter(webhook_endpoints::version.eq(expected))
    )
    .set((
        webhook_endpoints::url.eq(&row.url),
        webhook_endpoints::description.eq(&row.description),
        webhook_endpoints::topics.eq(&row.topics),
        webhook_endpoints::fields.eq(&row.fields),
        webhook_endpoints::active.eq(row.active),
        webhook_endpoints::status.eq(&row.status),
        webhook_endpoints::status_reason.eq(&row.status_reason),
        webhook_endpoints::secret.eq(&row.secret),
        webhook_endpoints::previous_secret.eq(&row.previous_secret),
        webhook_endpoints::previous_secret_until.eq(row.previous_secret_until),
        webhook_endpoints::updated_at.eq(row.updated_at),
        webhook_endpoints::version.eq(row.version),
    ))
    .execute(c)
    .await)?;
    if n == 0 {
        return Err(Error::stale("webhook endpoint", &row.id, expected));
    }
    Ok(())
}

/// Moves an endpoint's event cursor (a replay).
pub async fn set_cursor(conn: &mut Conn<'_>, id: &str, cursor: i64) -> Result<()> {
    db_run!(conn, |c| diesel::update(webhook_endpoints::table.find(id))
        .set(webhook_endpoints::event_cursor.eq(cursor))
        .execute(c)
        .await)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_topics_and_kinds() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches(&p(&["*"]), "customers", "account.updated"));
        assert!(matches(&p(&["customers"]), "customers", "account.updated"));
        assert!(matches(&p(&["account.*"]), "customers", "account.updated"));
        assert!(matches(&p(&["*.deleted"]), "customers", "contact.deleted"));
        assert!(!matches(&p(&["contact.*"]), "customers", "account.updated"));
        assert!(!matches(
            &p(&["account.update"]),
            "customers",
            "account.updated"
        ));
    }

    #[test]
    fn schedules_parse_with_units() {
        assert_eq!(
            parse_schedule("5s, 5m,2h,100ms,1d").unwrap(),
            vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(7200),
                Duration::from_millis(100),
                Duration::from_secs(86_400)
            ]
        );
        assert!(parse_schedule("5x").is_err());
        assert!(parse_schedule("s").is_err());
    }
}
