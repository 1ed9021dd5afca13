-- The Tessera walkthrough: each step of the tutorial a Citus user follows, run against the
-- local cluster that `make demo` starts (coordinator 127.0.0.1:9700, workers 9701..9704).
-- Later capabilities add their steps here until the whole scenario runs.

\echo
\echo '== Step 1: install and register the nodes =================================='
\echo 'Every node preloads tessera (shared_preload_libraries) and has run CREATE EXTENSION tessera;'
\echo 'the coordinator registered itself and the workers (scripts/cluster.sh start ran):'
\echo '   SELECT citus_set_coordinator_host(''127.0.0.1'', 9700);'
\echo '   SELECT citus_add_node(''127.0.0.1'', 9701);  -- ... 9704'
\echo
SELECT extname, extversion FROM pg_extension WHERE extname = 'tessera';
SELECT * FROM citus_nodes ORDER BY role, nodeport;
SELECT nodeid, groupid, nodename, nodeport, isactive, shouldhaveshards FROM pg_dist_node ORDER BY nodeid;

\echo
\echo '== The active workers =================================================='
SELECT * FROM citus_get_active_worker_nodes() ORDER BY node_port;

\echo
\echo '== Run a command on every worker, in parallel ==========================='
SELECT nodename, nodeport, success, result
FROM run_command_on_workers($$SELECT format('%s, tessera %s', current_setting('server_version'), tessera_version())$$)
ORDER BY nodeport;

\echo
\echo '== ... and on every node, the coordinator included ========================'
SELECT nodeid, success, result
FROM run_command_on_all_nodes($$SELECT current_setting('port')$$)
ORDER BY nodeid;

\echo
\echo '== A worker error comes back as a row, with the worker''s message ========'
SELECT nodeport, success, result FROM run_command_on_workers('SELECT 1/0') ORDER BY nodeport;

\echo
\echo '== Step 2: row-based sharding ============================================='
\echo 'shared_events is hash-distributed by tenant_id (32 shards over the 4 workers); messages is'
\echo 'colocated with it (same ranges on the same nodes); tiers is a reference table (a copy on'
\echo 'every node). Rows already in a table move into its shards.'
DROP TABLE IF EXISTS messages, shared_events, tiers;
CREATE TABLE shared_events (
    tenant_id bigint NOT NULL,
    event_id bigserial,
    kind text NOT NULL DEFAULT 'click',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);
INSERT INTO shared_events (tenant_id, kind)
SELECT i % 500, (ARRAY['click', 'view', 'buy'])[1 + i % 3] FROM generate_series(1, 1000) i;
SELECT create_distributed_table('shared_events', 'tenant_id');
\echo 'COPY loads the next 99,000 events (here psql''s \\copy from a client-side file): PostgreSQL'
\echo 'parses them once on the coordinator, which hashes each row and streams each shard its rows'
\echo 'with COPY, all nodes at once, in 4 MB batches:'
\copy (SELECT i % 500, (ARRAY['click', 'view', 'buy'])[1 + i % 3] FROM generate_series(1001, 100000) i) TO '/tmp/tessera_demo_events.csv' WITH (FORMAT csv)
\copy shared_events (tenant_id, kind) FROM '/tmp/tessera_demo_events.csv' WITH (FORMAT csv)
SELECT count(*) AS events FROM shared_events;
CREATE EXTENSION IF NOT EXISTS vector;   -- created on every worker too
CREATE TABLE messages (tenant_id bigint NOT NULL, event_id bigint NOT NULL, body text,
                       embedding vector(8),
                       PRIMARY KEY (tenant_id, event_id));
SELECT create_distributed_table('messages', 'tenant_id', colocate_with => 'shared_events');
CREATE TABLE tiers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO tiers VALUES (1, 'free'), (2, 'pro'), (3, 'enterprise');
SELECT create_reference_table('tiers');
SELECT table_name, citus_table_type, distribution_column, colocation_id, shard_count, table_size
FROM citus_tables ORDER BY table_name::text;
SELECT nodeport, count(*) AS shards, pg_size_pretty(sum(shard_size)) AS size
FROM citus_shards GROUP BY nodeport ORDER BY nodeport;
\echo 'An HNSW index on the colocated messages table is built on every shard:'
CREATE INDEX messages_embedding ON messages USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64);
SELECT nodeport, result AS hnsw_shard_indexes
FROM run_command_on_workers($$SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'messages_embedding%'$$)
ORDER BY nodeport;
\echo 'Tenant 42 lives in one shard:'
SELECT get_shard_id_for_distribution_column('shared_events', 42) AS shardid,
       shard_name('shared_events', get_shard_id_for_distribution_column('shared_events', 42)) AS shard_table,
       nodename, nodeport
