//! `create_distributed_function`: Citus's way to say that a function must exist on every node.
//! Tessera sends every CREATE FUNCTION to the workers already (`ddl::objects`); this
//! makes sure of one made before (or outside) that, with its owner and privileges, and records
//! it in `pg_dist_object` with its distribution argument and colocation group as Citus does.
//! Calls are not delegated to a worker yet: a call runs on the coordinator, whose queries reach
//! the shards.

use pgrx::prelude::*;
use pgrx::spi::Spi;

use crate::ddl::propagate::{run_per_group, PerGroup};
use crate::error::{OrReport, TResult, TesseraError};
use crate::metadata::node as nodes;

fn invalid(message: impl Into<String>) -> TesseraError {
    TesseraError::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message)
}

#[pg_extern(sql = false)]
fn create_distributed_function(
    function_name: Option<pg_sys::Oid>,
    distribution_arg_name: Option<&str>,
    colocate_with: Option<&str>,
    force_delegation: Option<bool>,
) {
    (|| -> TResult<()> {
        let f = function_name.ok_or_else(|| {
            invalid("function_name cannot be NULL").hint("Name the function with its argument types: 'f(int)'.")
        })?;
        let row = Spi::get_three_with_args::<String, bool, String>(
            "SELECT p.oid::regprocedure::text, pg_catalog.pg_has_role(current_user, p.proowner, 'MEMBER'),
                    p.prokind::text
               FROM pg_catalog.pg_proc p WHERE p.oid = $1",
            &[f.into()],
        )?;
        let (Some(name), Some(owner), Some(kind)) = row else {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
                format!("function with OID {} does not exist", f.to_u32()),
            ));
        };
        if !owner {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("must be owner of function {name}"),
            )
            .hint("Only the function's owner (or a superuser) can distribute it."));
        }
        if kind == "a" {
            return Err(invalid(format!("{name} is an aggregate"))
                .hint("CREATE AGGREGATE reaches every node by itself; an aggregate needs no create_distributed_function."));
        }
        // SAFETY: a function lookup by OID, as an ObjectWithArgs is not needed: the check reads
        // pg_proc through the syscache.
        if !crate::ddl::objects::oid_is_shared(f) {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("cannot distribute function {name}: it uses a table's row type, or has a BEGIN ATOMIC body"),
            )
            .hint("The workers have the table's shards, not the table: such a function runs on the coordinator."));
        }
        // The distribution argument: a name, or $n.
        let arg_index = match distribution_arg_name {
            None => None,
            Some(a) => {
                let index = Spi::get_one_with_args::<i32>(
                    "SELECT CASE WHEN $2 ~ '^\\$[0-9]+$' AND substr($2, 2)::int BETWEEN 1 AND p.pronargs
                                 THEN substr($2, 2)::int - 1
                                 ELSE (SELECT (i - 1)::int FROM pg_catalog.unnest(p.proargnames) WITH ORDINALITY AS n(a, i)
                                        WHERE n.a = $2 AND i <= p.pronargs) END
                       FROM pg_catalog.pg_proc p WHERE p.oid = $1",
                    &[f.into(), a.into()],
                )?;
                Some(index.ok_or_else(|| {
                    invalid(format!("cannot distribute function {name}: \"{a}\" is not one of its arguments"))
                        .hint("Give the name of an argument, or $1, $2, ...")
                })?)
            }
        };
        let colocation = match colocate_with.unwrap_or("default") {
            "default" | "none" => None,
            table => Some(
                Spi::get_one_with_args::<i32>(
                    "SELECT (SELECT colocationid FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1::regclass)",
                    &[table.into()],
                )?
                .ok_or_else(|| {
                    invalid(format!("cannot colocate function {name} with {table}: it is not a distributed table"))
                        .hint("Name a distributed table, or use 'default'.")
                })?,
            ),
        };
        // The function on every worker, as the coordinator has it (names qualified), with its
        // owner and privileges.
        let commands: Vec<String> = {
            let _qualified = crate::pg::guc::GucScope::new(&[(c"search_path", c"")]);
            let defs = Spi::get_three_with_args::<String, String, String>(
                "SELECT pg_catalog.pg_get_functiondef(p.oid),
                        format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, pg_catalog.pg_get_userbyid(p.proowner)),
                        CASE WHEN p.proacl IS NOT NULL THEN
                          format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', p.oid::regprocedure) ||
                          coalesce((SELECT string_agg(format(';\\nGRANT %s ON ROUTINE %s TO %s%s', a.privilege_type,
                                                            p.oid::regprocedure,
                                                            CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                                                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                                                            CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), '')
                                      FROM pg_catalog.aclexplode(p.proacl) a WHERE a.grantee <> p.proowner), '')
                        END
                   FROM pg_catalog.pg_proc p WHERE p.oid = $1",
                &[f.into()],
            )?;
            let (def, owner_sql, acl) = defs;
            let mut out = vec![
                "SELECT pg_catalog.set_config('check_function_bodies', 'off', true)".to_string(),
            ];
            out.extend(def);
            out.extend(owner_sql);
            out.extend(acl);
            out
        };
        let all = nodes::all()?;
        let mut per_group = PerGroup::new();
        for n in all
            .iter()
            .filter(|n| n.isactive && n.noderole == "primary" && !n.is_coordinator())
        {
            per_group
                .entry(n.groupid)
                .or_default()
                .push((commands.join(";\n"), Vec::new()));
        }
        run_per_group(per_group, &all)?;
        let _write = crate::metadata::CatalogWrite::begin();
        Spi::run_with_args(
            "INSERT INTO pg_catalog.pg_dist_object
                    (classid, objid, objsubid, type, object_names, object_args,
                     distribution_argument_index, colocationid, force_delegation)
             SELECT 'pg_catalog.pg_proc'::regclass, $1, 0, i.type, i.object_names, i.object_args,
                    $2, $3, $4
               FROM pg_catalog.pg_identify_object_as_address('pg_catalog.pg_proc'::regclass, $1, 0) i
             ON CONFLICT (classid, objid, objsubid) DO UPDATE
                SET distribution_argument_index = excluded.distribution_argument_index,
                    colocationid = excluded.colocationid,
                    force_delegation = excluded.force_delegation",
            &[f.into(), arg_index.into(), colocation.into(), force_delegation.into()],
        )?;
        Ok(())
    })()
    .or_report()
}
