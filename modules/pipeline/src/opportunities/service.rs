//! The rules of an opportunity, as the entity kit's hooks: its account and
//! contact must be live records the writer may read; a stage belongs to the
//! opportunity's pipeline (moving to another pipeline's stage needs the
//! pipeline in the same write); entering a stage sets the stage's
//! probability and forecast category (unless the write gives its own),
//! needs the stage's required fields and, for a LOST stage, a lost reason;
//! the history entry goes in the write's transaction.

use chrono::NaiveDate;
use crm_core::access::{Principal, row_filter_or_nothing};
use crm_core::app::App;
use crm_core::custom;
use crm_core::db::{Conn, Tx};
use crm_core::entity::{Def, Entity, WriteCtx, store};
use crm_core::error::{Checks, Error, Result};
use crm_core::identity::repo as users;
use crm_core::ids;
use crm_customers::accounts::repo::Accounts;
use crm_customers::contacts::repo::Contacts;
use crm_customers::values::Money;
use serde_json::{Map, Value, json};

use super::contact_roles::{self, RoleChange};
use super::history;
use super::line_items::{self, LineChange};
use super::prompts;
use super::repo::{self, Opportunities, OpportunityRow};
use crate::pipelines::repo::{self as pipelines, StageRow};
use crate::values::{self, ForecastCategory, RequiredField, StageKind};

/// Fields of an opportunity as entered; `None` leaves a field alone on
/// update, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct OpportunityFields {
    pub name: Option<String>,
    pub account_id: Option<String>,
    pub primary_contact_id: Option<Option<String>>,
    pub owner_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub stage_id: Option<String>,
    pub amount: Option<Option<Money>>,
    pub close_date: Option<Option<NaiveDate>>,
    pub probability: Option<i64>,
    pub forecast_category: Option<ForecastCategory>,
    pub next_step: Option<Option<String>>,
    pub source: Option<Option<String>>,
    pub campaign_id: Option<Option<String>>,
    pub lost_reason: Option<Option<String>>,
    /// Custom field values to set (null clears).
    pub custom: Option<Map<String, Value>>,
    /// A change to the line items (the amount is then their sum).
    pub line_items: Option<LineChange>,
    /// A change to the contact roles.
    pub contact_roles: Option<RoleChange>,
    /// The tags (ids of existing tags), replacing the current ones.
    pub tag_ids: Option<Vec<async_graphql::ID>>,
    /// A quote made primary: its id (its lines replace the line items
    /// through `line_items`).
    pub primary_quote_id: Option<String>,
}

/// The public fields of an opportunity, for audit diffs and events (keys
/// are `Opportunity` field names, so field rules apply to them); custom
/// field values appear as `custom.<key>`.
pub fn snapshot(r: &OpportunityRow) -> Value {
    let mut v = json!({
        "name": r.name,
        "accountId": r.account_id,
        "primaryContactId": r.primary_contact_id,
        "ownerId": r.owner_id,
        "pipelineId": r.pipeline_id,
        "stageId": r.stage_id,
        "amount": r.amount.map(|a| json!({"amountMinor": a, "currency": r.currency})),
        "closeDate": r.close_date,
        "probability": r.probability,
        "forecastCategory": r.forecast_category,
        "nextStep": r.next_step,
        "source": r.source,
        "campaignId": r.campaign_id,
        "lostReason": r.lost_reason,
        "closedAt": r.closed_at,
        "deletedAt": r.deleted_at,
        "tagIds": serde_json::from_str::<Value>(&r.tags).unwrap_or_default(),
        "primaryQuoteId": r.primary_quote_id,
    });
    if let Some(o) = v.as_object_mut() {
        o.extend(custom::snapshot_fields(&r.custom));
    }
    v
}

fn text(v: Option<String>, max: usize, field: &str) -> Result<Option<String>> {
    crm_customers::values::opt_text(v, max, field)
}

