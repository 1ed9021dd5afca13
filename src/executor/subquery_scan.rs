//! The Tessera Subquery scan: the rows of a subquery or CTE the planner planned on its own
//! (`planner::coordinator`), for a query the coordinator finishes itself.
//!
//! The first Exec runs the subquery's PlannedStmt (a distributed query, typically) to the end
//! into a tuplestore (which spills to disk past `work_mem`, as PostgreSQL's own CTE scans do);
//! then each Exec returns its next row, and a rescan reads the tuplestore again.

use std::ffi::{c_void, CStr};

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pg::nodes::{is_a, list_of};

pub const SCAN_NAME: &CStr = tessera_core::plan::SUBQUERY_SCAN;

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

#[repr(C)]
struct State {
    css: pg_sys::CustomScanState,
    stmt: *mut pg_sys::PlannedStmt,
    store: *mut pg_sys::Tuplestorestate,
    /// The subquery's QueryDesc, kept for EXPLAIN ANALYZE.
    qd: *mut pg_sys::QueryDesc,
    /// A slot for the tuplestore's minimal tuples, copied into the (virtual) scan slot.
    read_slot: *mut pg_sys::TupleTableSlot,
    ran: bool,
}

/// A DestReceiver that appends each row to a tuplestore.
#[repr(C)]
pub(super) struct StoreReceiver {
    pub dest: pg_sys::DestReceiver,
    pub store: *mut pg_sys::Tuplestorestate,
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn store_row(
    slot: *mut pg_sys::TupleTableSlot,
    dest: *mut pg_sys::DestReceiver,
) -> bool {
    // SAFETY: dest is our StoreReceiver; the tuplestore copies the row.
    unsafe { pg_sys::tuplestore_puttupleslot((*(dest as *mut StoreReceiver)).store, slot) };
    true
}

/// The subquery's plan in a Tessera Subquery scan.
///
/// # Safety
/// `cscan` is a CustomScan built by `planner::coordinator`.
unsafe fn stmt_of(cscan: *mut pg_sys::CustomScan) -> *mut pg_sys::PlannedStmt {
    // SAFETY: custom_private holds the PlannedStmt.
    unsafe {
        list_of::<pg_sys::Node>((*cscan).custom_private)
            .into_iter()
            .find(|n| is_a(*n as *const c_void, pg_sys::NodeTag::T_PlannedStmt))
            .map_or(std::ptr::null_mut(), |n| n as *mut pg_sys::PlannedStmt)
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn create_state(cscan: *mut pg_sys::CustomScan) -> *mut pg_sys::Node {
    // SAFETY: palloc0 of our state; PostgreSQL fills the CustomScanState part after this.
    unsafe {
        let s = pg_sys::palloc0(std::mem::size_of::<State>()) as *mut State;
        (*s).css.ss.ps.type_ = pg_sys::NodeTag::T_CustomScanState;
        (*s).css.methods = &raw const EXEC_METHODS;
        (*s).stmt = stmt_of(cscan);
        s as *mut pg_sys::Node
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn begin(
    _node: *mut pg_sys::CustomScanState,
    _estate: *mut pg_sys::EState,
    _eflags: i32,
) {
}

/// Runs the subquery into the tuplestore.
unsafe fn run(s: *mut State) {
    // SAFETY: our state in the executor's memory; the tuplestore and QueryDesc live in the
    // query's memory context and are ended in `end`.
    unsafe {
        let estate = (*s).css.ss.ps.state;
        let old = pg_sys::MemoryContextSwitchTo((*estate).es_query_cxt);
        let store = pg_sys::tuplestore_begin_heap(true, false, pg_sys::work_mem);
        let receiver = pg_sys::palloc0(std::mem::size_of::<StoreReceiver>()) as *mut StoreReceiver;
        (*receiver).dest = super::child::receiver(store_row, pg_sys::CommandDest::DestTuplestore);
        (*receiver).store = store;
        let dest = receiver as *mut pg_sys::DestReceiver;
        let desc = (*(*s).css.ss.ss_ScanTupleSlot).tts_tupleDescriptor;
        (*s).read_slot =
            pg_sys::MakeSingleTupleTableSlot(desc, &raw const pg_sys::TTSOpsMinimalTuple);
        // The QueryDesc kept for EXPLAIN ANALYZE lives in the query's memory too.
        (*s).qd = super::child::run((*s).stmt, estate, dest, 0);
        pg_sys::MemoryContextSwitchTo(old);
        (*s).store = store;
        (*s).ran = true;
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn exec(
    node: *mut pg_sys::CustomScanState,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: node is our State.
    unsafe {
        let s = node as *mut State;
        if !(*s).ran {
            run(s);
        }
        pg_sys::ExecScan(&mut (*node).ss, Some(next), Some(recheck))
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn next(ss: *mut pg_sys::ScanState) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: ss is our State's scan state; the tuplestore lives until `end`.
    unsafe {
        let s = ss as *mut State;
        let slot = (*ss).ss_ScanTupleSlot;
        if !pg_sys::tuplestore_gettupleslot((*s).store, true, false, (*s).read_slot) {
            pg_sys::ExecClearTuple(slot);
            return slot;
        }
        // The scan slot is virtual: copy the row into it.
        let copy = (*(*slot).tts_ops).copyslot.expect("every slot type copies");
        // Through the error boundary (copying may detoast, and so raise an ERROR).
        pgrx::pg_sys::ffi::pg_guard_ffi_boundary(|| copy(slot, (*s).read_slot));
        slot
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn recheck(
    _node: *mut pg_sys::ScanState,
    _slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn rescan(node: *mut pg_sys::CustomScanState) {
    // SAFETY: node is our State; the same rows are read again.
    unsafe {
        let s = node as *mut State;
        if !(*s).store.is_null() {
            pg_sys::tuplestore_rescan((*s).store);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn end(node: *mut pg_sys::CustomScanState) {
    // SAFETY: node is our State; each resource is released once.
    unsafe {
        let s = node as *mut State;
        super::child::end(&mut (*s).qd);
        if !(*s).read_slot.is_null() {
            pg_sys::ExecDropSingleTupleTableSlot((*s).read_slot);
            (*s).read_slot = std::ptr::null_mut();
        }
        if !(*s).store.is_null() {
            pg_sys::tuplestore_end((*s).store);
            (*s).store = std::ptr::null_mut();
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
        let s = node as *mut State;
        super::child::explain(
            (*s).stmt,
            (*s).qd,
            "Distributed Subquery (runs first; its rows feed this node)",
            es,
        );
    }
}
