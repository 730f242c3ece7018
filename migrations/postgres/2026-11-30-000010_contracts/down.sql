DROP TABLE contract_renewals;
DROP TABLE contracts;
