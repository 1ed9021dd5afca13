//! Triggers on distributed and reference tables: with `citus.enable_unsafe_triggers` on, as
//! in Citus, CREATE TRIGGER and DROP TRIGGER reach every shard (ALTER TRIGGER ... RENAME is a
//! RENAME, `alter_table`), and
//! the trigger runs there, on the shard's rows (its function exists on every node, as
//! functions do). A trigger that reads or writes other tables sees the worker's local tables
//! there, which is why the setting is off by default and the statements are refused.
//! ENABLE / DISABLE TRIGGER are ALTER TABLE forms (`alter_table`).

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use super::{distributed_range_var, rel_schema_and_name, run_batched, Step, Utility};
use crate::ddl::propagate::push_per_placement;
use crate::error::{TResult, TesseraError};
use crate::gucs;
use crate::pg::nodes::string;

/// The refusal of a trigger on `table` while `citus.enable_unsafe_triggers` is off.
pub(crate) fn triggers_refused(table: &str) -> TesseraError {
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("cannot run triggers on {table}: it is (or is becoming) a distributed table and citus.enable_unsafe_triggers is off"),
    )
    .detail("A trigger on a distributed table runs on each shard, where it sees the worker's tables rather than the distributed ones.")
    .hint("SET citus.enable_unsafe_triggers = on to carry the triggers to the shards, if they touch only the row they fire for.")
}

/// CREATE [OR REPLACE] TRIGGER on a distributed table.
///
/// # Safety
/// `u` is a CreateTrigStmt.
pub(super) unsafe fn create(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; relation is a valid RangeVar, trigname a
    // NUL-terminated name.
    let (relid, name) = unsafe {
        let s = u.node::<pg_sys::CreateTrigStmt>();
        let Some(relid) = distributed_range_var((*s).relation)? else {
            return Ok(Step::Pass);
        };
        (relid, string((*s).trigname))
    };
    if !gucs::enable_unsafe_triggers() {
        let (schema, table) = rel_schema_and_name(relid);
        return Err(triggers_refused(&format!(
            "{}.{}",
            quote_identifier(&schema),
            quote_identifier(&table)
        )));
    }
    Ok(Step::Propagate(Box::new(move || {
        let defs = crate::sharding::ddl::triggers(relid, Some(&name))?;
        super::make_again_per_shard(relid, "TRIGGER", &name, &defs)
    })))
}

/// DROP TRIGGER ... ON a distributed table: `DROP TRIGGER IF EXISTS` on every shard.
///
/// # Safety
/// `u` is a DropStmt of triggers.
pub(super) unsafe fn drop(u: &Utility) -> TResult<Step> {
    let mut drops = Vec::new();
    // SAFETY: a DROP TRIGGER's objects are name lists: the table's name, then the trigger's.
    unsafe {
        for names in crate::pg::nodes::list_ptrs((*u.node::<pg_sys::DropStmt>()).objects) {
            let parts = crate::pg::nodes::list_ptrs(names as *mut pg_sys::List);
            let Some((&trigger, table)) = parts.split_last() else {
                continue;
            };
            let rv = pg_sys::makeRangeVarFromNameList(crate::pg::nodes::make_list(table));
            if let Some(relid) = distributed_range_var(rv)? {
                drops.push((relid, string((*(trigger as *mut pg_sys::String)).sval)));
            }
        }
    }
    if drops.is_empty() {
        return Ok(Step::Pass);
    }
    Ok(Step::Propagate(Box::new(move || {
        let mut per_group = super::PerGroup::new();
        for (relid, trigger) in drops {
            let (schema, table) = rel_schema_and_name(relid);
            push_per_placement(&mut per_group, relid, &schema, &table, |t| {
                format!(
                    "DROP TRIGGER IF EXISTS {} ON {t}",
                    quote_identifier(&trigger)
                )
            })?;
        }
        run_batched(per_group)
    })))
}
