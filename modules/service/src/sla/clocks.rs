//! A ticket's SLA clocks. When a ticket is created (or its priority,
//! channel, group, type or tags change) the first matching policy is
//! applied and its target, calendar, warning share and escalation are
//! copied onto the clock, so a later change of the policy or the calendar
//! does not rewrite a clock already measured.
//!
//! A clock counts business minutes from `started_at`; while the ticket is
//! PENDING or ON_HOLD it is PAUSED, and on resuming the paused business
//! minutes are added to `paused_minutes`, which moves `due_at` (and
//! `warn_at`) by exactly that much business time. FIRST_REPLY is met by the
//! first public reply, NEXT_REPLY (started by a customer's message when no
//! reply clock runs) by the next public reply, RESOLUTION by SOLVED;
//! solving meets every running clock (the solution is the answer). All of
//! this runs in the transaction that changes the ticket.

use async_graphql::{Enum, ID, SimpleObject};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use crm_core::db::Conn;
use crm_core::entity::sql::{Bind, Sql};
use crm_core::error::{Error, Result};
use crm_core::ids;
use diesel::QueryableByName;

use super::calendar::{Calendar, Spec};
use super::policies::{self, PolicyRow};
use crate::tickets::repo::TicketRow;
use crate::values::TicketStatus;

/// What a clock measures.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlaClockKind {
    /// Until the first public reply.
    FirstReply,
    /// From a customer's message to the next public reply.
    NextReply,
    /// Until the ticket is solved.
    Resolution,
}

impl SlaClockKind {
    /// Stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaClockKind::FirstReply => "FIRST_REPLY",
            SlaClockKind::NextReply => "NEXT_REPLY",
            SlaClockKind::Resolution => "RESOLUTION",
        }
    }

    fn from_stored(s: &str) -> Result<Self> {
        [
            SlaClockKind::FirstReply,
            SlaClockKind::NextReply,
            SlaClockKind::Resolution,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| Error::Internal(format!("unknown clock kind {s}")))
    }

    fn target(self, t: &policies::Target) -> Option<i64> {
        match self {
            SlaClockKind::FirstReply => t.first_reply,
            SlaClockKind::NextReply => t.next_reply,
            SlaClockKind::Resolution => t.resolution,
        }
    }
}

/// Where a clock is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlaClockState {
    /// Counting.
    Running,
    /// Stopped while the ticket is PENDING or ON_HOLD.
    Paused,
    /// Fulfilled (in time or late: see `breached`).
    Met,
}

impl SlaClockState {
    /// Stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaClockState::Running => "RUNNING",
            SlaClockState::Paused => "PAUSED",
            SlaClockState::Met => "MET",
        }
    }

    fn from_stored(s: &str) -> Result<Self> {
        [
            SlaClockState::Running,
            SlaClockState::Paused,
            SlaClockState::Met,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| Error::Internal(format!("unknown clock state {s}")))
    }
}

