-- The worker takes an endpoint's next pending delivery in (created_at,
-- event cursor, id) order; this index answers that without sorting every
-- pending delivery of the endpoint (a backlog of thousands took ~7 ms per
-- delivery on PostgreSQL, 0.1 ms with it).
CREATE INDEX webhook_deliveries_pending_idx
    ON webhook_deliveries (endpoint_id, status, created_at, event_seq, id);
