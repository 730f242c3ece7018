//! Exports of accounts, contacts, the timeline and purchases as CSV or JSON
//! Lines: a background job writing a file the caller downloads.
//!
//! An export is the same list the caller could page through in the API:
//! the same row scope (as SQL), the same filters, and only the columns of
//! fields the caller may read. Column names are the API field names, so an
//! exported CSV imports back unchanged.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use async_graphql::{Context, Enum, ID, InputObject, InputType, Object};
use chrono::{DateTime, NaiveDateTime, Utc};
use crm_core::access::{Principal, principal, row_filter_for};
use crm_core::app::App;
use crm_core::custom;
use crm_core::entity;
use crm_core::error::{Error, Result};
use crm_core::jobs::{self, Counters, Job, JobStatus, Outcome};
use crm_core::paging::{self, Direction, PageQuery};
use crm_core::tabular::{ExportFormat, TableWriter};
use serde_json::{Value, json};

use crate::accounts::AccountFilterInput;
use crate::accounts::repo::{AccountOrderField, AccountRow, Accounts};
use crate::activities::SubjectType;
use crate::activities::repo::{self as activity_repo, ActivityRow};
use crate::contacts::ContactFilterInput;
use crate::contacts::repo::{self as contact_repo, ContactOrderField, ContactRow, Contacts};
use crate::purchases::{self, PurchaseRow};
use crate::values::{Address, ContactPoint};

/// Rows read per query.
const PAGE: i64 = 1_000;

/// Filter of a timeline export.
#[derive(InputObject, Clone, Debug, Default)]
pub struct TimelineExportFilter {
    /// Only entries about this kind of record.
    pub subject_type: Option<SubjectType>,
    /// Only entries about this record.
    pub subject_id: Option<ID>,
    /// Only this kind (`call`, `email`, `meeting`, `note`, `task`).
    pub kind: Option<String>,
    /// Occurred at or after.
    pub occurred_from: Option<DateTime<Utc>>,
    /// Occurred before.
    pub occurred_to: Option<DateTime<Utc>>,
}

/// Filter of a purchases export.
#[derive(InputObject, Clone, Debug, Default)]
pub struct PurchaseExportFilter {
    /// Only this account's orders.
    pub account_id: Option<ID>,
    /// Only this contact's orders.
    pub contact_id: Option<ID>,
    /// Ordered at or after.
    pub ordered_from: Option<DateTime<Utc>>,
    /// Ordered before.
    pub ordered_to: Option<DateTime<Utc>>,
}

/// What to export.
#[derive(Clone, Debug)]
pub enum Spec {
    /// Accounts matching a filter.
    Accounts(AccountFilterInput),
    /// Contacts matching a filter.
    Contacts(ContactFilterInput),
    /// Timeline entries.
    Timeline(TimelineExportFilter),
    /// Purchases.
    Purchases(PurchaseExportFilter),
}

/// Which list an export is of (CLI).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportList {
    /// Accounts.
    Accounts,
    /// Contacts.
    Contacts,
    /// The timeline.
    Timeline,
    /// Purchases.
    Purchases,
}

