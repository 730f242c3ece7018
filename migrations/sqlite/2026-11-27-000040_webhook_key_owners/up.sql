-- An API key owns the webhook endpoints it created.
UPDATE webhook_endpoints SET owner_id = principal_id
 WHERE principal_kind = 'api_key' AND owner_id IS NULL;
