-- Hash-distributed and reference tables on a live 1+4 cluster: create_distributed_table,
-- create_reference_table, the shard catalog, lookups, DROP, and each bad input.

-- A helper on every node (CREATE FUNCTION reaches the workers): the rows in the local shards
-- of a table (tables named <name>_<id>).
CREATE OR REPLACE FUNCTION public.local_shard_rows(prefix text) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE r record; n bigint := 0; c bigint;
BEGIN
  FOR r IN SELECT oid::regclass AS t FROM pg_class
            WHERE relkind = 'r' AND relname ~ ('^' || prefix || '_[0-9]+$') LOOP
    EXECUTE format('SELECT count(*) FROM %s', r.t) INTO c;
    n := n + c;
  END LOOP;
  RETURN n;
END $f$;

-- 100k rows move into 32 shards, 8 on each worker; the local table is left empty.
CREATE TABLE shared_events (
    tenant_id bigint NOT NULL,
    event_id bigserial,
    kind text DEFAULT 'click',
    score int CHECK (score >= 0),
    PRIMARY KEY (tenant_id, event_id)
) WITH (fillfactor = 90);
CREATE INDEX shared_events_kind ON shared_events (kind) WHERE score > 10;
INSERT INTO shared_events (tenant_id, score) SELECT i % 1000, i FROM generate_series(1, 100000) i;
SELECT create_distributed_table('shared_events', 'tenant_id');
-- The coordinator's own table is empty (read it with the distributed planner off); a query
-- on the table reads the shards.
SET tessera.enable_distributed_planner = off;
SELECT count(*) AS local_rows FROM ONLY shared_events;
RESET tessera.enable_distributed_planner;
SELECT count(*) AS distributed_rows FROM shared_events;
SELECT sum(result::bigint) AS rows_in_shards
FROM run_command_on_workers($$SELECT local_shard_rows('shared_events')$$);
SELECT nodeport, count(*) AS shards FROM citus_shards WHERE table_name = 'shared_events'::regclass
GROUP BY nodeport ORDER BY nodeport;
SELECT table_name, citus_table_type, distribution_column, shard_count, table_owner, access_method
FROM citus_tables ORDER BY table_name::text;
SELECT bool_and(shard_size > 0) AS sizes_known FROM citus_shards;
SELECT partmethod, partkey, repmodel FROM pg_dist_partition WHERE logicalrelid = 'shared_events'::regclass;
SELECT shardcount, replicationfactor, distributioncolumntype::regtype
FROM pg_dist_colocation c JOIN pg_dist_partition p USING (colocationid)
WHERE p.logicalrelid = 'shared_events'::regclass;
-- Ranges cover the int32 hash space without gaps.
SELECT min(shardminvalue::int) AS first, max(shardmaxvalue::int) AS last,
       bool_and(lead_min = shardmaxvalue::bigint + 1) AS contiguous
FROM (SELECT shardminvalue, shardmaxvalue,
             lead(shardminvalue::bigint) OVER (ORDER BY shardminvalue::int) AS lead_min
      FROM pg_dist_shard WHERE logicalrelid = 'shared_events'::regclass) s;
-- Every shard has the table's columns, constraints and indexes.
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(DISTINCT regexp_replace(pg_get_indexdef(i.indexrelid), '_[0-9]+', '_N', 'g'), ' | ')
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname LIKE 'shared_events_%'$$);
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(DISTINCT pg_get_constraintdef(oid), ' | ' ORDER BY pg_get_constraintdef(oid))
  FROM pg_constraint WHERE conrelid::regclass::text LIKE 'shared_events_%'$$);
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(DISTINCT array_to_string(reloptions, ','), ',') FROM pg_class
  WHERE relname ~ '^shared_events_[0-9]+$'$$);

-- The shard of a value: the same for 5, '5' and 5::bigint, and it holds that tenant's rows.
SELECT get_shard_id_for_distribution_column('shared_events', 5) = get_shard_id_for_distribution_column('shared_events', '5')
   AND get_shard_id_for_distribution_column('shared_events', '5') = get_shard_id_for_distribution_column('shared_events', 5::bigint)
   AS same_shard;
SELECT shardminvalue::int <= worker_hash(5::bigint) AND worker_hash(5::bigint) <= shardmaxvalue::int AS in_range
FROM pg_dist_shard WHERE shardid = get_shard_id_for_distribution_column('shared_events', 5);
SELECT shard_name('shared_events', 102008);

-- Colocation: with a named table, by default, and a new group.
CREATE TABLE messages (tenant_id bigint, event_id bigint, body text);
SELECT create_distributed_table('messages', 'tenant_id', colocate_with => 'shared_events');
CREATE TABLE clicks (tenant_id bigint, at timestamptz);
SELECT create_distributed_table('clicks', 'tenant_id');
CREATE TABLE apart (tenant_id bigint);
SELECT create_distributed_table('apart', 'tenant_id', colocate_with => 'none', shard_count => 4);
SELECT logicalrelid, colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'shared_events'::regclass) AS with_events
FROM pg_dist_partition ORDER BY logicalrelid::text;
-- Colocated shards: same ranges on the same nodes.
SELECT count(*) AS mismatched FROM citus_shards a JOIN pg_dist_shard sa ON sa.shardid = a.shardid
JOIN pg_dist_shard sb ON sb.shardminvalue = sa.shardminvalue AND sb.logicalrelid = 'messages'::regclass
JOIN citus_shards b ON b.shardid = sb.shardid
WHERE a.table_name = 'shared_events'::regclass AND a.nodeport <> b.nodeport;
SELECT nodeport, count(*) FROM citus_shards WHERE table_name = 'apart'::regclass GROUP BY 1 ORDER BY 1;

