//! The contract checks every replica runs each
//! `contract-renewal-check-secs`:
//!
//! - expiry: an ACTIVE contract past its end date becomes EXPIRED with an
//!   update conditional on the version it read (the kit's `update_row`),
//!   so of two replicas only one writes it and sends `contract.expired`;
//! - renewal: an ACTIVE contract with a renewal pipeline whose renewal
//!   date (end date − notice days) has come gets one opportunity in the
//!   first open stage of that pipeline, made through the opportunities'
//!   own create path (validation, stage history, prompts,
//!   `opportunity.created`), linked on the contract
//!   (`contract.renewal_created`), all in one transaction that first
//!   inserts the contract's `contract_renewals` marker: of several
//!   replicas exactly one inserts it, the others insert nothing (on
//!   PostgreSQL they wait for the winner's commit) and write nothing.

use std::time::Duration;

use crm_core::access::{Principal, RowFilter};
use crm_core::app::App;
use crm_core::entity::store;
use crm_core::error::{Error, Result};
use crm_core::ids;
use crm_customers::values::Money;
use tokio::sync::watch;

use super::repo::{self, ContractRow, Contracts};
use super::service::today;
use crate::opportunities::repo::Opportunities;
use crate::opportunities::service::OpportunityFields;
use crate::pipelines::repo as pipelines;
use crate::values::{self, ContractStatus, StageKind};

/// How many contracts one pass looks at per check.
const BATCH: i64 = 100;

/// The source of every renewal opportunity.
pub const RENEWAL_SOURCE: &str = "renewal";

/// Expires every ACTIVE contract whose end date has passed; returns how
/// many this process expired.
pub async fn expire_due(app: &App) -> Result<usize> {
    let today = values::store_date(today());
    let due = {
        let mut c = app.db.conn().await?;
        repo::due_for_expiry(&mut c.conn(), &today, BATCH).await?
    };
    let mut done = 0;
    for id in due {
        let mut tx = app.db.begin().await?;
        let Some(before) = store::get::<Contracts>(&mut tx.conn(), &RowFilter::All, &id).await?
        else {
            continue;
        };
        if before.status != ContractStatus::Active.as_str() || before.end_date >= today {
            continue; // changed since the look-up
        }
        let mut after = before.clone();
        after.status = ContractStatus::Expired.as_str().into();
        after.ended_at = Some(ids::now());
        after.updated_at = ids::now();
        let after =
            match store::update_row::<Contracts>(&mut tx.conn(), &after, before.version).await {
                Ok(a) => a,
                // Another replica (or a writer) changed it first.
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            };
        store::record::<Contracts>(
            &mut tx,
            &Principal::System,
            Some(&before),
            Some(&after),
            "expired",
        )
        .await?;
        match app.commit(tx).await {
            Ok(()) => done += 1,
            Err(Error::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Whether `c` (read in the claiming transaction) still wants a renewal
/// on `today`.
fn wants_renewal(c: &ContractRow, today: &str) -> bool {
    c.status == ContractStatus::Active.as_str()
        && c.deleted_at.is_none()
        && c.renewal_pipeline_id.is_some()
        && c.renewal_opportunity_id.is_none()
        && c.renewal_due_on.as_str() <= today
}

/// The renewal of one contract in one transaction; false when another
/// replica claimed it first or the contract no longer wants one.
async fn renew(app: &App, id: &str, today: &str) -> Result<bool> {
    let by = Principal::System;
    let mut tx = app.db.begin().await?;
    if !repo::claim_renewal(&mut tx.conn(), id, ids::now()).await? {
        return Ok(false); // another replica has it
    }
    let Some(before) = store::get::<Contracts>(&mut tx.conn(), &RowFilter::All, id).await? else {
        return Ok(false);
    };
    if !wants_renewal(&before, today) {
        return Ok(false); // changed since the look-up; the marker rolls back
    }
    let pipeline = before.renewal_pipeline_id.clone().unwrap_or_default();
    let stage = pipelines::stages_of(&mut tx.conn(), std::slice::from_ref(&pipeline), false)
        .await?
        .into_iter()
        .find(|s| StageKind::from_stored(&s.kind).is_ok_and(|k| k == StageKind::Open))
        .ok_or_else(|| {
            Error::invalid(
                "renewalPipelineId",
                format!("pipeline {pipeline} has no active open stage"),
            )
        })?;
    let name: String = format!("Renewal: {}", before.name)
        .chars()
        .take(200)
        .collect();
    let fields = OpportunityFields {
        name: Some(name),
        account_id: Some(before.account_id.clone()),
        owner_id: Some(before.owner_id.clone()),
        pipeline_id: Some(pipeline),
        stage_id: Some(stage.id),
        amount: Some(Some(Money {
            amount_minor: before.value,
            currency: before.currency.clone(),
        })),
        close_date: Some(Some(values::parse_date(&before.end_date)?)),
        source: Some(Some(RENEWAL_SOURCE.into())),
        ..Default::default()
    };
    let opp = store::create_in::<Opportunities>(&mut tx, app, &by, fields).await?;
    let mut after = before.clone();
    after.renewal_opportunity_id = Some(opp.id);
    after.updated_at = ids::now();
    let after = match store::update_row::<Contracts>(&mut tx.conn(), &after, before.version).await {
        Ok(a) => a,
        // A writer changed the contract meanwhile: the next pass retries.
        Err(Error::Conflict(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    store::record::<Contracts>(&mut tx, &by, Some(&before), Some(&after), "renewal_created")
        .await?;
    match app.commit(tx).await {
        Ok(()) => Ok(true),
        Err(Error::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates the renewal opportunity of every contract whose renewal date
/// has come; returns how many this process created. A contract whose
/// renewal fails (its pipeline has no open stage, an opportunity rule
/// refuses it) is logged and retried on the next pass.
pub async fn renew_due(app: &App) -> Result<usize> {
    let today = values::store_date(today());
    let due = {
        let mut c = app.db.conn().await?;
        repo::due_for_renewal(&mut c.conn(), &today, BATCH).await?
    };
    let mut done = 0;
    for id in due {
        match renew(app, &id, &today).await {
            Ok(true) => done += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(contract = %id, error = %e, "renewing a contract failed"),
        }
    }
    Ok(done)
}

/// Runs [`expire_due`] and [`renew_due`] every
/// `contract-renewal-check-secs` until shutdown.
pub async fn run(app: App, mut shutdown: watch::Receiver<bool>) {
    let Some(period) = app.config.contract_check_period else {
        return;
    };
    loop {
        if let Err(e) = expire_due(&app).await {
            tracing::warn!(error = %e, "expiring contracts failed; retrying");
        }
        match renew_due(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(contracts = n, "renewal opportunities created"),
            Err(e) => tracing::warn!(error = %e, "renewing contracts failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(period.max(Duration::from_millis(100))) => {}
            _ = shutdown.changed() => return,
        }
    }
}
