-- The transactional outbox. `seq` is the event cursor. On PostgreSQL writers take a
-- transaction-scoped advisory lock before inserting (see core/src/events), so
-- sequence numbers are handed out in commit order and a tailer reading
-- `seq > cursor` can never pass over an event that commits later.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    actor TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX outbox_topic_seq_idx ON outbox (topic, seq);

-- Append-only audit trail; no API updates or deletes it.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TIMESTAMP NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    credential TEXT,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    action TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX audit_entity_idx ON audit_log (entity_type, entity_id, id);
CREATE INDEX audit_actor_idx ON audit_log (actor_id, id);
