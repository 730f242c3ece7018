//! The GraphQL face of webhooks: endpoints (create, update, rotate the
//! secret, delete, list), the delivery log, redelivery, replay and a test
//! ping. Every write is one transaction with its audit entry and event;
//! rights come from the policy (`WebhookEndpoint`, `WebhookDelivery`).

use async_graphql::{Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{
    DeliveryRow, EndpointRow, TOPIC, WebhookSettings, delivery, endpoint_in, endpoints_in,
    new_message_id, outbound, sign, status,
};
use crate::access::{Principal, RowFilter, principal, require_create, row_filter};
use crate::app::App;
use crate::change::{self, Change};
use crate::db::Conn;
use crate::error::{Checks, Error, Result};
use crate::ids;

const ENDPOINT: &str = "WebhookEndpoint";
const DELIVERY: &str = "WebhookDelivery";
/// Longest overlap of an old secret after a rotation.
const MAX_OVERLAP_SECS: i64 = 7 * 86_400;

/// Where an endpoint is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookStatus {
    /// Delivering (when `active`).
    Active,
    /// A delivery failed on every retry; later events wait. `redeliver` the
    /// failed delivery, or update the endpoint with `active: true`, to go on.
    Failing,
    /// The receiver answered `410 Gone`, or the endpoint's user or API key
    /// is no longer active. Update it with `active: true` to go on.
    Disabled,
}

impl WebhookStatus {
    fn from_text(s: &str) -> WebhookStatus {
        match s {
            status::ACTIVE => WebhookStatus::Active,
            status::FAILING => WebhookStatus::Failing,
            _ => WebhookStatus::Disabled,
        }
    }
}

/// Where a delivery is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookDeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The receiver answered 2xx.
    Succeeded,
    /// Every attempt failed, or the receiver answered 410.
    Failed,
}

impl WebhookDeliveryStatus {
    fn from_text(s: &str) -> Self {
        match s {
            delivery::PENDING => Self::Pending,
            delivery::SUCCEEDED => Self::Succeeded,
            _ => Self::Failed,
        }
    }

    fn as_text(self) -> &'static str {
        match self {
            Self::Pending => delivery::PENDING,
            Self::Succeeded => delivery::SUCCEEDED,
            Self::Failed => delivery::FAILED,
        }
    }
}

/// A webhook endpoint. Its deliveries carry what its creator (a user or an
/// API key) may see: the same rows and fields as that creator's
/// subscription.
#[derive(SimpleObject, Clone, Debug)]
pub struct WebhookEndpoint {
    /// `whk_…`
    pub id: ID,
    /// Where events are POSTed (`http://…`).
    pub url: String,
    /// Free text.
    pub description: String,
    /// Topics or event kinds it receives; `*` matches any characters
    /// (`customers`, `account.*`, `*.deleted`, `*`).
    pub topics: Vec<String>,
    /// When set, `….updated` events are delivered only if one of these
    /// fields changed (among those the creator may read).
    pub fields: Option<Vec<String>>,
    /// The owner's switch: false pauses delivery (events wait).
    pub active: bool,
    /// What the service says about it.
    pub status: WebhookStatus,
    /// Why it is failing or disabled.
    pub status_reason: Option<String>,
    /// The last event cursor handled (delivered or not for it).
    pub cursor: String,
    /// Until when the previous secret still signs too (after a rotation).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// The user or API key that created and owns it.
    pub owner_id: Option<ID>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Optimistic concurrency version.
    pub version: i64,
}

impl From<EndpointRow> for WebhookEndpoint {
    fn from(r: EndpointRow) -> Self {
        WebhookEndpoint {
            topics: r.topic_list(),
            fields: r.field_list(),
            id: r.id.into(),
            url: r.url,
            description: r.description,
            active: r.active,
            status: WebhookStatus::from_text(&r.status),
            status_reason: r.status_reason,
            cursor: crate::events::encode_cursor(r.event_cursor),
            previous_secret_expires_at: r
                .previous_secret_until
                .filter(|t| *t > ids::now())
                .map(|t| t.and_utc()),
            owner_id: r.owner_id.map(Into::into),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        }
    }
}

