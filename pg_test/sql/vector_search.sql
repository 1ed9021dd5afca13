-- pgvector across shards, as an application role: every distance operator and vector type,
-- expression indexes, each shard's ANN index used (EXPLAIN), the session's pgvector settings
-- and timeouts reaching the shard queries, parameters and generic plans, ANN in CTEs and
-- subqueries, and hybrid search (vector + full text, fused by reciprocal rank).
-- The same data in a plain table answers every query; with hnsw.ef_search above the table's
-- size an HNSW search is exact, so the answers must match row for row.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE ROLE ann_app LOGIN;
CREATE SCHEMA ann AUTHORIZATION ann_app;
SET ROLE ann_app;
SET search_path = ann, public;
CREATE TABLE items (tenant_id int NOT NULL, id int NOT NULL, embedding vector(3), h halfvec(3),
                    s sparsevec(4), b bit(8), body text, PRIMARY KEY (tenant_id, id));
INSERT INTO items SELECT i % 10, i, ARRAY[sin(i), cos(i), sin(2 * i)]::real[]::vector,
       ARRAY[cos(i), sin(3 * i), 0.5]::real[]::halfvec,
       ARRAY[sin(i), 0, cos(2 * i), 1]::real[]::vector::sparsevec,
       ((i * 37) % 256)::bit(8), 'item ' || i
  FROM generate_series(1, 400) i;
CREATE TABLE items_local AS SELECT * FROM items;
SELECT create_distributed_table('items', 'tenant_id', shard_count => 8);
CREATE INDEX items_l2 ON items USING hnsw (embedding vector_l2_ops);
CREATE INDEX items_ip ON items USING hnsw (embedding vector_ip_ops);
CREATE INDEX items_cos ON items USING hnsw (embedding vector_cosine_ops);
CREATE INDEX items_l1 ON items USING hnsw (embedding vector_l1_ops);
CREATE INDEX items_half ON items USING hnsw (h halfvec_l2_ops);
CREATE INDEX items_sparse ON items USING hnsw (s sparsevec_ip_ops);
CREATE INDEX items_hamming ON items USING hnsw (b bit_hamming_ops);
CREATE INDEX items_jaccard ON items USING hnsw (b bit_jaccard_ops);
CREATE INDEX items_expr ON items USING hnsw ((embedding::halfvec(3)) halfvec_cosine_ops);
ANALYZE items;

-- Every row of a query's result, in order, as text: the same text from the distributed table
-- and the plain one means the same answer.
CREATE FUNCTION rows_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record; out text := '';
BEGIN
  FOR r IN EXECUTE q LOOP out := out || r::text || E'\n'; END LOOP;
  RETURN out;
END $$;
CREATE FUNCTION same(q text) RETURNS boolean LANGUAGE sql AS $$
  SELECT rows_of(replace(q, 'TBL', 'items')) = rows_of(replace(q, 'TBL', 'items_local'))
     AND rows_of(replace(q, 'TBL', 'items')) <> '' $$;

-- Each shard query runs its ORDER BY ... LIMIT with its own index, even on these small
-- shards (the task runs with enable_sort off); the coordinator sorts the union and limits.
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding <-> '[1,0,0]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding <#> '[1,0,0]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding <=> '[1,0,0]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding <+> '[1,0,0]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY h <-> '[1,0,0]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY s <#> '{1:1,4:1}/4' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY b <~> '10101010' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY b <%> '10101010' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding::halfvec(3) <=> '[1,0,0]' LIMIT 5;
-- Off: the shards plan as they like (a scan and sort on shards this small).
SET tessera.enable_ann_index_scan = off;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding <-> '[1,0,0]' LIMIT 5;
RESET tessera.enable_ann_index_scan;