impl Spec {
    /// A spec with the list's filter read from GraphQL-shaped JSON
    /// (`{"search": "acme"}`), for the command line.
    pub fn from_json(list: ExportList, filter: Option<Value>) -> Result<Spec> {
        fn parse<T: InputType + Default>(v: Option<Value>) -> Result<T> {
            let Some(v) = v else {
                return Ok(T::default());
            };
            let given: Vec<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            let value = async_graphql::Value::from_json(v)
                .map_err(|e| Error::invalid("filter", format!("not a filter: {e}")))?;
            let parsed = T::parse(Some(value)).map_err(|e| {
                Error::invalid("filter", e.into_server_error(Default::default()).message)
            })?;
            // Unknown keys are a typo, not a filter to drop silently.
            let known = parsed.to_value().into_json().unwrap_or_default();
            if let Some(k) = given.iter().find(|k| known.get(k.as_str()).is_none()) {
                return Err(Error::invalid(
                    "filter",
                    format!("unknown filter field {k:?}"),
                ));
            }
            Ok(parsed)
        }
        Ok(match list {
            ExportList::Accounts => Spec::Accounts(parse(filter)?),
            ExportList::Contacts => Spec::Contacts(parse(filter)?),
            ExportList::Timeline => Spec::Timeline(parse(filter)?),
            ExportList::Purchases => Spec::Purchases(parse(filter)?),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Spec::Accounts(_) => "accounts",
            Spec::Contacts(_) => "contacts",
            Spec::Timeline(_) => "timeline",
            Spec::Purchases(_) => "purchases",
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Spec::Accounts(_) => "Account",
            Spec::Contacts(_) => "Contact",
            Spec::Timeline(_) => "Activity",
            Spec::Purchases(_) => "Purchase",
        }
    }

    fn filter_json(&self) -> Value {
        match self {
            Spec::Accounts(f) => f.to_value().into_json().unwrap_or_default(),
            Spec::Contacts(f) => f.to_value().into_json().unwrap_or_default(),
            Spec::Timeline(f) => f.to_value().into_json().unwrap_or_default(),
            Spec::Purchases(f) => f.to_value().into_json().unwrap_or_default(),
        }
    }

    /// Every column: (name, the API field it shows, whose read rule
    /// decides whether it is written).
    fn columns(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Spec::Accounts(_) => &[
                ("id", "id"),
                ("name", "name"),
                ("industry", "industry"),
                ("sizeBand", "sizeBand"),
                ("website", "website"),
                ("phone", "phone"),
                ("street", "address"),
                ("city", "address"),
                ("postalCode", "address"),
                ("region", "address"),
                ("country", "address"),
                ("annualRevenue", "annualRevenue"),
                ("revenueCurrency", "annualRevenue"),
                ("creditLimit", "creditLimit"),
                ("creditCurrency", "creditLimit"),
                ("lifecycleStage", "lifecycleStage"),
                ("rating", "rating"),
                ("source", "source"),
                ("notes", "notes"),
                ("ownerId", "ownerId"),
                ("createdAt", "createdAt"),
                ("updatedAt", "updatedAt"),
                ("version", "version"),
            ],
            Spec::Contacts(_) => &[
                ("id", "id"),
                ("firstName", "firstName"),
                ("lastName", "lastName"),
                ("title", "title"),
                ("emails", "emails"),
                ("phones", "phones"),
                ("preferredChannel", "preferredChannel"),
                ("language", "language"),
                ("accountId", "accountId"),
                ("ownerId", "ownerId"),
                ("consent", "consent"),
                ("consentSource", "consent"),
                ("createdAt", "createdAt"),
                ("updatedAt", "updatedAt"),
                ("version", "version"),
            ],
            Spec::Timeline(_) => &[
                ("id", "id"),
                ("kind", "kind"),
                ("subjectType", "subjectType"),
                ("subjectId", "subjectId"),
                ("title", "title"),
                ("body", "body"),
                ("occurredAt", "occurredAt"),
                ("durationSecs", "durationSecs"),
                ("outcome", "outcome"),
                ("ownerId", "ownerId"),
                ("assigneeId", "assigneeId"),
                ("dueAt", "dueAt"),
                ("completedAt", "completedAt"),
                ("createdAt", "createdAt"),
            ],
            Spec::Purchases(_) => &[
                ("id", "id"),
                ("accountId", "accountId"),
                ("contactId", "contactId"),
                ("orderNumber", "orderNumber"),
                ("orderedAt", "orderedAt"),
                ("amount", "amount"),
                ("currency", "amount"),
                ("lineItems", "lineItems"),
                ("externalId", "externalId"),
                ("createdAt", "createdAt"),
            ],
        }
    }
}

