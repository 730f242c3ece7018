//! Duplicates and merge: finding likely duplicate contacts and accounts in
//! the caller's scope, merging them into one survivor, and (for admins)
//! undoing a merge while the merged records are still in the recycle bin.

pub mod duplicates;
pub mod repo;
pub mod service;

use std::collections::BTreeSet;

use async_graphql::{Context, Enum, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use crm_core::access::{self, Principal, principal, row_filter};
use crm_core::app::App;
use crm_core::error::{Error, Result};
use crm_core::paging::{self, Page};
use serde_json::Value;

use self::duplicates::{DuplicateReason, Pairs, combined};
use self::repo::MergeRow;
use self::service::Record;
use crate::accounts::Account;
use crate::contacts::Contact;

/// Most live records of one type in the caller's scope that duplicate
/// detection compares (it works in memory); above it the query is refused
/// with VALIDATION.
pub const MAX_SCAN: i64 = 50_000;

/// Most candidates one query returns.
const MAX_FIRST: i32 = 500;

/// Which kind of record a merge joined.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeEntity {
    /// Contacts.
    Contact,
    /// Accounts.
    Account,
}

impl MergeEntity {
    fn as_str(self) -> &'static str {
        match self {
            MergeEntity::Contact => "Contact",
            MergeEntity::Account => "Account",
        }
    }
}

/// Two contacts that look like the same person.
#[derive(SimpleObject)]
pub struct ContactDuplicate {
    /// The pair, oldest first (a natural survivor).
    pub contacts: Vec<Contact>,
    /// The strongest reason.
    pub reason: DuplicateReason,
    /// Every reason that matched.
    pub reasons: Vec<DuplicateReason>,
    /// Likelihood of a duplicate, 0..1 (email 0.95, phone 0.8, name 0.6;
    /// several reasons combine as 1 - Π(1 - score)).
    pub score: f64,
}

/// Two accounts that look like the same company.
#[derive(SimpleObject)]
pub struct AccountDuplicate {
    /// The pair, oldest first (a natural survivor).
    pub accounts: Vec<Account>,
    /// The strongest reason.
    pub reason: DuplicateReason,
    /// Every reason that matched.
    pub reasons: Vec<DuplicateReason>,
    /// Likelihood of a duplicate, 0..1 (domain 0.85, phone 0.8, name 0.6;
    /// several reasons combine as 1 - Π(1 - score)).
    pub score: f64,
}

/// A merge of records into one survivor, with what it changed.
#[derive(SimpleObject, Clone, Debug)]
pub struct Merge {
    /// `mrg_…`
    pub id: ID,
    /// What was merged.
    pub entity_type: MergeEntity,
    /// The record that remains.
    pub survivor_id: ID,
    /// The records merged into it (now in the recycle bin).
    pub merged_ids: Vec<ID>,
    /// Every involved record as it was before the merge, survivor first
    /// (the stored columns of fields you may read; `custom` with the keys
    /// you may read).
    pub snapshot: Json<Value>,
    /// The link rows re-pointed to the survivor (`links`: table, column,
    /// from, ids; `tags`: from, tagIds, added).
    pub moved: Json<Value>,
    /// Who merged.
    pub merged_by: ID,
    /// When (UTC).
    pub merged_at: DateTime<Utc>,
    /// When it was undone, if it was.
    pub undone_at: Option<DateTime<Utc>>,
    /// Who undid it.
    pub undone_by: Option<ID>,
    /// Until when an admin may undo it (while the merged records stay in the
    /// recycle bin and none of the records changed).
    pub undoable_until: DateTime<Utc>,
}

/// The fields a stored column of an account or contact row shows (derived
/// columns need every field they are made of).
fn fields_of(column: &str) -> Vec<String> {
    let fields: &[&str] = match column {
        "annual_revenue" | "revenue_currency" => &["annualRevenue"],
        "credit_limit" | "credit_currency" => &["creditLimit"],
        "consent_state" | "consent_at" | "consent_source" => &["consent"],
        "email_key" => &["emails"],
        "search_text" => &["firstName", "lastName", "title", "emails", "phones"],
        "deleted_by" => &["deletedAt"],
        other => return vec![crm_core::module::references::api_name(other)],
    };
    fields.iter().map(|f| (*f).to_owned()).collect()
}

