//! Business calendars, declared to the entity kit as shared configuration
//! (no owner, no recycle bin; writes versioned, audited and evented): a
//! name, an IANA time zone, working periods per weekday and holidays. The
//! arithmetic is [`super::calendar`]; a policy names a calendar, and its
//! definition is copied onto each clock a policy starts.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use crm_core::access::RowFilter;
use crm_core::db::{Conn, Tx};
use crm_core::entity::sql::Sql;
use crm_core::entity::{Column, Def, Entity, Kind, Scope, WriteCtx, resolve};
use crm_core::error::{Checks, Error, Result};
use crm_core::ids;
use diesel::QueryableByName;
use serde_json::{Value, json};

use super::calendar::{Calendar, Period, Spec, format_hm, parse_hm};

/// A calendar row.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = crm_core::schema::sla_calendars)]
pub struct CalendarRow {
    pub id: String,
    pub name: String,
    pub time_zone: String,
    /// JSON list of [`Period`].
    pub periods: String,
    /// JSON list of local dates.
    pub holidays: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

impl CalendarRow {
    /// The stored definition.
    pub fn spec(&self) -> Result<Spec> {
        let bad = |e: serde_json::Error| Error::Internal(format!("calendar {}: {e}", self.id));
        Ok(Spec {
            time_zone: self.time_zone.clone(),
            periods: serde_json::from_str(&self.periods).map_err(bad)?,
            holidays: serde_json::from_str(&self.holidays).map_err(bad)?,
        })
    }
}

/// Business calendars, declared to the kit.
pub struct Calendars;

/// The declaration of [`Calendars`].
pub const DEF: Def = Def {
    type_name: "BusinessCalendar",
    prefix: "cal",
    label: "business calendar",
    table: "sla_calendars",
    topic: crate::TOPIC,
    columns: &[
        Column::new("id", Kind::Text).api("id"),
        Column::text("name", "name").sort(),
        Column::text("time_zone", "timeZone"),
        Column::text("periods", "periods"),
        Column::text("holidays", "holidays"),
        Column::time("created_at", "createdAt"),
        Column::time("updated_at", "updatedAt"),
        Column::int("version", "version"),
    ],
    scope: Scope::Shared,
    soft_delete: None,
    custom_fields: false,
};

/// A day of the week.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

const WEEK: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// A working period of one weekday, local time.
#[derive(SimpleObject, Clone, Debug)]
pub struct WorkingPeriod {
    /// The weekday.
    pub weekday: Weekday,
    /// `HH:MM`, local.
    pub start: String,
    /// `HH:MM`, local (`24:00` is midnight at the day's end).
    pub end: String,
}

/// A working period as entered.
#[derive(InputObject, Clone, Debug)]
pub struct WorkingPeriodInput {
    /// The weekday.
    pub weekday: Weekday,
    /// `HH:MM`, local.
    pub start: String,
    /// `HH:MM`, local, after `start` on the same day (`24:00` at most: a
    /// period never crosses midnight).
    pub end: String,
}

/// When a team works: business hours for SLA clocks.
#[derive(SimpleObject, Clone, Debug)]
pub struct BusinessCalendar {
    /// `cal_…`
    pub id: ID,
    /// Unique name.
    pub name: String,
    /// IANA time zone the periods and holidays are in.
    pub time_zone: String,
    /// Working periods, Monday first.
    pub periods: Vec<WorkingPeriod>,
    /// Local dates without working time.
    pub holidays: Vec<NaiveDate>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

impl TryFrom<CalendarRow> for BusinessCalendar {
    type Error = Error;

