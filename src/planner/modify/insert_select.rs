//! INSERT ... SELECT: pushed down to each shard group between co-located tables, otherwise
//! its SELECT runs as a query of its own and the rows go to the shards through the coordinator.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::prelude::*;

use tessera_core::plan::{Command, Pin, Tier};

use crate::error::TResult;
use crate::pg::nodes::{is_a, list_of, make_list, pstrdup};
use crate::planner::analyze::{analyze, Analysis};
use crate::planner::combine;
use crate::planner::modify::{
    insert_columns, insert_dist_column, set_insert_shape, sub_rti, values_as_params,
};
use crate::planner::query::{make_node, param_base};
use crate::planner::scan::{custom_scan, index_var_tlist, planned_stmt, visible};
use crate::planner::tiers::{base_plan, common_pin, multi_shard_blocker};
use crate::planner::unsupported;

/// INSERT ... SELECT: between co-located tables, selecting the distribution column into the
/// distribution column, the whole statement runs on each shard group (`INSERT INTO target_N
/// SELECT ... FROM source_N`) and no row passes through the coordinator. Otherwise the SELECT
/// runs as a query of its own (distributed or local) and its rows go to the shards through
/// the coordinator ([`plan_insert_via_coordinator`]).
pub(crate) unsafe fn plan_insert_select(
    parse: *mut pg_sys::Query,
    a: &Analysis,
    t: usize,
    query_string: *const std::ffi::c_char,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading the analyzed INSERT and its SELECT.
    unsafe {
        let meta = a.rtes[t].meta.clone();
        let sub_rti = sub_rti(parse).expect("an INSERT ... SELECT has its SELECT as a subquery");
        let sub_rte = pg_sys::list_nth((*parse).rtable, sub_rti - 1) as *mut pg_sys::RangeTblEntry;
        let sub = (*sub_rte).subquery;
        let via_coordinator = |why: &str| {
            plan_insert_via_coordinator(parse, a, t, sub_rti, why, query_string, bound_params)
        };
        let sa = analyze(sub)?;
        if !sa.local_tables.is_empty() {
            return via_coordinator("the SELECT reads a local table");
        }
        if sa.cte_results {
            return via_coordinator("the SELECT reads the rows of a WITH query");
        }
        if pg_sys::contain_volatile_functions(sub as *mut pg_sys::Node) {
            return via_coordinator("the SELECT calls a VOLATILE function");
        }
        if meta.is_reference() && sa.hash_rtes().next().is_some() {
            return via_coordinator("a reference table is filled from a distributed table");
        }
        if sa
            .hash_rtes()
            .any(|r| r.meta.table.colocation_id != meta.table.colocation_id)
        {
            return via_coordinator("the tables are not co-located");
        }
        let (tier, pin) = if meta.is_reference() {
            if sa.rtes.is_empty() {
                return via_coordinator("the SELECT reads no table");
            }
            (Tier::Router, Pin::Single)
        } else {
            if sa.hash_rtes().next().is_none() {
                return via_coordinator("the SELECT reads no co-located distributed table");
            }
            if multi_shard_blocker(&sa).is_some() {
                return via_coordinator("the SELECT cannot run on each shard group alone");
            }
            if combine::needs_combine(sub) && !combine::grouped_by_dist_col(sub, &sa) {
                return via_coordinator("the SELECT aggregates, sorts or limits across shards");
            }
            if !(*sub).sortClause.is_null()
                || !(*sub).limitCount.is_null()
                || !(*sub).limitOffset.is_null()
            {
                return via_coordinator("the SELECT has ORDER BY or LIMIT");
            }
            // The target's distribution column must take the source's distribution column.
            let Some(dist_tle) = list_of::<pg_sys::TargetEntry>((*parse).targetList)
                .into_iter()
                .find(|x| (**x).resno == meta.table.dist_attnum && !(**x).resjunk)
            else {
                return via_coordinator("the distribution column gets no value");
            };
            let e = combine::strip((*dist_tle).expr as *mut pg_sys::Node);
            let from_source = is_a(e as *const c_void, pg_sys::NodeTag::T_Var) && {
                let v = e as *mut pg_sys::Var;
                (*v).varno == sub_rti
                    && list_of::<pg_sys::TargetEntry>((*sub).targetList)
                        .into_iter()
                        .find(|x| (**x).resno == (*v).varattno)
                        .is_some_and(|x| combine::is_dist_col((*x).expr as *mut pg_sys::Node, &sa))
            };
            if !from_source {
                return via_coordinator(
                    "the distribution column is not filled from the source's distribution column",
                );
            }
            match common_pin(&sa) {
                Some(pin) => (Tier::Router, pin),
                None => (Tier::MultiShard, Pin::All),
            }
        };
        if pg_sys::contain_volatile_functions((*parse).targetList as *mut pg_sys::Node) {
            // A column default such as nextval() of a serial column: the coordinator's
            // sequence gives the values.
            return via_coordinator("a column's value is VOLATILE (a default such as nextval())");
        }
        let returning = !(*parse).returningList.is_null();
        let worker = in_column_order(parse, sub_rti);
        let mut plan = base_plan(tier, Command::Insert, worker, a, pin, returning)?;
        plan.set_anchor(meta.table.relid.to_u32());
        plan.notes
            .push("INSERT ... SELECT between co-located tables, run on each shard group".into());
        let scan_tlist = visible((*parse).returningList);
        let cscan = custom_scan(&plan, scan_tlist, 1000.0);
        (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
        Ok(planned_stmt(parse, cscan, a))
    }
}

/// Which Vars [`renumber_vars`] points elsewhere: those of range-table index `from` at the
/// level it starts on, to `to`.
struct Renumber {
    from: i32,
    to: i32,
}

/// Points the Vars of range-table index `from` at `to` (the scan's outer tuple, `OUTER_VAR`,
/// for the row the SELECT's own plan returns; another entry of a new query level).
#[pg_guard]
unsafe extern "C-unwind" fn renumber_vars(
    node: *mut pg_sys::Node,
    ctx: *mut c_void,
) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    // SAFETY: called by expression_tree_mutator with valid nodes and our context.
    unsafe {
        let r = &*(ctx as *mut Renumber);
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Var) {
            let v = pg_sys::copyObjectImpl(node as *const c_void) as *mut pg_sys::Var;
            if (*v).varno == r.from && (*v).varlevelsup == 0 {
                (*v).varno = r.to;
                if r.to > 0 {
                    // The deparser names a Var by its syntactic position.
                    (*v).varnosyn = r.to as u32;
                    (*v).varattnosyn = (*v).varattno;
                }
            }
            return v as *mut pg_sys::Node;
        }
        combine::mutate(node, renumber_vars, ctx)
    }
}

