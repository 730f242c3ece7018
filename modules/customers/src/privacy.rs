//! The right to be forgotten and the right of access for contacts:
//! `eraseContact` and `personalDataReport` (admins, by default policy).
//!
//! Erasure keeps the contact row as a tombstone so aggregate history
//! (purchase amounts, counts, timeline entries) stays intact, but replaces
//! every piece of personal data: on the contact, in timeline text about or
//! mentioning the person, in audit entries and stored events, in import
//! error reports and in export files on disk. The audit log then records
//! that an erasure happened, by whom and why, without the erased values.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use crm_core::access::{
    Principal, RowFilter, principal, readable_fields, row_filter, row_filter_for,
};
use crm_core::app::App;
use crm_core::change::{self, Change};
use crm_core::db::Conn;
use crm_core::error::{Error, Result};
use crm_core::privacy::{self, Person, TOMBSTONE};
use crm_core::schema::{
    accounts, activities, audit_log, contacts, job_errors, jobs, outbox, purchases,
};
use crm_core::{apply_row_filter, db_run, ids};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use crate::TOPIC;
use crate::activities::repo::ActivityRow;
use crate::contacts::repo::ContactRow;
use crate::purchases::PurchaseRow;
use crate::values::ContactPoint;

/// What identifies the person in free text: emails, phone numbers and the
/// full name in both orders.
fn identifiers(r: &ContactRow) -> Vec<String> {
    let points = |s: &str| -> Vec<String> {
        serde_json::from_str::<Vec<ContactPoint>>(s)
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.value)
            .collect()
    };
    let mut out = points(&r.emails);
    out.extend(points(&r.phones));
    if !r.first_name.is_empty() && !r.last_name.is_empty() && r.first_name != TOMBSTONE {
        out.push(format!("{} {}", r.first_name, r.last_name));
        out.push(format!("{}, {}", r.last_name, r.first_name));
    }
    out
}

/// Any contact, live or in the recycle bin.
async fn find(conn: &mut Conn<'_>, id: &str) -> Result<ContactRow> {
    ids::check(id, "con", "id")?;
    db_run!(conn, |c| contacts::table
        .find(id)
        .select(ContactRow::as_select())
        .first(c)
        .await
        .optional())?
    .ok_or_else(|| Error::NotFound(format!("contact {id}")))
}

/// Timeline entries about the person or mentioning them, within `scope`
/// (erasure passes `All`: it must reach every copy).
async fn timeline(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    person: &Person<'_>,
) -> Result<Vec<ActivityRow>> {
    let mut patterns = privacy::like_any(person.identifiers);
    patterns.push(format!("%{}%", person.id));
    Ok(db_run!(conn, |c| {
        let mut q = activities::table
            .filter(
                activities::subject_type
                    .eq(person.ty)
                    .and(activities::subject_id.eq(person.id)),
            )
            .into_boxed();
        for p in &patterns {
            q = q
                .or_filter(activities::title.like(p.clone()))
                .or_filter(activities::body.like(p.clone()))
                .or_filter(activities::participants.like(p.clone()));
        }
        apply_row_filter!(
            q,
            scope,
            activities::owner_id,
            assignee = activities::assignee_id
        )
        .order(activities::id.asc())
        .select(ActivityRow::as_select())
        .load(c)
        .await
    })?)
}

/// The timeline's erasure hook: entries about the person lose their text
/// and participants' names; entries elsewhere lose the mentions. Returns
/// the entries rewritten.
pub(crate) async fn erase_timeline(conn: &mut Conn<'_>, person: &Person<'_>) -> Result<i64> {
    let entries = timeline(conn, &RowFilter::All, person).await?;
    let idents = person.identifiers;
    let mut rewritten = 0;
    for a in &entries {
        let about = a.subject_type == person.ty && a.subject_id == person.id;
        let mut parts: Vec<Value> = serde_json::from_str(&a.participants).unwrap_or_default();
        for p in &mut parts {
            if p.get("contactId").and_then(Value::as_str) == Some(person.id) {
                p["name"] = json!(TOMBSTONE);
                p["email"] = Value::Null;
            }
        }
        let parts = Value::Array(parts).to_string();
        let (title, body, participants) = if about {
            (TOMBSTONE.to_owned(), None, parts)
        } else {
            (
                privacy::scrub_text(&a.title, idents).unwrap_or_else(|| a.title.clone()),
                a.body
                    .as_ref()
                    .map(|b| privacy::scrub_text(b, idents).unwrap_or_else(|| b.clone())),
                privacy::scrub_text(&parts, idents).unwrap_or(parts),
            )
        };
        if title != a.title || body != a.body || participants != a.participants {
            db_run!(conn, |c| diesel::update(activities::table.find(&a.id))
                .set((
                    activities::title.eq(&title),
                    activities::body.eq(&body),
                    activities::participants.eq(&participants),
                ))
                .execute(c)
                .await)?;
            rewritten += 1;
        }
    }
    Ok(rewritten)
}

