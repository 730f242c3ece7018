-- Outgoing webhooks. An endpoint acts as the principal that created it
-- (`principal_kind` + `principal_id`); `event_cursor` is the last outbox
-- event it has handled (delivered or filtered out), so delivery resumes
-- there after any restart. `lease_owner` / `lease_until` name the process
-- working on the endpoint: with several replicas, one at a time.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    topics TEXT NOT NULL,
    fields TEXT,
    active BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until TIMESTAMP,
    principal_kind TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    owner_id TEXT,
    event_cursor BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_owner_idx ON webhook_endpoints (owner_id);

-- One message to one endpoint: an event (or a test ping) with the exact
-- body sent, the same `message_id` (the `webhook-id` header) on every
-- attempt. Pending messages go out oldest first.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    event_seq BIGINT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, status, id);

-- Every attempt: when, the answer (status code, latency, the start of the
-- body) or the error.
CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at TIMESTAMP NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    response_excerpt TEXT,
    succeeded BOOLEAN NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempted_at);
