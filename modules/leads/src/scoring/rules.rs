//! Scoring rules, declared to the entity kit (shared configuration: no
//! owner, no recycle bin; writes versioned, audited and evented like any
//! record), with the checks that make a rule well-formed. A change to the
//! fit rules re-scores every lead in the same transaction.

use chrono::NaiveDateTime;
use crm_core::access::RowFilter;
use crm_core::db::Conn;
use crm_core::entity::sql::{Bind, Sql};
use crm_core::entity::{Column, Def, Entity, Kind, Scope, WriteCtx};
use crm_core::error::{Checks, Error, Result};
use crm_core::ids;
use crm_core::schema::scoring_rules;
use crm_customers::values::SizeBand;
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::values::{EngagementEvent, LeadSource, ScoringField, ScoringOperator, ScoringRuleKind};

/// A scoring rule row.
#[derive(Clone, Debug, QueryableByName, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = scoring_rules)]
pub struct RuleRow {
    pub id: String,
    pub name: String,
    /// `FIT` or `ENGAGEMENT`.
    pub kind: String,
    pub active: bool,
    /// A fit rule's field (`ScoringField` name).
    pub field: Option<String>,
    /// A fit rule's operator (`ScoringOperator` name).
    pub operator: Option<String>,
    /// A fit rule's values: a JSON list of strings, normalised.
    pub rule_values: String,
    /// An engagement rule's event (`EngagementEvent` name).
    pub event: Option<String>,
    /// Points given (negative takes away).
    pub points: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

impl RuleRow {
    /// The rule's values.
    pub fn values(&self) -> Vec<String> {
        serde_json::from_str(&self.rule_values).unwrap_or_default()
    }
}

/// Scoring rules, declared to the entity kit.
pub struct Rules;

/// The declaration of [`Rules`].
pub const DEF: Def = Def {
    type_name: "ScoringRule",
    prefix: "scr",
    label: "scoring rule",
    table: "scoring_rules",
    topic: crate::TOPIC,
    columns: &[
        Column::new("id", Kind::Text).api("id"),
        Column::text("name", "name"),
        Column::text("kind", "kind"),
        Column::new("active", Kind::Bool).api("active"),
        Column::text("field", "field").nullable(),
        Column::text("operator", "operator").nullable(),
        Column::text("rule_values", "values"),
        Column::text("event", "event").nullable(),
        Column::int("points", "points"),
        Column::time("created_at", "createdAt").sort(),
        Column::time("updated_at", "updatedAt"),
        Column::int("version", "version"),
    ],
    scope: Scope::Shared,
    soft_delete: None,
    custom_fields: false,
};

/// Fields of a rule write; `None` leaves a field alone, `Some(None)`
/// clears it.
#[derive(Clone, Debug, Default)]
pub struct RuleFields {
    pub name: Option<String>,
    /// Only on create: a rule keeps its kind.
    pub kind: Option<ScoringRuleKind>,
    pub active: Option<bool>,
    pub field: Option<Option<ScoringField>>,
    pub operator: Option<Option<ScoringOperator>>,
    pub values: Option<Vec<String>>,
    pub event: Option<Option<EngagementEvent>>,
    pub points: Option<i64>,
}

/// Most values one rule compares with.
const MAX_VALUES: usize = 200;

/// Every rule (inactive ones too when asked), of one kind if given, in
/// creation order.
pub async fn all(
    conn: &mut Conn<'_>,
    kind: Option<ScoringRuleKind>,
    inactive: bool,
) -> Result<Vec<RuleRow>> {
    let cols: Vec<&str> = DEF.columns.iter().map(|c| c.name).collect();
    let mut s = Sql::new(format!(
        "SELECT {} FROM scoring_rules WHERE 1 = 1",
        cols.join(", ")
    ));
    if let Some(k) = kind {
        s.push(" AND kind = ").bind(k.as_str());
    }
    if !inactive {
        s.push(" AND active = ").bind(Bind::Bool(Some(true)));
    }
    s.push(" ORDER BY created_at, id");
    s.load::<RuleRow>(conn).await
}

/// One rule (rules are configuration: whoever may read them reads all).
pub async fn get(conn: &mut Conn<'_>, id: &str) -> Result<Option<RuleRow>> {
    crm_core::entity::store::get::<Rules>(conn, &RowFilter::All, id).await
}

/// A value as a rule on `field` stores it, or why it cannot be one.
fn value_of(
    field: ScoringField,
    op: ScoringOperator,
    raw: &str,
) -> std::result::Result<String, String> {
    let v = raw.trim();
    if v.is_empty() || v.chars().count() > 200 {
        return Err("values must be 1 to 200 characters".into());
    }
    if op == ScoringOperator::EmailDomainIn {
        let d = v.trim_start_matches('@').to_lowercase();
        let ok = d.contains('.')
            && !d.starts_with('.')
            && !d.ends_with('.')
            && d.chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        return if ok {
            Ok(d)
        } else {
            Err(format!("{v} is not a mail domain"))
        };
    }
    match field {
        ScoringField::SizeBand => {
            let band = SizeBand::from_text(&v.to_lowercase()).ok_or_else(|| {
                format!("{v} is not a size band (MICRO, SMALL, MEDIUM, LARGE, ENTERPRISE)")
            })?;
            Ok(band.as_text())
        }
        ScoringField::Source => LeadSource::parse(v)
            .map(|s| s.as_str().to_owned())
            .ok_or_else(|| format!("{v} is not a lead source")),
        ScoringField::Country => {
            if v.len() == 2 && v.chars().all(|c| c.is_ascii_alphabetic()) {
                Ok(v.to_uppercase())
            } else {
                Err(format!("{v} is not an ISO 3166-1 alpha-2 code"))
            }
        }
        _ => Ok(v.to_owned()),
    }
}

/// Checks that a fit rule's field, operator and values go together.
fn check_fit(c: &mut Checks, row: &mut RuleRow, values: Option<Vec<String>>) -> Result<()> {
    let field = row.field.as_deref().and_then(ScoringField::parse);
    let op = row.operator.as_deref().and_then(ScoringOperator::parse);
    if row.event.is_some() {
        c.take::<()>(Err(Error::invalid(
            "event",
            "only engagement rules have an event",
        )))?;
    }
    let (Some(field), Some(op)) = (field, op) else {
        if field.is_none() {
            c.take::<()>(Err(Error::invalid("field", "a fit rule needs a field")))?;
        }
        if op.is_none() {
            c.take::<()>(Err(Error::invalid(
                "operator",
                "a fit rule needs an operator",
            )))?;
        }
        return Ok(());
    };
    use ScoringField as F;
    use ScoringOperator as O;
    let fits = match op {
        O::AtLeast => field == F::SizeBand,
        O::EmailDomainIn | O::FreeMail => field == F::Email,
        O::Present => true,
        O::In | O::NotIn | O::Equals => !matches!(field, F::Email | F::Phone),
    };
    if !fits {
        c.take::<()>(Err(Error::invalid(
            "operator",
            format!("{} does not apply to {}", op.as_str(), field.as_str()),
        )))?;
        return Ok(());
    }
    let given = values.unwrap_or_else(|| row.values());
    let mut out: Vec<String> = Vec::new();
    for v in &given {
        match value_of(field, op, v) {
            Ok(v) if !out.contains(&v) => out.push(v),
            Ok(_) => {}
            Err(m) => {
                c.take::<()>(Err(Error::invalid("values", m)))?;
            }
        }
    }
    let wanted = match op {
        O::FreeMail | O::Present => (0, 0),
        O::Equals | O::AtLeast => (1, 1),
        O::In | O::NotIn | O::EmailDomainIn => (1, MAX_VALUES),
    };
    if given.len() < wanted.0 || given.len() > wanted.1 {
        let m = match wanted {
            (0, 0) => format!("{} takes no values", op.as_str()),
            (1, 1) => format!("{} takes exactly one value", op.as_str()),
            _ => format!("{} takes 1 to {MAX_VALUES} values", op.as_str()),
        };
        c.take::<()>(Err(Error::invalid("values", m)))?;
    }
    row.rule_values = serde_json::to_string(&out).unwrap_or_else(|_| "[]".into());
    Ok(())
}

impl Entity for Rules {
    const DEF: Def = DEF;
    type Row = RuleRow;
    type Fields = RuleFields;

