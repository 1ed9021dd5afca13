-- Statements without a query on distributed tables: maintenance that reaches every shard,
-- and what the shards cannot follow yet (refused, never a silent local-only change).
-- VACUUM and ANALYZE of a distributed table run on every shard (reltuples is -1 on a shard
-- never vacuumed or analyzed); a column list and options go along.
CREATE TABLE maint (id int, v text, w int);
SELECT create_distributed_table('maint', 'id', shard_count => 4);
INSERT INTO maint SELECT i, 'v' || i, i % 7 FROM generate_series(1, 400) i;
SELECT sum(result::int) AS never_counted FROM run_command_on_workers($$
  SELECT count(*) FROM pg_class WHERE relname ~ '^maint_[0-9]+$' AND reltuples < 0$$);
ANALYZE maint (v);
SELECT sum(result::int) AS shards_with_stats_on_v FROM run_command_on_workers($$
  SELECT count(DISTINCT tablename) FROM pg_stats WHERE tablename ~ '^maint_[0-9]+$' AND attname = 'v'$$);
SELECT sum(result::int) AS shards_with_stats_on_w FROM run_command_on_workers($$
  SELECT count(DISTINCT tablename) FROM pg_stats WHERE tablename ~ '^maint_[0-9]+$' AND attname = 'w'$$);
VACUUM (VERBOSE false, INDEX_CLEANUP 'auto') maint;
-- Only VACUUM sets the visibility map: every shard's pages are all-visible now.
SELECT sum(result::int) AS shards_all_visible FROM run_command_on_workers($$
  SELECT count(*) FROM pg_class WHERE relname ~ '^maint_[0-9]+$' AND relpages > 0 AND relallvisible = relpages$$);
-- VACUUM cannot run in a transaction block, here as on a single node.
BEGIN;
VACUUM maint;
ROLLBACK;
-- Extended statistics reach the shards (pg_test triggers_statistics.sql); statements the
-- shards cannot follow yet are refused; comments stay on the coordinator.
CREATE STATISTICS maint_stats ON v, w FROM maint;
CREATE PUBLICATION maint_pub FOR TABLE maint;
COMMENT ON TABLE maint IS 'kept on the coordinator';
SELECT obj_description('maint'::regclass, 'pg_class');
DROP TABLE maint;
