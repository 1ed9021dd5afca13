//! GRANT / REVOKE on distributed tables: the statement on every shard, its table list replaced
//! by the shard's name (one list may name several tables, distributed or local). ALL TABLES IN
//! SCHEMA reaches the shards of the distributed and reference tables in those schemas, as
//! Citus does: the statement rebuilt for each shard (`GRANT ... ON TABLE <shard> ...`), sent to
//! the nodes that hold its placements, never to what else a worker's schema holds.

use pgrx::pg_sys;
use pgrx::spi::Spi;

use pgrx::spi::quote_identifier;

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

/// The distributed and reference tables (partitions too) in the schemas `nsps`.
fn distributed_in_schemas(nsps: &[pg_sys::Oid]) -> TResult<Vec<pg_sys::Oid>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for nsp in nsps {
            let rows = client.select(
                "SELECT p.logicalrelid::oid FROM pg_catalog.pg_dist_partition p
                   JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
                  WHERE c.relnamespace = $1 ORDER BY 1",
                None,
                &[(*nsp).into()],
            )?;
            for row in rows {
                if let Some(relid) = row.get::<pg_sys::Oid>(1)? {
                    out.push(relid);
                }
            }
        }
        Ok(out)
    })
}

/// A role as a GRANT names it.
///
/// # Safety
/// `r` is a valid RoleSpec.
unsafe fn role_sql(r: *mut pg_sys::RoleSpec) -> String {
    // SAFETY: reading the RoleSpec; rolename is set for ROLESPEC_CSTRING.
    unsafe {
        match (*r).roletype {
            pg_sys::RoleSpecType::ROLESPEC_CSTRING => {
                quote_identifier(crate::pg::nodes::string((*r).rolename))
            }
            pg_sys::RoleSpecType::ROLESPEC_CURRENT_ROLE => "CURRENT_ROLE".into(),
            pg_sys::RoleSpecType::ROLESPEC_CURRENT_USER => "CURRENT_USER".into(),
            pg_sys::RoleSpecType::ROLESPEC_SESSION_USER => "SESSION_USER".into(),
            _ => "PUBLIC".into(),
        }
    }
}

/// The table GRANT / REVOKE `s` (of any target) for one table: the text before and after the
/// table's name. PostgreSQL has no deparser for GrantStmt; this prints every clause it holds.
///
/// # Safety
/// `s` is a valid GrantStmt on tables.
unsafe fn one_table_sql(s: *mut pg_sys::GrantStmt) -> (String, String) {
    // SAFETY: reading the statement's lists (AccessPriv, String, RoleSpec nodes).
    unsafe {
        let privileges: Vec<String> = list_ptrs((*s).privileges)
            .into_iter()
            .map(|p| {
                let p = p as *mut pg_sys::AccessPriv;
                let name = if (*p).priv_name.is_null() {
                    "ALL".to_string()
                } else {
                    crate::pg::nodes::string((*p).priv_name).to_uppercase()
                };
                let cols: Vec<String> = list_ptrs((*p).cols)
                    .into_iter()
                    .map(|c| {
                        quote_identifier(crate::pg::nodes::string(
                            (*(c as *mut pg_sys::String)).sval,
                        ))
                    })
                    .collect();
                if cols.is_empty() {
                    name
                } else {
                    format!("{name} ({})", cols.join(", "))
                }
            })
            .collect();
        let privileges = if privileges.is_empty() {
            "ALL PRIVILEGES".to_string()
        } else {
            privileges.join(", ")
        };
        let grantees: Vec<String> = list_ptrs((*s).grantees)
            .into_iter()
            .map(|r| role_sql(r as *mut pg_sys::RoleSpec))
            .collect();
        let grantees = grantees.join(", ");
        let grantor = if (*s).grantor.is_null() {
            String::new()
        } else {
            format!(" GRANTED BY {}", role_sql((*s).grantor))
        };
        if (*s).is_grant {
            let option = if (*s).grant_option {
                " WITH GRANT OPTION"
            } else {
                ""
            };
            (
                format!("GRANT {privileges} ON TABLE "),
                format!(" TO {grantees}{option}{grantor}"),
            )
        } else {
            let option = if (*s).grant_option {
                "GRANT OPTION FOR "
            } else {
                ""
            };
            let cascade = if (*s).behavior == pg_sys::DropBehavior::DROP_CASCADE {
                " CASCADE"
            } else {
                ""
            };
            (
                format!("REVOKE {option}{privileges} ON TABLE "),
                format!(" FROM {grantees}{grantor}{cascade}"),
            )
        }
    }
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
        // SESSION_USER would name another role there (the connections run as the current user).
        let refuse_session_user = || {
            super::roles::refuse_session_user(
                &list_ptrs((*s).grantees)
                    .into_iter()
                    .map(|r| r as *mut pg_sys::RoleSpec)
                    .collect::<Vec<_>>(),
            )
        };
        if (*s).targtype == pg_sys::GrantTargetType::ACL_TARGET_ALL_IN_SCHEMA {
            let mut schemas = Vec::new();
            for n in list_ptrs((*s).objects) {
                let nsp = pg_sys::get_namespace_oid((*(n as *mut pg_sys::String)).sval, true);
                if nsp != pg_sys::InvalidOid {
                    schemas.push(nsp);
                }
            }
            let relids = distributed_in_schemas(&schemas)?;
            if relids.is_empty() {
                return Ok(Step::Pass);
            }
            refuse_session_user()?;
            // Each shard by placement, as a GRANT naming the table would go (a group with no
            // active node fails the statement instead of missing the change).
            let (before, after) = one_table_sql(s);
            return Ok(super::on_each_shard(relids, move |shard| {
                format!("{before}{shard}{after}")
            }));
        }
        if (*s).targtype != pg_sys::GrantTargetType::ACL_TARGET_OBJECT {
            return Ok(Step::Pass);
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
        refuse_session_user()?;
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
