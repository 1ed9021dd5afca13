//! The ProcessUtility hook: DDL on distributed tables reaches their shards, and extensions
//! reach every node, inside the user's transaction.
//!
//! Dispatch is a table: each statement kind that needs propagation has a handler that runs
//! before and/or after the local statement (`standard_ProcessUtility` or the previous hook).
//! Everything else passes straight through, after a check that costs one syscache lookup
//! (is Tessera's catalog in this database?).
//!
//! | statement | handler |
//! | --- | --- |
//! | CREATE / ALTER / DROP EXTENSION | the same statement on every worker |
//! | CREATE INDEX on a distributed table | the new index, renamed, on every shard |
//! | DROP INDEX of a distributed table's index | the shard indexes dropped |
//! | TRUNCATE of distributed tables | every shard truncated |
//! | ALTER TABLE column forms, RENAME COLUMN | the user's statement on every shard, the table reference replaced by the shard's name (found by the parser's location) |
//! | ALTER TABLE ADD/DROP CONSTRAINT | the new constraint's definition (or the DROP) on every shard, named `<name>_<shardid>` |
//! | DROP TABLE / DROP SCHEMA | the `sql_drop` event trigger (commands::distribute) |
//!
//! All remote work runs in the remote transaction that commits and aborts with the local one:
//! a worker that fails fails the statement, and nothing stays half-done.

use std::ffi::{c_char, CStr};

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::spi::Spi;
use tessera_core::sharding::shard_name;

use super::{push_per_placement, run_per_group, PerGroup};
use crate::error::{OrReport, TResult, TesseraError};
use crate::metadata::node as nodes;
use crate::metadata::table as catalog;
use crate::pg::nodes::list_ptrs;
use crate::sharding::ddl::{index_def, shard_index_ddl};

/// The ProcessUtility hook installed before Tessera's; the only copy of it.
static mut PREV_PROCESS_UTILITY_HOOK: pg_sys::ProcessUtility_hook_type = None;

pub fn init() {
    // SAFETY: _PG_init runs once per process, before any statement runs.
    unsafe {
        PREV_PROCESS_UTILITY_HOOK = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(tessera_process_utility);
    }
}

/// What a handler found before the local statement ran, to finish after it.
enum After {
    Nothing,
    /// The statement text, run on every shard with the table reference at `name_at` replaced.
    Rewrite {
        relid: pg_sys::Oid,
        sql: String,
        name_at: usize,
    },
    /// ADD/DROP CONSTRAINT: the constraints the local statement added (found by diffing
    /// pg_constraint) and the names it dropped, applied to every shard under the shard's
    /// constraint name (`<name>_<shardid>`, as create_distributed_table names them).
    Constraints {
        relid: pg_sys::Oid,
        before: Vec<pg_sys::Oid>,
        dropped: Vec<(String, bool)>,
    },
    Extension {
        sql: String,
    },
    CreateIndex {
        relid: pg_sys::Oid,
        before: Vec<pg_sys::Oid>,
    },
    DropIndexes {
        indexes: Vec<(pg_sys::Oid, String, String, String)>,
    },
    Truncate {
        relids: Vec<pg_sys::Oid>,
    },
}

/// Is Tessera's catalog in this database (and not being created right now)?
fn tessera_installed() -> bool {
    // SAFETY: a syscache lookup by name; reading a backend-local flag.
    unsafe {
        !pg_sys::creating_extension
            && pg_sys::get_relname_relid(
                c"pg_dist_partition".as_ptr(),
                pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE),
            ) != pg_sys::InvalidOid
    }
}

/// The relation a RangeVar names, or InvalidOid.
///
/// # Safety
/// `rv` is a valid RangeVar.
unsafe fn range_var_relid(rv: *mut pg_sys::RangeVar) -> pg_sys::Oid {
    // SAFETY: missing_ok lookup without a lock; the statement itself takes its locks.
    unsafe {
        pg_sys::RangeVarGetRelidExtended(
            rv,
            pg_sys::NoLock as i32,
            pg_sys::RVROption::RVR_MISSING_OK,
            None,
            std::ptr::null_mut(),
        )
    }
}

/// The text of this statement within the query string.
///
/// # Safety
/// `pstmt` and `query_string` come from ProcessUtility.
unsafe fn statement_text(pstmt: *mut pg_sys::PlannedStmt, query_string: *const c_char) -> String {
    // SAFETY: query_string is NUL-terminated; location and length are byte offsets into it.
    let q = unsafe { CStr::from_ptr(query_string) }.to_string_lossy();
    // SAFETY: pstmt is a valid PlannedStmt.
    let (loc, len) = unsafe { ((*pstmt).stmt_location, (*pstmt).stmt_len) };
    if loc < 0 {
        return q.into_owned();
    }
    let start = (loc as usize).min(q.len());
    let end = if len <= 0 {
        q.len()
    } else {
        (start + len as usize).min(q.len())
    };
    q.get(start..end).unwrap_or(&q).to_string()
}

