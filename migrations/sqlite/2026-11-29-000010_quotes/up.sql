-- Pipeline module: quotes. A quote is for an opportunity (and its
-- account); its number `Q-<year>-<nnnnn>` is taken from the per-year
-- counter row in the creating transaction (gap-free, unique); a revision
-- keeps the number and adds one to `revision`. Its line items are a JSON
-- list in `lines` (priced like an opportunity's: minor units, quantities
-- in thousandths, discounts in hundredths of a percent), so a quote and its
-- lines change together under one `version`. An opportunity names its one
-- primary quote.
CREATE TABLE quote_counters (
    year BIGINT PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE quotes (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    revision BIGINT NOT NULL,
    revised_from TEXT REFERENCES quotes (id),
    opportunity_id TEXT NOT NULL REFERENCES opportunities (id),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    currency TEXT,
    lines TEXT NOT NULL DEFAULT '[]',
    subtotal BIGINT NOT NULL DEFAULT 0,
    discount_bp BIGINT NOT NULL DEFAULT 0,
    discount BIGINT NOT NULL DEFAULT 0,
    tax_bp BIGINT NOT NULL DEFAULT 0,
    tax BIGINT NOT NULL DEFAULT 0,
    total BIGINT NOT NULL DEFAULT 0,
    billing_address TEXT,
    shipping_address TEXT,
    terms TEXT,
    sent_at TIMESTAMP,
    decided_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX quotes_number_idx ON quotes (number, revision);
CREATE INDEX quotes_opportunity_idx ON quotes (opportunity_id);
CREATE INDEX quotes_account_idx ON quotes (account_id);
CREATE INDEX quotes_expiry_idx ON quotes (status, valid_until);
CREATE INDEX quotes_created_idx ON quotes (created_at, id);

ALTER TABLE opportunities ADD COLUMN primary_quote_id TEXT;
