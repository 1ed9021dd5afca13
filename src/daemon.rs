//! The maintenance background worker: one per server, in `tessera.maintenance_database`. Every
//! `citus.recover_2pc_interval` it runs two-phase commit recovery
//! (`transaction::recovery::recover`), so a prepared transaction a failure left on a worker is
//! committed or rolled back without anyone calling `recover_prepared_transactions()`, and drops
//! the old placements of moved shards (`citus_cleanup_orphaned_resources()`). On a worker (no
//! nodes registered) and where the extension is not installed it does nothing.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;

use crate::gucs;

pub fn init() {
    BackgroundWorkerBuilder::new("tessera maintenance")
        .set_type("tessera maintenance")
        .set_library("tessera")
        .set_function("tessera_maintenance_main")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

/// The worker's main loop.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tessera_maintenance_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(Some(&gucs::maintenance_database()), None);
    loop {
        let wait = gucs::recover_2pc_interval().unwrap_or(Duration::from_secs(5));
        if !BackgroundWorker::wait_latch(Some(wait)) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: rereads postgresql.conf, as every process does on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if gucs::recover_2pc_interval().is_none() {
            continue;
        }
        // An ERROR here ends the worker (the postmaster starts it again): recovery raises
        // none for a node that cannot be reached (a WARNING), only for the local catalog.
        BackgroundWorker::transaction(|| {
            if !crate::metadata::cache::installed() {
                return;
            }
            let coordinator = pgrx::spi::Spi::get_one::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE groupid <> 0)",
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            if !coordinator {
                return;
            }
            match crate::transaction::recovery::recover() {
                Ok(0) => {}
                Ok(n) => pgrx::log!("tessera maintenance: recovered {n} prepared transactions"),
                Err(e) => e.warn(),
            }
            // The old placements of moved shards (as a superuser, whoever moved them).
            match crate::commands::shard_move::cleanup_orphaned(None) {
                Ok(0) => {}
                Ok(n) => pgrx::log!("tessera maintenance: cleaned up {n} orphaned resources"),
                Err(e) => e.warn(),
            }
        });
    }
}
