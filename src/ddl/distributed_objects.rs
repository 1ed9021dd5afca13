//! `pg_dist_object`: the objects Tessera keeps on every node, recorded as Citus records them
//! (class, object, sub-object, and the `type` / `object_names` / `object_args` that
//! `pg_identify_object_as_address` gives). A `ddl_command_end` event trigger records each
//! schema, type, domain, function, procedure, aggregate, operator, collation and extension
//! made on a coordinator (a node with nodes registered), except what an extension's script
//! makes, objects in temporary schemas and functions that stay on the coordinator (see
//! `ddl::objects`); their names follow RENAME and SET SCHEMA. The `sql_drop` trigger
//! (`ddl::drop`) forgets dropped ones.

use pgrx::prelude::*;
use pgrx::spi::Spi;

use crate::error::{OrReport, TResult, TesseraError};

/// Records the objects whose addresses are in the arrays.
const RECORD: &str = "
  INSERT INTO pg_catalog.pg_dist_object (classid, objid, objsubid, type, object_names, object_args)
  SELECT a.classid, a.objid, a.objsubid, i.type, i.object_names, i.object_args
    FROM ROWS FROM (pg_catalog.unnest($1::oid[]), pg_catalog.unnest($2::oid[]),
                   pg_catalog.unnest($3::int[])) AS a(classid, objid, objsubid),
         LATERAL pg_catalog.pg_identify_object_as_address(a.classid, a.objid, a.objsubid) i
  ON CONFLICT (classid, objid, objsubid) DO UPDATE
     SET type = excluded.type, object_names = excluded.object_names,
         object_args = excluded.object_args";

/// Reads every recorded object's names again.
const RENAME_ALL: &str = "
  UPDATE pg_catalog.pg_dist_object o
     SET type = i.type, object_names = i.object_names, object_args = i.object_args
    FROM (SELECT d.classid, d.objid, d.objsubid, a.type, a.object_names, a.object_args
            FROM pg_catalog.pg_dist_object d,
                 LATERAL pg_catalog.pg_identify_object_as_address(d.classid, d.objid, d.objsubid) a) i
   WHERE (o.classid, o.objid, o.objsubid) = (i.classid, i.objid, i.objsubid)
     AND (o.object_names IS DISTINCT FROM i.object_names OR o.object_args IS DISTINCT FROM i.object_args)";

