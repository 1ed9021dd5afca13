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
use crate::pg::nodes::{is_a, list_of, make_list, string};

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

/// Replaces each whole-row column of a table that is a whole entry of `tlist` (`SELECT t FROM
/// t`) by `ROW(t.a, t.b, ...)` of its columns. The deparser would print `t.*::schema.t`, a type
/// the workers name after each shard, and one statement may read several shards (`UNION
/// ALL`); an anonymous record's text is the table row's, which the coordinator reads as the
/// table's type. Inside expressions (`row_to_json(t)`) the column stays: there its field names
/// count.
///
/// # Safety
/// `tlist` is a List of TargetEntry of our private copy.
unsafe fn whole_rows_as_row(query: *mut pg_sys::Query, tlist: *mut pg_sys::List) {
    // SAFETY: reading the range table and building Vars and a RowExpr.
    unsafe {
        // On the nullable side of an outer join the whole row is NULL where `ROW(...)` would
        // be a row of NULLs: left as it is (the shard's row type, `sites` splices its name).
        if has_outer_join((*(*query).jointree).fromlist as *mut pg_sys::Node) {
            return;
        }
        for tle in list_of::<pg_sys::TargetEntry>(tlist) {
            let var = (*tle).expr as *mut pg_sys::Var;
            if !is_a(var as *const c_void, pg_sys::NodeTag::T_Var)
                || (*var).varattno != 0
                || (*var).varlevelsup != 0
            {
                continue;
            }
            let rte = pg_sys::rt_fetch((*var).varno as pg_sys::Index, (*query).rtable);
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
                continue;
            }
            let rel = pg_sys::RelationIdGetRelation((*rte).relid);
            if rel.is_null() {
                continue;
            }
            let desc = (*rel).rd_att;
            let mut args = Vec::new();
            let mut names = Vec::new();
            for i in 0..(*desc).natts as usize {
                let att = (*desc).attrs.as_ptr().add(i);
                if (*att).attisdropped {
                    continue;
                }
                args.push(pg_sys::makeVar(
                    (*var).varno,
                    (*att).attnum,
                    (*att).atttypid,
                    (*att).atttypmod,
                    (*att).attcollation,
                    0,
                ) as *mut pg_sys::Node);
                names.push(
                    pg_sys::makeString(pg_sys::pstrdup((*att).attname.data.as_ptr()))
                        as *mut pg_sys::Node,
                );
            }
            pg_sys::RelationClose(rel);
            let row = super::query::make_node::<pg_sys::RowExpr>(pg_sys::NodeTag::T_RowExpr);
            (*row).args = make_list(&args);
            (*row).row_typeid = pg_sys::RECORDOID;
            (*row).row_format = pg_sys::CoercionForm::COERCE_IMPLICIT_CAST;
            (*row).colnames = make_list(&names);
            (*row).location = -1;
            (*tle).expr = row as *mut pg_sys::Expr;
        }
    }
}

/// Whether a join tree item is or holds an outer join.
unsafe fn has_outer_join(node: *mut pg_sys::Node) -> bool {
    // SAFETY: reading join tree nodes.
    unsafe {
        if node.is_null() {
            return false;
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_List) {
            return list_of::<pg_sys::Node>(node as *mut pg_sys::List)
                .into_iter()
                .any(|n| has_outer_join(n));
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_FromExpr) {
            return has_outer_join(
                (*(node as *mut pg_sys::FromExpr)).fromlist as *mut pg_sys::Node,
            );
        }
        if is_a(node as *const c_void, pg_sys::NodeTag::T_JoinExpr) {
            let j = node as *mut pg_sys::JoinExpr;
            return (*j).jointype != pg_sys::JoinType::JOIN_INNER
                || has_outer_join((*j).larg)
                || has_outer_join((*j).rarg);
        }
        false
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
        whole_rows_as_row(query, (*query).targetList);
        whole_rows_as_row(query, (*query).returningList);
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