FROM citus_shards WHERE shardid = get_shard_id_for_distribution_column('shared_events', 42);

\echo
\echo '== The application runs as a role of its own ==============================='
\echo 'Roles, their passwords (as stored verifiers) and grants reach every node: the connections'
\echo 'to the workers run as the application role, with only the privileges it was given.'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_user') THEN
    CREATE ROLE app_user LOGIN PASSWORD 'app-secret';
  END IF;
END $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON shared_events, messages TO app_user;
GRANT SELECT ON tiers TO app_user;
GRANT USAGE ON SEQUENCE shared_events_event_id_seq TO app_user;
SELECT nodeport, result AS app_user_reads_its_shards
  FROM run_command_on_workers($$SELECT bool_and(has_table_privilege('app_user', oid, 'SELECT'))
                                  FROM pg_class WHERE relname ~ '^(shared_events|messages)_[0-9]+$' AND relkind = 'r'$$)
 ORDER BY nodeport;
SET ROLE app_user;
SELECT current_user;

\echo
\echo '== Step 3: distributed queries =========================================='
\echo 'Rows are routed by the hash of tenant_id as they are inserted (multi-row VALUES too):'
DO $$
DECLARE b int;
BEGIN
  FOR b IN 0..3 LOOP
    EXECUTE 'INSERT INTO messages (tenant_id, event_id, body, embedding) VALUES ' ||
      (SELECT string_agg(format('(%s, %s, %L, %L)', i % 500, i, 'message ' || i,
                                '[' || array_to_string(ARRAY[i % 7, i % 5, i % 3, i % 11, 1, i % 2, i % 13, 2], ',') || ']'), ', ')
         FROM generate_series(b * 500 + 1, b * 500 + 500) i);
  END LOOP;
END $$;
SELECT count(*) AS messages FROM messages;
\echo 'A co-located join pinned to one tenant runs whole on the node that holds tenant 42:'
PREPARE tenant_messages(bigint) AS
  SELECT m.event_id, e.kind, m.body
  FROM messages m JOIN shared_events e USING (tenant_id, event_id)
  WHERE tenant_id = $1 ORDER BY m.event_id;
EXPLAIN (COSTS OFF) EXECUTE tenant_messages(42);
EXECUTE tenant_messages(42);
\echo 'A multi-shard aggregate: partial counts on every shard at once, combined on the coordinator:'
EXPLAIN (COSTS OFF) SELECT kind, count(*) FROM shared_events GROUP BY kind ORDER BY kind;
SELECT kind, count(*) FROM shared_events GROUP BY kind ORDER BY kind;
\echo 'The co-located join across all tenants, with the reference table, also runs on the workers:'
SELECT t.name AS tier, count(*) AS messages
FROM messages m JOIN shared_events e USING (tenant_id, event_id)
JOIN tiers t ON t.id = 1 + (e.tenant_id % 3)
GROUP BY t.name ORDER BY t.name;
\echo 'Nearest neighbours: every shard returns its top 5 by cosine distance (its HNSW index); the'
\echo 'coordinator merges:'
EXPLAIN (COSTS OFF) SELECT tenant_id, event_id FROM messages ORDER BY embedding <=> '[1,2,0,3,1,1,4,2]' LIMIT 5;
SELECT tenant_id, event_id, body
FROM messages ORDER BY embedding <=> '[1,2,0,3,1,1,4,2]', tenant_id, event_id LIMIT 5;
\echo 'A CTE that ranks tenants across shards runs first; its rows go to the shards as parameters'
\echo 'and the join with shared_events runs there:'
WITH busiest AS (SELECT tenant_id, count(*) AS n FROM messages GROUP BY tenant_id ORDER BY n DESC, tenant_id LIMIT 3)
SELECT b.tenant_id, b.n AS messages, count(*) AS events
FROM shared_events e JOIN busiest b USING (tenant_id) GROUP BY b.tenant_id, b.n ORDER BY b.tenant_id;
\echo 'INSERT ... SELECT between co-located tables runs on each shard group; any other goes'
\echo 'through the coordinator (here: from a local staging table, sent to the shards with COPY):'
CREATE TEMP TABLE staging AS SELECT 7 AS tenant_id, i AS event_id, 'imported ' || i AS body FROM generate_series(100001, 100100) i;
INSERT INTO messages (tenant_id, event_id, body) SELECT * FROM staging;
SELECT count(*) AS tenant_7_messages FROM messages WHERE tenant_id = 7;
\echo 'COPY loads rows into their shards (PostgreSQL parses them once, on the coordinator):'
COPY messages (tenant_id, event_id, body) FROM STDIN WITH (FORMAT csv);
8,200001,copied one
9,200002,copied two
11,200003,"copied, with a comma"
\.
SELECT tenant_id, event_id, body FROM messages WHERE event_id > 200000 ORDER BY event_id;
\echo 'A transaction that writes on two workers commits with two-phase commit: PREPARE on both,'
\echo 'the decision recorded in pg_dist_transaction, then COMMIT PREPARED on both:'
SELECT count(DISTINCT nodeport) AS nodes_of_tenants_1_and_2 FROM citus_shards
 WHERE shardid IN (get_shard_id_for_distribution_column('messages', 1), get_shard_id_for_distribution_column('messages', 2));
