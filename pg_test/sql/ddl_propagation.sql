-- DDL propagation: extensions to every node, indexes and TRUNCATE to every shard, inside the
-- user's transaction; a node added later gets the extensions and the reference tables.

-- Removing a node first drops the old placements recorded for it in pg_dist_cleanup.
SELECT count(*) FROM run_command_on_workers('CREATE TABLE public.orphaned_102999 (id int)') WHERE success;
INSERT INTO pg_dist_cleanup (record_id, operation_id, object_type, object_name, node_group_id, policy_type)
  SELECT nextval('pg_dist_cleanup_recordid_seq'), nextval('pg_dist_operationid_seq'), 1, 'public.orphaned_102999', groupid, 2
    FROM pg_dist_node WHERE nodeport = 9804;
-- (one that cannot be dropped on a node that answers keeps the node: the removal is refused)
SELECT count(*) FROM run_command_on_workers('CREATE VIEW public.orphaned_view_102998 AS SELECT 1 AS one') WHERE success;
INSERT INTO pg_dist_cleanup (record_id, operation_id, object_type, object_name, node_group_id, policy_type)
  SELECT nextval('pg_dist_cleanup_recordid_seq'), nextval('pg_dist_operationid_seq'), 1, 'public.orphaned_view_102998', groupid, 2
    FROM pg_dist_node WHERE nodeport = 9804;
SELECT citus_remove_node('127.0.0.1', 9804);
SELECT count(*) FROM run_command_on_workers('DROP VIEW public.orphaned_view_102998') WHERE success;
-- (a database privilege revoked while the node is away does not stay on it)
CREATE ROLE stale_db_user;
GRANT CREATE ON DATABASE postgres TO stale_db_user;
-- A node added later: take worker 9804 out now (it holds nothing), add it back at the end.
SELECT citus_remove_node('127.0.0.1', 9804);
REVOKE CREATE ON DATABASE postgres FROM stale_db_user;
SELECT count(*) AS cleanup_records FROM pg_dist_cleanup;
SELECT count(*) FROM run_command_on_workers('DROP TABLE public.orphaned_102999') WHERE success;

-- CREATE EXTENSION on the coordinator creates it on every worker.
CREATE EXTENSION vector;
SELECT nodeport, result FROM run_command_on_workers($$SELECT extversion FROM pg_extension WHERE extname = 'vector'$$) ORDER BY nodeport;

CREATE TABLE docs (tenant_id bigint NOT NULL, doc_id bigint NOT NULL, title text, embedding vector(3),
                   PRIMARY KEY (tenant_id, doc_id));
INSERT INTO docs SELECT i % 50, i, 'doc ' || i, ARRAY[i % 7, i % 11, i % 13]::real[]::vector
FROM generate_series(1, 2000) i;
SELECT create_distributed_table('docs', 'tenant_id', shard_count => 12);

-- pgvector's HNSW index with its options, on every shard.
CREATE INDEX docs_embedding ON docs USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT count(*) || ' ' || string_agg(DISTINCT regexp_replace(pg_get_indexdef(indexrelid), '_[0-9]+', '_N', 'g'), '')
  FROM pg_index WHERE indexrelid::regclass::text LIKE 'docs_embedding%'$$) ORDER BY nodeport;
-- An unnamed index and a unique index that includes the distribution column.
CREATE INDEX ON docs (title);
CREATE UNIQUE INDEX docs_tenant_title ON docs (tenant_id, title);
SELECT sum(result::int) AS shard_indexes FROM run_command_on_workers($$
  SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname ~ '^docs_[0-9]+$'$$);
