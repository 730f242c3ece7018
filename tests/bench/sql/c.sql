-- (c) the first 20 accounts whose name starts with a prefix, by name, under
-- the manager's team scope. read.sh writes one script per prefix (:prefix
-- quoted, :prefix_end is the prefix followed by the highest code point) and
-- runs them all with equal weights; :teams is filled in too. The range lets
-- the name index serve it.
SELECT a.id, a.name
  FROM accounts a
 WHERE a.name >= :prefix AND a.name < :prefix_end
   AND a.owner_id IN (SELECT id FROM users WHERE team_id IN (:teams))
   AND a.deleted_at IS NULL
 ORDER BY a.name, a.id
 LIMIT 20;
