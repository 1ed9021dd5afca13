//! Moving shards between nodes: the shard move engine's first mode, `block_writes`, used by
//! `citus_schema_move` (online moves over logical replication come with rebalancing).
//!
//! [`move_tables`] moves the one placement on group `from` of each of some single-shard
//! tables (a colocation group's, together) to group `to`, inside the caller's transaction:
//! 1. the tables are locked against writes (EXCLUSIVE: reads go on, through the coordinator);
//! 2. each shard is made on the target (a partition attached to its parent's new shard);
//! 3. the rows travel from the source's shard through the coordinator (the row mover: a cursor
//!    on the source, COPY on the target), each table after the tables it references; then the
//!    foreign keys are made on the target;
//! 4. the placements point at the target, and the source's shards are recorded in
//!    `pg_dist_cleanup`: [`cleanup_orphaned`] drops them later (the next move runs it, and
//!    `CALL citus_cleanup_orphaned_resources()`), so that a query routed to the old placement
//!    before the move committed still finds it there.
//!
//! All remote work runs in the remote transaction: an error rolls back every node and the
//! catalog (and the cleanup records with it). Until two-phase commit lands, the commit itself
//! is one-phase per node.

use pgrx::prelude::*;
use pgrx::spi::Spi;

use crate::connection::{run_tasks, ConnKey, RemoteTask, Scope};
use crate::ddl::propagate::{group_nodes, run_per_group, PerGroup};
use crate::error::{OrReport, TResult, TesseraError};
use crate::metadata::cleanup;
use crate::metadata::node as nodes;
use crate::metadata::table::{self as catalog, Shard};
use crate::sharding::ddl::TableDdl;
use crate::udf::distribute::AttachTo;

/// One table to move: its definition, the shard, and where a partition attaches.
struct Item {
    relid: pg_sys::Oid,
    ddl: TableDdl,
    shard: Shard,
    /// For a partition: its parent's (moved) shard and its bound.
    attach: Option<AttachTo>,
    /// A leaf table: it holds rows of its own.
    leaf: bool,
}

/// Moves the placements of `tables` (and their partitions) from group `from` to group `to`.
/// `tables` are in foreign-key order (each after those it references).
pub(crate) fn move_tables(tables: &[pg_sys::Oid], from: i32, to: i32) -> TResult<()> {
    let all = nodes::all()?;
    let addresses = group_nodes(&all);
    let source = addresses.get(&from).cloned().ok_or_else(|| no_node(from))?;
    addresses.get(&to).ok_or_else(|| no_node(to))?;
    let mut items = Vec::new();
    for &relid in tables {
        items.push(item(relid, from, None)?);
        for partition in crate::udf::partitions::partitions_of(relid)? {
            items.push(item(partition, from, Some(relid))?);
        }
    }
    // 1. Writes wait; reads go on.
    for it in &items {
        Spi::run(&format!(
            "LOCK TABLE {}.{} IN EXCLUSIVE MODE",
            pgrx::spi::quote_identifier(&it.ddl.schema),
            pgrx::spi::quote_identifier(&it.ddl.table)
        ))?;
    }
    // 2. The shards on the target.
    let mut create = String::new();
    for it in &items {
        match &it.attach {
            Some(a) => {
                create.push_str(&it.ddl.partition_shard_ddl(
                    it.shard.shard_id,
                    a.parent_shards[0].shard_id,
                    true,
                )?);
                create.push_str(&a.attach_sql(0, &it.ddl.qualified_shard(it.shard.shard_id)));
            }
            None => create.push_str(&it.ddl.shard_ddl(it.shard.shard_id, true)?),
        }
    }
    let mut per_group = PerGroup::new();
    per_group.insert(to, vec![(create, Vec::new())]);
    run_per_group(per_group, &all)?;
    // 3. The rows, then the foreign keys.
    let mut moved = 0i64;
    for it in items.iter().filter(|i| i.leaf) {
        moved += super::rows::copy_table(
            super::rows::Source::On(&source),
            &it.ddl.qualified_shard(it.shard.shard_id),
            it.relid,
            super::rows::Target::shard(&it.ddl.schema, &it.ddl.table, it.shard.shard_id, vec![to]),
            &all,
        )?;
    }
    for it in &items {
        let Some(dist) = catalog::find(it.relid)? else {
            continue;
        };
        let shards = vec![Shard {
            groups: vec![to],
            ..it.shard.clone()
        }];
        crate::udf::distribute::add_foreign_keys(&it.ddl, &dist, &shards, &all)?;
    }
    // 4. The catalog, and the old shards (a partition's go with its parent's).
    let shard_ids: Vec<i64> = items.iter().map(|i| i.shard.shard_id).collect();
    let relids: Vec<pg_sys::Oid> = items.iter().map(|i| i.relid).collect();
    catalog::move_placements(&shard_ids, &relids, from, to)?;
    let operation = cleanup::next_operation_id()?;
    // A partition's old shard goes with its parent's; each is recorded all the same.
    for it in items.iter().rev() {
        cleanup::record_placement(operation, &it.ddl.qualified_shard(it.shard.shard_id), from)?;
    }
    pgrx::notice!(
        "moved {} tables ({moved} rows); the old shards are dropped by citus_cleanup_orphaned_resources()",
        items.len()
    );
    Ok(())
}

