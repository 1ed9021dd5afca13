//! Multi-shard SELECTs that need work on the coordinator: a worker query and a combine query.
//!
//! [`split`] cuts a query in two:
//!
//! - grouped by a distribution column (or with no aggregates at all): the workers run the whole
//!   query per shard group, with ORDER BY and LIMIT (count + offset) so each sends only its
//!   top rows; the combine query sorts, limits and de-duplicates again;
//! - otherwise aggregates run in two phases: the workers group by the GROUP BY keys and compute
//!   partial aggregates, the combine query groups again and combines them, then applies HAVING,
//!   ORDER BY, LIMIT. The common built-in aggregates have cheap combine steps of their own
//!   (count, sum, min/max, bool_and/or, bit_and/or, string_agg, array_agg; avg as sum and
//!   count: `tessera_count_combine`, `tessera_avg_combine`, ... in sql/functions.sql); every
//!   other aggregate with a combine function goes through PostgreSQL's partial aggregation
//!   (`tessera_partial_agg` on the workers, `tessera_combine_agg` on the coordinator:
//!   executor/partial_agg.rs);
//! - when an aggregate cannot be combined (no combine function, ORDER BY or DISTINCT with
//!   FILTER in the call, an ordered-set aggregate) the workers send the aggregates' arguments
//!   row by row and the combine query runs the aggregates itself (Citus's row-gather).
//!
//! The combine query reads `tessera_worker_results()` as its only FROM item and is planned by
//! PostgreSQL's own planner (so sort, hash aggregate, limit are PostgreSQL's); [`plan_combine`]
//! then puts the Tessera Adaptive scan where that function's scan is.
//!
//! - this file: whether a query needs a combine step, and the split of one grouped by a
//!   distribution column (pushed down whole);
//! - `aggregates`: two-phase aggregates (partial on the workers, combined on the coordinator);
//! - `placeholder`: the combine query's FROM item, planned by PostgreSQL, and the swap of its
//!   scan for the Tessera Adaptive scan.

mod aggregates;
mod placeholder;
mod windows;

pub(crate) use aggregates::func_oid;
use aggregates::two_phase;
pub(crate) use placeholder::{placeholder_rte, plan_combine, take_place_of};

use std::ffi::c_void;

use pgrx::pg_sys;

use crate::error::TResult;
use crate::pg::nodes::{is_a, list_of, make_list};
use crate::planner::analyze::Analysis;
use crate::planner::unsupported;

/// An expression mutator callback (PostgreSQL's `expression_tree_mutator` contract).
pub(crate) type MutatorFn =
    unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut c_void) -> *mut pg_sys::Node;

/// `expression_tree_mutator` across PostgreSQL versions.
///
/// # Safety
/// `node` is a valid expression tree; `f` follows the mutator contract for `ctx`.
pub(crate) unsafe fn mutate(
    node: *mut pg_sys::Node,
    f: MutatorFn,
    ctx: *mut c_void,
) -> *mut pg_sys::Node {
    // SAFETY: PostgreSQL 15's binding declares the callback without arguments; the C function
    // calls it with (node, context), which is `MutatorFn`'s signature.
    #[cfg(feature = "pg15")]
    unsafe {
        pg_sys::expression_tree_mutator(
            node,
            Some(std::mem::transmute::<
                MutatorFn,
                unsafe extern "C-unwind" fn() -> *mut pg_sys::Node,
            >(f)),
            ctx,
        )
    }
    // SAFETY: as above, with the typed callback of later versions.
    #[cfg(not(feature = "pg15"))]
    unsafe {
        pg_sys::expression_tree_mutator_impl(node, Some(f), ctx)
    }
}

/// Whether a multi-shard SELECT needs a combine step on the coordinator.
///
/// # Safety
/// `q` is a valid Query.
pub(crate) unsafe fn needs_combine(q: *mut pg_sys::Query) -> bool {
    // SAFETY: reading Query fields.
    unsafe {
        (*q).hasAggs
            || !(*q).groupClause.is_null()
            || !(*q).havingQual.is_null()
            || !(*q).sortClause.is_null()
            || !(*q).limitCount.is_null()
            || !(*q).limitOffset.is_null()
            || !(*q).distinctClause.is_null()
            || (*q).hasWindowFuncs
            || (*q).hasTargetSRFs
            || !(*q).groupingSets.is_null()
    }
}

