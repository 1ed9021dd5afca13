//! Subqueries in WHERE that cannot run inside the shard queries, planned on their own.
//!
//! When a query is refused as it is, its uncorrelated sublinks in WHERE and JOIN ... ON
//! (`x IN (SELECT ...)`, `x = (SELECT ...)`, `EXISTS (SELECT ...)`, `x op ALL (SELECT ...)`,
//! `ARRAY(SELECT ...)`) — typically reading a distributed table they cannot be pushed down
//! with, or a local table — become parameters of the shard queries, and it is planned again:
//! its SELECT is planned as a query of its own (through this planner hook, so it may be
//! distributed), runs on the coordinator before the shard queries, and its result travels as
//! one parameter value: a scalar, a boolean, or an array (`x = ANY($n)`, which has the same
//! meaning as `x IN (SELECT ...)`, NULLs included). Citus calls this recursive planning; it
//! ships the result as an intermediate result file, Tessera as a parameter.
//!
//! The plans ride along in the Tessera scan's `custom_private` as `List(paramid, kind,
//! element type, width, PlannedStmt)` items; the executor runs them first (`executor::subplans`).

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;
pub use tessera_core::plan::SubKind;

use super::combine;
use crate::error::TesseraError;
use crate::pg::nodes::{is_a, list_of, make_list};

/// One sublink taken out of the query.
pub use crate::executor::scan_private::SubplanItem as Subplan;

struct Ctx {
    next_param: usize,
    found: Vec<Subplan>,
    query_string: *const std::ffi::c_char,
    bound_params: pg_sys::ParamListInfo,
}

/// The SubLink's SELECT can run on its own: it does not refer to the outer query.
unsafe fn uncorrelated(q: *mut pg_sys::Query) -> bool {
    // SAFETY: forwarded.
    unsafe { stands_alone(q) }
}

/// Whether `q` (a level of a larger query) can be planned as a statement of its own: it reads
/// no column of an outer level and no WITH query of an outer level.
///
/// # Safety
/// `q` is a valid Query.
pub(super) unsafe fn stands_alone(q: *mut pg_sys::Query) -> bool {
    // SAFETY: walking a valid Query.
    unsafe {
        if pg_sys::contain_vars_of_level(q as *mut pg_sys::Node, 1) {
            return false;
        }
        // The walk counts the levels it is in; `q` itself is level 0.
        let mut depth: i32 = -1;
        !outer_cte_walker(
            q as *mut pg_sys::Node,
            &mut depth as *mut i32 as *mut c_void,
        )
    }
}

/// True at a reference to a WITH query above the level the walk started at (`ctx` counts the
/// levels walked into, from -1 before the first).
#[pg_guard]
unsafe extern "C-unwind" fn outer_cte_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the tree walkers with valid nodes and our depth counter.
    unsafe {
        let depth = ctx as *mut i32;
        if is_a(node as *const c_void, pg_sys::NodeTag::T_RangeTblEntry) {
            let rte = node as *mut pg_sys::RangeTblEntry;
            return (*rte).rtekind == pg_sys::RTEKind::RTE_CTE
                && (*rte).ctelevelsup as i32 > *depth;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            *depth += 1;
            let r = pg_sys::query_tree_walker(
                node as *mut pg_sys::Query,
                Some(outer_cte_walker),
                ctx,
                pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
            );
            *depth -= 1;
            return r;
        }
        crate::pg::nodes::walk_children(node, Some(outer_cte_walker), ctx)
    }
}

/// `param` with an explicit cast to its own type, so the worker's parser knows the type even
/// where nothing around it says (a SELECT list) and for extension types, whose OIDs differ
/// between nodes.
unsafe fn typed(
    param: *mut pg_sys::Node,
    typ: pg_sys::Oid,
    typmod: i32,
    coll: pg_sys::Oid,
) -> *mut pg_sys::Node {
    // SAFETY: a new RelabelType node over `param`.
    unsafe {
        pg_sys::makeRelabelType(
            param as *mut pg_sys::Expr,
            typ,
            typmod,
            coll,
            pg_sys::CoercionForm::COERCE_EXPLICIT_CAST,
        ) as *mut pg_sys::Node
    }
}