    fn try_from(r: CalendarRow) -> Result<Self> {
        let spec = r.spec()?;
        let mut periods = spec.periods.clone();
        periods.sort_by_key(|p| (p.weekday, p.start));
        Ok(BusinessCalendar {
            id: r.id.into(),
            name: r.name,
            time_zone: r.time_zone,
            periods: periods
                .into_iter()
                .map(|p| WorkingPeriod {
                    weekday: WEEK[usize::from(p.weekday.min(6))],
                    start: format_hm(p.start),
                    end: format_hm(p.end),
                })
                .collect(),
            holidays: spec.holidays,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        })
    }
}

/// Fields of a calendar write; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct CalendarFields {
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub periods: Option<Vec<WorkingPeriodInput>>,
    pub holidays: Option<Vec<NaiveDate>>,
}

fn periods_of(c: &mut Checks, input: &[WorkingPeriodInput]) -> Result<Vec<Period>> {
    let mut out = Vec::new();
    for p in input {
        let weekday = WEEK.iter().position(|w| *w == p.weekday).unwrap_or(0) as u8;
        match (parse_hm(&p.start), parse_hm(&p.end)) {
            (Some(start), Some(end)) => out.push(Period {
                weekday,
                start,
                end,
            }),
            _ => {
                c.take::<()>(Err(Error::invalid(
                    "periods",
                    format!("{}–{} is not HH:MM–HH:MM", p.start, p.end),
                )))?;
            }
        }
    }
    Ok(out)
}

impl Entity for Calendars {
    const DEF: Def = DEF;
    type Row = CalendarRow;
    type Fields = CalendarFields;

    fn snapshot(r: &CalendarRow) -> Value {
        json!({
            "name": r.name,
            "timeZone": r.time_zone,
            "periods": serde_json::from_str::<Value>(&r.periods).unwrap_or_default(),
            "holidays": serde_json::from_str::<Value>(&r.holidays).unwrap_or_default(),
        })
    }

