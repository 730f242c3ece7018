//! The pipeline board: per stage of one pipeline, how many opportunities
//! the caller may see (under a filter), their amounts and weighted amounts
//! per currency, and a page of the opportunities themselves.
//!
//! Counts and sums are one `GROUP BY` statement of the entity kit over the
//! caller's row scope ([`crm_core::entity::aggregate`]). When every
//! column asks for the same first page of its deals (the usual board
//! query), the pages of all columns are one statement too
//! ([`resolve::list_each`]), fetched with the board. The sums are
//! computed from `Opportunity.amount` (and `probability`): the schema
//! declares that, so a role that may not read amounts asking for them is
//! refused as a whole, like any field it may not read.

use std::collections::BTreeMap;

use async_graphql::{ComplexObject, Context, ID, Object, SimpleObject};
use crm_core::access::row_filter;
use crm_core::app::App;
use crm_core::entity::Cond;
use crm_core::entity::aggregate::{Measure, aggregate};
use crm_core::entity::resolve::{self, Paging, Sorting};
use crm_core::error::Result;
use crm_core::paging::Page;
use crm_customers::values::Money;

use super::line_items::div_half_even;
use super::repo::Opportunities;
use super::{Opportunity, OpportunityFilterInput, OpportunityOrder};
use crate::pipelines::{Pipeline, PipelineStage, pipeline_by_id, repo as pipeline_repo};

/// A pipeline's board: its stages in order, each with its deals.
#[derive(SimpleObject)]
pub struct PipelineBoard {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// One column per active stage (and per retired stage that still holds
    /// deals you see), in stage order.
    pub columns: Vec<BoardColumn>,
}

/// One stage of a board.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct BoardColumn {
    /// The stage.
    pub stage: PipelineStage,
    /// Opportunities in the stage that you see and the filter keeps.
    pub count: i64,
    /// Their amounts summed per currency (deals without an amount add
    /// nothing), by currency code.
    pub amounts: Vec<Money>,
    /// Their amounts × probability / 100 summed per currency, the sum
    /// rounded once to whole minor units, half to even.
    pub weighted_amounts: Vec<Money>,
    #[graphql(skip)]
    filter: Option<OpportunityFilterInput>,
    /// The first page of the column's deals, fetched with the board for
    /// the arguments every column's `opportunities` gives.
    #[graphql(skip)]
    prefetched: std::sync::Mutex<Option<Page<Opportunity>>>,
}

#[ComplexObject]
impl BoardColumn {
    /// The stage's opportunities (the filter's, in your scope), a page at a
    /// time, ordered as `opportunities` orders them.
    async fn opportunities(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        order_by: Option<OpportunityOrder>,
    ) -> Result<Page<Opportunity>> {
        let ready = self
            .prefetched
            .lock()
            .map_err(|_| crm_core::error::Error::Internal("board page lock poisoned".into()))?
            .take();
        if let Some(page) = ready {
            return Ok(page);
        }
        let f = self.filter.clone().unwrap_or_default();
        let o = order_by.unwrap_or_default();
        let mut query = f.to_query();
        query.deleted = false;
        query
            .conds
            .push(Cond::Eq("stage_id", self.stage.id.0.as_str().into()));
        let sorting = Sorting {
            by: (o.field.column(), o.direction),
            custom: f.custom.as_deref().unwrap_or_default(),
            custom_key: o.custom_key.as_deref(),
        };
        let page = Paging {
            first,
            after,
            ..Default::default()
        };
        resolve::list::<Opportunities, _>(ctx, page, query, sorting, Opportunity::try_from).await
    }
}

/// A stage's count and, per currency, its amount sum and its sum of
/// amount × probability (not yet divided by 100).
type StageSums = (i64, BTreeMap<String, (i64, i128)>);

/// The board query.
#[derive(Default)]
pub struct BoardQuery;

