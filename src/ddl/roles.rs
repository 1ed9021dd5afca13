//! Roles on every node: the connection to a worker runs as the current user, so every role
//! that uses a distributed table must exist there too.
//!
//! - CREATE ROLE and ALTER ROLE reach the workers as a statement made from the coordinator's
//!   catalog once the local statement ran, naming the attributes the user's statement named
//!   (so a user may change their own password, as on one server): a password travels as the
//!   verifier PostgreSQL stored, never as the text the user typed. (A SCRAM verifier, the
//!   default, cannot be used to log in; an MD5 one is password-equivalent under md5
//!   authentication, as it is in the coordinator's own catalog.)
//! - DROP ROLE reaches the workers as `DROP ROLE IF EXISTS`; GRANT / REVOKE role, ALTER ROLE
//!   ... RENAME / SET, ALTER GROUP, DROP OWNED and REASSIGN OWNED as the user's statement (they
//!   hold no secret). A role a worker lacks (made before it joined, or from a database without
//!   Tessera) is made there first. SESSION_USER, which names another role on a worker (its
//!   connection logs in as the current user), is refused in them.
//! - A node added later gets the roles it lacks ([`sync_commands`], from `citus_add_node`);
//!   the roles it has keep their attributes.
//!
//! All of it runs in the remote transaction: a worker that refuses (CREATE ROLE of a name it
//! has already) fails the statement with the worker's reason.

use std::ffi::{c_int, CStr};

use pgrx::pg_sys;
use pgrx::spi::{quote_identifier, quote_literal, Spi};

use super::{Step, Utility};
use crate::error::TResult;
use crate::pg::nodes::{list_ptrs, string};

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

/// The role attributes a statement names (its DefElem names), or all of them (None).
type Named = Option<Vec<String>>;

/// `WITH ...` clauses for the role's attributes as the coordinator has them: those `named`
/// (a statement's options), or every one a new node needs (None): attributes at their defaults
/// are left out then, so nothing is named that only a superuser may name unless it is set.
fn attrs_sql(r: &Role, named: &Named) -> Vec<String> {
    let wants = |opt: &str| named.as_ref().is_none_or(|n| n.iter().any(|x| x == opt));
    let yes_no = |on: bool, word: &str| {
        if on {
            word.to_string()
        } else {
            format!("NO{word}")
        }
    };
    let all = named.is_none();
    let mut attrs = Vec::new();
    let mut flag = |opt: &str, on: bool, default: bool, word: &str| {
        if wants(opt) && !(all && on == default) {
            attrs.push(yes_no(on, word));
        }
    };
    flag("superuser", r.superuser, false, "SUPERUSER");
    flag("inherit", r.inherit, true, "INHERIT");
    flag("createrole", r.createrole, false, "CREATEROLE");
    flag("createdb", r.createdb, false, "CREATEDB");
    flag("canlogin", r.login, false, "LOGIN");
    flag("isreplication", r.replication, false, "REPLICATION");
    flag("bypassrls", r.bypassrls, false, "BYPASSRLS");
    if wants("connectionlimit") && !(all && r.connlimit == -1) {
        attrs.push(format!("CONNECTION LIMIT {}", r.connlimit));
    }
    if wants("password") {
        match &r.password {
            Some(p) => attrs.push(format!("PASSWORD {}", quote_literal(p))),
            None if !all => attrs.push("PASSWORD NULL".into()),
            None => {}
        }
    }
    if wants("validUntil") {
        if let Some(v) = &r.valid_until {
            attrs.push(format!("VALID UNTIL {}", quote_literal(v)));
        } else if !all {
            attrs.push("VALID UNTIL 'infinity'".into());
        }
    }
    attrs
}

/// `ALTER ROLE name WITH ...` for the attributes (None: nothing to send).
fn alter_sql(r: &Role, named: &Named) -> Option<String> {
    let attrs = attrs_sql(r, named);
    (!attrs.is_empty()).then(|| {
        format!(
            "ALTER ROLE {} WITH {}",
            quote_identifier(&r.name),
            attrs.join(" ")
        )
    })
}

/// A command that makes role `name` on a node that lacks it (and does nothing where it
/// exists): a DO block whose dollar quote occurs nowhere in its body.
fn ensure_role_sql(name: &str) -> String {
    tessera_core::sqltext::do_block(&format!(
        "BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {}) THEN CREATE ROLE {}; END IF; END",
        quote_literal(name),
        quote_identifier(name)
    ))
}

