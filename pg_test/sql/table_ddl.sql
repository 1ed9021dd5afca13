-- More of the table DDL users run, on a distributed table and its shards: RENAME of the table
-- and of an index, SET SCHEMA, storage parameters, REINDEX and CLUSTER.
CREATE SCHEMA tddl;
SET search_path = tddl, public;
CREATE TABLE items (id int PRIMARY KEY, v text);
CREATE INDEX items_v ON items (v);
SELECT create_distributed_table('items', 'id', shard_count => 4);
INSERT INTO items SELECT i, 'v' || i FROM generate_series(1, 40) i;
-- The shards' names follow the table's and the index's.
ALTER TABLE items RENAME TO goods;
ALTER INDEX items_v RENAME TO goods_v;
ALTER TABLE items_pkey RENAME TO goods_pkey;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(string_agg(DISTINCT regexp_replace(relname, '_[0-9]+$', '_N'), ',' ORDER BY regexp_replace(relname, '_[0-9]+$', '_N')), '-')
    FROM pg_class WHERE relnamespace = 'tddl'::regnamespace$$);
SELECT count(*), sum(id) FROM goods WHERE v LIKE 'v%';
SELECT v FROM goods WHERE id = 7;
-- Storage parameters and per-column settings.
ALTER TABLE goods SET (fillfactor = 70);
ALTER TABLE goods ALTER COLUMN v SET STATISTICS 500;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(string_agg(DISTINCT array_to_string(c.reloptions, ',') || ' ' || a.attstattarget, ','), '-')
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'v'
   WHERE c.relname ~ '^goods_[0-9]+$'$$);
-- An index's storage parameters reach the shard indexes too.
ALTER INDEX goods_v SET (fillfactor = 60);
ALTER TABLE goods_pkey SET (fillfactor = 80);
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(string_agg(DISTINCT regexp_replace(relname, '_[0-9]+$', '_N') || ' ' || array_to_string(reloptions, ','), '; '), '-')
    FROM pg_class WHERE relname ~ '^goods_(v|pkey)_[0-9]+$'$$);
ALTER INDEX goods_v RESET (fillfactor);
ALTER INDEX goods_v SET TABLESPACE pg_default;
-- REINDEX and CLUSTER run on every shard.
REINDEX TABLE goods;
REINDEX (VERBOSE false) INDEX goods_v;
REINDEX INDEX CONCURRENTLY goods_v;
CLUSTER goods USING goods_v;
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT coalesce(string_agg(DISTINCT i.indisclustered::text, ','), '-')
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname ~ '^goods_v_[0-9]+$'$$);
CLUSTER goods;
-- SET SCHEMA moves the shards, making the schema where a worker lacks it.
CREATE SCHEMA "tddl Other";
ALTER TABLE goods SET SCHEMA "tddl Other";
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) FROM pg_class WHERE relnamespace = '"tddl Other"'::regnamespace AND relname ~ '^goods_[0-9]+$'$$);
SELECT count(*) FROM "tddl Other".goods;
INSERT INTO "tddl Other".goods VALUES (41, 'v41');
SELECT v FROM "tddl Other".goods WHERE id = 41;
DROP SCHEMA tddl CASCADE;
DROP SCHEMA "tddl Other" CASCADE;
