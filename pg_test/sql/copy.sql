-- COPY into distributed and reference tables, as an application role: PostgreSQL's COPY
-- parses every format and option once on the coordinator (its errors name the line and
-- column), defaults and sequences are evaluated there, and the rows reach their shards in the
-- user's transaction. The same COPY into a plain table gives the same rows.
CREATE ROLE copy_app LOGIN;
CREATE SCHEMA cp AUTHORIZATION copy_app;
SET ROLE copy_app;
SET search_path = cp;
CREATE TABLE items (id bigserial, tenant int NOT NULL, v text, n numeric DEFAULT 7, arr int[],
                    at timestamptz DEFAULT '2026-01-01 00:00+00', PRIMARY KEY (tenant, id));
CREATE TABLE local_items (LIKE items INCLUDING DEFAULTS);
SELECT create_distributed_table('items', 'tenant', shard_count => 4);
-- Text format with NULLs, escapes and array bounds.
COPY items (tenant, v, arr) FROM STDIN;
1	one	{1,2}
2	tab\there	[0:1]={3,4}
3	\N	{}
\.
-- CSV with a header, quotes and FORCE_NULL.
COPY items (tenant, v, n) FROM STDIN WITH (FORMAT csv, HEADER true, FORCE_NULL (n));
tenant,v,n
4,"four, with comma",""
5,five,1.5
\.
-- WHERE keeps some rows.
COPY items (tenant, v) FROM STDIN WITH (FORMAT csv) WHERE tenant > 6;
6,six
7,seven
\.
SELECT id, tenant, v, n, arr, array_lower(arr, 1) AS lower, at FROM items ORDER BY tenant;
-- Bad input: COPY's own error, with its line and column; nothing is loaded.
COPY items (tenant, v) FROM STDIN;
8	eight
nine	9
\.
COPY items (tenant, nosuch) FROM STDIN;
\.
SELECT count(*) FROM items;
-- A violated constraint on a shard: nothing is loaded either.
COPY items (id, tenant, v) FROM STDIN;
100	1	a
100	1	b
\.
SELECT count(*) FROM items;
-- Inside a transaction: rolled back with it, or committed with it.
BEGIN;
COPY items (tenant, v) FROM STDIN;
10	ten
11	eleven
\.
SELECT count(*) FROM items;
ROLLBACK;
BEGIN;
COPY items (tenant, v) FROM STDIN;
12	twelve
\.
UPDATE items SET v = v || '!' WHERE tenant = 12;
COMMIT;
SELECT tenant, v FROM items WHERE tenant >= 10 ORDER BY tenant;
-- COPY TO reads the shards back.
COPY (SELECT * FROM items ORDER BY tenant) TO STDOUT WITH (FORMAT csv);
-- Reference tables get every row on every placement.
CREATE TABLE kinds (k int PRIMARY KEY, name text);
SELECT create_reference_table('kinds');
COPY kinds FROM STDIN WITH (FORMAT csv);
1,a
2,b
\.
SELECT * FROM kinds ORDER BY k;
RESET ROLE;
SELECT nodeport, result FROM run_command_on_workers(
  format('SELECT count(*) FROM cp.%I', (SELECT shard_name::text FROM citus_shards WHERE table_name = 'cp.kinds'::regclass LIMIT 1)::regclass::text)) ORDER BY nodeport;
-- Binary format, through a file (the server's; a superuser's COPY).
COPY (SELECT tenant + 100, v, n, arr FROM cp.items ORDER BY tenant) TO '/tmp/tessera_copy_test.bin' WITH (FORMAT binary);
COPY cp.items (tenant, v, n, arr) FROM '/tmp/tessera_copy_test.bin' WITH (FORMAT binary);
COPY cp.local_items (tenant, v, n, arr) FROM '/tmp/tessera_copy_test.bin' WITH (FORMAT binary);
SELECT (SELECT string_agg(tenant || ':' || coalesce(v, '-') || ':' || coalesce(n::text, '-') || ':' || coalesce(arr::text, '-'), ' ' ORDER BY tenant)
          FROM cp.items WHERE tenant >= 100)
     = (SELECT string_agg(tenant || ':' || coalesce(v, '-') || ':' || coalesce(n::text, '-') || ':' || coalesce(arr::text, '-'), ' ' ORDER BY tenant)
          FROM cp.local_items) AS binary_round_trip;
-- As COPY into a plain table: a GENERATED ALWAYS identity column takes the values given; a
-- WHERE reads a column the list leaves to its default; a column twice is an error.
SET ROLE copy_app;
SET search_path = cp;
CREATE TABLE ids (id int GENERATED ALWAYS AS IDENTITY, t int NOT NULL, n int DEFAULT 5,
                  g int GENERATED ALWAYS AS (t * 2) STORED, PRIMARY KEY (t));
SELECT create_distributed_table('ids', 't', shard_count => 2);
COPY ids (id, t) FROM STDIN;
100	1
\.
COPY ids (t) FROM STDIN WHERE n = 5;
2
\.
COPY ids (t, n) FROM STDIN WHERE n = 5;
3	6
\.
COPY ids (t, t) FROM STDIN;
\.
SELECT id, t, n, g FROM ids ORDER BY t;
RESET ROLE;
-- A role that may not create temporary tables is told why.
CREATE ROLE copy_notemp LOGIN;
GRANT USAGE ON SCHEMA cp TO copy_notemp;
GRANT INSERT ON cp.items TO copy_notemp;
REVOKE TEMPORARY ON DATABASE postgres FROM PUBLIC;
SET ROLE copy_notemp;
COPY cp.items (tenant, v) FROM STDIN;
\.
RESET ROLE;
GRANT TEMPORARY ON DATABASE postgres TO PUBLIC;
DROP OWNED BY copy_notemp;
DROP ROLE copy_notemp;
-- A session's temporary table named like the target does not get in the way.
SET ROLE copy_app;
SET search_path = cp;
CREATE TEMP TABLE items (x int);
COPY cp.items (tenant, v) FROM STDIN;
20	twenty
\.
SELECT count(*) FROM cp.items WHERE tenant = 20;
DROP TABLE pg_temp.items;
RESET ROLE;
-- A COPY whose rows all go to one node commits there one-phase (its staging table is the
-- coordinator's own business): it leaves no pg_dist_transaction record. (In a new session,
-- which has no earlier records of its own to delete.)
\c -
SELECT count(*) AS records FROM pg_dist_transaction \gset
SET ROLE copy_app;
COPY cp.items (tenant, v) FROM STDIN;
30	one node
30	the same node
\.
RESET ROLE;
SELECT count(*) = :records AS one_phase FROM pg_dist_transaction;
-- A default that runs a utility statement of its own while COPY stages the rows: the rows
-- still reach the shards.
CREATE TABLE cp.nested (id int, v text);
SELECT create_distributed_table('cp.nested', 'id');
CREATE FUNCTION cp.nested_default() RETURNS text LANGUAGE plpgsql VOLATILE AS
$$ BEGIN EXECUTE 'CREATE TEMPORARY TABLE IF NOT EXISTS nested_side (x int)'; RETURN 'made'; END $$;
ALTER TABLE cp.nested ALTER COLUMN v SET DEFAULT cp.nested_default();
COPY cp.nested (id) FROM STDIN;
1
2
3
\.
SELECT id, v FROM cp.nested ORDER BY id;
DROP SCHEMA cp CASCADE;
DROP ROLE copy_app;