/// A clock row.
#[derive(Clone, Debug, QueryableByName)]
#[diesel(table_name = crm_core::schema::sla_clocks)]
pub struct ClockRow {
    pub id: String,
    pub ticket_id: String,
    pub policy_id: String,
    pub policy_name: String,
    pub kind: String,
    pub target_minutes: i64,
    /// JSON [`Spec`] snapshot, or `null` for calendar hours.
    pub calendar: String,
    pub warn_percent: i64,
    /// JSON `policies::Escalation` snapshot.
    pub escalation: String,
    pub state: String,
    pub started_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub warn_at: NaiveDateTime,
    pub paused_at: Option<NaiveDateTime>,
    pub paused_minutes: i64,
    pub met_at: Option<NaiveDateTime>,
    pub warned_at: Option<NaiveDateTime>,
    pub breached_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Stored for a due time a calendar never reaches (no working time within
/// its horizon).
fn never() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

impl ClockRow {
    /// The calendar it counts in.
    pub fn calendar(&self) -> Result<Calendar> {
        let spec: Option<Spec> = serde_json::from_str(&self.calendar)
            .map_err(|e| Error::Internal(format!("clock {} calendar: {e}", self.id)))?;
        match spec {
            None => Ok(Calendar::always()),
            Some(s) => Calendar::new(&s)
                .map_err(|(_, m)| Error::Internal(format!("clock {} calendar: {m}", self.id))),
        }
    }

    /// The state.
    pub fn state(&self) -> Result<SlaClockState> {
        SlaClockState::from_stored(&self.state)
    }

    fn open(&self) -> bool {
        self.state == SlaClockState::Running.as_str()
            || self.state == SlaClockState::Paused.as_str()
    }

    fn warn_minutes(&self) -> i64 {
        (self.target_minutes * self.warn_percent + 99) / 100
    }

    /// Sets `due_at` and `warn_at` from the start, target and paused time.
    fn recompute(&mut self) -> Result<()> {
        let cal = self.calendar()?;
        self.due_at = cal
            .add(self.started_at, self.target_minutes + self.paused_minutes)
            .unwrap_or_else(never);
        self.warn_at = cal
            .add(self.started_at, self.warn_minutes() + self.paused_minutes)
            .unwrap_or_else(never);
        Ok(())
    }

    /// Stops counting at `now`.
    fn pause(&mut self, now: NaiveDateTime) {
        if self.state == SlaClockState::Running.as_str() {
            self.state = SlaClockState::Paused.as_str().into();
            self.paused_at = Some(now);
        }
    }

    /// Counts again from `now`: the paused business time moves the due
    /// time.
    fn resume(&mut self, now: NaiveDateTime) -> Result<()> {
        if let Some(p) = self.paused_at.take() {
            self.paused_minutes += self.calendar()?.between(p, now);
            self.state = SlaClockState::Running.as_str().into();
            self.recompute()?;
        }
        Ok(())
    }

    /// Fulfilled at `now`.
    fn meet(&mut self, now: NaiveDateTime) -> Result<()> {
        self.resume(now)?;
        self.state = SlaClockState::Met.as_str().into();
        self.met_at = Some(now);
        Ok(())
    }

    /// The due time as of `now`: for a paused clock, when it would be due
    /// if it resumed now.
    pub fn due_as_of(&self, now: NaiveDateTime) -> Result<NaiveDateTime> {
        match (self.state()?, self.paused_at) {
            (SlaClockState::Paused, Some(p)) => {
                let cal = self.calendar()?;
                let paused = self.paused_minutes + cal.between(p, now);
                Ok(cal
                    .add(self.started_at, self.target_minutes + paused)
                    .unwrap_or_else(never))
            }
            _ => Ok(self.due_at),
        }
    }

    /// Business minutes counted so far (as of `now`).
    pub fn elapsed(&self, now: NaiveDateTime) -> Result<i64> {
        let end = match self.state()? {
            SlaClockState::Met => self.met_at.unwrap_or(now),
            SlaClockState::Paused => self.paused_at.unwrap_or(now),
            SlaClockState::Running => now,
        };
        Ok((self.calendar()?.between(self.started_at, end) - self.paused_minutes).max(0))
    }

    /// Whether it missed its target (as of `now`).
    pub fn breached(&self, now: NaiveDateTime) -> Result<bool> {
        if self.breached_at.is_some() {
            return Ok(true);
        }
        Ok(match self.state()? {
            SlaClockState::Met => self.met_at.is_some_and(|m| m > self.due_at),
            SlaClockState::Running => now >= self.due_at,
            SlaClockState::Paused => self.paused_at.is_some_and(|p| p >= self.due_at),
        })
    }
}

const COLS: &str = "id, ticket_id, policy_id, policy_name, kind, target_minutes, calendar, \
                    warn_percent, escalation, state, started_at, due_at, warn_at, paused_at, \
                    paused_minutes, met_at, warned_at, breached_at, created_at, updated_at";

/// The clocks of tickets, oldest first per ticket.
pub async fn of_tickets(conn: &mut Conn<'_>, ticket_ids: &[String]) -> Result<Vec<ClockRow>> {
    if ticket_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut s = Sql::new(format!("SELECT {COLS} FROM sla_clocks WHERE ticket_id IN "));
    s.bind_list(ticket_ids.iter().map(|t| Bind::from(t.as_str())))
        .push(" ORDER BY ticket_id, started_at, id");
    s.load(conn).await
}

/// One clock.
pub async fn get(conn: &mut Conn<'_>, id: &str) -> Result<Option<ClockRow>> {
    let mut s = Sql::new(format!("SELECT {COLS} FROM sla_clocks WHERE id = "));
    s.bind(id);
    Ok(s.load(conn).await?.into_iter().next())
}

/// Running clocks whose warning or breach is due at `now` and not yet
/// claimed (at most `limit`).
pub async fn due(conn: &mut Conn<'_>, now: NaiveDateTime, limit: i64) -> Result<Vec<ClockRow>> {
    let mut s = Sql::new(format!(
        "SELECT {COLS} FROM sla_clocks WHERE state = 'RUNNING' AND \
         ((warned_at IS NULL AND warn_at <= "
    ));
    s.bind(now)
        .push(") OR (breached_at IS NULL AND due_at <= ")
        .bind(now)
        .push(")) ORDER BY due_at, id LIMIT ")
        .bind(limit);
    s.load(conn).await
}

fn binds(c: &ClockRow) -> Vec<Bind> {
    vec![
        c.id.as_str().into(),
        c.ticket_id.as_str().into(),
        c.policy_id.as_str().into(),
        c.policy_name.as_str().into(),
        c.kind.as_str().into(),
        c.target_minutes.into(),
        c.calendar.as_str().into(),
        c.warn_percent.into(),
        c.escalation.as_str().into(),
        c.state.as_str().into(),
        c.started_at.into(),
        c.due_at.into(),
        c.warn_at.into(),
        Bind::Time(c.paused_at),
        c.paused_minutes.into(),
        Bind::Time(c.met_at),
        Bind::Time(c.warned_at),
        Bind::Time(c.breached_at),
        c.created_at.into(),
        c.updated_at.into(),
    ]
}

async fn insert(conn: &mut Conn<'_>, c: &ClockRow) -> Result<()> {
    let mut s = Sql::new(format!("INSERT INTO sla_clocks ({COLS}) VALUES "));
    s.bind_list(binds(c));
    s.execute(conn).await?;
    Ok(())
}

/// Writes what the ticket's own transaction changed (its state, target
/// and times; never the warning and breach claims, which the background
/// task owns).
async fn save(conn: &mut Conn<'_>, c: &ClockRow, now: NaiveDateTime) -> Result<()> {
    let mut s = Sql::new("UPDATE sla_clocks SET policy_id = ");
    s.bind(c.policy_id.as_str())
        .push(", policy_name = ")
        .bind(c.policy_name.as_str())
        .push(", target_minutes = ")
        .bind(c.target_minutes)
        .push(", calendar = ")
        .bind(c.calendar.as_str())
        .push(", warn_percent = ")
        .bind(c.warn_percent)
        .push(", escalation = ")
        .bind(c.escalation.as_str())
        .push(", state = ")
        .bind(c.state.as_str())
        .push(", due_at = ")
        .bind(c.due_at)
        .push(", warn_at = ")
        .bind(c.warn_at)
        .push(", paused_at = ")
        .bind(Bind::Time(c.paused_at))
        .push(", paused_minutes = ")
        .bind(c.paused_minutes)
        .push(", met_at = ")
        .bind(Bind::Time(c.met_at))
        .push(", updated_at = ")
        .bind(now)
        .push(" WHERE id = ")
        .bind(c.id.as_str());
    s.execute(conn).await?;
    Ok(())
}

/// What a policy gives a clock of `kind` for `ticket` (None: no target).
struct Snapshot {
    policy_id: String,
    policy_name: String,
    target: i64,
    calendar: String,
    warn_percent: i64,
    escalation: String,
}

async fn snapshot(
    conn: &mut Conn<'_>,
    policy: &PolicyRow,
    ticket: &TicketRow,
    kind: SlaClockKind,
) -> Result<Option<Snapshot>> {
    let Some(target) = policy
        .targets()?
        .iter()
        .find(|t| t.priority == ticket.priority)
        .and_then(|t| kind.target(t))
    else {
        return Ok(None);
    };
    let calendar = match &policy.calendar_id {
        Some(id) => {
            let row = super::calendars::get(conn, id).await?.ok_or_else(|| {
                Error::Internal(format!("policy {} names a missing calendar", policy.id))
            })?;
            serde_json::to_string(&Some(row.spec()?))
        }
        None => serde_json::to_string(&None::<Spec>),
    }
    .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Some(Snapshot {
        policy_id: policy.id.clone(),
        policy_name: policy.name.clone(),
        target,
        calendar,
        warn_percent: policy.warn_percent,
        escalation: policy.escalation.clone(),
    }))
}

async fn start(
    conn: &mut Conn<'_>,
    ticket: &TicketRow,
    kind: SlaClockKind,
    snap: Snapshot,
    now: NaiveDateTime,
) -> Result<()> {
    let mut c = ClockRow {
        id: ids::new_id("slc"),
        ticket_id: ticket.id.clone(),
        policy_id: snap.policy_id,
        policy_name: snap.policy_name,
        kind: kind.as_str().into(),
        target_minutes: snap.target,
        calendar: snap.calendar,
        warn_percent: snap.warn_percent,
        escalation: snap.escalation,
        state: SlaClockState::Running.as_str().into(),
        started_at: now,
        due_at: now,
        warn_at: now,
        paused_at: None,
        paused_minutes: 0,
        met_at: None,
        warned_at: None,
        breached_at: None,
        created_at: now,
        updated_at: now,
    };
    c.recompute()?;
    if paused(&ticket.status) {
        c.pause(now);
    }
    insert(conn, &c).await
}

fn paused(status: &str) -> bool {
    status == TicketStatus::Pending.as_str() || status == TicketStatus::OnHold.as_str()
}

fn done(status: &str) -> bool {
    status == TicketStatus::Solved.as_str() || status == TicketStatus::Closed.as_str()
}

/// Whether an agent has replied publicly on the ticket.
async fn replied(conn: &mut Conn<'_>, ticket_id: &str) -> Result<bool> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut s = Sql::new("SELECT COUNT(*) AS n FROM ticket_comments WHERE ticket_id = ");
    s.bind(ticket_id)
        .push(" AND internal = ")
        .bind(Bind::Bool(Some(false)))
        .push(" AND from_customer = ")
        .bind(Bind::Bool(Some(false)));
    Ok(s.load::<N>(conn).await?.first().is_some_and(|n| n.n > 0))
}

/// Brings the ticket's clocks in line with a write (`before` None: a new
/// ticket), in the writer's transaction, as of `now`.
pub async fn sync(
    conn: &mut Conn<'_>,
    before: Option<&TicketRow>,
    after: &TicketRow,
    now: NaiveDateTime,
) -> Result<()> {
    if after.deleted_at.is_some() {
        return Ok(());
    }
    let Some(b) = before else {
        if done(&after.status) {
            return Ok(());
        }
        if let Some(p) = policies::matching(conn, after).await? {
            for kind in [SlaClockKind::FirstReply, SlaClockKind::Resolution] {
                if let Some(s) = snapshot(conn, &p, after, kind).await? {
                    start(conn, after, kind, s, now).await?;
                }
            }
        }
        return Ok(());
    };
    let all = of_tickets(conn, std::slice::from_ref(&after.id)).await?;
    let mut open: Vec<ClockRow> = all.iter().filter(|c| c.open()).cloned().collect();
    let mut changed = vec![false; open.len()];
    // 1. New attributes: the policy is applied again; unmet clocks take
    // its targets (from their own start) where it has one.
    let rematch = b.priority != after.priority
        || b.channel != after.channel
        || b.group_id != after.group_id
        || b.ticket_type != after.ticket_type
        || b.tags != after.tags;
    let policy = if rematch && !done(&after.status) {
        policies::matching(conn, after).await?
    } else {
        None
    };
    if rematch && !done(&after.status) {
        for (i, c) in open.iter_mut().enumerate() {
            let kind = SlaClockKind::from_stored(&c.kind)?;
            let snap = match &policy {
                Some(p) => snapshot(conn, p, after, kind).await?,
                None => None,
            };
            match snap {
                Some(s) => {
                    c.policy_id = s.policy_id;
                    c.policy_name = s.policy_name;
                    c.target_minutes = s.target;
                    c.calendar = s.calendar;
                    c.warn_percent = s.warn_percent;
                    c.escalation = s.escalation;
                    c.recompute()?;
                }
                // No target under the new match: the clock keeps the
                // target it was given (a breach's own escalation must
                // not end the clock it escalates).
                None => continue,
            }
            changed[i] = true;
        }
    }
    // 2. Status moves: pause, resume, meet.
    let (was, is) = (b.status.as_str(), after.status.as_str());
    for (i, c) in open.iter_mut().enumerate() {
        if !c.open() {
            continue;
        }
        if done(is) && !done(was) {
            c.meet(now)?;
            changed[i] = true;
        } else if paused(is) && !paused(was) {
            c.pause(now);
            changed[i] = true;
        } else if paused(was) && !paused(is) {
            c.resume(now)?;
            changed[i] = true;
        }
    }
    for (i, c) in open.iter().enumerate() {
        if changed[i] {
            save(conn, c, now).await?;
        }
    }
    // 3. A ticket that now matches a policy gets the clocks it never had.
    if let Some(p) = &policy {
        let had = |k: SlaClockKind| all.iter().any(|c| c.kind == k.as_str());
        if !had(SlaClockKind::FirstReply)
            && !replied(conn, &after.id).await?
            && let Some(s) = snapshot(conn, p, after, SlaClockKind::FirstReply).await?
        {
            start(conn, after, SlaClockKind::FirstReply, s, now).await?;
        }
        if !had(SlaClockKind::Resolution)
            && let Some(s) = snapshot(conn, p, after, SlaClockKind::Resolution).await?
        {
            start(conn, after, SlaClockKind::Resolution, s, now).await?;
        }
    }
    Ok(())
}

/// A public reply by an agent: the running reply clocks are met.
pub async fn public_reply(conn: &mut Conn<'_>, ticket_id: &str, now: NaiveDateTime) -> Result<()> {
    for mut c in of_tickets(conn, &[ticket_id.to_owned()]).await? {
        let reply = c.kind == SlaClockKind::FirstReply.as_str()
            || c.kind == SlaClockKind::NextReply.as_str();
        if reply && c.open() {
            c.meet(now)?;
            save(conn, &c, now).await?;
        }
    }
    Ok(())
}

/// A message from the customer: unless a reply clock already runs, a
/// NEXT_REPLY clock starts from the policy matching the ticket now.
pub async fn customer_message(
    conn: &mut Conn<'_>,
    ticket: &TicketRow,
    now: NaiveDateTime,
) -> Result<()> {
    if done(&ticket.status) {
        return Ok(());
    }
    let waiting = of_tickets(conn, std::slice::from_ref(&ticket.id))
        .await?
        .iter()
        .any(|c| c.open() && c.kind != SlaClockKind::Resolution.as_str());
    if waiting {
        return Ok(());
    }
    if let Some(p) = policies::matching(conn, ticket).await?
        && let Some(s) = snapshot(conn, &p, ticket, SlaClockKind::NextReply).await?
    {
        start(conn, ticket, SlaClockKind::NextReply, s, now).await?;
    }
    Ok(())
}

/// A clock as the API shows it.
#[derive(SimpleObject, Clone, Debug)]
pub struct SlaClock {
    /// `slc_…`
    pub id: ID,
    /// What it measures.
    pub kind: SlaClockKind,
    /// Where it is.
    pub state: SlaClockState,
    /// The policy that set its target (it may have changed or gone since:
    /// the clock keeps what it was given).
    pub policy_id: ID,
    /// That policy's name then.
    pub policy_name: String,
    /// Target, in minutes (business minutes unless `businessHours` is
    /// false).
    pub target_minutes: i64,
    /// Whether it counts in a business calendar (false: around the clock).
    pub business_hours: bool,
    /// When it started counting.
    pub started_at: DateTime<Utc>,
    /// When it is (or was) due; while paused, when it would be due if it
    /// resumed now.
    pub due_at: DateTime<Utc>,
    /// Business minutes counted so far, pauses excluded.
    pub elapsed_minutes: i64,
    /// Business minutes spent paused (they moved the due time).
    pub paused_minutes: i64,
    /// True while the ticket is PENDING or ON_HOLD.
    pub paused: bool,
    /// When it was met.
    pub met_at: Option<DateTime<Utc>>,
    /// Whether it missed (or has passed) its target.
    pub breached: bool,
    /// When the warning went out.
    pub warned_at: Option<DateTime<Utc>>,
    /// When the breach went out.
    pub breached_at: Option<DateTime<Utc>>,
}

impl SlaClock {
    /// The API view of `c` as of `now`.
    pub fn of(c: &ClockRow, now: NaiveDateTime) -> Result<SlaClock> {
        let state = c.state()?;
        Ok(SlaClock {
            id: c.id.clone().into(),
            kind: SlaClockKind::from_stored(&c.kind)?,
            state,
            policy_id: c.policy_id.clone().into(),
            policy_name: c.policy_name.clone(),
            target_minutes: c.target_minutes,
            business_hours: c.calendar != "null",
            started_at: c.started_at.and_utc(),
            due_at: c.due_as_of(now)?.and_utc(),
            elapsed_minutes: c.elapsed(now)?,
            paused_minutes: c.paused_minutes
                + match (state, c.paused_at) {
                    (SlaClockState::Paused, Some(p)) => c.calendar()?.between(p, now),
                    _ => 0,
                },
            paused: state == SlaClockState::Paused,
            met_at: c.met_at.map(|t| t.and_utc()),
            breached: c.breached(now)?,
            warned_at: c.warned_at.map(|t| t.and_utc()),
            breached_at: c.breached_at.map(|t| t.and_utc()),
        })
    }
}