/// A merge snapshot as `p` may see it: only columns of fields (and custom
/// field keys) the caller may read; the stored snapshot keeps everything.
fn readable_snapshot(app: &App, p: &Principal, entity_type: &str, snapshot: Value) -> Value {
    let readable = access::readable_fields(app, p, entity_type);
    let may = |field: &str| readable.contains(field);
    let Value::Array(rows) = snapshot else {
        return Value::Array(Vec::new());
    };
    let rows = rows
        .into_iter()
        .map(|row| {
            let Value::Object(cols) = row else {
                return Value::Null;
            };
            let kept = cols
                .into_iter()
                .filter_map(|(col, v)| {
                    if col == "custom" {
                        if !may("custom") {
                            return None;
                        }
                        let values: serde_json::Map<String, Value> =
                            serde_json::from_str(v.as_str().unwrap_or("{}")).unwrap_or_default();
                        let values: serde_json::Map<String, Value> = values
                            .into_iter()
                            .filter(|(k, _)| {
                                crm_core::custom::allowed(app, p, entity_type, k, "read")
                            })
                            .collect();
                        return Some((col, Value::String(Value::Object(values).to_string())));
                    }
                    fields_of(&col).iter().all(|f| may(f)).then_some((col, v))
                })
                .collect();
            Value::Object(kept)
        })
        .collect();
    Value::Array(rows)
}

fn to_merge(app: &App, p: &Principal, r: MergeRow) -> Merge {
    let json = |s: &str| serde_json::from_str::<Value>(s).unwrap_or_default();
    let snapshot = readable_snapshot(app, p, &r.entity_type, json(&r.snapshot));
    let window = chrono::Duration::from_std(app.config.merge_undo).unwrap_or_default();
    Merge {
        id: r.id.into(),
        entity_type: if r.entity_type == "Contact" {
            MergeEntity::Contact
        } else {
            MergeEntity::Account
        },
        survivor_id: r.survivor_id.into(),
        merged_ids: serde_json::from_str::<Vec<String>>(&r.merged_ids)
            .unwrap_or_default()
            .into_iter()
            .map(ID::from)
            .collect(),
        snapshot: Json(snapshot),
        moved: Json(json(&r.moved)),
        merged_by: r.merged_by.into(),
        merged_at: r.merged_at.and_utc(),
        undone_at: r.undone_at.map(|t| t.and_utc()),
        undone_by: r.undone_by.map(Into::into),
        undoable_until: (r.merged_at + window).and_utc(),
    }
}

/// The result of `mergeContacts`.
#[derive(SimpleObject)]
pub struct ContactMergeResult {
    /// The survivor as it is now.
    pub contact: Contact,
    /// The merge record.
    pub merge: Merge,
}

/// The result of `mergeAccounts`.
#[derive(SimpleObject)]
pub struct AccountMergeResult {
    /// The survivor as it is now.
    pub account: Account,
    /// The merge record.
    pub merge: Merge,
}

/// Sorted candidates above `min_score`, best first, at most `first`.
fn ranked(
    pairs: Pairs,
    min_score: f64,
    first: i32,
) -> Vec<((usize, usize), BTreeSet<DuplicateReason>, f64)> {
    let mut out: Vec<_> = pairs
        .into_iter()
        .map(|(k, reasons)| {
            let s = combined(&reasons);
            (k, reasons, s)
        })
        .filter(|(_, _, s)| *s >= min_score)
        .collect();
    out.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    out.truncate(first as usize);
    out
}

fn check_args(first: i32, min_score: f64) -> Result<()> {
    if !(1..=MAX_FIRST).contains(&first) {
        return Err(Error::invalid("first", format!("must be 1 to {MAX_FIRST}")));
    }
    if !(0.0..=1.0).contains(&min_score) {
        return Err(Error::invalid("minScore", "must be between 0 and 1"));
    }
    Ok(())
}

fn too_many(what: &str) -> Error {
    Error::invalid(
        "scope",
        format!("duplicate detection compares at most {MAX_SCAN} {what}; your scope holds more"),
    )
}

fn strongest(reasons: &BTreeSet<DuplicateReason>) -> DuplicateReason {
    reasons
        .iter()
        .copied()
        .max_by(|a, b| a.score().total_cmp(&b.score()))
        .unwrap_or(DuplicateReason::SimilarName)
}

/// Duplicate and merge queries.
#[derive(Default)]
pub struct MergeQuery;

