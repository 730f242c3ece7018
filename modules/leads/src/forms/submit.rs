//! `POST /forms/{key}`: a web form submission captured as a lead.
//!
//! Core's `crm_core::public` has already applied the rate limits, the
//! origin check, the body limit and the honeypot; this is the capture. It
//! runs as `Principal::Public` (the service's rights, the form as the audit
//! actor) in one transaction: the dedupe row, the lead through the kit
//! (`store::create_in` / `update_in`: the leads' own rules, the duplicate
//! check, the audit entry and `lead.created` / `lead.updated` event) and a
//! "Form submitted" entry on the lead's timeline. Whatever happened, the
//! answer is the same, so it reveals nothing about stored records.

use std::collections::BTreeMap;

use async_graphql::ID;
use chrono::Duration;
use crm_core::access::{Principal, PublicActor, RowFilter};
use crm_core::app::App;
use crm_core::db::{Conn, Tx};
use crm_core::entity::sql::Sql;
use crm_core::entity::store;
use crm_core::entity::subject::SubjectType;
use crm_core::error::{Error, Result};
use crm_core::ids;
use crm_core::public::{Gate, Outcome, PublicEndpoint, Submission};
use crm_customers::activities::{ActivityKind, TimelineEntry, record_entry};
use crm_customers::values::{ContactPoint, ContactPointKind, normalize_email, normalize_phone};
use futures_util::future::BoxFuture;

use super::repo::{self, FieldMap, LeadFormRow};
use crate::leads::repo::{self as leads_repo, Leads};
use crate::leads::service::{LeadFields, points};
use crate::values::{LeadFormOnMatch, LeadFormTarget, LeadSource};

/// The leads module's public endpoint: web forms at `/forms/{key}`.
pub struct FormsEndpoint;

/// The one value the module registers.
pub static FORMS: FormsEndpoint = FormsEndpoint;

/// Longest value of one posted field, in characters.
const MAX_VALUE_CHARS: usize = 5000;

/// Attempts of a submission that met a concurrent writer.
const ATTEMPTS: usize = 3;

impl PublicEndpoint for FormsEndpoint {
    fn path(&self) -> &'static str {
        "forms"
    }

    fn lookup<'a>(&'a self, app: &'a App, key: &'a str) -> BoxFuture<'a, Result<Option<Gate>>> {
        Box::pin(async move {
            let mut c = app.db.conn().await?;
            let Some(form) = repo::active_by_key(&mut c.conn(), key).await? else {
                return Ok(None);
            };
            Ok(Some(Gate {
                allowed_origins: form.origins(),
                honeypot: form.honeypot_field.clone(),
                redirect_url: form.redirect_url.clone(),
                id: form.id,
            }))
        })
    }

    fn submit<'a>(&'a self, app: &'a App, sub: Submission<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let form = {
                let mut c = app.db.conn().await?;
                match store::get::<repo::LeadForms>(&mut c.conn(), &RowFilter::All, &sub.gate.id)
                    .await?
                {
                    Some(f) if f.active => f,
                    // Deactivated or deleted since the lookup: as if it
                    // had been a moment earlier.
                    _ => return Ok(Outcome::Accepted),
                }
            };
            let maps = form.field_maps()?;
            let input = match Input::read(app, &maps, &sub.fields) {
                Ok(i) => i,
                Err(bad) => return Ok(Outcome::Invalid(bad)),
            };
            let by = Principal::Public(PublicActor {
                kind: "form",
                id: form.id.clone(),
            });
            let mut last = None;
            for _ in 0..ATTEMPTS {
                match capture(app, &by, &form, &input).await {
                    Ok(()) => return Ok(Outcome::Accepted),
                    Err(Error::Validation(errors)) => {
                        return translate(&maps, errors).map(Outcome::Invalid);
                    }
                    // A concurrent submission or edit: run again on what
                    // it committed.
                    Err(e @ Error::Conflict(_)) => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            Err(last.unwrap_or_else(|| Error::Internal("submission not attempted".into())))
        })
    }
}

/// A submission's values by target, checked.
struct Input {
    values: BTreeMap<LeadFormTarget, String>,
    /// The normalised email, the dedupe key.
    email: Option<String>,
}

impl Input {
    /// Reads the mapped fields; the posted names of the missing or invalid
    /// ones otherwise. Unmapped fields are ignored.
    fn read(
        app: &App,
        maps: &[FieldMap],
        posted: &BTreeMap<String, String>,
    ) -> std::result::Result<Input, Vec<String>> {
        let mut bad = Vec::new();
        let mut values = BTreeMap::new();
        let mut email = None;
        for m in maps {
            let v = posted.get(&m.name).map(|v| v.trim()).unwrap_or_default();
            if v.is_empty() {
                if m.required {
                    bad.push(m.name.clone());
                }
                continue;
            }
            if v.chars().count() > MAX_VALUE_CHARS || v.contains('\0') {
                bad.push(m.name.clone());
                continue;
            }
            let v = match m.target {
                LeadFormTarget::Email => match normalize_email(v, "emails") {
                    Ok(e) => {
                        email = Some(e.clone());
                        e
                    }
                    Err(_) => {
                        bad.push(m.name.clone());
                        continue;
                    }
                },
                LeadFormTarget::Phone => {
                    match normalize_phone(v, &app.config.default_phone_code, "phones") {
                        Ok(p) => p,
                        Err(_) => {
                            bad.push(m.name.clone());
                            continue;
                        }
                    }
                }
                _ => v.to_owned(),
            };
            values.insert(m.target, v);
        }
        if bad.is_empty() {
            Ok(Input { values, email })
        } else {
            Err(bad)
        }
    }

