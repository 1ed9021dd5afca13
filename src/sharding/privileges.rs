//! The privileges of a shard: the GRANTs that give it its table's.

use pgrx::prelude::*;

use crate::error::{TResult, TesseraError};

/// One privilege of an ACL (`aclexplode`), with the GRANT statement that gives it as the text
/// before and after the object's name.
pub(crate) struct AclGrant {
    pub grantor: pg_sys::Oid,
    pub grantor_name: String,
    pub grantee: pg_sys::Oid,
    pub privilege: String,
    /// The column of a column privilege.
    pub column: Option<String>,
    pub grantable: bool,
    pub before: String,
    pub after: String,
}

/// `grants` in an order where every grantor holds the grant option before it grants: the
/// owner's first, then each one whose grantor was given the option by an earlier one (a
/// table-wide option covers a column's privilege). Every grant of an ACL is reachable from the
/// owner's; should one not be, it comes in the order listed.
pub(crate) fn in_grant_order(mut pending: Vec<AclGrant>, owner: pg_sys::Oid) -> Vec<AclGrant> {
    // (grantee, privilege, column) that hold the grant option once granted.
    let mut options: Vec<(pg_sys::Oid, String, Option<String>)> = Vec::new();
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|g| {
            g.grantor == owner
                || options.iter().any(|(r, p, c)| {
                    *r == g.grantor && *p == g.privilege && (c.is_none() || *c == g.column)
                })
        });
        let g = pending.remove(ready.unwrap_or(0));
        if g.grantable {
            options.push((g.grantee, g.privilege.clone(), g.column.clone()));
        }
        out.push(g);
    }
    out
}

/// The rows of `query` as [`AclGrant`]s: grantor, its name, grantee, privilege, column,
/// grantable, and the statement's text before and after the object's name.
pub(crate) fn acl_grants(
    client: &pgrx::spi::SpiClient<'_>,
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> TResult<Vec<AclGrant>> {
    let mut out = Vec::new();
    for row in client.select(query, None, args)? {
        out.push(AclGrant {
            grantor: row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
            grantor_name: row.get::<String>(2)?.unwrap_or_default(),
            grantee: row.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
            privilege: row.get::<String>(4)?.unwrap_or_default(),
            column: row.get::<String>(5)?,
            grantable: row.get::<bool>(6)?.unwrap_or(false),
            before: row.get::<String>(7)?.unwrap_or_default(),
            after: row.get::<String>(8)?.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The GRANT statements that give a shard the privileges of the table `relid`, each as the
/// text before and after the shard's name, in grant-option order ([`in_grant_order`]). A
/// privilege granted by a role other than the owner (through a grant option) is granted by
/// that role on the shard too (`SET LOCAL ROLE`), so that `REVOKE ... CASCADE` reaches the same
/// grants on the shards as on the table.
pub(super) fn table_grants(
    client: &pgrx::spi::SpiClient<'_>,
    relid: pg_sys::Oid,
) -> TResult<Vec<(String, String)>> {
    let owner = client
        .select(
            "SELECT relowner FROM pg_catalog.pg_class WHERE oid = $1",
            None,
            &[relid.into()],
        )?
        .first()
        .get::<pg_sys::Oid>(1)?
        .unwrap_or(pg_sys::InvalidOid);
    let grants = acl_grants(
        client,
        "SELECT a.grantor, pg_catalog.pg_get_userbyid(a.grantor)::text, a.grantee, a.privilege_type,
                a.column_name::text, a.is_grantable,
                format('GRANT %s%s ON ', a.privilege_type,
                       coalesce(' (' || pg_catalog.quote_ident(a.column_name) || ')', '')),
                format(' TO %s%s',
                       CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                            ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                       CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
           FROM (SELECT x.grantor, x.grantee, x.privilege_type, x.is_grantable, NULL::name AS column_name
                   FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) x
                  WHERE c.oid = $1 AND x.grantee <> c.relowner
                 UNION ALL
                 SELECT x.grantor, x.grantee, x.privilege_type, x.is_grantable, t.attname
                   FROM pg_catalog.pg_attribute t, pg_catalog.aclexplode(t.attacl) x
                  WHERE t.attrelid = $1 AND t.attnum > 0 AND NOT t.attisdropped
                    AND t.attacl IS NOT NULL) a
          ORDER BY 7, 8",
        &[relid.into()],
    )?;
    if grants.iter().all(|g| g.grantor == owner) {
        return Ok(grants.into_iter().map(|g| (g.before, g.after)).collect());
    }
    // SAFETY: reading this backend's current user.
    let current = unsafe { pg_sys::GetUserId() };
    let current_name = client
        .select(
            "SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid($1))",
            None,
            &[current.into()],
        )?
        .first()
        .get::<String>(1)?
        .unwrap_or_default();
    let mut out = Vec::new();
    for g in in_grant_order(grants, owner) {
        if g.grantor == owner {
            out.push((g.before, g.after));
            continue;
        }
        // SAFETY: reading this backend's security context.
        if unsafe { pg_sys::InLocalUserIdChange() || pg_sys::InSecurityRestrictedOperation() } {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "cannot give the shards the privileges that role \"{}\" granted on this table inside a SECURITY DEFINER function or a security-restricted operation",
                    g.grantor_name
                ),
            )
            .hint("Run it outside such a function, as a superuser or as a member of the role that granted them."));
        }
        let member = client
            .select(
                "SELECT pg_catalog.pg_has_role($1, $2, 'MEMBER')",
                None,
                &[current.into(), g.grantor.into()],
            )?
            .first()
            .get::<bool>(1)?
            .unwrap_or(false);
        if !member {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "cannot give the shards the privileges that role \"{}\" granted on this table: the current role is not a member of \"{}\"",
                    g.grantor_name, g.grantor_name
                ),
            )
            .hint(format!(
                "Run it as a superuser or as a member of \"{}\" (the shards keep who granted each privilege, so REVOKE ... CASCADE reaches them there too).",
                g.grantor_name
            )));
        }
        out.push((
            format!(
                "SET LOCAL ROLE {};\n{}",
                pgrx::spi::quote_identifier(&g.grantor_name),
                g.before
            ),
            format!("{};\nSET LOCAL ROLE {current_name}", g.after),
        ));
    }
    Ok(out)
}
