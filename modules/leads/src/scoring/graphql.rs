//! Scoring over GraphQL: the rules and settings (marketing manages them;
//! access is the `ScoringRule` resource's, decided by core), a manual decay
//! run, and the per-request loader behind the `Lead` score fields.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use crm_core::access::{principal, row_filter};
use crm_core::app::App;
use crm_core::audit;
use crm_core::entity::resolve;
use crm_core::entity::sql::Sql;
use crm_core::error::{Checks, Error, Result};
use crm_core::graphql::patch as mu;
use crm_core::ids;
use serde_json::json;

use super::rules::{self, RuleFields, RuleRow, Rules};
use super::store::{self, Part, Scores, Settings};
use crate::values::{EngagementEvent, ScoringField, ScoringOperator, ScoringRuleKind};

/// A rule that adds (or takes away) points.
#[derive(SimpleObject, Clone, Debug)]
pub struct ScoringRule {
    /// `scr_…`
    pub id: ID,
    /// Name, shown in score explanations.
    pub name: String,
    /// FIT or ENGAGEMENT.
    pub kind: ScoringRuleKind,
    /// Inactive rules score nothing.
    pub active: bool,
    /// A fit rule's field.
    pub field: Option<ScoringField>,
    /// A fit rule's comparison.
    pub operator: Option<ScoringOperator>,
    /// A fit rule's values (normalised: size bands and sources as stored,
    /// countries upper case, domains lower case).
    pub values: Vec<String>,
    /// An engagement rule's event.
    pub event: Option<EngagementEvent>,
    /// Points, −100 to 100.
    pub points: i64,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

impl TryFrom<RuleRow> for ScoringRule {
    type Error = Error;

