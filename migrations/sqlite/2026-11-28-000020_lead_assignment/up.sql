-- Lead assignment rules: an ordered list (position ascending, first match
-- wins). conditions is a JSON object {countries, regions, industries,
-- sizeBands, sources, minScore}; an absent or empty list matches any lead.
-- target_kind: USER (target_user_id), ROUND_ROBIN (the active members of
-- team_id in turn) or QUEUE (team_id's queue). team_id is the team a rule
-- belongs to (the row scope of a sales manager editing it): the target
-- team, or the target user's team.
CREATE TABLE lead_assignment_rules (
    id TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT 1,
    conditions TEXT NOT NULL DEFAULT '{}',
    target_kind TEXT NOT NULL,
    target_user_id TEXT REFERENCES users (id),
    team_id TEXT REFERENCES teams (id),
    open_lead_cap BIGINT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX lead_assignment_rules_position_idx ON lead_assignment_rules (position, id);
CREATE INDEX lead_assignment_rules_team_idx ON lead_assignment_rules (team_id);

-- A round-robin rule's place in its rotation: the user who got the last
-- lead and how many turns were handed out. Updated in the transaction
-- that assigns the lead, under this row's lock, so replicas never hand
-- out the same turn.
CREATE TABLE lead_round_robin (
    rule_id TEXT PRIMARY KEY REFERENCES lead_assignment_rules (id) ON DELETE CASCADE,
    last_user_id TEXT,
    turns BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMP NOT NULL
);
