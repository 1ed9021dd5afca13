//! COPY on a distributed table. `COPY dist TO` (pg_dump's form) is rewritten, before anything
//! else sees it, to `COPY (SELECT columns FROM ONLY dist) TO`, so the query reads the shards.
//! COPY FROM is refused until it streams rows to the shards.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::spi::Spi;

use super::{distributed_range_var, refused, rel_schema_and_name, Step, Utility};
use crate::error::{TResult, TesseraError};
use crate::pg::nodes::list_ptrs;

/// `COPY dist [(columns)] TO ...` (pg_dump's form) as `COPY (SELECT columns FROM ONLY dist) TO
/// ...`: the query reads the shards. Other statements are returned as they are.
///
/// # Safety
/// `pstmt` comes from ProcessUtility.
pub(super) unsafe fn copy_to_as_query(
    pstmt: *mut pg_sys::PlannedStmt,
) -> TResult<*mut pg_sys::PlannedStmt> {
    // SAFETY: reading the statement; the changed one is a copy.
    unsafe {
        let stmt = (*pstmt).utilityStmt;
        if !crate::pg::nodes::is_a(stmt as *const std::ffi::c_void, pg_sys::NodeTag::T_CopyStmt) {
            return Ok(pstmt);
        }
        let c = stmt as *mut pg_sys::CopyStmt;
        if (*c).is_from || (*c).relation.is_null() {
            return Ok(pstmt);
        }
        let Some(relid) = distributed_range_var((*c).relation)? else {
            return Ok(pstmt);
        };
        let (schema, table) = rel_schema_and_name(relid);
        let mut columns: Vec<String> = list_ptrs((*c).attlist)
            .into_iter()
            .map(|n| quote_identifier(crate::pg::nodes::string((*(n as *mut pg_sys::String)).sval)))
            .collect();
        if columns.is_empty() {
            // COPY's own default: every column but the dropped and generated ones.
            columns = Spi::connect(|client| {
                let mut v = Vec::new();
                for row in client.select(
                    "SELECT pg_catalog.quote_ident(attname) FROM pg_catalog.pg_attribute
                      WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
                      ORDER BY attnum",
                    None,
                    &[relid.into()],
                )? {
                    v.push(row.get::<String>(1)?.unwrap_or_default());
                }
                Ok::<_, TesseraError>(v)
            })?;
        }
        let sql = format!(
            "SELECT {} FROM ONLY {}.{}",
            columns.join(", "),
            quote_identifier(schema),
            quote_identifier(table)
        );
        let text = std::ffi::CString::new(sql).map_err(|_| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_INVALID_NAME,
                "a column name holds a NUL byte",
            )
        })?;
        let raws = crate::pg::nodes::list_of::<pg_sys::RawStmt>(pg_sys::raw_parser(
            text.as_ptr(),
            pg_sys::RawParseMode::RAW_PARSE_DEFAULT,
        ));
        let Some(&raw) = raws.first() else {
            return Ok(pstmt);
        };
        let copy =
            pg_sys::copyObjectImpl(pstmt as *const std::ffi::c_void) as *mut pg_sys::PlannedStmt;
        let cs = (*copy).utilityStmt as *mut pg_sys::CopyStmt;
        (*cs).relation = std::ptr::null_mut();
        (*cs).attlist = std::ptr::null_mut();
        (*cs).query = (*raw).stmt;
        Ok(copy)
    }
}

/// # Safety
/// `u` is a CopyStmt.
pub(super) unsafe fn copy(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; relation is null or a valid RangeVar.
    unsafe {
        let s = u.node::<pg_sys::CopyStmt>();
        match distributed_range_var((*s).relation)? {
            Some(relid) if (*s).is_from => Err(refused("COPY FROM", relid, "Load the rows with INSERT ... VALUES (many rows per statement) or INSERT ... SELECT, or COPY them into a local table and INSERT ... SELECT from it.")),
            Some(relid) => Err(refused(
                "COPY TO",
                relid,
                "Copy the rows of a query instead: COPY (SELECT * FROM table) TO ...",
            )),
            None => Ok(Step::Pass),
        }
    }
}
