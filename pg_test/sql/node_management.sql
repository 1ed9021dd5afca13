-- Node management on a live 1 coordinator + 4 worker cluster (ports 9800..9804).
-- Every function, each bad input, and the catalog left unchanged by every error.

SELECT * FROM citus_nodes ORDER BY nodeport;
SELECT nodeid, groupid, nodename, nodeport, noderack, hasmetadata, isactive, noderole,
       nodecluster, metadatasynced, shouldhaveshards
FROM pg_dist_node ORDER BY nodeid;
SELECT * FROM citus_get_active_worker_nodes() ORDER BY node_port;

-- The coordinator can be registered again (same address): still one row in group 0.
SELECT citus_set_coordinator_host('127.0.0.1', 9800);
SELECT count(*) FROM pg_dist_node WHERE groupid = 0;
-- A worker's address is not the coordinator's.
SELECT citus_set_coordinator_host('127.0.0.1', 9801);

-- shouldhaveshards
SELECT citus_set_node_property('127.0.0.1', 9802, 'shouldhaveshards', false);
SELECT nodeport, shouldhaveshards FROM pg_dist_node ORDER BY nodeport;
SELECT citus_set_node_property('127.0.0.1', 9802, 'shouldhaveshards', true);
SELECT citus_set_node_property('127.0.0.1', 9802, 'isactive', false);
SELECT citus_set_node_property('127.0.0.1', 9899, 'shouldhaveshards', true);

-- Disable and activate: a disabled worker gets no commands.
SELECT citus_disable_node('127.0.0.1', 9804);
SELECT nodeport, isactive FROM pg_dist_node ORDER BY nodeport;
SELECT nodeport, success FROM run_command_on_workers('select 1') ORDER BY nodeport;
SELECT * FROM citus_get_active_worker_nodes() ORDER BY node_port;
SELECT citus_activate_node('127.0.0.1', 9804) = nodeid AS activated_same_node
FROM pg_dist_node WHERE nodeport = 9804;
SELECT nodeport, success FROM run_command_on_workers('select 1') ORDER BY nodeport;
SELECT citus_disable_node('127.0.0.1', 9800);
SELECT citus_disable_node('127.0.0.1', 9899);
SELECT citus_activate_node('127.0.0.1', 9899);

-- Remove and add back: the new row gets a new nodeid and group.
SELECT citus_remove_node('127.0.0.1', 9804);
SELECT nodeport FROM pg_dist_node ORDER BY nodeport;
SELECT citus_add_node('127.0.0.1', 9804) AS new_nodeid;
SELECT nodeid, groupid, nodeport, isactive FROM pg_dist_node WHERE nodeport = 9804;
SELECT citus_remove_node('127.0.0.1', 9899);

-- A removal inside a transaction that rolls back leaves the node in place.
BEGIN;
SELECT citus_remove_node('127.0.0.1', 9803);
SELECT count(*) FROM pg_dist_node WHERE nodeport = 9803;
ROLLBACK;
SELECT count(*) FROM pg_dist_node WHERE nodeport = 9803;

-- A node that holds shard placements cannot be removed. (The placement row stands in for a
-- shard until distributed tables exist; it is removed again below.)
INSERT INTO pg_dist_placement (shardid, shardstate, shardlength, groupid)
SELECT 1, 1, 0, groupid FROM pg_dist_node WHERE nodeport = 9801;
SELECT citus_remove_node('127.0.0.1', 9801);
DELETE FROM pg_dist_placement WHERE shardid = 1;

-- Bad input: each a clear error, the node list unchanged.
CREATE TEMP TABLE nodes_before AS SELECT * FROM pg_dist_node;
SELECT citus_add_node('127.0.0.1', 9801);            -- already in the cluster
SELECT citus_add_node('127.0.0.1', 9800);            -- the coordinator
SELECT citus_add_node('localhost', 9800);            -- the coordinator under another name
SELECT citus_add_node('127.0.0.1', 9899);            -- nothing listens there
SELECT citus_add_node('127.0.0.1', 0);               -- port out of range
SELECT citus_add_node('', 9801);                     -- empty name
SELECT citus_add_node('bad host', 9801);             -- white space in the name
SELECT citus_add_node('127.0.0.1', 9899, groupid => 0);
SELECT citus_add_node('127.0.0.1', 9899, noderole => 'leader');
SELECT citus_remove_node(NULL, 9801);                -- STRICT: NULL in, nothing done
SELECT count(*) AS changed_rows FROM (
    (SELECT * FROM pg_dist_node EXCEPT SELECT * FROM nodes_before)
    UNION ALL
    (SELECT * FROM nodes_before EXCEPT SELECT * FROM pg_dist_node)) d;

-- Node management is for superusers only.
CREATE ROLE tessera_regress_user;
SET ROLE tessera_regress_user;
SELECT citus_add_node('127.0.0.1', 9899);
SELECT citus_remove_node('127.0.0.1', 9801);
SELECT citus_disable_node('127.0.0.1', 9801);
SELECT citus_activate_node('127.0.0.1', 9801);
SELECT citus_set_node_property('127.0.0.1', 9801, 'shouldhaveshards', false);
SELECT citus_set_coordinator_host('127.0.0.1', 9800);
-- but anyone may read the node list
SELECT count(*) FROM citus_nodes;
RESET ROLE;
DROP ROLE tessera_regress_user;
