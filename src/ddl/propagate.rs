//! Propagation helpers: commands carried to the nodes per group (one node each), per shard
//! placement or per shard, in the remote transaction (or in autocommit, or in rounds); the
//! coordinator's own share runs through SPI as Tessera's internal DDL.

use pgrx::prelude::*;

use std::collections::BTreeMap;

use pgrx::spi::Spi;

use crate::connection::Scope;
use crate::connection::{run_tasks, ConnKey, NodeAddress, PgResult, RemoteTask};
use crate::error::{TResult, TesseraError};
use crate::metadata::node::Node;

thread_local! {
    /// Depth of Tessera's own statements on the coordinator's shards (a shard placed on the
    /// coordinator is made through SPI): the DDL event trigger leaves what they make alone.
    static INTERNAL_DDL: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether Tessera itself is running the current DDL (see [`INTERNAL_DDL`]).
pub(crate) fn in_internal_ddl() -> bool {
    INTERNAL_DDL.with(|d| d.get()) > 0
}

/// Runs `f` as Tessera's own DDL.
pub(crate) fn internally<T>(f: impl FnOnce() -> T) -> T {
    struct Depth;
    impl Drop for Depth {
        fn drop(&mut self) {
            INTERNAL_DDL.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    INTERNAL_DDL.with(|d| d.set(d.get() + 1));
    let _depth = Depth;
    f()
}

/// Runs one command on one node (with text parameters) and waits for it, interruptibly.
pub(crate) fn run_on_node(
    node: &NodeAddress,
    sql: &str,
    params: Vec<Option<String>>,
) -> TResult<Vec<PgResult>> {
    let task = RemoteTask::new(ConnKey::for_current_session(node), sql).with_params(params);
    let mut out = run_tasks(std::slice::from_ref(&task), 1)?;
    out.pop()
        .expect("one task, one outcome")
        .map_err(|e| e.into_tessera())
}

/// The single value of a one-row, one-column result, if any.
pub(crate) fn single_value(results: &[PgResult]) -> Option<String> {
    let r = results.last()?;
    if r.ntuples() == 1 && r.nfields() >= 1 {
        r.value(0, 0).map(str::to_owned)
    } else {
        None
    }
}

/// Commands (SQL and text parameters) to run, per group of nodes.
pub(crate) type PerGroup = BTreeMap<i32, Vec<(String, Vec<Option<String>>)>>;

/// The node that serves each group (its active primary).
pub(crate) fn group_nodes(all: &[Node]) -> BTreeMap<i32, NodeAddress> {
    all.iter()
        .filter(|n| n.isactive && n.noderole == "primary")
        .map(|n| (n.groupid, n.address()))
        .collect()
}

/// Runs group 0's (the coordinator's) commands through SPI, in the statement's transaction.
fn run_locally(commands: Vec<(String, Vec<Option<String>>)>) -> TResult<()> {
    for (sql, params) in commands {
        let args: Vec<pgrx::datum::DatumWithOid> = params.into_iter().map(|p| p.into()).collect();
        internally(|| Spi::run_with_args(&sql, &args))?;
    }
    Ok(())
}

/// The node that serves `group`, or the error that says none does.
pub(crate) fn serving(addresses: &BTreeMap<i32, NodeAddress>, group: i32) -> TResult<&NodeAddress> {
    addresses.get(&group).ok_or_else(|| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("no active node serves group {group}"),
        )
        .hint("Activate the group's node with citus_activate_node.")
    })
}

/// Runs one command per node in the remote transaction, all nodes at once; group 0 (the
/// coordinator) runs locally through SPI instead.
pub(crate) fn run_per_group(per_group: PerGroup, all: &[Node]) -> TResult<()> {
    run_per_group_in(per_group, all, Scope::Transaction)
}

/// [`run_per_group`] with the remote commands in `scope` (autocommit for commands that cannot
/// run in a transaction block, such as VACUUM).
pub(crate) fn run_per_group_in(per_group: PerGroup, all: &[Node], scope: Scope) -> TResult<()> {
    let settings = std::rc::Rc::new(crate::connection::Settings::session());
    // Tasks for one node run one after another on its transaction connection (run_tasks
    // keeps them in order); different nodes run at once.
    run_per_group_with(per_group, all, |node, commands| {
        commands
            .into_iter()
            .map(|(sql, params)| {
                node_task(
                    ConnKey::for_current_session(node),
                    sql,
                    params,
                    scope,
                    &settings,
                )
            })
            .collect()
    })
}

/// Runs commands that cannot run in a transaction block (`CREATE INDEX CONCURRENTLY`) on the
/// nodes in autocommit, at most `per_node` at a time on each node and every node at once: in
/// rounds, each taking the next `per_node` commands of every node. Group 0 (the coordinator)
/// runs its commands through SPI, in the statement's transaction, as given, after the others.
pub(crate) fn run_per_group_in_rounds(
    mut per_group: PerGroup,
    all: &[Node],
    per_node: usize,
) -> TResult<()> {
    let addresses = group_nodes(all);
    let per_node = per_node.max(1);
    let settings = std::rc::Rc::new(crate::connection::Settings::session());
    let local = per_group
        .remove(&tessera_core::node::COORDINATOR_GROUP_ID)
        .unwrap_or_default();
    let mut queues = Vec::new();
    for (group, commands) in per_group {
        queues.push((serving(&addresses, group)?.clone(), commands));
    }
    let mut round = 0;
    loop {
        let mut tasks = Vec::new();
        for (node, commands) in &queues {
            for (sql, params) in commands.iter().skip(round * per_node).take(per_node) {
                tasks.push(node_task(
                    ConnKey::for_current_session(node),
                    sql.clone(),
                    params.clone(),
                    Scope::Autocommit,
                    &settings,
                ));
            }
        }
        if tasks.is_empty() {
            break;
        }
        run_all(&tasks)?;
        round += 1;
    }
    // The coordinator's placements last: their locks are held until the statement ends, so
    // they are taken when nothing else is left to wait for.
    run_locally(local)
}

/// Runs each node's commands in the remote transaction spread over up to `per_node`
/// connections to it ([`ConnKey::lane`]: each its own remote transaction, committed with the
/// others), every connection's share as one command string, every connection of every node at
/// once. Only for a statement that is its whole transaction (outside a transaction block, not
/// from a function): a later command on the session's connection would wait for the locks
/// another connection's transaction holds until the commit. Group 0 (the coordinator) runs its
/// commands through SPI first.
pub(crate) fn run_per_group_in_lanes(
    per_group: PerGroup,
    all: &[Node],
    per_node: usize,
) -> TResult<()> {
    let settings = std::rc::Rc::new(crate::connection::Settings::session());
    run_per_group_with(per_group, all, |node, commands| {
        let lanes = per_node.clamp(1, commands.len().max(1));
        let mut shares: Vec<Vec<String>> = vec![Vec::new(); lanes];
        for (i, (sql, _)) in commands.into_iter().enumerate() {
            shares[i % lanes].push(sql);
        }
        shares
            .into_iter()
            .enumerate()
            .map(|(lane, share)| {
                node_task(
                    ConnKey::for_current_session(node).in_lane(lane as u16),
                    share.join(";\n"),
                    Vec::new(),
                    Scope::Transaction,
                    &settings,
                )
            })
            .collect()
    })
}

/// Runs group 0's (the coordinator's) commands through SPI first, then, every node at once,
/// the tasks `tasks_for` makes of each other group's commands for the node that serves it.
fn run_per_group_with(
    per_group: PerGroup,
    all: &[Node],
    mut tasks_for: impl FnMut(&NodeAddress, Vec<(String, Vec<Option<String>>)>) -> Vec<RemoteTask>,
) -> TResult<()> {
    let addresses = group_nodes(all);
    let mut tasks = Vec::new();
    for (group, commands) in per_group {
        if group == tessera_core::node::COORDINATOR_GROUP_ID {
            run_locally(commands)?;
            continue;
        }
        tasks.extend(tasks_for(serving(&addresses, group)?, commands));
    }
    run_all(&tasks)
}

/// A propagated command for a node: the node reads the statement's text as the session would
/// (`DEFAULT '02/01/2026'`, a time zone in a CHECK constraint).
fn node_task(
    key: ConnKey,
    sql: String,
    params: Vec<Option<String>>,
    scope: Scope,
    settings: &std::rc::Rc<crate::connection::Settings>,
) -> RemoteTask {
    RemoteTask::new(key, sql)
        .with_params(params)
        .in_scope(scope)
        .with_settings(settings.clone())
}

/// Runs `tasks` all at once; the first failure is the error.
fn run_all(tasks: &[RemoteTask]) -> TResult<()> {
    for r in run_tasks(tasks, tasks.len())? {
        r.map_err(|e| e.into_tessera())?;
    }
    Ok(())
}

/// Adds, for every shard of `relid`, the command `sql_for(qualified shard object)` on every node
/// that holds a placement of it. `object` names the per-shard object: the table itself, or one
/// of its indexes (named `<index>_<shardid>` on shards).
pub(crate) fn push_per_placement(
    per_group: &mut PerGroup,
    relid: pg_sys::Oid,
    schema: &str,
    object: &str,
    sql_for: impl Fn(&str) -> String,
) -> TResult<()> {
    push_per_shard(per_group, relid, schema, object, |_, _, shard| {
        Ok(vec![sql_for(shard)])
    })
}

/// Adds, for every shard of `relid`, the commands `sql_for(position, shard id, qualified shard
/// object)` makes, on every node that holds a placement of it (the per-shard object named as in
/// [`push_per_placement`]).
pub(crate) fn push_per_shard(
    per_group: &mut PerGroup,
    relid: pg_sys::Oid,
    schema: &str,
    object: &str,
    mut sql_for: impl FnMut(usize, i64, &str) -> TResult<Vec<String>>,
) -> TResult<()> {
    for (index, s) in crate::metadata::table::shards(relid)?
        .into_iter()
        .enumerate()
    {
        let qualified = crate::sharding::qualified_shard(schema, object, s.shard_id);
        let commands = sql_for(index, s.shard_id, &qualified)?;
        for g in &s.groups {
            per_group
                .entry(*g)
                .or_default()
                .extend(commands.iter().map(|c| (c.clone(), Vec::new())));
        }
    }
    Ok(())
}

/// The groups of the active primary nodes (only those that take shards, if `shard_holders`),
/// in group order.
pub(crate) fn active_groups(all: &[Node], shard_holders: bool) -> Vec<i32> {
    let mut groups: Vec<i32> = all
        .iter()
        .filter(|n| n.isactive && n.noderole == "primary" && (n.shouldhaveshards || !shard_holders))
        .map(|n| n.groupid)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}
