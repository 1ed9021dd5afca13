-- Defects found by review (issue 8): wrong answers, data silently lost, a security hole and
-- internal errors. Each case compares with the same query on a plain table where that makes
-- sense; the differential test (tests/tests/differential.rs) covers the query shapes at scale.
CREATE SCHEMA defects;
SET search_path = defects, public;
CREATE TABLE oe (tenant_id int, id int);
CREATE TABLE om (tenant_id int, id int);
INSERT INTO oe SELECT i % 10, i FROM generate_series(1, 100) i;
INSERT INTO om SELECT * FROM oe;
CREATE TABLE l_oe AS SELECT * FROM oe;
CREATE TABLE l_om AS SELECT * FROM om;
SELECT create_distributed_table('oe', 'tenant_id', shard_count => 8);
SELECT create_distributed_table('om', 'tenant_id', colocate_with => 'oe');

-- 1. An equality with a value in an outer join's ON clause pins only the nullable side: the
-- preserved side keeps every row (100, as on plain tables), and the plan is not a router.
SELECT count(*) FROM oe e LEFT JOIN om m ON m.tenant_id = e.tenant_id AND m.tenant_id = 5 AND m.id = e.id;
SELECT count(*) FROM l_oe e LEFT JOIN l_om m ON m.tenant_id = e.tenant_id AND m.tenant_id = 5 AND m.id = e.id;
SELECT count(*) FROM oe e LEFT JOIN om m ON m.tenant_id = e.tenant_id AND e.tenant_id = 5 AND m.id = e.id;
SELECT count(*), count(m.id) FROM om m RIGHT JOIN oe e ON m.tenant_id = e.tenant_id AND m.tenant_id = 5 AND m.id = e.id;
SELECT count(*) FROM oe e FULL JOIN om m ON m.tenant_id = e.tenant_id AND m.tenant_id = 5 AND m.id = e.id;
SELECT count(*) FROM l_oe e FULL JOIN l_om m ON m.tenant_id = e.tenant_id AND m.tenant_id = 5 AND m.id = e.id;
-- A pin inside a join nested on the nullable side pins nothing outside it.
SELECT count(*) FROM oe e LEFT JOIN (om m JOIN om x ON x.tenant_id = m.tenant_id AND x.id = m.id AND m.tenant_id = 5)
  ON m.tenant_id = e.tenant_id AND m.id = e.id;
EXPLAIN (COSTS OFF) SELECT count(*) FROM oe e LEFT JOIN om m ON m.tenant_id = e.tenant_id AND m.tenant_id = 5 AND m.id = e.id;
-- A WHERE pin still routes the whole join.
EXPLAIN (COSTS OFF) SELECT count(*) FROM oe e LEFT JOIN om m ON m.tenant_id = e.tenant_id AND m.id = e.id WHERE e.tenant_id = 5;

-- 2. An aggregate without GROUP BY over no shard still returns its one row.
PREPARE agg(int) AS SELECT count(*), max(id), sum(id) FROM oe WHERE tenant_id = $1;
EXECUTE agg(NULL);
EXECUTE agg(3);
SET plan_cache_mode = force_generic_plan;
PREPARE agg2(int) AS SELECT count(*) FROM oe WHERE tenant_id = $1;
EXECUTE agg2(NULL);
EXECUTE agg2(4);
RESET plan_cache_mode;
SELECT count(*) FROM oe WHERE tenant_id = (SELECT NULL::int);
SELECT count(*) FROM oe WHERE tenant_id = NULL::int;