/// The timeline's part of a right-of-access report: entries about or
/// mentioning the person in `by`'s Activity read scope, readable fields
/// only.
pub(crate) async fn timeline_report(
    app: &App,
    by: &Principal,
    person: &Person<'_>,
) -> Result<Value> {
    let scope = row_filter_for(app, by, "Activity", "read").await?;
    let entries = {
        let mut c = app.db.conn().await?;
        timeline(&mut c.conn(), &scope, person).await?
    };
    let fields = readable_fields(app, by, "Activity");
    Ok(entries
        .iter()
        .map(|a| {
            only_readable(
                json!({
                    "id": a.id, "kind": a.kind, "subjectType": a.subject_type, "subjectId": a.subject_id,
                    "title": a.title, "body": a.body, "occurredAt": a.occurred_at.and_utc(),
                    "participants": serde_json::from_str::<Value>(&a.participants).unwrap_or_default(),
                }),
                &fields,
            )
        })
        .collect())
}

/// What an erasure changed.
#[derive(SimpleObject, Clone, Debug)]
pub struct Erasure {
    /// The contact, now a tombstone.
    pub contact_id: ID,
    /// Timeline entries rewritten.
    pub timeline_entries: i64,
    /// Rows rewritten in every module's records about or mentioning the
    /// person, per record type (the timeline's are `Activity`).
    pub records: Vec<ErasedRows>,
    /// Audit entries rewritten.
    pub audit_entries: i64,
    /// Stored events rewritten.
    pub events: i64,
    /// Import error report lines rewritten.
    pub report_lines: i64,
    /// Export jobs whose files were rewritten.
    pub export_files: Vec<ID>,
}

/// Rows of one record type rewritten by an erasure.
#[derive(SimpleObject, Clone, Debug)]
pub struct ErasedRows {
    /// The record type (`Activity`).
    pub record_type: String,
    /// How many.
    pub rows: i64,
}

/// Privacy mutations.
#[derive(Default)]
pub struct PrivacyMutation;

#[Object]
impl PrivacyMutation {
    /// Erases a contact's personal data everywhere it is kept (right to be
    /// forgotten), keeping the record as a tombstone so purchases and
    /// counts stay intact. `reason` is kept in the audit log.
    async fn erase_contact(&self, ctx: &Context<'_>, id: ID, reason: String) -> Result<Erasure> {
        let scope = row_filter(ctx, "Contact", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        erase(app, principal(ctx), &scope, &id, &reason).await
    }
}

/// Erases a contact in `scope` (live or in the recycle bin) everywhere it
/// is kept; `reason` goes to the audit log.
pub async fn erase(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    reason: &str,
) -> Result<Erasure> {
    let reason = reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Error::invalid(
            "reason",
            "give a reason (1 to 500 characters)",
        ));
    }
    let mut tx = app.db.begin().await?;
    let before = find(&mut tx.conn(), id).await?;
    // The caller's delete scope decides, as for purging.
    let in_scope =
        crm_core::entity::store::get::<crate::contacts::repo::Contacts>(&mut tx.conn(), scope, id)
            .await?
            .or(
                crm_core::entity::store::get_deleted::<crate::contacts::repo::Contacts>(
                    &mut tx.conn(),
                    scope,
                    id,
                )
                .await?,
            )
            .is_some();
    if !in_scope {
        return Err(Error::NotFound(format!("contact {id}")));
    }
    if before.first_name == TOMBSTONE {
        return Err(Error::Conflict(format!("contact {id} is already erased")));
    }
    let idents = identifiers(&before);
    // The contact itself.
    let mut after = before.clone();
    after.first_name = TOMBSTONE.into();
    after.last_name = TOMBSTONE.into();
    after.title = None;
    after.emails = "[]".into();
    after.phones = "[]".into();
    after.email_key = None;
    after.search_text = String::new();
    after.preferred_channel = None;
    after.language = None;
    after.consent_state = "opted_out".into();
    after.consent_at = Some(ids::now());
    after.consent_source = Some(TOMBSTONE.into());
    after.custom = "{}".into();
    after.updated_at = ids::now();
    crm_core::entity::store::update_row::<crate::contacts::repo::Contacts>(
        &mut tx.conn(),
        &after,
        before.version,
    )
    .await?;
    // Every module's rows about or mentioning the person (the timeline's
    // among them).
    let person = Person {
        ty: "Contact",
        id: &before.id,
        identifiers: &idents,
    };
    let erased = privacy::erase_in_modules(&mut tx.conn(), &person).await?;
    let scrubbed = privacy::scrub_platform(&mut tx.conn(), "Contact", &before.id, &idents).await?;
    // Recorded without the erased values: only that it happened, and why.
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "Contact",
            entity_id: before.id.clone(),
            action: "erased",
            before: Some(json!({"reason": null})),
            after: Some(json!({"reason": reason})),
            owner_id: Some(before.owner_id.clone()),
            team_id: None,
        },
    )
    .await?;
    app.commit(tx).await?;
    // Files outside the database, after the commit (a rewrite cannot be
    // rolled back; the database is the record of the erasure).
    let files = privacy::scrub_exports(app, &idents).await?;
    Ok(Erasure {
        contact_id: id.into(),
        timeline_entries: erased.get("Activity").copied().unwrap_or(0),
        records: erased
            .into_iter()
            .map(|(ty, rows)| ErasedRows {
                record_type: ty.to_owned(),
                rows,
            })
            .collect(),
        audit_entries: scrubbed.audit_entries,
        events: scrubbed.events,
        report_lines: scrubbed.report_lines,
        export_files: files.into_iter().map(Into::into).collect(),
    })
}

