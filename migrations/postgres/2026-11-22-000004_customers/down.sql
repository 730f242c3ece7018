DROP TABLE contact_tags;
DROP TABLE account_tags;
DROP TABLE tags;
DROP TABLE contacts;
DROP TABLE account_stage_history;
DROP TABLE accounts;
