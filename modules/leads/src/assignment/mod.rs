//! Lead assignment rules: an ordered list (first match wins) of
//! conditions on a lead's fields and a target (a user, a team's round
//! robin, or a team's queue). The rules run in the transaction that
//! creates a lead whenever its writer named no owner (API creations,
//! captures and imports alike, through the kit's `after_create` hook), and
//! on demand with `reassignLeads`. A rule belongs to a team (its target
//! team, or its target user's team): that is its row scope, so a sales
//! manager edits the rules of its teams and an admin all of them.

pub mod engine;
pub mod repo;

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use crm_core::access::{Principal, RowFilter, principal, require_create, row_filter};
use crm_core::app::App;
use crm_core::change::{self, Change};
use crm_core::db::Conn;
use crm_core::entity::{self, Entity as _, store};
use crm_core::error::{Checks, Error, Result};
use crm_core::graphql::patch as mu;
use crm_core::identity::repo as users;
use crm_core::ids;
use crm_customers::values::SizeBand;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use self::repo::RuleRow;
use crate::leads::LeadFilterInput;
use crate::leads::repo::Leads;
pub use crate::values::AssignmentTargetKind as TargetKind;
use crate::values::{LeadSource, LeadStatus};

/// The most leads one `reassignLeads` call routes (narrow the filter for
/// more).
pub const REASSIGN_LIMIT: i64 = 2000;

/// A rule's conditions as stored (JSON); an empty list matches any value.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Conditions {
    /// ISO 3166-1 alpha-2 codes, upper case.
    pub countries: Vec<String>,
    /// Regions (compared ignoring ASCII case).
    pub regions: Vec<String>,
    /// Industries (compared ignoring ASCII case).
    pub industries: Vec<String>,
    /// Stored size bands.
    pub size_bands: Vec<String>,
    /// Stored sources.
    pub sources: Vec<String>,
    /// The lead's fit score at least this.
    pub min_score: Option<i64>,
}

/// Conditions of a rule; all given ones must hold, a list matches when the
/// lead's value is one of it.
#[derive(InputObject, Clone, Debug, Default)]
pub struct AssignmentConditionsInput {
    /// Lead's country is one of these (ISO 3166-1 alpha-2).
    #[graphql(default)]
    pub countries: Vec<String>,
    /// Lead's region is one of these (ignoring case).
    #[graphql(default)]
    pub regions: Vec<String>,
    /// Lead's industry is one of these (ignoring case).
    #[graphql(default)]
    pub industries: Vec<String>,
    /// Lead's size band is one of these.
    #[graphql(default)]
    pub size_bands: Vec<SizeBand>,
    /// Lead's source is one of these.
    #[graphql(default)]
    pub sources: Vec<LeadSource>,
    /// Lead's fit score is at least this (a lead without a score does not
    /// match; leads are scored by lead scoring).
    pub min_score: Option<i64>,
}

/// Conditions of a rule, as stored.
#[derive(SimpleObject, Clone, Debug)]
pub struct AssignmentConditions {
    /// Countries (empty: any).
    pub countries: Vec<String>,
    /// Regions (empty: any).
    pub regions: Vec<String>,
    /// Industries (empty: any).
    pub industries: Vec<String>,
    /// Size bands (empty: any).
    pub size_bands: Vec<SizeBand>,
    /// Sources (empty: any).
    pub sources: Vec<LeadSource>,
    /// Fit score at least (null: any).
    pub min_score: Option<i64>,
}

/// A lead assignment rule.
#[derive(SimpleObject, Clone, Debug)]
pub struct AssignmentRule {
    /// `lar_…`
    pub id: ID,
    /// Place in the list (1 first); the first matching rule wins.
    pub position: i64,
    /// Name (shown on the lead's timeline).
    pub name: String,
    /// Inactive rules are skipped.
    pub active: bool,
    /// What a lead must be like.
    pub conditions: AssignmentConditions,
    /// Where matching leads go.
    pub target_kind: TargetKind,
    /// The user (USER).
    pub target_user_id: Option<ID>,
    /// The team the rule belongs to: the round robin's or queue's team, or
    /// the target user's team.
    pub team_id: Option<ID>,
    /// A user owning this many open leads (not CONVERTED or UNQUALIFIED)
    /// is skipped (USER, ROUND_ROBIN).
    pub open_lead_cap: Option<i64>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// Pass back on update; a stale one gets CONFLICT.
    pub version: i64,
}

