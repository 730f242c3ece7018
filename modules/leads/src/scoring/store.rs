//! Lead scores in the database and the arithmetic behind them: fit from
//! the active fit rules, engagement from events with exponential decay,
//! the combined score and the grade.
//!
//! Every write first makes sure the lead's `lead_scores` row exists and
//! locks it (a no-op `UPDATE`: a row lock on PostgreSQL; SQLite serialises
//! writers anyway), then reads and writes it, so a re-score, an event and
//! the decay task never lose one another's update.

use chrono::NaiveDateTime;
use crm_core::db::Conn;
use crm_core::entity::sql::{Bind, Sql};
use crm_core::error::Result;
use crm_core::ids;
use crm_core::schema::{lead_scores, scoring_settings};
use crm_customers::values::SizeBand;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::rules::{self, RuleRow};
use crate::leads::repo::{DEF as LEAD_DEF, LeadRow};
use crate::leads::service::points as contact_points;
use crate::values::{EngagementEvent, LeadGrade, ScoringField, ScoringOperator, ScoringRuleKind};

/// Mail providers anyone can sign up with (FREE_MAIL).
pub const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.de",
    "ymail.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "outlook.com",
    "live.com",
    "msn.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "t-online.de",
    "mail.com",
    "mail.ru",
    "yandex.ru",
    "yandex.com",
    "proton.me",
    "protonmail.com",
    "tutanota.com",
    "zoho.com",
    "fastmail.com",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "libero.it",
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
];

/// Scoring settings: the engagement half-life and the grade thresholds.
#[derive(Clone, Debug, QueryableByName)]
#[diesel(table_name = scoring_settings)]
pub struct Settings {
    pub id: String,
    pub half_life_days: i64,
    pub grade_a: i64,
    pub grade_b: i64,
    pub grade_c: i64,
    pub grade_d: i64,
    /// The last decay period (hours since the epoch) a replica claimed.
    pub decay_period: Option<i64>,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

/// The id of the one settings row.
pub const SETTINGS_ID: &str = "default";

impl Default for Settings {
    /// What applies until the settings are first changed.
    fn default() -> Self {
        Settings {
            id: SETTINGS_ID.into(),
            half_life_days: 30,
            grade_a: 80,
            grade_b: 60,
            grade_c: 40,
            grade_d: 20,
            decay_period: None,
            updated_at: ids::now(),
            version: 1,
        }
    }
}

impl Settings {
    /// The grade of a combined score.
    pub fn grade(&self, score: i64) -> LeadGrade {
        if score >= self.grade_a {
            LeadGrade::A
        } else if score >= self.grade_b {
            LeadGrade::B
        } else if score >= self.grade_c {
            LeadGrade::C
        } else if score >= self.grade_d {
            LeadGrade::D
        } else {
            LeadGrade::F
        }
    }

    /// How much of an engagement at `from` is left at `to` (1 when `to`
    /// is not later).
    pub fn decay(&self, from: NaiveDateTime, to: NaiveDateTime) -> f64 {
        if to <= from {
            return 1.0;
        }
        let secs = (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        0.5f64.powf(secs / (self.half_life_days as f64 * 86_400.0))
    }
}

/// The settings in force (the defaults until first changed).
pub async fn settings(conn: &mut Conn<'_>) -> Result<Settings> {
    let mut s = Sql::new(
        "SELECT id, half_life_days, grade_a, grade_b, grade_c, grade_d, decay_period, \
         updated_at, version FROM scoring_settings WHERE id = ",
    );
    s.bind(SETTINGS_ID);
    Ok(s.load::<Settings>(conn).await?.pop().unwrap_or_default())
}

/// Creates the settings row with the defaults unless it exists.
pub async fn ensure_settings(conn: &mut Conn<'_>) -> Result<()> {
    let d = Settings::default();
    let mut s = Sql::new(
        "INSERT INTO scoring_settings (id, half_life_days, grade_a, grade_b, grade_c, grade_d, \
         decay_period, updated_at, version) VALUES (",
    );
    s.bind(SETTINGS_ID)
        .push(", ")
        .bind(d.half_life_days)
        .push(", ")
        .bind(d.grade_a)
        .push(", ")
        .bind(d.grade_b)
        .push(", ")
        .bind(d.grade_c)
        .push(", ")
        .bind(d.grade_d)
        .push(", NULL, ")
        .bind(d.updated_at)
        .push(", 1) ON CONFLICT (id) DO NOTHING");
    s.execute(conn).await?;
    Ok(())
}

/// One rule's part in a score.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// The rule's id.
    pub rule_id: String,
    /// The rule's name when it scored.
    pub rule: String,
    /// Points: a fit rule's as configured; an engagement rule's as of the
    /// row's `engagement_at`.
    pub points: f64,
}

/// What a score is made of (stored as `lead_scores.explanation`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Explanation {
    /// Fit rules that matched.
    #[serde(default)]
    pub fit: Vec<Part>,
    /// Engagement rules that gave points, one part per rule.
    #[serde(default)]
    pub engagement: Vec<Part>,
}

