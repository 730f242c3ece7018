//! crm-pipeline: pipelines and their stages, opportunities, the stage
//! history and the `pipelineEvents` subscription.
//!
//! Downstream of `crm-customers` (an opportunity is with an account);
//! customers never names this crate, so an account's opportunities are the
//! root field `opportunities(filter: {accountId})`. Exports its schema parts
//! ([`PipelineQuery`], [`PipelineMutation`], [`PipelineSubscription`]) and
//! one [`MODULE`] value implementing `crm_core::module::Module`. Access is
//! decided by core: resolvers ask `row_filter` for the rows they may touch
//! and never look at roles.

pub mod contracts;
pub mod demo;
pub mod forecasts;
pub mod module;
pub mod opportunities;
pub mod pipelines;
pub mod products;
pub mod quotes;
pub mod values;

use async_graphql::{Context, ID, MergedObject, Subscription};
use crm_core::policy::catalog::FieldUse;
use futures_util::Stream;

pub use module::MODULE;

/// Event topic of this module.
pub const TOPIC: &str = "pipeline";

/// Resource types this module exposes to access policies.
pub const RESOURCES: &[&str] = &[
    "Opportunity",
    "OpportunityContactRole",
    "OpportunityLineItem",
    "Pipeline",
    "PipelineStage",
    "Product",
    "PriceBook",
    "PriceBookEntry",
    "Quota",
    "ForecastAdjustment",
    "Quote",
    "QuoteLineItem",
    "Contract",
];