/// An endpoint with its signing secret, which is shown only here.
#[derive(SimpleObject)]
pub struct WebhookEndpointSecret {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`: verify the `webhook-signature` header with it (Standard
    /// Webhooks). Shown only once.
    pub secret: String,
}

/// One message to an endpoint and its attempts.
#[derive(SimpleObject, Clone, Debug)]
pub struct WebhookDelivery {
    /// `whd_…`
    pub id: ID,
    /// The endpoint.
    pub endpoint_id: ID,
    /// The `webhook-id` header: the same on every attempt and redelivery.
    pub message_id: String,
    /// The event's cursor (none for a ping).
    pub event_cursor: Option<String>,
    /// `type` of the message (`account.updated`, `webhook.ping`).
    pub kind: String,
    /// Where it is.
    pub status: WebhookDeliveryStatus,
    /// The body sent.
    pub payload: Json<serde_json::Value>,
    /// Attempts made.
    pub attempt_count: i64,
    /// When the next attempt is due (pending ones).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Succeeded or given up (UTC).
    pub finished_at: Option<DateTime<Utc>>,
    /// Every attempt, oldest first.
    pub attempts: Vec<WebhookAttempt>,
}

impl WebhookDelivery {
    fn new(r: DeliveryRow, attempts: Vec<WebhookAttempt>) -> Self {
        WebhookDelivery {
            id: r.id.into(),
            endpoint_id: r.endpoint_id.into(),
            message_id: r.message_id,
            event_cursor: r.event_seq.map(crate::events::encode_cursor),
            kind: r.kind,
            status: WebhookDeliveryStatus::from_text(&r.status),
            payload: Json(serde_json::from_str(&r.payload).unwrap_or_default()),
            attempt_count: r.attempts,
            next_attempt_at: r
                .next_attempt_at
                .filter(|_| r.status == delivery::PENDING)
                .map(|t| t.and_utc()),
            created_at: r.created_at.and_utc(),
            finished_at: r.finished_at.map(|t| t.and_utc()),
            attempts,
        }
    }
}

/// One attempt of a delivery.
#[derive(SimpleObject, Clone, Debug)]
pub struct WebhookAttempt {
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// The HTTP status answered, if any.
    pub status_code: Option<i32>,
    /// Milliseconds until the answer (or the failure).
    pub latency_ms: i64,
    /// Why there was no answer (refused address, timeout, connection).
    pub error: Option<String>,
    /// The first 4 KiB of the response body.
    pub response_excerpt: Option<String>,
    /// A 2xx answer.
    pub succeeded: bool,
}

/// A new endpoint.
#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// `https://host[:port]/path` (or `http://`); private and loopback addresses are refused
    /// unless the host is in the `webhook-allow-hosts` setting.
    pub url: String,
    /// Topics or event kinds, `*` as a wildcard.
    pub topics: Vec<String>,
    /// Deliver `….updated` events only when one of these fields changed.
    pub fields: Option<Vec<String>>,
    /// Free text.
    pub description: Option<String>,
    /// Deliver now (default true).
    pub active: Option<bool>,
}

/// Changes to an endpoint; omitted fields stay.
#[derive(InputObject)]
pub struct UpdateWebhookEndpointInput {
    /// The endpoint.
    pub id: ID,
    /// The version you read.
    pub version: i64,
    /// New URL.
    pub url: Option<String>,
    /// New topics.
    pub topics: Option<Vec<String>>,
    /// New changed-fields filter; null removes it.
    pub fields: MaybeUndefined<Vec<String>>,
    /// New description.
    pub description: Option<String>,
    /// Pause (false) or resume (true); resuming also ends a `FAILING` or
    /// `DISABLED` state (a failed delivery is not sent again: use
    /// `redeliver` for that).
    pub active: Option<bool>,
}

