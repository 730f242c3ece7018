//! Contact writes: the input fields, the domain rules (contact points
//! normalised, the search text and duplicate key, the account link, consent)
//! and the declaration's hooks for the entity kit, which does the
//! transaction, version check, audit entry and event.

use crm_core::access::{Principal, RowFilter};
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::entity::subject::{self, SubjectType};
use crm_core::entity::{Def, Entity, WriteCtx};
use crm_core::error::{Checks, Error, Result};
use crm_core::identity::repo as users;
use crm_core::ids;
use serde_json::{Value, json};

use super::ConsentInput;
use super::repo::{ContactRow, Contacts};
use crate::values::{
    Channel, ConsentState, ContactPoint, normalize_email, normalize_phone, opt_text, req_text,
};

/// A contact's fields as entered; `None` leaves a field alone. Public so
/// that downstream workflows (a lead's conversion) write contacts through
/// the kit with the same rules.
#[derive(Default)]
pub struct Fields {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<Option<String>>,
    pub emails: Option<Vec<ContactPoint>>,
    pub phones: Option<Vec<ContactPoint>>,
    pub preferred_channel: Option<Option<Channel>>,
    pub language: Option<Option<String>>,
    pub account_id: Option<Option<String>>,
    pub owner_id: Option<String>,
    pub consent: Option<ConsentInput>,
    /// Custom field values to set (null clears).
    pub custom: Option<serde_json::Map<String, Value>>,
    /// True for a new record: defaults and required custom fields apply.
    pub creating: bool,
    /// The definitions to check against (loaded when None).
    pub custom_defs: Option<std::sync::Arc<Vec<crm_core::custom::Def>>>,
    /// The caller's read scope on accounts: `accountId` must be one of
    /// them (None: no account can be linked).
    pub accounts_scope: Option<RowFilter>,
}

/// The public fields of a contact, for audit diffs and events; custom
/// field values appear as `custom.<key>`.
pub fn snapshot(r: &ContactRow) -> Value {
    let mut v = json!({
        "firstName": r.first_name,
        "lastName": r.last_name,
        "title": r.title,
        "emails": serde_json::from_str::<Value>(&r.emails).unwrap_or_default(),
        "phones": serde_json::from_str::<Value>(&r.phones).unwrap_or_default(),
        "preferredChannel": r.preferred_channel,
        "language": r.language,
        "accountId": r.account_id,
        "ownerId": r.owner_id,
        "consent": {"state": r.consent_state, "at": r.consent_at, "source": r.consent_source},
        "deletedAt": r.deleted_at,
    });
    if let Some(o) = v.as_object_mut() {
        o.extend(crm_core::custom::snapshot_fields(&r.custom));
    }
    v
}

