//! The rules of a lead, as the entity kit's hooks: contact points
//! normalised as contacts' are, a last name or a company, a reason for an
//! unqualified lead, an owner or a team queue, tags and consent, the
//! duplicate check against contacts and other leads, and the conversion
//! stamp (written by `convertLead` only).

use async_graphql::ID;
use crm_core::app::App;
use crm_core::custom;
use crm_core::db::{Conn, Tx};
use crm_core::entity::{Def, Entity, WriteCtx};
use crm_core::error::{Checks, Error, Result};
use crm_core::identity::repo as users;
use crm_core::ids;
use crm_customers::contacts::ConsentInput;
use crm_customers::values::{
    ConsentState, ContactPoint, SizeBand, normalize_email, normalize_phone, opt_text,
};
use serde_json::{Map, Value, json};

use super::repo::{self, LeadRow, Leads};
use crate::values::{LeadSource, LeadStatus, company_key};

/// What a conversion wrote, stamped on the lead in the same transaction.
#[derive(Clone, Debug)]
pub struct Conversion {
    pub account_id: String,
    pub contact_id: String,
    pub opportunity_id: Option<String>,
}

/// Fields of a lead as entered; `None` leaves a field alone on update,
/// `Some(None)` clears it.
#[derive(Clone, Default)]
pub struct LeadFields {
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub title: Option<Option<String>>,
    pub emails: Option<Vec<ContactPoint>>,
    pub phones: Option<Vec<ContactPoint>>,
    pub company: Option<Option<String>>,
    pub website: Option<Option<String>>,
    pub industry: Option<Option<String>>,
    pub size_band: Option<Option<SizeBand>>,
    pub country: Option<Option<String>>,
    pub region: Option<Option<String>>,
    pub city: Option<Option<String>>,
    pub source: Option<LeadSource>,
    pub campaign_id: Option<Option<String>>,
    pub status: Option<LeadStatus>,
    pub status_reason: Option<Option<String>>,
    /// `Some(None)`: unassigned, waiting in the lead's team queue.
    pub owner_id: Option<Option<String>>,
    pub team_id: Option<Option<String>>,
    pub tag_ids: Option<Vec<ID>>,
    pub consent: Option<ConsentInput>,
    /// Custom field values to set (null clears).
    pub custom: Option<Map<String, Value>>,
    /// Set by the conversion only.
    pub conversion: Option<Conversion>,
}

/// The public fields of a lead, for audit diffs and events (keys are
/// `Lead` field names, so field rules apply to them); custom field values
/// appear as `custom.<key>`.
pub fn snapshot(r: &LeadRow) -> Value {
    let converted: Value = r
        .converted
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(Value::Null);
    let mut v = json!({
        "firstName": r.first_name,
        "lastName": r.last_name,
        "title": r.title,
        "emails": serde_json::from_str::<Value>(&r.emails).unwrap_or_default(),
        "phones": serde_json::from_str::<Value>(&r.phones).unwrap_or_default(),
        "company": r.company,
        "website": r.website,
        "industry": r.industry,
        "sizeBand": r.size_band,
        "country": r.country,
        "region": r.region,
        "city": r.city,
        "source": r.source,
        "campaignId": r.campaign_id,
        "status": r.status,
        "statusReason": r.status_reason,
        "ownerId": r.owner_id,
        "teamId": r.team_id,
        "tagIds": serde_json::from_str::<Value>(&r.tags).unwrap_or_default(),
        "consent": serde_json::from_str::<Value>(&r.consent).unwrap_or_default(),
        "matchedContactId": r.matched_contact_id,
        "duplicateOf": r.duplicate_of,
        "convertedAt": r.converted_at,
        "convertedAccountId": converted.get("accountId"),
        "convertedContactId": converted.get("contactId"),
        "convertedOpportunityId": converted.get("opportunityId"),
        "deletedAt": r.deleted_at,
    });
    if let Some(o) = v.as_object_mut() {
        o.extend(custom::snapshot_fields(&r.custom));
    }
    v
}

/// The contact points of a stored list.
pub fn points(stored: &str) -> Vec<ContactPoint> {
    serde_json::from_str(stored).unwrap_or_default()
}

fn normalised(app: &App, c: &mut Checks, list: Vec<ContactPoint>, field: &str) -> Result<String> {
    let mut out: Vec<ContactPoint> = Vec::new();
    for p in list {
        let v = if field == "emails" {
            normalize_email(&p.value, field)
        } else {
            normalize_phone(&p.value, &app.config.default_phone_code, field)
        };
        if let Some(v) = c.take(v)?
            && !out.iter().any(|o| o.value == v)
        {
            out.push(ContactPoint {
                kind: p.kind,
                value: v,
            });
        }
    }
    Ok(serde_json::to_string(&out).unwrap_or_else(|_| "[]".into()))
}

