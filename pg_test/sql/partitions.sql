-- Partitioned distributed tables: the parent and every partition distributed, co-located;
-- each partition's shard attached to the parent's shard on its node, so the workers prune
-- partitions as PostgreSQL does. Everything here runs as an application role that owns its
-- tables and has no other rights, and each answer is compared with the same rows in a plain
-- local partitioned table.
SET timezone = 'UTC';
CREATE SCHEMA parts;
CREATE ROLE part_app LOGIN;
GRANT USAGE, CREATE ON SCHEMA parts TO part_app;
SET ROLE part_app;
SET search_path = parts;
CREATE TABLE events (tenant_id bigint NOT NULL, at timestamptz NOT NULL, kind text, n int NOT NULL,
                     PRIMARY KEY (tenant_id, at), CHECK (n >= 0)) PARTITION BY RANGE (at);
CREATE INDEX events_kind ON events (kind);
CREATE TABLE events_2026_01 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE events_2026_02 PARTITION OF events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE TABLE events_other PARTITION OF events DEFAULT;
INSERT INTO events
SELECT t, timestamptz '2026-01-01' + i * interval '7 hours', 'k' || (i % 3), i
  FROM generate_series(1, 8) t, generate_series(0, 300) i;
-- The same rows, in a local partitioned table.
CREATE TABLE local_events (LIKE events INCLUDING ALL) PARTITION BY RANGE (at);
CREATE TABLE local_events_2026_01 PARTITION OF local_events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE local_events_2026_02 PARTITION OF local_events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE TABLE local_events_other PARTITION OF local_events DEFAULT;
INSERT INTO local_events SELECT * FROM events;

-- Refused: a partition alone, a partitioned reference table.
SELECT create_distributed_table('events_2026_01', 'tenant_id');
SELECT create_reference_table('events');
SELECT create_distributed_table('events', 'tenant_id', shard_count => 4);
-- The parent and its partitions, in one colocation group; the local tables are empty.
SELECT logicalrelid::text, partmethod,
       colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'events'::regclass) AS colocated,
       (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid) AS shards
  FROM pg_dist_partition p WHERE logicalrelid::text LIKE 'events%' ORDER BY 1;
SELECT pg_relation_size('events_2026_01') + pg_relation_size('events_other') AS local_bytes;
-- On the workers: each partition shard attached to the parent's shard, with the parent's
-- index and CHECK constraint.
SELECT sum(result::int) AS attached FROM run_command_on_workers($$
  SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
   WHERE p.relnamespace = 'parts'::regnamespace AND p.relname ~ '^events_[0-9]+$'$$);
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT string_agg(DISTINCT c.relkind::text || ':' || (SELECT count(*) FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'c'), ',')
    FROM pg_class c WHERE c.relnamespace = 'parts'::regnamespace AND c.relname ~ '^events_(2026_0[12]|other)?_?[0-9]+$'$$);

-- COPY into the distributed partitioned table: each row reaches its shard, and there its
-- partition (the local table gets the same rows).
COPY events (tenant_id, at, kind, n) FROM STDIN WITH (FORMAT csv);
1,2026-01-15 10:03:00+00,copied,1
2,2026-02-15 10:03:00+00,copied,2
3,2030-01-01 00:03:00+00,copied,3
\.
COPY local_events (tenant_id, at, kind, n) FROM STDIN WITH (FORMAT csv);
1,2026-01-15 10:03:00+00,copied,1
2,2026-02-15 10:03:00+00,copied,2
3,2030-01-01 00:03:00+00,copied,3
\.
SELECT (SELECT count(*) FROM events_2026_01 WHERE kind = 'copied') AS jan,
       (SELECT count(*) FROM events_2026_02 WHERE kind = 'copied') AS feb,
       (SELECT count(*) FROM events_other WHERE kind = 'copied') AS other;
