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

-- Distributed tables ---------------------------------------------------------------------------

CREATE FUNCTION pg_catalog.worker_hash(value anyelement)
RETURNS integer LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'worker_hash_wrapper';
COMMENT ON FUNCTION pg_catalog.worker_hash(anyelement)
    IS 'the int4 hash of a value with its type''s default hash function, as shards are cut';

CREATE FUNCTION pg_catalog.create_distributed_table(
    table_name regclass,
    distribution_column text,
    distribution_type text DEFAULT 'hash',
    colocate_with text DEFAULT 'default',
    shard_count integer DEFAULT NULL)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'create_distributed_table_wrapper';
COMMENT ON FUNCTION pg_catalog.create_distributed_table(regclass, text, text, text, integer)
    IS 'hash-distributes a table over the worker nodes';

CREATE FUNCTION pg_catalog.create_reference_table(table_name regclass)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'create_reference_table_wrapper';
COMMENT ON FUNCTION pg_catalog.create_reference_table(regclass)
    IS 'makes a table a reference table: one shard, a copy on every node';

CREATE FUNCTION pg_catalog.create_distributed_function(function_name regprocedure,
    distribution_arg_name text DEFAULT NULL, colocate_with text DEFAULT 'default',
    force_delegation boolean DEFAULT NULL)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'create_distributed_function_wrapper';
COMMENT ON FUNCTION pg_catalog.create_distributed_function(regprocedure, text, text, boolean)
    IS 'puts a function on every node (with its owner and privileges) and records it in pg_dist_object';

CREATE FUNCTION pg_catalog.undistribute_table(table_name regclass,
                                              cascade_via_foreign_keys boolean DEFAULT false)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'undistribute_table_wrapper';
COMMENT ON FUNCTION pg_catalog.undistribute_table(regclass, boolean)
    IS 'brings the rows of a distributed or reference table back into its local table and drops its shards';

CREATE FUNCTION pg_catalog.get_shard_id_for_distribution_column(
    table_name regclass, distribution_value "any" DEFAULT NULL)
RETURNS bigint LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'get_shard_id_for_distribution_column_wrapper';
COMMENT ON FUNCTION pg_catalog.get_shard_id_for_distribution_column(regclass, "any")
    IS 'the shard of a distributed table that holds a distribution value';

CREATE FUNCTION pg_catalog.column_to_column_name(table_name regclass, column_var_text text)
RETURNS text LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'column_to_column_name_wrapper';
COMMENT ON FUNCTION pg_catalog.column_to_column_name(regclass, text)
    IS 'the name of the column a pg_dist_partition.partkey names';
CREATE FUNCTION pg_catalog.column_name_to_column(table_name regclass, column_name text)
RETURNS text LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'column_name_to_column_wrapper';
COMMENT ON FUNCTION pg_catalog.column_name_to_column(regclass, text)
    IS 'the Var node text of a column, the form pg_dist_partition.partkey stores';

CREATE FUNCTION pg_catalog.shard_name(table_name regclass, shard_id bigint)
RETURNS text LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'shard_name_wrapper';
COMMENT ON FUNCTION pg_catalog.shard_name(regclass, bigint)
    IS 'the name of a shard''s table on its node';

CREATE FUNCTION citus.tessera_drop_trigger()
RETURNS event_trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'tessera_drop_trigger_wrapper';
CREATE EVENT TRIGGER tessera_drop_trigger ON sql_drop
    EXECUTE FUNCTION citus.tessera_drop_trigger();

-- Records the objects kept on every node (schemas, types, functions, ...) in pg_dist_object.
CREATE FUNCTION citus.tessera_ddl_trigger()
RETURNS event_trigger LANGUAGE C
AS 'MODULE_PATHNAME', 'tessera_ddl_trigger_wrapper';
CREATE EVENT TRIGGER tessera_ddl_trigger ON ddl_command_end
    EXECUTE FUNCTION citus.tessera_ddl_trigger();

-- Sizes of shard placements, asked of every node that holds some (superuser or table owner
-- sees them; a node that cannot be reached shows no sizes).
CREATE FUNCTION citus.shard_placement_sizes(OUT groupid integer, OUT shard_id bigint, OUT size bigint)
RETURNS SETOF record LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'shard_placement_sizes_wrapper';
-- The bytes of one relation's files, read without opening it (the sizes above use it on
-- each node: a new session then builds no relcache entry per shard).
CREATE FUNCTION citus.tessera_relation_bytes(rel oid)
RETURNS bigint LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'tessera_relation_bytes_wrapper';
CREATE FUNCTION pg_catalog.citus_shard_sizes(OUT shard_id bigint, OUT size bigint)
RETURNS SETOF record LANGUAGE SQL VOLATILE
AS $$ SELECT shard_id, size FROM citus.shard_placement_sizes() $$;