/// A lead's stored scores.
#[derive(Clone, Debug, QueryableByName)]
#[diesel(table_name = lead_scores)]
pub struct ScoreRow {
    pub lead_id: String,
    /// 0–100.
    pub fit: i64,
    /// 0–100, as of `engagement_at`.
    pub engagement: f64,
    pub engagement_at: Option<NaiveDateTime>,
    /// Combined score when last written (for filters).
    pub score: i64,
    /// Grade when last written (for filters).
    pub grade: String,
    pub explanation: String,
    pub updated_at: NaiveDateTime,
}

const SCORE_COLUMNS: &str =
    "lead_id, fit, engagement, engagement_at, score, grade, explanation, updated_at";

impl ScoreRow {
    /// Its explanation.
    pub fn explanation(&self) -> Explanation {
        serde_json::from_str(&self.explanation).unwrap_or_default()
    }

    /// Engagement at `t` (0 without any).
    pub fn engagement_at_time(&self, s: &Settings, t: NaiveDateTime) -> f64 {
        match self.engagement_at {
            Some(at) => self.engagement * s.decay(at, t),
            None => 0.0,
        }
    }
}

/// A lead's scores as of one moment.
#[derive(Clone, Debug)]
pub struct Scores {
    /// 0–100.
    pub fit: i64,
    /// 0–100, decayed to the moment, rounded.
    pub engagement: i64,
    /// `fit + engagement`, at most 100.
    pub score: i64,
    pub grade: LeadGrade,
    /// Each rule's part: fit rules as configured, engagement rules
    /// decayed to the moment (2 decimals).
    pub fit_parts: Vec<Part>,
    pub engagement_parts: Vec<Part>,
}

/// The combined score: fit plus engagement (rounded), at most 100.
pub fn combined(fit: i64, engagement: f64) -> i64 {
    (fit + engagement.round() as i64).clamp(0, 100)
}

fn two_decimals(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The scores of a stored row (None: a lead never scored) as of `t`.
pub fn scores_at(row: Option<&ScoreRow>, s: &Settings, t: NaiveDateTime) -> Scores {
    let Some(row) = row else {
        return Scores {
            fit: 0,
            engagement: 0,
            score: 0,
            grade: s.grade(0),
            fit_parts: Vec::new(),
            engagement_parts: Vec::new(),
        };
    };
    let e = row.engagement_at_time(s, t);
    let factor = row.engagement_at.map_or(1.0, |at| s.decay(at, t));
    let x = row.explanation();
    let score = combined(row.fit, e);
    Scores {
        fit: row.fit,
        engagement: e.round() as i64,
        score,
        grade: s.grade(score),
        fit_parts: x.fit,
        engagement_parts: x
            .engagement
            .into_iter()
            .map(|p| Part {
                points: two_decimals(p.points * factor),
                ..p
            })
            .filter(|p| p.points != 0.0)
            .collect(),
    }
}

fn band_rank(stored: &str) -> Option<usize> {
    const ORDER: [SizeBand; 5] = [
        SizeBand::Micro,
        SizeBand::Small,
        SizeBand::Medium,
        SizeBand::Large,
        SizeBand::Enterprise,
    ];
    ORDER.iter().position(|b| b.as_text() == stored)
}

fn domain(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_lowercase())
}

