//! The contacts export: its columns and filter (core runs it).

use crm_core::access::{Principal, row_filter_for};
use crm_core::app::App;
use crm_core::entity::export::{ExportColumn as C, Exportable, Selection, time};
use crm_core::error::Result;
use serde_json::{Value, json};

use super::ContactFilterInput;
use super::repo::{self, ContactRow, Contacts};
use crate::values::ContactPoint;

/// The values of stored contact points, as a list.
fn points(stored: &str) -> Value {
    let list: Vec<ContactPoint> = serde_json::from_str(stored).unwrap_or_default();
    Value::Array(list.into_iter().map(|p| json!(p.value)).collect())
}

impl Exportable for Contacts {
    const LIST: &'static str = "contacts";
    const COLUMNS: &'static [C<ContactRow>] = &[
        C::field("id", |r| json!(r.id)),
        C::field("firstName", |r| json!(r.first_name)),
        C::field("lastName", |r| json!(r.last_name)),
        C::field("title", |r| json!(r.title)),
        C::field("emails", |r| points(&r.emails)),
        C::field("phones", |r| points(&r.phones)),
        C::field("preferredChannel", |r| json!(r.preferred_channel)),
        C::field("language", |r| json!(r.language)),
        C::field("accountId", |r| json!(r.account_id)),
        C::field("ownerId", |r| json!(r.owner_id)),
        C::field("consent", |r| json!(r.consent_state)),
        C::new("consentSource", "consent", |r| json!(r.consent_source)),
        C::field("createdAt", |r| time(r.created_at)),
        C::field("updatedAt", |r| time(r.updated_at)),
        C::field("version", |r| json!(r.version)),
    ];
    type Filter = ContactFilterInput;

    async fn select(app: &App, by: &Principal, f: &ContactFilterInput) -> Result<Selection> {
        let mut query = f.to_query();
        // A search matches the names of accounts the caller may read.
        if let Some(k) = &f.search
            && let Ok(accounts) = row_filter_for(app, by, "Account", "read").await
        {
            query.search_also.push(repo::company_matches(&accounts, k));
        }
        Ok(Selection {
            query,
            team: f.team_id.as_ref().map(|t| t.0.clone()),
            custom: f.custom.clone().unwrap_or_default(),
        })
    }

    fn custom_values(r: &ContactRow) -> String {
        r.custom.clone()
    }
}
