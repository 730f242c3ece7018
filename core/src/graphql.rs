//! The platform's own schema parts besides identity: the audit log query and
//! the `events` subscription.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use crate::access::principal;
use crate::app::App;
use crate::audit::{self, AuditFilter, AuditRow, FieldChange};
use crate::error::{Error, Result};
use crate::events::view::{EventView, LiveCredentials};
use crate::events::{self, Event};
use crate::paging::{self, Page};
use crate::policy::Scope;

/// One audit log entry.
#[derive(SimpleObject, Clone, Debug)]
pub struct AuditEntry {
    /// Sequence number; newer entries have higher numbers.
    pub id: ID,
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// `user`, `api_key` or `system`.
    pub actor_kind: String,
    /// The user or API key.
    pub actor_id: Option<ID>,
    /// The credential used (`token:…` or `api_key:…`).
    pub credential: Option<String>,
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: ID,
    /// What happened.
    pub action: String,
    /// Per-field old and new values.
    pub changes: Vec<AuditChange>,
    /// Why the change was made, when it was not the actor's own edit of
    /// this record (e.g. `merge mrg_…` for a timeline entry a merge moved).
    pub reason: Option<String>,
}

/// One changed field.
#[derive(SimpleObject, Clone, Debug)]
pub struct AuditChange {
    /// Field name.
    pub field: String,
    /// Value before.
    pub old: Json<serde_json::Value>,
    /// Value after.
    pub new: Json<serde_json::Value>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        let changes: Vec<FieldChange> = serde_json::from_str(&r.changes).unwrap_or_default();
        AuditEntry {
            id: r.id.to_string().into(),
            at: r.at.and_utc(),
            actor_kind: r.actor_kind,
            actor_id: r.actor_id.map(Into::into),
            credential: r.credential,
            entity_type: r.entity_type,
            entity_id: r.entity_id.into(),
            action: r.action,
            reason: r.reason,
            changes: changes
                .into_iter()
                .map(|c| AuditChange {
                    field: c.field,
                    old: Json(c.old),
                    new: Json(c.new),
                })
                .collect(),
        }
    }
}

/// Filter for `auditLog`.
#[derive(InputObject, Default)]
pub struct AuditFilterInput {
    /// Only this entity type (e.g. `User`).
    pub entity_type: Option<String>,
    /// Only this entity.
    pub entity_id: Option<ID>,
    /// Only changes by this user or API key.
    pub actor_id: Option<ID>,
    /// At or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    pub to: Option<DateTime<Utc>>,
}

/// Platform queries.
#[derive(Default)]
pub struct PlatformQuery;

#[Object]
impl PlatformQuery {
    /// The audit log, newest first. Entries cannot be changed or deleted
    /// through any API. You see entries about the types you may read every
    /// record of (`read:all`), and only the changes of fields you may read.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Page<AuditEntry>> {
        let q = paging::query(first, after, None, None)?;
        let before_id = q
            .after
            .as_deref()
            .map(|a| {
                a.parse::<i64>()
                    .map_err(|_| Error::invalid("after", "not a valid cursor"))
            })
            .transpose()?;
        let f = filter.unwrap_or_default();
        let filter = AuditFilter {
            entity_type: f.entity_type,
            entity_id: f.entity_id.map(|i| i.0),
            actor_id: f.actor_id.map(|i| i.0),
            from: f.from.map(|t| t.naive_utc()),
            to: f.to.map(|t| t.naive_utc()),
            types: None,
        };
        let app = ctx.data_unchecked::<App>();
        let view = AuditView::for_principal(app, principal(ctx));
        let filter = AuditFilter {
            types: view.types.clone(),
            ..filter
        };
        let mut c = app.db.conn().await?;
        let (rows, total) = audit::list(&mut c.conn(), &filter, before_id, q.limit + 1).await?;
        let entries = rows
            .into_iter()
            .map(|r| view.redact(AuditEntry::from(r)))
            .collect();
        Ok(paging::build(&q, entries, total, |e: &AuditEntry| {
            e.id.0.clone()
        }))
    }
}

/// What one caller may see of the audit log. An entry does not carry its
/// record's owner, so row scope is applied per type: entries about a type
/// are shown only to callers who may read every record of it (`read:all`);
/// changes are shown only for fields the caller may read.
struct AuditView {
    /// `None`: every type (a caller with `read:all` on `*`).
    types: Option<Vec<String>>,
    roles: Vec<String>,
    policy: Arc<crate::policy::Policy>,
    catalog: Arc<crate::policy::Catalog>,
    system: bool,
}

impl AuditView {
    fn for_principal(app: &App, p: &crate::access::Principal) -> AuditView {
        let policy = app.policy.current();
        let roles = p.effective_roles();
        let system = p.is_system();
        let all = |ty: &str| system || policy.scope(&roles, ty, "read") == Some(Scope::All);
        let types = if all("*") {
            None
        } else {
            Some(
                app.policy
                    .catalog()
                    .readable
                    .keys()
                    .filter(|t| all(t))
                    .cloned()
                    .collect(),
            )
        };
        AuditView {
            types,
            roles,
            catalog: app.policy.catalog().clone(),
            policy,
            system,
        }
    }

    fn redact(&self, mut e: AuditEntry) -> AuditEntry {
        if !self.system {
            e.changes.retain(|c| {
                crate::policy::check::field_readable(
                    &self.catalog,
                    &self.policy,
                    &self.roles,
                    &e.entity_type,
                    &c.field,
                )
            });
        }
        e
    }
}

