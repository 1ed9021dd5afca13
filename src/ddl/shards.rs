//! Statements whose shard form names each shard (and its indexes) by its own name: renaming a
//! distributed table or one of its indexes, moving it to another schema, REINDEX and CLUSTER.
//! Each runs on every placement in the remote transaction, after the local statement.

use pgrx::pg_sys;
use pgrx::spi::quote_identifier;
use tessera_core::sharding::shard_name;

use super::{rel_schema_and_name, Step};
use crate::ddl::propagate::{push_per_shard, PerGroup};
use crate::error::TResult;

/// `sql_for(shard id, the shard's qualified `object`)` on every placement of every shard of
/// `relid`.
fn per_shard(
    relid: pg_sys::Oid,
    schema: &str,
    object: &str,
    sql_for: impl Fn(i64, &str) -> String,
) -> TResult<PerGroup> {
    let mut per_group = PerGroup::new();
    push_per_shard(&mut per_group, relid, schema, object, |_, id, shard| {
        Ok(vec![sql_for(id, shard)])
    })?;
    Ok(per_group)
}

/// ALTER TABLE t RENAME TO n: every shard `t_<id>` becomes `n_<id>`.
pub(super) fn rename_table(relid: pg_sys::Oid, new_name: String) -> Step {
    let (schema, old) = rel_schema_and_name(relid);
    Step::Propagate(Box::new(move || {
        super::run_batched(per_shard(relid, &schema, &old, |id, shard| {
            format!(
                "ALTER TABLE {shard} RENAME TO {}",
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
        super::run_batched(per_shard(table, &schema, &old, |id, shard| {
            format!(
                "ALTER INDEX {shard} RENAME TO {}",
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
        let mut per_group = per_shard(relid, &old_schema, &table, |_, shard| {
            format!(
                "ALTER TABLE {shard} SET SCHEMA {}",
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
    // An index lives in its table's schema; the shard index is `<index>_<shardid>`.
    let (schema, name) = rel_schema_and_name(table);
    let (kind, object) = match index {
        Some(i) => ("INDEX", rel_schema_and_name(i).1),
        None => ("TABLE", name),
    };
    let opts = if verbose { "(VERBOSE) " } else { "" };
    Step::Propagate(Box::new(move || {
        super::run_batched(per_shard(table, &schema, &object, |_, shard| {
            format!("REINDEX {opts}{kind} {shard}")
        })?)
    }))
}

/// CLUSTER t [USING i] of a distributed table: the same on every shard.
pub(super) fn cluster(table: pg_sys::Oid, index: Option<String>) -> Step {
    let (schema, name) = rel_schema_and_name(table);
    Step::Propagate(Box::new(move || {
        super::run_batched(per_shard(
            table,
            &schema,
            &name,
            |id, shard| match &index {
                Some(i) => format!(
                    "CLUSTER {shard} USING {}",
                    quote_identifier(shard_name(i, id))
                ),
                None => format!("CLUSTER {shard}"),
            },
        )?)
    }))
}