/// The INSERT ... SELECT `parse`, its SELECT wrapped (when needed) in one that returns the
/// INSERT's columns in their order. PostgreSQL's deparser prints an INSERT ... SELECT as the
/// column list of its target list followed by the SELECT as it is, which is right only when
/// the k-th column takes the SELECT's k-th output; the rewriter has sorted the target list by
/// column number and added the other columns' defaults (`created DEFAULT now()`), so the
/// worker would get `INSERT INTO t (a, b, created) SELECT b_value, a_value FROM ...`. The
/// wrapper, `SELECT a_value, b_value, now() FROM (the SELECT) "*SELECT*"`, puts each value
/// under its column.
unsafe fn in_column_order(parse: *mut pg_sys::Query, sub_rti: i32) -> *mut pg_sys::Query {
    // SAFETY: reading the analyzed INSERT; building the wrapper in a copy of it.
    unsafe {
        let tles: Vec<*mut pg_sys::TargetEntry> =
            list_of::<pg_sys::TargetEntry>((*parse).targetList)
                .into_iter()
                .filter(|t| !(**t).resjunk)
                .collect();
        let sub_rte = pg_sys::list_nth((*parse).rtable, sub_rti - 1) as *mut pg_sys::RangeTblEntry;
        let sub_width = list_of::<pg_sys::TargetEntry>((*(*sub_rte).subquery).targetList)
            .into_iter()
            .filter(|t| !(**t).resjunk)
            .count();
        let aligned = sub_width == tles.len()
            && tles.iter().enumerate().all(|(k, &t)| {
                let e = combine::strip((*t).expr as *mut pg_sys::Node);
                is_a(e as *const c_void, pg_sys::NodeTag::T_Var) && {
                    let v = e as *mut pg_sys::Var;
                    (*v).varno == sub_rti
                        && (*v).varlevelsup == 0
                        && (*v).varattno as usize == k + 1
                }
            });
        if aligned {
            return parse;
        }
        let q = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        let rte = pg_sys::list_nth((*q).rtable, sub_rti - 1) as *mut pg_sys::RangeTblEntry;
        let inner = make_node::<pg_sys::RangeTblEntry>(pg_sys::NodeTag::T_RangeTblEntry);
        (*inner).rtekind = pg_sys::RTEKind::RTE_SUBQUERY;
        (*inner).subquery = (*rte).subquery;
        (*inner).eref = pg_sys::copyObjectImpl((*rte).eref as *const c_void) as *mut pg_sys::Alias;
        (*inner).inFromCl = true;
        let wrapper = make_node::<pg_sys::Query>(pg_sys::NodeTag::T_Query);
        (*wrapper).commandType = pg_sys::CmdType::CMD_SELECT;
        (*wrapper).querySource = pg_sys::QuerySource::QSRC_ORIGINAL;
        (*wrapper).canSetTag = true;
        (*wrapper).rtable = make_list(&[inner]);
        let rtr = make_node::<pg_sys::RangeTblRef>(pg_sys::NodeTag::T_RangeTblRef);
        (*rtr).rtindex = 1;
        (*wrapper).jointree = pg_sys::makeFromExpr(make_list(&[rtr]), std::ptr::null_mut());
        let mut renumber = Renumber {
            from: sub_rti,
            to: 1,
        };
        let mut outputs = Vec::with_capacity(tles.len());
        let mut names = Vec::with_capacity(tles.len());
        let qtles: Vec<*mut pg_sys::TargetEntry> = list_of::<pg_sys::TargetEntry>((*q).targetList)
            .into_iter()
            .filter(|t| !(**t).resjunk)
            .collect();
        for (k, &t) in qtles.iter().enumerate() {
            let e = renumber_vars(
                (*t).expr as *mut pg_sys::Node,
                &mut renumber as *mut Renumber as *mut c_void,
            );
            outputs.push(pg_sys::makeTargetEntry(
                e as *mut pg_sys::Expr,
                (k + 1) as i16,
                (*t).resname,
                false,
            ));
            names.push(pg_sys::makeString(pstrdup(&format!("c{}", k + 1))));
            (*wrapper).hasSubLinks |= pg_sys::checkExprHasSubLink(e);
            (*t).expr = pg_sys::makeVar(
                sub_rti,
                (k + 1) as i16,
                pg_sys::exprType(e),
                pg_sys::exprTypmod(e),
                pg_sys::exprCollation(e),
                0,
            ) as *mut pg_sys::Expr;
        }
        (*wrapper).targetList = make_list(&outputs);
        (*rte).subquery = wrapper;
        (*(*rte).eref).colnames = make_list(&names);
        q
    }
}