fn check_url(c: &mut Checks, url: &str, settings: &WebhookSettings) -> Result<()> {
    let r = outbound::parse(url)
        .and_then(
            |t| match outbound::literal_refusal(&t, &settings.allow_hosts) {
                Some(why) => Err(why),
                None => Ok(()),
            },
        )
        .map_err(|why| Error::invalid("url", format!("URL {why}")));
    c.take(r)?;
    Ok(())
}

fn check_names(c: &mut Checks, field: &str, names: &[String], allow_star: bool) -> Result<()> {
    let r = if allow_star && names.is_empty() {
        Err(Error::invalid(
            field,
            "name at least one topic or kind (`*` for all)",
        ))
    } else if names.len() > 100 {
        Err(Error::invalid(field, "at most 100 entries"))
    } else if let Some(bad) = names.iter().find(|n| {
        n.is_empty()
            || n.len() > 100
            || !n.chars().all(|ch| {
                ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' || (allow_star && ch == '*')
            })
    }) {
        Err(Error::invalid(
            field,
            format!(
                "{bad:?}: use letters, digits, `_`, `.`{}",
                if allow_star { " and `*`" } else { "" }
            ),
        ))
    } else {
        Ok(())
    };
    c.take(r)?;
    Ok(())
}

fn json_list(v: &[String]) -> String {
    serde_json::Value::from(v.to_vec()).to_string()
}

async fn record(
    conn: &mut Conn<'_>,
    by: &Principal,
    action: &'static str,
    before: Option<&EndpointRow>,
    after: Option<&EndpointRow>,
) -> Result<()> {
    let row = after.or(before).expect("a row before or after");
    change::record(
        conn,
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: ENDPOINT,
            entity_id: row.id.clone(),
            action,
            before: before.map(EndpointRow::snapshot),
            after: after.map(EndpointRow::snapshot),
            owner_id: row.owner_id.clone(),
            team_id: None,
        },
    )
    .await?;
    Ok(())
}

/// The endpoint `id` within `scope`, or NOT_FOUND.
async fn scoped(conn: &mut Conn<'_>, id: &str, scope: &RowFilter) -> Result<EndpointRow> {
    ids::check(id, "whk", "id")?;
    endpoint_in(conn, id, scope)
        .await?
        .ok_or_else(|| Error::NotFound(format!("webhook endpoint {id}")))
}

/// Deliveries are owned through their endpoint: the caller's delivery
/// scope applied to the endpoint's owner.
async fn delivery_scope(ctx: &Context<'_>) -> Result<RowFilter> {
    row_filter(ctx, DELIVERY, "read").await
}

async fn with_attempts(
    conn: &mut Conn<'_>,
    rows: Vec<DeliveryRow>,
) -> Result<Vec<WebhookDelivery>> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut attempts = super::attempts_of(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mine = attempts
                .extract_if(.., |a| a.delivery_id == r.id)
                .map(|a| WebhookAttempt {
                    at: a.attempted_at.and_utc(),
                    status_code: a.status_code.map(|s| s as i32),
                    latency_ms: a.latency_ms,
                    error: a.error,
                    response_excerpt: a.response_excerpt,
                    succeeded: a.succeeded,
                })
                .collect();
            WebhookDelivery::new(r, mine)
        })
        .collect())
}

