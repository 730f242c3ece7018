ALTER TABLE pipeline_stages DROP COLUMN next_steps;
DROP TABLE opportunity_stale_marks;
DROP INDEX opportunities_stage_entry_idx;
ALTER TABLE opportunities DROP COLUMN stage_entered_at;
ALTER TABLE opportunities DROP COLUMN tags;