/// Arguments that filter, order by or change fields without naming them in
/// a `Create…Input` / `Update…Input` (see `crm_customers::FIELD_USES`).
pub const FIELD_USES: &[FieldUse] = &[
    FieldUse::write(
        "Mutation.assignOpportunities(ownerId)",
        &["Opportunity.ownerId"],
    ),
    FieldUse::read(
        "Subscription.pipelineEvents(pipelineId)",
        &["Opportunity.pipelineId"],
    ),
    FieldUse::read(
        "OpportunityFilterInput.accountId",
        &["Opportunity.accountId"],
    ),
    FieldUse::read(
        "OpportunityFilterInput.pipelineId",
        &["Opportunity.pipelineId"],
    ),
    FieldUse::read("OpportunityFilterInput.stageId", &["Opportunity.stageId"]),
    FieldUse::read("OpportunityFilterInput.tagId", &["Opportunity.tagIds"]),
    FieldUse::read("OpportunityFilterInput.ownerId", &["Opportunity.ownerId"]),
    FieldUse::read(
        "OpportunityFilterInput.closeDateFrom",
        &["Opportunity.closeDate"],
    ),
    FieldUse::read(
        "OpportunityFilterInput.closeDateTo",
        &["Opportunity.closeDate"],
    ),
    FieldUse::read(
        "OpportunityFilterInput.forecastCategory",
        &["Opportunity.forecastCategory"],
    ),
    FieldUse::read(
        "OpportunityFilterInput.search",
        &["Opportunity.name", "Opportunity.nextStep"],
    ),
    FieldUse::read("OpportunityFilterInput.deleted", &[]),
    FieldUse::read(
        "OpportunityFilterInput.custom",
        &["Opportunity.custom.{key}"],
    ),
    FieldUse::read("OpportunityOrder.field", &[]),
    FieldUse::read("OpportunityOrder.direction", &[]),
    FieldUse::read("OpportunityOrder.customKey", &["Opportunity.custom.{}"]),
    FieldUse::read("OpportunityOrderField.NAME", &["Opportunity.name"]),
    FieldUse::read(
        "OpportunityOrderField.CREATED_AT",
        &["Opportunity.createdAt"],
    ),
    FieldUse::read(
        "OpportunityOrderField.UPDATED_AT",
        &["Opportunity.updatedAt"],
    ),
    FieldUse::read(
        "OpportunityOrderField.PROBABILITY",
        &["Opportunity.probability"],
    ),
    FieldUse::write(
        "Mutation.addOpportunityLineItem(opportunityVersion)",
        &["Opportunity.amount"],
    ),
    FieldUse::write(
        "Mutation.updateOpportunityLineItem(opportunityVersion)",
        &["Opportunity.amount"],
    ),
    FieldUse::write(
        "Mutation.removeOpportunityLineItem(opportunityVersion)",
        &["Opportunity.amount"],
    ),
    FieldUse::write(
        "Mutation.addOpportunityContactRole(opportunityVersion)",
        &["Opportunity.primaryContactId"],
    ),
    FieldUse::write(
        "Mutation.removeOpportunityContactRole(opportunityVersion)",
        &["Opportunity.primaryContactId"],
    ),
    // A board's sums are computed from amounts (and probabilities).
    FieldUse::read("BoardColumn.amounts", &["Opportunity.amount"]),
    FieldUse::read(
        "BoardColumn.weightedAmounts",
        &["Opportunity.amount", "Opportunity.probability"],
    ),
    FieldUse::read(
        "ProductFilterInput.search",
        &["Product.name", "Product.code"],
    ),
    FieldUse::read("ProductFilterInput.code", &["Product.code"]),
    FieldUse::read("ProductFilterInput.family", &["Product.family"]),
    FieldUse::read("ProductFilterInput.active", &["Product.active"]),
    FieldUse::read("ProductFilterInput.custom", &["Product.custom.{key}"]),
    FieldUse::read("ProductOrder.field", &[]),
    FieldUse::read("ProductOrder.direction", &[]),
    FieldUse::read("ProductOrderField.NAME", &["Product.name"]),
    FieldUse::read("ProductOrderField.CODE", &["Product.code"]),
    FieldUse::read("ProductOrderField.CREATED_AT", &["Product.createdAt"]),
    FieldUse::read("ProductOrderField.UPDATED_AT", &["Product.updatedAt"]),
    FieldUse::read("Query.priceBooks(currency)", &["PriceBook.currency"]),
    FieldUse::read(
        "PriceBookEntryFilterInput.priceBookId",
        &["PriceBookEntry.priceBookId"],
    ),
    FieldUse::read(
        "PriceBookEntryFilterInput.productId",
        &["PriceBookEntry.productId"],
    ),
    FieldUse::read(
        "PriceBookEntryFilterInput.active",
        &["PriceBookEntry.active"],
    ),
    // Forecasts: which deals count reads their close date and owner; the
    // figures are computed from amounts, stages and forecast categories.
    FieldUse::read("Query.forecast(period)", &[]),
    FieldUse::read("Query.forecast(from)", &["Opportunity.closeDate"]),
    FieldUse::read("Query.forecast(to)", &["Opportunity.closeDate"]),
    FieldUse::read("Query.forecast(teamId)", &["Opportunity.ownerId"]),
    FieldUse::read("Query.forecast(ownerId)", &["Opportunity.ownerId"]),
    FieldUse::read(
        "ForecastRow.closedWon",
        &["Opportunity.amount", "Opportunity.stageId"],
    ),
    FieldUse::read(
        "ForecastRow.commit",
        &[
            "Opportunity.amount",
            "Opportunity.stageId",
            "Opportunity.forecastCategory",
        ],
    ),
    FieldUse::read(
        "ForecastRow.bestCase",
        &[
            "Opportunity.amount",
            "Opportunity.stageId",
            "Opportunity.forecastCategory",
        ],
    ),
    FieldUse::read(
        "ForecastRow.pipeline",
        &[
            "Opportunity.amount",
            "Opportunity.stageId",
            "Opportunity.forecastCategory",
        ],
    ),
    FieldUse::read(
        "ForecastRow.weighted",
        &[
            "Opportunity.amount",
            "Opportunity.probability",
            "Opportunity.stageId",
            "Opportunity.forecastCategory",
        ],
    ),
    FieldUse::read("ForecastRow.closedWonCount", &["Opportunity.stageId"]),
    FieldUse::read(
        "ForecastRow.commitCount",
        &["Opportunity.stageId", "Opportunity.forecastCategory"],
    ),
    FieldUse::read(
        "ForecastRow.bestCaseCount",
        &["Opportunity.stageId", "Opportunity.forecastCategory"],
    ),
    FieldUse::read(
        "ForecastRow.pipelineCount",
        &["Opportunity.stageId", "Opportunity.forecastCategory"],
    ),
    FieldUse::read("ForecastRow.lostCount", &["Opportunity.stageId"]),
    FieldUse::read("ForecastRow.quota", &["Quota.amount"]),
    FieldUse::read(
        "ForecastRow.attainment",
        &["Opportunity.amount", "Opportunity.stageId", "Quota.amount"],
    ),
    FieldUse::read("QuotaFilterInput.ownerId", &["Quota.ownerId"]),
    FieldUse::read("QuotaFilterInput.period", &["Quota.period"]),
    FieldUse::read("QuotaFilterInput.from", &["Quota.periodStart"]),
    FieldUse::read("QuotaFilterInput.to", &["Quota.periodStart"]),
    FieldUse::read(
        "ForecastAdjustmentFilterInput.ownerId",
        &["ForecastAdjustment.ownerId"],
    ),
    FieldUse::read(
        "ForecastAdjustmentFilterInput.teamId",
        &["ForecastAdjustment.teamId"],
    ),
    FieldUse::read(
        "ForecastAdjustmentFilterInput.period",
        &["ForecastAdjustment.period"],
    ),
    FieldUse::read(
        "ForecastAdjustmentFilterInput.periodStart",
        &["ForecastAdjustment.periodStart"],
    ),
    FieldUse::read(
        "ForecastAdjustmentFilterInput.figure",
        &["ForecastAdjustment.figure"],
    ),
    FieldUse::read("QuoteFilterInput.opportunityId", &["Quote.opportunityId"]),
    FieldUse::read("QuoteFilterInput.accountId", &["Quote.accountId"]),
    FieldUse::read("QuoteFilterInput.status", &["Quote.status"]),
    FieldUse::read("QuoteFilterInput.number", &["Quote.number"]),
    FieldUse::read("QuoteFilterInput.search", &["Quote.number", "Quote.name"]),
    FieldUse::read("QuoteOrder.field", &[]),
    FieldUse::read("QuoteOrder.direction", &[]),
    FieldUse::read("QuoteOrderField.CREATED_AT", &["Quote.createdAt"]),
    FieldUse::read("QuoteOrderField.UPDATED_AT", &["Quote.updatedAt"]),
    FieldUse::read("QuoteOrderField.NUMBER", &["Quote.number"]),
    FieldUse::read("QuoteOrderField.VALID_UNTIL", &["Quote.validUntil"]),
    FieldUse::write("Mutation.setQuoteStatus(status)", &["Quote.status"]),
    FieldUse::read("ContractFilterInput.accountId", &["Contract.accountId"]),
    FieldUse::read(
        "ContractFilterInput.opportunityId",
        &["Contract.opportunityId"],
    ),
    FieldUse::read("ContractFilterInput.quoteId", &["Contract.quoteId"]),
    FieldUse::read("ContractFilterInput.status", &["Contract.status"]),
    FieldUse::read("ContractFilterInput.ownerId", &["Contract.ownerId"]),
    FieldUse::read("ContractFilterInput.endDateFrom", &["Contract.endDate"]),
    FieldUse::read("ContractFilterInput.endDateTo", &["Contract.endDate"]),
    FieldUse::read("ContractFilterInput.search", &["Contract.name"]),
    FieldUse::read("ContractFilterInput.deleted", &[]),
    FieldUse::read("ContractOrder.field", &[]),
    FieldUse::read("ContractOrder.direction", &[]),
    FieldUse::read("ContractOrderField.CREATED_AT", &["Contract.createdAt"]),
    FieldUse::read("ContractOrderField.UPDATED_AT", &["Contract.updatedAt"]),
    FieldUse::read("ContractOrderField.NAME", &["Contract.name"]),
    FieldUse::read("ContractOrderField.START_DATE", &["Contract.startDate"]),
    FieldUse::read("ContractOrderField.END_DATE", &["Contract.endDate"]),
    FieldUse::write("Mutation.setContractStatus(status)", &["Contract.status"]),
    // A contract made from a quote takes these from it.
    FieldUse::write(
        "CreateContractFromQuoteInput.quoteId",
        &[
            "Contract.quoteId",
            "Contract.accountId",
            "Contract.opportunityId",
            "Contract.value",
        ],
    ),
    FieldUse::write("CreateContractFromQuoteInput.name", &["Contract.name"]),
    FieldUse::write(
        "CreateContractFromQuoteInput.startDate",
        &["Contract.startDate"],
    ),
    FieldUse::write(
        "CreateContractFromQuoteInput.endDate",
        &["Contract.endDate"],
    ),
    FieldUse::write(
        "CreateContractFromQuoteInput.ownerId",
        &["Contract.ownerId"],
    ),
    FieldUse::write(
        "CreateContractFromQuoteInput.renewalPipelineId",
        &["Contract.renewalPipelineId"],
    ),
    FieldUse::write(
        "CreateContractFromQuoteInput.renewalNoticeDays",
        &["Contract.renewalNoticeDays"],
    ),
    FieldUse::write(
        "Mutation.makeQuotePrimary(opportunityVersion)",
        &["Opportunity.primaryQuoteId", "Opportunity.amount"],
    ),
];

