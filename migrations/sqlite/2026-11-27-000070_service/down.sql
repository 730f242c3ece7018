DROP TABLE ticket_comments;
DROP TABLE tickets;
DROP TABLE service_counters;