impl TryFrom<RuleRow> for AssignmentRule {
    type Error = Error;

    fn try_from(r: RuleRow) -> Result<Self> {
        let c: Conditions = serde_json::from_str(&r.conditions)
            .map_err(|e| Error::Internal(format!("rule {} conditions: {e}", r.id)))?;
        Ok(AssignmentRule {
            id: r.id.into(),
            position: r.position,
            name: r.name,
            active: r.active,
            conditions: AssignmentConditions {
                countries: c.countries,
                regions: c.regions,
                industries: c.industries,
                size_bands: c
                    .size_bands
                    .iter()
                    .map(|s| SizeBand::from_stored(s))
                    .collect::<Result<_>>()?,
                sources: c
                    .sources
                    .iter()
                    .map(|s| LeadSource::from_stored(s))
                    .collect::<Result<_>>()?,
                min_score: c.min_score,
            },
            target_kind: TargetKind::from_stored(&r.target_kind)?,
            target_user_id: r.target_user_id.map(Into::into),
            team_id: r.team_id.map(Into::into),
            open_lead_cap: r.open_lead_cap,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        })
    }
}

/// Input for `createAssignmentRule`.
#[derive(InputObject)]
pub struct CreateAssignmentRuleInput {
    /// Name (1–200 characters).
    pub name: String,
    /// Default: true.
    pub active: Option<bool>,
    /// Default: every lead.
    pub conditions: Option<AssignmentConditionsInput>,
    /// Where matching leads go.
    pub target_kind: TargetKind,
    /// The user (USER only).
    pub target_user_id: Option<ID>,
    /// The team (ROUND_ROBIN and QUEUE only).
    pub team_id: Option<ID>,
    /// Skip users owning this many open leads (USER, ROUND_ROBIN).
    pub open_lead_cap: Option<i64>,
    /// Place in the list (default: last); later rules move down.
    pub position: Option<i64>,
}

/// Input for `updateAssignmentRule`: omitted fields stay, null clears.
#[derive(InputObject)]
pub struct UpdateAssignmentRuleInput {
    pub id: ID,
    /// The version you read.
    pub version: i64,
    pub name: Option<String>,
    pub active: Option<bool>,
    pub conditions: Option<AssignmentConditionsInput>,
    pub target_kind: Option<TargetKind>,
    pub target_user_id: MaybeUndefined<ID>,
    pub team_id: MaybeUndefined<ID>,
    pub open_lead_cap: MaybeUndefined<i64>,
}

fn snapshot(r: &RuleRow) -> Value {
    json!({
        "position": r.position,
        "name": r.name,
        "active": r.active,
        "conditions": serde_json::from_str::<Value>(&r.conditions).unwrap_or_default(),
        "targetKind": r.target_kind,
        "targetUserId": r.target_user_id,
        "teamId": r.team_id,
        "openLeadCap": r.open_lead_cap,
    })
}

/// The audit entry and event of a rule change (`assignment_rule.<verb>`
/// events are not lead events: `leadEvents` does not carry them).
async fn audit(
    conn: &mut Conn<'_>,
    by: &Principal,
    action: &'static str,
    before: Option<&RuleRow>,
    after: Option<&RuleRow>,
) -> Result<()> {
    let some = after
        .or(before)
        .ok_or_else(|| Error::Internal("empty change".into()))?;
    change::record(
        conn,
        &by.actor(),
        Change {
            topic: crate::TOPIC,
            entity_type: "AssignmentRule",
            entity_id: some.id.clone(),
            action,
            before: before.map(snapshot),
            after: after.map(snapshot),
            owner_id: None,
            team_id: some.team_id.clone(),
        },
    )
    .await?;
    Ok(())
}

