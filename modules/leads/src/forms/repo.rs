//! Web forms in the database: the row, its declaration to the entity kit
//! (shared configuration: no owner, no recycle bin; writes versioned,
//! audited and evented) and the rules of its fields.

use async_graphql::ID;
use chrono::NaiveDateTime;
use crm_core::db::Conn;
use crm_core::entity::sql::{Bind, Sql};
use crm_core::entity::{Column, Def, Entity, Kind, Scope, WriteCtx};
use crm_core::error::{Checks, Error, Result};
use crm_core::identity::repo as users;
use crm_core::ids;
use crm_core::public::normalize_origin;
use crm_core::schema::lead_forms;
use crm_customers::values::opt_text;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::values::{LeadFormOnMatch, LeadFormTarget, LeadSource};

/// Dedupe window of a new form, in seconds.
pub const DEFAULT_WINDOW_SECS: i64 = 600;
/// Longest dedupe window: 30 days.
pub const MAX_WINDOW_SECS: i64 = 30 * 86_400;
/// Most fields a form maps.
pub const MAX_FIELDS: usize = 50;
/// Most allowed origins of a form.
pub const MAX_ORIGINS: usize = 20;

/// A form row.
#[derive(Clone, Debug, QueryableByName, Serialize, Deserialize)]
#[diesel(table_name = lead_forms)]
pub struct LeadFormRow {
    pub id: String,
    /// The key in its public URL.
    pub form_key: String,
    pub name: String,
    pub active: bool,
    /// JSON list of [`StoredField`].
    pub fields: String,
    /// JSON list of origins.
    pub allowed_origins: String,
    pub redirect_url: Option<String>,
    pub default_source: String,
    pub default_campaign_id: Option<String>,
    /// JSON list of tag ids.
    pub default_tags: String,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub on_match: String,
    pub honeypot_field: Option<String>,
    pub dedupe_window_secs: i64,
    /// The user who created it (none when an API key did).
    pub created_by: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

/// One mapped field as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredField {
    /// The posted field name.
    pub name: String,
    /// A [`LeadFormTarget`] as stored.
    pub target: String,
    /// Whether a submission without it is refused.
    pub required: bool,
}

/// One mapped field.
#[derive(Clone, Debug)]
pub struct FieldMap {
    pub name: String,
    pub target: LeadFormTarget,
    pub required: bool,
}

impl LeadFormRow {
    /// The mapped fields.
    pub fn field_maps(&self) -> Result<Vec<FieldMap>> {
        let stored: Vec<StoredField> = serde_json::from_str(&self.fields)
            .map_err(|e| Error::Internal(format!("lead form {} fields: {e}", self.id)))?;
        stored
            .into_iter()
            .map(|f| {
                Ok(FieldMap {
                    target: LeadFormTarget::from_stored(&f.target)?,
                    name: f.name,
                    required: f.required,
                })
            })
            .collect()
    }

    /// The allowed origins.
    pub fn origins(&self) -> Vec<String> {
        serde_json::from_str(&self.allowed_origins).unwrap_or_default()
    }

    /// The default tag ids.
    pub fn tag_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.default_tags).unwrap_or_default()
    }
}

/// Web forms, declared to the entity kit.
pub struct LeadForms;

/// The declaration of [`LeadForms`].
pub const DEF: Def = Def {
    type_name: "LeadForm",
    prefix: "lfm",
    label: "lead form",
    table: "lead_forms",
    topic: crate::TOPIC,
    columns: &[
        Column::new("id", Kind::Text).api("id"),
        Column::text("form_key", "key"),
        Column::text("name", "name").sort(),
        Column::new("active", Kind::Bool).api("active"),
        Column::text("fields", "fields"),
        Column::text("allowed_origins", "allowedOrigins"),
        Column::text("redirect_url", "redirectUrl").nullable(),
        Column::text("default_source", "defaultSource"),
        Column::text("default_campaign_id", "defaultCampaignId").nullable(),
        Column::text("default_tags", "defaultTagIds"),
        Column::text("owner_id", "ownerId").nullable(),
        Column::text("team_id", "teamId").nullable(),
        Column::text("on_match", "onMatch"),
        Column::text("honeypot_field", "honeypotField").nullable(),
        Column::int("dedupe_window_secs", "dedupeWindowSecs"),
        Column::text("created_by", "createdBy").nullable(),
        Column::time("created_at", "createdAt"),
        Column::time("updated_at", "updatedAt"),
        Column::int("version", "version"),
    ],
    scope: Scope::Shared,
    soft_delete: None,
    custom_fields: false,
};

