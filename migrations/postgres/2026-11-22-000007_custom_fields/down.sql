ALTER TABLE contacts DROP COLUMN custom;
ALTER TABLE accounts DROP COLUMN custom;
DROP TABLE custom_field_defs;