/// The statement text and where a parser location falls inside it.
///
/// # Safety
/// `pstmt` and `query_string` come from ProcessUtility; `location` is a parser location.
unsafe fn text_and_offset(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    location: i32,
) -> (String, usize) {
    // SAFETY: forwarded from the caller.
    let (sql, base) = unsafe { (statement_text(pstmt, query_string), (*pstmt).stmt_location) };
    (sql, (location - base.max(0)).max(0) as usize)
}

fn unsupported_alter(what: &str) -> TesseraError {
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported on distributed tables yet"),
    )
    .hint("Supported: ADD/DROP COLUMN, ALTER COLUMN TYPE/DEFAULT/NOT NULL, ADD/DROP CONSTRAINT (CHECK, UNIQUE, PRIMARY KEY, FOREIGN KEY), RENAME COLUMN.")
}

fn attname(relid: pg_sys::Oid, attnum: i16) -> TResult<Option<String>> {
    Ok(Spi::get_one_with_args::<String>(
        "SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum = $2",
        &[relid.into(), attnum.into()],
    )?)
}

/// Checks that every subcommand of an ALTER TABLE on a distributed table can run on its shards.
///
/// # Safety
/// `stmt` is a valid AlterTableStmt.
unsafe fn check_alter(
    stmt: *mut pg_sys::AlterTableStmt,
    dist_col: Option<&str>,
) -> TResult<AlterKind> {
    let (mut constraint_cmds, mut other_cmds) = (0, 0);
    let mut dropped = Vec::new();
    // SAFETY: each list element of `cmds` is an AlterTableCmd; `def` follows its subtype.
    unsafe {
        for cmd in list_ptrs((*stmt).cmds) {
            let c = cmd as *mut pg_sys::AlterTableCmd;
            let name = if (*c).name.is_null() {
                None
            } else {
                Some(CStr::from_ptr((*c).name).to_string_lossy().into_owned())
            };
            let on_dist_col = name.is_some() && name.as_deref() == dist_col;
            let is_constraint_cmd = matches!(
                (*c).subtype,
                pg_sys::AlterTableType::AT_AddConstraint
                    | pg_sys::AlterTableType::AT_DropConstraint
            );
            if is_constraint_cmd {
                constraint_cmds += 1;
            } else {
                other_cmds += 1;
            }
            match (*c).subtype {
                pg_sys::AlterTableType::AT_AddColumn => {
                    let def = (*c).def as *mut pg_sys::ColumnDef;
                    let names = list_ptrs((*(*def).typeName).names);
                    if let Some(last) = names.last() {
                        let t = CStr::from_ptr((*(*last as *mut pg_sys::String)).sval).to_bytes();
                        if matches!(
                            t,
                            b"serial"
                                | b"bigserial"
                                | b"smallserial"
                                | b"serial4"
                                | b"serial8"
                                | b"serial2"
                        ) {
                            return Err(unsupported_alter("ADD COLUMN of a serial type")
                                .hint("Add the column as bigint with DEFAULT nextval(...) from a sequence on the coordinator."));
                        }
                    }
                }
                pg_sys::AlterTableType::AT_DropColumn
                | pg_sys::AlterTableType::AT_AlterColumnType
                    if on_dist_col =>
                {
                    return Err(TesseraError::new(
                        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                        "cannot drop or change the type of the distribution column",
                    )
                    .hint("Undistribute the table first, or distribute it by another column."));
                }
                pg_sys::AlterTableType::AT_DropColumn
                | pg_sys::AlterTableType::AT_AlterColumnType
                | pg_sys::AlterTableType::AT_ColumnDefault
                | pg_sys::AlterTableType::AT_SetNotNull
                | pg_sys::AlterTableType::AT_DropNotNull => {}
                pg_sys::AlterTableType::AT_AddConstraint => {
                    let con = (*c).def as *mut pg_sys::Constraint;
                    match (*con).contype {
                        pg_sys::ConstrType::CONSTR_CHECK
                        | pg_sys::ConstrType::CONSTR_UNIQUE
                        | pg_sys::ConstrType::CONSTR_PRIMARY => {}
                        pg_sys::ConstrType::CONSTR_FOREIGN => {}
                        _ => return Err(unsupported_alter("this kind of constraint")),
                    }
                }
                pg_sys::AlterTableType::AT_DropConstraint => {
                    dropped.push((name.unwrap_or_default(), (*c).missing_ok));
                }
                _ => return Err(unsupported_alter("this form of ALTER TABLE")),
            }
        }
    }
    match (constraint_cmds, other_cmds) {
        (0, _) => Ok(AlterKind::Columns),
        (_, 0) => Ok(AlterKind::Constraints(dropped)),
        _ => Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "ALTER TABLE on a distributed table cannot mix ADD/DROP CONSTRAINT with other changes",
        )
        .hint("Run the constraint changes as their own ALTER TABLE statement.")),
    }
}

