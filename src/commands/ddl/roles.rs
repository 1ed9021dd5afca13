//! Roles on every node: the connection to a worker runs as the current user, so every role
//! that uses a distributed table must exist there too.
//!
//! - CREATE ROLE and ALTER ROLE reach the workers as a statement made from the coordinator's
//!   catalog once the local statement ran (`CREATE ROLE`, then `ALTER ROLE ... WITH` every
//!   attribute): a password travels as the verifier PostgreSQL stored (SCRAM or MD5), never as
//!   the text the user typed, so no worker's log or error ever holds it.
//! - DROP ROLE, GRANT / REVOKE role, ALTER ROLE ... RENAME / SET, ALTER GROUP, DROP OWNED and
//!   REASSIGN OWNED reach the workers as the user's statement (they hold no secret).
//! - A node added later gets every role ([`sync_commands`], from `citus_add_node`).
//!
//! All of it runs in the remote transaction: a worker that refuses (a role of that name exists
//! there already) fails the statement with the worker's reason, and no node keeps a change.

use std::ffi::{c_int, CStr};

use pgrx::pg_sys;
use pgrx::spi::{quote_identifier, quote_literal, Spi};

use super::{Step, Utility};
use crate::commands::PerGroup;
use crate::error::TResult;
use crate::metadata::node as nodes;
use crate::pg::nodes::{list_ptrs, string};

/// The commands on every active primary worker, in the remote transaction.
fn on_every_worker(commands: impl FnOnce() -> TResult<Vec<String>> + 'static) -> Step {
    Step::Propagate(Box::new(move || {
        let commands = commands()?;
        if commands.is_empty() {
            return Ok(());
        }
        let mut per_group = PerGroup::new();
        for n in nodes::all()?
            .iter()
            .filter(|n| n.isactive && n.noderole == "primary" && !n.is_coordinator())
        {
            for sql in &commands {
                per_group
                    .entry(n.groupid)
                    .or_default()
                    .push((sql.clone(), Vec::new()));
            }
        }
        super::run_batched(per_group)
    }))
}

/// A role's row of pg_authid, read through the syscache (no SQL privilege on pg_authid needed:
/// the verifier only goes to the workers).
struct Role {
    name: String,
    superuser: bool,
    inherit: bool,
    createrole: bool,
    createdb: bool,
    login: bool,
    replication: bool,
    bypassrls: bool,
    connlimit: i32,
    password: Option<String>,
    valid_until: Option<String>,
}

/// # Safety
/// Runs a syscache lookup; call inside a transaction.
unsafe fn role(oid: pg_sys::Oid) -> Option<Role> {
    // SAFETY: the tuple is pinned from SearchSysCache1 to ReleaseSysCache; attributes are read
    // by their numbers (pg_authid_d.h) and copied out before the release.
    unsafe {
        let cache = pg_sys::SysCacheIdentifier::AUTHOID as c_int;
        let tuple = pg_sys::SearchSysCache1(cache, pg_sys::Datum::from(oid));
        if tuple.is_null() {
            return None;
        }
        let get = |attno: i16| {
            let mut isnull = false;
            let d = pg_sys::SysCacheGetAttr(cache, tuple, attno, &mut isnull);
            (d, isnull)
        };
        let flag = |attno: i16| get(attno).0.value() != 0;
        let (name, _) = get(2);
        let (password, no_password) = get(11);
        let (until, no_until) = get(12);
        let r = Role {
            name: string(name.cast_mut_ptr::<std::ffi::c_char>()),
            superuser: flag(3),
            inherit: flag(4),
            createrole: flag(5),
            createdb: flag(6),
            login: flag(7),
            replication: flag(8),
            bypassrls: flag(9),
            connlimit: get(10).0.value() as i32,
            password: (!no_password).then(|| {
                CStr::from_ptr(pg_sys::text_to_cstring(password.cast_mut_ptr()))
                    .to_string_lossy()
                    .into_owned()
            }),
            valid_until: (!no_until).then(|| {
                let _iso = crate::pg::guc::GucScope::portable_output();
                let text = pg_sys::OidOutputFunctionCall(
                    pg_sys::Oid::from(pg_sys::F_TIMESTAMPTZ_OUT),
                    until,
                );
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }),
        };
        pg_sys::ReleaseSysCache(tuple);
        Some(r)
    }
}

/// `ALTER ROLE ... WITH` every attribute of the role as the coordinator has it. The attributes
/// only a superuser may name (SUPERUSER, REPLICATION, BYPASSRLS) are named only by one.
fn alter_sql(r: &Role) -> String {
    let yes_no = |on: bool, word: &str| {
        if on {
            word.to_string()
        } else {
            format!("NO{word}")
        }
    };
    let mut attrs = vec![
        yes_no(r.inherit, "INHERIT"),
        yes_no(r.createrole, "CREATEROLE"),
        yes_no(r.createdb, "CREATEDB"),
        yes_no(r.login, "LOGIN"),
    ];
    // SAFETY: reading the current user's superuser flag.
    if unsafe { pg_sys::superuser() } {
        attrs.push(yes_no(r.superuser, "SUPERUSER"));
        attrs.push(yes_no(r.replication, "REPLICATION"));
        attrs.push(yes_no(r.bypassrls, "BYPASSRLS"));
    }
    attrs.push(format!("CONNECTION LIMIT {}", r.connlimit));
    attrs.push(match &r.password {
        Some(p) => format!("PASSWORD {}", quote_literal(p)),
        None => "PASSWORD NULL".into(),
    });
    attrs.push(format!(
        "VALID UNTIL {}",
        quote_literal(r.valid_until.as_deref().unwrap_or("infinity"))
    ));
    format!(
        "ALTER ROLE {} WITH {}",
        quote_identifier(&r.name),
        attrs.join(" ")
    )
}

