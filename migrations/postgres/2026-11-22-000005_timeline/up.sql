-- Interaction timeline (calls, emails, meetings, notes, tasks) and purchases.
-- A timeline entry points at its subject by type and id, so later modules
-- (leads, opportunities, tickets) attach entries the same way.
CREATE TABLE activities (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT,
    occurred_at TIMESTAMP NOT NULL,
    duration_secs BIGINT,
    outcome TEXT,
    participants TEXT NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users (id),
    assignee_id TEXT REFERENCES users (id),
    due_at TIMESTAMP,
    remind_at TIMESTAMP,
    reminded_at TIMESTAMP,
    completed_at TIMESTAMP,
    completed_by TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP
);
CREATE INDEX activities_subject_idx ON activities (subject_id, subject_type, occurred_at, id);
CREATE INDEX activities_assignee_idx ON activities (assignee_id, completed_at, due_at);
CREATE INDEX activities_remind_idx ON activities (remind_at);

CREATE TABLE purchases (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    contact_id TEXT REFERENCES contacts (id),
    order_number TEXT NOT NULL,
    ordered_at TIMESTAMP NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    line_items TEXT NOT NULL,
    external_id TEXT,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX purchases_account_idx ON purchases (account_id, ordered_at, id);
CREATE INDEX purchases_contact_idx ON purchases (contact_id, ordered_at, id);
