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
RESET ROLE;

DROP SCHEMA tx CASCADE;
DROP ROLE tx_app;
