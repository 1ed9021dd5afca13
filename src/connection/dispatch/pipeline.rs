//! Several commands for one node in one round trip: libpq's pipeline mode.
//!
//! A slot whose command goes in the extended protocol sends what must come before it (the
//! remote transaction's BEGIN and savepoint commands, the session settings, the Parse of a
//! statement it prepares) and the commands of the tasks queued behind it for the same remote
//! transaction, all at once with one sync point at the end, then reads their results in
//! order. One by one, each of those would be a round trip: a transaction's first command on
//! a node costs two, and a 500-row INSERT over the 8 shards a node holds costs nine.
//!
//! What the node does is what it does for the commands sent one by one: it runs them in
//! order, and an error skips the rest up to the sync point. A skipped task fails with that
//! error, as it would have failed in the aborted transaction block. Outside a transaction
//! block the commands up to the sync point run in one implicit transaction, so a failure
//! also undoes the settings sent with them: the connection then forgets its settings, and
//! the next task sends them all.

use std::collections::VecDeque;

use super::{stale_settings, RemoteTask, Slot, Step, TaskResult, MAX_PREPARED_PER_CONNECTION};
use crate::connection::libpq::{PgResult, ResultKind};
use crate::connection::{RemoteError, Scope};

/// The tasks one pipeline carries at most (the slot's own and those queued behind it).
pub(super) const MAX_BATCH: usize = 64;

/// One command of a pipeline, in the order the node answers.
enum Sent {
    /// A command the remote transaction needs first (BEGIN, SAVEPOINT, RELEASE, ROLLBACK TO).
    Preamble,
    /// The session settings.
    Settings,
    /// The Parse of a task's statement under a name.
    Parse { sql: String, name: String },
    /// The command of the slot's `k`-th task (0: its own, then [`Slot::more`]).
    Command(usize),
}

/// A pipeline in flight.
#[derive(Default)]
pub(super) struct Pipeline {
    /// What was sent and is not answered yet, in order.
    sent: VecDeque<Sent>,
    /// The results of the command being read.
    current: Vec<PgResult>,
    /// The first error: the commands skipped after it fail with it.
    failed: Option<RemoteError>,
    /// The settings were sent with the commands.
    settings_sent: bool,
    /// Each task's outcome, once its command is answered.
    outcomes: Vec<Option<TaskResult>>,
}

/// Whether `t`'s command can go in a pipeline: one statement in the extended protocol (it
/// has parameters), no COPY data, its rows not streamed, not the transaction's end, in a
/// remote transaction block.
///
/// Only in a transaction block: outside one, the commands up to a sync point are one implicit
/// transaction that commits at the sync, so an error there (a deferred constraint) would come
/// after the last command's answer, and the settings would commit or roll back with the
/// command (and PostgreSQL refuses some commands after another one in a pipeline).
pub(super) fn fits(t: &RemoteTask) -> bool {
    t.scope == Scope::Transaction
        && !t.params.is_empty()
        && t.copy_data.is_none()
        && !t.stream
        && !t.ends_transaction
        && libpq_has_pipelines()
}

/// libpq 15 or later: pipeline mode with the results this module reads (a `None` after each
/// command's results, the sync point's result after the last).
fn libpq_has_pipelines() -> bool {
    thread_local! {
        static HAS: bool = crate::connection::libpq::version() >= 150000;
    }
    HAS.with(|h| *h)
}

/// The parameter bytes one pipeline carries at most (libpq holds all of it until sent).
const MAX_BATCH_BYTES: usize = 1 << 20;

/// The parameter bytes of `t`.
pub(super) fn size(t: &RemoteTask) -> usize {
    t.sql.len()
        + t.params
            .iter()
            .map(|p| p.as_ref().map_or(1, |v| v.len() + 1))
            .sum::<usize>()
}

/// Whether a batch of `bytes` so far, holding `tasks` tasks, may take `t` too.
pub(super) fn has_room(tasks: usize, bytes: usize, t: &RemoteTask) -> bool {
    tasks < MAX_BATCH && bytes + size(t) <= MAX_BATCH_BYTES
}

/// Whether `t` may join the pipeline of `first`'s slot: the next command of the same remote
/// transaction, under the same settings.
pub(super) fn joins(first: &RemoteTask, t: &RemoteTask) -> bool {
    t.key == first.key
        && fits(t)
        // A task's time limit is its own slot's.
        && t.limit.is_none()
        && first.limit.is_none()
        && match (&first.settings, &t.settings) {
            (Some(a), Some(b)) => std::rc::Rc::ptr_eq(a, b) || a == b,
            (None, None) => true,
            _ => false,
        }
}

/// Whether the slot has more than its command to send, and its command fits a pipeline.
pub(super) fn wanted(slot: &Slot, tasks: &[RemoteTask]) -> bool {
    let t = &tasks[slot.task];
    fits(t)
        && (!slot.more.is_empty()
            || slot.preamble.is_some()
            || stale_settings(&slot.conn, t).is_some()
            || (t.prepare
                && slot.conn.prepared_name(&t.sql).is_none()
                && slot.conn.prepared_count() < MAX_PREPARED_PER_CONNECTION))
}

