-- Pipeline module: products, price books (one standard book per currency),
-- price book entries (product x book, deactivated rather than deleted) and
-- an opportunity's line items. Money is integer minor units plus an ISO
-- currency; a quantity is stored in thousandths, a discount in hundredths
-- of a percent.
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    family TEXT,
    unit TEXT,
    description TEXT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    custom TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX products_code_idx ON products (code);
CREATE INDEX products_name_idx ON products (name, id);

CREATE TABLE price_books (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    is_standard BOOLEAN NOT NULL DEFAULT FALSE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX price_books_name_idx ON price_books (name);
-- At most one standard book per currency (the service makes the first
-- book of a currency its standard one and never leaves a currency without).
CREATE UNIQUE INDEX price_books_standard_idx ON price_books (currency) WHERE is_standard;

CREATE TABLE price_book_entries (
    id TEXT PRIMARY KEY,
    price_book_id TEXT NOT NULL REFERENCES price_books (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    unit_price BIGINT NOT NULL,
    currency TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX price_book_entries_pair_idx ON price_book_entries (product_id, price_book_id);
CREATE INDEX price_book_entries_book_idx ON price_book_entries (price_book_id);

CREATE TABLE opportunity_line_items (
    id TEXT PRIMARY KEY,
    opportunity_id TEXT NOT NULL REFERENCES opportunities (id) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES products (id),
    price_book_entry_id TEXT NOT NULL REFERENCES price_book_entries (id),
    position BIGINT NOT NULL,
    quantity_milli BIGINT NOT NULL,
    list_price BIGINT NOT NULL,
    unit_price BIGINT NOT NULL,
    discount_bp BIGINT NOT NULL,
    total BIGINT NOT NULL,
    currency TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX opportunity_line_items_opp_idx ON opportunity_line_items (opportunity_id, position);
CREATE INDEX opportunity_line_items_entry_idx ON opportunity_line_items (price_book_entry_id);

-- The people on the customer's side of a deal and their part in it; the
-- primary one is also the opportunity's primary contact.
CREATE TABLE opportunity_contact_roles (
    id TEXT PRIMARY KEY,
    opportunity_id TEXT NOT NULL REFERENCES opportunities (id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    role TEXT NOT NULL,
    is_primary BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX opportunity_contact_roles_opp_idx ON opportunity_contact_roles (opportunity_id);
CREATE INDEX opportunity_contact_roles_contact_idx ON opportunity_contact_roles (contact_id);
