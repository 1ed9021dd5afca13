//! The plan nodes around a distributed plan: the Tessera Adaptive CustomScan and the
//! PlannedStmt whose whole plan it is.

use pgrx::pg_sys;

use tessera_core::plan::DistPlan;

use crate::pg::nodes::{list_of, make_list};
use crate::planner::analyze::Analysis;
use crate::planner::query::{make_node, sublevel_relations};

/// The CustomScan for `plan`, reading rows shaped like `scan_tlist`.
///
/// # Safety
/// `scan_tlist` is a List of TargetEntry.
pub(crate) unsafe fn custom_scan(
    plan: &DistPlan,
    scan_tlist: *mut pg_sys::List,
    rows: f64,
) -> *mut pg_sys::CustomScan {
    // SAFETY: building plan nodes in the planner's memory context.
    unsafe {
        let cscan = make_node::<pg_sys::CustomScan>(pg_sys::NodeTag::T_CustomScan);
        (*cscan).custom_private = crate::executor::scan_private::new(&plan.encode());
        (*cscan).custom_scan_tlist = scan_tlist;
        (*cscan).methods = super::scan_methods(tessera_core::plan::ADAPTIVE_SCAN);
        (*cscan).scan.scanrelid = 0;
        (*cscan).scan.plan.plan_rows = rows;
        (*cscan).scan.plan.startup_cost = 0.0;
        (*cscan).scan.plan.total_cost = rows * 0.01 + 100.0;
        (*cscan).scan.plan.plan_width = 32;
        cscan
    }
}

/// Target entries that read scan column i+1 (INDEX_VAR) for each entry of `scan_tlist`.
pub(crate) unsafe fn index_var_tlist(scan_tlist: *mut pg_sys::List) -> *mut pg_sys::List {
    let mut out = Vec::new();
    // SAFETY: reading TargetEntries and building Vars.
    unsafe {
        for (i, tle) in list_of::<pg_sys::TargetEntry>(scan_tlist)
            .into_iter()
            .enumerate()
        {
            let expr = (*tle).expr as *mut pg_sys::Node;
            let var = pg_sys::makeVar(
                pg_sys::INDEX_VAR,
                (i + 1) as i16,
                pg_sys::exprType(expr),
                pg_sys::exprTypmod(expr),
                pg_sys::exprCollation(expr),
                0,
            );
            out.push(pg_sys::makeTargetEntry(
                var as *mut pg_sys::Expr,
                (i + 1) as i16,
                (*tle).resname,
                false,
            ));
        }
        make_list(&out)
    }
}

/// The visible target entries of `list`, renumbered from 1.
pub(crate) unsafe fn visible(list: *mut pg_sys::List) -> *mut pg_sys::List {
    let mut out = Vec::new();
    // SAFETY: reading and copying TargetEntries.
    unsafe {
        for tle in list_of::<pg_sys::TargetEntry>(list) {
            if (*tle).resjunk {
                continue;
            }
            out.push(pg_sys::makeTargetEntry(
                (*tle).expr,
                (out.len() + 1) as i16,
                (*tle).resname,
                false,
            ));
        }
        make_list(&out)
    }
}

/// A PlannedStmt whose whole plan is `cscan`.
pub(crate) unsafe fn planned_stmt(
    parse: *mut pg_sys::Query,
    cscan: *mut pg_sys::CustomScan,
    a: &Analysis,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: building the statement from the analyzed Query's parts.
    unsafe {
        let stmt = make_node::<pg_sys::PlannedStmt>(pg_sys::NodeTag::T_PlannedStmt);
        (*stmt).commandType = (*parse).commandType;
        (*stmt).queryId = (*parse).queryId;
        (*stmt).hasReturning = !(*parse).returningList.is_null();
        (*stmt).canSetTag = (*parse).canSetTag;
        (*stmt).planTree = cscan as *mut pg_sys::Plan;
        let mut rtable = list_of::<pg_sys::RangeTblEntry>((*parse).rtable);
        rtable.extend(sublevel_relations(parse));
        (*stmt).rtable = make_list(&rtable);
        #[cfg(not(feature = "pg15"))]
        {
            (*stmt).permInfos = (*parse).rteperminfos;
        }
        let mut relids = Vec::new();
        for r in &a.rtes {
            let oid = r.meta.table.relid;
            if !relids.contains(&oid) {
                relids.push(oid);
            }
        }
        let mut list = std::ptr::null_mut();
        for oid in relids {
            list = pg_sys::lappend_oid(list, oid);
        }
        (*stmt).relationOids = list;
        (*stmt).stmt_location = (*parse).stmt_location;
        (*stmt).stmt_len = (*parse).stmt_len;
        stmt
    }
}

/// The rows a distributed scan returns, for the coordinator's plan: the largest distributed
/// table's row count as the last ANALYZE of its shards left it on the coordinator
/// (`ddl::row_counts`), over one shard group (`one_group`) or all of them, times
/// PostgreSQL's default selectivity of a condition (1/3) when the query filters; `default`
/// while no table of the query has a row count.
///
/// # Safety
/// `parse` is a valid Query.
pub(crate) unsafe fn estimated_rows(
    parse: *mut pg_sys::Query,
    a: &Analysis,
    one_group: bool,
    default: f64,
) -> f64 {
    let mut best: Option<f64> = None;
    for r in &a.rtes {
        // SAFETY: a syscache lookup of a relation the query has locked; the tuple is released
        // before the next one.
        let tuples = unsafe {
            let tuple = pg_sys::SearchSysCache1(
                pg_sys::SysCacheIdentifier::RELOID as std::ffi::c_int,
                pg_sys::Datum::from(r.meta.table.relid),
            );
            if tuple.is_null() {
                continue;
            }
            let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple);
            let t = (*form).reltuples as f64;
            pg_sys::ReleaseSysCache(tuple);
            t
        };
        // Never analyzed (-1), or emptied by the coordinator's own VACUUM of its empty copy
        // (0): no count to go by.
        if tuples <= 0.0 {
            continue;
        }
        let shards = r.meta.shards.len().max(1) as f64;
        let rows = if one_group || r.meta.is_reference() {
            tuples / if r.meta.is_reference() { 1.0 } else { shards }
        } else {
            tuples
        };
        best = Some(best.map_or(rows, |b: f64| b.max(rows)));
    }
    let Some(rows) = best else {
        return default;
    };
    // SAFETY: reading the Query's jointree.
    let filtered = unsafe { !(*parse).jointree.is_null() && !(*(*parse).jointree).quals.is_null() };
    (if filtered { rows / 3.0 } else { rows }).max(1.0).round()
}