/// The DefElem names of a role statement's options.
///
/// # Safety
/// `options` is a List of DefElem (or NIL).
unsafe fn option_names(options: *mut pg_sys::List) -> Vec<String> {
    // SAFETY: each element is a DefElem with a NUL-terminated name.
    unsafe {
        list_ptrs(options)
            .into_iter()
            .map(|d| string((*(d as *mut pg_sys::DefElem)).defname))
            .collect()
    }
}

/// Refuses SESSION_USER among a statement's role specs when it is not the current user: the
/// worker's connection logs in as the current user, so there it would name another role.
///
/// # Safety
/// `specs` are RoleSpec nodes (or null).
pub(super) unsafe fn refuse_session_user(specs: &[*mut pg_sys::RoleSpec]) -> TResult<()> {
    // SAFETY: reading the RoleSpecs' kind; the user ids of the session.
    unsafe {
        let differs = pg_sys::GetSessionUserId() != pg_sys::GetUserId();
        if differs
            && specs.iter().any(|s| {
                !s.is_null() && (**s).roletype == pg_sys::RoleSpecType::ROLESPEC_SESSION_USER
            })
        {
            return Err(crate::error::TesseraError::new(
                pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "SESSION_USER names another role on the worker nodes than here",
            )
            .hint("Name the role, or run the statement without SET ROLE."));
        }
    }
    Ok(())
}

