//! Statements a scan runs beside its own: the SELECT of an INSERT ... SELECT through the
//! coordinator, a subquery whose result becomes a parameter, a subquery read through a
//! tuplestore. Each runs with the scan's parameters and snapshot into a DestReceiver, and is
//! kept after the run when EXPLAIN ANALYZE will show its counts.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// A DestReceiver's callback for each row.
pub(super) type ReceiveFn =
    unsafe extern "C-unwind" fn(*mut pg_sys::TupleTableSlot, *mut pg_sys::DestReceiver) -> bool;

#[pg_guard]
unsafe extern "C-unwind" fn startup(
    _dest: *mut pg_sys::DestReceiver,
    _operation: i32,
    _desc: pg_sys::TupleDesc,
) {
}

#[pg_guard]
unsafe extern "C-unwind" fn shutdown(_dest: *mut pg_sys::DestReceiver) {}

/// The PostgreSQL part of a receiver that only takes rows (`receive`), for a struct that
/// begins with it.
pub(super) fn receiver(
    receive: ReceiveFn,
    kind: pg_sys::CommandDest::Type,
) -> pg_sys::DestReceiver {
    pg_sys::DestReceiver {
        receiveSlot: Some(receive),
        rStartup: Some(startup),
        rShutdown: Some(shutdown),
        rDestroy: Some(shutdown),
        mydest: kind,
    }
}

/// Runs `stmt` into `dest` (its first `count` rows; 0: all of them) with the parameters, query
/// environment and instrumentation of `estate`. Returns its finished QueryDesc, `dest` no
/// longer referenced, when EXPLAIN ANALYZE will show it (end it with [`end`]); otherwise ends
/// it and returns null.
///
/// # Safety
/// `stmt` is a PlannedStmt, `estate` the running scan's, `dest` valid for the call.
pub(super) unsafe fn run(
    stmt: *mut pg_sys::PlannedStmt,
    estate: *mut pg_sys::EState,
    dest: *mut pg_sys::DestReceiver,
    count: u64,
) -> *mut pg_sys::QueryDesc {
    // SAFETY: the standard executor sequence on a QueryDesc made here.
    unsafe {
        let qd = pg_sys::CreateQueryDesc(
            stmt,
            (*estate).es_sourceText,
            pg_sys::GetActiveSnapshot(),
            std::ptr::null_mut(),
            dest,
            (*estate).es_param_list_info,
            (*estate).es_queryEnv,
            (*estate).es_instrument,
        );
        pg_sys::ExecutorStart(qd, 0);
        pg_sys::ExecutorRun(qd, pg_sys::ScanDirection::ForwardScanDirection, count, true);
        pg_sys::ExecutorFinish(qd);
        if (*estate).es_instrument != 0 {
            (*qd).dest = pg_sys::CreateDestReceiver(pg_sys::CommandDest::DestNone);
            qd
        } else {
            pg_sys::ExecutorEnd(qd);
            pg_sys::FreeQueryDesc(qd);
            std::ptr::null_mut()
        }
    }
}

/// Ends a QueryDesc [`run`] kept (once; null does nothing).
///
/// # Safety
/// `qd` is null or came from [`run`].
pub(super) unsafe fn end(qd: &mut *mut pg_sys::QueryDesc) {
    if !qd.is_null() {
        // SAFETY: started and finished by `run`, ended here once.
        unsafe {
            pg_sys::ExecutorEnd(*qd);
            pg_sys::FreeQueryDesc(*qd);
        }
        *qd = std::ptr::null_mut();
    }
}

/// Prints the plan of `stmt` under the current node, labelled `label`: the QueryDesc `kept`
/// (with its counts, after EXPLAIN ANALYZE) or one started here for EXPLAIN only.
///
/// # Safety
/// `stmt` is a PlannedStmt; `kept` null or its started QueryDesc; `es` the live ExplainState.
pub(super) unsafe fn explain(
    stmt: *mut pg_sys::PlannedStmt,
    kept: *mut pg_sys::QueryDesc,
    label: &str,
    es: *mut pg_sys::ExplainState,
) {
    // SAFETY: the ExplainState's per-plan fields are put back after printing the plan.
    unsafe {
        let (qd, own) = if kept.is_null() {
            let qd = pg_sys::CreateQueryDesc(
                stmt,
                c"".as_ptr(),
                pg_sys::GetActiveSnapshot(),
                std::ptr::null_mut(),
                pg_sys::CreateDestReceiver(pg_sys::CommandDest::DestNone),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            );
            pg_sys::ExecutorStart(qd, pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32);
            (qd, true)
        } else {
            (kept, false)
        };
        let saved = (
            (*es).pstmt,
            (*es).rtable,
            (*es).rtable_names,
            (*es).deparse_cxt,
            (*es).printed_subplans,
        );
        let text = (*es).format == pg_sys::ExplainFormat::EXPLAIN_FORMAT_TEXT;
        let c_label = std::ffi::CString::new(label).unwrap_or_default();
        if text {
            let s = (*es).str_;
            pg_sys::appendStringInfoSpaces(s, (*es).indent * 2);
            pg_sys::appendStringInfoString(s, c"->  ".as_ptr());
            pg_sys::appendStringInfoString(s, c_label.as_ptr());
            pg_sys::appendStringInfoString(s, c"\n".as_ptr());
            (*es).indent += 3;
        } else {
            pg_sys::ExplainOpenGroup(c_label.as_ptr(), c_label.as_ptr(), true, es);
        }
        pg_sys::ExplainPrintPlan(es, qd);
        if text {
            (*es).indent -= 3;
        } else {
            pg_sys::ExplainCloseGroup(c_label.as_ptr(), c_label.as_ptr(), true, es);
        }
        (*es).pstmt = saved.0;
        (*es).rtable = saved.1;
        (*es).rtable_names = saved.2;
        (*es).deparse_cxt = saved.3;
        (*es).printed_subplans = saved.4;
        if own {
            pg_sys::ExecutorEnd(qd);
            pg_sys::FreeQueryDesc(qd);
        }
    }
}