/// How this crate's records are owned: opportunities by their owner;
/// pipelines and stages are shared configuration (only `all` matches).
pub const OWNERSHIP: &[crm_core::ownership::Ownership] = {
    use crm_core::ownership::Ownership;
    &[
        Ownership::column("Opportunity"),
        Ownership::shared("Pipeline"),
        Ownership::shared("PipelineStage"),
        Ownership::shared("Product"),
        Ownership::shared("PriceBook"),
        Ownership::shared("PriceBookEntry"),
        Ownership::through("OpportunityLineItem", "Opportunity"),
        Ownership::through("OpportunityContactRole", "Opportunity"),
        Ownership::column("Quota"),
        Ownership::column("ForecastAdjustment"),
        Ownership::through("Quote", "Opportunity"),
        Ownership::through("QuoteLineItem", "Quote"),
        Ownership::column("Contract"),
    ]
};

/// The module's queries.
#[derive(MergedObject, Default)]
pub struct PipelineQuery(DealsQuery, AgreementsQuery, PlanningQuery);

/// Pipelines, deals and the board (grouped so the merged root stays
/// shallow enough for the compiler).
#[derive(MergedObject, Default)]
pub struct DealsQuery(
    pipelines::PipelinesQuery,
    opportunities::OpportunityQuery,
    opportunities::board::BoardQuery,
);