    fn try_from(r: RuleRow) -> Result<Self> {
        let values = r.values();
        Ok(ScoringRule {
            id: r.id.into(),
            name: r.name,
            kind: ScoringRuleKind::from_stored(&r.kind)?,
            active: r.active,
            field: r
                .field
                .as_deref()
                .map(ScoringField::from_stored)
                .transpose()?,
            operator: r
                .operator
                .as_deref()
                .map(ScoringOperator::from_stored)
                .transpose()?,
            values,
            event: r
                .event
                .as_deref()
                .map(EngagementEvent::from_stored)
                .transpose()?,
            points: r.points,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        })
    }
}

/// How engagement decays and scores become grades.
#[derive(SimpleObject, Clone, Debug)]
pub struct ScoringSettings {
    /// Engagement halves every this many days.
    pub half_life_days: i64,
    /// Lowest score graded A.
    pub grade_a: i64,
    /// Lowest score graded B.
    pub grade_b: i64,
    /// Lowest score graded C.
    pub grade_c: i64,
    /// Lowest score graded D (anything lower is F).
    pub grade_d: i64,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

impl From<Settings> for ScoringSettings {
    fn from(s: Settings) -> Self {
        ScoringSettings {
            half_life_days: s.half_life_days,
            grade_a: s.grade_a,
            grade_b: s.grade_b,
            grade_c: s.grade_c,
            grade_d: s.grade_d,
            version: s.version,
        }
    }
}

/// One rule's part in a lead's score.
#[derive(SimpleObject, Clone, Debug)]
pub struct ScoreContribution {
    /// The rule (it may have been deleted since it gave engagement
    /// points).
    pub rule_id: ID,
    /// Its name when it scored.
    pub rule: String,
    /// FIT or ENGAGEMENT.
    pub kind: ScoringRuleKind,
    /// A fit rule's points; an engagement rule's points decayed to now
    /// (2 decimals). The fit and engagement scores are these sums clamped
    /// to 0–100.
    pub points: f64,
}

/// The explanation of `s`: fit rules first, then engagement rules.
pub fn explanation(s: &Scores) -> Vec<ScoreContribution> {
    let part = |p: &Part, kind| ScoreContribution {
        rule_id: p.rule_id.clone().into(),
        rule: p.rule.clone(),
        kind,
        points: p.points,
    };
    s.fit_parts
        .iter()
        .map(|p| part(p, ScoringRuleKind::Fit))
        .chain(
            s.engagement_parts
                .iter()
                .map(|p| part(p, ScoringRuleKind::Engagement)),
        )
        .collect()
}

/// Loads the scores of the leads of one response in one statement.
pub struct ScoresByLead(App);

impl Loader<String> for ScoresByLead {
    type Value = Scores;
    type Error = Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Scores>> {
        let mut c = self.0.db.conn().await?;
        let s = store::settings(&mut c.conn()).await?;
        let rows = store::rows_of(&mut c.conn(), keys).await?;
        let now = ids::now();
        let mut out: HashMap<String, Scores> = keys
            .iter()
            .map(|k| (k.clone(), store::scores_at(None, &s, now)))
            .collect();
        for r in rows {
            out.insert(r.lead_id.clone(), store::scores_at(Some(&r), &s, now));
        }
        Ok(out)
    }
}

/// The per-request score loader (added by the module's `request_data`).
pub type ScoreLoader = DataLoader<ScoresByLead, HashMapCache>;

/// A fresh loader for one request.
pub fn loader(app: &App) -> ScoreLoader {
    DataLoader::with_cache(
        ScoresByLead(app.clone()),
        tokio::spawn,
        HashMapCache::default(),
    )
}

/// The scores of a lead the caller already holds (its row scope decided
/// that), as of now.
pub async fn scores_of(ctx: &Context<'_>, lead_id: &str) -> Result<Scores> {
    if let Some(l) = ctx.data_opt::<ScoreLoader>() {
        return Ok(l
            .load_one(lead_id.to_owned())
            .await?
            .unwrap_or_else(|| store::scores_at(None, &Settings::default(), ids::now())));
    }
    let app = ctx.data_unchecked::<App>();
    let mut c = app.db.conn().await?;
    store::scores_now(&mut c.conn(), lead_id).await
}

/// One scoring rule (NOT_FOUND if there is none).
pub async fn scoring_rule_by_id(ctx: &Context<'_>, id: &str) -> Result<ScoringRule> {
    resolve::get::<Rules>(ctx, id).await?.try_into()
}

/// Input for `createScoringRule`. A fit rule has `field`, `operator` and
/// (unless the operator takes none) `values`; an engagement rule has
/// `event`.
#[derive(InputObject)]
pub struct CreateScoringRuleInput {
    pub name: String,
    pub kind: ScoringRuleKind,
    /// Default: true.
    pub active: Option<bool>,
    pub field: Option<ScoringField>,
    pub operator: Option<ScoringOperator>,
    #[graphql(default)]
    pub values: Vec<String>,
    pub event: Option<EngagementEvent>,
    /// −100 to 100, not 0.
    pub points: i64,
}

/// Input for `updateScoringRule`: omitted fields stay, null clears (a
/// rule keeps its kind).
#[derive(InputObject)]
pub struct UpdateScoringRuleInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    pub active: Option<bool>,
    pub field: MaybeUndefined<ScoringField>,
    pub operator: MaybeUndefined<ScoringOperator>,
    pub values: Option<Vec<String>>,
    pub event: MaybeUndefined<EngagementEvent>,
    pub points: Option<i64>,
}

/// Input for `updateScoringSettings`: omitted fields stay.
#[derive(InputObject)]
pub struct UpdateScoringSettingsInput {
    /// The version you read.
    pub version: i64,
    /// 1 to 3650.
    pub half_life_days: Option<i64>,
    /// Thresholds: 100 ≥ A > B > C > D ≥ 0.
    pub grade_a: Option<i64>,
    pub grade_b: Option<i64>,
    pub grade_c: Option<i64>,
    pub grade_d: Option<i64>,
}

/// Scoring queries.
#[derive(Default)]
pub struct ScoringQuery;

#[Object]
impl ScoringQuery {
    /// The scoring rules, in creation order (of one kind if given;
    /// inactive ones unless `includeInactive` is false).
    async fn scoring_rules(
        &self,
        ctx: &Context<'_>,
        kind: Option<ScoringRuleKind>,
        #[graphql(default = true)] include_inactive: bool,
    ) -> Result<Vec<ScoringRule>> {
        row_filter(ctx, "ScoringRule", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        rules::all(&mut c.conn(), kind, include_inactive)
            .await?
            .into_iter()
            .map(ScoringRule::try_from)
            .collect()
    }

    /// One scoring rule.
    async fn scoring_rule(&self, ctx: &Context<'_>, id: ID) -> Result<ScoringRule> {
        scoring_rule_by_id(ctx, &id).await
    }

    /// The engagement half-life and the grade thresholds.
    async fn scoring_settings(&self, ctx: &Context<'_>) -> Result<ScoringSettings> {
        row_filter(ctx, "ScoringRule", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        Ok(store::settings(&mut c.conn()).await?.into())
    }
}

/// Scoring mutations.
#[derive(Default)]
pub struct ScoringMutation;

#[Object]
impl ScoringMutation {
    /// Creates a scoring rule; a fit rule re-scores every lead in the same
    /// transaction, an engagement rule scores events from now on.
    async fn create_scoring_rule(
        &self,
        ctx: &Context<'_>,
        input: CreateScoringRuleInput,
    ) -> Result<ScoringRule> {
        let fields = RuleFields {
            name: Some(input.name),
            kind: Some(input.kind),
            active: input.active,
            field: Some(input.field),
            operator: Some(input.operator),
            values: Some(input.values),
            event: Some(input.event),
            points: Some(input.points),
        };
        resolve::create::<Rules>(ctx, fields).await?.try_into()
    }

    /// Changes a scoring rule if `version` is current (fit rules: every
    /// lead re-scored in the same transaction; engagement points already
    /// given stay).
    async fn update_scoring_rule(
        &self,
        ctx: &Context<'_>,
        input: UpdateScoringRuleInput,
    ) -> Result<ScoringRule> {
        let fields = RuleFields {
            name: input.name,
            kind: None,
            active: input.active,
            field: mu(input.field),
            operator: mu(input.operator),
            values: input.values,
            event: mu(input.event),
            points: input.points,
        };
        resolve::update::<Rules>(ctx, &input.id, input.version, fields)
            .await?
            .try_into()
    }

    /// Deletes a scoring rule if `version` is current (a fit rule's points
    /// leave every lead's score in the same transaction; engagement points
    /// it gave stay and decay).
    async fn delete_scoring_rule(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<ID> {
        resolve::remove::<Rules>(ctx, &id, version).await
    }

    /// Changes the half-life or the grade thresholds if `version` is
    /// current; every lead's stored grade follows in the same transaction.
    async fn update_scoring_settings(
        &self,
        ctx: &Context<'_>,
        input: UpdateScoringSettingsInput,
    ) -> Result<ScoringSettings> {
        row_filter(ctx, "ScoringRule", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        let mut tx = app.db.begin().await?;
        store::ensure_settings(&mut tx.conn()).await?;
        let before = store::settings(&mut tx.conn()).await?;
        if before.version != input.version {
            return Err(Error::stale(
                "scoring settings",
                store::SETTINGS_ID,
                input.version,
            ));
        }
        let mut s = before.clone();
        let mut c = Checks::default();
        if let Some(h) = input.half_life_days {
            if (1..=3650).contains(&h) {
                s.half_life_days = h;
            } else {
                c.take::<()>(Err(Error::invalid("halfLifeDays", "must be 1 to 3650")))?;
            }
        }
        for (v, slot) in [
            (input.grade_a, &mut s.grade_a),
            (input.grade_b, &mut s.grade_b),
            (input.grade_c, &mut s.grade_c),
            (input.grade_d, &mut s.grade_d),
        ] {
            if let Some(v) = v {
                *slot = v;
            }
        }
        let ordered = s.grade_a <= 100
            && s.grade_a > s.grade_b
            && s.grade_b > s.grade_c
            && s.grade_c > s.grade_d
            && s.grade_d >= 0;
        if !ordered {
            c.take::<()>(Err(Error::invalid(
                "gradeA",
                "thresholds must satisfy 100 ≥ A > B > C > D ≥ 0",
            )))?;
        }
        c.finish()?;
        let mut q = Sql::new("UPDATE scoring_settings SET half_life_days = ");
        q.bind(s.half_life_days)
            .push(", grade_a = ")
            .bind(s.grade_a)
            .push(", grade_b = ")
            .bind(s.grade_b)
            .push(", grade_c = ")
            .bind(s.grade_c)
            .push(", grade_d = ")
            .bind(s.grade_d)
            .push(", updated_at = ")
            .bind(ids::now())
            .push(", version = version + 1 WHERE id = ")
            .bind(store::SETTINGS_ID)
            .push(" AND version = ")
            .bind(input.version);
        if q.execute(&mut tx.conn()).await? == 0 {
            return Err(Error::stale(
                "scoring settings",
                store::SETTINGS_ID,
                input.version,
            ));
        }
        let snap = |s: &Settings| {
            json!({
                "halfLifeDays": s.half_life_days,
                "gradeA": s.grade_a,
                "gradeB": s.grade_b,
                "gradeC": s.grade_c,
                "gradeD": s.grade_d,
            })
        };
        audit::record(
            &mut tx.conn(),
            &by.actor(),
            "ScoringSettings",
            store::SETTINGS_ID,
            "updated",
            &audit::diff(Some(&snap(&before)), Some(&snap(&s))),
        )
        .await?;
        store::regrade_all(&mut tx.conn()).await?;
        let after = store::settings(&mut tx.conn()).await?;
        app.commit(tx).await?;
        Ok(after.into())
    }

    /// Persists engagement decay as of `asOf` (default now; not in the
    /// future): every lead whose stored engagement is older is brought up
    /// to that time, with its stored score and grade. The hourly task does
    /// the same; this runs it at once. Returns how many leads changed.
    async fn apply_score_decay(
        &self,
        ctx: &Context<'_>,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<i64> {
        row_filter(ctx, "ScoringRule", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let now = ids::now();
        let at = as_of.map_or(now, |t| t.naive_utc());
        if at > now {
            return Err(Error::invalid("asOf", "must not be in the future"));
        }
        let mut tx = app.db.begin().await?;
        let n = store::decay(&mut tx.conn(), at).await?;
        app.commit(tx).await?;
        Ok(n as i64)
    }
}
