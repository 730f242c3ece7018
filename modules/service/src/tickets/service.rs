//! The rules of a ticket, as the entity kit's hooks: the requester is a
//! live contact the writer may read, the account defaults to the
//! contact's; status moves follow [`TicketStatus::next`] and stamp
//! `solvedAt` / `closedAt`; a closed ticket is not changed any more; the
//! assignee is an active user, the group a team; tags are normalised; a new
//! ticket takes the next number in the transaction that stores it
//! (`before_insert`).

use crm_core::access::{Principal, row_filter_for};
use crm_core::app::App;
use crm_core::custom;
use crm_core::db::Conn;
use crm_core::entity::{Def, Entity, WriteCtx, store};
use crm_core::error::{Checks, Error, Result};
use crm_core::identity::repo as users;
use crm_core::ids;
use crm_customers::accounts::repo::Accounts;
use crm_customers::contacts::repo::{ContactRow, Contacts};
use crm_customers::values::{opt_text, req_text};
use serde_json::{Map, Value, json};

use super::repo::{self, TicketRow, Tickets};
use crate::values::{TicketChannel, TicketPriority, TicketStatus, TicketType};

/// Most tags on one ticket.
pub const MAX_TAGS: usize = 20;

/// Fields of a ticket as entered; `None` leaves a field alone on update,
/// `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct TicketFields {
    pub subject: Option<String>,
    pub description: Option<Option<String>>,
    pub contact_id: Option<String>,
    /// On create, None means the contact's account.
    pub account_id: Option<Option<String>>,
    pub channel: Option<TicketChannel>,
    pub priority: Option<TicketPriority>,
    pub status: Option<TicketStatus>,
    pub ticket_type: Option<Option<TicketType>>,
    pub assignee_id: Option<Option<String>>,
    pub group_id: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    /// Custom field values to set (null clears).
    pub custom: Option<Map<String, Value>>,
}

/// The public fields of a ticket, for audit diffs and events (keys are
/// `Ticket` field names, so field rules apply to them); custom field values
/// appear as `custom.<key>`.
pub fn snapshot(r: &TicketRow) -> Value {
    let mut v = json!({
        "number": r.number,
        "subject": r.subject,
        "description": r.description,
        "contactId": r.contact_id,
        "accountId": r.account_id,
        "channel": r.channel,
        "priority": r.priority,
        "status": r.status,
        "type": r.ticket_type,
        "assigneeId": r.assignee_id,
        "groupId": r.group_id,
        "tags": tags_of(r),
        "solvedAt": r.solved_at,
        "closedAt": r.closed_at,
        "deletedAt": r.deleted_at,
    });
    if let Some(o) = v.as_object_mut() {
        o.extend(custom::snapshot_fields(&r.custom));
    }
    v
}

/// The stored tags of a ticket.
pub fn tags_of(r: &TicketRow) -> Vec<String> {
    serde_json::from_str(&r.tags).unwrap_or_default()
}

/// A tag as stored: trimmed, lower case, 1 to 50 letters, digits, `-`,
/// `_`, `.` or `:`.
pub fn normalize_tag(t: &str) -> Result<String> {
    let t = t.trim().to_lowercase();
    let ok = !t.is_empty()
        && t.chars().count() <= 50
        && t.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(t)
    } else {
        Err(Error::invalid(
            "tags",
            format!("{t:?} is not a tag (1 to 50 letters, digits, - _ . :)"),
        ))
    }
}

fn normalize_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = normalize_tag(t)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(Error::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags per ticket"),
        ));
    }
    Ok(out)
}

