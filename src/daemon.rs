//! The maintenance background worker: one per server, in `tessera.maintenance_database`. Every
//! `citus.recover_2pc_interval` it runs two-phase commit recovery
//! (`transaction::recovery::recover`), so a prepared transaction a failure left on a worker is
//! committed or rolled back without anyone calling `recover_prepared_transactions()`, and drops
//! the old placements of moved shards (`citus_cleanup_orphaned_resources()`). Every
//! `deadlock_timeout × citus.distributed_deadlock_detection_factor` it looks for distributed
//! deadlocks (`transaction::deadlock::detect`). On a worker (no nodes registered) and where the
//! extension is not installed it does nothing.

use std::time::{Duration, Instant};

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

/// Whether this server is a coordinator with the extension installed (it has workers).
fn is_coordinator() -> bool {
    crate::metadata::cache::installed()
        && crate::pg::spi::get_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE groupid <> 0)",
        )
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// When a task that runs every `interval` (`None`: off) is due next, after running at `last`.
fn next_due(last: Instant, interval: Option<Duration>) -> Option<Instant> {
    interval.map(|i| last + i)
}

/// The worker's main loop.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tessera_maintenance_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(Some(&gucs::maintenance_database()), None);
    // Its transactions read and delete pg_dist_transaction rows that backends delete too:
    // under a snapshot of the whole transaction, a row deleted meanwhile would fail it with a
    // serialization error, whatever the database's default says.
    // SAFETY: setting a GUC at the worker's start, before any transaction.
    unsafe {
        pg_sys::SetConfigOption(
            c"default_transaction_isolation".as_ptr(),
            c"read committed".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        );
    }
    crate::pg::wakeup::register_maintenance_worker();
    let mut recovered = Instant::now();
    let mut looked_for_deadlocks = Instant::now();
    // A backend's COMMIT PREPARED failed: recovery runs at once, then again after 1 s, 2 s,
    // 4 s, ... while something is left, until the regular interval takes over.
    // At start too: what a crash left prepared keeps its locks until recovery runs.
    let mut retry: Option<(Instant, Duration)> = gucs::recover_2pc_interval()
        .is_some()
        .then(|| (Instant::now(), Duration::from_secs(1)));
    loop {
        let due = [
            retry.map(|(at, _)| at),
            next_due(recovered, gucs::recover_2pc_interval()),
            next_due(looked_for_deadlocks, gucs::deadlock_detection_interval()),
        ]
        .into_iter()
        .flatten()
        .min();
        let wait = due.map_or(Duration::from_secs(5), |d| {
            d.saturating_duration_since(Instant::now())
                .min(Duration::from_secs(5))
        });
        if !BackgroundWorker::wait_latch(Some(wait)) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: rereads postgresql.conf, as every process does on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let now = Instant::now();
        if crate::pg::wakeup::recovery_wanted() && gucs::recover_2pc_interval().is_some() {
            retry = Some((now, Duration::from_secs(1)));
        }
        if next_due(looked_for_deadlocks, gucs::deadlock_detection_interval())
            .is_some_and(|d| now >= d)
        {
            looked_for_deadlocks = now;
            BackgroundWorker::transaction(|| {
                if !is_coordinator() {
                    return;
                }
                if let Err(e) = crate::transaction::deadlock::detect() {
                    e.warn();
                }
            });
        }
        let retrying = retry.is_some_and(|(at, _)| now >= at);
        if retrying || next_due(recovered, gucs::recover_2pc_interval()).is_some_and(|d| now >= d) {
            recovered = now;
            // An ERROR here ends the worker (the postmaster starts it again): recovery raises
            // none for a node that cannot be reached (a WARNING), only for the local catalog.
            let left = BackgroundWorker::transaction(|| -> bool {
                if !is_coordinator() {
                    return false;
                }
                let left = match crate::transaction::recovery::recover() {
                    Ok((n, incomplete)) => {
                        if n > 0 {
                            pgrx::log!("tessera maintenance: recovered {n} prepared transactions")
                        }
                        incomplete
                    }
                    Err(e) => {
                        e.warn();
                        true
                    }
                };
                // The old placements of moved shards (as a superuser, whoever moved them).
                match crate::operations::shard_move::cleanup_orphaned(None) {
                    Ok(0) => {}
                    Ok(n) => {
                        pgrx::log!("tessera maintenance: cleaned up {n} orphaned resources")
                    }
                    Err(e) => e.warn(),
                }
                left
            });
            retry = match retry {
                Some((_, backoff)) if left => Some((now + backoff, backoff * 2))
                    .filter(|_| gucs::recover_2pc_interval().is_some_and(|i| backoff < i)),
                _ => None,
            };
        }
    }
}