/// Drops the old placements recorded in `pg_dist_cleanup` that it can, each on its node in a
/// transaction of its own (waiting at most a second for a query still reading it: that one is
/// left for the next run), and forgets them: all of them, or `only` those on one group. Returns
/// how many went; a failure is a WARNING.
pub(crate) fn cleanup_orphaned(only: Option<i32>) -> TResult<usize> {
    let all = nodes::all()?;
    let addresses = group_nodes(&all);
    let mut done = 0;
    // Groups whose node could not be reached (or did not answer in time) this round: their
    // other records wait for the next one instead of each waiting out the limit again.
    let mut unreachable: Vec<i32> = Vec::new();
    for record in cleanup::pending()? {
        if only.is_some_and(|g| g != record.group) || unreachable.contains(&record.group) {
            continue;
        }
        let drop = format!(
            "BEGIN; SET LOCAL lock_timeout = '1s'; DROP TABLE IF EXISTS {} CASCADE; COMMIT",
            record.object_name
        );
        let outcome = if record.group == tessera_core::node::COORDINATOR_GROUP_ID {
            // Only what the current user may drop (the maintenance worker, a superuser, drops
            // the rest): an error here would end the caller's transaction.
            let mine = Spi::get_one_with_args::<bool>(
                "SELECT coalesce((SELECT pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER')
                                    FROM pg_catalog.pg_class c
                                    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                                   WHERE n.nspname = (pg_catalog.parse_ident($1))[1]
                                     AND c.relname = (pg_catalog.parse_ident($1))[2]), true)",
                &[record.object_name.clone().into()],
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            if !mine {
                continue;
            }
            crate::ddl::run_locally(&format!(
                "DROP TABLE IF EXISTS {} CASCADE",
                record.object_name
            ))
        } else {
            match addresses.get(&record.group) {
                // The node is gone (removed with its shards) or inactive: nothing to drop now.
                None => continue,
                Some(node) => {
                    let task = RemoteTask::new(ConnKey::for_current_session(node), drop)
                        .in_scope(Scope::Autocommit)
                        .within(crate::gucs::maintenance_command_limit());
                    run_tasks(std::slice::from_ref(&task), 1)?
                        .pop()
                        .expect("one task, one outcome")
                        .map(|_| ())
                        .map_err(|e| {
                            if e.is_connection_error() {
                                unreachable.push(record.group);
                            }
                            e.into_tessera()
                        })
                }
            }
        };
        match outcome {
            Ok(()) => {
                cleanup::forget(record.record_id)?;
                done += 1;
            }
            Err(e) => e.warn(),
        }
    }
    Ok(done)
}

/// `CALL citus_cleanup_orphaned_resources()`: drops the old placements of moved shards.
#[pg_extern(sql = false)]
fn citus_cleanup_orphaned_resources() {
    let done = cleanup_orphaned(None).or_report();
    if done > 0 {
        pgrx::notice!("cleaned up {done} orphaned resources");
    }
}

fn no_node(group: i32) -> TesseraError {
    TesseraError::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("no active node serves group {group}"),
    )
    .hint("Activate the group's node with citus_activate_node.")
}

/// The table `relid`'s shard placed on `from`, its definition, and (for a partition of
/// `parent`) where it attaches.
fn item(relid: pg_sys::Oid, from: i32, parent: Option<pg_sys::Oid>) -> TResult<Item> {
    let (schema, name) = crate::pg::nodes::rel_schema_and_name(relid);
    let shard = catalog::shards(relid)?
        .into_iter()
        .find(|s| s.groups.contains(&from))
        .ok_or_else(|| {
            TesseraError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("{schema}.{name} has no shard on group {from}"),
            )
            .hint("Check pg_dist_placement: every table of a distributed schema has its one shard on the schema's node.")
        })?;
    let attach = match parent {
        Some(p) => Some(AttachTo {
            parent: crate::pg::nodes::rel_schema_and_name(p),
            parent_shards: catalog::shards(p)?,
            bound: crate::sharding::ddl::partition_bound(relid)?,
        }),
        None => None,
    };
    // SAFETY: a syscache lookup of a table the caller locked.
    let relkind = unsafe { pg_sys::get_rel_relkind(relid) } as u8;
    Ok(Item {
        relid,
        ddl: TableDdl::load(relid, 0)?,
        shard,
        attach,
        leaf: relkind == pg_sys::RELKIND_RELATION,
    })
}
