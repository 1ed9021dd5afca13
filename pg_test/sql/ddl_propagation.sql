-- DDL propagation: extensions to every node, indexes and TRUNCATE to every shard, inside the
-- user's transaction; a node added later gets the extensions and the reference tables.

-- A node added later: take worker 9804 out now (it holds nothing), add it back at the end.
SELECT citus_remove_node('127.0.0.1', 9804);

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
-- Refused: a unique index without the distribution column; CONCURRENTLY.
CREATE UNIQUE INDEX docs_title_only ON docs (title);
CREATE INDEX CONCURRENTLY docs_conc ON docs (doc_id);
SELECT count(*) FROM pg_indexes WHERE indexname IN ('docs_title_only', 'docs_conc');
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
SELECT citus_add_node('127.0.0.1', 9804) > 0 AS added;
SELECT nodeport FROM citus_shards WHERE table_name = 'plans'::regclass ORDER BY nodeport;
SELECT nodeport, result FROM run_command_on_workers(format($$SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector') || ' / ' ||
  (SELECT string_agg(name, ',' ORDER BY id) FROM %s)$$,
  shard_name('plans', (SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'plans'::regclass)))) ORDER BY nodeport;

-- DROP EXTENSION reaches the workers too.
DROP TABLE docs, plans;
DROP EXTENSION vector;
SELECT DISTINCT result FROM run_command_on_workers($$SELECT count(*) FROM pg_extension WHERE extname = 'vector'$$);
