//! Queries the coordinator finishes itself: their FROM items are subqueries or CTEs on
//! distributed tables that cannot run per shard group as one query (an aggregate of an
//! aggregate, a join of two grouped subqueries, `WITH x AS (...) SELECT ... FROM x ...`), or
//! they write into a local table (`INSERT INTO local SELECT ... FROM dist`).
//!
//! Each such subquery or CTE (or arm of a UNION / INTERSECT / EXCEPT) is planned as a query of
//! its own (through the planner hook, so it is a distributed query with its own tasks, combine
//! step and pushdown), and is replaced by `SELECT * FROM tessera_subquery_results(k)`; PostgreSQL's planner then plans
//! the rest (joins, aggregates, sorts over those rows, local tables included), and the
//! function's scans become Tessera Subquery scans that run the subquery first into a
//! tuplestore. Citus calls this recursive planning (results go to the coordinator as
//! intermediate results). A FROM item that is a distributed table itself is not pulled to the
//! coordinator whole: such queries keep their error.

use std::ffi::c_void;

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::analyze::touches_distributed;
use super::query::make_node;
use crate::error::TResult;
use crate::metadata::cache;
use crate::pg::nodes::{is_a, list_of, make_list, pstrdup, string};

/// `pg_catalog.tessera_subquery_results(int)`, the placeholder of a subquery's rows.
fn placeholder() -> pg_sys::Oid {
    super::combine::func_oid("tessera_subquery_results", &[pg_sys::INT4OID])
}

/// The non-junk output columns of `q`: (type, typmod, collation).
pub(super) unsafe fn columns(q: *mut pg_sys::Query) -> Vec<(pg_sys::Oid, i32, pg_sys::Oid)> {
    // SAFETY: reading the Query's target list.
    unsafe {
        list_of::<pg_sys::TargetEntry>((*q).targetList)
            .into_iter()
            .filter(|t| !(**t).resjunk)
            .map(|t| {
                let e = (*t).expr as *mut pg_sys::Node;
                (
                    pg_sys::exprType(e),
                    pg_sys::exprTypmod(e),
                    pg_sys::exprCollation(e),
                )
            })
            .collect()
    }
}

/// Forgets what `rte` read as a subquery or a CTE reference, before it reads something else.
///
/// # Safety
/// `rte` is a range table entry of a Query copy the caller owns.
pub(super) unsafe fn clear_source(rte: *mut pg_sys::RangeTblEntry) {
    // SAFETY: editing the entry's fields.
    unsafe {
        (*rte).subquery = std::ptr::null_mut();
        (*rte).security_barrier = false;
        (*rte).ctename = std::ptr::null_mut();
        (*rte).ctelevelsup = 0;
        (*rte).self_reference = false;
        (*rte).coltypes = std::ptr::null_mut();
        (*rte).coltypmods = std::ptr::null_mut();
        (*rte).colcollations = std::ptr::null_mut();
    }
}

/// Drops from `query`'s WITH list each CTE all of whose references were replaced
/// (`replaced` names a CTE once per replaced reference); a CTE still read elsewhere (in a
/// sublink, say) stays.
///
/// # Safety
/// `query` is a Query copy the caller owns.
pub(super) unsafe fn drop_replaced_ctes(query: *mut pg_sys::Query, replaced: &[String]) {
    if replaced.is_empty() {
        return;
    }
    // SAFETY: reading and rebuilding the Query's CTE list.
    unsafe {
        let kept: Vec<*mut pg_sys::CommonTableExpr> =
            list_of::<pg_sys::CommonTableExpr>((*query).cteList)
                .into_iter()
                .filter(|c| {
                    let name = string((**c).ctename);
                    let n = replaced.iter().filter(|x| **x == name).count() as i32;
                    n == 0 || (**c).cterefcount > n
                })
                .collect();
        (*query).cteList = make_list(&kept);
    }
}