/// What an ALTER TABLE on a distributed table changes.
enum AlterKind {
    /// Column forms: the statement text runs on every shard.
    Columns,
    /// Only ADD/DROP CONSTRAINT (with the dropped names and their IF EXISTS).
    Constraints(Vec<(String, bool)>),
}

fn constraints_of(relid: pg_sys::Oid) -> TResult<Vec<pg_sys::Oid>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT oid FROM pg_catalog.pg_constraint WHERE conrelid = $1",
            None,
            &[relid.into()],
        )? {
            if let Some(o) = row.get::<pg_sys::Oid>(1)? {
                out.push(o);
            }
        }
        Ok(out)
    })
}

fn indexes_of(relid: pg_sys::Oid) -> TResult<Vec<pg_sys::Oid>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT indexrelid FROM pg_catalog.pg_index WHERE indrelid = $1",
            None,
            &[relid.into()],
        )? {
            out.push(row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid));
        }
        Ok(out)
    })
}

fn rel_schema_and_name(relid: pg_sys::Oid) -> (String, String) {
    // SAFETY: syscache lookups of an existing relation; the results are palloc'd strings.
    unsafe {
        let name = pg_sys::get_rel_name(relid);
        let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        let s = |p: *mut c_char| {
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        (s(nsp), s(name))
    }
}

/// Whether `relid` is a distributed or reference table (a cached lookup).
fn is_distributed(relid: pg_sys::Oid) -> TResult<bool> {
    Ok(relid != pg_sys::InvalidOid && crate::metadata::cache::lookup(relid)?.is_some())
}

/// The distributed or reference table a RangeVar names, if it names one.
///
/// # Safety
/// `rv` is null or a valid RangeVar.
unsafe fn distributed_range_var(rv: *mut pg_sys::RangeVar) -> TResult<Option<pg_sys::Oid>> {
    if rv.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded.
    let relid = unsafe { range_var_relid(rv) };
    Ok(is_distributed(relid)?.then_some(relid))
}

fn refused(what: &str, relid: pg_sys::Oid, hint: &str) -> TesseraError {
    let (schema, name) = rel_schema_and_name(relid);
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!(
            "{what} is not supported on the distributed table {}.{} yet",
            quote_identifier(schema),
            quote_identifier(name)
        ),
    )
    .hint(hint)
}

