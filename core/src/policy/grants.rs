//! Granting roles: who may give a role to a user or an API key.
//!
//! Two rules, both decided by the policy:
//!
//! 1. the caller needs `grant` on `Role.<name>` (`p, it_admin,
//!    Role.it_admin, grant, allow`; admin's `*, *` covers every role);
//! 2. the role may not reach anything the caller cannot reach itself: every
//!    row scope, field, operation and grant the role has, the caller's roles
//!    (added up) must have too. A grant can never widen what the granter can
//!    see, directly or through the role's own grants.
//!
//! Rule 2 is checked at run time on every grant, whichever line allowed it
//! (a wildcard, an inherited role, several roles of the caller); the policy
//! lint also refuses an explicit `Role.<name>` grant line that breaks it, so
//! an admin learns at load time instead of at the first refused grant.
//!
//! The comparison asks casbin, so it means whatever the model means. To keep
//! it cheap, concrete (resource, action) pairs are grouped by the set of
//! policy lines whose patterns match them: pairs matched by the same lines
//! get the same decision for every role, so one pair per group is asked.

use std::collections::{BTreeSet, HashMap};

use super::catalog::Catalog;
use super::engine::{Policy, Scope};

/// The action that lets a role give another role to users and API keys.
pub const GRANT: &str = "grant";

/// The policy resource for granting `role`.
pub fn role_object(role: &str) -> String {
    format!("Role.{role}")
}

const VERBS: &[&str] = &["read", "update", "delete"];
const SCOPES: &[(Scope, &str)] = &[
    (Scope::Own, "own"),
    (Scope::Team, "team"),
    (Scope::All, "all"),
];

/// Concrete pairs grouped by the lines that match them.
pub struct Classes {
    /// (resource, action) to its group's representative; pairs no line
    /// matches are absent (nobody may do them).
    rep: HashMap<(String, String), (String, String)>,
    /// Every pair that some line matches, scoped type actions excluded.
    plain: Vec<(String, String)>,
    /// Resource types.
    types: Vec<String>,
}

impl Classes {
    fn build(policy: &Policy, catalog: &Catalog) -> Classes {
        let rules = &policy.parsed().rules;
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut plain_candidates: Vec<(String, String)> = Vec::new();
        for (ty, fields) in &catalog.readable {
            for verb in VERBS {
                for (_, s) in SCOPES {
                    pairs.push((ty.clone(), format!("{verb}:{s}")));
                }
            }
            // The scopes beside the owner scope (`assigned`, `group`) are
            // compared as plain pairs; an `all` scope covers them.
            for verb in VERBS {
                for extra in [super::lint::ASSIGNED, super::lint::GROUP] {
                    plain_candidates.push((ty.clone(), format!("{verb}:{extra}")));
                }
            }
            plain_candidates.push((ty.clone(), "create".into()));
            for f in fields {
                plain_candidates.push((format!("{ty}.{f}"), "read".into()));
            }
            for f in catalog.writable.get(ty).into_iter().flatten() {
                plain_candidates.push((format!("{ty}.{f}"), "write".into()));
            }
        }
        for op in &catalog.operations {
            plain_candidates.push((op.clone(), "call".into()));
        }
        for role in policy.roles() {
            plain_candidates.push((role_object(role), GRANT.into()));
        }
        pairs.extend(plain_candidates.iter().cloned());
        let mut by_signature: HashMap<Vec<usize>, (String, String)> = HashMap::new();
        let mut rep = HashMap::new();
        for (obj, act) in pairs {
            let signature: Vec<usize> = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    casbin::function_map::key_match(&obj, &r.object)
                        && casbin::function_map::key_match(&act, &r.action)
                })
                .map(|(i, _)| i)
                .collect();
            if signature.is_empty() {
                continue;
            }
            let r = by_signature
                .entry(signature)
                .or_insert_with(|| (obj.clone(), act.clone()))
                .clone();
            rep.insert((obj, act), r);
        }
        let plain = plain_candidates
            .into_iter()
            .filter(|p| rep.contains_key(p))
            .collect();
        Classes {
            rep,
            plain,
            types: catalog.readable.keys().cloned().collect(),
        }
    }

    fn allows(&self, policy: &Policy, roles: &[String], obj: &str, act: &str) -> bool {
        match self.rep.get(&(obj.to_owned(), act.to_owned())) {
            Some((o, a)) => policy.any_allows(roles, o, a),
            None => false,
        }
    }

    fn scope(&self, policy: &Policy, roles: &[String], ty: &str, verb: &str) -> Option<Scope> {
        SCOPES
            .iter()
            .rev()
            .find(|(_, s)| self.allows(policy, roles, ty, &format!("{verb}:{s}")))
            .map(|(s, _)| *s)
    }
}

