//! Account operations: validation, one transaction per write, lifecycle
//! history, audit entry and `customers` event in that transaction.

use crm_core::access::{Principal, RowFilter};
use crm_core::app::App;
use crm_core::change::{self, Change};
use crm_core::custom;
use crm_core::db::{Conn, Tx};
use crm_core::entity::{Def, Entity, WriteCtx, store};
use crm_core::error::{Checks, Error, Result};
use crm_core::identity::repo as users;
use crm_core::ids;
use serde_json::{Value, json};

use super::repo::{self, AccountRow, Accounts, StageChangeRow};
use crate::TOPIC;
use crate::values::{
    Address, LifecycleStage, Money, SizeBand, normalize_phone, opt_text, req_text,
};

/// Fields of an account as entered; `None` leaves a field alone on update.
#[derive(Clone, Debug, Default)]
pub struct AccountFields {
    pub name: Option<String>,
    pub industry: Option<Option<String>>,
    pub size_band: Option<Option<SizeBand>>,
    pub website: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub address: Option<Option<Address>>,
    pub annual_revenue: Option<Option<Money>>,
    pub credit_limit: Option<Option<Money>>,
    pub lifecycle_stage: Option<LifecycleStage>,
    pub rating: Option<Option<String>>,
    pub source: Option<Option<String>>,
    pub notes: Option<Option<String>>,
    pub owner_id: Option<String>,
    /// Custom field values to set (null clears).
    pub custom: Option<serde_json::Map<String, Value>>,
    /// True for a new record: defaults and required custom fields apply.
    pub creating: bool,
    /// The definitions to check against (loaded when None).
    pub custom_defs: Option<std::sync::Arc<Vec<crm_core::custom::Def>>>,
}

/// The public fields of an account, for audit diffs and events; custom
/// field values appear as `custom.<key>`.
pub fn snapshot(r: &AccountRow) -> Value {
    let mut v = json!({
        "name": r.name,
        "industry": r.industry,
        "sizeBand": r.size_band,
        "website": r.website,
        "phone": r.phone,
        "address": r.address.as_deref().and_then(|a| serde_json::from_str::<Value>(a).ok()),
        "annualRevenue": r.annual_revenue.map(|a| json!({"amountMinor": a, "currency": r.revenue_currency})),
        "creditLimit": r.credit_limit.map(|a| json!({"amountMinor": a, "currency": r.credit_currency})),
        "lifecycleStage": r.lifecycle_stage,
        "rating": r.rating,
        "source": r.source,
        "notes": r.notes,
        "ownerId": r.owner_id,
        "deletedAt": r.deleted_at,
    });
    if let Some(o) = v.as_object_mut() {
        o.extend(custom::snapshot_fields(&r.custom));
    }
    v
}

/// Applies `f` to `row`, validating every field; collects all problems.
pub(crate) async fn apply(
    app: &App,
    by: &Principal,
    conn: &mut Conn<'_>,
    row: &mut AccountRow,
    f: AccountFields,
) -> Result<()> {
    let mut c = Checks::default();
    if f.creating && f.name.is_none() {
        c.take::<()>(Err(Error::invalid("name", "is required")))?;
    }
    if f.custom.is_some() || f.creating {
        let defs = match &f.custom_defs {
            Some(d) => d.clone(),
            None => std::sync::Arc::new(custom::definitions(conn, "Account").await?),
        };
        let may_write = |k: &str| custom::allowed(app, by, "Account", k, "write");
        if let Some(v) = c.take(custom::apply(
            &defs,
            &row.custom,
            f.custom.as_ref(),
            f.creating,
            &may_write,
        ))? {
            row.custom = v;
        }
    }
    if let Some(v) = f.name
        && let Some(v) = c.take(req_text(&v, 200, "name"))?
    {
        row.name = v;
    }
    let text = |c: &mut Checks,
                v: Option<Option<String>>,
                max,
                field: &str,
                slot: &mut Option<String>|
     -> Result<()> {
        if let Some(v) = v
            && let Some(v) = c.take(opt_text(v, max, field))?
        {
            *slot = v;
        }
        Ok(())
    };
    text(&mut c, f.industry, 100, "industry", &mut row.industry)?;
    text(&mut c, f.website, 300, "website", &mut row.website)?;
    text(&mut c, f.rating, 50, "rating", &mut row.rating)?;
    text(&mut c, f.source, 100, "source", &mut row.source)?;
    text(&mut c, f.notes, 10_000, "notes", &mut row.notes)?;
    if let Some(v) = f.size_band {
        row.size_band = v.map(SizeBand::as_text);
    }
    if let Some(v) = f.phone {
        row.phone = match v.filter(|p| !p.trim().is_empty()) {
            Some(p) => c.take(normalize_phone(&p, &app.config.default_phone_code, "phone"))?,
            None => None,
        };
    }
    if let Some(v) = f.address {
        row.address = v.map(|a| serde_json::to_string(&a).unwrap_or_default());
    }
    if let Some(v) = f.annual_revenue {
        match v.map(|m| m.checked("annualRevenue")).transpose() {
            Ok(m) => {
                row.annual_revenue = m.as_ref().map(|m| m.amount_minor);
                row.revenue_currency = m.map(|m| m.currency);
            }
            Err(e) => {
                c.take::<()>(Err(e))?;
            }
        }
    }
    if let Some(v) = f.credit_limit {
        match v.map(|m| m.checked("creditLimit")).transpose() {
            Ok(m) => {
                row.credit_limit = m.as_ref().map(|m| m.amount_minor);
                row.credit_currency = m.map(|m| m.currency);
            }
            Err(e) => {
                c.take::<()>(Err(e))?;
            }
        }
    }
    if let Some(v) = f.lifecycle_stage {
        row.lifecycle_stage = v.as_text();
    }
    if let Some(owner) = f.owner_id
        && c.take(users::check_active_user(conn, &owner, "ownerId").await)?
            .is_some()
    {
        row.owner_id = owner;
    }
    c.finish()
}

