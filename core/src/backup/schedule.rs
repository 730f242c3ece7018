//! Scheduled backups: `crm serve` with `backup-dir` set writes
//! `crm-backup-<UTC time>.jsonl` there every `backup-interval-secs` and keeps
//! the newest `backup-keep` files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use crate::db::Db;
use crate::error::{Error, Result};

/// Where, how often and how many.
#[derive(Clone, Debug)]
pub struct BackupSettings {
    /// Directory for the files; `None` turns scheduled backups off.
    pub dir: Option<PathBuf>,
    /// Time between backups.
    pub interval: Duration,
    /// How many files to keep (the oldest beyond this are deleted).
    pub keep: usize,
}

const PREFIX: &str = "crm-backup-";
const SUFFIX: &str = ".jsonl";

/// Writes one backup into `dir` and prunes old ones; returns the new file.
pub async fn backup_now(db: &Db, dir: &Path, keep: usize) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Internal(format!("cannot create {}: {e}", dir.display())))?;
    // Fixed-width UTC time with milliseconds: names sort by age and two
    // backups in one second do not collide.
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let path = dir.join(format!("{PREFIX}{stamp}{SUFFIX}"));
    super::backup_to_file(db, &path).await?;
    prune(dir, keep)?;
    Ok(path)
}

/// Deletes the oldest complete backups beyond `keep`.
fn prune(dir: &Path, keep: usize) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Internal(format!("cannot list {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for old in &files[..excess] {
        std::fs::remove_file(old)
            .map_err(|e| Error::Internal(format!("cannot delete {}: {e}", old.display())))?;
    }
    Ok(())
}

/// Runs scheduled backups until shutdown (returns at once when off).
pub async fn run(db: Db, settings: BackupSettings, mut shutdown: watch::Receiver<bool>) {
    let Some(dir) = settings.dir else { return };
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: the first backup is one interval after
    // start, so a crash loop does not fill the directory.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        match backup_now(&db, &dir, settings.keep).await {
            Ok(path) => tracing::info!(file = %path.display(), "scheduled backup written"),
            Err(e) => {
                let detail = match &e {
                    Error::Internal(d) | Error::Unavailable(d) => d.clone(),
                    other => other.to_string(),
                };
                tracing::error!(error = %detail, "scheduled backup failed; retrying at the next interval");
            }
        }
    }
}