/// Products, quotes and contracts.
#[derive(MergedObject, Default)]
pub struct AgreementsQuery(
    products::ProductQuery,
    quotes::QuoteQuery,
    contracts::ContractQuery,
);

/// Forecasts, quotas and adjustments.
#[derive(MergedObject, Default)]
pub struct PlanningQuery(
    forecasts::report::ForecastQuery,
    forecasts::quotas::QuotaQuery,
    forecasts::adjustments::AdjustmentQuery,
);

/// The module's mutations.
#[derive(MergedObject, Default)]
pub struct PipelineMutation(
    DealsMutation,
    AgreementsMutation,
    CatalogMutation,
    PlanningMutation,
);

/// Pipelines and deals.
#[derive(MergedObject, Default)]
pub struct DealsMutation(
    pipelines::PipelinesMutation,
    opportunities::OpportunityMutation,
    opportunities::line_items::LineItemMutation,
    opportunities::contact_roles::ContactRoleMutation,
    opportunities::OpportunityExportMutation,
    opportunities::import::OpportunityImportMutation,
);

/// Quotes and contracts.
#[derive(MergedObject, Default)]
pub struct AgreementsMutation(
    quotes::QuoteMutation,
    contracts::ContractMutation,
    contracts::export::ContractExportMutation,
);

/// Products and price books.
#[derive(MergedObject, Default)]
pub struct CatalogMutation(
    products::ProductMutation,
    products::export::ProductExportMutation,
    products::import::ProductImportMutation,
);

/// Quotas and forecast adjustments.
#[derive(MergedObject, Default)]
pub struct PlanningMutation(
    forecasts::quotas::QuotaMutation,
    forecasts::adjustments::AdjustmentMutation,
);

/// The module's subscriptions.
#[derive(Default)]
pub struct PipelineSubscription;

#[Subscription]
impl PipelineSubscription {
    /// Changes to opportunities (and to pipelines and stages) that you may
    /// see: `opportunity.created`, `opportunity.updated`,
    /// `opportunity.stage_changed`, `opportunity.won`, `opportunity.lost`,
    /// `quote.created`, `quote.updated`, `quote.sent`, `quote.accepted`,
    /// `quote.rejected`, `quote.expired` (quote events carry
    /// `opportunityId`, `accountId` and the deal's `pipelineId`),
    /// `contract.created`, `contract.updated`, `contract.activated`,
    /// `contract.expired`, `contract.terminated`,
    /// `contract.renewal_created`, `contract.deleted`, `contract.restored`
    /// (contract events carry `accountId`, `opportunityId` and, for a
    /// contract with an opportunity, that deal's `pipelineId`)
    /// … with the changed fields you may read; only one pipeline's with
    /// `pipelineId` (events whose payload names that `pipelineId`: a
    /// contract without an opportunity is in no pipeline and appears only
    /// without `pipelineId`).
    /// Stored events after `after` first, then live ones, none missed and
    /// none twice: resume after a disconnect with the last cursor.
    async fn pipeline_events(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        pipeline_id: Option<ID>,
    ) -> crm_core::Result<
        impl Stream<Item = async_graphql::Result<crm_core::graphql::DomainEvent>> + use<>,
    > {
        let wanted: Box<dyn Fn(&crm_core::events::Event) -> bool + Send + Sync> = match pipeline_id
        {
            None => Box::new(|_| true),
            Some(p) => Box::new(move |e| in_pipeline(&e.payload, &p)),
        };
        crm_core::graphql::event_stream_where(ctx, after, Some(vec![TOPIC.to_owned()]), wanted)
            .await
    }
}

/// Whether an event's payload names `pipeline` as its pipeline.
fn in_pipeline(payload: &str, pipeline: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| {
            v.get("pipelineId")
                .and_then(|p| p.as_str())
                .map(|p| p == pipeline)
        })
        .unwrap_or(false)
}