/// Makes `rte` (a subquery or a CTE reference) read `SELECT * FROM
/// tessera_subquery_results(k)` with `q`'s output columns, keeping its alias and column names
/// (the outer query's Vars stay valid; a set operation keeps its subquery leaves).
unsafe fn to_placeholder(
    rte: *mut pg_sys::RangeTblEntry,
    func: pg_sys::Oid,
    k: usize,
    q: *mut pg_sys::Query,
) {
    // SAFETY: editing a range table entry of a Query copy the caller owns.
    unsafe {
        let nq = placeholder_query(func, k, q);
        clear_source(rte);
        (*rte).rtekind = pg_sys::RTEKind::RTE_SUBQUERY;
        (*rte).subquery = nq;
    }
}

/// `SELECT * FROM tessera_subquery_results(k)` with `q`'s output columns and names.
unsafe fn placeholder_query(
    func: pg_sys::Oid,
    k: usize,
    q: *mut pg_sys::Query,
) -> *mut pg_sys::Query {
    // SAFETY: reading `q`'s output columns.
    unsafe {
        // The output names of `q` (a set operation takes its column names from them).
        let resnames: Vec<*mut std::ffi::c_char> = list_of::<pg_sys::TargetEntry>((*q).targetList)
            .into_iter()
            .filter(|t| !(**t).resjunk)
            .map(|t| (*t).resname)
            .collect();
        results_query(func, k, &columns(q), &resnames, c"subquery_results")
    }
}

/// `SELECT * FROM func(k) AS alias(c1, ...)`: a query that reads the rows of result `k` (of a
/// subquery or WITH query run first) with the columns `cols`, named `names` (c1, c2, ... where
/// a name is missing).
///
/// # Safety
/// `names` holds null or NUL-terminated strings that live as long as the query.
pub(super) unsafe fn results_query(
    func: pg_sys::Oid,
    k: usize,
    cols: &[(pg_sys::Oid, i32, pg_sys::Oid)],
    names: &[*mut std::ffi::c_char],
    alias: &std::ffi::CStr,
) -> *mut pg_sys::Query {
    // SAFETY: building a new Query in the current memory context.
    unsafe {
        let arg = pg_sys::makeConst(
            pg_sys::INT4OID,
            -1,
            pg_sys::InvalidOid,
            4,
            pg_sys::Datum::from(k as i32),
            false,
            true,
        );
        let frte = super::combine::placeholder_rte(func, make_list(&[arg]), cols, alias);
        let mut tlist = Vec::new();
        for (i, (t, m, c)) in cols.iter().enumerate() {
            let resname = match names.get(i) {
                Some(r) if !r.is_null() => *r,
                _ => pstrdup(&format!("c{}", i + 1)),
            };
            let v = pg_sys::makeVar(1, (i + 1) as i16, *t, *m, *c, 0);
            tlist.push(pg_sys::makeTargetEntry(
                v as *mut pg_sys::Expr,
                (i + 1) as i16,
                resname,
                false,
            ));
        }
        let rtr = make_node::<pg_sys::RangeTblRef>(pg_sys::NodeTag::T_RangeTblRef);
        (*rtr).rtindex = 1;
        let nq = make_node::<pg_sys::Query>(pg_sys::NodeTag::T_Query);
        (*nq).commandType = pg_sys::CmdType::CMD_SELECT;
        (*nq).querySource = pg_sys::QuerySource::QSRC_ORIGINAL;
        (*nq).canSetTag = true;
        (*nq).rtable = make_list(&[frte]);
        (*nq).jointree = pg_sys::makeFromExpr(make_list(&[rtr]), std::ptr::null_mut());
        (*nq).targetList = make_list(&tlist);
        (*nq).stmt_location = -1;
        nq
    }
}