fn time(t: NaiveDateTime) -> Value {
    json!(
        t.and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

fn opt_time(t: Option<NaiveDateTime>) -> Value {
    t.map_or(Value::Null, time)
}

/// Minor units as a decimal amount in major units (`123450` -> `1234.50`).
fn major(minor: i64) -> Value {
    json!(format!(
        "{}{}.{:02}",
        if minor < 0 { "-" } else { "" },
        (minor / 100).abs(),
        (minor % 100).abs()
    ))
}

fn account_values(r: &AccountRow) -> Vec<Value> {
    let a: Address = r
        .address
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default();
    vec![
        json!(r.id),
        json!(r.name),
        json!(r.industry),
        json!(r.size_band),
        json!(r.website),
        json!(r.phone),
        json!(a.street),
        json!(a.city),
        json!(a.postal_code),
        json!(a.region),
        json!(a.country),
        r.annual_revenue.map_or(Value::Null, major),
        json!(r.revenue_currency),
        r.credit_limit.map_or(Value::Null, major),
        json!(r.credit_currency),
        json!(r.lifecycle_stage),
        json!(r.rating),
        json!(r.source),
        json!(r.notes),
        json!(r.owner_id),
        time(r.created_at),
        time(r.updated_at),
        json!(r.version),
    ]
}

fn contact_values(r: &ContactRow) -> Vec<Value> {
    let points = |s: &str| -> Value {
        let list: Vec<ContactPoint> = serde_json::from_str(s).unwrap_or_default();
        Value::Array(list.into_iter().map(|p| json!(p.value)).collect())
    };
    vec![
        json!(r.id),
        json!(r.first_name),
        json!(r.last_name),
        json!(r.title),
        points(&r.emails),
        points(&r.phones),
        json!(r.preferred_channel),
        json!(r.language),
        json!(r.account_id),
        json!(r.owner_id),
        json!(r.consent_state),
        json!(r.consent_source),
        time(r.created_at),
        time(r.updated_at),
        json!(r.version),
    ]
}

fn activity_values(r: &ActivityRow) -> Vec<Value> {
    vec![
        json!(r.id),
        json!(r.kind),
        json!(r.subject_type),
        json!(r.subject_id),
        json!(r.title),
        json!(r.body),
        time(r.occurred_at),
        json!(r.duration_secs),
        json!(r.outcome),
        json!(r.owner_id),
        json!(r.assignee_id),
        opt_time(r.due_at),
        opt_time(r.completed_at),
        time(r.created_at),
    ]
}

fn purchase_values(r: &PurchaseRow) -> Vec<Value> {
    vec![
        json!(r.id),
        json!(r.account_id),
        json!(r.contact_id),
        json!(r.order_number),
        time(r.ordered_at),
        major(r.amount_minor),
        json!(r.currency),
        json!(r.line_items),
        json!(r.external_id),
        time(r.created_at),
    ]
}

/// Progress of an export: rows written.
pub type OnProgress<'a> = &'a (dyn Fn(i64) + Send + Sync);

/// Writes the export to `out`; checks the caller's rights first. Returns
/// the outcome with the file as the result.
pub async fn run(
    app: &App,
    by: &Principal,
    spec: &Spec,
    format: ExportFormat,
    out: PathBuf,
    job_id: Option<&str>,
    on_progress: OnProgress<'_>,
) -> Result<Outcome> {
    let ty = spec.type_name();
    let deleted = match spec {
        Spec::Accounts(f) => f.deleted,
        Spec::Contacts(f) => f.deleted,
        _ => false,
    };
    let scope = row_filter_for(app, by, ty, if deleted { "delete" } else { "read" }).await?;
    let team = match spec {
        Spec::Accounts(f) => f.team_id.clone(),
        Spec::Contacts(f) => f.team_id.clone(),
        _ => None,
    };
    let scope = match team {
        Some(t) => crm_core::access::narrow_to_team(app, scope, &t).await?,
        None => scope,
    };
    // A contact search matches the names of accounts the caller may read.
    let account_scope = row_filter_for(app, by, "Account", "read").await.ok();
    // Only the columns of fields the caller may read: core decides from the
    // catalog and the policy, as for a GraphQL selection (a column whose
    // field the schema does not have is never written).
    let readable = crm_core::access::readable_fields(app, by, ty);
    let keep: Vec<bool> = spec
        .columns()
        .iter()
        .map(|(_, field)| readable.contains(*field))
        .collect();
    let mut columns: Vec<String> = spec
        .columns()
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|((name, _), _)| (*name).to_owned())
        .collect();
    // Custom fields the caller may read, as `custom.<key>` columns, and the
    // list's custom field filters.
    let (custom_defs, custom_conds) = match spec {
        Spec::Accounts(_) | Spec::Contacts(_) => {
            let (table, filters) = match spec {
                Spec::Accounts(f) => ("accounts", f.custom.clone().unwrap_or_default()),
                Spec::Contacts(f) => ("contacts", f.custom.clone().unwrap_or_default()),
                _ => unreachable!("matched above"),
            };
            let defs = {
                let mut c = app.db.conn().await?;
                custom::definitions(&mut c.conn(), ty).await?
            };
            let readable: Vec<custom::Def> = defs
                .into_iter()
                .filter(|d| custom::allowed(app, by, ty, &d.key, "read"))
                .collect();
            let (conds, _) = custom::query_parts(app, by, ty, table, &filters, None).await?;
            (readable, conds)
        }
        _ => (Vec::new(), Vec::new()),
    };
    columns.extend(custom_defs.iter().map(|d| format!("custom.{}", d.key)));
    let custom_cells = |stored: &str| -> Vec<Value> {
        let values: serde_json::Map<String, Value> =
            serde_json::from_str(stored).unwrap_or_default();
        custom_defs
            .iter()
            .map(|d| custom::cell(d, values.get(&d.key)))
            .collect()
    };
    if columns.is_empty() {
        return Err(by.refusal(
            &format!("not allowed to read any field of {ty}"),
            vec![ty.to_owned()],
        ));
    }
    let dir = out
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Internal(format!("export directory {}: {e}", dir.display())))?;
    // Written under a temporary name, renamed when complete.
    let partial = out.with_extension(format!("{}.partial", format.extension()));
    let file = std::fs::File::create(&partial)
        .map_err(|e| Error::Internal(format!("export file {}: {e}", partial.display())))?;
    let mut writer = TableWriter::new(BufWriter::new(file), format, columns)?;
    let mut written = 0i64;
    let mut after: Option<(String, String)> = None;
    let mut after_id = String::new();
    let mut cancelled = false;
    loop {
        let mut c = app.db.conn().await?;
        let rows: Vec<Vec<Value>> = match spec {
            Spec::Accounts(f) => {
                let page = PageQuery {
                    after: after.as_ref().map(|(v, id)| paging::pair(v, id)),
                    before: None,
                    limit: PAGE - 1,
                    backwards: false,
                };
                let mut lq = f.to_query();
                lq.custom = custom_conds.clone();
                lq.order = Some((AccountOrderField::CreatedAt.column(), Direction::Asc));
                let (mut rows, _) =
                    entity::list::<Accounts>(&mut c.conn(), &scope, &lq, &page, false).await?;
                rows.truncate(PAGE as usize);
                after = match rows.last() {
                    Some(r) => Some((entity::list::sort_value::<Accounts>(&lq, r)?, r.id.clone())),
                    None => None,
                };
                rows.iter()
                    .map(|r| {
                        let mut v = account_values(r);
                        v.extend(custom_cells(&r.custom));
                        v
                    })
                    .collect()
            }
            Spec::Contacts(f) => {
                let page = PageQuery {
                    after: after.as_ref().map(|(v, id)| paging::pair(v, id)),
                    before: None,
                    limit: PAGE - 1,
                    backwards: false,
                };
                let mut lq = f.to_query();
                lq.custom = custom_conds.clone();
                lq.order = Some((ContactOrderField::CreatedAt.column(), Direction::Asc));
                if let (Some(k), Some(accounts)) = (&f.search, &account_scope) {
                    lq.search_also
                        .push(contact_repo::company_matches(accounts, k));
                }
                let (mut rows, _) =
                    entity::list::<Contacts>(&mut c.conn(), &scope, &lq, &page, false).await?;
                rows.truncate(PAGE as usize);
                after = match rows.last() {
                    Some(r) => Some((entity::list::sort_value::<Contacts>(&lq, r)?, r.id.clone())),
                    None => None,
                };
                rows.iter()
                    .map(|r| {
                        let mut v = contact_values(r);
                        v.extend(custom_cells(&r.custom));
                        v
                    })
                    .collect()
            }
            Spec::Timeline(f) => {
                let filter = activity_repo::ExportFilter {
                    subject_type: f.subject_type.map(|s| s.as_str().to_owned()),
                    subject_id: f.subject_id.clone().map(|i| i.0),
                    kind: f.kind.clone(),
                    from: f.occurred_from.map(|t| t.naive_utc()),
                    to: f.occurred_to.map(|t| t.naive_utc()),
                };
                let rows =
                    activity_repo::export_page(&mut c.conn(), &scope, &filter, &after_id, PAGE)
                        .await?;
                if let Some(r) = rows.last() {
                    after_id = r.id.clone();
                }
                after = rows.last().map(|r| (String::new(), r.id.clone()));
                rows.iter().map(activity_values).collect()
            }
            Spec::Purchases(f) => {
                let filter = purchases::ExportFilter {
                    account_id: f.account_id.clone().map(|i| i.0),
                    contact_id: f.contact_id.clone().map(|i| i.0),
                    from: f.ordered_from.map(|t| t.naive_utc()),
                    to: f.ordered_to.map(|t| t.naive_utc()),
                };
                let rows =
                    purchases::export_page(&mut c.conn(), &scope, &filter, &after_id, PAGE).await?;
                if let Some(r) = rows.last() {
                    after_id = r.id.clone();
                }
                after = rows.last().map(|r| (String::new(), r.id.clone()));
                rows.iter().map(purchase_values).collect()
            }
        };
        drop(c);
        let n = rows.len() as i64;
        for values in rows {
            // Custom cells come after the fixed columns and are all kept.
            let kept: Vec<Value> = values
                .into_iter()
                .zip(keep.iter().chain(std::iter::repeat(&true)))
                .filter(|(_, k)| **k)
                .map(|(v, _)| v)
                .collect();
            writer.write(&kept)?;
        }
        written += n;
        on_progress(written);
        if let Some(id) = job_id
            && jobs::progress(
                &app.db,
                id,
                &Counters {
                    rows_done: written,
                    ..Counters::default()
                },
            )
            .await?
        {
            cancelled = true;
            break;
        }
        if n < PAGE || after.is_none() {
            break;
        }
    }
    let mut out_file = writer.finish()?;
    out_file
        .flush()
        .map_err(|e| Error::Internal(format!("export write: {e}")))?;
    drop(out_file);
    let counters = Counters {
        rows_done: written,
        ..Counters::default()
    };
    if cancelled {
        let _ = std::fs::remove_file(&partial);
        return Ok(Outcome {
            status: JobStatus::Cancelled,
            counters,
            message: Some(format!("cancelled after {written} rows; no file was kept")),
            result_path: None,
        });
    }
    std::fs::rename(&partial, &out).map_err(|e| Error::Internal(format!("export rename: {e}")))?;
    Ok(Outcome {
        status: JobStatus::Succeeded,
        counters,
        message: Some(format!("{written} {} exported", spec.name())),
        result_path: Some(out),
    })
}

