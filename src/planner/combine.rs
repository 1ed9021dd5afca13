//! Multi-shard SELECTs that need work on the coordinator: a worker query and a combine query.
//!
//! [`split`] cuts a query in two:
//!
//! - grouped by a distribution column (or with no aggregates at all): the workers run the whole
//!   query per shard group, with ORDER BY and LIMIT (count + offset) so each sends only its
//!   top rows; the combine query sorts, limits and de-duplicates again;
//! - otherwise aggregates run in two phases: the workers group by the GROUP BY keys and compute
//!   partial aggregates (count, sum, min/max, bool_and/or, string_agg, array_agg; avg as sum and
//!   count); the combine query groups again and combines them (`tessera_count_combine`,
//!   `tessera_avg_combine`, ... in sql/functions.sql), then applies HAVING, ORDER BY, LIMIT.
//!
//! The combine query reads `tessera_worker_results()` as its only FROM item and is planned by
//! PostgreSQL's own planner (so sort, hash aggregate, limit are PostgreSQL's); [`plan_combine`]
//! then puts the Tessera Adaptive scan where that function's scan is.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::prelude::*;

use tessera_core::plan::DistPlan;

use super::analyze::Analysis;
use super::query::make_node;
use super::scan::custom_scan;
use crate::error::{TResult, TesseraError};
use crate::pg::nodes::{is_a, list_of, make_list, pstrdup, string};
use crate::planner::unsupported;

/// An expression mutator callback (PostgreSQL's `expression_tree_mutator` contract).
pub type MutatorFn =
    unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut c_void) -> *mut pg_sys::Node;

