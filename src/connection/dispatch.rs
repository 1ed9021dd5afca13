//! Running commands on many nodes at once.
//!
//! [`Dispatch`] drives one state machine per task (connect → send → flush → read) over
//! non-blocking libpq connections, all in one loop that sleeps in a [`WaitSet`] until a socket
//! is ready or the latch is set; [`run_tasks`] runs a list of tasks to the end, and a
//! streaming SELECT takes its rows one by one as they arrive (single-row mode). Nothing here blocks on the network except libpq's short
//! cancel exchange. On a pending cancel or termination the loop serves the interrupt, which
//! raises an ERROR; unwinding drops the connections, and each one still running a command
//! cancels it on its node first.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use pgrx::check_for_interrupts;
use pgrx::pg_sys;

use super::cache;
use super::libpq::{ConnectPoll, Connection, PgResult, ResultKind};
use super::wait::{cancel_pending, Interest, WaitSet};
use super::{remote_transactions, ConnKey, RemoteError, Scope};
use crate::error::TesseraError;
use crate::gucs;

mod pipeline;

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
    /// The data of a `COPY ... FROM STDIN` command (COPY text format), sent when the node
    /// asks for it.
    pub copy_data: Option<std::rc::Rc<Vec<u8>>>,
    /// Hand the rows out one by one as they arrive ([`Dispatch::next_row`]) instead of
    /// keeping the whole result. For one SELECT statement.
    pub stream: bool,
    /// The coordinator session's settings the node's session must have before the command
    /// runs (set first when the connection has others).
    pub settings: Option<std::rc::Rc<super::Settings>>,
    /// The command only reads: in a remote transaction, a node that only read commits
    /// one-phase (no PREPARE) whatever the others did.
    pub read_only: bool,
    /// How long the task may take, connecting included, and the setting that says so (named
    /// in the error): a node that has not finished by then fails the task, and its connection
    /// is closed. None: as long as it takes (the session's statement_timeout still applies).
    pub limit: Option<(Duration, &'static str)>,
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
            copy_data: None,
            stream: false,
            settings: None,
            read_only: false,
            limit: None,
        }
    }

    /// Limits the task's time (see [`RemoteTask::limit`]).
    pub fn within(mut self, limit: Option<(Duration, &'static str)>) -> RemoteTask {
        self.limit = limit;
        self
    }

    /// The command only reads (see [`RemoteTask::read_only`]).
    pub fn reading_only(mut self, read_only: bool) -> RemoteTask {
        self.read_only = read_only;
        self
    }

    /// Runs the command under the coordinator session's settings (`super::Settings`).
    pub fn with_settings(mut self, settings: std::rc::Rc<super::Settings>) -> RemoteTask {
        self.settings = Some(settings);
        self
    }

    pub fn streaming(mut self, stream: bool) -> RemoteTask {
        self.stream = stream;
        self
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
    /// When the task's own limit ([`RemoteTask::limit`]) runs out.
    limit_at: Option<Instant>,
    results: Vec<PgResult>,
    /// Commands the remote transaction needs before the task's own (BEGIN and the open
    /// savepoints for a node the transaction has not used yet; savepoints made, released or
    /// rolled back since its last command otherwise), sent as one string first.
    preamble: Option<String>,
    /// The command in flight is that preamble.
    preamble_in_flight: bool,
    /// The command in flight prepares the task's statement under this name.
    prepare_in_flight: Option<String>,
    /// The command in flight sets the task's session settings.
    settings_in_flight: bool,
    /// The command was just queued (Phase::Send): once its last byte is flushed, its
    /// completion (ReadyForQuery, which the node sends only after it has read that byte) can
    /// only come over the socket, so the slot waits for the socket before its first read
    /// instead of a read that would find nothing. Not after COPY data: a node that fails a
    /// COPY answers before it has read all of it, and libpq may read that answer while it
    /// sends the data.
    after_send: bool,
    /// Tasks queued behind this one for the same remote transaction, sent with it in one
    /// pipeline ([`pipeline`]), in order.
    more: Vec<usize>,
    /// Their outcomes, once the pipeline is read.
    others: Vec<(usize, TaskResult)>,
    /// The pipeline in flight.
    pipeline: Option<pipeline::Pipeline>,
}

/// What one step of a slot's state machine came to.
enum Step {
    Wait,
    Finished(TaskResult),
}

/// Runs every task, at most `max_parallel` at a time (at least one), and returns their
/// outcomes in task order. Raises an ERROR only for interrupts (cancel, timeout, shutdown) and
/// for a bad `citus.node_conninfo`; a node's failure is that task's `Err`.
pub fn run_tasks(
    tasks: &[RemoteTask],
    max_parallel: usize,
) -> Result<Vec<TaskResult>, TesseraError> {
    Dispatch::start(tasks.to_vec(), max_parallel).finish()
}

/// Tasks in flight: one state machine per task (connect → send → flush → read), all driven
/// by one loop that sleeps in a [`WaitSet`]. [`Dispatch::finish`] runs them to the end;
/// [`Dispatch::next_row`] hands out the rows of streaming tasks as they arrive, so a caller
/// can use them before the last node answers and never holds a whole result.
///
/// Dropping a dispatch with tasks still running cancels them on their nodes and closes their
/// connections; [`Dispatch::abandon`] stops them too but keeps the connections.
pub struct Dispatch {
    tasks: Vec<RemoteTask>,
    max_parallel: usize,
    outcomes: Vec<Option<TaskResult>>,
    active: Vec<Slot>,
    /// Tasks not started yet, in order. A transactional task waits while another task of the
    /// same connection key is running: one node's remote transaction has one connection, and
    /// its commands must see each other's effects.
    pending: Vec<usize>,
    /// What the wait set waits for: (connection id, socket, interest) per active slot.
    waits: Vec<WaitKey>,
    set: Option<WaitSet>,
    /// Which active slots to step next (all of them before the first wait).
    ready: Vec<bool>,
    /// The slots have been stepped since the last wait: the next round waits first.
    stepped: bool,
    timeout: Duration,
    /// Rows of streaming tasks not handed out yet: (task, one-row result).
    rows: VecDeque<(usize, PgResult)>,
    /// Rows that arrive are dropped (the caller stopped reading).
    discard_rows: bool,
    /// While abandoning: when to cancel the commands still running again.
    recancel_at: Option<Instant>,
}

/// What one socket of a wait set is waited for: (connection id, socket, interest).
type WaitKey = (u64, std::ffi::c_int, Interest);

/// How many wait sets are kept for later dispatches.
const SPARE_SETS: usize = 8;

thread_local! {
    /// The wait sets of the last dispatches (newest last), kept for the next ones: a statement
    /// that waits on the same connections (a router query on one of its cached connections,
    /// one per node) reuses one instead of making an epoll set and closing it again.
    static SPARE: RefCell<Vec<(Vec<WaitKey>, WaitSet)>> = const { RefCell::new(Vec::new()) };
}

/// A kept wait set that waits for exactly `waits`.
fn take_spare(waits: &[WaitKey]) -> Option<WaitSet> {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        let i = s.iter().position(|(w, _)| w.as_slice() == waits)?;
        Some(s.remove(i).1)
    })
}