/// Starts an export job; the file goes to the job's directory.
pub async fn start_job(app: &App, by: &Principal, spec: Spec, format: ExportFormat) -> Result<Job> {
    // Refuse at once what the job would refuse.
    let ty = spec.type_name();
    row_filter_for(app, by, ty, "read").await?;
    let params = json!({"list": spec.name(), "format": format, "filter": spec.filter_json()});
    let job = jobs::create(
        &app.db,
        by,
        &format!("export.{}", spec.name()),
        &params,
        None,
    )
    .await?;
    let out = jobs::dir(app, &job.id).join(format!(
        "{}-{}.{}",
        spec.name(),
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        format.extension()
    ));
    let (app2, by2, id) = (app.clone(), by.clone(), job.id.clone());
    jobs::spawn(app, job.id.clone(), async move {
        run(&app2, &by2, &spec, format, out, Some(&id), &|_| {}).await
    });
    Ok(job.into())
}

/// Export mutations.
#[derive(Default)]
pub struct ExportMutation;

#[Object]
impl ExportMutation {
    /// Exports the accounts matching `filter` that you may see, with the
    /// fields you may read. Follow it with `exportJob(id)`; its
    /// `downloadUrl` serves the file.
    async fn export_accounts(
        &self,
        ctx: &Context<'_>,
        filter: Option<AccountFilterInput>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let spec = Spec::Accounts(filter.unwrap_or_default());
        start_job(ctx.data_unchecked::<App>(), principal(ctx), spec, format).await
    }

