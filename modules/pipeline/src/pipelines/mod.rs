//! Pipelines and stages: GraphQL types, queries and the admin mutations
//! that shape them. A stage in use is deactivated, never deleted.

pub mod repo;

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, Utc};
use crm_core::access::{principal, row_filter};
use crm_core::app::App;
use crm_core::entity::resolve;
use crm_core::entity::store;
use crm_core::error::Result;
use crm_core::graphql::patch as mu;

use self::repo::{
    PipelineFields, PipelineRow, Pipelines, StageFields, StagePrompt, StageRow, Stages,
};
use crate::values::{self, ForecastCategory, RequiredField, StageKind};

/// A sales pipeline: ordered stages a deal moves through.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Pipeline {
    /// `pip_…`
    pub id: ID,
    /// Name, unique.
    pub name: String,
    /// Order among pipelines.
    pub position: i64,
    /// False once retired: no new deals enter it.
    pub active: bool,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
    /// The pipeline contracts' renewal deals go to unless a contract names
    /// another (at most one pipeline; retiring it clears the flag).
    pub renewals: bool,
}

impl From<PipelineRow> for Pipeline {
    fn from(r: PipelineRow) -> Self {
        Pipeline {
            id: r.id.into(),
            name: r.name,
            position: r.position,
            active: r.active,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
            renewals: r.renewals,
        }
    }
}

#[ComplexObject]
impl Pipeline {
    /// The stages in order (inactive ones too with `includeInactive`).
    async fn stages(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] include_inactive: bool,
    ) -> Result<Vec<PipelineStage>> {
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let rows = repo::stages_of(
            &mut c.conn(),
            std::slice::from_ref(&self.id.0),
            include_inactive,
        )
        .await?;
        rows.into_iter().map(PipelineStage::try_from).collect()
    }
}

/// A step of a pipeline.
#[derive(SimpleObject, Clone, Debug)]
pub struct PipelineStage {
    /// `stg_…`
    pub id: ID,
    /// The pipeline it belongs to.
    pub pipeline_id: ID,
    /// Name.
    pub name: String,
    /// Order within the pipeline.
    pub position: i64,
    /// Default win probability of its deals, 0–100.
    pub probability: i64,
    /// Default forecast category of its deals.
    pub forecast_category: ForecastCategory,
    /// Open, won or lost.
    pub kind: StageKind,
    /// Fields a deal must have to enter it.
    pub required_fields: Vec<RequiredField>,
    /// A deal in it longer than this many days is rotting.
    pub rotting_days: Option<i64>,
    /// False once deactivated: no deal may enter it.
    pub active: bool,
    /// Tasks created on a deal's timeline when it enters the stage,
    /// assigned to the deal's owner.
    pub next_steps: Vec<StagePrompt>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

impl TryFrom<StageRow> for PipelineStage {
    type Error = crm_core::Error;

    fn try_from(r: StageRow) -> Result<Self> {
        Ok(PipelineStage {
            id: r.id.into(),
            pipeline_id: r.pipeline_id.into(),
            name: r.name,
            position: r.position,
            probability: r.probability,
            forecast_category: ForecastCategory::from_stored(&r.forecast_category)?,
            kind: StageKind::from_stored(&r.kind)?,
            required_fields: values::required_fields(&r.required_fields)?,
            rotting_days: r.rotting_days,
            active: r.active,
            next_steps: repo::prompts(&r.next_steps)?,
            version: r.version,
        })
    }
}

/// The fields of a new stage.
struct StageInput {
    name: String,
    position: Option<i64>,
    probability: i64,
    forecast_category: ForecastCategory,
    kind: StageKind,
    required_fields: Vec<RequiredField>,
    rotting_days: Option<i64>,
    next_steps: Vec<StagePrompt>,
}

impl StageInput {
    fn fields(self, pipeline_id: String) -> StageFields {
        StageFields {
            pipeline_id: Some(pipeline_id),
            name: Some(self.name),
            position: self.position,
            probability: Some(self.probability),
            forecast_category: Some(self.forecast_category),
            kind: Some(self.kind),
            required_fields: Some(self.required_fields),
            rotting_days: Some(self.rotting_days),
            active: None,
            next_steps: Some(self.next_steps),
        }
    }
}

/// Input for `createPipeline`.
#[derive(InputObject)]
pub struct CreatePipelineInput {
    /// Unique name.
    pub name: String,
    /// Order among pipelines (default: last).
    pub position: Option<i64>,
    /// Make it the renewals pipeline (CONFLICT while another one is).
    #[graphql(default)]
    pub renewals: bool,
}

/// Input for `updatePipeline`: omitted fields stay.
#[derive(InputObject)]
pub struct UpdatePipelineInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    pub position: Option<i64>,
    /// False retires the pipeline (its deals stay) and clears `renewals`.
    pub active: Option<bool>,
    /// True makes it the renewals pipeline (CONFLICT while another one
    /// is); false unsets it.
    pub renewals: Option<bool>,
}

/// Input for `createPipelineStage`.
#[derive(InputObject)]
pub struct CreatePipelineStageInput {
    pub pipeline_id: ID,
    pub name: String,
    /// Order within the pipeline (default: after the last).
    pub position: Option<i64>,
    /// 0–100.
    pub probability: i64,
    pub forecast_category: ForecastCategory,
    #[graphql(default_with = "StageKind::Open")]
    pub kind: StageKind,
    /// Fields a deal must have to enter it.
    #[graphql(default)]
    pub required_fields: Vec<RequiredField>,
    pub rotting_days: Option<i64>,
    /// Tasks to create on a deal's timeline when it enters the stage (at
    /// most 10).
    #[graphql(default)]
    pub next_steps: Vec<StagePrompt>,
}