/// Keeps `set` for later dispatches (the oldest kept one is freed when there are many).
fn keep_spare(waits: Vec<WaitKey>, set: WaitSet) {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() >= SPARE_SETS {
            s.remove(0);
        }
        s.push((waits, set));
    });
}

impl Drop for Dispatch {
    fn drop(&mut self) {
        // The remote transaction's commands still running go with their connections.
        for slot in &self.active {
            if self.tasks[slot.task].scope == Scope::Transaction {
                remote_transactions().lost(&slot.key);
            }
        }
        if let Some(set) = self.set.take() {
            keep_spare(std::mem::take(&mut self.waits), set);
        }
    }
}

thread_local! {
    /// Dispatches whose caller stopped with an error while their commands still ran in the
    /// remote transaction ([`park`]).
    static PARKED: RefCell<Vec<Dispatch>> = const { RefCell::new(Vec::new()) };
}

/// Keeps a dispatch whose caller stopped while its commands still run in the remote
/// transaction (a COPY whose input failed inside a savepoint, with a batch still loading):
/// before the transaction's next command, [`settle_parked`] lets those commands end and gives
/// their connections back to the transaction, whose savepoint rollback then undoes them.
/// Dropped instead, the dispatch would close the connections and the transaction could not
/// go on. No network traffic and no palloc here: safe in abort callbacks.
pub fn park(dispatch: Dispatch) {
    PARKED.with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            p.push(dispatch);
        }
    });
}

