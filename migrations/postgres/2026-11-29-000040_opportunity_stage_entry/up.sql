-- Opportunity tags (a JSON array of tag ids, as leads have), when the deal
-- entered its current stage, the stale marks (one per stage entry that
-- passed its stage's rotting threshold: the primary key makes the
-- `opportunity.stale` event fire once per entry across replicas), and the
-- next-step prompts of a stage (a JSON array of {title, dueInDays}).
ALTER TABLE opportunities ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE opportunities ADD COLUMN stage_entered_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE opportunities SET stage_entered_at = COALESCE(
    (SELECT MAX(h.changed_at) FROM opportunity_history h
      WHERE h.opportunity_id = opportunities.id AND h.stage_changed),
    created_at);
CREATE INDEX opportunities_stage_entry_idx ON opportunities (stage_id, stage_entered_at);

CREATE TABLE opportunity_stale_marks (
    opportunity_id TEXT NOT NULL REFERENCES opportunities (id) ON DELETE CASCADE,
    entered_at TIMESTAMP NOT NULL,
    marked_at TIMESTAMP NOT NULL,
    PRIMARY KEY (opportunity_id, entered_at)
);

ALTER TABLE pipeline_stages ADD COLUMN next_steps TEXT NOT NULL DEFAULT '[]';
