-- Merges of duplicate accounts or contacts: enough to undo one exactly.
-- `snapshot` holds every involved row as it was before the merge (survivor
-- included), `moved` the link rows re-pointed from each merged record to the
-- survivor, `versions` the version each record was left at (undo refuses if
-- one has moved on). JSON is stored as text on both backends.
CREATE TABLE merges (
    id TEXT PRIMARY KEY,
    entity_type TEXT NOT NULL,
    survivor_id TEXT NOT NULL,
    merged_ids TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    moved TEXT NOT NULL,
    versions TEXT NOT NULL,
    merged_by TEXT NOT NULL,
    merged_at TIMESTAMP NOT NULL,
    undone_at TIMESTAMP,
    undone_by TEXT
);
CREATE INDEX merges_by_idx ON merges (merged_by, merged_at);
CREATE INDEX merges_survivor_idx ON merges (survivor_id);
