//! The rules of a contract, as the entity kit's hooks: it is with an
//! account the writer may read (and, if it names one, an opportunity of
//! that account the writer may read); it runs from its start date through
//! a later end date; its value is money ≥ 0; made from a quote, that quote
//! is ACCEPTED, gives account, opportunity, value and currency, and makes
//! no other contract (CONFLICT); the status moves DRAFT → ACTIVE →
//! EXPIRED / TERMINATED (TERMINATED also from DRAFT) and an EXPIRED or
//! TERMINATED contract takes no write; the renewal date (end date − notice
//! days) is kept on every write.

use chrono::{Duration, Months, NaiveDate, Utc};
use crm_core::access::row_filter_or_nothing;
use crm_core::db::Conn;
use crm_core::entity::{Def, Entity, WriteCtx, store};
use crm_core::error::{Checks, Error, Result};
use crm_core::identity::repo as users;
use crm_core::ids;
use crm_customers::values::{Money, req_text};
use serde_json::{Map, Value, json};

use super::repo::{self, ContractRow, Contracts};
use crate::opportunities::repo::Opportunities;
use crate::opportunities::service::visible_record;
use crate::pipelines::repo as pipelines;
use crate::quotes::repo::QuoteRow;
use crate::values::{self, ContractStatus, QuoteStatus};

/// Days before the end date a renewal is created unless the writer says
/// otherwise.
pub const DEFAULT_NOTICE_DAYS: i64 = 60;

/// Most notice days a contract may ask for (ten years).
pub const MAX_NOTICE_DAYS: i64 = 3650;

/// Fields of a contract as entered; `None` leaves a field alone on update,
/// `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct ContractFields {
    pub name: Option<String>,
    /// On create without a quote: the account (required).
    pub account_id: Option<String>,
    pub opportunity_id: Option<Option<String>>,
    pub owner_id: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub value: Option<Money>,
    pub renewal_pipeline_id: Option<Option<String>>,
    pub renewal_notice_days: Option<i64>,
    /// A status move.
    pub status: Option<ContractStatus>,
    /// On create: the quote it is made from (fetched in the writer's
    /// scope); its account, opportunity, value and currency are taken.
    pub from_quote: Option<QuoteRow>,
}

impl ContractFields {
    /// The fields given (the names a finished contract refuses).
    fn given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (given, name) in [
            (self.name.is_some(), "name"),
            (self.opportunity_id.is_some(), "opportunityId"),
            (self.owner_id.is_some(), "ownerId"),
            (self.start_date.is_some(), "startDate"),
            (self.end_date.is_some(), "endDate"),
            (self.value.is_some(), "value"),
            (self.renewal_pipeline_id.is_some(), "renewalPipelineId"),
            (self.renewal_notice_days.is_some(), "renewalNoticeDays"),
        ] {
            if given {
                out.push(name);
            }
        }
        out
    }
}

/// The public fields of a contract, for audit diffs and events (keys are
/// `Contract` field names, so field rules apply to them: marketing never
/// sees `value`).
pub fn snapshot(r: &ContractRow) -> Value {
    json!({
        "name": r.name,
        "accountId": r.account_id,
        "opportunityId": r.opportunity_id,
        "quoteId": r.quote_id,
        "ownerId": r.owner_id,
        "status": r.status,
        "startDate": r.start_date,
        "endDate": r.end_date,
        "value": {"amountMinor": r.value, "currency": r.currency},
        "renewalPipelineId": r.renewal_pipeline_id,
        "renewalNoticeDays": r.renewal_notice_days,
        "renewalDueOn": r.renewal_due_on,
        "renewalOpportunityId": r.renewal_opportunity_id,
        "activatedAt": r.activated_at,
        "endedAt": r.ended_at,
        "deletedAt": r.deleted_at,
    })
}

/// Today (UTC).
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The date a contract ending on `end` renews with `notice` days' notice.
pub fn renewal_due_on(end: NaiveDate, notice: i64) -> NaiveDate {
    end - Duration::days(notice)
}

/// Takes what a contract made from `q` gets from it: an ACCEPTED quote
/// that made no contract yet (CONFLICT otherwise).
async fn from_quote(
    conn: &mut Conn<'_>,
    c: &mut Checks,
    row: &mut ContractRow,
    q: &QuoteRow,
) -> Result<()> {
    if QuoteStatus::from_stored(&q.status)? != QuoteStatus::Accepted {
        c.take::<()>(Err(Error::invalid(
            "quoteId",
            format!(
                "quote {} revision {} is {}: only an ACCEPTED quote makes a contract",
                q.number, q.revision, q.status
            ),
        )))?;
        return Ok(());
    }
    if let Some(other) = repo::of_quote(conn, &q.id).await? {
        return Err(Error::Conflict(format!(
            "quote {} revision {} already made contract {other}",
            q.number, q.revision
        )));
    }
    let Some(currency) = q.currency.clone() else {
        return Err(Error::invalid("quoteId", "the quote has no lines"));
    };
    row.quote_id = Some(q.id.clone());
    row.account_id = q.account_id.clone();
    row.opportunity_id = Some(q.opportunity_id.clone());
    row.value = q.total;
    row.currency = currency;
    row.name = q.name.clone();
    Ok(())
}