/// A domain event as delivered to subscribers.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "DomainEvent")]
pub struct DomainEvent {
    /// Opaque, strictly increasing cursor; pass it as `after` to resume.
    pub cursor: String,
    /// Topic (`identity`, `customers`, …).
    pub topic: String,
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: ID,
    /// What happened, e.g. `user.created`.
    pub kind: String,
    /// Event data: `changed` holds the changed fields' new values and, for
    /// records that existed before, `before` their old values (only fields
    /// you may read).
    pub payload: Json<serde_json::Value>,
    /// Who caused it (`user:usr_…`, `api_key:key_…`), if anyone.
    pub actor: Option<String>,
    /// When it was written (UTC).
    pub created_at: DateTime<Utc>,
}

impl From<&Event> for DomainEvent {
    fn from(e: &Event) -> Self {
        DomainEvent {
            cursor: events::encode_cursor(e.seq),
            topic: e.topic.clone(),
            entity_type: e.entity_type.clone(),
            entity_id: e.entity_id.clone().into(),
            kind: e.kind.clone(),
            payload: Json(serde_json::from_str(&e.payload).unwrap_or_default()),
            actor: e.actor.clone(),
            created_at: e.created_at.and_utc(),
        }
    }
}

/// Platform subscriptions.
#[derive(Default)]
pub struct PlatformSubscription;

#[Subscription]
impl PlatformSubscription {
    /// Every event after `after` (or from now on, without it), optionally only
    /// some topics: first the stored ones, then live ones, in cursor order,
    /// none missed and none twice. Resume after a disconnect by passing the
    /// last cursor you received.
    async fn events(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        topics: Option<Vec<String>>,
    ) -> Result<impl Stream<Item = async_graphql::Result<DomainEvent>> + use<>> {
        event_stream(ctx, after, topics).await
    }
}

/// The event stream for a subscription resolver: events after the client's
/// cursor (or from now on), on `topics`, filtered by the caller's row scope
/// and stripped of fields the caller may not read. Modules use it for their
/// own topic subscriptions.
pub async fn event_stream(
    ctx: &Context<'_>,
    after: Option<String>,
    topics: Option<Vec<String>>,
) -> Result<impl Stream<Item = async_graphql::Result<DomainEvent>> + use<>> {
    event_stream_where(ctx, after, topics, Box::new(|_| true)).await
}

/// [`event_stream`] of only the events `wanted` accepts (a module's own
/// subscription argument, e.g. one pipeline's events): applied to stored
/// and live events alike, before row scope and field rules.
pub async fn event_stream_where(
    ctx: &Context<'_>,
    after: Option<String>,
    topics: Option<Vec<String>>,
    wanted: Box<dyn Fn(&Event) -> bool + Send + Sync>,
) -> Result<impl Stream<Item = async_graphql::Result<DomainEvent>> + use<>> {
    let after = after
        .map(|a| events::decode_cursor(&a, "after"))
        .transpose()?;
    let app = ctx.data_unchecked::<App>().clone();
    let start = principal(ctx).clone();
    let credentials = ctx.data_opt::<LiveCredentials>().cloned();
    let current = Arc::new(tokio::sync::Mutex::new(Current {
        version: app.policy.current().version,
        generation: app.auth.generation(),
        view: EventView::for_principal(&app, &start).await?,
        principal: Some(start),
    }));
    // Row scope and field rules are applied here, per event, so a policy
    // reload or a change of the caller's rights applies to the next event.
    Ok(app
        .events
        .subscribe(after, topics, wanted)
        .filter_map(move |r: Result<Arc<Event>>| {
            let (app, credentials, current) = (app.clone(), credentials.clone(), current.clone());
            async move {
                let e = match r {
                    Ok(e) => e,
                    Err(e) => return Some(Err(async_graphql::Error::from(e))),
                };
                let mut cur = current.lock().await;
                let version = app.policy.current().version;
                let generation = app.auth.generation();
                let rights_changed = credentials.is_some() && generation != cur.generation;
                if cur.principal.is_some() && (version != cur.version || rights_changed) {
                    let now = match &credentials {
                        Some(c) if rights_changed => {
                            app.auth.authenticate(c.0.as_deref()).await.ok()
                        }
                        _ => cur.principal.clone(),
                    };
                    let same = version == cur.version && now == cur.principal;
                    let view = match &now {
                        Some(p) if !same => match EventView::for_principal(&app, p).await {
                            Ok(v) => v,
                            Err(e) => return Some(Err(async_graphql::Error::from(e))),
                        },
                        _ => cur.view.clone(),
                    };
                    *cur = Current {
                        version,
                        generation,
                        view,
                        principal: now,
                    };
                }
                // Signed out, revoked or deactivated: nothing more.
                cur.principal.as_ref()?;
                let payload = cur.view.present(&e)?;
                let mut out = DomainEvent::from(e.as_ref());
                out.payload.0 = payload;
                Some(Ok(out))
            }
        }))
}

/// The rights an event stream currently filters with.
struct Current {
    version: u64,
    generation: u64,
    view: EventView,
    /// None once the credentials stopped authenticating.
    principal: Option<crate::access::Principal>,
}

/// An update input field: `None` when omitted (leave as is), `Some(None)`
/// when null (clear), `Some(Some(v))` when set.
pub fn patch<T>(v: async_graphql::MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        async_graphql::MaybeUndefined::Undefined => None,
        async_graphql::MaybeUndefined::Null => Some(None),
        async_graphql::MaybeUndefined::Value(v) => Some(Some(v)),
    }
}
