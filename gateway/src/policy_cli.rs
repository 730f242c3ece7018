//! `crm policy check` and `crm policy explain`: the admin's tools for policy
//! files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use crm_core::access::{Principal, UserPrincipal};
use crm_core::config::Config;
use crm_core::identity::repo;
use crm_core::policy::engine::{DEFAULT_MODEL, read_dir};
use crm_core::policy::{Policy, lint};

/// Lints `file` (default: `<policy-dir>/policy.csv`) and the model beside it
/// against the built schema. Returns the number of problems.
pub async fn check(config: &Config, file: Option<PathBuf>) -> anyhow::Result<usize> {
    let policy_path = file.unwrap_or_else(|| config.policy_dir.join("policy.csv"));
    let text = std::fs::read_to_string(&policy_path)
        .with_context(|| format!("cannot read {}", policy_path.display()))?;
    let model_path = policy_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("model.conf");
    let model = std::fs::read_to_string(&model_path).unwrap_or_else(|_| DEFAULT_MODEL.to_owned());
    let catalog = crate::schema::catalog();
    let mut problems = lint::check_model(&model);
    let (parsed, mut p) = lint::check_policy(&text, &catalog);
    problems.append(&mut p);
    if problems.is_empty() {
        // The lint passed; make sure casbin itself accepts it too.
        if let Err(mut p) = Policy::build(
            &model,
            &text,
            &catalog,
            0,
            policy_path.display().to_string(),
        )
        .await
        {
            problems.append(&mut p);
        }
    }
    for p in &problems {
        let file = if p.file == "model.conf" {
            &model_path
        } else {
            &policy_path
        };
        if p.line == 0 {
            println!("{}: error: {}", file.display(), p.message);
        } else {
            println!("{}:{}: error: {}", file.display(), p.line, p.message);
        }
    }
    if problems.is_empty() {
        println!(
            "{}: ok ({} rules, {} inheritance lines, roles: {})",
            policy_path.display(),
            parsed.rules.len(),
            parsed.inherits.len(),
            parsed.roles().into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(problems.len())
}

/// Prints the decision for a user, resource and action, the row scope, and
/// the policy lines that bear on it.
pub async fn explain(
    config: Config,
    email: &str,
    resource: &str,
    action: &str,
) -> anyhow::Result<()> {
    let (model, text) = if config.policy_dir.exists() {
        read_dir(&config.policy_dir).map_err(|p| anyhow::anyhow!("{}", p[0]))?
    } else {
        (
            DEFAULT_MODEL.to_owned(),
            crm_core::policy::engine::DEFAULT_POLICY.to_owned(),
        )
    };
    let catalog = Arc::new(crate::schema::catalog());
    let policy = Policy::build(
        &model,
        &text,
        &catalog,
        0,
        config.policy_dir.display().to_string(),
    )
    .await
    .map_err(|p| anyhow::anyhow!("the policy does not load: {}", p[0]))?;
    let db = crm_core::db::Db::connect(&config.database_url, &config.pool).await?;
    db.migrate().await?;
    let email = email.trim().to_lowercase();
    let user = {
        let mut c = db.conn().await?;
        repo::user_by_email(&mut c.conn(), &email).await?
    }
    .with_context(|| format!("no user with email {email}"))?;
    let principal = Principal::User(UserPrincipal {
        id: user.id.clone(),
        roles: user.role_list(),
        team_id: user.team_id.clone(),
        token_id: String::new(),
    });
    let roles = principal.effective_roles();
    println!("user:     {} ({})", user.email, user.id);
    println!("roles:    {}", roles.join(", "));
    println!("resource: {resource}");
    println!("action:   {action}");
    let is_type = catalog.is_resource(resource);
    let verb_only = matches!(action, "read" | "update" | "delete");
    if is_type && verb_only {
        let ownership = catalog.ownership(resource);
        let assigned = ownership.assignee
            && policy.any_allows(
                &roles,
                resource,
                &format!("{action}:{}", crm_core::policy::lint::ASSIGNED),
            );
        match (policy.scope(&roles, resource, action), assigned) {
            (Some(scope), false) => println!("decision: allow (row scope: {scope:?})"),
            (Some(scope), true) => {
                println!("decision: allow (row scope: {scope:?}, plus rows assigned to the user)")
            }
            (None, true) => println!("decision: allow (rows assigned to the user)"),
            (None, false) => println!("decision: deny (no row scope)"),
        }
        println!("rows:     {}", ownership.describe(resource));
    } else {
        let allowed = policy.any_allows(&roles, resource, action);
        println!("decision: {}", if allowed { "allow" } else { "deny" });
    }
    println!("lines that bear on it:");
    let mut any = false;
    for role in &roles {
        for rule in policy.explain(role, resource, action) {
            any = true;
            println!(
                "  policy.csv:{}: p, {}, {}, {}, {}   (via role {role})",
                rule.line, rule.role, rule.object, rule.action, rule.effect
            );
        }
    }
    if !any {
        println!("  none: nothing allows it, so it is denied");
    }
    if !user.active {
        bail!("note: this user is deactivated and cannot sign in");
    }
    Ok(())
}
