//! Partitioned distributed tables: a partitioned table is distributed with all its partitions,
//! each partition a distributed table co-located with its parent (the same hash ranges on the
//! same nodes), and each partition's shard attached to the parent's shard of the same range on
//! its node. A query of the parent reads the parent's shards, and each worker prunes and scans
//! its partitions as PostgreSQL does; a query of one partition reads that partition's shards.
//!
//! What keeps the two levels in step:
//! - `create_distributed_table` on a partitioned table distributes every partition
//!   ([`distribute_partition`]);
//! - `CREATE TABLE ... PARTITION OF` a distributed table, and `ATTACH PARTITION` of a local
//!   table, distribute the new partition the same way (its rows move into its shards);
//! - `ATTACH PARTITION` of a co-located distributed table and `DETACH PARTITION` attach and
//!   detach the shards ([`attach_shards`], [`detach_shards`]); a detached partition stays a
//!   distributed table, as in Citus;
//! - DROP of a partition or of the parent drops their shards (the `sql_drop` trigger).
//!
//! Only one level: a partition that is partitioned itself is refused.

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, Spi};

use super::distribute::{self, AttachTo, Role};
use crate::ddl::propagate::PerGroup;
use crate::error::{TResult, TesseraError};
use crate::metadata::node as nodes;
use crate::metadata::table::{self as catalog, DistTable, Shard, TableKind};
use crate::pg::nodes::rel_schema_and_name;
use tessera_core::sharding::shard_name;

/// The partitions of `parent`, in name order.
pub(crate) fn partitions_of(parent: pg_sys::Oid) -> TResult<Vec<pg_sys::Oid>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT i.inhrelid FROM pg_catalog.pg_inherits i
               JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = $1 ORDER BY c.relname",
            None,
            &[parent.into()],
        )? {
            out.push(row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid));
        }
        Ok(out)
    })
}

/// The partitioned distributed table `relid` is a partition of, if it is one.
pub(crate) fn parent_of(relid: pg_sys::Oid) -> TResult<Option<pg_sys::Oid>> {
    Ok(Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT (SELECT i.inhparent FROM pg_catalog.pg_inherits i
                   JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhrelid = $1 AND c.relispartition)",
        &[relid.into()],
    )?)
}

fn not_hash_parent(parent: pg_sys::Oid) -> TesseraError {
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!(
            "cannot add a partition to {}: it is not a hash-distributed table",
            display(parent)
        ),
    )
    .hint("Partitions follow their parent: distribute the partitioned table with create_distributed_table(table, column).")
}

/// The parent's catalog row and where its shards are.
fn parent_parts(parent: pg_sys::Oid) -> TResult<(DistTable, AttachTo)> {
    let dist = catalog::find(parent)?
        .filter(|t| matches!(t.kind(), TableKind::Hash | TableKind::SingleShard))
        .ok_or_else(|| not_hash_parent(parent))?;
    let attach = AttachTo {
        parent: rel_schema_and_name(parent),
        parent_shards: catalog::shards(parent)?,
        bound: String::new(),
    };
    Ok((dist, attach))
}

/// Distributes the local table `child`, a partition of the distributed table `parent` (as the
/// coordinator has it already): shards co-located with the parent's, each attached to the
/// parent's shard of its range, the child's rows moved into them, and the catalog rows.
pub(crate) fn distribute_partition(
    parent: pg_sys::Oid,
    child: pg_sys::Oid,
    foreign_keys: distribute::ForeignKeys,
) -> TResult<()> {
    let (parent_dist, mut attach) = parent_parts(parent)?;
    let table = distribute::check_table(child, Role::Partition)?;
    if table.partitioned {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("cannot distribute {}: a partition of a distributed table cannot be partitioned itself", table.display),
        )
        .hint("Use one level of partitions under a distributed table."));
    }
    // A tenant schema's partitioned table has no distribution column.
    let column = match parent_dist.kind() {
        TableKind::SingleShard => None,
        _ => Some(super::shards::column_name(parent, parent_dist.dist_attnum)?),
    };
    // The partition has the parent's columns, though not necessarily at the same positions.
    let attnum = match &column {
        Some(c) => distribute::check_column(&table, c)?.0,
        None => 0,
    };
    let shards = attach
        .parent_shards
        .iter()
        .map(|s| {
            Ok(Shard {
                shard_id: catalog::next_shard_id()?,
                ..s.clone()
            })
        })
        .collect::<TResult<Vec<_>>>()?;
    let dist = DistTable {
        relid: child,
        method: parent_dist.method,
        dist_attnum: attnum,
        colocation_id: parent_dist.colocation_id,
        repmodel: 's',
    };
    attach.bound = crate::sharding::ddl::partition_bound(child)?;
    distribute::build(
        &table,
        dist,
        column.as_deref(),
        shards,
        &nodes::all()?,
        Some(&attach),
        foreign_keys,
    )
}