/// Plans `parse` (a copy the caller owns) with its distributed subqueries and CTEs run
/// first, or `None` when it is not that kind of query.
///
/// # Safety
/// The planner hook's arguments, `parse` a copy.
pub unsafe fn plan(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<Option<*mut pg_sys::PlannedStmt>> {
    // SAFETY: editing the Query copy and planning its parts.
    unsafe {
        // A SELECT, or a write into a local table (INSERT INTO local SELECT ... FROM dist).
        let command_ok = match (*parse).commandType {
            pg_sys::CmdType::CMD_SELECT => true,
            pg_sys::CmdType::CMD_INSERT
            | pg_sys::CmdType::CMD_UPDATE
            | pg_sys::CmdType::CMD_DELETE => {
                let rti = (*parse).resultRelation;
                rti > 0 && {
                    let rte =
                        pg_sys::list_nth((*parse).rtable, rti - 1) as *mut pg_sys::RangeTblEntry;
                    (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                        && cache::lookup((*rte).relid)?.is_none()
                }
            }
            _ => false,
        };
        if !command_ok
            || !(*parse).rowMarks.is_null()
            || (*parse).hasModifyingCTE
            || (*parse).hasRecursive
        {
            return Ok(None);
        }
        let func = placeholder();
        if func == pg_sys::InvalidOid {
            return Ok(None);
        }
        let mut children: Vec<*mut pg_sys::PlannedStmt> = Vec::new();
        let mut converted_ctes: Vec<String> = Vec::new();
        // A WITH query on distributed tables that is read elsewhere than in this level's FROM
        // (in a sublink, in a subquery): it runs first, once, and the WITH query itself reads
        // its rows, wherever they are read from.
        let top: Vec<*mut pg_sys::RangeTblEntry> = list_of((*parse).rtable);
        for cte in list_of::<pg_sys::CommonTableExpr>((*parse).cteList) {
            let q = (*cte).ctequery as *mut pg_sys::Query;
            if !is_a(q as *const c_void, pg_sys::NodeTag::T_Query)
                || (*q).commandType != pg_sys::CmdType::CMD_SELECT
                || !touches_distributed(q)?
            {
                continue;
            }
            let name = string((*cte).ctename);
            let in_from = top
                .iter()
                .filter(|r| {
                    (***r).rtekind == pg_sys::RTEKind::RTE_CTE
                        && (***r).ctelevelsup == 0
                        && string((***r).ctename) == name
                })
                .count() as i32;
            if in_from >= (*cte).cterefcount {
                continue;
            }
            if !super::subplans::stands_alone(q) {
                return Ok(None);
            }
            let copy = pg_sys::copyObjectImpl(q as *const c_void) as *mut pg_sys::Query;
            children.push(pg_sys::planner(copy, query_string, 0, bound_params));
            (*cte).ctequery = placeholder_query(func, children.len(), q) as *mut pg_sys::Node;
            (*cte).ctematerialized = pg_sys::CTEMaterialize::CTEMaterializeAlways;
        }
        for rte in list_of::<pg_sys::RangeTblEntry>((*parse).rtable) {
            match (*rte).rtekind {
                pg_sys::RTEKind::RTE_RELATION if cache::lookup((*rte).relid)?.is_some() => {
                    return Ok(None);
                }
                pg_sys::RTEKind::RTE_SUBQUERY => {
                    let sub = (*rte).subquery;
                    if !touches_distributed(sub)? {
                        continue;
                    }
                    if (*rte).lateral || !super::subplans::stands_alone(sub) {
                        return Ok(None);
                    }
                    let copy = pg_sys::copyObjectImpl(sub as *const c_void) as *mut pg_sys::Query;
                    children.push(pg_sys::planner(copy, query_string, 0, bound_params));
                    to_placeholder(rte, func, children.len(), sub);
                }
                pg_sys::RTEKind::RTE_CTE if (*rte).ctelevelsup == 0 => {
                    let name = string((*rte).ctename);
                    let Some(cte) = list_of::<pg_sys::CommonTableExpr>((*parse).cteList)
                        .into_iter()
                        .find(|c| string((**c).ctename) == name)
                    else {
                        return Ok(None);
                    };
                    let q = (*cte).ctequery as *mut pg_sys::Query;
                    if !is_a(q as *const c_void, pg_sys::NodeTag::T_Query)
                        || !touches_distributed(q)?
                    {
                        continue;
                    }
                    if !super::subplans::stands_alone(q) {
                        return Ok(None);
                    }
                    let copy = pg_sys::copyObjectImpl(q as *const c_void) as *mut pg_sys::Query;
                    children.push(pg_sys::planner(copy, query_string, 0, bound_params));
                    to_placeholder(rte, func, children.len(), q);
                    converted_ctes.push(name);
                }
                _ => {}
            }
        }
        // Uncorrelated sublinks on distributed tables in this level's own expressions (the
        // SELECT list, WHERE, HAVING): each runs first and the sublink reads its rows, so the
        // coordinator evaluates the rest (`SELECT my_function((SELECT max(x) FROM dist))`).
        let mut sub = Sublinks {
            func,
            query_string,
            bound_params,
            children: &mut children,
            refused: false,
            error: None,
        };
        pg_sys::query_tree_walker(
            parse,
            Some(sublink_walker),
            &mut sub as *mut Sublinks as *mut c_void,
            (pg_sys::QTW_IGNORE_RT_SUBQUERIES
                | pg_sys::QTW_IGNORE_CTE_SUBQUERIES
                | pg_sys::QTW_IGNORE_RANGE_TABLE) as i32,
        );
        if let Some(e) = sub.error {
            return Err(e);
        }
        if sub.refused {
            return Ok(None);
        }
        if children.is_empty() {
            return Ok(None);
        }
        // CTEs now read only through the placeholder are no longer needed.
        drop_replaced_ctes(parse, &converted_ctes);
        if touches_distributed(parse)? {
            // Distributed tables elsewhere (a sublink, a nested subquery): not this way.
            return Ok(None);
        }
        let stmt = pg_sys::standard_planner(parse, query_string, cursor_options, bound_params);
        let mut swap = Swap {
            func,
            children: &children,
            done: vec![false; children.len()],
        };
        (*stmt).planTree = swap_plan((*stmt).planTree, &mut swap);
        let mut subplans = Vec::new();
        for p in list_of::<pg_sys::Plan>((*stmt).subplans) {
            subplans.push(swap_plan(p, &mut swap) as *mut pg_sys::Node);
        }
        (*stmt).subplans = make_list(&subplans);
        // A subquery whose scan is not in the plan any more was proven empty by PostgreSQL
        // (`WHERE false`, a contradiction): the query needs none of its rows, and it is not
        // run. Its tables stay in the range table, for locks and privilege checks.
        for &c in &children {
            super::subplans::adopt_child(stmt, c);
        }
        Ok(Some(stmt))
    }
}

struct Sublinks<'a> {
    func: pg_sys::Oid,
    query_string: *const std::ffi::c_char,
    bound_params: pg_sys::ParamListInfo,
    children: &'a mut Vec<*mut pg_sys::PlannedStmt>,
    /// A sublink on distributed tables that cannot run on its own (correlated).
    refused: bool,
    error: Option<crate::error::TesseraError>,
}

#[pg_guard]
unsafe extern "C-unwind" fn sublink_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the tree walkers with valid nodes of the caller's Query copy.
    unsafe {
        let cx = &mut *(ctx as *mut Sublinks);
        if is_a(node as *const c_void, pg_sys::NodeTag::T_SubLink) {
            let sl = node as *mut pg_sys::SubLink;
            let q = (*sl).subselect as *mut pg_sys::Query;
            // Its test expression (`x IN (...)`'s x) is this level's.
            if sublink_walker((*sl).testexpr, ctx) {
                return true;
            }
            match touches_distributed(q) {
                Ok(false) => return false,
                Ok(true) => {}
                Err(e) => {
                    cx.error = Some(e);
                    return true;
                }
            }
            if !super::subplans::stands_alone(q) {
                cx.refused = true;
                return true;
            }
            let copy = pg_sys::copyObjectImpl(q as *const c_void) as *mut pg_sys::Query;
            cx.children
                .push(pg_sys::planner(copy, cx.query_string, 0, cx.bound_params));
            (*sl).subselect = placeholder_query(cx.func, cx.children.len(), q) as *mut pg_sys::Node;
            return false;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            return false;
        }
        crate::pg::nodes::walk_children(node, Some(sublink_walker), ctx)
    }
}

