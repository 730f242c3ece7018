//! The `crm` command line: `serve` (the default), `migrate`, `schema`,
//! `user …`, `demo`, `policy …`, `import`, `export`, `backup`, `restore`.
//! Every setting of [`crm_core::config::SETTINGS`] is also a flag,
//! documented in `--help` with its environment variable and default: all of
//! them on `serve` (and `crm` alone), and on every other command only the
//! settings it reads, under their own heading after the command's options.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::builder::PossibleValuesParser;
use clap::{Arg, ArgMatches, Command, CommandFactory, FromArgMatches, Parser, Subcommand};
use crm_core::access::{Principal, RowFilter};
use crm_core::config::{Config, SETTINGS};
use crm_core::identity::{repo, service};
use crm_core::module::Module;

use crate::modules::MODULES;

/// How to filter and format the log (read by the logger, not a setting).
const LOGGING_HELP: &str = "Logging: the CRM_LOG environment variable filters the log \
    (default: info; e.g. CRM_LOG=debug or CRM_LOG=crm_core=debug,info); \
    --log-format json writes one JSON object a line.";

/// Command-line interface of the CRM service.
#[derive(Parser, Debug)]
#[command(
    name = "crm",
    version,
    about = "CRM GraphQL service (serves when no command is given)",
    long_about = None,
    after_help = LOGGING_HELP
)]
pub struct Cli {
    /// Read settings from this TOML file (default: ./crm.toml if present)
    /// [env: CRM_CONFIG]
    #[arg(
        long,
        global = true,
        env = "CRM_CONFIG",
        hide_env = true,
        value_name = "FILE",
        help_heading = SETTINGS_HEADING
    )]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve GraphQL over HTTP and WebSocket (the default).
    #[command(after_help = LOGGING_HELP)]
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Manage users directly in the database.
    #[command(subcommand)]
    User(UserCmd),
    /// Add demo customers (accounts, contacts, timeline, purchases), teams
    /// and a user per role (both kept if they exist); refused when the
    /// database already has accounts. Works while the server runs, which
    /// sees the data at once. Each module adds its counts as flags.
    Demo {
        /// Random seed: the same seed gives the same data set.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Check or explain access policies.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Look at webhook endpoints and their delivery log; send a delivery
    /// again.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Import accounts or contacts from a CSV file (UTF-8 or GBK).
    Import {
        /// What the file holds: accounts or contacts.
        #[arg(value_parser = kinds(|m| m.imports()))]
        entity: String,
        /// The CSV file; the first row names the columns.
        file: PathBuf,
        /// Act as this user (default: the admin-email user). Their access
        /// rules apply and they own rows without an owner column.
        #[arg(long = "as")]
        as_user: Option<String>,
        /// all-or-nothing: any bad row and nothing is written;
        /// skip-bad-rows: write the good rows, report the bad ones.
        #[arg(long, default_value = "all-or-nothing", value_parser = ["all-or-nothing", "skip-bad-rows"])]
        mode: String,
        /// Rows matching an existing record (same id, first email or
        /// account name): skip, update or create.
        #[arg(long, default_value = "skip", value_parser = ["skip", "update", "create"])]
        duplicates: String,
        /// Check everything, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// File encoding: auto, utf-8 or gbk.
        #[arg(long, default_value = "auto", value_parser = ["auto", "utf-8", "utf8", "gbk"])]
        encoding: String,
        /// Read a column into a field: --map "Company=account" (repeatable;
        /// FIELD "ignore" skips a column).
        #[arg(long = "map", value_name = "COLUMN=FIELD")]
        map: Vec<String>,
        /// Where to write the error report (default: FILE.errors.csv).
        #[arg(long)]
        errors: Option<PathBuf>,
    },
    /// Export accounts, contacts, the timeline or purchases as CSV or JSON
    /// Lines: the rows and fields the acting user may read.
    Export {
        /// Which list.
        #[arg(value_parser = kinds(|m| m.exports()))]
        list: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// csv or jsonl.
        #[arg(long, default_value = "csv", value_parser = ["csv", "jsonl"])]
        format: String,
        /// The list's filter as JSON, shaped like the GraphQL filter input,
        /// e.g. '{"search":"acme","lifecycleStage":"ACTIVE"}'.
        #[arg(long)]
        filter: Option<String>,
        /// Act as this user (default: the admin-email user).
        #[arg(long = "as")]
        as_user: Option<String>,
    },
    /// Write a consistent snapshot of the whole database (safe while the
    /// service runs) in the portable format, readable by either backend.
    Backup {
        /// The file to write ("-" for standard output).
        #[arg(long)]
        out: PathBuf,
    },
    /// Load a backup into an empty database (it is migrated first).
    Restore {
        /// The backup file.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCmd {
    /// Lint a policy file against the built schema (default:
    /// <policy-dir>/policy.csv); exits non-zero on any problem.
    Check {
        /// The policy.csv to check (model.conf is read from beside it).
        file: Option<PathBuf>,
    },
    /// Show whether a user may do something, the row scope, and the lines
    /// that decided.
    Explain {
        /// The user's email.
        #[arg(long)]
        user: String,
        /// Resource: a type (User), a field (User.email) or an operation
        /// (Query.users).
        #[arg(long)]
        resource: String,
        /// Action: read, read:team, create, write, call, …
        #[arg(long)]
        action: String,
    },
}

#[derive(Subcommand, Debug)]
enum WebhookCmd {
    /// List every endpoint: state, cursor, URL, topics.
    List,
    /// An endpoint's newest deliveries with their last answer.
    Deliveries {
        /// The endpoint (`whk_…`).
        endpoint: String,
        /// Only pending, succeeded or failed ones.
        #[arg(long, value_parser = ["pending", "succeeded", "failed"])]
        status: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Send a delivery again (same webhook-id); resumes a failing endpoint.
    Redeliver {
        /// The delivery (`whd_…`).
        delivery: String,
    },
}

#[derive(Subcommand, Debug)]
enum UserCmd {
    /// Create a user.
    Create {
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// Display name (default: the email).
        #[arg(long)]
        name: Option<String>,
        /// Password (default: read from the CRM_NEW_PASSWORD environment variable).
        #[arg(long, env = "CRM_NEW_PASSWORD", hide_env_values = true)]
        password: String,
        /// Roles, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "sales_rep")]
        roles: Vec<String>,
    },
    /// List users.
    List,
    /// Set a user's password.
    SetPassword {
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// New password (default: read from CRM_NEW_PASSWORD).
        #[arg(long, env = "CRM_NEW_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

/// The values of an import or export kind argument: every compiled-in
/// module's.
fn kinds(of: fn(&dyn Module) -> &'static [&'static str]) -> PossibleValuesParser {
    PossibleValuesParser::new(MODULES.iter().flat_map(|m| of(*m)).copied())
}

/// Adds every module's demo counts to `crm demo` as flags.
fn with_demo_counts(cmd: Command) -> Command {
    cmd.mut_subcommand("demo", |mut demo| {
        for c in MODULES.iter().flat_map(|m| m.demo_counts()) {
            demo = demo.arg(
                Arg::new(c.name)
                    .long(c.name)
                    .value_name("N")
                    .help(format!("{} [default: {}]", c.help, c.default))
                    .value_parser(clap::value_parser!(usize)),
            );
        }
        demo
    })
}

/// The demo counts given on the command line, or their defaults.
fn demo_counts(m: &ArgMatches) -> BTreeMap<&'static str, usize> {
    let Some(demo) = m.subcommand_matches("demo") else {
        return BTreeMap::new();
    };
    MODULES
        .iter()
        .flat_map(|m| m.demo_counts())
        .map(|c| {
            let n = demo.get_one::<usize>(c.name).copied().unwrap_or(c.default);
            (c.name, n)
        })
        .collect()
}

/// The heading the settings are listed under in `--help`.
const SETTINGS_HEADING: &str = "Settings";

/// Where a command's database lives.
const DATABASE: &[&str] = &["data-dir", "database-url", "log-format"];
/// What a command that starts the platform (policy, tokens, first admin)
/// reads.
const PLATFORM: &[&str] = &[
    "data-dir",
    "database-url",
    "policy-dir",
    "token-secret",
    "admin-email",
    "admin-password",
    "log-format",
];

/// The settings a (sub)command reads; `None` for all of them.
fn settings_of(path: &[&str]) -> Option<Vec<&'static str>> {
    Some(match path {
        [] | ["serve"] => return None,
        ["migrate"] | ["backup"] | ["restore"] => DATABASE.to_vec(),
        ["schema"] | ["user"] | ["policy"] | ["webhook"] => Vec::new(),
        ["policy", "check"] => vec!["policy-dir", "log-format"],
        ["policy", "explain"] => vec!["data-dir", "database-url", "policy-dir", "log-format"],
        ["import"] => [PLATFORM, &["default-phone-code"]].concat(),
        _ => PLATFORM.to_vec(),
    })
}

/// The flag of one setting.
fn setting_flag(s: &'static crm_core::config::Setting) -> Arg {
    let default = if s.default.is_empty() {
        String::new()
    } else {
        format!(" [default: {}]", s.default)
    };
    let arg = Arg::new(s.key)
        .long(s.key)
        .value_name("VALUE")
        .help_heading(SETTINGS_HEADING)
        .help(format!("{} [env: {}]{default}", s.help, s.env));
    // Settings with a closed set of values show (and check) them.
    match (s.key, s.default) {
        (_, "true" | "false") => arg
            .value_name("BOOL")
            .value_parser(PossibleValuesParser::new(["true", "false"])),
        ("log-format", _) => arg
            .value_name("FORMAT")
            .value_parser(PossibleValuesParser::new(["text", "json"])),
        _ => arg,
    }
}

/// Adds the setting flags to `cmd` (at `path`) and its subcommands.
fn with_settings(mut cmd: Command, path: &[&str]) -> Command {
    let wanted = settings_of(path);
    for s in SETTINGS {
        if wanted.as_ref().is_none_or(|w| w.contains(&s.key)) {
            cmd = cmd.arg(setting_flag(s));
        }
    }
    cmd.mut_subcommands(|sub| {
        let name = sub.get_name().to_owned();
        let mut sub_path = path.to_vec();
        sub_path.push(&name);
        with_settings(sub, &sub_path)
    })
}

/// The settings given as flags, wherever on the command line they were
/// given (`crm --data-dir d user list` or `crm user list --data-dir d`).
fn setting_flags(m: &ArgMatches) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut level = Some(m);
    while let Some(m) = level {
        for s in SETTINGS {
            if let Ok(Some(v)) = m.try_get_one::<String>(s.key) {
                out.insert(s.key.to_owned(), v.clone());
            }
        }
        level = m.subcommand().map(|(_, sub)| sub);
    }
    out
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CRM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Runs the command line.
pub async fn main() -> anyhow::Result<()> {
    let matches = with_settings(with_demo_counts(Cli::command()), &[]).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(Cmd::Schema) = cli.command {
        print!("{}", crate::schema::sdl());
        return Ok(());
    }
    let config = Config::load(
        cli.config.as_deref(),
        &|k| std::env::var(k).ok(),
        &setting_flags(&matches),
    )?;
    init_logging(&config.log_format);
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Serve => serve(config).await,
        Cmd::Migrate => {
            let db = crm_core::db::Db::connect(&config.database_url, &config.pool).await?;
            let n = db.migrate().await?;
            println!("applied {n} migration(s)");
            Ok(())
        }
        Cmd::Schema => unreachable!("handled above"),
        Cmd::User(cmd) => user(config, cmd).await,
        Cmd::Webhook(WebhookCmd::List) => crate::webhook_cli::list(config).await,
        Cmd::Webhook(WebhookCmd::Deliveries {
            endpoint,
            status,
            limit,
        }) => {
            crate::webhook_cli::deliveries(
                config,
                &endpoint,
                status.as_deref(),
                limit.clamp(1, 1000),
            )
            .await
        }
        Cmd::Webhook(WebhookCmd::Redeliver { delivery }) => {
            crate::webhook_cli::redeliver(config, &delivery).await
        }
        Cmd::Demo { seed } => crate::demo_cli::run(config, &demo_counts(&matches), seed).await,
        Cmd::Policy(PolicyCmd::Check { file }) => {
            let n = crate::policy_cli::check(&config, file).await?;
            if n > 0 {
                anyhow::bail!("{n} problem(s) in the policy");
            }
            Ok(())
        }
        Cmd::Import {
            entity,
            file,
            as_user,
            mode,
            duplicates,
            dry_run,
            encoding,
            map,
            errors,
        } => {
            let args = crate::data_cli::ImportArgs {
                kind: entity,
                file,
                as_user,
                mode,
                duplicates,
                dry_run,
                encoding,
                map,
                errors_out: errors,
            };
            crate::data_cli::import(config, args).await
        }
        Cmd::Export {
            list,
            out,
            format,
            filter,
            as_user,
        } => {
            let format = if format == "jsonl" {
                crm_core::tabular::ExportFormat::JsonLines
            } else {
                crm_core::tabular::ExportFormat::Csv
            };
            crate::data_cli::export(config, &list, out, format, filter, as_user).await
        }
        Cmd::Policy(PolicyCmd::Explain {
            user,
            resource,
            action,
        }) => crate::policy_cli::explain(config, &user, &resource, &action).await,
        Cmd::Backup { out } => backup(config, out).await.map_err(detailed),
        Cmd::Restore { file } => restore(config, file).await.map_err(detailed),
    }
}

