ALTER TABLE outbox DROP COLUMN team_id;
ALTER TABLE outbox DROP COLUMN owner_id;