/// For `lhs op ANY/ALL (SELECT ...)`: the operator expression, its left side, and the
/// sublink parameter's type, when the test is one operator on the sublink's only column.
unsafe fn simple_test(
    testexpr: *mut pg_sys::Node,
) -> Option<(*mut pg_sys::OpExpr, *mut pg_sys::Node, pg_sys::Oid)> {
    // SAFETY: reading expression nodes.
    unsafe {
        if !is_a(testexpr as *const c_void, pg_sys::NodeTag::T_OpExpr) {
            return None;
        }
        let op = testexpr as *mut pg_sys::OpExpr;
        let args = list_of::<pg_sys::Node>((*op).args);
        if args.len() != 2 {
            return None;
        }
        let mut right = args[1];
        while is_a(right as *const c_void, pg_sys::NodeTag::T_RelabelType) {
            right = (*(right as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
        if !is_a(right as *const c_void, pg_sys::NodeTag::T_Param) {
            return None;
        }
        let p = right as *mut pg_sys::Param;
        if (*p).paramkind != pg_sys::ParamKind::PARAM_SUBLINK || (*p).paramid != 1 {
            return None;
        }
        Some((op, args[0], (*p).paramtype))
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn mutator(
    node: *mut pg_sys::Node,
    ctx: *mut c_void,
) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    // SAFETY: called by expression_tree_mutator with valid nodes and our context.
    unsafe {
        let cx = &mut *(ctx as *mut Ctx);
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            return node;
        }
        if !is_a(node as *const c_void, pg_sys::NodeTag::T_SubLink) {
            return combine::mutate(node, mutator, ctx);
        }
        let sl = node as *mut pg_sys::SubLink;
        let sub = (*sl).subselect as *mut pg_sys::Query;
        if sub.is_null() || !uncorrelated(sub) {
            return node;
        }
        let Some(&(typ, typmod, coll)) = super::on_coordinator::columns(sub).first() else {
            return node;
        };
        // Its value travels as text; an anonymous record (`SELECT ROW(1, 'a')`) has no input
        // function to read it back with.
        if pg_sys::get_typtype(typ) == pg_sys::TYPTYPE_PSEUDO as std::ffi::c_char {
            return node;
        }
        let id = cx.next_param;
        let (kind, elem, replacement) = match (*sl).subLinkType {
            pg_sys::SubLinkType::EXISTS_SUBLINK => (
                SubKind::Exists,
                pg_sys::BOOLOID,
                super::query::extern_param(id, pg_sys::BOOLOID, -1, pg_sys::InvalidOid),
            ),
            pg_sys::SubLinkType::EXPR_SUBLINK => (
                SubKind::Scalar,
                typ,
                typed(
                    super::query::extern_param(id, typ, typmod, coll),
                    typ,
                    typmod,
                    coll,
                ),
            ),
            pg_sys::SubLinkType::ARRAY_SUBLINK => {
                let arr = pg_sys::get_array_type(typ);
                if arr == pg_sys::InvalidOid {
                    return node;
                }
                (
                    SubKind::Array,
                    typ,
                    typed(super::query::extern_param(id, arr, -1, coll), arr, -1, coll),
                )
            }
            pg_sys::SubLinkType::ANY_SUBLINK | pg_sys::SubLinkType::ALL_SUBLINK => {
                let Some((op, lhs, ptype)) = simple_test((*sl).testexpr) else {
                    return node;
                };
                let arr = pg_sys::get_array_type(ptype);
                if arr == pg_sys::InvalidOid {
                    return node;
                }
                let sa = super::query::make_node::<pg_sys::ScalarArrayOpExpr>(
                    pg_sys::NodeTag::T_ScalarArrayOpExpr,
                );
                (*sa).opno = (*op).opno;
                (*sa).opfuncid = (*op).opfuncid;
                (*sa).useOr = (*sl).subLinkType == pg_sys::SubLinkType::ANY_SUBLINK;
                (*sa).inputcollid = (*op).inputcollid;
                (*sa).args = make_list(&[
                    combine::mutate(lhs, mutator, ctx),
                    typed(super::query::extern_param(id, arr, -1, coll), arr, -1, coll),
                ]);
                (*sa).location = -1;
                (SubKind::Array, ptype, sa as *mut pg_sys::Node)
            }
            _ => return node,
        };
        let copy = pg_sys::copyObjectImpl(sub as *const c_void) as *mut pg_sys::Query;
        let stmt = pg_sys::planner(copy, cx.query_string, 0, cx.bound_params);
        cx.found.push(Subplan {
            param: id,
            kind,
            elem_type: elem,
            width: 1,
            stmt,
        });
        cx.next_param += 1;
        replacement
    }
}

/// Where [`extract`] takes sublinks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clauses {
    /// WHERE and JOIN ... ON: they run on the workers.
    Where,
    /// The target list (SELECT list, UPDATE's SET) and HAVING: the whole query then runs on
    /// the workers ([`runs_whole_on_workers`]), or the coordinator's combine step reads the
    /// values too ([`to_coordinator`]).
    Outputs,
}

/// Takes the uncorrelated sublinks of `query`'s `clauses` out of it (in place), plans each,
/// and numbers their parameters from `first_param`. Returns nothing when there is none;
/// `query` is then unchanged.
///
/// # Safety
/// `query` is a valid analyzed top-level Query the caller may change.
pub unsafe fn extract(
    query: *mut pg_sys::Query,
    clauses: Clauses,
    first_param: usize,
    query_string: *const std::ffi::c_char,
    bound_params: pg_sys::ParamListInfo,
) -> Vec<Subplan> {
    // SAFETY: mutating clauses of a Query copy owned by the caller.
    unsafe {
        if !(*query).hasSubLinks || !(*query).cteList.is_null() {
            return Vec::new();
        }
        let mut cx = Ctx {
            next_param: first_param,
            found: Vec::new(),
            query_string,
            bound_params,
        };
        let ctx = &mut cx as *mut Ctx as *mut c_void;
        match clauses {
            Clauses::Where => {
                // Through the error boundary (the mutator is guarded; `cx` holds Vecs).
                let jt =
                    pg_guard_ffi_boundary(|| mutator((*query).jointree as *mut pg_sys::Node, ctx));
                if !cx.found.is_empty() {
                    (*query).jointree = jt as *mut pg_sys::FromExpr;
                }
            }
            Clauses::Outputs => {
                let tlist = pg_guard_ffi_boundary(|| {
                    mutator((*query).targetList as *mut pg_sys::Node, ctx)
                });
                let having = pg_guard_ffi_boundary(|| mutator((*query).havingQual, ctx));
                if !cx.found.is_empty() {
                    (*query).targetList = tlist as *mut pg_sys::List;
                    (*query).havingQual = having;
                }
            }
        }
        cx.found
    }
}

/// Whether no expression the coordinator evaluates reads the parameters from `first_param` on
/// (they are values for the workers only). The plan is a Tessera Adaptive scan, possibly under
/// the nodes of a combine step (aggregate, window, sort, limit, unique, result); anything else counts
/// as reading them.
///
/// # Safety
/// `stmt` is a PlannedStmt.
pub unsafe fn runs_whole_on_workers(stmt: *mut pg_sys::PlannedStmt, first_param: usize) -> bool {
    // SAFETY: reading the plan tree and walking its expressions.
    unsafe {
        if !(*stmt).subplans.is_null() {
            return false;
        }
        let mut cx = ToExec {
            first: first_param as i32,
            convert: false,
            made: Vec::new(),
            exec_types: std::ptr::null_mut(),
        };
        to_exec_plan((*stmt).planTree, &mut cx).is_ok()
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn param_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by expression_tree_walker with valid nodes and our context.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Param) {
            let p = node as *mut pg_sys::Param;
            return (*p).paramkind == pg_sys::ParamKind::PARAM_EXTERN
                && (*p).paramid >= *(ctx as *mut i32);
        }
        crate::pg::nodes::walk_children(node, Some(param_walker), ctx)
    }
}

/// The walk of [`to_coordinator`] and [`runs_whole_on_workers`]: the first parameter of the
/// subqueries, whether the combine step's reads of them become `PARAM_EXEC` parameters (or
/// fail the walk), and the parameters made so far.
struct ToExec {
    first: i32,
    convert: bool,
    made: Vec<crate::executor::scan_private::CoordinatorParam>,
    exec_types: *mut pg_sys::List,
}

/// Makes the plan above the one Tessera scan of `stmt` read the subqueries' parameters (from
/// `first_param` on) as `PARAM_EXEC` parameters, which that scan sets once it has run the
/// subqueries (an initplan's way): a sublink in the select list or HAVING of a query whose
/// aggregates the coordinator combines. The shard queries keep them as their own parameters.
/// `Err(NotCombine)` (and `stmt` unchanged but for Param nodes of its combine step) when the plan
/// is not a combine step over one scan, `Err(EvaluatedFirst)` when the combine step needs a value
/// before the scan runs (LIMIT, OFFSET, a constant condition, a window frame's offsets: `HAVING
/// (SELECT ...)` with no aggregate becomes the combine query's one-time filter).
///
/// # Safety
/// `stmt` is a PlannedStmt the distributed planner built for a copy of the query.
pub unsafe fn to_coordinator(
    stmt: *mut pg_sys::PlannedStmt,
    first_param: usize,
) -> Result<
    (
        *mut pg_sys::CustomScan,
        Vec<crate::executor::scan_private::CoordinatorParam>,
    ),
    NotOnCoordinator,
> {
    // SAFETY: reading the plan tree and changing Param nodes of its combine step.
    unsafe {
        if !(*stmt).subplans.is_null() {
            return Err(NotOnCoordinator::NotCombine);
        }
        let mut scans = Vec::new();
        find_scans((*stmt).planTree, &mut scans);
        let [scan] = scans.as_slice() else {
            return Err(NotOnCoordinator::NotCombine);
        };
        let mut cx = ToExec {
            first: first_param as i32,
            convert: true,
            made: Vec::new(),
            exec_types: (*stmt).paramExecTypes,
        };
        to_exec_plan((*stmt).planTree, &mut cx)?;
        (*stmt).paramExecTypes = cx.exec_types;
        Ok((*scan, cx.made))
    }
}

/// Why [`to_coordinator`] left a plan alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotOnCoordinator {
    /// Not a combine step over one Tessera scan (or a scan whose own expressions read them).
    NotCombine,
    /// The combine step reads a value before the scan has run.
    EvaluatedFirst,
}

