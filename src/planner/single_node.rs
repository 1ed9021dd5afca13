//! Statements on one distributed schema's tables run whole on the schema's node.
//!
//! A distributed schema's tables are single-shard tables of one colocation group, on one node
//! (`udf::schemas`). A statement whose distributed tables all belong to one such group
//! (reference tables may join them: every node has a copy) needs nothing from the other nodes:
//! it is deparsed as it is, joins, CTEs (data-modifying ones too), window functions,
//! correlated subqueries, RETURNING, ON CONFLICT and MERGE included, and sent to that node as one
//! task, in one round trip. The decision reads only the metadata cache.
//!
//! What the node cannot do for the coordinator stays on the ladder (`distributed`): a
//! statement that reads a local table or the rows of a WITH query kept on the coordinator,
//! that writes a reference table (every copy must change), or that calls a sequence function
//! or, for a write, any VOLATILE function (a `nextval()` default is the coordinator's
//! sequence; the INSERT planners evaluate it there), or that calls one of Tessera's own
//! functions (they read the coordinator's catalog).

use std::ffi::c_void;

use pgrx::pg_sys;

use tessera_core::plan::{Command, Pin, Tier};

use crate::error::TResult;
use crate::metadata::table::TableKind;
use crate::pg::nodes::{is_a, list_of};
use crate::planner::analyze::Analysis;
use crate::planner::scan::{custom_scan, estimated_rows, index_var_tlist, planned_stmt, visible};
use crate::planner::tiers::base_plan_of;

/// The colocation group of one distributed schema that every distributed table of the query
/// belongs to (reference tables aside), if there is one.
fn one_group(a: &Analysis) -> Option<i32> {
    let mut group = None;
    for r in &a.rtes {
        match r.meta.table.kind() {
            TableKind::Reference => {}
            TableKind::SingleShard => match group {
                None => group = Some(r.meta.table.colocation_id),
                Some(g) if g == r.meta.table.colocation_id => {}
                Some(_) => return None,
            },
            TableKind::Hash => return None,
        }
    }
    group
}

/// Whether the query (or one of its data-modifying WITH queries) writes a reference table.
///
/// # Safety
/// `q` is a valid analyzed Query.
unsafe fn writes_reference(q: *mut pg_sys::Query, a: &Analysis) -> bool {
    // SAFETY: reading the Query's range table and WITH list.
    unsafe {
        let writes = |q: *mut pg_sys::Query| -> bool {
            if (*q).commandType == pg_sys::CmdType::CMD_SELECT || (*q).resultRelation <= 0 {
                return false;
            }
            let rte = pg_sys::list_nth((*q).rtable, (*q).resultRelation - 1)
                as *mut pg_sys::RangeTblEntry;
            a.rtes
                .iter()
                .any(|r| r.meta.table.relid == (*rte).relid && r.meta.is_reference())
        };
        if writes(q) {
            return true;
        }
        list_of::<pg_sys::CommonTableExpr>((*q).cteList)
            .into_iter()
            .any(|cte| {
                let sub = (*cte).ctequery;
                is_a(sub as *const c_void, pg_sys::NodeTag::T_Query)
                    && writes(sub as *mut pg_sys::Query)
            })
    }
}

/// Whether the query calls a sequence function (`nextval`, `currval`, `setval`, `lastval`,
/// or an identity column's next value): sequences are the coordinator's.
///
/// # Safety
/// `q` is a valid analyzed Query.
unsafe fn calls_sequence_functions(q: *mut pg_sys::Query) -> bool {
    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, found: *mut c_void) -> bool {
        if node.is_null() {
            return false;
        }
        // SAFETY: called by the tree walkers with valid nodes and our flag.
        unsafe {
            if is_a(node as *const c_void, pg_sys::NodeTag::T_NextValueExpr) {
                *(found as *mut bool) = true;
                return true;
            }
            if is_a(node as *const c_void, pg_sys::NodeTag::T_FuncExpr) {
                let f = (*(node as *mut pg_sys::FuncExpr)).funcid.to_u32();
                if [
                    pg_sys::F_NEXTVAL,
                    pg_sys::F_CURRVAL,
                    pg_sys::F_SETVAL_REGCLASS_INT8,
                    pg_sys::F_SETVAL_REGCLASS_INT8_BOOL,
                    pg_sys::F_LASTVAL,
                ]
                .contains(&f)
                {
                    *(found as *mut bool) = true;
                    return true;
                }
            }
            if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
                return pg_sys::query_tree_walker(
                    node as *mut pg_sys::Query,
                    Some(walker),
                    found,
                    0,
                );
            }
            crate::pg::nodes::walk_children(node, Some(walker), found)
        }
    }
    let mut found = false;
    // SAFETY: walking a valid Query with our flag.
    unsafe {
        pg_sys::query_tree_walker(q, Some(walker), &mut found as *mut bool as *mut c_void, 0);
    }
    found
}

/// The plan of `parse` as one task on its distributed schema's node, when it is a statement
/// on one distributed schema's tables that the node can run whole; `None` otherwise.
///
/// # Safety
/// `parse` is a valid analyzed Query; `a` its analysis.
pub(crate) unsafe fn plan(
    parse: *mut pg_sys::Query,
    a: &Analysis,
) -> TResult<Option<*mut pg_sys::PlannedStmt>> {
    if one_group(a).is_none() || !a.local_tables.is_empty() || a.cte_results {
        return Ok(None);
    }
    // SAFETY: reading and walking the analyzed Query.
    unsafe {
        let command = match (*parse).commandType {
            pg_sys::CmdType::CMD_SELECT => Command::Select,
            pg_sys::CmdType::CMD_INSERT => Command::Insert,
            pg_sys::CmdType::CMD_UPDATE => Command::Update,
            pg_sys::CmdType::CMD_DELETE => Command::Delete,
            pg_sys::CmdType::CMD_MERGE => Command::Merge,
            _ => return Ok(None),
        };
        let writes = command != Command::Select || (*parse).hasModifyingCTE;
        if writes
            && (pg_sys::contain_volatile_functions(parse as *mut pg_sys::Node)
                || writes_reference(parse, a))
        {
            return Ok(None);
        }
        if calls_sequence_functions(parse) || super::query::coordinator_function(parse).is_some() {
            return Ok(None);
        }
        let returns_rows = command == Command::Select || !(*parse).returningList.is_null();
        let mut plan = base_plan_of(
            Tier::Router,
            command,
            parse,
            a,
            Pin::Single,
            returns_rows,
            true,
        )?;
        plan.modifying_cte = (*parse).hasModifyingCTE;
        plan.notes.push(
            "every table is in one distributed schema (or a reference table): the statement runs whole on the schema's node"
                .to_string(),
        );
        let tlist = if command == Command::Select {
            (*parse).targetList
        } else {
            (*parse).returningList
        };
        let scan_tlist = visible(tlist);
        let rows = if command == Command::Select {
            estimated_rows(parse, a, true, 100.0)
        } else {
            1.0
        };
        let cscan = custom_scan(&plan, scan_tlist, rows);
        (*cscan).scan.plan.targetlist = index_var_tlist(scan_tlist);
        Ok(Some(planned_stmt(parse, cscan, a)))
    }
}
