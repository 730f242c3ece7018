//! Next-step prompts: when a deal enters a stage (on creation too), each of
//! the stage's prompts becomes a task on the deal's timeline, assigned to
//! the deal's owner and due the prompt's number of days later, in the
//! write's own transaction (no task without the move, no move without its
//! tasks).

use chrono::Duration;
use crm_core::access::Principal;
use crm_core::db::Tx;
use crm_core::entity::subject::SubjectType;
use crm_core::error::Result;
use crm_customers::activities::{TaskEntry, record_task};

use super::repo::{DEF, OpportunityRow};
use crate::pipelines::repo as pipelines;

/// Creates the tasks the stage `opp` is now in prompts.
pub async fn create_tasks(tx: &mut Tx, by: &Principal, opp: &OpportunityRow) -> Result<()> {
    let mut conn = tx.conn();
    let Some(stage) = pipelines::stage(&mut conn, &opp.stage_id).await? else {
        return Ok(());
    };
    let prompts = pipelines::prompts(&stage.next_steps)?;
    if prompts.is_empty() {
        return Ok(());
    }
    let subject = SubjectType::of(DEF.type_name)?;
    for p in prompts {
        record_task(
            &mut conn,
            by,
            TaskEntry {
                subject_type: subject,
                subject_id: opp.id.clone(),
                title: p.title,
                owner_id: opp.owner_id.clone(),
                assignee_id: opp.owner_id.clone(),
                due_at: Some(opp.stage_entered_at + Duration::days(p.due_in_days)),
            },
        )
        .await?;
    }
    Ok(())
}