/// [`to_coordinator`] over one plan node and the nodes under it.
unsafe fn to_exec_plan(plan: *mut pg_sys::Plan, cx: &mut ToExec) -> Result<(), NotOnCoordinator> {
    use NotOnCoordinator::*;
    if plan.is_null() {
        return Ok(());
    }
    // SAFETY: reading plan nodes and walking their expressions.
    unsafe {
        let tag = (*(plan as *mut pg_sys::Node)).type_;
        if tag == pg_sys::NodeTag::T_CustomScan {
            let mut first = cx.first;
            let ctx = &mut first as *mut i32 as *mut c_void;
            let ours = (*(plan as *mut pg_sys::CustomScan)).methods
                == super::scan_methods(tessera_core::plan::ADAPTIVE_SCAN)
                && !param_walker((*plan).targetlist as *mut pg_sys::Node, ctx)
                && !param_walker((*plan).qual as *mut pg_sys::Node, ctx);
            return if ours { Ok(()) } else { Err(NotCombine) };
        }
        for n in [(*plan).targetlist, (*plan).qual] {
            let n = n as *mut pg_sys::Node;
            if cx.convert {
                to_exec_walker(n, cx as *mut ToExec as *mut c_void);
            } else {
                let mut first = cx.first;
                if param_walker(n, &mut first as *mut i32 as *mut c_void) {
                    return Err(NotCombine);
                }
            }
        }
        // What a node evaluates before it reads the node under it would find no value yet
        // (LIMIT, a constant condition, a window frame's offsets): not there.
        let before = |n: *mut pg_sys::Node| {
            let mut first = cx.first;
            param_walker(n, &mut first as *mut i32 as *mut c_void)
        };
        match tag {
            pg_sys::NodeTag::T_Limit => {
                let l = plan as *mut pg_sys::Limit;
                if before((*l).limitOffset) || before((*l).limitCount) {
                    return Err(EvaluatedFirst);
                }
            }
            pg_sys::NodeTag::T_Result => {
                if before((*(plan as *mut pg_sys::Result)).resconstantqual) {
                    return Err(EvaluatedFirst);
                }
            }
            pg_sys::NodeTag::T_WindowAgg => {
                let w = plan as *mut pg_sys::WindowAgg;
                if before((*w).startOffset)
                    || before((*w).endOffset)
                    || before((*w).runCondition as *mut pg_sys::Node)
                {
                    return Err(EvaluatedFirst);
                }
            }
            pg_sys::NodeTag::T_Agg
            | pg_sys::NodeTag::T_Sort
            | pg_sys::NodeTag::T_IncrementalSort
            | pg_sys::NodeTag::T_Unique
            | pg_sys::NodeTag::T_Material => {}
            _ => return Err(NotCombine),
        }
        to_exec_plan((*plan).lefttree, cx)
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn to_exec_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the expression walkers with valid nodes of a plan being built, and our
    // context.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Param) {
            let cx = &mut *(ctx as *mut ToExec);
            let p = node as *mut pg_sys::Param;
            if (*p).paramkind == pg_sys::ParamKind::PARAM_EXTERN && (*p).paramid >= cx.first {
                let param = (*p).paramid as usize;
                let exec = match cx.made.iter().find(|m| m.param == param) {
                    Some(m) => m.exec,
                    None => {
                        let exec = pg_sys::list_length(cx.exec_types) as usize;
                        cx.exec_types = pg_sys::lappend_oid(cx.exec_types, (*p).paramtype);
                        cx.made
                            .push(crate::executor::scan_private::CoordinatorParam {
                                param,
                                exec,
                                typid: (*p).paramtype,
                            });
                        exec
                    }
                };
                (*p).paramkind = pg_sys::ParamKind::PARAM_EXEC;
                (*p).paramid = exec as i32;
            }
            return false;
        }
        crate::pg::nodes::walk_children(node, Some(to_exec_walker), ctx)
    }
}

