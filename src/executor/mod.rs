//! The Tessera Adaptive CustomScan: runs a distributed plan's tasks on the workers, all at
//! once, and turns their rows into tuples.
//!
//! - Begin: decode the plan, find the shard groups (evaluating a pinned parameter), and, for an
//!   INSERT, prepare the row expressions. Nothing runs yet (EXPLAIN without ANALYZE stops here).
//! - First Exec: build one task per shard group, join the SELECT tasks of one node into one
//!   `UNION ALL` statement (one round trip per node), run them all in parallel over
//!   non-blocking libpq (`connection::run_tasks`, which waits on PostgreSQL's latch so cancel
//!   and `statement_timeout` work), and count affected rows for DML.
//! - Then each Exec returns the next row: text from the worker through the column type's input
//!   function, in the per-tuple memory context; `ExecScan` applies quals and projection.
//!   A SELECT outside a remote transaction streams: each node sends its rows one at a time
//!   (libpq's single-row mode) and the scan returns them as they arrive, so the coordinator
//!   never holds a whole result. Otherwise (a transaction's connection must be free for the
//!   next statement; a rescannable plan) the results are read whole first.
//!
//! Inside a transaction block (and for every write) tasks run in the remote transaction, so a
//! node sees its earlier writes; otherwise on cached autocommit connections.

mod child;
mod explain;
mod fewer_rows;
mod insert_select;
pub(crate) mod partial_agg;
pub(crate) mod scan_private;
mod subplans;
pub mod subquery_scan;
pub mod task;
pub mod with_first;

use std::ffi::{c_void, CStr};
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use tessera_core::plan::{Command, DistPlan};

use crate::connection::PgResult;
use crate::error::{OrReport, TResult, TesseraError};
use crate::pg::nodes::{is_a, list_of, make_list};

/// The name EXPLAIN shows: `Custom Scan (Tessera Adaptive)`.
pub const SCAN_NAME: &CStr = tessera_core::plan::ADAPTIVE_SCAN;

pub static mut SCAN_METHODS: pg_sys::CustomScanMethods = pg_sys::CustomScanMethods {
    CustomName: SCAN_NAME.as_ptr(),
    CreateCustomScanState: Some(create_scan_state),
};

static mut EXEC_METHODS: pg_sys::CustomExecMethods = pg_sys::CustomExecMethods {
    CustomName: SCAN_NAME.as_ptr(),
    BeginCustomScan: Some(begin_scan),
    ExecCustomScan: Some(exec_scan),
    EndCustomScan: Some(end_scan),
    ReScanCustomScan: Some(rescan),
    MarkPosCustomScan: None,
    RestrPosCustomScan: None,
    EstimateDSMCustomScan: None,
    InitializeDSMCustomScan: None,
    ReInitializeDSMCustomScan: None,
    InitializeWorkerCustomScan: None,
    ShutdownCustomScan: None,
    ExplainCustomScan: Some(explain::explain_scan),
};

pub fn init() {
    // SAFETY: _PG_init; the methods are static and live as long as the library.
    unsafe { pg_sys::RegisterCustomScanMethods(&raw const SCAN_METHODS) };
    subquery_scan::init();
    with_first::init();
}

/// The scan state: PostgreSQL's part first, then a pointer to ours.
#[repr(C)]
struct TesseraScanState {
    css: pg_sys::CustomScanState,
    run: *mut ScanRun,
}