/// Lets the parked dispatches' commands end (their tasks not started yet are dropped).
pub fn settle_parked() -> Result<(), TesseraError> {
    loop {
        let Some(mut d) = PARKED.with(|p| p.borrow_mut().pop()) else {
            return Ok(());
        };
        d.pending.clear();
        d.rows.clear();
        d.discard_rows = true;
        while !d.done() {
            d.round()?;
        }
    }
}

/// Whether a parked dispatch waits to be settled (its nodes are in the remote transaction).
pub fn has_parked() -> bool {
    PARKED.with(|p| p.try_borrow().is_ok_and(|p| !p.is_empty()))
}

/// Drops the parked dispatches (the transaction ended: their connections close).
pub fn forget_parked() {
    PARKED.with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            p.clear();
        }
    });
}

/// How often an abandoned command is cancelled again while it has not ended.
const RECANCEL_EVERY: Duration = Duration::from_millis(200);

impl Dispatch {
    /// Starts the tasks (as many as `max_parallel` allows); nothing waits yet.
    pub fn start(tasks: Vec<RemoteTask>, max_parallel: usize) -> Dispatch {
        let n = tasks.len();
        Dispatch {
            tasks,
            max_parallel: max_parallel.max(1),
            outcomes: (0..n).map(|_| None).collect(),
            active: Vec::new(),
            pending: (0..n).collect(),
            waits: Vec::new(),
            set: None,
            ready: Vec::new(),
            stepped: false,
            timeout: Duration::from_millis(gucs::node_connection_timeout_ms().max(1) as u64),
            rows: VecDeque::new(),
            discard_rows: false,
            recancel_at: None,
        }
    }

    /// Sends the tasks' commands (as many as may run) without waiting for any answer, so the
    /// caller can work while the nodes do; [`Dispatch::finish`] then collects the outcomes.
    pub fn send(&mut self) -> Result<(), TesseraError> {
        if !self.stepped {
            self.round()?;
        }
        Ok(())
    }

    /// Moves the tasks forward as far as they go without waiting: what the nodes answered is
    /// read and the next tasks are sent. For a caller that does its own work between steps
    /// (a COPY that parses its next rows while the nodes load the last ones).
    pub fn poll(&mut self) -> Result<(), TesseraError> {
        if self.stepped {
            self.wait(Some(0))?;
        }
        self.start_pending()?;
        self.step_ready();
        Ok(())
    }

    /// Every task has ended (its rows may still wait in the queue).
    pub fn done(&self) -> bool {
        self.active.is_empty() && self.pending.is_empty()
    }

    /// Runs the tasks to the end and returns their outcomes in task order.
    pub fn finish(mut self) -> Result<Vec<TaskResult>, TesseraError> {
        while !self.done() {
            self.round()?;
        }
        Ok(std::mem::take(&mut self.outcomes)
            .into_iter()
            .map(|o| o.expect("every task has an outcome"))
            .collect())
    }

    /// The next row of a streaming task, waiting for one if none is queued; `None` when every
    /// task has ended. The first task that fails ends the stream with its error.
    pub fn next_row(&mut self) -> Result<Option<(usize, PgResult)>, TesseraError> {
        loop {
            if let Some(row) = self.rows.pop_front() {
                return Ok(Some(row));
            }
            if let Some(i) = self.outcomes.iter().position(|o| matches!(o, Some(Err(_)))) {
                let Some(Err(e)) = self.outcomes[i].take() else {
                    unreachable!("matched above")
                };
                self.outcomes[i] = Some(Ok(Vec::new()));
                return Err(e.into_tessera());
            }
            if self.done() {
                return Ok(None);
            }
            self.round()?;
        }
    }

    /// Stops reading: what has already arrived is read, commands still running are cancelled
    /// on their nodes, their remaining output is drained, and the connections go back to the
    /// cache (a remote transaction's connection back to the transaction). Tasks not started
    /// are dropped.
    pub fn abandon(mut self) -> Result<(), TesseraError> {
        self.pending.clear();
        self.rows.clear();
        self.discard_rows = true;
        // Read what the sockets already hold: a command that has ended needs no cancel.
        self.ready = vec![true; self.active.len()];
        self.step_ready();
        self.cancel_reading();
        // A cancel that reaches a node before its backend has read the command is ignored
        // there: ask again until the command ends.
        self.recancel_at = Some(Instant::now() + RECANCEL_EVERY);
        while !self.done() {
            self.round()?;
            if self.recancel_at.is_some_and(|t| Instant::now() >= t) {
                self.cancel_reading();
                self.recancel_at = Some(Instant::now() + RECANCEL_EVERY);
            }
        }
        Ok(())
    }