/// Adds the subplans to every Tessera scan in `stmt`'s plan, and their tables to the
/// statement's invalidation lists.
///
/// # Safety
/// `stmt` is a PlannedStmt the distributed planner built.
pub unsafe fn attach(
    stmt: *mut pg_sys::PlannedStmt,
    subplans: &[Subplan],
) -> Result<(), TesseraError> {
    // SAFETY: walking and extending the plan tree being built.
    unsafe {
        let mut scans = Vec::new();
        find_scans((*stmt).planTree, &mut scans);
        for p in list_of::<pg_sys::Plan>((*stmt).subplans) {
            find_scans(p, &mut scans);
        }
        if scans.is_empty() {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "no Tessera scan to run the subqueries",
            ));
        }
        for cscan in scans {
            crate::executor::scan_private::push_subplans(cscan, subplans);
        }
        for s in subplans {
            adopt_child(stmt, s.stmt);
        }
        Ok(())
    }
}

unsafe fn find_scans(plan: *mut pg_sys::Plan, out: &mut Vec<*mut pg_sys::CustomScan>) {
    if plan.is_null() {
        return;
    }
    // SAFETY: reading a plan tree.
    unsafe {
        if is_a(plan as *const c_void, pg_sys::NodeTag::T_CustomScan) {
            let c = plan as *mut pg_sys::CustomScan;
            if (*c).methods == super::scan_methods(tessera_core::plan::ADAPTIVE_SCAN) {
                out.push(c);
            }
        }
        find_scans((*plan).lefttree, out);
        find_scans((*plan).righttree, out);
    }
}

