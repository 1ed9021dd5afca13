-- Schema-based sharding: citus_schema_distribute / _undistribute / _move, the setting
-- citus.enable_schema_based_sharding, the routing of every statement shape to the schema's
-- node (one task), and the refusals. It runs as an application role that owns its schemas,
-- and each answer is compared with the same rows in a plain schema: the same query text runs
-- under `search_path = plain_acme, public` and `search_path = tenant_acme, public`.
SET timezone = 'UTC';
-- The lines of a plan that say where it runs.
CREATE FUNCTION public.plan_lines(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    IF l ~ '(Tier|Task Count|Node):' THEN RETURN NEXT btrim(l); END IF;
  END LOOP;
END $$;
-- Every line of a plan.
CREATE FUNCTION public.explain_lines(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN RETURN QUERY EXECUTE q; END $$;
-- The same query under the plain schema and under the tenant schema: 'same' and the row
-- count, or both answers.
CREATE FUNCTION public.same_answer(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE a text; b text; n bigint;
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'plain_acme, public', true);
  EXECUTE format('SELECT count(*), coalesce(string_agg(r::text, E''\n'' ORDER BY r::text), '''') FROM (%s) r', q) INTO n, a;
  PERFORM pg_catalog.set_config('search_path', 'tenant_acme, public', true);
  EXECUTE format('SELECT coalesce(string_agg(r::text, E''\n'' ORDER BY r::text), '''') FROM (%s) r', q) INTO b;
  PERFORM pg_catalog.set_config('search_path', 'public', true);
  RETURN CASE WHEN a = b THEN 'same, ' || n || ' rows' ELSE 'DIFFERENT: ' || a || ' <> ' || b END;
END $$;
CREATE ROLE tenant_app LOGIN;
CREATE ROLE tenant_reader LOGIN;
-- GRANT ... ON DATABASE reaches the workers (the schemas are made there too).
GRANT CREATE ON DATABASE postgres TO tenant_app;
SELECT nodeport, result FROM run_command_on_workers($$SELECT has_database_privilege('tenant_app', 'postgres', 'CREATE')$$) ORDER BY nodeport;
CREATE TABLE public.plans (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO public.plans VALUES (1, 'free'), (2, 'pro'), (3, 'team');
SELECT create_reference_table('public.plans');
GRANT SELECT, REFERENCES ON public.plans TO tenant_app;
GRANT SELECT ON public.plans TO tenant_reader;
CREATE TABLE public.audit_local (id int PRIMARY KEY);
GRANT SELECT, REFERENCES ON public.audit_local TO tenant_app;

SET ROLE tenant_app;
-- The plain schema (with its own copy of plans) and the tenant schema, the same rows.
CREATE SCHEMA plain_acme;
CREATE TABLE plain_acme.plans (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO plain_acme.plans SELECT * FROM public.plans;
CREATE SCHEMA "tenant_acme";
DO $$
DECLARE s text;
BEGIN
  FOREACH s IN ARRAY ARRAY['plain_acme', 'tenant_acme'] LOOP
    EXECUTE format('CREATE TABLE %I.documents (id bigserial PRIMARY KEY, plan_id int NOT NULL REFERENCES %s (id),
                    title text NOT NULL, score float8, created date DEFAULT ''2026-01-01'')',
                   s, CASE s WHEN 'plain_acme' THEN 'plain_acme.plans' ELSE 'public.plans' END);
    EXECUTE format('CREATE TABLE %I.chunks (doc_id bigint NOT NULL REFERENCES %I.documents (id), n int NOT NULL,
                    content text, PRIMARY KEY (doc_id, n))', s, s);
    EXECUTE format('INSERT INTO %I.documents (plan_id, title, score)
                    SELECT 1 + i %% 3, ''doc '' || i, i * 1.5 FROM generate_series(1, 30) i', s);
    EXECUTE format('INSERT INTO %I.chunks SELECT d, n, repeat(''w'', n) FROM generate_series(1, 30) d,
                    generate_series(1, d %% 4) n', s);
  END LOOP;
END $$;
-- The tables, their rows and their foreign keys go to one node: the least loaded.
SELECT citus_schema_distribute('tenant_acme');
SELECT schema_name, colocation_id > 0 AS has_group, schema_owner FROM citus_schemas;
SELECT table_name, citus_table_type, distribution_column, shard_count, table_owner
  FROM citus_tables WHERE table_name::text LIKE 'tenant_acme.%' ORDER BY 1;
SELECT DISTINCT nodeport FROM citus_shards WHERE table_name::text LIKE 'tenant_acme.%';
SELECT count(*) FROM tenant_acme.documents;
SELECT public.same_answer('SELECT * FROM documents');
SELECT public.same_answer('SELECT * FROM chunks');
-- The foreign keys hold on the node.
INSERT INTO tenant_acme.chunks VALUES (999, 1, 'x');
INSERT INTO tenant_acme.documents (id, plan_id, title) VALUES (1000, 42, 'no such plan');

-- Every statement shape runs whole on the schema's node, in one task.
SET search_path = tenant_acme, public;
SELECT * FROM public.plan_lines('SELECT d.title, p.name FROM documents d JOIN plans p ON p.id = d.plan_id WHERE d.id < 3');
SELECT * FROM public.plan_lines('SELECT plan_id, count(*), avg(score) FROM documents GROUP BY plan_id ORDER BY 1');
SELECT * FROM public.plan_lines('WITH big AS (SELECT doc_id FROM chunks GROUP BY doc_id HAVING count(*) > 2) SELECT count(*) FROM documents WHERE id IN (SELECT doc_id FROM big)');
SELECT * FROM public.plan_lines('SELECT id, rank() OVER (PARTITION BY plan_id ORDER BY score DESC) FROM documents');
SELECT * FROM public.plan_lines('SELECT id FROM documents d WHERE score > (SELECT avg(score) FROM documents e WHERE e.plan_id = d.plan_id)');
SELECT * FROM public.plan_lines('UPDATE documents SET score = score + 1 WHERE id = 1 RETURNING id, score');
SELECT * FROM public.plan_lines('INSERT INTO chunks VALUES (1, 7, ''c'') ON CONFLICT (doc_id, n) DO UPDATE SET content = excluded.content RETURNING *');
SELECT * FROM public.plan_lines('WITH gone AS (DELETE FROM chunks WHERE doc_id = 2 RETURNING *) INSERT INTO chunks SELECT doc_id, n + 100, content FROM gone');
SELECT * FROM public.plan_lines('SELECT d.id FROM documents d, LATERAL (SELECT count(*) c FROM chunks WHERE doc_id = d.id) x WHERE x.c > 2 ORDER BY 1 LIMIT 3');
SELECT * FROM public.plan_lines('SELECT * FROM documents FOR UPDATE');

-- The same answers as the plain schema.
SELECT public.same_answer('SELECT d.title, p.name FROM documents d JOIN plans p ON p.id = d.plan_id');
SELECT public.same_answer('SELECT plan_id, count(*), avg(score), max(created) FROM documents GROUP BY plan_id');
SELECT public.same_answer('WITH big AS (SELECT doc_id FROM chunks GROUP BY doc_id HAVING count(*) > 2) SELECT count(*) FROM documents WHERE id IN (SELECT doc_id FROM big)');
SELECT public.same_answer('SELECT id, rank() OVER (PARTITION BY plan_id ORDER BY score DESC), lag(title) OVER (ORDER BY id) FROM documents');
SELECT public.same_answer('SELECT id FROM documents d WHERE score > (SELECT avg(score) FROM documents e WHERE e.plan_id = d.plan_id)');
SELECT public.same_answer('SELECT d.id, x.c FROM documents d, LATERAL (SELECT count(*) c FROM chunks WHERE doc_id = d.id) x ORDER BY x.c DESC, d.id LIMIT 5');
SELECT public.same_answer('SELECT DISTINCT ON (plan_id) plan_id, title FROM documents ORDER BY plan_id, score DESC');
SELECT public.same_answer('SELECT plan_id, n, count(*) FROM documents JOIN chunks ON doc_id = id GROUP BY GROUPING SETS ((plan_id), (n), ())');
SELECT public.same_answer('SELECT id FROM documents WHERE EXISTS (SELECT 1 FROM chunks WHERE doc_id = id AND n = 3) UNION SELECT 0');
SELECT public.same_answer('WITH RECURSIVE r(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM r WHERE k < 5) SELECT k, (SELECT title FROM documents WHERE id = k) FROM r');

-- Writes, the same on both: RETURNING, ON CONFLICT, a data-modifying WITH, a default from the
-- coordinator's sequence (the INSERT planner evaluates nextval() there).
DO $$
DECLARE s text;
BEGIN
  FOREACH s IN ARRAY ARRAY['plain_acme', 'tenant_acme'] LOOP
    PERFORM pg_catalog.set_config('search_path', s || ', public', true);
    UPDATE documents SET score = score * 2 WHERE plan_id = 2;
    DELETE FROM chunks WHERE n = 3;
    INSERT INTO chunks VALUES (1, 1, 'replaced'), (5, 9, 'new') ON CONFLICT (doc_id, n) DO UPDATE SET content = excluded.content;
    WITH gone AS (DELETE FROM chunks WHERE doc_id = 2 RETURNING *) INSERT INTO chunks SELECT doc_id, n + 100, content FROM gone;
    INSERT INTO documents (plan_id, title) VALUES (3, 'later one'), (1, 'later two');
    UPDATE documents d SET title = d.title || ' (' || p.name || ')' FROM plans p WHERE p.id = d.plan_id AND d.id > 28;
  END LOOP;
END $$;
SELECT public.same_answer('SELECT * FROM documents');
SELECT public.same_answer('SELECT * FROM chunks');
UPDATE documents SET score = -1 WHERE id = 3 RETURNING id, title, score;
SELECT count(*) = count(DISTINCT id) AS ids_unique, max(id) FROM documents;
-- Prepared statements with generic plans: the plan cache keeps the routed plan.
SET plan_cache_mode = force_generic_plan;
PREPARE doc(bigint) AS SELECT title FROM documents WHERE id = $1;
EXECUTE doc(4);
EXECUTE doc(5);
SELECT * FROM public.plan_lines('EXECUTE doc(6)');
PREPARE add_chunk(bigint, int, text) AS INSERT INTO chunks VALUES ($1, $2, $3) RETURNING n;
EXECUTE add_chunk(6, 50, 'a');
EXECUTE add_chunk(6, 51, 'b');
SELECT count(*) FROM chunks WHERE doc_id = 6 AND n >= 50;
RESET plan_cache_mode;
DEALLOCATE doc;
DEALLOCATE add_chunk;
-- The plain schema gets the same writes.
UPDATE plain_acme.documents SET score = -1 WHERE id = 3;
INSERT INTO plain_acme.chunks VALUES (6, 50, 'a'), (6, 51, 'b');
-- MERGE runs whole on the schema's node too (PostgreSQL 15's deparser prints no MERGE:
-- Tessera prints it from its parts), and changes the same rows as on the plain schema: every
-- action kind, conditions, a WITH query, a VALUES source, a reference table, defaults.
SELECT * FROM public.plan_lines('MERGE INTO chunks c USING documents d ON c.doc_id = d.id AND c.n = 1 WHEN MATCHED THEN UPDATE SET content = ''merged''');
-- The statement the node gets.
SELECT btrim(l) AS task_query FROM public.explain_lines($q$EXPLAIN (VERBOSE, COSTS OFF)
  MERGE INTO chunks c USING (VALUES (1, 1, 'one'), (7, 70, 'seventy')) v(d, n, t) ON c.doc_id = v.d AND c.n = v.n
  WHEN MATCHED AND c.content IS DISTINCT FROM v.t THEN UPDATE SET content = v.t
  WHEN NOT MATCHED THEN INSERT VALUES (v.d, v.n, v.t)$q$) l WHERE l ~ 'Query:|Merge on';
DO $$
DECLARE s text;
BEGIN
  FOREACH s IN ARRAY ARRAY['plain_acme', 'tenant_acme'] LOOP
    PERFORM pg_catalog.set_config('search_path', s || ', public', true);
    MERGE INTO chunks c USING documents d ON c.doc_id = d.id AND c.n = 1
      WHEN MATCHED AND d.plan_id = 1 THEN UPDATE SET content = c.content || ' / ' || d.title
      WHEN MATCHED AND d.plan_id = 2 THEN DELETE
      WHEN NOT MATCHED AND d.id % 5 = 0 THEN INSERT (doc_id, n, content) VALUES (d.id, 1, 'made for ' || d.title)
      WHEN NOT MATCHED THEN DO NOTHING;
    WITH wanted AS (SELECT documents.id, p.name FROM documents JOIN plans p ON p.id = documents.plan_id WHERE documents.id BETWEEN 3 AND 9)
    MERGE INTO documents t USING wanted w ON t.id = w.id
      WHEN MATCHED THEN UPDATE SET title = w.name || ': ' || t.title, score = coalesce(t.score, 0) + 1;
    MERGE INTO documents t USING (VALUES (500::bigint, 3, 'merged in'), (4, 1, 'kept')) v(id, plan, title) ON t.id = v.id
      WHEN NOT MATCHED THEN INSERT (id, plan_id, title) VALUES (v.id, v.plan, v.title);
  END LOOP;
END $$;
SELECT public.same_answer('SELECT * FROM documents');
SELECT public.same_answer('SELECT * FROM chunks');
-- A prepared MERGE with a generic plan (an upsert by parameters).
SET plan_cache_mode = force_generic_plan;
PREPARE upsert(bigint, int, text) AS MERGE INTO chunks c USING (SELECT $1 AS d, $2 AS n) k ON c.doc_id = k.d AND c.n = k.n
  WHEN MATCHED THEN UPDATE SET content = $3 WHEN NOT MATCHED THEN INSERT VALUES (k.d, k.n, $3);
EXECUTE upsert(8, 60, 'first');
EXECUTE upsert(8, 60, 'second');
EXECUTE upsert(9, 60, 'third');
SELECT * FROM public.plan_lines('EXECUTE upsert(10, 60, ''x'')');
SELECT doc_id, n, content FROM chunks WHERE n = 60 ORDER BY doc_id;
DEALLOCATE upsert;
RESET plan_cache_mode;
INSERT INTO plain_acme.chunks VALUES (8, 60, 'second'), (9, 60, 'third');
SELECT public.same_answer('SELECT * FROM chunks');
-- More MERGE shapes, the same on both schemas: a join and a subquery as the source, sublinks
-- in ON / WHEN / SET, quoted and unicode names, OVERRIDING SYSTEM VALUE into an identity
-- column, a generated column, DEFAULT VALUES.
DO $$
DECLARE s text;
BEGIN
  FOREACH s IN ARRAY ARRAY['plain_acme', 'tenant_acme'] LOOP
    PERFORM pg_catalog.set_config('search_path', s || ', public', true);
    EXECUTE 'CREATE TABLE "Größe ""x""" (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "Wert" int DEFAULT 5, doubled int GENERATED ALWAYS AS ("Wert" * 2) STORED, note text)';
    INSERT INTO "Größe ""x""" OVERRIDING SYSTEM VALUE VALUES (1, 10), (2, 20);
    MERGE INTO "Größe ""x""" AS "Ziel" USING (SELECT d.id, coalesce(c.n, 1) AS n FROM documents d LEFT JOIN chunks c ON c.doc_id = d.id AND c.n = 1 WHERE d.id <= 4) AS "Quelle"
      ON "Ziel".id = "Quelle".id AND "Ziel".id IN (SELECT id FROM documents)
      WHEN MATCHED AND EXISTS (SELECT 1 FROM plans WHERE plans.id = "Quelle".n) THEN
        UPDATE SET "Wert" = "Ziel"."Wert" + (SELECT count(*) FROM chunks WHERE doc_id = "Quelle".id), note = 'matched'
      WHEN NOT MATCHED THEN INSERT (id, "Wert", note) OVERRIDING SYSTEM VALUE VALUES ("Quelle".id, 100 + "Quelle".id, 'new');
    MERGE INTO "Größe ""x""" t USING (VALUES (50)) v(k) ON t.id = v.k
      WHEN NOT MATCHED THEN INSERT (id, note) OVERRIDING SYSTEM VALUE VALUES (v.k, 'defaulted');
  END LOOP;
END $$;
SELECT public.same_answer('SELECT * FROM "Größe ""x"""');
SELECT * FROM tenant_acme."Größe ""x""" ORDER BY id;
-- A whole source row as one value is refused (the node would read v.* as its columns).
MERGE INTO tenant_acme."Größe ""x""" t USING (VALUES ('w')) v(x) ON false
  WHEN NOT MATCHED THEN INSERT (id, note) OVERRIDING SYSTEM VALUE VALUES (60, v);
DROP TABLE plain_acme."Größe ""x""", tenant_acme."Größe ""x""";
-- What the node cannot do for a MERGE is refused with what to do: a default from the
-- coordinator's sequence, an array element, several columns from one sub-SELECT.
MERGE INTO documents t USING (VALUES (1, 'no id')) v(plan, title) ON false
  WHEN NOT MATCHED THEN INSERT (plan_id, title) VALUES (v.plan, v.title);
ALTER TABLE chunks ADD COLUMN marks int[];
MERGE INTO chunks c USING documents d ON c.doc_id = d.id WHEN MATCHED THEN UPDATE SET marks[1] = 1;
MERGE INTO chunks c USING documents d ON c.doc_id = d.id WHEN MATCHED THEN UPDATE SET (content, marks) = (SELECT 'x', NULL::int[]);
ALTER TABLE chunks DROP COLUMN marks;
-- COPY into a tenant's tables (defaults from the coordinator's sequence) and out of them.
COPY chunks (doc_id, n, content) FROM STDIN WITH (FORMAT csv);
11,80,"copied, one"
12,80,copied two
\.
COPY documents (plan_id, title) FROM STDIN;
2	copied doc
3	another copied doc
\.
COPY plain_acme.chunks (doc_id, n, content) FROM STDIN WITH (FORMAT csv);
11,80,"copied, one"
12,80,copied two
\.
COPY (SELECT doc_id, n, content FROM chunks WHERE n = 80 ORDER BY doc_id) TO STDOUT WITH (FORMAT csv);
SELECT title FROM documents WHERE title LIKE '%copied doc' ORDER BY id;
SELECT count(*) = count(DISTINCT id) AS ids_unique FROM documents;
DELETE FROM documents WHERE title LIKE '%copied doc';
SELECT public.same_answer('SELECT * FROM chunks');
RESET search_path;

-- DDL on a tenant's table goes to its node only.
CREATE INDEX documents_title_idx ON tenant_acme.documents (title);
RESET ROLE;
SELECT nodeport, result FROM run_command_on_workers($$SELECT count(*) FROM pg_indexes WHERE schemaname = 'tenant_acme' AND indexname LIKE 'documents_title_idx%'$$) ORDER BY nodeport;
SET ROLE tenant_app;

-- Privileges bind as on the table: a reader with SELECT on documents only.
GRANT USAGE ON SCHEMA tenant_acme TO tenant_reader;
GRANT SELECT ON tenant_acme.documents TO tenant_reader;
SET ROLE tenant_reader;
SELECT count(*) FROM tenant_acme.documents;
SELECT count(*) FROM tenant_acme.chunks;
SELECT citus_schema_move('tenant_acme', '127.0.0.1', 9803);
SET ROLE tenant_app;

-- citus.enable_schema_based_sharding: CREATE SCHEMA makes a distributed schema, however its
-- tables are made, whatever the setting is then.
SET citus.enable_schema_based_sharding = on;
CREATE SCHEMA tenant_beta;
CREATE TABLE tenant_beta.notes (id int PRIMARY KEY, body text);
DO $$ BEGIN CREATE TABLE tenant_beta.from_do (id int); END $$;
CREATE FUNCTION tenant_beta.make_table() RETURNS void LANGUAGE plpgsql AS $$
BEGIN CREATE TABLE tenant_beta.from_function (id int); END $$;
SELECT tenant_beta.make_table();
CREATE TABLE tenant_beta.as_select AS SELECT i AS id, 'n' || i AS body FROM generate_series(1, 5) i;
SELECT * INTO tenant_beta.select_into FROM tenant_beta.as_select WHERE id > 2;
CREATE TABLE tenant_beta.like_notes (LIKE tenant_beta.notes INCLUDING ALL);
CREATE TABLE tenant_beta.events (at date NOT NULL, n int) PARTITION BY RANGE (at);
CREATE TABLE tenant_beta.events_2026 PARTITION OF tenant_beta.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE SCHEMA tenant_gamma
  CREATE TABLE parents (id int PRIMARY KEY)
  CREATE TABLE kids (id int PRIMARY KEY, parent_id int REFERENCES parents (id));
SET citus.enable_schema_based_sharding = off;
CREATE TABLE tenant_beta.later (id int);
CREATE SCHEMA plain_two;
CREATE TABLE plain_two.t (id int);
SELECT schema_name FROM citus_schemas ORDER BY 1;
SELECT table_name, citus_table_type, distribution_column, colocation_id = (SELECT colocation_id FROM citus_schemas WHERE schema_name = 'tenant_beta'::regnamespace) AS in_schema_group
  FROM citus_tables WHERE table_name::text LIKE 'tenant_beta.%' OR table_name::text LIKE 'tenant_gamma.%' OR table_name::text LIKE 'plain_two.%'
 ORDER BY 1;
SELECT table_name::text, count(DISTINCT nodeport) AS nodes FROM citus_shards
 WHERE table_name::text LIKE 'tenant_beta.%' GROUP BY 1 HAVING count(DISTINCT nodeport) <> 1;
SELECT count(DISTINCT nodeport) AS beta_nodes FROM citus_shards WHERE table_name::text LIKE 'tenant_beta.%';
SELECT * FROM tenant_beta.as_select ORDER BY id;
SELECT * FROM tenant_beta.select_into ORDER BY id;
INSERT INTO tenant_beta.events VALUES ('2026-03-01', 1), ('2026-04-01', 2);
SELECT * FROM tenant_beta.events ORDER BY at;
SELECT * FROM public.plan_lines('SELECT * FROM tenant_beta.events WHERE at > ''2026-03-15''');
INSERT INTO tenant_gamma.parents VALUES (1), (2);
INSERT INTO tenant_gamma.kids VALUES (10, 1), (20, 2);
INSERT INTO tenant_gamma.kids VALUES (30, 3);
CREATE TABLE tenant_gamma.ids (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
INSERT INTO tenant_gamma.ids (v) VALUES ('a'), ('b');
-- Placement you choose: tessera.schema_placement_node, or node_name / node_port, or node_id.
SET citus.enable_schema_based_sharding = on;
SET tessera.schema_placement_node = '127.0.0.1:9804';
CREATE SCHEMA tenant_delta;
CREATE TABLE tenant_delta.t (id int);
RESET tessera.schema_placement_node;
SET citus.enable_schema_based_sharding = off;
SELECT DISTINCT nodeport FROM citus_shards WHERE table_name = 'tenant_delta.t'::regclass;
CREATE SCHEMA tenant_eps;
CREATE TABLE tenant_eps.t (id int);
SELECT citus_schema_distribute('tenant_eps', node_name => '127.0.0.1', node_port => 9802);
SELECT DISTINCT nodeport FROM citus_shards WHERE table_name = 'tenant_eps.t'::regclass;

-- Queries across two tenant schemas, or a tenant schema and a hash-distributed table.
SELECT count(*) FROM tenant_acme.documents d JOIN tenant_beta.notes n ON n.id = d.id;
SELECT (SELECT count(*) FROM tenant_acme.documents) + (SELECT count(*) FROM tenant_beta.as_select) AS total;
MERGE INTO tenant_beta.notes n USING tenant_acme.documents d ON n.id = d.id WHEN MATCHED THEN DELETE;
-- A foreign key across two distributed schemas, or to a local table, is refused.
CREATE TABLE tenant_beta.refs (doc_id bigint REFERENCES tenant_acme.documents (id));
CREATE TABLE tenant_beta.to_local (id int REFERENCES public.audit_local (id));
SELECT count(*) FROM pg_class WHERE relname IN ('refs', 'to_local') AND relnamespace = 'tenant_beta'::regnamespace;

-- Functions that read the coordinator's catalog do not run on the workers.
SELECT count(*) FROM tenant_acme.documents, citus_get_active_worker_nodes();
SELECT (SELECT count(*) FROM citus_get_active_worker_nodes()) AS workers, count(*) FROM tenant_acme.documents;

-- ALTER TABLE ... SET SCHEMA into a distributed schema distributes the table; out of one
-- brings it back to the coordinator, rows and all.
CREATE TABLE plain_two.moving (id int PRIMARY KEY, v text);
INSERT INTO plain_two.moving VALUES (1, 'one'), (2, 'two');
ALTER TABLE plain_two.moving SET SCHEMA tenant_beta;
SELECT citus_table_type FROM citus_tables WHERE table_name = 'tenant_beta.moving'::regclass;
SELECT * FROM tenant_beta.moving ORDER BY id;
ALTER TABLE tenant_beta.moving SET SCHEMA plain_two;
SELECT count(*) AS still_distributed FROM pg_dist_partition WHERE logicalrelid = 'plain_two.moving'::regclass;
SELECT * FROM plain_two.moving ORDER BY id;
-- Not when foreign keys would cross the schema's edge.
ALTER TABLE tenant_acme.chunks SET SCHEMA plain_two;
CREATE TABLE plain_two.pointer (id int PRIMARY KEY);
CREATE TABLE plain_two.pointing (pid int REFERENCES plain_two.pointer (id));
ALTER TABLE plain_two.pointer SET SCHEMA tenant_beta;
DROP TABLE plain_two.pointing, plain_two.pointer;

-- Values come back exactly through distribute and move (array bounds, ranges, a column named
-- like the aliases of Tessera's own statements), and a foreign key to a partitioned table
-- holds.
CREATE SCHEMA tenant_zeta;
CREATE TABLE tenant_zeta.orders (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE tenant_zeta.orders_2026 PARTITION OF tenant_zeta.orders FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE tenant_zeta.items (order_id int, at date, arr int[], span int4range, t text, s text, v text, r text,
                                FOREIGN KEY (order_id, at) REFERENCES tenant_zeta.orders);
INSERT INTO tenant_zeta.orders VALUES (1, '2026-02-01'), (2, '2026-03-01');
INSERT INTO tenant_zeta.items VALUES (1, '2026-02-01', '[0:2]={1,2,3}', '[3,7)', 't', 's', 'v', 'r'),
                                     (2, '2026-03-01', '{{1,2},{3,4}}', 'empty', NULL, '"q"', E'a\\b', '');
SELECT citus_schema_distribute('tenant_zeta');
SELECT order_id, arr::text, array_lower(arr, 1), span, t, s, v, r FROM tenant_zeta.items ORDER BY 1;
SELECT citus_schema_move('tenant_zeta', '127.0.0.1', 9802);
SELECT order_id, arr::text, array_lower(arr, 1), span, t, s, v, r FROM tenant_zeta.items ORDER BY 1;
SELECT * FROM tenant_zeta.orders ORDER BY id;
INSERT INTO tenant_zeta.items (order_id, at) VALUES (3, '2026-04-01');

-- citus_schema_move: every table of the tenant together, rows checked on the new node.
SELECT citus_schema_move('tenant_acme', '127.0.0.1', 9803);
SELECT DISTINCT nodeport FROM citus_shards WHERE table_name::text LIKE 'tenant_acme.%';
SELECT public.same_answer('SELECT * FROM documents');
SELECT public.same_answer('SELECT * FROM chunks');
SELECT * FROM public.plan_lines('SELECT count(*) FROM tenant_acme.documents');
INSERT INTO tenant_acme.documents (plan_id, title) VALUES (1, 'after the move') RETURNING title;
INSERT INTO tenant_acme.chunks VALUES (12345, 1, 'x');
RESET ROLE;
SELECT nodeport, result FROM run_command_on_workers($$SELECT count(*) || ' tables, ' || coalesce(sum((xpath('/row/c/text()',
         query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::int), 0) || ' rows'
    FROM pg_tables WHERE schemaname = 'tenant_acme'$$) ORDER BY nodeport;
SET ROLE tenant_app;
-- The old placements stay until cleanup (a query routed there before the move committed
-- still finds them), which the owner runs.
SELECT object_type, object_name, node_group_id FROM pg_dist_cleanup ORDER BY record_id;
CALL citus_cleanup_orphaned_resources();
SELECT count(*) FROM pg_dist_cleanup;
RESET ROLE;
SELECT nodeport, result FROM run_command_on_workers($$SELECT count(*) FROM pg_tables WHERE schemaname = 'tenant_acme'$$) ORDER BY nodeport;
SET ROLE tenant_app;
SELECT citus_schema_move('tenant_acme', (SELECT nodeid FROM pg_dist_node WHERE nodeport = 9801));
SELECT DISTINCT nodeport FROM citus_shards WHERE table_name::text LIKE 'tenant_acme.%';
SELECT count(*) FROM tenant_acme.documents;
-- An empty tenant schema moves too (its node is recorded).
CREATE SCHEMA tenant_empty;
SELECT citus_schema_distribute('tenant_empty', node_id => (SELECT nodeid FROM pg_dist_node WHERE nodeport = 9801));
SELECT citus_schema_move('tenant_empty', '127.0.0.1', 9804);
CREATE TABLE tenant_empty.t (id int);
SELECT DISTINCT nodeport FROM citus_shards WHERE table_name = 'tenant_empty.t'::regclass;

-- citus_schema_undistribute: the tables back on the coordinator, rows and foreign keys.
SELECT citus_schema_undistribute('tenant_gamma');
SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'tenant_gamma.%';
SELECT * FROM tenant_gamma.kids ORDER BY id;
INSERT INTO tenant_gamma.kids VALUES (40, 4);
SELECT count(*) FROM citus_schemas WHERE schema_name = 'tenant_gamma'::regnamespace;
SELECT * FROM tenant_gamma.ids ORDER BY id;
-- Foreign keys to reference tables stay: refused with what to do.
SELECT citus_schema_undistribute('tenant_acme');

-- Bad input: each a clear error, nothing changed.
SELECT citus_schema_distribute('no_such_schema');
SELECT citus_schema_distribute('tenant_acme');
SELECT citus_schema_distribute('public');
SELECT citus_schema_distribute('pg_catalog');
SELECT citus_schema_distribute('citus');
SELECT citus_schema_distribute(NULL);
SELECT citus_schema_distribute('plain_two', node_name => 'nowhere', node_port => 1);
SELECT citus_schema_distribute('plain_two', node_id => 9999);
SELECT citus_schema_distribute('plain_two', node_name => '127.0.0.1');
CREATE SCHEMA bad_fk;
CREATE TABLE bad_fk.t (id int REFERENCES public.audit_local (id));
SELECT citus_schema_distribute('bad_fk');
CREATE SCHEMA bad_inherit;
CREATE TABLE bad_inherit.parent (a int);
CREATE TABLE bad_inherit.child () INHERITS (bad_inherit.parent);
SELECT citus_schema_distribute('bad_inherit');
CREATE TABLE plain_two.refs_acme (doc_id bigint REFERENCES tenant_acme.documents (id));
SELECT citus_schema_distribute('plain_two');
SELECT citus_schema_move('tenant_acme', '127.0.0.1', 9801);
SELECT citus_schema_move('tenant_acme', '127.0.0.1', 9803, 'force_logical');
SELECT citus_schema_move('plain_two', '127.0.0.1', 9803);
SELECT citus_schema_move('tenant_acme', 'nowhere', 5432);
RESET ROLE;
BEGIN;
UPDATE pg_dist_node SET isactive = false WHERE nodeport = 9804;
SELECT citus_schema_move('tenant_acme', '127.0.0.1', 9804);
ROLLBACK;
SET ROLE tenant_app;
SELECT citus_schema_move('tenant_acme', '127.0.0.1', 9800);
SELECT citus_schema_distribute('plain_two', node_name => '127.0.0.1', node_port => 9800);
SELECT citus_schema_undistribute('plain_two');
SELECT undistribute_table('tenant_acme.documents');
SELECT count(*) FROM citus_schemas WHERE schema_name IN ('plain_two'::regnamespace, 'bad_fk'::regnamespace, 'bad_inherit'::regnamespace);
RESET ROLE;
-- Not the owner.
CREATE ROLE tenant_other LOGIN;
GRANT CREATE ON DATABASE postgres TO tenant_other;
SET ROLE tenant_other;
SELECT citus_schema_distribute('plain_two');
SELECT citus_schema_move('tenant_acme', '127.0.0.1', 9803);
SELECT citus_schema_undistribute('tenant_acme');
-- Its own schema is placed by load without reading the other tenants' tables.
CREATE SCHEMA other_tenant;
CREATE TABLE other_tenant.t (id int);
SELECT citus_schema_distribute('other_tenant');
DROP SCHEMA other_tenant CASCADE;
RESET ROLE;
REVOKE CREATE ON DATABASE postgres FROM tenant_other;
-- A foreign table and a temporary schema cannot be tenants.
CREATE FOREIGN DATA WRAPPER tenant_fdw;
CREATE SERVER tenant_srv FOREIGN DATA WRAPPER tenant_fdw;
CREATE SCHEMA bad_foreign;
CREATE FOREIGN TABLE bad_foreign.f (a int) SERVER tenant_srv;
SELECT citus_schema_distribute('bad_foreign');
CREATE TEMP TABLE temp_one (a int);
DO $$ BEGIN
  PERFORM citus_schema_distribute(pg_my_temp_schema());
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE '%: %', SQLSTATE, regexp_replace(SQLERRM, 'pg_temp_[0-9]+', 'pg_temp_N');
END $$;
DROP TABLE temp_one;

-- Not in a REPEATABLE READ or SERIALIZABLE transaction (it must see what others committed).
SET ROLE tenant_app;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT citus_schema_move('tenant_acme', '127.0.0.1', 9803);
ROLLBACK;
RESET ROLE;

-- The coordinator holds a tenant when it holds shards: moves off it and back, cleanup inside
-- the moving transaction (which leaves that transaction's own old placements alone), and
-- undistribute.
SELECT citus_set_node_property('127.0.0.1', 9800, 'shouldhaveshards', true);
SET ROLE tenant_app;
CREATE SCHEMA tenant_coord;
CREATE TABLE tenant_coord.t (id int PRIMARY KEY, v text);
INSERT INTO tenant_coord.t VALUES (1, 'one'), (2, 'two');
SELECT citus_schema_distribute('tenant_coord', node_name => '127.0.0.1', node_port => 9800);
BEGIN;
SELECT citus_schema_move('tenant_coord', '127.0.0.1', 9801);
CALL citus_cleanup_orphaned_resources();
SELECT count(*) FROM tenant_coord.t;
COMMIT;
CALL citus_cleanup_orphaned_resources();
SELECT citus_schema_move('tenant_coord', '127.0.0.1', 9800);
-- A renamed schema's old placements are still found.
ALTER SCHEMA tenant_coord RENAME TO "tenant coord";
SELECT object_name FROM pg_dist_cleanup;
CALL citus_cleanup_orphaned_resources();
SELECT citus_schema_undistribute('"tenant coord"');
SELECT * FROM "tenant coord".t ORDER BY id;
DROP SCHEMA "tenant coord" CASCADE;
RESET ROLE;
SELECT citus_set_node_property('127.0.0.1', 9800, 'shouldhaveshards', false);

-- DROP SCHEMA ... CASCADE: shards and catalog go.
SELECT count(*) AS beta_tables FROM pg_dist_partition p JOIN pg_dist_schema s USING (colocationid)
 WHERE s.schemaid = 'tenant_beta'::regnamespace;
DROP SCHEMA tenant_beta CASCADE;
SELECT count(*) FROM pg_dist_schema s LEFT JOIN pg_namespace n ON n.oid = s.schemaid WHERE n.oid IS NULL;
SELECT count(*) FROM pg_dist_colocation c WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.colocationid = c.colocationid)
   AND NOT EXISTS (SELECT 1 FROM pg_dist_schema s WHERE s.colocationid = c.colocationid);
SELECT nodeport, result FROM run_command_on_workers($$SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_beta'$$) ORDER BY nodeport;

DROP SCHEMA tenant_acme, plain_acme, tenant_delta, tenant_eps, tenant_empty, tenant_gamma, tenant_zeta, plain_two,
  bad_fk, bad_inherit, bad_foreign CASCADE;
DROP SERVER tenant_srv;
DROP FOREIGN DATA WRAPPER tenant_fdw;
DROP TABLE public.plans, public.audit_local;
DROP FUNCTION public.plan_lines(text), public.same_answer(text), public.explain_lines(text);
REVOKE CREATE ON DATABASE postgres FROM tenant_app;
SELECT nodeport, result FROM run_command_on_workers($$SELECT has_database_privilege('tenant_app', 'postgres', 'CREATE')$$) ORDER BY nodeport;
DROP ROLE tenant_app, tenant_reader, tenant_other;