/// The duplicate check: the oldest live contact sharing an email or phone
/// with the lead, and the oldest other live lead sharing one or the
/// normalised company name. Links only; who sees them is decided when they
/// are read.
async fn check_duplicates(conn: &mut Conn<'_>, row: &mut LeadRow) -> Result<()> {
    let values: Vec<String> = points(&row.emails)
        .into_iter()
        .chain(points(&row.phones))
        .map(|p| p.value)
        .collect();
    let shares = |emails: &str, phones: &str| {
        points(emails)
            .into_iter()
            .chain(points(phones))
            .any(|p| values.contains(&p.value))
    };
    row.matched_contact_id = if values.is_empty() {
        None
    } else {
        repo::candidates(conn, "contacts", &values, None, &row.id)
            .await?
            .into_iter()
            .find(|c| shares(&c.emails, &c.phones))
            .map(|c| c.id)
    };
    let company = row.company_key.clone();
    row.duplicate_of = repo::candidates(conn, "leads", &values, company.as_deref(), &row.id)
        .await?
        .into_iter()
        .find(|c| {
            shares(&c.emails, &c.phones) || c.company_key.is_some() && c.company_key == company
        })
        .map(|c| c.id);
    Ok(())
}

/// Applies `f` to `row`, validating every field; collects all problems.
async fn apply(
    w: &WriteCtx<'_>,
    conn: &mut Conn<'_>,
    row: &mut LeadRow,
    f: LeadFields,
) -> Result<()> {
    let (app, by) = (w.app, w.by);
    let mut c = Checks::default();
    let was = LeadStatus::from_stored(&row.status)?;
    if !w.creating && was == LeadStatus::Converted && f.conversion.is_none() {
        let changes_state = f.status.is_some_and(|s| s != LeadStatus::Converted)
            || f.owner_id.is_some()
            || f.team_id.is_some();
        if changes_state {
            c.take::<()>(Err(Error::invalid(
                "status",
                "a converted lead stays converted and keeps its owner",
            )))?;
        }
    }
    if f.custom.is_some() || w.creating {
        let defs = custom::definitions(conn, "Lead").await?;
        let may_write = |k: &str| custom::allowed(app, by, "Lead", k, "write");
        if let Some(v) = c.take(custom::apply(
            &defs,
            &row.custom,
            f.custom.as_ref(),
            w.creating,
            &may_write,
        ))? {
            row.custom = v;
        }
    }
    let keys_change = w.creating || f.emails.is_some() || f.phones.is_some() || f.company.is_some();
    for (v, max, field, slot) in [
        (f.first_name, 100, "firstName", &mut row.first_name),
        (f.last_name, 100, "lastName", &mut row.last_name),
        (f.title, 200, "title", &mut row.title),
        (f.company, 200, "company", &mut row.company),
        (f.website, 300, "website", &mut row.website),
        (f.industry, 100, "industry", &mut row.industry),
        (f.country, 2, "country", &mut row.country),
        (f.region, 100, "region", &mut row.region),
        (f.city, 100, "city", &mut row.city),
        (f.campaign_id, 100, "campaignId", &mut row.campaign_id),
    ] {
        if let Some(v) = v
            && let Some(v) = c.take(opt_text(v, max, field))?
        {
            *slot = v;
        }
    }
    row.country = row.country.take().map(|s| s.to_uppercase());
    if row
        .country
        .as_deref()
        .is_some_and(|s| s.len() != 2 || !s.chars().all(|c| c.is_ascii_alphabetic()))
    {
        c.take::<()>(Err(Error::invalid(
            "country",
            "must be an ISO 3166-1 alpha-2 code",
        )))?;
    }
    row.company_key = row.company.as_deref().and_then(company_key);
    if let Some(list) = f.emails {
        row.emails = normalised(app, &mut c, list, "emails")?;
    }
    if let Some(list) = f.phones {
        row.phones = normalised(app, &mut c, list, "phones")?;
    }
    if let Some(v) = f.size_band {
        row.size_band = v.map(SizeBand::as_text);
    }
    if let Some(v) = f.source {
        row.source = v.as_str().into();
    }
    if let Some(ids) = f.tag_ids
        && let Some(v) = c.take(crm_customers::tags::check_ids(conn, &ids, "tagIds").await)?
    {
        row.tags = serde_json::to_string(&v).unwrap_or_else(|_| "[]".into());
    }
    if let Some(consent) = f.consent {
        let mut stored: Map<String, Value> = serde_json::from_str(&row.consent).unwrap_or_default();
        let state = consent.state.as_text();
        if stored.get("state").and_then(Value::as_str) != Some(state.as_str()) {
            stored.insert("state".into(), json!(state));
            stored.insert("at".into(), json!(ids::now()));
        }
        if let Some(v) = c.take(opt_text(consent.source, 200, "consent"))? {
            stored.insert("source".into(), json!(v));
        }
        row.consent = Value::Object(stored).to_string();
    }
    // Owner, team and queue.
    if let Some(t) = f.team_id {
        match t {
            Some(t) => {
                if c.take(users::check_team(conn, &t, "teamId").await)?
                    .is_some()
                {
                    row.team_id = Some(t);
                }
            }
            None => row.team_id = None,
        }
    }
    match f.owner_id {
        Some(Some(owner))
            if c.take(users::check_active_user(conn, &owner, "ownerId").await)?
                .is_some() =>
        {
            row.owner_id = Some(owner);
        }
        Some(Some(_)) => {}
        Some(None) => row.owner_id = None,
        // A new lead given only a team waits in that team's queue (the
        // owner the kit defaulted to, the writer, is dropped; an owner an
        // import names stays).
        None if w.creating
            && row.team_id.is_some()
            && row.owner_id.as_deref() == by.user_id()
            && f.conversion.is_none() =>
        {
            row.owner_id = None;
        }
        None => {}
    }
    if row.owner_id.is_none() && row.team_id.is_none() {
        c.take::<()>(Err(Error::invalid(
            "ownerId",
            "a lead without an owner waits in a team's queue: give teamId",
        )))?;
    }
    // Status and its reason.
    if let Some(s) = f.status {
        if s == LeadStatus::Converted && f.conversion.is_none() && was != LeadStatus::Converted {
            c.take::<()>(Err(Error::invalid(
                "status",
                "a lead becomes CONVERTED through convertLead",
            )))?;
        } else {
            row.status = s.as_str().into();
        }
    }
    let status = LeadStatus::from_stored(&row.status)?;
    if let Some(v) = f.status_reason {
        let v = c.take(opt_text(v, 500, "statusReason"))?.flatten();
        if v.is_some() && status != LeadStatus::Unqualified {
            c.take::<()>(Err(Error::invalid(
                "statusReason",
                "only an UNQUALIFIED lead has a reason",
            )))?;
        } else {
            row.status_reason = v;
        }
    }
    if status != LeadStatus::Unqualified {
        row.status_reason = None;
    } else if row.status_reason.is_none() {
        c.take::<()>(Err(Error::invalid(
            "statusReason",
            "is required for an UNQUALIFIED lead",
        )))?;
    }
    if let Some(conv) = f.conversion {
        row.status = LeadStatus::Converted.as_str().into();
        row.status_reason = None;
        row.converted_at = Some(ids::now());
        row.converted = Some(
            json!({
                "accountId": conv.account_id,
                "contactId": conv.contact_id,
                "opportunityId": conv.opportunity_id,
            })
            .to_string(),
        );
    }
    let named = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    if !named(&row.last_name) && !named(&row.company) {
        c.take::<()>(Err(Error::invalid(
            "lastName",
            "a lead needs a last name or a company",
        )))?;
    }
    c.finish()?;
    if keys_change {
        check_duplicates(conn, row).await?;
    }
    Ok(())
}

