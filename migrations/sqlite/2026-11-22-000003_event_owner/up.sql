-- Who owns the record an event is about, so subscriptions can apply the
-- subscriber's row scope without a lookup per event.
ALTER TABLE outbox ADD COLUMN owner_id TEXT;
ALTER TABLE outbox ADD COLUMN team_id TEXT;
