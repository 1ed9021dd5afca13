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
-- IN lists on the distribution column run only on the shards of their values, found by the
-- stored ranges: every key is found alone and in lists that span both shards (with NULLs,
-- duplicates and other integer types), joined too, as a plain table answers.
CREATE TABLE r_local AS SELECT * FROM r;
DO $$
DECLARE a bigint; b bigint; bad int := 0;
BEGIN
  FOR i IN 1..199 LOOP
    EXECUTE format('SELECT count(*) FROM routing.r WHERE k IN (%s, %s::smallint, NULL, %s)', i, i + 1, i) INTO a;
    EXECUTE format('SELECT count(*) FROM routing.r_local WHERE k IN (%s, %s::smallint, NULL, %s)', i, i + 1, i) INTO b;
    IF a <> b THEN bad := bad + 1; END IF;
    EXECUTE 'SELECT count(*) FROM routing.r JOIN routing.r2 USING (k) WHERE k = ANY ($1)' INTO a USING ARRAY[i, 201 - i];
    EXECUTE 'SELECT count(*) FROM routing.r_local WHERE k = ANY ($1)' INTO b USING ARRAY[i, 201 - i];
    IF a <> b THEN bad := bad + 1; END IF;
  END LOOP;
  RAISE NOTICE '% differences', bad;
