//! SLA policies, declared to the entity kit as shared configuration: an
//! ordered list (the first active policy whose conditions match a ticket
//! wins), each with conditions on priority, channel, group, type and tags,
//! a business calendar (or calendar hours, around the clock), targets per
//! priority for first reply, next reply and resolution, the share of a
//! target at which a warning goes out, and what a breach escalates to.
//! Moving a policy is an update of its `position` (versioned like any
//! field); the others shift without a version change.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, NaiveDateTime, Utc};
use crm_core::db::{Conn, Tx};
use crm_core::entity::sql::{Bind, Sql};
use crm_core::entity::{Column, Def, Entity, Kind, Scope, WriteCtx, resolve};
use crm_core::error::{Checks, Error, Result};
use crm_core::graphql::patch as mu;
use crm_core::identity::repo as users;
use crm_core::ids;
use diesel::QueryableByName;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::tickets::repo::TicketRow;
use crate::tickets::service::{normalize_tag, tags_of};
use crate::values::{TicketChannel, TicketPriority, TicketType};

/// A policy row.
#[derive(Clone, Debug, QueryableByName, Serialize, Deserialize)]
#[diesel(table_name = crm_core::schema::sla_policies)]
pub struct PolicyRow {
    pub id: String,
    pub name: String,
    /// 1 first.
    pub position: i64,
    pub active: bool,
    /// JSON [`Conditions`].
    pub conditions: String,
    /// None: calendar hours (around the clock).
    pub calendar_id: Option<String>,
    /// JSON list of [`Target`].
    pub targets: String,
    /// Share of a target (percent) at which the warning goes out.
    pub warn_percent: i64,
    /// JSON [`Escalation`].
    pub escalation: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

/// What a ticket must be like; an empty list matches anything.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Conditions {
    pub priorities: Vec<String>,
    pub channels: Vec<String>,
    pub group_ids: Vec<String>,
    pub types: Vec<String>,
    /// The ticket carries at least one of these.
    pub tags: Vec<String>,
}

impl Conditions {
    /// Whether `t` matches.
    pub fn matches(&self, t: &TicketRow) -> bool {
        let any = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        let tags = tags_of(t);
        any(&self.priorities, Some(&t.priority))
            && any(&self.channels, Some(&t.channel))
            && any(&self.group_ids, t.group_id.as_deref())
            && any(&self.types, t.ticket_type.as_deref())
            && (self.tags.is_empty() || self.tags.iter().any(|x| tags.contains(x)))
    }
}

/// Targets of one priority, in minutes (business minutes with a
/// calendar); None: that clock does not run.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub priority: String,
    pub first_reply: Option<i64>,
    pub next_reply: Option<i64>,
    pub resolution: Option<i64>,
}

/// What a breach does to the ticket.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Escalation {
    /// Raise the priority one step (LOW → NORMAL → HIGH → URGENT).
    pub raise_priority: bool,
    /// Move the ticket to this group.
    pub reassign_group_id: Option<String>,
    /// Address an `sla.escalated` event to the manager of the ticket's
    /// group (the team above it in the hierarchy).
    pub notify_manager: bool,
}

impl PolicyRow {
    /// The conditions.
    pub fn conditions(&self) -> Result<Conditions> {
        serde_json::from_str(&self.conditions)
            .map_err(|e| Error::Internal(format!("policy {} conditions: {e}", self.id)))
    }

    /// The targets.
    pub fn targets(&self) -> Result<Vec<Target>> {
        serde_json::from_str(&self.targets)
            .map_err(|e| Error::Internal(format!("policy {} targets: {e}", self.id)))
    }

    /// The escalation.
    pub fn escalation(&self) -> Result<Escalation> {
        serde_json::from_str(&self.escalation)
            .map_err(|e| Error::Internal(format!("policy {} escalation: {e}", self.id)))
    }
}

/// SLA policies, declared to the kit.
pub struct Policies;

/// The declaration of [`Policies`].
pub const DEF: Def = Def {
    type_name: "SlaPolicy",
    prefix: "slp",
    label: "SLA policy",
    table: "sla_policies",
    topic: crate::TOPIC,
    columns: &[
        Column::new("id", Kind::Text).api("id"),
        Column::text("name", "name"),
        Column::int("position", "position").sort(),
        Column::new("active", Kind::Bool).api("active"),
        Column::text("conditions", "conditions"),
        Column::text("calendar_id", "calendarId").nullable(),
        Column::text("targets", "targets"),
        Column::int("warn_percent", "warnPercent"),
        Column::text("escalation", "escalation"),
        Column::time("created_at", "createdAt"),
        Column::time("updated_at", "updatedAt"),
        Column::int("version", "version"),
    ],
    scope: Scope::Shared,
    soft_delete: None,
    custom_fields: false,
};