/// INSERT ... SELECT whose rows pass through the coordinator: the SELECT is planned as a
/// query of its own (so it may be distributed, join local tables, aggregate across shards),
/// and the scan evaluates the INSERT's column expressions over each of its rows (defaults and
/// `nextval()` included) and routes the rows to the shards in batches of multi-row INSERTs,
/// all shards of a batch at once, inside the distributed transaction. The statement sent is
/// the user's INSERT with its SELECT replaced by a VALUES list of parameters, so ON CONFLICT
/// and RETURNING keep working.
#[allow(clippy::too_many_arguments)]
unsafe fn plan_insert_via_coordinator(
    parse: *mut pg_sys::Query,
    a: &Analysis,
    t: usize,
    sub_rti: i32,
    why: &str,
    query_string: *const std::ffi::c_char,
    bound_params: pg_sys::ParamListInfo,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading and copying the analyzed Query; planning its SELECT.
    unsafe {
        let meta = a.rtes[t].meta.clone();
        if !(*parse).cteList.is_null() {
            return Err(unsupported(
                format!("WITH before INSERT ... SELECT into a distributed table is not supported when the rows pass through the coordinator ({why})"),
                "Move the WITH clause into the SELECT: INSERT INTO t WITH x AS (...) SELECT ... FROM x.",
            ));
        }
        let tles = insert_columns(parse)?;
        let dist_column = insert_dist_column(&meta, &tles)?;
        // The row: the INSERT's column expressions over the SELECT's output.
        let mut renumber = Renumber {
            from: sub_rti,
            to: pg_sys::OUTER_VAR,
        };
        let exprs: Vec<*mut pg_sys::Node> = tles
            .iter()
            .map(|t| {
                renumber_vars(
                    (**t).expr as *mut pg_sys::Node,
                    &mut renumber as *mut Renumber as *mut c_void,
                )
            })
            .collect();
        let row = make_list(&exprs);
        if pg_sys::contain_subplans(row as *mut pg_sys::Node) {
            return Err(unsupported(
                "subqueries in the column expressions of an INSERT ... SELECT into a distributed table are not supported",
                "Compute the value in the SELECT.",
            ));
        }
        pg_sys::fix_opfuncids(row as *mut pg_sys::Node);

        // The SELECT, planned on its own (through this planner hook when it is distributed).
        let sub_rte = pg_sys::list_nth((*parse).rtable, sub_rti - 1) as *mut pg_sys::RangeTblEntry;
        let sub =
            pg_sys::copyObjectImpl((*sub_rte).subquery as *const c_void) as *mut pg_sys::Query;
        let child = pg_sys::planner(sub, query_string, 0, bound_params);

        // The template: the INSERT with its SELECT replaced by one VALUES row of parameters
        // after the user's.
        let base = param_base(parse, bound_params);
        let q = pg_sys::copyObjectImpl(parse as *const c_void) as *mut pg_sys::Query;
        let qsub = pg_sys::list_nth((*q).rtable, sub_rti - 1) as *mut pg_sys::RangeTblEntry;
        (*qsub).rtekind = pg_sys::RTEKind::RTE_RESULT;
        (*qsub).subquery = std::ptr::null_mut();
        (*(*q).jointree).fromlist = std::ptr::null_mut();
        // ON CONFLICT and RETURNING: what the coordinator evaluates goes first.
        let (q, evaluated) = crate::planner::evaluate::take_out(q, base + 1, false);
        let base = base + evaluated.len();
        values_as_params(q, base);
        let qa = analyze(q)?;
        let returning = !(*parse).returningList.is_null();
        let (tier, pin) = if !meta.has_dist_column() {
            (Tier::Router, Pin::Single)
        } else {
            (Tier::MultiShard, Pin::All)
        };
        let mut plan = base_plan(tier, Command::Insert, q, &qa, pin, returning)?;
        plan.params.retain(|&p| p <= base);
        plan.evaluated = evaluated;
        plan.set_anchor(meta.table.relid.to_u32());
        set_insert_shape(&mut plan, tles.len(), dist_column, base)?;
        plan.notes
            .push(format!("INSERT ... SELECT through the coordinator: {why}"));
        let scan_tlist = visible((*parse).returningList);
        let cscan = custom_scan(&plan, scan_tlist, (*(*child).planTree).plan_rows);
        (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
        (*cscan).custom_exprs = make_list(&[row]);
        // Plain rows (no ON CONFLICT, no RETURNING) are sent with COPY, which the shards take
        // much faster than large multi-row INSERTs: the column list, quoted, for
        // `COPY shard (...) FROM STDIN`.
        let copy_columns = ((*parse).onConflict.is_null() && (*parse).returningList.is_null())
            .then(|| {
                let relid = meta.table.relid;
                tles.iter()
                    .map(|&tle| {
                        let name = pg_sys::get_attname(relid, (*tle).resno, false);
                        pgrx::spi::quote_identifier(crate::pg::nodes::string(name))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            });
        crate::executor::scan_private::set_child(cscan, child, copy_columns.as_deref());
        let stmt = planned_stmt(parse, cscan, a);
        (*stmt).relationOids =
            pg_sys::list_concat_unique_oid((*stmt).relationOids, (*child).relationOids);
        (*stmt).invalItems = pg_sys::list_concat((*stmt).invalItems, (*child).invalItems);
        Ok(stmt)
    }
}