/// Queues the slot's commands in one pipeline, ended by a sync point; the caller flushes.
pub(super) fn send(slot: &mut Slot, tasks: &[RemoteTask]) -> Result<(), RemoteError> {
    let conn = &mut slot.conn;
    conn.enter_pipeline()?;
    let mut p = Pipeline::default();
    if let Some(pre) = slot.preamble.take() {
        if pre.contains("ROLLBACK TO SAVEPOINT") {
            // It undoes the settings set since the savepoint: send them all again.
            conn.forget_settings();
        }
        // The preamble's commands are ours, and none holds a semicolon of its own.
        for stmt in pre.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            conn.send_statement(stmt)?;
            p.sent.push_back(Sent::Preamble);
        }
    }
    let first = &tasks[slot.task];
    if let Some(want) = stale_settings(conn, first) {
        let unknown = conn.settings_or_ever_set();
        let have = conn.settings.as_deref().or(unknown.as_ref());
        let (sql, values) = want.command(have);
        conn.send_query(&sql, &values, &[])?;
        p.sent.push_back(Sent::Settings);
        p.settings_sent = true;
    }
    // Statements whose Parse is in this pipeline: (SQL, name).
    let mut parsing: Vec<(String, String)> = Vec::new();
    for (k, &i) in std::iter::once(&slot.task).chain(&slot.more).enumerate() {
        let t = &tasks[i];
        let name = if t.prepare {
            let known = conn.prepared_name(&t.sql).or_else(|| {
                parsing
                    .iter()
                    .find(|(sql, _)| *sql == t.sql)
                    .map(|(_, n)| n.clone())
            });
            match known {
                Some(name) => Some(name),
                None if conn.prepared_count() + parsing.len() < MAX_PREPARED_PER_CONNECTION => {
                    let name = format!("tessera_{}", conn.prepared_count() + parsing.len() + 1);
                    conn.send_prepare(&name, &t.sql, &t.param_types)?;
                    p.sent.push_back(Sent::Parse {
                        sql: t.sql.clone(),
                        name: name.clone(),
                    });
                    parsing.push((t.sql.clone(), name.clone()));
                    Some(name)
                }
                None => None,
            }
        } else {
            None
        };
        match name {
            Some(name) => conn.send_query_prepared(&name, &t.params)?,
            None => conn.send_query(&t.sql, &t.params, &t.param_types)?,
        }
        p.sent.push_back(Sent::Command(k));
    }
    conn.pipeline_sync()?;
    p.outcomes = (0..=slot.more.len()).map(|_| None).collect();
    slot.pipeline = Some(p);
    Ok(())
}

/// Reads what the node answered so far; once the sync point's result is in, the slot's own
/// task is finished and the others' outcomes are in [`Slot::others`].
pub(super) fn read(slot: &mut Slot, tasks: &[RemoteTask]) -> Step {
    if let Err(e) = slot.conn.consume_input() {
        return Step::Finished(Err(e));
    }
    let Slot {
        task,
        conn,
        pipeline,
        more,
        others,
        ..
    } = slot;
    let p = pipeline.as_mut().expect("a pipeline in flight");
    loop {
        if conn.is_busy() {
            return Step::Wait;
        }
        match conn.next_pipeline_result() {
            Some(r) if r.is_pipeline_sync() => break,
            Some(r) => p.current.push(r),
            None if conn.is_broken() || p.sent.is_empty() => {
                // The connection failed (libpq then ends every command with nothing), or the
                // node's answers do not match what was sent: the connection goes.
                let message = match conn.error_message() {
                    m if m.is_empty() => {
                        "the node's answers to a pipeline of commands did not match the commands"
                            .to_string()
                    }
                    m => m,
                };
                return Step::Finished(Err(RemoteError::connection_lost(conn.node(), message)));
            }
            None => {
                let sent = p.sent.pop_front().expect("checked above");
                let results = std::mem::take(&mut p.current);
                let skipped = results.iter().any(PgResult::is_pipeline_aborted);
                let error = results
                    .iter()
                    .find(|r| r.kind() == ResultKind::Error)
                    .map(|r| r.error(conn.node()));
                if let Some(e) = &error {
                    p.failed.get_or_insert_with(|| e.clone());
                }
                let ok = error.is_none() && !skipped;
                match sent {
                    Sent::Preamble => {}
                    Sent::Settings if ok => conn.settings_set(tasks[*task].settings.clone()),
                    Sent::Settings => {}
                    Sent::Parse { sql, name } if ok => conn.remember_prepared(&sql, &name),
                    Sent::Parse { .. } => {}
                    Sent::Command(k) => {
                        p.outcomes[k] = Some(match error {
                            Some(e) => Err(e),
                            None if skipped => Err(skipped_error(p, conn.node())),
                            None => Ok(results),
                        })
                    }
                }
            }
        }
    }
    if let Err(e) = conn.exit_pipeline() {
        return Step::Finished(Err(e));
    }
    let mut p = pipeline.take().expect("a pipeline in flight");
    // An error with the sync point itself (none is expected inside a transaction block) fails
    // every command of the pipeline.
    if let Some(e) = p
        .current
        .iter()
        .find(|r| r.kind() == ResultKind::Error)
        .map(|r| r.error(conn.node()))
    {
        p.failed.get_or_insert(e.clone());
        for o in &mut p.outcomes {
            if matches!(o, Some(Ok(_)) | None) {
                *o = Some(Err(e.clone()));
            }
        }
    }
    if p.failed.is_some() && p.settings_sent {
        conn.forget_settings();
    }
    let mut outcomes = p.outcomes.into_iter().map(|o| {
        o.unwrap_or_else(|| {
            Err(p.failed.clone().unwrap_or_else(|| {
                RemoteError::connection_lost(conn.node(), "the node did not answer a command")
            }))
        })
    });
    let own = outcomes.next().expect("the slot's own task");
    *others = more.iter().copied().zip(outcomes).collect();
    Step::Finished(own)
}

/// The error of a command the node skipped: the error that made it skip.
fn skipped_error(p: &Pipeline, node: &crate::connection::NodeAddress) -> RemoteError {
    p.failed.clone().unwrap_or_else(|| {
        RemoteError::connection_lost(node, "the node skipped the command after an error")
    })
}