/// Webhook queries.
#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The webhook endpoints you may see, oldest first.
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> Result<Vec<WebhookEndpoint>> {
        let scope = row_filter(ctx, ENDPOINT, "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        Ok(endpoints_in(&mut c.conn(), &scope)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// One webhook endpoint.
    async fn webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookEndpoint> {
        let app = ctx.data_unchecked::<App>();
        let scope = row_filter(ctx, ENDPOINT, "read").await?;
        let mut c = app.db.conn().await?;
        Ok(scoped(&mut c.conn(), &id, &scope).await?.into())
    }

    /// The delivery log of an endpoint, newest first: `first` (at most 100)
    /// deliveries before the delivery id `before`, optionally in one state.
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
        status: Option<WebhookDeliveryStatus>,
        #[graphql(default = 20)] first: i32,
        before: Option<ID>,
    ) -> Result<Vec<WebhookDelivery>> {
        ids::check(&endpoint_id, "whk", "endpointId")?;
        let scope = delivery_scope(ctx).await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let mut conn = c.conn();
        endpoint_in(&mut conn, &endpoint_id, &scope)
            .await?
            .ok_or_else(|| Error::NotFound(format!("webhook endpoint {}", endpoint_id.0)))?;
        let rows = super::deliveries(
            &mut conn,
            &endpoint_id,
            status.map(WebhookDeliveryStatus::as_text),
            before.as_ref().map(|b| b.as_str()),
            i64::from(first.clamp(1, 100)),
        )
        .await?;
        with_attempts(&mut conn, rows).await
    }
}

