//! Remote transactions that follow the local one, and how they end.
//!
//! A task with [`Scope::Transaction`] runs inside a transaction block on its node: the first
//! such task on a node sends `BEGIN` (with the local transaction's isolation level, READ ONLY
//! and DEFERRABLE) and the local transaction's open savepoints, and the connection then stays
//! with the local transaction (every later task on that node uses it, so it sees its own
//! writes). Savepoints follow onto every node the transaction has used (`remote`), so
//! `ROLLBACK TO SAVEPOINT` and PL/pgSQL exception blocks undo remote work too. One transaction
//! callback ends them all:
//!
//! - **pre-commit**: when at most one node may have written, `COMMIT` on every node, all at
//!   once. Otherwise two-phase commit: `PREPARE TRANSACTION` on each node that wrote (the nodes
//!   that only read commit), and — only when every one prepared — the decision recorded in
//!   `pg_dist_transaction(groupid, gid, outer_xid)` inside the local transaction. Any failure
//!   here raises an ERROR while the local transaction can still abort (the nodes that
//!   prepared are rolled back first).
//! - **commit**: `COMMIT PREPARED` on every prepared node, all at once. The local transaction is
//!   committed already, so nothing here raises an ERROR: a node that fails gets a WARNING and
//!   is left to [`recovery`], which commits what `pg_dist_transaction` says was decided.
//! - **abort**: the connections are closed, which rolls the remote transactions back; nothing is
//!   allocated with palloc and nothing can raise an error there.

pub(crate) mod deadlock;
pub(crate) mod recovery;
mod remote;

use std::cell::RefCell;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::connection::{run_tasks, ConnKey, RemoteTask, Scope};
use crate::error::{OrReport, TesseraError};
use pgrx::PgTryBuilder;

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

/// `BEGIN` as the local transaction has it: isolation level, READ ONLY, DEFERRABLE.
pub(crate) fn begin_command() -> String {
    // SAFETY: reading the backend's transaction settings.
    let (level, read_only, deferrable) = unsafe {
        (
            pg_sys::XactIsoLevel,
            pg_sys::XactReadOnly,
            pg_sys::XactDeferrable,
        )
    };
    let mut sql = String::from("BEGIN");
    sql.push_str(match level as u32 {
        pg_sys::XACT_REPEATABLE_READ => " ISOLATION LEVEL REPEATABLE READ",
        pg_sys::XACT_SERIALIZABLE => " ISOLATION LEVEL SERIALIZABLE",
        _ => "",
    });
    if read_only {
        sql.push_str(" READ ONLY");
    }
    if deferrable {
        sql.push_str(" DEFERRABLE");
    }
    sql
}

/// A node prepared in this transaction: its COMMIT PREPARED follows the local commit.
struct Prepared {
    key: ConnKey,
    gid: String,
    /// The node's group in `pg_dist_transaction` (set when the decision is recorded).
    group: i32,
}

thread_local! {
    /// The nodes prepared in the pre-commit of the transaction now committing.
    static PREPARED: RefCell<Vec<Prepared>> = const { RefCell::new(Vec::new()) };
    /// Gids whose COMMIT PREPARED succeeded: their `pg_dist_transaction` rows are deleted by a
    /// later two-phase commit of this backend, FORGET_EVERY at a time (or by recovery), so the
    /// table does not grow.
    static COMMITTED_GIDS: RefCell<Vec<(i32, String)>> = const { RefCell::new(Vec::new()) };
    /// Gids taken from COMMITTED_GIDS by the commit now running (its DELETE): back there if
    /// the transaction aborts.
    static TAKEN: RefCell<Vec<(i32, String)>> = const { RefCell::new(Vec::new()) };
}

/// How many committed gids a backend collects before its next two-phase commit deletes their
/// rows.
const FORGET_EVERY: usize = 32;

