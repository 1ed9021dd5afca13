//! COPY on a distributed table. `COPY dist TO` (pg_dump's form) is rewritten, before anything
//! else sees it, to `COPY (SELECT columns FROM ONLY dist) TO`, so the query reads the shards;
//! `COPY dist FROM` with a WHERE clause, FREEZE or row-level security to a COPY into a
//! temporary staging table followed by `INSERT INTO dist SELECT` from it
//! ([`copy_from_via_table`]); every other `COPY dist FROM` streams ([`super::copy_from`]).

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
            columns = crate::sharding::insertable_columns(relid)?;
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
            Some(relid) => Err(refused(
                "COPY TO",
                relid,
                "Copy the rows of a query instead: COPY (SELECT * FROM table) TO ...",
            )),
            None => Ok(Step::Pass),
        }
    }
}

/// A column COPY may fill: name, type, default (printed), identity, generated.
type Column = (String, String, Option<String>, bool, bool);

/// Whether a default's node tree (`pg_attrdef.adbin`) calls a VOLATILE function other than
/// `nextval`.
fn volatile_default(tree: &str) -> bool {
    let tree = std::ffi::CString::new(tree).unwrap_or_default();
    // SAFETY: the node tree is the catalog's own text; read back, then only walked.
    unsafe {
        let node = pg_sys::stringToNode(tree.as_ptr()) as *mut pg_sys::Node;
        pg_sys::contain_volatile_functions_not_nextval(node)
    }
}

/// What follows a `COPY dist FROM ...` that [`copy_from_via_table`] rewrote: the rows into the
/// distributed table, and the staging table dropped.
pub(super) type CopyFinish = Box<dyn FnOnce() -> TResult<()>>;

