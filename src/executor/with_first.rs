//! The Tessera WITH scan: runs the WITH queries of a statement that has data-modifying ones
//! first, each exactly once and to the end, in the statement's transaction, and then the rest
//! of the statement (`planner::with_first` plans it).
//!
//! The scan sits on top of the statement's plan (its outer plan). On its first Exec it runs
//! each WITH query's own PlannedStmt (a distributed INSERT/UPDATE/DELETE with RETURNING, a
//! distributed SELECT, or a local one) in the order they were written, and keeps each one's
//! rows in a tuplestore registered under the query's number. The rest of the statement, and
//! the later WITH queries, read those rows through `tessera_cte_results(k)`, a set-returning
//! function that hands out a copy of result `k`. Then the scan returns its outer plan's rows.
//! A WITH query nobody reads runs all the same, as in PostgreSQL.

use std::cell::RefCell;
use std::ffi::{c_void, CStr};

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::subquery_scan::{store_row, StoreReceiver};
use crate::error::TesseraError;
use crate::pg::nodes::{is_a, list_of};

pub const SCAN_NAME: &CStr = tessera_core::plan::WITH_SCAN;

pub static mut SCAN_METHODS: pg_sys::CustomScanMethods = pg_sys::CustomScanMethods {
    CustomName: SCAN_NAME.as_ptr(),
    CreateCustomScanState: Some(create_state),
};

static mut EXEC_METHODS: pg_sys::CustomExecMethods = pg_sys::CustomExecMethods {
    CustomName: SCAN_NAME.as_ptr(),
    BeginCustomScan: Some(begin),
    ExecCustomScan: Some(exec),
    EndCustomScan: Some(end),
    ReScanCustomScan: Some(rescan),
    MarkPosCustomScan: None,
    RestrPosCustomScan: None,
    EstimateDSMCustomScan: None,
    InitializeDSMCustomScan: None,
    ReInitializeDSMCustomScan: None,
    InitializeWorkerCustomScan: None,
    ShutdownCustomScan: None,
    ExplainCustomScan: Some(explain),
};

pub fn init() {
    // SAFETY: _PG_init; the methods are static and live as long as the library.
    unsafe { pg_sys::RegisterCustomScanMethods(&raw const SCAN_METHODS) };
}

/// One WITH query's rows while its statement runs.
struct Registered {
    /// The scan state that owns it (several statements can run nested in one backend).
    owner: usize,
    k: i32,
    /// The role that ran the statement: only it reads the rows.
    user: pg_sys::Oid,
    store: *mut pg_sys::Tuplestorestate,
    desc: pg_sys::TupleDesc,
}

thread_local! {
    /// The results of the running statements' WITH queries, newest last.
    static RESULTS: RefCell<Vec<Registered>> = const { RefCell::new(Vec::new()) };
}

#[repr(C)]
struct State {
    css: pg_sys::CustomScanState,
    /// The WITH queries' plans, in the order they run (result k is the k-th).
    stmts: Vec<*mut pg_sys::PlannedStmt>,
    /// Their QueryDescs, kept for EXPLAIN ANALYZE.
    qds: Vec<*mut pg_sys::QueryDesc>,
    ran: bool,
}

#[pg_guard]
unsafe extern "C-unwind" fn create_state(cscan: *mut pg_sys::CustomScan) -> *mut pg_sys::Node {
    // SAFETY: palloc0 of our state; PostgreSQL fills the CustomScanState part after this. The
    // Vecs are written in place (the memory is zeroed, not a valid Vec yet) and dropped in
    // `forget` when the query's memory goes.
    unsafe {
        let s = pg_sys::palloc0(std::mem::size_of::<State>()) as *mut State;
        (*s).css.ss.ps.type_ = pg_sys::NodeTag::T_CustomScanState;
        (*s).css.methods = &raw const EXEC_METHODS;
        let stmts: Vec<*mut pg_sys::PlannedStmt> = list_of::<pg_sys::Node>((*cscan).custom_private)
            .into_iter()
            .filter(|n| is_a(*n as *const c_void, pg_sys::NodeTag::T_PlannedStmt))
            .map(|n| n as *mut pg_sys::PlannedStmt)
            .collect();
        let n = stmts.len();
        std::ptr::write(&raw mut (*s).stmts, stmts);
        std::ptr::write(&raw mut (*s).qds, vec![std::ptr::null_mut(); n]);
        s as *mut pg_sys::Node
    }
}

