-- Transactions across shards, as an application role: one node commits one-phase, several
-- commit with two-phase commit (their decision in pg_dist_transaction), savepoints and PL/pgSQL
-- exception blocks undo remote work, errors half-way leave nothing, and recovery finishes what
-- a failure left prepared on a worker. Each answer is compared with a plain local table that
-- gets the same statements.
CREATE ROLE tx_app LOGIN;
CREATE SCHEMA tx AUTHORIZATION tx_app;
SET ROLE tx_app;
SET search_path = tx;
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0));
CREATE TABLE local_accounts (LIKE accounts INCLUDING ALL);
SELECT create_distributed_table('accounts', 'id', shard_count => 4);
INSERT INTO accounts SELECT i, 100 FROM generate_series(1, 8) i;
INSERT INTO local_accounts SELECT * FROM accounts;
-- Where each account is: 1 and 2 on different nodes.
SELECT count(DISTINCT nodeport) AS nodes FROM citus_shards
 WHERE shardid IN (get_shard_id_for_distribution_column('accounts', 1), get_shard_id_for_distribution_column('accounts', 2));
-- The same statements on both tables, then a comparison.
CREATE FUNCTION same() RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text; l text;
BEGIN
  SELECT string_agg(id || ':' || balance, ' ' ORDER BY id) INTO d FROM tx.accounts;
  SELECT string_agg(id || ':' || balance, ' ' ORDER BY id) INTO l FROM tx.local_accounts;
  RETURN CASE WHEN d = l THEN 'same' ELSE 'DIFFERENT: ' || d || ' <> ' || l END;
END $$;
RESET ROLE;
DELETE FROM pg_dist_transaction;
SET ROLE tx_app;
SET search_path = tx;

-- One node: a plain COMMIT there, no record.
BEGIN;
UPDATE accounts SET balance = balance - 10 WHERE id = 1;
UPDATE accounts SET balance = balance + 10 WHERE id = 1;
COMMIT;
SELECT count(*) AS records FROM pg_dist_transaction;
-- Two nodes: prepared on both, the decision recorded.
BEGIN;
UPDATE accounts SET balance = balance - 30 WHERE id = 1;
UPDATE accounts SET balance = balance + 30 WHERE id = 2;
COMMIT;
UPDATE local_accounts SET balance = balance - 30 WHERE id = 1;
UPDATE local_accounts SET balance = balance + 30 WHERE id = 2;
SELECT count(*) AS records, bool_and(gid LIKE 'citus\_0\_%') AS citus_gids FROM pg_dist_transaction;
SELECT count(DISTINCT groupid) AS groups,
       bool_and(groupid IN (SELECT groupid FROM pg_dist_node WHERE groupid > 0)) AS worker_groups,
       bool_and(outer_xid IS NOT NULL) AS xids
  FROM pg_dist_transaction;
SELECT same();
-- A multi-shard UPDATE outside a transaction block is one too.
UPDATE accounts SET balance = balance + 1;
UPDATE local_accounts SET balance = balance + 1;
SELECT same();
-- Nothing is left prepared on the workers.
RESET ROLE;
SELECT nodeport, result FROM run_command_on_workers($$SELECT count(*) FROM pg_prepared_xacts$$) ORDER BY nodeport;
SET ROLE tx_app;
SET search_path = tx;

-- The records do not pile up: a backend deletes those of its committed transactions in a
-- later two-phase commit (32 at a time), so 70 of them leave no more than 34 rows.
SELECT 'UPDATE accounts SET balance = balance WHERE id IN (1, 2)' FROM generate_series(1, 70) \gexec
SELECT count(*) <= 34 AS bounded, count(*) > 0 AS some FROM pg_dist_transaction;

-- Rollback, and an error half-way: nothing changes anywhere.
BEGIN;
UPDATE accounts SET balance = 0 WHERE id = 1;
UPDATE accounts SET balance = 0 WHERE id = 2;
ROLLBACK;
BEGIN;
UPDATE accounts SET balance = balance + 5 WHERE id = 3;
UPDATE accounts SET balance = balance - 500 WHERE id = 4;
COMMIT;
SELECT same();

