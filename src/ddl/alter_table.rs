//! ALTER TABLE and RENAME on a distributed table: column forms and RENAME COLUMN run the
//! user's statement on every shard (the table reference replaced by the shard's name, found
//! at the parser's location); ADD/DROP CONSTRAINT runs each new constraint's definition (or
//! the DROP) under the shard's constraint name `<name>_<shardid>`. Every other form is refused
//! with a hint: the shards cannot follow it yet (RLS, inheritance, SET SCHEMA, renaming the
//! table or a constraint, ALTER INDEX).

use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::spi::Spi;
use tessera_core::sharding::shard_name;

use super::{distributed_range_var, range_var_relid, refused, rel_schema_and_name, Step, Utility};
use crate::ddl::propagate::{push_per_placement, push_per_shard, PerGroup};
use crate::error::{TResult, TesseraError};
use crate::metadata::table as catalog;
use crate::pg::nodes::list_ptrs;

fn unsupported_alter(what: &str) -> TesseraError {
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported on distributed tables yet"),
    )
    .hint("Supported: ADD/DROP COLUMN, ALTER COLUMN TYPE/DEFAULT/NOT NULL/STATISTICS/STORAGE, ADD/DROP CONSTRAINT (CHECK, UNIQUE, PRIMARY KEY, FOREIGN KEY), RENAME, OWNER TO, SET SCHEMA, SET/RESET (storage parameters), ROW LEVEL SECURITY.")
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
                | pg_sys::AlterTableType::AT_DropNotNull
                | pg_sys::AlterTableType::AT_ChangeOwner
                | pg_sys::AlterTableType::AT_EnableRowSecurity
                | pg_sys::AlterTableType::AT_DisableRowSecurity
                | pg_sys::AlterTableType::AT_ForceRowSecurity
                | pg_sys::AlterTableType::AT_NoForceRowSecurity
                | pg_sys::AlterTableType::AT_SetRelOptions
                | pg_sys::AlterTableType::AT_ResetRelOptions
                | pg_sys::AlterTableType::AT_SetStatistics
                | pg_sys::AlterTableType::AT_SetStorage
                | pg_sys::AlterTableType::AT_SetCompression
                | pg_sys::AlterTableType::AT_EnableTrig
                | pg_sys::AlterTableType::AT_EnableAlwaysTrig
                | pg_sys::AlterTableType::AT_EnableReplicaTrig
                | pg_sys::AlterTableType::AT_DisableTrig
                | pg_sys::AlterTableType::AT_EnableTrigAll
                | pg_sys::AlterTableType::AT_DisableTrigAll
                | pg_sys::AlterTableType::AT_EnableTrigUser
                | pg_sys::AlterTableType::AT_DisableTrigUser => {}
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

/// The user's statement on every shard, the table reference at `name_at` replaced.
pub(super) fn rewrite(relid: pg_sys::Oid, sql: String, name_at: usize) -> Step {
    rewrite_list(vec![relid], sql, name_at, name_at)
}

/// The user's statement on every shard of `relid`, the name at `name_at` replaced by the
/// shard's `object` (one of the table's indexes, named `<index>_<shardid>` on the shards).
fn rewrite_object(relid: pg_sys::Oid, object: String, sql: String, name_at: usize) -> Step {
    Step::Propagate(Box::new(move || {
        let end = tessera_core::sqltext::qualified_name_end(&sql, name_at).ok_or_else(|| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "cannot find the index's name in the statement's text to carry it to the shards",
            )
            .hint(
                "Name the index directly in the statement (schema.index), one statement at a time.",
            )
        })?;
        let (schema, _) = rel_schema_and_name(relid);
        let mut per_group = PerGroup::new();
        push_per_placement(&mut per_group, relid, &schema, &object, |shard_index| {
            tessera_core::sqltext::splice(&sql, vec![(name_at, end, shard_index.to_string())])
        })?;
        super::run_batched(per_group)
    }))
}