/// Refuses the statements on distributed tables that no handler propagates: run on the
/// coordinator alone they would change (or read) only its empty local table, and the user
/// would be told it worked.
///
/// # Safety
/// `stmt` is a valid utility statement.
unsafe fn refuse_unhandled(stmt: *mut pg_sys::Node) -> TResult<()> {
    use pg_sys::NodeTag::*;
    // SAFETY: each cast follows the node's tag.
    unsafe {
        match (*stmt).type_ {
            T_CopyStmt => {
                let s = stmt as *mut pg_sys::CopyStmt;
                if let Some(relid) = distributed_range_var((*s).relation)? {
                    return Err(if (*s).is_from {
                        refused("COPY FROM", relid, "Load the rows with INSERT ... VALUES (many rows per statement) or INSERT ... SELECT, or COPY them into a local table and INSERT ... SELECT from it.")
                    } else {
                        refused(
                            "COPY TO",
                            relid,
                            "Copy the rows of a query instead: COPY (SELECT * FROM table) TO ...",
                        )
                    });
                }
            }
            T_CreateTrigStmt => {
                let s = stmt as *mut pg_sys::CreateTrigStmt;
                if let Some(relid) = distributed_range_var((*s).relation)? {
                    return Err(refused("CREATE TRIGGER", relid, "Triggers are not carried to the shards yet: enforce the rule with a CHECK or foreign key constraint, or in the application."));
                }
            }
            T_CreatePolicyStmt => {
                let s = stmt as *mut pg_sys::CreatePolicyStmt;
                if let Some(relid) = distributed_range_var((*s).table)? {
                    return Err(refused("CREATE POLICY", relid, "Row-level security is not carried to the shards yet: filter by tenant in the application's queries."));
                }
            }
            T_AlterPolicyStmt => {
                let s = stmt as *mut pg_sys::AlterPolicyStmt;
                if let Some(relid) = distributed_range_var((*s).table)? {
                    return Err(refused(
                        "ALTER POLICY",
                        relid,
                        "Row-level security is not carried to the shards yet.",
                    ));
                }
            }
            T_RuleStmt => {
                let s = stmt as *mut pg_sys::RuleStmt;
                if let Some(relid) = distributed_range_var((*s).relation)? {
                    return Err(refused(
                        "CREATE RULE",
                        relid,
                        "Use a view over the distributed table instead.",
                    ));
                }
            }
            T_ClusterStmt => {
                let s = stmt as *mut pg_sys::ClusterStmt;
                if let Some(relid) = distributed_range_var((*s).relation)? {
                    return Err(refused("CLUSTER", relid, "Run CLUSTER on the shards with run_command_on_workers(), or leave the order to the indexes."));
                }
            }
            T_ReindexStmt => {
                let s = stmt as *mut pg_sys::ReindexStmt;
                if (*s).kind == pg_sys::ReindexObjectType::REINDEX_OBJECT_TABLE {
                    if let Some(relid) = distributed_range_var((*s).relation)? {
                        return Err(refused(
                            "REINDEX",
                            relid,
                            "Drop the index and create it again: CREATE INDEX reaches every shard.",
                        ));
                    }
                }
                if (*s).kind == pg_sys::ReindexObjectType::REINDEX_OBJECT_INDEX {
                    let index = range_var_relid((*s).relation);
                    if index != pg_sys::InvalidOid {
                        let table = pg_sys::IndexGetRelation(index, true);
                        if is_distributed(table)? {
                            return Err(refused("REINDEX", table, "Drop the index and create it again: CREATE INDEX reaches every shard."));
                        }
                    }
                }
            }
            T_AlterObjectSchemaStmt => {
                let s = stmt as *mut pg_sys::AlterObjectSchemaStmt;
                if let Some(relid) = distributed_range_var((*s).relation)? {
                    return Err(refused("ALTER ... SET SCHEMA", relid, "Undistribute the table with undistribute_table(), move it, and distribute it again."));
                }
            }
            T_AlterTableStmt => {
                let s = stmt as *mut pg_sys::AlterTableStmt;
                if (*s).objtype == pg_sys::ObjectType::OBJECT_INDEX {
                    let index = range_var_relid((*s).relation);
                    if index != pg_sys::InvalidOid {
                        let table = pg_sys::IndexGetRelation(index, true);
                        if is_distributed(table)? {
                            return Err(refused("ALTER INDEX", table, "Drop the index and create it again with the new options: CREATE INDEX reaches every shard."));
                        }
                    }
                }
                if (*s).objtype == pg_sys::ObjectType::OBJECT_TABLE {
                    // A distributed table under a local one: the local table's scans and
                    // tuple routing would reach the coordinator's empty copy.
                    for cmd in list_ptrs((*s).cmds) {
                        let c = cmd as *mut pg_sys::AlterTableCmd;
                        let under = match (*c).subtype {
                            pg_sys::AlterTableType::AT_AttachPartition => {
                                (*((*c).def as *mut pg_sys::PartitionCmd)).name
                            }
                            pg_sys::AlterTableType::AT_AddInherit => {
                                (*c).def as *mut pg_sys::RangeVar
                            }
                            _ => std::ptr::null_mut(),
                        };
                        if let Some(relid) = distributed_range_var(under)? {
                            return Err(refused("a partition or inheritance link", relid, "Distributed tables cannot be partitions or parents of local tables: distribute the partitioned table instead (not supported yet), or keep the table local."));
                        }
                    }
                    if let Some(relid) = distributed_range_var((*s).relation)? {
                        for cmd in list_ptrs((*s).cmds) {
                            let c = cmd as *mut pg_sys::AlterTableCmd;
                            if matches!(
                                (*c).subtype,
                                pg_sys::AlterTableType::AT_EnableRowSecurity
                                    | pg_sys::AlterTableType::AT_ForceRowSecurity
                            ) {
                                return Err(refused("row-level security", relid, "Row-level security is not carried to the shards yet: filter by tenant in the application's queries."));
                            }
                        }
                    }
                }
            }
            T_RenameStmt => {
                let s = stmt as *mut pg_sys::RenameStmt;
                if (*s).renameType == pg_sys::ObjectType::OBJECT_INDEX && !(*s).relation.is_null() {
                    let index = range_var_relid((*s).relation);
                    if index != pg_sys::InvalidOid {
                        let table = pg_sys::IndexGetRelation(index, true);
                        if is_distributed(table)? {
                            return Err(refused(
                                "ALTER INDEX ... RENAME",
                                table,
                                "Drop the index and create it again under the new name.",
                            ));
                        }
                    }
                }
                if matches!(
                    (*s).renameType,
                    pg_sys::ObjectType::OBJECT_TRIGGER
                        | pg_sys::ObjectType::OBJECT_POLICY
                        | pg_sys::ObjectType::OBJECT_RULE
                ) {
                    if let Some(relid) = distributed_range_var((*s).relation)? {
                        return Err(refused(
                            "this RENAME",
                            relid,
                            "Drop the object and create it again under the new name.",
                        ));
                    }
                }
            }
            T_CreateStmt => {
                let s = stmt as *mut pg_sys::CreateStmt;
                for rv in list_ptrs((*s).inhRelations) {
                    if let Some(relid) = distributed_range_var(rv as *mut pg_sys::RangeVar)? {
                        return Err(refused("a table that inherits from or is a partition of another", relid, "Create the table on its own and distribute it with create_distributed_table(..., colocate_with => ...)."));
                    }
                }
            }
            T_GrantStmt => {
                let s = stmt as *mut pg_sys::GrantStmt;
                if (*s).objtype == pg_sys::ObjectType::OBJECT_TABLE {
                    if (*s).targtype == pg_sys::GrantTargetType::ACL_TARGET_OBJECT {
                        let objects = list_ptrs((*s).objects);
                        for rv in &objects {
                            if let Some(relid) =
                                distributed_range_var(*rv as *mut pg_sys::RangeVar)?
                            {
                                if objects.len() > 1 {
                                    return Err(refused("GRANT or REVOKE on several tables in one statement", relid, "Grant on each distributed table in a statement of its own: it then reaches every shard."));
                                }
                            }
                        }
                    } else if (*s).targtype == pg_sys::GrantTargetType::ACL_TARGET_ALL_IN_SCHEMA {
                        for n in list_ptrs((*s).objects) {
                            let name = (*(n as *mut pg_sys::String)).sval;
                            let nsp = pg_sys::get_namespace_oid(name, true);
                            if nsp != pg_sys::InvalidOid {
                                if let Some(relid) = distributed_in_schema(nsp)? {
                                    return Err(refused("GRANT or REVOKE ON ALL TABLES IN SCHEMA", relid, "Grant on each distributed table by name: GRANT ... ON TABLE t TO role reaches every shard."));
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `COPY dist [(columns)] TO ...` (pg_dump's form) as `COPY (SELECT columns FROM ONLY dist) TO
/// ...`: the query reads the shards. Other statements are returned as they are.
///
/// # Safety
/// `pstmt` comes from ProcessUtility.
unsafe fn copy_to_as_query(pstmt: *mut pg_sys::PlannedStmt) -> TResult<*mut pg_sys::PlannedStmt> {
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

/// Whether `sql` is exactly one GRANT or REVOKE statement.
fn is_lone_grant(sql: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(sql) else {
        return false;
    };
    // SAFETY: parsing a NUL-terminated string; the parse tree is read only.
    unsafe {
        let stmts = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        let raws = crate::pg::nodes::list_of::<pg_sys::RawStmt>(stmts);
        raws.len() == 1
            && crate::pg::nodes::is_a(
                (*raws[0]).stmt as *const std::ffi::c_void,
                pg_sys::NodeTag::T_GrantStmt,
            )
    }
}

/// A distributed or reference table in schema `nsp`, if there is one.
fn distributed_in_schema(nsp: pg_sys::Oid) -> TResult<Option<pg_sys::Oid>> {
    Ok(Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT (SELECT p.logicalrelid::oid FROM pg_catalog.pg_dist_partition p
                   JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
                  WHERE c.relnamespace = $1 ORDER BY 1 LIMIT 1)",
        &[nsp.into()],
    )?)
}

/// Looks at the statement before it runs locally.
///
/// # Safety
/// Arguments come from ProcessUtility.
unsafe fn before(pstmt: *mut pg_sys::PlannedStmt, query_string: *const c_char) -> TResult<After> {
    // SAFETY: utilityStmt is a valid node; each cast follows its tag.
    unsafe {
        let stmt = (*pstmt).utilityStmt;
        if stmt.is_null() {
            return Ok(After::Nothing);
        }
        refuse_unhandled(stmt)?;
        match (*stmt).type_ {
            pg_sys::NodeTag::T_CreateExtensionStmt => {
                let s = stmt as *mut pg_sys::CreateExtensionStmt;
                if CStr::from_ptr((*s).extname).to_bytes() == b"tessera" {
                    return Ok(After::Nothing);
                }
                Ok(After::Extension {
                    sql: statement_text(pstmt, query_string),
                })
            }
            pg_sys::NodeTag::T_AlterExtensionStmt => {
                let s = stmt as *mut pg_sys::AlterExtensionStmt;
                if CStr::from_ptr((*s).extname).to_bytes() == b"tessera" {
                    return Ok(After::Nothing);
                }
                Ok(After::Extension {
                    sql: statement_text(pstmt, query_string),
                })
            }
            pg_sys::NodeTag::T_DropStmt => {
                let s = stmt as *mut pg_sys::DropStmt;
                match (*s).removeType {
                    pg_sys::ObjectType::OBJECT_EXTENSION => {
                        let names = list_ptrs((*s).objects);
                        let is_tessera = names.iter().any(|n| {
                            let v = *n as *mut pg_sys::String;
                            CStr::from_ptr((*v).sval).to_bytes() == b"tessera"
                        });
                        if is_tessera {
                            return Ok(After::Nothing);
                        }
                        Ok(After::Extension {
                            sql: statement_text(pstmt, query_string),
                        })
                    }
                    pg_sys::ObjectType::OBJECT_INDEX => {
                        let mut indexes = Vec::new();
                        for names in list_ptrs((*s).objects) {
                            let rv = pg_sys::makeRangeVarFromNameList(names as *mut pg_sys::List);
                            let index = range_var_relid(rv);
                            if index == pg_sys::InvalidOid {
                                continue;
                            }
                            let table = pg_sys::IndexGetRelation(index, true);
                            if table == pg_sys::InvalidOid || catalog::find(table)?.is_none() {
                                continue;
                            }
                            if (*s).concurrent {
                                return Err(concurrently_unsupported("DROP INDEX"));
                            }
                            let (schema, name) = rel_schema_and_name(table);
                            let (_, index_name) = rel_schema_and_name(index);
                            indexes.push((table, schema, name, index_name));
                        }
                        Ok(if indexes.is_empty() {
                            After::Nothing
                        } else {
                            After::DropIndexes { indexes }
                        })
                    }
                    _ => Ok(After::Nothing),
                }
            }
            pg_sys::NodeTag::T_IndexStmt => {
                let s = stmt as *mut pg_sys::IndexStmt;
                let relid = range_var_relid((*s).relation);
                if relid == pg_sys::InvalidOid || catalog::find(relid)?.is_none() {
                    return Ok(After::Nothing);
                }
                if (*s).concurrent {
                    return Err(concurrently_unsupported("CREATE INDEX"));
                }
                Ok(After::CreateIndex {
                    relid,
                    before: indexes_of(relid)?,
                })
            }
            pg_sys::NodeTag::T_AlterTableStmt => {
                let s = stmt as *mut pg_sys::AlterTableStmt;
                if (*s).objtype != pg_sys::ObjectType::OBJECT_TABLE {
                    return Ok(After::Nothing);
                }
                let relid = range_var_relid((*s).relation);
                let Some(dist) = (if relid == pg_sys::InvalidOid {
                    None
                } else {
                    catalog::find(relid)?
                }) else {
                    return Ok(After::Nothing);
                };
                let dist_col = if dist.dist_attnum > 0 {
                    attname(relid, dist.dist_attnum)?
                } else {
                    None
                };
                if let AlterKind::Constraints(dropped) = check_alter(s, dist_col.as_deref())? {
                    return Ok(After::Constraints {
                        relid,
                        before: constraints_of(relid)?,
                        dropped,
                    });
                }
                let (sql, name_at) =
                    text_and_offset(pstmt, query_string, (*(*s).relation).location);
                Ok(After::Rewrite {
                    relid,
                    sql,
                    name_at,
                })
            }
            pg_sys::NodeTag::T_RenameStmt => {
                let s = stmt as *mut pg_sys::RenameStmt;
                if (*s).relation.is_null() {
                    return Ok(After::Nothing);
                }
                let relid = range_var_relid((*s).relation);
                if relid == pg_sys::InvalidOid || catalog::find(relid)?.is_none() {
                    return Ok(After::Nothing);
                }
                match (*s).renameType {
                    pg_sys::ObjectType::OBJECT_COLUMN
                        if (*s).relationType == pg_sys::ObjectType::OBJECT_TABLE =>
                    {
                        let (sql, name_at) =
                            text_and_offset(pstmt, query_string, (*(*s).relation).location);
                        Ok(After::Rewrite {
                            relid,
                            sql,
                            name_at,
                        })
                    }
                    pg_sys::ObjectType::OBJECT_TABLE => {
                        Err(unsupported_alter("renaming a distributed table"))
                    }
                    pg_sys::ObjectType::OBJECT_TABCONSTRAINT => {
                        Err(unsupported_alter("renaming a constraint"))
                    }
                    _ => Ok(After::Nothing),
                }
            }
            pg_sys::NodeTag::T_GrantStmt => {
                // GRANT / REVOKE on one distributed table: the same statement on every shard
                // (the roles must exist on the workers; a worker's error says so).
                let s = stmt as *mut pg_sys::GrantStmt;
                if (*s).objtype != pg_sys::ObjectType::OBJECT_TABLE
                    || (*s).targtype != pg_sys::GrantTargetType::ACL_TARGET_OBJECT
                {
                    return Ok(After::Nothing);
                }
                let objects = list_ptrs((*s).objects);
                let [rv] = objects[..] else {
                    return Ok(After::Nothing);
                };
                let rv = rv as *mut pg_sys::RangeVar;
                let Some(relid) = distributed_range_var(rv)? else {
                    return Ok(After::Nothing);
                };
                let (sql, name_at) = text_and_offset(pstmt, query_string, (*rv).location);
                // The text sent is the statement's own: it must be this GRANT alone, not the
                // CREATE SCHEMA ... GRANT it is part of.
                if !is_lone_grant(&sql) {
                    return Err(refused(
                        "GRANT or REVOKE inside another statement",
                        relid,
                        "Run the GRANT as a statement of its own.",
                    ));
                }
                Ok(After::Rewrite {
                    relid,
                    sql,
                    name_at,
                })
            }
            pg_sys::NodeTag::T_TruncateStmt => {
                let s = stmt as *mut pg_sys::TruncateStmt;
                let mut relids = Vec::new();
                for rv in list_ptrs((*s).relations) {
                    let relid = range_var_relid(rv as *mut pg_sys::RangeVar);
                    if relid != pg_sys::InvalidOid && catalog::find(relid)?.is_some() {
                        relids.push(relid);
                    }
                }
                Ok(if relids.is_empty() {
                    After::Nothing
                } else {
                    After::Truncate { relids }
                })
            }
            _ => Ok(After::Nothing),
        }
    }
}

fn concurrently_unsupported(what: &str) -> TesseraError {
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("{what} CONCURRENTLY is not supported on distributed tables yet"),
    )
    .hint(format!(
        "Run {what} without CONCURRENTLY: the shards are handled in parallel on the workers."
    ))
}

/// Finishes propagation once the statement ran locally.
fn after(work: After) -> TResult<()> {
    let all = nodes::all()?;
    let mut per_group = PerGroup::new();
    match work {
        After::Nothing => return Ok(()),
        After::Extension { sql } => {
            for n in all
                .iter()
                .filter(|n| n.isactive && n.noderole == "primary" && !n.is_coordinator())
            {
                per_group
                    .entry(n.groupid)
                    .or_default()
                    .push((sql.clone(), Vec::new()));
            }
        }
        After::CreateIndex { relid, before } => {
            let (schema, table) = rel_schema_and_name(relid);
            let dist = catalog::find(relid)?.expect("checked before");
            for index in indexes_of(relid)?
                .into_iter()
                .filter(|i| !before.contains(i))
            {
                let (name, def) = index_def(index)?;
                if dist.dist_attnum > 0 && def.starts_with("CREATE UNIQUE INDEX") {
                    let covers = Spi::get_one_with_args::<bool>(
                        "SELECT $2 = ANY (indkey) FROM pg_catalog.pg_index WHERE indexrelid = $1",
                        &[index.into(), dist.dist_attnum.into()],
                    )?
                    .unwrap_or(false);
                    if !covers {
                        return Err(TesseraError::new(
                            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
                            format!("cannot create unique index \"{name}\" on a distributed table without its distribution column"),
                        )
                        .hint("Include the distribution column in the unique index."));
                    }
                }
                for s in catalog::shards(relid)? {
                    let sql = shard_index_ddl(&schema, &table, &name, &def, s.shard_id)?;
                    for g in &s.groups {
                        per_group
                            .entry(*g)
                            .or_default()
                            .push((sql.clone(), Vec::new()));
                    }
                }
            }
        }
        After::DropIndexes { indexes } => {
            for (table, schema, _table_name, index) in indexes {
                push_per_placement(&mut per_group, table, &schema, &index, |i| {
                    format!("DROP INDEX IF EXISTS {i}")
                })?;
            }
        }
        After::Truncate { relids } => {
            for relid in relids {
                let (schema, table) = rel_schema_and_name(relid);
                push_per_placement(&mut per_group, relid, &schema, &table, |t| {
                    format!("TRUNCATE TABLE {t}")
                })?;
            }
        }
        After::Constraints {
            relid,
            before,
            dropped,
        } => {
            let dist = catalog::find(relid)?.expect("checked before");
            let mut added = Vec::new();
            let mut foreign = Vec::new();
            Spi::connect(|client| -> TResult<()> {
                for row in client.select(
                    "SELECT oid, conname::text, pg_catalog.pg_get_constraintdef(oid, true), contype::text,
                            coalesce($2 = ANY (conkey), false)
                       FROM pg_catalog.pg_constraint WHERE conrelid = $1 ORDER BY oid",
                    None,
                    &[relid.into(), dist.dist_attnum.into()],
                )? {
                    let oid = row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid);
                    if before.contains(&oid) {
                        continue;
                    }
                    let name = row.get::<String>(2)?.unwrap_or_default();
                    let kind = row.get::<String>(4)?.unwrap_or_default();
                    if dist.dist_attnum > 0
                        && matches!(kind.as_str(), "u" | "p")
                        && !row.get::<bool>(5)?.unwrap_or(false)
                    {
                        return Err(TesseraError::new(
                            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
                            format!("cannot create constraint \"{name}\" on a distributed table: it does not include the distribution column"),
                        )
                        .hint("Distributed tables cannot have UNIQUE or PRIMARY KEY constraints that do not include the distribution column: add it to the constraint."));
                    }
                    if kind == "f" {
                        foreign.push(oid);
                        continue;
                    }
                    added.push((name, row.get::<String>(3)?.unwrap_or_default()));
                }
                Ok(())
            })?;
            let foreign = foreign
                .into_iter()
                .map(|oid| super::foreign_keys::check(oid, &dist))
                .collect::<TResult<Vec<_>>>()?;
            let (schema, table) = rel_schema_and_name(relid);
            for (index, s) in catalog::shards(relid)?.into_iter().enumerate() {
                let shard = format!(
                    "{}.{}",
                    quote_identifier(&schema),
                    quote_identifier(shard_name(&table, s.shard_id))
                );
                let mut sql = String::new();
                for (name, missing_ok) in &dropped {
                    sql.push_str(&format!(
                        "ALTER TABLE {shard} DROP CONSTRAINT {}{};\n",
                        if *missing_ok { "IF EXISTS " } else { "" },
                        quote_identifier(shard_name(name, s.shard_id))
                    ));
                }
                for (name, def) in &added {
                    sql.push_str(&format!(
                        "ALTER TABLE {shard} ADD CONSTRAINT {} {def};\n",
                        quote_identifier(shard_name(name, s.shard_id))
                    ));
                }
                for fk in &foreign {
                    sql.push_str(&format!(
                        "ALTER TABLE {shard} ADD CONSTRAINT {} {};\n",
                        quote_identifier(shard_name(&fk.name, s.shard_id)),
                        fk.shard_def(index)
                    ));
                }
                for g in &s.groups {
                    per_group
                        .entry(*g)
                        .or_default()
                        .push((sql.clone(), Vec::new()));
                }
            }
        }
        After::Rewrite {
            relid,
            sql,
            name_at,
        } => {
            let end =
                tessera_core::sqltext::qualified_name_end(&sql, name_at).ok_or_else(|| {
                    TesseraError::new(
                        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                        "cannot find the table's name in the statement's text to carry it to the shards",
                    )
                    .detail(format!("statement: {sql}"))
                    .hint("Name the table directly in the statement (schema.table), one statement at a time.")
                })?;
            let (schema, table) = rel_schema_and_name(relid);
            push_per_placement(&mut per_group, relid, &schema, &table, |shard| {
                tessera_core::sqltext::splice(&sql, vec![(name_at, end, shard.to_string())])
            })?;
        }
    }
    // One batch per node keeps the number of round trips at one per node.
    let batched: PerGroup = per_group
        .into_iter()
        .map(|(g, cmds)| {
            if g == tessera_core::node::COORDINATOR_GROUP_ID {
                (g, cmds)
            } else {
                let sql = cmds
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect::<Vec<_>>()
                    .join(";\n");
                (g, vec![(sql, Vec::new())])
            }
        })
        .collect();
    run_per_group(batched, &all)
}

#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn tessera_process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    let installed = tessera_installed();
    let pstmt = if installed {
        // SAFETY: arguments come from PostgreSQL.
        unsafe { copy_to_as_query(pstmt) }.or_report()
    } else {
        pstmt
    };
    let work = if installed {
        // SAFETY: arguments come from PostgreSQL.
        unsafe { before(pstmt, query_string) }.or_report()
    } else {
        After::Nothing
    };
    let local = !matches!(work, After::Nothing);
    // SAFETY: called by PostgreSQL with valid arguments; passed on unchanged.
    let run_locally = || unsafe {
        match PREV_PROCESS_UTILITY_HOOK {
            Some(prev) => pg_guard_ffi_boundary(|| {
                prev(
                    pstmt,
                    query_string,
                    read_only_tree,
                    context,
                    params,
                    query_env,
                    dest,
                    qc,
                )
            }),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    };
    // The local part of a statement on a distributed table touches only the coordinator's
    // own (empty) tables: PostgreSQL's internal queries must not be distributed.
    if local {
        crate::planner::local_only(run_locally);
    } else {
        run_locally();
    }
    if !matches!(work, After::Nothing) {
        after(work).or_report();
    }
}