/// The parent's CHECK constraints: a partition's shard has each of them named after the
/// parent's shard while it is attached (see `TableDdl::partition_shard_ddl`), after its own
/// shard otherwise.
fn check_names(parent: pg_sys::Oid) -> TResult<Vec<String>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT conname::text FROM pg_catalog.pg_constraint
              WHERE conrelid = $1 AND contype = 'c' ORDER BY conname",
            None,
            &[parent.into()],
        )? {
            out.push(row.get::<String>(1)?.unwrap_or_default());
        }
        Ok(out)
    })
}

/// The renames of a partition shard's inherited CHECK constraints, from the names under `from`
/// to those under `to` (shard ids).
fn renames(shard: &str, checks: &[String], from: i64, to: i64) -> String {
    checks
        .iter()
        .map(|c| {
            format!(
                "ALTER TABLE {shard} RENAME CONSTRAINT {} TO {};\n",
                quote_identifier(shard_name(c, from)),
                quote_identifier(shard_name(c, to))
            )
        })
        .collect()
}

/// The commands for each pair of parent and partition shard, run on the nodes that hold them.
fn per_shard_pair(
    parent: pg_sys::Oid,
    child: pg_sys::Oid,
    sql_for: impl Fn(usize, &Shard, &Shard, &str) -> String,
) -> TResult<()> {
    let parent_shards = catalog::shards(parent)?;
    let child_shards = catalog::shards(child)?;
    let (schema, table) = rel_schema_and_name(child);
    let mut per_group = PerGroup::new();
    for (index, (p, c)) in parent_shards.iter().zip(&child_shards).enumerate() {
        let sql = sql_for(
            index,
            p,
            c,
            &crate::sharding::qualified_shard(&schema, &table, c.shard_id),
        );
        push_on_groups(&mut per_group, &c.groups, &sql);
    }
    crate::ddl::propagate::run_per_group(per_group, &nodes::all()?)
}

/// Checks that the distributed table `child` can be attached to `parent` shard by shard: both
/// hash-distributed in the same colocation group (so each shard of the child sits with the
/// parent's shard of the same range) by the same column (so each row is in the shard the
/// parent routes its value to), and the child not partitioned itself.
pub(crate) fn check_attach(parent: pg_sys::Oid, child: pg_sys::Oid) -> TResult<()> {
    let child_dist = catalog::find(child)?.expect("the caller checked");
    let parent_dist = catalog::find(parent)?.ok_or_else(|| not_hash_parent(parent))?;
    if parent_dist.kind() == TableKind::SingleShard
        && child_dist.kind() == TableKind::SingleShard
        && parent_dist.colocation_id == child_dist.colocation_id
        && partitions_of(child)?.is_empty()
    {
        // Two tables of one distributed schema: on one node already.
        return Ok(());
    }
    if parent_dist.kind() != TableKind::Hash {
        return Err(not_hash_parent(parent));
    }
    if child_dist.kind() != TableKind::Hash {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "cannot attach {} to {}: it is a reference table",
                display(child),
                display(parent)
            ),
        )
        .hint("Partitions of a distributed table are distributed with it: attach a local table, or undistribute this one first."));
    }
    if !partitions_of(child)?.is_empty()
        // SAFETY: a syscache lookup.
        || unsafe { pg_sys::get_rel_relkind(child) } == pg_sys::RELKIND_PARTITIONED_TABLE as std::ffi::c_char
    {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "cannot attach {}: a partition of a distributed table cannot be partitioned itself",
                display(child)
            ),
        )
        .hint("Use one level of partitions under a distributed table."));
    }
    let same_column = child_dist.kind() == TableKind::Hash
        && super::shards::column_name(parent, parent_dist.dist_attnum)?
            == super::shards::column_name(child, child_dist.dist_attnum)?;
    if !same_column {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "cannot attach {} to {}: it is not distributed by the same column",
                display(child),
                display(parent)
            ),
        )
        .hint("Undistribute the table first (undistribute_table), then attach it: it is distributed with the parent."));
    }
    if child_dist.colocation_id != parent_dist.colocation_id {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "cannot attach {} to {}: they are not co-located",
                display(child),
                display(parent)
            ),
        )
        .hint("Attach a local table (it is distributed with the parent), or a table distributed with colocate_with => the parent."));
    }
    Ok(())
}

/// ATTACH PARTITION of the co-located distributed table `child` (attached on the coordinator
/// already): each of its shards attached to the parent's shard of the same range.
pub(crate) fn attach_shards(parent: pg_sys::Oid, child: pg_sys::Oid) -> TResult<()> {
    let (_, mut attach) = parent_parts(parent)?;
    attach.bound = crate::sharding::ddl::partition_bound(child)?;
    let checks = check_names(parent)?;
    per_shard_pair(parent, child, |index, p, c, shard| {
        let mut sql = renames(shard, &checks, c.shard_id, p.shard_id);
        sql.push_str(&attach.attach_sql(index, shard));
        sql
    })?;
    // The attach made (or adopted) a copy of each of the parent's indexes on the partition,
    // on the coordinator and on the shards, each under a name of its own choosing.
    for index in crate::ddl::indexes_of(parent)? {
        name_partition_indexes(parent, index, Some(child))?;
    }
    Ok(())
}