/// Whether fit rule `rule` matches `lead`.
pub fn matches(rule: &RuleRow, lead: &LeadRow) -> bool {
    let (Some(field), Some(op)) = (
        rule.field.as_deref().and_then(ScoringField::parse),
        rule.operator.as_deref().and_then(ScoringOperator::parse),
    ) else {
        return false;
    };
    let values = rule.values();
    if field == ScoringField::Email {
        let domains: Vec<String> = contact_points(&lead.emails)
            .iter()
            .filter_map(|p| domain(&p.value))
            .collect();
        return match op {
            ScoringOperator::Present => !domains.is_empty(),
            ScoringOperator::FreeMail => domains.iter().any(|d| FREE_MAIL.contains(&d.as_str())),
            ScoringOperator::EmailDomainIn => domains.iter().any(|d| values.contains(d)),
            _ => false,
        };
    }
    if field == ScoringField::Phone {
        return op == ScoringOperator::Present && !contact_points(&lead.phones).is_empty();
    }
    let value: Option<&str> = match field {
        ScoringField::Industry => lead.industry.as_deref(),
        ScoringField::SizeBand => lead.size_band.as_deref(),
        ScoringField::Country => lead.country.as_deref(),
        ScoringField::Region => lead.region.as_deref(),
        ScoringField::City => lead.city.as_deref(),
        ScoringField::Source => Some(lead.source.as_str()),
        ScoringField::Title => lead.title.as_deref(),
        ScoringField::Company => lead.company.as_deref(),
        ScoringField::Website => lead.website.as_deref(),
        ScoringField::Email | ScoringField::Phone => None,
    };
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return false;
    };
    let same = |v: &String| v.to_lowercase() == value.to_lowercase();
    match op {
        ScoringOperator::Present => true,
        ScoringOperator::In | ScoringOperator::Equals => values.iter().any(same),
        ScoringOperator::NotIn => !values.iter().any(same),
        ScoringOperator::AtLeast => {
            match (band_rank(value), values.first().and_then(|v| band_rank(v))) {
                (Some(have), Some(least)) => have >= least,
                _ => false,
            }
        }
        ScoringOperator::EmailDomainIn | ScoringOperator::FreeMail => false,
    }
}

/// The fit score of `lead` under `rules` (the active fit rules), 0–100,
/// and the rules that matched.
pub fn fit_of(rules: &[RuleRow], lead: &LeadRow) -> (i64, Vec<Part>) {
    let parts: Vec<Part> = rules
        .iter()
        .filter(|r| matches(r, lead))
        .map(|r| Part {
            rule_id: r.id.clone(),
            rule: r.name.clone(),
            points: r.points as f64,
        })
        .collect();
    let sum: i64 = parts.iter().map(|p| p.points as i64).sum();
    (sum.clamp(0, 100), parts)
}

/// Makes sure `lead_id` has a scores row, locks it and reads it; true
/// when the row is new.
async fn locked(conn: &mut Conn<'_>, lead_id: &str) -> Result<(ScoreRow, bool)> {
    let mut s = Sql::new(format!(
        "INSERT INTO lead_scores ({SCORE_COLUMNS}) VALUES ("
    ));
    s.bind(lead_id)
        .push(", 0, ")
        .bind(Bind::Float(Some(0.0)))
        .push(", NULL, 0, ")
        .bind(LeadGrade::F.as_str())
        .push(", '{}', ")
        .bind(ids::now())
        .push(") ON CONFLICT (lead_id) DO NOTHING");
    let new = s.execute(conn).await? > 0;
    let mut lock = Sql::new("UPDATE lead_scores SET lead_id = lead_id WHERE lead_id = ");
    lock.bind(lead_id);
    lock.execute(conn).await?;
    let mut read = Sql::new(format!(
        "SELECT {SCORE_COLUMNS} FROM lead_scores WHERE lead_id = "
    ));
    read.bind(lead_id);
    let row = read
        .load::<ScoreRow>(conn)
        .await?
        .pop()
        .ok_or_else(|| crm_core::Error::Internal(format!("no scores row for {lead_id}")))?;
    Ok((row, new))
}

/// Writes `row` back, with its combined score and grade as of now.
async fn write(conn: &mut Conn<'_>, s: &Settings, row: &ScoreRow, x: &Explanation) -> Result<()> {
    let now = ids::now();
    let score = combined(row.fit, row.engagement_at_time(s, now));
    let mut q = Sql::new("UPDATE lead_scores SET fit = ");
    q.bind(row.fit)
        .push(", engagement = ")
        .bind(Bind::Float(Some(row.engagement)))
        .push(", engagement_at = ")
        .bind(Bind::Time(row.engagement_at))
        .push(", score = ")
        .bind(score)
        .push(", grade = ")
        .bind(s.grade(score).as_str())
        .push(", explanation = ")
        .bind(serde_json::to_string(x).unwrap_or_else(|_| "{}".into()))
        .push(", updated_at = ")
        .bind(now)
        .push(" WHERE lead_id = ")
        .bind(row.lead_id.as_str());
    q.execute(conn).await?;
    Ok(())
}

