//! `crm import` and `crm export`: the data operations of the GraphQL API on
//! the command line, acting as a user (default: the configured admin) so
//! the same access rules apply.

use std::path::PathBuf;

use anyhow::Context;
use crm_core::access::{Principal, UserPrincipal};
use crm_core::identity::repo;
use crm_core::jobs::{self, JobStatus};
use crm_core::module::{ExportRun, ImportRun};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::modules::registry;

/// The user a command acts as.
pub async fn acting_user(app: &crm_core::App, email: Option<&str>) -> anyhow::Result<Principal> {
    let email = email
        .map(str::to_owned)
        .unwrap_or_else(|| app.config.admin_email.clone())
        .trim()
        .to_lowercase();
    let u = {
        let mut c = app.db.conn().await?;
        repo::user_by_email(&mut c.conn(), &email).await?
    }
    .with_context(|| format!("no user with email {email} (choose one with --as)"))?;
    anyhow::ensure!(u.active, "user {email} is deactivated");
    Ok(Principal::User(UserPrincipal {
        roles: u.role_list(),
        id: u.id,
        team_id: u.team_id,
        token_id: "cli".into(),
    }))
}

/// Options of `crm import`, as given on the command line.
pub struct ImportArgs {
    /// What the file holds (`accounts`): one of a module's imports.
    pub kind: String,
    /// The CSV file.
    pub file: PathBuf,
    /// Acting user's email.
    pub as_user: Option<String>,
    /// all-or-nothing or skip-bad-rows.
    pub mode: String,
    /// skip, update or create.
    pub duplicates: String,
    /// Validate only.
    pub dry_run: bool,
    /// auto, utf-8 or gbk.
    pub encoding: String,
    /// COLUMN=FIELD pairs.
    pub map: Vec<String>,
    /// Where to write the error report (default: FILE.errors.csv).
    pub errors_out: Option<PathBuf>,
}

/// Runs `crm import`; fails (non-zero exit) unless the job succeeded.
pub async fn import(config: crm_core::config::Config, a: ImportArgs) -> anyhow::Result<()> {
    let app = crm_core::App::start(config, std::sync::Arc::new(crate::schema::catalog())).await?;
    crm_core::identity::bootstrap::ensure_admin(&app).await?;
    let by = acting_user(&app, a.as_user.as_deref()).await?;
    let module = registry()
        .importer(&a.kind)
        .with_context(|| format!("no module imports {}", a.kind))?;
    let mut mapping = Vec::new();
    for m in &a.map {
        let (column, field) = m
            .split_once('=')
            .with_context(|| format!("--map {m:?}: write COLUMN=FIELD"))?;
        mapping.push(json!({"column": column.trim(), "field": field.trim()}));
    }
    // Shaped like the GraphQL `ImportOptions`.
    let options = json!({
        "mode": a.mode,
        "duplicates": a.duplicates,
        "dryRun": a.dry_run,
        "encoding": if a.encoding == "utf-8" { "utf8" } else { a.encoding.as_str() },
        "mapping": mapping,
    });
    anyhow::ensure!(a.file.is_file(), "{}: no such file", a.file.display());
    let (job_kind, params) = module.import_job(&app, &by, &a.kind, options)?;
    let name = a.file.file_name().map(|n| n.to_string_lossy().into_owned());
    let job = jobs::create(&app.db, &by, job_kind, &params, name).await?;
    jobs::start(&app.db, &job.id).await?;
    let size = std::fs::metadata(&a.file).map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let result = module
        .import(ImportRun {
            app: &app,
            by: &by,
            kind: &a.kind,
            file: &a.file,
            params: &params,
            job_id: &job.id,
            progress: &|n, pos, _| {
                bar.set_position(pos);
                bar.set_message(format!("{} rows", n.rows_done));
            },
        })
        .await;
    bar.finish_and_clear();
    let outcome = match result {
        Ok(o) => o,
        Err(e) => jobs::Outcome {
            status: JobStatus::Failed,
            counters: Default::default(),
            message: Some(jobs::describe(&e)),
            result_path: None,
        },
    };
    jobs::finish(&app.db, &job.id, &outcome).await?;
    let n = outcome.counters;
    println!(
        "{}: {} rows read, {} created, {} updated, {} skipped, {} failed in {:.1} s (job {})",
        a.file.display(),
        n.rows_done,
        n.created,
        n.updated,
        n.skipped,
        n.failed,
        started.elapsed().as_secs_f64(),
        job.id
    );
    if let Some(m) = &outcome.message {
        println!("{m}");
    }
    if n.failed > 0 {
        let out = a.errors_out.unwrap_or_else(|| {
            let mut p = a.file.clone().into_os_string();
            p.push(".errors.csv");
            p.into()
        });
        let report = jobs::error_report_csv(&app.db, &job.id).await?;
        std::fs::write(&out, report).with_context(|| format!("writing {}", out.display()))?;
        println!("error report: {}", out.display());
    }
    anyhow::ensure!(
        outcome.status == JobStatus::Succeeded,
        "import {}",
        outcome.status.as_text()
    );
    Ok(())
}

/// Runs `crm export`: writes the list to `out` (the same rows and columns
/// the acting user would get from the API).
pub async fn export(
    config: crm_core::config::Config,
    list: &str,
    out: PathBuf,
    format: crm_core::tabular::ExportFormat,
    filter: Option<String>,
    as_user: Option<String>,
) -> anyhow::Result<()> {
    let app = crm_core::App::start(config, std::sync::Arc::new(crate::schema::catalog())).await?;
    crm_core::identity::bootstrap::ensure_admin(&app).await?;
    let by = acting_user(&app, as_user.as_deref()).await?;
    let filter = filter
        .map(|f| serde_json::from_str::<serde_json::Value>(&f))
        .transpose()
        .context("--filter is not JSON")?;
    let module = registry()
        .exporter(list)
        .with_context(|| format!("no module exports {list}"))?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} rows ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let started = std::time::Instant::now();
    let outcome = module
        .export(ExportRun {
            app: &app,
            by: &by,
            kind: list,
            filter,
            format,
            out: out.clone(),
            progress: &|n| bar.set_position(n as u64),
        })
        .await?;
    bar.finish_and_clear();
    println!(
        "{}: {} rows in {:.1} s",
        out.display(),
        outcome.counters.rows_done,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