thread_local! {
    /// Where this transaction's WAL ended when it last had written only what Tessera's own
    /// COPY writes locally (sequence values; the staging path's temporary table): see
    /// [`staging_only`].
    static STAGING_WAL_END: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Whether the local transaction has written nothing yet but what Tessera's COPY writes
/// locally (sequence values its defaults advance; on the staging path also a temporary table
/// made and dropped): such a transaction has an xid, but nothing of it needs the nodes to wait
/// for the local commit, so a COPY whose rows went to one node commits there one-phase. Any
/// other write after the COPY moves the transaction's end of WAL on.
pub(crate) fn staging_only() -> bool {
    // SAFETY: reading the backend's transaction id and WAL position.
    unsafe {
        pg_sys::GetTopTransactionIdIfAny() == pg_sys::InvalidTransactionId
            || STAGING_WAL_END.with(|s| s.get()) == Some(pg_sys::XactLastRecEnd)
    }
}

/// After a COPY (begun when [`staging_only`] held, running no user code that writes): what
/// the transaction wrote so far is only that.
pub(crate) fn staging_done() {
    // SAFETY: reading the backend's WAL position.
    let end = unsafe { pg_sys::XactLastRecEnd };
    STAGING_WAL_END.with(|s| s.set(Some(end)));
}

/// The gid of the `n`th prepared node of the local transaction `xid`: Citus's form
/// (`citus_<group>_<pid>_<transaction>_<connection>`), so recovery can tell a transaction
/// still running (its xid in progress) from one whose coordinator gave up.
fn gid(xid: u32, n: usize) -> String {
    // SAFETY: reading the backend's pid.
    let pid = unsafe { pg_sys::MyProcPid };
    format!(
        "citus_{}_{pid}_{xid}_{n}",
        tessera_core::node::COORDINATOR_GROUP_ID
    )
}

fn commit_remote() -> Result<(), TesseraError> {
    // Commands still running from a statement that failed inside a savepoint end first, and
    // their connections come back.
    crate::connection::settle_parked()?;
    let open = remote::open();
    if open.is_empty() {
        return Ok(());
    }
    if let Some(lost) = open.iter().find(|o| !o.usable) {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
            format!(
                "cannot commit: the connection to node {}:{} was lost during the transaction",
                lost.key.node.host, lost.key.node.port
            ),
        )
        .hint("The node rolled back its part of the transaction: run the transaction again."));
    }
    // The coordinator's own writes count too: its commit can still fail after this callback
    // (a serialization failure, a deferred NOTIFY), and a node that committed one-phase
    // before it could not follow.
    let local_wrote = !staging_only();
    let writers = open.iter().filter(|o| o.wrote).count() + usize::from(local_wrote);
    if writers <= 1 {
        // SAFETY: reading the backend's transaction id and WAL position; flushing WAL up to
        // a position this backend wrote.
        unsafe {
            if !local_wrote && pg_sys::GetTopTransactionIdIfAny() != pg_sys::InvalidTransactionId {
                // A COPY's staging: its sequence values must be on disk before the node commits
                // the rows that use them, or a crash here would hand them out again.
                pg_sys::XLogFlush(pg_sys::XactLastRecEnd);
            }
        }
        let tasks: Vec<RemoteTask> = open
            .into_iter()
            .map(|o| {
                RemoteTask::new(o.key, "COMMIT")
                    .in_scope(Scope::Transaction)
                    .ending_transaction()
            })
            .collect();
        for r in run_tasks(&tasks, tasks.len())? {
            r.map_err(|e| e.into_tessera())?;
        }
        return Ok(());
    }
    two_phase_commit(open)
}

