//! Tessera: one coordinator and N worker PostgreSQL servers as one distributed database, with
//! a Citus-compatible SQL surface.
//!
//! `_PG_init` is the table of contents: it refuses to load unless preloaded, then starts each
//! subsystem in order: settings, the metadata cache's invalidation callback, transaction
//! callbacks, the CustomScan methods, hooks. The modules:
//!
//! - `gucs`: every `citus.*` setting.
//! - `error`: the typed error, turned into an `ereport` at the edge.
//! - `connection`: the only code that touches libpq: connections, the per-backend cache, and
//!   running commands on many nodes at once while waiting through PostgreSQL's latch.
//! - `metadata`: typed access to the catalog (`pg_dist_node`, ...) and the per-backend
//!   metadata cache the planner reads.
//! - `sharding`: hashing distribution values and the DDL of a shard.
//! - `commands`: the SQL functions (node management, `run_command_on_*`) and the
//!   ProcessUtility hook.
//! - `transaction`: remote transactions that commit and abort with the local one.
//! - `planner`: the planner hook: which tier a query on distributed tables takes, its worker
//!   SQL, and the plan around the Tessera Adaptive CustomScan.
//! - `executor`: the CustomScan that runs a distributed plan's tasks on the workers.
//! - `daemon`: the maintenance background worker (two-phase commit recovery, distributed
//!   deadlock detection, cleanup).
//! - `nodes`: small wrappers over PostgreSQL Lists and node trees.

use pgrx::prelude::*;

mod connection;
mod daemon;
mod ddl;
mod error;
mod executor;
mod gucs;
mod metadata;
mod operations;
mod pg;
mod planner;
mod sharding;
mod transaction;
mod udf;

::pgrx::pg_module_magic!();

// The SQL surface is reviewed source in sql/: the catalog first, then the functions.
pgrx::extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);
pgrx::extension_sql_file!("../sql/functions.sql", name = "functions", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // SAFETY: reading a flag the postmaster sets while it loads shared_preload_libraries.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        error::TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "Tessera can only be loaded through shared_preload_libraries",
        )
        .hint("Add tessera to shared_preload_libraries in postgresql.conf and restart the server.")
        .report();
    }
    gucs::init();
    metadata::cache::init();
    connection::init();
    pg::victims::init();
    pg::wakeup::init();
    transaction::init();
    executor::init();
    planner::init();
    ddl::init();
    daemon::init();
}

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries = 'tessera'",
            "max_prepared_transactions = 10",
        ]
    }
}