#[Object]
impl MergeQuery {
    /// Pairs of live contacts you may see that look like the same person:
    /// same email, same phone, or a similar name at the same account. Best
    /// first. Compares at most 50,000 contacts (VALIDATION above that).
    async fn contact_duplicates(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        #[graphql(default = 0.5)] min_score: f64,
    ) -> Result<Vec<ContactDuplicate>> {
        check_args(first, min_score)?;
        let scope = row_filter(ctx, "Contact", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let rows = repo::live_contacts(&mut c.conn(), &scope, MAX_SCAN + 1).await?;
        if rows.len() as i64 > MAX_SCAN {
            return Err(too_many("contacts"));
        }
        let pairs = duplicates::contact_pairs(&rows);
        Ok(ranked(pairs, min_score, first)
            .into_iter()
            .map(|((a, b), reasons, score)| ContactDuplicate {
                contacts: vec![rows[a].clone().into(), rows[b].clone().into()],
                reason: strongest(&reasons),
                reasons: reasons.into_iter().collect(),
                score,
            })
            .collect())
    }

    /// Pairs of live accounts you may see that look like the same company:
    /// the same name ignoring case, punctuation and legal form (GmbH, Inc,
    /// Ltd, LLC, AG, …), the same web domain, or the same phone. Best first.
    /// Compares at most 50,000 accounts (VALIDATION above that).
    async fn account_duplicates(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        #[graphql(default = 0.5)] min_score: f64,
    ) -> Result<Vec<AccountDuplicate>> {
        check_args(first, min_score)?;
        let scope = row_filter(ctx, "Account", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let rows = repo::live_accounts(&mut c.conn(), &scope, MAX_SCAN + 1).await?;
        if rows.len() as i64 > MAX_SCAN {
            return Err(too_many("accounts"));
        }
        let pairs = duplicates::account_pairs(&rows);
        Ok(ranked(pairs, min_score, first)
            .into_iter()
            .map(|((a, b), reasons, score)| AccountDuplicate {
                accounts: vec![rows[a].clone().into(), rows[b].clone().into()],
                reason: strongest(&reasons),
                reasons: reasons.into_iter().collect(),
                score,
            })
            .collect())
    }

    /// Merges you may see, newest first.
    async fn merges(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        entity_type: Option<MergeEntity>,
        survivor_id: Option<ID>,
    ) -> Result<Page<Merge>> {
        let scope = row_filter(ctx, "Merge", "read").await?;
        let q = paging::query(first, after, None, None)?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let (rows, total) = repo::list(
            &mut c.conn(),
            &scope,
            entity_type.map(MergeEntity::as_str),
            survivor_id.as_ref().map(|s| s.as_str()),
            &q,
        )
        .await?;
        let items = rows
            .into_iter()
            .map(|r| (r.id.clone(), to_merge(app, principal(ctx), r)))
            .collect();
        Ok(paging::build_keyed(&q, items, total))
    }

    /// One merge (NOT_FOUND if outside your scope).
    async fn merge(&self, ctx: &Context<'_>, id: ID) -> Result<Merge> {
        let scope = row_filter(ctx, "Merge", "read").await?;
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        repo::get(&mut c.conn(), &scope, &id)
            .await?
            .map(|r| to_merge(app, principal(ctx), r))
            .ok_or_else(|| Error::NotFound(format!("merge {}", id.0)))
    }
}

/// Merge mutations.
#[derive(Default)]
pub struct MergeMutation;

#[Object]
impl MergeMutation {
    /// Merges contacts into `survivorId` in one transaction: timeline,
    /// purchases and tags move to the survivor, which keeps its fields and
    /// gains the others' emails and phones; the others go to the recycle bin.
    /// Every contact must be in your update scope (NOT_FOUND otherwise).
    async fn merge_contacts(
        &self,
        ctx: &Context<'_>,
        survivor_id: ID,
        other_ids: Vec<ID>,
    ) -> Result<ContactMergeResult> {
        let scope = row_filter(ctx, "Contact", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let others: Vec<String> = other_ids.into_iter().map(|i| i.0).collect();
        let (rec, m) = service::merge(
            app,
            principal(ctx),
            "Contact",
            &scope,
            &survivor_id,
            &others,
        )
        .await?;
        let Record::Contact(row) = rec else {
            return Err(Error::Internal("merge returned another type".into()));
        };
        Ok(ContactMergeResult {
            contact: row.into(),
            merge: to_merge(app, principal(ctx), m),
        })
    }

    /// Merges accounts into `survivorId` in one transaction: contacts,
    /// timeline, purchases and tags move to the survivor, which keeps its
    /// fields (stage history stays with each account); the others go to the
    /// recycle bin. Every account must be in your update scope.
    async fn merge_accounts(
        &self,
        ctx: &Context<'_>,
        survivor_id: ID,
        other_ids: Vec<ID>,
    ) -> Result<AccountMergeResult> {
        let scope = row_filter(ctx, "Account", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let others: Vec<String> = other_ids.into_iter().map(|i| i.0).collect();
        let (rec, m) = service::merge(
            app,
            principal(ctx),
            "Account",
            &scope,
            &survivor_id,
            &others,
        )
        .await?;
        let Record::Account(row) = rec else {
            return Err(Error::Internal("merge returned another type".into()));
        };
        Ok(AccountMergeResult {
            account: row.into(),
            merge: to_merge(app, principal(ctx), m),
        })
    }

    /// Undoes a merge: every record back as it was (versions move on), the
    /// merged ones out of the recycle bin, every moved link back. CONFLICT if
    /// already undone, older than `merge-undo-days`, or if any record changed
    /// since the merge. Admins only in the default policy.
    async fn undo_merge(&self, ctx: &Context<'_>, id: ID) -> Result<Merge> {
        let scope = row_filter(ctx, "Merge", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let m = service::undo(app, principal(ctx), &scope, &id).await?;
        Ok(to_merge(app, principal(ctx), m))
    }
}