CREATE VIEW citus.citus_shards AS
SELECT p.logicalrelid AS table_name,
       s.shardid,
       pg_catalog.shard_name(p.logicalrelid, s.shardid) AS shard_name,
       CASE WHEN p.partmethod = 'h' THEN 'distributed'
            WHEN p.repmodel = 't' THEN 'reference'
            WHEN p.colocationid IN (SELECT ds.colocationid FROM pg_catalog.pg_dist_schema ds) THEN 'schema'
            ELSE 'distributed' END AS citus_table_type,
       p.colocationid AS colocation_id,
       n.nodename,
       n.nodeport,
       sz.size AS shard_size
  FROM pg_catalog.pg_dist_shard s
  JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid = s.logicalrelid
  JOIN pg_catalog.pg_dist_placement pl ON pl.shardid = s.shardid
  JOIN pg_catalog.pg_dist_node n ON n.groupid = pl.groupid AND n.noderole = 'primary'
  LEFT JOIN citus.shard_placement_sizes() sz ON sz.shard_id = s.shardid
                                             AND sz.groupid = pl.groupid;
ALTER VIEW citus.citus_shards SET SCHEMA pg_catalog;
GRANT SELECT ON pg_catalog.citus_shards TO public;

-- The sizes are asked of every node once per query (not once per table), so the view answers
-- as fast with ten thousand tables as with ten.
CREATE VIEW citus.citus_tables AS
WITH sizes AS (
    SELECT s.logicalrelid, sum(sz.size) AS size
      FROM citus.shard_placement_sizes() sz
      JOIN pg_catalog.pg_dist_shard s ON s.shardid = sz.shard_id
     GROUP BY s.logicalrelid),
shard_counts AS (
    SELECT s.logicalrelid, count(*) AS shard_count
      FROM pg_catalog.pg_dist_shard s GROUP BY s.logicalrelid)
SELECT p.logicalrelid AS table_name,
       CASE WHEN p.partmethod = 'h' THEN 'distributed'
            WHEN p.repmodel = 't' THEN 'reference'
            WHEN ds.schemaid IS NOT NULL THEN 'schema'
            ELSE 'distributed' END AS citus_table_type,
       coalesce(pg_catalog.column_to_column_name(p.logicalrelid, p.partkey), '<none>')
           AS distribution_column,
       p.colocationid AS colocation_id,
       pg_catalog.pg_size_pretty(coalesce(sz.size, 0)::bigint) AS table_size,
       coalesce(sc.shard_count, 0) AS shard_count,
       pg_catalog.pg_get_userbyid(c.relowner) AS table_owner,
       am.amname AS access_method
  FROM pg_catalog.pg_dist_partition p
  JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
  LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
  LEFT JOIN pg_catalog.pg_dist_schema ds ON ds.colocationid = p.colocationid
  LEFT JOIN sizes sz ON sz.logicalrelid = p.logicalrelid
  LEFT JOIN shard_counts sc ON sc.logicalrelid = p.logicalrelid;
ALTER VIEW citus.citus_tables SET SCHEMA pg_catalog;
GRANT SELECT ON pg_catalog.citus_tables TO public;

-- Schema-based sharding -------------------------------------------------------------------------

CREATE TYPE citus.shard_transfer_mode AS ENUM ('auto', 'force_logical', 'block_writes');

-- Every table of the schema becomes a single-shard table in one colocation group owned by the
-- schema, on one node: the one named (by name and port, or by id), or the least loaded one
-- (fewest bytes of tenant schemas, then fewest tenant schemas).
CREATE FUNCTION pg_catalog.citus_schema_distribute(
    schemaname regnamespace,
    node_name text DEFAULT NULL,
    node_port integer DEFAULT NULL,
    node_id integer DEFAULT NULL)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'citus_schema_distribute_wrapper';
COMMENT ON FUNCTION pg_catalog.citus_schema_distribute(regnamespace, text, integer, integer)
    IS 'distributes a schema: its tables become single-shard tables placed together on one node';