/// A live record of `ty` in the writer's read scope, or VALIDATION on
/// `field` that reads the same whether it exists or not.
pub(crate) async fn visible_record(
    app: &App,
    by: &Principal,
    conn: &mut Conn<'_>,
    ty: &str,
    id: &str,
    field: &str,
) -> Result<()> {
    let prefix = if ty == "Account" { "acc" } else { "con" };
    let missing = || Error::invalid(field, format!("no such {}", ty.to_lowercase()));
    if ids::check(id, prefix, field).is_err() {
        return Err(missing());
    }
    let scope = row_filter_or_nothing(app, by, ty, "read").await?;
    let found = if ty == "Account" {
        store::get::<Accounts>(conn, &scope, id).await?.is_some()
    } else {
        store::get::<Contacts>(conn, &scope, id).await?.is_some()
    };
    if found { Ok(()) } else { Err(missing()) }
}

/// The stage the write puts the opportunity in (its current one when the
/// write names none), checked against the pipeline it ends up in.
async fn target_stage(
    w: &WriteCtx<'_>,
    conn: &mut Conn<'_>,
    row: &OpportunityRow,
    f: &OpportunityFields,
) -> Result<Option<StageRow>> {
    let pipeline_id = f
        .pipeline_id
        .clone()
        .unwrap_or_else(|| row.pipeline_id.clone());
    if w.creating && f.pipeline_id.is_none() {
        return Err(Error::invalid("pipelineId", "is required"));
    }
    let pipeline_changes = pipeline_id != row.pipeline_id;
    if pipeline_changes {
        match pipelines::pipeline(conn, &pipeline_id).await? {
            Some(p) if p.active => {}
            Some(_) => return Err(Error::invalid("pipelineId", "the pipeline is retired")),
            None => return Err(Error::invalid("pipelineId", "no such pipeline")),
        }
    }
    let stage = match &f.stage_id {
        Some(id) => match pipelines::stage(conn, id).await? {
            Some(s) => s,
            None => return Err(Error::invalid("stageId", "no such stage")),
        },
        None if w.creating => {
            let first = pipelines::stages_of(conn, std::slice::from_ref(&pipeline_id), false)
                .await?
                .into_iter()
                .next();
            match first {
                Some(s) => s,
                None => {
                    return Err(Error::invalid(
                        "stageId",
                        "the pipeline has no active stage",
                    ));
                }
            }
        }
        None if pipeline_changes => {
            return Err(Error::invalid(
                "stageId",
                "is required when the pipeline changes",
            ));
        }
        None => return Ok(None),
    };
    if stage.pipeline_id != pipeline_id {
        return Err(Error::invalid(
            "stageId",
            "belongs to another pipeline: change pipelineId in the same write",
        ));
    }
    if stage.id == row.stage_id {
        return Ok(None);
    }
    if !stage.active {
        return Err(Error::invalid("stageId", "the stage is deactivated"));
    }
    Ok(Some(stage))
}

/// Whether the row has a value for a field a stage requires.
fn has(row: &OpportunityRow, f: RequiredField) -> bool {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    match f {
        RequiredField::Amount => row.amount.is_some(),
        RequiredField::CloseDate => set(&row.close_date),
        RequiredField::PrimaryContactId => set(&row.primary_contact_id),
        RequiredField::NextStep => set(&row.next_step),
        RequiredField::Source => set(&row.source),
        RequiredField::CampaignId => set(&row.campaign_id),
    }
}