    /// Cancels the commands still running outside a remote transaction.
    fn cancel_reading(&self) {
        for slot in &self.active {
            if slot.phase == Phase::Read && self.tasks[slot.task].scope == Scope::Autocommit {
                slot.conn.cancel();
            }
        }
    }

    /// One turn of the loop: wait if the slots were stepped, then start tasks while there is
    /// room and step every ready slot as far as it goes.
    fn round(&mut self) -> Result<(), TesseraError> {
        if self.stepped {
            self.wait(None)?;
        }
        self.start_pending()?;
        self.step_ready();
        Ok(())
    }

    fn start_pending(&mut self) -> Result<(), TesseraError> {
        let parked = PARKED.with(|p| !p.borrow().is_empty());
        if parked
            && self
                .pending
                .iter()
                .any(|&i| self.tasks[i].scope == Scope::Transaction)
        {
            settle_parked()?;
        }
        let mut i = 0;
        while self.active.len() < self.max_parallel && i < self.pending.len() {
            let t = &self.tasks[self.pending[i]];
            let key_busy = t.scope == Scope::Transaction
                && self
                    .active
                    .iter()
                    .any(|s| s.key == t.key && self.tasks[s.task].scope == Scope::Transaction);
            if key_busy {
                i += 1;
                continue;
            }
            let idx = self.pending.remove(i);
            match start(idx, &self.tasks[idx], self.timeout)? {
                Ok(mut slot) => {
                    // The commands queued for the same remote transaction go with it, in
                    // order, up to the first one of its connection that cannot join.
                    let first = &self.tasks[idx];
                    if pipeline::fits(first) {
                        let mut bytes = pipeline::size(first);
                        let mut taken = vec![false; self.pending.len()];
                        for (j, &k) in self.pending.iter().enumerate().skip(i) {
                            let t = &self.tasks[k];
                            if t.scope != Scope::Transaction || t.key != first.key {
                                continue;
                            }
                            if !pipeline::joins(first, t)
                                || !pipeline::has_room(slot.more.len() + 1, bytes, t)
                            {
                                break;
                            }
                            bytes += pipeline::size(t);
                            slot.more.push(k);
                            taken[j] = true;
                        }
                        if !slot.more.is_empty() {
                            let mut j = 0;
                            self.pending.retain(|_| {
                                j += 1;
                                !taken[j - 1]
                            });
                        }
                    }
                    self.active.push(slot);
                    self.ready.push(true);
                }
                Err(e) => self.outcomes[idx] = Some(Err(e)),
            }
        }
        Ok(())
    }

