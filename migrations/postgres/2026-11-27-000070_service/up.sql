-- Service module: tickets, their conversation (public replies and internal
-- notes) and the counter that numbers tickets. The counter row is updated
-- in the transaction that creates a ticket, so numbers are unique and,
-- because a rolled-back creation rolls the counter back too, gap-free. The
-- first ticket creates the row (a new database holds no rows, so a backup
-- restores into it).
CREATE TABLE service_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    subject TEXT NOT NULL,
    description TEXT,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    account_id TEXT REFERENCES accounts (id),
    channel TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    ticket_type TEXT,
    assignee_id TEXT REFERENCES users (id),
    group_id TEXT REFERENCES teams (id),
    tags TEXT NOT NULL DEFAULT '[]',
    custom TEXT NOT NULL DEFAULT '{}',
    solved_at TIMESTAMP,
    closed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by TEXT
);
CREATE UNIQUE INDEX tickets_number_idx ON tickets (number);
CREATE INDEX tickets_contact_idx ON tickets (contact_id);
CREATE INDEX tickets_account_idx ON tickets (account_id);
CREATE INDEX tickets_group_idx ON tickets (group_id, status);
CREATE INDEX tickets_assignee_idx ON tickets (assignee_id, status);
CREATE INDEX tickets_created_idx ON tickets (created_at, id);

CREATE TABLE ticket_comments (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    author_id TEXT REFERENCES users (id),
    body TEXT NOT NULL,
    internal BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ticket_comments_ticket_idx ON ticket_comments (ticket_id, created_at, id);