-- 3. Values do not depend on DateStyle, IntervalStyle, extra_float_digits or TimeZone.
CREATE TABLE dd (id int, d date, ts timestamptz, iv interval, f float8, b bytea);
SELECT create_distributed_table('dd', 'id', shard_count => 4);
SET datestyle = 'SQL, DMY';
INSERT INTO dd VALUES (1, '02/01/2026', '02/01/2026 10:00:00+00', '1 day -02:00', 0.1::float8 + 0.2::float8, '\x0102');
PREPARE ins_dd(int, date) AS INSERT INTO dd (id, d) VALUES ($1, $2);
EXECUTE ins_dd(2, '03/01/2026');
SELECT id, d, d::text AS d_text, to_char(d, 'YYYY-MM-DD') FROM dd ORDER BY id;
SELECT count(*) FROM dd WHERE d = '02/01/2026';
RESET datestyle;
SELECT id, d, ts, iv FROM dd ORDER BY id;
SET extra_float_digits = 0;
SELECT count(*) FROM dd WHERE f = 0.1::float8 + 0.2::float8;
SELECT id, f FROM dd WHERE id = 1;
RESET extra_float_digits;
SELECT f = 0.30000000000000004::float8 AS exact FROM dd WHERE id = 1;
SET intervalstyle = 'sql_standard';
SELECT iv, iv::text AS iv_text FROM dd WHERE id = 1;
SELECT count(*) FROM dd WHERE iv = '+0-0 +1 -2:00:00';
RESET intervalstyle;
SET timezone = 'Asia/Kathmandu';
SELECT ts, ts::date AS local_day, date_trunc('day', ts) AS trunc FROM dd WHERE id = 1;
SELECT count(*) FROM dd WHERE ts::time = '15:45';
RESET timezone;
SET bytea_output = 'escape';
SELECT b FROM dd WHERE id = 1;
RESET bytea_output;

-- 4. What the coordinator's session defines is evaluated there: one value for every shard and
-- every placement, the same the coordinator sees.
BEGIN;
SELECT now() = (SELECT max(now()) FROM oe) AS same_now;
SELECT count(DISTINCT now()) FROM oe;
SELECT now() = (SELECT now() FROM oe WHERE tenant_id = 3 LIMIT 1) AS router_now;
COMMIT;
SET app.tenant = 'seven';
SELECT DISTINCT current_setting('app.tenant') FROM oe;
SELECT current_setting('app.tenant'), count(*) FROM oe WHERE tenant_id = 7 GROUP BY 1;
-- An arm of CASE is evaluated only when reached, on the coordinator or not: no error here.
SELECT count(*) FROM oe WHERE CASE WHEN id > 1000 THEN current_setting('defects.unset')::int = 1 ELSE true END;
SELECT count(*) FROM oe WHERE CASE WHEN false THEN current_setting('defects.unset')::int = 1 ELSE id > 50 END;
CREATE ROLE defects_app LOGIN;
GRANT USAGE ON SCHEMA defects TO defects_app;
SELECT result FROM run_command_on_workers($$GRANT USAGE ON SCHEMA defects TO defects_app$$);
-- GRANT on one distributed table reaches its shards.
GRANT SELECT ON oe TO defects_app;
SET ROLE defects_app;
SELECT DISTINCT current_user FROM oe;
SELECT DISTINCT session_user = current_user AS same FROM oe;
SELECT count(*) FROM oe;
RESET ROLE;
CREATE TABLE ref (id int PRIMARY KEY, ts timestamptz, who text);
SELECT create_reference_table('ref');
INSERT INTO ref VALUES (1, NULL, NULL);
BEGIN;
UPDATE ref SET ts = now(), who = current_user;
SELECT ts = now() AS coordinator_now FROM ref;
COMMIT;
SELECT count(DISTINCT result) FROM run_command_on_workers(
  format('SELECT ts FROM defects.ref_%s', (SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'ref'::regclass)));
-- Volatile functions in UPDATE and DELETE stay refused.
UPDATE ref SET ts = clock_timestamp();

-- 5. INSERT ... SELECT between co-located tables: column defaults, and columns in another order.
CREATE TABLE src (tenant_id int, id int, b text);
CREATE TABLE dst (tenant_id int, id int, b text, created timestamptz DEFAULT now());
SELECT create_distributed_table('src', 'tenant_id', shard_count => 4);
SELECT create_distributed_table('dst', 'tenant_id', colocate_with => 'src');
INSERT INTO src VALUES (1, 10, 'x'), (2, 20, 'y');
BEGIN;
INSERT INTO dst (tenant_id, id, b) SELECT tenant_id, id, b FROM src;
INSERT INTO dst (b, id, tenant_id) SELECT b, id + 1, tenant_id FROM src;
EXPLAIN (COSTS OFF) INSERT INTO dst (b, id, tenant_id) SELECT b, id + 1, tenant_id FROM src;
SELECT tenant_id, id, b, created = now() AS now_default FROM dst ORDER BY tenant_id, id;
COMMIT;

