//! `convertLead`: a lead becomes an account (new or reused), a contact
//! (new or reused) and optionally an opportunity, in one transaction.
//! Every record goes through its own module's kit entity (`store::*_in`)
//! under the caller's rights for that type, so the rules, audit entries
//! and events are the same as for a direct write: an account the caller
//! cannot see is NOT_FOUND, reused records only get their empty fields
//! filled, and the lead's version makes a second, concurrent conversion a
//! CONFLICT that rolls back everything it wrote.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::NaiveDate;
use crm_core::access::{
    Principal, RowFilter, principal, require_all, row_filter, row_filter_for, row_filter_or_nothing,
};
use crm_core::app::App;
use crm_core::db::Tx;
use crm_core::entity::store;
use crm_core::error::{Error, Result};
use crm_core::ids;
use crm_customers::accounts::Account;
use crm_customers::accounts::repo::{AccountRow, Accounts};
use crm_customers::accounts::service::AccountFields;
use crm_customers::contacts::repo::{ContactRow, Contacts};
use crm_customers::contacts::{ConsentInput, Contact, Fields as ContactFields};
use crm_customers::values::{Address, ConsentState, Money, SizeBand};
use crm_pipeline::opportunities::Opportunity;
use crm_pipeline::opportunities::repo::Opportunities;
use crm_pipeline::opportunities::service::OpportunityFields;
use serde_json::Value;

use crate::leads::Lead;
use crate::leads::repo::{LeadRow, Leads};
use crate::leads::service::{Conversion, LeadFields, points};

/// The account a conversion creates (default: the lead's company details).
#[derive(InputObject, Default)]
pub struct ConvertAccountInput {
    /// Default: the lead's company.
    pub name: Option<String>,
    pub industry: Option<String>,
    pub website: Option<String>,
    pub size_band: Option<SizeBand>,
}

/// The opportunity a conversion opens.
#[derive(InputObject)]
pub struct ConvertOpportunityInput {
    pub name: String,
    pub pipeline_id: ID,
    /// Default: the pipeline's first active stage.
    pub stage_id: Option<ID>,
    pub amount: Option<Money>,
    pub close_date: Option<NaiveDate>,
}

/// Input for `convertLead`.
#[derive(InputObject)]
pub struct ConvertLeadInput {
    /// The lead.
    pub id: ID,
    /// The lead's version you read.
    pub version: i64,
    /// Reuse this account (one you may see) instead of creating one; only
    /// its empty fields are filled.
    pub account_id: Option<ID>,
    /// Reuse this contact (one you may see); only its empty fields are
    /// filled, and it joins the account if it has none.
    pub contact_id: Option<ID>,
    /// The new account's fields, or the values that fill a reused
    /// account's empty fields (default: the lead's).
    pub account: Option<ConvertAccountInput>,
    /// Opens an opportunity with the account and contact.
    pub opportunity: Option<ConvertOpportunityInput>,
}

/// What a conversion wrote.
#[derive(SimpleObject)]
pub struct LeadConversion {
    /// The lead, now CONVERTED.
    pub lead: Lead,
    /// The account created or reused.
    pub account: Account,
    /// The contact created or reused.
    pub contact: Contact,
    /// The opportunity opened, if one was asked for.
    pub opportunity: Option<Opportunity>,
}

/// Conversion mutations.
#[derive(Default)]
pub struct ConvertMutation;

#[Object]
impl ConvertMutation {
    /// Converts a lead into an account, a contact and optionally an
    /// opportunity, all or nothing. The lead's timeline moves to the
    /// contact. A concurrent conversion of the same lead gets CONFLICT.
    async fn convert_lead(
        &self,
        ctx: &Context<'_>,
        input: ConvertLeadInput,
    ) -> Result<LeadConversion> {
        let scope = row_filter(ctx, "Lead", "update").await?;
        let app = ctx.data_unchecked::<App>();
        convert(app, principal(ctx), &scope, input).await
    }
}

