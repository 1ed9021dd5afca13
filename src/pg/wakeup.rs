//! Waking the maintenance worker (`daemon`) from a backend, through shared memory: a backend
//! whose `COMMIT PREPARED` failed after the commit point asks for recovery now, instead of
//! leaving the committed rows invisible on that node until the next
//! `citus.recover_2pc_interval` (Citus's #3780). The worker records its PGPROC number when
//! it starts; a backend sets the request flag and the worker's latch.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgAtomic};

// SAFETY: placed in shared memory by `pg_shmem_init!` in `init`, before any backend exists.
static WORKER_PROCNO: PgAtomic<AtomicI32> = unsafe { PgAtomic::new(c"tessera_maintenance_procno") };
// SAFETY: as above.
static RECOVERY_WANTED: PgAtomic<AtomicBool> = unsafe { PgAtomic::new(c"tessera_recovery_wanted") };

/// Reserves the shared memory (from `_PG_init`, while the server preloads the library).
// The macro tests for PostgreSQL versions this crate has no feature for.
#[allow(unexpected_cfgs)]
pub fn init() {
    pg_shmem_init!(WORKER_PROCNO = AtomicI32::new(-1));
    pg_shmem_init!(RECOVERY_WANTED = AtomicBool::new(false));
}

/// The maintenance worker, at its start: backends wake this process.
pub fn register_maintenance_worker() {
    // SAFETY: this process's PGPROC (a background worker with shared memory access has one)
    // lies in the array of all of them; its index there is its number.
    let procno = unsafe { pg_sys::MyProc.offset_from((*pg_sys::ProcGlobal).allProcs) as i32 };
    WORKER_PROCNO.get().store(procno, Ordering::SeqCst);
}

/// Asks the maintenance worker to run two-phase commit recovery now.
pub fn want_recovery() {
    RECOVERY_WANTED.get().store(true, Ordering::SeqCst);
    let procno = WORKER_PROCNO.get().load(Ordering::SeqCst);
    if procno < 0 {
        return;
    }
    // SAFETY: PGPROCs live in shared memory for the server's life; the number was this
    // server's. Should the worker have exited meanwhile, the latch set is another process's,
    // and a latch set for nothing is harmless.
    unsafe {
        let proc = (*pg_sys::ProcGlobal).allProcs.add(procno as usize);
        pg_sys::SetLatch(&mut (*proc).procLatch);
    }
}

/// Whether a backend asked for recovery since the last call (the request is taken).
pub fn recovery_wanted() -> bool {
    RECOVERY_WANTED.get().swap(false, Ordering::SeqCst)
}
