//! Subqueries the planner took out of the shard queries (`planner::recursive`): each runs on
//! the coordinator, once, before the scan's tasks are built, and its result becomes the value
//! of one parameter of the shard queries: a scalar, `true`/`false` for EXISTS, or an array
//! literal for `x = ANY($n)`.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::{TResult, TesseraError};
use crate::nodes::{is_a, list_of};
use crate::planner::SubKind;

/// One subquery of the scan.
pub(crate) struct Sub {
    pub param: usize,
    pub kind: SubKind,
    pub elem_type: pg_sys::Oid,
    pub stmt: *mut pg_sys::PlannedStmt,
    /// Its QueryDesc, kept after the run for EXPLAIN ANALYZE (else null).
    pub qd: *mut pg_sys::QueryDesc,
}

/// A parameter value computed here: (parameter id, text, type for the workers).
pub(crate) type Extra = (usize, Option<String>, u32);

/// The subqueries the planner attached to `cscan`.
///
/// # Safety
/// `cscan` is a CustomScan Tessera built.
pub(super) unsafe fn of_plan(cscan: *mut pg_sys::CustomScan) -> Vec<Sub> {
    let mut out = Vec::new();
    // SAFETY: custom_private's List items are (Integer, Integer, Integer, PlannedStmt).
    unsafe {
        for item in list_of::<pg_sys::Node>((*cscan).custom_private) {
            if !is_a(item as *const c_void, pg_sys::NodeTag::T_List) {
                continue;
            }
            let parts = list_of::<pg_sys::Node>(item as *mut pg_sys::List);
            if parts.len() != 4 {
                continue;
            }
            let int = |n: *mut pg_sys::Node| (*(n as *mut pg_sys::Integer)).ival;
            let Some(kind) = SubKind::from_code(int(parts[1])) else {
                continue;
            };
            out.push(Sub {
                param: int(parts[0]) as usize,
                kind,
                elem_type: pg_sys::Oid::from(int(parts[2]) as u32),
                stmt: parts[3] as *mut pg_sys::PlannedStmt,
                qd: std::ptr::null_mut(),
            });
        }
    }
    out
}

/// What the receiver collects.
struct Collect {
    kind: SubKind,
    rows: usize,
    values: Vec<Option<String>>,
    output: Option<pg_sys::FmgrInfo>,
}

#[repr(C)]
struct Receiver {
    dest: pg_sys::DestReceiver,
    collect: *mut Collect,
}