/// Makes a statement answer for a child statement it runs: the child's tables join its range
/// table (so the executor locks them and checks privileges before a cached plan runs) and its
/// invalidation lists (so a change to them replans the statement).
///
/// # Safety
/// Both are PlannedStmts being built by the planner.
pub unsafe fn adopt_child(stmt: *mut pg_sys::PlannedStmt, child: *mut pg_sys::PlannedStmt) {
    // SAFETY: appending copies of the child's relation entries; the statement's plan refers
    // only to earlier range table indexes, so appending leaves them valid.
    unsafe {
        for rte in list_of::<pg_sys::RangeTblEntry>((*child).rtable) {
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
                continue;
            }
            let copy = pg_sys::copyObjectImpl(rte as *const c_void) as *mut pg_sys::RangeTblEntry;
            #[cfg(not(feature = "pg15"))]
            {
                (*copy).perminfoindex = 0;
            }
            (*stmt).rtable = pg_sys::lappend((*stmt).rtable, copy as *mut c_void);
        }
        (*stmt).relationOids =
            pg_sys::list_concat_unique_oid((*stmt).relationOids, (*child).relationOids);
        (*stmt).invalItems = pg_sys::list_concat((*stmt).invalItems, (*child).invalItems);
    }
}

/// Does `q` read a table that is distributed (hash) or local, at any level?
unsafe fn reads_tables(q: *mut pg_sys::Query) -> bool {
    // SAFETY: reading the Query's range tables at every level.
    unsafe {
        if super::analyze::analyze(q).is_ok_and(|a| a.cte_results) {
            // The kept rows of a WITH query: the coordinator's, like a local table's.
            return true;
        }
        let mut rels = list_of::<pg_sys::RangeTblEntry>((*q).rtable);
        rels.extend(super::query::sublevel_relations(q));
        rels.into_iter()
            .filter(|r| (**r).rtekind == pg_sys::RTEKind::RTE_RELATION)
            .any(|r| match crate::metadata::cache::lookup((*r).relid) {
                Ok(Some(m)) => !m.is_reference(),
                _ => true,
            })
    }
}

