//! INSERT ... VALUES: rows evaluated on the coordinator (defaults, `nextval`), routed by the
//! hash of their distribution value, one multi-row INSERT per shard.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::prelude::*;

use tessera_core::plan::{Command, Pin, Tier};

use crate::error::TResult;
use crate::pg::nodes::{is_a, list_of, make_list, pstrdup};
use crate::planner::analyze::Analysis;
use crate::planner::combine;
use crate::planner::modify::{
    check_dist_col_unchanged, insert_columns, insert_dist_column, set_insert_shape, target,
    values_as_params,
};
use crate::planner::query::{make_node, param_base, params_of};
use crate::planner::scan::{custom_scan, index_var_tlist, planned_stmt, visible};
use crate::planner::tiers::base_plan;
use crate::planner::unsupported;

struct ValuesSubst {
    values_rti: i32,
    row: Vec<*mut pg_sys::Node>,
}

#[pg_guard]
unsafe extern "C-unwind" fn values_mutator(
    node: *mut pg_sys::Node,
    ctx: *mut c_void,
) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    // SAFETY: called by expression_tree_mutator with valid nodes and our context.
    unsafe {
        let s = &*(ctx as *mut ValuesSubst);
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Var) {
            let v = node as *mut pg_sys::Var;
            if (*v).varno == s.values_rti && (*v).varlevelsup == 0 && (*v).varattno > 0 {
                if let Some(&e) = s.row.get((*v).varattno as usize - 1) {
                    return pg_sys::copyObjectImpl(e as *const c_void) as *mut pg_sys::Node;
                }
            }
        }
        combine::mutate(node, values_mutator, ctx)
    }
}

