-- Tessera's planner and utility hooks chain to the hooks loaded before them:
-- the cluster preloads pg_stat_statements first, then tessera.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SET pg_stat_statements.track_planning = on;
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;
CREATE TABLE hooks_t (a int);
INSERT INTO hooks_t SELECT generate_series(1, 10);
SELECT sum(a) FROM hooks_t;
-- The planner hook chain reached pg_stat_statements: it counted the plans ...
SELECT query, plans, calls FROM pg_stat_statements
WHERE query LIKE '%hooks_t%' AND query NOT LIKE '%pg_stat_statements%' ORDER BY query;
DROP TABLE hooks_t;
-- ... and the utility hook chain too (utility statements are tracked by default).
SELECT count(*) > 0 AS utility_seen FROM pg_stat_statements WHERE query LIKE 'CREATE TABLE hooks_t%';
DROP EXTENSION pg_stat_statements;