-- The same answers as the plain table (exact: ef_search above the table's size).
SET hnsw.ef_search = 500;
SELECT id, embedding <-> '[1,0,0]' AS d FROM items ORDER BY embedding <-> '[1,0,0]' LIMIT 5;
SELECT same($$SELECT id, embedding <-> '[1,0,0]' AS d FROM TBL ORDER BY embedding <-> '[1,0,0]' LIMIT 10$$) AS l2,
       same($$SELECT id, embedding <#> '[0.3,-1,0.2]' AS d FROM TBL ORDER BY embedding <#> '[0.3,-1,0.2]' LIMIT 10$$) AS ip,
       same($$SELECT id, embedding <=> '[1,1,0]' AS d FROM TBL ORDER BY embedding <=> '[1,1,0]' LIMIT 10$$) AS cosine,
       same($$SELECT id, embedding <+> '[0,1,0]' AS d FROM TBL ORDER BY embedding <+> '[0,1,0]' LIMIT 10$$) AS l1,
       same($$SELECT h <-> '[1,0,0.5]' FROM TBL ORDER BY h <-> '[1,0,0.5]' LIMIT 10$$) AS halfvec,
       same($$SELECT id FROM TBL ORDER BY s <#> '{1:1,4:1}/4' LIMIT 10$$) AS sparsevec,
       same($$SELECT embedding::halfvec(3) <=> '[1,0,0]' FROM TBL ORDER BY embedding::halfvec(3) <=> '[1,0,0]' LIMIT 10$$) AS expression;
-- Half-precision and bit vectors have equal distances (ties broken either way): for them the
-- distances must match.
SELECT same($$SELECT b <~> '10101010' FROM TBL ORDER BY b <~> '10101010' LIMIT 12$$) AS hamming,
       same($$SELECT b <%> '10101010' FROM TBL ORDER BY b <%> '10101010' LIMIT 12$$) AS jaccard;
-- OFFSET: each shard returns LIMIT + OFFSET rows.
SELECT same($$SELECT id FROM TBL ORDER BY embedding <-> '[0,0,1]' LIMIT 4 OFFSET 7$$) AS offset_ok;
-- A filter is pushed down; the distance in the select list comes from the shards.
EXPLAIN (COSTS OFF) SELECT id, embedding <-> '[1,0,0]' FROM items WHERE body LIKE '%7' ORDER BY embedding <-> '[1,0,0]' LIMIT 3;
SELECT same($$SELECT id, embedding <-> '[1,0,0]' FROM TBL WHERE body LIKE '%7' ORDER BY embedding <-> '[1,0,0]' LIMIT 3$$) AS filtered;
-- A filter on the distribution column routes to one shard.
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE tenant_id = 3 ORDER BY embedding <=> '[1,0,0]' LIMIT 3;
SELECT same($$SELECT id FROM TBL WHERE tenant_id = 3 ORDER BY embedding <=> '[1,0,0]' LIMIT 3$$) AS routed;

-- Parameters, LIMIT $2, a generic plan and its EXPLAIN.
PREPARE nn(vector, bigint) AS SELECT id FROM items ORDER BY embedding <=> $1 LIMIT $2;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE nn('[0,1,0]', 4);
EXECUTE nn('[0,1,0]', 4);
SELECT id FROM items_local ORDER BY embedding <=> '[0,1,0]' LIMIT 4;
PREPARE nn_offset(vector, bigint, bigint) AS SELECT id FROM items ORDER BY embedding <-> $1 LIMIT $2 OFFSET $3;
EXECUTE nn_offset('[0,1,0]', 3, 2);
SELECT id FROM items_local ORDER BY embedding <-> '[0,1,0]' LIMIT 3 OFFSET 2;
RESET plan_cache_mode;

-- ANN in a CTE and in a subquery, joined back to the table.
SELECT same($$WITH nn AS (SELECT tenant_id, id FROM TBL ORDER BY embedding <=> '[1,0,0]' LIMIT 5)
  SELECT nn.id, t.body FROM nn JOIN TBL t USING (tenant_id, id) ORDER BY nn.id$$) AS cte,
       same($$SELECT x.id, x.d FROM (SELECT id, embedding <-> '[0,0,1]' AS d FROM TBL ORDER BY 2 LIMIT 6) x
  WHERE x.id % 3 <> 0 ORDER BY x.d$$) AS subquery;

-- Ranked by the distance to a row's own vector (a subquery, run first and sent as a parameter).
SELECT same($$SELECT id, rank() OVER (ORDER BY embedding <-> (SELECT embedding FROM TBL WHERE tenant_id = 3 AND id = 3))
  FROM TBL ORDER BY embedding <-> (SELECT embedding FROM TBL WHERE tenant_id = 3 AND id = 3) LIMIT 5$$) AS ranked_by_subquery;

-- Session settings follow the statement: with hnsw.ef_search = 1 each shard's search returns
-- one candidate, so LIMIT 20 over the 7 shards (of 8) that hold rows gives 7 rows; SET LOCAL
-- ends with its transaction.
SET hnsw.ef_search = 1;
SELECT count(*) FROM (SELECT id FROM items ORDER BY embedding <-> '[1,0,0]' LIMIT 20) x;
RESET hnsw.ef_search;
BEGIN;
SET LOCAL hnsw.ef_search = 1;
SELECT id FROM items ORDER BY embedding <-> '[1,0,0]' LIMIT 20;
COMMIT;
SELECT count(*) FROM (SELECT id FROM items ORDER BY embedding <-> '[1,0,0]' LIMIT 20) x;
-- Filtered ANN with an iterative scan returns k rows when k exist (and uses the index).
SET hnsw.ef_search = 10;
SET hnsw.iterative_scan = strict_order;
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE body LIKE '%3' ORDER BY embedding <-> '[1,0,0]' LIMIT 8;
SELECT count(*) FROM (SELECT id FROM items WHERE body LIKE '%3' ORDER BY embedding <-> '[1,0,0]' LIMIT 8) x;
RESET hnsw.iterative_scan;
RESET hnsw.ef_search;
-- Per-shard ef_search scaled to the shards searched.
SET tessera.ann_ef_search_scaling = on;
SET hnsw.ef_search = 64;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding <-> '[1,0,0]' LIMIT 5;
RESET hnsw.ef_search;
RESET tessera.ann_ef_search_scaling;
-- The list of settings that follow: statement_timeout among them.
SHOW tessera.propagate_settings;
-- A search's own settings last for its statement: a later command on the same connections
-- (here the user's own, through run_command_on_workers) runs with the node's defaults, also
-- after a ROLLBACK TO SAVEPOINT undid the reset on the nodes.
SELECT count(*) FROM (SELECT id FROM items ORDER BY embedding <-> '[1,0,0]' LIMIT 3) x;
SELECT DISTINCT result AS enable_sort FROM run_command_on_workers('SHOW enable_sort');
CREATE FUNCTION node_setting(name text) RETURNS text LANGUAGE plpgsql VOLATILE AS
  $$ BEGIN RETURN current_setting(name); END $$;
BEGIN;
SELECT id FROM items ORDER BY embedding <-> '[1,0,0]' LIMIT 1;
SAVEPOINT s;
SELECT count(*) FROM items;
ROLLBACK TO SAVEPOINT s;
-- (A volatile function runs on the shards, here on the transaction's connections.)
SELECT DISTINCT node_setting('enable_sort') AS enable_sort FROM items;
COMMIT;
SELECT DISTINCT result AS enable_sort FROM run_command_on_workers('SHOW enable_sort');
-- The listed settings of PostgreSQL's own reach the shard queries (read there by a volatile
-- function, which runs on the shards), and RESET gives the nodes their defaults back.
SET work_mem = '5MB';
SET statement_timeout = '77s';
SET maintenance_work_mem = '99MB';
SELECT DISTINCT node_setting('work_mem') AS work_mem, node_setting('statement_timeout') AS statement_timeout,
       node_setting('maintenance_work_mem') AS maintenance_work_mem FROM items;
RESET work_mem;
RESET statement_timeout;
RESET maintenance_work_mem;
SELECT DISTINCT node_setting('work_mem') AS work_mem, node_setting('statement_timeout') AS statement_timeout FROM items;
-- Settings that decide how a node reads what it is sent cannot be listed.
SET tessera.propagate_settings = 'search_path, extra_float_digits, work_mem';
SET search_path = public, ann;
SET work_mem = '6MB';
SELECT DISTINCT node_setting('search_path') <> 'public, ann' AS search_path_kept, node_setting('work_mem') AS work_mem FROM ann.items;
RESET work_mem;
SET search_path = ann, public;
RESET tessera.propagate_settings;
-- Row-level security filters the rows after the search: the shards plan as they like.
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE items FORCE ROW LEVEL SECURITY;
CREATE POLICY not_three ON items USING (tenant_id <> 3);
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding <-> '[1,0,0]' LIMIT 5;
ALTER TABLE items NO FORCE ROW LEVEL SECURITY;
ALTER TABLE items DISABLE ROW LEVEL SECURITY;
DROP POLICY not_three ON items;
-- No index serves cosine distance on h: the shards plan as they like.
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY h <=> '[1,0,0]' LIMIT 5;
-- LIMIT and OFFSET parameters as large as bigint goes: no overflow on the shards.
PREPARE page(bigint, bigint) AS SELECT id FROM items WHERE id <= 12 ORDER BY id LIMIT $1 OFFSET $2;
SET plan_cache_mode = force_generic_plan;
EXECUTE page(9223372036854775807, 5);
EXECUTE page(NULL, 10);
EXECUTE page(2, 9223372036854775807);
RESET plan_cache_mode;

-- Hybrid search, as pgvector's documentation writes it (reciprocal rank fusion of a vector
-- search and a full-text search, ties broken by id), on the distributed table and the plain one.
CREATE TABLE docs (tenant_id int NOT NULL, id int NOT NULL, content text, embedding vector(3), PRIMARY KEY (tenant_id, id));
INSERT INTO docs SELECT i % 10, i, (ARRAY['red apple pie', 'green apple', 'blue sky', 'apple tree in the sky', 'sky high pie'])[1 + i % 5] || ' ' || i,
       ARRAY[sin(i), cos(i), sin(2 * i)]::real[]::vector FROM generate_series(1, 500) i;
CREATE TABLE docs_local AS SELECT * FROM docs;
SELECT create_distributed_table('docs', 'tenant_id', shard_count => 8);
CREATE INDEX ON docs USING hnsw (embedding vector_l2_ops);
SET hnsw.ef_search = 500;
\set hybrid 'WITH semantic_search AS (SELECT id, rank() OVER (ORDER BY embedding <-> ''[1,0,0]'') AS rank FROM TBL WHERE FILTER ORDER BY embedding <-> ''[1,0,0]'' LIMIT 20), keyword_search AS (SELECT id, rank() OVER (ORDER BY ts_rank_cd(to_tsvector(''english'', content), query) DESC, id) FROM TBL, plainto_tsquery(''english'', ''apple pie'') query WHERE FILTER AND to_tsvector(''english'', content) @@ query ORDER BY ts_rank_cd(to_tsvector(''english'', content), query) DESC, id LIMIT 20) SELECT COALESCE(semantic_search.id, keyword_search.id) AS id, COALESCE(1.0 / (60 + semantic_search.rank), 0.0) + COALESCE(1.0 / (60 + keyword_search.rank), 0.0) AS score FROM semantic_search FULL OUTER JOIN keyword_search ON semantic_search.id = keyword_search.id ORDER BY score DESC, id LIMIT 5'
SELECT replace(replace(:'hybrid', 'TBL', 'docs'), 'FILTER', 'true') AS hybrid_all,
       replace(replace(:'hybrid', 'TBL', 'docs'), 'FILTER', 'tenant_id = 3') AS hybrid_tenant \gset
:hybrid_all;
SELECT rows_of(replace(replace(:'hybrid', 'TBL', 'docs'), 'FILTER', 'true'))
     = rows_of(replace(replace(:'hybrid', 'TBL', 'docs_local'), 'FILTER', 'true')) AS hybrid_same;
EXPLAIN (COSTS OFF) :hybrid_all;
-- The tenant's hybrid search runs whole on the tenant's shard.
EXPLAIN (COSTS OFF) :hybrid_tenant;
SELECT rows_of(replace(replace(:'hybrid', 'TBL', 'docs'), 'FILTER', 'tenant_id = 3'))
     = rows_of(replace(replace(:'hybrid', 'TBL', 'docs_local'), 'FILTER', 'tenant_id = 3')) AS hybrid_tenant_same;
RESET hnsw.ef_search;

-- CREATE INDEX CONCURRENTLY of an HNSW index: writes go on while the shards' indexes are
-- built, at most tessera.max_index_builds_per_node at a time per node, every node at once.
CREATE TABLE chunks (tenant_id int NOT NULL, id int NOT NULL, embedding vector(3), PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('chunks', 'tenant_id', shard_count => 8);
INSERT INTO chunks SELECT i % 10, i, ARRAY[sin(i), cos(i), sin(2 * i)]::real[]::vector FROM generate_series(1, 300) i;
SET tessera.max_index_builds_per_node = 2;
CREATE INDEX CONCURRENTLY chunks_hnsw ON chunks USING hnsw (embedding vector_l2_ops);
RESET tessera.max_index_builds_per_node;
SELECT sum(result::int) AS valid_shard_indexes FROM run_command_on_workers($$
  SELECT count(*) FROM pg_index WHERE indisvalid AND indexrelid::regclass::text LIKE 'ann.chunks_hnsw%'$$);
ANALYZE chunks;
EXPLAIN (COSTS OFF) SELECT id FROM chunks ORDER BY embedding <-> '[1,0,0]' LIMIT 3;
-- A shard whose build fails keeps an invalid index, as CONCURRENTLY does on one node; the
-- error says what to do.
ALTER TABLE chunks DROP CONSTRAINT chunks_pkey;
INSERT INTO chunks VALUES (1, 1, '[1,0,0]');
CREATE UNIQUE INDEX CONCURRENTLY chunks_unique ON chunks (tenant_id, id);
SELECT sum(result::int) AS invalid_shard_indexes FROM run_command_on_workers($$
  SELECT count(*) FROM pg_index WHERE NOT indisvalid AND indexrelid::regclass::text LIKE 'ann.chunks_unique%'$$);
DROP INDEX CONCURRENTLY chunks_unique;
DROP INDEX CONCURRENTLY chunks_hnsw;
SELECT sum(result::int) AS shard_indexes_left FROM run_command_on_workers($$
  SELECT count(*) FROM pg_class WHERE relname LIKE 'chunks_hnsw%' OR relname LIKE 'chunks_unique%'$$);
-- The builds running on the workers, with their phase (none now).
SELECT count(*) FROM tessera_index_build_progress;

RESET ROLE;
DROP SCHEMA ann CASCADE;
DROP ROLE ann_app;
