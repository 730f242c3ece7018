//! Pipelines and their stages, declared to the entity kit (shared
//! configuration: no owner, no recycle bin; writes versioned, audited and
//! evented like any record), with the rules of their fields.

use chrono::NaiveDateTime;
use crm_core::access::RowFilter;
use crm_core::db::Conn;
use crm_core::db_run;
use crm_core::entity::sql::{Bind, Sql};
use crm_core::entity::{Column, Def, Entity, Kind, WriteCtx, store};
use crm_core::error::{Checks, Error, Result};
use crm_core::ids;
use crm_core::schema::{opportunities, pipeline_stages, pipelines};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Map, Value, json};

use crate::values::{self, ForecastCategory, RequiredField, StageKind};

/// A pipeline row.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = pipelines)]
pub struct PipelineRow {
    pub id: String,
    pub name: String,
    pub position: i64,
    pub active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
    /// The pipeline contracts' renewal deals go to unless a contract names
    /// another (at most one, always active).
    pub renewals: bool,
}

/// A stage row.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = pipeline_stages)]
pub struct StageRow {
    pub id: String,
    pub pipeline_id: String,
    pub name: String,
    pub position: i64,
    pub probability: i64,
    pub forecast_category: String,
    pub kind: String,
    /// JSON array of API field names.
    pub required_fields: String,
    pub rotting_days: Option<i64>,
    pub active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
    /// JSON array of [`StagePrompt`]s.
    pub next_steps: String,
}

/// A next step a stage prompts: a task created on the timeline of every
/// deal that enters the stage, assigned to the deal's owner.
#[derive(
    async_graphql::SimpleObject,
    async_graphql::InputObject,
    Clone,
    Debug,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
)]
#[graphql(input_name = "StagePromptInput")]
#[serde(rename_all = "camelCase")]
pub struct StagePrompt {
    /// The task's title (1–200 characters).
    pub title: String,
    /// The task is due this many days after the deal enters the stage
    /// (0–365).
    pub due_in_days: i64,
}

/// Most prompts one stage may have.
pub const MAX_PROMPTS: usize = 10;

/// The stored prompts of a stage.
pub fn prompts(stored: &str) -> Result<Vec<StagePrompt>> {
    serde_json::from_str(stored)
        .map_err(|e| Error::Internal(format!("stored stage prompts are unreadable: {e}")))
}

/// Checks prompts as entered (every problem named) and trims their
/// titles.
fn check_prompts(v: Vec<StagePrompt>) -> Result<Vec<StagePrompt>> {
    if v.len() > MAX_PROMPTS {
        return Err(Error::invalid(
            "nextSteps",
            format!("at most {MAX_PROMPTS} prompts per stage"),
        ));
    }
    let mut c = Checks::default();
    let mut out = Vec::with_capacity(v.len());
    for (i, p) in v.into_iter().enumerate() {
        let title = p.title.trim().to_owned();
        if title.is_empty() || title.chars().count() > 200 {
            c.take::<()>(Err(Error::invalid(
                &format!("nextSteps[{i}].title"),
                "must be 1 to 200 characters",
            )))?;
        }
        if !(0..=365).contains(&p.due_in_days) {
            c.take::<()>(Err(Error::invalid(
                &format!("nextSteps[{i}].dueInDays"),
                "must be 0 to 365",
            )))?;
        }
        out.push(StagePrompt {
            title,
            due_in_days: p.due_in_days,
        });
    }
    c.finish()?;
    Ok(out)
}

/// Pipelines, declared to the entity kit.
pub struct Pipelines;

