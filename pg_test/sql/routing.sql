-- Routing reads the shard ranges stored in pg_dist_shard, not a uniform cut of the hash space:
-- a layout edited in the catalog, as a shard split leaves it, routes every value to the shard
-- that holds it (writes, router reads, co-located joins, get_shard_id_for_distribution_column).
CREATE SCHEMA routing;
SET search_path = routing, public;
CREATE TABLE r (k int PRIMARY KEY, v text);
CREATE TABLE r2 (k int, w int);
SELECT create_distributed_table('r', 'k', shard_count => 2);
SELECT create_distributed_table('r2', 'k', colocate_with => 'r');
-- Uniform: the boundary is at 0. Move it to 1000000000 for both tables while they are empty.
UPDATE pg_dist_shard SET shardmaxvalue = '999999999'
 WHERE logicalrelid IN ('routing.r'::regclass, 'routing.r2'::regclass) AND shardminvalue = '-2147483648';
UPDATE pg_dist_shard SET shardminvalue = '1000000000'
 WHERE logicalrelid IN ('routing.r'::regclass, 'routing.r2'::regclass) AND shardmaxvalue = '2147483647';
\c
SET search_path = routing, public;
-- Keys whose hash lies between the two boundaries: the uniform cut would put them in the
-- second shard, the stored ranges in the first.
SELECT count(*) > 0 AS some_keys_moved FROM generate_series(1, 200) i
 WHERE worker_hash(i) BETWEEN 0 AND 999999999;
INSERT INTO r SELECT i, 'v' || i FROM generate_series(1, 100) i;
INSERT INTO r VALUES (101, 'v101'), (102, 'v102'), (103, 'v103');
INSERT INTO r SELECT i, 'v' || i FROM generate_series(104, 200) i WHERE i % 2 = 0;
INSERT INTO r SELECT i, 'v' || i FROM generate_series(104, 200) i WHERE i % 2 = 1;
INSERT INTO r2 SELECT k, k FROM r;
-- Every row sits in the shard whose stored range holds its hash: "rows in range/rows".
SELECT s.shardminvalue, s.shardmaxvalue, w.result
  FROM pg_dist_shard s,
       LATERAL run_command_on_workers(format(
         'SELECT count(*) FILTER (WHERE pg_catalog.worker_hash(k) BETWEEN %s AND %s) || ''/'' || count(*) FROM %s',
         s.shardminvalue, s.shardmaxvalue, shard_name(s.logicalrelid, s.shardid))) w
 WHERE s.logicalrelid IN ('routing.r'::regclass, 'routing.r2'::regclass) AND w.success
 ORDER BY s.logicalrelid::text, s.shardminvalue::int;
-- Each key is found by a router query, alone and joined with its co-located row.
DO $$
DECLARE found int := 0; joined int := 0; n int;
BEGIN
  FOR i IN 1..200 LOOP
    EXECUTE 'SELECT count(*) FROM routing.r WHERE k = $1 AND v = ''v'' || $1' INTO n USING i;
    found := found + n;
    EXECUTE 'SELECT count(*) FROM routing.r JOIN routing.r2 USING (k) WHERE k = $1' INTO n USING i;
    joined := joined + n;
  END LOOP;
  RAISE NOTICE 'found % of 200 keys, % joined', found, joined;
END $$;
PREPARE by_key(int) AS SELECT v FROM r WHERE k = $1;
SELECT i AS moved_key FROM generate_series(1, 200) i WHERE worker_hash(i) BETWEEN 0 AND 999999999 ORDER BY i LIMIT 1 \gset
EXECUTE by_key(:moved_key);
SELECT get_shard_id_for_distribution_column('r', :moved_key) =
       (SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'routing.r'::regclass AND shardminvalue = '-2147483648') AS first_shard;
UPDATE r SET v = v || '!' WHERE k = :moved_key;
DELETE FROM r WHERE k = :moved_key RETURNING k, v;
SELECT count(*) FROM r;
-- partkey holds the distribution column's Var node text, as Citus stores it.
SELECT partkey LIKE '{VAR %' AS var_text, column_to_column_name(logicalrelid, partkey)
  FROM pg_dist_partition WHERE logicalrelid = 'routing.r'::regclass;
SELECT column_name_to_column('r', 'k') = partkey AS same
  FROM pg_dist_partition WHERE logicalrelid = 'routing.r'::regclass;
SELECT column_name_to_column('r', 'nope');
SELECT column_to_column_name('r', 'not a var');
SELECT table_name, distribution_column FROM citus_tables WHERE table_name IN ('routing.r'::regclass, 'routing.r2'::regclass) ORDER BY 1;
RESET search_path;
DROP SCHEMA routing CASCADE;
