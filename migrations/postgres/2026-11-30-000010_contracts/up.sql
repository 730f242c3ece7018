-- Pipeline module: contracts. A contract is with an account, made directly
-- or from an ACCEPTED quote (then its opportunity, value and currency come
-- from the quote; one contract per quote, kept by the unique index). It
-- moves DRAFT → ACTIVE → EXPIRED / TERMINATED (TERMINATED also from
-- DRAFT). Dates are `YYYY-MM-DD` text (they sort and compare as text);
-- the value is in minor units. `renewal_due_on` is end_date −
-- renewal_notice_days, kept by the writes so the renewal checker compares
-- text on both backends; a contract renews into `renewal_pipeline_id`
-- (NULL: no renewal). `contract_renewals` is the once-only marker: the
-- checker inserts the contract's row in the transaction that creates the
-- renewal opportunity, so of several replicas exactly one does.
CREATE TABLE contracts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    opportunity_id TEXT REFERENCES opportunities (id),
    quote_id TEXT,
    owner_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    value BIGINT NOT NULL,
    currency TEXT NOT NULL,
    renewal_pipeline_id TEXT,
    renewal_notice_days BIGINT NOT NULL DEFAULT 60,
    renewal_due_on TEXT NOT NULL,
    renewal_opportunity_id TEXT,
    activated_at TIMESTAMP,
    ended_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by TEXT
);
CREATE UNIQUE INDEX contracts_quote_idx ON contracts (quote_id);
CREATE INDEX contracts_account_idx ON contracts (account_id);
CREATE INDEX contracts_opportunity_idx ON contracts (opportunity_id);
CREATE INDEX contracts_owner_idx ON contracts (owner_id);
CREATE INDEX contracts_status_end_idx ON contracts (status, end_date);
CREATE INDEX contracts_renewal_idx ON contracts (status, renewal_due_on);
CREATE INDEX contracts_created_idx ON contracts (created_at, id);

CREATE TABLE contract_renewals (
    contract_id TEXT PRIMARY KEY REFERENCES contracts (id),
    created_at TIMESTAMP NOT NULL
);
