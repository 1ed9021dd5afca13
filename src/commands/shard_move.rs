//! Moving shards between nodes: the shard move engine's first mode, `block_writes`, used by
//! `citus_schema_move` (online moves over logical replication come with rebalancing).
//!
//! [`move_tables`] moves the one placement on group `from` of each of some single-shard
//! tables (a colocation group's, together) to group `to`, inside the caller's transaction:
//! 1. the tables are locked against writes (EXCLUSIVE: reads go on, through the coordinator);
//! 2. each shard is made on the target (a partition attached to its parent's new shard);
//! 3. the rows travel from the source's shard through the coordinator in batches (a cursor on
//!    the source, multi-row INSERTs of JSON on the target), each table after the tables it
//!    references; then the foreign keys are made on the target;
//! 4. the placements point at the target, and the source's shards are dropped.
//!
//! All remote work runs in the remote transaction: an error rolls back every node and the
//! catalog. Until two-phase commit lands, the commit itself is one-phase per node.

use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::spi::Spi;

use super::distribute::AttachTo;
use super::{group_nodes, run_per_group, PerGroup};
use crate::connection::{run_tasks, ConnKey, NodeAddress, PgResult, RemoteTask, Scope, Settings};
use crate::error::{TResult, TesseraError};
use crate::metadata::node as nodes;
use crate::metadata::table::{self as catalog, Shard};
use crate::sharding::ddl::TableDdl;

/// Rows per batch from the source.
const BATCH_ROWS: usize = 5_000;

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
        for partition in super::partitions::partitions_of(relid)? {
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
        moved += copy_rows(&source, to, &it.ddl, it.shard.shard_id, it.relid, &all)?;
    }
    for it in &items {
        let Some(dist) = catalog::find(it.relid)? else {
            continue;
        };
        let shards = vec![Shard {
            groups: vec![to],
            ..it.shard.clone()
        }];
        super::distribute::add_foreign_keys(&it.ddl, &dist, &shards, &all)?;
    }
    // 4. The catalog, and the old shards (a partition's go with its parent's).
    let shard_ids: Vec<i64> = items.iter().map(|i| i.shard.shard_id).collect();
    let relids: Vec<pg_sys::Oid> = items.iter().map(|i| i.relid).collect();
    catalog::move_placements(&shard_ids, &relids, from, to)?;
    let mut drops = Vec::new();
    for it in items.iter().rev() {
        drops.push((
            format!(
                "DROP TABLE IF EXISTS {} CASCADE",
                it.ddl.qualified_shard(it.shard.shard_id)
            ),
            Vec::new(),
        ));
    }
    let mut per_group = PerGroup::new();
    per_group.insert(from, drops);
    run_per_group(per_group, &all)?;
    pgrx::notice!(
        "moved {} tables ({moved} rows); the old shards are dropped",
        items.len()
    );
    Ok(())
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

/// One command on `node` in the remote transaction, its values printed exactly.
fn on_source(node: &NodeAddress, sql: &str) -> TResult<Vec<PgResult>> {
    let task = RemoteTask::new(ConnKey::for_current_session(node), sql)
        .in_scope(Scope::Transaction)
        .with_settings(Rc::new(Settings::for_statement(false, false)));
    let mut out = run_tasks(std::slice::from_ref(&task), 1)?;
    out.pop()
        .expect("one task, one outcome")
        .map_err(|e| e.into_tessera())
}

/// Copies the rows of shard `shard_id` from `source` to group `to`, in batches; returns how
/// many.
fn copy_rows(
    source: &NodeAddress,
    to: i32,
    ddl: &TableDdl,
    shard_id: i64,
    relid: pg_sys::Oid,
    all: &[crate::metadata::node::Node],
) -> TResult<i64> {
    let shard = ddl.qualified_shard(shard_id);
    let cols = Spi::get_one_with_args::<String>(
        "SELECT string_agg(pg_catalog.quote_ident(attname), ', ' ORDER BY attnum)
           FROM pg_catalog.pg_attribute
          WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''",
        &[relid.into()],
    )?
    .unwrap_or_default();
    let insert = format!(
        "INSERT INTO {shard} ({cols}) SELECT {cols} FROM pg_catalog.json_populate_recordset(NULL::{shard}, $1::json)"
    );
    on_source(
        source,
        &format!(
            "DECLARE tessera_move NO SCROLL CURSOR FOR SELECT pg_catalog.row_to_json(t.*)::text FROM ONLY {shard} t"
        ),
    )?;
    let mut moved = 0i64;
    loop {
        let results = on_source(source, &format!("FETCH {BATCH_ROWS} FROM tessera_move"))?;
        let Some(r) = results.last() else { break };
        let n = r.ntuples();
        if n == 0 {
            break;
        }
        let mut json = String::with_capacity(n * 64);
        json.push('[');
        for i in 0..n {
            if i > 0 {
                json.push(',');
            }
            json.push_str(r.value(i, 0).unwrap_or("null"));
        }
        json.push(']');
        let mut per_group = PerGroup::new();
        per_group.insert(to, vec![(insert.clone(), vec![Some(json)])]);
        run_per_group(per_group, all)?;
        moved += n as i64;
    }
    on_source(source, "CLOSE tessera_move")?;
    Ok(moved)
}