/// Fields of a form write; `None` leaves a field alone, `Some(None)`
/// clears it.
#[derive(Clone, Debug, Default)]
pub struct FormFields {
    pub name: Option<String>,
    pub active: Option<bool>,
    pub fields: Option<Vec<FieldMap>>,
    pub allowed_origins: Option<Vec<String>>,
    pub redirect_url: Option<Option<String>>,
    pub default_source: Option<LeadSource>,
    pub default_campaign_id: Option<Option<String>>,
    pub default_tag_ids: Option<Vec<ID>>,
    pub owner_id: Option<Option<String>>,
    pub team_id: Option<Option<String>>,
    pub on_match: Option<LeadFormOnMatch>,
    pub honeypot_field: Option<Option<String>>,
    pub dedupe_window_secs: Option<i64>,
    /// A new key (the old URL stops working).
    pub new_key: bool,
}

/// Whether `s` can be a posted field name: 1 to 100 letters, digits and
/// `_ - . [ ]`.
fn field_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
}

fn redirect_ok(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        && s.len() <= 2000
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split_once("://").is_some_and(|(_, rest)| {
            !rest.is_empty() && !rest.starts_with('/') && !rest.starts_with('\\')
        })
}

/// The form with `key`, if it is active.
pub async fn active_by_key(conn: &mut Conn<'_>, key: &str) -> Result<Option<LeadFormRow>> {
    let cols: Vec<&str> = DEF.columns.iter().map(|c| c.name).collect();
    let mut s = Sql::new(format!(
        "SELECT {} FROM lead_forms WHERE form_key = ",
        cols.join(", ")
    ));
    s.bind(key)
        .push(" AND active = ")
        .bind(Bind::Bool(Some(true)));
    Ok(s.load::<LeadFormRow>(conn).await?.into_iter().next())
}

/// Every form, by name.
pub async fn all(conn: &mut Conn<'_>) -> Result<Vec<LeadFormRow>> {
    let cols: Vec<&str> = DEF.columns.iter().map(|c| c.name).collect();
    let s = Sql::new(format!(
        "SELECT {} FROM lead_forms ORDER BY name, id",
        cols.join(", ")
    ));
    s.load::<LeadFormRow>(conn).await
}

async fn apply(
    w: &WriteCtx<'_>,
    conn: &mut Conn<'_>,
    row: &mut LeadFormRow,
    f: FormFields,
) -> Result<()> {
    let mut c = Checks::default();
    if w.creating || f.new_key {
        row.form_key = crm_core::public::random_key();
    }
    if w.creating {
        row.created_by = w.by.user_id().map(str::to_owned);
    }
    if let Some(n) = f.name {
        let n = n.trim();
        if n.is_empty() || n.chars().count() > 100 {
            c.take::<()>(Err(Error::invalid("name", "must be 1 to 100 characters")))?;
        } else {
            row.name = n.to_owned();
        }
    }
    if let Some(a) = f.active {
        row.active = a;
    }
    if let Some(list) = f.fields {
        let mut bad = list.is_empty() || list.len() > MAX_FIELDS;
        let mut stored = Vec::new();
        for (i, m) in list.iter().enumerate() {
            let dup = list[..i]
                .iter()
                .any(|o| o.name == m.name || o.target == m.target);
            bad |= !field_name_ok(&m.name) || dup;
            stored.push(StoredField {
                name: m.name.clone(),
                target: m.target.as_str().into(),
                required: m.required,
            });
        }
        if bad {
            c.take::<()>(Err(Error::invalid(
                "fields",
                format!(
                    "1 to {MAX_FIELDS} fields, each with a distinct name (letters, digits, _ - . [ ]) and a distinct target"
                ),
            )))?;
        } else if !list
            .iter()
            .any(|m| matches!(m.target, LeadFormTarget::LastName | LeadFormTarget::Company))
        {
            c.take::<()>(Err(Error::invalid(
                "fields",
                "a lead needs a last name or a company: map LAST_NAME or COMPANY",
            )))?;
        } else {
            row.fields = serde_json::to_string(&stored).unwrap_or_else(|_| "[]".into());
        }
    }
    if let Some(list) = f.allowed_origins {
        let norm: Vec<Option<String>> = list.iter().map(|o| normalize_origin(o)).collect();
        if list.len() > MAX_ORIGINS || norm.iter().any(Option::is_none) {
            c.take::<()>(Err(Error::invalid(
                "allowedOrigins",
                format!("at most {MAX_ORIGINS} origins, each scheme://host[:port] (http or https)"),
            )))?;
        } else {
            let mut v: Vec<String> = norm.into_iter().flatten().collect();
            v.sort();
            v.dedup();
            row.allowed_origins = serde_json::to_string(&v).unwrap_or_else(|_| "[]".into());
        }
    }
    if let Some(u) = f.redirect_url {
        match u.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
            Some(u) if !redirect_ok(&u) => {
                c.take::<()>(Err(Error::invalid(
                    "redirectUrl",
                    "must be an absolute http or https URL",
                )))?;
            }
            u => row.redirect_url = u,
        }
    }
    if let Some(s) = f.default_source {
        row.default_source = s.as_str().into();
    }
    if let Some(v) = f.default_campaign_id
        && let Some(v) = c.take(opt_text(v, 100, "defaultCampaignId"))?
    {
        row.default_campaign_id = v;
    }
    if let Some(ids) = f.default_tag_ids
        && let Some(v) =
            c.take(crm_customers::tags::check_ids(conn, &ids, "defaultTagIds").await)?
    {
        row.default_tags = serde_json::to_string(&v).unwrap_or_else(|_| "[]".into());
    }
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
    if let Some(o) = f.owner_id {
        match o {
            Some(o) => {
                if c.take(users::check_active_user(conn, &o, "ownerId").await)?
                    .is_some()
                {
                    row.owner_id = Some(o);
                }
            }
            None => row.owner_id = None,
        }
    }
    if row.owner_id.is_none() && row.team_id.is_none() {
        c.take::<()>(Err(Error::invalid(
            "ownerId",
            "the form's leads need an owner or a team queue: give ownerId or teamId",
        )))?;
    }
    if row.owner_id.is_none() && row.created_by.is_none() {
        // The timeline entry of a submission needs an author: the leads'
        // owner, else the user who made the form.
        c.take::<()>(Err(Error::invalid(
            "ownerId",
            "is required when an API key makes a form",
        )))?;
    }
    if let Some(m) = f.on_match {
        row.on_match = m.as_str().into();
    }
    if let Some(h) = f.honeypot_field {
        match h.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
            Some(h) if !field_name_ok(&h) => {
                c.take::<()>(Err(Error::invalid(
                    "honeypotField",
                    "1 to 100 letters, digits and _ - . [ ]",
                )))?;
            }
            h => row.honeypot_field = h,
        }
    }
    if let Some(n) = f.dedupe_window_secs {
        if (0..=MAX_WINDOW_SECS).contains(&n) {
            row.dedupe_window_secs = n;
        } else {
            c.take::<()>(Err(Error::invalid(
                "dedupeWindowSecs",
                format!("must be 0 to {MAX_WINDOW_SECS}"),
            )))?;
        }
    }
    let mapped: Vec<StoredField> = serde_json::from_str(&row.fields).unwrap_or_default();
    if mapped.is_empty() {
        c.take::<()>(Err(Error::invalid("fields", "map at least one field")))?;
    }
    if let Some(h) = &row.honeypot_field
        && mapped.iter().any(|m| &m.name == h)
    {
        c.take::<()>(Err(Error::invalid(
            "honeypotField",
            "must not be one of the mapped fields",
        )))?;
    }
    c.finish()
}

