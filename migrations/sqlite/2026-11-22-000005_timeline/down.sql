DROP TABLE purchases;
DROP TABLE activities;