-- 6. COPY never runs on the coordinator's empty table alone: COPY FROM reaches the shards.
COPY oe FROM STDIN;
77	77
\.
SELECT count(*) FROM oe WHERE tenant_id = 77;
-- COPY TO (pg_dump's form) reads the shards.
CREATE TABLE one (id int, v text, g int GENERATED ALWAYS AS (id * 2) STORED);
SELECT create_distributed_table('one', 'id', shard_count => 2);
INSERT INTO one VALUES (1, 'a');
COPY one TO STDOUT;
COPY one (v, id) TO STDOUT;
COPY (SELECT count(*) FROM oe) TO STDOUT;
CREATE FUNCTION oe_trigger() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER oe_t BEFORE INSERT ON oe FOR EACH ROW EXECUTE FUNCTION oe_trigger();
CREATE RULE oe_r AS ON INSERT TO oe DO INSTEAD NOTHING;
CREATE INDEX oe_id ON oe (id);
ALTER INDEX oe_id SET (fillfactor = 50);
CREATE TABLE oe_child () INHERITS (oe);
-- (RENAME, CLUSTER, REINDEX and SET SCHEMA reach the shards: pg_test table_ddl.sql.)
CREATE SCHEMA defects_other;
-- (One GRANT naming several tables reaches each one's shards.)
GRANT SELECT ON oe, om TO defects_app;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(bool_and(has_table_privilege('defects_app', oid, 'SELECT'))::text, '-')
    FROM pg_class WHERE relname ~ '^(oe|om)_[0-9]+$' AND relkind = 'r'$$);
-- ALL TABLES IN SCHEMA reaches the shards of the distributed tables in those schemas (the
-- statement rebuilt for each shard, as Citus does), not a worker's own table in the schema;
-- a non-owner with the grant option grants on the shards as itself, and REVOKE ... CASCADE
-- takes that back there too.
SELECT DISTINCT result FROM run_command_on_workers($$CREATE TABLE defects.worker_own (a int)$$);
CREATE ROLE defects_granter LOGIN;
GRANT USAGE ON SCHEMA defects TO defects_granter;
GRANT SELECT ON ALL TABLES IN SCHEMA defects, defects_other TO defects_granter WITH GRANT OPTION;
SET ROLE defects_granter;
GRANT SELECT ON ALL TABLES IN SCHEMA defects TO defects_app;
RESET ROLE;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(bool_and(has_table_privilege('defects_app', c.oid, 'SELECT')
                           AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a
                                        WHERE a.grantee = 'defects_app'::regrole
                                          AND a.grantor = 'defects_granter'::regrole))::text, '-')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'defects' AND c.relkind IN ('r', 'p') AND c.relname <> 'worker_own'$$);
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT has_table_privilege('defects_app', 'defects.worker_own', 'SELECT')
      OR has_table_privilege('defects_granter', 'defects.worker_own', 'SELECT')$$);
REVOKE SELECT ON ALL TABLES IN SCHEMA defects FROM defects_granter CASCADE;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(bool_or(EXISTS (SELECT 1 FROM aclexplode(c.relacl) a
                                   WHERE 'defects_granter'::regrole IN (a.grantor, a.grantee)))::text, '-')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'defects' AND c.relkind IN ('r', 'p')$$);
SELECT DISTINCT result FROM run_command_on_workers($$DROP TABLE defects.worker_own$$);
REVOKE ALL ON SCHEMA defects FROM defects_granter;
REVOKE ALL ON ALL TABLES IN SCHEMA defects_other FROM defects_granter;
DROP ROLE defects_granter;
GRANT SELECT ON oe, om TO defects_app;
-- A schema without distributed tables is granted as usual.
GRANT SELECT ON ALL TABLES IN SCHEMA defects_other TO defects_app;
-- A set-returning SQL function inlined into a local query reaches a distributed table only
-- while planned: refused instead of reading the coordinator's empty table.
CREATE FUNCTION oe_rows() RETURNS SETOF oe LANGUAGE sql STABLE AS $$SELECT * FROM defects.oe$$;
SELECT count(*) FROM oe_rows();
CREATE FUNCTION oe_rows_v() RETURNS SETOF oe LANGUAGE sql VOLATILE AS $$SELECT * FROM defects.oe$$;
SELECT count(*) FROM oe_rows_v();

