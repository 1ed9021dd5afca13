//! Backends cancelled by the distributed deadlock detector, in shared memory, so that such a
//! backend can say why its transaction ended instead of "canceling statement due to user
//! request". The detector (`transaction::deadlock`, in the maintenance worker) marks a
//! backend's transaction, then sends the backend the cancel signal; the backend, serving the
//! cancel while it waits for a node (`connection::wait`), finds the mark of its own
//! transaction and raises the deadlock error.
//!
//! A mark names the transaction by its backend's pid and its start time, so a mark a backend
//! never took (it served the cancel elsewhere: a lock wait on the coordinator) cannot turn a
//! later transaction's cancel, or another backend's with that pid, into a deadlock error.

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgLwLock};

const SLOTS: usize = 32;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const POSTGRES_EPOCH_US: i64 = 946_684_800_000_000;

/// `(pid, transaction start in microseconds since the Unix epoch, marked at)`; pid 0 is a free
/// slot.
// SAFETY: the lock is placed in shared memory by `pg_shmem_init!` in `init`, before any
// backend exists to use it.
static MARKED: PgLwLock<[(i32, i64, i64); SLOTS]> =
    unsafe { PgLwLock::new(c"tessera_deadlock_victims") };

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reserves the shared memory (from `_PG_init`, while the server preloads the library).
// The macro tests for PostgreSQL versions this crate has no feature for.
#[allow(unexpected_cfgs)]
pub fn init() {
    pg_shmem_init!(MARKED = [(0, 0, 0); SLOTS]);
}

/// Marks the transaction of backend `pid` that started at `started` (microseconds since the
/// Unix epoch, as `pg_stat_activity.xact_start`) as cancelled for a distributed deadlock,
/// before the backend is sent the cancel.
pub fn mark(pid: i32, started: i64) {
    let now = now_ms();
    let mut slots = MARKED.exclusive();
    let slot = slots
        .iter()
        .position(|&(p, _, _)| p == pid || p == 0)
        // All slots taken: the oldest mark goes.
        .unwrap_or_else(|| {
            (0..SLOTS)
                .min_by_key(|&i| slots[i].2)
                .expect("SLOTS is not zero")
        });
    slots[slot] = (pid, started, now);
}

/// Whether this backend's transaction was marked (the mark is cleared): its pending cancel is
/// the deadlock detector's.
pub fn take_mine() -> bool {
    // SAFETY: reading this process's pid and its transaction's start.
    let (pid, started) = unsafe {
        (
            pg_sys::MyProcPid,
            pg_sys::GetCurrentTransactionStartTimestamp() + POSTGRES_EPOCH_US,
        )
    };
    if !MARKED
        .share()
        .iter()
        .any(|&(p, s, _)| p == pid && s == started)
    {
        return false;
    }
    let mut slots = MARKED.exclusive();
    for slot in slots.iter_mut() {
        if slot.0 == pid {
            *slot = (0, 0, 0);
        }
    }
    true
}
