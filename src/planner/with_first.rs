//! Statements with data-modifying WITH queries (`WITH moved AS (DELETE FROM a ... RETURNING *)
//! INSERT INTO b SELECT * FROM moved`) on distributed tables.
//!
//! PostgreSQL runs every WITH query of such a statement exactly once, to the end, whether the
//! rest reads it or not. Here each WITH query becomes a statement of its own, planned through
//! the planner hook (so a distributed INSERT, UPDATE or DELETE with RETURNING, or a
//! distributed SELECT, plans as one), and the Tessera WITH scan (`executor::with_first`) runs
//! them in the order they were written before the rest of the statement, in its transaction.
//! Every reference to a WITH query, from a later WITH query or from the rest of the statement,
//! reads its kept rows: `(SELECT * FROM tessera_cte_results(k) AS r(...))`.
//!
//! PostgreSQL's WITH queries all see the statement's snapshot: none sees the others' changes.
//! Run one after another on the workers, a later part would see an earlier one's changes, so a
//! statement where a part that runs later reads a table a data-modifying WITH query changes is
//! refused (0A000) rather than answered differently.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;

use super::query::{make_node, sublevel_relations};
use crate::error::{TResult, TesseraError};
use crate::pg::nodes::{is_a, list_of, make_list, string};
use crate::planner::unsupported;

/// `pg_catalog.tessera_cte_results(int)`.
pub(super) fn results_func() -> pg_sys::Oid {
    super::combine::func_oid("tessera_cte_results", &[pg_sys::INT4OID])
}

/// Whether the range table entry reads `tessera_cte_results` (rows only the coordinator has).
///
/// # Safety
/// `rte` is a valid range table entry.
pub(super) unsafe fn reads_cte_results(rte: *mut pg_sys::RangeTblEntry) -> bool {
    // SAFETY: reading a function RTE's expressions.
    unsafe {
        if (*rte).rtekind != pg_sys::RTEKind::RTE_FUNCTION {
            return false;
        }
        let func = results_func();
        list_of::<pg_sys::RangeTblFunction>((*rte).functions)
            .into_iter()
            .any(|f| {
                let e = (*f).funcexpr;
                is_a(e as *const c_void, pg_sys::NodeTag::T_FuncExpr)
                    && (*(e as *mut pg_sys::FuncExpr)).funcid == func
            })
    }
}

/// Plans a statement with data-modifying WITH queries.
///
/// # Safety
/// The planner hook's arguments; `parse` has `hasModifyingCTE`.
pub unsafe fn plan(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: planning copies of a valid analyzed Query and of its WITH queries.
    unsafe {
        if (*parse).hasRecursive {
            return Err(unsupported(
                "WITH RECURSIVE together with data-modifying WITH queries is not supported on distributed tables",
                "Run the data-modifying statement on its own, then the recursive query.",
            ));
        }
        let main = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        let ctes = list_of::<pg_sys::CommonTableExpr>((*main).cteList);
        let func = results_func();
        if func == pg_sys::InvalidOid {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
                "function pg_catalog.tessera_cte_results(integer) is missing",
            )
            .hint("Update the extension: ALTER EXTENSION tessera UPDATE."));
        }
        // Each WITH query on its own, references to its siblings reading their rows.
        let mut bodies = Vec::with_capacity(ctes.len());
        for &cte in &ctes {
            let q = (*cte).ctequery as *mut pg_sys::Query;
            if !is_a(q as *const c_void, pg_sys::NodeTag::T_Query) {
                return Err(unsupported(
                    "this WITH query is not supported with data-modifying WITH queries",
                    "Run the data-modifying statement on its own.",
                ));
            }
            let body = pg_sys::copyObjectImpl(q as *const c_void) as *mut pg_sys::Query;
            replace_refs(body, 1, &ctes, func);
            (*body).canSetTag = false;
            bodies.push(body);
        }
        replace_refs(main, 0, &ctes, func);
        (*main).cteList = std::ptr::null_mut();
        (*main).hasModifyingCTE = false;
        check_order(&ctes, &bodies, main)?;
        let mut children = Vec::with_capacity(bodies.len());
        for &body in &bodies {
            children.push(pg_sys::planner(body, query_string, 0, bound_params));
        }
        let stmt = pg_sys::planner(main, query_string, cursor_options, bound_params);
        let top = (*stmt).planTree;
        let scan = make_node::<pg_sys::CustomScan>(pg_sys::NodeTag::T_CustomScan);
        (*scan).methods = super::scan_methods(tessera_core::plan::WITH_SCAN);
        (*scan).custom_private = make_list(&children);
        (*scan).scan.scanrelid = 0;
        (*scan).scan.plan.lefttree = top;
        (*scan).scan.plan.startup_cost = (*top).startup_cost;
        (*scan).scan.plan.total_cost = (*top).total_cost;
        (*scan).scan.plan.plan_rows = (*top).plan_rows;
        (*scan).scan.plan.plan_width = (*top).plan_width;
        let mut tlist = Vec::new();
        for tle in list_of::<pg_sys::TargetEntry>((*top).targetlist) {
            let e = (*tle).expr as *mut pg_sys::Node;
            let v = pg_sys::makeVar(
                pg_sys::OUTER_VAR,
                (*tle).resno,
                pg_sys::exprType(e),
                pg_sys::exprTypmod(e),
                pg_sys::exprCollation(e),
                0,
            );
            tlist.push(pg_sys::makeTargetEntry(
                v as *mut pg_sys::Expr,
                (*tle).resno,
                (*tle).resname,
                (*tle).resjunk,
            ));
        }
        (*scan).scan.plan.targetlist = make_list(&tlist);
        (*stmt).planTree = scan as *mut pg_sys::Plan;
        // The portal runs such a statement to the end at once, as PostgreSQL's own.
        (*stmt).hasModifyingCTE = true;
        for &c in &children {
            super::subplans::adopt_child(stmt, c);
        }
        Ok(stmt)
    }
}

