-- The objects a distributed table depends on reach every node: schemas, types (enum,
-- composite, domain), functions used in defaults, CHECK constraints and queries, and the
-- grants on them. Unqualified names land in the schema they land in on the coordinator.
CREATE SCHEMA "App Ü";
SET search_path = "App Ü", public;
CREATE TYPE mood AS ENUM ('sad', 'ok');
ALTER TYPE mood ADD VALUE 'happy';
CREATE TYPE point2 AS (x int, y int);
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE FUNCTION double_it(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
CREATE FUNCTION label(m mood) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'feeling ' || m $$;
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT string_agg(x, ' ' ORDER BY x) FROM (
    SELECT t.typname::text AS x FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'App Ü' AND t.typname IN ('mood', 'point2', 'positive')
    UNION ALL
    SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'App Ü'
    UNION ALL
    SELECT 'labels=' || string_agg(enumlabel::text, ',' ORDER BY enumsortorder) FROM pg_enum
     WHERE enumtypid = (SELECT t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                         WHERE n.nspname = 'App Ü' AND t.typname = 'mood')) s$$) ORDER BY nodeport;
-- A table built from them, distributed: the shards use the same types, default and CHECK.
CREATE TABLE feelings (k int PRIMARY KEY, m mood NOT NULL DEFAULT 'ok', p point2,
                       n positive, d int DEFAULT double_it(21) CHECK (double_it(d) < 1000));
SELECT create_distributed_table('feelings', 'k', shard_count => 4);
INSERT INTO feelings (k, m, p, n) VALUES (1, 'happy', ROW(1, 2), 5), (2, 'sad', ROW(3, 4), 7), (3, DEFAULT, NULL, 1);
INSERT INTO feelings (k, n) VALUES (4, 0);
INSERT INTO feelings (k, n, d) VALUES (5, 1, 600);
SELECT k, m, p, n, d FROM feelings ORDER BY k;
-- The functions run on the shards, in WHERE and in the SELECT list.
SELECT k, label(m), double_it(n) FROM feelings WHERE double_it(k) > 2 ORDER BY k;
SELECT m, count(*) FROM feelings GROUP BY m ORDER BY m;
-- Grants on the schema, a function and a type reach the workers.
CREATE ROLE obj_reader LOGIN;
GRANT USAGE ON SCHEMA "App Ü" TO obj_reader;
GRANT SELECT ON feelings TO obj_reader;
REVOKE EXECUTE ON FUNCTION label(mood) FROM PUBLIC;
SET ROLE obj_reader;
SELECT count(*) FROM feelings WHERE double_it(k) > 2;
SELECT label(m) FROM feelings WHERE k = 1;
RESET ROLE;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT has_schema_privilege('obj_reader', 'App Ü', 'USAGE') || ' ' ||
         has_function_privilege('obj_reader', '"App Ü".label("App Ü".mood)', 'EXECUTE')$$);
-- What the workers cannot have stays the coordinator's: a function or aggregate on a table's
-- row type (or an array of it), a composite type with such a column; grants on it too.
CREATE FUNCTION rows_of(feelings[]) RETURNS int LANGUAGE sql AS 'SELECT cardinality($1)';
CREATE TYPE with_row AS (f feelings, n int);
REVOKE EXECUTE ON FUNCTION rows_of(feelings[]) FROM PUBLIC;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) FROM pg_proc WHERE proname = 'rows_of'$$);
SELECT rows_of(ARRAY[ROW(1, 'ok', NULL, 1, 1)::feelings]);
DROP TYPE with_row;
DROP FUNCTION rows_of(feelings[]);
-- An object in a schema the workers lack (made before they joined, here: dropped there) makes
-- the schema there first, so the object lands in the same schema.
CREATE SCHEMA obj_missing;
SELECT count(*) FROM run_command_on_workers('DROP SCHEMA obj_missing') WHERE success;
SET search_path = obj_missing, "App Ü", public;
CREATE TYPE lost AS ENUM ('x');
CREATE FUNCTION obj_missing.f3() RETURNS int LANGUAGE sql AS 'SELECT 3';
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT (SELECT count(*) FROM pg_type WHERE typnamespace = 'obj_missing'::regnamespace AND typname = 'lost') || ' ' ||
         (SELECT count(*) FROM pg_proc WHERE pronamespace = 'obj_missing'::regnamespace AND proname = 'f3')$$);
