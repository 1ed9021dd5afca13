//! Backends cancelled by the distributed deadlock detector, in shared memory, so that such a
//! backend can say why its transaction ended instead of "canceling statement due to user
//! request". The detector (`transaction::deadlock`, in the maintenance worker) marks a
//! backend, then sends it the cancel signal; the backend, serving the cancel while it waits
//! for a node (`connection::wait`), finds its mark and raises the deadlock error.
//!
//! A mark older than a minute is ignored: a backend that served the cancel somewhere else (a
//! lock wait on the coordinator) leaves its mark behind, and the next backend with that pid
//! must not inherit it.

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgLwLock};

const SLOTS: usize = 32;
const STALE_MS: i64 = 60_000;

/// `(pid, marked at: milliseconds since the epoch)`; pid 0 is a free slot.
// SAFETY: the lock is placed in shared memory by `pg_shmem_init!` in `init`, before any
// backend exists to use it.
static MARKED: PgLwLock<[(i32, i64); SLOTS]> =
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
    pg_shmem_init!(MARKED = [(0, 0); SLOTS]);
}

/// Marks `pid` as cancelled for a distributed deadlock (before it is sent the cancel).
pub fn mark(pid: i32) {
    let now = now_ms();
    let mut slots = MARKED.exclusive();
    let slot = slots
        .iter()
        .position(|&(p, _)| p == pid)
        .or_else(|| {
            slots
                .iter()
                .position(|&(p, at)| p == 0 || now - at >= STALE_MS)
        })
        // All slots taken by marks under a minute old: the oldest goes.
        .unwrap_or_else(|| {
            (0..SLOTS)
                .min_by_key(|&i| slots[i].1)
                .expect("SLOTS is not zero")
        });
    slots[slot] = (pid, now);
}

/// Whether this backend was marked (and clears the mark): its pending cancel is the deadlock
/// detector's.
pub fn take_mine() -> bool {
    // SAFETY: reading this process's pid.
    let pid = unsafe { pgrx::pg_sys::MyProcPid };
    let now = now_ms();
    if !MARKED
        .share()
        .iter()
        .any(|&(p, at)| p == pid && now - at < STALE_MS)
    {
        return false;
    }
    let mut slots = MARKED.exclusive();
    for slot in slots.iter_mut() {
        if slot.0 == pid {
            *slot = (0, 0);
        }
    }
    true
}
