//! The loaded policy and its hot reload.
//!
//! [`Policy`] wraps a casbin enforcer built from `model.conf` and
//! `policy.csv` after [`super::lint`] accepted them. Decisions are cached per
//! (role, resource, action) the first time they are asked, so a request's
//! checks are hash lookups however long the policy file is. When the model
//! is the shipped one, a first decision is worked out from the role's own
//! lines (see [`Compiled`]) instead of casbin's walk of every line through
//! its expression engine (about a millisecond per decision on the shipped
//! policy, and a subscriber's first view asks thousands). A reload builds a
//! new `Policy` (with an empty cache) and swaps it in atomically; a policy
//! that fails to load or lint is refused and the last good one stays.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::catalog::Catalog;
use super::compiled::Compiled;
use super::lint::{self, Parsed, Problem, Rule};

/// The policy shipped with the service, used when the policy directory does
/// not exist.
pub const DEFAULT_MODEL: &str = include_str!("../../../policies/model.conf");
/// The shipped policy lines.
pub const DEFAULT_POLICY: &str = include_str!("../../../policies/policy.csv");

/// Row scope of a permission, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, async_graphql::Enum)]
pub enum Scope {
    /// Records the user owns.
    Own,
    /// Records owned by anyone in the user's team or a team below it.
    Team,
    /// Every record.
    All,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Own => "own",
            Scope::Team => "team",
            Scope::All => "all",
        }
    }
}

/// One loaded, checked policy.
pub struct Policy {
    enforcer: Enforcer,
    /// The shipped model's decisions without casbin's per-line matcher
    /// (None for an edited model: casbin decides).
    compiled: Option<Compiled>,
    parsed: Parsed,
    roles: BTreeSet<String>,
    cache: RwLock<HashMap<(String, String, String), bool>>,
    grant_classes: OnceLock<super::grants::Classes>,
    /// Increases with every successful load.
    pub version: u64,
    /// When it was loaded.
    pub loaded_at: DateTime<Utc>,
    /// Where it came from (a directory, or `built-in`).
    pub source: String,
}