    fn blank() -> CalendarRow {
        let now = ids::now();
        CalendarRow {
            id: String::new(),
            name: String::new(),
            time_zone: "UTC".into(),
            periods: "[]".into(),
            holidays: "[]".into(),
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    async fn apply(
        w: &WriteCtx<'_>,
        _conn: &mut Conn<'_>,
        row: &mut CalendarRow,
        f: CalendarFields,
    ) -> Result<()> {
        let mut c = Checks::default();
        if w.creating {
            for (given, field) in [
                (f.name.is_some(), "name"),
                (f.time_zone.is_some(), "timeZone"),
                (f.periods.is_some(), "periods"),
            ] {
                if !given {
                    c.take::<()>(Err(Error::invalid(field, "is required")))?;
                }
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
        if let Some(tz) = f.time_zone {
            row.time_zone = tz.trim().to_owned();
        }
        if let Some(p) = &f.periods {
            if p.len() > 70 {
                c.take::<()>(Err(Error::invalid("periods", "at most 70 periods")))?;
            }
            let p = periods_of(&mut c, p)?;
            row.periods = serde_json::to_string(&p).unwrap_or_else(|_| "[]".into());
        }
        if let Some(mut h) = f.holidays {
            if h.len() > 2000 {
                c.take::<()>(Err(Error::invalid("holidays", "at most 2000 dates")))?;
            }
            h.sort_unstable();
            h.dedup();
            row.holidays = serde_json::to_string(&h).unwrap_or_else(|_| "[]".into());
        }
        std::mem::take(&mut c).finish()?;
        if let Err((field, m)) = Calendar::new(&row.spec()?) {
            c.take::<()>(Err(Error::invalid(field, m)))?;
        }
        c.finish()
    }

    /// A calendar in use by a policy cannot go (the policy would lose its
    /// hours): VALIDATION naming the policies.
    async fn before_purge(
        _app: &crm_core::App,
        _by: &crm_core::access::Principal,
        tx: &mut Tx,
        row: &CalendarRow,
    ) -> Result<()> {
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        let mut s = Sql::new("SELECT name FROM sla_policies WHERE calendar_id = ");
        s.bind(row.id.as_str()).push(" ORDER BY position");
        let users: Vec<String> = s
            .load::<Name>(&mut tx.conn())
            .await?
            .into_iter()
            .map(|n| n.name)
            .collect();
        if users.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(
                "id",
                format!(
                    "the calendar is used by SLA policies: {} (change them first)",
                    users.join(", ")
                ),
            ))
        }
    }
}

/// Every calendar, by name.
pub async fn all(conn: &mut Conn<'_>) -> Result<Vec<CalendarRow>> {
    let cols: Vec<&str> = DEF.columns.iter().map(|c| c.name).collect();
    let s = Sql::new(format!(
        "SELECT {} FROM sla_calendars ORDER BY name, id",
        cols.join(", ")
    ));
    s.load(conn).await
}

/// One calendar (calendars are shared configuration).
pub async fn get(conn: &mut Conn<'_>, id: &str) -> Result<Option<CalendarRow>> {
    crm_core::entity::store::get::<Calendars>(conn, &RowFilter::All, id).await
}

/// Input for `createBusinessCalendar`.
#[derive(InputObject)]
pub struct CreateBusinessCalendarInput {
    /// Unique name (1–100 characters).
    pub name: String,
    /// IANA time zone (`Asia/Shanghai`, `Europe/Berlin`, `UTC`).
    pub time_zone: String,
    /// Working periods (at least one).
    pub periods: Vec<WorkingPeriodInput>,
    /// Local dates without working time.
    #[graphql(default)]
    pub holidays: Vec<NaiveDate>,
}

/// Input for `updateBusinessCalendar`: omitted fields stay; lists replace.
/// Clocks already running keep the definition they started with.
#[derive(InputObject)]
pub struct UpdateBusinessCalendarInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub periods: Option<Vec<WorkingPeriodInput>>,
    pub holidays: Option<Vec<NaiveDate>>,
}

/// Calendar queries.
#[derive(Default)]
pub struct CalendarQuery;

#[Object]
impl CalendarQuery {
    /// Every business calendar, by name.
    async fn business_calendars(&self, ctx: &Context<'_>) -> Result<Vec<BusinessCalendar>> {
        crm_core::access::row_filter(ctx, DEF.type_name, "read").await?;
        let app = ctx.data_unchecked::<crm_core::App>();
        let mut c = app.db.conn().await?;
        all(&mut c.conn())
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    /// One business calendar.
    async fn business_calendar(&self, ctx: &Context<'_>, id: ID) -> Result<BusinessCalendar> {
        resolve::get::<Calendars>(ctx, &id).await?.try_into()
    }
}

/// Calendar mutations.
#[derive(Default)]
pub struct CalendarMutation;

#[Object]
impl CalendarMutation {
    /// Adds a business calendar.
    async fn create_business_calendar(
        &self,
        ctx: &Context<'_>,
        input: CreateBusinessCalendarInput,
    ) -> Result<BusinessCalendar> {
        let f = CalendarFields {
            name: Some(input.name),
            time_zone: Some(input.time_zone),
            periods: Some(input.periods),
            holidays: Some(input.holidays),
        };
        resolve::create::<Calendars>(ctx, f).await?.try_into()
    }

    /// Changes a calendar if `version` is current. Running clocks keep
    /// the hours they started with; clocks started later use the new ones.
    async fn update_business_calendar(
        &self,
        ctx: &Context<'_>,
        input: UpdateBusinessCalendarInput,
    ) -> Result<BusinessCalendar> {
        let f = CalendarFields {
            name: input.name,
            time_zone: input.time_zone,
            periods: input.periods,
            holidays: input.holidays,
        };
        resolve::update::<Calendars>(ctx, &input.id, input.version, f)
            .await?
            .try_into()
    }

    /// Deletes a calendar no policy uses, if `version` is current.
    async fn delete_business_calendar(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
    ) -> Result<ID> {
        resolve::remove::<Calendars>(ctx, &id, version).await
    }
}
