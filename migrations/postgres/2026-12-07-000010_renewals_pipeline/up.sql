-- The pipeline that contracts' renewal deals go to unless a contract names
-- another (at most one).
ALTER TABLE pipelines ADD COLUMN renewals BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX pipelines_renewals_idx ON pipelines (renewals) WHERE renewals;
