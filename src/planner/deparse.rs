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

use crate::error::{TResult, TesseraError};
use crate::pg::nodes::{is_a, list_of, string};

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
        pg_sys::expression_tree_walker(node, Some(alias_walker), ctx)
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

struct Found {
    refs: Vec<(String, String, usize)>,
}

#[pg_guard]
unsafe extern "C-unwind" fn find_range_vars(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: the walker is called with raw parse tree nodes and our Found context.
    unsafe {
        if is_a(node as *const c_void, pg_sys::NodeTag::T_RangeVar) {
            let rv = node as *mut pg_sys::RangeVar;
            let found = &mut *(ctx as *mut Found);
            found.refs.push((
                string((*rv).schemaname),
                string((*rv).relname),
                (*rv).location.max(0) as usize,
            ));
        }
        pg_sys::raw_expression_tree_walker(node, Some(find_range_vars), ctx)
    }
}

/// The table references in `sql` that name one of `tables` (by schema and name).
pub fn sites(sql: &str, tables: &[TableRef]) -> TResult<Vec<Site>> {
    let c = std::ffi::CString::new(sql).map_err(|_| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "worker query holds a NUL byte",
        )
    })?;
    let mut found = Found { refs: Vec::new() };
    // SAFETY: raw_parser parses a NUL-terminated string into a List of RawStmt; the walker
    // only reads the nodes.
    unsafe {
        let stmts = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        for raw in list_of::<pg_sys::RawStmt>(stmts) {
            let ctx = &mut found as *mut Found as *mut c_void;
            // Through the error boundary (the walker is guarded; `found` holds a Vec).
            pg_guard_ffi_boundary(|| find_range_vars((*raw).stmt, ctx));
        }
    }
    let mut out = Vec::new();
    for (schema, name, at) in found.refs {
        let Some(table) = tables
            .iter()
            .position(|t| t.schema == schema && t.name == name)
        else {
            continue;
        };
        let end = tessera_core::sqltext::qualified_name_end(sql, at).ok_or_else(|| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("could not read the table name at offset {at} of the worker query"),
            )
        })?;
        out.push(Site {
            start: at,
            end,
            table,
        });
    }
    out.sort_by_key(|s| s.start);
    Ok(out)
}
