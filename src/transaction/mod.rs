//! Remote transactions that follow the local one.
//!
//! A task with [`Scope::Transaction`] runs inside a transaction block on its node: the first
//! such task on a node sends `BEGIN`, and the connection then stays with the local transaction
//! (every later task on that node uses it, so it sees its own writes). One transaction callback
//! ends them all:
//!
//! - pre-commit: `COMMIT` on every node, all at once; a failure raises an ERROR here, while the
//!   local transaction can still abort. (A node that fails after another committed is what
//!   two-phase commit will close: PREPARE on each node, a commit record, COMMIT PREPARED.)
//! - abort: the connections are closed, which rolls the remote transactions back; nothing is
//!   allocated with palloc and nothing can raise an error there.
//!
//! A rolled-back savepoint cannot undo remote work yet: if one rolls back after remote work,
//! the transaction is refused at commit rather than commit half of it.

mod remote;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::connection::{run_tasks, RemoteTask, Scope};
use crate::error::{OrReport, TesseraError};

pub use remote::has_remote_work;

/// The one transaction layer: registers its callbacks, and itself with the connection layer.
pub fn init() {
    crate::connection::register_remote_transactions(&remote::Remote);
    // SAFETY: _PG_init, once per process; the callbacks live as long as the library.
    unsafe {
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}

fn commit_remote() -> Result<(), TesseraError> {
    let (keys, poisoned) = remote::open();
    if keys.is_empty() {
        return Ok(());
    }
    if poisoned {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "cannot commit: a savepoint that was rolled back contained changes on worker nodes",
        )
        .hint("Run the distributed changes outside savepoints (or PL/pgSQL exception blocks), or roll back the whole transaction."));
    }
    let tasks: Vec<RemoteTask> = keys
        .into_iter()
        .map(|k| {
            RemoteTask::new(k, "COMMIT")
                .in_scope(Scope::Transaction)
                .ending_transaction()
        })
        .collect();
    for r in run_tasks(&tasks, tasks.len())? {
        r.map_err(|e| e.into_tessera())?;
    }
    Ok(())
}

#[pg_guard]
unsafe extern "C-unwind" fn xact_callback(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_PRE_COMMIT => commit_remote().or_report(),
        pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE if has_remote_work() => {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "cannot PREPARE a transaction that has changed worker nodes",
            )
            .hint("Commit the transaction instead; Tessera coordinates the nodes itself.")
            .report();
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => {
            remote::close_all()
        }
        pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            // Committed in pre-commit; anything left (none expected) is closed.
            remote::close_all()
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_START_SUB => remote::savepoint_start(),
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => remote::savepoint_commit(),
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => remote::savepoint_abort(),
        _ => {}
    }
}
