//! The combine query's FROM item: a placeholder function of records PostgreSQL plans like any
//! function scan, whose scan is then swapped for the Tessera Adaptive scan.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;

use tessera_core::plan::DistPlan;

use crate::error::{TResult, TesseraError};
use crate::pg::nodes::{is_a, list_of, make_list, pstrdup};
use crate::planner::combine::aggregates::func_oid;
use crate::planner::combine::Split;
use crate::planner::query::make_node;
use crate::planner::scan::custom_scan;

struct FunctionScanSwap {
    func: pg_sys::Oid,
    cscan: *mut pg_sys::CustomScan,
    done: bool,
}

#[pg_guard]
unsafe extern "C-unwind" fn index_var_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by expression_tree_walker; the Vars of the replaced scan read its tuple.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Var) {
            let v = node as *mut pg_sys::Var;
            if (*v).varno == *(ctx as *mut i32) && (*v).varlevelsup == 0 {
                (*v).varno = pg_sys::INDEX_VAR;
            }
            return false;
        }
        crate::pg::nodes::walk_children(node, Some(index_var_walker), ctx)
    }
}

/// A FROM item that calls the placeholder `func(args)`, a set-returning function of records,
/// with columns `c1..cN` of the given (type, typmod, collation), named `alias`.
///
/// # Safety
/// Builds nodes in the current memory context.
pub(crate) unsafe fn placeholder_rte(
    func: pg_sys::Oid,
    args: *mut pg_sys::List,
    cols: &[(pg_sys::Oid, i32, pg_sys::Oid)],
    alias: &std::ffi::CStr,
) -> *mut pg_sys::RangeTblEntry {
    // SAFETY: building a range table entry and its function.
    unsafe {
        let fexpr = pg_sys::makeFuncExpr(
            func,
            pg_sys::RECORDOID,
            args,
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
        );
        (*fexpr).funcretset = true;
        let rtf = make_node::<pg_sys::RangeTblFunction>(pg_sys::NodeTag::T_RangeTblFunction);
        (*rtf).funcexpr = fexpr as *mut pg_sys::Node;
        (*rtf).funccolcount = cols.len() as i32;
        let (mut names, mut types, mut typmods, mut colls) = (
            Vec::new(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        for (i, (t, m, c)) in cols.iter().enumerate() {
            names.push(pg_sys::makeString(pstrdup(&format!("c{}", i + 1))));
            types = pg_sys::lappend_oid(types, *t);
            typmods = pg_sys::lappend_int(typmods, *m);
            colls = pg_sys::lappend_oid(colls, *c);
        }
        (*rtf).funccolnames = make_list(&names);
        (*rtf).funccoltypes = types;
        (*rtf).funccoltypmods = typmods;
        (*rtf).funccolcollations = colls;
        let rte = make_node::<pg_sys::RangeTblEntry>(pg_sys::NodeTag::T_RangeTblEntry);
        (*rte).rtekind = pg_sys::RTEKind::RTE_FUNCTION;
        (*rte).functions = make_list(&[rtf]);
        (*rte).inFromCl = true;
        (*rte).eref = pg_sys::makeAlias(alias.as_ptr(), make_list(&names));
        (*rte).alias = pg_sys::makeAlias(alias.as_ptr(), std::ptr::null_mut());
        rte
    }
}

/// Puts the CustomScan `c` in the place of `f`, the FunctionScan of a placeholder that
/// PostgreSQL's planner planned: `f`'s costs, projection and filter (reading the scan tuple as
/// INDEX_VAR from now on), and scan columns that are the function's columns (Vars of its range
/// table entry, which EXPLAIN names).
///
/// # Safety
/// `c` and `f` are plan nodes being built; `f` scans a function of [`placeholder_rte`].
pub(crate) unsafe fn take_place_of(
    c: *mut pg_sys::CustomScan,
    f: *mut pg_sys::FunctionScan,
) -> *mut pg_sys::Plan {
    // SAFETY: editing plan nodes of a plan being built.
    unsafe {
        let mut scanrelid = (*f).scan.scanrelid as i32;
        let p = &mut (*c).scan.plan;
        let from = &(*f).scan.plan;
        p.startup_cost = from.startup_cost;
        p.total_cost = from.total_cost;
        p.plan_rows = from.plan_rows;
        p.plan_width = from.plan_width;
        p.plan_node_id = from.plan_node_id;
        p.parallel_safe = false;
        p.targetlist = from.targetlist;
        p.qual = from.qual;
        p.initPlan = from.initPlan;
        p.extParam = from.extParam;
        p.allParam = from.allParam;
        let ctx = &mut scanrelid as *mut i32 as *mut c_void;
        // Through the error boundary (the walker is guarded).
        pg_guard_ffi_boundary(|| index_var_walker(p.targetlist as *mut pg_sys::Node, ctx));
        pg_guard_ffi_boundary(|| index_var_walker(p.qual as *mut pg_sys::Node, ctx));
        let rtf = *list_of::<pg_sys::RangeTblFunction>((*f).functions)
            .first()
            .expect("a placeholder's scan has its function");
        let types = oids((*rtf).funccoltypes);
        let typmods = ints((*rtf).funccoltypmods);
        let colls = oids((*rtf).funccolcollations);
        let mut tlist = Vec::with_capacity(types.len());
        for (i, t) in types.iter().enumerate() {
            let v = pg_sys::makeVar(
                scanrelid,
                (i + 1) as i16,
                *t,
                typmods.get(i).copied().unwrap_or(-1),
                colls.get(i).copied().unwrap_or(pg_sys::InvalidOid),
                0,
            );
            tlist.push(pg_sys::makeTargetEntry(
                v as *mut pg_sys::Expr,
                (i + 1) as i16,
                pstrdup(&format!("c{}", i + 1)),
                false,
            ));
        }
        (*c).custom_scan_tlist = make_list(&tlist);
        (*c).scan.scanrelid = 0;
        c as *mut pg_sys::Plan
    }
}

unsafe fn oids(list: *mut pg_sys::List) -> Vec<pg_sys::Oid> {
    // SAFETY: reading an OID list.
    unsafe {
        let n = if list.is_null() { 0 } else { (*list).length };
        (0..n).map(|i| pg_sys::list_nth_oid(list, i)).collect()
    }
}

unsafe fn ints(list: *mut pg_sys::List) -> Vec<i32> {
    // SAFETY: reading an int list.
    unsafe {
        let n = if list.is_null() { 0 } else { (*list).length };
        (0..n).map(|i| pg_sys::list_nth_int(list, i)).collect()
    }
}

/// Replaces the FunctionScan of `tessera_worker_results()` below `plan` by the CustomScan.
unsafe fn swap(plan: *mut pg_sys::Plan, s: &mut FunctionScanSwap) -> *mut pg_sys::Plan {
    if plan.is_null() {
        return plan;
    }
    // SAFETY: walking and editing a plan tree just made by standard_planner.
    unsafe {
        if is_a(plan as *const c_void, pg_sys::NodeTag::T_FunctionScan) {
            let f = plan as *mut pg_sys::FunctionScan;
            let ours = list_of::<pg_sys::RangeTblFunction>((*f).functions)
                .first()
                .is_some_and(|rtf| {
                    let e = (**rtf).funcexpr;
                    is_a(e as *const c_void, pg_sys::NodeTag::T_FuncExpr)
                        && (*(e as *mut pg_sys::FuncExpr)).funcid == s.func
                });
            if ours {
                s.done = true;
                return take_place_of(s.cscan, f);
            }
            return plan;
        }
        (*plan).lefttree = swap((*plan).lefttree, s);
        (*plan).righttree = swap((*plan).righttree, s);
        plan
    }
}

/// Plans the combine query with PostgreSQL's planner, then swaps in the Tessera scan, which
/// is estimated to return `rows`.
///
/// # Safety
/// The planner hook's arguments; `split` comes from [`split`].
pub(crate) unsafe fn plan_combine(
    split: &Split,
    plan: &DistPlan,
    rows: f64,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: building the combine Query's FROM item and planning it.
    unsafe {
        let func = func_oid("tessera_worker_results", &[]);
        if func == pg_sys::InvalidOid {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
                "function pg_catalog.tessera_worker_results() is missing",
            )
            .hint("Update the extension: ALTER EXTENSION tessera UPDATE."));
        }
        let mut cols = crate::planner::on_coordinator::columns(split.worker);
        for &(col, _) in &split.partial_states {
            cols[col] = (pg_sys::INTERNALOID, -1, pg_sys::InvalidOid);
        }
        let rte = placeholder_rte(func, std::ptr::null_mut(), &cols, c"worker_results");
        let c = split.combine;
        (*c).rtable = make_list(&[rte]);
        #[cfg(not(feature = "pg15"))]
        {
            (*c).rteperminfos = std::ptr::null_mut();
        }
        (*c).cteList = std::ptr::null_mut();
        (*c).rowMarks = std::ptr::null_mut();
        let rtr = make_node::<pg_sys::RangeTblRef>(pg_sys::NodeTag::T_RangeTblRef);
        (*rtr).rtindex = 1;
        (*c).jointree = pg_sys::makeFromExpr(make_list(&[rtr]), std::ptr::null_mut());
        let before = crate::planner::COMBINE_ROWS.with(|r| r.replace(Some(rows)));
        let stmt = pg_sys::standard_planner(c, query_string, cursor_options, bound_params);
        crate::planner::COMBINE_ROWS.with(|r| r.set(before));
        let mut s = FunctionScanSwap {
            func,
            cscan: custom_scan(plan, std::ptr::null_mut(), rows),
            done: false,
        };
        (*stmt).planTree = swap((*stmt).planTree, &mut s);
        if !s.done {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "cannot combine the shards' rows of this query on the coordinator",
            )
            .hint("Pin the query to one distribution value, or move the aggregates into a subquery grouped by the distribution column."));
        }
        Ok(stmt)
    }
}