/// The CLI shows what went wrong; the API hides internal details, the
/// operator at the terminal needs them.
fn detailed(e: crm_core::Error) -> anyhow::Error {
    match e {
        crm_core::Error::Internal(d) | crm_core::Error::Unavailable(d) => anyhow::anyhow!(d),
        e => e.into(),
    }
}

async fn backup(config: Config, out: PathBuf) -> crm_core::Result<()> {
    use crm_core::backup;
    // Opening a SQLite URL creates the file; backing up a mistyped path
    // must not leave an empty database behind.
    if let Some(path) = config.database_url.strip_prefix("sqlite://")
        && !std::path::Path::new(path).exists()
    {
        return Err(crm_core::Error::Internal(format!(
            "no database at {path} (setting `database-url`)"
        )));
    }
    let db = crm_core::db::Db::connect(&config.database_url, &config.pool).await?;
    if out.as_os_str() == "-" {
        let mut stdout = std::io::BufWriter::new(std::io::stdout());
        let summary = backup::backup(&db, &mut stdout).await?;
        eprintln!("backup: {summary}");
    } else {
        let summary = backup::backup_to_file(&db, &out).await?;
        println!("backup: {summary} written to {}", out.display());
    }
    Ok(())
}

async fn restore(config: Config, file: PathBuf) -> crm_core::Result<()> {
    let db = crm_core::db::Db::connect(&config.database_url, &config.pool).await?;
    let summary = crm_core::backup::restore(&db, &file).await?;
    for (table, rows) in &summary.tables {
        println!("  {table:<28} {rows:>10}");
    }
    println!(
        "restored {summary} from {} into {}",
        file.display(),
        crm_core::db::redact_url(&config.database_url)
    );
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let running = crate::server::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = running.shutdown.send(true);
    running.done.await??;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn user(config: Config, cmd: UserCmd) -> anyhow::Result<()> {
    let app = crm_core::App::start(config, std::sync::Arc::new(crate::schema::catalog())).await?;
    crm_core::identity::bootstrap::ensure_admin(&app).await?;
    let system = Principal::System;
    match cmd {
        UserCmd::Create {
            email,
            name,
            password,
            roles,
        } => {
            let u = service::create_user(
                &app,
                &system,
                service::NewUser {
                    display_name: name.unwrap_or_else(|| email.clone()),
                    email,
                    password: Some(password),
                    roles,
                    team_id: None,
                },
            )
            .await?;
            println!("created {} {}", u.id, u.email);
        }
        UserCmd::List => {
            let mut c = app.db.conn().await?;
            let page = crm_core::paging::query(Some(100), None, None, None)?;
            let mut after: Option<String> = None;
            println!("{:<40} {:<32} {:<8} roles", "id", "email", "active");
            loop {
                let q = crm_core::paging::PageQuery {
                    after: after.clone(),
                    ..page.clone()
                };
                let (rows, _) =
                    repo::list_users(&mut c.conn(), &RowFilter::All, &Default::default(), &q)
                        .await?;
                for u in rows.iter().take(page.limit as usize) {
                    println!(
                        "{:<40} {:<32} {:<8} {}",
                        u.id,
                        u.email,
                        u.active,
                        u.role_list().join(",")
                    );
                }
                if rows.len() as i64 <= page.limit {
                    break;
                }
                after = rows.get(page.limit as usize - 1).map(|u| u.id.clone());
            }
        }
        UserCmd::SetPassword { email, password } => {
            let email = service::normalize_email(&email, "email")?;
            let u = {
                let mut c = app.db.conn().await?;
                repo::user_by_email(&mut c.conn(), &email).await?
            }
            .with_context(|| format!("no user with email {email}"))?;
            service::set_password(&app, &system, &RowFilter::All, &u.id, &password).await?;
            println!("password set for {email}");
        }
    }
    Ok(())
}