CREATE FUNCTION pg_catalog.citus_schema_undistribute(schemaname regnamespace)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'citus_schema_undistribute_wrapper';
COMMENT ON FUNCTION pg_catalog.citus_schema_undistribute(regnamespace)
    IS 'brings the tables of a distributed schema back to the coordinator as local tables';

CREATE FUNCTION pg_catalog.citus_schema_move(
    schema_id regnamespace,
    target_node_name text,
    target_node_port integer,
    shard_transfer_mode citus.shard_transfer_mode DEFAULT 'auto')
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'citus_schema_move_wrapper';
COMMENT ON FUNCTION pg_catalog.citus_schema_move(regnamespace, text, integer, citus.shard_transfer_mode)
    IS 'moves every table of a distributed schema to the given node';

CREATE FUNCTION pg_catalog.citus_schema_move(
    schema_id regnamespace,
    target_node_id integer,
    shard_transfer_mode citus.shard_transfer_mode DEFAULT 'auto')
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'citus_schema_move_with_nodeid_wrapper';
COMMENT ON FUNCTION pg_catalog.citus_schema_move(regnamespace, integer, citus.shard_transfer_mode)
    IS 'moves every table of a distributed schema to the given node';

-- Two-phase commit ---------------------------------------------------------------------------

-- Commits on the workers what committed here and rolls back what did not (transactions left
-- prepared by a node or coordinator that failed at the wrong moment); returns how many.
CREATE FUNCTION pg_catalog.recover_prepared_transactions()
RETURNS integer LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'recover_prepared_transactions_wrapper';
COMMENT ON FUNCTION pg_catalog.recover_prepared_transactions()
    IS 'finishes the prepared transactions two-phase commits left on the workers';
REVOKE ALL ON FUNCTION pg_catalog.recover_prepared_transactions() FROM public;

-- The prepared transactions of this coordinator's two-phase commits on the workers, their age,
-- and what recovery will do with each (commit, rollback, or wait while it is committing).
CREATE FUNCTION citus.tessera_in_doubt_transactions(
    OUT node_name text, OUT node_port integer, OUT gid text, OUT prepared text,
    OUT age_seconds float8, OUT decision text)
RETURNS SETOF record LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'tessera_in_doubt_transactions_wrapper';
CREATE VIEW citus.tessera_in_doubt_transactions AS
SELECT node_name, node_port, gid, prepared::timestamptz AS prepared,
       pg_catalog.make_interval(secs => age_seconds) AS age, decision
  FROM citus.tessera_in_doubt_transactions();
ALTER VIEW citus.tessera_in_doubt_transactions SET SCHEMA pg_catalog;
REVOKE ALL ON FUNCTION citus.tessera_in_doubt_transactions() FROM public;

-- The index builds running on the workers, from each node's pg_stat_progress_create_index: the
-- shard each build is on, its phase and how far it got (pgvector's HNSW and IVFFlat builds
-- report their phases and tuples). A CREATE INDEX on a distributed table builds one shard at a
-- time per node, all nodes at once. As pg_stat_progress_create_index, a role sees the details
-- of its own builds (pg_read_all_stats: all of them); a node that did not answer is a row with
-- its error.
CREATE VIEW citus.tessera_index_build_progress AS
WITH nodes AS (
    SELECT * FROM pg_catalog.run_command_on_workers($cmd$
         SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
                  'pid', pid, 'shard', relid::regclass::text, 'command', command, 'phase', phase,
                  'blocks_total', blocks_total, 'blocks_done', blocks_done,
                  'tuples_total', tuples_total, 'tuples_done', tuples_done)), '[]')
           FROM pg_catalog.pg_stat_progress_create_index
          WHERE datname = pg_catalog.current_database()$cmd$))
SELECT r.nodename AS node_name, r.nodeport AS node_port, p.pid, p.shard, p.command, p.phase,
       p.blocks_total, p.blocks_done, p.tuples_total, p.tuples_done, NULL::text AS error
  FROM nodes r,
       LATERAL pg_catalog.json_to_recordset(r.result::json)
         AS p(pid integer, shard text, command text, phase text, blocks_total bigint,
              blocks_done bigint, tuples_total bigint, tuples_done bigint)
 WHERE r.success
UNION ALL
-- A node that could not be asked says so, rather than looking idle.
SELECT r.nodename, r.nodeport, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, r.result
  FROM nodes r
 WHERE NOT r.success;
