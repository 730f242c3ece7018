-- Idempotency keys of POST mutations (`Idempotency-Key` header), one row per
-- caller and key. A request claims its key by inserting the row as
-- `running` (the primary key makes two replicas agree on who runs it); the
-- claim lapses at `locked_until` if its process died. When the request ends
-- the row becomes `done` with the response to replay (status, headers as a
-- JSON list of [name, value] pairs, body). Rows are deleted after
-- `expires_at`.
CREATE TABLE idempotency_keys (
    principal TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    claim_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    response_status BIGINT,
    response_headers TEXT,
    response_body TEXT,
    PRIMARY KEY (principal, idem_key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