/// PREPARE TRANSACTION on the nodes that wrote (COMMIT on those that only read), all at once,
/// then the decision in `pg_dist_transaction`.
fn two_phase_commit(open: Vec<remote::Open>) -> Result<(), TesseraError> {
    // SAFETY: assigns the local transaction's id if it has none yet (its catalog row needs
    // one anyway).
    let xid = unsafe { pg_sys::GetTopTransactionId() }.into_inner();
    let mut tasks = Vec::with_capacity(open.len());
    let mut gids = Vec::with_capacity(open.len());
    for (n, o) in open.into_iter().enumerate() {
        let (sql, gid) = if o.wrote {
            let g = gid(xid, n);
            (format!("PREPARE TRANSACTION '{g}'"), Some(g))
        } else {
            ("COMMIT".to_string(), None)
        };
        tasks.push(
            RemoteTask::new(o.key, sql)
                .in_scope(Scope::Transaction)
                .ending_transaction(),
        );
        gids.push(gid);
    }
    // The decision is recorded while the nodes prepare: it becomes durable only with the
    // local commit, which follows only if every node prepared (a failure rolls it back with
    // the local transaction).
    let mut dispatch = crate::connection::Dispatch::start(tasks.clone(), tasks.len());
    if let Err(e) = dispatch.send() {
        // Interrupted while sending: a node may have prepared (see below).
        crate::pg::wakeup::want_recovery();
        return Err(e);
    }
    let planned: Vec<Prepared> = tasks
        .iter()
        .zip(&gids)
        .filter_map(|(task, gid)| {
            gid.as_ref().map(|g| Prepared {
                key: task.key.clone(),
                gid: g.clone(),
                group: -1,
            })
        })
        .collect();
    // The rows of this backend's earlier two-phase commits go FORGET_EVERY at a time, in a
    // transaction that reads under a snapshot of each statement's own (under REPEATABLE READ
    // a row recovery deleted meanwhile would fail the commit). Until this one ends they are
    // TAKEN: back to COMMITTED_GIDS if it aborts (its DELETE rolls back with it).
    // SAFETY: reading the transaction's isolation level.
    let own_snapshot = unsafe { pg_sys::XactIsoLevel < pg_sys::XACT_REPEATABLE_READ as i32 };
    let done = COMMITTED_GIDS.with(|c| {
        let mut c = c.borrow_mut();
        if own_snapshot && c.len() >= FORGET_EVERY {
            std::mem::take(&mut *c)
        } else {
            Vec::new()
        }
    });
    TAKEN.with(|t| t.borrow_mut().extend(done.iter().cloned()));
    // An ERROR raised inside PostgreSQL while recording is held until the nodes answered, so
    // that what prepared is rolled back first.
    let recorded = PgTryBuilder::new(|| Ok(recovery::record(&planned, &done)))
        .catch_others(|e| Err(Box::new(e)))
        .execute();
    let outcomes = match dispatch.finish() {
        Ok(outcomes) => outcomes,
        Err(e) => {
            // Interrupted while the nodes prepared: which ones did is unknown here. Recovery
            // (asked to run now) rolls back what prepared, finding no committed decision.
            crate::pg::wakeup::want_recovery();
            return Err(e);
        }
    };
    let mut first_error = None;
    let mut prepared = Vec::new();
    for ((task, gid), outcome) in tasks.iter().zip(&gids).zip(outcomes) {
        match (outcome, gid) {
            (Ok(_), Some(g)) => prepared.push(Prepared {
                key: task.key.clone(),
                gid: g.clone(),
                group: match &recorded {
                    Ok(Ok(groups)) => planned
                        .iter()
                        .zip(groups)
                        .find(|(p, _)| p.gid == *g)
                        .map_or(-1, |(_, group)| *group),
                    _ => -1,
                },
            }),
            (Ok(_), None) => {}
            (Err(e), _) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match recorded {
        Err(caught) => {
            finish_prepared(&prepared, "ROLLBACK PREPARED");
            caught.rethrow()
        }
        Ok(Err(e)) => {
            finish_prepared(&prepared, "ROLLBACK PREPARED");
            return Err(e);
        }
        Ok(Ok(_)) => {}
    }
    // The decision must be on disk before any node hears COMMIT PREPARED, whatever
    // synchronous_commit says: lost in a crash, recovery would roll back nodes another one
    // already committed.
    // SAFETY: flags the local commit to flush its WAL.
    unsafe { pg_sys::ForceSyncCommit() };
    if let Some(e) = first_error {
        // The transaction aborts: what prepared is rolled back now (or by recovery, which
        // finds no decision for it).
        finish_prepared(&prepared, "ROLLBACK PREPARED");
        return Err(e.into_tessera());
    }
    fault_pause("after_prepare");
    PREPARED.with(|p| *p.borrow_mut() = prepared);
    Ok(())
}

/// `COMMIT PREPARED` or `ROLLBACK PREPARED` of each prepared node, all at once, each on a
/// connection of its own outside any transaction block. Never raises an ERROR: a node that
/// fails gets a WARNING and is left to recovery. Returns the (group, gid) of those that went
/// through.
fn finish_prepared(prepared: &[Prepared], command: &str) -> Vec<(i32, String)> {
    if prepared.is_empty() {
        return Vec::new();
    }
    let tasks: Vec<RemoteTask> = prepared
        .iter()
        // On the session's connection to the node (lane 0, cached) whatever connection
        // prepared it: a prepared transaction belongs to no connection.
        .map(|p| RemoteTask::new(p.key.clone().in_lane(0), format!("{command} '{}'", p.gid)))
        .collect();
    // Interrupts wait: a cancel here must not turn the finished transaction into an error.
    // The counter is restored to what it was, not decremented (an error caught below resets
    // it to zero on its way).
    // SAFETY: the holdoff counter of the backend, restored below.
    let holdoff = unsafe { pg_sys::InterruptHoldoffCount };
    // SAFETY: as above.
    unsafe { pg_sys::InterruptHoldoffCount = holdoff + 1 };
    let outcomes = PgTryBuilder::new(|| run_tasks(&tasks, tasks.len()).ok())
        .catch_others(|_| None)
        .execute();
    // SAFETY: as above.
    unsafe { pg_sys::InterruptHoldoffCount = holdoff };
    let mut done = Vec::new();
    match outcomes {
        Some(outcomes) => {
            for (p, outcome) in prepared.iter().zip(outcomes) {
                match outcome {
                    Ok(_) => done.push((p.group, p.gid.clone())),
                    // Recovery finished it already (it commits only what the decision says).
                    Err(e) if finished_elsewhere(&e) => done.push((p.group, p.gid.clone())),
                    // Another session is finishing it right now: not done until it has (that
                    // one may fail), so its row stays for recovery to remove.
                    Err(e) if e.sqlstate_str() == "55000" => {}
                    Err(e) => pgrx::warning!(
                        "{command} '{}' failed on node {}:{}: {} (recover_prepared_transactions() finishes it)",
                        p.gid,
                        p.key.node.host,
                        p.key.node.port,
                        e.into_tessera().message
                    ),
                }
            }
        }
        None => pgrx::warning!(
            "{command} could not be sent to the prepared nodes (recover_prepared_transactions() finishes them)"
        ),
    }
    if done.len() < prepared.len() {
        // Decided here, not done on those nodes yet (their locks are still held): the
        // maintenance worker retries at once.
        crate::pg::wakeup::want_recovery();
    }
    done
}

/// Whether a failed COMMIT / ROLLBACK PREPARED means another session finished it: the
/// prepared transaction no longer exists (42704). Not "is busy" (55000): the session that
/// holds it may still fail.
fn finished_elsewhere(e: &crate::connection::RemoteError) -> bool {
    e.sqlstate_str() == "42704"
}

/// For fault tests (`tessera.test_pause_point`): sleeps at `point` of a two-phase commit so
/// that a test can kill a process there.
fn fault_pause(point: &str) {
    let Some(pause) = crate::gucs::test_pause(point) else {
        return;
    };
    pgrx::log!(
        "tessera: pausing {} ms at {point} (tessera.test_pause_point)",
        pause.as_millis()
    );
    let until = std::time::Instant::now() + pause;
    while std::time::Instant::now() < until {
        // SAFETY: sleeping; nothing is held that another process needs.
        unsafe { pg_sys::pg_usleep(10_000) };
    }
}

/// After the local commit: COMMIT PREPARED everywhere.
fn commit_prepared() {
    let prepared = PREPARED.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if !prepared.is_empty() {
        fault_pause("before_commit_prepared");
    }
    let done = finish_prepared(&prepared, "COMMIT PREPARED");
    COMMITTED_GIDS.with(|c| {
        let mut c = c.borrow_mut();
        c.extend(done);
        // A backend whose commits never delete (REPEATABLE READ) keeps the newest only;
        // recovery removes the rows of the others (their gids are prepared nowhere).
        if c.len() > 4 * FORGET_EVERY {
            let extra = c.len() - 4 * FORGET_EVERY;
            c.drain(..extra);
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
            STAGING_WAL_END.with(|s| s.set(None));
            // A prepare that succeeded before the abort is rolled back by pre-commit itself
            // (or, if the backend died, by recovery).
            PREPARED.with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    p.clear();
                }
            });
            // Their DELETE rolled back: a later commit deletes them.
            TAKEN.with(|t| {
                if let Ok(mut t) = t.try_borrow_mut() {
                    let taken = std::mem::take(&mut *t);
                    COMMITTED_GIDS.with(|c| {
                        if let Ok(mut c) = c.try_borrow_mut() {
                            c.extend(taken);
                        }
                    });
                }
            });
            crate::connection::forget_parked();
            remote::close_all()
        }
        pg_sys::XactEvent::XACT_EVENT_COMMIT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT => {
            STAGING_WAL_END.with(|s| s.set(None));
            TAKEN.with(|t| t.borrow_mut().clear());
            crate::connection::forget_parked();
            remote::close_all();
            commit_prepared();
        }
        pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            STAGING_WAL_END.with(|s| s.set(None));
            crate::connection::forget_parked();
            remote::close_all()
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_START_SUB => remote::savepoint_start(my),
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => remote::savepoint_end(my, true),
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => remote::savepoint_end(my, false),
        _ => {}
    }
}