/// Turns the FROM items of `query` that are subqueries or CTE references reading distributed
/// or local tables into `UNNEST($a, $b, ...)` of their rows: each is planned on its own, runs
/// first, and its rows reach the shard queries as one array parameter per column, so the rest
/// of the query (joined with a distributed table) runs on the shards as if it were a small
/// reference table. Parameters are numbered from `first_param`.
///
/// # Safety
/// `query` is a valid analyzed top-level Query the caller may change.
pub unsafe fn broadcast_from(
    query: *mut pg_sys::Query,
    first_param: usize,
    query_string: *const std::ffi::c_char,
    bound_params: pg_sys::ParamListInfo,
) -> Vec<Subplan> {
    let mut out: Vec<Subplan> = Vec::new();
    let mut next = first_param;
    // SAFETY: editing the range table of the caller's Query copy; planning its parts.
    unsafe {
        if !matches!(
            (*query).commandType,
            pg_sys::CmdType::CMD_SELECT | pg_sys::CmdType::CMD_UPDATE | pg_sys::CmdType::CMD_DELETE
        ) || !(*query).setOperations.is_null()
            || (*query).hasRecursive
        {
            return out;
        }
        let result_rti = (*query).resultRelation;
        let mut converted: Vec<String> = Vec::new();
        for (i, rte) in list_of::<pg_sys::RangeTblEntry>((*query).rtable)
            .into_iter()
            .enumerate()
        {
            if i as i32 + 1 == result_rti {
                continue;
            }
            let q = match (*rte).rtekind {
                // A relation not in FROM is not read (a rule's `*OLD*` / `*NEW*`).
                pg_sys::RTEKind::RTE_RELATION if !(*rte).inFromCl => continue,
                pg_sys::RTEKind::RTE_RELATION => match local_table_query(rte) {
                    Some(q) => q,
                    None => continue,
                },
                pg_sys::RTEKind::RTE_SUBQUERY if !(*rte).lateral => (*rte).subquery,
                pg_sys::RTEKind::RTE_CTE if (*rte).ctelevelsup == 0 => {
                    let name = crate::pg::nodes::string((*rte).ctename);
                    match list_of::<pg_sys::CommonTableExpr>((*query).cteList)
                        .into_iter()
                        .find(|c| crate::pg::nodes::string((**c).ctename) == name)
                    {
                        Some(c)
                            if is_a((*c).ctequery as *const c_void, pg_sys::NodeTag::T_Query) =>
                        {
                            (*c).ctequery as *mut pg_sys::Query
                        }
                        _ => continue,
                    }
                }
                _ => continue,
            };
            if q.is_null() || !reads_tables(q) || !stands_alone(q) {
                continue;
            }
            let cols = super::on_coordinator::columns(q);
            if cols.is_empty()
                || cols
                    .iter()
                    .any(|(t, _, _)| pg_sys::get_array_type(*t) == pg_sys::InvalidOid)
            {
                continue;
            }
            let copy = pg_sys::copyObjectImpl(q as *const c_void) as *mut pg_sys::Query;
            let stmt = pg_sys::planner(copy, query_string, 0, bound_params);
            let mut functions = Vec::with_capacity(cols.len());
            for (i, (t, _m, c)) in cols.iter().enumerate() {
                let arr = pg_sys::get_array_type(*t);
                let p = super::query::extern_param(next + i, arr, -1, *c);
                // An explicit cast, so the shard's parser knows the array's type (extension
                // types have no OID in common between nodes).
                let cast = pg_sys::makeRelabelType(
                    p as *mut pg_sys::Expr,
                    arr,
                    -1,
                    *c,
                    pg_sys::CoercionForm::COERCE_EXPLICIT_CAST,
                );
                let f = pg_sys::makeFuncExpr(
                    pg_sys::Oid::from(pg_sys::F_UNNEST_ANYARRAY),
                    *t,
                    make_list(&[cast as *mut pg_sys::Node]),
                    *c,
                    *c,
                    pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
                );
                (*f).funcretset = true;
                let rtf = super::query::make_node::<pg_sys::RangeTblFunction>(
                    pg_sys::NodeTag::T_RangeTblFunction,
                );
                (*rtf).funcexpr = f as *mut pg_sys::Node;
                (*rtf).funccolcount = 1;
                functions.push(rtf);
            }
            let names: Vec<*mut pg_sys::Node> = list_of::<pg_sys::Node>((*(*rte).eref).colnames)
                .into_iter()
                .take(cols.len())
                .collect();
            if (*rte).rtekind == pg_sys::RTEKind::RTE_CTE {
                converted.push(crate::pg::nodes::string((*rte).ctename));
            }
            super::on_coordinator::clear_source(rte);
            (*rte).rtekind = pg_sys::RTEKind::RTE_FUNCTION;
            (*rte).functions = make_list(&functions);
            (*rte).funcordinality = false;
            (*rte).eref = pg_sys::makeAlias((*(*rte).eref).aliasname, make_list(&names));
            if (*rte).alias.is_null() {
                (*rte).alias = pg_sys::makeAlias((*(*rte).eref).aliasname, std::ptr::null_mut());
            }
            out.push(Subplan {
                param: next,
                kind: SubKind::Rows,
                elem_type: pg_sys::InvalidOid,
                width: cols.len(),
                stmt,
            });
            next += cols.len();
        }
        // A CTE all of whose references were replaced is not needed any more.
        super::on_coordinator::drop_replaced_ctes(query, &converted);
    }
    out
}