ALTER VIEW citus.tessera_index_build_progress SET SCHEMA pg_catalog;
GRANT SELECT ON pg_catalog.tessera_index_build_progress TO public;

-- Drops the objects recorded in pg_dist_cleanup (old placements of moved shards) that it can: a
-- placement still in use is left for the next run.
CREATE PROCEDURE pg_catalog.citus_cleanup_orphaned_resources()
LANGUAGE C
AS 'MODULE_PATHNAME', 'citus_cleanup_orphaned_resources_wrapper';
COMMENT ON PROCEDURE pg_catalog.citus_cleanup_orphaned_resources()
    IS 'drops the old placements of moved shards';

-- Citus's view of the distributed schemas; sizes asked of every node once per query.
CREATE VIEW citus.citus_schemas AS
WITH sizes AS (
    SELECT p.colocationid, sum(sz.size) AS size
      FROM citus.shard_placement_sizes() sz
      JOIN pg_catalog.pg_dist_shard s ON s.shardid = sz.shard_id
      JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid = s.logicalrelid
     GROUP BY p.colocationid)
SELECT ds.schemaid::regnamespace AS schema_name,
       ds.colocationid AS colocation_id,
       pg_catalog.pg_size_pretty(coalesce(sz.size, 0)::bigint) AS schema_size,
       pg_catalog.pg_get_userbyid(n.nspowner) AS schema_owner
  FROM pg_catalog.pg_dist_schema ds
  JOIN pg_catalog.pg_namespace n ON n.oid = ds.schemaid
  LEFT JOIN sizes sz ON sz.colocationid = ds.colocationid;
ALTER VIEW citus.citus_schemas SET SCHEMA pg_catalog;
GRANT SELECT ON pg_catalog.citus_schemas TO public;

-- Distributed queries ---------------------------------------------------------------------------
-- The planner combines the workers' rows in a query PostgreSQL plans itself; its FROM item is
-- this function, which the planner replaces by the Tessera Adaptive scan. It is never called.
-- Its row estimate is the distributed query's (set while the combine query is planned).
CREATE FUNCTION pg_catalog.tessera_worker_results_support(internal)
RETURNS internal LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'tessera_worker_results_support_wrapper';
CREATE FUNCTION pg_catalog.tessera_worker_results()
RETURNS SETOF record LANGUAGE C PARALLEL UNSAFE
SUPPORT pg_catalog.tessera_worker_results_support
AS 'MODULE_PATHNAME', 'tessera_worker_results_wrapper';
COMMENT ON FUNCTION pg_catalog.tessera_worker_results()
    IS 'placeholder for the rows of a distributed query''s tasks (replaced at planning)';

-- A subquery or CTE the planner runs first (its own distributed query) before the coordinator
-- finishes the query; replaced by a Tessera Subquery scan. It is never called.
CREATE FUNCTION pg_catalog.tessera_subquery_results(integer)
RETURNS SETOF record LANGUAGE C PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'tessera_subquery_results_wrapper';
COMMENT ON FUNCTION pg_catalog.tessera_subquery_results(integer)
    IS 'placeholder for the rows of a subquery planned on its own (replaced at planning)';

-- The rows of a WITH query that ran first (a statement with data-modifying WITH queries): the
-- Tessera WITH scan keeps them while the statement runs; the rest of it reads them here.
CREATE FUNCTION pg_catalog.tessera_cte_results(integer)
RETURNS SETOF record LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'tessera_cte_results';
COMMENT ON FUNCTION pg_catalog.tessera_cte_results(integer)
    IS 'rows of a WITH query the distributed planner runs first (set while its statement runs)';
-- Every role that may run such a statement calls it; it hands out only rows that the calling
-- role's own running statement kept, after checking the column types asked for.
GRANT EXECUTE ON FUNCTION pg_catalog.tessera_cte_results(integer) TO PUBLIC;