    fn text(&self, t: LeadFormTarget) -> Option<Option<String>> {
        self.values.get(&t).map(|v| Some(v.clone()))
    }
}

/// The posted names behind the lead's validation errors; an error on a
/// field the form does not map is the form's configuration, not the
/// visitor's input (INTERNAL, logged).
fn translate(maps: &[FieldMap], errors: Vec<crm_core::error::FieldError>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in &errors {
        let named: Vec<String> = maps
            .iter()
            .filter(|m| {
                m.target.lead_field() == Some(e.field.as_str())
                    // "a lead needs a last name or a company"
                    || e.field == "lastName" && m.target == LeadFormTarget::Company
            })
            .map(|m| m.name.clone())
            .collect();
        if named.is_empty() {
            return Err(Error::Internal(format!(
                "lead form submission refused on {}: {}",
                e.field, e.message
            )));
        }
        out.extend(named);
    }
    Ok(out)
}

/// Whether the dedupe row says this is a repeat within the window; else
/// the row is claimed for this submission (inserted, or taken over once
/// its window has passed), in `tx`.
async fn repeat(conn: &mut Conn<'_>, form: &LeadFormRow, email: &str) -> Result<bool> {
    let now = ids::now();
    let mut ins = Sql::new(
        "INSERT INTO lead_form_submissions (form_id, email, lead_id, submitted_at) VALUES (",
    );
    ins.bind(form.id.as_str())
        .push(", ")
        .bind(email)
        .push(", NULL, ")
        .bind(now)
        .push(") ON CONFLICT (form_id, email) DO NOTHING");
    if ins.execute(conn).await? == 1 {
        return Ok(false);
    }
    #[derive(diesel::QueryableByName)]
    struct Last {
        #[diesel(sql_type = diesel::sql_types::Timestamp)]
        submitted_at: chrono::NaiveDateTime,
    }
    let mut q = Sql::new("SELECT submitted_at FROM lead_form_submissions WHERE form_id = ");
    q.bind(form.id.as_str()).push(" AND email = ").bind(email);
    let Some(last) = q.load::<Last>(conn).await?.into_iter().next() else {
        // Deleted between the two statements (the form was deleted).
        return Ok(true);
    };
    if now.signed_duration_since(last.submitted_at) < Duration::seconds(form.dedupe_window_secs) {
        return Ok(true);
    }
    let mut up = Sql::new("UPDATE lead_form_submissions SET lead_id = NULL, submitted_at = ");
    up.bind(now)
        .push(" WHERE form_id = ")
        .bind(form.id.as_str())
        .push(" AND email = ")
        .bind(email)
        .push(" AND submitted_at = ")
        .bind(last.submitted_at);
    // Zero rows: a concurrent submission took it over first.
    Ok(up.execute(conn).await? == 0)
}

async fn remember(conn: &mut Conn<'_>, form: &LeadFormRow, email: &str, lead: &str) -> Result<()> {
    let mut up = Sql::new("UPDATE lead_form_submissions SET lead_id = ");
    up.bind(lead)
        .push(" WHERE form_id = ")
        .bind(form.id.as_str())
        .push(" AND email = ")
        .bind(email);
    up.execute(conn).await?;
    Ok(())
}