/// Applies `f` to `row`, validating every field; collects all problems.
async fn apply(
    w: &WriteCtx<'_>,
    conn: &mut Conn<'_>,
    row: &mut OpportunityRow,
    f: OpportunityFields,
) -> Result<()> {
    let (app, by) = (w.app, w.by);
    let mut c = Checks::default();
    if w.creating && f.name.is_none() {
        c.take::<()>(Err(Error::invalid("name", "is required")))?;
    }
    if w.creating && f.account_id.is_none() {
        c.take::<()>(Err(Error::invalid("accountId", "is required")))?;
    }
    if f.custom.is_some() || w.creating {
        let defs = custom::definitions(conn, "Opportunity").await?;
        let may_write = |k: &str| custom::allowed(app, by, "Opportunity", k, "write");
        if let Some(v) = c.take(custom::apply(
            &defs,
            &row.custom,
            f.custom.as_ref(),
            w.creating,
            &may_write,
        ))? {
            row.custom = v;
        }
    }
    if let Some(v) = &f.name
        && let Some(v) = c.take(crm_customers::values::req_text(v, 200, "name"))?
    {
        row.name = v;
    }
    if let Some(id) = &f.account_id
        && c.take(visible_record(app, by, conn, "Account", id, "accountId").await)?
            .is_some()
    {
        row.account_id = id.clone();
    }
    if let Some(v) = &f.primary_contact_id {
        match v {
            Some(id) => {
                if c.take(visible_record(app, by, conn, "Contact", id, "primaryContactId").await)?
                    .is_some()
                {
                    row.primary_contact_id = Some(id.clone());
                }
            }
            None => row.primary_contact_id = None,
        }
    }
    let roles = match f.contact_roles.clone() {
        Some(change) => c.take(contact_roles::plan(w, conn, row, change).await)?,
        None => None,
    };
    if let Some(q) = &f.primary_quote_id {
        row.primary_quote_id = Some(q.clone());
    }
    if let Some(owner) = &f.owner_id
        && c.take(users::check_active_user(conn, owner, "ownerId").await)?
            .is_some()
    {
        row.owner_id = owner.clone();
    }
    // Line items: planned (and validated) now, written once every check
    // passed; with any, the amount is their sum and not an input.
    let planned = match f.line_items.clone() {
        Some(change) => c.take(line_items::plan(conn, row, change).await)?,
        None => None,
    };
    let items_after = match &planned {
        Some((_, items)) => Some(items.clone()),
        None if f.amount.is_some() && !w.creating => {
            Some(line_items::of(conn, std::slice::from_ref(&row.id)).await?)
        }
        None => None,
    };
    let computed = items_after.as_ref().is_some_and(|i| !i.is_empty());
    if f.amount.is_some() && computed {
        c.take::<()>(Err(Error::invalid(
            "amount",
            "is computed from the opportunity's line items",
        )))?;
    } else if let Some(v) = f.amount.clone() {
        match v.map(|m| m.checked("amount")).transpose() {
            Ok(m) => {
                row.amount = m.as_ref().map(|m| m.amount_minor);
                row.currency = m.map(|m| m.currency);
            }
            Err(e) => {
                c.take::<()>(Err(e))?;
            }
        }
    }
    if let Some(items) = &items_after
        && let Some(first) = items.first()
    {
        row.amount = Some(items.iter().map(|i| i.total).sum());
        row.currency = Some(first.currency.clone());
    }
    if let Some(v) = f.close_date {
        row.close_date = v.map(values::store_date);
    }
    if let Some(ids) = &f.tag_ids
        && let Some(v) = c.take(crm_customers::tags::check_ids(conn, ids, "tagIds").await)?
    {
        row.tags = serde_json::to_string(&v)
            .map_err(|e| Error::Internal(format!("opportunity tags: {e}")))?;
    }
    for (v, max, field, slot) in [
        (f.next_step.clone(), 500, "nextStep", &mut row.next_step),
        (f.source.clone(), 100, "source", &mut row.source),
        (
            f.campaign_id.clone(),
            100,
            "campaignId",
            &mut row.campaign_id,
        ),
    ] {
        if let Some(v) = v
            && let Some(v) = c.take(text(v, max, field))?
        {
            *slot = v;
        }
    }
    // The stage, and what entering it means.
    let entering = c.take(target_stage(w, conn, row, &f).await)?.flatten();
    if let Some(s) = &entering {
        row.pipeline_id = s.pipeline_id.clone();
        row.stage_id = s.id.clone();
        row.probability = s.probability;
        row.forecast_category = s.forecast_category.clone();
        row.stage_entered_at = ids::now();
        row.closed_at = match StageKind::from_stored(&s.kind)? {
            StageKind::Open => None,
            StageKind::Won | StageKind::Lost => Some(ids::now()),
        };
    }
    if let Some(p) = f.probability
        && let Some(p) = c.take(values::probability(p, "probability"))?
    {
        row.probability = p;
    }
    if let Some(v) = f.forecast_category {
        row.forecast_category = v.as_str().into();
    }
    // A lost reason belongs to a lost deal only.
    let kind = match &entering {
        Some(s) => Some(StageKind::from_stored(&s.kind)?),
        None => pipelines::stage(conn, &row.stage_id)
            .await?
            .map(|s| StageKind::from_stored(&s.kind))
            .transpose()?,
    };
    if let Some(v) = f.lost_reason {
        let v = c.take(text(v, 500, "lostReason"))?.flatten();
        if v.is_some() && kind.is_some_and(|k| k != StageKind::Lost) {
            c.take::<()>(Err(Error::invalid(
                "lostReason",
                "only a deal in a LOST stage has a lost reason",
            )))?;
        } else {
            row.lost_reason = v;
        }
    }
    if entering.is_some() && kind != Some(StageKind::Lost) {
        row.lost_reason = None;
    }
    if let Some(s) = &entering {
        for field in values::required_fields(&s.required_fields)? {
            if !has(row, field) {
                c.take::<()>(Err(Error::invalid(
                    field.as_str(),
                    format!("is required to enter stage {}", s.name),
                )))?;
            }
        }
    }
    if kind == Some(StageKind::Lost) && row.lost_reason.is_none() {
        c.take::<()>(Err(Error::invalid(
            "lostReason",
            "is required for a deal in a LOST stage",
        )))?;
    }
    c.finish()?;
    if let Some((plan, _)) = planned {
        line_items::write(conn, plan).await?;
    }
    if let Some(roles) = roles {
        contact_roles::write(conn, &row.id, roles).await?;
    }
    Ok(())
}