    /// Exports contacts (see `exportAccounts`).
    async fn export_contacts(
        &self,
        ctx: &Context<'_>,
        filter: Option<ContactFilterInput>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let spec = Spec::Contacts(filter.unwrap_or_default());
        start_job(ctx.data_unchecked::<App>(), principal(ctx), spec, format).await
    }

    /// Exports timeline entries (see `exportAccounts`).
    async fn export_timeline(
        &self,
        ctx: &Context<'_>,
        filter: Option<TimelineExportFilter>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let spec = Spec::Timeline(filter.unwrap_or_default());
        start_job(ctx.data_unchecked::<App>(), principal(ctx), spec, format).await
    }

    /// Exports purchases (see `exportAccounts`).
    async fn export_purchases(
        &self,
        ctx: &Context<'_>,
        filter: Option<PurchaseExportFilter>,
        #[graphql(default)] format: ExportFormat,
    ) -> Result<Job> {
        let spec = Spec::Purchases(filter.unwrap_or_default());
        start_job(ctx.data_unchecked::<App>(), principal(ctx), spec, format).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_are_written_in_major_units() {
        assert_eq!(super::major(123450), "1234.50");
        assert_eq!(super::major(5), "0.05");
        assert_eq!(super::major(-250), "-2.50");
    }

    #[test]
    fn filters_parse_from_graphql_shaped_json() {
        let s = super::Spec::from_json(
            super::ExportList::Accounts,
            Some(serde_json::json!({"search": "acme", "lifecycleStage": "ACTIVE"})),
        )
        .unwrap();
        match s {
            super::Spec::Accounts(f) => assert_eq!(f.search.as_deref(), Some("acme")),
            other => panic!("{other:?}"),
        }
        assert!(
            super::Spec::from_json(
                super::ExportList::Contacts,
                Some(serde_json::json!({"nope": 1}))
            )
            .is_err()
        );
    }
}
