-- Numbers what is pending, then restores the writer-assigned cursor.
UPDATE outbox o SET seq = b.base + r.rn
FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM outbox WHERE seq IS NULL) r,
     (SELECT COALESCE(MAX(seq), 0) AS base FROM outbox) b
WHERE o.id = r.id;
DROP INDEX outbox_unsequenced_idx;
DROP INDEX outbox_seq_idx;
ALTER TABLE outbox DROP CONSTRAINT outbox_pkey;
ALTER TABLE outbox DROP COLUMN id;
ALTER TABLE outbox ALTER COLUMN seq SET NOT NULL;
CREATE SEQUENCE outbox_seq_seq OWNED BY outbox.seq;
SELECT setval('outbox_seq_seq', COALESCE((SELECT MAX(seq) FROM outbox), 0) + 1, false);
ALTER TABLE outbox ALTER COLUMN seq SET DEFAULT nextval('outbox_seq_seq');
ALTER TABLE outbox ADD PRIMARY KEY (seq);