#[Object]
impl BoardQuery {
    /// A pipeline as a board: per stage the count, amount sums and weighted
    /// sums of the opportunities you see (narrowed by `filter`), and their
    /// first page. Asking for sums needs read on `Opportunity.amount` (and
    /// `probability` for weighted sums).
    async fn pipeline_board(
        &self,
        ctx: &Context<'_>,
        pipeline_id: ID,
        filter: Option<OpportunityFilterInput>,
    ) -> Result<PipelineBoard> {
        let pipeline = pipeline_by_id(ctx, &pipeline_id).await?;
        let scope = row_filter(ctx, "Opportunity", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut query = filter.as_ref().map(|f| f.to_query()).unwrap_or_default();
        query.deleted = false;
        query
            .conds
            .push(Cond::Eq("pipeline_id", pipeline.id.0.as_str().into()));
        let (stages, groups) = {
            let mut c = app.db.conn().await?;
            let stages =
                pipeline_repo::stages_of(&mut c.conn(), std::slice::from_ref(&pipeline.id.0), true)
                    .await?;
            let groups = aggregate::<Opportunities>(
                &mut c.conn(),
                &scope,
                &query,
                &["stage_id", "currency"],
                &[
                    Measure::Count,
                    Measure::Sum("amount"),
                    Measure::SumProduct("amount", "probability"),
                ],
            )
            .await?;
            (stages, groups)
        };
        let mut pages = match wanted_page(ctx) {
            Some((first, order, with_total)) => {
                let f = filter.clone().unwrap_or_default();
                let ids: Vec<String> = stages.iter().map(|s| s.id.clone()).collect();
                let sorting = Sorting {
                    by: (order.field.column(), order.direction),
                    custom: f.custom.as_deref().unwrap_or_default(),
                    custom_key: None,
                };
                let page = Paging {
                    first,
                    ..Default::default()
                };
                resolve::list_each::<Opportunities, _>(
                    ctx,
                    page,
                    query.clone(),
                    sorting,
                    "stage_id",
                    &ids,
                    with_total,
                    Opportunity::try_from,
                )
                .await?
            }
            None => Default::default(),
        };
        let mut by_stage: BTreeMap<String, StageSums> = BTreeMap::new();
        for g in groups {
            let (Some(stage), currency) = (g.keys[0].clone(), g.keys[1].clone()) else {
                continue;
            };
            let e = by_stage.entry(stage).or_default();
            e.0 += g.values[0];
            if let Some(cur) = currency {
                let m = e.1.entry(cur).or_default();
                m.0 += g.values[1];
                m.1 += i128::from(g.values[2]);
            }
        }
        let mut columns = Vec::new();
        for s in stages {
            let (count, sums) = by_stage.remove(&s.id).unwrap_or_default();
            if !s.active && count == 0 {
                continue;
            }
            let money = |f: &dyn Fn(&(i64, i128)) -> i64| {
                sums.iter()
                    .map(|(cur, v)| Money {
                        amount_minor: f(v),
                        currency: cur.clone(),
                    })
                    .collect::<Vec<_>>()
            };
            columns.push(BoardColumn {
                amounts: money(&|v| v.0),
                weighted_amounts: money(&|v| div_half_even(v.1, 100)),
                prefetched: std::sync::Mutex::new(pages.remove(&s.id)),
                stage: PipelineStage::try_from(s)?,
                count,
                filter: filter.clone(),
            });
        }
        Ok(PipelineBoard { pipeline, columns })
    }
}

/// The first page every column's `opportunities` asks for, when they all
/// ask for the same one (same arguments, no cursor, no custom field
/// order), with whether `totalCount` is selected; None otherwise (each
/// column then fetches its own).
fn wanted_page(ctx: &Context<'_>) -> Option<(Option<i32>, OpportunityOrder, bool)> {
    use async_graphql::InputType;
    let fields = ctx
        .look_ahead()
        .field("columns")
        .field("opportunities")
        .selection_fields();
    let args = fields.first()?.arguments().ok()?;
    if fields
        .iter()
        .any(|f| f.arguments().ok().as_ref() != Some(&args))
    {
        return None;
    }
    let (mut first, mut order) = (None, OpportunityOrder::default());
    for (name, value) in args {
        match name.as_str() {
            "first" => first = <Option<i32>>::parse(Some(value)).ok()?,
            "orderBy" => {
                order = <Option<OpportunityOrder>>::parse(Some(value))
                    .ok()?
                    .unwrap_or_default()
            }
            _ => return None,
        }
    }
    if order.custom_key.is_some() {
        return None;
    }
    let total = fields.iter().any(|f| {
        async_graphql::Lookahead::from(*f)
            .field("totalCount")
            .exists()
    });
    Some((first, order, total))
}