    /// Steps every slot that is ready (or has never waited) and notes what each waits for.
    fn step_ready(&mut self) {
        self.ready.resize(self.active.len(), true);
        let mut still = Vec::with_capacity(self.active.len());
        let active = std::mem::take(&mut self.active);
        let ready = std::mem::take(&mut self.ready);
        for (mut slot, is_ready) in active.into_iter().zip(ready) {
            let task = slot.task;
            let step = if is_ready {
                advance(&mut slot, &self.tasks, &mut self.rows, self.discard_rows)
            } else {
                Step::Wait
            };
            match step {
                Step::Wait => {
                    let now = Instant::now();
                    let expired = if slot.deadline.is_some_and(|d| now >= d) {
                        Some(format!(
                            "timeout expired after {} ms (citus.node_connection_timeout)",
                            self.timeout.as_millis()
                        ))
                    } else if slot.limit_at.is_some_and(|d| now >= d) {
                        self.tasks[task].limit.map(|(l, setting)| {
                            format!(
                                "the node did not finish the command within {} ms ({setting})",
                                l.as_millis()
                            )
                        })
                    } else {
                        None
                    };
                    if let Some(message) = expired {
                        if self.tasks[task].scope == Scope::Transaction {
                            remote_transactions().lost(&slot.key);
                        }
                        // Dropped with the slot: the connection (mid-command) is cancelled
                        // without waiting and closed.
                        let e = RemoteError::connection(slot.conn.node(), message);
                        for m in std::mem::take(&mut slot.more) {
                            self.outcomes[m] = Some(Err(e.clone()));
                        }
                        self.outcomes[task] = Some(Err(e));
                        continue;
                    }
                    still.push(slot);
                }
                Step::Finished(result) => {
                    let t = &self.tasks[task];
                    // The tasks that went in the same pipeline: their outcomes, or (the
                    // pipeline ended early) the error that ended it.
                    let mut others = std::mem::take(&mut slot.others).into_iter();
                    let more = std::mem::take(&mut slot.more);
                    let wrote = std::iter::once(task)
                        .chain(more.iter().copied())
                        .any(|i| !self.tasks[i].read_only);
                    for &m in &more {
                        self.outcomes[m] = Some(match others.next() {
                            Some((_, outcome)) => outcome,
                            None => Err(result.as_ref().err().cloned().unwrap_or_else(|| {
                                RemoteError::connection_lost(
                                    slot.conn.node(),
                                    "the node did not answer a command",
                                )
                            })),
                        });
                    }
                    // A connection left in pipeline mode (never expected) is not used again.
                    if !result.as_ref().is_err_and(RemoteError::is_connection_error)
                        && !slot.conn.in_pipeline()
                    {
                        match t.scope {
                            // Even after an error: the local abort closes it.
                            Scope::Transaction if !t.ends_transaction => {
                                remote_transactions().keep(slot.key, slot.conn, wrote)
                            }
                            // A cancel still on its way would hit the next command: such
                            // a connection is closed instead.
                            _ if slot.conn.settle_cancel() => cache::put_back(slot.key, slot.conn),
                            _ => {}
                        }
                    } else if t.scope == Scope::Transaction {
                        remote_transactions().lost(&slot.key);
                    }
                    self.outcomes[task] = Some(result);
                }
            }
        }
        self.active = still;
        self.ready = vec![false; self.active.len()];
        self.stepped = true;
    }

    /// Sleeps until a socket of an active slot is ready, the latch is set, or a connection
    /// deadline passes (or `at_most` milliseconds); serves interrupts.
    fn wait(&mut self, at_most: Option<i64>) -> Result<(), TesseraError> {
        self.stepped = false;
        if self.active.is_empty() {
            return Ok(());
        }
        let new_waits: Vec<WaitKey> = self
            .active
            .iter()
            .map(|s| (s.conn.id(), s.conn.socket(), waiting_for(s)))
            .collect();
        if self.set.is_none() || new_waits != self.waits {
            let set = match take_spare(&new_waits) {
                Some(set) => set,
                None => {
                    let sockets: Vec<(std::ffi::c_int, Interest)> =
                        new_waits.iter().map(|w| (w.1, w.2)).collect();
                    WaitSet::new(&sockets)
                }
            };
            // The set it replaces may serve a later dispatch.
            if let Some(old) = self.set.replace(set) {
                keep_spare(std::mem::replace(&mut self.waits, new_waits), old);
            } else {
                self.waits = new_waits;
            }
        }
        let wait_ms = self
            .active
            .iter()
            .filter_map(Slot::due)
            .chain(self.recancel_at)
            .map(|d| d.saturating_duration_since(Instant::now()).as_millis() as i64 + 1)
            .chain(at_most)
            .min()
            .unwrap_or(-1);
        let wake = self
            .set
            .as_mut()
            .expect("wait set built above")
            .wait(wait_ms);
        if wake.latch || cancel_pending() {
            if cancel_pending() && crate::pg::victims::take_mine() {
                // The deadlock detector's cancel: this transaction is the one given up. The
                // error, as a served cancel's, drops the dispatch, which cancels the commands
                // still running on the nodes.
                // SAFETY: clearing the flag the cancel set, as serving it would.
                unsafe { pg_sys::QueryCancelPending = 0 };
                return Err(TesseraError::new(
                    pgrx::PgSqlErrorCode::ERRCODE_T_R_DEADLOCK_DETECTED,
                    "canceling the transaction since it was involved in a distributed deadlock",
                )
                .hint("Roll back and retry the transaction. Transactions that lock rows on several nodes in the same order never deadlock."));
            }
            // A background worker asked to stop (its SIGTERM handler sets this flag, which
            // serving interrupts does not look at): the commands are dropped with the dispatch.
            // SAFETY: reading a flag a signal handler sets.
            if unsafe { std::ptr::read_volatile(&raw const pg_sys::ShutdownRequestPending) } != 0 {
                return Err(TesseraError::new(
                    pgrx::PgSqlErrorCode::ERRCODE_ADMIN_SHUTDOWN,
                    "stopping the work on the nodes: this process is shutting down",
                ));
            }
            // Serving a cancel raises an ERROR; unwinding drops the dispatch, which cancels
            // the commands still running on the nodes.
            check_for_interrupts!();
        }
        self.ready = vec![false; self.active.len()];
        for idx in wake.ready {
            if idx < self.ready.len() {
                self.ready[idx] = true;
            }
        }
        // A slot whose deadline passed must be looked at even if its socket is quiet.
        for (k, s) in self.active.iter().enumerate() {
            let now = Instant::now();
            if s.due().is_some_and(|d| now >= d) {
                self.ready[k] = true;
            }
        }
        Ok(())
    }
}