/// `SELECT * FROM` a local table of the query, analyzed and rewritten (row security
/// included), when `rte` is a local table whose columns all exist (no dropped column, so the
/// query's column numbers are its output positions).
unsafe fn local_table_query(rte: *mut pg_sys::RangeTblEntry) -> Option<*mut pg_sys::Query> {
    // SAFETY: catalog lookups and parse analysis of a query text built from quoted names.
    unsafe {
        if !matches!(crate::metadata::cache::lookup((*rte).relid), Ok(None)) {
            return None;
        }
        let names = list_of::<pg_sys::Node>((*(*rte).eref).colnames);
        if names.iter().any(|n| {
            is_a(*n as *const c_void, pg_sys::NodeTag::T_String)
                && crate::pg::nodes::string((*(*n as *mut pg_sys::String)).sval).is_empty()
        }) {
            return None;
        }
        let (schema, name) = crate::pg::nodes::rel_schema_and_name((*rte).relid);
        let sql = format!(
            "SELECT * FROM {}.{}",
            pgrx::spi::quote_identifier(&schema),
            pgrx::spi::quote_identifier(&name)
        );
        let c = std::ffi::CString::new(sql).ok()?;
        let text = crate::pg::nodes::pstrdup(c.to_str().ok()?);
        let raw = *list_of::<pg_sys::RawStmt>(pg_sys::pg_parse_query(text)).first()?;
        let queries = pg_sys::pg_analyze_and_rewrite_fixedparams(
            raw,
            text,
            std::ptr::null(),
            0,
            std::ptr::null_mut(),
        );
        let q = *list_of::<pg_sys::Query>(queries).first()?;
        let width = list_of::<pg_sys::TargetEntry>((*q).targetList)
            .into_iter()
            .filter(|t| !(**t).resjunk)
            .count();
        (width == names.len()).then_some(q)
    }
}