struct Swap<'a> {
    func: pg_sys::Oid,
    children: &'a [*mut pg_sys::PlannedStmt],
    done: Vec<bool>,
}

/// The `k` of a FunctionScan of `tessera_subquery_results(k)`.
unsafe fn placeholder_index(f: *mut pg_sys::FunctionScan, func: pg_sys::Oid) -> Option<usize> {
    // SAFETY: reading a FunctionScan's function list.
    unsafe {
        let rtfs = list_of::<pg_sys::RangeTblFunction>((*f).functions);
        let e = (**rtfs.first()?).funcexpr;
        if !is_a(e as *const c_void, pg_sys::NodeTag::T_FuncExpr) {
            return None;
        }
        let fe = e as *mut pg_sys::FuncExpr;
        if (*fe).funcid != func {
            return None;
        }
        let arg = *list_of::<pg_sys::Node>((*fe).args).first()?;
        if !is_a(arg as *const c_void, pg_sys::NodeTag::T_Const) {
            return None;
        }
        Some((*(arg as *mut pg_sys::Const)).constvalue.value() as i32 as usize)
    }
}

unsafe fn swap_list(list: *mut pg_sys::List, s: &mut Swap) -> *mut pg_sys::List {
    // SAFETY: forwarded.
    unsafe {
        let items: Vec<*mut pg_sys::Node> = list_of::<pg_sys::Plan>(list)
            .into_iter()
            .map(|p| swap_plan(p, s) as *mut pg_sys::Node)
            .collect();
        make_list(&items)
    }
}