impl Policy {
    /// Lints and loads a model and policy text. On failure returns every
    /// problem found.
    pub async fn build(
        model: &str,
        policy: &str,
        catalog: &Catalog,
        version: u64,
        source: String,
    ) -> Result<Policy, Vec<Problem>> {
        let mut problems = lint::check_model(model);
        let (parsed, mut p) = lint::check_policy(policy, catalog);
        problems.append(&mut p);
        if !problems.is_empty() {
            return Err(problems);
        }
        // Feed casbin only the checked lines (comments and blanks removed).
        let clean: String = parsed
            .rules
            .iter()
            .map(|r| format!("p, {}, {}, {}, {}\n", r.role, r.object, r.action, r.effect))
            .chain(
                parsed
                    .inherits
                    .iter()
                    .map(|g| format!("g, {}, {}\n", g.role, g.parent)),
            )
            .collect();
        let whole = |message: String| {
            vec![Problem {
                file: "model.conf".into(),
                line: 0,
                message,
            }]
        };
        let model_text = model.to_owned();
        // casbin may panic on input it does not expect; a panic in this task
        // is reported as a load error instead of taking the server down.
        let built = tokio::spawn(async move {
            let m = DefaultModel::from_str(&model_text).await?;
            Enforcer::new(m, StringAdapter::new(clean)).await
        })
        .await;
        let enforcer = match built {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => return Err(whole(format!("casbin refused the policy: {e}"))),
            Err(e) => {
                return Err(whole(format!(
                    "casbin failed while loading the policy: {e}"
                )));
            }
        };
        let roles = parsed.roles();
        let compiled = Compiled::for_model(model, DEFAULT_MODEL, &parsed);
        let policy = Policy {
            enforcer,
            compiled,
            parsed,
            roles,
            cache: RwLock::default(),
            grant_classes: OnceLock::new(),
            version,
            loaded_at: Utc::now(),
            source,
        };
        // Prove the enforcer answers before it is trusted with requests.
        let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            policy.enforcer.enforce(("anonymous", "Query.me", "call"))
        }));
        match probe {
            Ok(Ok(_)) => {
                let problems = policy.grant_problems(catalog);
                if problems.is_empty() {
                    Ok(policy)
                } else {
                    Err(problems)
                }
            }
            Ok(Err(e)) => Err(whole(format!("casbin cannot evaluate the model: {e}"))),
            Err(_) => Err(whole("casbin panicked evaluating the model".into())),
        }
    }

    /// The checked lines it was built from.
    pub fn parsed(&self) -> &Parsed {
        &self.parsed
    }

    /// The grouping [`super::grants`] compares roles with, built once.
    pub(crate) fn grant_classes(
        &self,
        build: impl FnOnce() -> super::grants::Classes,
    ) -> &super::grants::Classes {
        self.grant_classes.get_or_init(build)
    }

    /// An explicit `p, <role>, Role.<name>, grant, allow` line is an error
    /// when `<name>` reaches what `<role>` cannot (see [`super::grants`]).
    fn grant_problems(&self, catalog: &Catalog) -> Vec<Problem> {
        let mut problems = Vec::new();
        for r in &self.parsed.rules {
            let Some(name) = r.object.strip_prefix("Role.") else {
                continue;
            };
            if name == "*" || name == r.role || r.effect != "allow" {
                continue;
            }
            let granter = vec![r.role.clone(), "authenticated".to_owned()];
            let beyond = super::grants::exceeds(self, catalog, &granter, name);
            if !beyond.is_empty() {
                problems.push(Problem {
                    file: "policy.csv".into(),
                    line: r.line,
                    message: format!(
                        "{} may not grant {name}: {name} reaches what {} cannot ({})",
                        r.role,
                        r.role,
                        super::grants::summary(&beyond)
                    ),
                });
            }
        }
        problems
    }

    /// Roles the policy defines (not counting `anonymous` / `authenticated`).
    pub fn roles(&self) -> &BTreeSet<String> {
        &self.roles
    }

    /// Whether `role` may do `action` on `object`. Cached; errors deny.
    pub fn allows(&self, role: &str, object: &str, action: &str) -> bool {
        let key = (role.to_owned(), object.to_owned(), action.to_owned());
        if let Some(d) = self.cache.read().expect("policy cache").get(&key) {
            return *d;
        }
        if let Some(c) = &self.compiled {
            let d = c.allows(&self.enforcer, role, object, action);
            self.cache.write().expect("policy cache").insert(key, d);
            return d;
        }
        let decision = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.enforcer.enforce((role, object, action))
        }));
        let d = match decision {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::error!(role, object, action, error = %e, "policy evaluation failed; denying");
                false
            }
            Err(_) => {
                tracing::error!(role, object, action, "policy evaluation panicked; denying");
                false
            }
        };
        self.cache.write().expect("policy cache").insert(key, d);
        d
    }

    /// casbin's own decision, uncached (tests compare [`Compiled`] with it).
    #[cfg(test)]
    pub(crate) fn casbin_allows(&self, role: &str, object: &str, action: &str) -> bool {
        self.enforcer.enforce((role, object, action)).unwrap()
    }

    /// Whether decisions skip casbin's matcher (the model is the shipped one).
    #[cfg(test)]
    pub(crate) fn is_compiled(&self) -> bool {
        self.compiled.is_some()
    }

    /// Whether any of `roles` may do it (roles add up).
    pub fn any_allows(&self, roles: &[String], object: &str, action: &str) -> bool {
        roles.iter().any(|r| self.allows(r, object, action))
    }

    /// The widest row scope any of `roles` has for `verb` (`read`, `update`,
    /// `delete`) on type `ty`, or None.
    pub fn scope(&self, roles: &[String], ty: &str, verb: &str) -> Option<Scope> {
        [Scope::All, Scope::Team, Scope::Own]
            .into_iter()
            .find(|s| self.any_allows(roles, ty, &format!("{verb}:{}", s.as_str())))
    }

    /// Whether any of `roles` has some row scope for `verb` on `ty`: an
    /// owner scope, or the scopes `assigned` / `group` (whose rows the
    /// type's ownership declaration decides; the lint allows them only on
    /// types that declare them).
    pub fn has_scope(&self, roles: &[String], ty: &str, verb: &str) -> bool {
        self.scope(roles, ty, verb).is_some()
            || [super::lint::ASSIGNED, super::lint::GROUP]
                .iter()
                .any(|s| self.any_allows(roles, ty, &format!("{verb}:{s}")))
    }

    /// The policy lines that bear on a decision for `role` (directly or
    /// through inherited roles), for `crm policy explain`. A bare verb
    /// (`read`) matches its scoped forms (`read:own`, …).
    pub fn explain(&self, role: &str, object: &str, action: &str) -> Vec<&Rule> {
        let mut roles = vec![role.to_owned()];
        let mut i = 0;
        while i < roles.len() {
            let r = roles[i].clone();
            for g in &self.parsed.inherits {
                if g.role == r && !roles.contains(&g.parent) {
                    roles.push(g.parent.clone());
                }
            }
            i += 1;
        }
        self.parsed
            .rules
            .iter()
            .filter(|rule| {
                roles.contains(&rule.role)
                    && casbin::function_map::key_match(object, &rule.object)
                    && (casbin::function_map::key_match(action, &rule.action)
                        || rule.action.starts_with(&format!("{action}:")))
            })
            .collect()
    }
}