-- 7. Row-level security goes to the shards with the table (pg_test rls.sql has the rest).
CREATE TABLE rls_t (tenant_id int, secret text);
ALTER TABLE rls_t ENABLE ROW LEVEL SECURITY;
CREATE POLICY rls_p ON rls_t USING (tenant_id = 5);
SELECT create_distributed_table('rls_t', 'tenant_id', shard_count => 4);
ALTER TABLE rls_t FORCE ROW LEVEL SECURITY;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(string_agg(DISTINCT c.relrowsecurity || ' ' || c.relforcerowsecurity || ' ' || p.polname, ','), '-')
    FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relname ~ '^rls_t_[0-9]+$'$$);

-- 8. citus.node_conninfo may hold a password: superusers only.
SET ROLE defects_app;
SHOW citus.node_conninfo;
SELECT count(*) FROM pg_settings WHERE name = 'citus.node_conninfo';
RESET ROLE;
SHOW citus.node_conninfo;

-- 9. A query left with no table once its subqueries ran first.
SELECT (SELECT now()) = (SELECT max(now()) FROM oe) AS same;
SELECT (SELECT max(id) FROM oe) > 50 AS big, (SELECT count(*) FROM om) AS n;
PREPARE tl(int) AS SELECT (SELECT max(id) FROM oe WHERE tenant_id = $1);
EXECUTE tl(3);

-- 10. Subqueries PostgreSQL proves empty are not run.
CREATE TABLE d1 (k int, v int);
SELECT create_distributed_table('d1', 'k', shard_count => 4);
INSERT INTO d1 SELECT i, i % 5 FROM generate_series(1, 20) i;
SELECT * FROM (SELECT * FROM d1 WHERE k = 1 UNION SELECT * FROM d1 WHERE k = 2 AND 1 = 0) u WHERE false;
WITH a AS MATERIALIZED (SELECT k FROM d1 WHERE v = 3), b AS MATERIALIZED (SELECT k FROM d1 WHERE v = 4)
SELECT count(*) FROM a JOIN b USING (k) WHERE false;

-- 11. Column names that are the aliases Tessera's own SQL uses.
CREATE TABLE "t" (id int, t timestamp, "T" text, row_to_json int);
INSERT INTO "t" VALUES (1, '2026-01-02 03:04:05', 'x', 7);
SELECT create_distributed_table('"t"', 'id', shard_count => 2);
SELECT id, t, "T", row_to_json FROM "t";
CREATE TABLE tr (id int, t timestamp);
INSERT INTO tr VALUES (1, '2026-01-02 03:04:05');
SELECT create_reference_table('tr');
SELECT * FROM tr;
SELECT undistribute_table('"t"');
SELECT id, t, "T", row_to_json FROM "t";

-- 12. Set-returning functions in a VALUES row.
CREATE TABLE d_ref (id int, name text);
SELECT create_reference_table('d_ref');
INSERT INTO d_ref (id, name) VALUES (generate_series(1, 3), 'x');
SELECT * FROM d_ref ORDER BY id;
INSERT INTO d1 (k, v) VALUES (generate_series(100, 102), 7);
SELECT * FROM d1 WHERE k >= 100 ORDER BY k;

-- 13. Materialized views, CREATE TABLE AS and SELECT INTO over distributed tables.
CREATE MATERIALIZED VIEW mv AS SELECT v, count(*) AS n FROM d1 GROUP BY v WITH NO DATA;
REFRESH MATERIALIZED VIEW mv;
SELECT * FROM mv ORDER BY v;
CREATE MATERIALIZED VIEW mv2 AS SELECT k, v FROM d1 WHERE k = 5;
REFRESH MATERIALIZED VIEW mv2;
SELECT * FROM mv2;
CREATE TABLE ctas AS SELECT v, count(*) AS n FROM d1 GROUP BY v;
SELECT * FROM ctas ORDER BY v;
SELECT * INTO sinto FROM d1 WHERE v = 2;
SELECT count(*) FROM sinto;