-- Savepoints: ROLLBACK TO undoes the remote work since the savepoint, on every node, including
-- one first used inside the savepoint; RELEASE keeps it; nested ones too.
BEGIN;
UPDATE accounts SET balance = balance + 1 WHERE id = 1;
SAVEPOINT a;
UPDATE accounts SET balance = balance + 100 WHERE id = 1;
UPDATE accounts SET balance = balance + 100 WHERE id = 2;
ROLLBACK TO SAVEPOINT a;
UPDATE accounts SET balance = balance + 2 WHERE id = 3;
SAVEPOINT b;
UPDATE accounts SET balance = balance + 4 WHERE id = 4;
SAVEPOINT c;
UPDATE accounts SET balance = balance + 1000 WHERE id = 5;
ROLLBACK TO SAVEPOINT c;
RELEASE SAVEPOINT b;
COMMIT;
UPDATE local_accounts SET balance = balance + 1 WHERE id = 1;
UPDATE local_accounts SET balance = balance + 2 WHERE id = 3;
UPDATE local_accounts SET balance = balance + 4 WHERE id = 4;
SELECT same();
-- An error on a node inside a savepoint: the transaction goes on after ROLLBACK TO.
BEGIN;
UPDATE accounts SET balance = balance + 7 WHERE id = 6;
SAVEPOINT s;
UPDATE accounts SET balance = -1 WHERE id = 7;
ROLLBACK TO SAVEPOINT s;
UPDATE accounts SET balance = balance + 7 WHERE id = 7;
COMMIT;
UPDATE local_accounts SET balance = balance + 7 WHERE id IN (6, 7);
SELECT same();
-- PL/pgSQL exception blocks around distributed writes.
DO $$
BEGIN
  UPDATE accounts SET balance = balance + 3 WHERE id = 8;
  BEGIN
    UPDATE accounts SET balance = balance + 50 WHERE id = 1;
    UPDATE accounts SET balance = balance - 1000 WHERE id = 2;
  EXCEPTION WHEN check_violation THEN
    RAISE NOTICE 'transfer refused: %', SQLERRM;
  END;
END $$;
UPDATE local_accounts SET balance = balance + 3 WHERE id = 8;
SELECT same();
-- A prepared statement with a generic plan inside savepoints.
SET plan_cache_mode = force_generic_plan;
PREPARE add(int, int) AS UPDATE accounts SET balance = balance + $2 WHERE id = $1;
BEGIN;
EXECUTE add(1, 1);
SAVEPOINT p;
EXECUTE add(2, 1);
EXECUTE add(3, 1);
ROLLBACK TO SAVEPOINT p;
EXECUTE add(4, 1);
COMMIT;
DEALLOCATE add;
RESET plan_cache_mode;
UPDATE local_accounts SET balance = balance + 1 WHERE id IN (1, 4);
SELECT same();

-- Isolation levels and READ ONLY reach the nodes' transactions.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
SELECT same();
UPDATE accounts SET balance = 0 WHERE id = 1;
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT count(*) FROM accounts WHERE id = 1;
UPDATE accounts SET balance = balance WHERE id IN (1, 2);
COMMIT;
SELECT same();

-- A SELECT that calls a function which writes on the nodes takes part in two-phase commit:
-- when another node fails to prepare (a deferred constraint), its writes roll back too.
RESET ROLE;
CREATE TABLE public.tx_side (x int);
SELECT success FROM run_command_on_workers('CREATE TABLE public.tx_side (x int); GRANT INSERT, SELECT ON public.tx_side TO tx_app');
GRANT INSERT, SELECT ON public.tx_side TO tx_app;
CREATE FUNCTION public.tx_bump(i int) RETURNS int LANGUAGE sql VOLATILE
  AS $$ INSERT INTO public.tx_side VALUES (i) RETURNING x $$;
