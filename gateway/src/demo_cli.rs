//! `crm demo`: adds teams, a user per role (existing teams and demo users
//! are reused) and every module's demo data (a realistic customer base, in
//! a database without accounts), for trying the API and for benchmarks. It
//! may run beside the server.

use crm_core::access::Principal;
use crm_core::config::Config;
use crm_core::identity::{repo, service};
use crm_core::module::DemoRun;
use indicatif::{ProgressBar, ProgressStyle};

use crate::modules::MODULES;

/// The password of every demo user.
pub const DEMO_PASSWORD: &str = "demo-password-1";

/// The demo users: (email, role, team).
const USERS: &[(&str, &str, &str)] = &[
    ("manager@demo.example", "sales_manager", "Sales"),
    ("rep.east@demo.example", "sales_rep", "Sales East"),
    ("rep.west@demo.example", "sales_rep", "Sales West"),
    ("marketing@demo.example", "marketing", "Marketing"),
    ("support@demo.example", "support", "Support"),
    ("it@demo.example", "it_admin", "IT"),
];

/// Runs the demo command with the modules' `counts` (flag name → count).
pub async fn run(
    config: Config,
    counts: &std::collections::BTreeMap<&'static str, usize>,
    seed: u64,
) -> anyhow::Result<()> {
    let app = crm_core::App::start(config, std::sync::Arc::new(crate::schema::catalog())).await?;
    crm_core::identity::bootstrap::ensure_admin(&app).await?;
    let system = Principal::System;
    // Teams: Sales with East and West below it, and one each for the others.
    let mut team_ids = std::collections::HashMap::new();
    let existing = {
        let mut c = app.db.conn().await?;
        repo::all_teams(&mut c.conn()).await?
    };
    for (name, parent) in [
        ("Sales", None),
        ("Sales East", Some("Sales")),
        ("Sales West", Some("Sales")),
        ("Marketing", None),
        ("Support", None),
        ("IT", None),
    ] {
        let id = match existing.iter().find(|t| t.name == name) {
            Some(t) => t.id.clone(),
            None => {
                let parent_id = parent.and_then(|p| team_ids.get(p).cloned());
                service::create_team(&app, &system, name, parent_id)
                    .await?
                    .id
            }
        };
        team_ids.insert(name, id);
    }
    let mut owners = Vec::new();
    for (email, role, team) in USERS {
        let found = {
            let mut c = app.db.conn().await?;
            repo::user_by_email(&mut c.conn(), email).await?
        };
        let user = match found {
            Some(u) => u,
            None => {
                service::create_user(
                    &app,
                    &system,
                    service::NewUser {
                        email: (*email).to_owned(),
                        display_name: email.split('@').next().unwrap_or(email).replace('.', " "),
                        password: Some(DEMO_PASSWORD.to_owned()),
                        roles: vec![(*role).to_owned()],
                        team_id: team_ids.get(team).cloned(),
                    },
                )
                .await?
            }
        };
        if role.starts_with("sales") {
            owners.push(user.id);
        }
    }
    for m in MODULES.iter().filter(|m| !m.demo_counts().is_empty()) {
        let total: usize = m
            .demo_counts()
            .iter()
            .map(|c| counts.get(c.name).copied().unwrap_or(0))
            .sum();
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let started = std::time::Instant::now();
        let summary = m
            .demo(DemoRun {
                app: &app,
                counts,
                seed,
                owners: &owners,
                progress: &|stage, done, _| {
                    bar.set_message(stage.to_owned());
                    bar.set_position(done as u64);
                },
            })
            .await?;
        bar.finish_and_clear();
        if let Some(summary) = summary {
            println!(
                "demo data: {summary} in {:.1} s (seed {seed})",
                started.elapsed().as_secs_f64(),
            );
        }
    }
    println!("\nsign in as any of these (password: {DEMO_PASSWORD}):");
    for (email, role, team) in USERS {
        println!("  {email:<26} {role:<14} team {team}");
    }
    println!("  the admin account from the first start also works");
    Ok(())
}