BEGIN;
INSERT INTO messages (tenant_id, event_id, body) VALUES (1, 300001, 'moved from tenant 2');
DELETE FROM messages WHERE tenant_id = 2 AND event_id = 2;
COMMIT;
SELECT groupid, gid ~ '^citus_0_' AS this_coordinators_gid FROM pg_dist_transaction ORDER BY groupid;
RESET ROLE;

\echo
\echo '== Step 4: schema-based sharding ============================================'
\echo 'Each tenant schema lives whole on one node (the least loaded one, or the one you name), and'
\echo 'every statement on its tables runs there whole, in one round trip. The application role'
\echo 'makes and distributes its own schemas (GRANT ... ON DATABASE reaches the workers too).'
DROP SCHEMA IF EXISTS tenant_acme CASCADE;
GRANT CREATE ON DATABASE postgres TO app_user;
SET ROLE app_user;
CREATE SCHEMA tenant_acme;
CREATE TABLE tenant_acme.documents (id BIGSERIAL PRIMARY KEY, body TEXT, embedding vector(1536));
SELECT citus_schema_distribute('tenant_acme');
CREATE INDEX documents_hnsw_idx ON tenant_acme.documents USING hnsw (embedding vector_cosine_ops)
  WITH (m = 16, ef_construction = 64);
\echo 'Rows get their ids from the coordinator''s sequence and go to the schema''s node:'
INSERT INTO tenant_acme.documents (body, embedding)
SELECT 'document ' || i,
       (SELECT ('[' || string_agg(((i * 31 + d * 17) % 2003 / 2003.0)::text, ',') || ']')::vector
          FROM generate_series(1, 1536) d)
  FROM generate_series(1, 2000) i;
-- The shard's statistics: the worker's planner then weighs the HNSW index against a scan.
ANALYZE tenant_acme.documents;
SELECT schema_name, schema_size, schema_owner FROM citus_schemas;
SELECT table_name, citus_table_type, distribution_column, shard_count FROM citus_tables
 WHERE citus_table_type = 'schema';
\echo 'The nearest neighbours of a document: the query goes whole to the schema''s node, where the'
\echo 'HNSW index answers it:'
PREPARE nearest(vector) AS
  SELECT id FROM tenant_acme.documents ORDER BY embedding <=> $1::vector LIMIT 10;
EXPLAIN (COSTS OFF) EXECUTE nearest(array_fill(0.5::real, ARRAY[1536])::vector);
EXECUTE nearest(array_fill(0.5::real, ARRAY[1536])::vector);
\echo 'A document''s own neighbours, found with a subquery on the same node:'
SELECT id, body FROM tenant_acme.documents
 ORDER BY embedding <=> (SELECT embedding FROM tenant_acme.documents ORDER BY id OFFSET 41 LIMIT 1) LIMIT 3;
RESET ROLE;

\echo
\echo '== Step 5: pgvector across shards ==========================================='
\echo 'Document chunks of every tenant in one distributed table (its own 8 shards),'
\echo 'with 1536-dimension embeddings and an HNSW index built on every shard; the application'
\echo 'role loads and searches it.'
DROP TABLE IF EXISTS chunks;
CREATE TABLE chunks (tenant_id bigint NOT NULL, chunk_id bigint NOT NULL, content text,
                     embedding vector(1536), PRIMARY KEY (tenant_id, chunk_id));