impl Entity for Leads {
    const DEF: Def = repo::DEF;
    type Row = LeadRow;
    type Fields = LeadFields;

    fn snapshot(row: &LeadRow) -> Value {
        snapshot(row)
    }

    fn blank() -> LeadRow {
        let now = ids::now();
        LeadRow {
            id: String::new(),
            first_name: None,
            last_name: None,
            title: None,
            emails: "[]".into(),
            phones: "[]".into(),
            company: None,
            company_key: None,
            website: None,
            industry: None,
            size_band: None,
            country: None,
            region: None,
            city: None,
            source: LeadSource::Api.as_str().into(),
            campaign_id: None,
            status: LeadStatus::New.as_str().into(),
            status_reason: None,
            owner_id: None,
            team_id: None,
            tags: "[]".into(),
            consent: json!({"state": ConsentState::Unknown.as_text()}).to_string(),
            matched_contact_id: None,
            duplicate_of: None,
            converted_at: None,
            converted: None,
            custom: "{}".into(),
            created_at: now,
            updated_at: now,
            version: 1,
            deleted_at: None,
            deleted_by: None,
        }
    }

    /// The lead's fit score follows every write (create, update, import
    /// row, conversion) in its transaction.
    async fn after_write(
        _w: &WriteCtx<'_>,
        tx: &mut crm_core::db::Tx,
        _before: Option<&LeadRow>,
        after: &LeadRow,
    ) -> Result<()> {
        crate::scoring::store::refresh_fit(&mut tx.conn(), after).await
    }

    fn requested_owner(f: &LeadFields) -> Option<&str> {
        f.owner_id.as_ref().and_then(|o| o.as_deref())
    }

    /// The conversion is `lead.converted`.
    fn update_action(before: &LeadRow, after: &LeadRow) -> &'static str {
        if before.converted_at.is_none() && after.converted_at.is_some() {
            "converted"
        } else {
            "updated"
        }
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut LeadRow,
        f: LeadFields,
    ) -> Result<()> {
        apply(w, conn, row, f).await
    }

    /// A new lead whose writer named no owner goes where the first
    /// matching assignment rule sends it, in the creating transaction.
    async fn after_create(w: &WriteCtx<'_>, tx: &mut Tx, row: &mut LeadRow) -> Result<()> {
        if w.owner_given {
            return Ok(());
        }
        crate::assignment::engine::route(tx, w.by, row).await?;
        Ok(())
    }
}