/// Drops this scan's registered results and its Vecs when the query's memory goes (at the
/// end, or when an error aborts the statement).
#[pg_guard]
unsafe extern "C-unwind" fn forget(arg: *mut c_void) {
    let owner = arg as usize;
    RESULTS.with(|r| {
        if let Ok(mut r) = r.try_borrow_mut() {
            r.retain(|x| x.owner != owner);
        }
    });
    let s = arg as *mut State;
    // SAFETY: the Vecs were written in create_state and are read no more.
    unsafe {
        drop(std::ptr::read(&raw const (*s).stmts));
        drop(std::ptr::read(&raw const (*s).qds));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn begin(
    node: *mut pg_sys::CustomScanState,
    estate: *mut pg_sys::EState,
    eflags: i32,
) {
    // SAFETY: node is our State; the outer plan is the statement's own.
    unsafe {
        let plan = (*node).ss.ps.plan;
        (*node).ss.ps.lefttree = pg_sys::ExecInitNode((*plan).lefttree, estate, eflags);
        let cb = pg_sys::MemoryContextAlloc(
            (*estate).es_query_cxt,
            std::mem::size_of::<pg_sys::MemoryContextCallback>(),
        ) as *mut pg_sys::MemoryContextCallback;
        (*cb).func = Some(forget);
        (*cb).arg = node as *mut c_void;
        pg_sys::MemoryContextRegisterResetCallback((*estate).es_query_cxt, cb);
    }
}

/// Runs every WITH query into its tuplestore, in order.
unsafe fn run_all(s: *mut State) {
    // SAFETY: our state in the executor's memory; tuplestores and QueryDescs live in the
    // query's memory context.
    unsafe {
        let estate = (*s).css.ss.ps.state;
        let old = pg_sys::MemoryContextSwitchTo((*estate).es_query_cxt);
        let st = &mut *s;
        for i in 0..st.stmts.len() {
            let stmt = st.stmts[i];
            let store = pg_sys::tuplestore_begin_heap(true, false, pg_sys::work_mem);
            let receiver =
                pg_sys::palloc0(std::mem::size_of::<StoreReceiver>()) as *mut StoreReceiver;
            (*receiver).dest =
                super::child::receiver(store_row, pg_sys::CommandDest::DestTuplestore);
            (*receiver).store = store;
            let desc = pg_sys::ExecCleanTypeFromTL(output_list(stmt));
            // Under the statement's snapshot, as PostgreSQL runs its WITH queries: a local
            // table's rows written by one are not seen by the others or by the statement.
            st.qds[i] = super::child::run(stmt, estate, receiver as *mut pg_sys::DestReceiver, 0);
            RESULTS.with(|r| {
                r.borrow_mut().push(Registered {
                    owner: s as usize,
                    k: i as i32 + 1,
                    user: pg_sys::GetUserId(),
                    store,
                    desc,
                })
            });
        }
        pg_sys::MemoryContextSwitchTo(old);
        st.ran = true;
    }
}

/// The columns a statement returns: its plan's visible outputs.
unsafe fn output_list(stmt: *mut pg_sys::PlannedStmt) -> *mut pg_sys::List {
    // SAFETY: reading the plan's target list.
    unsafe {
        let visible: Vec<*mut pg_sys::TargetEntry> =
            list_of::<pg_sys::TargetEntry>((*(*stmt).planTree).targetlist)
                .into_iter()
                .filter(|t| !(**t).resjunk)
                .collect();
        crate::pg::nodes::make_list(&visible)
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn exec(
    node: *mut pg_sys::CustomScanState,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: node is our State; the outer plan state was made in begin.
    unsafe {
        let s = node as *mut State;
        if !(*s).ran {
            run_all(s);
        }
        let outer = (*node).ss.ps.lefttree;
        match (*outer).ExecProcNode {
            // Through the error boundary: an ERROR in the child plan becomes a Rust panic
            // that this guarded function re-raises.
            Some(f) => pgrx::pg_sys::ffi::pg_guard_ffi_boundary(|| f(outer)),
            None => std::ptr::null_mut(),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn rescan(node: *mut pg_sys::CustomScanState) {
    // SAFETY: node is our State; the WITH queries ran once and are not run again.
    unsafe { pg_sys::ExecReScan((*node).ss.ps.lefttree) }
}

#[pg_guard]
unsafe extern "C-unwind" fn end(node: *mut pg_sys::CustomScanState) {
    // SAFETY: node is our State; each resource is released once.
    unsafe {
        let s = &mut *(node as *mut State);
        pg_sys::ExecEndNode((*node).ss.ps.lefttree);
        for qd in s.qds.iter_mut() {
            super::child::end(qd);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn explain(
    node: *mut pg_sys::CustomScanState,
    _ancestors: *mut pg_sys::List,
    es: *mut pg_sys::ExplainState,
) {
    // SAFETY: node is our State; es the live ExplainState.
    unsafe {
        let s = &*(node as *mut State);
        for i in 0..s.stmts.len() {
            super::child::explain(
                s.stmts[i],
                s.qds[i],
                &format!("WITH query {} (runs first, once)", i + 1),
                es,
            );
        }
    }
}

/// `tessera_cte_results(k)`: a copy of the rows of WITH query `k` of the running statement.
#[unsafe(no_mangle)]
#[doc(hidden)]
pub extern "C" fn pg_finfo_tessera_cte_results() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// # Safety
/// Called by PostgreSQL's function manager as a set-returning function.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn tessera_cte_results(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is the caller's; its result info is checked before use; rows are copied
    // into a tuplestore in the per-query memory, which the caller frees.
    unsafe {
        let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
        if !is_a(rsinfo as *const c_void, pg_sys::NodeTag::T_ReturnSetInfo)
            || (*rsinfo).allowedModes & pg_sys::SetFunctionReturnMode::SFRM_Materialize as i32 == 0
            || (*rsinfo).expectedDesc.is_null()
        {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "tessera_cte_results() must be called in FROM with a column list",
            )
            .hint("It is the distributed planner's; do not call it directly.")
            .report();
        }
        let k = (*(*fcinfo).args.as_ptr()).value.value() as i32;
        let user = pg_sys::GetUserId();
        let found = RESULTS.with(|r| {
            r.borrow()
                .iter()
                .rev()
                .find(|x| x.k == k && x.user == user)
                .map(|x| (x.store, x.desc))
        });
        let Some((store, desc)) = found else {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("the rows of WITH query {k} are not available here"),
            )
            .hint("A data-modifying WITH query's rows can be read by the coordinator only: use them in a later WITH query or in the statement's own SELECT, not inside a query that runs on the shards.")
            .report();
        };
        // The rows are read with the columns asked for: they must be the kept ones.
        let expected = (*rsinfo).expectedDesc;
        let same = (*expected).natts == (*desc).natts
            && (0..(*desc).natts as usize).all(|i| {
                let (a, b) = (
                    (*expected).attrs.as_ptr().add(i),
                    (*desc).attrs.as_ptr().add(i),
                );
                (*a).atttypid == (*b).atttypid
            });
        if !same {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!(
                    "the columns asked of tessera_cte_results({k}) are not those of WITH query {k}"
                ),
            )
            .hint("It is the distributed planner's; do not call it directly.")
            .report();
        }
        let old = pg_sys::MemoryContextSwitchTo((*(*rsinfo).econtext).ecxt_per_query_memory);
        let out = pg_sys::tuplestore_begin_heap(true, false, pg_sys::work_mem);
        let slot = pg_sys::MakeSingleTupleTableSlot(desc, &raw const pg_sys::TTSOpsMinimalTuple);
        pg_sys::tuplestore_rescan(store);
        while pg_sys::tuplestore_gettupleslot(store, true, false, slot) {
            pg_sys::tuplestore_puttupleslot(out, slot);
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        (*rsinfo).returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
        (*rsinfo).setResult = out;
        (*rsinfo).setDesc = pg_sys::CreateTupleDescCopy((*rsinfo).expectedDesc);
        pg_sys::MemoryContextSwitchTo(old);
        (*fcinfo).isnull = true;
        pg_sys::Datum::from(0)
    }
}
