DROP TABLE lead_scores;
DROP TABLE scoring_settings;
DROP TABLE scoring_rules;
