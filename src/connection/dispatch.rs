//! Running commands on many nodes at once.
//!
//! [`run_tasks`] drives one state machine per task (connect → send → flush → read) over
//! non-blocking libpq connections, all in one loop that sleeps in a [`WaitSet`] until a socket
//! is ready or the latch is set. Nothing here blocks on the network except libpq's short
//! cancel exchange. On a pending cancel or termination the loop serves the interrupt, which
//! raises an ERROR; unwinding drops the connections, and each one still running a command
//! cancels it on its node first.

use std::time::{Duration, Instant};

use pgrx::check_for_interrupts;

use super::cache;
use super::libpq::{ConnectPoll, Connection, PgResult, ResultKind};
use super::wait::{cancel_pending, Interest, WaitSet};
use super::{ConnKey, RemoteError};
use crate::error::TesseraError;
use crate::gucs;

/// One command for one node. Parameters travel as text values, never spliced into `sql`.
#[derive(Debug, Clone)]
pub struct RemoteTask {
    pub key: ConnKey,
    pub sql: String,
    pub params: Vec<Option<String>>,
}

impl RemoteTask {
    pub fn new(key: ConnKey, sql: impl Into<String>) -> RemoteTask {
        RemoteTask {
            key,
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    pub fn with_params(mut self, params: Vec<Option<String>>) -> RemoteTask {
        self.params = params;
        self
    }
}

/// The results of one task's command, or the error that ended it.
pub type TaskResult = Result<Vec<PgResult>, RemoteError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Opening; waiting for the socket as `PQconnectPoll` asked.
    Connecting(Interest),
    /// Connected; the command is not sent yet.
    Send,
    /// Sent, output not all flushed.
    Flush,
    /// Waiting for results.
    Read,
}

struct Slot {
    task: usize,
    key: ConnKey,
    conn: Connection,
    phase: Phase,
    /// When the connection attempt gives up (only while connecting).
    deadline: Option<Instant>,
    results: Vec<PgResult>,
}

/// What one step of a slot's state machine came to.
enum Step {
    Wait(Interest),
    Finished(TaskResult),
}

/// Runs every task, at most `max_parallel` at a time (at least one), and returns their
/// outcomes in task order. Raises an ERROR only for interrupts (cancel, timeout, shutdown) and
/// for a bad `citus.node_conninfo`; a node's failure is that task's `Err`.
pub fn run_tasks(
    tasks: &[RemoteTask],
    max_parallel: usize,
) -> Result<Vec<TaskResult>, TesseraError> {
    let max_parallel = max_parallel.max(1);
    let mut outcomes: Vec<Option<TaskResult>> = (0..tasks.len()).map(|_| None).collect();
    let mut active: Vec<Slot> = Vec::new();
    let mut next = 0;
    let mut waits: Vec<(std::ffi::c_int, Interest)> = Vec::new();
    let mut set: Option<WaitSet> = None;
    let mut ready: Vec<bool> = Vec::new();
    let timeout = Duration::from_millis(gucs::node_connection_timeout_ms().max(1) as u64);

    loop {
        // Start tasks while there is room.
        while active.len() < max_parallel && next < tasks.len() {
            let t = &tasks[next];
            match start(next, t, timeout)? {
                Ok(slot) => active.push(slot),
                Err(e) => outcomes[next] = Some(Err(e)),
            }
            next += 1;
        }
        if active.is_empty() {
            break;
        }

        // Step every slot that is ready (or has never waited), collect what each waits for.
        ready.resize(active.len(), true);
        let mut new_waits = Vec::with_capacity(active.len());
        let mut still = Vec::with_capacity(active.len());
        for (mut slot, is_ready) in active.drain(..).zip(ready.drain(..)) {
            let task = slot.task;
            let step = if is_ready {
                advance(&mut slot, &tasks[task])
            } else {
                Step::Wait(waiting_for(slot.phase))
            };
            match step {
                Step::Wait(interest) => {
                    if let Some(d) = slot.deadline {
                        if Instant::now() >= d {
                            outcomes[slot.task] = Some(Err(RemoteError::connection(
                                slot.conn.node(),
                                format!(
                                    "timeout expired after {} ms (citus.node_connection_timeout)",
                                    timeout.as_millis()
                                ),
                            )));
                            continue;
                        }
                    }
                    new_waits.push((slot.conn.socket(), interest));
                    still.push(slot);
                }
                Step::Finished(result) => {
                    let task = slot.task;
                    if result.is_ok()
                        || !result.as_ref().is_err_and(RemoteError::is_connection_error)
                    {
                        cache::put_back(slot.key, slot.conn);
                    }
                    outcomes[task] = Some(result);
                }
            }
        }
        active = still;
        if active.is_empty() {
            continue; // start more, or finish
        }

        if set.is_none() || new_waits != waits {
            set = Some(WaitSet::new(&new_waits));
            waits = new_waits;
        }
        let wait_ms = active
            .iter()
            .filter_map(|s| s.deadline)
            .map(|d| d.saturating_duration_since(Instant::now()).as_millis() as i64 + 1)
            .min()
            .unwrap_or(-1);
        let wake = set.as_mut().expect("wait set built above").wait(wait_ms);
        if wake.latch || cancel_pending() {
            // Serving a cancel raises an ERROR; unwinding drops `active`, which cancels the
            // commands still running on the nodes.
            check_for_interrupts!();
        }
        ready = vec![false; active.len()];
        for idx in wake.ready {
            if idx < ready.len() {
                ready[idx] = true;
            }
        }
        // A slot whose deadline passed must be looked at even if its socket is quiet.
        for (k, s) in active.iter().enumerate() {
            if s.deadline.is_some_and(|d| Instant::now() >= d) {
                ready[k] = true;
            }
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every task has an outcome"))
        .collect())
}

/// Takes a cached connection for the task, or starts opening one.
fn start(
    task: usize,
    t: &RemoteTask,
    timeout: Duration,
) -> Result<Result<Slot, RemoteError>, TesseraError> {
    if let Some(conn) = cache::take(&t.key) {
        return Ok(Ok(Slot {
            task,
            key: t.key.clone(),
            conn,
            phase: Phase::Send,
            deadline: None,
            results: Vec::new(),
        }));
    }
    let params = t.key.params()?;
    Ok(Connection::start(&t.key.node, &params).map(|conn| Slot {
        task,
        key: t.key.clone(),
        conn,
        // libpq: after PQconnectStart, wait until the socket is writable, then poll.
        phase: Phase::Connecting(Interest::Write),
        deadline: Some(Instant::now() + timeout),
        results: Vec::new(),
    }))
}

fn waiting_for(phase: Phase) -> Interest {
    match phase {
        Phase::Connecting(i) => i,
        Phase::Flush => Interest::Write,
        Phase::Send | Phase::Read => Interest::Read,
    }
}

/// Moves a slot forward as far as it goes without waiting.
fn advance(slot: &mut Slot, task: &RemoteTask) -> Step {
    loop {
        match slot.phase {
            Phase::Connecting(_) => match slot.conn.poll_connect() {
                ConnectPoll::Read => {
                    slot.phase = Phase::Connecting(Interest::Read);
                    return Step::Wait(Interest::Read);
                }
                ConnectPoll::Write => {
                    slot.phase = Phase::Connecting(Interest::Write);
                    return Step::Wait(Interest::Write);
                }
                ConnectPoll::Ready => {
                    slot.deadline = None;
                    slot.phase = Phase::Send;
                }
                ConnectPoll::Failed => {
                    return Step::Finished(Err(RemoteError::connection(
                        slot.conn.node(),
                        slot.conn.error_message(),
                    )))
                }
            },
            Phase::Send => {
                if let Err(e) = slot.conn.send_query(&task.sql, &task.params) {
                    return Step::Finished(Err(e));
                }
                slot.phase = Phase::Flush;
            }
            Phase::Flush => match slot.conn.flush() {
                Ok(true) => slot.phase = Phase::Read,
                Ok(false) => return Step::Wait(Interest::Write),
                Err(e) => return Step::Finished(Err(e)),
            },
            Phase::Read => {
                if let Err(e) = slot.conn.consume_input() {
                    return Step::Finished(Err(e));
                }
                while !slot.conn.is_busy() {
                    match slot.conn.next_result() {
                        Some(r) => slot.results.push(r),
                        None => return Step::Finished(finish(slot)),
                    }
                }
                return Step::Wait(Interest::Read);
            }
        }
    }
}

/// The task's outcome once the connection reported the command complete.
fn finish(slot: &mut Slot) -> TaskResult {
    let results = std::mem::take(&mut slot.results);
    if let Some(err) = results.iter().find(|r| r.kind() == ResultKind::Error) {
        return Err(err.error(slot.conn.node()));
    }
    Ok(results)
}
