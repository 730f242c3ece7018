-- SQLite serialises write transactions, so the cursor is still assigned on
-- insert, in commit order (see core/src/events). `id` mirrors it, so both
-- backends have the same columns (backups move between them).
ALTER TABLE outbox ADD COLUMN id INTEGER;
UPDATE outbox SET id = seq;
CREATE TRIGGER outbox_id AFTER INSERT ON outbox WHEN NEW.id IS NULL
BEGIN
    UPDATE outbox SET id = NEW.seq WHERE seq = NEW.seq;
END;
