//! Aggregates across shards in two phases: partial aggregates on the workers (grouped by the
//! GROUP BY keys), combined on the coordinator by the combine query.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
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
    /// The worker query sends rows, not partial aggregates: the coordinator runs every
    /// aggregate over the shards' rows (set when one aggregate cannot be combined).
    rows: bool,
    /// Why the query needs `rows` (the first aggregate found that cannot be combined).
    needs_rows: Option<String>,
    /// Worker columns (0-based) holding partial states, with their aggregate.
    partial_states: Vec<(usize, pg_sys::Oid)>,
    error: Option<TesseraError>,
}

/// The OIDs of an OID list.
unsafe fn list_of_oids(l: *mut pg_sys::List) -> Vec<pg_sys::Oid> {
    // SAFETY: `l` is an OID list (or NIL).
    unsafe {
        (0..pg_sys::list_length(l))
            .map(|i| pg_sys::list_nth_oid(l, i))
            .collect()
    }
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

    /// Marks the query as one whose aggregates run over the shards' rows (see `rows`).
    fn need_rows(&mut self, agg: *mut pg_sys::Aggref, why: String) -> *mut pg_sys::Node {
        self.needs_rows.get_or_insert(why);
        agg as *mut pg_sys::Node
    }

    /// An aggregate through PostgreSQL's partial aggregation when it has a combine function
    /// (and, for an `internal` state, serialization functions); otherwise the query's
    /// aggregates run over the shards' rows.
    unsafe fn partial_or_rows(
        &mut self,
        agg: *mut pg_sys::Aggref,
        name: &str,
    ) -> TResult<*mut pg_sys::Node> {
        // SAFETY: a catalog lookup and Aggref construction.
        unsafe {
            let cat = crate::executor::partial_agg::catalog((*agg).aggfnoid);
            let internal = cat.transtype == pg_sys::INTERNALOID;
            if cat.combinefn == pg_sys::InvalidOid
                || (internal
                    && (cat.serialfn == pg_sys::InvalidOid || cat.deserialfn == pg_sys::InvalidOid))
            {
                return Ok(self.need_rows(agg, format!("{name} has no combine function")));
            }
            // An aggregate without arguments (`agg(*)`) has an overload of its own: a VARIADIC
            // parameter needs at least one argument.
            let no_args = list_of_oids((*agg).aggargtypes).is_empty();
            let partial_fn = if no_args {
                func_oid("tessera_partial_agg", &[pg_sys::REGPROCEDUREOID])
            } else {
                func_oid(
                    "tessera_partial_agg",
                    &[pg_sys::REGPROCEDUREOID, pg_sys::ANYOID],
                )
            };
            let combine_fn = func_oid(
                "tessera_combine_agg",
                &[
                    pg_sys::OIDOID,
                    pg_sys::OIDARRAYOID,
                    pg_sys::INTERNALOID,
                    pg_sys::ANYELEMENTOID,
                ],
            );
            if partial_fn == pg_sys::InvalidOid || combine_fn == pg_sys::InvalidOid {
                return Err(TesseraError::new(
                    pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
                    "tessera_partial_agg or tessera_combine_agg is missing",
                )
                .hint("Reinstall the extension: ALTER EXTENSION tessera UPDATE."));
            }
            let fnoid = pg_sys::Datum::from((*agg).aggfnoid);
            let input_types: Vec<pg_sys::Oid> = list_of_oids((*agg).aggargtypes);
            // The workers: tessera_partial_agg('agg(types)'::regprocedure, args...).
            let w = copy(agg);
            let proc = pg_sys::makeConst(
                pg_sys::REGPROCEDUREOID,
                -1,
                pg_sys::InvalidOid,
                4,
                fnoid,
                false,
                true,
            );
            let mut args = vec![pg_sys::makeTargetEntry(
                proc as *mut pg_sys::Expr,
                1,
                std::ptr::null_mut(),
                false,
            )];
            for (i, tle) in list_of::<pg_sys::TargetEntry>((*w).args)
                .into_iter()
                .enumerate()
            {
                (*tle).resno = (i + 2) as i16;
                args.push(tle);
            }
            (*w).args = make_list(&args);
            (*w).aggargtypes = pg_sys::lcons_oid(pg_sys::REGPROCEDUREOID, (*w).aggargtypes);
            (*w).aggfnoid = partial_fn;
            (*w).aggtype = pg_sys::BYTEAOID;
            (*w).aggtranstype = pg_sys::InvalidOid;
            (*w).aggstar = false;
            (*w).aggcollid = pg_sys::InvalidOid;
            let v = self.column(w as *mut pg_sys::Node, name);
            // The combine query reads the state as `internal`: the scan makes that value (see
            // executor/partial_agg.rs), so SQL cannot hand the combine step bytes of its own.
            let var = v as *mut pg_sys::Var;
            (*var).vartype = pg_sys::INTERNALOID;
            (*var).vartypmod = -1;
            (*var).varcollid = pg_sys::InvalidOid;
            self.partial_states
                .push((self.worker.len() - 1, (*agg).aggfnoid));
            // The coordinator: tessera_combine_agg(agg, input types, partial, NULL::result).
            let mut elems: Vec<pg_sys::Datum> = input_types
                .iter()
                .map(|&o| pg_sys::Datum::from(o))
                .collect();
            let array = pg_sys::construct_array(
                elems.as_mut_ptr(),
                elems.len() as i32,
                pg_sys::OIDOID,
                4,
                true,
                pg_sys::TYPALIGN_INT as std::ffi::c_char,
            );
            let types = pg_sys::makeConst(
                pg_sys::OIDARRAYOID,
                -1,
                pg_sys::InvalidOid,
                -1,
                pg_sys::Datum::from(array),
                false,
                false,
            );
            let oid_const = pg_sys::makeConst(
                pg_sys::OIDOID,
                -1,
                pg_sys::InvalidOid,
                4,
                fnoid,
                false,
                true,
            );
            let result = pg_sys::makeNullConst((*agg).aggtype, -1, (*agg).aggcollid);
            Ok(aggref(
                combine_fn,
                (*agg).aggtype,
                vec![
                    oid_const as *mut pg_sys::Node,
                    types as *mut pg_sys::Node,
                    v,
                    result as *mut pg_sys::Node,
                ],
                agg,
            ) as *mut pg_sys::Node)
        }
    }

    /// In a query whose aggregates run over the shards' rows: the workers send each
    /// aggregate's arguments (and FILTER) per row, the coordinator runs the aggregate itself.
    unsafe fn row_agg(&mut self, agg: *mut pg_sys::Aggref) -> TResult<*mut pg_sys::Node> {
        // SAFETY: copying the Aggref and building worker columns.
        unsafe {
            let c = copy(agg);
            for tle in list_of::<pg_sys::TargetEntry>((*c).args) {
                let e = (*tle).expr as *mut pg_sys::Node;
                if !is_a(e as *const c_void, pg_sys::NodeTag::T_Const) {
                    (*tle).expr = self.column(copy(e), "a") as *mut pg_sys::Expr;
                }
            }
            let f = (*c).aggfilter as *mut pg_sys::Node;
            if !f.is_null() && !is_a(f as *const c_void, pg_sys::NodeTag::T_Const) {
                (*c).aggfilter = self.column(copy(f), "f") as *mut pg_sys::Expr;
            }
            let mut direct = Vec::new();
            for d in list_of::<pg_sys::Node>((*c).aggdirectargs) {
                let group = self
                    .groups
                    .iter()
                    .find(|(g, _)| pg_sys::equal(*g as *const c_void, d as *const c_void))
                    .map(|&(_, col)| col);
                match group {
                    Some(col) => direct.push(var(1, col, d) as *mut pg_sys::Node),
                    None if !pg_sys::contain_var_clause(d) => direct.push(d),
                    None => {
                        return Err(unsupported(
                            "a direct argument of an ordered-set aggregate that reads columns is not supported across shards",
                            "Use a constant, or group by the distribution column.",
                        ))
                    }
                }
            }
            (*c).aggdirectargs = make_list(&direct);
            Ok(c as *mut pg_sys::Node)
        }
    }

    /// The combine expression of one aggregate, adding its partial aggregates to the worker.
    unsafe fn combine_agg(&mut self, agg: *mut pg_sys::Aggref) -> TResult<*mut pg_sys::Node> {
        // SAFETY: reading the Aggref and building nodes.
        unsafe {
            let name = string(pg_sys::get_func_name((*agg).aggfnoid));
            if self.rows {
                return self.row_agg(agg);
            }
            if !(*agg).aggdistinct.is_null()
                && (*agg).aggorder.is_null()
                && (*agg).aggfilter.is_null()
            {
                return Ok(self.distinct_agg(agg));
            }
            if !(*agg).aggorder.is_null() || !(*agg).aggdistinct.is_null() {
                return Ok(self.need_rows(
                    agg,
                    format!("{name}(DISTINCT ... ORDER BY ...) or with FILTER"),
                ));
            }
            if (*agg).aggkind != b'n' as std::ffi::c_char {
                return Ok(self.need_rows(agg, format!("{name} is an ordered-set aggregate")));
            }
            // Tessera's own combine steps for the common built-in aggregates (cheaper than a
            // serialized state); every other aggregate through its combine function.
            if pg_sys::get_func_namespace((*agg).aggfnoid)
                != pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE)
            {
                return self.partial_or_rows(agg, &name);
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
                    this.worker.pop();
                    return this.partial_or_rows(agg, &name);
                }
                Ok(aggref(oid, t, vec![v], agg) as *mut pg_sys::Node)
            };
            match name.as_str() {
                "count" => {
                    let v = self.column(copy(agg) as *mut pg_sys::Node, "count");
                    Ok(aggref(
                        func_oid("tessera_count_combine", &[pg_sys::INT8OID]),
                        pg_sys::INT8OID,
                        vec![v],
                        agg,
                    ) as *mut pg_sys::Node)
                }
                "sum" if t == pg_sys::INT8OID => {
                    let v = self.column(copy(agg) as *mut pg_sys::Node, "sum");
                    Ok(aggref(
                        func_oid("tessera_sum_bigint", &[pg_sys::INT8OID]),
                        pg_sys::INT8OID,
                        vec![v],
                        agg,
                    ) as *mut pg_sys::Node)
                }
                "sum" => same(self, Some("sum")),
                "min" | "max" | "bool_and" | "bool_or" | "bit_and" | "bit_or" | "every" => {
                    same(self, None)
                }
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
                        return self.partial_or_rows(agg, &name);
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
                        _ => self.partial_or_rows(agg, &name),
                    }
                }
                "array_agg" => {
                    let v = self.column(copy(agg) as *mut pg_sys::Node, "array_agg");
                    let oid = func_oid("tessera_array_cat_agg", &[pg_sys::ANYCOMPATIBLEARRAYOID]);
                    Ok(aggref(oid, t, vec![v], agg) as *mut pg_sys::Node)
                }
                _ => self.partial_or_rows(agg, &name),
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
        if is_a(node as *const c_void, pg_sys::NodeTag::T_SubLink) {
            tp.error = Some(unsupported(
                "subqueries in an aggregate query are not supported across shards",
                "Pin the query to one distribution value, or move the subquery into a CTE.",
            ));
            return node;
        }
        // GROUPING(): its arguments become the worker columns of the grouping keys; which
        // grouping set a row belongs to is the coordinator's (its references stay).
        mutate(node, combine_mutator, ctx)
    }
}

