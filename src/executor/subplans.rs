//! Subqueries the planner took out of the shard queries (`planner::recursive`): each runs on
//! the coordinator, once, before the scan's tasks are built, and its result becomes the value
//! of one parameter of the shard queries: a scalar, `true`/`false` for EXISTS, or an array
//! literal for `x = ANY($n)`.

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::{TResult, TesseraError};
use tessera_core::plan::SubKind;

/// One subquery of the scan.
pub(crate) struct Sub {
    pub param: usize,
    pub kind: SubKind,
    pub elem_type: pg_sys::Oid,
    /// Parameters it fills: `param ..= param + width - 1`.
    pub width: usize,
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
    // SAFETY: forwarded.
    unsafe { super::scan_private::subplans(cscan) }
        .into_iter()
        .map(|s| Sub {
            param: s.param,
            kind: s.kind,
            elem_type: s.elem_type,
            width: s.width,
            stmt: s.stmt,
            qd: std::ptr::null_mut(),
        })
        .collect()
}

/// What the receiver collects: the first column's values (every column's, for Rows).
struct Collect {
    kind: SubKind,
    rows: usize,
    /// Text collected so far, against `citus.max_intermediate_result_size`.
    bytes: usize,
    limit: Option<usize>,
    columns: Vec<Vec<Option<String>>>,
    outputs: Vec<Option<pg_sys::FmgrInfo>>,
    types: Vec<pg_sys::Oid>,
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
        let desc = (*slot).tts_tupleDescriptor;
        let width = if c.kind == SubKind::Rows {
            (*desc).natts as usize
        } else {
            ((*desc).natts as usize).min(1)
        };
        if ((*slot).tts_nvalid as usize) < width {
            pg_sys::slot_getsomeattrs_int(slot, width as i32);
        }
        if c.columns.len() < width {
            c.columns.resize_with(width, Vec::new);
            c.outputs.resize_with(width, || None);
            c.types = (0..width)
                .map(|i| (*(*desc).attrs.as_ptr().add(i)).atttypid)
                .collect();
        }
        // The values travel to the nodes as text: printed the way any node reads them.
        let _portable = crate::pg::guc::GucScope::portable_output();
        for i in 0..width {
            if *(*slot).tts_isnull.add(i) {
                c.columns[i].push(None);
                continue;
            }
            let typid = c.types[i];
            let finfo = c.outputs[i].get_or_insert_with(|| {
                let (mut out, mut varlena) = (pg_sys::InvalidOid, false);
                pg_sys::getTypeOutputInfo(typid, &mut out, &mut varlena);
                let mut f = pg_sys::FmgrInfo::default();
                pg_sys::fmgr_info(out, &mut f);
                f
            });
            let text = crate::pg::nodes::string(pg_sys::OutputFunctionCall(
                finfo,
                *(*slot).tts_values.add(i),
            ));
            c.bytes += text.len() + 3;
            c.columns[i].push(Some(text));
        }
        if c.limit.is_some_and(|l| c.bytes > l) {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "the result of a subquery sent to the shards exceeds citus.max_intermediate_result_size ({} kB)",
                    c.limit.unwrap_or(0) / 1024
                ),
            )
            .hint("Set citus.max_intermediate_result_size higher (or -1 for no limit), or make the subquery return fewer rows.")
            .report();
        }
    }
    true
}

