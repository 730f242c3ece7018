//! Routing a lead by the assignment rules: the first active rule whose
//! conditions hold and whose target can take the lead decides its owner
//! or queue. Runs inside the transaction that creates (or reassigns) the
//! lead; a round-robin turn is taken under the rule's row lock in that
//! transaction, so it is spent exactly when the assignment commits.

use crm_core::access::Principal;
use crm_core::change::{self, Change};
use crm_core::db::{Conn, Tx};
use crm_core::entity::store;
use crm_core::entity::subject::SubjectType;
use crm_core::error::Result;
use crm_core::identity::repo as users;
use crm_core::ids;
use crm_customers::activities::{ActivityKind, TimelineEntry, record_entry};
use serde_json::{Map, json};

use super::repo::{self, RuleRow};
use super::{Conditions, TargetKind};
use crate::leads::repo::{LeadRow, Leads};

/// Where a rule sends a lead.
struct Route {
    owner: Option<String>,
    team: Option<String>,
}

/// Whether `c` holds for `row` (an empty list matches any value) whose
/// score (fit plus decayed engagement, see `scoring`) is `score`.
pub fn matches(c: &Conditions, row: &LeadRow, score: i64) -> bool {
    let within = |list: &[String], v: Option<&str>, fold: bool| {
        list.is_empty()
            || v.is_some_and(|v| {
                list.iter().any(|x| {
                    if fold {
                        x.eq_ignore_ascii_case(v)
                    } else {
                        x == v
                    }
                })
            })
    };
    within(&c.countries, row.country.as_deref(), true)
        && within(&c.regions, row.region.as_deref(), true)
        && within(&c.industries, row.industry.as_deref(), true)
        && within(&c.size_bands, row.size_band.as_deref(), false)
        && within(&c.sources, Some(row.source.as_str()), false)
        && c.min_score.is_none_or(|min| score >= min)
}

fn under_cap(rule: &RuleRow, open_leads: i64) -> bool {
    rule.open_lead_cap.is_none_or(|cap| open_leads < cap)
}

/// The route of `rule` for a lead, or None when its target cannot take
/// it (an inactive user, everyone at the cap, nobody in the team): the
/// next rule is tried then. A round robin takes its turn here.
async fn route_of(conn: &mut Conn<'_>, rule: &RuleRow) -> Result<Option<Route>> {
    Ok(match TargetKind::from_stored(&rule.target_kind)? {
        TargetKind::User => {
            let Some(user) = rule.target_user_id.as_deref() else {
                return Ok(None);
            };
            repo::active_user(conn, user)
                .await?
                .filter(|m| under_cap(rule, m.open_leads))
                .map(|m| Route {
                    owner: Some(m.id),
                    team: rule.team_id.clone(),
                })
        }
        TargetKind::Queue => rule.team_id.clone().map(|t| Route {
            owner: None,
            team: Some(t),
        }),
        TargetKind::RoundRobin => {
            let Some(team) = rule.team_id.as_deref() else {
                return Ok(None);
            };
            // The lock first: whoever holds it reads the members, counts
            // and place that the previous turn committed.
            let turn = repo::lock_turn(conn, &rule.id).await?;
            let eligible: Vec<String> = repo::active_members(conn, team)
                .await?
                .into_iter()
                .filter(|m| under_cap(rule, m.open_leads))
                .map(|m| m.id)
                .collect();
            // The next eligible member after the last one served, in id
            // order, wrapping around: a member who joins or leaves keeps
            // everyone else's place.
            let next = match turn.last_user_id.as_deref() {
                Some(last) => eligible
                    .iter()
                    .find(|id| id.as_str() > last)
                    .or(eligible.first()),
                None => eligible.first(),
            }
            .cloned();
            match next {
                Some(user) => {
                    repo::take_turn(conn, &turn, &user).await?;
                    Some(Route {
                        owner: Some(user),
                        team: Some(team.to_owned()),
                    })
                }
                None => None,
            }
        }
    })
}

