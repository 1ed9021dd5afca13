-- Tessera's SQL functions and views (Citus's names and signatures). The C symbols are the
-- `<name>_wrapper` functions that pgrx generates for the Rust functions of the same name.

-- Node management -------------------------------------------------------------------------

CREATE FUNCTION pg_catalog.citus_set_coordinator_host(
    host text,
    port integer DEFAULT current_setting('port')::integer,
    node_role pg_catalog.noderole DEFAULT 'primary',
    node_cluster text DEFAULT 'default')
RETURNS void LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'citus_set_coordinator_host_wrapper';
COMMENT ON FUNCTION pg_catalog.citus_set_coordinator_host(text, integer, pg_catalog.noderole, text)
    IS 'registers the coordinator''s own address (group 0)';

CREATE FUNCTION pg_catalog.citus_add_node(
    nodename text,
    nodeport integer DEFAULT 5432,
    groupid integer DEFAULT -1,
    noderole pg_catalog.noderole DEFAULT 'primary',
    nodecluster text DEFAULT 'default')
RETURNS integer LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'citus_add_node_wrapper';
COMMENT ON FUNCTION pg_catalog.citus_add_node(text, integer, integer, pg_catalog.noderole, text)
    IS 'adds a worker node to the cluster and returns its nodeid';

CREATE FUNCTION pg_catalog.citus_remove_node(nodename text, nodeport integer)
RETURNS void LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'citus_remove_node_wrapper';
COMMENT ON FUNCTION pg_catalog.citus_remove_node(text, integer)
    IS 'removes a node that holds no shard placements';

CREATE FUNCTION pg_catalog.citus_disable_node(nodename text, nodeport integer, synchronous bool DEFAULT false)
RETURNS void LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'citus_disable_node_wrapper';
COMMENT ON FUNCTION pg_catalog.citus_disable_node(text, integer, bool)
    IS 'marks a node inactive: no queries are sent to it';

CREATE FUNCTION pg_catalog.citus_activate_node(nodename text, nodeport integer)
RETURNS integer LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'citus_activate_node_wrapper';
COMMENT ON FUNCTION pg_catalog.citus_activate_node(text, integer)
    IS 'marks a reachable node active again and returns its nodeid';

CREATE FUNCTION pg_catalog.citus_set_node_property(nodename text, nodeport integer, property text, value boolean)
RETURNS void LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'citus_set_node_property_wrapper';
COMMENT ON FUNCTION pg_catalog.citus_set_node_property(text, integer, text, boolean)
    IS 'changes a node property (shouldhaveshards)';

REVOKE ALL ON FUNCTION pg_catalog.citus_set_coordinator_host(text, integer, pg_catalog.noderole, text) FROM public;
REVOKE ALL ON FUNCTION pg_catalog.citus_add_node(text, integer, integer, pg_catalog.noderole, text) FROM public;
REVOKE ALL ON FUNCTION pg_catalog.citus_remove_node(text, integer) FROM public;
REVOKE ALL ON FUNCTION pg_catalog.citus_disable_node(text, integer, bool) FROM public;
REVOKE ALL ON FUNCTION pg_catalog.citus_activate_node(text, integer) FROM public;
REVOKE ALL ON FUNCTION pg_catalog.citus_set_node_property(text, integer, text, boolean) FROM public;

CREATE FUNCTION pg_catalog.citus_get_active_worker_nodes(OUT node_name text, OUT node_port bigint)
RETURNS SETOF record LANGUAGE SQL STABLE
AS $$
    SELECT nodename, nodeport::bigint FROM pg_catalog.pg_dist_node
    WHERE isactive AND noderole = 'primary' AND groupid <> 0
    ORDER BY nodeid
$$;
COMMENT ON FUNCTION pg_catalog.citus_get_active_worker_nodes()
    IS 'lists the active primary worker nodes';

CREATE VIEW citus.citus_nodes AS
    SELECT nodename, nodeport,
           CASE WHEN groupid = 0 THEN 'coordinator' ELSE 'worker' END AS role,
           isactive AS active
    FROM pg_catalog.pg_dist_node
    WHERE noderole = 'primary';
ALTER VIEW citus.citus_nodes SET SCHEMA pg_catalog;
GRANT SELECT ON pg_catalog.citus_nodes TO public;

-- Running commands on nodes -----------------------------------------------------------------

CREATE FUNCTION pg_catalog.run_command_on_workers(
    command text,
    parallel bool DEFAULT true,
    OUT nodename text,
    OUT nodeport integer,
    OUT success bool,
    OUT result text)
RETURNS SETOF record LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'run_command_on_workers_wrapper';
COMMENT ON FUNCTION pg_catalog.run_command_on_workers(text, bool)
    IS 'runs a command on every active worker, in parallel by default';

CREATE FUNCTION pg_catalog.run_command_on_all_nodes(
    command text,
    parallel bool DEFAULT true,
    give_warning_for_connection_errors bool DEFAULT false,
    OUT nodeid integer,
    OUT success bool,
    OUT result text)
RETURNS SETOF record LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'run_command_on_all_nodes_wrapper';
COMMENT ON FUNCTION pg_catalog.run_command_on_all_nodes(text, bool, bool)
    IS 'runs a command on every active node, coordinator included';

CREATE FUNCTION pg_catalog.tessera_version()
RETURNS text LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'tessera_version_wrapper';