impl Entity for Opportunities {
    const DEF: Def = repo::DEF;
    type Row = OpportunityRow;
    type Fields = OpportunityFields;

    fn snapshot(row: &OpportunityRow) -> Value {
        snapshot(row)
    }

    fn blank() -> OpportunityRow {
        let now = ids::now();
        OpportunityRow {
            id: String::new(),
            name: String::new(),
            account_id: String::new(),
            primary_contact_id: None,
            owner_id: String::new(),
            pipeline_id: String::new(),
            stage_id: String::new(),
            amount: None,
            currency: None,
            close_date: None,
            probability: 0,
            forecast_category: ForecastCategory::Pipeline.as_str().into(),
            next_step: None,
            source: None,
            campaign_id: None,
            lost_reason: None,
            closed_at: None,
            custom: "{}".into(),
            created_at: now,
            updated_at: now,
            version: 1,
            deleted_at: None,
            deleted_by: None,
            tags: "[]".into(),
            stage_entered_at: now,
            primary_quote_id: None,
        }
    }

    fn requested_owner(f: &OpportunityFields) -> Option<&str> {
        f.owner_id.as_deref()
    }

    /// A stage move is `stage_changed`, or `won` / `lost` when it closes
    /// the deal (only a lost deal has a lost reason, only a closed one a
    /// close time).
    fn update_action(before: &OpportunityRow, after: &OpportunityRow) -> &'static str {
        if before.stage_id == after.stage_id {
            "updated"
        } else if after.closed_at.is_some() && after.lost_reason.is_some() {
            "lost"
        } else if after.closed_at.is_some() {
            "won"
        } else {
            "stage_changed"
        }
    }

    fn event_context(r: &OpportunityRow) -> Option<Map<String, Value>> {
        Some(Map::from_iter([(
            "pipelineId".into(),
            json!(r.pipeline_id),
        )]))
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut OpportunityRow,
        f: OpportunityFields,
    ) -> Result<()> {
        apply(w, conn, row, f).await
    }

    /// The history entry and, on entering a stage, the stage's next-step
    /// tasks, in the write's transaction.
    async fn after_write(
        w: &WriteCtx<'_>,
        tx: &mut Tx,
        before: Option<&OpportunityRow>,
        after: &OpportunityRow,
    ) -> Result<()> {
        history::record(tx, w.by, before, after).await?;
        if before.is_none_or(|b| b.stage_id != after.stage_id) {
            prompts::create_tasks(tx, w.by, after).await?;
        }
        Ok(())
    }
}
