-- Tessera's catalog, with Citus's names and columns.
--
-- PostgreSQL does not let CREATE TABLE put a table into pg_catalog, but it lets a superuser move
-- one there; the tables are made in the schema "citus" and moved, so that they are visible
-- without schema qualification, as Citus's are. Internal helpers stay in "citus".

CREATE SCHEMA citus;
GRANT USAGE ON SCHEMA citus TO public;

-- The role of a node within its group (a primary and its streaming replicas).
CREATE TYPE citus.noderole AS ENUM ('primary', 'secondary', 'unavailable');
ALTER TYPE citus.noderole SET SCHEMA pg_catalog;

CREATE SEQUENCE citus.pg_dist_node_nodeid_seq MINVALUE 1 NO CYCLE;
ALTER SEQUENCE citus.pg_dist_node_nodeid_seq SET SCHEMA pg_catalog;
CREATE SEQUENCE citus.pg_dist_groupid_seq MINVALUE 1 NO CYCLE;
ALTER SEQUENCE citus.pg_dist_groupid_seq SET SCHEMA pg_catalog;

-- One row per node of the cluster; the coordinator is group 0.
CREATE TABLE citus.pg_dist_node (
    nodeid int NOT NULL DEFAULT nextval('pg_catalog.pg_dist_node_nodeid_seq') PRIMARY KEY,
    groupid int NOT NULL,
    nodename text NOT NULL,
    nodeport int NOT NULL DEFAULT 5432,
    noderack text NOT NULL DEFAULT 'default',
    hasmetadata bool NOT NULL DEFAULT false,
    isactive bool NOT NULL DEFAULT true,
    noderole pg_catalog.noderole NOT NULL DEFAULT 'primary',
    nodecluster name NOT NULL DEFAULT 'default',
    metadatasynced bool NOT NULL DEFAULT false,
    shouldhaveshards bool NOT NULL DEFAULT true,
    CONSTRAINT pg_dist_node_nodename_nodeport_key UNIQUE (nodename, nodeport),
    CONSTRAINT pg_dist_node_port_range CHECK (nodeport BETWEEN 1 AND 65535)
);
ALTER TABLE citus.pg_dist_node SET SCHEMA pg_catalog;
ALTER SEQUENCE pg_catalog.pg_dist_node_nodeid_seq OWNED BY pg_catalog.pg_dist_node.nodeid;

-- Colocation groups: tables in one group have the same shard count, ranges and placements.
CREATE SEQUENCE citus.pg_dist_colocationid_seq MINVALUE 1 NO CYCLE;
ALTER SEQUENCE citus.pg_dist_colocationid_seq SET SCHEMA pg_catalog;
CREATE TABLE citus.pg_dist_colocation (
    colocationid int NOT NULL PRIMARY KEY,
    shardcount int NOT NULL,
    replicationfactor int NOT NULL,
    distributioncolumntype oid NOT NULL,
    distributioncolumncollation oid NOT NULL DEFAULT 0
);
ALTER TABLE citus.pg_dist_colocation SET SCHEMA pg_catalog;

-- Distributed tables: how each is partitioned ('h' hash, 'n' none for reference and
-- single-shard tables) and its distribution column.
CREATE TABLE citus.pg_dist_partition (
    logicalrelid regclass NOT NULL PRIMARY KEY,
    partmethod "char" NOT NULL,
    partkey text,
    colocationid int NOT NULL DEFAULT 0,
    repmodel "char" NOT NULL DEFAULT 's',
    autoconverted bool NOT NULL DEFAULT false
);
ALTER TABLE citus.pg_dist_partition SET SCHEMA pg_catalog;

-- Shards: each owns the hash range [shardminvalue, shardmaxvalue] of its table.
CREATE SEQUENCE citus.pg_dist_shardid_seq MINVALUE 102008 NO CYCLE;
ALTER SEQUENCE citus.pg_dist_shardid_seq SET SCHEMA pg_catalog;
CREATE TABLE citus.pg_dist_shard (
    logicalrelid regclass NOT NULL,
    shardid bigint NOT NULL PRIMARY KEY,
    shardstorage "char" NOT NULL DEFAULT 't',
    shardminvalue text,
    shardmaxvalue text
);
CREATE INDEX pg_dist_shard_logical_relid_index ON citus.pg_dist_shard (logicalrelid);
ALTER TABLE citus.pg_dist_shard SET SCHEMA pg_catalog;