/// The user's statement on every shard of each table in `relids`, the text from `first_at` to
/// the end of the name at `last_at` (a list of table names) replaced by the shard's name.
pub(super) fn rewrite_list(
    relids: Vec<pg_sys::Oid>,
    sql: String,
    first_at: usize,
    last_at: usize,
) -> Step {
    Step::Propagate(Box::new(move || {
        let mut per_group = PerGroup::new();
        let name_at = first_at;
        let end = tessera_core::sqltext::qualified_name_end(&sql, last_at).ok_or_else(|| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "cannot find the table's name in the statement's text to carry it to the shards",
            )
            .detail(format!("statement: {sql}"))
            .hint(
                "Name the table directly in the statement (schema.table), one statement at a time.",
            )
        })?;
        for relid in relids {
            let (schema, table) = rel_schema_and_name(relid);
            push_per_placement(&mut per_group, relid, &schema, &table, |shard| {
                tessera_core::sqltext::splice(&sql, vec![(name_at, end, shard.to_string())])
            })?;
        }
        super::run_batched(per_group)
    }))
}

/// The constraints the local statement added (found by diffing pg_constraint) and the names it
/// dropped, applied to every shard under the shard's constraint name.
fn constraints(relid: pg_sys::Oid, before: Vec<pg_sys::Oid>, dropped: Vec<(String, bool)>) -> Step {
    Step::Propagate(Box::new(move || {
        let mut per_group = PerGroup::new();
        let dist = catalog::find(relid)?.expect("checked before");
        let mut added = Vec::new();
        let mut indexes = Vec::new();
        let mut foreign = Vec::new();
        Spi::connect(|client| -> TResult<()> {
            for row in client.select(
                "SELECT oid, conname::text, pg_catalog.pg_get_constraintdef(oid, true), contype::text,
                        coalesce($2 = ANY (conkey), false), conindid
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
                if matches!(kind.as_str(), "u" | "p") {
                    indexes.extend(row.get::<pg_sys::Oid>(6)?);
                }
                added.push((name, row.get::<String>(3)?.unwrap_or_default()));
            }
            Ok(())
        })?;
        let foreign = foreign
            .into_iter()
            .map(|oid| crate::sharding::foreign_keys::check(oid, &dist))
            .collect::<TResult<Vec<_>>>()?;
        let (schema, table) = rel_schema_and_name(relid);
        push_per_shard(
            &mut per_group,
            relid,
            &schema,
            &table,
            |index, shard_id, shard| {
                let mut sql = String::new();
                for (name, missing_ok) in &dropped {
                    sql.push_str(&format!(
                        "ALTER TABLE {shard} DROP CONSTRAINT {}{};\n",
                        if *missing_ok { "IF EXISTS " } else { "" },
                        quote_identifier(shard_name(name, shard_id))
                    ));
                }
                for (name, def) in &added {
                    sql.push_str(&format!(
                        "ALTER TABLE {shard} ADD CONSTRAINT {} {def};\n",
                        quote_identifier(shard_name(name, shard_id))
                    ));
                }
                for fk in &foreign {
                    sql.push_str(&format!(
                        "ALTER TABLE {shard} ADD CONSTRAINT {} {};\n",
                        quote_identifier(shard_name(&fk.name, shard_id)),
                        fk.shard_def(index)
                    ));
                }
                Ok(vec![sql])
            },
        )?;
        super::run_batched(per_group)?;
        for index in indexes {
            crate::udf::partitions::name_partition_indexes(relid, index, None)?;
        }
        Ok(())
    }))
}