/// `Some(v)` only where the stored value is empty and `v` has one.
fn fill<T>(stored_empty: bool, v: Option<T>) -> Option<Option<T>> {
    if stored_empty { v.map(Some) } else { None }
}

fn empty(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(str::is_empty)
}

/// The lead's address parts as an account address (None when it has none).
fn address_of(lead: &LeadRow) -> Option<Address> {
    (lead.city.is_some() || lead.region.is_some() || lead.country.is_some()).then(|| Address {
        street: None,
        city: lead.city.clone(),
        postal_code: None,
        region: lead.region.clone(),
        country: lead.country.clone(),
    })
}

async fn account(
    tx: &mut Tx,
    app: &App,
    by: &Principal,
    lead: &LeadRow,
    id: Option<&str>,
    given: ConvertAccountInput,
) -> Result<AccountRow> {
    let industry = given.industry.or_else(|| lead.industry.clone());
    let website = given.website.or_else(|| lead.website.clone());
    let size_band = given
        .size_band
        .or_else(|| lead.size_band.as_deref().and_then(SizeBand::from_text));
    match id {
        Some(id) => {
            ids::check(id, "acc", "accountId")
                .map_err(|_| Error::NotFound(format!("account {id}")))?;
            let read = row_filter_or_nothing(app, by, "Account", "read").await?;
            let acc = store::fetch::<Accounts>(&mut tx.conn(), &read, id).await?;
            let fields = AccountFields {
                industry: fill(empty(&acc.industry), industry),
                website: fill(empty(&acc.website), website),
                size_band: fill(acc.size_band.is_none(), size_band),
                address: fill(acc.address.is_none(), address_of(lead)),
                source: fill(empty(&acc.source), Some(lead.source.to_lowercase())),
                ..Default::default()
            };
            let changes = fields.industry.is_some()
                || fields.website.is_some()
                || fields.size_band.is_some()
                || fields.address.is_some()
                || fields.source.is_some();
            if !changes {
                return Ok(acc);
            }
            let update = row_filter_or_nothing(app, by, "Account", "update").await?;
            store::update_in::<Accounts>(tx, app, by, &update, id, acc.version, fields).await
        }
        None => {
            require_all(app, by, ["Account".to_owned()], "create")?;
            let name = given.name.or_else(|| lead.company.clone()).or_else(|| {
                let person = [lead.first_name.as_deref(), lead.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                (!person.is_empty()).then_some(person)
            });
            let Some(name) = name else {
                return Err(Error::invalid(
                    "account",
                    "the lead has no company: give account.name",
                ));
            };
            let fields = AccountFields {
                name: Some(name),
                industry: Some(industry),
                website: Some(website),
                size_band: Some(size_band),
                address: Some(address_of(lead)),
                source: Some(Some(lead.source.to_lowercase())),
                ..Default::default()
            };
            store::create_in::<Accounts>(tx, app, by, fields).await
        }
    }
}

fn consent_of(lead: &LeadRow) -> Option<ConsentInput> {
    let v: Value = serde_json::from_str(&lead.consent).ok()?;
    let state = ConsentState::from_text(v.get("state")?.as_str()?)?;
    (state != ConsentState::Unknown).then(|| ConsentInput {
        state,
        source: v.get("source").and_then(Value::as_str).map(str::to_owned),
    })
}

async fn contact(
    tx: &mut Tx,
    app: &App,
    by: &Principal,
    lead: &LeadRow,
    id: Option<&str>,
    account_id: &str,
) -> Result<ContactRow> {
    let accounts = row_filter_for(app, by, "Account", "read").await?;
    let emails = points(&lead.emails);
    let phones = points(&lead.phones);
    match id {
        Some(id) => {
            ids::check(id, "con", "contactId")
                .map_err(|_| Error::NotFound(format!("contact {id}")))?;
            let read = row_filter_or_nothing(app, by, "Contact", "read").await?;
            let con = store::fetch::<Contacts>(&mut tx.conn(), &read, id).await?;
            let fields = ContactFields {
                title: fill(empty(&con.title), lead.title.clone()),
                emails: (points(&con.emails).is_empty() && !emails.is_empty()).then_some(emails),
                phones: (points(&con.phones).is_empty() && !phones.is_empty()).then_some(phones),
                account_id: fill(con.account_id.is_none(), Some(account_id.to_owned())),
                accounts_scope: Some(accounts),
                ..Default::default()
            };
            let changes = fields.title.is_some()
                || fields.emails.is_some()
                || fields.phones.is_some()
                || fields.account_id.is_some();
            if !changes {
                return Ok(con);
            }
            let update = row_filter_or_nothing(app, by, "Contact", "update").await?;
            store::update_in::<Contacts>(tx, app, by, &update, id, con.version, fields).await
        }
        None => {
            require_all(app, by, ["Contact".to_owned()], "create")?;
            let (Some(first), Some(last)) = (lead.first_name.clone(), lead.last_name.clone())
            else {
                return Err(Error::invalid(
                    "contactId",
                    "the lead needs a first and a last name to become a contact (or give contactId)",
                ));
            };
            let fields = ContactFields {
                first_name: Some(first),
                last_name: Some(last),
                title: Some(lead.title.clone()),
                emails: Some(emails),
                phones: Some(phones),
                account_id: Some(Some(account_id.to_owned())),
                consent: consent_of(lead),
                accounts_scope: Some(accounts),
                ..Default::default()
            };
            store::create_in::<Contacts>(tx, app, by, fields).await
        }
    }
}

/// Runs a conversion as `by`; `scope` is the caller's update scope on
/// leads.
pub async fn convert(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    input: ConvertLeadInput,
) -> Result<LeadConversion> {
    ids::check(&input.id, "led", "id")?;
    let mut tx = app.db.begin().await?;
    let lead = store::fetch::<Leads>(&mut tx.conn(), scope, &input.id).await?;
    if lead.version != input.version {
        return Err(crate::leads::repo::DEF.stale(&input.id, input.version));
    }
    if lead.converted_at.is_some() {
        return Err(Error::invalid("id", "the lead is already converted"));
    }
    let acc = account(
        &mut tx,
        app,
        by,
        &lead,
        input.account_id.as_ref().map(|i| i.0.as_str()),
        input.account.unwrap_or_default(),
    )
    .await?;
    let con = contact(
        &mut tx,
        app,
        by,
        &lead,
        input.contact_id.as_ref().map(|i| i.0.as_str()),
        &acc.id,
    )
    .await?;
    let opp = match input.opportunity {
        Some(o) => {
            require_all(app, by, ["Opportunity".to_owned()], "create")?;
            let fields = OpportunityFields {
                name: Some(o.name),
                account_id: Some(acc.id.clone()),
                primary_contact_id: Some(Some(con.id.clone())),
                pipeline_id: Some(o.pipeline_id.0),
                stage_id: o.stage_id.map(|s| s.0),
                amount: Some(o.amount),
                close_date: Some(o.close_date),
                source: Some(Some(lead.source.to_lowercase())),
                campaign_id: Some(lead.campaign_id.clone()),
                ..Default::default()
            };
            Some(store::create_in::<Opportunities>(&mut tx, app, by, fields).await?)
        }
        None => None,
    };
    let reason = format!("conversion of lead {}", lead.id);
    crm_customers::activities::repo::move_subject(
        &mut tx.conn(),
        by,
        &reason,
        ("Lead", &lead.id),
        ("Contact", &con.id),
    )
    .await?;
    let stamp = LeadFields {
        conversion: Some(Conversion {
            account_id: acc.id.clone(),
            contact_id: con.id.clone(),
            opportunity_id: opp.as_ref().map(|o| o.id.clone()),
        }),
        ..Default::default()
    };
    let lead =
        store::update_in::<Leads>(&mut tx, app, by, scope, &lead.id, lead.version, stamp).await?;
    app.commit(tx).await?;
    Ok(LeadConversion {
        lead: lead.try_into()?,
        account: acc.into(),
        contact: con.into(),
        opportunity: opp.map(Opportunity::try_from).transpose()?,
    })
}