/// Takes a cached connection for the task, or starts opening one.
fn start(
    task: usize,
    t: &RemoteTask,
    timeout: Duration,
) -> Result<Result<Slot, RemoteError>, TesseraError> {
    let mut preamble = None;
    if t.scope == Scope::Transaction {
        match remote_transactions().enter(&t.key) {
            Err(lost) => return Ok(Err(RemoteError::connection_lost(&t.key.node, lost))),
            Ok((Some(conn), pending)) => {
                return Ok(Ok(Slot::new(task, t, conn, Phase::Send, None, pending)));
            }
            Ok((None, begin)) if !t.ends_transaction => preamble = begin,
            Ok((None, _)) => {}
        }
    }
    if let Some(conn) = cache::take(&t.key) {
        return Ok(Ok(Slot::new(task, t, conn, Phase::Send, None, preamble)));
    }
    let params = match t.key.params() {
        Ok(params) => params,
        Err(e) => {
            if t.scope == Scope::Transaction {
                remote_transactions().lost(&t.key);
            }
            return Err(e);
        }
    };
    let started = Connection::start(&t.key.node, &params);
    if started.is_err() && t.scope == Scope::Transaction {
        remote_transactions().lost(&t.key);
    }
    Ok(started.map(|conn| {
        // libpq: after PQconnectStart, wait until the socket is writable, then poll.
        let phase = Phase::Connecting(Interest::Write);
        Slot::new(
            task,
            t,
            conn,
            phase,
            Some(Instant::now() + timeout),
            preamble,
        )
    }))
}

impl Slot {
    /// The earlier of the connection attempt's deadline and the task's limit.
    fn due(&self) -> Option<Instant> {
        [self.deadline, self.limit_at].into_iter().flatten().min()
    }

    fn new(
        task: usize,
        t: &RemoteTask,
        conn: Connection,
        phase: Phase,
        deadline: Option<Instant>,
        preamble: Option<String>,
    ) -> Slot {
        Slot {
            task,
            key: t.key.clone(),
            conn,
            phase,
            deadline,
            limit_at: t.limit.map(|(l, _)| Instant::now() + l),
            results: Vec::new(),
            preamble,
            preamble_in_flight: false,
            prepare_in_flight: None,
            settings_in_flight: false,
            after_send: false,
            more: Vec::new(),
            others: Vec::new(),
            pipeline: None,
        }
    }
}

fn waiting_for(slot: &Slot) -> Interest {
    match slot.phase {
        Phase::Connecting(i) => i,
        // A node runs a pipeline's first commands while the rest is still on its way, and
        // stops reading when its answers are not read: wait for either.
        Phase::Flush if slot.pipeline.is_some() => Interest::ReadWrite,
        Phase::Flush => Interest::Write,
        Phase::Send | Phase::Read => Interest::Read,
    }
}