#[pg_guard]
unsafe extern "C-unwind" fn receive(
    slot: *mut pg_sys::TupleTableSlot,
    dest: *mut pg_sys::DestReceiver,
) -> bool {
    // SAFETY: dest is our Receiver; the slot holds the subquery's row for this call.
    unsafe {
        let c = &mut *(*(dest as *mut Receiver)).collect;
        c.rows += 1;
        match c.kind {
            SubKind::Exists => return true,
            SubKind::Scalar if c.rows > 1 => {
                TesseraError::new(
                    PgSqlErrorCode::ERRCODE_CARDINALITY_VIOLATION,
                    "more than one row returned by a subquery used as an expression",
                )
                .report();
            }
            _ => {}
        }
        if ((*slot).tts_nvalid as i32) < 1 {
            pg_sys::slot_getsomeattrs_int(slot, 1);
        }
        let desc = (*slot).tts_tupleDescriptor;
        if (*desc).natts < 1 {
            c.values.push(None);
            return true;
        }
        if *(*slot).tts_isnull {
            c.values.push(None);
            return true;
        }
        let finfo = c.output.get_or_insert_with(|| {
            let typid = (*(*desc).attrs.as_ptr()).atttypid;
            let (mut out, mut varlena) = (pg_sys::InvalidOid, false);
            pg_sys::getTypeOutputInfo(typid, &mut out, &mut varlena);
            let mut f = pg_sys::FmgrInfo::default();
            pg_sys::fmgr_info(out, &mut f);
            f
        });
        let text = crate::nodes::string(pg_sys::OutputFunctionCall(finfo, *(*slot).tts_values));
        c.values.push(Some(text));
    }
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn startup(
    _dest: *mut pg_sys::DestReceiver,
    _operation: i32,
    _desc: pg_sys::TupleDesc,
) {
}

#[pg_guard]
unsafe extern "C-unwind" fn shutdown(_dest: *mut pg_sys::DestReceiver) {}

/// A type as the workers know it: built-in types by OID, others inferred (0).
fn portable(t: pg_sys::Oid) -> u32 {
    let t = t.to_u32();
    if t < pg_sys::FirstNormalObjectId {
        t
    } else {
        0
    }
}

/// Runs every subquery and returns the parameter values.
///
/// # Safety
/// `estate` is the executor state of the scan that holds `subs`.
pub(super) unsafe fn run_all(subs: &mut [Sub], estate: *mut pg_sys::EState) -> TResult<Vec<Extra>> {
    let mut out = Vec::with_capacity(subs.len());
    for sub in subs.iter_mut() {
        let mut collect = Collect {
            kind: sub.kind,
            rows: 0,
            values: Vec::new(),
            output: None,
        };
        // SAFETY: running a planned SELECT to completion into our receiver, which lives on
        // this frame until the QueryDesc no longer points at it.
        unsafe {
            let mut receiver = Receiver {
                dest: pg_sys::DestReceiver {
                    receiveSlot: Some(receive),
                    rStartup: Some(startup),
                    rShutdown: Some(shutdown),
                    rDestroy: Some(shutdown),
                    mydest: pg_sys::CommandDest::DestNone,
                },
                collect: &mut collect,
            };
            let qd = pg_sys::CreateQueryDesc(
                sub.stmt,
                (*estate).es_sourceText,
                pg_sys::GetActiveSnapshot(),
                std::ptr::null_mut(),
                &mut receiver.dest,
                (*estate).es_param_list_info,
                (*estate).es_queryEnv,
                (*estate).es_instrument,
            );
            pg_sys::ExecutorStart(qd, 0);
            let count = if sub.kind == SubKind::Exists { 1 } else { 0 };
            pg_sys::ExecutorRun(qd, pg_sys::ScanDirection::ForwardScanDirection, count, true);
            pg_sys::ExecutorFinish(qd);
            (*qd).dest = pg_sys::CreateDestReceiver(pg_sys::CommandDest::DestNone);
            if (*estate).es_instrument != 0 {
                sub.qd = qd;
            } else {
                pg_sys::ExecutorEnd(qd);
                pg_sys::FreeQueryDesc(qd);
            }
        }
        let value = match sub.kind {
            SubKind::Exists => (
                Some(if collect.rows > 0 { "t" } else { "f" }.to_string()),
                pg_sys::BOOLOID.to_u32(),
            ),
            SubKind::Scalar => (
                collect.values.into_iter().next().flatten(),
                portable(sub.elem_type),
            ),
            SubKind::Array => {
                // SAFETY: catalog lookups of an existing type.
                let (delim, arr) = unsafe {
                    let (mut len, mut byval, mut align, mut delim) = (0i16, false, 0, 0);
                    let (mut ioparam, mut func) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
                    pg_sys::get_type_io_data(
                        sub.elem_type,
                        pg_sys::IOFuncSelector::IOFunc_output,
                        &mut len,
                        &mut byval,
                        &mut align,
                        &mut delim,
                        &mut ioparam,
                        &mut func,
                    );
                    (delim as u8 as char, pg_sys::get_array_type(sub.elem_type))
                };
                (
                    Some(tessera_core::sqltext::array_literal(&collect.values, delim)),
                    portable(arr),
                )
            }
        };
        out.push((sub.param, value.0, value.1));
    }
    Ok(out)
}

/// Ends the QueryDescs kept for EXPLAIN ANALYZE.
///
/// # Safety
/// Each kept QueryDesc was started and finished by `run_all`.
pub(super) unsafe fn end(subs: &mut [Sub]) {
    for sub in subs {
        if !sub.qd.is_null() {
            // SAFETY: ended once, then forgotten.
            unsafe {
                pg_sys::ExecutorEnd(sub.qd);
                pg_sys::FreeQueryDesc(sub.qd);
            }
            sub.qd = std::ptr::null_mut();
        }
    }
}

/// EXPLAIN: each subquery's plan, with the parameter it fills.
///
/// # Safety
/// `es` is the live ExplainState.
pub(super) unsafe fn explain(subs: &[Sub], es: *mut pg_sys::ExplainState) {
    for sub in subs {
        let label = format!(
            "Subquery for ${} (runs first on the coordinator; its result is a parameter)",
            sub.param
        );
        // SAFETY: forwarded.
        unsafe { super::insert_select::explain_plan(sub.stmt, sub.qd, &label, es) };
    }
}