const COLS: &str = "id, name, position, active, conditions, calendar_id, targets, warn_percent, \
                    escalation, created_at, updated_at, version";

/// Every policy (inactive ones too when asked), in order.
pub async fn all(conn: &mut Conn<'_>, inactive: bool) -> Result<Vec<PolicyRow>> {
    let mut s = Sql::new(format!("SELECT {COLS} FROM sla_policies"));
    if !inactive {
        s.push(" WHERE active = ").bind(Bind::Bool(Some(true)));
    }
    s.push(" ORDER BY position, id");
    s.load(conn).await
}

/// The first active policy matching `t`.
pub async fn matching(conn: &mut Conn<'_>, t: &TicketRow) -> Result<Option<PolicyRow>> {
    for p in all(conn, false).await? {
        if p.conditions()?.matches(t) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Fields of a policy write; `None` leaves a field alone, `Some(None)`
/// clears it.
#[derive(Default)]
pub struct PolicyFields {
    pub name: Option<String>,
    pub position: Option<i64>,
    pub active: Option<bool>,
    pub conditions: Option<SlaConditionsInput>,
    pub calendar_id: Option<Option<String>>,
    pub targets: Option<Vec<SlaTargetInput>>,
    pub warn_percent: Option<i64>,
    pub escalation: Option<SlaEscalationInput>,
}

/// Conditions of a policy; all given ones must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct SlaConditionsInput {
    /// Ticket priority is one of these (empty: any).
    #[graphql(default)]
    pub priorities: Vec<TicketPriority>,
    /// Ticket channel is one of these (empty: any).
    #[graphql(default)]
    pub channels: Vec<TicketChannel>,
    /// Ticket group is one of these teams (empty: any).
    #[graphql(default)]
    pub group_ids: Vec<ID>,
    /// Ticket type is one of these (empty: any).
    #[graphql(default)]
    pub types: Vec<TicketType>,
    /// Ticket carries one of these tags (empty: any).
    #[graphql(default)]
    pub tags: Vec<String>,
}

/// Targets for one priority, in minutes (business minutes when the
/// policy has a calendar); omit one and that clock does not run.
#[derive(InputObject, Clone, Debug)]
pub struct SlaTargetInput {
    pub priority: TicketPriority,
    pub first_reply_minutes: Option<i64>,
    pub next_reply_minutes: Option<i64>,
    pub resolution_minutes: Option<i64>,
}

/// What a breach does.
#[derive(InputObject, Clone, Debug, Default)]
pub struct SlaEscalationInput {
    /// Raise the ticket's priority one step.
    #[graphql(default)]
    pub raise_priority: bool,
    /// Move the ticket to this group (a team).
    pub reassign_group_id: Option<ID>,
    /// Send `sla.escalated` to the manager of the ticket's group (the
    /// team above the group).
    #[graphql(default)]
    pub notify_manager: bool,
}

/// Most minutes a target may be (a year).
const MAX_TARGET: i64 = 366 * 24 * 60;

async fn check_conditions(
    c: &mut Checks,
    conn: &mut Conn<'_>,
    input: SlaConditionsInput,
) -> Result<String> {
    let mut out = Conditions {
        priorities: input.priorities.iter().map(|p| p.as_str().into()).collect(),
        channels: input.channels.iter().map(|p| p.as_str().into()).collect(),
        types: input.types.iter().map(|p| p.as_str().into()).collect(),
        ..Default::default()
    };
    for g in input.group_ids {
        if c.take(users::check_team(conn, &g, "conditions.groupIds").await)?
            .is_some()
            && !out.group_ids.contains(&g.0)
        {
            out.group_ids.push(g.0);
        }
    }
    for t in input.tags {
        match normalize_tag(&t) {
            Ok(t) if !out.tags.contains(&t) => out.tags.push(t),
            Ok(_) => {}
            Err(_) => {
                c.take::<()>(Err(Error::invalid(
                    "conditions.tags",
                    format!("{t:?} is not a tag"),
                )))?;
            }
        }
    }
    out.priorities.dedup();
    out.channels.dedup();
    out.types.dedup();
    Ok(serde_json::to_string(&out).unwrap_or_else(|_| "{}".into()))
}

fn check_targets(c: &mut Checks, input: Vec<SlaTargetInput>) -> Result<String> {
    let mut out: Vec<Target> = Vec::new();
    for t in input {
        if out.iter().any(|o| o.priority == t.priority.as_str()) {
            c.take::<()>(Err(Error::invalid(
                "targets",
                format!("{} is given twice", t.priority.as_str()),
            )))?;
            continue;
        }
        for v in [
            t.first_reply_minutes,
            t.next_reply_minutes,
            t.resolution_minutes,
        ]
        .into_iter()
        .flatten()
        {
            if !(1..=MAX_TARGET).contains(&v) {
                c.take::<()>(Err(Error::invalid(
                    "targets",
                    format!("targets are 1 to {MAX_TARGET} minutes"),
                )))?;
            }
        }
        out.push(Target {
            priority: t.priority.as_str().into(),
            first_reply: t.first_reply_minutes,
            next_reply: t.next_reply_minutes,
            resolution: t.resolution_minutes,
        });
    }
    Ok(serde_json::to_string(&out).unwrap_or_else(|_| "[]".into()))
}

async fn check_escalation(
    c: &mut Checks,
    conn: &mut Conn<'_>,
    input: SlaEscalationInput,
) -> Result<String> {
    let mut out = Escalation {
        raise_priority: input.raise_priority,
        reassign_group_id: None,
        notify_manager: input.notify_manager,
    };
    if let Some(g) = input.reassign_group_id
        && c.take(users::check_team(conn, &g, "escalation.reassignGroupId").await)?
            .is_some()
    {
        out.reassign_group_id = Some(g.0);
    }
    Ok(serde_json::to_string(&out).unwrap_or_else(|_| "{}".into()))
}

async fn count(conn: &mut Conn<'_>) -> Result<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let s = Sql::new("SELECT COUNT(*) AS n FROM sla_policies");
    Ok(s.load::<N>(conn).await?.first().map_or(0, |n| n.n))
}

impl Entity for Policies {
    const DEF: Def = DEF;
    type Row = PolicyRow;
    type Fields = PolicyFields;

    fn snapshot(r: &PolicyRow) -> Value {
        let j = |s: &str| serde_json::from_str::<Value>(s).unwrap_or_default();
        json!({
            "name": r.name,
            "position": r.position,
            "active": r.active,
            "conditions": j(&r.conditions),
            "calendarId": r.calendar_id,
            "targets": j(&r.targets),
            "warnPercent": r.warn_percent,
            "escalation": j(&r.escalation),
        })
    }

    fn blank() -> PolicyRow {
        let now = ids::now();
        PolicyRow {
            id: String::new(),
            name: String::new(),
            position: 0,
            active: true,
            conditions: "{}".into(),
            calendar_id: None,
            targets: "[]".into(),
            warn_percent: 75,
            escalation: "{}".into(),
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut PolicyRow,
        f: PolicyFields,
    ) -> Result<()> {
        let mut c = Checks::default();
        if w.creating {
            if f.name.is_none() {
                c.take::<()>(Err(Error::invalid("name", "is required")))?;
            }
            if f.targets.is_none() {
                c.take::<()>(Err(Error::invalid("targets", "is required")))?;
            }
        }
        if let Some(n) = f.name {
            let n = n.trim();
            if n.is_empty() || n.chars().count() > 100 {
                c.take::<()>(Err(Error::invalid("name", "must be 1 to 100 characters")))?;
            } else {
                row.name = n.to_owned();
            }
        }
        if let Some(a) = f.active {
            row.active = a;
        }
        if let Some(cond) = f.conditions {
            row.conditions = check_conditions(&mut c, conn, cond).await?;
        }
        if let Some(cal) = f.calendar_id {
            match cal {
                Some(id) => {
                    let found =
                        if ids::check(&id, super::calendars::DEF.prefix, "calendarId").is_ok() {
                            super::calendars::get(conn, &id).await?
                        } else {
                            None
                        };
                    if found.is_some() {
                        row.calendar_id = Some(id);
                    } else {
                        c.take::<()>(Err(Error::invalid("calendarId", "no such calendar")))?;
                    }
                }
                None => row.calendar_id = None,
            }
        }
        if let Some(t) = f.targets {
            row.targets = check_targets(&mut c, t)?;
        }
        if let Some(p) = f.warn_percent {
            if (1..=99).contains(&p) {
                row.warn_percent = p;
            } else {
                c.take::<()>(Err(Error::invalid("warnPercent", "must be 1 to 99")))?;
            }
        }
        if let Some(e) = f.escalation {
            row.escalation = check_escalation(&mut c, conn, e).await?;
        }
        // The place in the list: 1 first; beyond the end (or none on
        // create) is last. `after_write` shifts the others.
        let n = count(conn).await? + i64::from(w.creating);
        match f.position {
            Some(p) => row.position = p.clamp(1, n.max(1)),
            None if w.creating => row.position = n.max(1),
            None => {}
        }
        c.finish()
    }

    /// Gives every other policy its place around this one (their versions
    /// stay: a place is the list's, not the policy's content).
    async fn after_write(
        _w: &WriteCtx<'_>,
        tx: &mut Tx,
        before: Option<&PolicyRow>,
        after: &PolicyRow,
    ) -> Result<()> {
        if before.is_some_and(|b| b.position == after.position) {
            return Ok(());
        }
        let mut others: Vec<PolicyRow> = all(&mut tx.conn(), true)
            .await?
            .into_iter()
            .filter(|p| p.id != after.id)
            .collect();
        others.sort_by_key(|p| (p.position, p.id.clone()));
        let at = usize::try_from(after.position - 1)
            .unwrap_or(0)
            .min(others.len());
        for (i, p) in others.iter().enumerate() {
            let place = i as i64 + 1 + i64::from(i >= at);
            if p.position != place {
                let mut s = Sql::new("UPDATE sla_policies SET position = ");
                s.bind(place).push(" WHERE id = ").bind(p.id.as_str());
                s.execute(&mut tx.conn()).await?;
            }
        }
        Ok(())
    }
}

/// A ticket condition set of a policy.
#[derive(SimpleObject, Clone, Debug)]
pub struct SlaConditions {
    /// Priorities (empty: any).
    pub priorities: Vec<TicketPriority>,
    /// Channels (empty: any).
    pub channels: Vec<TicketChannel>,
    /// Groups (empty: any).
    pub group_ids: Vec<ID>,
    /// Types (empty: any).
    pub types: Vec<TicketType>,
    /// Tags, one of which the ticket carries (empty: any).
    pub tags: Vec<String>,
}

/// Targets of one priority, in minutes.
#[derive(SimpleObject, Clone, Debug)]
pub struct SlaTarget {
    pub priority: TicketPriority,
    /// Until the first public reply.
    pub first_reply_minutes: Option<i64>,
    /// From a customer's message to the next public reply.
    pub next_reply_minutes: Option<i64>,
    /// Until the ticket is solved.
    pub resolution_minutes: Option<i64>,
}

/// What a breach does.
#[derive(SimpleObject, Clone, Debug)]
pub struct SlaEscalation {
    /// Raises the priority one step.
    pub raise_priority: bool,
    /// Moves the ticket to this group.
    pub reassign_group_id: Option<ID>,
    /// Sends `sla.escalated` to the group's manager team.
    pub notify_manager: bool,
}

/// An SLA policy.
#[derive(SimpleObject, Clone, Debug)]
pub struct SlaPolicy {
    /// `slp_…`
    pub id: ID,
    /// Name (shown on clocks).
    pub name: String,
    /// Place in the list, 1 first: the first active matching policy wins.
    pub position: i64,
    /// Inactive policies match nothing.
    pub active: bool,
    /// What a ticket must be like.
    pub conditions: SlaConditions,
    /// The business calendar; null: calendar hours (around the clock).
    pub calendar_id: Option<ID>,
    /// Targets per priority (a priority without targets starts no
    /// clocks).
    pub targets: Vec<SlaTarget>,
    /// Share of a target (percent) at which `sla.warning` goes out.
    pub warn_percent: i64,
    /// What a breach does.
    pub escalation: SlaEscalation,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

impl TryFrom<PolicyRow> for SlaPolicy {
    type Error = Error;

    fn try_from(r: PolicyRow) -> Result<Self> {
        let c = r.conditions()?;
        let e = r.escalation()?;
        let targets = r
            .targets()?
            .into_iter()
            .map(|t| {
                Ok(SlaTarget {
                    priority: TicketPriority::from_stored(&t.priority)?,
                    first_reply_minutes: t.first_reply,
                    next_reply_minutes: t.next_reply,
                    resolution_minutes: t.resolution,
                })
            })
            .collect::<Result<_>>()?;
        Ok(SlaPolicy {
            id: r.id.into(),
            name: r.name,
            position: r.position,
            active: r.active,
            conditions: SlaConditions {
                priorities: c
                    .priorities
                    .iter()
                    .map(|s| TicketPriority::from_stored(s))
                    .collect::<Result<_>>()?,
                channels: c
                    .channels
                    .iter()
                    .map(|s| TicketChannel::from_stored(s))
                    .collect::<Result<_>>()?,
                group_ids: c.group_ids.into_iter().map(Into::into).collect(),
                types: c
                    .types
                    .iter()
                    .map(|s| TicketType::from_stored(s))
                    .collect::<Result<_>>()?,
                tags: c.tags,
            },
            calendar_id: r.calendar_id.map(Into::into),
            targets,
            warn_percent: r.warn_percent,
            escalation: SlaEscalation {
                raise_priority: e.raise_priority,
                reassign_group_id: e.reassign_group_id.map(Into::into),
                notify_manager: e.notify_manager,
            },
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        })
    }
}

/// Input for `createSlaPolicy`.
#[derive(InputObject)]
pub struct CreateSlaPolicyInput {
    /// Name (1–100 characters).
    pub name: String,
    /// Default: true.
    pub active: Option<bool>,
    /// Default: every ticket.
    pub conditions: Option<SlaConditionsInput>,
    /// A business calendar; omitted: calendar hours.
    pub calendar_id: Option<ID>,
    /// Targets per priority.
    pub targets: Vec<SlaTargetInput>,
    /// Default 75.
    pub warn_percent: Option<i64>,
    /// Default: nothing.
    pub escalation: Option<SlaEscalationInput>,
    /// Place in the list (default: last); later policies move down.
    pub position: Option<i64>,
}

/// Input for `updateSlaPolicy`: omitted fields stay, null clears. Tickets
/// already measured keep the targets they were given.
#[derive(InputObject)]
pub struct UpdateSlaPolicyInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    pub active: Option<bool>,
    pub conditions: Option<SlaConditionsInput>,
    pub calendar_id: MaybeUndefined<ID>,
    pub targets: Option<Vec<SlaTargetInput>>,
    pub warn_percent: Option<i64>,
    pub escalation: Option<SlaEscalationInput>,
    /// Move to this place (1 first; beyond the end: last).
    pub position: Option<i64>,
}

/// Policy queries.
#[derive(Default)]
pub struct PolicyQuery;

#[Object]
impl PolicyQuery {
    /// Every SLA policy, in the order they are tried.
    async fn sla_policies(&self, ctx: &Context<'_>) -> Result<Vec<SlaPolicy>> {
        crm_core::access::row_filter(ctx, DEF.type_name, "read").await?;
        let app = ctx.data_unchecked::<crm_core::App>();
        let mut c = app.db.conn().await?;
        all(&mut c.conn(), true)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    /// One SLA policy.
    async fn sla_policy(&self, ctx: &Context<'_>, id: ID) -> Result<SlaPolicy> {
        resolve::get::<Policies>(ctx, &id).await?.try_into()
    }
}

/// Policy mutations.
#[derive(Default)]
pub struct PolicyMutation;

#[Object]
impl PolicyMutation {
    /// Adds an SLA policy.
    async fn create_sla_policy(
        &self,
        ctx: &Context<'_>,
        input: CreateSlaPolicyInput,
    ) -> Result<SlaPolicy> {
        let f = PolicyFields {
            name: Some(input.name),
            position: input.position,
            active: input.active,
            conditions: input.conditions,
            calendar_id: input.calendar_id.map(|i| Some(i.0)),
            targets: Some(input.targets),
            warn_percent: input.warn_percent,
            escalation: input.escalation,
        };
        resolve::create::<Policies>(ctx, f).await?.try_into()
    }

    /// Changes (or moves) a policy if `version` is current; clocks already
    /// running keep their targets.
    async fn update_sla_policy(
        &self,
        ctx: &Context<'_>,
        input: UpdateSlaPolicyInput,
    ) -> Result<SlaPolicy> {
        let f = PolicyFields {
            name: input.name,
            position: input.position,
            active: input.active,
            conditions: input.conditions,
            calendar_id: mu(input.calendar_id).map(|o| o.map(|i| i.0)),
            targets: input.targets,
            warn_percent: input.warn_percent,
            escalation: input.escalation,
        };
        resolve::update::<Policies>(ctx, &input.id, input.version, f)
            .await?
            .try_into()
    }

    /// Deletes a policy if `version` is current (clocks it started keep
    /// running on their snapshot).
    async fn delete_sla_policy(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<ID> {
        resolve::remove::<Policies>(ctx, &id, version).await
    }
}