-- Refused: a unique index without the distribution column (CONCURRENTLY too, before the
-- coordinator's index is built).
CREATE UNIQUE INDEX docs_title_only ON docs (title);
CREATE UNIQUE INDEX CONCURRENTLY docs_title_only ON docs (title);
-- CONCURRENTLY: the coordinator's index, then each shard's outside a transaction block.
CREATE INDEX CONCURRENTLY docs_conc ON docs (doc_id);
SELECT sum(result::int) AS valid_shard_indexes FROM run_command_on_workers($$
  SELECT count(*) FROM pg_index WHERE indisvalid AND indexrelid::regclass::text LIKE 'docs_conc%'$$);
-- IF NOT EXISTS of an index that exists does nothing.
CREATE INDEX CONCURRENTLY IF NOT EXISTS docs_conc ON docs (title);
-- The distribution column as an INCLUDE column does not make a unique index unique on it.
CREATE UNIQUE INDEX docs_title_incl ON docs (title) INCLUDE (tenant_id);
CREATE UNIQUE INDEX CONCURRENTLY docs_title_incl ON docs (title) INCLUDE (tenant_id);
DROP INDEX CONCURRENTLY docs_conc;
SELECT count(*) FROM pg_indexes WHERE indexname IN ('docs_title_only', 'docs_conc');
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_class WHERE relname LIKE 'docs_conc%'$$);
-- In a transaction that rolls back, no shard index remains.
BEGIN;
CREATE INDEX docs_doc_id ON docs (doc_id);
ROLLBACK;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_class WHERE relname LIKE 'docs_doc_id%'$$);
-- A worker that fails fails the whole statement: nothing is left on the others or locally.
-- (Worker 9801 gets an index that clashes with the name its first shard's index will take.)
SELECT nodeport, success FROM run_command_on_workers($cmd$
  DO $d$ DECLARE r record; BEGIN
    IF current_setting('port') = '9801' THEN
      SELECT oid::regclass AS t, substring(relname from '[0-9]+$') AS id INTO r
        FROM pg_class WHERE relname ~ '^docs_[0-9]+$' ORDER BY relname LIMIT 1;
      EXECUTE format('CREATE INDEX %I ON %s (doc_id)', 'docs_clash_' || r.id, r.t);
    END IF;
  END $d$ $cmd$) ORDER BY nodeport;
CREATE INDEX docs_clash ON docs (title);
SELECT count(*) FROM pg_indexes WHERE indexname = 'docs_clash';
SELECT nodeport, result FROM run_command_on_workers($$SELECT count(*) FROM pg_class WHERE relname LIKE 'docs_clash%'$$) ORDER BY nodeport;
SELECT DISTINCT success FROM run_command_on_workers($cmd$
  DO $d$ DECLARE r record; BEGIN
    FOR r IN SELECT oid::regclass AS i FROM pg_class WHERE relname LIKE 'docs_clash%' LOOP
      EXECUTE format('DROP INDEX %s', r.i); END LOOP; END $d$ $cmd$);
-- DROP INDEX drops the shard indexes.
DROP INDEX docs_embedding;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_class WHERE relname LIKE 'docs_embedding%'$$);

-- ALTER TABLE: column forms run on every shard, in the transaction.
ALTER TABLE docs ADD COLUMN lang text DEFAULT 'en' NOT NULL, ADD COLUMN stars int;
ALTER TABLE ONLY public.docs ALTER COLUMN stars SET DEFAULT 0;
-- Constraints get the shard's name (<name>_<shardid>) on every shard.
ALTER TABLE docs ADD CONSTRAINT stars_range CHECK (stars BETWEEN 0 AND 5), ADD CONSTRAINT docs_u UNIQUE (tenant_id, doc_id);
ALTER TABLE docs DROP CONSTRAINT docs_pkey;
ALTER TABLE docs ADD PRIMARY KEY (tenant_id, doc_id);
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(DISTINCT regexp_replace(conname, '_[0-9]+$', '_<id>') || ' ' || pg_get_constraintdef(oid), ', ')
    FROM pg_constraint WHERE conrelid::regclass::text ~ '^docs_[0-9]+$'$$);
