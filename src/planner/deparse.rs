//! Worker SQL: PostgreSQL's own deparser, then the parser to find where the tables are.
//!
//! A (transformed) Query is printed with `pg_get_querydef` while `search_path` is only
//! `pg_catalog`, so every relation comes out schema-qualified and every identifier quoted as
//! needed. The text is parsed again with `raw_parser`; each `RangeVar` that names one of the
//! plan's tables gives a [`Site`]: the byte range of that reference. The executor splices the
//! shard names in there (`DistPlan::shard_sql`). Values stay what the deparser made of them:
//! constants as quoted literals, parameters as `$n` that travel as parameters.

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;

use tessera_core::plan::{Site, TableRef};

use crate::error::TResult;
use crate::pg::nodes::{is_a, string};

#[pg_guard]
unsafe extern "C-unwind" fn alias_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: called by the tree walkers with valid nodes of our private copy.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_RangeTblEntry) {
            let rte = node as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && (*rte).alias.is_null()
                && !(*rte).eref.is_null()
            {
                (*rte).alias = pg_sys::makeAlias((*(*rte).eref).aliasname, std::ptr::null_mut());
            }
            return false;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_Query) {
            return pg_sys::query_tree_walker(
                node as *mut pg_sys::Query,
                Some(alias_walker),
                ctx,
                pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
            );
        }
        crate::pg::nodes::walk_children(node, Some(alias_walker), ctx)
    }
}

/// Prints `query` with every relation schema-qualified and given an alias (its own name when
/// it had none: column references then stay valid when the shard name replaces the table
/// name), on one line. A MERGE is printed in parts (`deparse_merge`).
///
/// # Safety
/// `query` is a valid, analyzed Query.
pub unsafe fn querydef(query: *mut pg_sys::Query) -> TResult<String> {
    // SAFETY: a private copy gets the aliases; a GUC nest level scoped to this call is
    // restored below (and by transaction abort if the deparser raises an ERROR).
    unsafe {
        let query = pg_sys::copyObjectImpl(query as *const c_void) as *mut pg_sys::Query;
        // Through the error boundary: an ERROR inside becomes a Rust panic that unwinds
        // this frame, instead of a jump over it.
        pg_guard_ffi_boundary(|| alias_walker(query as *mut pg_sys::Node, std::ptr::null_mut()));
        // Constants are printed in a form every node reads the same under any DateStyle or
        // IntervalStyle (a plan is cached across changes of the session's settings).
        let scope = crate::pg::guc::GucScope::new(&[
            (c"search_path", c"pg_catalog"),
            (c"DateStyle", c"ISO"),
            (c"IntervalStyle", c"postgres"),
            (c"extra_float_digits", c"3"),
        ]);
        let print = |q: *mut pg_sys::Query| string(pg_sys::pg_get_querydef(q, false));
        let text = if (*query).commandType == pg_sys::CmdType::CMD_MERGE {
            super::deparse_merge::merge_text(query, &print)?
        } else {
            print(query)
        };
        drop(scope);
        Ok(tessera_core::sqltext::one_line(&text))
    }
}

/// The table references in `sql` that name one of `tables` (by schema and name).
pub fn sites(sql: &str, tables: &[TableRef]) -> TResult<Vec<Site>> {
    let names: Vec<(&str, &str)> = tables
        .iter()
        .map(|t| (t.schema.as_str(), t.name.as_str()))
        .collect();
    Ok(crate::pg::table_refs::table_sites(sql, &names)?
        .into_iter()
        .map(|(start, end, table)| Site { start, end, table })
        .collect())
}
