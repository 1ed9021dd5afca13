//! `undistribute_table(table)`: a distributed or reference table back to a plain local table.
//!
//! In the caller's transaction: the catalog rows go first (so the table is local again for
//! the rest of the statement), then each shard's rows are read from one of its placements (in
//! the remote transaction) and inserted into the local table, and every placement is dropped.
//! A failure anywhere rolls all of it back, on the coordinator and on the workers.
//!
//! A partitioned table comes back with its partitions (each partition first, its rows into
//! the local partition); a partition alone cannot be undistributed while its parent is
//! distributed.

use pgrx::prelude::*;
use pgrx::spi::Spi;

use crate::ddl::propagate::{group_nodes, run_per_group, PerGroup};
use crate::error::{OrReport, TResult, TesseraError};
use crate::metadata::node as nodes;
use crate::metadata::table as catalog;
use crate::operations::rows::{read, Columns, Source, Target, Writer};

fn undistribute(relid: pg_sys::Oid, as_partition: bool, tenant: bool) -> TResult<i64> {
    let (display, owner_ok) = Spi::connect(|client| {
        let row = client
            .select(
                "SELECT c.oid::regclass::text, pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER')
                   FROM pg_catalog.pg_class c WHERE c.oid = $1",
                None,
                &[relid.into()],
            )?
            .first();
        Ok::<_, TesseraError>((row.get::<String>(1)?, row.get::<bool>(2)?.unwrap_or(false)))
    })?;
    let display = display.ok_or_else(|| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("relation with OID {} does not exist", relid.to_u32()),
        )
    })?;
    if !owner_ok {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("must be owner of table {display}"),
        ));
    }
    let Some(dist) = catalog::find(relid)? else {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot undistribute table {display}: it is not distributed"),
        ));
    };
    if !as_partition {
        if let Some(parent) = super::partitions::parent_of(relid)? {
            if catalog::find(parent)?.is_some() {
                let parent = Spi::get_one_with_args::<String>(
                    "SELECT $1::regclass::text",
                    &[parent.into()],
                )?
                .unwrap_or_default();
                return Err(TesseraError::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("cannot undistribute table {display}: it is a partition of the distributed table {parent}"),
                )
                .hint(format!("Undistribute {parent}: its partitions come back with it. Or detach the partition first (ALTER TABLE ... DETACH PARTITION).")));
            }
        }
    }
    let foreign_keys = Spi::get_one_with_args::<i64>(
        "SELECT count(*) FROM pg_catalog.pg_constraint
          WHERE contype = 'f' AND (conrelid = $1 OR confrelid = $1)",
        &[relid.into()],
    )?
    .unwrap_or(0);
    // A distributed schema's tables come back in an order where each follows the tables it
    // references (`udf::schemas`): their foreign keys hold on the coordinator as they do.
    if foreign_keys > 0 && !tenant {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("cannot undistribute table {display}: it has foreign keys to or from other tables"),
        )
        .hint("Drop the foreign keys first (cascade_via_foreign_keys is not supported yet), then add them back once the tables are local."));
    }
    Spi::run(&format!("LOCK TABLE {display} IN ACCESS EXCLUSIVE MODE"))?;
    // A policy of another distributed table that reads this one (a reference table) exists on
    // the shards as a policy reading this table's shard, which goes below: the shards would
    // lose it. (Checked under the lock, so none is made meanwhile.)
    if let Some((policy, table)) = Spi::connect(|client| {
        let rows = client.select(
            "SELECT p.polname::text, p.polrelid::regclass::text
                   FROM pg_catalog.pg_depend d
                   JOIN pg_catalog.pg_policy p ON p.oid = d.objid
                  WHERE d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass
                    AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.refobjid = $1 AND p.polrelid <> $1
                    AND EXISTS (SELECT FROM pg_catalog.pg_dist_partition t WHERE t.logicalrelid = p.polrelid)
                  ORDER BY 2, 1 LIMIT 1",
            None,
            &[relid.into()],
        )?;
        if rows.is_empty() {
            return Ok::<_, TesseraError>(None);
        }
        let row = rows.first();
        Ok(row.get::<String>(1)?.zip(row.get::<String>(2)?))
    })? {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            format!("cannot undistribute table {display}: the policy {} of table {table} reads it", pgrx::spi::quote_identifier(&policy)),
        )
        .hint("Drop the policy, or change it not to read this table, first; the policy's copy on the shards reads this table's shards."));
    }
    let mut moved = 0i64;
    for partition in super::partitions::partitions_of(relid)? {
        if catalog::find(partition)?.is_some() {
            moved += undistribute(partition, true, tenant)?;
        }
    }
    let shards = catalog::shards(relid)?;
    let (schema, table) = crate::pg::nodes::rel_schema_and_name(relid);
    let all = nodes::all()?;
    let addresses = group_nodes(&all);

    // The table is local from here on (the relcache invalidation reaches this backend's
    // metadata cache at the next command).
    catalog::delete_table(relid, dist.colocation_id, true)?;

    let columns = Columns::of(relid)?;
    let here = Target {
        schema: schema.clone(),
        name: table.clone(),
        groups: vec![tessera_core::node::COORDINATOR_GROUP_ID],
    };
    let mut writer = Writer::new(vec![here], &columns, &all);
    for s in &shards {
        // One placement is enough; a worker's rather than the coordinator's copy.
        let group = s
            .groups
            .iter()
            .copied()
            .find(|g| *g != 0)
            .or_else(|| s.groups.first().copied());
        let source = if group == Some(tessera_core::node::COORDINATOR_GROUP_ID) {
            // The coordinator's own placement: read here (a connection to itself would wait
            // on this transaction's locks when the placement is dropped).
            Source::Here
        } else {
            match group.and_then(|g| addresses.get(&g)) {
                Some(node) => Source::On(node),
                None => continue,
            }
        };
        let shard = crate::sharding::qualified_shard(&schema, &table, s.shard_id);
        read(source, &columns.select_only(&shard), |fields| {
            writer.push(0, fields)
        })?;
    }
    moved += writer.finish()?;
    // Every placement goes (listed from `shards`: the catalog rows are gone already).
    let mut per_group = PerGroup::new();
    for s in &shards {
        let shard = crate::sharding::qualified_shard(&schema, &table, s.shard_id);
        for g in &s.groups {
            per_group
                .entry(*g)
                .or_default()
                .push((format!("DROP TABLE IF EXISTS {shard} CASCADE"), Vec::new()));
        }
    }
    run_per_group(per_group, &all)?;
    if !as_partition {
        pgrx::notice!(
            "moved {moved} rows of {display} back into the local table; its shards are dropped"
        );
    }
    Ok(moved)
}

/// A table of a distributed schema back to a local table, foreign keys and all (its
/// schema's caller brings the tables back in foreign-key order).
pub(crate) fn undistribute_tenant_table(relid: pg_sys::Oid) -> TResult<i64> {
    undistribute(relid, false, true)
}

/// Citus's `undistribute_table(table_name, cascade_via_foreign_keys)`.
#[pg_extern(sql = false)]
fn undistribute_table(table_name: Option<pg_sys::Oid>, _cascade_via_foreign_keys: Option<bool>) {
    let run = || -> TResult<()> {
        let relid = table_name.ok_or_else(|| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "table_name cannot be NULL",
            )
        })?;
        if let Some(d) = catalog::find(relid)? {
            if crate::metadata::schema::of_colocation(d.colocation_id)?.is_some() {
                let (schema, name) = crate::pg::nodes::rel_schema_and_name(relid);
                return Err(TesseraError::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("cannot undistribute {schema}.{name}: it is a table of the distributed schema {schema}"),
                )
                .hint("Move it out of the schema (ALTER TABLE ... SET SCHEMA), which brings it back to the coordinator, or undistribute the whole schema with citus_schema_undistribute()."));
            }
        }
        undistribute(relid, false, false)?;
        Ok(())
    };
    run().or_report()
}