fn conditions(c: &mut Checks, input: AssignmentConditionsInput) -> Result<String> {
    let mut out = Conditions::default();
    let texts =
        |c: &mut Checks, list: Vec<String>, field: &str, upper: bool| -> Result<Vec<String>> {
            let mut v = Vec::new();
            if list.len() > 200 {
                c.take::<()>(Err(Error::invalid(field, "at most 200 values")))?;
            }
            for s in list {
                let s = s.trim();
                if s.is_empty() || s.chars().count() > 100 {
                    c.take::<()>(Err(Error::invalid(
                        field,
                        "values have 1 to 100 characters",
                    )))?;
                    continue;
                }
                let s = if upper {
                    s.to_uppercase()
                } else {
                    s.to_owned()
                };
                if !v.contains(&s) {
                    v.push(s);
                }
            }
            Ok(v)
        };
    out.countries = texts(c, input.countries, "conditions.countries", true)?;
    if out
        .countries
        .iter()
        .any(|s| s.len() != 2 || !s.chars().all(|ch| ch.is_ascii_alphabetic()))
    {
        c.take::<()>(Err(Error::invalid(
            "conditions.countries",
            "must be ISO 3166-1 alpha-2 codes",
        )))?;
    }
    out.regions = texts(c, input.regions, "conditions.regions", false)?;
    out.industries = texts(c, input.industries, "conditions.industries", false)?;
    out.size_bands = input
        .size_bands
        .into_iter()
        .map(SizeBand::as_text)
        .collect();
    out.size_bands.dedup();
    out.sources = input
        .sources
        .into_iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    out.sources.dedup();
    if input.min_score.is_some_and(|m| m < 0) {
        c.take::<()>(Err(Error::invalid(
            "conditions.minScore",
            "must be 0 or more",
        )))?;
    }
    out.min_score = input.min_score;
    Ok(serde_json::to_string(&out).unwrap_or_else(|_| "{}".into()))
}

/// Validates a rule's target and sets the team it belongs to; then
/// refuses (FORBIDDEN) a rule of a team outside the caller's scope.
async fn check_target(
    conn: &mut Conn<'_>,
    c: &mut Checks,
    r: &mut RuleRow,
    scope: &RowFilter,
    by: &Principal,
) -> Result<()> {
    let kind = TargetKind::from_stored(&r.target_kind)?;
    match kind {
        TargetKind::User => match r.target_user_id.clone() {
            Some(u) => {
                if c.take(users::check_active_user(conn, &u, "targetUserId").await)?
                    .is_some()
                {
                    r.team_id = users::user(conn, &u).await?.and_then(|u| u.team_id);
                }
            }
            None => {
                c.take::<()>(Err(Error::invalid(
                    "targetUserId",
                    "a USER rule needs its user",
                )))?;
            }
        },
        TargetKind::RoundRobin | TargetKind::Queue => {
            if r.target_user_id.is_some() {
                c.take::<()>(Err(Error::invalid(
                    "targetUserId",
                    "only a USER rule has a user",
                )))?;
            }
            match r.team_id.clone() {
                Some(t) => {
                    c.take(users::check_team(conn, &t, "teamId").await)?;
                }
                None => {
                    c.take::<()>(Err(Error::invalid(
                        "teamId",
                        "a ROUND_ROBIN or QUEUE rule needs its team",
                    )))?;
                }
            }
        }
    }
    if kind == TargetKind::Queue && r.open_lead_cap.is_some() {
        c.take::<()>(Err(Error::invalid(
            "openLeadCap",
            "a queue has no cap (only USER and ROUND_ROBIN rules)",
        )))?;
    }
    if r.open_lead_cap.is_some_and(|n| n < 1) {
        c.take::<()>(Err(Error::invalid("openLeadCap", "must be 1 or more")))?;
    }
    let name = r.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        c.take::<()>(Err(Error::invalid("name", "1 to 200 characters")))?;
    }
    r.name = name;
    std::mem::take(c).finish()?;
    if !scope.admits_team(r.team_id.as_deref()) {
        return Err(by.refusal(
            "not allowed to manage assignment rules of that team",
            vec!["AssignmentRule".into()],
        ));
    }
    Ok(())
}

/// The rules after moving `id` to `position` (1-based, clamped), as
/// (id, new position) for every rule whose position changes.
fn moved(all: &[RuleRow], id: &str, position: i64) -> Vec<(String, i64)> {
    let mut order: Vec<&RuleRow> = all.iter().filter(|r| r.id != id).collect();
    let at = (position.max(1) - 1).min(order.len() as i64) as usize;
    let mut out = Vec::new();
    let me = all.iter().find(|r| r.id == id);
    if let Some(me) = me {
        order.insert(at, me);
    }
    for (i, r) in order.iter().enumerate() {
        let p = i as i64 + 1;
        if r.position != p {
            out.push((r.id.clone(), p));
        }
    }
    out
}