impl Entity for LeadForms {
    const DEF: Def = DEF;
    type Row = LeadFormRow;
    type Fields = FormFields;

    fn snapshot(r: &LeadFormRow) -> Value {
        json!({
            "key": r.form_key,
            "name": r.name,
            "active": r.active,
            "fields": serde_json::from_str::<Value>(&r.fields).unwrap_or_default(),
            "allowedOrigins": serde_json::from_str::<Value>(&r.allowed_origins).unwrap_or_default(),
            "redirectUrl": r.redirect_url,
            "defaultSource": r.default_source,
            "defaultCampaignId": r.default_campaign_id,
            "defaultTagIds": serde_json::from_str::<Value>(&r.default_tags).unwrap_or_default(),
            "ownerId": r.owner_id,
            "teamId": r.team_id,
            "onMatch": r.on_match,
            "honeypotField": r.honeypot_field,
            "dedupeWindowSecs": r.dedupe_window_secs,
        })
    }

    fn blank() -> LeadFormRow {
        let now = ids::now();
        LeadFormRow {
            id: String::new(),
            form_key: String::new(),
            name: String::new(),
            active: true,
            fields: "[]".into(),
            allowed_origins: "[]".into(),
            redirect_url: None,
            default_source: LeadSource::WebForm.as_str().into(),
            default_campaign_id: None,
            default_tags: "[]".into(),
            owner_id: None,
            team_id: None,
            on_match: LeadFormOnMatch::CreateNew.as_str().into(),
            honeypot_field: None,
            dedupe_window_secs: DEFAULT_WINDOW_SECS,
            created_by: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut LeadFormRow,
        f: FormFields,
    ) -> Result<()> {
        apply(w, conn, row, f).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declaration_is_sound() {
        assert!(DEF.problems().is_empty(), "{:?}", DEF.problems());
    }

    #[test]
    fn redirects_are_absolute_web_urls() {
        assert!(redirect_ok("https://example.com/thanks?x=1"));
        assert!(!redirect_ok("javascript:alert(1)"));
        assert!(!redirect_ok("//evil.example"));
        assert!(!redirect_ok("https:///x"));
        assert!(!redirect_ok("https://a.example/\nSet-Cookie: x"));
    }
}