/// Applies `f` to `row`, validating every field; collects all problems.
async fn apply(
    w: &WriteCtx<'_>,
    conn: &mut Conn<'_>,
    row: &mut ContractRow,
    f: ContractFields,
) -> Result<()> {
    let (app, by) = (w.app, w.by);
    let from = if w.creating {
        ContractStatus::Draft
    } else {
        ContractStatus::from_stored(&row.status)?
    };
    let mut c = Checks::default();
    if matches!(from, ContractStatus::Expired | ContractStatus::Terminated) {
        let mut names = f.given();
        if f.status.is_some_and(|s| s != from) {
            names.push("status");
        }
        for field in names {
            c.take::<()>(Err(Error::invalid(
                field,
                format!("the contract is {} and takes no change", from.as_str()),
            )))?;
        }
        return c.finish();
    }
    if w.creating {
        match &f.from_quote {
            Some(q) => from_quote(conn, &mut c, row, q).await?,
            None => {
                match &f.account_id {
                    None => {
                        c.take::<()>(Err(Error::invalid("accountId", "is required")))?;
                    }
                    Some(id) => {
                        if c.take(visible_record(app, by, conn, "Account", id, "accountId").await)?
                            .is_some()
                        {
                            row.account_id = id.clone();
                        }
                    }
                }
                if f.name.is_none() {
                    c.take::<()>(Err(Error::invalid("name", "is required")))?;
                }
                if f.value.is_none() {
                    c.take::<()>(Err(Error::invalid("value", "is required")))?;
                }
            }
        }
        row.status = ContractStatus::Draft.as_str().into();
    }
    if let Some(v) = &f.name
        && let Some(v) = c.take(req_text(v, 200, "name"))?
    {
        row.name = v;
    }
    if let Some(v) = f.value.clone()
        && let Some(m) = c.take(v.checked("value"))?
    {
        row.value = m.amount_minor;
        row.currency = m.currency;
    }
    match &f.opportunity_id {
        Some(Some(id)) => {
            let missing = || Error::invalid("opportunityId", "no such opportunity");
            if ids::check(id, "opp", "opportunityId").is_err() {
                c.take::<()>(Err(missing()))?;
            } else {
                let scope = row_filter_or_nothing(app, by, "Opportunity", "read").await?;
                match store::get::<Opportunities>(conn, &scope, id).await? {
                    None => {
                        c.take::<()>(Err(missing()))?;
                    }
                    Some(o) if !row.account_id.is_empty() && o.account_id != row.account_id => {
                        c.take::<()>(Err(Error::invalid(
                            "opportunityId",
                            "is with another account than the contract",
                        )))?;
                    }
                    Some(o) => row.opportunity_id = Some(o.id),
                }
            }
        }
        Some(None) => row.opportunity_id = None,
        None => {}
    }
    if let Some(owner) = &f.owner_id
        && c.take(users::check_active_user(conn, owner, "ownerId").await)?
            .is_some()
    {
        row.owner_id = owner.clone();
    }
    // Dates: a contract made from a quote starts today and runs a year
    // unless the writer says otherwise; a direct one names both.
    let start = match f.start_date {
        Some(d) => Some(d),
        None if w.creating && f.from_quote.is_some() => Some(today()),
        None if w.creating => {
            c.take::<()>(Err(Error::invalid("startDate", "is required")))?;
            None
        }
        None => Some(values::parse_date(&row.start_date)?),
    };
    let end = match (f.end_date, start) {
        (Some(d), _) => Some(d),
        (None, Some(s)) if w.creating && f.from_quote.is_some() => {
            Some(s + Months::new(12) - Duration::days(1))
        }
        (None, _) if w.creating => {
            c.take::<()>(Err(Error::invalid("endDate", "is required")))?;
            None
        }
        (None, _) => Some(values::parse_date(&row.end_date)?),
    };
    if let (Some(s), Some(e)) = (start, end) {
        if e <= s {
            c.take::<()>(Err(Error::invalid(
                "endDate",
                format!("must be after the start date {s}"),
            )))?;
        } else {
            row.start_date = values::store_date(s);
            row.end_date = values::store_date(e);
        }
    }
    if let Some(n) = f.renewal_notice_days {
        if (0..=MAX_NOTICE_DAYS).contains(&n) {
            row.renewal_notice_days = n;
        } else {
            c.take::<()>(Err(Error::invalid(
                "renewalNoticeDays",
                format!("must be 0 to {MAX_NOTICE_DAYS}"),
            )))?;
        }
    }
    match &f.renewal_pipeline_id {
        Some(Some(id)) => match pipelines::pipeline(conn, id).await? {
            Some(p) if p.active => row.renewal_pipeline_id = Some(p.id),
            Some(_) => {
                c.take::<()>(Err(Error::invalid(
                    "renewalPipelineId",
                    "the pipeline is retired",
                )))?;
            }
            None => {
                c.take::<()>(Err(Error::invalid("renewalPipelineId", "no such pipeline")))?;
            }
        },
        Some(None) => row.renewal_pipeline_id = None,
        None if w.creating => row.renewal_pipeline_id = pipelines::renewals_pipeline(conn).await?,
        None => {}
    }
    if let Some(to) = f.status
        && to != from
    {
        if from.may_become(to) {
            row.status = to.as_str().into();
            match to {
                ContractStatus::Active => row.activated_at = Some(ids::now()),
                ContractStatus::Expired | ContractStatus::Terminated => {
                    row.ended_at = Some(ids::now())
                }
                ContractStatus::Draft => {}
            }
        } else {
            c.take::<()>(Err(Error::invalid(
                "status",
                format!(
                    "a contract cannot go from {} to {}",
                    from.as_str(),
                    to.as_str()
                ),
            )))?;
        }
    }
    c.finish()?;
    row.renewal_due_on = values::store_date(renewal_due_on(
        values::parse_date(&row.end_date)?,
        row.renewal_notice_days,
    ));
    Ok(())
}

