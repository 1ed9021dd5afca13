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

use std::cell::RefCell;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::connection::{run_tasks, ConnKey, Connection, RemoteTask};
use crate::error::{OrReport, TesseraError};

/// Where a task's connection comes from and goes back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Autocommit on a cached connection.
    Autocommit,
    /// Inside the remote transaction that follows the local one.
    Transaction,
}

#[derive(Default)]
struct RemoteXact {
    /// Connections in a remote transaction block, one per node and session key.
    conns: Vec<(ConnKey, Connection)>,
    /// A savepoint that contained remote work rolled back: the remote side cannot follow.
    poisoned: bool,
    /// Counts tasks run in the remote transaction, to tell whether a savepoint saw any.
    work: u64,
    /// `work` at the start of each open subtransaction.
    savepoints: Vec<u64>,
}

thread_local! {
    static XACT: RefCell<RemoteXact> = RefCell::new(RemoteXact::default());
}

pub fn init() {
    // SAFETY: _PG_init, once per process; the callbacks live as long as the library.
    unsafe {
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}

/// The connection already in a remote transaction for `key`, if any.
pub(crate) fn take(key: &ConnKey) -> Option<Connection> {
    XACT.with(|x| {
        let mut x = x.borrow_mut();
        let i = x.conns.iter().position(|(k, _)| k == key)?;
        Some(x.conns.swap_remove(i).1)
    })
}

/// Hands a connection (in a remote transaction block) back to the local transaction.
pub(crate) fn give_back(key: ConnKey, conn: Connection) {
    XACT.with(|x| x.borrow_mut().conns.push((key, conn)));
}

/// Records that a task runs in the remote transaction (for savepoint bookkeeping).
pub(crate) fn note_work() {
    XACT.with(|x| x.borrow_mut().work += 1);
}

/// Whether any node has a remote transaction open.
pub fn has_remote_work() -> bool {
    XACT.with(|x| !x.borrow().conns.is_empty())
}

fn commit_remote() -> Result<(), TesseraError> {
    let (keys, poisoned) = XACT.with(|x| {
        let x = x.borrow();
        (
            x.conns.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            x.poisoned,
        )
    });
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

/// Closes every remote transaction's connection: the nodes roll back.
fn abort_remote() {
    XACT.with(|x| {
        if let Ok(mut x) = x.try_borrow_mut() {
            x.conns.clear();
            x.poisoned = false;
            x.savepoints.clear();
        }
    });
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
            abort_remote()
        }
        pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            // Committed in pre-commit; anything left (none expected) is closed.
            abort_remote()
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
    XACT.with(|x| {
        let Ok(mut x) = x.try_borrow_mut() else {
            return;
        };
        match event {
            pg_sys::SubXactEvent::SUBXACT_EVENT_START_SUB => {
                let work = x.work;
                x.savepoints.push(work);
            }
            pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
                x.savepoints.pop();
            }
            pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
                if let Some(at_start) = x.savepoints.pop() {
                    if x.work != at_start {
                        x.poisoned = true;
                    }
                }
            }
            _ => {}
        }
    });
}
