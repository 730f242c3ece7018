-- Background jobs (imports, exports): who started them, their options and
-- counters, so any replica can report progress. A job runs in the process
-- that accepted it; `heartbeat_at` shows it is alive.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    owner_id TEXT,
    params TEXT NOT NULL,
    file_name TEXT,
    rows_done BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL DEFAULT 0,
    updated BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    message TEXT,
    result_path TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    heartbeat_at TIMESTAMP
);
CREATE INDEX jobs_owner_idx ON jobs (owner_id, created_at);

-- One line per rejected input row of an import: the error report.
CREATE TABLE job_errors (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    line BIGINT NOT NULL,
    col TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, line, col)
);

-- The first email of a contact, normalised: the duplicate key of imports.
ALTER TABLE contacts ADD COLUMN email_key TEXT;
CREATE INDEX contacts_email_key_idx ON contacts (email_key);
CREATE INDEX accounts_lower_name_idx ON accounts (lower(name));
