//! Window functions over the whole result (not partitioned by the distribution column): the
//! workers send the rows (or, grouped by the distribution column, the groups they finished),
//! the combine query computes the window functions. Over aggregates combined on the
//! coordinator the two-phase split keeps the window functions in its combine query.
//!
//! The select list's window-free entries (the window's PARTITION BY and ORDER BY keys among
//! them) are worker columns; an entry with a window function is computed by the combine query
//! from worker columns that carry the plain columns (Vars) it uses.
//!
//! The shards apply the query's ORDER BY and LIMIT (count + offset) when that cannot change a
//! window function's value: every window function is `row_number`, `rank` or `dense_rank`,
//! whose value for a row depends only on the rows before it in the window's order, and every
//! window's ORDER BY is a leading part of the query's (the rows before a row in the first k
//! are all among every shard's first k). That is the ranked top-k of hybrid search:
//! `SELECT id, rank() OVER (ORDER BY embedding <=> $1) FROM docs ORDER BY embedding <=> $1
//! LIMIT 20`, whose shard queries are then nearest-neighbour searches. Otherwise the shards
//! send every row that passes the WHERE clause.

use std::ffi::c_void;

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::{copy, limit_shards, mutate, var, Split};
use crate::error::TResult;
use crate::pg::nodes::{is_a, list_of, make_list, pstrdup};
use crate::planner::unsupported;

struct Pull {
    /// The worker's select list so far.
    worker: Vec<*mut pg_sys::TargetEntry>,
    /// Window functions met, by OID.
    functions: Vec<pg_sys::Oid>,
}

impl Pull {
    /// The worker column that carries `expr` (added when new).
    unsafe fn column(&mut self, expr: *mut pg_sys::Node) -> usize {
        // SAFETY: comparing and copying valid expressions.
        unsafe {
            if let Some(i) = self
                .worker
                .iter()
                .position(|t| pg_sys::equal((**t).expr as *const c_void, expr as *const c_void))
            {
                return i + 1;
            }
            let resno = self.worker.len() + 1;
            let t = pg_sys::makeTargetEntry(
                copy(expr) as *mut pg_sys::Expr,
                resno as i16,
                pstrdup(&format!("w{resno}")),
                false,
            );
            self.worker.push(t);
            resno
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn pull_mutator(
    node: *mut pg_sys::Node,
    ctx: *mut c_void,
) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    // SAFETY: called by expression_tree_mutator with valid nodes and our context.
    unsafe {
        let p = &mut *(ctx as *mut Pull);
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Var)
            && (*(node as *mut pg_sys::Var)).varlevelsup == 0
        {
            let col = p.column(node);
            return var(1, col, node) as *mut pg_sys::Node;
        }
        // An aggregate is final on the workers (the query is grouped by the distribution
        // column): its value is a worker column.
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Aggref)
            && (*(node as *mut pg_sys::Aggref)).agglevelsup == 0
        {
            let col = p.column(node);
            return var(1, col, node) as *mut pg_sys::Node;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_WindowFunc) {
            p.functions
                .push((*(node as *mut pg_sys::WindowFunc)).winfnoid);
        }
        mutate(node, pull_mutator, ctx)
    }
}

/// Whether `oid` is `row_number()`, `rank()` or `dense_rank()` of pg_catalog.
fn ranks_by_preceding_rows(oid: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookups by OID; the name is copied at once.
    unsafe {
        if pg_sys::get_func_namespace(oid) != pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE) {
            return false;
        }
        let name = pg_sys::get_func_name(oid);
        if name.is_null() {
            return false;
        }
        let name = std::ffi::CStr::from_ptr(name).to_bytes();
        matches!(name, b"row_number" | b"rank" | b"dense_rank") && pg_sys::get_func_nargs(oid) == 0
    }
}

/// Whether the sort clause `prefix` is a leading part of `sort`.
unsafe fn leads(prefix: *mut pg_sys::List, sort: *mut pg_sys::List) -> bool {
    // SAFETY: reading SortGroupClauses.
    unsafe {
        let p = list_of::<pg_sys::SortGroupClause>(prefix);
        let s = list_of::<pg_sys::SortGroupClause>(sort);
        p.len() <= s.len()
            && p.iter().zip(&s).all(|(a, b)| {
                (**a).tleSortGroupRef == (**b).tleSortGroupRef
                    && (**a).sortop == (**b).sortop
                    && (**a).nulls_first == (**b).nulls_first
            })
    }
}

