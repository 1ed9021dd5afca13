//! `run_command_on_workers` and `run_command_on_all_nodes`: one command on many nodes, all at
//! once, each node's outcome a row (success flag and result text). A node that cannot be
//! reached is a row with `success = false`, not an error: the call returns within
//! `citus.node_connection_timeout`.

use pgrx::prelude::*;
use tessera_core::command_result::{summarize, Outcome};

use crate::connection::{run_tasks, ConnKey, RemoteTask, TaskResult};
use crate::error::{OrReport, TResult};
use crate::metadata::node::{self as catalog, Node};

/// The outcome of a task as the `(success, result)` pair Citus shows.
fn outcome_of(result: &TaskResult) -> (bool, String) {
    let outcome = match result {
        Err(e) => Outcome::Error {
            message: e.message.clone(),
        },
        Ok(results) => match results.last() {
            None => Outcome::Command { tag: String::new() },
            Some(r) if r.nfields() == 0 => Outcome::Command {
                tag: r.command_tag(),
            },
            Some(r) => Outcome::Rows {
                columns: r.nfields(),
                rows: r.ntuples(),
                first: (r.ntuples() > 0).then(|| r.value(0, 0).map(str::to_owned)),
            },
        },
    };
    summarize(&outcome)
}

/// Runs `command` on `nodes` and returns each node with its outcome, in node order.
fn run_on_nodes(
    nodes: Vec<Node>,
    command: &str,
    parallel: bool,
) -> TResult<Vec<(Node, TaskResult)>> {
    // Under the session's settings, so that a statement's own settings for its shard queries
    // (`enable_sort` off for a nearest-neighbour search) never reach the user's command.
    let settings = std::rc::Rc::new(crate::connection::Settings::session());
    let tasks: Vec<RemoteTask> = nodes
        .iter()
        .map(|n| {
            RemoteTask::new(ConnKey::for_current_session(&n.address()), command)
                .with_settings(settings.clone())
        })
        .collect();
    let width = if parallel { tasks.len() } else { 1 };
    let results = run_tasks(&tasks, width)?;
    Ok(nodes.into_iter().zip(results).collect())
}

#[pg_extern(sql = false)]
fn run_command_on_workers(
    command: &str,
    parallel: bool,
) -> TableIterator<
    'static,
    (
        name!(nodename, String),
        name!(nodeport, i32),
        name!(success, bool),
        name!(result, String),
    ),
> {
    let rows = (|| -> TResult<Vec<_>> {
        let nodes = catalog::active_primaries(false)?;
        Ok(run_on_nodes(nodes, command, parallel)?
            .into_iter()
            .map(|(n, r)| {
                let (ok, text) = outcome_of(&r);
                (n.nodename, n.nodeport, ok, text)
            })
            .collect())
    })()
    .or_report();
    TableIterator::new(rows)
}

#[pg_extern(sql = false)]
fn run_command_on_all_nodes(
    command: &str,
    parallel: bool,
    give_warning_for_connection_errors: bool,
) -> TableIterator<
    'static,
    (
        name!(nodeid, i32),
        name!(success, bool),
        name!(result, String),
    ),
> {
    let rows = (|| -> TResult<Vec<_>> {
        let nodes = catalog::active_primaries(true)?;
        Ok(run_on_nodes(nodes, command, parallel)?
            .into_iter()
            .map(|(n, r)| {
                if let Err(e) = &r {
                    if give_warning_for_connection_errors && e.is_connection_error() {
                        e.clone().into_tessera().warn();
                    }
                }
                let (ok, text) = outcome_of(&r);
                (n.nodeid, ok, text)
            })
            .collect())
    })()
    .or_report();
    TableIterator::new(rows)
}