/// # Safety
/// `u` is an AlterTableStmt.
pub(super) unsafe fn alter(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; relation is a valid RangeVar.
    unsafe {
        let s = u.node::<pg_sys::AlterTableStmt>();
        // ALTER INDEX (or ALTER TABLE) ... SET / RESET (options) of a distributed table's
        // index: the statement on every shard index, the index's name replaced by the shard's.
        if let Some(table) = super::distributed_index_table((*s).relation)? {
            let options_only = list_ptrs((*s).cmds).into_iter().all(|c| {
                matches!(
                    (*(c as *mut pg_sys::AlterTableCmd)).subtype,
                    pg_sys::AlterTableType::AT_SetRelOptions
                        | pg_sys::AlterTableType::AT_ResetRelOptions
                )
            });
            if options_only {
                let index = range_var_relid((*s).relation);
                let (_, index_name) = rel_schema_and_name(index);
                let (sql, name_at) = u.text_and_offset((*(*s).relation).location);
                return Ok(rewrite_object(table, index_name, sql, name_at));
            }
        }
        // Whatever the statement calls it (ALTER TABLE on an index): the relation decides.
        super::index::refuse_alter((*s).relation, "this form of ALTER INDEX", "Only an index's storage parameters (SET / RESET) reach its shards: otherwise drop the index and create it again.")?;
        if (*s).objtype != pg_sys::ObjectType::OBJECT_TABLE {
            return Ok(Step::Pass);
        }
        // Partition links: a distributed table under a local one would have its scans and
        // tuple routing reach the coordinator's empty copy.
        if let Some(step) = super::partitions::alter(s)? {
            return Ok(step);
        }
        let relid = range_var_relid((*s).relation);
        let Some(dist) = (if relid == pg_sys::InvalidOid {
            None
        } else {
            catalog::find(relid)?
        }) else {
            return Ok(Step::Pass);
        };
        let dist_col = if dist.dist_attnum > 0 {
            attname(relid, dist.dist_attnum)?
        } else {
            None
        };
        if let AlterKind::Constraints(dropped) = check_alter(s, dist_col.as_deref())? {
            return Ok(constraints(relid, constraints_of(relid)?, dropped));
        }
        let (sql, name_at) = u.text_and_offset((*(*s).relation).location);
        Ok(rewrite(relid, sql, name_at))
    }
}

/// # Safety
/// `u` is a RenameStmt.
pub(super) unsafe fn rename(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; relation is null or a valid RangeVar.
    unsafe {
        let s = u.node::<pg_sys::RenameStmt>();
        if (*s).renameType == pg_sys::ObjectType::OBJECT_ROLE {
            return super::roles::as_is(u);
        }
        if (*s).renameType == pg_sys::ObjectType::OBJECT_STATISTIC_EXT {
            super::statistics::refuse_move((*s).object)?;
            return Ok(Step::Pass);
        }
        if (*s).renameType == pg_sys::ObjectType::OBJECT_SCHEMA {
            // The old placements waiting for cleanup are found by name: they follow.
            let old = crate::pg::nodes::string((*s).subname);
            let new = crate::pg::nodes::string((*s).newname);
            let Step::Propagate(then) = super::objects::as_written(u)? else {
                return Ok(Step::Pass);
            };
            return Ok(Step::Propagate(Box::new(move || {
                then()?;
                crate::metadata::cleanup::rename_schema(&old, &new)
            })));
        }
        if super::shared_object((*s).renameType, (*s).object) {
            return super::objects::as_written(u);
        }
        if (*s).relation.is_null() {
            return Ok(Step::Pass);
        }
        // Whatever the statement calls it (ALTER TABLE on an index, ALTER INDEX on a table):
        // the relation decides.
        if matches!(
            (*s).renameType,
            pg_sys::ObjectType::OBJECT_INDEX | pg_sys::ObjectType::OBJECT_TABLE
        ) {
            let index = range_var_relid((*s).relation);
            if let Some(table) = super::distributed_index_table((*s).relation)? {
                return Ok(super::shards::rename_index(
                    table,
                    index,
                    crate::pg::nodes::string((*s).newname),
                ));
            }
        }
        let relid = range_var_relid((*s).relation);
        if relid == pg_sys::InvalidOid || catalog::find(relid)?.is_none() {
            return Ok(Step::Pass);
        }
        match (*s).renameType {
            pg_sys::ObjectType::OBJECT_TABLE | pg_sys::ObjectType::OBJECT_INDEX => Ok(
                super::shards::rename_table(relid, crate::pg::nodes::string((*s).newname)),
            ),
            pg_sys::ObjectType::OBJECT_VIEW
            | pg_sys::ObjectType::OBJECT_MATVIEW
            | pg_sys::ObjectType::OBJECT_SEQUENCE
            | pg_sys::ObjectType::OBJECT_FOREIGN_TABLE => Err(unsupported_alter(
                "renaming a distributed table with this statement",
            )),
            pg_sys::ObjectType::OBJECT_COLUMN
                if (*s).relationType == pg_sys::ObjectType::OBJECT_TABLE =>
            {
                let (sql, name_at) = u.text_and_offset((*(*s).relation).location);
                Ok(rewrite(relid, sql, name_at))
            }
            pg_sys::ObjectType::OBJECT_TABCONSTRAINT => {
                Err(unsupported_alter("renaming a constraint"))
            }
            pg_sys::ObjectType::OBJECT_POLICY | pg_sys::ObjectType::OBJECT_TRIGGER => {
                let (sql, name_at) = u.text_and_offset((*(*s).relation).location);
                Ok(rewrite(relid, sql, name_at))
            }
            pg_sys::ObjectType::OBJECT_RULE => Err(refused(
                "this RENAME",
                relid,
                "Drop the object and create it again under the new name.",
            )),
            _ => Ok(Step::Pass),
        }
    }
}

