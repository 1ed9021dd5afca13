//! Aggregates across shards in two phases: partial aggregates on the workers (grouped by the
//! GROUP BY keys), combined on the coordinator by the combine query.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::{TResult, TesseraError};
use crate::pg::nodes::{is_a, list_of, make_list, pstrdup, string};
use crate::planner::combine::{copy, mutate, var, Split};
use crate::planner::query::make_node;
use crate::planner::unsupported;

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

pub(crate) fn func_oid(name: &str, args: &[pg_sys::Oid]) -> pg_sys::Oid {
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
pub(crate) unsafe fn two_phase(parse: *mut pg_sys::Query) -> TResult<Split> {
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
