//! The planner hook: where a query on distributed tables becomes a distributed plan.
//!
//! Queries that touch no distributed or reference table go to the previous hook (or
//! `standard_planner`) untouched, after one cached lookup per relation
//! (`metadata::cache`). The others are planned by `distributed`:
//!
//! - `analyze`: which distributed tables, at which query level, pinned to which value, joined
//!   on the distribution column or not;
//! - `distributed`: the ladder (the query as it is, then with its subqueries taken out) and the
//!   dispatch by command to `select` and `modify/` (update_delete, insert_values,
//!   insert_select); `tiers` picks the tier and builds the DistPlan, `scan` the CustomScan and
//!   PlannedStmt around it, `query` holds facts of query trees they share;
//! - `single_node`: statements on one distributed schema's tables, whole on its node;
//! - `combine/`: multi-shard SELECTs split into a worker query and a combine query (two-phase
//!   aggregates; the combine query's placeholder FROM item);
//! - `subplans`: subqueries that run first and become parameters of the shard queries;
//!   `on_coordinator`: queries the coordinator finishes over subqueries run first;
//!   `with_first`: statements with data-modifying WITH queries;
//! - `evaluate`: what the coordinator's session defines, evaluated there and sent as parameters;
//! - `deparse`: worker SQL from PostgreSQL's deparser, table references found by its parser.

mod analyze;
mod combine;
mod deparse;
mod deparse_merge;
mod distributed;
mod evaluate;
mod modify;
mod nearest;
mod on_coordinator;
mod policies;
mod query;
mod scan;
mod select;
mod single_node;
mod subplans;
mod tiers;
mod with_first;
pub(crate) use policies::session_user_differs;
pub(crate) use with_first::expr_calls_user_code;

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;

use crate::error::OrReport;
use crate::gucs;
use crate::metadata::cache;

thread_local! {
    /// Depth of `local_only` sections: while positive, every query is planned as a local one.
    static LOCAL_ONLY: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

struct LocalOnly;

impl Drop for LocalOnly {
    fn drop(&mut self) {
        LOCAL_ONLY.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Runs `f` with the distributed planner off: for PostgreSQL's own queries on the
/// coordinator's (empty) tables while a DDL statement on a distributed table runs locally,
/// such as the check of a new foreign key (the shards check their rows themselves).
pub fn local_only<T>(f: impl FnOnce() -> T) -> T {
    LOCAL_ONLY.with(|d| d.set(d.get() + 1));
    let _guard = LocalOnly;
    f()
}

/// The error of a query shape Tessera does not run (yet): 0A000, with what to do instead.
pub(crate) fn unsupported(what: impl Into<String>, hint: &str) -> crate::error::TesseraError {
    crate::error::TesseraError::new(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, what).hint(hint)
}

/// The methods of one of Tessera's CustomScans, by name (`tessera_core::plan::ADAPTIVE_SCAN`,
/// ...), as the executor registered them at load time.
pub(crate) fn scan_methods(name: &std::ffi::CStr) -> *const pg_sys::CustomScanMethods {
    // SAFETY: a lookup in PostgreSQL's registry of custom scan methods; with missing_ok false
    // an unregistered name raises an ERROR instead of returning null.
    unsafe { pg_sys::GetCustomScanMethods(name.as_ptr(), false) }
}

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
    // SAFETY: the hook is called by PostgreSQL with valid arguments.
    unsafe {
        let distributing = gucs::enable_distributed_planner()
            && LOCAL_ONLY.with(|d| d.get()) == 0
            && cache::installed()
            && (*parse).commandType != pg_sys::CmdType::CMD_UTILITY;
        if distributing && analyze::touches_distributed(parse).or_report() {
            return distributed::plan(parse, query_string, cursor_options, bound_params)
                .or_report();
        }
        let stmt = match PREV_PLANNER_HOOK {
            Some(prev) => {
                pg_guard_ffi_boundary(|| prev(parse, query_string, cursor_options, bound_params))
            }
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        };
        if distributing {
            check_local_plan(stmt).or_report();
        }
        stmt
    }
}

/// A plan made for local tables must not scan a distributed one: planning can reach a table
/// the query did not name (a set-returning SQL function inlined into it), and its scan would
/// read the coordinator's empty table.
///
/// # Safety
/// `stmt` is a valid PlannedStmt.
unsafe fn check_local_plan(stmt: *mut pg_sys::PlannedStmt) -> crate::error::TResult<()> {
    // SAFETY: reading the plan's range table.
    unsafe {
        for rte in crate::pg::nodes::list_of::<pg_sys::RangeTblEntry>((*stmt).rtable) {
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION
                || cache::lookup((*rte).relid)?.is_none()
            {
                continue;
            }
            let (schema, name) = crate::pg::nodes::rel_schema_and_name((*rte).relid);
            return Err(crate::error::TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("cannot run a query that reaches the distributed table {schema}.{name} only while it is planned (through an inlined SQL function, or as a partition or inheritance child of a local table)"),
            )
            .hint("Query the distributed table directly; declare such a SQL function VOLATILE (or write it in PL/pgSQL) so that its query is planned on its own."));
        }
    }
    Ok(())
}

/// Stands for the rows of a subquery the planner runs first (`on_coordinator`); the planner puts
/// a Tessera Subquery scan in its place, so it is never called.
#[pg_extern(sql = false)]
fn tessera_subquery_results(_k: i32) -> i32 {
    crate::error::TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        "tessera_subquery_results() is a placeholder of the distributed planner",
    )
    .hint("Do not call it directly.")
    .report()
}

thread_local! {
    /// The estimated rows of the distributed query whose combine query is being planned (see
    /// [`tessera_worker_results_support`]).
    pub(crate) static COMBINE_ROWS: std::cell::Cell<Option<f64>> = const { std::cell::Cell::new(None) };
}

/// The planner support function of `tessera_worker_results()`: its row estimate is the
/// distributed query's (`planner::scan::estimated_rows`), so PostgreSQL plans the combine step
/// (hash or sort, group counts) for the rows the shards will send.
#[pg_extern(sql = false)]
fn tessera_worker_results_support(request: pgrx::Internal) -> pgrx::Internal {
    // SAFETY: the planner passes a support request node; only a SupportRequestRows is written.
    unsafe {
        let Some(datum) = request.unwrap() else {
            return no_answer();
        };
        let node = datum.cast_mut_ptr::<pg_sys::Node>();
        if node.is_null()
            || !crate::pg::nodes::is_a(
                node as *const std::ffi::c_void,
                pg_sys::NodeTag::T_SupportRequestRows,
            )
        {
            return no_answer();
        }
        match COMBINE_ROWS.with(|c| c.get()) {
            Some(rows) => {
                (*(node as *mut pg_sys::SupportRequestRows)).rows = rows;
                pgrx::Internal::from(Some(datum))
            }
            None => no_answer(),
        }
    }
}

/// A support function's "no answer": a null pointer (an SQL NULL is an error).
fn no_answer() -> pgrx::Internal {
    pgrx::Internal::from(Some(pg_sys::Datum::from(0usize)))
}

/// Stands for the rows of a distributed query's tasks in the combine query; the planner puts
/// the Tessera Adaptive scan in its place, so it is never called.
#[pg_extern(sql = false)]
fn tessera_worker_results() -> i32 {
    crate::error::TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        "tessera_worker_results() is a placeholder of the distributed planner",
    )
    .hint("Do not call it directly.")
    .report()
}
