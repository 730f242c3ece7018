UPDATE webhook_endpoints SET owner_id = NULL WHERE principal_kind = 'api_key';