/// What one execution of the scan holds.
pub(crate) struct ScanRun {
    pub plan: Rc<DistPlan>,
    /// INSERT rows: one ExprState List per row.
    pub insert_rows: Vec<*mut pg_sys::List>,
    pub tasks: Option<Vec<task::Task>>,
    results: Vec<PgResult>,
    /// A nearest-neighbour search that asked its shards for fewer rows: each result's last
    /// column is the shard's number, and the first-round rows of shards asked again are set
    /// aside (`fewer_rows`).
    numbered: bool,
    set_aside: Option<fewer_rows::SetAside>,
    /// (result, row) of the next tuple.
    pos: (usize, usize),
    /// The rows still arriving, when the scan streams.
    stream: Option<Box<crate::connection::Dispatch>>,
    /// The scan may stream: it is never rescanned, read backwards or marked.
    can_stream: bool,
    /// INSERT ... SELECT through the coordinator: the SELECT's plan (else null), and its
    /// QueryDesc kept after the run for EXPLAIN ANALYZE.
    child: *mut pg_sys::PlannedStmt,
    child_qd: *mut pg_sys::QueryDesc,
    /// Its rows go to the shards with COPY into these (quoted) columns.
    copy_columns: Option<String>,
    /// Subqueries that run first; their results are parameters of the tasks.
    subs: Vec<subplans::Sub>,
    /// The subqueries' values the plan above the scan reads (as PARAM_EXEC parameters).
    coordinator_params: Vec<scan_private::CoordinatorParam>,
    /// Those parameters, once computed (with the values of `evaluated`).
    pub extra: Option<Vec<subplans::Extra>>,
    /// What the coordinator evaluates for the tasks (`DistPlan::evaluated`): parameter id and
    /// the expression's state.
    evaluated: Vec<(usize, *mut pg_sys::ExprState)>,
    ran: bool,
    /// Per INSERT column: the type and output function of its values, looked up once.
    pub outputs: std::cell::RefCell<Vec<Option<(pg_sys::Oid, pg_sys::FmgrInfo)>>>,
    /// Per scan column: input function, its I/O parameter, typmod.
    inputs: Vec<(pg_sys::FmgrInfo, pg_sys::Oid, i32)>,
    /// Per scan column: the aggregate whose partial states it holds (handed on as `internal`
    /// values, see partial_agg.rs), or None for a plain column.
    partial_states: Vec<Option<pg_sys::Oid>>,
}

/// The decoded plan of a Tessera CustomScan.
///
/// # Safety
/// `cscan` is a CustomScan Tessera built.
pub(crate) unsafe fn plan_of(cscan: *mut pg_sys::CustomScan) -> TResult<Rc<DistPlan>> {
    // SAFETY: the encoded plan's text lives as long as the plan; only its bytes are compared
    // and copied.
    let (at, text) = unsafe {
        match scan_private::plan_text(cscan) {
            Some(p) => (p as usize, std::ffi::CStr::from_ptr(p).to_bytes()),
            None => (0, &b""[..]),
        }
    };
    // A cached plan runs again and again: its decoded form is kept, found by the text's
    // address and checked by its bytes (an address can be reused by another plan).
    let hit = DECODED.with(|d| {
        d.borrow()
            .iter()
            .find(|(p, t, _)| *p == at && t.as_bytes() == text)
            .map(|(_, _, plan)| plan.clone())
    });
    if let Some(plan) = hit {
        return Ok(plan);
    }
    let text = String::from_utf8_lossy(text).into_owned();
    let plan = Rc::new(DistPlan::decode(&text).map_err(|e| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("this cached plan was made by another version of Tessera ({e})"),
        )
        .hint("Run DISCARD PLANS (or reconnect) so that the statement is planned again.")
    })?);
    DECODED.with(|d| {
        let mut d = d.borrow_mut();
        if d.len() >= DECODED_KEPT {
            d.remove(0);
        }
        d.push((at, text, plan.clone()));
    });
    Ok(plan)
}

/// How many decoded plans a backend keeps.
const DECODED_KEPT: usize = 32;

