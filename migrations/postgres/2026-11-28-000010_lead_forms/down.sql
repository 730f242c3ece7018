DROP TABLE lead_form_submissions;
DROP TABLE lead_forms;
