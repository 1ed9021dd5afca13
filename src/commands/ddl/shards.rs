//! Statements whose shard form names each shard (and its indexes) by its own name: renaming a
//! distributed table or one of its indexes, moving it to another schema, REINDEX and CLUSTER.
//! Each runs on every placement in the remote transaction, after the local statement.

use pgrx::pg_sys;
use pgrx::spi::quote_identifier;
use tessera_core::sharding::shard_name;

use super::{rel_schema_and_name, Step};
use crate::commands::PerGroup;
use crate::error::TResult;
use crate::metadata::table as catalog;

/// `sql_for(shard id)` on every placement of every shard of `relid`.
fn per_shard(relid: pg_sys::Oid, sql_for: impl Fn(i64) -> String) -> TResult<PerGroup> {
    let mut per_group = PerGroup::new();
    for s in catalog::shards(relid)? {
        let sql = sql_for(s.shard_id);
        for g in &s.groups {
            per_group
                .entry(*g)
                .or_default()
                .push((sql.clone(), Vec::new()));
        }
    }
    Ok(per_group)
}

fn qualified(schema: &str, name: &str, shard_id: i64) -> String {
    format!(
        "{}.{}",
        quote_identifier(schema),
        quote_identifier(shard_name(name, shard_id))
    )
}

/// ALTER TABLE t RENAME TO n: every shard `t_<id>` becomes `n_<id>`.
pub(super) fn rename_table(relid: pg_sys::Oid, new_name: String) -> Step {
    let (schema, old) = rel_schema_and_name(relid);
    Step::Propagate(Box::new(move || {
        super::run_batched(per_shard(relid, |id| {
            format!(
                "ALTER TABLE {} RENAME TO {}",
                qualified(&schema, &old, id),
                quote_identifier(shard_name(&new_name, id))
            )
        })?)
    }))
}

/// ALTER INDEX i RENAME TO n of a distributed table's index: every shard index `i_<id>`
/// becomes `n_<id>` (a constraint the index backs is renamed with it, as here).
pub(super) fn rename_index(table: pg_sys::Oid, index: pg_sys::Oid, new_name: String) -> Step {
    let (schema, old) = rel_schema_and_name(index);
    Step::Propagate(Box::new(move || {
        super::run_batched(per_shard(table, |id| {
            format!(
                "ALTER INDEX {} RENAME TO {}",
                qualified(&schema, &old, id),
                quote_identifier(shard_name(&new_name, id))
            )
        })?)
    }))
}

/// ALTER TABLE t SET SCHEMA s: every shard moves to `s` (made on the workers that lack it).
pub(super) fn set_schema(relid: pg_sys::Oid, new_schema: String) -> Step {
    let (old_schema, table) = rel_schema_and_name(relid);
    Step::Propagate(Box::new(move || {
        let create = super::objects::create_schema_command(&new_schema)?;
        let mut per_group = per_shard(relid, |id| {
            format!(
                "ALTER TABLE {} SET SCHEMA {}",
                qualified(&old_schema, &table, id),
                quote_identifier(&new_schema)
            )
        })?;
        if let Some(create) = create {
            for (g, cmds) in per_group.iter_mut() {
                if *g != tessera_core::node::COORDINATOR_GROUP_ID {
                    cmds.insert(0, (create.clone(), Vec::new()));
                }
            }
        }
        super::run_batched(per_group)
    }))
}

/// REINDEX TABLE t / REINDEX INDEX i of a distributed table: the same on every shard.
pub(super) fn reindex(table: pg_sys::Oid, index: Option<pg_sys::Oid>, verbose: bool) -> Step {
    let (schema, name) = rel_schema_and_name(table);
    let index = index.map(rel_schema_and_name);
    let opts = if verbose { "(VERBOSE) " } else { "" };
    Step::Propagate(Box::new(move || {
        super::run_batched(per_shard(table, |id| match &index {
            Some((s, i)) => format!("REINDEX {opts}INDEX {}", qualified(s, i, id)),
            None => format!("REINDEX {opts}TABLE {}", qualified(&schema, &name, id)),
        })?)
    }))
}

/// CLUSTER t [USING i] of a distributed table: the same on every shard.
pub(super) fn cluster(table: pg_sys::Oid, index: Option<String>) -> Step {
    let (schema, name) = rel_schema_and_name(table);
    Step::Propagate(Box::new(move || {
        super::run_batched(per_shard(table, |id| match &index {
            Some(i) => format!(
                "CLUSTER {} USING {}",
                qualified(&schema, &name, id),
                quote_identifier(shard_name(i, id))
            ),
            None => format!("CLUSTER {}", qualified(&schema, &name, id)),
        })?)
    }))
}