/// CREATE ROLE / USER / GROUP: the role as created, from the catalog.
///
/// # Safety
/// `u` is a CreateRoleStmt.
pub(super) unsafe fn create(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; role is the new role's name.
    let name = unsafe { string((*u.node::<pg_sys::CreateRoleStmt>()).role) };
    // The memberships the statement gives (IN ROLE, ROLE, ADMIN) follow as GRANTs.
    Ok(on_every_worker(move || {
        let c = std::ffi::CString::new(name.as_str()).unwrap_or_default();
        // SAFETY: a name lookup of the role the local statement created.
        let oid = unsafe { pg_sys::get_role_oid(c.as_ptr(), false) };
        // SAFETY: a syscache lookup.
        let Some(r) = (unsafe { role(oid) }) else {
            return Ok(Vec::new());
        };
        let mut out = vec![
            format!("CREATE ROLE {}", quote_identifier(&r.name)),
            alter_sql(&r),
        ];
        out.extend(memberships_of(oid)?);
        Ok(out)
    }))
}

/// The GRANTs that give role `oid` its memberships, and give its members theirs.
fn memberships_of(oid: pg_sys::Oid) -> TResult<Vec<String>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT format('GRANT %I TO %I%s', r.rolname, m.rolname,
                           CASE WHEN a.admin_option THEN ' WITH ADMIN OPTION' ELSE '' END)
               FROM pg_catalog.pg_auth_members a
               JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
               JOIN pg_catalog.pg_roles m ON m.oid = a.member
              WHERE $1 IN (a.roleid, a.member)
              ORDER BY r.rolname, m.rolname",
            None,
            &[oid.into()],
        )? {
            out.push(row.get::<String>(1)?.unwrap_or_default());
        }
        Ok(out)
    })
}

/// ALTER ROLE / USER (attributes, password) as the coordinator has it afterwards; ALTER GROUP
/// ... ADD / DROP USER as written.
///
/// # Safety
/// `u` is an AlterRoleStmt.
pub(super) unsafe fn alter(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; options are DefElems, role a RoleSpec.
    let (oid, membership) = unsafe {
        let s = u.node::<pg_sys::AlterRoleStmt>();
        let membership = list_ptrs((*s).options)
            .iter()
            .any(|d| string((*(*d as *mut pg_sys::DefElem)).defname) == "rolemembers");
        (pg_sys::get_rolespec_oid((*s).role, true), membership)
    };
    if membership {
        return Ok(as_written(u));
    }
    Ok(on_every_worker(move || {
        // SAFETY: a syscache lookup.
        Ok(unsafe { role(oid) }
            .map(|r| vec![alter_sql(&r)])
            .unwrap_or_default())
    }))
}

/// The user's statement on every worker.
fn as_written(u: &Utility) -> Step {
    let sql = u.text();
    on_every_worker(move || Ok(vec![sql]))
}

/// DROP ROLE, GRANT / REVOKE role, ALTER ROLE ... SET, DROP OWNED, REASSIGN OWNED, ALTER ROLE
/// ... RENAME: as written.
///
/// # Safety
/// `u` is one of those statements.
pub(super) unsafe fn as_is(u: &Utility) -> TResult<Step> {
    Ok(as_written(u))
}

/// The commands that give a new node every role of the cluster, with its attributes and
/// memberships: CREATE ROLE for the ones it lacks (`exists` says which it has), then ALTER ROLE
/// and the GRANTs for all.
pub(crate) fn sync_commands(exists: impl Fn(&str) -> TResult<bool>) -> TResult<Vec<String>> {
    let oids: Vec<pg_sys::Oid> = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT oid FROM pg_catalog.pg_roles
              WHERE oid >= 16384 AND rolname !~ '^pg_' ORDER BY oid",
            None,
            &[],
        )? {
            if let Some(o) = row.get::<pg_sys::Oid>(1)? {
                out.push(o);
            }
        }
        Ok::<_, crate::error::TesseraError>(out)
    })?;
    let mut out = Vec::new();
    let mut grants = Vec::new();
    for oid in oids {
        // SAFETY: a syscache lookup.
        let Some(r) = (unsafe { role(oid) }) else {
            continue;
        };
        if !exists(&r.name)? {
            out.push(format!("CREATE ROLE {}", quote_identifier(&r.name)));
        }
        out.push(alter_sql(&r));
        for g in memberships_of(oid)? {
            if !grants.contains(&g) {
                grants.push(g);
            }
        }
    }
    out.extend(grants);
    Ok(out)
}
