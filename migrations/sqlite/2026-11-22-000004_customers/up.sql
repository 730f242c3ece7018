-- Customers module: accounts, contacts, tags, lifecycle history.
-- Money is integer minor units plus an ISO currency; structured values
-- (address, emails, phones) are JSON text; soft-deleted rows keep
-- deleted_at/deleted_by until an admin purges them.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    industry TEXT,
    size_band TEXT,
    website TEXT,
    phone TEXT,
    address TEXT,
    annual_revenue BIGINT,
    revenue_currency TEXT,
    credit_limit BIGINT,
    credit_currency TEXT,
    lifecycle_stage TEXT NOT NULL,
    rating TEXT,
    source TEXT,
    notes TEXT,
    owner_id TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by TEXT
);
CREATE INDEX accounts_owner_idx ON accounts (owner_id);
CREATE INDEX accounts_name_idx ON accounts (name, id);
CREATE INDEX accounts_created_idx ON accounts (created_at, id);
CREATE INDEX accounts_updated_idx ON accounts (updated_at, id);

CREATE TABLE account_stage_history (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    from_stage TEXT,
    to_stage TEXT NOT NULL,
    changed_by TEXT,
    changed_at TIMESTAMP NOT NULL
);
CREATE INDEX account_stage_history_idx ON account_stage_history (account_id, changed_at);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    title TEXT,
    emails TEXT NOT NULL,
    phones TEXT NOT NULL,
    search_text TEXT NOT NULL,
    preferred_channel TEXT,
    language TEXT,
    account_id TEXT REFERENCES accounts (id),
    owner_id TEXT NOT NULL REFERENCES users (id),
    consent_state TEXT NOT NULL,
    consent_at TIMESTAMP,
    consent_source TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by TEXT
);
CREATE INDEX contacts_owner_idx ON contacts (owner_id);
CREATE INDEX contacts_account_idx ON contacts (account_id, id);
CREATE INDEX contacts_name_idx ON contacts (last_name, first_name, id);

CREATE TABLE tags (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE account_tags (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    tag_id TEXT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, tag_id)
);
CREATE INDEX account_tags_tag_idx ON account_tags (tag_id);

CREATE TABLE contact_tags (
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    tag_id TEXT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag_id)
);
CREATE INDEX contact_tags_tag_idx ON contact_tags (tag_id);