-- A reference table: one shard, a copy with every row on every node, the coordinator too.
CREATE TABLE tiers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO tiers VALUES (1, 'free'), (2, 'pro'), (3, 'enterprise');
SELECT create_reference_table('tiers');
SELECT count(*) AS shards, min(shardminvalue) IS NULL AS no_range FROM pg_dist_shard WHERE logicalrelid = 'tiers'::regclass;
SELECT nodeport FROM citus_shards WHERE table_name = 'tiers'::regclass ORDER BY nodeport;
SELECT nodeid, result FROM run_command_on_all_nodes($$SELECT local_shard_rows('tiers')$$) ORDER BY nodeid;

-- Names with quotes, spaces and non-ASCII characters.
CREATE SCHEMA "Tenant ""A""";
CREATE TABLE "Tenant ""A"""."Évents ü" ("Key" text, v int);
INSERT INTO "Tenant ""A"""."Évents ü" VALUES ('a', 1), ('b', 2), ('c', 3);
SELECT create_distributed_table('"Tenant ""A"""."Évents ü"', 'Key', shard_count => 2);
SELECT shard_name('"Tenant ""A"""."Évents ü"', shardid) ~ '^"Tenant ""A"""\."Évents ü_[0-9]+"$' AS quoted
FROM pg_dist_shard WHERE logicalrelid = '"Tenant ""A"""."Évents ü"'::regclass;
SELECT sum(result::bigint) FROM run_command_on_workers($$SELECT count(*) FROM pg_namespace WHERE nspname = 'Tenant "A"'$$);

-- A transaction that distributes a table and rolls back leaves nothing on any worker.
BEGIN;
CREATE TABLE rolled_back (a int);
INSERT INTO rolled_back SELECT generate_series(1, 100);
SELECT create_distributed_table('rolled_back', 'a');
ROLLBACK;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_class WHERE relname LIKE 'rolled_back%'$$);
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text = 'rolled_back';

-- Bad input: each a clear error, the catalog unchanged.
CREATE TEMP TABLE shards_before AS SELECT shardid FROM pg_dist_shard;
CREATE TABLE plain (id int, p point, u int UNIQUE);
SELECT create_distributed_table('no_such_table', 'id');
SELECT create_distributed_table('plain', 'no_such_column');
SELECT create_distributed_table('plain', 'p');
SELECT create_distributed_table('plain', 'id');
CREATE TABLE plain2 (id int);
SELECT create_distributed_table('plain2', 'id', shard_count => 0);
SELECT create_distributed_table('plain2', 'id', shard_count => 64001);
SELECT create_distributed_table('plain2', 'id', distribution_type => 'append');
SELECT create_distributed_table('plain2', 'id', distribution_type => 'list');
SELECT create_distributed_table('plain2', 'id', colocate_with => 'shared_events');
SELECT create_distributed_table('plain2', 'id', colocate_with => 'tiers');
SELECT create_distributed_table('plain2', 'id', colocate_with => 'no_such_table');
SELECT create_distributed_table('shared_events', 'tenant_id');
SELECT create_distributed_table(NULL, 'id');
SELECT create_distributed_table('plain2', NULL);
CREATE VIEW plain_view AS SELECT 1 AS id;
SELECT create_distributed_table('plain_view', 'id');
CREATE TABLE msgs2 (tenant_id bigint);
SELECT create_distributed_table('msgs2', 'tenant_id', colocate_with => 'shared_events', shard_count => 8);
SELECT get_shard_id_for_distribution_column('plain2', 1);
CREATE ROLE tessera_not_owner;
GRANT ALL ON plain2 TO tessera_not_owner;
SET ROLE tessera_not_owner;
SELECT create_distributed_table('plain2', 'id');
RESET ROLE;
DROP TABLE plain2;
DROP ROLE tessera_not_owner;
SELECT count(*) AS new_shards FROM pg_dist_shard WHERE shardid NOT IN (SELECT shardid FROM shards_before);

-- DROP TABLE drops the shards on every node and the catalog rows.
DROP TABLE messages, clicks, apart;
DROP SCHEMA "Tenant ""A""" CASCADE;
SELECT logicalrelid FROM pg_dist_partition ORDER BY logicalrelid::text;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_class WHERE relname ~ '^(messages|clicks|apart|Évents ü)_[0-9]+$'$$);
DROP TABLE shared_events, tiers, plain, msgs2;
DROP VIEW plain_view;
SELECT count(*) AS partitions, (SELECT count(*) FROM pg_dist_shard) AS shards,
       (SELECT count(*) FROM pg_dist_placement) AS placements,
       (SELECT count(*) FROM pg_dist_colocation) AS colocation_groups
FROM pg_dist_partition;
SELECT DISTINCT result FROM run_command_on_all_nodes($$SELECT count(*) FROM pg_class WHERE relname ~ '_[0-9]{6}$' AND relkind = 'r'$$);
DROP FUNCTION public.local_shard_rows(text);
SELECT DISTINCT result FROM run_command_on_all_nodes($$SELECT count(*) FROM pg_proc WHERE proname = 'local_shard_rows'$$);
