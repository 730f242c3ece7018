//! `crm demo`: adds a realistic customer base and a user per role to a
//! database without accounts (existing teams and demo users are reused), for
//! trying the API and for benchmarks. It may run beside the server.

use crm_core::access::Principal;
use crm_core::config::Config;
use crm_core::identity::{repo, service};
use crm_customers::demo::{self, DemoSize};
use indicatif::{ProgressBar, ProgressStyle};

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

/// Runs the demo command.
pub async fn run(config: Config, size: DemoSize) -> anyhow::Result<()> {
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
    let tags = demo::ensure_tags(&app, &["VIP", "Partner", "Newsletter", "Key account"]).await?;
    let total = (size.accounts + size.contacts + size.activities + size.purchases) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    demo::generate(&app, &size, &owners, &tags, &|stage, done, _| {
        bar.set_message(stage.to_owned());
        bar.set_position(done as u64);
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "demo data: {} accounts, {} contacts, {} timeline entries, {} purchases in {:.1} s (seed {})",
        size.accounts,
        size.contacts,
        size.activities,
        size.purchases,
        started.elapsed().as_secs_f64(),
        size.seed
    );
    println!("\nsign in as any of these (password: {DEMO_PASSWORD}):");
    for (email, role, team) in USERS {
        println!("  {email:<26} {role:<14} team {team}");
    }
    println!("  the admin account from the first start also works");
    Ok(())
}
