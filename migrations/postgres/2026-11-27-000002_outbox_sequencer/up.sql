-- Events get their cursor after they commit (see core/src/events): writers
-- insert with `seq` NULL and take no lock; the sequencer numbers committed
-- rows in `id` order, above every cursor handed out before.
ALTER TABLE outbox ADD COLUMN id BIGSERIAL;
ALTER TABLE outbox DROP CONSTRAINT outbox_pkey;
ALTER TABLE outbox ADD PRIMARY KEY (id);
ALTER TABLE outbox ALTER COLUMN seq DROP DEFAULT;
ALTER TABLE outbox ALTER COLUMN seq DROP NOT NULL;
DROP SEQUENCE IF EXISTS outbox_seq_seq;
CREATE UNIQUE INDEX outbox_seq_idx ON outbox (seq);
CREATE INDEX outbox_unsequenced_idx ON outbox (id) WHERE seq IS NULL;
