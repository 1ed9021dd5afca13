//! INSERT, UPDATE and DELETE on distributed tables: what their planners share (the target
//! table, its distribution column, the VALUES row of parameters of an INSERT template).

pub(crate) mod insert_select;
pub(crate) mod insert_values;
pub(crate) mod update_delete;

use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::prelude::*;

use tessera_core::plan::{DistPlan, InsertShape};

use crate::error::{TResult, TesseraError};
use crate::metadata::cache::TableMeta;
use crate::pg::nodes::{is_a, list_of};
use crate::planner::analyze::Analysis;
use crate::planner::query::extern_param;
use crate::planner::unsupported;

/// The column entries of an INSERT (not junk); an assignment into a field or an element of a
/// column is refused.
pub(crate) unsafe fn insert_columns(
    parse: *mut pg_sys::Query,
) -> TResult<Vec<*mut pg_sys::TargetEntry>> {
    // SAFETY: reading the Query's target list.
    unsafe {
        let tles: Vec<*mut pg_sys::TargetEntry> =
            list_of::<pg_sys::TargetEntry>((*parse).targetList)
                .into_iter()
                .filter(|t| !(**t).resjunk)
                .collect();
        for &tle in &tles {
            let e = (*tle).expr as *const c_void;
            if is_a(e, pg_sys::NodeTag::T_FieldStore) || is_a(e, pg_sys::NodeTag::T_SubscriptingRef)
            {
                return Err(unsupported(
                    "INSERT into a field or element of a column of a distributed table is not supported",
                    "Insert the whole column value.",
                ));
            }
        }
        Ok(tles)
    }
}

/// Which of the INSERT's columns takes the distribution column (None for a reference table);
/// an INSERT without it is refused.
pub(crate) unsafe fn insert_dist_column(
    meta: &TableMeta,
    tles: &[*mut pg_sys::TargetEntry],
) -> TResult<Option<usize>> {
    if !meta.has_dist_column() {
        return Ok(None);
    }
    // SAFETY: each entry is a live TargetEntry of the Query being planned.
    let resno = |t: &*mut pg_sys::TargetEntry| unsafe { (**t).resno };
    match tles.iter().position(|t| resno(t) == meta.table.dist_attnum) {
        Some(i) => Ok(Some(i)),
        None => Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
            format!(
                "cannot perform an INSERT without a value for the distribution column of {}.{}",
                meta.schema, meta.name
            ),
        )
        .hint("Every row of a distributed table needs a value in its distribution column.")),
    }
}

/// Puts parameters `$base+1, $base+2, ...` in place of the column expressions of the INSERT
/// `q`: the VALUES row of the worker template.
pub(crate) unsafe fn values_as_params(q: *mut pg_sys::Query, base: usize) {
    // SAFETY: editing the target list of a Query copy.
    unsafe {
        let mut i = 0;
        for tle in list_of::<pg_sys::TargetEntry>((*q).targetList) {
            if (*tle).resjunk {
                continue;
            }
            let e = (*tle).expr as *mut pg_sys::Node;
            (*tle).expr = extern_param(
                base + i + 1,
                pg_sys::exprType(e),
                pg_sys::exprTypmod(e),
                pg_sys::exprCollation(e),
            ) as *mut pg_sys::Expr;
            i += 1;
        }
    }
}

/// The target relation of an INSERT/UPDATE/DELETE and its metadata.
pub(crate) unsafe fn target(parse: *mut pg_sys::Query, a: &Analysis) -> TResult<usize> {
    // SAFETY: reading the Query's result relation.
    let rti = unsafe { (*parse).resultRelation } as u32;
    a.rtes
        .iter()
        .position(|r| r.outermost && r.rti == rti)
        .ok_or_else(|| {
            unsupported(
                "cannot modify a local table with a query that reads distributed tables",
                "Read the distributed rows into the application, or distribute the target table too.",
            )
        })
}