ALTER TABLE docs DROP CONSTRAINT docs_u, DROP CONSTRAINT IF EXISTS no_such_constraint;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) FROM pg_constraint WHERE conname ~ '^docs_u_[0-9]+$'$$);
ALTER TABLE docs ALTER COLUMN stars TYPE bigint;
ALTER TABLE docs RENAME COLUMN title TO headline;
ALTER TABLE docs DROP COLUMN lang;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(DISTINCT format('%s %s %s', a.attname, format_type(a.atttypid, a.atttypmod), coalesce(pg_get_expr(d.adbin, d.adrelid), '-')), ', ')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE c.relname ~ '^docs_[0-9]+$' AND a.attnum > 0 AND NOT a.attisdropped$$);
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) FROM pg_constraint WHERE conname ~ '^stars_range_[0-9]+$' AND conrelid::regclass::text ~ '^docs_[0-9]+$'$$);
-- A CHECK the shard rows violate fails the statement on the coordinator too.
BEGIN;
ALTER TABLE docs ADD CONSTRAINT no_rows CHECK (doc_id < 0);
ROLLBACK;
BEGIN;
ALTER TABLE docs ADD COLUMN gone int;
ROLLBACK;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_attribute WHERE attname = 'gone'$$);
-- Refused, with the table unchanged: the distribution column, serial columns, other forms.
ALTER TABLE docs DROP COLUMN tenant_id;
ALTER TABLE docs ALTER COLUMN tenant_id TYPE numeric;
ALTER TABLE docs ADD COLUMN seq bigserial;
ALTER TABLE docs ADD CONSTRAINT docs_u2 UNIQUE (doc_id);
ALTER TABLE docs ADD CONSTRAINT docs_fk FOREIGN KEY (tenant_id) REFERENCES docs (tenant_id);
ALTER TABLE docs ADD COLUMN x int, ADD CONSTRAINT x_pos CHECK (x > 0);
-- (RENAME and storage parameters reach the shards: pg_test table_ddl.sql.)
ALTER TABLE docs OF some_type;
SELECT count(*) AS local_columns FROM pg_attribute WHERE attrelid = 'docs'::regclass AND attnum > 0 AND NOT attisdropped;