/// The stored scores of some leads.
pub async fn rows_of(conn: &mut Conn<'_>, lead_ids: &[String]) -> Result<Vec<ScoreRow>> {
    let mut s = Sql::new(format!(
        "SELECT {SCORE_COLUMNS} FROM lead_scores WHERE lead_id IN "
    ));
    s.bind_list(lead_ids.iter().map(|i| Bind::from(i.as_str())));
    s.load::<ScoreRow>(conn).await
}

/// Scores `lead` against the active fit rules, in the caller's
/// transaction (the lead's create, update or import row).
pub async fn refresh_fit(conn: &mut Conn<'_>, lead: &LeadRow) -> Result<()> {
    let fit_rules = rules::all(conn, Some(ScoringRuleKind::Fit), false).await?;
    let s = settings(conn).await?;
    let (mut row, new) = locked(conn, &lead.id).await?;
    let (fit, parts) = fit_of(&fit_rules, lead);
    if !new && row.fit == fit && row.explanation().fit == parts {
        return Ok(());
    }
    row.fit = fit;
    let mut x = row.explanation();
    x.fit = parts;
    write(conn, &s, &row, &x).await
}

/// Leads scored per statement batch by [`rescore_all`].
const BATCH: i64 = 500;

/// Scores every lead (binned ones too) against the active fit rules but
/// `without`, in the caller's transaction: run when fit rules change.
pub async fn rescore_all(conn: &mut Conn<'_>, without: Option<&str>) -> Result<usize> {
    let fit_rules: Vec<RuleRow> = rules::all(conn, Some(ScoringRuleKind::Fit), false)
        .await?
        .into_iter()
        .filter(|r| Some(r.id.as_str()) != without)
        .collect();
    let s = settings(conn).await?;
    let cols: Vec<&str> = LEAD_DEF.columns.iter().map(|c| c.name).collect();
    let cols = cols.join(", ");
    let mut after = String::new();
    let mut n = 0;
    loop {
        let mut q = Sql::new(format!("SELECT {cols} FROM leads WHERE id > "));
        q.bind(after.as_str())
            .push(" ORDER BY id LIMIT ")
            .bind(BATCH);
        let leads = q.load::<LeadRow>(conn).await?;
        let Some(last) = leads.last() else {
            return Ok(n);
        };
        after = last.id.clone();
        for lead in &leads {
            let (mut row, _) = locked(conn, &lead.id).await?;
            let (fit, parts) = fit_of(&fit_rules, lead);
            row.fit = fit;
            let mut x = row.explanation();
            x.fit = parts;
            write(conn, &s, &row, &x).await?;
            n += 1;
        }
    }
}

/// Gives `lead_id` the points of every active engagement rule for
/// `event`, as of `at` (not later than now), in the caller's transaction.
/// Returns the points given (0 when no rule is for the event).
pub async fn engage(
    conn: &mut Conn<'_>,
    lead_id: &str,
    event: EngagementEvent,
    at: NaiveDateTime,
) -> Result<i64> {
    let for_event: Vec<RuleRow> = rules::all(conn, Some(ScoringRuleKind::Engagement), false)
        .await?
        .into_iter()
        .filter(|r| r.event.as_deref() == Some(event.as_str()))
        .collect();
    if for_event.is_empty() {
        return Ok(0);
    }
    let at = at.min(ids::now());
    let s = settings(conn).await?;
    let (mut row, first) = locked(conn, lead_id).await?;
    let mut x = row.explanation();
    // Everything is brought to the later of the stored time and the
    // event's, so a back-dated event adds what is left of its points.
    let base = row.engagement_at.map_or(at, |t| t.max(at));
    let old = row.engagement_at.map_or(1.0, |t| s.decay(t, base));
    let new = s.decay(at, base);
    for p in &mut x.engagement {
        p.points *= old;
    }
    let mut total = row.engagement * old;
    let mut given = 0;
    for r in &for_event {
        let pts = r.points as f64 * new;
        total += pts;
        given += r.points;
        match x.engagement.iter_mut().find(|p| p.rule_id == r.id) {
            Some(p) => {
                p.points += pts;
                p.rule = r.name.clone();
            }
            None => x.engagement.push(Part {
                rule_id: r.id.clone(),
                rule: r.name.clone(),
                points: pts,
            }),
        }
    }
    if first {
        // A lead scored for the first time here gets its fit as well.
        if let Some(lead) = lead_row(conn, lead_id).await? {
            let fit_rules = rules::all(conn, Some(ScoringRuleKind::Fit), false).await?;
            let (fit, parts) = fit_of(&fit_rules, &lead);
            row.fit = fit;
            x.fit = parts;
        }
    }
    row.engagement = total.clamp(0.0, 100.0);
    row.engagement_at = Some(base);
    write(conn, &s, &row, &x).await?;
    Ok(given)
}