impl Entity for Contracts {
    const DEF: Def = repo::DEF;
    type Row = ContractRow;
    type Fields = ContractFields;

    fn snapshot(row: &ContractRow) -> Value {
        snapshot(row)
    }

    fn blank() -> ContractRow {
        let now = ids::now();
        let today = values::store_date(today());
        ContractRow {
            id: String::new(),
            name: String::new(),
            account_id: String::new(),
            opportunity_id: None,
            quote_id: None,
            owner_id: String::new(),
            status: ContractStatus::Draft.as_str().into(),
            start_date: today.clone(),
            end_date: today.clone(),
            value: 0,
            currency: String::new(),
            renewal_pipeline_id: None,
            renewal_notice_days: DEFAULT_NOTICE_DAYS,
            renewal_due_on: today,
            renewal_opportunity_id: None,
            activated_at: None,
            ended_at: None,
            created_at: now,
            updated_at: now,
            version: 1,
            deleted_at: None,
            deleted_by: None,
        }
    }

    fn requested_owner(f: &ContractFields) -> Option<&str> {
        f.owner_id.as_deref()
    }

    /// A status move is `contract.activated`, `contract.expired` or
    /// `contract.terminated`; the renewal link `contract.renewal_created`;
    /// anything else `contract.updated`.
    fn update_action(before: &ContractRow, after: &ContractRow) -> &'static str {
        if before.renewal_opportunity_id.is_none() && after.renewal_opportunity_id.is_some() {
            return "renewal_created";
        }
        if before.status == after.status {
            return "updated";
        }
        match ContractStatus::from_stored(&after.status) {
            Ok(ContractStatus::Active) => "activated",
            Ok(ContractStatus::Expired) => "expired",
            Ok(ContractStatus::Terminated) => "terminated",
            _ => "updated",
        }
    }

    /// Subscribers can follow one account's (or one deal's) contracts.
    fn event_context(r: &ContractRow) -> Option<Map<String, Value>> {
        Some(Map::from_iter([
            ("accountId".into(), json!(r.account_id)),
            ("opportunityId".into(), json!(r.opportunity_id)),
        ]))
    }

    /// And one pipeline's (`pipelineEvents(pipelineId:)`): the pipeline of
    /// the contract's opportunity; a contract without one is in none.
    async fn event_context_read(
        conn: &mut Conn<'_>,
        r: &ContractRow,
    ) -> Result<Map<String, Value>> {
        match &r.opportunity_id {
            Some(o) => crate::opportunities::repo::pipeline_context(conn, o).await,
            None => Ok(Map::new()),
        }
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut ContractRow,
        f: ContractFields,
    ) -> Result<()> {
        apply(w, conn, row, f).await
    }
}
