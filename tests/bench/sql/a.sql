-- (a) one account by id, 5 fields, under the manager's team scope.
-- :ids, :teams are filled in by read.sh; :n rotates over bench_ids.
\set n random(1, :ids)
SELECT a.name, a.industry, a.website, a.phone, a.lifecycle_stage
  FROM accounts a
 WHERE a.id = (SELECT id FROM bench_ids WHERE n = :n)
   AND a.owner_id IN (SELECT id FROM users WHERE team_id IN (:teams))
   AND a.deleted_at IS NULL;
