-- (e) the quarter's forecast of the manager's team tree: per owner and
-- currency, and in total per currency, closed won, commit, best case,
-- pipeline (counts and amounts), the weighted pipeline and lost deals of
-- the deals closing in the quarter, and the quarter's quotas; in one
-- statement. An empty owner is the total; an empty currency, deals without
-- an amount.
WITH scope AS (SELECT id FROM users WHERE team_id IN (:teams)),
groups AS (
  SELECT o.owner_id, o.stage_id, o.forecast_category AS cat, o.currency,
         count(*) AS n, sum(o.amount) AS amount, sum(o.amount * o.probability) AS product
    FROM opportunities o
   WHERE o.deleted_at IS NULL AND o.owner_id IN (SELECT id FROM scope)
     AND o.close_date >= :from AND o.close_date < :to
   GROUP BY 1, 2, 3, 4),
deals AS (
  SELECT g.owner_id, g.currency, s.kind, g.cat, g.n, g.amount, g.product
    FROM groups g JOIN pipeline_stages s ON s.id = g.stage_id),
figures AS (
  SELECT coalesce(owner_id, '') AS owner_id, coalesce(currency, '') AS currency,
         sum(n) FILTER (WHERE kind = 'WON') AS won_n,
         coalesce(sum(amount) FILTER (WHERE kind = 'WON'), 0) AS won,
         sum(n) FILTER (WHERE kind = 'WON' OR (kind = 'OPEN' AND cat IN ('COMMIT', 'CLOSED'))) AS commit_n,
         coalesce(sum(amount) FILTER (WHERE kind = 'WON' OR (kind = 'OPEN' AND cat IN ('COMMIT', 'CLOSED'))), 0) AS commit,
         sum(n) FILTER (WHERE kind = 'WON' OR (kind = 'OPEN' AND cat <> 'PIPELINE' AND cat <> 'OMITTED')) AS best_n,
         coalesce(sum(amount) FILTER (WHERE kind = 'WON' OR (kind = 'OPEN' AND cat <> 'PIPELINE' AND cat <> 'OMITTED')), 0) AS best,
         sum(n) FILTER (WHERE kind = 'OPEN' AND cat <> 'OMITTED') AS pipe_n,
         coalesce(sum(amount) FILTER (WHERE kind = 'OPEN' AND cat <> 'OMITTED'), 0) AS pipe,
         coalesce(sum(product) FILTER (WHERE kind = 'OPEN' AND cat <> 'OMITTED'), 0) AS weighted,
         sum(n) FILTER (WHERE kind = 'LOST') AS lost_n
    FROM deals
   GROUP BY GROUPING SETS ((owner_id, currency), (currency))),
quota AS (
  SELECT coalesce(owner_id, '') AS owner_id, currency, sum(amount) AS quota
    FROM quotas
   WHERE period = 'QUARTER' AND period_start >= :from AND period_start < :to
     AND owner_id IN (SELECT id FROM scope)
   GROUP BY GROUPING SETS ((owner_id, currency), (currency)))
SELECT coalesce(f.owner_id, q.owner_id) AS owner_id, coalesce(f.currency, q.currency) AS currency,
       f.won_n, f.won, f.commit_n, f.commit, f.best_n, f.best, f.pipe_n, f.pipe,
       round(f.weighted / 100.0) AS weighted, f.lost_n, q.quota
  FROM figures f
  FULL JOIN quota q ON q.owner_id = f.owner_id AND q.currency = f.currency
 ORDER BY 1, 2;