pub(crate) unsafe fn plan_insert(
    parse: *mut pg_sys::Query,
    a: &Analysis,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading and copying the analyzed Query.
    unsafe {
        let t = target(parse, a)?;
        let meta = a.rtes[t].meta.clone();
        let rtes = list_of::<pg_sys::RangeTblEntry>((*parse).rtable);
        if a.rtes
            .iter()
            .any(|r| r.rti != a.rtes[t].rti || !r.outermost)
        {
            // ON CONFLICT's EXCLUDED pseudo-relation is the target again; anything else is a
            // read of another distributed table.
            let other = a
                .rtes
                .iter()
                .any(|r| !r.outermost || r.meta.table.relid != meta.table.relid);
            if other {
                return Err(unsupported(
                    "INSERT into a distributed table cannot read other distributed tables",
                    "Read the values first, then insert them.",
                ));
            }
        }
        let on_conflict = (*parse).onConflict;
        if !on_conflict.is_null() {
            check_dist_col_unchanged((*on_conflict).onConflictSet, meta.table.dist_attnum)?;
        }
        // The rows: each a list of the target entries' expressions, VALUES columns substituted.
        let values_rti = rtes
            .iter()
            .position(|r| (**r).rtekind == pg_sys::RTEKind::RTE_VALUES)
            .map(|i| i as i32 + 1);
        let tles = insert_columns(parse)?;
        let mut rows: Vec<*mut pg_sys::List> = Vec::new();
        match values_rti {
            None => {
                let exprs: Vec<*mut pg_sys::Node> = tles
                    .iter()
                    .map(|t| {
                        pg_sys::copyObjectImpl((**t).expr as *const c_void) as *mut pg_sys::Node
                    })
                    .collect();
                rows.push(make_list(&exprs));
            }
            Some(rti) => {
                let vrte = rtes[rti as usize - 1];
                for row in list_of::<pg_sys::List>((*vrte).values_lists) {
                    let mut subst = ValuesSubst {
                        values_rti: rti,
                        row: list_of::<pg_sys::Node>(row),
                    };
                    let exprs: Vec<*mut pg_sys::Node> = tles
                        .iter()
                        .map(|t| {
                            values_mutator(
                                (**t).expr as *mut pg_sys::Node,
                                &mut subst as *mut ValuesSubst as *mut c_void,
                            )
                        })
                        .collect();
                    rows.push(make_list(&exprs));
                }
            }
        }
        for &row in &rows {
            if pg_sys::contain_subplans(row as *mut pg_sys::Node) {
                return Err(unsupported(
                    "subqueries in the VALUES of an INSERT into a distributed table are not supported",
                    "Compute the value first and insert it as a constant or parameter.",
                ));
            }
            // Not folded here as PostgreSQL's planner folds constants: its evaluate_expr makes
            // an executor state per value, which costs more than the scan's own ExprStates.
            pg_sys::fix_opfuncids(row as *mut pg_sys::Node);
        }
        let dist_column = insert_dist_column(&meta, &tles)?;
        // The template: the INSERT with one VALUES row of parameters after the user's.
        let base = param_base(parse, bound_params);
        let user_params: Vec<usize> = params_of(parse);
        let q = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        // ON CONFLICT and RETURNING: what the coordinator evaluates goes first.
        let (q, evaluated) = crate::planner::evaluate::take_out(q, base + 1, false);
        let base = base + evaluated.len();
        values_as_params(q, base);
        if let Some(rti) = values_rti {
            let vrte = pg_sys::list_nth((*q).rtable, rti - 1) as *mut pg_sys::RangeTblEntry;
            (*vrte).rtekind = pg_sys::RTEKind::RTE_RESULT;
            (*vrte).values_lists = std::ptr::null_mut();
            (*(*q).jointree).fromlist = std::ptr::null_mut();
        }
        let returning = !(*parse).returningList.is_null();
        let mut plan = base_plan(
            Tier::Router,
            Command::Insert,
            q,
            a,
            if !meta.has_dist_column() {
                Pin::Single
            } else {
                Pin::All
            },
            returning,
        )?;
        plan.params = user_params;
        plan.evaluated = evaluated;
        plan.set_anchor(meta.table.relid.to_u32());
        set_insert_shape(&mut plan, tles.len(), dist_column, base)?;
        let scan_tlist = visible((*parse).returningList);
        let cscan = custom_scan(&plan, scan_tlist, rows.len() as f64);
        (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
        (*cscan).custom_exprs = make_list(&rows);
        Ok(planned_stmt(parse, cscan, a))
    }
}

/// The one-row INSERT ... VALUES `parse` as INSERT ... SELECT of its row: a copy whose
/// column expressions are the outputs of a SELECT without FROM (for a row with set-returning
/// functions, which only a SELECT can expand).
pub(crate) unsafe fn values_as_select(parse: *mut pg_sys::Query) -> *mut pg_sys::Query {
    // SAFETY: building the SELECT and its range table entry in a copy of the analyzed INSERT.
    unsafe {
        let q = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        let tles: Vec<*mut pg_sys::TargetEntry> = list_of::<pg_sys::TargetEntry>((*q).targetList)
            .into_iter()
            .filter(|t| !(**t).resjunk)
            .collect();
        let rti = pg_sys::list_length((*q).rtable) + 1;
        let select = make_node::<pg_sys::Query>(pg_sys::NodeTag::T_Query);
        (*select).commandType = pg_sys::CmdType::CMD_SELECT;
        (*select).querySource = pg_sys::QuerySource::QSRC_ORIGINAL;
        (*select).canSetTag = true;
        (*select).hasTargetSRFs = true;
        (*select).jointree = pg_sys::makeFromExpr(std::ptr::null_mut(), std::ptr::null_mut());
        let mut outputs = Vec::with_capacity(tles.len());
        let mut names = Vec::with_capacity(tles.len());
        for (k, &t) in tles.iter().enumerate() {
            let e = (*t).expr as *mut pg_sys::Node;
            (*select).hasSubLinks |= pg_sys::checkExprHasSubLink(e);
            outputs.push(pg_sys::makeTargetEntry(
                e as *mut pg_sys::Expr,
                (k + 1) as i16,
                (*t).resname,
                false,
            ));
            names.push(pg_sys::makeString(pstrdup(&format!("c{}", k + 1))));
            (*t).expr = pg_sys::makeVar(
                rti,
                (k + 1) as i16,
                pg_sys::exprType(e),
                pg_sys::exprTypmod(e),
                pg_sys::exprCollation(e),
                0,
            ) as *mut pg_sys::Expr;
        }
        (*select).targetList = make_list(&outputs);
        let rte = make_node::<pg_sys::RangeTblEntry>(pg_sys::NodeTag::T_RangeTblEntry);
        (*rte).rtekind = pg_sys::RTEKind::RTE_SUBQUERY;
        (*rte).subquery = select;
        (*rte).eref = pg_sys::makeAlias(c"*SELECT*".as_ptr(), make_list(&names));
        (*q).rtable = pg_sys::lappend((*q).rtable, rte as *mut c_void);
        let rtr = make_node::<pg_sys::RangeTblRef>(pg_sys::NodeTag::T_RangeTblRef);
        (*rtr).rtindex = rti;
        (*(*q).jointree).fromlist = make_list(&[rtr]);
        (*q).hasTargetSRFs = false;
        q
    }
}