/// `expression_tree_mutator` across PostgreSQL versions.
///
/// # Safety
/// `node` is a valid expression tree; `f` follows the mutator contract for `ctx`.
pub unsafe fn mutate(node: *mut pg_sys::Node, f: MutatorFn, ctx: *mut c_void) -> *mut pg_sys::Node {
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
pub unsafe fn needs_combine(q: *mut pg_sys::Query) -> bool {
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
pub struct Split {
    pub worker: *mut pg_sys::Query,
    pub combine: *mut pg_sys::Query,
    pub notes: Vec<String>,
}

pub(super) unsafe fn strip(mut n: *mut pg_sys::Node) -> *mut pg_sys::Node {
    // SAFETY: following RelabelType args of a valid tree.
    unsafe {
        while is_a(n as *const c_void, pg_sys::NodeTag::T_RelabelType) {
            n = (*(n as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
    }
    n
}

/// Whether `expr` is the distribution column of a top-level hash-distributed table.
pub(super) unsafe fn is_dist_col(expr: *mut pg_sys::Node, a: &Analysis) -> bool {
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

pub(super) unsafe fn grouped_by_dist_col(q: *mut pg_sys::Query, a: &Analysis) -> bool {
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

fn copy<T>(p: *mut T) -> *mut T {
    // SAFETY: copyObject of a valid node (or null).
    unsafe { pg_sys::copyObjectImpl(p as *const c_void) as *mut T }
}

unsafe fn var(varno: i32, attno: usize, expr: *mut pg_sys::Node) -> *mut pg_sys::Expr {
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

unsafe fn const_int8(n: *mut pg_sys::Node) -> Option<i64> {
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
pub unsafe fn split(parse: *mut pg_sys::Query, a: &Analysis) -> TResult<Split> {
    // SAFETY: reading and copying a valid Query.
    unsafe {
        if !(*parse).groupingSets.is_null() {
            return Err(unsupported(
                "GROUPING SETS, CUBE and ROLLUP are not supported across shards",
                "Group by the distribution column, or pin the query to one distribution value.",
            ));
        }
        if (*parse).hasDistinctOn {
            return Err(unsupported(
                "DISTINCT ON is not supported across shards",
                "Pin the query to one distribution value, or use GROUP BY.",
            ));
        }
        let by_dist = grouped_by_dist_col(parse, a);
        if (*parse).hasWindowFuncs && !windows_partitioned_by_dist_col(parse, a) {
            return Err(unsupported(
                "window functions across shards must be partitioned by the distribution column",
                "Add the distribution column to PARTITION BY, or pin the query to one distribution value.",
            ));
        }
        let aggregates =
            (*parse).hasAggs || !(*parse).groupClause.is_null() || !(*parse).havingQual.is_null();
        if (*parse).hasWindowFuncs && aggregates && !by_dist {
            return Err(unsupported(
                "window functions over aggregates across shards need GROUP BY the distribution column",
                "Group by the distribution column, or pin the query to one distribution value.",
            ));
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
        // Each shard sends at most count + offset rows when both are constants.
        let count = const_int8((*parse).limitCount);
        let offset = if (*parse).limitOffset.is_null() {
            Some(0)
        } else {
            const_int8((*parse).limitOffset)
        };
        match (count, offset) {
            (Some(c), Some(o))
                if !(*parse).sortClause.is_null() || (*parse).distinctClause.is_null() =>
            {
                (*w).limitCount = int8_const(c.saturating_add(o));
                (*w).limitOffset = std::ptr::null_mut();
            }
            _ => {
                (*w).limitCount = std::ptr::null_mut();
                (*w).limitOffset = std::ptr::null_mut();
            }
        }
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
        })
    }
}

struct TwoPhase {
    /// (GROUP BY expression of the user's query, its column in the worker query).
    groups: Vec<(*mut pg_sys::Node, usize)>,
    /// The worker query's target entries.
    worker: Vec<*mut pg_sys::TargetEntry>,
    /// GROUP BY items the worker query adds (the arguments of DISTINCT aggregates).
    extra_groups: Vec<*mut pg_sys::SortGroupClause>,
    /// The last sort/group reference used in the worker query.
    last_ref: u32,
    error: Option<TesseraError>,
}

pub(super) fn func_oid(name: &str, args: &[pg_sys::Oid]) -> pg_sys::Oid {
    // SAFETY: a name lookup in pg_catalog; the name list is built in the current context.
    unsafe {
        let schema = pg_sys::makeString(pstrdup("pg_catalog"));
        let func = pg_sys::makeString(pstrdup(name));
        pg_sys::LookupFuncName(
            make_list(&[schema, func]),
            args.len() as i32,
            args.as_ptr(),
            true,
        )
    }
}

/// A plain aggregate call `fnoid(args)` with the given result type.
unsafe fn aggref(
    fnoid: pg_sys::Oid,
    aggtype: pg_sys::Oid,
    args: Vec<*mut pg_sys::Node>,
    like: *mut pg_sys::Aggref,
) -> *mut pg_sys::Aggref {
    // SAFETY: building an Aggref node; `like` is a valid Aggref to take collations from.
    unsafe {
        let a = make_node::<pg_sys::Aggref>(pg_sys::NodeTag::T_Aggref);
        (*a).aggfnoid = fnoid;
        (*a).aggtype = aggtype;
        (*a).aggcollid = (*like).aggcollid;
        (*a).inputcollid = (*like).inputcollid;
        let mut types = std::ptr::null_mut();
        let mut tles = Vec::new();
        for (i, e) in args.iter().enumerate() {
            types = pg_sys::lappend_oid(types, pg_sys::exprType(*e));
            tles.push(pg_sys::makeTargetEntry(
                *e as *mut pg_sys::Expr,
                (i + 1) as i16,
                std::ptr::null_mut(),
                false,
            ));
        }
        (*a).aggargtypes = types;
        (*a).args = make_list(&tles);
        (*a).aggkind = b'n' as std::ffi::c_char;
        (*a).aggsplit = pg_sys::AggSplit::AGGSPLIT_SIMPLE;
        (*a).aggno = -1;
        (*a).aggtransno = -1;
        (*a).location = -1;
        a
    }
}

impl TwoPhase {
    /// `agg(DISTINCT x)`: the workers group by x too (so each sends every distinct x of its
    /// groups once, and partial aggregates are per (keys, x), which still add up), and the
    /// coordinator runs the DISTINCT aggregate over those x.
    unsafe fn distinct_agg(&mut self, agg: *mut pg_sys::Aggref) -> *mut pg_sys::Node {
        // SAFETY: copying the Aggref and building worker columns and GROUP BY items.
        unsafe {
            let c = copy(agg);
            for tle in list_of::<pg_sys::TargetEntry>((*c).args) {
                let expr = (*tle).expr as *mut pg_sys::Node;
                let existing = self
                    .groups
                    .iter()
                    .find(|(g, _)| pg_sys::equal(*g as *const c_void, expr as *const c_void))
                    .map(|(_, col)| *col);
                let col = match existing {
                    Some(col) => col,
                    None => {
                        let resno = self.worker.len() + 1;
                        let w = pg_sys::makeTargetEntry(
                            copy(expr) as *mut pg_sys::Expr,
                            resno as i16,
                            pstrdup(&format!("d{resno}")),
                            false,
                        );
                        self.last_ref += 1;
                        (*w).ressortgroupref = self.last_ref;
                        let (mut lt, mut eq, mut gt, mut hashable) = (
                            pg_sys::InvalidOid,
                            pg_sys::InvalidOid,
                            pg_sys::InvalidOid,
                            false,
                        );
                        pg_sys::get_sort_group_operators(
                            pg_sys::exprType(expr),
                            false,
                            true,
                            false,
                            &mut lt,
                            &mut eq,
                            &mut gt,
                            &mut hashable,
                        );
                        let sgc = make_node::<pg_sys::SortGroupClause>(
                            pg_sys::NodeTag::T_SortGroupClause,
                        );
                        (*sgc).tleSortGroupRef = self.last_ref;
                        (*sgc).eqop = eq;
                        (*sgc).sortop = lt;
                        (*sgc).hashable = hashable;
                        self.worker.push(w);
                        self.extra_groups.push(sgc);
                        self.groups.push((expr, resno));
                        resno
                    }
                };
                (*tle).expr = var(1, col, expr);
            }
            c as *mut pg_sys::Node
        }
    }

    /// Adds a worker column; returns a Var of the combine query reading it.
    unsafe fn column(&mut self, expr: *mut pg_sys::Node, name: &str) -> *mut pg_sys::Node {
        // SAFETY: building target entries and Vars.
        unsafe {
            let resno = self.worker.len() + 1;
            self.worker.push(pg_sys::makeTargetEntry(
                expr as *mut pg_sys::Expr,
                resno as i16,
                pstrdup(name),
                false,
            ));
            var(1, resno, expr) as *mut pg_sys::Node
        }
    }

    /// The combine expression of one aggregate, adding its partial aggregates to the worker.
    unsafe fn combine_agg(&mut self, agg: *mut pg_sys::Aggref) -> TResult<*mut pg_sys::Node> {
        // SAFETY: reading the Aggref and building nodes.
        unsafe {
            let name = string(pg_sys::get_func_name((*agg).aggfnoid));
            if !(*agg).aggdistinct.is_null()
                && (*agg).aggorder.is_null()
                && (*agg).aggfilter.is_null()
            {
                return Ok(self.distinct_agg(agg));
            }
            if !(*agg).aggorder.is_null() || !(*agg).aggdistinct.is_null() {
                return Err(unsupported(
                    format!("{name}(DISTINCT ...) and {name}(... ORDER BY ...) are not supported across shards yet"),
                    "Group by the distribution column, or pin the query to one distribution value.",
                ));
            }
            if (*agg).aggkind != b'n' as std::ffi::c_char {
                return Err(unsupported(
                    format!("the ordered-set aggregate {name} is not supported across shards"),
                    "Group by the distribution column, or pin the query to one distribution value.",
                ));
            }
            let t = (*agg).aggtype;
            // The aggregate itself combines its partial results when its result type is its
            // input type (min, max, bool_and, bit_or): reuse it; sum is looked up by its
            // partial result type (sum(bigint) gives numeric, summed as numeric).
            let same = |this: &mut TwoPhase, fname: Option<&str>| -> TResult<*mut pg_sys::Node> {
                let v = this.column(copy(agg) as *mut pg_sys::Node, &name);
                let oid = match fname {
                    Some(f) => func_oid(f, &[t]),
                    None => (*agg).aggfnoid,
                };
                if oid == pg_sys::InvalidOid {
                    return Err(unsupported(
                        format!(
                            "cannot combine {name}({}) across shards",
                            crate::pg::nodes::string(pg_sys::format_type_be(t))
                        ),
                        "Pin the query to one distribution value.",
                    ));
                }
                Ok(aggref(oid, t, vec![v], agg) as *mut pg_sys::Node)
            };
            match name.as_str() {
                "count" => {
                    let v = self.column(copy(agg) as *mut pg_sys::Node, "count");
                    Ok(aggref(func_oid("tessera_count_combine", &[pg_sys::INT8OID]), pg_sys::INT8OID, vec![v], agg) as *mut pg_sys::Node)
                }
                "sum" if t == pg_sys::INT8OID => {
                    let v = self.column(copy(agg) as *mut pg_sys::Node, "sum");
                    Ok(aggref(func_oid("tessera_sum_bigint", &[pg_sys::INT8OID]), pg_sys::INT8OID, vec![v], agg) as *mut pg_sys::Node)
                }
                "sum" => same(self, Some("sum")),
                "min" | "max" | "bool_and" | "bool_or" | "bit_and" | "bit_or" | "every" => same(self, None),
                "avg" => {
                    let argtype = pg_sys::list_nth_oid((*agg).aggargtypes, 0);
                    let sum_oid = func_oid("sum", &[argtype]);
                    let count_oid = func_oid("count", &[pg_sys::ANYOID]);
                    let sum_type = if sum_oid == pg_sys::InvalidOid {
                        pg_sys::InvalidOid
                    } else {
                        pg_sys::get_func_rettype(sum_oid)
                    };
                    let combine_oid = func_oid("tessera_avg_combine", &[sum_type, pg_sys::INT8OID]);
                    if sum_oid == pg_sys::InvalidOid || combine_oid == pg_sys::InvalidOid {
                        return Err(unsupported(
                            format!("avg({}) is not supported across shards", crate::pg::nodes::string(pg_sys::format_type_be(argtype))),
                            "Group by the distribution column, or pin the query to one distribution value.",
                        ));
                    }
                    let partial = |fnoid, rettype| {
                        let p = copy(agg);
                        (*p).aggfnoid = fnoid;
                        (*p).aggtype = rettype;
                        (*p).aggtranstype = pg_sys::InvalidOid;
                        p as *mut pg_sys::Node
                    };
                    let s = self.column(partial(sum_oid, sum_type), "avg_sum");
                    let c = self.column(partial(count_oid, pg_sys::INT8OID), "avg_count");
                    Ok(aggref(combine_oid, t, vec![s, c], agg) as *mut pg_sys::Node)
                }
                "string_agg" => {
                    let args = list_of::<pg_sys::TargetEntry>((*agg).args);
                    let delim = args.get(1).map(|t| (**t).expr as *mut pg_sys::Node);
                    match delim {
                        Some(d) if is_a(d as *const c_void, pg_sys::NodeTag::T_Const) => {
                            let v = self.column(copy(agg) as *mut pg_sys::Node, "string_agg");
                            let oid = func_oid("string_agg", &[t, pg_sys::exprType(d)]);
                            Ok(aggref(oid, t, vec![v, copy(d)], agg) as *mut pg_sys::Node)
                        }
                        _ => Err(unsupported(
                            "string_agg across shards needs a constant delimiter",
                            "Use a constant delimiter, or group by the distribution column.",
                        )),
                    }
                }
                "array_agg" => {
                    let v = self.column(copy(agg) as *mut pg_sys::Node, "array_agg");
                    let oid = func_oid("tessera_array_cat_agg", &[pg_sys::ANYCOMPATIBLEARRAYOID]);
                    Ok(aggref(oid, t, vec![v], agg) as *mut pg_sys::Node)
                }
                _ => Err(unsupported(
                    format!("the aggregate {name} is not supported across shards yet"),
                    "Supported across shards: count, sum, avg, min, max, bool_and, bool_or, bit_and, bit_or, string_agg, array_agg. Otherwise group by the distribution column, or pin the query to one distribution value.",
                )),
            }
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn combine_mutator(
    node: *mut pg_sys::Node,
    ctx: *mut c_void,
) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    // SAFETY: called by expression_tree_mutator with valid nodes and our context.
    unsafe {
        let tp = &mut *(ctx as *mut TwoPhase);
        if tp.error.is_some() {
            return node;
        }
        for &(g, col) in &tp.groups {
            if pg_sys::equal(node as *const c_void, g as *const c_void) {
                return var(1, col, node) as *mut pg_sys::Node;
            }
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Aggref)
            && (*(node as *mut pg_sys::Aggref)).agglevelsup == 0
        {
            return match tp.combine_agg(node as *mut pg_sys::Aggref) {
                Ok(n) => n,
                Err(e) => {
                    tp.error = Some(e);
                    node
                }
            };
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Var)
            && (*(node as *mut pg_sys::Var)).varlevelsup == 0
        {
            tp.error = Some(unsupported(
                "a column outside GROUP BY and aggregates cannot be combined across shards",
                "Add the column to GROUP BY, or group by the distribution column.",
            ));
            return node;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_SubLink)
            || is_a(node as *const c_void, pg_sys::NodeTag::T_GroupingFunc)
        {
            tp.error = Some(unsupported(
                "subqueries and GROUPING() in an aggregate query are not supported across shards",
                "Pin the query to one distribution value.",
            ));
            return node;
        }
        mutate(node, combine_mutator, ctx)
    }
}

/// Partial aggregates on the workers, final ones on the coordinator.
unsafe fn two_phase(parse: *mut pg_sys::Query) -> TResult<Split> {
    // SAFETY: copying and editing Query trees.
    unsafe {
        let last_ref = list_of::<pg_sys::TargetEntry>((*parse).targetList)
            .into_iter()
            .map(|t| (*t).ressortgroupref)
            .max()
            .unwrap_or(0);
        let mut tp = TwoPhase {
            groups: Vec::new(),
            worker: Vec::new(),
            extra_groups: Vec::new(),
            last_ref,
            error: None,
        };
        let group_refs: Vec<u32> = list_of::<pg_sys::SortGroupClause>((*parse).groupClause)
            .into_iter()
            .map(|s| (*s).tleSortGroupRef)
            .collect();
        let mut worker_groups = Vec::new();
        for tle in list_of::<pg_sys::TargetEntry>((*parse).targetList) {
            if (*tle).ressortgroupref != 0 && group_refs.contains(&(*tle).ressortgroupref) {
                let expr = (*tle).expr as *mut pg_sys::Node;
                let resno = tp.worker.len() + 1;
                let w = pg_sys::makeTargetEntry(
                    copy(expr) as *mut pg_sys::Expr,
                    resno as i16,
                    pstrdup(&format!("g{resno}")),
                    false,
                );
                (*w).ressortgroupref = (*tle).ressortgroupref;
                tp.worker.push(w);
                tp.groups.push((expr, resno));
                worker_groups.push(w);
            }
        }
        let ctx = &mut tp as *mut TwoPhase as *mut c_void;
        let mut ct = Vec::new();
        for tle in list_of::<pg_sys::TargetEntry>((*parse).targetList) {
            let e = combine_mutator((*tle).expr as *mut pg_sys::Node, ctx);
            let n = pg_sys::makeTargetEntry(
                e as *mut pg_sys::Expr,
                (*tle).resno,
                (*tle).resname,
                (*tle).resjunk,
            );
            (*n).ressortgroupref = (*tle).ressortgroupref;
            ct.push(n);
        }
        let having = if (*parse).havingQual.is_null() {
            std::ptr::null_mut()
        } else {
            combine_mutator((*parse).havingQual, ctx)
        };
        if let Some(e) = tp.error.take() {
            return Err(e);
        }
        let w = copy(parse);
        (*w).targetList = make_list(&tp.worker);
        let mut group_clause = list_of::<pg_sys::SortGroupClause>((*w).groupClause);
        group_clause.extend(tp.extra_groups.iter().copied());
        (*w).groupClause = make_list(&group_clause);
        (*w).havingQual = std::ptr::null_mut();
        (*w).sortClause = std::ptr::null_mut();
        (*w).limitCount = std::ptr::null_mut();
        (*w).limitOffset = std::ptr::null_mut();
        (*w).distinctClause = std::ptr::null_mut();
        (*w).hasAggs = tp.worker.len() > worker_groups.len();
        let c = copy(parse);
        (*c).targetList = make_list(&ct);
        (*c).havingQual = having;
        (*c).hasAggs = true;
        (*c).hasSubLinks = false;
        Ok(Split {
            worker: w,
            combine: c,
            notes: vec![
                "aggregates in two phases: partial on the workers, combined on the coordinator"
                    .into(),
            ],
        })
    }
}

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
        pg_sys::expression_tree_walker(node, Some(index_var_walker), ctx)
    }
}

/// A FROM item that calls the placeholder `func(args)`, a set-returning function of records,
/// with columns `c1..cN` of the given (type, typmod, collation), named `alias`.
///
/// # Safety
/// Builds nodes in the current memory context.
pub(super) unsafe fn placeholder_rte(
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
pub(super) unsafe fn take_place_of(
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
        index_var_walker(p.targetlist as *mut pg_sys::Node, ctx);
        index_var_walker(p.qual as *mut pg_sys::Node, ctx);
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

/// Plans the combine query with PostgreSQL's planner, then swaps in the Tessera scan.
///
/// # Safety
/// The planner hook's arguments; `split` comes from [`split`].
pub unsafe fn plan_combine(
    split: &Split,
    plan: &DistPlan,
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
        let cols = super::coordinator::columns(split.worker);
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
        let stmt = pg_sys::standard_planner(c, query_string, cursor_options, bound_params);
        let mut s = FunctionScanSwap {
            func,
            cscan: custom_scan(plan, std::ptr::null_mut(), 1000.0),
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
