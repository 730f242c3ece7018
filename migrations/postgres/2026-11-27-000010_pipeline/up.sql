-- Pipeline module: pipelines with ordered stages, opportunities and their
-- append-only history. Money is integer minor units plus an ISO currency;
-- a close date is text in YYYY-MM-DD (sorts and compares as a date);
-- required fields of a stage are a JSON array of API field names.
CREATE TABLE pipelines (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX pipelines_name_idx ON pipelines (name);

CREATE TABLE pipeline_stages (
    id TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL REFERENCES pipelines (id),
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    probability BIGINT NOT NULL,
    forecast_category TEXT NOT NULL,
    kind TEXT NOT NULL,
    required_fields TEXT NOT NULL DEFAULT '[]',
    rotting_days BIGINT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX pipeline_stages_pipeline_idx ON pipeline_stages (pipeline_id, position);

CREATE TABLE opportunities (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    primary_contact_id TEXT REFERENCES contacts (id),
    owner_id TEXT NOT NULL REFERENCES users (id),
    pipeline_id TEXT NOT NULL REFERENCES pipelines (id),
    stage_id TEXT NOT NULL REFERENCES pipeline_stages (id),
    amount BIGINT,
    currency TEXT,
    close_date TEXT,
    probability BIGINT NOT NULL,
    forecast_category TEXT NOT NULL,
    next_step TEXT,
    source TEXT,
    campaign_id TEXT,
    lost_reason TEXT,
    closed_at TIMESTAMP,
    custom TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by TEXT
);
CREATE INDEX opportunities_owner_idx ON opportunities (owner_id);
CREATE INDEX opportunities_account_idx ON opportunities (account_id);
CREATE INDEX opportunities_contact_idx ON opportunities (primary_contact_id);
CREATE INDEX opportunities_stage_idx ON opportunities (pipeline_id, stage_id);
CREATE INDEX opportunities_name_idx ON opportunities (name, id);
CREATE INDEX opportunities_created_idx ON opportunities (created_at, id);
CREATE INDEX opportunities_updated_idx ON opportunities (updated_at, id);
CREATE INDEX opportunities_close_idx ON opportunities (close_date);

-- Append-only: one row per write that changed the stage, amount, close
-- date, probability or forecast category, with every such field's from and
-- to values (a JSON array of {field, from, to}).
CREATE TABLE opportunity_history (
    id TEXT PRIMARY KEY,
    opportunity_id TEXT NOT NULL REFERENCES opportunities (id) ON DELETE CASCADE,
    stage_changed BOOLEAN NOT NULL,
    changes TEXT NOT NULL,
    changed_by TEXT,
    changed_at TIMESTAMP NOT NULL
);
CREATE INDEX opportunity_history_opp_idx ON opportunity_history (opportunity_id, changed_at);
