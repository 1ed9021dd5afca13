-- The distributed query engine: each tier's plan (EXPLAIN, COSTS OFF), results, transactions,
-- prepared statements and the errors for what it refuses. The differential test
-- (tests/tests/differential.rs) compares results with local tables at scale.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE events (tenant_id bigint NOT NULL, event_id bigint NOT NULL, kind text, amount numeric,
                     embedding vector(3), PRIMARY KEY (tenant_id, event_id));
CREATE TABLE messages (tenant_id bigint NOT NULL, msg_id bigint NOT NULL, event_id bigint, body text,
                       PRIMARY KEY (tenant_id, msg_id));
CREATE TABLE kinds (kind text PRIMARY KEY, label text);
SELECT create_distributed_table('events', 'tenant_id', shard_count => 8);
SELECT create_distributed_table('messages', 'tenant_id', colocate_with => 'events');
SELECT create_reference_table('kinds');
INSERT INTO kinds VALUES ('click', 'Click'), ('buy', 'Purchase');
-- Multi-row INSERT: each row routed to its shard by the hash of tenant_id.
INSERT INTO events VALUES (1, 1, 'click', 10.5, '[1,0,0]'), (1, 2, 'buy', 99, '[0,1,0]'),
  (2, 3, 'click', 1, '[0,0,1]'), (3, 4, 'buy', 20, '[1,1,0]'), (4, 5, 'click', NULL, '[1,1,1]'),
  (5, 6, 'view', 7, '[0.5,0.5,0]');