/// The declaration of [`Pipelines`].
pub const PIPELINE_DEF: Def = Def {
    type_name: "Pipeline",
    prefix: "pip",
    label: "pipeline",
    table: "pipelines",
    topic: crate::TOPIC,
    columns: &[
        Column::new("id", Kind::Text).api("id"),
        Column::text("name", "name").sort(),
        Column::int("position", "position").sort(),
        Column::new("active", Kind::Bool).api("active"),
        Column::time("created_at", "createdAt"),
        Column::time("updated_at", "updatedAt"),
        Column::int("version", "version"),
        Column::new("renewals", Kind::Bool).api("renewals"),
    ],
    scope: crm_core::entity::Scope::Shared,
    soft_delete: None,
    custom_fields: false,
};

/// Stages, declared to the entity kit.
pub struct Stages;

/// The declaration of [`Stages`].
pub const STAGE_DEF: Def = Def {
    type_name: "PipelineStage",
    prefix: "stg",
    label: "pipeline stage",
    table: "pipeline_stages",
    topic: crate::TOPIC,
    columns: &[
        Column::new("id", Kind::Text).api("id"),
        Column::text("pipeline_id", "pipelineId"),
        Column::text("name", "name"),
        Column::int("position", "position").sort(),
        Column::int("probability", "probability"),
        Column::text("forecast_category", "forecastCategory"),
        Column::text("kind", "kind"),
        Column::text("required_fields", "requiredFields"),
        Column::int("rotting_days", "rottingDays").nullable(),
        Column::new("active", Kind::Bool).api("active"),
        Column::time("created_at", "createdAt"),
        Column::time("updated_at", "updatedAt"),
        Column::int("version", "version"),
        Column::text("next_steps", "nextSteps"),
    ],
    scope: crm_core::entity::Scope::Shared,
    soft_delete: None,
    custom_fields: false,
};

/// Fields of a pipeline write; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct PipelineFields {
    pub name: Option<String>,
    pub position: Option<i64>,
    pub active: Option<bool>,
    pub renewals: Option<bool>,
}

/// Fields of a stage write; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct StageFields {
    /// Only on create: a stage stays in its pipeline.
    pub pipeline_id: Option<String>,
    pub name: Option<String>,
    pub position: Option<i64>,
    pub probability: Option<i64>,
    pub forecast_category: Option<ForecastCategory>,
    pub kind: Option<StageKind>,
    pub required_fields: Option<Vec<RequiredField>>,
    pub rotting_days: Option<Option<i64>>,
    pub active: Option<bool>,
    pub next_steps: Option<Vec<StagePrompt>>,
}

fn name(v: &str, field: &str) -> Result<String> {
    let s = v.trim();
    if s.is_empty() || s.chars().count() > 100 {
        return Err(Error::invalid(field, "must be 1 to 100 characters"));
    }
    Ok(s.to_owned())
}

/// Every pipeline, in position order (inactive ones too when asked).
pub async fn all_pipelines(conn: &mut Conn<'_>, inactive: bool) -> Result<Vec<PipelineRow>> {
    let mut s = Sql::new(
        "SELECT id, name, position, active, created_at, updated_at, version, renewals \
         FROM pipelines",
    );
    if !inactive {
        s.push(" WHERE active = ").bind(Bind::Bool(Some(true)));
    }
    s.push(" ORDER BY position, id");
    Sql::load::<PipelineRow>(&s, conn).await
}

/// The stages of some pipelines, in position order (inactive ones too
/// when asked).
pub async fn stages_of(
    conn: &mut Conn<'_>,
    pipeline_ids: &[String],
    inactive: bool,
) -> Result<Vec<StageRow>> {
    let cols: Vec<&str> = STAGE_DEF.columns.iter().map(|c| c.name).collect();
    let mut s = Sql::new(format!(
        "SELECT {} FROM pipeline_stages WHERE pipeline_id IN ",
        cols.join(", ")
    ));
    s.bind_list(pipeline_ids.iter().map(|p| Bind::from(p.as_str())));
    if !inactive {
        s.push(" AND active = ").bind(Bind::Bool(Some(true)));
    }
    s.push(" ORDER BY position, id");
    Sql::load::<StageRow>(&s, conn).await
}