/// What `policyStatus` reports.
#[derive(Clone, Debug, Default)]
pub struct LoadError {
    /// Why the last reload was refused.
    pub message: String,
    /// When.
    pub at: Option<DateTime<Utc>>,
}

/// Holds the policy in force and reloads it when its files change.
pub struct PolicyEngine {
    current: ArcSwap<Policy>,
    last_error: Mutex<Option<LoadError>>,
    dir: Option<PathBuf>,
    catalog: Arc<Catalog>,
    versions: AtomicU64,
    changes: watch::Sender<u64>,
}

/// Reads the model and policy from `dir`.
pub fn read_dir(dir: &Path) -> Result<(String, String), Vec<Problem>> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| {
            // The path stays in the log; the problem (shown by
            // `policyStatus.lastError`) names only the file.
            tracing::warn!(path = %dir.join(name).display(), error = %e, "cannot read a policy file");
            vec![Problem {
                file: name.into(),
                line: 0,
                message: format!("cannot read {name}: {}", e.kind()),
            }]
        })
    };
    Ok((read("model.conf")?, read("policy.csv")?))
}

impl PolicyEngine {
    /// Loads the policy from `dir`, or the built-in one when `dir` does not
    /// exist. A policy that does not load stops start-up.
    pub async fn start(
        dir: &Path,
        catalog: Arc<Catalog>,
    ) -> Result<Arc<PolicyEngine>, Vec<Problem>> {
        let (model, policy, source, watched) = if dir.exists() {
            tracing::info!(dir = %dir.display(), "loading the policy directory");
            let (m, p) = read_dir(dir)?;
            (m, p, dir.display().to_string(), Some(dir.to_path_buf()))
        } else {
            tracing::info!(dir = %dir.display(), "policy directory not found; using the built-in policy");
            (
                DEFAULT_MODEL.to_owned(),
                DEFAULT_POLICY.to_owned(),
                "built-in".to_owned(),
                None,
            )
        };
        let loaded = Policy::build(&model, &policy, &catalog, 1, source).await?;
        Ok(Arc::new(PolicyEngine {
            current: ArcSwap::from_pointee(loaded),
            last_error: Mutex::new(None),
            dir: watched,
            catalog,
            versions: AtomicU64::new(1),
            changes: watch::Sender::new(1),
        }))
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// Ticks with the new version whenever a new policy is swapped in.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The catalog policies are checked against.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The last refused reload, if the newest attempt failed.
    pub fn last_error(&self) -> Option<LoadError> {
        self.last_error.lock().expect("policy status").clone()
    }

    /// Re-reads the files; swaps the new policy in, or keeps the old one and
    /// records why.
    pub async fn reload(&self) -> Result<(), Vec<Problem>> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let result = match read_dir(dir) {
            Ok((m, p)) => {
                let v = self.versions.load(Ordering::SeqCst) + 1;
                Policy::build(&m, &p, &self.catalog, v, dir.display().to_string()).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(p) => {
                self.versions.store(p.version, Ordering::SeqCst);
                tracing::info!(version = p.version, "policy reloaded");
                let version = p.version;
                self.current.store(Arc::new(p));
                self.changes.send_replace(version);
                *self.last_error.lock().expect("policy status") = None;
                Ok(())
            }
            Err(problems) => {
                let message = problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::error!(error = %message, "policy edit refused; the previous policy stays in force");
                *self.last_error.lock().expect("policy status") = Some(LoadError {
                    message,
                    at: Some(Utc::now()),
                });
                Err(problems)
            }
        }
    }

    /// Watches the policy directory and reloads after changes settle.
    pub fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Some(dir) = self.dir.clone() else {
            return;
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(e) = res
                && !matches!(e.kind, notify::EventKind::Access(_))
            {
                let _ = tx.send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch the policy directory; edits need a restart");
                return;
            }
        };
        if let Err(e) =
            notify::Watcher::watch(&mut watcher, &dir, notify::RecursiveMode::NonRecursive)
        {
            tracing::error!(error = %e, dir = %dir.display(), "cannot watch the policy directory; edits need a restart");
            return;
        }
        tokio::spawn(async move {
            // The watcher lives as long as this task.
            let _watcher = watcher;
            let mut last: Option<(String, String)> = read_dir(&dir).ok();
            loop {
                tokio::select! {
                    got = rx.recv() => if got.is_none() { return },
                    _ = shutdown.changed() => return,
                }
                // Let an editor finish writing (several events per save).
                tokio::time::sleep(Duration::from_millis(150)).await;
                while rx.try_recv().is_ok() {}
                let now = read_dir(&dir).ok();
                if now.is_some() && now == last {
                    continue;
                }
                last = now;
                let _ = self.reload().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let sdl = "type Query { users: [User!]! me: User }
                   type Mutation { createUser(input: CreateUserInput!): User }
                   type User { id: ID! email: String! roles: [String!]! }
                   input CreateUserInput { email: String! password: String }";
        Catalog::from_sdl(sdl, &["User"])
    }

    const LINES: &str = "p, base, User, read:own, allow
p, base, User.*, read, allow
p, base, User.email, read, deny
p, mid, User, read:all, allow
p, top, Query.*, call, allow
p, top, *, write, allow
g, mid, base
g, top, mid
";

    #[tokio::test]
    async fn direct_decisions_agree_with_casbin_through_inheritance_and_deny() {
        let p = Policy::build(DEFAULT_MODEL, LINES, &catalog(), 1, "test".into())
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(p.is_compiled());
        for role in ["base", "mid", "top", "other", "authenticated"] {
            for object in [
                "User",
                "User.email",
                "User.id",
                "User.",
                "Query.users",
                "Query.me",
                "Mutation.createUser",
                "Users",
            ] {
                for action in ["read:own", "read:all", "read", "call", "write", "read:"] {
                    assert_eq!(
                        p.allows(role, object, action),
                        p.casbin_allows(role, object, action),
                        "{role} {object} {action}"
                    );
                }
            }
        }
        assert!(p.allows("top", "User.id", "read"));
        assert!(
            !p.allows("top", "User.email", "read"),
            "the inherited deny wins"
        );
        assert!(p.allows("mid", "User", "read:all"));
        assert!(!p.allows("base", "User", "read:all"));
        assert!(!p.allows("other", "User", "read:own"));
    }

    #[tokio::test]
    async fn an_edited_model_is_decided_by_casbin() {
        let model = DEFAULT_MODEL.replace(
            "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
            "e = some(where (p.eft == allow))",
        );
        assert_ne!(model, DEFAULT_MODEL);
        let p = Policy::build(&model, LINES, &catalog(), 1, "test".into())
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!p.is_compiled());
        // Without the deny effect, the deny line no longer denies.
        assert!(p.allows("top", "User.email", "read"));
    }
}