struct Refs<'a> {
    /// The query level of the statement's WITH list, counted from the walk's start.
    depth: u32,
    ctes: &'a [*mut pg_sys::CommonTableExpr],
    func: pg_sys::Oid,
}

/// Makes each reference to one of `ctes` in `q` (whose own level is `depth` levels below the
/// WITH list) read that WITH query's kept rows.
unsafe fn replace_refs(
    q: *mut pg_sys::Query,
    depth: u32,
    ctes: &[*mut pg_sys::CommonTableExpr],
    func: pg_sys::Oid,
) {
    let mut cx = Refs { depth, ctes, func };
    // SAFETY: walking (and editing) the caller's copy.
    unsafe {
        pg_sys::query_tree_walker(
            q,
            Some(refs_walker),
            &mut cx as *mut Refs as *mut c_void,
            pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
        );
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn refs_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the tree walkers with valid nodes of the caller's copy.
    unsafe {
        let cx = &mut *(ctx as *mut Refs);
        if is_a(node as *const c_void, pg_sys::NodeTag::T_RangeTblEntry) {
            let rte = node as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind == pg_sys::RTEKind::RTE_CTE && (*rte).ctelevelsup == cx.depth {
                let name = string((*rte).ctename);
                if let Some(k) = cx.ctes.iter().position(|c| string((**c).ctename) == name) {
                    to_results(rte, cx.func, k + 1, cx.ctes[k]);
                }
            }
            return false;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            cx.depth += 1;
            let r = pg_sys::query_tree_walker(
                node as *mut pg_sys::Query,
                Some(refs_walker),
                ctx,
                pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
            );
            (*(ctx as *mut Refs)).depth -= 1;
            return r;
        }
        crate::pg::nodes::walk_children(node, Some(refs_walker), ctx)
    }
}

/// Makes the CTE reference `rte` read `(SELECT * FROM tessera_cte_results(k) AS r(...))` with
/// the WITH query's columns, keeping its alias and column names.
unsafe fn to_results(
    rte: *mut pg_sys::RangeTblEntry,
    func: pg_sys::Oid,
    k: usize,
    cte: *mut pg_sys::CommonTableExpr,
) {
    // SAFETY: editing a range table entry of the caller's copy.
    unsafe {
        // An OID list: its length, not its cells as pointers.
        let n = pg_sys::list_length((*cte).ctecoltypes);
        let mut cols = Vec::new();
        for i in 0..n as usize {
            cols.push((
                pg_sys::list_nth_oid((*cte).ctecoltypes, i as i32),
                pg_sys::list_nth_int((*cte).ctecoltypmods, i as i32),
                pg_sys::list_nth_oid((*cte).ctecolcollations, i as i32),
            ));
        }
        let names: Vec<*mut std::ffi::c_char> = list_of::<pg_sys::String>((*cte).ctecolnames)
            .into_iter()
            .map(|n| {
                if n.is_null() {
                    std::ptr::null_mut()
                } else {
                    (*n).sval
                }
            })
            .collect();
        let nq = super::on_coordinator::results_query(func, k, &cols, &names, c"cte_results");
        super::on_coordinator::clear_source(rte);
        (*rte).rtekind = pg_sys::RTEKind::RTE_SUBQUERY;
        (*rte).subquery = nq;
    }
}

/// Every relation `q` reads or writes, at any level.
unsafe fn relations(q: *mut pg_sys::Query) -> Vec<pg_sys::Oid> {
    // SAFETY: reading the range tables of a valid Query.
    unsafe {
        let mut rtes = list_of::<pg_sys::RangeTblEntry>((*q).rtable);
        rtes.extend(sublevel_relations(q));
        rtes.into_iter()
            .filter(|r| (**r).rtekind == pg_sys::RTEKind::RTE_RELATION)
            .map(|r| (*r).relid)
            .collect()
    }
}

/// The tables a change of `target` can change: itself, and the tables whose foreign keys
/// reference it (ON DELETE CASCADE, SET NULL, ...), transitively.
fn changed_by(target: pg_sys::Oid) -> TResult<Vec<pg_sys::Oid>> {
    let mut out = vec![target];
    let mut i = 0;
    while i < out.len() {
        let referencing: Vec<pg_sys::Oid> = pgrx::spi::Spi::connect(|client| {
            let mut v = Vec::new();
            for row in client.select(
                "SELECT DISTINCT conrelid FROM pg_catalog.pg_constraint
                  WHERE contype = 'f' AND confrelid = $1",
                None,
                &[out[i].into()],
            )? {
                if let Some(o) = row.get::<pg_sys::Oid>(1)? {
                    v.push(o);
                }
            }
            Ok::<_, TesseraError>(v)
        })?;
        for r in referencing {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        i += 1;
    }
    Ok(out)
}

struct Funcs(Vec<pg_sys::Oid>);

#[pg_guard]
unsafe extern "C-unwind" fn func_oid_checker(func: pg_sys::Oid, ctx: *mut c_void) -> bool {
    // SAFETY: our context.
    unsafe { (*(ctx as *mut Funcs)).0.push(func) };
    false
}

#[pg_guard]
unsafe extern "C-unwind" fn funcs_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the tree walkers with valid nodes and our context.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            return pg_sys::query_tree_walker(
                node as *mut pg_sys::Query,
                Some(funcs_walker),
                ctx,
                0,
            );
        }
        pg_sys::fix_opfuncids(node);
        pg_sys::check_functions_in_node(node, Some(func_oid_checker), ctx);
        crate::pg::nodes::walk_children(node, Some(funcs_walker), ctx)
    }
}

