//! Tables of distributed schemas made or moved by DDL: a schema created while
//! `citus.enable_schema_based_sharding` is on is distributed, a table created in a distributed
//! schema (by any statement) becomes one of its tables, and `ALTER TABLE ... SET SCHEMA` into
//! or out of a distributed schema converts the table (`udf::schemas` holds the schema
//! functions themselves).

use crate::error::{TResult, TesseraError};
use crate::gucs;
use crate::metadata::schema::{self as dist_schema, DistSchema};
use crate::metadata::table::{self as catalog, TableKind};
use crate::udf::distribute::{self, ForeignKeys};
use crate::udf::schemas::{
    check_not_reserved, check_unchanged, distribute_schema, facts, lock_schema, placement_setting,
    referenced_first, Target,
};
use pgrx::prelude::*;
use pgrx::spi::Spi;

/// In the `ddl_command_end` event trigger: schemas created while
/// `citus.enable_schema_based_sharding` is on are distributed (with the tables `CREATE SCHEMA
/// ... CREATE TABLE` made in them), and tables created in a distributed schema, by any
/// statement, are distributed in it. Partitions are left to the partition handler
/// (`ddl::partitions`), which distributes them with their parent.
pub(crate) fn after_ddl(
    created_schemas: &[pg_sys::Oid],
    created_tables: &[pg_sys::Oid],
) -> TResult<()> {
    if crate::ddl::propagate::in_internal_ddl() {
        // Tessera's own shards (on the coordinator) are not tenant tables.
        return Ok(());
    }
    let mut distributed_now = Vec::new();
    if gucs::enable_schema_based_sharding() {
        for &nsp in created_schemas {
            let f = facts(nsp)?;
            if check_not_reserved(&f).is_err() || dist_schema::find(nsp)?.is_some() {
                continue;
            }
            let target = match placement_setting()? {
                Some(n) => Target::Node(n),
                None => Target::Auto,
            };
            distribute_schema(nsp, target)?;
            distributed_now.push(nsp);
        }
    }
    let mut fresh = Vec::new();
    for &relid in created_tables {
        // SAFETY: syscache lookups of a table this statement created.
        let (nsp, relkind, partition) = unsafe {
            (
                pg_sys::get_rel_namespace(relid),
                pg_sys::get_rel_relkind(relid) as u8,
                pg_sys::get_rel_relispartition(relid),
            )
        };
        let table_kind =
            relkind == pg_sys::RELKIND_RELATION || relkind == pg_sys::RELKIND_PARTITIONED_TABLE;
        if !table_kind || partition || distributed_now.contains(&nsp) {
            continue;
        }
        // A distribute, undistribute or move of the schema that runs now decides first.
        lock_schema(nsp, pg_sys::AccessShareLock);
        let seen = dist_schema::find(nsp)?;
        check_unchanged(nsp, seen)?;
        let Some(ds) = seen else {
            continue;
        };
        if catalog::find(relid)?.is_some() {
            continue;
        }
        distribute::create_single_shard(relid, ds.colocation_id, ds.group, ForeignKeys::Later)?;
        fresh.push(relid);
    }
    distribute::empty_local_tables(&fresh)?;
    for relid in referenced_first(fresh)? {
        distribute::add_table_foreign_keys(relid)?;
    }
    Ok(())
}

/// ALTER TABLE ... SET SCHEMA of a table in or into a distributed schema: a tenant table that
/// leaves its schema comes back to the coordinator first (`before`), a local table that
/// enters one is distributed there afterwards (`after`).
pub(crate) fn set_schema_before(relid: pg_sys::Oid, new_schema: &str) -> TResult<bool> {
    let into = schema_named(new_schema)?;
    if let Some(ds) = &into {
        lock_schema(ds.schema, pg_sys::AccessShareLock);
    }
    let dist = catalog::find(relid)?;
    let from = match &dist {
        Some(d) => dist_schema::of_colocation(d.colocation_id)?,
        None => None,
    };
    if let Some(ds) = &from {
        lock_schema(ds.schema, pg_sys::AccessShareLock);
    }
    let leaving = from.is_some();
    if leaving || (into.is_some() && dist.is_none()) {
        // The table's foreign keys would cross the schema's edge: one side distributed, the
        // other not (a key to a reference table can come along into the schema).
        if let Some((name, other)) = foreign_key_of(relid, !leaving)? {
            let (s, n) = crate::pg::nodes::rel_schema_and_name(relid);
            let way = if leaving { "out of" } else { "into" };
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("cannot move {s}.{n} {way} a distributed schema: its foreign key \"{name}\" relates it to {other}"),
            )
            .hint("Drop the foreign key first, move the table, then add the key back where both tables are in one distributed schema (or the referenced one is a reference table)."));
        }
    }
    if let Some(d) = &dist {
        if d.kind() != TableKind::SingleShard {
            if into.is_some() {
                let (s, n) = crate::pg::nodes::rel_schema_and_name(relid);
                return Err(TesseraError::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("cannot move the distributed table {s}.{n} into the distributed schema {new_schema}"),
                )
                .hint("Undistribute it first (undistribute_table): a table of a distributed schema is a single-shard table of that schema."));
            }
            return Ok(false);
        }
        if leaving {
            crate::udf::undistribute::undistribute_tenant_table(relid)?;
        }
    }
    Ok(into.is_some())
}

/// After the move: distribute `relid` in its (distributed) schema.
pub(crate) fn set_schema_after(relid: pg_sys::Oid) -> TResult<()> {
    // SAFETY: a syscache lookup of the moved table.
    let nsp = unsafe { pg_sys::get_rel_namespace(relid) };
    lock_schema(nsp, pg_sys::AccessShareLock);
    let seen = dist_schema::find(nsp)?;
    check_unchanged(nsp, seen)?;
    let Some(ds) = seen else {
        return Ok(());
    };
    distribute::create_single_shard(relid, ds.colocation_id, ds.group, ForeignKeys::Now)
}

/// A foreign key from or to `relid` (not to itself; nor to a reference table, when
/// `to_reference_ok`): its name and the other table.
fn foreign_key_of(relid: pg_sys::Oid, to_reference_ok: bool) -> TResult<Option<(String, String)>> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT conname::text,
                    (CASE WHEN conrelid = $1 THEN confrelid ELSE conrelid END)::regclass::text
               FROM pg_catalog.pg_constraint
              WHERE contype = 'f' AND conparentid = 0 AND conrelid <> confrelid
                AND (conrelid = $1 OR confrelid = $1)
                AND NOT ($2 AND conrelid = $1 AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_dist_partition p
                         WHERE p.logicalrelid::oid = confrelid AND p.repmodel = 't'))
              ORDER BY oid LIMIT 1",
            None,
            &[relid.into(), to_reference_ok.into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some((
            row.get::<String>(1)?.unwrap_or_default(),
            row.get::<String>(2)?.unwrap_or_default(),
        )))
    })
}

/// The distributed schema named `name`, if it is one.
fn schema_named(name: &str) -> TResult<Option<DistSchema>> {
    let c = std::ffi::CString::new(name).unwrap_or_default();
    // SAFETY: a missing_ok name lookup.
    let nsp = unsafe { pg_sys::get_namespace_oid(c.as_ptr(), true) };
    if nsp == pg_sys::InvalidOid {
        return Ok(None);
    }
    dist_schema::find(nsp)
}