/// Replaces each FunctionScan of the placeholder below `plan` by a Tessera Subquery scan.
unsafe fn swap_plan(plan: *mut pg_sys::Plan, s: &mut Swap) -> *mut pg_sys::Plan {
    if plan.is_null() {
        return plan;
    }
    // SAFETY: walking and editing a plan tree just made by standard_planner.
    unsafe {
        if is_a(plan as *const c_void, pg_sys::NodeTag::T_FunctionScan) {
            let f = plan as *mut pg_sys::FunctionScan;
            let Some(k) = placeholder_index(f, s.func) else {
                return plan;
            };
            if k == 0 || k > s.children.len() {
                return plan;
            }
            s.done[k - 1] = true;
            let c = make_node::<pg_sys::CustomScan>(pg_sys::NodeTag::T_CustomScan);
            (*c).methods = super::scan_methods(tessera_core::plan::SUBQUERY_SCAN);
            (*c).custom_private = make_list(&[s.children[k - 1] as *mut pg_sys::Node]);
            return super::combine::take_place_of(c, f);
        }
        (*plan).lefttree = swap_plan((*plan).lefttree, s);
        (*plan).righttree = swap_plan((*plan).righttree, s);
        if is_a(plan as *const c_void, pg_sys::NodeTag::T_Append) {
            let a = plan as *mut pg_sys::Append;
            (*a).appendplans = swap_list((*a).appendplans, s);
        } else if is_a(plan as *const c_void, pg_sys::NodeTag::T_MergeAppend) {
            let a = plan as *mut pg_sys::MergeAppend;
            (*a).mergeplans = swap_list((*a).mergeplans, s);
        } else if is_a(plan as *const c_void, pg_sys::NodeTag::T_SubqueryScan) {
            let q = plan as *mut pg_sys::SubqueryScan;
            (*q).subplan = swap_plan((*q).subplan, s);
        }
        plan
    }
}