/// What `role` may do that `granter` (a caller's effective roles) may not,
/// as readable names (`Account read:own`, `Account.creditLimit read`,
/// `Query.accounts call`); empty when the role is within the granter's.
pub fn exceeds(policy: &Policy, catalog: &Catalog, granter: &[String], role: &str) -> Vec<String> {
    let classes = policy.grant_classes(|| Classes::build(policy, catalog));
    let one = [role.to_owned()];
    let mut out = BTreeSet::new();
    for ty in &classes.types {
        for verb in VERBS {
            let theirs = classes.scope(policy, &one, ty, verb);
            let mine = classes.scope(policy, granter, ty, verb);
            if theirs > mine
                && let Some(s) = theirs
            {
                let s = SCOPES.iter().find(|(x, _)| *x == s).map_or("", |(_, n)| n);
                out.insert(format!("{ty} {verb}:{s}"));
            }
        }
    }
    let covered_by_all = |obj: &str, act: &str| {
        act.split_once(':')
            .is_some_and(|(verb, _)| classes.scope(policy, granter, obj, verb) == Some(Scope::All))
    };
    for (obj, act) in &classes.plain {
        if classes.allows(policy, &one, obj, act)
            && !classes.allows(policy, granter, obj, act)
            && !covered_by_all(obj, act)
        {
            out.insert(format!("{obj} {act}"));
        }
    }
    out.into_iter().collect()
}

/// Why a caller with `granter` roles may not grant `role`, or None if it may.
pub fn refusal(
    policy: &Policy,
    catalog: &Catalog,
    granter: &[String],
    role: &str,
) -> Option<String> {
    if !policy.any_allows(granter, &role_object(role), GRANT) {
        return Some(format!("not allowed to grant role {role}"));
    }
    let beyond = exceeds(policy, catalog, granter, role);
    if beyond.is_empty() {
        return None;
    }
    Some(format!(
        "role {role} reaches what you cannot: {}",
        summary(&beyond)
    ))
}

