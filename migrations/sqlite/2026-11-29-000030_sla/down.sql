DROP TABLE sla_test_clock;
ALTER TABLE ticket_comments DROP COLUMN from_customer;
DROP TABLE sla_clocks;
DROP TABLE sla_policies;
DROP TABLE sla_calendars;