-- Any aggregate with a combine function, across shards, through PostgreSQL's partial
-- aggregation (src/executor/partial_agg.rs): the workers run tessera_partial_agg, which returns
-- the aggregate's transition state serialized; the coordinator runs tessera_combine_agg, which
-- combines those states and applies the aggregate's final function. tessera_partial_agg checks
-- its inputs as the executor would; tessera_combine_agg takes the state as `internal`, a value
-- only the Tessera scan makes (SQL cannot), so no user-supplied bytes reach a deserialization
-- function. PARALLEL RESTRICTED: they run the aggregate's own functions, of any safety.
CREATE FUNCTION pg_catalog.tessera_partial_agg_sfunc(internal, regprocedure, VARIADIC "any")
RETURNS internal LANGUAGE C PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'tessera_partial_agg_sfunc';
CREATE FUNCTION pg_catalog.tessera_partial_agg_sfunc(internal, regprocedure)
RETURNS internal LANGUAGE C PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'tessera_partial_agg_sfunc';
CREATE FUNCTION pg_catalog.tessera_partial_agg_ffunc(internal)
RETURNS bytea LANGUAGE C PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'tessera_partial_agg_ffunc';
CREATE AGGREGATE pg_catalog.tessera_partial_agg(regprocedure, VARIADIC "any") (
    SFUNC = pg_catalog.tessera_partial_agg_sfunc, STYPE = internal,
    FINALFUNC = pg_catalog.tessera_partial_agg_ffunc, PARALLEL = RESTRICTED);
COMMENT ON AGGREGATE pg_catalog.tessera_partial_agg(regprocedure, VARIADIC "any")
    IS 'a shard''s transition state of an aggregate, serialized (the distributed planner''s)';
-- agg(*): a VARIADIC parameter needs at least one argument.
CREATE AGGREGATE pg_catalog.tessera_partial_agg(regprocedure) (
    SFUNC = pg_catalog.tessera_partial_agg_sfunc, STYPE = internal,
    FINALFUNC = pg_catalog.tessera_partial_agg_ffunc, PARALLEL = RESTRICTED);
COMMENT ON AGGREGATE pg_catalog.tessera_partial_agg(regprocedure)
    IS 'a shard''s transition state of an aggregate without arguments (the distributed planner''s)';
CREATE FUNCTION pg_catalog.tessera_combine_agg_sfunc(internal, oid, oid[], internal, anyelement)
RETURNS internal LANGUAGE C PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'tessera_combine_agg_sfunc';
CREATE FUNCTION pg_catalog.tessera_combine_agg_ffunc(internal, oid, oid[], internal, anyelement)
RETURNS anyelement LANGUAGE C PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'tessera_combine_agg_ffunc';
CREATE AGGREGATE pg_catalog.tessera_combine_agg(oid, oid[], internal, anyelement) (
    SFUNC = pg_catalog.tessera_combine_agg_sfunc, STYPE = internal,
    FINALFUNC = pg_catalog.tessera_combine_agg_ffunc, FINALFUNC_EXTRA,
    FINALFUNC_MODIFY = READ_WRITE, PARALLEL = RESTRICTED);
COMMENT ON AGGREGATE pg_catalog.tessera_combine_agg(oid, oid[], internal, anyelement)
    IS 'an aggregate over the shards'' transition states (the distributed planner''s)';

-- Aggregates that combine the workers' partial aggregates on the coordinator.
CREATE AGGREGATE pg_catalog.tessera_count_combine(bigint) (
    SFUNC = pg_catalog.int8pl, STYPE = bigint, INITCOND = '0', PARALLEL = SAFE);
CREATE AGGREGATE pg_catalog.tessera_sum_bigint(bigint) (
    SFUNC = pg_catalog.int8pl, STYPE = bigint, PARALLEL = SAFE);
CREATE AGGREGATE pg_catalog.tessera_array_cat_agg(anycompatiblearray) (
    SFUNC = pg_catalog.array_cat, STYPE = anycompatiblearray, PARALLEL = SAFE);