INSERT INTO messages VALUES (1, 10, 1, 'hello'), (1, 11, 2, 'paid'), (2, 12, 3, 'hi'), (5, 13, 6, 'seen');
SELECT nodeport, result FROM run_command_on_workers($$
  SELECT coalesce(sum((xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', oid::regclass), false, true, '')))[1]::text::bigint), 0)
    FROM pg_class WHERE relname ~ '^events_[0-9]+$'$$) ORDER BY nodeport;

-- Fast-path router: one table, distribution column = constant.
EXPLAIN (COSTS OFF) SELECT event_id, kind FROM events WHERE tenant_id = 1;
SELECT event_id, kind FROM events WHERE tenant_id = 1 ORDER BY event_id;
-- Router: a co-located join and a reference table, pinned to one tenant.
EXPLAIN (COSTS OFF)
SELECT e.event_id, k.label, m.body FROM events e JOIN messages m USING (tenant_id, event_id)
  JOIN kinds k ON k.kind = e.kind WHERE e.tenant_id = 1;
SELECT e.event_id, k.label, m.body FROM events e JOIN messages m USING (tenant_id, event_id)
  JOIN kinds k ON k.kind = e.kind WHERE e.tenant_id = 1 ORDER BY 1;
-- Multi-shard, no combine step: rows appended.
EXPLAIN (COSTS OFF) SELECT event_id FROM events WHERE amount > 5;
SELECT event_id FROM events WHERE amount > 5 ORDER BY 1;
-- Multi-shard aggregate: partial on the workers, combined by PostgreSQL's own plan.
EXPLAIN (COSTS OFF) SELECT kind, count(*), avg(amount) FROM events GROUP BY kind ORDER BY kind;
SELECT kind, count(*), avg(amount) FROM events GROUP BY kind ORDER BY kind;
SELECT count(*), sum(amount), min(kind), max(amount) FROM events;
-- count(DISTINCT) across shards: the workers group by its argument too.
EXPLAIN (COSTS OFF) SELECT count(DISTINCT tenant_id), count(*) FROM events;
SELECT count(DISTINCT tenant_id), count(*) FROM events;
-- Grouped by the distribution column: the whole aggregate runs on the workers.
EXPLAIN (COSTS OFF) SELECT tenant_id, count(*) FROM events GROUP BY tenant_id ORDER BY 2 DESC, 1 LIMIT 2;
SELECT tenant_id, count(*) FROM events GROUP BY tenant_id ORDER BY 2 DESC, 1 LIMIT 2;
-- Nearest neighbours across shards: each shard's top 2 by distance, merged on the coordinator.
EXPLAIN (COSTS OFF) SELECT tenant_id, event_id FROM events ORDER BY embedding <=> '[1,0,0]' LIMIT 2;
SELECT tenant_id, event_id FROM events ORDER BY embedding <=> '[1,0,0]', event_id LIMIT 3;
-- Every task's plan with citus.explain_all_tasks.
SET citus.explain_all_tasks = on;
EXPLAIN (COSTS OFF) SELECT count(*) FROM kinds;
RESET citus.explain_all_tasks;
-- EXPLAIN ANALYZE runs the tasks.
EXPLAIN (COSTS OFF, ANALYZE, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM events WHERE tenant_id = 2;

-- UPDATE and DELETE: router and multi-shard, with RETURNING.
EXPLAIN (COSTS OFF) UPDATE events SET amount = amount + 1 WHERE tenant_id = 2;
UPDATE events SET amount = amount + 1 WHERE tenant_id = 2 RETURNING event_id, amount;
UPDATE events SET kind = upper(kind) WHERE kind = 'view';
DELETE FROM messages WHERE body = 'seen' RETURNING msg_id;
SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind;
-- INSERT ... SELECT between co-located tables runs on each shard group.
EXPLAIN (COSTS OFF) INSERT INTO messages SELECT tenant_id, event_id + 100, event_id, kind FROM events WHERE amount > 5;
INSERT INTO messages SELECT tenant_id, event_id + 100, event_id, kind FROM events WHERE amount > 5;
SELECT tenant_id, msg_id, body FROM messages WHERE msg_id > 100 ORDER BY 1, 2;
DELETE FROM messages WHERE msg_id > 100;
-- Reference tables: writes reach every placement.
UPDATE kinds SET label = 'Buy' WHERE kind = 'buy';
SELECT DISTINCT result FROM run_command_on_all_nodes($$
  SELECT (xpath('/row/label/text()', query_to_xml(format('SELECT label FROM %s WHERE kind = ''buy''', oid::regclass), false, true, '')))[1]::text
    FROM pg_class WHERE relname ~ '^kinds_[0-9]+$'$$);

-- Prepared statements: custom plans, then the generic plan with the shard chosen at execution.
PREPARE by_tenant(bigint) AS SELECT event_id FROM events WHERE tenant_id = $1 ORDER BY event_id;
EXECUTE by_tenant(1); EXECUTE by_tenant(1); EXECUTE by_tenant(1); EXECUTE by_tenant(1); EXECUTE by_tenant(1);
EXECUTE by_tenant(3); EXECUTE by_tenant(1);
EXPLAIN (COSTS OFF) EXECUTE by_tenant(5);
DEALLOCATE by_tenant;

-- Inside a transaction, a statement sees the transaction's earlier writes; ROLLBACK undoes them.
BEGIN;
INSERT INTO events VALUES (7, 70, 'click', 1, NULL);
SELECT count(*) FROM events WHERE tenant_id = 7;
SELECT count(*) FROM events;
ROLLBACK;
SELECT count(*) FROM events;

-- A worker's error keeps its SQLSTATE and says which node raised it.
\set VERBOSITY sqlstate
SELECT 1 / (event_id - event_id) FROM events WHERE tenant_id = 1;
\set VERBOSITY default
SELECT 1 / (event_id - event_id) FROM events WHERE tenant_id = 1;

-- INSERT ... SELECT that cannot run on each shard group: the SELECT runs as its own query and
-- its rows go to the shards through the coordinator, in batches (defaults such as bigserial
-- evaluated on the coordinator), inside the transaction.
CREATE TABLE ev_copy (tenant_id bigint NOT NULL, event_id bigint NOT NULL, kind text, amount numeric, id bigserial);
SELECT create_distributed_table('ev_copy', 'event_id', colocate_with => 'none');
EXPLAIN (COSTS OFF) INSERT INTO ev_copy (tenant_id, event_id, kind, amount) SELECT tenant_id, event_id, kind, amount FROM events;
INSERT INTO ev_copy (tenant_id, event_id, kind, amount) SELECT tenant_id, event_id, kind, amount FROM events;
SELECT tenant_id, event_id, kind, amount FROM ev_copy ORDER BY event_id;
SELECT count(DISTINCT id) = count(*) AS ids_unique FROM ev_copy;
-- Aggregated across shards first; RETURNING comes back from the shard.
INSERT INTO ev_copy (tenant_id, event_id, kind) SELECT 0, 1000000 + count(*), 'total' FROM events RETURNING tenant_id, event_id, kind;
-- From a local table, 25000 rows (three batches), with ON CONFLICT on the target's key.
CREATE TABLE staging (tenant_id bigint, event_id bigint, kind text);
INSERT INTO staging SELECT g % 7, g, 'bulk' FROM generate_series(1, 25000) g;
ALTER TABLE ev_copy ADD PRIMARY KEY (event_id);
INSERT INTO ev_copy (tenant_id, event_id, kind) SELECT * FROM staging ON CONFLICT (event_id) DO UPDATE SET kind = excluded.kind || ' (updated)';
SELECT kind, count(*), sum(event_id) FROM ev_copy GROUP BY kind ORDER BY kind;
-- A failure half-way (a NULL distribution value in the last batch) leaves nothing behind.
UPDATE staging SET event_id = NULL WHERE event_id = 24000;
TRUNCATE ev_copy;
INSERT INTO ev_copy (tenant_id, event_id, kind) SELECT * FROM staging;
SELECT count(*) FROM ev_copy;
-- Rolled back with the transaction.
BEGIN;
INSERT INTO ev_copy (tenant_id, event_id, kind) SELECT * FROM staging WHERE event_id IS NOT NULL;
SELECT count(*) FROM ev_copy;
ROLLBACK;
SELECT count(*) FROM ev_copy;
-- Into a reference table, from a distributed one.
CREATE TABLE kind_copy (kind text PRIMARY KEY, n bigint);
SELECT create_reference_table('kind_copy');
EXPLAIN (COSTS OFF) INSERT INTO kind_copy SELECT kind, count(*) FROM events WHERE kind IS NOT NULL GROUP BY kind;
INSERT INTO kind_copy SELECT kind, count(*) FROM events WHERE kind IS NOT NULL GROUP BY kind;
SELECT DISTINCT result FROM run_command_on_all_nodes($$SELECT string_agg(kind || '=' || n, ',' ORDER BY kind) FROM kind_copy_$$ || (SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'kind_copy'::regclass));
DROP TABLE ev_copy, staging, kind_copy;
-- Tabs, newlines, backslashes, a literal \N and NULLs survive the trip (COPY text format);
-- quoted and non-ASCII column names work.
CREATE TABLE "odd Cols" ("Tenant Id" bigint NOT NULL, "ünï" text);
SELECT create_distributed_table('"odd Cols"', 'Tenant Id');
INSERT INTO "odd Cols" SELECT g, CASE g WHEN 1 THEN E'a\tb' WHEN 2 THEN E'line\nbreak' WHEN 3 THEN E'back\\slash' WHEN 4 THEN NULL ELSE '\N' END FROM generate_series(1, 5) g;
SELECT "Tenant Id", "ünï", "ünï" IS NULL AS is_null, length("ünï") FROM "odd Cols" ORDER BY 1;
DROP TABLE "odd Cols";

-- Rows stream from the workers outside a transaction block; a LIMIT above stops the stream
-- and the connections stay usable. Inside a transaction block the rows are read whole, so a
-- cursor and other statements can share the node's connection.
SELECT 1 AS one FROM events LIMIT 2;
SELECT count(*) FROM events;
BEGIN;
DECLARE c CURSOR FOR SELECT event_id FROM events ORDER BY event_id;
FETCH 2 FROM c;
UPDATE events SET amount = amount WHERE tenant_id = 1;
FETCH 2 FROM c;
COMMIT;

-- Subqueries in WHERE that cannot run inside the shard queries (other shards, local tables)
-- run first on the coordinator; their result is a parameter of the shard queries.
EXPLAIN (COSTS OFF) SELECT event_id FROM events WHERE event_id IN (SELECT event_id FROM messages WHERE body = 'hello');
SELECT event_id FROM events WHERE event_id IN (SELECT event_id FROM messages WHERE body LIKE 'h%') ORDER BY 1;
SELECT count(*) FROM events WHERE amount > (SELECT avg(amount) FROM events);
SELECT event_id FROM events WHERE tenant_id = (SELECT max(tenant_id) FROM messages) ORDER BY 1;
SELECT count(*) FROM events WHERE event_id NOT IN (SELECT NULL::bigint UNION ALL SELECT 1);
CREATE TABLE local_kinds (kind text);
INSERT INTO local_kinds VALUES ('buy');
SELECT event_id, kind FROM events WHERE kind IN (SELECT kind FROM local_kinds) ORDER BY 1;
UPDATE events SET amount = amount + 1 WHERE kind IN (SELECT kind FROM local_kinds) AND EXISTS (SELECT 1 FROM messages);
SELECT event_id, amount FROM events WHERE kind = 'buy' ORDER BY 1;
SELECT count(*) FROM events WHERE tenant_id = (SELECT tenant_id FROM messages);
DROP TABLE local_kinds;
-- Writes that read across shards: into a local table through the coordinator, and an UPDATE of
-- a distributed table that joins a local one (its rows go to the shards as parameters).
CREATE TABLE tenant_totals (tenant_id bigint, n bigint);
INSERT INTO tenant_totals SELECT tenant_id, count(*) FROM events GROUP BY tenant_id;
SELECT * FROM tenant_totals ORDER BY 1;
UPDATE events e SET amount = e.amount + 0 * t.n FROM tenant_totals t WHERE e.tenant_id = t.tenant_id AND t.n > 1;
DROP TABLE tenant_totals;
-- In the SELECT list and HAVING too, when the query then runs whole on the workers.
SELECT event_id, amount - (SELECT min(amount) FROM events) AS over_min FROM events WHERE tenant_id = 1 ORDER BY 1;
SELECT tenant_id, count(*) FROM events GROUP BY tenant_id HAVING count(*) > (SELECT count(*) / 3 FROM messages) ORDER BY 1;
-- Combined on the coordinator, which reads the value too.
SELECT kind, count(*) FROM events GROUP BY kind HAVING count(*) > (SELECT 1) ORDER BY 1;
-- The parameters' size is bounded by citus.max_intermediate_result_size.
SET citus.max_intermediate_result_size = 1;
SELECT count(*) FROM events WHERE event_id IN (SELECT g FROM generate_series(1, 1000) g);
RESET citus.max_intermediate_result_size;
SELECT count(*) FROM events WHERE event_id IN (SELECT g FROM generate_series(1, 1000) g);

-- Subqueries and CTEs in FROM that cannot run per shard group run first, each as its own
-- distributed query; the coordinator finishes the query over their rows.
EXPLAIN (COSTS OFF) WITH per_tenant AS (SELECT tenant_id, count(*) AS n FROM events GROUP BY tenant_id)
SELECT max(n), count(*) FROM per_tenant;
WITH per_tenant AS (SELECT tenant_id, count(*) AS n FROM events GROUP BY tenant_id)
SELECT max(n), count(*) FROM per_tenant;
SELECT k.label, s.n FROM (SELECT kind, count(*) AS n FROM events GROUP BY kind) s
  JOIN (VALUES ('buy', 'Purchase'), ('click', 'Click')) AS k (kind, label) USING (kind) ORDER BY 1;
SELECT tenant_id FROM events UNION SELECT tenant_id FROM messages ORDER BY 1;
-- Joined with a distributed table, such a subquery's rows go to the shards as parameters.
EXPLAIN (COSTS OFF) WITH busy AS (SELECT tenant_id, count(*) AS n FROM messages GROUP BY tenant_id ORDER BY n DESC, tenant_id LIMIT 1)
SELECT e.event_id, b.n FROM events e JOIN busy b USING (tenant_id);
WITH busy AS (SELECT tenant_id, count(*) AS n FROM messages GROUP BY tenant_id ORDER BY n DESC, tenant_id LIMIT 1)
SELECT e.event_id, b.n FROM events e JOIN busy b USING (tenant_id) ORDER BY 1;
SELECT tenant_id FROM events WHERE tenant_id < 3 UNION ALL SELECT tenant_id FROM messages ORDER BY 1;

-- An aggregate with DISTINCT and ORDER BY runs over the shards' rows on the coordinator.
SELECT kind, string_agg(DISTINCT kind, ',' ORDER BY kind) FROM events GROUP BY kind;
-- Refused, with the reason and a way out.
SELECT * FROM events e JOIN messages m ON m.event_id = e.event_id;
UPDATE events SET tenant_id = 9 WHERE tenant_id = 1;
UPDATE events SET amount = random() WHERE tenant_id = 1;
INSERT INTO events (event_id, kind) VALUES (1, 'x');
-- (A local table joined with a distributed one: its rows go to the shards as parameters.)
CREATE TABLE local_t (tenant_id bigint, note text);
INSERT INTO local_t VALUES (1, 'first'), (3, 'third');
SELECT tenant_id, event_id, note FROM events JOIN local_t USING (tenant_id) ORDER BY 2;
SELECT l.note, e.event_id FROM local_t l LEFT JOIN events e USING (tenant_id);
DROP TABLE local_t;

-- Foreign keys the shards enforce: between co-located tables on the distribution column, and
-- to a reference table. Existing rows are checked on every shard.
ALTER TABLE messages ADD CONSTRAINT messages_event_fk FOREIGN KEY (tenant_id, event_id) REFERENCES events (tenant_id, event_id);
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_constraint WHERE conname ~ '^messages_event_fk_[0-9]+$'$$);
INSERT INTO messages VALUES (1, 99, 50, 'no such event');
ALTER TABLE events ADD CONSTRAINT events_kind_fk FOREIGN KEY (kind) REFERENCES kinds (kind);
INSERT INTO kinds VALUES ('VIEW', 'View');
ALTER TABLE events ADD CONSTRAINT events_kind_fk FOREIGN KEY (kind) REFERENCES kinds (kind);
INSERT INTO events VALUES (8, 80, 'nope', 1, NULL);
DELETE FROM kinds WHERE kind = 'VIEW';
-- Refused: not on the distribution column, to a local table.
ALTER TABLE messages ADD CONSTRAINT messages_event2_fk FOREIGN KEY (event_id, tenant_id) REFERENCES events (tenant_id, event_id);
CREATE TABLE local_parent (id bigint PRIMARY KEY);
ALTER TABLE messages ADD CONSTRAINT messages_local_fk FOREIGN KEY (tenant_id) REFERENCES local_parent (id);
DROP TABLE local_parent;
SELECT conname FROM pg_constraint WHERE contype = 'f' ORDER BY conname;
SELECT undistribute_table('messages');
ALTER TABLE messages DROP CONSTRAINT messages_event_fk;
ALTER TABLE events DROP CONSTRAINT events_kind_fk;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_constraint WHERE contype = 'f'$$);

-- Foreign keys that exist before create_distributed_table go onto the shards too.
CREATE TABLE fk_parent (tenant_id bigint, id bigint, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('fk_parent', 'tenant_id', colocate_with => 'events');
INSERT INTO fk_parent VALUES (1, 1), (2, 1);
CREATE TABLE fk_child (tenant_id bigint, id bigint, parent_id bigint, kind text REFERENCES kinds (kind),
                       PRIMARY KEY (tenant_id, id),
                       FOREIGN KEY (tenant_id, parent_id) REFERENCES fk_parent (tenant_id, id));
SELECT create_distributed_table('fk_child', 'tenant_id', colocate_with => 'events');
SELECT DISTINCT result FROM run_command_on_workers($$
  SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text ~ '^fk_child_[0-9]+$'$$);
INSERT INTO fk_child VALUES (1, 1, 1, 'click'), (2, 1, 1, 'buy');
INSERT INTO fk_child VALUES (1, 2, 7, 'click');
INSERT INTO fk_child VALUES (1, 3, 1, 'nope');
CREATE TABLE fk_bad (tenant_id bigint, parent_id bigint, FOREIGN KEY (tenant_id, parent_id) REFERENCES fk_parent (tenant_id, id));
SELECT create_distributed_table('fk_bad', 'parent_id', colocate_with => 'events');
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'fk_bad'::regclass;
DROP TABLE fk_bad, fk_child, fk_parent;

-- bigserial: the coordinator evaluates nextval, so ids stay unique across shards.
CREATE TABLE seq_t (tenant_id int NOT NULL, id bigserial, v text, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('seq_t', 'tenant_id');
INSERT INTO seq_t (tenant_id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c');
INSERT INTO seq_t (tenant_id, v) VALUES (1, 'd') RETURNING id;
SELECT tenant_id, id, v FROM seq_t ORDER BY id;
DROP TABLE seq_t;

-- undistribute_table: rows back into the local table, shards and catalog rows gone; in a
-- transaction that rolls back, nothing changes.
BEGIN;
SELECT undistribute_table('events');
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'events'::regclass;
ROLLBACK;
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'events'::regclass;
SELECT count(*) FROM events;
SELECT undistribute_table('messages');
SELECT msg_id, body FROM messages ORDER BY msg_id;
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'messages'::regclass;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_class WHERE relname ~ '^messages_[0-9]+$'$$);
SELECT undistribute_table('messages');
SELECT undistribute_table(NULL);
SELECT undistribute_table('kinds');
SELECT * FROM kinds ORDER BY kind;
SELECT DISTINCT result FROM run_command_on_all_nodes($$SELECT count(*) FROM pg_class WHERE relname ~ '^kinds_[0-9]+$'$$);
