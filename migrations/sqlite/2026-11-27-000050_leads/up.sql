-- Leads module: people and companies not yet qualified into accounts,
-- contacts and opportunities. A lead has an owner, or waits unowned in its
-- team's queue (owner_id NULL, team_id set). Emails and phones are JSON
-- lists of {kind, value} normalised as contacts' are; tags a JSON list of
-- tag ids; consent a JSON {state, at, source}; `converted` the JSON links
-- {accountId, contactId, opportunityId} written by the conversion.
-- matched_contact_id and duplicate_of are duplicate-check links, not
-- foreign keys: they may outlive a purged record (readers check it).
CREATE TABLE leads (
    id TEXT PRIMARY KEY,
    first_name TEXT,
    last_name TEXT,
    title TEXT,
    emails TEXT NOT NULL DEFAULT '[]',
    phones TEXT NOT NULL DEFAULT '[]',
    company TEXT,
    company_key TEXT,
    website TEXT,
    industry TEXT,
    size_band TEXT,
    country TEXT,
    region TEXT,
    city TEXT,
    source TEXT NOT NULL,
    campaign_id TEXT,
    status TEXT NOT NULL,
    status_reason TEXT,
    owner_id TEXT REFERENCES users (id),
    team_id TEXT REFERENCES teams (id),
    tags TEXT NOT NULL DEFAULT '[]',
    consent TEXT NOT NULL DEFAULT '{}',
    matched_contact_id TEXT,
    duplicate_of TEXT,
    converted_at TIMESTAMP,
    converted TEXT,
    custom TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by TEXT
);
CREATE INDEX leads_owner_idx ON leads (owner_id);
CREATE INDEX leads_team_idx ON leads (team_id, owner_id);
CREATE INDEX leads_status_idx ON leads (status);
CREATE INDEX leads_company_key_idx ON leads (company_key);
CREATE INDEX leads_last_name_idx ON leads (last_name, id);
CREATE INDEX leads_created_idx ON leads (created_at, id);
CREATE INDEX leads_updated_idx ON leads (updated_at, id);
