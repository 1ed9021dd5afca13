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
-- Privileges, as PostgreSQL's COPY checks them: INSERT on the table (and USAGE on the
-- sequence a default advances); a server file needs pg_read_server_files. The rows stream to
-- the shards, so no TEMPORARY privilege is needed, except by a COPY with a WHERE clause,
-- which stages its rows on the coordinator and says so.
CREATE ROLE copy_notemp LOGIN;
GRANT USAGE ON SCHEMA cp TO copy_notemp;
GRANT INSERT ON cp.items TO copy_notemp;
GRANT USAGE ON SEQUENCE cp.items_id_seq TO copy_notemp;
REVOKE TEMPORARY ON DATABASE postgres FROM PUBLIC;
SET ROLE copy_notemp;
COPY cp.items (tenant, v) FROM STDIN;
30	thirty
\.
COPY cp.kinds FROM STDIN;
31	thirty-one
\.
COPY cp.items (tenant, v) FROM STDIN WHERE tenant > 0;
32	thirty-two
\.
COPY cp.items (tenant, v) FROM '/tmp/tessera_copy_test.bin' WITH (FORMAT binary);
RESET ROLE;
SELECT tenant, v FROM cp.items WHERE tenant >= 30 AND tenant < 100 ORDER BY tenant;
GRANT TEMPORARY ON DATABASE postgres TO PUBLIC;
DROP OWNED BY copy_notemp;
DROP ROLE copy_notemp;
-- Quoted and unicode names.
SET ROLE copy_app;
CREATE TABLE cp."Zähler ""q""" ("Wert ü" int NOT NULL, "x""y" text DEFAULT 'dflt');
SELECT create_distributed_table('cp."Zähler ""q"""', 'Wert ü', shard_count => 3);
COPY cp."Zähler ""q""" ("Wert ü") FROM STDIN;
1
2
3
\.
COPY cp."Zähler ""q""" FROM STDIN WITH (FORMAT csv);
4,"tab	and ""quote"""
\.
SELECT * FROM cp."Zähler ""q""" ORDER BY 1;
-- A row without a distribution value is refused, on its line.
COPY cp."Zähler ""q""" ("x""y") FROM STDIN;
nothing
\.
RESET ROLE;
-- Many batches: several megabytes of rows go out to the shards while the next ones are read.
-- The same file into a plain table gives the same rows.
CREATE TABLE cp.big (id bigint PRIMARY KEY, tenant int, v text, n numeric);
SELECT create_distributed_table('cp.big', 'id', shard_count => 8);
CREATE TABLE cp.big_local (LIKE cp.big);
COPY (SELECT i, i % 100, repeat(md5(i::text), 2), i / 7.0 FROM generate_series(1, 150000) i)
  TO '/tmp/tessera_copy_big.csv' WITH (FORMAT csv);
COPY cp.big FROM '/tmp/tessera_copy_big.csv' WITH (FORMAT csv);
COPY cp.big_local FROM '/tmp/tessera_copy_big.csv' WITH (FORMAT csv);
SELECT (SELECT count(*) FROM cp.big) AS rows,
       (SELECT sum(hashtext(id || ',' || tenant || ',' || v || ',' || n)::bigint) FROM cp.big)
     = (SELECT sum(hashtext(id || ',' || tenant || ',' || v || ',' || n)::bigint) FROM cp.big_local) AS same_rows;
-- Bad input on the last of 150000 lines (13 MB), after batches went out: COPY's error with
-- its line, and nothing of that COPY is left on any shard.
COPY (SELECT i + 1000000, i % 100, repeat(md5(i::text), 2),
             CASE WHEN i = 150000 THEN 'not a number' ELSE '1' END
        FROM generate_series(1, 150000) i)
  TO '/tmp/tessera_copy_bad.csv' WITH (FORMAT csv);
COPY cp.big FROM '/tmp/tessera_copy_bad.csv' WITH (FORMAT csv);
SELECT count(*) FROM cp.big;
-- The same inside a savepoint, on nodes the transaction first uses there: rolled back to
-- it, the transaction goes on and commits what it wrote before and after, and nothing of
-- the COPY (straight to COMMIT, or with more work in between).
BEGIN;
INSERT INTO cp.big VALUES (0, 0, 'before', 0);
SAVEPOINT s;
COPY cp.big FROM '/tmp/tessera_copy_bad.csv' WITH (FORMAT csv);
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT count(*), min(id), max(id) FROM cp.big;
BEGIN;
SAVEPOINT s;
COPY cp.big FROM '/tmp/tessera_copy_bad.csv' WITH (FORMAT csv);
ROLLBACK TO SAVEPOINT s;
INSERT INTO cp.big VALUES (-1, 1, 'after', 0);
SELECT count(*) FROM cp.big;
COMMIT;
SELECT count(*), min(id), max(id) FROM cp.big;
-- In a PL/pgSQL block that catches the error.
DO $$
BEGIN
  BEGIN
    COPY cp.big FROM '/tmp/tessera_copy_bad.csv' WITH (FORMAT csv);
  EXCEPTION WHEN invalid_text_representation THEN
    RAISE NOTICE 'caught: %', SQLERRM;
  END;
  INSERT INTO cp.big VALUES (-2, 2, 'after the block', 0);
