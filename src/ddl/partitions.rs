//! Partitions of distributed tables (see `udf::partitions` for how the shards follow):
//! CREATE TABLE ... PARTITION OF and ALTER TABLE ... ATTACH / DETACH PARTITION, and the
//! refusals: inheritance (INHERITS, INHERIT) to or from a distributed table, a distributed
//! table under a local parent, more than one level of partitions, DETACH ... CONCURRENTLY.

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{distributed_range_var, range_var_relid, refused, Step, Utility};
use crate::error::{TResult, TesseraError};
use crate::pg::nodes::{list_ptrs, string};
use crate::udf::partitions;

/// CREATE TABLE ... PARTITION OF dist: the new partition distributed with its parent once it
/// exists. CREATE TABLE ... INHERITS (dist), and a partition that is partitioned itself, are
/// refused.
///
/// # Safety
/// `u` is a CreateStmt.
pub(super) unsafe fn create_table(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; inhRelations holds RangeVars; relation is the
    // new table's valid RangeVar.
    unsafe {
        let s = u.node::<pg_sys::CreateStmt>();
        for rv in list_ptrs((*s).inhRelations) {
            let Some(parent) = distributed_range_var(rv as *mut pg_sys::RangeVar)? else {
                continue;
            };
            if (*s).partbound.is_null() {
                return Err(refused(
                    "a table that inherits from another",
                    parent,
                    "Use declarative partitioning (CREATE TABLE ... PARTITION OF), or create the table on its own and distribute it with create_distributed_table(..., colocate_with => ...).",
                ));
            }
            if !(*s).partspec.is_null() {
                return Err(TesseraError::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "cannot create a partitioned partition of a distributed table",
                )
                .hint("Use one level of partitions under a distributed table."));
            }
            let rel = (*s).relation;
            if (*s).if_not_exists && range_var_relid(rel) != pg_sys::InvalidOid {
                // It exists: PostgreSQL says so and creates nothing.
                return Ok(Step::Pass);
            }
            let name = string((*rel).relname);
            return Ok(Step::Propagate(Box::new(move || {
                let Some(child) = new_partition(parent, &name)? else {
                    return Ok(());
                };
                partitions::distribute_partition(
                    parent,
                    child,
                    crate::udf::distribute::ForeignKeys::Now,
                )
            })));
        }
    }
    Ok(Step::Pass)
}

/// CREATE FOREIGN TABLE ... PARTITION OF (or INHERITS) a distributed table: refused (a foreign
/// table has no shards for the parent's shards to hold).
///
/// # Safety
/// `u` is a CreateForeignTableStmt.
pub(super) unsafe fn create_foreign_table(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; a CreateForeignTableStmt starts with its
    // CreateStmt, whose inhRelations holds RangeVars.
    unsafe {
        let s = u.node::<pg_sys::CreateForeignTableStmt>();
        for rv in list_ptrs((*s).base.inhRelations) {
            if let Some(parent) = distributed_range_var(rv as *mut pg_sys::RangeVar)? {
                return Err(refused(
                    "a foreign table as a partition or child",
                    parent,
                    "Partitions of a distributed table are distributed tables: create a regular table as the partition.",
                ));
            }
        }
    }
    Ok(Step::Pass)
}

/// The partition of `parent` named `name` that is not distributed yet (the one the statement
/// just made).
fn new_partition(parent: pg_sys::Oid, name: &str) -> TResult<Option<pg_sys::Oid>> {
    Ok(Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT (SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                   JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhparent = $1 AND c.relname = $2
                    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
                                     WHERE p.logicalrelid = i.inhrelid))",
        &[parent.into(), name.into()],
    )?)
}

/// ALTER TABLE ... ATTACH / DETACH PARTITION (a statement of its own, as the grammar has it)
/// and INHERIT, when either table is distributed; `None` for other statements.
///
/// # Safety
/// `s` is a valid AlterTableStmt.
pub(super) unsafe fn alter(s: *mut pg_sys::AlterTableStmt) -> TResult<Option<Step>> {
    // SAFETY: each list element of `cmds` is an AlterTableCmd; `def` follows its subtype.
    unsafe {
        for cmd in list_ptrs((*s).cmds) {
            let c = cmd as *mut pg_sys::AlterTableCmd;
            if (*c).subtype == pg_sys::AlterTableType::AT_AddInherit {
                let other = (*c).def as *mut pg_sys::RangeVar;
                if let Some(relid) = distributed_range_var(other)? {
                    return Err(refused("an inheritance link", relid, "Distributed tables cannot be parents of local tables: use declarative partitioning under a distributed table instead."));
                }
                if let Some(relid) = distributed_range_var((*s).relation)? {
                    return Err(refused(
                        "an inheritance link",
                        relid,
                        "Use declarative partitioning (ATTACH PARTITION) instead.",
                    ));
                }
            }
        }
        let cmds = list_ptrs((*s).cmds);
        let [cmd] = cmds.as_slice() else {
            return Ok(None);
        };
        let c = *cmd as *mut pg_sys::AlterTableCmd;
        let (attach, finalize) = match (*c).subtype {
            pg_sys::AlterTableType::AT_AttachPartition => (true, false),
            pg_sys::AlterTableType::AT_DetachPartition => (false, false),
            pg_sys::AlterTableType::AT_DetachPartitionFinalize => (false, true),
            _ => return Ok(None),
        };
        let part = (*c).def as *mut pg_sys::PartitionCmd;
        let parent = distributed_range_var((*s).relation)?;
        let child = distributed_range_var((*part).name)?;
        let Some(parent) = parent else {
            return match child {
                Some(child) => Err(refused("a partition link", child, "A distributed table cannot be a partition of a local table: distribute the partitioned table instead (its partitions are distributed with it).")),
                None => Ok(Some(Step::Pass)),
            };
        };
        if !attach {
            if (*part).concurrent || finalize {
                return Err(TesseraError::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "cannot detach a partition of a distributed table concurrently",
                )
                .hint("Use ALTER TABLE ... DETACH PARTITION without CONCURRENTLY: the shards are detached in the statement's transaction."));
            }
            return Ok(Some(match child {
                Some(child) => {
                    Step::Propagate(Box::new(move || partitions::detach_shards(parent, child)))
                }
                None => Step::Pass,
            }));
        }
        match child {
            Some(child) => {
                partitions::check_attach(parent, child)?;
                Ok(Some(Step::Propagate(Box::new(move || {
                    partitions::attach_shards(parent, child)
                }))))
            }
            None => {
                let child = range_var_relid((*part).name);
                Ok(Some(Step::Propagate(Box::new(move || {
                    partitions::distribute_partition(
                        parent,
                        child,
                        crate::udf::distribute::ForeignKeys::Now,
                    )
                }))))
            }
        }
    }
}
