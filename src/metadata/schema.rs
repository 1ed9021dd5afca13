//! `pg_dist_schema`: the distributed schemas of schema-based sharding. Each is one colocation
//! group (one shard per table, all on one node) and the group of the node it is placed on.

use pgrx::prelude::*;
use pgrx::spi::Spi;

use crate::error::TResult;

/// A row of `pg_dist_schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistSchema {
    pub schema: pg_sys::Oid,
    pub colocation_id: i32,
    /// The node group its tables are placed on.
    pub group: i32,
}

/// Reads with a snapshot of its own (not the statement's): a caller that waited for the
/// schema's lock sees what the session it waited for committed.
fn read(sql: &str, arg: pgrx::datum::DatumWithOid) -> TResult<Option<DistSchema>> {
    Spi::connect_mut(|client| {
        let rows = client.update(sql, None, &[arg])?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(DistSchema {
            schema: row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
            colocation_id: row.get::<i32>(2)?.unwrap_or_default(),
            group: row.get::<i32>(3)?.unwrap_or_default(),
        }))
    })
}

/// The distributed schema `nsp`, if it is one.
pub fn find(nsp: pg_sys::Oid) -> TResult<Option<DistSchema>> {
    read(
        "SELECT schemaid, colocationid, groupid FROM pg_catalog.pg_dist_schema WHERE schemaid = $1",
        nsp.into(),
    )
}

/// The distributed schema `nsp` as the latest committed state has it, whatever the
/// transaction's snapshot (for a REPEATABLE READ session that waited for the schema's lock).
pub fn find_latest(nsp: pg_sys::Oid) -> TResult<Option<DistSchema>> {
    let rows = crate::pg::snapshot::read_latest(&format!(
        "SELECT schemaid, colocationid, groupid FROM pg_catalog.pg_dist_schema WHERE schemaid = {}",
        nsp.to_u32()
    ));
    let number = |v: &Option<String>| {
        v.as_deref()
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0)
    };
    Ok(rows.first().map(|r| DistSchema {
        schema: pg_sys::Oid::from(number(&r[0]) as u32),
        colocation_id: number(&r[1]) as i32,
        group: number(&r[2]) as i32,
    }))
}

/// The distributed schema whose colocation group is `colocation_id`, if any.
pub fn of_colocation(colocation_id: i32) -> TResult<Option<DistSchema>> {
    read(
        "SELECT schemaid, colocationid, groupid FROM pg_catalog.pg_dist_schema WHERE colocationid = $1",
        colocation_id.into(),
    )
}

/// Records `nsp` as distributed, in `colocation_id`, placed on `group`.
pub fn insert(nsp: pg_sys::Oid, colocation_id: i32, group: i32) -> TResult<()> {
    let _write = super::CatalogWrite::begin();
    Spi::run_with_args(
        "INSERT INTO pg_catalog.pg_dist_schema (schemaid, colocationid, groupid) VALUES ($1, $2, $3)",
        &[nsp.into(), colocation_id.into(), group.into()],
    )?;
    Ok(())
}

/// Forgets the distributed schema `nsp` and its colocation group (which no table is left in).
pub fn delete(nsp: pg_sys::Oid) -> TResult<()> {
    let _write = super::CatalogWrite::begin();
    Spi::run_with_args(
        "WITH gone AS (DELETE FROM pg_catalog.pg_dist_schema WHERE schemaid = $1 RETURNING colocationid)
         DELETE FROM pg_catalog.pg_dist_colocation c USING gone
          WHERE c.colocationid = gone.colocationid
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.colocationid = c.colocationid)",
        &[nsp.into()],
    )?;
    Ok(())
}

/// Records that the schema's tables are on `group` now.
pub fn set_group(nsp: pg_sys::Oid, group: i32) -> TResult<()> {
    let _write = super::CatalogWrite::begin();
    Spi::run_with_args(
        "UPDATE pg_catalog.pg_dist_schema SET groupid = $2 WHERE schemaid = $1",
        &[nsp.into(), group.into()],
    )?;
    Ok(())
}

/// In the `sql_drop` event trigger: forgets the distributed schemas being dropped (their
/// tables' rows go with the tables; the colocation groups once no table is left in them).
pub fn forget_dropped() -> TResult<()> {
    let _write = super::CatalogWrite::begin();
    Spi::run(
        "WITH gone AS (
            DELETE FROM pg_catalog.pg_dist_schema s
             USING pg_catalog.pg_event_trigger_dropped_objects() d
             WHERE d.object_type = 'schema' AND d.objid = s.schemaid
            RETURNING s.colocationid)
         DELETE FROM pg_catalog.pg_dist_colocation c USING gone
          WHERE c.colocationid = gone.colocationid
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
                             WHERE p.colocationid = c.colocationid
                               AND p.logicalrelid::oid NOT IN
                                   (SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects()))",
    )?;
    Ok(())
}