END $$;
SELECT count(*), min(id), max(id) FROM cp.big;
-- PREPARE TRANSACTION after such a savepoint is refused, and nothing is left behind.
BEGIN;
SAVEPOINT s;
COPY cp.big FROM '/tmp/tessera_copy_bad.csv' WITH (FORMAT csv);
ROLLBACK TO SAVEPOINT s;
PREPARE TRANSACTION 'tessera_copy_test';
SELECT count(*) FROM cp.big;
SELECT nodeport, result FROM run_command_on_workers($$SELECT count(*) FROM pg_prepared_xacts$$) ORDER BY nodeport;
-- statement_timeout stops a COPY while it reads its rows; nothing is loaded.
CREATE TABLE cp.timed (LIKE cp.big);
SELECT create_distributed_table('cp.timed', 'id', shard_count => 4);
SET statement_timeout = '50ms';
\set VERBOSITY terse
COPY cp.timed FROM '/tmp/tessera_copy_big.csv' WITH (FORMAT csv);
\set VERBOSITY default
RESET statement_timeout;
SELECT count(*) FROM cp.timed;
-- A read-only transaction, a server program for a role without pg_execute_server_program.
BEGIN READ ONLY;
COPY cp.timed FROM STDIN;
\.
ROLLBACK;
SET ROLE copy_app;
COPY cp.items (tenant, v) FROM PROGRAM 'echo 1';
RESET ROLE;
-- The session's DateStyle and IntervalStyle read the input (as for a plain table), and the
-- shards get values they read the same; a column dropped before the table was distributed
-- is not sent.
CREATE TABLE cp.styled (id int, gone int, d date, ts timestamptz, iv interval, f float8);
ALTER TABLE cp.styled DROP COLUMN gone;
CREATE TABLE cp.styled_local (LIKE cp.styled);
SELECT create_distributed_table('cp.styled', 'id', shard_count => 2);
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = sql_standard;
COPY cp.styled FROM STDIN WITH (FORMAT csv);
1,03/04/2026,03/04/2026 10:00:00+02,1 day 2:00:00,0.1
2,31/12/2025,31/12/2025 23:59:59.5+00,-1-2 +3 -4:05:06,1e-300
\.
COPY cp.styled_local FROM STDIN WITH (FORMAT csv);
1,03/04/2026,03/04/2026 10:00:00+02,1 day 2:00:00,0.1
2,31/12/2025,31/12/2025 23:59:59.5+00,-1-2 +3 -4:05:06,1e-300
\.
RESET DateStyle;
RESET IntervalStyle;
SELECT * FROM cp.styled ORDER BY id;
SELECT (SELECT string_agg(concat_ws('|', id, d, ts, iv, f), ';' ORDER BY id) FROM cp.styled)
     = (SELECT string_agg(concat_ws('|', id, d, ts, iv, f), ';' ORDER BY id) FROM cp.styled_local) AS same_values;
-- A domain whose CHECK reads a distributed table on the coordinator runs as the input is
-- read, inside the transaction: each batch waits for the one before, so the check's query
-- finds its node's connection free. (On a worker, where the table is its shards, the check
-- passes.)
CREATE FUNCTION cp.known_kind(t text) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
DECLARE found boolean;
BEGIN
  IF to_regclass('cp.kinds') IS NULL THEN
    RETURN true;
  END IF;
  EXECUTE 'SELECT EXISTS (SELECT 1 FROM cp.kinds WHERE name = $1)' INTO found USING t;
  RETURN found;
END $$;
CREATE DOMAIN cp.kind_name_d AS text CHECK (cp.known_kind(VALUE));
CREATE TABLE cp.checked (id bigint, v text, kind cp.kind_name_d);
SELECT create_distributed_table('cp.checked', 'id', shard_count => 4);
COPY (SELECT i, repeat(md5(i::text), 50), CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END FROM generate_series(1, 3000) i)
  TO '/tmp/tessera_copy_checked.csv' WITH (FORMAT csv);
BEGIN;
SELECT count(*) FROM cp.kinds;
COPY cp.checked FROM '/tmp/tessera_copy_checked.csv' WITH (FORMAT csv);
COMMIT;
SELECT count(*), count(DISTINCT kind), sum(length(v)) FROM cp.checked;
-- A default that reads a distributed table runs while the COPY's batches load, inside the
-- transaction: then each batch waits for the one before, and the default's query finds its
-- node's connection free.
CREATE FUNCTION cp.kind_name() RETURNS text LANGUAGE sql STABLE AS $$ SELECT name FROM cp.kinds WHERE k = 1 $$;
CREATE TABLE cp.wide (id bigint, tenant int, v text, n numeric, kind text DEFAULT cp.kind_name());
SELECT create_distributed_table('cp.wide', 'id', shard_count => 4);
COPY (SELECT i, i % 100, repeat(md5(i::text), 40), 1 FROM generate_series(1, 4000) i)
  TO '/tmp/tessera_copy_wide.csv' WITH (FORMAT csv);
BEGIN;
SELECT count(*) FROM cp.kinds;
COPY cp.wide (id, tenant, v, n) FROM '/tmp/tessera_copy_wide.csv' WITH (FORMAT csv);
COMMIT;
SELECT count(*), count(DISTINCT kind), min(kind), sum(length(v)) FROM cp.wide;
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
-- A COPY whose rows all go to one node commits there one-phase (the sequence values it took
-- are the coordinator's own business): it leaves no pg_dist_transaction record. (In a new session,
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