SELECT create_distributed_table('chunks', 'tenant_id', colocate_with => 'none', shard_count => 8);
CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
GRANT SELECT, INSERT ON chunks TO app_user;
SET ROLE app_user;
INSERT INTO chunks
SELECT i % 50, i,
       (ARRAY['invoice overdue', 'password reset', 'shipping delay', 'refund request', 'invoice paid'])[1 + i % 5] || ' #' || i,
       (SELECT ('[' || string_agg(sin(i * d * 0.001 + d)::real::text, ',') || ']')::vector FROM generate_series(1, 1536) d)
  FROM generate_series(1, 2000) i;
RESET ROLE;
ANALYZE chunks;
SET ROLE app_user;
\echo 'The session''s hnsw.ef_search reaches every shard query; each shard searches with its own'
\echo 'HNSW index (Task Settings: sorting off, so even a small shard uses the index), all shards'
\echo 'at once, and the coordinator merges the 8 top-10 lists:'
SET hnsw.ef_search = 100;
PREPARE similar_chunks(vector, bigint) AS
  SELECT tenant_id, chunk_id, content, embedding <=> $1 AS distance FROM chunks ORDER BY embedding <=> $1 LIMIT $2;
-- The application sends the query vector as a parameter; here it is chunk 7's embedding.
SELECT embedding AS query_vector FROM chunks WHERE tenant_id = 7 AND chunk_id = 7 \gset
EXPLAIN (COSTS OFF) EXECUTE similar_chunks(:'query_vector', 10);
EXECUTE similar_chunks(:'query_vector', 5);
\echo 'Hybrid search (pgvector''s reciprocal rank fusion of a vector search and a full-text'
\echo 'search) across all tenants:'
WITH semantic AS (
  SELECT chunk_id, rank() OVER (ORDER BY embedding <=> (SELECT embedding FROM chunks WHERE tenant_id = 7 AND chunk_id = 7)) AS rank
    FROM chunks ORDER BY embedding <=> (SELECT embedding FROM chunks WHERE tenant_id = 7 AND chunk_id = 7) LIMIT 20),
keyword AS (
  SELECT chunk_id, rank() OVER (ORDER BY ts_rank_cd(to_tsvector('english', content), query) DESC, chunk_id) AS rank
    FROM chunks, plainto_tsquery('english', 'invoice') query
   WHERE to_tsvector('english', content) @@ query
   ORDER BY ts_rank_cd(to_tsvector('english', content), query) DESC, chunk_id LIMIT 20)
SELECT COALESCE(s.chunk_id, k.chunk_id) AS chunk_id,
       COALESCE(1.0 / (60 + s.rank), 0.0) + COALESCE(1.0 / (60 + k.rank), 0.0) AS score
  FROM semantic s FULL OUTER JOIN keyword k ON s.chunk_id = k.chunk_id
 ORDER BY score DESC, chunk_id LIMIT 5;
\echo 'The same for one tenant runs whole on that tenant''s shard (Router, one task):'
EXPLAIN (COSTS OFF)
WITH semantic AS (
  SELECT chunk_id, rank() OVER (ORDER BY embedding <=> (SELECT embedding FROM chunks WHERE tenant_id = 7 AND chunk_id = 7)) AS rank
    FROM chunks WHERE tenant_id = 7
   ORDER BY embedding <=> (SELECT embedding FROM chunks WHERE tenant_id = 7 AND chunk_id = 7) LIMIT 20),
keyword AS (
  SELECT chunk_id, rank() OVER (ORDER BY ts_rank_cd(to_tsvector('english', content), query) DESC, chunk_id) AS rank
    FROM chunks, plainto_tsquery('english', 'invoice') query
   WHERE tenant_id = 7 AND to_tsvector('english', content) @@ query
   ORDER BY ts_rank_cd(to_tsvector('english', content), query) DESC, chunk_id LIMIT 20)
SELECT COALESCE(s.chunk_id, k.chunk_id) AS chunk_id,
       COALESCE(1.0 / (60 + s.rank), 0.0) + COALESCE(1.0 / (60 + k.rank), 0.0) AS score
  FROM semantic s FULL OUTER JOIN keyword k ON s.chunk_id = k.chunk_id
 ORDER BY score DESC, chunk_id LIMIT 5;
RESET hnsw.ef_search;
RESET ROLE;

\echo
\echo '== The active workers ======================================================'
SELECT * FROM citus_get_active_worker_nodes() ORDER BY node_port;
