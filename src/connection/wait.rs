//! Waiting on many sockets and the process latch through PostgreSQL's WaitEventSet.
//!
//! Sleeping here (not in `poll(2)` or a runtime) is what lets a query cancel, a
//! `statement_timeout` or a shutdown request wake the backend: they set the latch.

use std::ffi::{c_int, c_long};

use pgrx::pg_sys;

/// What a socket is waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
    /// Either: a pipeline still being sent, whose node may answer (and wait for its answers
    /// to be read) before it reads the rest.
    ReadWrite,
}

/// What woke a wait.
#[derive(Debug, Default)]
pub struct Wakeup {
    /// The latch was set (and has been reset): interrupts may be pending.
    pub latch: bool,
    /// Indexes (into the sockets given to [`WaitSet::new`]) that are ready.
    pub ready: Vec<usize>,
}

/// A WaitEventSet holding the latch, postmaster death and a list of sockets. Freed on drop,
/// which also closes its epoll descriptor, whether the caller returns or errors out.
pub struct WaitSet {
    raw: *mut pg_sys::WaitEventSet,
    capacity: usize,
}

impl WaitSet {
    pub fn new(sockets: &[(c_int, Interest)]) -> WaitSet {
        let capacity = sockets.len() + 2;
        // SAFETY: creating a set in TopMemoryContext (PG15/16) or with no resource owner
        // (PG17): it may outlive the memory context of the call that made it (a streaming
        // scan keeps it across executor calls), and Drop frees it. MyLatch is the backend's
        // own latch.
        unsafe {
            #[cfg(any(feature = "pg15", feature = "pg16"))]
            let raw = pg_sys::CreateWaitEventSet(pg_sys::TopMemoryContext, capacity as c_int);
            #[cfg(feature = "pg17")]
            let raw = pg_sys::CreateWaitEventSet(std::ptr::null_mut(), capacity as c_int);
            let set = WaitSet { raw, capacity };
            pg_sys::AddWaitEventToSet(
                raw,
                pg_sys::WL_LATCH_SET,
                pg_sys::PGINVALID_SOCKET,
                pg_sys::MyLatch,
                std::ptr::null_mut(),
            );
            pg_sys::AddWaitEventToSet(
                raw,
                pg_sys::WL_EXIT_ON_PM_DEATH,
                pg_sys::PGINVALID_SOCKET,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            for (i, (fd, interest)) in sockets.iter().enumerate() {
                let events = match interest {
                    Interest::Read => pg_sys::WL_SOCKET_READABLE,
                    Interest::Write => pg_sys::WL_SOCKET_WRITEABLE,
                    Interest::ReadWrite => pg_sys::WL_SOCKET_READABLE | pg_sys::WL_SOCKET_WRITEABLE,
                };
                // user_data carries the index + 1 (0 marks the latch and death events).
                pg_sys::AddWaitEventToSet(raw, events, *fd, std::ptr::null_mut(), (i + 1) as _);
            }
            set
        }
    }

    /// Sleeps until a socket is ready, the latch is set, or `timeout_ms` passes (-1: no limit).
    pub fn wait(&mut self, timeout_ms: i64) -> Wakeup {
        let mut events: Vec<pg_sys::WaitEvent> = Vec::with_capacity(self.capacity);
        // SAFETY: the set is live; `events` has room for `capacity` entries and the call
        // reports how many it filled.
        let n = unsafe {
            pg_sys::WaitEventSetWait(
                self.raw,
                timeout_ms.clamp(-1, c_long::MAX),
                events.as_mut_ptr(),
                self.capacity as c_int,
                pg_sys::PG_WAIT_EXTENSION,
            )
        };
        // SAFETY: WaitEventSetWait initialised the first n entries.
        unsafe { events.set_len(n.max(0) as usize) };
        let mut wake = Wakeup::default();
        for ev in &events {
            if ev.events & pg_sys::WL_LATCH_SET != 0 {
                wake.latch = true;
                // SAFETY: resetting our own latch before looking at interrupts, as latch.c asks.
                unsafe { pg_sys::ResetLatch(pg_sys::MyLatch) };
            } else if !ev.user_data.is_null() {
                wake.ready.push(ev.user_data as usize - 1);
            }
        }
        wake
    }
}

impl Drop for WaitSet {
    fn drop(&mut self) {
        // SAFETY: raw came from CreateWaitEventSet and is freed once.
        unsafe { pg_sys::FreeWaitEventSet(self.raw) };
    }
}

/// True when a cancel or termination is pending: remote work must be stopped before the
/// interrupt is served (serving it raises an ERROR or exits).
pub fn cancel_pending() -> bool {
    // SAFETY: reading flags that signal handlers set; sig_atomic_t reads are atomic.
    unsafe {
        pg_sys::InterruptHoldoffCount == 0
            && (std::ptr::read_volatile(&raw const pg_sys::QueryCancelPending) != 0
                || std::ptr::read_volatile(&raw const pg_sys::ProcDiePending) != 0
                || std::ptr::read_volatile(&raw const pg_sys::ShutdownRequestPending) != 0)
    }
}
