//! TRUNCATE, VACUUM and ANALYZE of distributed tables: the same on every shard placement.
//! TRUNCATE and ANALYZE run in the remote transaction; VACUUM cannot run in a transaction
//! block, so it runs on the workers in autocommit after the local statement, as Citus does. VACUUM or ANALYZE without a table list stays local (each node's own autovacuum
//! looks after its shards).

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use super::{range_var_relid, rel_schema_and_name, Step, Utility};
use crate::connection::Scope;
use crate::ddl::propagate::{push_per_placement, run_per_group_in, PerGroup};
use crate::error::{TResult, TesseraError};
use crate::metadata::node as nodes;
use crate::metadata::table as catalog;
use crate::pg::nodes::{is_a, list_ptrs, string};

/// # Safety
/// `u` is a TruncateStmt.
pub(super) unsafe fn truncate(u: &Utility) -> TResult<Step> {
    let mut relids = Vec::new();
    // SAFETY: the tag was checked by the table; relations holds RangeVars.
    for rv in unsafe { list_ptrs((*u.node::<pg_sys::TruncateStmt>()).relations) } {
        // SAFETY: as above.
        let relid = unsafe { range_var_relid(rv as *mut pg_sys::RangeVar) };
        if relid != pg_sys::InvalidOid && catalog::find(relid)?.is_some() {
            relids.push(relid);
        }
    }
    if relids.is_empty() {
        return Ok(Step::Pass);
    }
    Ok(super::on_each_shard(relids, |t| {
        format!("TRUNCATE TABLE {t}")
    }))
}

/// A VACUUM or ANALYZE option as SQL (`verbose`, `index_cleanup 'auto'`, `parallel 2`).
///
/// # Safety
/// `d` is a valid DefElem.
unsafe fn option_sql(d: *mut pg_sys::DefElem) -> TResult<String> {
    // SAFETY: defname is a NUL-terminated string; arg is null or a value node (its tag read
    // before the cast).
    unsafe {
        let name = quote_identifier(string((*d).defname));
        let arg = (*d).arg;
        if arg.is_null() {
            return Ok(name);
        }
        let value = if is_a(arg as *const std::ffi::c_void, pg_sys::NodeTag::T_Integer) {
            (*(arg as *mut pg_sys::Integer)).ival.to_string()
        } else if is_a(arg as *const std::ffi::c_void, pg_sys::NodeTag::T_Boolean) {
            (*(arg as *mut pg_sys::Boolean)).boolval.to_string()
        } else if is_a(arg as *const std::ffi::c_void, pg_sys::NodeTag::T_String) {
            pgrx::spi::quote_literal(string((*(arg as *mut pg_sys::String)).sval))
        } else if is_a(arg as *const std::ffi::c_void, pg_sys::NodeTag::T_Float) {
            string((*(arg as *mut pg_sys::Float)).fval)
        } else {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("the VACUUM option {name} cannot be carried to the shards"),
            )
            .hint("Give the option a plain value, or run VACUUM on the shards with run_command_on_workers()."));
        };
        Ok(format!("{name} {value}"))
    }
}

/// # Safety
/// `u` is a VacuumStmt.
pub(super) unsafe fn vacuum(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; rels holds VacuumRelations, options DefElems,
    // va_cols String nodes.
    let (verb, options, tables) = unsafe {
        let s = u.node::<pg_sys::VacuumStmt>();
        let mut tables = Vec::new();
        for r in list_ptrs((*s).rels) {
            let r = r as *mut pg_sys::VacuumRelation;
            if (*r).relation.is_null() {
                continue;
            }
            let relid = range_var_relid((*r).relation);
            if relid == pg_sys::InvalidOid || catalog::find(relid)?.is_none() {
                continue;
            }
            // PostgreSQL skips (with a WARNING) a table the role may not vacuum; so do the
            // shards and the coordinator's row counts.
            if !may_vacuum(relid) {
                continue;
            }
            let cols: Vec<String> = list_ptrs((*r).va_cols)
                .into_iter()
                .map(|c| quote_identifier(string((*(c as *mut pg_sys::String)).sval)))
                .collect();
            tables.push((relid, cols));
        }
        let options = list_ptrs((*s).options)
            .into_iter()
            .map(|d| option_sql(d as *mut pg_sys::DefElem))
            .collect::<TResult<Vec<_>>>()?;
        let verb = if (*s).is_vacuumcmd {
            "VACUUM"
        } else {
            "ANALYZE"
        };
        (verb, options, tables)
    };
    if tables.is_empty() {
        // VACUUM or ANALYZE of every table: each node's own run (or autovacuum) looks after its
        // shards, and the coordinator's pass over its empty copies would leave them no row
        // count; they get their shards' again.
        // SAFETY: reading the VacuumStmt.
        if unsafe { list_ptrs((*u.node::<pg_sys::VacuumStmt>()).rels).is_empty() } {
            return Ok(Step::Propagate(Box::new(|| {
                let mine: Vec<pg_sys::Oid> = crate::metadata::table::all_tables()?
                    .into_iter()
                    .filter(|r| may_vacuum(*r))
                    .collect();
                crate::ddl::row_counts::refresh(&mine)
            })));
        }
        return Ok(Step::Pass);
    }
    let options = if options.is_empty() {
        String::new()
    } else {
        format!(" ({})", options.join(", "))
    };
    Ok(Step::Propagate(Box::new(move || {
        let mut per_group = PerGroup::new();
        let relids: Vec<pg_sys::Oid> = tables.iter().map(|(r, _)| *r).collect();
        for (relid, cols) in tables {
            let (schema, table) = rel_schema_and_name(relid);
            let cols = if cols.is_empty() {
                String::new()
            } else {
                format!(" ({})", cols.join(", "))
            };
            push_per_placement(&mut per_group, relid, &schema, &table, |t| {
                format!("{verb}{options} {t}{cols}")
            })?;
        }
        // VACUUM cannot run in a transaction block: on the workers it runs in autocommit (it
        // cannot run in one here either), and the coordinator's placements (of reference
        // tables, through SPI) are left to autovacuum. ANALYZE runs in the remote transaction,
        // which may hold locks on the shards already (DDL earlier in the transaction) and rolls
        // back with it.
        if verb == "VACUUM" {
            per_group.remove(&tessera_core::node::COORDINATOR_GROUP_ID);
            run_per_group_in(per_group, &nodes::all()?, Scope::Autocommit)?;
        } else {
            super::run_batched(per_group)?;
        }
        // The shards' row counts become the coordinator's.
        crate::ddl::row_counts::refresh(&relids)
    })))
}

/// Whether the current role may VACUUM or ANALYZE `relid`, as PostgreSQL decides it: its
/// owner, the database's owner, or a superuser.
fn may_vacuum(relid: pg_sys::Oid) -> bool {
    // SAFETY: ownership lookups through the syscache.
    unsafe {
        let user = pg_sys::GetUserId();
        pg_sys::pg_class_ownercheck(relid, user)
            || pg_sys::pg_database_ownercheck(pg_sys::MyDatabaseId, user)
    }
}