/// One stage (configuration is readable by everyone who may read
/// pipelines, so no row scope applies).
pub async fn stage(conn: &mut Conn<'_>, id: &str) -> Result<Option<StageRow>> {
    store::get::<Stages>(conn, &RowFilter::All, id).await
}

/// The active pipeline flagged as the renewals pipeline, if any.
pub async fn renewals_pipeline(conn: &mut Conn<'_>) -> Result<Option<String>> {
    Ok(db_run!(conn, |c| pipelines::table
        .filter(pipelines::renewals.eq(true))
        .filter(pipelines::active.eq(true))
        .select(pipelines::id)
        .first::<String>(c)
        .await
        .optional())?)
}

/// One pipeline.
pub async fn pipeline(conn: &mut Conn<'_>, id: &str) -> Result<Option<PipelineRow>> {
    store::get::<Pipelines>(conn, &RowFilter::All, id).await
}

/// Whether any opportunity (binned ones too) is in the stage.
pub async fn stage_in_use(conn: &mut Conn<'_>, stage_id: &str) -> Result<bool> {
    let n: i64 = db_run!(conn, |c| opportunities::table
        .filter(opportunities::stage_id.eq(stage_id))
        .count()
        .get_result(c)
        .await)?;
    Ok(n > 0)
}

impl Entity for Pipelines {
    const DEF: Def = PIPELINE_DEF;
    type Row = PipelineRow;
    type Fields = PipelineFields;

    fn snapshot(r: &PipelineRow) -> Value {
        json!({"name": r.name, "position": r.position, "active": r.active, "renewals": r.renewals})
    }

    fn blank() -> PipelineRow {
        let now = ids::now();
        PipelineRow {
            id: String::new(),
            name: String::new(),
            position: 0,
            active: true,
            created_at: now,
            updated_at: now,
            version: 1,
            renewals: false,
        }
    }

    fn event_context(r: &PipelineRow) -> Option<Map<String, Value>> {
        Some(Map::from_iter([("pipelineId".into(), json!(r.id))]))
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut PipelineRow,
        f: PipelineFields,
    ) -> Result<()> {
        let mut c = Checks::default();
        if w.creating && f.name.is_none() {
            c.take::<()>(Err(Error::invalid("name", "is required")))?;
        }
        if let Some(v) = f.name
            && let Some(v) = c.take(name(&v, "name"))?
        {
            let id = row.id.clone();
            let taken: i64 = db_run!(conn, |c| pipelines::table
                .filter(pipelines::name.eq(&v))
                .filter(pipelines::id.ne(&id))
                .count()
                .get_result(c)
                .await)?;
            if taken > 0 {
                return Err(Error::Conflict(format!("a pipeline named {v} exists")));
            }
            row.name = v;
        }
        match f.position {
            Some(p) => row.position = p,
            None if w.creating => {
                let max: Option<i64> = db_run!(conn, |c| pipelines::table
                    .select(diesel::dsl::max(pipelines::position))
                    .first(c)
                    .await)?;
                row.position = max.map_or(0, |m| m + 1);
            }
            None => {}
        }
        if let Some(a) = f.active {
            row.active = a;
        }
        if let Some(r) = f.renewals {
            if r && !row.active {
                c.take::<()>(Err(Error::invalid(
                    "renewals",
                    "a retired pipeline cannot take renewals",
                )))?;
            } else if r {
                let id = row.id.clone();
                let other: Option<String> = db_run!(conn, |c| pipelines::table
                    .filter(pipelines::renewals.eq(true))
                    .filter(pipelines::id.ne(&id))
                    .select(pipelines::name)
                    .first(c)
                    .await
                    .optional())?;
                if let Some(other) = other {
                    return Err(Error::Conflict(format!(
                        "{other} is the renewals pipeline; unset it there first"
                    )));
                }
            }
            row.renewals = r;
        }
        // A retired pipeline takes no renewals.
        if !row.active {
            row.renewals = false;
        }
        c.finish()
    }
}

