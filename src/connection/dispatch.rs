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
use crate::transaction::{self, Scope};

/// One command for one node. Parameters travel as text values, never spliced into `sql`;
/// a command without parameters may hold several statements.
#[derive(Debug, Clone)]
pub struct RemoteTask {
    pub key: ConnKey,
    pub sql: String,
    pub params: Vec<Option<String>>,
    /// Type OIDs of the parameters (0: the node infers it); empty: all inferred.
    pub param_types: Vec<u32>,
    /// Prepare the command on the connection (once) and run the prepared statement: the
    /// node then parses and plans it once, not per call. For commands with parameters.
    pub prepare: bool,
    pub scope: Scope,
    /// This command ends the remote transaction (COMMIT): the connection goes back to the
    /// idle cache afterwards.
    pub ends_transaction: bool,
}

impl RemoteTask {
    pub fn new(key: ConnKey, sql: impl Into<String>) -> RemoteTask {
        RemoteTask {
            key,
            sql: sql.into(),
            params: Vec::new(),
            param_types: Vec::new(),
            prepare: false,
            scope: Scope::Autocommit,
            ends_transaction: false,
        }
    }

    pub fn in_scope(mut self, scope: Scope) -> RemoteTask {
        self.scope = scope;
        self
    }

    pub fn ending_transaction(mut self) -> RemoteTask {
        self.ends_transaction = true;
        self
    }

    pub fn with_params(mut self, params: Vec<Option<String>>) -> RemoteTask {
        self.params = params;
        self
    }

    pub fn prepared(mut self, prepare: bool) -> RemoteTask {
        self.prepare = prepare;
        self
    }

    pub fn with_param_types(mut self, types: Vec<u32>) -> RemoteTask {
        self.param_types = types;
        self
    }
}

/// Statements a connection keeps prepared at most; later commands run unprepared.
const MAX_PREPARED_PER_CONNECTION: usize = 1000;

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
    /// The remote transaction block is not open yet: send BEGIN before the command.
    begin_needed: bool,
    /// The command in flight is that BEGIN.
    begin_in_flight: bool,
    /// The command in flight prepares the task's statement under this name.
    prepare_in_flight: Option<String>,
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
    // Tasks not started yet, in order. A transactional task waits while another task of the
    // same connection key is running: one node's remote transaction has one connection, and
    // its commands must see each other's effects.
    let mut pending: Vec<usize> = (0..tasks.len()).collect();
    let mut waits: Vec<(std::ffi::c_int, Interest)> = Vec::new();
    let mut set: Option<WaitSet> = None;
    let mut ready: Vec<bool> = Vec::new();
    let timeout = Duration::from_millis(gucs::node_connection_timeout_ms().max(1) as u64);

    loop {
        // Start tasks while there is room.
        let mut i = 0;
        while active.len() < max_parallel && i < pending.len() {
            let t = &tasks[pending[i]];
            let key_busy = t.scope == Scope::Transaction
                && active
                    .iter()
                    .any(|s| s.key == t.key && tasks[s.task].scope == Scope::Transaction);
            if key_busy {
                i += 1;
                continue;
            }
            let idx = pending.remove(i);
            match start(idx, t, timeout)? {
                Ok(slot) => active.push(slot),
                Err(e) => outcomes[idx] = Some(Err(e)),
            }
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
                    let t = &tasks[slot.task];
                    let idx = slot.task;
                    if !result.as_ref().is_err_and(RemoteError::is_connection_error) {
                        match t.scope {
                            // Even after an error: the local abort closes it.
                            Scope::Transaction if !t.ends_transaction => {
                                transaction::give_back(slot.key, slot.conn)
                            }
                            _ => cache::put_back(slot.key, slot.conn),
                        }
                    }
                    outcomes[idx] = Some(result);
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
    let mut begin_needed = false;
    if t.scope == Scope::Transaction {
        transaction::note_work();
        if let Some(conn) = transaction::take(&t.key) {
            return Ok(Ok(Slot::new(task, t, conn, Phase::Send, None, false)));
        }
        begin_needed = !t.ends_transaction;
    }
    if let Some(conn) = cache::take(&t.key) {
        return Ok(Ok(Slot::new(
            task,
            t,
            conn,
            Phase::Send,
            None,
            begin_needed,
        )));
    }
    let params = t.key.params()?;
    Ok(Connection::start(&t.key.node, &params).map(|conn| {
        // libpq: after PQconnectStart, wait until the socket is writable, then poll.
        let phase = Phase::Connecting(Interest::Write);
        Slot::new(
            task,
            t,
            conn,
            phase,
            Some(Instant::now() + timeout),
            begin_needed,
        )
    }))
}

impl Slot {
    fn new(
        task: usize,
        t: &RemoteTask,
        conn: Connection,
        phase: Phase,
        deadline: Option<Instant>,
        begin_needed: bool,
    ) -> Slot {
        Slot {
            task,
            key: t.key.clone(),
            conn,
            phase,
            deadline,
            results: Vec::new(),
            begin_needed,
            begin_in_flight: false,
            prepare_in_flight: None,
        }
    }
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
                let sent = if slot.begin_needed {
                    slot.begin_in_flight = true;
                    slot.conn.send_query("BEGIN", &[], &[])
                } else if task.prepare && !task.params.is_empty() {
                    match slot.conn.prepared_name(&task.sql) {
                        Some(name) => slot.conn.send_query_prepared(&name, &task.params),
                        None if slot.conn.prepared_count() < MAX_PREPARED_PER_CONNECTION => {
                            let name = format!("tessera_{}", slot.conn.prepared_count() + 1);
                            let sent = slot.conn.send_prepare(&name, &task.sql, &task.param_types);
                            slot.prepare_in_flight = Some(name);
                            sent
                        }
                        None => slot
                            .conn
                            .send_query(&task.sql, &task.params, &task.param_types),
                    }
                } else {
                    slot.conn
                        .send_query(&task.sql, &task.params, &task.param_types)
                };
                if let Err(e) = sent {
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
                loop {
                    if slot.conn.is_busy() {
                        return Step::Wait(Interest::Read);
                    }
                    match slot.conn.next_result() {
                        Some(r) => slot.results.push(r),
                        None => break,
                    }
                }
                let outcome = finish(slot);
                if let Some(name) = slot.prepare_in_flight.take() {
                    if outcome.is_ok() {
                        // Prepared: now run it.
                        slot.conn.remember_prepared(&task.sql, &name);
                        slot.phase = Phase::Send;
                        continue;
                    }
                }
                if slot.begin_in_flight && outcome.is_ok() {
                    // The transaction block is open: now the command itself.
                    slot.begin_in_flight = false;
                    slot.begin_needed = false;
                    slot.phase = Phase::Send;
                    continue;
                }
                return Step::Finished(outcome);
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