/// The `ddl_command_end` event trigger.
#[pg_extern(sql = false)]
fn tessera_ddl_trigger() {
    (|| -> TResult<()> {
        // It runs as whoever issued the DDL (a superuser too, or a SECURITY DEFINER function):
        // its queries see only built-in functions and operators.
        let _path = crate::pg::guc::GucScope::catalog_only();
        // Only a coordinator keeps the record (a worker runs the same DDL for it).
        if !is_coordinator()? {
            return Ok(());
        }
        let (mut created, mut altered) = (Vec::new(), Vec::new());
        Spi::connect(|client| {
            for row in client.select(
                "SELECT c.classid, c.objid, c.objsubid, c.command_tag LIKE 'CREATE %'
                   FROM pg_catalog.pg_event_trigger_ddl_commands() c
                  WHERE NOT c.in_extension
                    AND c.classid IN ('pg_catalog.pg_namespace'::regclass, 'pg_catalog.pg_type'::regclass,
                                      'pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_operator'::regclass,
                                      'pg_catalog.pg_collation'::regclass, 'pg_catalog.pg_extension'::regclass,
                                      'pg_catalog.pg_ts_config'::regclass, 'pg_catalog.pg_ts_dict'::regclass)
                    AND coalesce(c.schema_name, '') !~ '^pg_temp'
                    -- A composite type with a table's row type in it stays the coordinator's.
                    AND NOT (c.classid = 'pg_catalog.pg_type'::regclass AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_type t
                          JOIN pg_catalog.pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0
                          JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
                          JOIN pg_catalog.pg_type et ON et.oid = coalesce(nullif(at.typelem, 0), at.oid)
                          JOIN pg_catalog.pg_class r ON r.oid = et.typrelid
                         WHERE t.oid = c.objid AND r.relkind <> 'c'))
                    AND NOT (c.classid = 'pg_catalog.pg_extension'::regclass
                             AND c.objid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'tessera'))",
                None,
                &[],
            )? {
                let classid = row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid);
                let objid = row.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid);
                let objsubid = row.get::<i32>(3)?.unwrap_or(0);
                let create = row.get::<bool>(4)?.unwrap_or(false);
                if classid == pg_sys::ProcedureRelationId
                    && !crate::ddl::objects::oid_is_shared(objid)
                {
                    continue;
                }
                if create { &mut created } else { &mut altered }.push((classid, objid, objsubid));
            }
            Ok::<_, TesseraError>(())
        })?;
        if !created.is_empty() {
            let _write = crate::metadata::CatalogWrite::begin();
            Spi::run_with_args(
                RECORD,
                &[
                    created.iter().map(|o| o.0).collect::<Vec<_>>().into(),
                    created.iter().map(|o| o.1).collect::<Vec<_>>().into(),
                    created.iter().map(|o| o.2).collect::<Vec<_>>().into(),
                ],
            )?;
        }
        if !altered.is_empty() {
            // A rename or a move changes the names of what is in or made from the object too
            // (a schema's functions, a type's users): every recorded name is read again.
            let _write = crate::metadata::CatalogWrite::begin();
            Spi::run(RENAME_ALL)?;
        }
        // Schema-based sharding: new schemas (with the setting on) and new tables of
        // distributed schemas are distributed.
        let (mut schemas, mut tables) = (Vec::new(), Vec::new());
        Spi::connect(|client| {
            for row in client.select(
                "SELECT c.classid = 'pg_catalog.pg_namespace'::regclass, c.objid
                   FROM pg_catalog.pg_event_trigger_ddl_commands() c
                  WHERE NOT c.in_extension
                    AND ((c.classid = 'pg_catalog.pg_namespace'::regclass AND c.command_tag = 'CREATE SCHEMA')
                      OR (c.classid = 'pg_catalog.pg_class'::regclass AND c.objsubid = 0
                          AND c.object_type = 'table'
                          AND c.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')))",
                None,
                &[],
            )? {
                let is_schema = row.get::<bool>(1)?.unwrap_or(false);
                let objid = row.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid);
                if is_schema { &mut schemas } else { &mut tables }.push(objid);
            }
            Ok::<_, TesseraError>(())
        })?;
        if !schemas.is_empty() || !tables.is_empty() {
            super::tenant_tables::after_ddl(&schemas, &tables)?;
        }
        Ok(())
    })()
    .or_report()
}

/// Whether this node is a coordinator (it has nodes registered): only a coordinator keeps
/// `pg_dist_object`; a worker runs the same DDL for it.
fn is_coordinator() -> TResult<bool> {
    Ok(
        crate::pg::spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node)")?
            .unwrap_or(false),
    )
}

/// Records a role Tessera made on every node (roles are shared objects, which the event
/// triggers do not see), as Citus records them.
pub(crate) fn record_role(oid: pg_sys::Oid) -> TResult<()> {
    // Only a coordinator keeps the record (a worker runs the same CREATE ROLE for it).
    if !is_coordinator()? {
        return Ok(());
    }
    let _write = crate::metadata::CatalogWrite::begin();
    Spi::run_with_args(
        RECORD,
        &[
            vec![pg_sys::AuthIdRelationId].into(),
            vec![oid].into(),
            vec![0i32].into(),
        ],
    )?;
    Ok(())
}

/// After DROP ROLE or ALTER ROLE ... RENAME: the recorded roles as they are now (dropped ones
/// forgotten, renamed ones under their new names).
pub(crate) fn refresh_roles() -> TResult<()> {
    let _write = crate::metadata::CatalogWrite::begin();
    Spi::run(
        "DELETE FROM pg_catalog.pg_dist_object o
          WHERE o.classid = 'pg_catalog.pg_authid'::pg_catalog.regclass
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.oid = o.objid)",
    )?;
    Spi::run(RENAME_ALL)?;
    Ok(())
}

/// In the `sql_drop` event trigger: forgets the dropped objects.
pub(crate) fn forget_dropped() -> TResult<()> {
    let _write = crate::metadata::CatalogWrite::begin();
    Spi::run(
        "DELETE FROM pg_catalog.pg_dist_object o
          USING pg_catalog.pg_event_trigger_dropped_objects() d
          WHERE (o.classid, o.objid, o.objsubid) = (d.classid, d.objid, d.objsubid)",
    )?;
    Ok(())
}