/// Assignment rule queries.
#[derive(Default)]
pub struct AssignmentQuery;

#[Object]
impl AssignmentQuery {
    /// The assignment rules you may see, in the order they are tried.
    async fn assignment_rules(&self, ctx: &Context<'_>) -> Result<Vec<AssignmentRule>> {
        let scope = row_filter(ctx, "AssignmentRule", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        repo::list(&mut c.conn(), &scope)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }
}

/// Assignment rule mutations and `reassignLeads`.
#[derive(Default)]
pub struct AssignmentMutation;

#[Object]
impl AssignmentMutation {
    /// Adds a rule (for a team you manage).
    async fn create_assignment_rule(
        &self,
        ctx: &Context<'_>,
        input: CreateAssignmentRuleInput,
    ) -> Result<AssignmentRule> {
        require_create(ctx, "AssignmentRule")?;
        let scope = row_filter(ctx, "AssignmentRule", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        let mut c = Checks::default();
        let now = ids::now();
        let mut row = RuleRow {
            id: ids::new_id("lar"),
            position: 0,
            name: input.name,
            active: input.active.unwrap_or(true),
            conditions: conditions(&mut c, input.conditions.unwrap_or_default())?,
            target_kind: input.target_kind.as_str().into(),
            target_user_id: input.target_user_id.map(|i| i.0),
            team_id: input.team_id.map(|i| i.0),
            open_lead_cap: input.open_lead_cap,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let mut tx = app.db.begin().await?;
        check_target(&mut tx.conn(), &mut c, &mut row, &scope, by).await?;
        let last = repo::last_position(&mut tx.conn()).await?;
        row.position = last + 1;
        repo::insert(&mut tx.conn(), &row).await?;
        if let Some(p) = input.position.filter(|p| *p <= last) {
            let all = repo::list(&mut tx.conn(), &RowFilter::All).await?;
            let order = moved(&all, &row.id, p);
            repo::renumber(&mut tx.conn(), &order).await?;
            row.position = order
                .iter()
                .find(|(id, _)| *id == row.id)
                .map_or(row.position, |o| o.1);
        }
        audit(&mut tx.conn(), by, "created", None, Some(&row)).await?;
        app.commit(tx).await?;
        row.try_into()
    }

    /// Changes a rule in your scope if `version` is current.
    async fn update_assignment_rule(
        &self,
        ctx: &Context<'_>,
        input: UpdateAssignmentRuleInput,
    ) -> Result<AssignmentRule> {
        let scope = row_filter(ctx, "AssignmentRule", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        let mut tx = app.db.begin().await?;
        let before = repo::get(&mut tx.conn(), &scope, &input.id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("assignment rule {}", input.id.0)))?;
        let mut c = Checks::default();
        let mut row = before.clone();
        if let Some(n) = input.name {
            row.name = n;
        }
        if let Some(a) = input.active {
            row.active = a;
        }
        if let Some(cond) = input.conditions {
            row.conditions = conditions(&mut c, cond)?;
        }
        if let Some(k) = input.target_kind {
            row.target_kind = k.as_str().into();
        }
        if let Some(u) = mu(input.target_user_id) {
            row.target_user_id = u.map(|i| i.0);
        }
        if let Some(t) = mu(input.team_id) {
            row.team_id = t.map(|i| i.0);
        }
        if let Some(n) = mu(input.open_lead_cap) {
            row.open_lead_cap = n;
        }
        check_target(&mut tx.conn(), &mut c, &mut row, &scope, by).await?;
        let row = repo::update(&mut tx.conn(), &row, input.version).await?;
        audit(&mut tx.conn(), by, "updated", Some(&before), Some(&row)).await?;
        app.commit(tx).await?;
        row.try_into()
    }

    /// Moves a rule in your scope to `position` (1 first; beyond the end:
    /// last) if `version` is current; returns the rules you may see, in
    /// their new order.
    async fn move_assignment_rule(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
        position: i64,
    ) -> Result<Vec<AssignmentRule>> {
        let scope = row_filter(ctx, "AssignmentRule", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        let mut tx = app.db.begin().await?;
        let before = repo::get(&mut tx.conn(), &scope, &id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("assignment rule {}", id.0)))?;
        let all = repo::list(&mut tx.conn(), &RowFilter::All).await?;
        let order = moved(&all, &id, position);
        let mut row = before.clone();
        row.position = order
            .iter()
            .find(|(i, _)| *i == id.0)
            .map_or(before.position, |o| o.1);
        // The moved rule's version check first: a concurrent edit or move
        // of it gets CONFLICT before anything else changes.
        let row = repo::update(&mut tx.conn(), &row, version).await?;
        let others: Vec<(String, i64)> = order.into_iter().filter(|(i, _)| *i != id.0).collect();
        repo::renumber(&mut tx.conn(), &others).await?;
        audit(&mut tx.conn(), by, "moved", Some(&before), Some(&row)).await?;
        let list = repo::list(&mut tx.conn(), &scope).await?;
        app.commit(tx).await?;
        list.into_iter().map(TryInto::try_into).collect()
    }

    /// Deletes a rule in your scope if `version` is current.
    async fn delete_assignment_rule(&self, ctx: &Context<'_>, id: ID, version: i64) -> Result<ID> {
        let scope = row_filter(ctx, "AssignmentRule", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        let mut tx = app.db.begin().await?;
        let before = repo::get(&mut tx.conn(), &scope, &id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("assignment rule {}", id.0)))?;
        repo::delete(&mut tx.conn(), &id, version).await?;
        audit(&mut tx.conn(), by, "deleted", Some(&before), None).await?;
        app.commit(tx).await?;
        Ok(id)
    }

    /// Runs the assignment rules over the leads matching `filter` that you
    /// may update (not converted; at most 2000 at once, all or none);
    /// returns how many got a new owner or queue. Each assignment is
    /// audited, on the lead's timeline and a `lead.assigned` event.
    async fn reassign_leads(&self, ctx: &Context<'_>, filter: LeadFilterInput) -> Result<i64> {
        if filter.deleted {
            return Err(Error::invalid(
                "filter.deleted",
                "binned leads are not assigned",
            ));
        }
        if filter.custom.is_some() {
            return Err(Error::invalid(
                "filter.custom",
                "custom field conditions are not supported here",
            ));
        }
        let scope = row_filter(ctx, "Lead", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let by = principal(ctx);
        let mut lq = filter.to_query();
        lq.conds.push(entity::Cond::In(
            "status",
            [
                LeadStatus::New,
                LeadStatus::Working,
                LeadStatus::Nurturing,
                LeadStatus::Qualified,
                LeadStatus::Unqualified,
            ]
            .iter()
            .map(|s| s.as_str().into())
            .collect(),
        ));
        let wh = entity::list::where_sql(&Leads::DEF, &scope, &lq)?;
        let mut tx = app.db.begin().await?;
        let ids = repo::lead_ids(&mut tx.conn(), &wh, REASSIGN_LIMIT + 1).await?;
        if ids.len() as i64 > REASSIGN_LIMIT {
            return Err(Error::invalid(
                "filter",
                format!("matches more than {REASSIGN_LIMIT} leads: narrow it"),
            ));
        }
        let mut n = 0;
        for id in ids {
            let Some(mut row) = store::get::<Leads>(&mut tx.conn(), &scope, &id).await? else {
                continue;
            };
            if engine::route(&mut tx, by, &mut row).await? {
                n += 1;
            }
        }
        app.commit(tx).await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, position: i64) -> RuleRow {
        let now = ids::now();
        RuleRow {
            id: id.into(),
            position,
            name: id.into(),
            active: true,
            conditions: "{}".into(),
            target_kind: "QUEUE".into(),
            target_user_id: None,
            team_id: None,
            open_lead_cap: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    #[test]
    fn a_move_renumbers_only_what_changes() {
        let all = [rule("a", 1), rule("b", 2), rule("c", 3)];
        assert_eq!(
            moved(&all, "c", 1),
            [("c".into(), 1), ("a".into(), 2), ("b".into(), 3)]
        );
        assert_eq!(moved(&all, "a", 2), [("b".into(), 1), ("a".into(), 2)]);
        // Beyond the end: last; below 1: first.
        assert_eq!(moved(&all, "a", 99), moved(&all, "a", 3));
        assert_eq!(moved(&all, "b", -5), moved(&all, "b", 1));
        assert!(moved(&all, "b", 2).is_empty());
    }
}