/// Runs the active rules for `row` in `tx` and, if one routes it
/// elsewhere, writes the new owner or queue (a version bump), the audit
/// entry (naming the rule), the `lead.assigned` event and a timeline
/// entry. Returns whether the lead changed; `row` becomes the stored row.
pub async fn route(tx: &mut Tx, by: &Principal, row: &mut LeadRow) -> Result<bool> {
    let rules = repo::active(&mut tx.conn()).await?;
    let mut score = None;
    for rule in rules {
        let c: Conditions = serde_json::from_str(&rule.conditions).unwrap_or_default();
        let s = match (c.min_score, score) {
            (None, _) => 0,
            (Some(_), Some(s)) => s,
            (Some(_), None) => {
                // The score the lead's own write just stored.
                let s = crate::scoring::store::scores_now(&mut tx.conn(), &row.id)
                    .await?
                    .score;
                score = Some(s);
                s
            }
        };
        if !matches(&c, row, s) {
            continue;
        }
        let Some(to) = route_of(&mut tx.conn(), &rule).await? else {
            continue;
        };
        if to.owner == row.owner_id && to.team == row.team_id {
            return Ok(false);
        }
        let before = row.clone();
        let mut after = row.clone();
        after.owner_id = to.owner;
        after.team_id = to.team;
        after.updated_at = ids::now();
        let after = store::update_row::<Leads>(&mut tx.conn(), &after, before.version).await?;
        record(tx, by, &rule, &before, &after).await?;
        *row = after;
        return Ok(true);
    }
    Ok(false)
}

/// The audit entry, event and timeline entry of an assignment.
async fn record(
    tx: &mut Tx,
    by: &Principal,
    rule: &RuleRow,
    before: &LeadRow,
    after: &LeadRow,
) -> Result<()> {
    use crm_core::entity::Entity;
    let mut context = Map::new();
    context.insert("assignmentRuleId".into(), json!(rule.id));
    change::record_in_context(
        &mut tx.conn(),
        &by.actor(),
        Some(context),
        Change {
            topic: crate::TOPIC,
            entity_type: "Lead",
            entity_id: after.id.clone(),
            action: "assigned",
            before: Some(Leads::snapshot(before)),
            after: Some(Leads::snapshot(after)),
            owner_id: after.owner_id.clone(),
            team_id: store::queue_of::<Leads>(after)?,
        },
    )
    .await?;
    // The entry's author: the new owner (it is on their lead), or for a
    // queue the user whose write ran the rule; a queue assignment made
    // without a user (an API key, a public form) has no author and no
    // entry, the event and audit entry still record it.
    let target = match &after.owner_id {
        Some(u) => users::user(&mut tx.conn(), u)
            .await?
            .map(|u| (u.id, u.display_name)),
        None => None,
    };
    let (title, author) = match (&target, &after.team_id) {
        (Some((id, name)), _) => (
            format!("Assigned to {name} by rule {}", rule.name),
            Some(id.clone()),
        ),
        (None, Some(team)) => {
            let name = users::team(&mut tx.conn(), team)
                .await?
                .map_or_else(|| team.clone(), |t| t.name);
            (
                format!("Queued for team {name} by rule {}", rule.name),
                by.user_id().map(str::to_owned),
            )
        }
        (None, None) => return Ok(()),
    };
    if let Some(owner_id) = author {
        record_entry(
            &mut tx.conn(),
            by,
            TimelineEntry {
                kind: ActivityKind::Note,
                subject_type: SubjectType::of("Lead")?,
                subject_id: after.id.clone(),
                title,
                body: Some(format!("Assignment rule {} ({})", rule.name, rule.id)),
                owner_id,
            },
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leads::repo::Leads;
    use crm_core::entity::Entity;

    fn lead() -> LeadRow {
        let mut r = Leads::blank();
        r.country = Some("DE".into());
        r.region = Some("Bavaria".into());
        r.industry = Some("Software".into());
        r.size_band = Some("small".into());
        r.source = "WEB_FORM".into();
        r
    }

    #[test]
    fn every_given_condition_must_hold() {
        let r = lead();
        assert!(matches(&Conditions::default(), &r, 0));
        let c = Conditions {
            countries: vec!["AT".into(), "DE".into()],
            regions: vec!["bavaria".into()],
            industries: vec!["SOFTWARE".into()],
            size_bands: vec!["small".into()],
            sources: vec!["WEB_FORM".into()],
            min_score: None,
        };
        assert!(matches(&c, &r, 0));
        let other_source = Conditions {
            sources: vec!["IMPORT".into()],
            ..c.clone()
        };
        assert!(!matches(&other_source, &r, 0));
        let mut no_country = r.clone();
        no_country.country = None;
        assert!(
            !matches(&c, &no_country, 0),
            "a missing value matches no list"
        );
        let scored = Conditions {
            min_score: Some(40),
            ..Conditions::default()
        };
        assert!(!matches(&scored, &r, 39));
        assert!(matches(&scored, &r, 40));
    }
}
