-- Why a change was made when it was not the caller's own edit of the record
-- (e.g. a merge re-pointing another owner's timeline entry); NULL for
-- ordinary edits.
ALTER TABLE audit_log ADD COLUMN reason TEXT;