SET ROLE tx_app;
SET search_path = tx;
CREATE TABLE once (id int, CONSTRAINT once_id UNIQUE (id) DEFERRABLE INITIALLY DEFERRED);
SELECT create_distributed_table('once', 'id', shard_count => 4);
INSERT INTO once VALUES (3);
BEGIN;
SELECT public.tx_bump(id) FROM accounts WHERE id = 1;
SELECT public.tx_bump(id) FROM accounts WHERE id = 2;
INSERT INTO once VALUES (3);
COMMIT;
RESET ROLE;
SELECT nodeport, result FROM run_command_on_workers('SELECT count(*) FROM public.tx_side') ORDER BY nodeport;
SELECT nodeport, result FROM run_command_on_workers($$SELECT count(*) FROM pg_prepared_xacts$$) ORDER BY nodeport;
SELECT success FROM run_command_on_workers('DROP TABLE public.tx_side');
DROP FUNCTION public.tx_bump(int);
DROP TABLE public.tx_side;
SET ROLE tx_app;
SET search_path = tx;

-- PREPARE TRANSACTION of a distributed transaction is refused (Tessera coordinates the nodes).
BEGIN;
UPDATE accounts SET balance = balance WHERE id = 1;
PREPARE TRANSACTION 'mine';
SELECT same();

-- Recovery: what a failure left prepared on a worker is committed when the decision was
-- recorded, rolled back when it was not (its transaction is long gone).
RESET ROLE;
SELECT nodeport AS port_of_1 FROM citus_shards WHERE shardid = get_shard_id_for_distribution_column('tx.accounts', 1) \gset
SELECT nodeport AS port_of_2 FROM citus_shards WHERE shardid = get_shard_id_for_distribution_column('tx.accounts', 2) \gset
SELECT shard_name('tx.accounts', get_shard_id_for_distribution_column('tx.accounts', 1)) AS shard_1 \gset
SELECT shard_name('tx.accounts', get_shard_id_for_distribution_column('tx.accounts', 2)) AS shard_2 \gset
SELECT groupid AS group_of_1 FROM pg_dist_node WHERE nodeport = :port_of_1 \gset
SELECT result FROM run_command_on_workers(format($$BEGIN; UPDATE %s SET balance = balance + 1000 WHERE id = 1; PREPARE TRANSACTION 'citus_0_1_3_1'$$, :'shard_1'))
 WHERE nodeport = :port_of_1;
SELECT result FROM run_command_on_workers(format($$BEGIN; UPDATE %s SET balance = balance + 2000 WHERE id = 2; PREPARE TRANSACTION 'citus_0_1_3_2'$$, :'shard_2'))
 WHERE nodeport = :port_of_2;
