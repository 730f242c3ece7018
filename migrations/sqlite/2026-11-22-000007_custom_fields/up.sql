-- Custom fields: admins define extra fields per entity; values live in a JSON
-- object column of the record (`custom`), keyed by the definition's key. A
-- deleted definition keeps its key and the stored values until it is purged.
CREATE TABLE custom_field_defs (
    id TEXT PRIMARY KEY,
    entity_type TEXT NOT NULL,
    field_key TEXT NOT NULL,
    label TEXT NOT NULL,
    field_type TEXT NOT NULL,
    options TEXT NOT NULL,
    required BOOLEAN NOT NULL DEFAULT FALSE,
    default_value TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP
);
CREATE UNIQUE INDEX custom_field_defs_key_idx ON custom_field_defs (entity_type, field_key);

ALTER TABLE accounts ADD COLUMN custom TEXT NOT NULL DEFAULT '{}';
ALTER TABLE contacts ADD COLUMN custom TEXT NOT NULL DEFAULT '{}';