pub(crate) async fn apply(
    app: &App,
    by: &Principal,
    conn: &mut Conn<'_>,
    scope_for_accounts: &RowFilter,
    row: &mut ContactRow,
    f: Fields,
) -> Result<()> {
    let mut c = Checks::default();
    if f.custom.is_some() || f.creating {
        let defs = match &f.custom_defs {
            Some(d) => d.clone(),
            None => std::sync::Arc::new(crm_core::custom::definitions(conn, "Contact").await?),
        };
        let may_write = |k: &str| crm_core::custom::allowed(app, by, "Contact", k, "write");
        if let Some(v) = c.take(crm_core::custom::apply(
            &defs,
            &row.custom,
            f.custom.as_ref(),
            f.creating,
            &may_write,
        ))? {
            row.custom = v;
        }
    }
    if let Some(v) = f.first_name.map(|v| req_text(&v, 100, "firstName"))
        && let Some(v) = c.take(v)?
    {
        row.first_name = v;
    }
    if let Some(v) = f.last_name.map(|v| req_text(&v, 100, "lastName"))
        && let Some(v) = c.take(v)?
    {
        row.last_name = v;
    }
    if let Some(v) = f.title
        && let Some(v) = c.take(opt_text(v, 200, "title"))?
    {
        row.title = v;
    }
    if let Some(v) = f.language
        && let Some(v) = c.take(opt_text(v, 20, "language"))?
    {
        row.language = v;
    }
    if let Some(list) = f.emails {
        let mut out = Vec::new();
        for p in list {
            if let Some(v) = c.take(normalize_email(&p.value, "emails"))?
                && !out.iter().any(|o: &ContactPoint| o.value == v)
            {
                out.push(ContactPoint {
                    kind: p.kind,
                    value: v,
                });
            }
        }
        row.emails = serde_json::to_string(&out).unwrap_or_else(|_| "[]".into());
    }
    if let Some(list) = f.phones {
        let mut out = Vec::new();
        for p in list {
            if let Some(v) = c.take(normalize_phone(
                &p.value,
                &app.config.default_phone_code,
                "phones",
            ))? && !out.iter().any(|o: &ContactPoint| o.value == v)
            {
                out.push(ContactPoint {
                    kind: p.kind,
                    value: v,
                });
            }
        }
        row.phones = serde_json::to_string(&out).unwrap_or_else(|_| "[]".into());
    }
    if let Some(v) = f.preferred_channel {
        row.preferred_channel = v.map(Channel::as_text);
    }
    if let Some(v) = f.account_id {
        if let Some(a) = &v {
            // You may only attach a contact to an account you can see.
            let visible = ids::check(a, "acc", "accountId").is_ok()
                && subject::live_in_scope(conn, scope_for_accounts, SubjectType::of("Account")?, a)
                    .await?;
            if !visible {
                c.take::<()>(Err(Error::invalid("accountId", "no such account")))?;
            }
        }
        row.account_id = v;
    }
    if let Some(owner) = f.owner_id
        && c.take(users::check_active_user(conn, &owner, "ownerId").await)?
            .is_some()
    {
        row.owner_id = owner;
    }
    if let Some(consent) = f.consent {
        let state = consent.state.as_text();
        if state != row.consent_state {
            row.consent_state = state;
            row.consent_at = Some(ids::now());
        }
        if let Some(v) = c.take(opt_text(consent.source, 200, "consent"))? {
            row.consent_source = v;
        }
    }
    c.finish()?;
    let emails: Vec<ContactPoint> = serde_json::from_str(&row.emails).unwrap_or_default();
    let phones: Vec<ContactPoint> = serde_json::from_str(&row.phones).unwrap_or_default();
    row.email_key = emails.first().map(|e| e.value.clone());
    row.search_text = std::iter::once(format!("{} {}", row.first_name, row.last_name))
        .chain(row.title.clone())
        .chain(emails.into_iter().map(|e| e.value))
        .chain(phones.into_iter().map(|p| p.value))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    Ok(())
}

impl Entity for Contacts {
    const DEF: Def = super::repo::DEF;
    type Row = ContactRow;
    type Fields = Fields;

    fn snapshot(row: &ContactRow) -> Value {
        snapshot(row)
    }

    fn blank() -> ContactRow {
        let now = ids::now();
        ContactRow {
            id: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            title: None,
            emails: "[]".into(),
            phones: "[]".into(),
            search_text: String::new(),
            preferred_channel: None,
            language: None,
            account_id: None,
            owner_id: String::new(),
            consent_state: ConsentState::Unknown.as_text(),
            consent_at: None,
            consent_source: None,
            created_at: now,
            updated_at: now,
            version: 1,
            deleted_at: None,
            deleted_by: None,
            custom: "{}".into(),
            email_key: None,
        }
    }

    fn requested_owner(f: &Fields) -> Option<&str> {
        f.owner_id.as_deref()
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut ContactRow,
        mut f: Fields,
    ) -> Result<()> {
        f.creating |= w.creating;
        let accounts = f.accounts_scope.take().unwrap_or(RowFilter::Nothing);
        apply(w.app, w.by, conn, &accounts, row, f).await
    }
}