/// Webhook mutations.
#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Creates an endpoint acting as you: it receives the events you could
    /// subscribe to, with the fields you may read, from now on. The secret
    /// is in the answer and nowhere else.
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> Result<WebhookEndpointSecret> {
        require_create(ctx, ENDPOINT)?;
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        let (kind, id) = match by {
            Principal::User(u) => ("user", u.id.clone()),
            Principal::ApiKey(k) => ("api_key", k.id.clone()),
            _ => return Err(by.refusal("sign in to create webhook endpoints", vec![])),
        };
        let mut c = Checks::default();
        check_url(&mut c, &input.url, &app.config.webhooks)?;
        check_names(&mut c, "topics", &input.topics, true)?;
        if let Some(f) = &input.fields {
            check_names(&mut c, "fields", f, false)?;
        }
        c.finish()?;
        let secret = sign::new_secret();
        let now = ids::now();
        let mut tx = app.db.begin().await?;
        let mut conn = tx.conn();
        // Number the events committed so far (PostgreSQL numbers them after
        // commit), so that "from now on" excludes every one of them.
        crate::events::sequence(&mut conn).await?;
        let row = EndpointRow {
            id: ids::new_id("whk"),
            url: input.url,
            description: input.description.unwrap_or_default(),
            topics: json_list(&input.topics),
            fields: input.fields.as_deref().map(json_list),
            active: input.active.unwrap_or(true),
            status: status::ACTIVE.into(),
            status_reason: None,
            secret: secret.clone(),
            previous_secret: None,
            previous_secret_until: None,
            principal_kind: kind.into(),
            principal_id: id,
            // A key owns what it creates (the type is `owned_by_keys`).
            owner_id: match by {
                Principal::ApiKey(k) => Some(k.id.clone()),
                other => other.user_id().map(str::to_owned),
            },
            // From now on: events committed before this one are not sent.
            event_cursor: crate::events::head(&mut conn).await?,
            lease_owner: None,
            lease_until: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        crate::db_run!(&mut conn, |c| diesel_async::RunQueryDsl::execute(
            diesel::insert_into(crate::schema::webhook_endpoints::table).values(row.clone()),
            c
        )
        .await)?;
        record(&mut conn, by, "created", None, Some(&row)).await?;
        app.commit(tx).await?;
        Ok(WebhookEndpointSecret {
            endpoint: row.into(),
            secret,
        })
    }

    /// Changes an endpoint (CONFLICT when `version` is stale).
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: UpdateWebhookEndpointInput,
    ) -> Result<WebhookEndpoint> {
        let app = ctx.data_unchecked::<App>();
        let mut c = Checks::default();
        if let Some(u) = &input.url {
            check_url(&mut c, u, &app.config.webhooks)?;
        }
        if let Some(t) = &input.topics {
            check_names(&mut c, "topics", t, true)?;
        }
        if let MaybeUndefined::Value(f) = &input.fields {
            check_names(&mut c, "fields", f, false)?;
        }
        c.finish()?;
        let scope = row_filter(ctx, ENDPOINT, "update").await?;
        let mut tx = app.db.begin().await?;
        let mut conn = tx.conn();
        let before = scoped(&mut conn, &input.id, &scope).await?;
        if before.version != input.version {
            return Err(Error::stale("webhook endpoint", &before.id, input.version));
        }
        let mut row = before.clone();
        if let Some(u) = input.url {
            row.url = u;
        }
        if let Some(t) = input.topics {
            row.topics = json_list(&t);
        }
        match input.fields {
            MaybeUndefined::Undefined => {}
            MaybeUndefined::Null => row.fields = None,
            MaybeUndefined::Value(f) => row.fields = Some(json_list(&f)),
        }
        if let Some(d) = input.description {
            row.description = d;
        }
        if let Some(a) = input.active {
            row.active = a;
            if a {
                row.status = status::ACTIVE.into();
                row.status_reason = None;
            }
        }
        row.version += 1;
        row.updated_at = ids::now();
        super::update_endpoint(&mut conn, &row, before.version).await?;
        record(
            &mut conn,
            principal(ctx),
            "updated",
            Some(&before),
            Some(&row),
        )
        .await?;
        app.commit(tx).await?;
        Ok(row.into())
    }

    /// Gives an endpoint a new secret. The old one keeps signing too (a
    /// second `v1,` signature) for `overlapSecs` (default a day, at most a
    /// week), so the receiver can switch without losing a message.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default = 86400)] overlap_secs: i64,
    ) -> Result<WebhookEndpointSecret> {
        if !(0..=MAX_OVERLAP_SECS).contains(&overlap_secs) {
            return Err(Error::invalid(
                "overlapSecs",
                format!("must be between 0 and {MAX_OVERLAP_SECS}"),
            ));
        }
        let app = ctx.data_unchecked::<App>();
        let scope = row_filter(ctx, ENDPOINT, "update").await?;
        let mut tx = app.db.begin().await?;
        let mut conn = tx.conn();
        let before = scoped(&mut conn, &id, &scope).await?;
        let secret = sign::new_secret();
        let now = ids::now();
        let mut row = before.clone();
        row.previous_secret = Some(before.secret.clone());
        row.previous_secret_until = Some(now + chrono::Duration::seconds(overlap_secs));
        row.secret = secret.clone();
        row.version += 1;
        row.updated_at = now;
        super::update_endpoint(&mut conn, &row, before.version).await?;
        record(
            &mut conn,
            principal(ctx),
            "secret_rotated",
            Some(&before),
            Some(&row),
        )
        .await?;
        app.commit(tx).await?;
        Ok(WebhookEndpointSecret {
            endpoint: row.into(),
            secret,
        })
    }

    /// Deletes an endpoint with its delivery log.
    async fn delete_webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookEndpoint> {
        let app = ctx.data_unchecked::<App>();
        let scope = row_filter(ctx, ENDPOINT, "delete").await?;
        let mut tx = app.db.begin().await?;
        let mut conn = tx.conn();
        let row = scoped(&mut conn, &id, &scope).await?;
        delete_rows(&mut conn, &row.id).await?;
        record(&mut conn, principal(ctx), "deleted", Some(&row), None).await?;
        app.commit(tx).await?;
        Ok(row.into())
    }

    /// Sends a test message (`type: webhook.ping`) after any pending ones.
    async fn ping_webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookDelivery> {
        let app = ctx.data_unchecked::<App>();
        let scope = row_filter(ctx, ENDPOINT, "update").await?;
        let mut tx = app.db.begin().await?;
        let mut conn = tx.conn();
        let ep = scoped(&mut conn, &id, &scope).await?;
        let body = json!({
            "type": "webhook.ping",
            "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "data": {"endpointId": ep.id},
        });
        let row = DeliveryRow::pending(
            &ep.id,
            new_message_id(),
            None,
            "webhook.ping",
            body.to_string(),
        );
        super::insert_delivery(&mut conn, &row).await?;
        app.commit(tx).await?;
        Ok(WebhookDelivery::new(row, vec![]))
    }

    /// Sends a delivery again, as a new delivery with the same message id
    /// and body, after any pending ones. Redelivering to a `FAILING`
    /// endpoint resumes it.
    async fn redeliver(&self, ctx: &Context<'_>, delivery_id: ID) -> Result<WebhookDelivery> {
        let app = ctx.data_unchecked::<App>();
        let scope = row_filter(ctx, ENDPOINT, "update").await?;
        let row = redeliver(app, principal(ctx), &scope, &delivery_id).await?;
        Ok(WebhookDelivery::new(row, vec![]))
    }

    /// Delivers every event after `fromCursor` to the endpoint again (new
    /// deliveries, new message ids), after any pending ones.
    async fn replay_webhook(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
        from_cursor: String,
    ) -> Result<WebhookEndpoint> {
        let from = crate::events::decode_cursor(&from_cursor, "fromCursor")?;
        let app = ctx.data_unchecked::<App>();
        let scope = row_filter(ctx, ENDPOINT, "update").await?;
        let mut tx = app.db.begin().await?;
        let mut conn = tx.conn();
        let before = scoped(&mut conn, &endpoint_id, &scope).await?;
        if from > crate::events::head(&mut conn).await? {
            return Err(Error::invalid("fromCursor", "is after the newest event"));
        }
        let mut row = before.clone();
        row.event_cursor = from;
        row.version += 1;
        row.updated_at = ids::now();
        super::update_endpoint(&mut conn, &row, before.version).await?;
        super::set_cursor(&mut conn, &row.id, from).await?;
        record(
            &mut conn,
            principal(ctx),
            "replayed",
            Some(&before),
            Some(&row),
        )
        .await?;
        app.commit(tx).await?;
        Ok(row.into())
    }
}

