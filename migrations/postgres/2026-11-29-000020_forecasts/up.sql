-- Forecasts: quotas per user and period, and managers' adjustments of
-- forecast figures (append-only history). A period is MONTH or QUARTER
-- and named by its first day (text YYYY-MM-DD); money is integer minor
-- units plus an ISO currency.
CREATE TABLE quotas (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users (id),
    period TEXT NOT NULL,
    period_start TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX quotas_owner_period_idx ON quotas (owner_id, period, period_start, currency);
CREATE INDEX quotas_period_idx ON quotas (period, period_start);

-- One row per adjustment, never updated: for a user (owner_id) or a team
-- (team_id, owner_id NULL). No foreign key on team_id: a team's history
-- outlives the team.
CREATE TABLE forecast_adjustments (
    id TEXT PRIMARY KEY,
    owner_id TEXT REFERENCES users (id),
    team_id TEXT,
    period TEXT NOT NULL,
    period_start TEXT NOT NULL,
    figure TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL,
    note TEXT NOT NULL,
    author_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX forecast_adjustments_period_idx ON forecast_adjustments (period, period_start);
CREATE INDEX forecast_adjustments_owner_idx ON forecast_adjustments (owner_id);
