-- Leads module: lead scoring. Rules (fit rules on a lead's fields,
-- engagement rules on events), the one settings row (created by the first
-- settings change or decay; absent means the defaults) and each lead's
-- scores. Scores live beside `leads` (which is at diesel's column limit);
-- engagement is stored with the time it was last brought up to date, the
-- value at a later time t being engagement * 0.5 ^ ((t - at) / half-life).
CREATE TABLE scoring_rules (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    field TEXT,
    operator TEXT,
    rule_values TEXT NOT NULL DEFAULT '[]',
    event TEXT,
    points BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX scoring_rules_kind_idx ON scoring_rules (kind, active);

CREATE TABLE scoring_settings (
    id TEXT PRIMARY KEY,
    half_life_days BIGINT NOT NULL,
    grade_a BIGINT NOT NULL,
    grade_b BIGINT NOT NULL,
    grade_c BIGINT NOT NULL,
    grade_d BIGINT NOT NULL,
    decay_period BIGINT,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE lead_scores (
    lead_id TEXT PRIMARY KEY REFERENCES leads (id) ON DELETE CASCADE,
    fit BIGINT NOT NULL,
    engagement DOUBLE PRECISION NOT NULL,
    engagement_at TIMESTAMP,
    score BIGINT NOT NULL,
    grade TEXT NOT NULL,
    explanation TEXT NOT NULL DEFAULT '{}',
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX lead_scores_score_idx ON lead_scores (score, lead_id);
CREATE INDEX lead_scores_grade_idx ON lead_scores (grade);
CREATE INDEX lead_scores_decay_idx ON lead_scores (engagement_at) WHERE engagement > 0;
