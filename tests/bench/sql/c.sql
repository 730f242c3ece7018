-- (c) the first 20 accounts whose name starts with a prefix, by name, under
-- the manager's team scope. :prefixes, :teams are filled in by read.sh; :n
-- rotates over bench_prefixes. The range lets the name index serve it.
\set n random(1, :prefixes)
SELECT a.id, a.name
  FROM accounts a, (SELECT p FROM bench_prefixes WHERE n = :n) q
 WHERE a.name >= q.p AND a.name < q.p || chr(1114111)
   AND a.owner_id IN (SELECT id FROM users WHERE team_id IN (:teams))
   AND a.deleted_at IS NULL
 ORDER BY a.name, a.id
 LIMIT 20;