impl Entity for Stages {
    const DEF: Def = STAGE_DEF;
    type Row = StageRow;
    type Fields = StageFields;

    fn snapshot(r: &StageRow) -> Value {
        json!({
            "pipelineId": r.pipeline_id,
            "name": r.name,
            "position": r.position,
            "probability": r.probability,
            "forecastCategory": r.forecast_category,
            "kind": r.kind,
            "requiredFields": serde_json::from_str::<Value>(&r.required_fields).unwrap_or_default(),
            "rottingDays": r.rotting_days,
            "active": r.active,
            "nextSteps": serde_json::from_str::<Value>(&r.next_steps).unwrap_or_default(),
        })
    }

    fn blank() -> StageRow {
        let now = ids::now();
        StageRow {
            id: String::new(),
            pipeline_id: String::new(),
            name: String::new(),
            position: 0,
            probability: 0,
            forecast_category: ForecastCategory::Pipeline.as_str().into(),
            kind: StageKind::Open.as_str().into(),
            required_fields: "[]".into(),
            rotting_days: None,
            active: true,
            created_at: now,
            updated_at: now,
            version: 1,
            next_steps: "[]".into(),
        }
    }

    fn event_context(r: &StageRow) -> Option<Map<String, Value>> {
        Some(Map::from_iter([(
            "pipelineId".into(),
            json!(r.pipeline_id),
        )]))
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut StageRow,
        f: StageFields,
    ) -> Result<()> {
        let mut c = Checks::default();
        if w.creating {
            match f.pipeline_id {
                None => {
                    c.take::<()>(Err(Error::invalid("pipelineId", "is required")))?;
                }
                Some(p) => match pipeline(conn, &p).await? {
                    Some(p) => row.pipeline_id = p.id,
                    None => {
                        c.take::<()>(Err(Error::invalid("pipelineId", "no such pipeline")))?;
                    }
                },
            }
            if f.name.is_none() {
                c.take::<()>(Err(Error::invalid("name", "is required")))?;
            }
        }
        if let Some(v) = f.name
            && let Some(v) = c.take(name(&v, "name"))?
        {
            row.name = v;
        }
        if let Some(p) = f.probability
            && let Some(p) = c.take(values::probability(p, "probability"))?
        {
            row.probability = p;
        }
        if let Some(v) = f.forecast_category {
            row.forecast_category = v.as_str().into();
        }
        if let Some(v) = f.kind {
            row.kind = v.as_str().into();
        }
        if let Some(v) = f.required_fields {
            row.required_fields = values::store_required(&v);
        }
        if let Some(v) = f.rotting_days {
            if v.is_some_and(|d| d < 1) {
                c.take::<()>(Err(Error::invalid("rottingDays", "must be at least 1")))?;
            }
            row.rotting_days = v;
        }
        if let Some(a) = f.active {
            row.active = a;
        }
        if let Some(v) = f.next_steps
            && let Some(v) = c.take(check_prompts(v))?
        {
            row.next_steps = serde_json::to_string(&v)
                .map_err(|e| Error::Internal(format!("stage prompts: {e}")))?;
        }
        match f.position {
            Some(p) => row.position = p,
            None if w.creating && !row.pipeline_id.is_empty() => {
                let pid = row.pipeline_id.clone();
                let max: Option<i64> = db_run!(conn, |c| pipeline_stages::table
                    .filter(pipeline_stages::pipeline_id.eq(&pid))
                    .select(diesel::dsl::max(pipeline_stages::position))
                    .first(c)
                    .await)?;
                row.position = max.map_or(0, |m| m + 1);
            }
            None => {}
        }
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn declarations_are_sound() {
        assert!(super::PIPELINE_DEF.problems().is_empty());
        assert!(super::STAGE_DEF.problems().is_empty());
    }
}