/// Keeps the keys of `v` that name fields in `readable`.
fn only_readable(mut v: Value, readable: &std::collections::BTreeSet<String>) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| readable.contains(k));
    }
    v
}

/// Whether an audited field (`title`, `custom.tier`) of a contact is
/// readable by the caller.
fn field_readable(
    app: &App,
    by: &crm_core::access::Principal,
    readable: &std::collections::BTreeSet<String>,
    field: &str,
) -> bool {
    match field.strip_prefix("custom.") {
        Some(key) => {
            readable.contains("custom")
                && crm_core::custom::allowed(app, by, "Contact", key, "read")
        }
        None => readable.contains(field),
    }
}

/// Privacy queries.
#[derive(Default)]
pub struct PrivacyQuery;

#[Object]
impl PrivacyQuery {
    /// Everything held about a person (right of access): the contact with
    /// its custom fields and tags, timeline entries about or mentioning
    /// them, their purchases, the audit trail of the record, stored events,
    /// import report lines and export files that mention them.
    async fn personal_data_report(&self, ctx: &Context<'_>, contact_id: ID) -> Result<Json<Value>> {
        let scope = row_filter(ctx, "Contact", "delete").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let row = find(&mut c.conn(), &contact_id).await?;
        let in_scope = crm_core::entity::store::get::<crate::contacts::repo::Contacts>(
            &mut c.conn(),
            &scope,
            &contact_id,
        )
        .await?
        .or(
            crm_core::entity::store::get_deleted::<crate::contacts::repo::Contacts>(
                &mut c.conn(),
                &scope,
                &contact_id,
            )
            .await?,
        )
        .is_some();
        if !in_scope {
            return Err(Error::NotFound(format!("contact {}", contact_id.0)));
        }
        // Every part is read within the caller's row scope for its type
        // (no scope for a part refuses the report) and shows only fields
        // the caller may read.
        let purchase_scope = row_filter(ctx, "Purchase", "read").await?;
        let job_scope = row_filter(ctx, "Job", "read").await?;
        let by = principal(ctx);
        let idents = identifiers(&row);
        let mut conn = c.conn();
        let bought: Vec<PurchaseRow> = db_run!(&mut conn, |c| {
            let q = purchases::table
                .filter(purchases::contact_id.eq(&row.id))
                .into_boxed();
            apply_row_filter!(
                q,
                &purchase_scope,
                through = purchases::account_id,
                accounts::table,
                accounts::id,
                accounts::owner_id
            )
            .order(purchases::ordered_at.asc())
            .select(PurchaseRow::as_select())
            .load(c)
            .await
        })?;
        let audit: Vec<(i64, chrono::NaiveDateTime, String, Option<String>, String)> =
            db_run!(&mut conn, |c| audit_log::table
                .filter(audit_log::entity_type.eq("Contact"))
                .filter(audit_log::entity_id.eq(&row.id))
                .order(audit_log::id.asc())
                .select((
                    audit_log::id,
                    audit_log::at,
                    audit_log::action,
                    audit_log::actor_id,
                    audit_log::changes,
                ))
                .load(c)
                .await)?;
        let events: i64 = db_run!(&mut conn, |c| outbox::table
            .filter(outbox::entity_type.eq("Contact"))
            .filter(outbox::entity_id.eq(&row.id))
            .count()
            .get_result(c)
            .await)?;
        let mut report_lines = Vec::new();
        for like in privacy::like_any(&idents) {
            let rows: Vec<(String, i64, String, String)> = db_run!(&mut conn, |c| {
                let visible = apply_row_filter!(
                    jobs::table.into_boxed(),
                    &job_scope,
                    jobs::owner_id.assume_not_null()
                )
                .select(jobs::id);
                job_errors::table
                    .filter(job_errors::message.like(&like))
                    .filter(job_errors::job_id.eq_any(visible))
                    .select((
                        job_errors::job_id,
                        job_errors::line,
                        job_errors::col,
                        job_errors::message,
                    ))
                    .load(c)
                    .await
            })?;
            for (job, line, col, message) in rows {
                let v = json!({"jobId": job, "line": line, "column": col, "message": message});
                if !report_lines.contains(&v) {
                    report_lines.push(v);
                }
            }
        }
        let tags = crate::tags::for_contacts(&mut conn, std::slice::from_ref(&row.id))
            .await?
            .into_iter()
            .map(|(_, t)| t.name)
            .collect::<Vec<_>>();
        drop(c);
        // Export jobs the caller may see.
        let found = privacy::exports_mentioning(app, &idents).await?;
        let exports: Vec<String> = {
            let mut c = app.db.conn().await?;
            let mut conn = c.conn();
            db_run!(&mut conn, |c| {
                let q = jobs::table.filter(jobs::id.eq_any(&found)).into_boxed();
                apply_row_filter!(q, &job_scope, jobs::owner_id.assume_not_null())
                    .order(jobs::id.asc())
                    .select(jobs::id)
                    .load(c)
                    .await
            })?
        };
        let app_ref = app;
        let mut contact = crate::contacts::snapshot(&row);
        contact["id"] = json!(row.id);
        let custom: serde_json::Map<String, Value> =
            serde_json::from_str(&row.custom).unwrap_or_default();
        contact["custom"] = Value::Object(
            custom
                .into_iter()
                .filter(|(k, _)| crm_core::custom::allowed(app_ref, by, "Contact", k, "read"))
                .collect(),
        );
        contact["createdAt"] = json!(row.created_at.and_utc());
        contact["updatedAt"] = json!(row.updated_at.and_utc());
        contact["tags"] = json!(tags);
        let contact_fields = readable_fields(app, by, "Contact");
        let purchase_fields = readable_fields(app, by, "Purchase");
        let contact = only_readable(contact, &contact_fields);
        // `amountMinor` and `currency` are the API field `amount`.
        let purchases: Vec<Value> = bought
            .iter()
            .map(|p| {
                let mut v = only_readable(
                    json!({
                        "id": p.id, "orderNumber": p.order_number, "orderedAt": p.ordered_at.and_utc(),
                        "lineItems": serde_json::from_str::<Value>(&p.line_items).unwrap_or_default(),
                    }),
                    &purchase_fields,
                );
                if purchase_fields.contains("amount") {
                    v["amountMinor"] = json!(p.amount_minor);
                    v["currency"] = json!(p.currency);
                }
                v
            })
            .collect();
        // Audit entries show the changes of fields the caller may read.
        let audit: Vec<Value> = audit
            .iter()
            .map(|(id, at, action, actor, changes)| {
                let changes: Vec<Value> = serde_json::from_str::<Vec<Value>>(changes)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| {
                        c.get("field")
                            .and_then(Value::as_str)
                            .is_some_and(|f| field_readable(app_ref, by, &contact_fields, f))
                    })
                    .map(|mut c| {
                        // Custom values: only the keys the caller may read.
                        if c["field"] == "custom" {
                            for side in ["old", "new"] {
                                if let Some(o) = c[side].as_object_mut() {
                                    o.retain(|k, _| {
                                        crm_core::custom::allowed(app_ref, by, "Contact", k, "read")
                                    });
                                }
                            }
                        }
                        c
                    })
                    .collect();
                json!({"id": id, "at": at.and_utc(), "action": action, "actorId": actor, "changes": changes})
            })
            .collect();
        // Every module's part (the timeline's among them).
        let person = Person {
            ty: "Contact",
            id: &row.id,
            identifiers: &idents,
        };
        let mut report = privacy::report_from_modules(app, by, &person).await?;
        report.extend([
            ("generatedAt".to_owned(), json!(chrono::Utc::now())),
            ("contact".to_owned(), contact),
            ("purchases".to_owned(), json!(purchases)),
            ("auditTrail".to_owned(), json!(audit)),
            ("storedEvents".to_owned(), json!(events)),
            ("importReportLines".to_owned(), json!(report_lines)),
            ("exportJobs".to_owned(), json!(exports)),
        ]);
        Ok(Json(Value::Object(report)))
    }
}
