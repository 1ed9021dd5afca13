//! SELECT: router when pinned to one shard group, otherwise multi-shard, with a combine query
//! planned by PostgreSQL on top when aggregates, ORDER BY, LIMIT or DISTINCT need one.

use pgrx::pg_sys;

use tessera_core::plan::{Command, Pin, Tier};

use crate::error::TResult;
use crate::pg::nodes::{list_of, make_list};
use crate::planner::analyze::Analysis;
use crate::planner::combine;
use crate::planner::scan::{custom_scan, estimated_rows, index_var_tlist, planned_stmt, visible};
use crate::planner::tiers::{base_plan, common_pin, multi_shard_blocker, multi_shard_pin};
use crate::planner::unsupported;

pub(crate) unsafe fn plan_select(
    parse: *mut pg_sys::Query,
    a: &Analysis,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading the analyzed Query.
    unsafe {
        let only_reference = a.hash_rtes().next().is_none();
        let pin = if only_reference {
            Some(Pin::Single)
        } else {
            common_pin(a)
        };
        if let Some(pin) = pin {
            let tier = if a.rtes.len() == 1 && !a.has_sublevels && !only_reference {
                Tier::FastPathRouter
            } else {
                Tier::Router
            };
            let mut plan = base_plan(tier, Command::Select, parse, a, pin, true)?;
            plan.nearest = super::nearest::nearest(parse);
            let scan_tlist = visible((*parse).targetList);
            let rows = estimated_rows(parse, a, true, 100.0);
            let cscan = custom_scan(&plan, scan_tlist, rows);
            (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
            return Ok(planned_stmt(parse, cscan, a));
        }
        if !(*parse).rowMarks.is_null() {
            return Err(unsupported(
                "SELECT ... FOR UPDATE/SHARE is only supported when the query is pinned to one distribution value",
                "Add <distribution column> = <value> to the WHERE clause.",
            ));
        }
        if let Some(e) = multi_shard_blocker(a) {
            return Err(e);
        }
        if !(*parse).setOperations.is_null()
            && (combine::needs_combine(parse) || !union_all_of_shard_rows(parse)?)
        {
            // Run on every shard group, an arm that is not a distributed table's rows (a
            // constant, a reference or local table, an aggregate, DISTINCT, LIMIT) would come
            // back once per shard group.
            return Err(unsupported(
                "cannot push this set operation down to the shards: only UNION ALL of plain selections from distributed tables runs on every shard",
                "Run each arm as its own query, or put the set operation in a subquery joined with a distributed table on its distribution column.",
            ));
        }
        if !combine::needs_combine(parse) {
            let plan = base_plan(
                Tier::MultiShard,
                Command::Select,
                parse,
                a,
                multi_shard_pin(a),
                true,
            )?;
            let scan_tlist = visible((*parse).targetList);
            let rows = estimated_rows(parse, a, false, 1000.0);
            let cscan = custom_scan(&plan, scan_tlist, rows);
            (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
            return Ok(planned_stmt(parse, cscan, a));
        }
        if a.has_sublevels {
            return Err(unsupported(
                "cannot combine aggregates, ORDER BY or LIMIT across shards for a query with subqueries, CTEs or sublinks",
                "Pin the query to one distribution value, or move the subquery into a join on the distribution column.",
            ));
        }
        let split = combine::split(parse, a)?;
        let mut plan = base_plan(
            Tier::MultiShard,
            Command::Select,
            split.worker,
            a,
            multi_shard_pin(a),
            true,
        )?;
        plan.notes = split.notes.clone();
        plan.nearest = super::nearest::nearest(split.worker);
        plan.partial_states = split
            .partial_states
            .iter()
            .map(|&(col, agg)| (col, agg.to_u32()))
            .collect();
        let rows = worker_rows(split.worker, a, estimated_rows(parse, a, false, 1000.0));
        let stmt = combine::plan_combine(
            &split,
            &plan,
            rows,
            query_string,
            cursor_options,
            bound_params,
        )?;
        // The combine plan's range table holds only the scan's function; add the user's tables
        // for privilege checks, locking and plan invalidation.
        let mut rtable = list_of::<pg_sys::RangeTblEntry>((*stmt).rtable);
        rtable.extend(
            list_of::<pg_sys::RangeTblEntry>((*parse).rtable)
                .into_iter()
                .filter(|r| (**r).rtekind == pg_sys::RTEKind::RTE_RELATION),
        );
        (*stmt).rtable = make_list(&rtable);
        for r in &a.rtes {
            (*stmt).relationOids = pg_sys::lappend_oid((*stmt).relationOids, r.meta.table.relid);
        }
        (*stmt).queryId = (*parse).queryId;
        (*stmt).stmt_location = (*parse).stmt_location;
        (*stmt).stmt_len = (*parse).stmt_len;
        Ok(stmt)
    }
}

/// The rows the shards send for the combine step, from the table's estimate `table_rows`: one
/// row per shard for an aggregate without GROUP BY, at most PostgreSQL's default group count
/// (200) per shard when grouped, at most the LIMIT per shard when the shards apply one. (The
/// table's own row count there would make the coordinator plan, and JIT-compile, a combine
/// step over a million rows that sees thirty-two.)
///
/// # Safety
/// `worker` is the valid worker Query of the split.
unsafe fn worker_rows(worker: *mut pg_sys::Query, a: &Analysis, table_rows: f64) -> f64 {
    let shards = a
        .hash_rtes()
        .map(|r| r.meta.shards.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    // SAFETY: reading the worker Query's fields.
    unsafe {
        if !(*worker).groupClause.is_null() {
            return table_rows.min(200.0 * shards);
        }
        if (*worker).hasAggs {
            return shards;
        }
        let limit = (*worker).limitCount;
        if !limit.is_null()
            && crate::pg::nodes::is_a(limit as *const std::ffi::c_void, pg_sys::NodeTag::T_Const)
        {
            let c = limit as *mut pg_sys::Const;
            if !(*c).constisnull {
                let n = (*c).constvalue.value() as i64;
                return table_rows.min((n.max(1) as f64) * shards);
            }
        }
        table_rows
    }
}

/// Whether the set operation of `parse` is a UNION ALL whose every arm is a plain selection of
/// rows from a hash-distributed table (no aggregate, grouping, DISTINCT, window function,
/// LIMIT, sublink or WITH): run on each shard group, each arm then gives that group's share of
/// its rows, and the shards' answers together are the whole answer.
///
/// # Safety
/// `parse` is a valid analyzed Query with a set operation.
unsafe fn union_all_of_shard_rows(parse: *mut pg_sys::Query) -> TResult<bool> {
    // SAFETY: walking the set operation tree and the arms' range tables.
    unsafe {
        let mut stack = vec![(*parse).setOperations];
        while let Some(node) = stack.pop() {
            if crate::pg::nodes::is_a(
                node as *const std::ffi::c_void,
                pg_sys::NodeTag::T_SetOperationStmt,
            ) {
                let op = node as *mut pg_sys::SetOperationStmt;
                if (*op).op != pg_sys::SetOperation::SETOP_UNION || !(*op).all {
                    return Ok(false);
                }
                stack.push((*op).larg);
                stack.push((*op).rarg);
                continue;
            }
            if !crate::pg::nodes::is_a(
                node as *const std::ffi::c_void,
                pg_sys::NodeTag::T_RangeTblRef,
            ) {
                return Ok(false);
            }
            let index = (*(node as *mut pg_sys::RangeTblRef)).rtindex;
            let rte = pg_sys::list_nth((*parse).rtable, index - 1) as *mut pg_sys::RangeTblEntry;
            let q = (*rte).subquery;
            if (*rte).rtekind != pg_sys::RTEKind::RTE_SUBQUERY || q.is_null() {
                return Ok(false);
            }
            if (*q).hasAggs
                || !(*q).groupClause.is_null()
                || !(*q).groupingSets.is_null()
                || !(*q).havingQual.is_null()
                || !(*q).distinctClause.is_null()
                || (*q).hasWindowFuncs
                || (*q).hasTargetSRFs
                || (*q).hasSubLinks
                || !(*q).limitCount.is_null()
                || !(*q).limitOffset.is_null()
                || !(*q).cteList.is_null()
                || !(*q).setOperations.is_null()
            {
                return Ok(false);
            }
            let mut distributed = false;
            for r in list_of::<pg_sys::RangeTblEntry>((*q).rtable) {
                if (*r).rtekind == pg_sys::RTEKind::RTE_RELATION {
                    if let Some(meta) = crate::metadata::cache::lookup((*r).relid)? {
                        distributed |= meta.table.kind() == crate::metadata::table::TableKind::Hash;
                    }
                }
            }
            if !distributed {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
