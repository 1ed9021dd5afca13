-- run_command_on_workers / run_command_on_all_nodes on a live 1+4 cluster.

-- Four workers, four different backends, all successful.
SELECT nodename, nodeport, success, result ~ '^\d+$' AS is_pid
FROM run_command_on_workers('select pg_backend_pid()') ORDER BY nodeport;
SELECT count(DISTINCT result) FROM run_command_on_workers('select pg_backend_pid()');
-- Each worker answers from its own server.
SELECT nodeport, result::int = nodeport AS answered_by_itself
FROM run_command_on_workers($$select current_setting('port')$$) ORDER BY nodeport;

-- Command tags, NULL, quoting and non-ASCII text.
SELECT nodeport, success, result FROM run_command_on_workers('create table rc_t (a int)') ORDER BY nodeport;
SELECT nodeport, success, result FROM run_command_on_workers('insert into rc_t values (1), (2)') ORDER BY nodeport;
SELECT nodeport, success, result FROM run_command_on_workers('select sum(a) from rc_t') ORDER BY nodeport;
SELECT nodeport, success, result FROM run_command_on_workers('drop table rc_t') ORDER BY nodeport;
SELECT DISTINCT success, result FROM run_command_on_workers('select null');
SELECT DISTINCT success, result FROM run_command_on_workers($$select 'it''s "quoted" ünïcode ✓'$$);

-- Failures are rows, with the worker's message.
SELECT DISTINCT success, result FROM run_command_on_workers('select * from no_such_table');
SELECT DISTINCT success, result FROM run_command_on_workers('select generate_series(1, 3)');
SELECT DISTINCT success, result FROM run_command_on_workers('select 1, 2');
SELECT DISTINCT success, result FROM run_command_on_workers('this is not sql');
SELECT DISTINCT success, result FROM run_command_on_workers('');

-- One at a time gives the same answers.
SELECT nodeport, success, result::int = nodeport AS ok
FROM run_command_on_workers($$select current_setting('port')$$, parallel => false) ORDER BY nodeport;

-- All nodes: the coordinator too.
SELECT nodeid, success, result FROM run_command_on_all_nodes($$select current_setting('port')$$) ORDER BY nodeid;
SELECT nodeid, success, result FROM run_command_on_all_nodes('select 1/0', parallel => false) ORDER BY nodeid;

-- A registered node that does not answer is a failed row, not an error.
-- (The row is written directly to stand in for a node that went down.)
INSERT INTO pg_dist_node (groupid, nodename, nodeport) VALUES (99, '127.0.0.1', 9899);
SELECT nodeport, success, result FROM run_command_on_workers('select 1') ORDER BY nodeport;
SELECT nodeid > 0 AS has_nodeid, success FROM run_command_on_all_nodes('select 1', give_warning_for_connection_errors => true)
ORDER BY nodeid;
DELETE FROM pg_dist_node WHERE nodeport = 9899;

-- Inside a transaction block.
BEGIN;
SELECT count(*) FROM run_command_on_workers('select 1') WHERE success;
ROLLBACK;

-- STRICT: a NULL command runs nothing.
SELECT count(*) FROM run_command_on_workers(NULL);

-- citus.node_conninfo is a server-wide setting (postgresql.conf + reload), as in Citus.
SET citus.node_conninfo = 'sslmode=disable';
