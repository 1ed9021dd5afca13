//! Every Tessera setting, in one place. Settings keep Citus's `citus.*` names so that a Citus
//! tutorial's `SET citus....` works unchanged; each has an accessor so no other module touches
//! the raw `GucSetting`.

use std::ffi::{CStr, CString};

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `citus.node_connection_timeout` (milliseconds): how long opening a connection to a node may
/// take before the attempt fails. Bounds every wait on an unreachable node.
static NODE_CONNECTION_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(30_000);

/// `tessera.maintenance_command_timeout` (milliseconds, 0: none): how long a command of
/// two-phase commit recovery, distributed deadlock detection or orphaned-shard cleanup may take
/// on one node (connecting included). A node that does not finish in time (stalled, or behind a
/// network partition with its connection still open) is left out of that round with a WARNING,
/// so it cannot hold up the maintenance of the others.
static MAINTENANCE_COMMAND_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(30_000);

/// `citus.node_conninfo`: extra libpq keywords for every connection to a node (TLS settings,
/// keepalives...). The keywords that pick the target (host, port, dbname, user) are not allowed.
static NODE_CONNINFO: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"sslmode=prefer"));

/// `citus.max_cached_conns_per_worker` (connections): idle connections per node kept open
/// between statements, so that the next statement skips connection set-up.
static MAX_CACHED_CONNS_PER_WORKER: GucSetting<i32> = GucSetting::<i32>::new(1);

/// `citus.shard_count` (shards): how many shards `create_distributed_table` makes when the
/// call does not say.
static SHARD_COUNT: GucSetting<i32> = GucSetting::<i32>::new(32);

/// `citus.max_adaptive_executor_pool_size` (connections): how many connections one multi-shard
/// SELECT may use per node outside a transaction block. The shard queries for one node are
/// spread over that many statements (each a `UNION ALL` of its shards). Default 1: on the
/// machines measured (2 cores per 5 servers) one statement per node was fastest; raise it when
/// workers have idle cores.
static MAX_ADAPTIVE_EXECUTOR_POOL_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1);

/// `citus.explain_all_tasks`: EXPLAIN of a distributed query shows every task's worker plan
/// instead of one task's.
static EXPLAIN_ALL_TASKS: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `citus.enable_unsafe_triggers` (off): triggers on distributed and reference tables run on
/// the shards, where a trigger that reads or writes other tables sees the worker's local
/// tables, not the distributed ones. Off refuses them; on carries them to the shards, as in
/// Citus.
static ENABLE_UNSAFE_TRIGGERS: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `citus.max_intermediate_result_size` (kB, -1 no limit): how large the result of a subquery
/// that runs first may grow when it travels to the shards as parameters.
static MAX_INTERMEDIATE_RESULT_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);

/// `citus.enable_schema_based_sharding` (off): CREATE SCHEMA makes a distributed schema (see
/// `udf::schemas`). Tables created later in a distributed schema are distributed whatever
/// this setting is then.
static ENABLE_SCHEMA_BASED_SHARDING: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `tessera.schema_placement_node`: the node (`host:port`, or a node id) that schemas made
/// distributed by CREATE SCHEMA are placed on; empty: the least loaded node.
static SCHEMA_PLACEMENT_NODE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);

/// `citus.recover_2pc_interval` (milliseconds, -1 off): how often the maintenance worker runs
/// `recover_prepared_transactions()` (Citus's default: one minute).
static RECOVER_2PC_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(60_000);

/// `citus.distributed_deadlock_detection_factor` (-1 off): the maintenance worker looks for
/// distributed deadlocks every `deadlock_timeout` times this (Citus's default: 2).
static DEADLOCK_DETECTION_FACTOR: GucSetting<f64> = GucSetting::<f64>::new(2.0);

/// `tessera.test_pause_point` and `tessera.test_pause_ms` (superuser only; for fault tests):
/// a two-phase commit pauses this long at this point (`after_prepare`: every node prepared,
/// the decision written but not committed; `before_commit_prepared`: committed locally, COMMIT
/// PREPARED not sent), so a test can kill a process exactly there.
static TEST_PAUSE_POINT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static TEST_PAUSE_MS: GucSetting<i32> = GucSetting::<i32>::new(0);

