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

-- Refused, with the reason and a way out.
SELECT * FROM events e JOIN messages m ON m.event_id = e.event_id;
SELECT kind, count(DISTINCT tenant_id) FROM events GROUP BY kind;
UPDATE events SET tenant_id = 9 WHERE tenant_id = 1;
UPDATE events SET amount = random() WHERE tenant_id = 1;
INSERT INTO events (event_id, kind) VALUES (1, 'x');
INSERT INTO events SELECT * FROM events;
CREATE TABLE local_t (tenant_id bigint);
SELECT * FROM events JOIN local_t USING (tenant_id);
DROP TABLE local_t;