-- 14. Data-modifying WITH queries run first, once and to the end, in the transaction.
CREATE TABLE d2 (k int, v int);
SELECT create_distributed_table('d2', 'k', colocate_with => 'd1');
WITH ins AS (INSERT INTO d2 SELECT k + 1000, v FROM d1 WHERE v = 0 RETURNING *) SELECT count(*), sum(k) FROM ins;
WITH src AS (SELECT k, v FROM d1 WHERE v = 1), ins AS (INSERT INTO d2 SELECT * FROM src RETURNING *)
SELECT count(*), sum(k) FROM ins;
SELECT count(*), sum(k) FROM d2;
WITH moved AS (DELETE FROM d2 WHERE v = 1 RETURNING *) INSERT INTO d1 SELECT k + 5000, v FROM moved;
SELECT count(*) FROM d2 WHERE v = 1;
SELECT k FROM d1 WHERE k > 5000 ORDER BY k;
-- Run even when nothing reads it.
WITH d AS (DELETE FROM d1 WHERE k > 5000 RETURNING *) SELECT 1 AS one;
SELECT count(*) FROM d1 WHERE k > 5000;
-- Two in a chain, the second reading the first's rows.
WITH a AS (INSERT INTO d2 VALUES (1, 1), (2, 2) RETURNING *), b AS (UPDATE d1 SET v = d1.v + 100 FROM a WHERE d1.k = a.k RETURNING d1.k, d1.v)
SELECT * FROM b ORDER BY k;
-- Rolled back with the transaction.
BEGIN;
WITH ins AS (INSERT INTO d2 VALUES (3, 3) RETURNING *) SELECT count(*) FROM ins;
ROLLBACK;
SELECT count(*) FROM d2 WHERE k = 3;
EXPLAIN (COSTS OFF) WITH ins AS (INSERT INTO d2 SELECT k, v FROM d1 WHERE v = 2 RETURNING *) SELECT count(*) FROM ins;
-- A later part reading the changed table would see the change: refused.
WITH d AS (DELETE FROM d1 WHERE k > 1000 RETURNING *) SELECT count(*) FROM d1;
SET plan_cache_mode = force_generic_plan;
PREPARE w(int) AS WITH ins AS (INSERT INTO d2 VALUES ($1, $1) RETURNING *) SELECT * FROM ins;
EXECUTE w(7);
EXECUTE w(8);
RESET plan_cache_mode;
SELECT k, v FROM d2 WHERE k IN (7, 8) ORDER BY k;