/// CREATE ROLE / USER / GROUP: the role as created, from the catalog.
///
/// # Safety
/// `u` is a CreateRoleStmt.
pub(super) unsafe fn create(u: &Utility) -> TResult<Step> {
    // SAFETY: the tag was checked by the table; role is the new role's name.
    let (name, named) = unsafe {
        let s = u.node::<pg_sys::CreateRoleStmt>();
        (string((*s).role), option_names((*s).options))
    };
    // The memberships the statement gives (IN ROLE, ROLE, ADMIN) follow as GRANTs.
    Ok(super::on_every_worker(move || {
        let c = std::ffi::CString::new(name.as_str()).unwrap_or_default();
        // SAFETY: a name lookup of the role the local statement created.
        let oid = unsafe { pg_sys::get_role_oid(c.as_ptr(), false) };
        // SAFETY: a syscache lookup.
        let Some(r) = (unsafe { role(oid) }) else {
            return Ok(Vec::new());
        };
        let mut out = vec![format!("CREATE ROLE {}", quote_identifier(&r.name))];
        out.extend(alter_sql(&r, &Some(named)));
        for g in memberships_of(oid)? {
            out.push(g);
        }
        crate::ddl::distributed_objects::record_role(oid)?;
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
    let (oid, named) = unsafe {
        let s = u.node::<pg_sys::AlterRoleStmt>();
        refuse_session_user(&[(*s).role])?;
        (
            pg_sys::get_rolespec_oid((*s).role, true),
            option_names((*s).options),
        )
    };
    if named.iter().any(|n| n == "rolemembers") {
        // ALTER GROUP g ADD / DROP USER ...: the group must exist there too.
        // SAFETY: a syscache lookup.
        let name = unsafe { role(oid) }.map(|r| r.name).unwrap_or_default();
        return Ok(as_written(u, vec![name]));
    }
    Ok(super::on_every_worker(move || {
        // SAFETY: a syscache lookup.
        let Some(r) = (unsafe { role(oid) }) else {
            return Ok(Vec::new());
        };
        let mut out = vec![ensure_role_sql(&r.name)];
        out.extend(alter_sql(&r, &Some(named)));
        Ok(out)
    }))
}

/// The user's statement on every worker, after making the roles it names where they lack.
fn as_written(u: &Utility, roles: Vec<String>) -> Step {
    let sql = u.text();
    super::on_every_worker(move || {
        let mut out: Vec<String> = roles.iter().map(|r| ensure_role_sql(r)).collect();
        out.push(sql);
        Ok(out)
    })
}

/// The names of RoleSpecs (CURRENT_USER and the like resolved; PUBLIC left out).
///
/// # Safety
/// `specs` are RoleSpec nodes.
unsafe fn spec_names(specs: &[*mut pg_sys::RoleSpec]) -> Vec<String> {
    // SAFETY: get_rolespec_name resolves a RoleSpec of an existing role.
    unsafe {
        specs
            .iter()
            .filter(|s| !s.is_null() && (***s).roletype != pg_sys::RoleSpecType::ROLESPEC_PUBLIC)
            .filter(|s| pg_sys::get_rolespec_oid(**s, true) != pg_sys::InvalidOid)
            .map(|s| string(pg_sys::get_rolespec_name(*s)))
            .collect()
    }
}

/// DROP ROLE (as `DROP ROLE IF EXISTS`), GRANT / REVOKE role, ALTER ROLE ... SET, DROP OWNED,
/// REASSIGN OWNED, ALTER ROLE ... RENAME: as written.
///
/// # Safety
/// `u` is one of those statements.
pub(super) unsafe fn as_is(u: &Utility) -> TResult<Step> {
    use pg_sys::NodeTag::*;
    // SAFETY: each cast follows the statement's tag; role lists hold RoleSpecs, a GRANT's
    // granted roles AccessPrivs named by role.
    unsafe {
        let specs = |l: *mut pg_sys::List| -> Vec<*mut pg_sys::RoleSpec> {
            list_ptrs(l)
                .into_iter()
                .map(|p| p as *mut pg_sys::RoleSpec)
                .collect()
        };
        match (*u.stmt).type_ {
            T_DropRoleStmt => {
                let s = u.node::<pg_sys::DropRoleStmt>();
                let names: Vec<String> = specs((*s).roles)
                    .into_iter()
                    .filter(|r| (**r).roletype == pg_sys::RoleSpecType::ROLESPEC_CSTRING)
                    .map(|r| quote_identifier(string((*r).rolename)))
                    .collect();
                if names.is_empty() {
                    return Ok(Step::Pass);
                }
                let sql = format!("DROP ROLE IF EXISTS {}", names.join(", "));
                Ok(super::on_every_worker(move || {
                    crate::ddl::distributed_objects::refresh_roles()?;
                    Ok(vec![sql])
                }))
            }
            T_GrantRoleStmt => {
                let s = u.node::<pg_sys::GrantRoleStmt>();
                let grantees = specs((*s).grantee_roles);
                refuse_session_user(&grantees)?;
                refuse_session_user(&[(*s).grantor])?;
                let mut roles = spec_names(&grantees);
                for p in list_ptrs((*s).granted_roles) {
                    let name = (*(p as *mut pg_sys::AccessPriv)).priv_name;
                    if !name.is_null() {
                        roles.push(string(name));
                    }
                }
                Ok(as_written(u, roles))
            }
            T_DropOwnedStmt => {
                let s = u.node::<pg_sys::DropOwnedStmt>();
                let roles = specs((*s).roles);
                refuse_session_user(&roles)?;
                Ok(as_written(u, spec_names(&roles)))
            }
            T_ReassignOwnedStmt => {
                let s = u.node::<pg_sys::ReassignOwnedStmt>();
                let mut roles = specs((*s).roles);
                roles.push((*s).newrole);
                refuse_session_user(&roles)?;
                Ok(as_written(u, spec_names(&roles)))
            }
            T_AlterRoleSetStmt => {
                let s = u.node::<pg_sys::AlterRoleSetStmt>();
                refuse_session_user(&[(*s).role])?;
                Ok(as_written(u, spec_names(&[(*s).role])))
            }
            // ALTER ROLE ... RENAME: the old name must exist there.
            T_RenameStmt => {
                let s = u.node::<pg_sys::RenameStmt>();
                let old = string((*s).subname);
                let sql = u.text();
                Ok(super::on_every_worker(move || {
                    crate::ddl::distributed_objects::refresh_roles()?;
                    Ok(vec![ensure_role_sql(&old), sql])
                }))
            }
            _ => Ok(Step::Pass),
        }
    }
}

/// The commands that give a new node the roles it lacks (`exists` says which it has), with
/// their attributes, and every membership.
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
        // A role the node has keeps its own attributes (and password).
        if exists(&r.name)? {
            continue;
        }
        out.push(format!("CREATE ROLE {}", quote_identifier(&r.name)));
        out.extend(alter_sql(&r, &None));
        for g in memberships_of(oid)? {
            if !grants.contains(&g) {
                grants.push(g);
            }
        }
    }
    out.extend(grants);
    Ok(out)
}
