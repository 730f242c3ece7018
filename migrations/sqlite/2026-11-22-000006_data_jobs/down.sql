DROP INDEX accounts_lower_name_idx;
DROP INDEX contacts_email_key_idx;
ALTER TABLE contacts DROP COLUMN email_key;
DROP TABLE job_errors;
DROP TABLE jobs;