SET search_path = "App Ü", public;
DROP SCHEMA obj_missing CASCADE;
-- create_distributed_function: Citus's way to put a function on every node (here one a
-- worker lost), with its owner and privileges, recorded in pg_dist_object.
CREATE FUNCTION tenant_fn(tenant int, v text) RETURNS text LANGUAGE sql AS $$ SELECT tenant || ':' || v $$;
REVOKE EXECUTE ON FUNCTION tenant_fn(int, text) FROM PUBLIC;
SELECT count(*) FROM run_command_on_workers('DROP FUNCTION "App Ü".tenant_fn(int, text)') WHERE success;
SELECT create_distributed_function('tenant_fn(int, text)', 'tenant', colocate_with => 'feelings');
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) || ' ' || coalesce(max(array_to_string(proacl, ',')), 'default') FROM pg_proc WHERE proname = 'tenant_fn'$$);
SELECT type, object_names, object_args, distribution_argument_index,
       colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'feelings'::regclass) AS colocated
  FROM pg_dist_object WHERE distribution_argument_index IS NOT NULL;
SELECT create_distributed_function('tenant_fn(int, text)', '$2');
SELECT distribution_argument_index, colocationid FROM pg_dist_object WHERE distribution_argument_index IS NOT NULL;
SELECT create_distributed_function('tenant_fn(int, text)', 'nope');
SELECT create_distributed_function('tenant_fn(int, text)', 'tenant', colocate_with => 'pg_class');
SELECT create_distributed_function('sum(int)');
SELECT create_distributed_function(NULL);
SET ROLE obj_reader;
SELECT create_distributed_function('"App Ü".tenant_fn(int, text)');
RESET ROLE;
-- Every object kept on the nodes is recorded in pg_dist_object, as Citus records them;
-- functions that stay on the coordinator are not.
SELECT type, object_names, object_args FROM pg_dist_object
 WHERE object_names::text LIKE '%App Ü%' ORDER BY type, object_names::text, object_args::text;
DROP FUNCTION tenant_fn(int, text);
SELECT count(*) FROM pg_dist_object WHERE type = 'function' AND object_names[2] = 'tenant_fn';
-- RENAME and DROP follow; DROP of an object a worker lacks is no error there.
ALTER FUNCTION double_it(int) RENAME TO twice;
SELECT object_names FROM pg_dist_object WHERE type = 'function' AND object_names[2] IN ('double_it', 'twice');
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc WHERE pronamespace = '"App Ü"'::regnamespace$$);
CREATE FUNCTION coordinator_first() RETURNS int LANGUAGE sql AS 'SELECT 1';
SELECT count(*) FROM run_command_on_workers('DROP FUNCTION "App Ü".coordinator_first()') WHERE success;
DROP FUNCTION coordinator_first();
DROP TABLE feelings;
DROP SCHEMA "App Ü" CASCADE;
SELECT count(*) FROM pg_dist_object WHERE object_names::text LIKE '%App Ü%';
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_namespace WHERE nspname = 'App Ü'$$);
-- Text search configurations reach every node, and their mappings follow.
CREATE TEXT SEARCH CONFIGURATION obj_ts (COPY = english);
ALTER TEXT SEARCH CONFIGURATION obj_ts ALTER MAPPING FOR asciiword WITH simple;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT to_tsvector('obj_ts', 'running dogs')::text$$);
SELECT to_tsvector('obj_ts', 'running dogs');
SELECT type, object_names FROM pg_dist_object WHERE type LIKE 'text search%';
DROP TEXT SEARCH CONFIGURATION obj_ts;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_ts_config WHERE cfgname = 'obj_ts'$$);
SELECT count(*) FROM pg_dist_object WHERE type LIKE 'text search%';
-- A temporary function is the session's own: it stays on the coordinator (on a worker it
-- would belong to another session, whose transaction could not prepare).
CREATE FUNCTION pg_temp.obj_plus_one(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 1';
SELECT pg_temp.obj_plus_one(1);
SELECT count(*) FROM pg_dist_object WHERE object_names[2] = 'obj_plus_one';
DROP FUNCTION pg_temp.obj_plus_one(int);
DROP ROLE obj_reader;