async fn lead_row(conn: &mut Conn<'_>, id: &str) -> Result<Option<LeadRow>> {
    let cols: Vec<&str> = LEAD_DEF.columns.iter().map(|c| c.name).collect();
    let mut q = Sql::new(format!("SELECT {} FROM leads WHERE id = ", cols.join(", ")));
    q.bind(id);
    Ok(q.load::<LeadRow>(conn).await?.pop())
}

/// Brings every engaged lead's stored engagement to `as_of` (rows already
/// at or after it stay), with its score and grade, in the caller's
/// transaction; returns how many leads changed. Engagement below 0.005
/// becomes 0.
pub async fn decay(conn: &mut Conn<'_>, as_of: NaiveDateTime) -> Result<usize> {
    let s = settings(conn).await?;
    let mut lock = Sql::new(
        "UPDATE lead_scores SET lead_id = lead_id WHERE engagement > 0 AND engagement_at < ",
    );
    lock.bind(as_of);
    lock.execute(conn).await?;
    let mut q = Sql::new(format!(
        "SELECT {SCORE_COLUMNS} FROM lead_scores WHERE engagement > 0 AND engagement_at < "
    ));
    q.bind(as_of).push(" ORDER BY lead_id");
    let rows = q.load::<ScoreRow>(conn).await?;
    let n = rows.len();
    for mut row in rows {
        let f = row.engagement_at.map_or(1.0, |t| s.decay(t, as_of));
        let mut x = row.explanation();
        for p in &mut x.engagement {
            p.points *= f;
        }
        x.engagement.retain(|p| p.points.abs() >= 0.005);
        row.engagement *= f;
        if row.engagement < 0.005 {
            row.engagement = 0.0;
            x.engagement.clear();
        }
        row.engagement_at = Some(as_of);
        write(conn, &s, &row, &x).await?;
    }
    Ok(n)
}

/// A lead's fit score, 0–100 (None: never scored, e.g. no fit rule ever
/// existed since it was written), for other rules in the same process
/// such as assignment rules ("fit at least 50").
pub async fn fit_score(conn: &mut Conn<'_>, lead_id: &str) -> Result<Option<i64>> {
    Ok(rows_of(conn, &[lead_id.to_owned()])
        .await?
        .pop()
        .map(|r| r.fit))
}

/// A lead's scores now (fit, decayed engagement, combined, grade).
pub async fn scores_now(conn: &mut Conn<'_>, lead_id: &str) -> Result<Scores> {
    let s = settings(conn).await?;
    let row = rows_of(conn, &[lead_id.to_owned()]).await?.pop();
    Ok(scores_at(row.as_ref(), &s, ids::now()))
}

/// Writes every lead's stored score and grade again under the current
/// settings, in the caller's transaction (after the thresholds or the
/// half-life changed).
pub async fn regrade_all(conn: &mut Conn<'_>) -> Result<usize> {
    let s = settings(conn).await?;
    let mut after = String::new();
    let mut n = 0;
    loop {
        let mut q = Sql::new(format!(
            "SELECT {SCORE_COLUMNS} FROM lead_scores WHERE lead_id > "
        ));
        q.bind(after.as_str())
            .push(" ORDER BY lead_id LIMIT ")
            .bind(BATCH);
        let rows = q.load::<ScoreRow>(conn).await?;
        let Some(last) = rows.last() else {
            return Ok(n);
        };
        after = last.lead_id.clone();
        for row in &rows {
            write(conn, &s, row, &row.explanation()).await?;
            n += 1;
        }
    }
}