/// Whether `q` calls a function written in SQL or a procedural language, which may read any
/// table.
unsafe fn calls_user_code(q: *mut pg_sys::Query) -> TResult<bool> {
    let mut f = Funcs(Vec::new());
    // SAFETY: walking a valid Query.
    unsafe {
        pg_sys::query_tree_walker(
            q,
            Some(funcs_walker),
            &mut f as *mut Funcs as *mut c_void,
            0,
        );
    }
    user_code_among(&f.0)
}

/// Whether the expression `node` calls a function written in SQL or a procedural language.
///
/// # Safety
/// `node` is null or a valid expression tree.
pub(crate) unsafe fn expr_calls_user_code(node: *mut pg_sys::Node) -> TResult<bool> {
    let mut f = Funcs(Vec::new());
    // SAFETY: walking a valid expression.
    // Through the error boundary (the walker is guarded; `f` holds a Vec).
    unsafe {
        let ctx = &mut f as *mut Funcs as *mut c_void;
        pg_guard_ffi_boundary(|| funcs_walker(node, ctx))
    };
    user_code_among(&f.0)
}

/// Whether one of the functions is written in SQL or a procedural language.
fn user_code_among(funcs: &[pg_sys::Oid]) -> TResult<bool> {
    let mut ids: Vec<i64> = funcs.iter().map(|o| o.to_u32() as i64).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(false);
    }
    Ok(crate::pg::spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                          JOIN pg_catalog.pg_language l ON l.oid = p.prolang
                         WHERE p.oid::bigint = ANY ($1) AND l.lanname NOT IN ('internal', 'c'))",
        &[ids.into()],
    )?
    .unwrap_or(true))
}

/// Refuses a statement in which a part that runs after a data-modifying WITH query (a later
/// WITH query, or the rest of the statement) reads or writes a table it changes (directly or
/// through a cascading foreign key), or calls a function that could read one: PostgreSQL would
/// show that part the table as it was before the statement.
unsafe fn check_order(
    ctes: &[*mut pg_sys::CommonTableExpr],
    bodies: &[*mut pg_sys::Query],
    main: *mut pg_sys::Query,
) -> TResult<()> {
    // SAFETY: reading valid Queries.
    unsafe {
        for (i, &body) in bodies.iter().enumerate() {
            if (*body).commandType == pg_sys::CmdType::CMD_SELECT || (*body).resultRelation <= 0 {
                continue;
            }
            let target = (*(pg_sys::list_nth((*body).rtable, (*body).resultRelation - 1)
                as *mut pg_sys::RangeTblEntry))
                .relid;
            let changed = changed_by(target)?;
            let later = bodies[i + 1..]
                .iter()
                .map(|b| (*b, true))
                .chain([(main, false)]);
            for (part, is_cte) in later {
                if calls_user_code(part)? {
                    return Err(unsupported(
                        format!(
                            "cannot call a SQL or procedural-language function after the data-modifying WITH query \"{}\"",
                            string((*ctes[i]).ctename)
                        ),
                        "Tessera runs data-modifying WITH queries first, so such a function could see their changes: call it in a statement of its own.",
                    ));
                }
                let read = relations(part);
                if let Some(&t) = changed.iter().find(|t| read.contains(t)) {
                    let (schema, name) = crate::pg::nodes::rel_schema_and_name(t);
                    let what = if is_cte {
                        "a later WITH query"
                    } else {
                        "the statement after its WITH queries"
                    };
                    return Err(unsupported(
                        format!(
                            "cannot run {what} on {schema}.{name}, which the data-modifying WITH query \"{}\" changes",
                            string((*ctes[i]).ctename)
                        ),
                        "Tessera runs data-modifying WITH queries first, so later parts would see their changes: read the WITH query's RETURNING rows instead of the table, or split the statement.",
                    ));
                }
            }
        }
    }
    Ok(())
}
