DROP TABLE api_keys;
DROP TABLE revoked_tokens;
DROP TABLE users;
DROP TABLE teams;
