-- Public web forms that capture leads. A form is shared configuration
-- (admins and marketing manage it): `form_key` is the unguessable key in
-- its public URL (`POST /forms/{key}`); `fields` the JSON list of
-- {name, target, required} mapping posted field names to lead fields;
-- `allowed_origins` the JSON list of origins whose pages may post it;
-- `default_tags` a JSON list of tag ids. Leads it creates are owned by
-- `owner_id`, or wait in `team_id`'s queue.
CREATE TABLE lead_forms (
    id TEXT PRIMARY KEY,
    form_key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    fields TEXT NOT NULL DEFAULT '[]',
    allowed_origins TEXT NOT NULL DEFAULT '[]',
    redirect_url TEXT,
    default_source TEXT NOT NULL,
    default_campaign_id TEXT,
    default_tags TEXT NOT NULL DEFAULT '[]',
    owner_id TEXT REFERENCES users (id),
    team_id TEXT REFERENCES teams (id),
    on_match TEXT NOT NULL,
    honeypot_field TEXT,
    dedupe_window_secs BIGINT NOT NULL,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX lead_forms_name_idx ON lead_forms (name, id);

-- The last submission of a form per (normalised) email: the primary key
-- makes two concurrent submissions of the same email meet on one row, so
-- a double click within the form's dedupe window yields one lead.
-- `lead_id` is not a foreign key: the lead may be purged later.
CREATE TABLE lead_form_submissions (
    form_id TEXT NOT NULL REFERENCES lead_forms (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    lead_id TEXT,
    submitted_at TIMESTAMP NOT NULL,
    PRIMARY KEY (form_id, email)
);
