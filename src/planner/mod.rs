//! The planner hook: where a query on distributed tables becomes a distributed plan.
//!
//! Today the hook only chains: every query goes to the previous hook or `standard_planner`.
//! The distributed planner (classification into router / multi-shard tiers, worker SQL, the
//! CustomScan) hangs here.

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;

/// The planner hook that was installed before Tessera's; the only copy of it.
static mut PREV_PLANNER_HOOK: pg_sys::planner_hook_type = None;

pub fn init() {
    // SAFETY: _PG_init runs once per process, before any query is planned.
    unsafe {
        PREV_PLANNER_HOOK = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(tessera_planner);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn tessera_planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: the hook is called by PostgreSQL with valid arguments; we pass them on unchanged.
    unsafe {
        match PREV_PLANNER_HOOK {
            Some(prev) => {
                pg_guard_ffi_boundary(|| prev(parse, query_string, cursor_options, bound_params))
            }
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        }
    }
}
