ALTER TABLE opportunities DROP COLUMN primary_quote_id;
DROP TABLE quotes;
DROP TABLE quote_counters;