-- TRUNCATE empties every shard.
SELECT sum(result::bigint) AS before_truncate FROM run_command_on_workers($$
  SELECT coalesce(sum((xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', oid::regclass), false, true, '')))[1]::text::bigint), 0)
  FROM pg_class WHERE relname ~ '^docs_[0-9]+$'$$);
TRUNCATE docs;
SELECT sum(result::bigint) AS after_truncate FROM run_command_on_workers($$
  SELECT coalesce(sum((xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', oid::regclass), false, true, '')))[1]::text::bigint), 0)
  FROM pg_class WHERE relname ~ '^docs_[0-9]+$'$$);

-- A node added later gets the coordinator's extensions and a copy of every reference table.
CREATE TABLE plans (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO plans VALUES (1, 'free'), (2, 'pro');
SELECT create_reference_table('plans');
-- CONCURRENTLY on a reference table: every placement (the coordinator's, if it has one, last).
CREATE INDEX CONCURRENTLY plans_name ON plans (name);
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) FROM pg_index WHERE indisvalid AND indexrelid::regclass::text LIKE 'plans_name%'$$);
DROP INDEX CONCURRENTLY plans_name;
-- ... and every role, with its password verifier and memberships, and the schemas, types
-- and functions made before it joined.
CREATE ROLE late_group NOLOGIN;
CREATE ROLE late_user LOGIN PASSWORD 'late pass' IN ROLE late_group;
CREATE SCHEMA "Late S";
CREATE TYPE "Late S".colour AS ENUM ('red', 'green');
CREATE FUNCTION "Late S".is_red("Late S".colour) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $1 = 'red' $$;
CREATE DOMAIN "Late S".small AS int CHECK (VALUE < 100);
CREATE TYPE "Late S".pair AS (a "Late S".colour, b "Late S".small);
CREATE AGGREGATE "Late S".total("Late S".small) (SFUNC = int4pl, STYPE = int, COMBINEFUNC = int4pl, INITCOND = '0');
-- (an owner and privileges of their own; a domain constraint on a function made after it)
CREATE FUNCTION "Late S".secret() RETURNS text LANGUAGE sql SECURITY DEFINER AS 'SELECT current_user::text';
ALTER FUNCTION "Late S".secret() OWNER TO late_user;
REVOKE EXECUTE ON FUNCTION "Late S".secret() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "Late S".secret() TO late_group;
CREATE FUNCTION "Late S".even(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 % 2 = 0';
ALTER DOMAIN "Late S".small ADD CONSTRAINT small_even CHECK ("Late S".even(VALUE));
-- (a range type, a collation, an operator, a text search dictionary and configuration)
CREATE TYPE "Late S".span AS RANGE (SUBTYPE = int4, MULTIRANGE_TYPE_NAME = "Late S".spans);
CREATE COLLATION "Late S".nocase (PROVIDER = icu, LOCALE = 'und-u-ks-level2', DETERMINISTIC = false);
CREATE FUNCTION "Late S".near(int, int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT abs($1 - $2) < 2';
CREATE OPERATOR "Late S".~~~ (FUNCTION = "Late S".near, LEFTARG = int, RIGHTARG = int, COMMUTATOR = OPERATOR("Late S".~~~));
CREATE TEXT SEARCH DICTIONARY "Late S".simple_stop (TEMPLATE = simple, STOPWORDS = english);
CREATE TEXT SEARCH CONFIGURATION "Late S".late (COPY = english);
ALTER TEXT SEARCH CONFIGURATION "Late S".late ALTER MAPPING FOR asciiword WITH "Late S".simple_stop;
-- (default privileges: a schema's, and a global one that takes a built-in default away)
ALTER DEFAULT PRIVILEGES FOR ROLE late_user IN SCHEMA "Late S" GRANT SELECT ON TABLES TO late_group;
ALTER DEFAULT PRIVILEGES FOR ROLE late_user REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
-- (database privileges: a grant to a role, one with the grant option, a default PUBLIC lost)
GRANT CREATE ON DATABASE postgres TO late_user;
GRANT CONNECT, TEMPORARY ON DATABASE postgres TO late_group WITH GRANT OPTION;
-- (and one granted on through that grant option: made by the same grantor on the new node)
CREATE ROLE late_friend;
SET ROLE late_user;
GRANT CONNECT ON DATABASE postgres TO late_friend;
RESET ROLE;
REVOKE TEMPORARY ON DATABASE postgres FROM PUBLIC;
-- (a reference table's rows of every kind, copied to the new node from the coordinator's
-- placement, come back exactly, under a session that prints values differently)
CREATE TABLE late_ref (id int PRIMARY KEY, t text, f float8, ts timestamptz, iv interval, a int[], b bytea);
INSERT INTO late_ref VALUES (1, E'tab\t nl\n bs\\ \\N ✓', 0.1 + 0.2, '2026-02-01 10:00:00.123456+05:30',
  '-1 day +02:03:04.5', '[0:1]={1,NULL}', '\x00ff'), (2, NULL, 'NaN', '0044-03-15 BC', NULL, '{}', NULL);
SELECT result AS late_ref_md5 FROM run_command_on_all_nodes($$
  SELECT md5(string_agg(r::text, '|' ORDER BY id)) FROM public.late_ref r$$) WHERE success \gset
SELECT create_reference_table('late_ref');
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = 0;
SELECT citus_add_node('127.0.0.1', 9804) > 0 AS added;
RESET DateStyle; RESET IntervalStyle; RESET extra_float_digits;
SELECT count(*) AS placements, bool_and(result = :'late_ref_md5') AS same_rows FROM run_command_on_all_nodes($$
  SELECT (xpath('/row/m/text()', query_to_xml(format('SELECT md5(string_agg(r::text, ''|'' ORDER BY id)) AS m FROM %s r', c.oid::regclass), false, true, '')))[1]::text
    FROM pg_class c WHERE c.relname ~ '^late_ref_[0-9]+$'$$);
SELECT nodeport, result FROM run_command_on_workers($$SELECT to_regclass('public.orphaned_102999') IS NULL$$) ORDER BY nodeport;
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT string_agg(pg_get_userbyid(a.grantor) || '>' || pg_get_userbyid(a.grantee) || ':' || a.privilege_type, ' ')
    FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database() AND a.grantor <> d.datdba$$) ORDER BY nodeport;
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT string_agg(x, ' ' ORDER BY x) FROM (
    SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END || ':' || a.privilege_type
           || CASE WHEN a.is_grantable THEN '*' ELSE '' END AS x
      FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database() AND a.grantee <> d.datdba) s$$)
 ORDER BY nodeport;
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT int4range(1, 5)::text::"Late S".span::text || ' ' || ('A' = 'a' COLLATE "Late S".nocase) || ' ' || (3 OPERATOR("Late S".~~~) 4)
         || ' ' || to_tsvector('"Late S".late', 'the running dogs')::text$$) ORDER BY nodeport;
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT string_agg(d.defaclobjtype::text || ':' || coalesce(n.nspname, '-') || ':' || d.defaclacl::text, ' ' ORDER BY d.defaclobjtype)
    FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
   WHERE d.defaclrole = 'late_user'::regrole$$) ORDER BY nodeport;
ALTER DEFAULT PRIVILEGES FOR ROLE late_user GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT pg_get_userbyid(proowner) || ' ' || array_to_string(proacl, ',') FROM pg_proc WHERE proname = 'secret'$$) ORDER BY nodeport;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE contypid = '"Late S".small'::regtype$$);
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT string_agg(x, ' ' ORDER BY x) FROM (
    SELECT t.typname::text AS x FROM pg_type t WHERE t.typnamespace = '"Late S"'::regnamespace AND t.typname IN ('colour', 'small', 'pair')
    UNION ALL SELECT proname FROM pg_proc WHERE pronamespace = '"Late S"'::regnamespace) s$$) ORDER BY nodeport;
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT "Late S".is_red('red') || ' ' || "Late S".total((2 * x)::"Late S".small) || ' ' || ROW('green', 4)::"Late S".pair
    FROM generate_series(1, 3) x$$) ORDER BY nodeport;
DROP SCHEMA "Late S" CASCADE;
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT (SELECT rolpassword FROM pg_authid WHERE rolname = 'late_user') IS NOT NULL AND
         pg_has_role('late_user', 'late_group', 'MEMBER')$$) ORDER BY nodeport;
SELECT DISTINCT result = (SELECT rolpassword FROM pg_authid WHERE rolname = 'late_user') AS same_verifier
  FROM run_command_on_workers($$SELECT rolpassword FROM pg_authid WHERE rolname = 'late_user'$$);
GRANT TEMPORARY ON DATABASE postgres TO PUBLIC;
REVOKE ALL ON DATABASE postgres FROM late_user, late_group CASCADE;
DROP ROLE late_user, late_group, late_friend, stale_db_user;
SELECT nodeport FROM citus_shards WHERE table_name = 'plans'::regclass ORDER BY nodeport;
SELECT nodeport, result FROM run_command_on_workers(format($$SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector') || ' / ' ||
  (SELECT string_agg(name, ',' ORDER BY id) FROM %s)$$,
  shard_name('plans', (SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'plans'::regclass)))) ORDER BY nodeport;

-- DROP EXTENSION reaches the workers too.
DROP TABLE docs, plans, late_ref;
DROP EXTENSION vector;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_extension WHERE extname = 'vector'$$);