/// `tessera.maintenance_database`: the database the maintenance worker works in.
static MAINTENANCE_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// `tessera.enable_distributed_planner` (off) sends queries on
/// distributed tables to PostgreSQL's planner unchanged: for maintenance only, since the
/// coordinator's own copies of distributed tables are empty.
static ENABLE_DISTRIBUTED_PLANNER: GucSetting<bool> = GucSetting::<bool>::new(true);

/// `tessera.propagate_settings`: settings of PostgreSQL or of an extension that a node's session
/// gets from the coordinator's session when the session chose them (SET, SET LOCAL, the role's
/// or database's defaults), so that they bind the shard queries of each statement. Settings of
/// a custom class (`app.tenant_id`) follow without being listed.
static PROPAGATE_SETTINGS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(
    c"hnsw.ef_search, hnsw.iterative_scan, hnsw.max_scan_tuples, hnsw.scan_mem_multiplier, \
ivfflat.probes, ivfflat.iterative_scan, ivfflat.max_probes, statement_timeout, lock_timeout, work_mem, \
maintenance_work_mem",
));

/// `tessera.enable_ann_index_scan` (on): a shard query that returns a shard's nearest rows
/// (`ORDER BY embedding <=> $1 LIMIT k`) is planned on the node with sorting disabled, so a
/// shard with an index that serves the ORDER BY (HNSW, IVFFlat, GiST) uses it even when the
/// shard is small enough that a scan and sort would be estimated cheaper. With a WHERE clause
/// only when an iterative index scan is on (`hnsw.iterative_scan`, `ivfflat.iterative_scan`),
/// so that a filter never leaves a shard short of rows.
static ENABLE_ANN_INDEX_SCAN: GucSetting<bool> = GucSetting::<bool>::new(true);

/// `tessera.ann_ef_search_scaling` (off): a nearest-neighbour query over several shards asks
/// each shard for a smaller candidate list: `hnsw.ef_search` divided by the square root of the
/// number of shards searched, never below the query's LIMIT (+ OFFSET) or 10. Each shard
/// searches a smaller graph, so the union keeps its recall with less work per shard. A query
/// for 128 rows or more (LIMIT + OFFSET) also asks each shard first for fewer rows, and a
/// shard that may hold more of the nearest again for all (`executor::fewer_rows`).
static ANN_EF_SEARCH_SCALING: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `tessera.max_index_builds_per_node` (1): how many shard indexes `CREATE INDEX` on a
/// distributed table builds at a time on each node (every node at once). An HNSW build takes
/// `maintenance_work_mem` and a core. `CONCURRENTLY` builds in autocommit; a plain one that is
/// its whole transaction over that many connections per node (`ddl::index`), and otherwise one
/// at a time per node, in the statement's transaction.
static MAX_INDEX_BUILDS_PER_NODE: GucSetting<i32> = GucSetting::<i32>::new(1);