/// Input for `updatePipelineStage`: omitted fields stay, null clears.
#[derive(InputObject)]
pub struct UpdatePipelineStageInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    pub position: Option<i64>,
    pub probability: Option<i64>,
    pub forecast_category: Option<ForecastCategory>,
    pub kind: Option<StageKind>,
    pub required_fields: Option<Vec<RequiredField>>,
    pub rotting_days: MaybeUndefined<i64>,
    /// False deactivates the stage: no deal may enter it.
    pub active: Option<bool>,
    /// Replaces the stage's prompts (deals already in it keep their
    /// tasks).
    pub next_steps: Option<Vec<StagePrompt>>,
}

/// What `deletePipelineStage` did.
#[derive(SimpleObject)]
pub struct StageDeletion {
    /// The stage.
    pub id: ID,
    /// True when it was deleted; false when deals are (or were) in it, so
    /// it was deactivated instead.
    pub deleted: bool,
    /// The deactivated stage (null when deleted).
    pub stage: Option<PipelineStage>,
}

/// Pipeline queries.
#[derive(Default)]
pub struct PipelinesQuery;

#[Object]
impl PipelinesQuery {
    /// Every pipeline, in order (retired ones too with `includeInactive`).
    async fn pipelines(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] include_inactive: bool,
    ) -> Result<Vec<Pipeline>> {
        row_filter(ctx, "Pipeline", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        Ok(repo::all_pipelines(&mut c.conn(), include_inactive)
            .await?
            .into_iter()
            .map(Pipeline::from)
            .collect())
    }

    /// One pipeline.
    async fn pipeline(&self, ctx: &Context<'_>, id: ID) -> Result<Pipeline> {
        pipeline_by_id(ctx, &id).await
    }
}

/// One pipeline (NOT_FOUND if there is none).
pub async fn pipeline_by_id(ctx: &Context<'_>, id: &str) -> Result<Pipeline> {
    Ok(resolve::get::<Pipelines>(ctx, id).await?.into())
}

/// One stage (NOT_FOUND if there is none).
pub async fn stage_by_id(ctx: &Context<'_>, id: &str) -> Result<PipelineStage> {
    resolve::get::<Stages>(ctx, id).await?.try_into()
}

/// The admin mutations that shape pipelines.
#[derive(Default)]
pub struct PipelinesMutation;

#[Object]
impl PipelinesMutation {
    /// Creates a pipeline (add its stages with `createPipelineStage`).
    async fn create_pipeline(
        &self,
        ctx: &Context<'_>,
        input: CreatePipelineInput,
    ) -> Result<Pipeline> {
        let fields = PipelineFields {
            name: Some(input.name),
            position: input.position,
            active: None,
            renewals: Some(input.renewals),
        };
        Ok(resolve::create::<Pipelines>(ctx, fields).await?.into())
    }

    /// Renames, reorders or retires a pipeline if `version` is current.
    async fn update_pipeline(
        &self,
        ctx: &Context<'_>,
        input: UpdatePipelineInput,
    ) -> Result<Pipeline> {
        let fields = PipelineFields {
            name: input.name,
            position: input.position,
            active: input.active,
            renewals: input.renewals,
        };
        Ok(
            resolve::update::<Pipelines>(ctx, &input.id, input.version, fields)
                .await?
                .into(),
        )
    }

    /// Adds a stage to a pipeline.
    async fn create_pipeline_stage(
        &self,
        ctx: &Context<'_>,
        input: CreatePipelineStageInput,
    ) -> Result<PipelineStage> {
        let stage = StageInput {
            name: input.name,
            position: input.position,
            probability: input.probability,
            forecast_category: input.forecast_category,
            kind: input.kind,
            required_fields: input.required_fields,
            rotting_days: input.rotting_days,
            next_steps: input.next_steps,
        };
        resolve::create::<Stages>(ctx, stage.fields(input.pipeline_id.0))
            .await?
            .try_into()
    }

    /// Changes a stage if `version` is current (deals already in it keep
    /// their probability and forecast category).
    async fn update_pipeline_stage(
        &self,
        ctx: &Context<'_>,
        input: UpdatePipelineStageInput,
    ) -> Result<PipelineStage> {
        let fields = StageFields {
            pipeline_id: None,
            name: input.name,
            position: input.position,
            probability: input.probability,
            forecast_category: input.forecast_category,
            kind: input.kind,
            required_fields: input.required_fields,
            rotting_days: mu(input.rotting_days),
            active: input.active,
            next_steps: input.next_steps,
        };
        resolve::update::<Stages>(ctx, &input.id, input.version, fields)
            .await?
            .try_into()
    }

    /// Deletes a stage no deal was ever in; a stage with deals (live or in
    /// the recycle bin) is deactivated instead, so their history stays
    /// meaningful.
    async fn delete_pipeline_stage(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
    ) -> Result<StageDeletion> {
        let scope = row_filter(ctx, "PipelineStage", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        let (current, in_use) = {
            let mut c = app.db.conn().await?;
            let row = store::fetch::<Stages>(&mut c.conn(), &scope, &id).await?;
            (row, repo::stage_in_use(&mut c.conn(), &id).await?)
        };
        if current.version != version {
            return Err(repo::STAGE_DEF.stale(&id, version));
        }
        if in_use {
            let fields = StageFields {
                active: Some(false),
                ..Default::default()
            };
            let row = store::update::<Stages>(app, by, &scope, &id, version, fields).await?;
            return Ok(StageDeletion {
                id,
                deleted: false,
                stage: Some(row.try_into()?),
            });
        }
        store::purge::<Stages>(app, by, &scope, &id).await?;
        Ok(StageDeletion {
            id,
            deleted: true,
            stage: None,
        })
    }
}
