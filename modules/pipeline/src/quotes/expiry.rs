//! Quote expiry: each process looks for SENT quotes past their valid-until
//! date and expires each with an update conditional on the version it read
//! (the kit's `update_row`), so when two replicas find the same quote, the
//! second one's update matches no row, rolls back and writes nothing: one
//! `quote.expired` event per quote, in the transaction of the change.

use std::time::Duration;

use crm_core::access::{Principal, RowFilter};
use crm_core::app::App;
use crm_core::entity::store;
use crm_core::error::{Error, Result};
use crm_core::ids;
use tokio::sync::watch;

use super::repo::{self, Quotes};
use super::service::today;
use crate::values::{self, QuoteStatus};

/// How many quotes one pass looks at.
const BATCH: i64 = 100;

/// Expires every SENT quote whose valid-until date has passed; returns how
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
        let Some(before) = store::get::<Quotes>(&mut tx.conn(), &RowFilter::All, &id).await? else {
            continue;
        };
        if before.status != QuoteStatus::Sent.as_str() || before.valid_until >= today {
            continue; // changed since the look-up
        }
        let mut after = before.clone();
        after.status = QuoteStatus::Expired.as_str().into();
        after.decided_at = Some(ids::now());
        after.updated_at = ids::now();
        let after = match store::update_row::<Quotes>(&mut tx.conn(), &after, before.version).await
        {
            Ok(a) => a,
            // Another replica (or a writer) changed it first.
            Err(Error::Conflict(_)) => continue,
            Err(e) => return Err(e),
        };
        store::record::<Quotes>(
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

/// Runs [`expire_due`] every second until shutdown.
pub async fn run(app: App, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = expire_due(&app).await {
            tracing::warn!(error = %e, "expiring quotes failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
