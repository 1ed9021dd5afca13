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