async fn delete_rows(conn: &mut Conn<'_>, id: &str) -> Result<()> {
    use crate::schema::{webhook_attempts, webhook_deliveries, webhook_endpoints};
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    crate::db_run!(conn, |c| diesel::delete(
        webhook_attempts::table.filter(
            webhook_attempts::delivery_id.eq_any(
                webhook_deliveries::table
                    .filter(webhook_deliveries::endpoint_id.eq(id))
                    .select(webhook_deliveries::id)
            )
        )
    )
    .execute(c)
    .await)?;
    crate::db_run!(conn, |c| diesel::delete(
        webhook_deliveries::table.filter(webhook_deliveries::endpoint_id.eq(id))
    )
    .execute(c)
    .await)?;
    crate::db_run!(conn, |c| diesel::delete(webhook_endpoints::table.find(id))
        .execute(c)
        .await)?;
    Ok(())
}

/// Sends delivery `id` again (see `Mutation.redeliver`) if its endpoint is
/// within `scope`; the new pending delivery. The CLI calls it too.
pub async fn redeliver(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
) -> Result<DeliveryRow> {
    ids::check(id, "whd", "deliveryId")?;
    let mut tx = app.db.begin().await?;
    let mut conn = tx.conn();
    let not_found = || Error::NotFound(format!("webhook delivery {id}"));
    let old = super::delivery_by_id(&mut conn, id)
        .await?
        .ok_or_else(not_found)?;
    let ep = endpoint_in(&mut conn, &old.endpoint_id, scope)
        .await?
        .ok_or_else(not_found)?;
    let row = DeliveryRow::pending(
        &ep.id,
        old.message_id,
        old.event_seq,
        &old.kind,
        old.payload,
    );
    super::insert_delivery(&mut conn, &row).await?;
    if ep.status == status::FAILING {
        let mut next = ep.clone();
        next.status = status::ACTIVE.into();
        next.status_reason = None;
        next.version += 1;
        next.updated_at = ids::now();
        super::update_endpoint(&mut conn, &next, ep.version).await?;
        record(&mut conn, by, "resumed", Some(&ep), Some(&next)).await?;
    }
    app.commit(tx).await?;
    Ok(row)
}
