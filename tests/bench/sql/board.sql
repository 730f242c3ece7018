-- (d) the board of one pipeline under the manager's scope: per stage the
-- count, the amount sum and the amount x probability sum per currency, and
-- the first 5 deals by name (id, name, amount), in one statement.
SELECT s.id, s.position, g.currency, g.n, g.amount, g.weighted, f.deals
  FROM pipeline_stages s
  LEFT JOIN LATERAL (
        SELECT o.currency, count(*) AS n, sum(o.amount) AS amount,
               sum(o.amount * o.probability) AS weighted
          FROM opportunities o
         WHERE o.pipeline_id = s.pipeline_id AND o.stage_id = s.id AND o.deleted_at IS NULL
           AND o.owner_id IN (SELECT id FROM users WHERE team_id IN (:teams))
         GROUP BY o.currency) g ON true
  LEFT JOIN LATERAL (
        SELECT json_agg(json_build_object('id', d.id, 'name', d.name, 'amount', d.amount)
                        ORDER BY d.name, d.id) AS deals
          FROM (SELECT o.id, o.name, o.amount
                  FROM opportunities o
                 WHERE o.pipeline_id = s.pipeline_id AND o.stage_id = s.id AND o.deleted_at IS NULL
                   AND o.owner_id IN (SELECT id FROM users WHERE team_id IN (:teams))
                 ORDER BY o.name, o.id
                 LIMIT 5) d) f ON true
 WHERE s.pipeline_id = :pipeline AND s.active
 ORDER BY s.position, g.currency;