/// The split of a multi-shard SELECT with window functions, without aggregates or grouped by
/// the distribution column (each group is then whole on one shard group, and a row here).
///
/// # Safety
/// `parse` is a valid analyzed SELECT with window functions, without aggregates or grouped by
/// a distribution column.
pub(crate) unsafe fn split(parse: *mut pg_sys::Query) -> TResult<Split> {
    // SAFETY: copying and editing Query trees.
    unsafe {
        if (*parse).hasTargetSRFs {
            // PostgreSQL computes window functions before the select list's set-returning
            // functions expand the rows; the workers would expand them first.
            return Err(unsupported(
                "set-returning functions next to window functions not partitioned by the distribution column are not supported across shards",
                "Move the set-returning function into a subquery, or partition the window by the distribution column.",
            ));
        }
        let mut p = Pull {
            worker: Vec::new(),
            functions: Vec::new(),
        };
        let tlist = list_of::<pg_sys::TargetEntry>((*parse).targetList);
        // Window-free entries first, in their order, so the sort keys keep their references.
        let mut plain = Vec::new();
        for &tle in &tlist {
            if pg_sys::contain_window_function((*tle).expr as *mut pg_sys::Node) {
                continue;
            }
            let resno = p.worker.len() + 1;
            let w = pg_sys::makeTargetEntry(copy((*tle).expr), resno as i16, (*tle).resname, false);
            (*w).ressortgroupref = (*tle).ressortgroupref;
            p.worker.push(w);
            plain.push((tle, resno));
        }
        let ctx = &mut p as *mut Pull as *mut c_void;
        let mut ct = Vec::new();
        for &tle in &tlist {
            let e = match plain.iter().find(|(t, _)| *t == tle) {
                Some(&(_, col)) => var(1, col, (*tle).expr as *mut pg_sys::Node),
                None => pull_mutator((*tle).expr as *mut pg_sys::Node, ctx) as *mut pg_sys::Expr,
            };
            let n = pg_sys::makeTargetEntry(e, (*tle).resno, (*tle).resname, (*tle).resjunk);
            (*n).ressortgroupref = (*tle).ressortgroupref;
            ct.push(n);
        }
        // The query's sort keys are all worker columns (none is a window function's value).
        let sort_on_workers = list_of::<pg_sys::SortGroupClause>((*parse).sortClause)
            .into_iter()
            .all(|s| {
                plain
                    .iter()
                    .any(|(t, _)| (**t).ressortgroupref == (*s).tleSortGroupRef)
            });
        let windows_follow_sort = list_of::<pg_sys::WindowClause>((*parse).windowClause)
            .into_iter()
            .all(|w| leads((*w).orderClause, (*parse).sortClause));
        let top_k = !(*parse).sortClause.is_null()
            && !(*parse).limitCount.is_null()
            && (*parse).distinctClause.is_null()
            && sort_on_workers
            && windows_follow_sort
            && p.functions.iter().all(|&f| ranks_by_preceding_rows(f));
        let w = copy(parse);
        (*w).targetList = make_list(&p.worker);
        (*w).hasWindowFuncs = false;
        (*w).windowClause = std::ptr::null_mut();
        (*w).distinctClause = std::ptr::null_mut();
        (*w).hasDistinctOn = false;
        if top_k {
            limit_shards(parse, w);
        } else {
            (*w).sortClause = std::ptr::null_mut();
            (*w).limitCount = std::ptr::null_mut();
            (*w).limitOffset = std::ptr::null_mut();
        }
        let c = copy(parse);
        (*c).targetList = make_list(&ct);
        (*c).hasSubLinks = false;
        // Grouped by the distribution column: the workers group, aggregate and apply HAVING;
        // the coordinator's rows are the groups.
        (*c).groupClause = std::ptr::null_mut();
        (*c).groupDistinct = false;
        (*c).havingQual = std::ptr::null_mut();
        (*c).hasAggs = false;
        let note = if top_k {
            "window functions on the coordinator over every shard's top rows"
        } else {
            "window functions on the coordinator over the shards' rows"
        };
        Ok(Split {
            worker: w,
            combine: c,
            notes: vec![note.to_string()],
            partial_states: Vec::new(),
        })
    }
}