-- Found in review.
-- Rows travel back in ISO form whatever the session's DateStyle: a zone abbreviation would
-- read back as another zone.
SET datestyle = 'SQL, DMY';
SET timezone = 'Asia/Shanghai';
SELECT ts FROM dd WHERE id = 1;
SELECT ts::text FROM dd WHERE id = 1;
SET datestyle = 'Postgres, DMY';
SET timezone = 'Asia/Kolkata';
SELECT ts FROM dd WHERE id = 1;
SELECT d::text, to_char(d, 'DD Mon YYYY') FROM dd WHERE id = 1;
RESET datestyle;
RESET timezone;
-- A distributed table cannot become a partition or child of a local table.
CREATE TABLE parted (tenant_id int, id int) PARTITION BY RANGE (tenant_id);
ALTER TABLE parted ATTACH PARTITION oe FOR VALUES FROM (0) TO (10);
CREATE TABLE inh_parent (tenant_id int, id int);
ALTER TABLE oe INHERIT inh_parent;
CREATE TABLE inh_child () INHERITS (inh_parent);
SELECT create_distributed_table('inh_parent', 'tenant_id');
SELECT create_distributed_table('inh_child', 'tenant_id');
CREATE TABLE part1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
SELECT create_distributed_table('part1', 'tenant_id');
-- A role that is not a superuser runs data-modifying WITH queries and reads their rows.
GRANT SELECT, INSERT ON d2 TO defects_app;
SET ROLE defects_app;
WITH ins AS (INSERT INTO d2 VALUES (40, 40), (41, 41) RETURNING *) SELECT count(*), sum(k) FROM ins;
SELECT count(*) FROM tessera_cte_results(1) AS r(k int, v int);
RESET ROLE;
-- Tables changed through a cascading foreign key, and functions that could read them.
CREATE TABLE fk_p (k int PRIMARY KEY);
CREATE TABLE fk_c (k int REFERENCES fk_p ON DELETE CASCADE, n int);
SELECT create_distributed_table('fk_p', 'k', shard_count => 4);
SELECT create_distributed_table('fk_c', 'k', colocate_with => 'fk_p');
INSERT INTO fk_p VALUES (1), (2);
INSERT INTO fk_c VALUES (1, 1), (1, 2), (2, 3);
WITH d AS (DELETE FROM fk_p WHERE k = 1 RETURNING *) SELECT count(*) FROM fk_c WHERE k = 1;
CREATE FUNCTION cnt_p() RETURNS bigint LANGUAGE sql STABLE AS $$SELECT count(*) FROM defects.fk_p$$;
WITH d AS (DELETE FROM fk_p WHERE k = 2 RETURNING *) SELECT cnt_p();
SELECT count(*) FROM fk_p;
-- What is left once the subqueries ran first is evaluated on the coordinator, where its
-- functions, sequences and settings are.
CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql IMMUTABLE AS $$SELECT $1 * 2$$;
CREATE SEQUENCE coord_seq;
SELECT twice((SELECT max(id) FROM oe));
SELECT nextval('coord_seq') AS one, (SELECT max(id) FROM oe) AS max;
SELECT set_config('defects.x', 'y', false), (SELECT count(*) FROM oe) AS n;
SHOW defects.x;
-- The same stable expression is one parameter wherever it appears.
SELECT ts < now() - interval '1 day' AS old, count(*) FROM dd
 GROUP BY ts < now() - interval '1 day' HAVING ts < now() - interval '1 day' OR count(*) > 0 ORDER BY 1;
-- INSERT ... SELECT into a table with a serial column: the coordinator's sequence numbers it.
CREATE TABLE ser (tenant_id int, n serial, b text);
SELECT create_distributed_table('ser', 'tenant_id', colocate_with => 'src');
INSERT INTO ser (tenant_id, b) SELECT tenant_id, b FROM src;
SELECT tenant_id, b, n IN (1, 2) AS numbered FROM ser ORDER BY tenant_id;
SELECT count(DISTINCT n) FROM ser;
-- DDL is read on the workers as the session reads it.
SET datestyle = 'SQL, DMY';
ALTER TABLE dd ADD COLUMN d2 date DEFAULT '02/01/2026';
RESET datestyle;
SELECT DISTINCT d2 FROM dd;
INSERT INTO dd (id) VALUES (3);
SELECT id, d2 FROM dd ORDER BY id;
-- A GRANT inside CREATE SCHEMA would send the whole CREATE SCHEMA to the workers.
CREATE SCHEMA defects_s GRANT SELECT ON defects.oe TO defects_app;
-- An aggregate of an extension's type combines across shards through its own combine
-- function (pgvector's avg(vector)).
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE vec (id int, e vector(2));
SELECT create_distributed_table('vec', 'id', shard_count => 2);
INSERT INTO vec VALUES (1, '[1,2]'), (2, '[3,4]');
SELECT avg(e) FROM vec;
SELECT avg(e) FROM vec WHERE id = 1;
-- Floats printed as text on the workers follow extra_float_digits, whole rows included.
SET extra_float_digits = 0;
SELECT f::text, row_to_json(dd.*)->>'f' AS json_f FROM dd WHERE id = 1;
RESET extra_float_digits;

RESET search_path;
DROP SCHEMA defects CASCADE;
DROP SCHEMA defects_other CASCADE;
DROP OWNED BY defects_app;
DROP ROLE defects_app;
