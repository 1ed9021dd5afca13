-- The row mover: every operation that carries a table's rows (distributing a table with
-- rows, a schema's tables to another node, undistributing) sends them as COPY text. Rows of
-- every kind of type come back exactly, under a session whose settings print values
-- differently from the nodes' defaults; a failure half-way leaves the table as it was.
CREATE ROLE mover_app LOGIN;
CREATE SCHEMA "Mövers";
GRANT ALL ON SCHEMA "Mövers" TO mover_app;
CREATE TYPE "Mövers".mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE "Mövers".pair AS (x int, label text);
CREATE DOMAIN "Mövers".positive AS int CHECK (VALUE > 0);
SET ROLE mover_app;
CREATE TABLE "Mövers"."Wëird ""rows""" (
  id bigint GENERATED ALWAYS AS IDENTITY,
  k int NOT NULL,
  gone int,
  t text,
  f float8,
  r real,
  ts timestamptz,
  d date,
  iv interval,
  a int[],
  rg int4range,
  m "Mövers".mood,
  c "Mövers".pair,
  p "Mövers".positive,
  b bytea,
  j jsonb,
  n numeric,
  twice int GENERATED ALWAYS AS (k * 2) STORED,
  PRIMARY KEY (k, id));
ALTER TABLE "Mövers"."Wëird ""rows""" DROP COLUMN gone;
INSERT INTO "Mövers"."Wëird ""rows""" (k, t, f, r, ts, d, iv, a, rg, m, c, p, b, j, n) VALUES
  (1, E'tab\there, newline\nthere, backslash \\ and \\N', 0.1 + 0.2, 1.1, '2026-02-01 10:00:00.123456+05:30',
   '0044-03-15 BC', '-1 day +02:03:04.5', '[0:2]={1,NULL,3}', '[3,7)', 'happy', ROW(1, 'a "quoted", (paren)'),
   7, '\x00ff5c0a', '{"a": [1, "x\ty"], "b": null}', 1e-30),
  (2, '', 'NaN', '-Infinity', 'infinity', '2026-12-31', '1 year 2 mons -3 days', '{}', 'empty', 'sad', ROW(NULL, NULL),
   1, '', '[]', 'NaN'),
  (3, 'ünïcødé ✓ 日本', 2.2250738585072014e-308, 3.4028235e38, '1999-12-31 23:59:59.999999-08', '2000-02-29',
   '-00:00:00.000001', '{{1,2},{3,4}}', '(,5]', 'ok', ROW(-1, ''), 2147483647, '\x', '"just a string"', -0.000),
  (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
-- (enough rows that every shard gets several batches and the readers several fetches)
INSERT INTO "Mövers"."Wëird ""rows""" (k, t, f) SELECT i, 'row ' || i || repeat('x', 600), i / 7.0 FROM generate_series(5, 30000) i;
-- The rows' text, printed under the defaults (the checksum every step compares).
CREATE FUNCTION "Mövers".rows_md5() RETURNS text LANGUAGE sql AS $$
  SELECT md5(string_agg(w::text, '|' ORDER BY w.k, w.id)) FROM "Mövers"."Wëird ""rows""" w $$;
SELECT "Mövers".rows_md5() AS original \gset
-- Distributing moves the rows into the shards, read and printed under settings that differ
-- from every node's.
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = 0;
SET bytea_output = 'escape';
-- (the statement's text in the client's encoding too: it names the table by its OID)
SELECT '"Mövers"."Wëird ""rows"""'::regclass::oid AS weird \gset
SET client_encoding = 'LATIN1';
SET client_min_messages = warning;
SELECT create_distributed_table(:weird::regclass, 'k', shard_count => 4);
RESET client_min_messages;
RESET client_encoding;
RESET DateStyle; RESET IntervalStyle; RESET extra_float_digits; RESET bytea_output;
SELECT "Mövers".rows_md5() = :'original' AS same_rows, count(*) FROM "Mövers"."Wëird ""rows""";
-- the identity keeps counting after the moved ids, the generated column is the shard's
INSERT INTO "Mövers"."Wëird ""rows""" (k, t) VALUES (3001, 'after') RETURNING id, twice;
SELECT k, twice, m, c, p, iv FROM "Mövers"."Wëird ""rows""" WHERE k <= 4 ORDER BY k;
SELECT "Mövers".rows_md5() AS distributed \gset
-- A failure half-way through undistributing (a row the local table refuses) leaves the table
-- distributed, with every row.
RESET ROLE;
CREATE FUNCTION "Mövers".refuse_2500() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.k = 2500 THEN RAISE EXCEPTION 'row % refused', NEW.k; END IF;
  RETURN NEW;
END $$;
SET citus.enable_unsafe_triggers = on;
CREATE TRIGGER refuse_2500 BEFORE INSERT ON "Mövers"."Wëird ""rows""" FOR EACH ROW EXECUTE FUNCTION "Mövers".refuse_2500();
RESET citus.enable_unsafe_triggers;
SET ROLE mover_app;
SELECT undistribute_table('"Mövers"."Wëird ""rows"""');
SELECT count(*) AS distributed_tables FROM pg_dist_partition WHERE logicalrelid = '"Mövers"."Wëird ""rows"""'::regclass;
SELECT "Mövers".rows_md5() = :'distributed' AS same_rows;
RESET ROLE;
DROP TRIGGER refuse_2500 ON "Mövers"."Wëird ""rows""";
SET ROLE mover_app;
-- In a REPEATABLE READ transaction a node's snapshot may predate the lock: rows read from
-- another node would miss rows committed since, so that is refused.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT undistribute_table('"Mövers"."Wëird ""rows"""');
ROLLBACK;
-- Undistributing brings every row back, from the workers, into the local table.
SET DateStyle = 'Postgres, MDY';
SET IntervalStyle = 'iso_8601';
SET client_encoding = 'LATIN1';
SET client_min_messages = warning;
SELECT undistribute_table(:weird::regclass);
RESET client_min_messages;
RESET client_encoding;
RESET DateStyle; RESET IntervalStyle;
SELECT count(*) AS distributed_tables FROM pg_dist_partition WHERE logicalrelid = '"Mövers"."Wëird ""rows"""'::regclass;
SELECT "Mövers".rows_md5() = :'distributed' AS same_rows;
-- A distributed schema's tables move to another node with their rows.
RESET ROLE;
CREATE SCHEMA mover_tenant AUTHORIZATION mover_app;
SET ROLE mover_app;
CREATE TABLE mover_tenant.items AS SELECT * FROM "Mövers"."Wëird ""rows""";
CREATE FUNCTION mover_tenant.items_md5() RETURNS text LANGUAGE sql AS $$
  SELECT md5(string_agg(w::text, '|' ORDER BY w.k, w.id)) FROM mover_tenant.items w $$;
SELECT mover_tenant.items_md5() = :'distributed' AS same_rows;
RESET ROLE;
SELECT citus_schema_distribute('mover_tenant', node_name => '127.0.0.1', node_port => 9801);
SELECT mover_tenant.items_md5() = :'distributed' AS same_rows;
SET DateStyle = 'SQL, DMY';
SET extra_float_digits = 0;
SELECT citus_schema_move('mover_tenant', '127.0.0.1', 9803);
RESET DateStyle; RESET extra_float_digits;
SELECT nodeport FROM citus_schemas s JOIN pg_dist_node n ON n.groupid = (SELECT groupid FROM pg_dist_schema WHERE schemaid = 'mover_tenant'::regnamespace) WHERE s.schema_name = 'mover_tenant'::regnamespace;
SET ROLE mover_app;
SELECT mover_tenant.items_md5() = :'distributed' AS same_rows;
SELECT count(*) FROM mover_tenant.items;
RESET ROLE;
CALL citus_cleanup_orphaned_resources();
-- Row-level security that applies to the role moving the rows (the owner, with FORCE) would
-- hide rows from the move: refused, the table stays as it was; a role that bypasses it moves
-- them all.
SET ROLE mover_app;
CREATE TABLE "Mövers".forced (k int PRIMARY KEY, tenant int);
INSERT INTO "Mövers".forced SELECT i, i % 3 FROM generate_series(1, 30) i;
ALTER TABLE "Mövers".forced ENABLE ROW LEVEL SECURITY;
ALTER TABLE "Mövers".forced FORCE ROW LEVEL SECURITY;
CREATE POLICY one_tenant ON "Mövers".forced USING (tenant = 1);
SELECT count(*) AS visible FROM "Mövers".forced;
SELECT create_distributed_table('"Mövers".forced', 'k');
SELECT count(*) AS distributed_tables FROM pg_dist_partition WHERE logicalrelid = '"Mövers".forced'::regclass;
RESET ROLE;
SELECT create_distributed_table('"Mövers".forced', 'k');
SELECT count(*) AS all_rows FROM "Mövers".forced;
SET ROLE mover_app;
SELECT undistribute_table('"Mövers".forced');
RESET ROLE;
SELECT undistribute_table('"Mövers".forced');
SELECT count(*) AS all_rows FROM ONLY "Mövers".forced;
-- A row without a distribution value cannot be placed: refused, nothing moved.
SET ROLE mover_app;
CREATE TABLE "Mövers".nulls (k int, v text);
INSERT INTO "Mövers".nulls VALUES (1, 'a'), (NULL, 'b');
SELECT create_distributed_table('"Mövers".nulls', 'k');
SELECT count(*) AS local_rows FROM "Mövers".nulls;
RESET ROLE;
DROP SCHEMA mover_tenant CASCADE;
DROP SCHEMA "Mövers" CASCADE;
DROP ROLE mover_app;
