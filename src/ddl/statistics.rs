//! Extended statistics (CREATE STATISTICS) on distributed tables: each shard gets the object
//! under the shard's name (`<name>_<shardid>`), so ANALYZE on the shards gathers them and the
//! workers plan with them. DROP STATISTICS and ALTER STATISTICS ... SET STATISTICS follow;
//! RENAME and SET SCHEMA of such an object are refused (drop it and create it again).

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use super::{
    distributed_range_var, is_distributed, rel_schema_and_name, run_batched, Step, Utility,
};
use crate::ddl::propagate::push_per_shard;
use crate::error::TResult;
use crate::pg::nodes::{is_a, list_ptrs};

/// The statistics objects of `relid`.
fn objects_of(relid: pg_sys::Oid) -> TResult<Vec<pg_sys::Oid>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT oid FROM pg_catalog.pg_statistic_ext WHERE stxrelid = $1",
            None,
            &[relid.into()],
        )? {
            out.extend(row.get::<pg_sys::Oid>(1)?);
        }
        Ok(out)
    })
}

/// The table a statistics object (named by a qualified name list) is on, with the object.
///
/// # Safety
/// `names` is a List of String nodes.
unsafe fn object_table(names: *mut pg_sys::List) -> TResult<Option<(pg_sys::Oid, pg_sys::Oid)>> {
    // SAFETY: a missing_ok lookup by name.
    let oid = unsafe { pg_sys::get_statistics_object_oid(names, true) };
    if oid == pg_sys::InvalidOid {
        return Ok(None);
    }
    let relid = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT stxrelid FROM pg_catalog.pg_statistic_ext WHERE oid = $1",
        &[oid.into()],
    )?
    .unwrap_or(pg_sys::InvalidOid);
    Ok(is_distributed(relid)?.then_some((relid, oid)))
}

/// CREATE STATISTICS on a distributed table: the new object made on every shard.
///
/// # Safety
/// `u` is a CreateStatsStmt.
pub(super) unsafe fn create(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; relations holds RangeVars (or other FROM items,
    // which are not RangeVars and are skipped).
    let relid = unsafe {
        let mut found = None;
        for n in list_ptrs((*u.node::<pg_sys::CreateStatsStmt>()).relations) {
            if is_a(n as *const std::ffi::c_void, pg_sys::NodeTag::T_RangeVar) {
                found = found.or(distributed_range_var(n as *mut pg_sys::RangeVar)?);
            }
        }
        match found {
            Some(r) => r,
            None => return Ok(Step::Pass),
        }
    };
    let before = objects_of(relid)?;
    Ok(Step::Propagate(Box::new(move || {
        let mut per_group = super::PerGroup::new();
        for oid in objects_of(relid)? {
            if before.contains(&oid) {
                continue;
            }
            let defs = crate::sharding::ddl::statistics(relid, Some(oid))?;
            let (schema, table) = rel_schema_and_name(relid);
            push_per_shard(&mut per_group, relid, &schema, &table, |_, id, shard| {
                Ok(defs.iter().flat_map(|d| d.create_sql(id, shard)).collect())
            })?;
        }
        run_batched(per_group)
    })))
}

/// The shard commands `sql_for(shard's object name)` for the statistics object `oid` on
/// `relid`.
fn per_shard_object(
    relid: pg_sys::Oid,
    oid: pg_sys::Oid,
    sql_for: impl Fn(&str) -> String,
) -> TResult<super::PerGroup> {
    let defs = crate::sharding::ddl::statistics(relid, Some(oid))?;
    let (schema, table) = rel_schema_and_name(relid);
    let mut per_group = super::PerGroup::new();
    push_per_shard(&mut per_group, relid, &schema, &table, |_, id, _| {
        Ok(defs.iter().map(|d| sql_for(&d.shard_name(id))).collect())
    })?;
    Ok(per_group)
}

/// DROP STATISTICS of a distributed table's object: dropped on every shard.
///
/// # Safety
/// `u` is a DropStmt of statistics objects.
pub(super) unsafe fn drop(u: &Utility) -> TResult<Step> {
    let mut batches = super::PerGroup::new();
    // SAFETY: a DROP STATISTICS's objects are qualified name lists.
    unsafe {
        for names in list_ptrs((*u.node::<pg_sys::DropStmt>()).objects) {
            if let Some((relid, oid)) = object_table(names as *mut pg_sys::List)? {
                // The names are read now: the object is gone when the closure runs.
                for (g, cmds) in
                    per_shard_object(relid, oid, |n| format!("DROP STATISTICS IF EXISTS {n}"))?
                {
                    batches.entry(g).or_default().extend(cmds);
                }
            }
        }
    }
    if batches.is_empty() {
        return Ok(Step::Pass);
    }
    Ok(Step::Propagate(Box::new(move || run_batched(batches))))
}

/// ALTER STATISTICS ... SET STATISTICS of a distributed table's object.
///
/// # Safety
/// `u` is an AlterStatsStmt.
pub(super) unsafe fn alter(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; defnames is a qualified name list.
    let (found, target) = unsafe {
        let s = u.node::<pg_sys::AlterStatsStmt>();
        (object_table((*s).defnames)?, (*s).stxstattarget)
    };
    let Some((relid, oid)) = found else {
        return Ok(Step::Pass);
    };
    let per_group = per_shard_object(relid, oid, |n| {
        format!("ALTER STATISTICS {n} SET STATISTICS {target}")
    })?;
    Ok(Step::Propagate(Box::new(move || run_batched(per_group))))
}

/// ALTER STATISTICS ... OWNER TO of a distributed table's object: the shards' objects get the
/// same owner.
///
/// # Safety
/// `object` is a qualified name list; `newowner` the statement's RoleSpec.
pub(super) unsafe fn alter_owner(
    object: *mut pg_sys::Node,
    newowner: *mut pg_sys::RoleSpec,
) -> TResult<Step> {
    // SAFETY: forwarded.
    let Some((relid, oid)) = (unsafe { object_table(object as *mut pg_sys::List)? }) else {
        return Ok(Step::Pass);
    };
    // SAFETY: forwarded.
    unsafe { super::roles::refuse_session_user(&[newowner])? };
    // SAFETY: the statement's RoleSpec, resolved as the statement resolves it.
    let owner = unsafe { pg_sys::get_rolespec_oid(newowner, false) };
    // SAFETY: a syscache lookup of an existing role.
    let name = unsafe { crate::pg::nodes::string(pg_sys::GetUserNameFromId(owner, false)) };
    let per_group = per_shard_object(relid, oid, |n| {
        format!("ALTER STATISTICS {n} OWNER TO {}", quote_identifier(&name))
    })?;
    Ok(Step::Propagate(Box::new(move || run_batched(per_group))))
}

/// RENAME / SET SCHEMA of a distributed table's statistics object: refused.
///
/// # Safety
/// `object` is a qualified name list.
pub(super) unsafe fn refuse_move(object: *mut pg_sys::Node) -> TResult<()> {
    // SAFETY: forwarded.
    if let Some((relid, _)) = unsafe { object_table(object as *mut pg_sys::List)? } {
        return Err(super::refused(
            "renaming or moving a statistics object",
            relid,
            "Drop the statistics object and create it again under the new name.",
        ));
    }
    Ok(())
}