pub(crate) async fn record_stage(
    tx: &mut Tx,
    by: &Principal,
    id: &str,
    from: Option<&str>,
    to: &str,
) -> Result<()> {
    repo::insert_stage_change(
        &mut tx.conn(),
        &StageChangeRow {
            id: ids::new_id("stg"),
            account_id: id.to_owned(),
            from_stage: from.map(str::to_owned),
            to_stage: to.to_owned(),
            changed_by: by.actor().id,
            changed_at: ids::now(),
        },
    )
    .await
}

impl Entity for Accounts {
    const DEF: Def = repo::DEF;
    type Row = AccountRow;
    type Fields = AccountFields;

    fn snapshot(row: &AccountRow) -> Value {
        snapshot(row)
    }

    fn blank() -> AccountRow {
        let now = ids::now();
        AccountRow {
            id: String::new(),
            name: String::new(),
            industry: None,
            size_band: None,
            website: None,
            phone: None,
            address: None,
            annual_revenue: None,
            revenue_currency: None,
            credit_limit: None,
            credit_currency: None,
            lifecycle_stage: LifecycleStage::Prospect.as_text(),
            rating: None,
            source: None,
            notes: None,
            owner_id: String::new(),
            created_at: now,
            updated_at: now,
            version: 1,
            deleted_at: None,
            deleted_by: None,
            custom: "{}".into(),
        }
    }

    fn requested_owner(f: &AccountFields) -> Option<&str> {
        f.owner_id.as_deref()
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut AccountRow,
        mut f: AccountFields,
    ) -> Result<()> {
        f.creating |= w.creating;
        apply(w.app, w.by, conn, row, f).await
    }

    /// Every lifecycle change goes into the account's stage history.
    async fn after_write(
        w: &WriteCtx<'_>,
        tx: &mut Tx,
        before: Option<&AccountRow>,
        after: &AccountRow,
    ) -> Result<()> {
        let from = before.map(|b| b.lifecycle_stage.as_str());
        if from == Some(after.lifecycle_stage.as_str()) {
            return Ok(());
        }
        record_stage(tx, w.by, &after.id, from, &after.lifecycle_stage).await
    }
}

/// Gives accounts to `owner`, in one transaction: all or none. Accounts
/// outside the caller's update scope are NOT_FOUND.
pub async fn assign(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    ids_in: &[async_graphql::ID],
    owner: &str,
) -> Result<Vec<AccountRow>> {
    let mut tx = app.db.begin().await?;
    let mut rows = Vec::new();
    for id in ids_in {
        ids::check(id, "acc", "ids")?;
        rows.push(store::fetch::<Accounts>(&mut tx.conn(), scope, id).await?);
    }
    // Handing records over to any active user (another team's, too) is what
    // assigning is for (see `require_assignable_owner` on create and update).
    users::check_active_user(&mut tx.conn(), owner, "ownerId").await?;
    let mut out = Vec::new();
    for before in rows {
        let mut after = before.clone();
        after.owner_id = owner.to_owned();
        after.updated_at = ids::now();
        let after = store::update_row::<Accounts>(&mut tx.conn(), &after, before.version).await?;
        store::record::<Accounts>(&mut tx, by, Some(&before), Some(&after), "assigned").await?;
        out.push(after);
    }
    app.commit(tx).await?;
    Ok(out)
}

/// Replaces an account's tags (version-checked; bumps the version).
pub async fn set_tags(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    id: &str,
    version: i64,
    tag_ids: &[async_graphql::ID],
) -> Result<AccountRow> {
    ids::check(id, "acc", "id")?;
    let mut tx = app.db.begin().await?;
    let before = store::fetch::<Accounts>(&mut tx.conn(), scope, id).await?;
    let wanted = crate::tags::check_ids(&mut tx.conn(), tag_ids, "tagIds").await?;
    let old: Vec<String> =
        crate::tags::for_accounts(&mut tx.conn(), std::slice::from_ref(&before.id))
            .await?
            .into_iter()
            .map(|(_, t)| t.id)
            .collect();
    let mut after = before.clone();
    after.updated_at = ids::now();
    let after = store::update_row::<Accounts>(&mut tx.conn(), &after, version).await?;
    crate::tags::set_account_tags(&mut tx.conn(), id, &wanted).await?;
    let mut old_snap = snapshot(&before);
    old_snap["tagIds"] = json!(old);
    let mut new_snap = snapshot(&after);
    new_snap["tagIds"] = json!(wanted);
    change::record(
        &mut tx.conn(),
        &by.actor(),
        Change {
            topic: TOPIC,
            entity_type: "Account",
            entity_id: id.to_owned(),
            action: "tagged",
            before: Some(old_snap),
            after: Some(new_snap),
            owner_id: Some(after.owner_id.clone()),
            team_id: None,
        },
    )
    .await?;
    app.commit(tx).await?;
    Ok(after)
}
