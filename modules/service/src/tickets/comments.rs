//! A ticket's conversation: public replies and internal notes. Each entry
//! is stored with the ticket, noted on the requester's (and the account's)
//! timeline through the customers module's timeline, and announced as a
//! ticket event whose changed field is `comments` or `internalNotes`, so
//! the field rules that hide internal notes hide the event too.

use crm_core::access::{Principal, RowFilter};
use crm_core::app::App;
use crm_core::change::{self, Change};
use crm_core::entity::subject::SubjectType;
use crm_core::entity::{self, store};
use crm_core::error::{Error, Result};
use crm_core::ids;
use crm_customers::activities::{ActivityKind, TimelineEntry, record_entry};
use crm_customers::values::req_text;
use serde_json::{Value, json};

use super::repo::{self, CommentRow, TicketRow, Tickets};
use super::service::snapshot;
use crate::values::TicketStatus;

/// The `Ticket` field an entry is read through.
pub fn field_of(internal: bool) -> &'static str {
    if internal {
        "internalNotes"
    } else {
        "comments"
    }
}

fn entry_json(c: &CommentRow) -> Value {
    json!({
        "id": c.id,
        "body": c.body,
        "authorId": c.author_id,
        "internal": c.internal,
        "fromCustomer": c.from_customer,
        "createdAt": c.created_at,
    })
}

/// What kind of conversation entry is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A public reply by an agent (meets the reply SLA clocks).
    Reply,
    /// An internal note.
    Note,
    /// A message from the requester, logged by an agent (starts a
    /// next-reply SLA clock).
    Customer,
}

/// Adds a public reply, an internal note or a customer's message to a
/// ticket in `scope` (the caller's update scope for tickets), in one
/// transaction with the timeline entries, the SLA clocks, the audit entry
/// and the event. A public reply opens a NEW ticket, a customer's message
/// a PENDING or SOLVED one; a CLOSED ticket takes no more entries.
pub async fn reply(
    app: &App,
    by: &Principal,
    scope: &RowFilter,
    ticket_id: &str,
    body: &str,
    entry: Entry,
) -> Result<(TicketRow, CommentRow)> {
    let internal = entry == Entry::Note;
    let author = by
        .user_id()
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid("authorization", "only users reply to tickets"))?;
    ids::check(ticket_id, repo::DEF.prefix, "ticketId")?;
    let body = req_text(body, 50_000, "body")?;
    let mut tx = app.db.begin().await?;
    let before = store::fetch::<Tickets>(&mut tx.conn(), scope, ticket_id).await?;
    if before.status == TicketStatus::Closed.as_str() {
        return Err(Error::invalid(
            "status",
            "the ticket is CLOSED and takes no more replies (open a follow-up ticket)",
        ));
    }
    let now = ids::now();
    let comment = CommentRow {
        id: ids::new_id("tkc"),
        ticket_id: before.id.clone(),
        author_id: Some(author.clone()),
        body,
        internal,
        created_at: now,
        from_customer: entry == Entry::Customer,
    };
    repo::insert_comment(&mut tx.conn(), &comment).await?;
    let mut after = before.clone();
    after.updated_at = now;
    let reopens: &[TicketStatus] = match entry {
        Entry::Reply => &[TicketStatus::New],
        Entry::Note => &[],
        Entry::Customer => &[TicketStatus::Pending, TicketStatus::Solved],
    };
    if reopens.iter().any(|s| s.as_str() == before.status) {
        after.status = TicketStatus::Open.as_str().into();
        if before.status == TicketStatus::Solved.as_str() {
            after.solved_at = None;
        }
    }
    let after = store::update_row::<Tickets>(&mut tx.conn(), &after, before.version).await?;
    // The SLA clocks: a status move pauses or resumes them; a reply
    // meets the reply clocks, a customer's message starts one.
    let sla_now = crate::sla::now(app, &mut tx.conn()).await?;
    crate::sla::clocks::sync(&mut tx.conn(), Some(&before), &after, sla_now).await?;
    match entry {
        Entry::Reply => {
            crate::sla::clocks::public_reply(&mut tx.conn(), &after.id, sla_now).await?;
        }
        Entry::Customer => {
            crate::sla::clocks::customer_message(&mut tx.conn(), &after, sla_now).await?;
        }
        Entry::Note => {}
    }
    // The timeline: the requester's and the account's. An internal note is
    // noted there without its text (the timeline has its own readers).
    let title = format!(
        "{} on ticket {}: {}",
        match entry {
            Entry::Reply => "Reply",
            Entry::Note => "Internal note",
            Entry::Customer => "Customer message",
        },
        before.number,
        before.subject
    );
    let title: String = title.chars().take(300).collect();
    let mut subjects = vec![("Contact", before.contact_id.clone())];
    if let Some(a) = &before.account_id {
        subjects.push(("Account", a.clone()));
    }
    for (ty, id) in subjects {
        record_entry(
            &mut tx.conn(),
            by,
            TimelineEntry {
                kind: ActivityKind::Note,
                subject_type: SubjectType::of(ty)?,
                subject_id: id,
                title: title.clone(),
                body: (!internal).then(|| comment.body.clone()),
                owner_id: author.clone(),
            },
        )
        .await?;
    }
    let mut after_snapshot = snapshot(&after);
    if let Some(o) = after_snapshot.as_object_mut() {
        o.insert(field_of(internal).into(), entry_json(&comment));
    }
    let owner_id = store::owner_of::<Tickets>(&mut tx.conn(), &after).await?;
    let context = entity::event_context_of::<Tickets>(&mut tx.conn(), &after).await?;
    change::record_in_context(
        &mut tx.conn(),
        &by.actor(),
        context,
        Change {
            topic: crate::TOPIC,
            entity_type: "Ticket",
            entity_id: after.id.clone(),
            action: match entry {
                Entry::Reply => "replied",
                Entry::Note => "noted",
                Entry::Customer => "customer_message",
            },
            before: Some(snapshot(&before)),
            after: Some(after_snapshot),
            owner_id,
            team_id: None,
        },
    )
    .await?;
    app.commit(tx).await?;
    Ok((after, comment))
}