/// The scope `ty` may be read in by the writer, or None when it may read
/// none (then every record reads as missing).
async fn read_scope(
    app: &App,
    by: &Principal,
    ty: &str,
) -> Result<Option<crm_core::access::RowFilter>> {
    match row_filter_for(app, by, ty, "read").await {
        Ok(s) => Ok(Some(s)),
        Err(Error::Forbidden { .. } | Error::Unauthenticated) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The live contact `id` in the writer's read scope, or VALIDATION on
/// `contactId` that reads the same whether it exists or not.
async fn visible_contact(
    app: &App,
    by: &Principal,
    conn: &mut Conn<'_>,
    id: &str,
) -> Result<ContactRow> {
    let missing = || Error::invalid("contactId", "no such contact");
    if ids::check(id, "con", "contactId").is_err() {
        return Err(missing());
    }
    let Some(scope) = read_scope(app, by, "Contact").await? else {
        return Err(missing());
    };
    store::get::<Contacts>(conn, &scope, id)
        .await?
        .ok_or_else(missing)
}

/// VALIDATION on `accountId` unless `id` is a live account the writer may
/// read.
async fn visible_account(app: &App, by: &Principal, conn: &mut Conn<'_>, id: &str) -> Result<()> {
    let missing = || Error::invalid("accountId", "no such account");
    if ids::check(id, "acc", "accountId").is_err() {
        return Err(missing());
    }
    let Some(scope) = read_scope(app, by, "Account").await? else {
        return Err(missing());
    };
    match store::get::<Accounts>(conn, &scope, id).await? {
        Some(_) => Ok(()),
        None => Err(missing()),
    }
}

/// Applies `f` to `row`, validating every field; collects all problems.
async fn apply(
    w: &WriteCtx<'_>,
    conn: &mut Conn<'_>,
    row: &mut TicketRow,
    f: TicketFields,
) -> Result<()> {
    let (app, by) = (w.app, w.by);
    let mut c = Checks::default();
    let before = TicketStatus::from_stored(&row.status)?;
    if !w.creating && before == TicketStatus::Closed {
        return Err(Error::invalid(
            "status",
            "the ticket is CLOSED and is not changed any more (open a follow-up ticket)",
        ));
    }
    if w.creating && f.subject.is_none() {
        c.take::<()>(Err(Error::invalid("subject", "is required")))?;
    }
    if w.creating && f.contact_id.is_none() {
        c.take::<()>(Err(Error::invalid("contactId", "is required")))?;
    }
    if f.custom.is_some() || w.creating {
        let defs = custom::definitions(conn, "Ticket").await?;
        let may_write = |k: &str| custom::allowed(app, by, "Ticket", k, "write");
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
    if let Some(v) = &f.subject
        && let Some(v) = c.take(req_text(v, 300, "subject"))?
    {
        row.subject = v;
    }
    if let Some(v) = f.description.clone()
        && let Some(v) = c.take(opt_text(v, 50_000, "description"))?
    {
        row.description = v;
    }
    // The requester, and the account that follows it unless given.
    if let Some(id) = &f.contact_id
        && let Some(contact) = c.take(visible_contact(app, by, conn, id).await)?
    {
        if contact.id != row.contact_id && f.account_id.is_none() {
            row.account_id = contact.account_id.clone();
        }
        row.contact_id = contact.id;
    }
    if let Some(v) = &f.account_id {
        match v {
            Some(id) => {
                if c.take(visible_account(app, by, conn, id).await)?.is_some() {
                    row.account_id = Some(id.clone());
                }
            }
            None => row.account_id = None,
        }
    }
    if let Some(v) = f.channel {
        row.channel = v.as_str().into();
    }
    if let Some(v) = f.priority {
        row.priority = v.as_str().into();
    }
    if let Some(v) = f.ticket_type {
        row.ticket_type = v.map(|t| t.as_str().into());
    }
    if let Some(v) = &f.assignee_id {
        match v {
            Some(id) => {
                if c.take(users::check_active_user(conn, id, "assigneeId").await)?
                    .is_some()
                {
                    row.assignee_id = Some(id.clone());
                }
            }
            None => row.assignee_id = None,
        }
    }
    if let Some(v) = &f.group_id {
        match v {
            Some(id) => {
                if c.take(users::check_team(conn, id, "groupId").await)?
                    .is_some()
                {
                    row.group_id = Some(id.clone());
                }
            }
            None => row.group_id = None,
        }
    }
    if let Some(v) = &f.tags
        && let Some(v) = c.take(normalize_tags(v))?
    {
        row.tags = serde_json::to_string(&v).unwrap_or_else(|_| "[]".into());
    }
    // The status: a move must be allowed (a new ticket starts anywhere,
    // so history can be imported); solving and closing are stamped.
    if let Some(to) = f.status {
        let moved = if w.creating {
            Ok(())
        } else {
            before.check_move(to)
        };
        if c.take(moved)?.is_some() && (w.creating || to != before) {
            let now = ids::now();
            match to {
                TicketStatus::Solved => row.solved_at = Some(now),
                TicketStatus::Closed => {
                    row.solved_at = row.solved_at.or(Some(now));
                    row.closed_at = Some(now);
                }
                _ => row.solved_at = None,
            }
            row.status = to.as_str().into();
        }
    }
    c.finish()
}

impl Entity for Tickets {
    const DEF: Def = repo::DEF;
    type Row = TicketRow;
    type Fields = TicketFields;

    fn snapshot(row: &TicketRow) -> Value {
        snapshot(row)
    }

    fn blank() -> TicketRow {
        let now = ids::now();
        TicketRow {
            id: String::new(),
            number: String::new(),
            subject: String::new(),
            description: None,
            contact_id: String::new(),
            account_id: None,
            channel: TicketChannel::Web.as_str().into(),
            priority: TicketPriority::Normal.as_str().into(),
            status: TicketStatus::New.as_str().into(),
            ticket_type: None,
            assignee_id: None,
            group_id: None,
            tags: "[]".into(),
            custom: "{}".into(),
            solved_at: None,
            closed_at: None,
            created_at: now,
            updated_at: now,
            version: 1,
            deleted_at: None,
            deleted_by: None,
        }
    }

    /// A status move is `status_changed`, or `solved` / `closed` /
    /// `reopened`.
    fn update_action(before: &TicketRow, after: &TicketRow) -> &'static str {
        if before.status == after.status {
            return "updated";
        }
        match TicketStatus::from_stored(&after.status) {
            Ok(TicketStatus::Solved) => "solved",
            Ok(TicketStatus::Closed) => "closed",
            _ if before.status == TicketStatus::Solved.as_str() => "reopened",
            _ => "status_changed",
        }
    }

    async fn apply(
        w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut TicketRow,
        f: TicketFields,
    ) -> Result<()> {
        apply(w, conn, row, f).await
    }

    /// The SLA clocks follow every stored write (creation, status moves,
    /// new priority or attributes), in the same transaction.
    async fn after_write(
        w: &WriteCtx<'_>,
        tx: &mut crm_core::db::Tx,
        before: Option<&TicketRow>,
        after: &TicketRow,
    ) -> Result<()> {
        let now = crate::sla::now(w.app, &mut tx.conn()).await?;
        crate::sla::clocks::sync(&mut tx.conn(), before, after, now).await
    }

    /// The number, taken in the transaction that stores the ticket (a
    /// validation pass or dry run of an import takes none).
    async fn before_insert(
        _w: &WriteCtx<'_>,
        conn: &mut Conn<'_>,
        row: &mut TicketRow,
    ) -> Result<()> {
        row.number = repo::next_number(conn).await?;
        Ok(())
    }
}