    fn snapshot(r: &RuleRow) -> Value {
        json!({
            "name": r.name,
            "kind": r.kind,
            "active": r.active,
            "field": r.field,
            "operator": r.operator,
            "values": r.values(),
            "event": r.event,
            "points": r.points,
        })
    }

    fn blank() -> RuleRow {
        let now = ids::now();
        RuleRow {
            id: String::new(),
            name: String::new(),
            kind: ScoringRuleKind::Fit.as_str().into(),
            active: true,
            field: None,
            operator: None,
            rule_values: "[]".into(),
            event: None,
            points: 0,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    async fn apply(
        w: &WriteCtx<'_>,
        _conn: &mut Conn<'_>,
        row: &mut RuleRow,
        f: RuleFields,
    ) -> Result<()> {
        let mut c = Checks::default();
        if w.creating {
            if f.name.is_none() {
                c.take::<()>(Err(Error::invalid("name", "is required")))?;
            }
            if f.points.is_none() {
                c.take::<()>(Err(Error::invalid("points", "is required")))?;
            }
            match f.kind {
                Some(k) => row.kind = k.as_str().into(),
                None => {
                    c.take::<()>(Err(Error::invalid("kind", "is required")))?;
                }
            }
        } else if f.kind.is_some_and(|k| k.as_str() != row.kind) {
            c.take::<()>(Err(Error::invalid("kind", "a rule keeps its kind")))?;
        }
        if let Some(n) = f.name {
            let n = n.trim();
            if n.is_empty() || n.chars().count() > 100 {
                c.take::<()>(Err(Error::invalid("name", "must be 1 to 100 characters")))?;
            } else {
                row.name = n.to_owned();
            }
        }
        if let Some(p) = f.points {
            if p == 0 || !(-100..=100).contains(&p) {
                c.take::<()>(Err(Error::invalid(
                    "points",
                    "must be between -100 and 100, not 0",
                )))?;
            } else {
                row.points = p;
            }
        }
        if let Some(a) = f.active {
            row.active = a;
        }
        if let Some(v) = f.field {
            row.field = v.map(|v| v.as_str().to_owned());
        }
        if let Some(v) = f.operator {
            row.operator = v.map(|v| v.as_str().to_owned());
        }
        if let Some(v) = f.event {
            row.event = v.map(|v| v.as_str().to_owned());
        }
        match ScoringRuleKind::from_stored(&row.kind)? {
            ScoringRuleKind::Fit => check_fit(&mut c, row, f.values)?,
            ScoringRuleKind::Engagement => {
                if row.event.is_none() {
                    c.take::<()>(Err(Error::invalid(
                        "event",
                        "an engagement rule needs an event",
                    )))?;
                }
                for (set, field) in [
                    (row.field.is_some(), "field"),
                    (row.operator.is_some(), "operator"),
                    (f.values.as_ref().is_some_and(|v| !v.is_empty()), "values"),
                ] {
                    if set {
                        c.take::<()>(Err(Error::invalid(
                            field,
                            "engagement rules score an event, not a field",
                        )))?;
                    }
                }
                row.rule_values = "[]".into();
            }
        }
        c.finish()
    }

    /// Fit rules changed: every lead is scored again in this transaction.
    async fn after_write(
        _w: &WriteCtx<'_>,
        tx: &mut crm_core::db::Tx,
        before: Option<&RuleRow>,
        after: &RuleRow,
    ) -> Result<()> {
        let fit = ScoringRuleKind::Fit.as_str();
        if after.kind == fit || before.is_some_and(|b| b.kind == fit) {
            super::store::rescore_all(&mut tx.conn(), None).await?;
        }
        Ok(())
    }

    async fn before_purge(
        _app: &crm_core::App,
        _by: &crm_core::access::Principal,
        tx: &mut crm_core::db::Tx,
        row: &RuleRow,
    ) -> Result<()> {
        if row.kind == ScoringRuleKind::Fit.as_str() {
            super::store::rescore_all(&mut tx.conn(), Some(&row.id)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn declaration_is_sound() {
        assert!(
            super::DEF.problems().is_empty(),
            "{:?}",
            super::DEF.problems()
        );
    }
}