-- avg = sum of the partial sums / sum of the partial counts, with avg's own result type and
-- (for numeric) the same division, so the result is the one a single node computes.
CREATE FUNCTION pg_catalog.tessera_avg_accum(numeric[], numeric, bigint)
RETURNS numeric[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN $2 IS NULL THEN $1 ELSE ARRAY[$1[1] + $2, $1[2] + $3] END $$;
CREATE FUNCTION pg_catalog.tessera_avg_final(numeric[])
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN $1[2] = 0 THEN NULL ELSE $1[1] / $1[2] END $$;
CREATE AGGREGATE pg_catalog.tessera_avg_combine(numeric, bigint) (
    SFUNC = pg_catalog.tessera_avg_accum, STYPE = numeric[], INITCOND = '{0,0}',
    FINALFUNC = pg_catalog.tessera_avg_final, PARALLEL = SAFE);
CREATE FUNCTION pg_catalog.tessera_avg_accum(float8[], float8, bigint)
RETURNS float8[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN $2 IS NULL THEN $1 ELSE ARRAY[$1[1] + $2, $1[2] + $3] END $$;
CREATE FUNCTION pg_catalog.tessera_avg_final(float8[])
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN $1[2] = 0 THEN NULL ELSE $1[1] / $1[2] END $$;
CREATE AGGREGATE pg_catalog.tessera_avg_combine(float8, bigint) (
    SFUNC = pg_catalog.tessera_avg_accum, STYPE = float8[], INITCOND = '{0,0}',
    FINALFUNC = pg_catalog.tessera_avg_final, PARALLEL = SAFE);
CREATE FUNCTION pg_catalog.tessera_avg_accum(numeric[], bigint, bigint)
RETURNS numeric[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN $2 IS NULL THEN $1 ELSE ARRAY[$1[1] + $2, $1[2] + $3] END $$;
CREATE AGGREGATE pg_catalog.tessera_avg_combine(bigint, bigint) (
    SFUNC = pg_catalog.tessera_avg_accum, STYPE = numeric[], INITCOND = '{0,0}',
    FINALFUNC = pg_catalog.tessera_avg_final, PARALLEL = SAFE);
-- avg(interval): the partial sums added exactly, divided by the count as interval_avg divides
-- (interval / float8). The count travels in the state as microseconds of an interval.
CREATE FUNCTION pg_catalog.tessera_avg_accum(interval[], interval, bigint)
RETURNS interval[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN $2 IS NULL THEN $1
                  ELSE ARRAY[$1[1] + $2, $1[2] + $3 * interval '1 microsecond'] END $$;
CREATE FUNCTION pg_catalog.tessera_avg_final(interval[])
RETURNS interval LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN $1[2] = interval '0' THEN NULL
                  ELSE $1[1] / (EXTRACT(epoch FROM $1[2]) * 1000000)::float8 END $$;
CREATE AGGREGATE pg_catalog.tessera_avg_combine(interval, bigint) (
    SFUNC = pg_catalog.tessera_avg_accum, STYPE = interval[], INITCOND = '{0,0}',
    FINALFUNC = pg_catalog.tessera_avg_final, PARALLEL = SAFE);
CREATE FUNCTION pg_catalog.tessera_avg_accum(float8[], real, bigint)
RETURNS float8[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN $2 IS NULL THEN $1 ELSE ARRAY[$1[1] + $2, $1[2] + $3] END $$;
CREATE AGGREGATE pg_catalog.tessera_avg_combine(real, bigint) (
    SFUNC = pg_catalog.tessera_avg_accum, STYPE = float8[], INITCOND = '{0,0}',
    FINALFUNC = pg_catalog.tessera_avg_final, PARALLEL = SAFE);

-- Time partitions ---------------------------------------------------------------------------
-- Citus's helpers for tables partitioned by range on one time column. They work on local
-- and distributed partitioned tables alike: CREATE TABLE ... PARTITION OF a distributed table
-- distributes the new partition with its parent. Partitions are named as pg_partman and
-- Citus name them (<table>_p2026_12, _p2026w49, _p2026q4, ...).

-- One row per range partition of a table partitioned by range on one column; a DEFAULT
-- partition has '' as its bounds.
CREATE VIEW citus.time_partitions AS
    SELECT p.parent_table, p.partition_column, p.partition,
           CASE WHEN p.bound = 'DEFAULT' THEN ''
                ELSE replace(substring(p.bound FROM $re$^FOR VALUES FROM \('((?:[^']|'')*)'\) TO$re$), '''''', '''') END
               AS from_value,
           CASE WHEN p.bound = 'DEFAULT' THEN ''
                ELSE replace(substring(p.bound FROM $re$ TO \('((?:[^']|'')*)'\)$$re$), '''''', '''') END
               AS to_value,
           p.access_method
    FROM (SELECT pt.partrelid::regclass AS parent_table, a.attname AS partition_column,
                 c.oid::regclass AS partition, pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound,
                 am.amname AS access_method
            FROM pg_catalog.pg_partitioned_table pt
            JOIN pg_catalog.pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
            JOIN pg_catalog.pg_inherits i ON i.inhparent = pt.partrelid
            JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
            LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
           WHERE pt.partstrat = 'r' AND pt.partnatts = 1) p;
ALTER VIEW citus.time_partitions SET SCHEMA pg_catalog;
GRANT SELECT ON pg_catalog.time_partitions TO public;
COMMENT ON VIEW pg_catalog.time_partitions
    IS 'the range partitions of tables partitioned by one column, with their bounds as text';

-- The partitions create_time_partitions would make: one per partition_interval from the
-- first aligned step at or before from_value up to to_value, skipping those that exist.
CREATE FUNCTION pg_catalog.get_missing_time_partition_ranges(
    table_name regclass,
    partition_interval interval,
    to_value timestamptz,
    from_value timestamptz DEFAULT now())
RETURNS TABLE (partition_name text, range_from_value text, range_to_value text)
LANGUAGE plpgsql
-- Values are printed and read in ISO form, whatever the session's DateStyle.
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO, MDY'
SET intervalstyle = 'postgres'
AS $fn$
DECLARE
    rel_name name;
    column_type regtype;
    step_start timestamptz;
    step_end timestamptz;
    name_format text;
    suffix text;
    base text;
    clash record;
    session_zone text := current_setting('TimeZone');
    local_from timestamp;
    local_to timestamp;
BEGIN
    IF table_name IS NULL OR partition_interval IS NULL OR to_value IS NULL OR from_value IS NULL THEN
        RAISE EXCEPTION 'table_name, partition_interval, end_at and start_from cannot be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF partition_interval <= interval '0' THEN
        RAISE EXCEPTION 'partition_interval must be positive, not %', partition_interval
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF from_value >= to_value THEN
        RAISE EXCEPTION 'start_from (%) must be before end_at (%)', from_value, to_value
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.relname, a.atttypid::regtype INTO rel_name, column_type
      FROM pg_partitioned_table pt
      JOIN pg_class c ON c.oid = pt.partrelid
      JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = table_name AND pt.partstrat = 'r' AND pt.partnatts = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not partitioned by range on one column', table_name
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Create the table with PARTITION BY RANGE (a date, timestamp or timestamptz column).';
    END IF;
    IF column_type NOT IN ('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype) THEN
        RAISE EXCEPTION 'the partition column of % is of type %, not date, timestamp or timestamptz', table_name, column_type
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF column_type = 'date'::regtype AND date_trunc('day', partition_interval) <> partition_interval THEN
        RAISE EXCEPTION 'the partition interval of a table partitioned by a date must be whole days, not %', partition_interval
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- A date or timestamp column has no time zone: its steps are taken in wall-clock time (in
    -- UTC, which has no daylight saving changes), from the session's wall-clock bounds.
    IF column_type <> 'timestamptz'::regtype THEN
        local_from := from_value::timestamp;
        local_to := to_value::timestamp;
        PERFORM set_config('timezone', 'UTC', true);
        from_value := local_from::timestamptz;
        to_value := local_to::timestamptz;
    END IF;

    -- Steps continue from the first existing partition, so new ones line up with the old.
    SELECT tp.from_value::timestamptz INTO step_start
      FROM pg_catalog.time_partitions tp
     WHERE tp.parent_table = table_name AND tp.from_value <> '' AND tp.to_value <> ''
     ORDER BY tp.from_value::timestamptz LIMIT 1;
    IF step_start IS NULL THEN
        step_start := date_trunc(CASE
            WHEN partition_interval < interval '1 hour' THEN 'minute'
            WHEN partition_interval < interval '1 day' THEN 'hour'
            WHEN partition_interval < interval '1 week' THEN 'day'
            WHEN partition_interval < interval '1 month' THEN 'week'
            WHEN partition_interval = interval '3 months' THEN 'quarter'
            WHEN partition_interval < interval '1 year' THEN 'month'
            ELSE 'year' END, from_value);
    ELSE
        WHILE step_start > from_value LOOP
            step_start := step_start - partition_interval;
        END LOOP;
        WHILE step_start + partition_interval <= from_value LOOP
            step_start := step_start + partition_interval;
        END LOOP;
    END IF;

    name_format := CASE
        WHEN partition_interval = interval '3 months' THEN 'YYYY"q"Q'
        WHEN partition_interval = interval '1 week' THEN 'IYYY"w"IW'
        ELSE 'YYYY'
             || CASE WHEN partition_interval < interval '1 year' THEN '_MM' ELSE '' END
             || CASE WHEN partition_interval < interval '1 month' THEN '_DD' ELSE '' END
             || CASE WHEN partition_interval < interval '1 day' THEN '_HH24MI' ELSE '' END
             || CASE WHEN partition_interval < interval '1 minute' THEN 'SS' ELSE '' END
        END;

    WHILE step_start < to_value LOOP
        step_end := step_start + partition_interval;
        SELECT tp.partition, tp.from_value, tp.to_value INTO clash
          FROM pg_catalog.time_partitions tp
         WHERE tp.parent_table = table_name AND tp.from_value <> '' AND tp.to_value <> ''
           AND tp.from_value::timestamptz < step_end AND tp.to_value::timestamptz > step_start
         LIMIT 1;
        IF NOT FOUND THEN
            suffix := '_p' || to_char(step_start, name_format);
            base := rel_name;
            WHILE octet_length(base || suffix) > current_setting('max_identifier_length')::int LOOP
                base := left(base, -1);
            END LOOP;
            partition_name := base || suffix;
            IF column_type = 'date'::regtype THEN
                range_from_value := step_start::date::text;
                range_to_value := step_end::date::text;
            ELSIF column_type = 'timestamp'::regtype THEN
                range_from_value := step_start::timestamp::text;
                range_to_value := step_end::timestamp::text;
            ELSE
                range_from_value := step_start::text;
                range_to_value := step_end::text;
            END IF;
            RETURN NEXT;
        ELSIF clash.from_value::timestamptz <> step_start OR clash.to_value::timestamptz <> step_end THEN
            RAISE EXCEPTION 'partition % (from % to %) does not line up with partitions of %',
                  clash.partition, clash.from_value, clash.to_value, partition_interval
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Use one partition interval for a table, with no gaps that are not whole intervals.';
        END IF;
        step_start := step_end;
    END LOOP;
    PERFORM set_config('timezone', session_zone, true);
END;
$fn$;
COMMENT ON FUNCTION pg_catalog.get_missing_time_partition_ranges(regclass, interval, timestamptz, timestamptz)
    IS 'the partitions create_time_partitions would create: name and bounds';

-- Creates the missing partitions of a time-partitioned table up to end_at; true if it made any.
CREATE FUNCTION pg_catalog.create_time_partitions(
    table_name regclass,
    partition_interval interval,
    end_at timestamptz,
    start_from timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO, MDY'
SET intervalstyle = 'postgres'
AS $fn$
DECLARE
    schema_name name;
    missing record;
    created boolean := false;
BEGIN
    IF table_name IS NULL THEN
        RAISE EXCEPTION 'table_name cannot be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT n.nspname INTO schema_name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = table_name;
    -- One creator at a time: a second waits, then sees the first one's partitions.
    EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', table_name);
    FOR missing IN
        SELECT * FROM pg_catalog.get_missing_time_partition_ranges(table_name, partition_interval, end_at, start_from)
    LOOP
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       schema_name, missing.partition_name, table_name,
                       missing.range_from_value, missing.range_to_value);
        created := true;
    END LOOP;
    RETURN created;
END;
$fn$;
COMMENT ON FUNCTION pg_catalog.create_time_partitions(regclass, interval, timestamptz, timestamptz)
    IS 'creates the partitions of a time-partitioned table from start_from up to end_at';

-- Drops the partitions whose upper bound is at or before older_than.
CREATE PROCEDURE pg_catalog.drop_old_time_partitions(table_name regclass, older_than timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO, MDY'
AS $fn$
DECLARE
    old record;
BEGIN
    IF table_name IS NULL OR older_than IS NULL THEN
        RAISE EXCEPTION 'table_name and older_than cannot be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = table_name) THEN
        RAISE EXCEPTION '% is not a partitioned table', table_name USING ERRCODE = 'wrong_object_type';
    END IF;
    FOR old IN
        SELECT tp.partition FROM pg_catalog.time_partitions tp
         WHERE tp.parent_table = table_name AND tp.to_value <> ''
           AND tp.to_value::timestamptz <= older_than
         ORDER BY tp.from_value::timestamptz
    LOOP
        EXECUTE format('DROP TABLE %s', old.partition);
    END LOOP;
END;
$fn$;
COMMENT ON PROCEDURE pg_catalog.drop_old_time_partitions(regclass, timestamptz)
    IS 'drops the partitions of a time-partitioned table that end at or before older_than';