-- Placements: which group (node) holds a copy of which shard.
CREATE SEQUENCE citus.pg_dist_placement_placementid_seq MINVALUE 1 NO CYCLE;
ALTER SEQUENCE citus.pg_dist_placement_placementid_seq SET SCHEMA pg_catalog;
CREATE TABLE citus.pg_dist_placement (
    placementid bigint NOT NULL DEFAULT nextval('pg_catalog.pg_dist_placement_placementid_seq') PRIMARY KEY,
    shardid bigint NOT NULL,
    shardstate int NOT NULL DEFAULT 1,
    shardlength bigint NOT NULL DEFAULT 0,
    groupid int NOT NULL
);
CREATE INDEX pg_dist_placement_groupid_index ON citus.pg_dist_placement (groupid);
CREATE INDEX pg_dist_placement_shardid_index ON citus.pg_dist_placement (shardid);
ALTER TABLE citus.pg_dist_placement SET SCHEMA pg_catalog;

-- Objects marked as distributed with create_distributed_function (Citus's columns): they are
-- on every node, and a node added later gets them.
CREATE TABLE citus.pg_dist_object (
    classid oid NOT NULL,
    objid oid NOT NULL,
    objsubid integer NOT NULL,
    type text,
    object_names text[],
    object_args text[],
    distribution_argument_index integer,
    colocationid integer,
    force_delegation boolean,
    PRIMARY KEY (classid, objid, objsubid)
);
ALTER TABLE citus.pg_dist_object SET SCHEMA pg_catalog;

-- Distributed schemas (schema-based sharding): each schema is one colocation group whose
-- tables are single-shard tables on one node. Citus's columns, and the group of the node the
-- schema's tables are placed on (chosen when the schema is distributed, so that an empty schema
-- has a node too; citus_schema_move changes it with the placements).
CREATE TABLE citus.pg_dist_schema (
    schemaid oid NOT NULL PRIMARY KEY,
    colocationid int NOT NULL UNIQUE,
    groupid int NOT NULL
);
ALTER TABLE citus.pg_dist_schema SET SCHEMA pg_catalog;

-- Objects to drop later (Citus's columns): a moved shard's old placement is recorded here in the
-- move's transaction and dropped by citus_cleanup_orphaned_resources() (the next move runs it
-- too), so that a query routed to the old placement before the move committed still finds it.
-- object_type 1: a shard placement's table; policy_type 2: drop it whenever cleanup runs.
CREATE SEQUENCE citus.pg_dist_cleanup_recordid_seq MINVALUE 1 NO CYCLE;
ALTER SEQUENCE citus.pg_dist_cleanup_recordid_seq SET SCHEMA pg_catalog;
CREATE SEQUENCE citus.pg_dist_operationid_seq MINVALUE 1 NO CYCLE;
ALTER SEQUENCE citus.pg_dist_operationid_seq SET SCHEMA pg_catalog;
CREATE TABLE citus.pg_dist_cleanup (
    record_id bigint NOT NULL PRIMARY KEY,
    operation_id bigint NOT NULL,
    object_type int NOT NULL,
    object_name text NOT NULL,
    node_group_id int NOT NULL,
    policy_type int NOT NULL
);
ALTER TABLE citus.pg_dist_cleanup SET SCHEMA pg_catalog;

-- Two-phase commit's decisions (Citus's columns): a row per prepared node of a committed
-- distributed transaction, written inside that transaction; recover_prepared_transactions()
-- commits what has a row and rolls back what has none.
CREATE TABLE citus.pg_dist_transaction (
    groupid int NOT NULL,
    gid text NOT NULL,
    outer_xid xid8,
    PRIMARY KEY (groupid, gid)
);
ALTER TABLE citus.pg_dist_transaction SET SCHEMA pg_catalog;

GRANT SELECT ON pg_catalog.pg_dist_node, pg_catalog.pg_dist_colocation,
    pg_catalog.pg_dist_partition, pg_catalog.pg_dist_shard, pg_catalog.pg_dist_placement,
    pg_catalog.pg_dist_object, pg_catalog.pg_dist_schema, pg_catalog.pg_dist_cleanup,
    pg_catalog.pg_dist_transaction
    TO public;

-- The catalog belongs to the extension's state: pg_dump of an extension keeps these rows.
SELECT pg_catalog.pg_extension_config_dump('pg_catalog.pg_dist_node', '');
SELECT pg_catalog.pg_extension_config_dump('pg_catalog.pg_dist_object', '');
SELECT pg_catalog.pg_extension_config_dump('pg_catalog.pg_dist_colocation', '');
SELECT pg_catalog.pg_extension_config_dump('pg_catalog.pg_dist_partition', '');
SELECT pg_catalog.pg_extension_config_dump('pg_catalog.pg_dist_shard', '');
SELECT pg_catalog.pg_extension_config_dump('pg_catalog.pg_dist_placement', '');
SELECT pg_catalog.pg_extension_config_dump('pg_catalog.pg_dist_schema', '');
SELECT pg_catalog.pg_extension_config_dump('pg_catalog.pg_dist_cleanup', '');