-- Queries give the local table's answers.
SELECT count(*), sum(n) FROM events;
SELECT count(*), sum(n) FROM local_events;
-- Text made of a timestamptz on the shards, in a query that also returns a timestamptz (the
-- ORDER BY's): under this test's DateStyle (Postgres) refused rather than printed in the
-- wrong style; under ISO the plain table's answer, and a plan cached under ISO is refused
-- once the session's DateStyle changes.
SELECT md5(string_agg(format('%s|%s|%s|%s', tenant_id, at, kind, n), ';' ORDER BY tenant_id, at)) FROM events;
SET DateStyle = 'ISO, MDY';
SELECT md5(string_agg(format('%s|%s|%s|%s', tenant_id, at, kind, n), ';' ORDER BY tenant_id, at)) FROM events;
SELECT md5(string_agg(format('%s|%s|%s|%s', tenant_id, at, kind, n), ';' ORDER BY tenant_id, at)) FROM local_events;
PREPARE printed AS SELECT format('%s', at), at FROM events WHERE tenant_id = 1 ORDER BY at LIMIT 1;
EXECUTE printed;
RESET DateStyle;
EXECUTE printed;
DEALLOCATE printed;
SELECT kind, count(*), max(n) FROM events WHERE at >= '2026-02-01' AND at < '2026-03-01' GROUP BY kind ORDER BY kind;
SELECT kind, count(*), max(n) FROM local_events WHERE at >= '2026-02-01' AND at < '2026-03-01' GROUP BY kind ORDER BY kind;
SELECT count(*) FROM events_2026_02;
SELECT count(*) FROM local_events_2026_02;
SELECT count(*) FROM events_other WHERE tenant_id = 3;
SELECT count(*) FROM local_events_other WHERE tenant_id = 3;
-- A router query: one shard, and on it one partition (the worker prunes).
EXPLAIN (COSTS OFF) SELECT count(*) FROM events WHERE tenant_id = 3 AND at >= '2026-01-10' AND at < '2026-01-20';
SELECT count(*) FROM events WHERE tenant_id = 3 AND at >= '2026-01-10' AND at < '2026-01-20';
SELECT count(*) FROM local_events WHERE tenant_id = 3 AND at >= '2026-01-10' AND at < '2026-01-20';
-- Prepared with a generic plan.
SET plan_cache_mode = force_generic_plan;
PREPARE in_range(bigint, timestamptz, timestamptz) AS
  SELECT count(*), sum(n) FROM events WHERE tenant_id = $1 AND at >= $2 AND at < $3;
EXECUTE in_range(2, '2026-02-03', '2026-03-05');
EXECUTE in_range(7, '2026-01-01', '2026-12-31');
RESET plan_cache_mode;
SELECT count(*), sum(n) FROM local_events WHERE tenant_id = 2 AND at >= '2026-02-03' AND at < '2026-03-05';

-- Writes: routed through the parent, moved between partitions on the shard.
UPDATE events SET at = at + interval '31 days' WHERE tenant_id = 1 AND at < '2026-01-03';
UPDATE local_events SET at = at + interval '31 days' WHERE tenant_id = 1 AND at < '2026-01-03';
SELECT count(*) FROM events_2026_02 WHERE tenant_id = 1;
SELECT count(*) FROM local_events_2026_02 WHERE tenant_id = 1;
INSERT INTO events VALUES (9, '2026-01-05', 'late', 1);
INSERT INTO events VALUES (9, '2026-01-06', 'bad', -1);
DELETE FROM events WHERE tenant_id = 9;

-- A new partition made after distribution is distributed with its parent. The default
-- partition's shards hold March's rows, so a March partition is refused (as PostgreSQL
-- refuses it); April's is made.
CREATE TABLE events_2026_03 PARTITION OF events FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
CREATE TABLE events_2026_04 PARTITION OF events FOR VALUES FROM ('2026-04-01') TO ('2026-05-01');
INSERT INTO events VALUES (4, '2026-04-02', 'april', 1), (5, '2026-04-03', 'april', 2);
SELECT tenant_id, kind FROM events_2026_04 ORDER BY 1;
SELECT count(*) FROM events WHERE kind = 'april';
-- ATTACH of a local table with rows: distributed, its rows moved to its shards.
CREATE TABLE events_2025_12 (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO events_2025_12 VALUES (1, '2025-12-24', 'eve', 1), (2, '2025-12-25', 'day', 2);
ALTER TABLE events ATTACH PARTITION events_2025_12 FOR VALUES FROM ('2025-12-01') TO ('2026-01-01');
SELECT count(*) FROM events WHERE at < '2026-01-01';
SELECT logicalrelid::text FROM pg_dist_partition WHERE logicalrelid = 'events_2025_12'::regclass;
-- DETACH: the partition stays a distributed table, out of the parent on the shards too;
-- its constraints follow it (dropped and added by their own names).
ALTER TABLE events DETACH PARTITION events_2025_12;
SELECT count(*) FROM events WHERE at < '2026-01-01';
SELECT count(*) FROM events_2025_12;
ALTER TABLE events_2025_12 DROP CONSTRAINT events_n_check;
ALTER TABLE events_2025_12 ADD CONSTRAINT events_n_check CHECK (n >= 0);
-- ATTACH of the co-located distributed table.
ALTER TABLE events ATTACH PARTITION events_2025_12 FOR VALUES FROM ('2025-12-01') TO ('2026-01-01');
SELECT count(*) FROM events WHERE at < '2026-01-01';
SELECT sum(result::int) AS attached FROM run_command_on_workers($$
  SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
   WHERE p.relnamespace = 'parts'::regnamespace AND p.relname ~ '^events_[0-9]+$'$$);
-- DDL on the parent reaches every partition's shards.
ALTER TABLE events ADD COLUMN note text;
ALTER TABLE local_events ADD COLUMN note text;
UPDATE events SET note = 'seen' WHERE tenant_id = 2 AND at < '2026-01-02';
SELECT at, note FROM events_2025_12 WHERE tenant_id = 2 ORDER BY at;
CREATE INDEX events_note ON events (note);
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid
   WHERE c.relname ~ '^events_2026_01_[0-9]+$' AND pg_get_indexdef(x.indexrelid) LIKE '%(note)%'$$);
-- ANALYZE of the parent gives the coordinator the row counts of the parent and of each
-- partition (summed over their shards).
ANALYZE events;
SELECT relname, reltuples FROM pg_class WHERE relname IN ('events', 'events_2026_02', 'events_2026_04') AND relnamespace = 'parts'::regnamespace ORDER BY 1;
TRUNCATE events_2026_04;
SELECT count(*) FROM events WHERE kind = 'april';
-- An index and a UNIQUE constraint made on the parent after distribution: the partition
-- shards' copies are named after the coordinator's copies, so after a DETACH the partition's
-- own index and constraint can be dropped, on the shards too.
ALTER TABLE events ADD CONSTRAINT events_uniq UNIQUE (tenant_id, at, n);
ALTER TABLE events DETACH PARTITION events_2025_12;
DROP INDEX events_2025_12_note_idx;
ALTER TABLE events_2025_12 DROP CONSTRAINT events_2025_12_tenant_id_at_n_key;
SELECT sum(result::int) AS left_on_shards FROM run_command_on_workers($$
  SELECT count(*) FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid
   WHERE c.relnamespace = 'parts'::regnamespace AND c.relname ~ '^events_2025_12_[0-9]+$'
     AND (pg_get_indexdef(x.indexrelid) LIKE '%(note)%' OR pg_get_indexdef(x.indexrelid) LIKE '%(tenant_id, at, n)%')$$);
SELECT sum(result::int) AS on_other_partitions FROM run_command_on_workers($$
  SELECT count(*) FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid
   WHERE c.relnamespace = 'parts'::regnamespace AND c.relname ~ '^events_2026_01_[0-9]+$'
     AND pg_get_indexdef(x.indexrelid) LIKE '%(tenant_id, at, n)%'$$);
ALTER TABLE events_2025_12 ADD CONSTRAINT events_2025_12_uniq UNIQUE (tenant_id, at, n);
ALTER TABLE events ATTACH PARTITION events_2025_12 FOR VALUES FROM ('2025-12-01') TO ('2026-01-01');
SELECT count(*) FROM events WHERE at < '2026-01-01';
-- ATTACH of a co-located distributed table: its shards' copies of the parent's indexes are
-- named after the coordinator's, so its constraint can be dropped after a DETACH.
CREATE TABLE events_2025_11 (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
SELECT create_distributed_table('events_2025_11', 'tenant_id', colocate_with => 'events');
ALTER TABLE events ATTACH PARTITION events_2025_11 FOR VALUES FROM ('2025-11-01') TO ('2025-12-01');
ALTER TABLE events DETACH PARTITION events_2025_11;
ALTER TABLE events_2025_11 DROP CONSTRAINT events_2025_11_tenant_id_at_n_key;
ALTER TABLE events_2025_11 DROP CONSTRAINT events_2025_11_pkey;
DROP TABLE events_2025_11;
-- Refused: a co-located table distributed by another column (its rows are not where the
-- parent routes them), a partitioned one, a foreign table.
CREATE TABLE ab (a bigint NOT NULL, b bigint NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
SELECT create_distributed_table('ab', 'a', shard_count => 4);
CREATE TABLE ab_2027 (a bigint NOT NULL, b bigint NOT NULL, at date NOT NULL);
SELECT create_distributed_table('ab_2027', 'b', colocate_with => 'ab');
ALTER TABLE ab ATTACH PARTITION ab_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
DROP TABLE ab, ab_2027;
CREATE TABLE events_2023 (tenant_id bigint NOT NULL, at timestamptz NOT NULL, kind text, n int NOT NULL, note text,
                          CHECK (n >= 0)) PARTITION BY LIST (kind);
CREATE TABLE events_2023_a PARTITION OF events_2023 FOR VALUES IN ('a');
SELECT create_distributed_table('events_2023', 'tenant_id', colocate_with => 'events');
ALTER TABLE events ATTACH PARTITION events_2023 FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
DROP TABLE events_2023;
CREATE FOREIGN TABLE events_remote PARTITION OF events FOR VALUES FROM ('2022-01-01') TO ('2023-01-01') SERVER nowhere;
-- Bounds in another DateStyle and TimeZone reach the shards as the coordinator means them.
SET timezone = 'Asia/Kolkata';
SET datestyle = 'SQL, DMY';
CREATE TABLE ist (id bigint NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at);
SELECT create_distributed_table('ist', 'id', shard_count => 2);
CREATE TABLE ist_jan PARTITION OF ist FOR VALUES FROM ('2026-01-01 00:00+05:30') TO ('2026-02-01 00:00+05:30');
INSERT INTO ist VALUES (1, '2026-01-01 01:00+05:30'), (2, '2026-01-31 23:30+05:30');
SELECT id, at FROM ist_jan ORDER BY id;
DROP TABLE ist;
RESET datestyle;
SET timezone = 'UTC';

-- Refused with a hint: inheritance, two levels, a concurrent detach, undistributing a
-- partition alone.
CREATE TABLE events_child () INHERITS (events_2026_01);
CREATE TABLE events_2026_05 PARTITION OF events FOR VALUES FROM ('2026-05-01') TO ('2026-06-01') PARTITION BY LIST (kind);
ALTER TABLE events DETACH PARTITION events_2026_04 CONCURRENTLY;
SELECT undistribute_table('events_2026_01');
CREATE TABLE nested (tenant_id bigint, at timestamptz, kind text) PARTITION BY RANGE (at);
CREATE TABLE nested_2026 PARTITION OF nested FOR VALUES FROM ('2026-01-01') TO ('2027-01-01') PARTITION BY LIST (kind);
SELECT create_distributed_table('nested', 'tenant_id');
DROP TABLE nested;

-- DROP of a partition drops its shards.
DROP TABLE events_2026_04;
SELECT sum(result::int) AS shard_tables FROM run_command_on_workers($$
  SELECT count(*) FROM pg_class WHERE relname ~ '^events_2026_04_[0-9]+$'$$);

-- Time partitions (Citus's helpers), on a distributed table.
CREATE TABLE metrics (tenant_id bigint NOT NULL, ts timestamptz NOT NULL, v float8) PARTITION BY RANGE (ts);
SELECT create_distributed_table('metrics', 'tenant_id', colocate_with => 'events');
SELECT create_time_partitions('metrics', interval '1 month', '2027-03-01', '2026-11-15');
SELECT partition::text, from_value, to_value, access_method FROM time_partitions WHERE parent_table = 'metrics'::regclass ORDER BY 1;
-- Again: nothing is missing.
SELECT create_time_partitions('metrics', interval '1 month', '2027-03-01', '2026-11-15');
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'metrics_p%';
INSERT INTO metrics SELECT t, timestamptz '2026-11-01' + i * interval '1 day', i FROM generate_series(1, 4) t, generate_series(0, 119) i;
SELECT date_trunc('month', ts) AS month, count(*) FROM metrics GROUP BY 1 ORDER BY 1;
CALL drop_old_time_partitions('metrics', '2027-01-01');
SELECT partition::text FROM time_partitions WHERE parent_table = 'metrics'::regclass ORDER BY 1;
SELECT min(ts), count(*) FROM metrics;
-- Names for other intervals (a local table: the helpers work on any partitioned table).
CREATE TABLE daily (d date NOT NULL) PARTITION BY RANGE (d);
SELECT create_time_partitions('daily', interval '1 week', '2026-12-20', '2026-12-02');
SELECT partition::text, from_value, to_value FROM time_partitions WHERE parent_table = 'daily'::regclass ORDER BY from_value::date;
CREATE TABLE hourly (t timestamp NOT NULL) PARTITION BY RANGE (t);
SELECT create_time_partitions('hourly', interval '1 day', '2026-12-03', '2026-12-01 10:00');
SELECT create_time_partitions('hourly', interval '1 day', '2026-12-05 01:00', '2026-11-29');
SELECT partition::text, from_value, to_value FROM time_partitions WHERE parent_table = 'hourly'::regclass ORDER BY from_value::timestamp;
CREATE TABLE quarterly (t timestamptz NOT NULL) PARTITION BY RANGE (t);
SELECT create_time_partitions('quarterly', interval '3 months', '2027-07-01', '2026-12-02');
SELECT create_time_partitions('quarterly', interval '1 year', '2028-01-01', '2027-01-01');
SELECT partition::text FROM time_partitions WHERE parent_table = 'quarterly'::regclass ORDER BY 1;
-- A timestamp column across a daylight saving change, in another DateStyle; a name of
-- multibyte characters cut to fit in 63 bytes.
SET timezone = 'America/New_York';
SET datestyle = 'SQL, DMY';
CREATE TABLE hr (t timestamp NOT NULL) PARTITION BY RANGE (t);
SELECT create_time_partitions('hr', interval '1 hour', '2026-11-01 03:00', '2026-11-01 00:00');
SELECT partition::text, from_value, to_value FROM time_partitions WHERE parent_table = 'hr'::regclass ORDER BY 1;
-- The session's time zone is back after the helper fails, also inside an exception block.
SET timezone = 'America/New_York';
DO $$ BEGIN
  PERFORM create_time_partitions('hr', interval '2 hours', '2026-11-01 06:00', '2026-11-01 01:00');
EXCEPTION WHEN others THEN RAISE NOTICE 'refused: %', SQLERRM;
END $$;
SHOW timezone;
RESET datestyle;
SET timezone = 'UTC';
CREATE TABLE "ééééééééééééééééééééééééééééééé" (id bigint NOT NULL, t timestamptz NOT NULL) PARTITION BY RANGE (t);
SELECT create_time_partitions('"ééééééééééééééééééééééééééééééé"', interval '1 month', '2026-03-01', '2026-01-01');
SELECT partition::text, (SELECT octet_length(relname::text) FROM pg_class WHERE oid = partition) AS bytes FROM time_partitions WHERE parent_table = '"ééééééééééééééééééééééééééééééé"'::regclass ORDER BY 1;
-- Bad input.
SELECT create_time_partitions('daily', interval '1 week', '2026-12-01', '2026-12-20');
SELECT create_time_partitions('daily', interval '0', '2027-01-01');
SELECT create_time_partitions('daily', interval '2 hours', '2027-01-01');
SELECT create_time_partitions('local_events_2026_01', interval '1 month', '2027-01-01');
SELECT create_time_partitions('daily', interval '1 day', '2026-12-02', '2026-11-29');

-- undistribute_table of the parent brings every partition back, rows and all.
SELECT undistribute_table('events');
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'events%';
SELECT count(*), sum(n) FROM events;
SELECT md5(string_agg(format('%s|%s|%s|%s', tenant_id, at, kind, n), ';' ORDER BY tenant_id, at)) FROM events WHERE at >= '2026-01-01';
SELECT md5(string_agg(format('%s|%s|%s|%s', tenant_id, at, kind, n), ';' ORDER BY tenant_id, at)) FROM local_events;
SELECT count(*) FROM ONLY events_2025_12;
SELECT sum(result::int) AS shard_tables FROM run_command_on_workers($$
  SELECT count(*) FROM pg_class WHERE relnamespace = 'parts'::regnamespace AND relname ~ '^events_[0-9a-z_]*[0-9]{6}$'$$);
RESET ROLE;
RESET search_path;
DROP SCHEMA parts CASCADE;
DROP ROLE part_app;