/// The two halves of a multi-shard SELECT.
pub(crate) struct Split {
    pub worker: *mut pg_sys::Query,
    pub combine: *mut pg_sys::Query,
    pub notes: Vec<String>,
    /// Worker columns (0-based) that hold partial aggregate states, with their aggregate: the
    /// combine query reads them as `internal` (see `DistPlan::partial_states`).
    pub partial_states: Vec<(usize, pg_sys::Oid)>,
}

pub(crate) unsafe fn strip(mut n: *mut pg_sys::Node) -> *mut pg_sys::Node {
    // SAFETY: following RelabelType args of a valid tree.
    unsafe {
        while is_a(n as *const c_void, pg_sys::NodeTag::T_RelabelType) {
            n = (*(n as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
    }
    n
}

/// Whether `expr` is the distribution column of a top-level hash-distributed table.
pub(crate) unsafe fn is_dist_col(expr: *mut pg_sys::Node, a: &Analysis) -> bool {
    // SAFETY: reading a valid expression.
    unsafe {
        let n = strip(expr);
        if !is_a(n as *const c_void, pg_sys::NodeTag::T_Var) {
            return false;
        }
        let v = n as *mut pg_sys::Var;
        (*v).varlevelsup == 0
            && a.hash_rtes().any(|r| {
                r.outermost
                    && r.rti == (*v).varno as u32
                    && r.meta.table.dist_attnum == (*v).varattno
            })
    }
}

/// The target entry a SortGroupClause points at.
unsafe fn tle_for(
    sgc: *mut pg_sys::SortGroupClause,
    tlist: *mut pg_sys::List,
) -> Option<*mut pg_sys::TargetEntry> {
    // SAFETY: reading TargetEntries.
    unsafe {
        list_of::<pg_sys::TargetEntry>(tlist)
            .into_iter()
            .find(|t| (**t).ressortgroupref == (*sgc).tleSortGroupRef)
    }
}

pub(crate) unsafe fn grouped_by_dist_col(q: *mut pg_sys::Query, a: &Analysis) -> bool {
    // SAFETY: reading the Query's GROUP BY.
    unsafe {
        list_of::<pg_sys::SortGroupClause>((*q).groupClause)
            .into_iter()
            .filter_map(|s| tle_for(s, (*q).targetList))
            .any(|t| is_dist_col((*t).expr as *mut pg_sys::Node, a))
    }
}

unsafe fn windows_partitioned_by_dist_col(q: *mut pg_sys::Query, a: &Analysis) -> bool {
    // SAFETY: reading the Query's WINDOW clauses.
    unsafe {
        list_of::<pg_sys::WindowClause>((*q).windowClause)
            .into_iter()
            .all(|w| {
                list_of::<pg_sys::SortGroupClause>((*w).partitionClause)
                    .into_iter()
                    .filter_map(|s| tle_for(s, (*q).targetList))
                    .any(|t| is_dist_col((*t).expr as *mut pg_sys::Node, a))
            })
    }
}

/// A deep copy of a node tree, in the current memory context.
///
/// # Safety
/// `p` is null or a valid node.
pub(crate) unsafe fn copy<T>(p: *mut T) -> *mut T {
    // SAFETY: copyObject of a valid node (or null), as the caller promises.
    unsafe { pg_sys::copyObjectImpl(p as *const c_void) as *mut T }
}

pub(crate) unsafe fn var(varno: i32, attno: usize, expr: *mut pg_sys::Node) -> *mut pg_sys::Expr {
    // SAFETY: reading the type of a valid expression; makeVar allocates.
    unsafe {
        pg_sys::makeVar(
            varno,
            attno as i16,
            pg_sys::exprType(expr),
            pg_sys::exprTypmod(expr),
            pg_sys::exprCollation(expr),
            0,
        ) as *mut pg_sys::Expr
    }
}

unsafe fn int8_const(v: i64) -> *mut pg_sys::Node {
    // SAFETY: makeConst of a by-value int8.
    unsafe {
        pg_sys::makeConst(
            pg_sys::INT8OID,
            -1,
            pg_sys::InvalidOid,
            8,
            pg_sys::Datum::from(v),
            false,
            true,
        ) as *mut pg_sys::Node
    }
}

/// `l <op> r` for two int8 expressions, with the operator and its function by OID.
unsafe fn int8_op(
    op: u32,
    func: u32,
    l: *mut pg_sys::Node,
    r: *mut pg_sys::Node,
) -> *mut pg_sys::Node {
    // SAFETY: make_opclause allocates an OpExpr over the two valid expressions.
    unsafe {
        let e = pg_sys::make_opclause(
            pg_sys::Oid::from(op),
            pg_sys::INT8OID,
            false,
            l as *mut pg_sys::Expr,
            r as *mut pg_sys::Expr,
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
        ) as *mut pg_sys::OpExpr;
        (*e).opfuncid = pg_sys::Oid::from(func);
        e as *mut pg_sys::Node
    }
}

/// `LEAST(a, b)` or `GREATEST(a, b)` of two int8 expressions.
unsafe fn int8_min_max(
    op: pg_sys::MinMaxOp::Type,
    a: *mut pg_sys::Node,
    b: *mut pg_sys::Node,
) -> *mut pg_sys::Node {
    // SAFETY: a zeroed MinMaxExpr in the current memory context, filled in.
    unsafe {
        let m =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::MinMaxExpr>()) as *mut pg_sys::MinMaxExpr;
        (*m).xpr.type_ = pg_sys::NodeTag::T_MinMaxExpr;
        (*m).minmaxtype = pg_sys::INT8OID;
        (*m).op = op;
        (*m).args = make_list(&[a, b]);
        (*m).location = -1;
        m as *mut pg_sys::Node
    }
}

/// `count + offset` that never overflows: `LEAST(count, max - GREATEST(offset, 0)) +
/// GREATEST(offset, 0)`. A NULL count (no limit) gives a limit no shard reaches; a NULL or
/// negative offset counts as 0 (the coordinator reports a negative one).
unsafe fn saturating_sum(count: *mut pg_sys::Node, offset: *mut pg_sys::Node) -> *mut pg_sys::Node {
    /// `+(int8, int8)`, `-(int8, int8)` and their functions (fixed OIDs of the catalog).
    const INT8_PLUS: (u32, u32) = (684, 463);
    const INT8_MINUS: (u32, u32) = (685, 464);
    // SAFETY: building expressions over valid ones.
    unsafe {
        let off = || int8_min_max(pg_sys::MinMaxOp::IS_GREATEST, copy(offset), int8_const(0));
        let room = int8_op(INT8_MINUS.0, INT8_MINUS.1, int8_const(i64::MAX), off());
        let count = int8_min_max(pg_sys::MinMaxOp::IS_LEAST, count, room);
        int8_op(INT8_PLUS.0, INT8_PLUS.1, count, off())
    }
}

pub(crate) unsafe fn const_int8(n: *mut pg_sys::Node) -> Option<i64> {
    // SAFETY: folding a copy of a LIMIT/OFFSET expression (`LIMIT 2` is int8(2) after parse
    // analysis), then reading the Const.
    unsafe {
        if n.is_null() {
            return None;
        }
        let n = pg_sys::eval_const_expressions(std::ptr::null_mut(), copy(n));
        if !is_a(n as *const c_void, pg_sys::NodeTag::T_Const) {
            return None;
        }
        let c = n as *mut pg_sys::Const;
        if (*c).constisnull || (*c).consttype != pg_sys::INT8OID {
            return None;
        }
        Some((*c).constvalue.value() as i64)
    }
}

/// Splits a multi-shard SELECT into the worker query and the combine query.
///
/// # Safety
/// `parse` is a valid analyzed SELECT with every distributed table at the top level.
pub(crate) unsafe fn split(parse: *mut pg_sys::Query, a: &Analysis) -> TResult<Split> {
    // SAFETY: reading and copying a valid Query.
    unsafe {
        // GROUPING SETS, CUBE and ROLLUP: the shards group by every column of every set (the
        // finest groups), the coordinator combines those into each set's groups. Even with
        // the distribution column among the keys, a set without it spans shards.
        let by_dist = (*parse).groupingSets.is_null() && grouped_by_dist_col(parse, a);
        let aggregates =
            (*parse).hasAggs || !(*parse).groupClause.is_null() || !(*parse).havingQual.is_null();
        // DISTINCT ON runs on each shard group and again over their rows, in the query's
        // order: a value's first row overall is the first row of the shard that holds it, and
        // with a LIMIT n each shard's first n values hold the first n overall (a value ahead
        // of another's first row in a shard is ahead of it overall too). Over aggregates
        // combined on the coordinator or windows computed there, the shards' rows are not the
        // final ones.
        if (*parse).hasDistinctOn
            && ((aggregates && !by_dist)
                || ((*parse).hasWindowFuncs && !windows_partitioned_by_dist_col(parse, a)))
        {
            return Err(unsupported(
                "DISTINCT ON over aggregates or window functions computed on the coordinator is not supported across shards",
                "Group (or partition the windows) by the distribution column, pin the query to one distribution value, or put the aggregate query in a subquery.",
            ));
        }
        // Window functions not partitioned by the distribution column see rows of every shard:
        // the coordinator computes them, over the shards' rows (no aggregates), over the
        // groups the shards finished (grouped by the distribution column), or over the
        // aggregates it combines (two phases).
        if (*parse).hasWindowFuncs
            && !windows_partitioned_by_dist_col(parse, a)
            && (!aggregates || by_dist)
        {
            return windows::split(parse);
        }
        if !aggregates || by_dist {
            return push_down(parse, by_dist);
        }
        if (*parse).hasTargetSRFs {
            return Err(unsupported(
                "set-returning functions in the select list of an aggregate query are not supported across shards",
                "Group by the distribution column, or move the function into a subquery.",
            ));
        }
        two_phase(parse)
    }
}

/// Each shard query of `parse` (its worker query `w`) returns at most LIMIT + OFFSET rows
/// when the query's order decides which rows those are (or it has no DISTINCT).
///
/// # Safety
/// `parse` and `w` are valid Queries, `w` a copy of `parse`.
pub(crate) unsafe fn limit_shards(parse: *mut pg_sys::Query, w: *mut pg_sys::Query) {
    // SAFETY: reading and editing the Queries.
    unsafe {
        // Each shard sends at most count + offset rows (computed by the shard when either
        // is a parameter).
        let count = const_int8((*parse).limitCount);
        let offset = if (*parse).limitOffset.is_null() {
            Some(0)
        } else {
            const_int8((*parse).limitOffset)
        };
        let limited = !(*parse).limitCount.is_null()
            && (!(*parse).sortClause.is_null() || (*parse).distinctClause.is_null());
        (*w).limitCount = match (count, offset) {
            _ if !limited => std::ptr::null_mut(),
            (Some(c), Some(o)) => int8_const(c.saturating_add(o)),
            // A parameter (`LIMIT $2`, `OFFSET $3`): the shards compute count + offset
            // themselves, without overflow (`LIMIT 9223372036854775807 OFFSET 5`).
            (_, Some(0)) => copy((*parse).limitCount),
            _ => saturating_sum(copy((*parse).limitCount), copy((*parse).limitOffset)),
        };
        (*w).limitOffset = std::ptr::null_mut();
    }
}

/// The whole query on every shard group; the combine query re-sorts, limits, de-duplicates.
unsafe fn push_down(parse: *mut pg_sys::Query, by_dist: bool) -> TResult<Split> {
    // SAFETY: copying and editing Query trees.
    unsafe {
        let w = copy(parse);
        let mut wt = Vec::new();
        for tle in list_of::<pg_sys::TargetEntry>((*w).targetList) {
            (*tle).resjunk = false;
            wt.push(tle);
        }
        limit_shards(parse, w);
        let c = copy(parse);
        let mut ct = Vec::new();
        for (i, tle) in list_of::<pg_sys::TargetEntry>((*parse).targetList)
            .into_iter()
            .enumerate()
        {
            let e = var(1, i + 1, (*tle).expr as *mut pg_sys::Node);
            let n = pg_sys::makeTargetEntry(e, (*tle).resno, (*tle).resname, (*tle).resjunk);
            (*n).ressortgroupref = (*tle).ressortgroupref;
            ct.push(n);
        }
        (*c).targetList = make_list(&ct);
        (*c).groupClause = std::ptr::null_mut();
        (*c).havingQual = std::ptr::null_mut();
        (*c).hasAggs = false;
        (*c).hasWindowFuncs = false;
        (*c).windowClause = std::ptr::null_mut();
        (*c).hasTargetSRFs = false;
        let mut notes = vec!["the whole query runs on every shard group".to_string()];
        if by_dist {
            notes.push(
                "grouped by the distribution column: aggregates are final on the workers".into(),
            );
        }
        Ok(Split {
            worker: w,
            combine: c,
            notes,
            partial_states: Vec::new(),
        })
    }
}
