//! Reference tables copied to a node that joins the cluster.

use pgrx::prelude::*;
use pgrx::spi::Spi;

use crate::ddl::propagate::{run_per_group, PerGroup};
use crate::error::{TResult, TesseraError};
use crate::metadata::node::{self as nodes};
use crate::metadata::table::{self as catalog};
use crate::sharding::ddl::TableDdl;

/// Gives a node that joins the cluster (group `group`) a copy of every reference table: the
/// shard table, its rows (from the coordinator's copy), and the placement row, all in the
/// caller's transaction.
pub(crate) fn replicate_to_new_node(group: i32) -> TResult<()> {
    let tables: Vec<pg_sys::Oid> = Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT logicalrelid::oid FROM pg_catalog.pg_dist_partition WHERE repmodel = 't' ORDER BY 1",
            None,
            &[],
        )? {
            out.push(row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid));
        }
        Ok::<_, TesseraError>(out)
    })?;
    if tables.is_empty() {
        return Ok(());
    }
    let all = nodes::all()?;
    for relid in tables {
        let Some(shard) = catalog::shards(relid)?.into_iter().next() else {
            continue;
        };
        if shard.groups.contains(&group) {
            continue;
        }
        // Writes wait until the node has its copy (and then write to it too); one that went
        // to the other placements before is committed by now, and is read below.
        // SAFETY: a lock on a table the catalog lists, kept to the end of the transaction.
        unsafe { pg_sys::LockRelationOid(relid, pg_sys::ExclusiveLock as pg_sys::LOCKMODE) };
        let ddl = TableDdl::load(relid, 0)?;
        let shard_table = ddl.qualified_shard(shard.shard_id);
        if !shard
            .groups
            .contains(&tessera_core::node::COORDINATOR_GROUP_ID)
        {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("cannot copy reference table shard {shard_table} to the new node: the coordinator holds no copy of it"),
            )
            .hint("Register the coordinator with citus_set_coordinator_host before creating reference tables."));
        }
        let mut per_group = PerGroup::new();
        per_group
            .entry(group)
            .or_default()
            .push((ddl.shard_ddl(shard.shard_id, true)?, Vec::new()));
        run_per_group(per_group, &all)?;
        // The rows, from the coordinator's copy.
        super::rows::copy_table(
            super::rows::Source::Here,
            &shard_table,
            relid,
            super::rows::Target::shard(&ddl.schema, &ddl.table, shard.shard_id, vec![group]),
            &all,
        )?;
        Spi::run_with_args(
            "INSERT INTO pg_catalog.pg_dist_placement (shardid, shardstate, shardlength, groupid)
             VALUES ($1, 1, 0, $2)",
            &[shard.shard_id.into(), group.into()],
        )?;
    }
    Ok(())
}