END $$;
SELECT count(*), sum(k) FROM r WHERE k IN (SELECT generate_series(1, 50));
SELECT count(*) FROM r WHERE k IN (NULL);
SELECT k, v FROM r WHERE k IN (3, 1, 2) ORDER BY k;
-- The plan names only the shards of the values: in 8 shards, two values on two of them are
-- two tasks, an UPDATE's too; values of one shard are a router query; no value but NULL
-- is one task (an aggregate still returns its row).
CREATE TABLE w8 (k int PRIMARY KEY, v int);
SELECT create_distributed_table('w8', 'k', shard_count => 8);
INSERT INTO w8 SELECT i, i FROM generate_series(1, 100) i;
CREATE FUNCTION plan_summary(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; summary text := '';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    IF line ~ '^\s*(Tier|Task Count):' THEN summary := summary || btrim(line) || '; '; END IF;
  END LOOP;
  RETURN summary;
END $$;
SELECT a.i AS k1, b.i AS k2 FROM generate_series(1, 100) a(i), generate_series(1, 100) b(i)
 WHERE get_shard_id_for_distribution_column('w8', a.i) <> get_shard_id_for_distribution_column('w8', b.i)
 ORDER BY 1, 2 LIMIT 1 \gset
SELECT b.i AS k3 FROM generate_series(2, 100) b(i)
 WHERE get_shard_id_for_distribution_column('w8', b.i) = get_shard_id_for_distribution_column('w8', 1)
 ORDER BY 1 LIMIT 1 \gset
SELECT plan_summary(format('SELECT * FROM routing.w8 WHERE k IN (%s, %s)', :k1, :k2));
SELECT plan_summary(format('SELECT count(*) FROM routing.w8 WHERE k IN (%s, %s) AND v > 0', :k1, :k2));
SELECT plan_summary(format('UPDATE routing.w8 SET v = v + 1 WHERE k IN (%s, %s)', :k1, :k2));
SELECT plan_summary(format('SELECT * FROM routing.w8 WHERE k IN (1, %s)', :k3));
SELECT plan_summary($$SELECT count(*) FROM routing.w8 WHERE k = ANY ('{NULL,NULL}')$$);
SELECT plan_summary('SELECT * FROM routing.w8 WHERE k NOT IN (1, 2)');
SELECT plan_summary('SELECT * FROM routing.w8 WHERE k IN (1, 2) OR v = 3');
SELECT plan_summary('SELECT * FROM routing.w8 WHERE k::numeric IN (1, 2)');
UPDATE w8 SET v = v + 1 WHERE k IN (:k1, :k2);
SELECT k, v FROM w8 WHERE k IN (:k1, :k2) ORDER BY k;
SELECT count(*) FROM w8 WHERE k = ANY ('{NULL,NULL}');
-- Values of other integer types hash as the column's values do (no conversion error, the
-- rows PostgreSQL finds); a list under a collation that is not the column's and not
-- deterministic prunes nothing; lists inside a view, in a co-located join, under a LEFT JOIN
-- (ON or WHERE), in DELETE ... RETURNING, empty, and in prepared statements.
CREATE TABLE s2 (k smallint PRIMARY KEY, v int);
SELECT create_distributed_table('s2', 'k', shard_count => 4);
INSERT INTO s2 SELECT i, i FROM generate_series(1, 20) i;
SELECT k FROM s2 WHERE k IN (1, 100000, 3000000000) ORDER BY k;
SELECT k FROM s2 WHERE k = 100000;
SELECT count(*) FROM s2 WHERE k IN (1::int8, 2::int4, 3::int2);
CREATE COLLATION tessera_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE names_t (name text PRIMARY KEY, v int);
SELECT create_distributed_table('names_t', 'name', shard_count => 8);
INSERT INTO names_t SELECT 'name' || i, i FROM generate_series(1, 40) i;
SELECT name FROM names_t WHERE name IN ('NAME1' COLLATE tessera_ci, 'NAME2' COLLATE tessera_ci) ORDER BY name;
SELECT plan_summary($$SELECT name FROM routing.names_t WHERE name IN ('NAME1' COLLATE tessera_ci, 'x')$$);
SELECT plan_summary($$SELECT name FROM routing.names_t WHERE name IN ('name1', 'name2')$$);
CREATE TABLE w8b (k int, w int);
SELECT create_distributed_table('w8b', 'k', colocate_with => 'w8');
INSERT INTO w8b SELECT k, k * 10 FROM w8;
CREATE VIEW w8_view AS SELECT * FROM w8 WHERE k IN (1, 2, 3);
SELECT plan_summary('SELECT * FROM routing.w8_view');
SELECT k, v FROM w8_view ORDER BY k;
SELECT plan_summary(format('SELECT * FROM routing.w8 JOIN routing.w8b USING (k) WHERE k IN (%s, %s)', :k1, :k2));
SELECT k, v, w FROM w8 JOIN w8b USING (k) WHERE k IN (:k1, :k2) ORDER BY k;
SELECT plan_summary(format('SELECT * FROM routing.w8 LEFT JOIN routing.w8b ON w8b.k = w8.k AND w8b.k IN (%s, %s)', :k1, :k2));
SELECT count(*), count(w8b.k) FROM w8 LEFT JOIN w8b ON w8b.k = w8.k AND w8b.k IN (:k1, :k2);
SELECT plan_summary(format('SELECT * FROM routing.w8 LEFT JOIN routing.w8b USING (k) WHERE w8.k IN (%s, %s)', :k1, :k2));
SELECT plan_summary('SELECT * FROM routing.w8 WHERE k = ANY (''{}'')');
SELECT count(*) FROM w8 WHERE k = ANY ('{}');
BEGIN;
DELETE FROM w8b WHERE k IN (:k1, :k2) RETURNING k, w;
ROLLBACK;
PREPARE in_list AS SELECT count(*) FROM w8 WHERE k IN (1, 2, 3);
PREPARE in_param(int[]) AS SELECT count(*) FROM w8 WHERE k = ANY ($1);
SET plan_cache_mode = force_generic_plan;
EXECUTE in_list; EXECUTE in_list; EXECUTE in_list; EXECUTE in_list; EXECUTE in_list; EXECUTE in_list;
EXECUTE in_param('{1,2,3}'); EXECUTE in_param('{4,5}');
SELECT plan_summary('EXECUTE in_param(''{1,2}'')');
RESET plan_cache_mode;
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