/// Partial aggregates on the workers, final ones on the coordinator.
///
/// An aggregate that cannot be combined (no combine function, ORDER BY in the call, an
/// ordered-set aggregate) makes the whole query run its aggregates over the shards' rows, as
/// Citus's row-gather strategy does: the workers filter and send the arguments, the coordinator
/// aggregates.
pub(crate) unsafe fn two_phase(parse: *mut pg_sys::Query) -> TResult<Split> {
    // SAFETY: as `split_aggregates`.
    unsafe {
        match split_aggregates(parse, None)? {
            Ok(split) => Ok(split),
            Err(why) => split_aggregates(parse, Some(why))?
                .map_err(|_| unreachable!("a row-gather split never asks for rows")),
        }
    }
}

/// The split with partial aggregates (`rows` None), or with the aggregates over the shards'
/// rows (`rows` says why). `Ok(Err(why))`: an aggregate needs the rows.
unsafe fn split_aggregates(
    parse: *mut pg_sys::Query,
    rows: Option<String>,
) -> TResult<Result<Split, String>> {
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
            rows: rows.is_some(),
            needs_rows: None,
            partial_states: Vec::new(),
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
            // Through the error boundary (the mutator is guarded; this frame holds Vecs).
            let e =
                pg_guard_ffi_boundary(|| combine_mutator((*tle).expr as *mut pg_sys::Node, ctx));
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
            pg_guard_ffi_boundary(|| combine_mutator((*parse).havingQual, ctx))
        };
        if let Some(why) = tp.needs_rows.take() {
            return Ok(Err(why));
        }
        if let Some(e) = tp.error.take() {
            return Err(e);
        }
        let w = copy(parse);
        (*w).targetList = make_list(&tp.worker);
        let mut group_clause = list_of::<pg_sys::SortGroupClause>((*w).groupClause);
        group_clause.extend(tp.extra_groups.iter().copied());
        (*w).groupClause = if rows.is_some() {
            std::ptr::null_mut()
        } else {
            make_list(&group_clause)
        };
        // Every grouping set's keys are in the GROUP BY list: the workers group by all of
        // them, the coordinator makes the sets.
        (*w).groupingSets = std::ptr::null_mut();
        (*w).groupDistinct = false;
        (*w).havingQual = std::ptr::null_mut();
        (*w).sortClause = std::ptr::null_mut();
        (*w).limitCount = std::ptr::null_mut();
        (*w).limitOffset = std::ptr::null_mut();
        (*w).distinctClause = std::ptr::null_mut();
        (*w).hasDistinctOn = false;
        // Window functions run over the combined groups, on the coordinator only.
        (*w).hasWindowFuncs = false;
        (*w).windowClause = std::ptr::null_mut();
        (*w).hasAggs = rows.is_none() && tp.worker.len() > worker_groups.len();
        let c = copy(parse);
        (*c).targetList = make_list(&ct);
        (*c).havingQual = having;
        (*c).hasAggs = true;
        (*c).hasSubLinks = false;
        let note = match rows {
            None => "aggregates in two phases: partial on the workers, combined on the coordinator"
                .to_string(),
            Some(why) => format!("aggregates on the coordinator over the shards' rows ({why})"),
        };
        Ok(Ok(Split {
            worker: w,
            combine: c,
            notes: vec![note],
            partial_states: tp.partial_states,
        }))
    }
}
