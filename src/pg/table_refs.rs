//! Where SQL text names a table: the byte ranges of its table references (RangeVars) and of
//! its row type's name (TypeNames), found by PostgreSQL's own raw parser, so that a shard's name can be spliced in where the
//! coordinator's table is named (a worker query, a policy's expression).

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;

use crate::error::{TResult, TesseraError};
use crate::pg::nodes::{is_a, list_of, string};

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
        // A table's row type is named as the table is: `h.*::public.t` (how the deparser
        // prints a whole-row column in a select list), `NULL::public.t`, `public.t[]`. The
        // shard's row type has the shard's name.
        if is_a(node as *const c_void, pg_sys::NodeTag::T_TypeName) {
            let tn = node as *mut pg_sys::TypeName;
            let names = list_of::<pg_sys::Node>((*tn).names);
            if let [schema, name] = names.as_slice() {
                if is_a(*schema as *const c_void, pg_sys::NodeTag::T_String)
                    && is_a(*name as *const c_void, pg_sys::NodeTag::T_String)
                    && (*tn).location >= 0
                {
                    let found = &mut *(ctx as *mut Found);
                    found.refs.push((
                        string((*(*schema as *mut pg_sys::String)).sval),
                        string((*(*name as *mut pg_sys::String)).sval),
                        (*tn).location as usize,
                    ));
                }
            }
        }
        pg_sys::raw_expression_tree_walker(node, Some(find_range_vars), ctx)
    }
}

/// The references in `sql` to one of `tables` (schema, name): `(start, end, index into
/// tables)` by start. Only schema-qualified references match (print the SQL with every name
/// qualified first).
pub fn table_sites(sql: &str, tables: &[(&str, &str)]) -> TResult<Vec<(usize, usize, usize)>> {
    let c = std::ffi::CString::new(sql).map_err(|_| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "the SQL text holds a NUL byte",
        )
    })?;
    let mut found = Found { refs: Vec::new() };
    // SAFETY: raw_parser parses a NUL-terminated string into a List of RawStmt; the walker
    // only reads the nodes.
    unsafe {
        let stmts = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        for raw in list_of::<pg_sys::RawStmt>(stmts) {
            let ctx = &mut found as *mut Found as *mut c_void;
            // The raw tree walker knows queries, not utility statements: a policy's
            // expressions are walked themselves.
            let roots = if is_a(
                (*raw).stmt as *const c_void,
                pg_sys::NodeTag::T_CreatePolicyStmt,
            ) {
                let p = (*raw).stmt as *mut pg_sys::CreatePolicyStmt;
                vec![(*p).qual, (*p).with_check]
            } else {
                vec![(*raw).stmt]
            };
            for root in roots {
                // Through the error boundary (the walker is guarded; `found` holds a Vec).
                pg_guard_ffi_boundary(|| find_range_vars(root, ctx));
            }
        }
    }
    let mut out = Vec::new();
    for (schema, name, at) in found.refs {
        let Some(table) = tables.iter().position(|(s, n)| *s == schema && *n == name) else {
            continue;
        };
        let end = tessera_core::sqltext::qualified_name_end(sql, at).ok_or_else(|| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("could not read the table name at offset {at} of the SQL text"),
            )
        })?;
        out.push((at, end, table));
    }
    out.sort_by_key(|s| s.0);
    Ok(out)
}
