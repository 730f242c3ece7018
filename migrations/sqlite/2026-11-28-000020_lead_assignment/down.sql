DROP TABLE lead_round_robin;
DROP TABLE lead_assignment_rules;