/// The first few names of a list, and how many more there are.
pub fn summary(names: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped policy against the checked-in schema.
    async fn shipped() -> (Policy, Catalog) {
        let sdl = include_str!("../../../schema.graphql");
        let resources = [
            "User",
            "Team",
            "ApiKey",
            "Job",
            "CustomField",
            "Account",
            "Contact",
            "Tag",
            "Activity",
            "Purchase",
            "Merge",
            "WebhookEndpoint",
            "WebhookDelivery",
            "Pipeline",
            "PipelineStage",
            "Opportunity",
            "Lead",
            "LeadForm",
            "AssignmentRule",
            "Ticket",
            "TicketComment",
            "OpportunityLineItem",
            "OpportunityContactRole",
            "Product",
            "PriceBook",
            "PriceBookEntry",
            "ScoringRule",
            "BusinessCalendar",
            "SlaPolicy",
            "Quota",
            "ForecastAdjustment",
            "Quote",
            "QuoteLineItem",
            "Contract",
        ];
        // Core cannot see the modules' declarations; the ones the shipped
        // policy relies on (tasks have an assignee, pipelines are shared,
        // tickets are routed to a group and an assignee) are repeated here.
        let catalog = Catalog::from_sdl(sdl, &resources).with_ownership(&[
            crate::ownership::Ownership::column("Activity").with_assignee(),
            crate::ownership::Ownership::through("WebhookDelivery", "WebhookEndpoint"),
            crate::ownership::Ownership::shared("Pipeline"),
            crate::ownership::Ownership::shared("PipelineStage"),
            crate::ownership::Ownership::shared("LeadForm"),
            crate::ownership::Ownership::through("Ticket", "Account")
                .with_assignee()
                .with_group(),
            crate::ownership::Ownership::through("TicketComment", "Ticket"),
            crate::ownership::Ownership::shared("Product"),
            crate::ownership::Ownership::shared("PriceBook"),
            crate::ownership::Ownership::shared("PriceBookEntry"),
            crate::ownership::Ownership::shared("ScoringRule"),
            crate::ownership::Ownership::shared("BusinessCalendar"),
            crate::ownership::Ownership::shared("SlaPolicy"),
            crate::ownership::Ownership::through("OpportunityLineItem", "Opportunity"),
            crate::ownership::Ownership::through("OpportunityContactRole", "Opportunity"),
            crate::ownership::Ownership::through("Quote", "Opportunity"),
            crate::ownership::Ownership::through("QuoteLineItem", "Quote"),
            crate::ownership::Ownership::column("Contract"),
        ]);
        let policy = Policy::build(
            super::super::engine::DEFAULT_MODEL,
            super::super::engine::DEFAULT_POLICY,
            &catalog,
            1,
            "test".into(),
        )
        .await
        .unwrap_or_else(|p| panic!("{p:?}"));
        (policy, catalog)
    }

    /// The shipped policy's decisions without casbin's matcher are casbin's:
    /// every role (and a role the file does not know) against every line's
    /// resource and action, wildcards made concrete (a fifth of the pairs
    /// per role, a different fifth for the next role).
    #[tokio::test]
    async fn direct_decisions_are_casbins_on_the_shipped_policy() {
        let (p, _) = shipped().await;
        assert!(p.is_compiled());
        let concrete = |s: &str| s.replace('*', "Zz");
        let mut pairs: std::collections::BTreeSet<(String, String)> = p
            .parsed()
            .rules
            .iter()
            .map(|r| (concrete(&r.object), concrete(&r.action)))
            .collect();
        let types: Vec<String> = pairs
            .iter()
            .filter(|(o, _)| !o.contains('.'))
            .map(|(o, _)| o.clone())
            .collect();
        for t in types {
            pairs.insert((t.clone(), "read:all".into()));
            pairs.insert((format!("{t}.id"), "read".into()));
        }
        let mut roles: Vec<String> = p.roles().iter().cloned().collect();
        roles.extend(["authenticated", "anonymous", "nobody"].map(String::from));
        // casbin's matcher is slow unoptimised: each role gets a different
        // fifth of the pairs (every pair is met by two roles or more).
        let pairs: Vec<_> = pairs.into_iter().collect();
        let mut checked = 0;
        for (i, role) in roles.iter().enumerate() {
            for (object, action) in pairs.iter().skip(i % 5).step_by(5) {
                assert_eq!(
                    p.allows(role, object, action),
                    p.casbin_allows(role, object, action),
                    "{role} {object} {action}"
                );
                checked += 1;
            }
        }
        assert!(checked > 800, "only {checked} decisions compared");
    }

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter()
            .map(|s| s.to_string())
            .chain(["authenticated".to_owned()])
            .collect()
    }

    #[tokio::test]
    async fn it_admin_grants_nothing_that_reads_customer_data() {
        let (p, c) = shipped().await;
        let it = roles(&["it_admin"]);
        assert_eq!(refusal(&p, &c, &it, "it_admin"), None);
        for r in [
            "admin",
            "sales_rep",
            "sales_manager",
            "marketing",
            "support",
            "support_lead",
            "integrator",
        ] {
            assert!(refusal(&p, &c, &it, r).is_some(), "it_admin may grant {r}");
        }
        let beyond = exceeds(&p, &c, &it, "support");
        assert!(
            beyond.contains(&"Account read:all".to_owned()),
            "{beyond:?}"
        );
        assert!(
            beyond.contains(&"Query.accounts call".to_owned()),
            "{beyond:?}"
        );
        // Leads: support and it_admin have none of them, so neither may hand
        // out a role that reads or creates leads.
        let support = roles(&["support"]);
        let beyond = exceeds(&p, &c, &support, "marketing");
        assert!(beyond.contains(&"Lead read:all".to_owned()), "{beyond:?}");
        assert!(beyond.contains(&"Lead create".to_owned()), "{beyond:?}");
        assert!(
            exceeds(&p, &c, &it, "sales_rep").contains(&"Mutation.convertLead call".to_owned())
        );
        // Marketing creates and reads leads but may not convert them.
        let beyond = exceeds(&p, &c, &roles(&["marketing"]), "sales_rep");
        assert!(
            beyond.contains(&"Mutation.convertLead call".to_owned()),
            "{beyond:?}"
        );
        // Admin may grant every role; a manager already has all a rep has.
        let admin = roles(&["admin"]);
        for r in p.roles() {
            assert_eq!(refusal(&p, &c, &admin, r), None, "admin granting {r}");
        }
        assert!(exceeds(&p, &c, &roles(&["sales_manager"]), "sales_rep").is_empty());
        // A lead has all a support agent has; an agent lacks the lead's
        // `all` scope, and nobody reaches the group scope without it.
        assert!(exceeds(&p, &c, &roles(&["support_lead"]), "support").is_empty());
        let lead = exceeds(&p, &c, &roles(&["support"]), "support_lead");
        assert!(lead.contains(&"Ticket read:all".to_owned()), "{lead:?}");
        let agent = exceeds(&p, &c, &roles(&["sales_rep"]), "support");
        assert!(agent.contains(&"Ticket read:group".to_owned()), "{agent:?}");
        assert!(!exceeds(&p, &c, &roles(&["sales_rep"]), "sales_manager").is_empty());
    }
}