/// DETACH PARTITION (detached on the coordinator already): each of the partition's shards
/// detached from the parent's, its inherited CHECK constraints named after its own shard again.
pub(crate) fn detach_shards(parent: pg_sys::Oid, child: pg_sys::Oid) -> TResult<()> {
    let (schema, table) = rel_schema_and_name(parent);
    let checks = check_names(parent)?;
    per_shard_pair(parent, child, |_, p, c, shard| {
        let mut sql = format!(
            "ALTER TABLE {} DETACH PARTITION {shard};\n",
            crate::sharding::qualified_shard(&schema, &table, p.shard_id)
        );
        sql.push_str(&renames(shard, &checks, p.shard_id, c.shard_id));
        sql
    })
}

/// Adds `sql` for every group in `groups`.
fn push_on_groups(per_group: &mut PerGroup, groups: &[i32], sql: &str) {
    for g in groups {
        per_group
            .entry(*g)
            .or_default()
            .push((sql.to_string(), Vec::new()));
    }
}

/// `relid::regclass::text`, for messages.
fn display(relid: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>("SELECT $1::regclass::text", &[relid.into()])
        .ok()
        .flatten()
        .unwrap_or_else(|| relid.to_u32().to_string())
}

/// After `index` (an index, or the index of a UNIQUE / PRIMARY KEY constraint) was made on the
/// partitioned distributed table `parent` and on its shards: PostgreSQL made a copy of it on
/// every partition, here and on every partition shard, each under a name of its choosing. The
/// shards' copies are renamed `<the coordinator's copy's name>_<shardid>`, as every shard
/// index is named, so that later statements on a partition's index or constraint (DROP,
/// RENAME, after a DETACH too) find them on the shards.
/// `only` limits it to one partition (one just attached).
pub(crate) fn name_partition_indexes(
    parent: pg_sys::Oid,
    index: pg_sys::Oid,
    only: Option<pg_sys::Oid>,
) -> TResult<()> {
    let partitions: Vec<pg_sys::Oid> = partitions_of(parent)?
        .into_iter()
        .filter(|p| only.is_none_or(|o| o == *p))
        .collect();
    if partitions.is_empty() {
        return Ok(());
    }
    let (schema, _) = rel_schema_and_name(parent);
    let (_, index_name) = rel_schema_and_name(index);
    let parent_shards = catalog::shards(parent)?;
    let mut per_group = PerGroup::new();
    for partition in partitions {
        // The coordinator's copy of the index on this partition.
        let Some(copy) = Spi::get_one_with_args::<String>(
            "SELECT (SELECT c.relname::text FROM pg_catalog.pg_inherits i
                       JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                       JOIN pg_catalog.pg_index x ON x.indexrelid = c.oid
                      WHERE i.inhparent = $1 AND x.indrelid = $2)",
            &[index.into(), partition.into()],
        )?
        else {
            continue;
        };
        let (_, partition_name) = rel_schema_and_name(partition);
        for (p, c) in parent_shards.iter().zip(catalog::shards(partition)?) {
            let target = shard_name(&copy, c.shard_id);
            let parent_index = crate::sharding::qualified_shard(&schema, &index_name, p.shard_id);
            let shard = crate::sharding::qualified_shard(&schema, &partition_name, c.shard_id);
            let body = format!(
                "DECLARE n name; BEGIN
                   SELECT c.relname INTO n FROM pg_catalog.pg_inherits i
                     JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
                     JOIN pg_catalog.pg_index x ON x.indexrelid OPERATOR(pg_catalog.=) c.oid
                    WHERE i.inhparent OPERATOR(pg_catalog.=) pg_catalog.to_regclass({})::oid
                      AND x.indrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({})::oid;
                   IF n IS NOT NULL AND n OPERATOR(pg_catalog.<>) {}::name THEN
                     EXECUTE pg_catalog.format('ALTER INDEX %I.%I RENAME TO %I', {}, n, {});
                   END IF;
                 END",
                pgrx::spi::quote_literal(&parent_index),
                pgrx::spi::quote_literal(&shard),
                pgrx::spi::quote_literal(&target),
                pgrx::spi::quote_literal(&schema),
                pgrx::spi::quote_literal(&target),
            );
            let sql = tessera_core::sqltext::do_block(&body);
            push_on_groups(&mut per_group, &c.groups, &sql);
        }
    }
    crate::ddl::propagate::run_per_group(per_group, &nodes::all()?)
}