/// The live, unconverted lead with `email`, oldest first.
async fn matching(conn: &mut Conn<'_>, email: &str) -> Result<Option<crate::leads::repo::LeadRow>> {
    let found = leads_repo::candidates(conn, "leads", &[email.to_owned()], None, "").await?;
    for c in found {
        if !points(&c.emails).iter().any(|p| p.value == email) {
            continue;
        }
        if let Some(row) = store::get::<Leads>(conn, &RowFilter::All, &c.id).await?
            && row.converted_at.is_none()
        {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

fn point(value: &str) -> ContactPoint {
    ContactPoint {
        kind: ContactPointKind::Work,
        value: value.to_owned(),
    }
}

/// One attempt: everything in one transaction, or nothing.
async fn capture(app: &App, by: &Principal, form: &LeadFormRow, input: &Input) -> Result<()> {
    let mut tx = app.db.begin().await?;
    if let Some(email) = &input.email
        && form.dedupe_window_secs > 0
        && repeat(&mut tx.conn(), form, email).await?
    {
        // A double click or a retry: the first submission's lead stands.
        return tx.rollback().await;
    }
    let existing = match (&input.email, LeadFormOnMatch::from_stored(&form.on_match)?) {
        (Some(email), LeadFormOnMatch::UpdateMatching) => matching(&mut tx.conn(), email).await?,
        _ => None,
    };
    let lead = match existing {
        Some(row) => update(&mut tx, app, by, form, input, row).await?,
        None => create(&mut tx, app, by, form, input).await?,
    };
    if let Some(email) = &input.email
        && form.dedupe_window_secs > 0
    {
        remember(&mut tx.conn(), form, email, &lead.id).await?;
    }
    let author = lead
        .owner_id
        .clone()
        .or_else(|| form.owner_id.clone())
        .or_else(|| form.created_by.clone())
        .ok_or_else(|| Error::Internal(format!("lead form {} has no author", form.id)))?;
    let title: String = format!("Form submitted: {}", form.name)
        .chars()
        .take(300)
        .collect();
    record_entry(
        &mut tx.conn(),
        by,
        TimelineEntry {
            kind: ActivityKind::Note,
            subject_type: SubjectType::of("Lead")?,
            subject_id: lead.id.clone(),
            title,
            body: input.values.get(&LeadFormTarget::Note).cloned(),
            owner_id: author,
        },
    )
    .await?;
    crate::scoring::engage(
        &mut tx.conn(),
        &lead.id,
        crate::values::EngagementEvent::FormSubmitted,
        ids::now(),
    )
    .await?;
    app.commit(tx).await
}

async fn create(
    tx: &mut Tx,
    app: &App,
    by: &Principal,
    form: &LeadFormRow,
    input: &Input,
) -> Result<crate::leads::repo::LeadRow> {
    use LeadFormTarget as T;
    let fields = LeadFields {
        first_name: input.text(T::FirstName),
        last_name: input.text(T::LastName),
        title: input.text(T::Title),
        emails: Some(
            input
                .values
                .get(&T::Email)
                .map(|e| point(e))
                .into_iter()
                .collect(),
        ),
        phones: Some(
            input
                .values
                .get(&T::Phone)
                .map(|p| point(p))
                .into_iter()
                .collect(),
        ),
        company: input.text(T::Company),
        website: input.text(T::Website),
        industry: input.text(T::Industry),
        country: input.text(T::Country),
        region: input.text(T::Region),
        city: input.text(T::City),
        source: Some(LeadSource::from_stored(&form.default_source)?),
        campaign_id: Some(form.default_campaign_id.clone()),
        owner_id: form.owner_id.clone().map(Some),
        team_id: Some(form.team_id.clone()),
        tag_ids: Some(form.tag_ids().into_iter().map(ID).collect()),
        ..Default::default()
    };
    store::create_in::<Leads>(tx, app, by, fields).await
}

/// Writes the submitted values into a matching lead; its owner, team,
/// source and status stay, the form's tags are added, its campaign is set
/// if the lead had none.
async fn update(
    tx: &mut Tx,
    app: &App,
    by: &Principal,
    form: &LeadFormRow,
    input: &Input,
    row: crate::leads::repo::LeadRow,
) -> Result<crate::leads::repo::LeadRow> {
    use LeadFormTarget as T;
    let mut phones = points(&row.phones);
    if let Some(p) = input.values.get(&T::Phone)
        && !phones.iter().any(|o| &o.value == p)
    {
        phones.push(point(p));
    }
    let mut tags: Vec<String> = serde_json::from_str(&row.tags).unwrap_or_default();
    for t in form.tag_ids() {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let fields = LeadFields {
        first_name: input.text(T::FirstName),
        last_name: input.text(T::LastName),
        title: input.text(T::Title),
        phones: Some(phones),
        company: input.text(T::Company),
        website: input.text(T::Website),
        industry: input.text(T::Industry),
        country: input.text(T::Country),
        region: input.text(T::Region),
        city: input.text(T::City),
        campaign_id: row
            .campaign_id
            .is_none()
            .then(|| form.default_campaign_id.clone()),
        tag_ids: Some(tags.into_iter().map(ID).collect()),
        ..Default::default()
    };
    store::update_in::<Leads>(tx, app, by, &RowFilter::All, &row.id, row.version, fields).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_core::error::FieldError;

    #[test]
    fn lead_errors_name_the_posted_fields() {
        let maps = vec![
            FieldMap {
                name: "surname".into(),
                target: LeadFormTarget::LastName,
                required: false,
            },
            FieldMap {
                name: "org".into(),
                target: LeadFormTarget::Company,
                required: false,
            },
            FieldMap {
                name: "cc".into(),
                target: LeadFormTarget::Country,
                required: false,
            },
        ];
        let e = |f: &str| FieldError {
            field: f.into(),
            message: "bad".into(),
        };
        let mut got = translate(&maps, vec![e("lastName"), e("country")]).unwrap();
        got.sort();
        assert_eq!(got, ["cc", "org", "surname"]);
        assert!(translate(&maps, vec![e("tagIds")]).is_err());
    }
}