INSERT INTO pg_dist_transaction VALUES (:group_of_1, 'citus_0_1_3_1', NULL);
-- The coordinator takes part too (a reference table's placement there): its own prepared
-- transactions are recovered as well.
BEGIN;
INSERT INTO tx.local_accounts VALUES (99, 1);
PREPARE TRANSACTION 'citus_0_1_3_3';
-- The in-doubt ones, with what recovery will do.
SELECT gid, decision, age >= interval '0' AS has_age FROM tessera_in_doubt_transactions ORDER BY gid;
SELECT recover_prepared_transactions();
SELECT count(*) AS in_doubt FROM tessera_in_doubt_transactions;
SELECT id, balance FROM tx.accounts WHERE id IN (1, 2) ORDER BY id;
SELECT id, balance FROM tx.local_accounts WHERE id IN (1, 2, 99) ORDER BY id;
SELECT nodeport, result FROM run_command_on_workers($$SELECT count(*) FROM pg_prepared_xacts$$) ORDER BY nodeport;
SELECT count(*) AS records FROM pg_dist_transaction;
-- Only a superuser runs recovery.
SET ROLE tx_app;
SELECT recover_prepared_transactions();
RESET ROLE;
-- A statement cancelled inside a savepoint, on nodes the transaction first used in it: after
-- ROLLBACK TO, those nodes start afresh, and the transaction commits its later work.
SET ROLE tx_app;
SET search_path = tx;
BEGIN;
SAVEPOINT s;
SET LOCAL statement_timeout = '100ms';
\set VERBOSITY terse
SELECT count(*) FROM accounts WHERE pg_sleep(0.5) IS NOT NULL;
\set VERBOSITY default
ROLLBACK TO SAVEPOINT s;
UPDATE accounts SET balance = balance + 1 WHERE id IN (1, 2);
COMMIT;
SELECT id, balance FROM accounts WHERE id IN (1, 2) ORDER BY id;
SET ROLE tx_app;
SET search_path = tx;
-- Several commands for one node go in one round trip (a pipeline): the rows of a multi-row
-- INSERT for the 4 shards each node holds, in and out of transaction blocks; an error in the
-- middle of one node's commands fails the statement with the worker's error and leaves none
-- of its rows; a savepoint undoes a failed batch; ON CONFLICT and a prepared statement with a
-- generic plan. Each answer is the plain table's.
CREATE TABLE batch (id int PRIMARY KEY, v text NOT NULL CHECK (v <> 'bad'));
CREATE TABLE local_batch (LIKE batch INCLUDING ALL);
SELECT create_distributed_table('batch', 'id', shard_count => 16);
CREATE FUNCTION same_batch() RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text; l text;
BEGIN
  SELECT string_agg(id || ':' || v, ' ' ORDER BY id) INTO d FROM tx.batch;
  SELECT string_agg(id || ':' || v, ' ' ORDER BY id) INTO l FROM tx.local_batch;
  RETURN CASE WHEN d IS NOT DISTINCT FROM l THEN 'same' ELSE 'DIFFERENT: ' || d || ' <> ' || l END;
END $$;
-- Rows for 14 of the 16 shards, then a duplicate in the middle of another batch: nothing of it stays.
INSERT INTO batch VALUES (1, 'a'), (2, 'a'), (3, 'a'), (4, 'a'), (5, 'a'), (6, 'a'), (7, 'a'), (8, 'a'), (9, 'a'), (10, 'a'), (11, 'a'), (12, 'a'), (13, 'a'), (14, 'a'), (15, 'a'), (16, 'a'), (17, 'a'), (18, 'a'), (19, 'a'), (20, 'a'), (21, 'a'), (22, 'a'), (23, 'a'), (24, 'a'), (25, 'a'), (26, 'a'), (27, 'a'), (28, 'a'), (29, 'a'), (30, 'a'), (31, 'a'), (32, 'a'), (33, 'a'), (34, 'a'), (35, 'a'), (36, 'a'), (37, 'a'), (38, 'a'), (39, 'a'), (40, 'a');
INSERT INTO local_batch VALUES (1, 'a'), (2, 'a'), (3, 'a'), (4, 'a'), (5, 'a'), (6, 'a'), (7, 'a'), (8, 'a'), (9, 'a'), (10, 'a'), (11, 'a'), (12, 'a'), (13, 'a'), (14, 'a'), (15, 'a'), (16, 'a'), (17, 'a'), (18, 'a'), (19, 'a'), (20, 'a'), (21, 'a'), (22, 'a'), (23, 'a'), (24, 'a'), (25, 'a'), (26, 'a'), (27, 'a'), (28, 'a'), (29, 'a'), (30, 'a'), (31, 'a'), (32, 'a'), (33, 'a'), (34, 'a'), (35, 'a'), (36, 'a'), (37, 'a'), (38, 'a'), (39, 'a'), (40, 'a');
SELECT count(DISTINCT get_shard_id_for_distribution_column('batch', i)) AS shards FROM generate_series(1, 40) i;
\set VERBOSITY sqlstate
INSERT INTO batch VALUES (101, 'x'), (102, 'x'), (103, 'x'), (104, 'x'), (105, 'x'), (106, 'x'), (107, 'x'), (108, 'x'), (109, 'x'), (110, 'x'), (7, 'dup'), (111, 'x'), (112, 'x'), (113, 'x'), (114, 'x'), (115, 'x'), (116, 'x'), (117, 'x'), (118, 'x'), (119, 'x'), (120, 'x');
INSERT INTO batch VALUES (121, 'y'), (122, 'y'), (123, 'y'), (124, 'y'), (125, 'y'), (126, 'y'), (127, 'y'), (128, 'y'), (129, 'y'), (130, 'y'), (131, 'bad'), (132, 'y'), (133, 'y'), (134, 'y'), (135, 'y'), (136, 'y'), (137, 'y'), (138, 'y'), (139, 'y'), (140, 'y');
\set VERBOSITY default
SELECT same_batch();
-- In a transaction block: a batch, a failed batch under a savepoint, another batch.
BEGIN;
INSERT INTO batch VALUES (141, 'b'), (142, 'b'), (143, 'b'), (144, 'b'), (145, 'b'), (146, 'b'), (147, 'b'), (148, 'b'), (149, 'b'), (150, 'b'), (151, 'b'), (152, 'b'), (153, 'b'), (154, 'b'), (155, 'b'), (156, 'b'), (157, 'b'), (158, 'b'), (159, 'b'), (160, 'b');
SAVEPOINT s;
\set VERBOSITY sqlstate
INSERT INTO batch VALUES (161, 'z'), (162, 'z'), (163, 'z'), (164, 'z'), (165, 'z'), (166, 'z'), (167, 'z'), (168, 'z'), (169, 'z'), (170, 'z'), (150, 'dup'), (171, 'z'), (172, 'z'), (173, 'z'), (174, 'z'), (175, 'z'), (176, 'z'), (177, 'z'), (178, 'z'), (179, 'z'), (180, 'z');
\set VERBOSITY default
ROLLBACK TO SAVEPOINT s;
INSERT INTO batch VALUES (181, 'c'), (182, 'c'), (183, 'c'), (184, 'c'), (185, 'c'), (186, 'c'), (187, 'c'), (188, 'c'), (189, 'c'), (190, 'c'), (191, 'c'), (192, 'c'), (193, 'c'), (194, 'c'), (195, 'c'), (196, 'c'), (197, 'c'), (198, 'c'), (199, 'c'), (200, 'c');
UPDATE batch SET v = v || '+' WHERE id % 3 = 0;
COMMIT;
INSERT INTO local_batch VALUES (141, 'b'), (142, 'b'), (143, 'b'), (144, 'b'), (145, 'b'), (146, 'b'), (147, 'b'), (148, 'b'), (149, 'b'), (150, 'b'), (151, 'b'), (152, 'b'), (153, 'b'), (154, 'b'), (155, 'b'), (156, 'b'), (157, 'b'), (158, 'b'), (159, 'b'), (160, 'b');
INSERT INTO local_batch VALUES (181, 'c'), (182, 'c'), (183, 'c'), (184, 'c'), (185, 'c'), (186, 'c'), (187, 'c'), (188, 'c'), (189, 'c'), (190, 'c'), (191, 'c'), (192, 'c'), (193, 'c'), (194, 'c'), (195, 'c'), (196, 'c'), (197, 'c'), (198, 'c'), (199, 'c'), (200, 'c');
UPDATE local_batch SET v = v || '+' WHERE id % 3 = 0;
SELECT same_batch();
-- A failed batch ends the transaction block: nothing of it commits.
BEGIN;
INSERT INTO batch VALUES (201, 'd'), (202, 'd'), (203, 'd'), (204, 'd'), (205, 'd'), (206, 'd'), (207, 'd'), (208, 'd'), (209, 'd'), (210, 'd'), (211, 'd'), (212, 'd'), (213, 'd'), (214, 'd'), (215, 'd'), (216, 'd'), (217, 'd'), (218, 'd'), (219, 'd'), (220, 'd');
\set VERBOSITY sqlstate
INSERT INTO batch VALUES (221, 'w'), (222, 'w'), (223, 'w'), (224, 'w'), (225, 'w'), (226, 'w'), (227, 'w'), (228, 'w'), (229, 'w'), (230, 'w'), (231, 'bad');
\set VERBOSITY default
COMMIT;
SELECT same_batch();
-- ON CONFLICT over every shard.
INSERT INTO batch VALUES (31, 'e'), (32, 'e'), (33, 'e'), (34, 'e'), (35, 'e'), (36, 'e'), (37, 'e'), (38, 'e'), (39, 'e'), (40, 'e'), (41, 'e'), (42, 'e'), (43, 'e'), (44, 'e'), (45, 'e'), (46, 'e'), (47, 'e'), (48, 'e'), (49, 'e'), (50, 'e'), (51, 'e'), (52, 'e'), (53, 'e'), (54, 'e'), (55, 'e'), (56, 'e'), (57, 'e'), (58, 'e'), (59, 'e'), (60, 'e') ON CONFLICT (id) DO UPDATE SET v = excluded.v || '!';
INSERT INTO local_batch VALUES (31, 'e'), (32, 'e'), (33, 'e'), (34, 'e'), (35, 'e'), (36, 'e'), (37, 'e'), (38, 'e'), (39, 'e'), (40, 'e'), (41, 'e'), (42, 'e'), (43, 'e'), (44, 'e'), (45, 'e'), (46, 'e'), (47, 'e'), (48, 'e'), (49, 'e'), (50, 'e'), (51, 'e'), (52, 'e'), (53, 'e'), (54, 'e'), (55, 'e'), (56, 'e'), (57, 'e'), (58, 'e'), (59, 'e'), (60, 'e') ON CONFLICT (id) DO UPDATE SET v = excluded.v || '!';
SELECT same_batch();
-- Prepared, with a generic plan: the shard statements are prepared on the nodes in the same
-- round trip as their first run.
SET plan_cache_mode = force_generic_plan;
PREPARE put(int, int, int, int, int, int, int, int, text) AS
  INSERT INTO batch VALUES ($1, $9), ($2, $9), ($3, $9), ($4, $9), ($5, $9), ($6, $9), ($7, $9), ($8, $9)
  ON CONFLICT (id) DO UPDATE SET v = excluded.v || '?';
PREPARE put_local(int, int, int, int, int, int, int, int, text) AS
  INSERT INTO local_batch VALUES ($1, $9), ($2, $9), ($3, $9), ($4, $9), ($5, $9), ($6, $9), ($7, $9), ($8, $9)
  ON CONFLICT (id) DO UPDATE SET v = excluded.v || '?';
EXECUTE put(301, 302, 303, 304, 305, 306, 307, 308, 'p');
EXECUTE put_local(301, 302, 303, 304, 305, 306, 307, 308, 'p');
EXECUTE put(301, 302, 303, 304, 305, 306, 307, 308, 'q');
EXECUTE put_local(301, 302, 303, 304, 305, 306, 307, 308, 'q');
BEGIN;
EXECUTE put(311, 312, 313, 314, 315, 316, 317, 318, 'r');
\set VERBOSITY sqlstate
EXECUTE put(321, 322, 323, 324, 325, 326, 327, 328, 'bad');
\set VERBOSITY default
ROLLBACK;
EXECUTE put(311, 312, 313, 314, 315, 316, 317, 318, 's');
EXECUTE put_local(311, 312, 313, 314, 315, 316, 317, 318, 's');
RESET plan_cache_mode;
SELECT same_batch();
-- Nodes first used inside a savepoint: their batch opens the block and the savepoint too.
BEGIN;
SAVEPOINT a;
\set VERBOSITY terse
INSERT INTO batch VALUES (401, 'f'), (402, 'f'), (403, 'f'), (404, 'f'), (405, 'f'), (406, 'f'), (407, 'f'), (408, 'f'), (409, 'f'), (410, 'f'), (1, 'dup');
\set VERBOSITY default
ROLLBACK TO SAVEPOINT a;
INSERT INTO batch VALUES (411, 'g'), (412, 'g'), (413, 'g'), (414, 'g'), (415, 'g'), (416, 'g'), (417, 'g'), (418, 'g'), (419, 'g'), (420, 'g'), (421, 'g'), (422, 'g'), (423, 'g'), (424, 'g'), (425, 'g'), (426, 'g'), (427, 'g'), (428, 'g'), (429, 'g'), (430, 'g');
COMMIT;
INSERT INTO local_batch VALUES (411, 'g'), (412, 'g'), (413, 'g'), (414, 'g'), (415, 'g'), (416, 'g'), (417, 'g'), (418, 'g'), (419, 'g'), (420, 'g'), (421, 'g'), (422, 'g'), (423, 'g'), (424, 'g'), (425, 'g'), (426, 'g'), (427, 'g'), (428, 'g'), (429, 'g'), (430, 'g');
SELECT same_batch();
-- More commands for one node than one pipeline carries (64): 300 shards, 75 on each node, a
-- 1500-row INSERT in a transaction block goes in two pipelines per node; a duplicate in a
-- shard whose command is in a node's second pipeline fails the statement and leaves nothing.
CREATE TABLE many (id int PRIMARY KEY, v text);
CREATE TABLE local_many (LIKE many INCLUDING ALL);
SELECT create_distributed_table('many', 'id', shard_count => 300);
BEGIN;
DO $$ BEGIN
  EXECUTE (SELECT 'INSERT INTO tx.many VALUES ' || string_agg(format('(%s, %L)', i, 'm' || i), ', ') FROM generate_series(1, 1500) i);
END $$;
SELECT count(DISTINCT get_shard_id_for_distribution_column('many', i)) AS shards FROM generate_series(1, 1500) i;
SAVEPOINT s;
\set VERBOSITY sqlstate
DO $$ BEGIN
  EXECUTE (SELECT 'INSERT INTO tx.many VALUES ' || string_agg(format('(%s, %L)', i, 'n' || i), ', ') || ', (1500, ''dup'')' FROM generate_series(1501, 3000) i);
END $$;
\set VERBOSITY default
ROLLBACK TO SAVEPOINT s;
UPDATE many SET v = v || '+' WHERE id % 7 = 0;
COMMIT;
INSERT INTO local_many SELECT i, 'm' || i FROM generate_series(1, 1500) i;
UPDATE local_many SET v = v || '+' WHERE id % 7 = 0;
SELECT (SELECT string_agg(id || v, ',' ORDER BY id) FROM many) = (SELECT string_agg(id || v, ',' ORDER BY id) FROM local_many) AS same, (SELECT count(*) FROM many) AS n;
DROP TABLE many, local_many;
-- Large answers while a node's pipeline is still being sent (RETURNING four times each value):
-- the coordinator reads them as it sends.
SET statement_timeout = '60s';
DO $$
DECLARE big text := repeat('x', 50000); n bigint := 0; r record;
BEGIN
  FOR r IN INSERT INTO tx.batch SELECT i, big || i FROM generate_series(501, 540) i
           RETURNING v || v || v || v AS w LOOP
    n := n + length(r.w);
  END LOOP;
  RAISE NOTICE 'returned % characters', n;
END $$;
DO $$
DECLARE big text := repeat('x', 50000); n bigint := 0; r record;
BEGIN
  FOR r IN INSERT INTO tx.batch VALUES (541, big), (542, big), (543, big), (544, big), (545, big), (546, big), (547, big), (548, big),
                                       (549, big), (550, big), (551, big), (552, big), (553, big), (554, big), (555, big), (556, big)
           RETURNING v || v || v || v AS w LOOP
    n := n + length(r.w);
  END LOOP;
  RAISE NOTICE 'returned % characters', n;
END $$;
RESET statement_timeout;
INSERT INTO local_batch SELECT i, repeat('x', 50000) || i FROM generate_series(501, 540) i;
INSERT INTO local_batch SELECT i, repeat('x', 50000) FROM generate_series(541, 556) i;
SELECT same_batch();
-- Session settings travel in the same round trip: a worker evaluates at::date and at::text
-- under the session's TimeZone and DateStyle, also after SET LOCAL inside the block and after
-- a savepoint rolled back.
CREATE TABLE stamps (id int PRIMARY KEY, at timestamptz NOT NULL, d date, t text, n numeric, j jsonb);
CREATE TABLE local_stamps (LIKE stamps INCLUDING ALL);
SELECT create_distributed_table('stamps', 'id', shard_count => 16);
CREATE FUNCTION same_stamps() RETURNS text LANGUAGE plpgsql AS $$
DECLARE dist text; loc text;
BEGIN
  SELECT string_agg(concat_ws(' ', id, at, d, t, n, j), ', ' ORDER BY id) INTO dist FROM tx.stamps;
  SELECT string_agg(concat_ws(' ', id, at, d, t, n, j), ', ' ORDER BY id) INTO loc FROM tx.local_stamps;
  RETURN CASE WHEN dist IS NOT DISTINCT FROM loc THEN 'same' ELSE 'DIFFERENT: ' || dist || ' <> ' || loc END;
END $$;
SET TimeZone = 'Asia/Kolkata';
SET DateStyle = 'SQL, DMY';
SET plan_cache_mode = force_generic_plan;
-- Constants and parameters mixed, NULLs, numeric and jsonb, run more than five times.
PREPARE stamp(int, int, numeric) AS
  INSERT INTO stamps VALUES ($1, '2024-03-01 23:30:00+00', NULL, 'c', $3, '{"k": [1, 2]}'),
                            ($2, '2024-03-02 20:00:00+00', NULL, NULL, $3 * 2, NULL);
PREPARE stamp_local(int, int, numeric) AS
  INSERT INTO local_stamps VALUES ($1, '2024-03-01 23:30:00+00', NULL, 'c', $3, '{"k": [1, 2]}'),
                                  ($2, '2024-03-02 20:00:00+00', NULL, NULL, $3 * 2, NULL);
PREPARE dates(int) AS UPDATE stamps SET d = at::date, t = at::text WHERE id > $1;
PREPARE dates_local(int) AS UPDATE local_stamps SET d = at::date, t = at::text WHERE id > $1;
BEGIN;
EXECUTE stamp(1, 2, 1.5); EXECUTE stamp(3, 4, 2.25); EXECUTE stamp(5, 6, NULL); EXECUTE stamp(7, 8, 0.001);
EXECUTE stamp(9, 10, -1); EXECUTE stamp(11, 12, 1e20); EXECUTE stamp(13, 14, 3);
EXECUTE dates(0);
SET LOCAL TimeZone = 'America/New_York';
EXECUTE dates(6);
SAVEPOINT s;
SET LOCAL TimeZone = 'Pacific/Auckland';
EXECUTE dates(10);
ROLLBACK TO SAVEPOINT s;
EXECUTE dates(12);
COMMIT;
BEGIN;
EXECUTE stamp_local(1, 2, 1.5); EXECUTE stamp_local(3, 4, 2.25); EXECUTE stamp_local(5, 6, NULL); EXECUTE stamp_local(7, 8, 0.001);
EXECUTE stamp_local(9, 10, -1); EXECUTE stamp_local(11, 12, 1e20); EXECUTE stamp_local(13, 14, 3);
EXECUTE dates_local(0);
SET LOCAL TimeZone = 'America/New_York';
EXECUTE dates_local(6);
SAVEPOINT s;
SET LOCAL TimeZone = 'Pacific/Auckland';
EXECUTE dates_local(10);
ROLLBACK TO SAVEPOINT s;
EXECUTE dates_local(12);
COMMIT;
RESET plan_cache_mode;
SELECT same_stamps();
SELECT id, d, t FROM stamps WHERE id IN (1, 2, 7, 8, 13, 14) ORDER BY id;
RESET TimeZone;
RESET DateStyle;
RESET ROLE;
SELECT nodeport, result FROM run_command_on_workers($$SELECT count(*) FROM pg_prepared_xacts$$) ORDER BY nodeport;

DROP SCHEMA tx CASCADE;
DROP ROLE tx_app;