thread_local! {
    /// Recently decoded plans: (address of the encoded text, the text, the plan).
    static DECODED: std::cell::RefCell<Vec<(usize, String, Rc<DistPlan>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

#[pg_guard]
unsafe extern "C-unwind" fn create_scan_state(cscan: *mut pg_sys::CustomScan) -> *mut pg_sys::Node {
    // SAFETY: palloc0 of our state in the executor's memory context; PostgreSQL fills the
    // CustomScanState part after this returns.
    unsafe {
        let state =
            pg_sys::palloc0(std::mem::size_of::<TesseraScanState>()) as *mut TesseraScanState;
        (*state).css.ss.ps.type_ = pg_sys::NodeTag::T_CustomScanState;
        (*state).css.methods = &raw const EXEC_METHODS;
        let _ = cscan;
        state as *mut pg_sys::Node
    }
}

/// Drops the ScanRun when the executor's memory goes away, error or not.
#[pg_guard]
unsafe extern "C-unwind" fn drop_run(arg: *mut c_void) {
    let state = arg as *mut TesseraScanState;
    // SAFETY: `run` was made by Box::into_raw and is dropped once (then cleared).
    unsafe {
        if !(*state).run.is_null() {
            drop(Box::from_raw((*state).run));
            (*state).run = std::ptr::null_mut();
        }
    }
}

/// The row type of scan column `i` when it is an anonymous record (`SELECT ROW(a, b) ...`): its
/// shape from the `ROW(...)` itself, registered for this backend, so `record_in` can read the
/// workers' text. A record of no known shape is refused.
///
/// # Safety
/// `cscan` is the scan being started.
unsafe fn anonymous_record_typmod(cscan: *mut pg_sys::CustomScan, i: usize) -> TResult<i32> {
    // SAFETY: reading the scan's target list and building a tuple descriptor in the query's
    // memory (the record cache keeps a copy of it).
    unsafe {
        let tlist = list_of::<pg_sys::TargetEntry>((*cscan).custom_scan_tlist);
        let mut expr = tlist
            .get(i)
            .map(|t| (**t).expr as *mut pg_sys::Node)
            .unwrap_or(std::ptr::null_mut());
        while !expr.is_null()
            && is_a(
                expr as *const std::ffi::c_void,
                pg_sys::NodeTag::T_RelabelType,
            )
        {
            expr = (*(expr as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
        if !expr.is_null() && is_a(expr as *const std::ffi::c_void, pg_sys::NodeTag::T_RowExpr) {
            let row = expr as *mut pg_sys::RowExpr;
            let desc = pg_sys::ExecTypeFromExprList((*row).args);
            pg_sys::ExecTypeSetColNames(desc, (*row).colnames);
            let desc = pg_sys::BlessTupleDesc(desc);
            return Ok((*desc).tdtypmod);
        }
        anonymous_record_refused().map(|_| -1)
    }
}

fn anonymous_record_refused() -> TResult<()> {
    Err(crate::error::TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        "cannot read a value of an anonymous record type from the workers here",
    )
    .hint("Cast the row to a named composite type (CREATE TYPE ... AS (...), then ROW(a, b)::that_type), or select its fields as columns."))
}

#[pg_guard]
unsafe extern "C-unwind" fn begin_scan(
    node: *mut pg_sys::CustomScanState,
    estate: *mut pg_sys::EState,
    eflags: i32,
) {
    // SAFETY: node is our TesseraScanState; plan and estate are live for the scan.
    unsafe {
        let state = node as *mut TesseraScanState;
        let cscan = (*node).ss.ps.plan as *mut pg_sys::CustomScan;
        let plan = plan_of(cscan).or_report();
        let mut insert_rows = Vec::new();
        if plan.command == Command::Insert {
            // A constant needs no ExprState: the row keeps the Const itself (most values of
            // a multi-row INSERT are, and ExprStates for 500 rows cost more than the rest).
            for row in list_of::<pg_sys::List>((*cscan).custom_exprs) {
                let items: Vec<*mut pg_sys::Node> = list_of::<pg_sys::Node>(row)
                    .into_iter()
                    .map(|e| {
                        if is_a(e as *const std::ffi::c_void, pg_sys::NodeTag::T_Const) {
                            e
                        } else {
                            pg_sys::ExecInitExpr(e as *mut pg_sys::Expr, &mut (*node).ss.ps)
                                as *mut pg_sys::Node
                        }
                    })
                    .collect();
                insert_rows.push(make_list(&items));
            }
        }
        let mut evaluated = Vec::with_capacity(plan.evaluated.len());
        for (id, text) in &plan.evaluated {
            let c = std::ffi::CString::new(text.as_str()).unwrap_or_default();
            let expr = pg_sys::stringToNode(c.as_ptr()) as *mut pg_sys::Expr;
            evaluated.push((*id, pg_sys::ExecInitExpr(expr, &mut (*node).ss.ps)));
        }
        let desc = (*(*node).ss.ss_ScanTupleSlot).tts_tupleDescriptor;
        let mut inputs = Vec::new();
        let mut partial_states = vec![None; (*desc).natts as usize];
        for &(col, agg) in &plan.partial_states {
            if let Some(p) = partial_states.get_mut(col) {
                *p = Some(pg_sys::Oid::from(agg));
            }
        }
        for (i, partial) in partial_states.iter().enumerate() {
            let att = (*desc).attrs.as_ptr().add(i);
            if partial.is_some() {
                inputs.push((pg_sys::FmgrInfo::default(), pg_sys::InvalidOid, -1));
                continue;
            }
            let mut typmod = (*att).atttypmod;
            // Plain EXPLAIN reads no value.
            let reads = eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 == 0;
            if (*att).atttypid == pg_sys::RECORDOID && typmod < 0 && reads {
                typmod = anonymous_record_typmod(cscan, i).or_report();
            }
            if (*att).atttypid == pg_sys::RECORDARRAYOID && reads {
                anonymous_record_refused().or_report();
            }
            let (mut input, mut ioparam) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
            pg_sys::getTypeInputInfo((*att).atttypid, &mut input, &mut ioparam);
            let mut finfo = pg_sys::FmgrInfo::default();
            pg_sys::fmgr_info(input, &mut finfo);
            inputs.push((finfo, ioparam, typmod));
        }
        let run = Box::new(ScanRun {
            plan,
            insert_rows,
            tasks: None,
            results: Vec::new(),
            numbered: false,
            set_aside: None,
            pos: (0, 0),
            stream: None,
            can_stream: eflags
                & (pg_sys::EXEC_FLAG_REWIND | pg_sys::EXEC_FLAG_BACKWARD | pg_sys::EXEC_FLAG_MARK)
                    as i32
                == 0,
            outputs: Default::default(),
            child: scan_private::child(cscan),
            copy_columns: scan_private::copy_columns(cscan),
            subs: subplans::of_plan(cscan),
            coordinator_params: scan_private::coordinator_params(cscan),
            extra: None,
            evaluated,
            child_qd: std::ptr::null_mut(),
            ran: false,
            inputs,
            partial_states,
        });
        (*state).run = Box::into_raw(run);
        let cb = pg_sys::MemoryContextAlloc(
            (*estate).es_query_cxt,
            std::mem::size_of::<pg_sys::MemoryContextCallback>(),
        ) as *mut pg_sys::MemoryContextCallback;
        (*cb).func = Some(drop_run);
        (*cb).arg = state as *mut c_void;
        pg_sys::MemoryContextRegisterResetCallback((*estate).es_query_cxt, cb);
    }
}

/// Runs the subqueries whose results the tasks take as parameters, and evaluates what the
/// coordinator evaluates for them (once per execution).
///
/// # Safety
/// `node` is our scan state with a live run.
pub(crate) unsafe fn ensure_subplans(node: *mut pg_sys::CustomScanState) -> TResult<()> {
    // SAFETY: forwarded; the run lives until the executor's memory is reset.
    unsafe {
        let run = &mut *(*(node as *mut TesseraScanState)).run;
        if run.extra.is_some() || (run.subs.is_empty() && run.evaluated.is_empty()) {
            return Ok(());
        }
        let mut extra = if run.subs.is_empty() {
            Vec::new()
        } else {
            subplans::run_all(&mut run.subs, (*node).ss.ps.state)?
        };
        let econtext = (*node).ss.ps.ps_ExprContext;
        for &(id, state) in &run.evaluated {
            let mut isnull = false;
            let datum = pg_sys::ExecEvalExprSwitchContext(state, econtext, &mut isnull);
            let typid = pg_sys::exprType((*state).expr as *mut pg_sys::Node);
            let text = if isnull {
                None
            } else {
                // Printed the way any node reads it.
                let _portable = crate::pg::guc::GucScope::portable_output();
                Some(crate::pg::datum::value_to_text(datum, typid))
            };
            extra.push((id, text, task::portable_type(typid)));
        }
        pg_sys::MemoryContextReset((*econtext).ecxt_per_tuple_memory);
        subplans::hand_to_coordinator(&run.coordinator_params, &extra, (*node).ss.ps.state);
        run.extra = Some(extra);
    }
    Ok(())
}

/// Runs the tasks (once per execution).
///
/// # Safety
/// `node` is our scan state with a live run.
unsafe fn ensure_ran(node: *mut pg_sys::CustomScanState) -> TResult<()> {
    // SAFETY: forwarded; the run lives until the executor's memory is reset.
    unsafe {
        let state = node as *mut TesseraScanState;
        let run = &mut *(*state).run;
        if run.ran {
            return Ok(());
        }
        let estate = (*node).ss.ps.state;
        ensure_subplans(node)?;
        let run = &mut *(*state).run;
        if !run.child.is_null() {
            let (results, affected) = insert_select::execute(node, (*state).run)?;
            let run = &mut *(*state).run;
            run.results = results;
            run.ran = true;
            (*estate).es_processed += affected;
            return Ok(());
        }
        let econtext = (*node).ss.ps.ps_ExprContext;
        let tasks = task::build(run, estate, econtext)?;
        let (rows, affected) = task::run(&run.plan, &tasks, run.can_stream)?;
        run.numbered = tasks.first().is_some_and(|t| t.fewer.is_some());
        run.set_aside = None;
        match rows {
            task::Rows::Done(results) => run.results = results,
            task::Rows::Stream(dispatch) => run.stream = Some(dispatch),
            task::Rows::SetAside(results, set_aside) => {
                run.results = results;
                run.set_aside = Some(set_aside);
            }
        }
        run.tasks = Some(tasks);
        run.ran = true;
        if run.plan.command != Command::Select {
            (*estate).es_processed += affected;
        }
    }
    Ok(())
}

#[pg_guard]
unsafe extern "C-unwind" fn exec_scan(
    node: *mut pg_sys::CustomScanState,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: node is our scan state.
    unsafe {
        ensure_ran(node).or_report();
        let run = &*(*(node as *mut TesseraScanState)).run;
        if !run.plan.returns_rows {
            return std::ptr::null_mut();
        }
        pg_sys::ExecScan(&mut (*node).ss, Some(next_row), Some(recheck))
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn recheck(
    _node: *mut pg_sys::ScanState,
    _slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    true
}

/// The next worker row in the scan slot, or an empty slot at the end.
#[pg_guard]
unsafe extern "C-unwind" fn next_row(ss: *mut pg_sys::ScanState) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: ss is the ScanState of our CustomScanState; values are read from live results
    // and converted in the per-tuple memory context, which ExecScan resets per row.
    unsafe {
        let state = ss as *mut TesseraScanState;
        let run = &mut *(*state).run;
        let slot = (*ss).ss_ScanTupleSlot;
        pg_sys::ExecClearTuple(slot);
        loop {
            let (r, row) = run.pos;
            let Some(result) = run.results.get(r) else {
                // Streaming: the next row that arrives (one result per row).
                if let Some(stream) = run.stream.as_mut() {
                    if let Some((_, next)) = stream.next_row().or_report() {
                        run.results.clear();
                        run.results.push(next);
                        run.pos = (0, 0);
                        continue;
                    }
                }
                return slot;
            };
            if row >= result.ntuples() {
                run.pos = (r + 1, 0);
                continue;
            }
            run.pos = (r, row + 1);
            if run
                .set_aside
                .as_ref()
                .is_some_and(|s| s.skips(r, result, row))
            {
                continue;
            }
            let econtext = (*ss).ps.ps_ExprContext;
            let old = pg_sys::MemoryContextSwitchTo((*econtext).ecxt_per_tuple_memory);
            if result.nfields() != run.inputs.len() + usize::from(run.numbered) {
                // A shard whose columns differ from the table's (changed on the node itself):
                // the row cannot be read as the table's.
                crate::error::TesseraError::new(
                    pgrx::PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    format!(
                        "a node returned rows of {} columns where {} were expected",
                        result.nfields(),
                        run.inputs.len() + usize::from(run.numbered)
                    ),
                )
                .hint("A shard's columns were changed on its node: change the distributed table on the coordinator instead, and make the shard match it again.")
                .report();
            }
            let natts = run.inputs.len();
            for (col, (finfo, ioparam, typmod)) in run.inputs.iter_mut().enumerate().take(natts) {
                let values = (*slot).tts_values.add(col);
                let nulls = (*slot).tts_isnull.add(col);
                match result.value_cstr(row, col) {
                    None => {
                        *values = pg_sys::Datum::from(0);
                        *nulls = true;
                    }
                    Some(text) if run.partial_states[col].is_some() => {
                        // Kept until the query ends: a Sort above the scan holds rows.
                        *values = partial_agg::partial_state_datum(
                            text,
                            run.partial_states[col].expect("checked"),
                            (*(*ss).ps.state).es_query_cxt,
                        );
                        *nulls = false;
                    }
                    Some(text) => {
                        *values = pg_sys::InputFunctionCall(
                            finfo,
                            text.as_ptr() as *mut std::ffi::c_char,
                            *ioparam,
                            *typmod,
                        );
                        *nulls = false;
                    }
                }
            }
            pg_sys::MemoryContextSwitchTo(old);
            return pg_sys::ExecStoreVirtualTuple(slot);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn end_scan(node: *mut pg_sys::CustomScanState) {
    // SAFETY: node is our scan state; dropping the run releases the worker results early.
    // A stream the plan stopped reading (a LIMIT above) is stopped on the nodes, and its
    // connections are kept.
    unsafe {
        let run = (*(node as *mut TesseraScanState)).run;
        if !run.is_null() {
            if let Some(stream) = (*run).stream.take() {
                (*stream).abandon().or_report();
            }
            insert_select::end(run);
            subplans::end(&mut (*run).subs);
        }
        drop_run(node as *mut c_void)
    };
}

#[pg_guard]
unsafe extern "C-unwind" fn rescan(node: *mut pg_sys::CustomScanState) {
    // SAFETY: node is our scan state. The results of this execution are read again; a
    // rescan with new parameter values is not supported by the plans Tessera builds (the
    // scan never sits on the inner side of a parameterized join). A streamed run kept no
    // rows: it runs again, this time keeping its results for further rescans.
    unsafe {
        let run = (*(node as *mut TesseraScanState)).run;
        if run.is_null() {
            return;
        }
        let run = &mut *run;
        run.pos = (0, 0);
        // The stream stays in place once the run streamed (until the scan ends).
        if let Some(stream) = run.stream.take() {
            (*stream).abandon().or_report();
            run.results.clear();
            run.tasks = None;
            run.ran = false;
            run.can_stream = false;
        }
    }
}