/// The array delimiter and array type of `elem`.
unsafe fn array_info(elem: pg_sys::Oid) -> (char, pg_sys::Oid) {
    // SAFETY: catalog lookups of an existing type.
    unsafe {
        let (mut len, mut byval, mut align, mut delim) = (0i16, false, 0, 0);
        let (mut ioparam, mut func) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
        pg_sys::get_type_io_data(
            elem,
            pg_sys::IOFuncSelector::IOFunc_output,
            &mut len,
            &mut byval,
            &mut align,
            &mut delim,
            &mut ioparam,
            &mut func,
        );
        (delim as u8 as char, pg_sys::get_array_type(elem))
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
            columns: Vec::new(),
            outputs: Vec::new(),
            types: Vec::new(),
            bytes: 0,
            limit: crate::gucs::max_intermediate_result_bytes(),
        };
        // SAFETY: running a planned SELECT to completion into our receiver, which lives on
        // this frame until the QueryDesc no longer points at it.
        unsafe {
            let mut receiver = Receiver {
                dest: super::child::receiver(receive, pg_sys::CommandDest::DestNone),
                collect: &mut collect,
            };
            let count = if sub.kind == SubKind::Exists { 1 } else { 0 };
            sub.qd = super::child::run(sub.stmt, estate, &mut receiver.dest, count);
        }
        let first = |c: &mut Collect| -> Vec<Option<String>> {
            if c.columns.is_empty() {
                Vec::new()
            } else {
                std::mem::take(&mut c.columns[0])
            }
        };
        match sub.kind {
            SubKind::Exists => out.push((
                sub.param,
                Some(if collect.rows > 0 { "t" } else { "f" }.to_string()),
                pg_sys::BOOLOID.to_u32(),
            )),
            SubKind::Scalar => out.push((
                sub.param,
                first(&mut collect).into_iter().next().flatten(),
                super::task::portable_type(sub.elem_type),
            )),
            SubKind::Array => {
                // SAFETY: catalog lookups of an existing type.
                let (delim, arr) = unsafe { array_info(sub.elem_type) };
                let values = first(&mut collect);
                out.push((
                    sub.param,
                    Some(tessera_core::sqltext::array_literal(&values, delim)),
                    super::task::portable_type(arr),
                ));
            }
            SubKind::Rows => {
                let n = sub.width;
                for i in 0..n {
                    let values = collect
                        .columns
                        .get_mut(i)
                        .map(std::mem::take)
                        .unwrap_or_default();
                    let typ = collect.types.get(i).copied();
                    // No row: every column an empty array of its type (from the plan).
                    let (delim, arr) = match typ {
                        // SAFETY: catalog lookups of an existing type.
                        Some(t) => unsafe { array_info(t) },
                        None => (',', pg_sys::InvalidOid),
                    };
                    out.push((
                        sub.param + i,
                        Some(tessera_core::sqltext::array_literal(&values, delim)),
                        super::task::portable_type(arr),
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Ends the QueryDescs kept for EXPLAIN ANALYZE.
///
/// # Safety
/// Each kept QueryDesc came from `child::run`.
pub(super) unsafe fn end(subs: &mut [Sub]) {
    for sub in subs {
        // SAFETY: forwarded.
        unsafe { super::child::end(&mut sub.qd) };
    }
}

/// EXPLAIN: each subquery's plan, with the parameter it fills.
///
/// # Safety
/// `es` is the live ExplainState.
pub(super) unsafe fn explain(
    subs: &[Sub],
    coordinator: &[crate::executor::scan_private::CoordinatorParam],
    es: *mut pg_sys::ExplainState,
) {
    for sub in subs {
        // The plan above the scan prints the value it reads by its PARAM_EXEC number.
        let above = coordinator
            .iter()
            .find(|c| c.param == sub.param)
            .map(|c| format!("; the plan above reads it as ${}", c.exec))
            .unwrap_or_default();
        let label = match sub.kind {
            SubKind::Rows => format!(
                "Subquery for ${}..${} (runs first on the coordinator; its rows are parameters, one array per column)",
                sub.param,
                sub.param + sub.width.max(1) - 1
            ),
            _ => format!(
                "Subquery for ${} (runs first on the coordinator; its result is a parameter{above})",
                sub.param
            ),
        };
        // SAFETY: forwarded.
        unsafe { super::child::explain(sub.stmt, sub.qd, &label, es) };
    }
}

/// Sets the executor's `PARAM_EXEC` parameters the plan above the scan reads to the values the
/// subqueries gave (printed for the nodes; read back here with the type's input function, in
/// the query's memory).
///
/// # Safety
/// `estate` is the executor state of the scan's plan, whose `PARAM_EXEC` array holds each
/// `exec` (the planner added them to the statement's `paramExecTypes`).
pub(super) unsafe fn hand_to_coordinator(
    params: &[crate::executor::scan_private::CoordinatorParam],
    extra: &[Extra],
    estate: *mut pg_sys::EState,
) {
    if params.is_empty() {
        return;
    }
    // SAFETY: catalog lookups of existing types, input functions called in the query's
    // context, and the PARAM_EXEC array of the running plan.
    unsafe {
        let old = pg_sys::MemoryContextSwitchTo((*estate).es_query_cxt);
        for p in params {
            let text = extra
                .iter()
                .find(|(id, _, _)| *id == p.param)
                .and_then(|(_, t, _)| t.as_deref());
            let prm = (*estate).es_param_exec_vals.add(p.exec);
            (*prm).execPlan = std::ptr::null_mut();
            match text {
                None => {
                    (*prm).value = pg_sys::Datum::from(0usize);
                    (*prm).isnull = true;
                }
                Some(t) => {
                    let (mut input, mut ioparam) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
                    pg_sys::getTypeInputInfo(p.typid, &mut input, &mut ioparam);
                    let c = std::ffi::CString::new(t).unwrap_or_default();
                    (*prm).value =
                        pg_sys::OidInputFunctionCall(input, c.as_ptr() as *mut _, ioparam, -1);
                    (*prm).isnull = false;
                }
            }
        }
        pg_sys::MemoryContextSwitchTo(old);
    }
}
