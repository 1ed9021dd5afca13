//! GRANT / REVOKE on distributed tables: the statement on every shard, its table list replaced
//! by the shard's name (one list may name several tables, distributed or local). ALL TABLES IN
//! SCHEMA over a schema with distributed tables runs as written on every worker too, where
//! that schema holds their shards (as Citus does).

use pgrx::pg_sys;
use pgrx::spi::Spi;

use super::{distributed_range_var, refused, Step, Utility};
use crate::error::TResult;
use crate::pg::nodes::list_ptrs;

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

/// # Safety
/// `u` is a GrantStmt.
pub(super) unsafe fn grant(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; a table GRANT's objects are RangeVars, an ALL
    // IN SCHEMA's are String nodes.
    unsafe {
        let s = u.node::<pg_sys::GrantStmt>();
        if matches!(
            (*s).objtype,
            pg_sys::ObjectType::OBJECT_SCHEMA
                | pg_sys::ObjectType::OBJECT_FUNCTION
                | pg_sys::ObjectType::OBJECT_PROCEDURE
                | pg_sys::ObjectType::OBJECT_ROUTINE
                | pg_sys::ObjectType::OBJECT_TYPE
                | pg_sys::ObjectType::OBJECT_DOMAIN
                // The database's privileges (CREATE for schemas, CONNECT, TEMPORARY): the
                // workers' database of the same name is where the connections go.
                | pg_sys::ObjectType::OBJECT_DATABASE
        ) {
            return super::objects::grant(u);
        }
        if (*s).objtype != pg_sys::ObjectType::OBJECT_TABLE {
            return Ok(Step::Pass);
        }
        if !matches!(
            (*s).targtype,
            pg_sys::GrantTargetType::ACL_TARGET_OBJECT
                | pg_sys::GrantTargetType::ACL_TARGET_ALL_IN_SCHEMA
        ) {
            return Ok(Step::Pass);
        }
        // SESSION_USER would name another role there (the connections run as the current user).
        super::roles::refuse_session_user(
            &list_ptrs((*s).grantees)
                .into_iter()
                .map(|r| r as *mut pg_sys::RoleSpec)
                .collect::<Vec<_>>(),
        )?;
        if (*s).targtype == pg_sys::GrantTargetType::ACL_TARGET_ALL_IN_SCHEMA {
            let mut distributed = None;
            let mut schemas = Vec::new();
            for n in list_ptrs((*s).objects) {
                let name = (*(n as *mut pg_sys::String)).sval;
                let nsp = pg_sys::get_namespace_oid(name, true);
                if nsp != pg_sys::InvalidOid {
                    distributed = distributed.or(distributed_in_schema(nsp)?);
                    schemas.push(nsp);
                }
            }
            let Some(relid) = distributed else {
                return Ok(Step::Pass);
            };
            // The text sent is the statement's own (see below).
            if !is_lone_grant(&u.text()) {
                return Err(refused(
                    "GRANT or REVOKE inside another statement",
                    relid,
                    "Run the GRANT as a statement of its own.",
                ));
            }
            // On a worker the schema holds the shards of the distributed and reference tables
            // in it (and their placements only): the same statement grants on those.
            return super::objects::on_every_worker_in_schemas(schemas, u.text());
        }
        // Each distributed table's shards get the statement with the whole table list replaced
        // by the shard's name (local tables in the list are the coordinator's alone).
        let objects: Vec<*mut pg_sys::RangeVar> = list_ptrs((*s).objects)
            .into_iter()
            .map(|rv| rv as *mut pg_sys::RangeVar)
            .collect();
        let mut relids = Vec::new();
        for &rv in &objects {
            if let Some(relid) = distributed_range_var(rv)? {
                relids.push(relid);
            }
        }
        let (Some(&relid), Some(&first), Some(&last)) =
            (relids.first(), objects.first(), objects.last())
        else {
            return Ok(Step::Pass);
        };
        let (sql, first_at) = u.text_and_offset((*first).location);
        let (_, last_at) = u.text_and_offset((*last).location);
        // The text sent is the statement's own: it must be this GRANT alone, not the
        // CREATE SCHEMA ... GRANT it is part of.
        if !is_lone_grant(&sql) {
            return Err(refused(
                "GRANT or REVOKE inside another statement",
                relid,
                "Run the GRANT as a statement of its own.",
            ));
        }
        Ok(super::alter_table::rewrite_list(
            relids, sql, first_at, last_at,
        ))
    }
}