/// Moves a slot forward as far as it goes without waiting.
fn advance(
    slot: &mut Slot,
    tasks: &[RemoteTask],
    rows: &mut VecDeque<(usize, PgResult)>,
    discard_rows: bool,
) -> Step {
    let task = &tasks[slot.task];
    'outer: loop {
        match slot.phase {
            Phase::Connecting(_) => match slot.conn.poll_connect() {
                ConnectPoll::Read => {
                    slot.phase = Phase::Connecting(Interest::Read);
                    return Step::Wait;
                }
                ConnectPoll::Write => {
                    slot.phase = Phase::Connecting(Interest::Write);
                    return Step::Wait;
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
                slot.after_send = true;
                if pipeline::wanted(slot, tasks) {
                    if let Err(e) = pipeline::send(slot, tasks) {
                        return Step::Finished(Err(e));
                    }
                    // Its answers may all have been read while it was sent: read first.
                    slot.after_send = false;
                    slot.phase = Phase::Flush;
                    continue;
                }
                let stale = stale_settings(&slot.conn, task);
                let sent = if let Some(pre) = &slot.preamble {
                    slot.preamble_in_flight = true;
                    slot.conn.send_query(pre, &[], &[])
                } else if let Some(want) = stale {
                    slot.settings_in_flight = true;
                    let unknown = slot.conn.settings_or_ever_set();
                    let have = slot.conn.settings.as_deref().or(unknown.as_ref());
                    let (sql, values) = want.command(have);
                    slot.conn.send_query(&sql, &values, &[])
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
                if task.stream
                    && !slot.preamble_in_flight
                    && !slot.settings_in_flight
                    && slot.prepare_in_flight.is_none()
                {
                    slot.conn.set_single_row_mode();
                }
                slot.phase = Phase::Flush;
            }
            Phase::Flush => {
                // A pipeline's node may be waiting for its answers to be read before it reads
                // more: read what came (libpq keeps it for the results), then send.
                if slot.pipeline.is_some() {
                    if let Err(e) = slot.conn.consume_input() {
                        return Step::Finished(Err(e));
                    }
                }
                match slot.conn.flush() {
                    Ok(true) if std::mem::take(&mut slot.after_send) => {
                        slot.phase = Phase::Read;
                        return Step::Wait;
                    }
                    Ok(true) => slot.phase = Phase::Read,
                    Ok(false) => return Step::Wait,
                    Err(e) => return Step::Finished(Err(e)),
                }
            }
            Phase::Read => {
                if slot.pipeline.is_some() {
                    return pipeline::read(slot, tasks);
                }
                if let Err(e) = slot.conn.consume_input() {
                    return Step::Finished(Err(e));
                }
                loop {
                    if slot.conn.is_busy() {
                        return Step::Wait;
                    }
                    match slot.conn.next_result() {
                        Some(r) if r.is_single_row() => {
                            if !discard_rows {
                                rows.push_back((slot.task, r));
                            }
                        }
                        Some(r) if r.is_copy_in() => {
                            // The node waits for the COPY data: send it all, then the end.
                            let data = task.copy_data.as_deref().map_or(&[][..], |d| &d[..]);
                            slot.after_send = false;
                            if let Err(e) = slot.conn.put_copy_data(data) {
                                return Step::Finished(Err(e));
                            }
                            slot.phase = Phase::Flush;
                            continue 'outer;
                        }
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
                if slot.settings_in_flight && outcome.is_ok() {
                    // The node's session now has the settings: now the command itself.
                    slot.settings_in_flight = false;
                    slot.conn.settings_set(task.settings.clone());
                    slot.phase = Phase::Send;
                    continue;
                }
                if slot.preamble_in_flight && outcome.is_ok() {
                    // The transaction block is open and its savepoints are in place: now the
                    // command itself.
                    slot.preamble_in_flight = false;
                    if slot
                        .preamble
                        .as_deref()
                        .is_some_and(|p| p.contains("ROLLBACK TO SAVEPOINT"))
                    {
                        // It undid the settings set since the savepoint.
                        slot.conn.forget_settings();
                    }
                    slot.preamble = None;
                    slot.phase = Phase::Send;
                    continue;
                }
                return Step::Finished(outcome);
            }
        }
    }
}

/// The task's settings, if the connection's session does not have them yet.
fn stale_settings<'t>(
    conn: &Connection,
    task: &'t RemoteTask,
) -> Option<&'t std::rc::Rc<super::Settings>> {
    task.settings.as_ref().filter(|want| {
        !conn
            .settings
            .as_ref()
            .is_some_and(|have| std::rc::Rc::ptr_eq(have, want) || have == *want)
    })
}

/// The task's outcome once the connection reported the command complete.
fn finish(slot: &mut Slot) -> TaskResult {
    let results = std::mem::take(&mut slot.results);
    if let Some(err) = results.iter().find(|r| r.kind() == ResultKind::Error) {
        return Err(err.error(slot.conn.node()));
    }
    Ok(results)
}
