//! `crm webhook list|deliveries|redeliver`: the webhook endpoints and their
//! delivery log for operators, straight from the database (as the service
//! itself, so every endpoint is visible).

use crm_core::access::{Principal, RowFilter};
use crm_core::config::Config;
use crm_core::webhooks;

/// Lists every endpoint.
pub async fn list(config: Config) -> anyhow::Result<()> {
    let app = crm_core::App::start(config, std::sync::Arc::new(crate::schema::catalog())).await?;
    let mut c = app.db.conn().await?;
    let rows = webhooks::endpoints_in(&mut c.conn(), &RowFilter::All).await?;
    println!(
        "{:<40} {:<9} {:<6} {:>8}  {:<40} topics",
        "id", "status", "active", "cursor", "url"
    );
    for e in rows {
        println!(
            "{:<40} {:<9} {:<6} {:>8}  {:<40} {}",
            e.id,
            e.status,
            e.active,
            e.event_cursor,
            e.url,
            e.topic_list().join(",")
        );
        if let Some(why) = &e.status_reason {
            println!("  {why}");
        }
    }
    Ok(())
}

/// Lists an endpoint's newest deliveries with their last attempt.
pub async fn deliveries(
    config: Config,
    endpoint: &str,
    status: Option<&str>,
    limit: i64,
) -> anyhow::Result<()> {
    let app = crm_core::App::start(config, std::sync::Arc::new(crate::schema::catalog())).await?;
    let mut c = app.db.conn().await?;
    let mut conn = c.conn();
    if webhooks::endpoint(&mut conn, endpoint).await?.is_none() {
        anyhow::bail!("no webhook endpoint {endpoint}");
    }
    let rows = webhooks::deliveries(&mut conn, endpoint, status, None, limit).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let attempts = webhooks::attempts_of(&mut conn, &ids).await?;
    println!(
        "{:<40} {:<26} {:<24} {:<9} {:>8}  last answer",
        "id", "created (UTC)", "type", "status", "attempts"
    );
    for d in rows {
        let last = attempts
            .iter()
            .rev()
            .find(|a| a.delivery_id == d.id)
            .map(|a| match (a.status_code, &a.error) {
                (Some(code), _) => format!("HTTP {code} in {} ms", a.latency_ms),
                (None, Some(e)) => e.clone(),
                (None, None) => String::new(),
            })
            .unwrap_or_default();
        println!(
            "{:<40} {:<26} {:<24} {:<9} {:>8}  {last}",
            d.id,
            d.created_at.format("%Y-%m-%d %H:%M:%S"),
            d.kind,
            d.status,
            d.attempts
        );
    }
    Ok(())
}

/// Sends a delivery again (resuming a failing endpoint).
pub async fn redeliver(config: Config, delivery: &str) -> anyhow::Result<()> {
    let app = crm_core::App::start(config, std::sync::Arc::new(crate::schema::catalog())).await?;
    let row =
        webhooks::graphql::redeliver(&app, &Principal::System, &RowFilter::All, delivery).await?;
    println!(
        "queued {} (message {}) for endpoint {}",
        row.id, row.message_id, row.endpoint_id
    );
    Ok(())
}
