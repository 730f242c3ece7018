DROP INDEX pipelines_renewals_idx;
ALTER TABLE pipelines DROP COLUMN renewals;
