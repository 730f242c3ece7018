-- SLA clocks on business calendars (service module).
--
-- Calendars and policies are shared configuration (versioned, audited).
-- A ticket's clocks are a snapshot: the policy's target, the calendar's
-- definition and the escalation are copied onto each clock when it
-- starts (or is re-targeted by a priority change), so editing a policy or
-- a calendar later does not rewrite tickets already measured.
-- `warned_at` / `breached_at` are the claims of the warning and breach
-- events: a conditional UPDATE sets each once, so one replica sends each.
CREATE TABLE sla_calendars (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    periods TEXT NOT NULL,
    holidays TEXT NOT NULL DEFAULT '[]',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX sla_calendars_name_idx ON sla_calendars (name);

CREATE TABLE sla_policies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    conditions TEXT NOT NULL DEFAULT '{}',
    calendar_id TEXT REFERENCES sla_calendars (id),
    targets TEXT NOT NULL DEFAULT '[]',
    warn_percent BIGINT NOT NULL DEFAULT 75,
    escalation TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX sla_policies_position_idx ON sla_policies (position, id);

CREATE TABLE sla_clocks (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    policy_id TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    target_minutes BIGINT NOT NULL,
    calendar TEXT NOT NULL,
    warn_percent BIGINT NOT NULL,
    escalation TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    due_at TIMESTAMP NOT NULL,
    warn_at TIMESTAMP NOT NULL,
    paused_at TIMESTAMP,
    paused_minutes BIGINT NOT NULL DEFAULT 0,
    met_at TIMESTAMP,
    warned_at TIMESTAMP,
    breached_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX sla_clocks_ticket_idx ON sla_clocks (ticket_id, started_at);
CREATE INDEX sla_clocks_warn_idx ON sla_clocks (state, warn_at);
CREATE INDEX sla_clocks_due_idx ON sla_clocks (state, due_at);

-- A message from the requester (next-reply clocks start on it).
ALTER TABLE ticket_comments ADD COLUMN from_customer BOOLEAN NOT NULL DEFAULT FALSE;

-- The SLA engine's "now" while the `sla-test-clock` setting is on (tests
-- and demos only): one row, set with SQL; the system clock otherwise.
CREATE TABLE sla_test_clock (
    id TEXT PRIMARY KEY,
    now_at TIMESTAMP NOT NULL
);