/// Refuses a change of the distribution column (its value decides the shard).
pub(crate) unsafe fn check_dist_col_unchanged(
    tlist: *mut pg_sys::List,
    dist_attnum: i16,
) -> TResult<()> {
    // SAFETY: reading TargetEntries.
    unsafe {
        for tle in list_of::<pg_sys::TargetEntry>(tlist) {
            if !(*tle).resjunk && (*tle).resno == dist_attnum && dist_attnum > 0 {
                return Err(unsupported(
                    "modifying the distribution column of a distributed table is not supported",
                    "Delete the row and insert it with the new value instead.",
                ));
            }
        }
    }
    Ok(())
}

/// The INSERT's shape in its plan: `columns` values per row, parameters after `base`, the
/// VALUES row of the template found by the parser.
pub(crate) fn set_insert_shape(
    plan: &mut DistPlan,
    columns: usize,
    dist_column: Option<usize>,
    base: usize,
) -> TResult<()> {
    let (values_start, values_end) = values_range(&plan.template, base + 1)?;
    plan.insert = Some(InsertShape {
        columns,
        dist_column,
        param_base: base,
        values_start,
        values_end,
    });
    Ok(())
}

/// The byte range of `($first, ...)` — the VALUES row of parameters — in an INSERT template,
/// found through the parser's location of the first and last parameter.
fn values_range(sql: &str, first: usize) -> TResult<(usize, usize)> {
    let c = std::ffi::CString::new(sql).unwrap_or_default();
    let mut locations: Vec<(i32, usize)> = Vec::new();
    // SAFETY: parsing the deparsed INSERT and reading its VALUES row.
    unsafe {
        let stmts = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        for raw in list_of::<pg_sys::RawStmt>(stmts) {
            let stmt = (*raw).stmt;
            if !is_a(stmt as *const c_void, pg_sys::NodeTag::T_InsertStmt) {
                continue;
            }
            let select = (*(stmt as *mut pg_sys::InsertStmt)).selectStmt as *mut pg_sys::SelectStmt;
            if select.is_null() {
                continue;
            }
            for row in list_of::<pg_sys::List>((*select).valuesLists) {
                for item in list_of::<pg_sys::Node>(row) {
                    if is_a(item as *const c_void, pg_sys::NodeTag::T_ParamRef) {
                        let p = item as *mut pg_sys::ParamRef;
                        locations.push(((*p).number, (*p).location.max(0) as usize));
                    }
                }
            }
        }
    }
    let bad = || {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "cannot place this INSERT's rows in the statement sent to the shards",
        )
        .detail(format!("worker statement: {sql}"))
        .hint("Write the INSERT as INSERT INTO table (columns) VALUES (...) or INSERT ... SELECT, and report the statement to the Tessera developers.")
    };
    let (first_no, first_at) = *locations.first().ok_or_else(bad)?;
    let (_, last_at) = *locations.last().ok_or_else(bad)?;
    if first_no as usize != first {
        return Err(bad());
    }
    let bytes = sql.as_bytes();
    let open = sql[..first_at].rfind('(').ok_or_else(bad)?;
    if !sql[open + 1..first_at].trim().is_empty() {
        return Err(bad());
    }
    let mut end = last_at + 1;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    let close = end + sql[end..].find(')').ok_or_else(bad)?;
    if !sql[end..close].trim().is_empty() {
        return Err(bad());
    }
    Ok((open, close + 1))
}

/// The range-table index of an INSERT's SELECT, if it has one.
pub(crate) unsafe fn sub_rti(parse: *mut pg_sys::Query) -> Option<i32> {
    // SAFETY: reading the Query's range table.
    unsafe {
        list_of::<pg_sys::RangeTblEntry>((*parse).rtable)
            .iter()
            .position(|r| (**r).rtekind == pg_sys::RTEKind::RTE_SUBQUERY)
            .map(|i| i as i32 + 1)
    }
}