pub fn init() {
    GucRegistry::define_int_guc(
        c"citus.node_connection_timeout",
        c"Time to wait for a connection to a node to open.",
        c"A node that does not answer within this time is reported unreachable.",
        &NODE_CONNECTION_TIMEOUT,
        10,
        60 * 60 * 1000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"tessera.maintenance_command_timeout",
        c"Time a maintenance command (2PC recovery, deadlock detection, cleanup) may take on one node.",
        c"A node that does not finish in time is left out of that round with a WARNING; 0 waits as long as it takes.",
        &MAINTENANCE_COMMAND_TIMEOUT,
        0,
        24 * 60 * 60 * 1000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_string_guc(
        c"citus.node_conninfo",
        c"Extra libpq connection keywords for connections to nodes.",
        c"For example sslmode, sslrootcert or keepalives; host, port, dbname and user come from pg_dist_node and the session.",
        &NODE_CONNINFO,
        GucContext::Sighup,
        // It may hold a password: only superusers (and pg_read_all_settings) may read it.
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_int_guc(
        c"citus.max_cached_conns_per_worker",
        c"Idle connections per node kept open between statements.",
        c"",
        &MAX_CACHED_CONNS_PER_WORKER,
        0,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"citus.shard_count",
        c"Number of shards of a new distributed table.",
        c"Used by create_distributed_table when shard_count is not given.",
        &SHARD_COUNT,
        1,
        tessera_core::sharding::MAX_SHARD_COUNT,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"citus.max_adaptive_executor_pool_size",
        c"Connections per node one multi-shard SELECT may use outside a transaction block.",
        c"A node's shard queries are spread over that many statements.",
        &MAX_ADAPTIVE_EXECUTOR_POOL_SIZE,
        1,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"citus.explain_all_tasks",
        c"EXPLAIN shows the worker plan of every task of a distributed query.",
        c"Off: one task's worker plan is shown.",
        &EXPLAIN_ALL_TASKS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"citus.enable_unsafe_triggers",
        c"Allows triggers on distributed tables: they run on the shards.",
        c"A trigger on a shard sees the worker's tables, not the distributed ones.",
        &ENABLE_UNSAFE_TRIGGERS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"citus.enable_schema_based_sharding",
        c"CREATE SCHEMA makes a distributed schema (schema-based sharding).",
        c"Every table of a distributed schema is a single-shard table on the schema's node.",
        &ENABLE_SCHEMA_BASED_SHARDING,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"citus.recover_2pc_interval",
        c"How often the maintenance worker recovers prepared transactions.",
        c"It commits or rolls back what two-phase commits left on the workers; -1 turns it off.",
        &RECOVER_2PC_INTERVAL,
        -1,
        7 * 24 * 60 * 60 * 1000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_float_guc(
        c"citus.distributed_deadlock_detection_factor",
        c"How often distributed deadlocks are looked for, in multiples of deadlock_timeout.",
        c"The maintenance worker cancels the youngest transaction of each cycle of waits across nodes; -1 turns it off.",
        &DEADLOCK_DETECTION_FACTOR,
        -1.0,
        1000.0,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tessera.test_pause_point",
        c"For fault tests: where a two-phase commit pauses (after_prepare, before_commit_prepared).",
        c"With tessera.test_pause_ms, so that a test can kill a process at that point.",
        &TEST_PAUSE_POINT,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tessera.test_pause_ms",
        c"For fault tests: how long a two-phase commit pauses at tessera.test_pause_point.",
        c"0 (the default) never pauses.",
        &TEST_PAUSE_MS,
        0,
        600_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_string_guc(
        c"tessera.maintenance_database",
        c"The database Tessera's maintenance worker works in.",
        c"Where the extension is installed and pg_dist_node lists the workers.",
        &MAINTENANCE_DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tessera.schema_placement_node",
        c"The node schemas made distributed by CREATE SCHEMA are placed on.",
        c"host:port or a node id; empty places each on the least loaded node.",
        &SCHEMA_PLACEMENT_NODE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"citus.max_intermediate_result_size",
        c"Largest result of a subquery that runs first and is sent to the shards.",
        c"-1: no limit.",
        &MAX_INTERMEDIATE_RESULT_SIZE,
        -1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_bool_guc(
        c"tessera.enable_distributed_planner",
        c"Plans queries on distributed tables as distributed queries.",
        c"Off only for maintenance: queries then read the coordinator's (empty) local tables.",
        &ENABLE_DISTRIBUTED_PLANNER,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tessera.propagate_settings",
        c"Settings that follow the session to the shard queries.",
        c"A comma-separated list of setting names; a setting the session chose (SET, SET LOCAL, \
the role's or database's default) is set on the node's session before the statement's shard \
queries run. Settings of a custom class (a dot in the name) always follow.",
        &PROPAGATE_SETTINGS,
        GucContext::Userset,
        GucFlags::from_bits_retain(pgrx::pg_sys::GUC_LIST_INPUT as i32),
    );
    GucRegistry::define_bool_guc(
        c"tessera.enable_ann_index_scan",
        c"Nearest-neighbour shard queries use the shard's ANN index.",
        c"The shard query of ORDER BY <distance> LIMIT k runs with enable_sort off, so an index \
that serves the ORDER BY is used even on small shards.",
        &ENABLE_ANN_INDEX_SCAN,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"tessera.ann_ef_search_scaling",
        c"Scales hnsw.ef_search down by the number of shards a nearest-neighbour query searches.",
        c"Each shard is searched with ef_search / sqrt(shards), at least the LIMIT (+ OFFSET) and 10; for 128 rows or more, each shard is asked first for fewer rows.",
        &ANN_EF_SEARCH_SCALING,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tessera.max_index_builds_per_node",
        c"Shard indexes CREATE INDEX builds at a time on each node.",
        c"Every node builds at once; a plain CREATE INDEX inside a transaction block or a function builds one shard at a time per node.",
        &MAX_INDEX_BUILDS_PER_NODE,
        1,
        64,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: called from _PG_init, in the postmaster or a backend's start, single-threaded.
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"citus".as_ptr());
        pgrx::pg_sys::MarkGUCPrefixReserved(c"tessera".as_ptr());
    }
}

pub fn node_connection_timeout_ms() -> i32 {
    NODE_CONNECTION_TIMEOUT.get()
}

/// [`MAINTENANCE_COMMAND_TIMEOUT`] as a task limit for [`crate::connection::RemoteTask::within`].
pub fn maintenance_command_limit() -> Option<(std::time::Duration, &'static str)> {
    let ms = MAINTENANCE_COMMAND_TIMEOUT.get();
    (ms > 0).then(|| {
        (
            std::time::Duration::from_millis(ms as u64),
            "tessera.maintenance_command_timeout",
        )
    })
}

pub fn node_conninfo() -> String {
    NODE_CONNINFO
        .get()
        .map(|s: CString| CStr::to_string_lossy(&s).into_owned())
        .unwrap_or_default()
}

pub fn max_cached_conns_per_worker() -> usize {
    MAX_CACHED_CONNS_PER_WORKER.get().max(0) as usize
}

pub fn shard_count() -> i32 {
    SHARD_COUNT.get()
}

pub fn max_adaptive_executor_pool_size() -> usize {
    MAX_ADAPTIVE_EXECUTOR_POOL_SIZE.get().max(1) as usize
}

pub fn enable_unsafe_triggers() -> bool {
    ENABLE_UNSAFE_TRIGGERS.get()
}

/// The recovery interval, None when off.
pub fn recover_2pc_interval() -> Option<std::time::Duration> {
    let ms = RECOVER_2PC_INTERVAL.get();
    (ms >= 0).then(|| std::time::Duration::from_millis(ms.max(10) as u64))
}

/// How often the maintenance worker looks for distributed deadlocks (`None`: it does not).
pub fn deadlock_detection_interval() -> Option<std::time::Duration> {
    let factor = DEADLOCK_DETECTION_FACTOR.get();
    if factor < 0.0 {
        return None;
    }
    // SAFETY: reading the deadlock_timeout setting's variable (milliseconds).
    let timeout = unsafe { pgrx::pg_sys::DeadlockTimeout }.max(1) as f64;
    Some(std::time::Duration::from_millis(
        (timeout * factor.max(1.0)) as u64,
    ))
}

/// How long to pause at fault-test point `point`, if the settings ask for it.
pub fn test_pause(point: &str) -> Option<std::time::Duration> {
    let ms = TEST_PAUSE_MS.get();
    let at = TEST_PAUSE_POINT.get()?;
    (ms > 0 && at.to_str() == Ok(point)).then(|| std::time::Duration::from_millis(ms as u64))
}

pub fn maintenance_database() -> String {
    MAINTENANCE_DATABASE
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|| "postgres".to_string())
}

pub fn enable_schema_based_sharding() -> bool {
    ENABLE_SCHEMA_BASED_SHARDING.get()
}

/// The setting's text, empty when unset.
pub fn schema_placement_node() -> String {
    SCHEMA_PLACEMENT_NODE
        .get()
        .map(|c| c.to_string_lossy().trim().to_string())
        .unwrap_or_default()
}

pub fn explain_all_tasks() -> bool {
    EXPLAIN_ALL_TASKS.get()
}

pub fn enable_distributed_planner() -> bool {
    ENABLE_DISTRIBUTED_PLANNER.get()
}

/// The limit in bytes, or None for no limit.
pub fn max_intermediate_result_bytes() -> Option<usize> {
    let kb = MAX_INTERMEDIATE_RESULT_SIZE.get();
    (kb >= 0).then(|| kb as usize * 1024)
}

/// The text of `tessera.propagate_settings` (read per statement; parsed only when it changed,
/// by [`setting_names`]).
pub fn propagate_settings_text() -> String {
    PROPAGATE_SETTINGS
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The setting names of a comma-separated list such as `tessera.propagate_settings`, lower case.
pub fn setting_names(list: &str) -> Vec<String> {
    list.split(',')
        .map(|n| n.trim().trim_matches('"').to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

pub fn enable_ann_index_scan() -> bool {
    ENABLE_ANN_INDEX_SCAN.get()
}

pub fn ann_ef_search_scaling() -> bool {
    ANN_EF_SEARCH_SCALING.get()
}

pub fn max_index_builds_per_node() -> usize {
    MAX_INDEX_BUILDS_PER_NODE.get().max(1) as usize
}