thread_local! {
    static STAGING: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// `COPY dist [(columns)] FROM ...` as `COPY <staging> (columns) FROM ...` into a temporary
/// table of those columns, followed by `INSERT INTO dist (columns) SELECT columns FROM
/// <staging>`: PostgreSQL's COPY parses every format and option (text, CSV, binary, HEADER,
/// FORCE_NULL, WHERE, STDIN, a file, a PROGRAM) and reports bad input with its line and column,
/// once, on the coordinator; the INSERT evaluates the other columns' defaults and sequences
/// there, routes each row by its hash and sends each shard its rows with COPY, in batches, in
/// the user's transaction. Other statements are returned as they are.
///
/// # Safety
/// `pstmt` comes from ProcessUtility.
pub(super) unsafe fn copy_from_via_table(
    pstmt: *mut pg_sys::PlannedStmt,
) -> TResult<(*mut pg_sys::PlannedStmt, Option<CopyFinish>)> {
    // SAFETY: reading the statement; the changed one is a copy.
    unsafe {
        let stmt = (*pstmt).utilityStmt;
        if !crate::pg::nodes::is_a(stmt as *const std::ffi::c_void, pg_sys::NodeTag::T_CopyStmt) {
            return Ok((pstmt, None));
        }
        let c = stmt as *mut pg_sys::CopyStmt;
        if !(*c).is_from || (*c).relation.is_null() {
            return Ok((pstmt, None));
        }
        let Some(relid) = distributed_range_var((*c).relation)? else {
            return Ok((pstmt, None));
        };
        // The columns COPY fills, as COPY would read them: the list, or every column but the
        // dropped and generated ones.
        let named: Vec<String> = list_ptrs((*c).attlist)
            .into_iter()
            .map(|n| crate::pg::nodes::string((*(n as *mut pg_sys::String)).sval))
            .collect();
        if let Some((i, twice)) = named
            .iter()
            .enumerate()
            .find(|(i, n)| named[..*i].contains(n))
        {
            let _ = i;
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN,
                format!("column \"{twice}\" specified more than once"),
            ));
        }
        // Every column but the dropped ones: name, type, default (printed with every name
        // qualified), identity, generated; and each default's node tree, by column.
        let (all, trees): (Vec<Column>, std::collections::HashMap<String, String>) = {
            let _qualified = crate::pg::guc::GucScope::catalog_only();
            Spi::connect(|client| {
                let mut v = Vec::new();
                let mut trees = std::collections::HashMap::new();
                for row in client.select(
                    "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
                            pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '',
                            a.attgenerated <> '', d.adbin::text
                       FROM pg_catalog.pg_attribute a
                       LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                      ORDER BY a.attnum",
                    None,
                    &[relid.into()],
                )? {
                    let name = row.get::<String>(1)?.unwrap_or_default();
                    if let Some(tree) = row.get::<String>(6)? {
                        trees.insert(name.clone(), tree);
                    }
                    v.push((
                        name,
                        row.get::<String>(2)?.unwrap_or_default(),
                        row.get::<String>(3)?,
                        row.get::<bool>(4)?.unwrap_or(false),
                        row.get::<bool>(5)?.unwrap_or(false),
                    ));
                }
                Ok::<_, TesseraError>((v, trees))
            })?
        };
        if let Some(missing) = named.iter().find(|n| {
            !all.iter()
                .any(|(c, _, _, _, generated)| c == *n && !generated)
        }) {
            let (schema, table) = rel_schema_and_name(relid);
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!(
                    "column \"{missing}\" of relation \"{schema}.{table}\" does not exist (or is generated)"
                ),
            ));
        }
        // What COPY reads from its input.
        let listed: Vec<String> = if named.is_empty() {
            all.iter().filter(|c| !c.4).map(|c| c.0.clone()).collect()
        } else {
            named.clone()
        };
        // The staging table: the columns COPY fills, and the others a WHERE may read, with the
        // table's defaults (which COPY evaluates row by row, as for a local table); an identity
        // column COPY does not fill is left to the INSERT, which makes its value.
        let staged: Vec<&Column> = all
            .iter()
            .filter(|c| !c.4 && (listed.contains(&c.0) || !c.3))
            .collect();
        let allowed = crate::pg::spi::get_one::<bool>(
            "SELECT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMPORARY')",
        )?
        .unwrap_or(false);
        if !allowed {
            let (schema, table) = rel_schema_and_name(relid);
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("COPY into the distributed table {schema}.{table} with a WHERE clause, FREEZE or row-level security needs the TEMPORARY privilege on the database"),
            )
            .hint("Such a COPY stages the rows in a temporary table on the coordinator: GRANT TEMPORARY ON DATABASE to the role, or COPY without WHERE and FREEZE."));
        }
        // Named as the table is, so that COPY's own error context ("COPY accounts, line 3,
        // column id") names it; another name when the session has a temporary table of that
        // name.
        let (_, table_name) = rel_schema_and_name(relid);
        let taken = crate::pg::spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class
                             WHERE relname = $1 AND relnamespace = pg_catalog.pg_my_temp_schema())",
            &[table_name.clone().into()],
        )?
        .unwrap_or(false);
        let staging = if taken {
            let n = STAGING.with(|s| {
                s.set(s.get() + 1);
                s.get()
            });
            format!("tessera_copy_{n}")
        } else {
            table_name
        };
        let defs: Vec<String> = staged
            .iter()
            .map(|(name, ty, default, _, _)| match default {
                Some(d) if !listed.contains(name) => {
                    format!("{} {ty} DEFAULT {d}", quote_identifier(name))
                }
                _ => format!("{} {ty}", quote_identifier(name)),
            })
            .collect();
        // Whether the transaction wrote nothing before (but earlier stagings): then after this
        // one too it has written only that, and a COPY whose rows go to one node needs no
        // two-phase commit (`transaction::staging_only`).
        // Not when something of the user's runs while staging: a WHERE clause, or a default
        // that calls a VOLATILE function other than a sequence's (it may write a local table).
        let user_code = !(*c).whereClause.is_null()
            || staged.iter().any(|(name, _, _, _, _)| {
                !listed.contains(name) && trees.get(name).is_some_and(|t| volatile_default(t))
            });
        let fresh = !user_code && crate::transaction::staging_only();
        Spi::run(&format!(
            "CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP",
            quote_identifier(&staging),
            defs.join(", ")
        ))?;
        let quoted: Vec<String> = staged.iter().map(|c| quote_identifier(&c.0)).collect();
        let (schema, table) = rel_schema_and_name(relid);
        let insert = format!(
            "INSERT INTO {}.{} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM pg_temp.{}",
            quote_identifier(&schema),
            quote_identifier(&table),
            quote_identifier(&staging),
            cols = quoted.join(", ")
        );
        let columns: Vec<(String, ())> = listed.into_iter().map(|c| (c, ())).collect();
        let drop = format!("DROP TABLE pg_temp.{}", quote_identifier(&staging));
        let copy =
            pg_sys::copyObjectImpl(pstmt as *const std::ffi::c_void) as *mut pg_sys::PlannedStmt;
        let cs = (*copy).utilityStmt as *mut pg_sys::CopyStmt;
        let name = std::ffi::CString::new(staging).unwrap_or_default();
        (*cs).relation = pg_sys::makeRangeVar(
            c"pg_temp".as_ptr() as *mut std::ffi::c_char,
            pg_sys::pstrdup(name.as_ptr()),
            -1,
        );
        let mut attlist = std::ptr::null_mut();
        for (col, _) in &columns {
            let c = std::ffi::CString::new(col.as_str()).unwrap_or_default();
            attlist = pg_sys::lappend(
                attlist,
                pg_sys::makeString(pg_sys::pstrdup(c.as_ptr())) as *mut std::ffi::c_void,
            );
        }
        (*cs).attlist = attlist;
        let finish: CopyFinish = Box::new(move || {
            Spi::run(&insert)?;
            Spi::run(&drop)?;
            if fresh {
                crate::transaction::staging_done();
            }
            Ok(())
        });
        Ok((copy, Some(finish)))
    }
}
