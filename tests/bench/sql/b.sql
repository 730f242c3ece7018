-- (b) the first 50 accounts by name, each with its first 10 contacts by last
-- name, each with its 5 latest activities, as one JSON document, in one
-- statement, under the manager's scope (activities: owned in the teams or
-- assigned to the manager, as the service's row scope for tasks).
SELECT json_agg(json_build_object(
         'name', a.name,
         'contacts', (
           SELECT coalesce(json_agg(json_build_object(
                    'firstName', c.first_name,
                    'lastName', c.last_name,
                    'timeline', (
                      SELECT coalesce(json_agg(json_build_object(
                               'title', t.title, 'occurredAt', t.occurred_at)
                               ORDER BY t.occurred_at DESC, t.id DESC), '[]')
                        FROM (SELECT t.id, t.title, t.occurred_at
                                FROM activities t
                               WHERE t.subject_id = c.id AND t.deleted_at IS NULL
                                 AND (t.owner_id IN (SELECT id FROM users WHERE team_id IN (:teams))
                                      OR t.assignee_id = :manager)
                               ORDER BY t.occurred_at DESC, t.id DESC
                               LIMIT 5) t))
                    ORDER BY c.last_name, c.id), '[]')
             FROM (SELECT c.id, c.first_name, c.last_name
                     FROM contacts c
                    WHERE c.account_id = a.id AND c.deleted_at IS NULL
                      AND c.owner_id IN (SELECT id FROM users WHERE team_id IN (:teams))
                    ORDER BY c.last_name, c.id
                    LIMIT 10) c))
       ORDER BY a.name, a.id)
  FROM (SELECT a.id, a.name
          FROM accounts a
         WHERE a.owner_id IN (SELECT id FROM users WHERE team_id IN (:teams))
           AND a.deleted_at IS NULL
         ORDER BY a.name, a.id
         LIMIT 50) a;