/// ALTER TABLE ... SET SCHEMA of a distributed table: its shards move too.
///
/// # Safety
/// `u` is an AlterObjectSchemaStmt.
pub(super) unsafe fn set_schema(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table.
    let s = unsafe { u.node::<pg_sys::AlterObjectSchemaStmt>() };
    // SAFETY: as above; a statistics object's object node is its name list.
    if unsafe { (*s).objectType } == pg_sys::ObjectType::OBJECT_STATISTIC_EXT {
        // SAFETY: as above.
        unsafe { super::statistics::refuse_move((*s).object)? };
        return Ok(Step::Pass);
    }
    // SAFETY: as above; object is the statement's object node.
    if unsafe { super::shared_object((*s).objectType, (*s).object) } {
        // SAFETY: as above.
        return unsafe { super::objects::as_written(u) };
    }
    // SAFETY: as above; newschema is the statement's NUL-terminated name.
    let (kind, new_schema) = unsafe { ((*s).objectType, crate::pg::nodes::string((*s).newschema)) };
    let table_kind = kind == pg_sys::ObjectType::OBJECT_TABLE
        || kind == pg_sys::ObjectType::OBJECT_FOREIGN_TABLE;
    // SAFETY: as above; relation is null or the statement's valid RangeVar.
    let relation = unsafe { (*s).relation };
    if table_kind && !relation.is_null() {
        // SAFETY: relation is the statement's valid RangeVar.
        let relid = unsafe { super::range_var_relid(relation) };
        if relid != pg_sys::InvalidOid {
            // Into or out of a distributed schema: the table becomes a tenant table there, or
            // comes back to the coordinator first.
            let into_tenant_schema =
                crate::ddl::tenant_tables::set_schema_before(relid, &new_schema)?;
            if super::is_distributed(relid)? {
                return Ok(super::shards::set_schema(relid, new_schema));
            }
            if into_tenant_schema {
                return Ok(Step::Propagate(Box::new(move || {
                    crate::ddl::tenant_tables::set_schema_after(relid)
                })));
            }
            return Ok(Step::Pass);
        }
    }
    // SAFETY: the tag was checked by the table; relation is null or a valid RangeVar.
    match unsafe { distributed_range_var((*s).relation) }? {
        Some(relid) => Ok(super::shards::set_schema(relid, new_schema)),
        None => Ok(Step::Pass),
    }
}
