//! A safe Rust type over libpq's `PGconn` and `PGresult`: ownership frees them, nothing else
//! in Tessera calls libpq directly.

use std::ffi::{c_int, CStr, CString};
use std::ptr::NonNull;

use libpq_sys as pq;

use super::{NodeAddress, RemoteError};
use tessera_core::conninfo::ConnParams;

/// What `PQconnectPoll` asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectPoll {
    Read,
    Write,
    Ready,
    Failed,
}

/// The keywords and values of a conninfo string, read by libpq's own parser
/// (`PQconninfoParse`: `keyword=value` pairs with quoting, or a `postgresql://` URI; unknown
/// keywords are errors). Only the keywords the string sets are returned.
pub fn parse_conninfo(conninfo: &str) -> Result<Vec<(String, String)>, String> {
    let c = std::ffi::CString::new(conninfo).map_err(|_| "a NUL byte in the string".to_string())?;
    let mut err: *mut std::ffi::c_char = std::ptr::null_mut();
    // SAFETY: PQconninfoParse reads the NUL-terminated string; it returns an array ended by an
    // entry with a null keyword (freed with PQconninfoFree) or null and a message (PQfreemem).
    unsafe {
        let opts = pq::PQconninfoParse(c.as_ptr(), &mut err);
        if opts.is_null() {
            let msg = if err.is_null() {
                "out of memory".to_string()
            } else {
                let m = CStr::from_ptr(err).to_string_lossy().trim_end().to_string();
                pq::PQfreemem(err as *mut std::ffi::c_void);
                m
            };
            return Err(msg);
        }
        let mut out = Vec::new();
        let mut o = opts;
        while !(*o).keyword.is_null() {
            if !(*o).val.is_null() {
                out.push((
                    CStr::from_ptr((*o).keyword).to_string_lossy().into_owned(),
                    CStr::from_ptr((*o).val).to_string_lossy().into_owned(),
                ));
            }
            o = o.add(1);
        }
        pq::PQconninfoFree(opts);
        Ok(out)
    }
}

/// The version of the libpq this backend runs with (150000 for 15.0).
pub fn version() -> i32 {
    // SAFETY: a plain call with no arguments.
    unsafe { pq::PQlibVersion() }
}

/// One libpq connection. Dropping it cancels any command still running on the node, then
/// closes the connection.
pub struct Connection {
    raw: NonNull<pq::PGconn>,
    node: NodeAddress,
    /// A command was sent and its results were not all read.
    busy: bool,
    /// Statements prepared on this connection: SQL text -> statement name.
    prepared: std::collections::HashMap<String, String>,
    /// The session settings last set on the node (`super::Settings`), once set.
    pub settings: Option<std::rc::Rc<super::Settings>>,
    /// Every setting beyond the fixed five ever set on the node, by name (and whether it was a
    /// statement's own): after a `ROLLBACK TO SAVEPOINT` undid an unknown part of them, each
    /// is set or reset again with the next settings.
    pub ever_set: Vec<(String, bool)>,
    /// A cancel request on its way to the node: told when it got there.
    pending_cancel: std::cell::RefCell<Option<std::sync::mpsc::Receiver<()>>>,
    /// Unique in the process: tells this connection from a later one that gets the same
    /// socket number (a wait set registered for the old socket must not be reused for it).
    id: u64,
}

thread_local! {
    static NEXT_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

impl Connection {
    /// A `ROLLBACK TO SAVEPOINT` ran: the node's settings are what they were at the savepoint,
    /// which may be any of those set since; the next task's settings are all sent again.
    pub fn forget_settings(&mut self) {
        self.settings = None;
    }

    /// What the node may have when its settings are unknown (after a `ROLLBACK TO
    /// SAVEPOINT`): every setting ever set on it, so that the next settings reset those they
    /// do not set.
    pub fn settings_or_ever_set(&self) -> Option<super::Settings> {
        if self.settings.is_some() || self.ever_set.is_empty() {
            return None;
        }
        Some(super::Settings {
            date_style: String::new(),
            interval_style: String::new(),
            time_zone: String::new(),
            extra_float_digits: String::new(),
            bytea_output: String::new(),
            custom: self
                .ever_set
                .iter()
                .map(|(n, _)| (n.clone(), String::new()))
                .collect(),
            own: self
                .ever_set
                .iter()
                .filter(|(_, own)| *own)
                .map(|(n, _)| n.clone())
                .collect(),
        })
    }

    /// The node's session now has `s`.
    pub fn settings_set(&mut self, s: Option<std::rc::Rc<super::Settings>>) {
        if let Some(s) = &s {
            for (n, _) in &s.custom {
                if !self.ever_set.iter().any(|(m, _)| m == n) {
                    self.ever_set.push((n.clone(), s.own.contains(n)));
                }
            }
        }
        self.settings = s;
    }

    /// Starts opening a connection without blocking; drive it with [`Connection::poll_connect`].
    pub fn start(node: &NodeAddress, params: &ConnParams) -> Result<Connection, RemoteError> {
        let mut keys = Vec::with_capacity(params.pairs().len() + 1);
        let mut values = Vec::with_capacity(params.pairs().len() + 1);
        for (k, v) in params.pairs() {
            let bad = || RemoteError::connection(node, "connection parameter holds a NUL byte");
            keys.push(CString::new(k.as_str()).map_err(|_| bad())?);
            values.push(CString::new(v.as_str()).map_err(|_| bad())?);
        }
        let mut kp: Vec<*const std::ffi::c_char> = keys.iter().map(|k| k.as_ptr()).collect();
        let mut vp: Vec<*const std::ffi::c_char> = values.iter().map(|v| v.as_ptr()).collect();
        kp.push(std::ptr::null());
        vp.push(std::ptr::null());
        // SAFETY: both arrays are NULL-terminated and outlive the call; libpq copies them.
        let raw = unsafe { pq::PQconnectStartParams(kp.as_ptr(), vp.as_ptr(), 0) };
        let raw = NonNull::new(raw)
            .ok_or_else(|| RemoteError::connection(node, "out of memory starting a connection"))?;
        let conn = Connection {
            raw,
            node: node.clone(),
            busy: false,
            prepared: std::collections::HashMap::new(),
            settings: None,
            ever_set: Vec::new(),
            pending_cancel: std::cell::RefCell::new(None),
            id: NEXT_ID.with(|n| {
                let id = n.get();
                n.set(id + 1);
                id
            }),
        };
        // SAFETY: raw is a live PGconn.
        if unsafe { pq::PQstatus(conn.raw.as_ptr()) } == pq::ConnStatusType::CONNECTION_BAD {
            return Err(RemoteError::connection(node, conn.error_message()));
        }
        Ok(conn)
    }

    /// The connection's process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn node(&self) -> &NodeAddress {
        &self.node
    }

    /// Advances a connection attempt.
    pub fn poll_connect(&mut self) -> ConnectPoll {
        // SAFETY: raw is a live PGconn.
        match unsafe { pq::PQconnectPoll(self.raw.as_ptr()) } {
            pq::PostgresPollingStatusType::PGRES_POLLING_READING => ConnectPoll::Read,
            pq::PostgresPollingStatusType::PGRES_POLLING_WRITING => ConnectPoll::Write,
            pq::PostgresPollingStatusType::PGRES_POLLING_OK => {
                // SAFETY: raw is a live, open PGconn.
                unsafe { pq::PQsetnonblocking(self.raw.as_ptr(), 1) };
                ConnectPoll::Ready
            }
            _ => ConnectPoll::Failed,
        }
    }

    pub fn socket(&self) -> c_int {
        // SAFETY: raw is a live PGconn.
        unsafe { pq::PQsocket(self.raw.as_ptr()) }
    }

    /// Open, and not inside a transaction block or a command: fit to serve a new task.
    pub fn is_idle(&self) -> bool {
        // SAFETY: raw is a live PGconn.
        unsafe {
            !self.busy
                && pq::PQstatus(self.raw.as_ptr()) == pq::ConnStatusType::CONNECTION_OK
                && pq::PQtransactionStatus(self.raw.as_ptr())
                    == pq::PGTransactionStatusType::PQTRANS_IDLE
        }
    }

    /// Whether the node sent anything on this connection since its last command ended. An
    /// idle connection has nothing to read unless the node is telling it goodbye (a
    /// shutdown, a terminated backend, an idle timeout: an error, then the end of the
    /// stream), which libpq only notices when it next reads; such a connection is not used
    /// again. One poll of the socket, never waiting.
    pub fn has_unread_input(&self) -> bool {
        let fd = self.socket();
        if fd < 0 {
            return true;
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) != 0 }
    }

    /// The connection failed (libpq's CONNECTION_BAD).
    pub fn is_broken(&self) -> bool {
        // SAFETY: raw is a live PGconn.
        unsafe { pq::PQstatus(self.raw.as_ptr()) == pq::ConnStatusType::CONNECTION_BAD }
    }

    /// The connection is in pipeline mode (a pipeline was not read to its end).
    pub fn in_pipeline(&self) -> bool {
        // SAFETY: raw is a live PGconn.
        unsafe { pq::PQpipelineStatus(self.raw.as_ptr()) != pq::PGpipelineStatus::PQ_PIPELINE_OFF }
    }

    /// `Ok` when a libpq call returned 1 (done), else the connection's error as lost.
    fn done_or_lost(&self, rc: c_int) -> Result<(), RemoteError> {
        if rc == 1 {
            Ok(())
        } else {
            Err(RemoteError::connection_lost(
                &self.node,
                self.error_message(),
            ))
        }
    }

    /// libpq's last error message for this connection, passwords removed.
    pub fn error_message(&self) -> String {
        // SAFETY: raw is a live PGconn; the message is owned by it and copied here.
        let msg = unsafe { CStr::from_ptr(pq::PQerrorMessage(self.raw.as_ptr())) };
        tessera_core::conninfo::redact(msg.to_string_lossy().trim_end())
    }

    /// Sends a command with text parameters (NULL as None); does not wait for it.
    ///
    /// `types` gives the parameters' type OIDs (0: inferred by the node); empty means all
    /// inferred.
    pub fn send_query(
        &mut self,
        sql: &str,
        params: &[Option<String>],
        types: &[u32],
    ) -> Result<(), RemoteError> {
        let sql = CString::new(sql)
            .map_err(|_| RemoteError::connection(&self.node, "command holds a NUL byte"))?;
        let mut owned = Vec::with_capacity(params.len());
        for p in params {
            owned.push(match p {
                Some(s) => Some(CString::new(s.as_str()).map_err(|_| {
                    RemoteError::connection(&self.node, "parameter holds a NUL byte")
                })?),
                None => None,
            });
        }
        if owned.is_empty() {
            // The simple protocol: a command without parameters may hold several statements.
            // SAFETY: raw is live; sql outlives the call (libpq copies it).
            if unsafe { pq::PQsendQuery(self.raw.as_ptr(), sql.as_ptr()) } != 1 {
                return Err(RemoteError::connection_lost(
                    &self.node,
                    self.error_message(),
                ));
            }
            self.busy = true;
            return Ok(());
        }
        let ptrs: Vec<*const std::ffi::c_char> = owned
            .iter()
            .map(|p| p.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()))
            .collect();
        let types: Vec<pq::Oid> = if types.len() == ptrs.len() {
            types.iter().map(|t| *t as pq::Oid).collect()
        } else {
            Vec::new()
        };
        // SAFETY: raw is live; sql, the types and every parameter outlive the call (libpq
        // copies them into its output buffer); NULL length and format arrays mean "text".
        let ok = unsafe {
            pq::PQsendQueryParams(
                self.raw.as_ptr(),
                sql.as_ptr(),
                ptrs.len() as c_int,
                if types.is_empty() {
                    std::ptr::null()
                } else {
                    types.as_ptr()
                },
                if ptrs.is_empty() {
                    std::ptr::null()
                } else {
                    ptrs.as_ptr()
                },
                std::ptr::null(),
                std::ptr::null(),
                0,
            )
        };
        if ok != 1 {
            return Err(RemoteError::connection_lost(
                &self.node,
                self.error_message(),
            ));
        }
        self.busy = true;
        Ok(())
    }

    /// Sends one statement without parameters in the extended protocol (what a pipeline
    /// takes; [`Connection::send_query`] uses the simple protocol then); does not wait.
    pub fn send_statement(&mut self, sql: &str) -> Result<(), RemoteError> {
        let sql = CString::new(sql)
            .map_err(|_| RemoteError::connection(&self.node, "command holds a NUL byte"))?;
        // SAFETY: raw is live; sql outlives the call (libpq copies it); no parameters.
        let ok = unsafe {
            pq::PQsendQueryParams(
                self.raw.as_ptr(),
                sql.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                0,
            )
        };
        self.done_or_lost(ok)?;
        self.busy = true;
        Ok(())
    }

    /// Enters libpq's pipeline mode: the commands sent next are queued together and their
    /// results come back in order, each ended by a `None` from
    /// [`Connection::next_pipeline_result`], up to the sync that [`Connection::pipeline_sync`]
    /// queues.
    pub fn enter_pipeline(&mut self) -> Result<(), RemoteError> {
        // SAFETY: raw is a live PGconn with no command in flight.
        self.done_or_lost(unsafe { pq::PQenterPipelineMode(self.raw.as_ptr()) })
    }

    /// Ends the pipeline's commands with a sync point (one Sync message: an error skips the
    /// commands after it up to here); [`Connection::flush`] sends them all.
    pub fn pipeline_sync(&mut self) -> Result<(), RemoteError> {
        // SAFETY: raw is a live PGconn in pipeline mode.
        self.done_or_lost(unsafe { pq::PQpipelineSync(self.raw.as_ptr()) })
    }

    /// The next result of a pipeline: a command's results, then `None` after each command;
    /// the sync point's result last ([`PgResult::is_pipeline_sync`]).
    pub fn next_pipeline_result(&mut self) -> Option<PgResult> {
        // SAFETY: raw is a live PGconn; the result is ours to free.
        NonNull::new(unsafe { pq::PQgetResult(self.raw.as_ptr()) }).map(|raw| PgResult { raw })
    }

    /// Leaves pipeline mode once its sync point's result was read: the connection is idle.
    pub fn exit_pipeline(&mut self) -> Result<(), RemoteError> {
        // SAFETY: raw is a live PGconn in pipeline mode with every result read.
        self.done_or_lost(unsafe { pq::PQexitPipelineMode(self.raw.as_ptr()) })?;
        self.busy = false;
        Ok(())
    }

    /// The name of the statement prepared for `sql` on this connection, if any.
    pub fn prepared_name(&self, sql: &str) -> Option<String> {
        self.prepared.get(sql).cloned()
    }

    /// How many statements this connection has prepared.
    pub fn prepared_count(&self) -> usize {
        self.prepared.len()
    }

    /// Records that `sql` is prepared as `name` (after the node confirmed it).
    pub fn remember_prepared(&mut self, sql: &str, name: &str) {
        self.prepared.insert(sql.to_string(), name.to_string());
    }

    /// Sends a Parse of `sql` as the named statement `name`; does not wait.
    pub fn send_prepare(
        &mut self,
        name: &str,
        sql: &str,
        types: &[u32],
    ) -> Result<(), RemoteError> {
        let bad =
            |what: &str| RemoteError::connection(&self.node, format!("{what} holds a NUL byte"));
        let c_name = CString::new(name).map_err(|_| bad("statement name"))?;
        let c_sql = CString::new(sql).map_err(|_| bad("command"))?;
        let types: Vec<pq::Oid> = types.iter().map(|t| *t as pq::Oid).collect();
        // SAFETY: raw is live; the strings and types outlive the call (libpq copies them).
        let ok = unsafe {
            pq::PQsendPrepare(
                self.raw.as_ptr(),
                c_name.as_ptr(),
                c_sql.as_ptr(),
                types.len() as c_int,
                if types.is_empty() {
                    std::ptr::null()
                } else {
                    types.as_ptr()
                },
            )
        };
        if ok != 1 {
            return Err(RemoteError::connection_lost(
                &self.node,
                self.error_message(),
            ));
        }
        self.busy = true;
        Ok(())
    }

    /// Runs the prepared statement `name` with text parameters; does not wait.
    pub fn send_query_prepared(
        &mut self,
        name: &str,
        params: &[Option<String>],
    ) -> Result<(), RemoteError> {
        let c_name = CString::new(name)
            .map_err(|_| RemoteError::connection(&self.node, "statement name holds a NUL byte"))?;
        let mut owned = Vec::with_capacity(params.len());
        for p in params {
            owned.push(match p {
                Some(s) => Some(CString::new(s.as_str()).map_err(|_| {
                    RemoteError::connection(&self.node, "parameter holds a NUL byte")
                })?),
                None => None,
            });
        }
        let ptrs: Vec<*const std::ffi::c_char> = owned
            .iter()
            .map(|p| p.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()))
            .collect();
        // SAFETY: raw is live; the name and parameters outlive the call (libpq copies them);
        // NULL length and format arrays mean text parameters.
        let ok = unsafe {
            pq::PQsendQueryPrepared(
                self.raw.as_ptr(),
                c_name.as_ptr(),
                ptrs.len() as c_int,
                if ptrs.is_empty() {
                    std::ptr::null()
                } else {
                    ptrs.as_ptr()
                },
                std::ptr::null(),
                std::ptr::null(),
                0,
            )
        };
        if ok != 1 {
            return Err(RemoteError::connection_lost(
                &self.node,
                self.error_message(),
            ));
        }
        self.busy = true;
        Ok(())
    }

    /// Flushes queued output: `Ok(true)` when all was sent, `Ok(false)` to wait for write.
    pub fn flush(&mut self) -> Result<bool, RemoteError> {
        // SAFETY: raw is a live PGconn.
        match unsafe { pq::PQflush(self.raw.as_ptr()) } {
            0 => Ok(true),
            1 => Ok(false),
            _ => Err(RemoteError::connection_lost(
                &self.node,
                self.error_message(),
            )),
        }
    }

    /// Reads what the socket holds; then [`Connection::is_busy`] says whether a result is ready.
    pub fn consume_input(&mut self) -> Result<(), RemoteError> {
        // SAFETY: raw is a live PGconn.
        if unsafe { pq::PQconsumeInput(self.raw.as_ptr()) } == 0 {
            return Err(RemoteError::connection_lost(
                &self.node,
                self.error_message(),
            ));
        }
        Ok(())
    }

    pub fn is_busy(&self) -> bool {
        // SAFETY: raw is a live PGconn.
        unsafe { pq::PQisBusy(self.raw.as_ptr()) != 0 }
    }

    /// The next result of the command, or `None` when the command is complete.
    pub fn next_result(&mut self) -> Option<PgResult> {
        // SAFETY: raw is a live PGconn; the result is ours to free.
        let r = NonNull::new(unsafe { pq::PQgetResult(self.raw.as_ptr()) });
        if r.is_none() {
            self.busy = false;
        }
        r.map(|raw| PgResult { raw })
    }

    /// Queues rows for a `COPY ... FROM STDIN` the node is waiting for, then the end of the
    /// data; [`Connection::flush`] sends them.
    pub fn put_copy_data(&mut self, data: &[u8]) -> Result<(), RemoteError> {
        for chunk in data.chunks(1 << 20) {
            // SAFETY: raw is live and in the COPY IN state; libpq copies the bytes.
            self.until_queued(|raw| unsafe {
                pq::PQputCopyData(
                    raw,
                    chunk.as_ptr() as *const std::ffi::c_char,
                    chunk.len() as c_int,
                )
            })?;
        }
        // SAFETY: raw is live and in the COPY IN state; NULL: the copy succeeded.
        self.until_queued(|raw| unsafe { pq::PQputCopyEnd(raw, std::ptr::null()) })
    }

    /// Calls a libpq COPY function until it queues its data: 1 queued; 0 (non-blocking, no
    /// room) flush and call again; -1 the connection failed.
    fn until_queued(
        &mut self,
        mut call: impl FnMut(*mut pq::PGconn) -> c_int,
    ) -> Result<(), RemoteError> {
        loop {
            match call(self.raw.as_ptr()) {
                1 => return Ok(()),
                // SAFETY: raw is live.
                0 if unsafe { pq::PQflush(self.raw.as_ptr()) } >= 0 => continue,
                _ => {
                    return Err(RemoteError::connection_lost(
                        &self.node,
                        self.error_message(),
                    ))
                }
            }
        }
    }

    /// Asks for the rows of the command just sent one at a time, each as its own result, so
    /// they can be used as they arrive (libpq's single-row mode). Call right after sending.
    pub fn set_single_row_mode(&mut self) -> bool {
        // SAFETY: raw is a live PGconn with a command just sent and no result read yet.
        unsafe { pq::PQsetSingleRowMode(self.raw.as_ptr()) == 1 }
    }

    /// Asks the node to cancel the command running on this connection, without waiting.
    ///
    /// libpq's cancel protocol (`PQcancel`, PostgreSQL 15) opens a new connection to the node
    /// with no timeout and waits for the node to close it: during a network partition, or with
    /// a stopped postmaster, that blocks for minutes, and cancels are sent from error cleanup
    /// (the connection's `Drop`), where a backend must not hang. So the exchange runs on a
    /// short-lived thread of its own that touches nothing of PostgreSQL's (only libpq's
    /// thread-safe cancel object, allocated with malloc) and blocks every signal, so that the
    /// backend's signal handlers keep running on the backend's thread. The caller goes on at
    /// once; the dispatcher asks again while the command still runs.
    pub fn cancel(&self) {
        // SAFETY: raw is a live PGconn; PQgetCancel copies what the cancel needs (address,
        // backend key) into a new malloc'd object, usable after the connection is closed.
        let c = unsafe { pq::PQgetCancel(self.raw.as_ptr()) };
        let Some(c) = NonNull::new(c) else {
            return;
        };
        let request = CancelRequest(c);
        let (sent, arrived) = std::sync::mpsc::channel();
        register_exit_wait();
        CANCELS_IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Without a thread to be had, the request goes (freed) with the closure, and the node
        // notices the closed connection instead. The thread starts with every signal blocked
        // (a new thread inherits the mask): this thread blocks them around the spawn, so no
        // signal meant for the backend can run a handler on the new one before it starts.
        // SAFETY: sigfillset initialises the set; pthread_sigmask changes only this thread's
        // mask, restored right after the spawn (signals that came meanwhile are then delivered).
        let previous = unsafe {
            let mut all = std::mem::zeroed::<libc::sigset_t>();
            let mut previous = std::mem::zeroed::<libc::sigset_t>();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
            previous
        };
        let spawned = std::thread::Builder::new()
            .name("tessera-cancel".into())
            .spawn(move || {
                block_signals();
                request.send();
                let _ = sent.send(());
                CANCELS_IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        // SAFETY: restores this thread's mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut()) };
        match spawned {
            Ok(_) => *self.pending_cancel.borrow_mut() = Some(arrived),
            Err(_) => {
                CANCELS_IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    /// Before the connection runs another command: waits until a cancel sent on it has
    /// reached the node, so that it cannot cancel that next command instead. The wait is
    /// bounded by `citus.node_connection_timeout` and serves interrupts; false when the
    /// cancel did not get there in time, and the connection must not be used again.
    pub fn settle_cancel(&self) -> bool {
        let Some(arrived) = self.pending_cancel.borrow_mut().take() else {
            return true;
        };
        let limit = std::time::Instant::now()
            + std::time::Duration::from_millis(crate::gucs::node_connection_timeout_ms() as u64);
        loop {
            match arrived.recv_timeout(std::time::Duration::from_millis(10)) {
                Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if std::time::Instant::now() >= limit {
                        return false;
                    }
                    pgrx::check_for_interrupts!();
                }
            }
        }
    }
}

/// Cancel requests still on their way (their threads running).
static CANCELS_IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How long a backend that exits waits for its cancel requests to reach their nodes.
const CANCEL_EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// At backend exit: gives the cancel requests still on their way a moment to reach their
/// nodes. A session that ends right after an error (a client that disconnects on a cancelled
/// query) would otherwise end the process, and its cancel threads with it, before the nodes
/// heard the cancel: their commands would run on, unseen.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn wait_for_cancels(_code: std::ffi::c_int, _arg: pgrx::pg_sys::Datum) {
    let until = std::time::Instant::now() + CANCEL_EXIT_WAIT;
    while CANCELS_IN_FLIGHT.load(std::sync::atomic::Ordering::SeqCst) > 0
        && std::time::Instant::now() < until
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Registers [`wait_for_cancels`] once in this process (a backend's exit callbacks are its
/// own: the postmaster's are reset at fork, so this runs at the first cancel, not at load).
fn register_exit_wait() {
    static REGISTERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !REGISTERED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        // SAFETY: a backend's exit-callback list; the callback lives as long as the library.
        unsafe { pgrx::pg_sys::on_proc_exit(Some(wait_for_cancels), pgrx::pg_sys::Datum::from(0)) };
    }
}

/// A libpq cancel object, sent (once) and freed on another thread.
struct CancelRequest(NonNull<pq::PGcancel>);

// SAFETY: a PGcancel is a plain malloc'd copy of the connection's address and key; libpq
// documents PQcancel as safe to call from any thread, and the object is used by one thread.
unsafe impl Send for CancelRequest {}

impl CancelRequest {
    fn send(self) {
        let mut errbuf = [0 as std::ffi::c_char; 256];
        // SAFETY: the object is live until dropped below; errbuf is large enough.
        unsafe { pq::PQcancel(self.0.as_ptr(), errbuf.as_mut_ptr(), errbuf.len() as c_int) };
    }
}

impl Drop for CancelRequest {
    fn drop(&mut self) {
        // SAFETY: the object came from PQgetCancel and is freed once, here.
        unsafe { pq::PQfreeCancel(self.0.as_ptr()) };
    }
}

/// Blocks every signal on the calling thread (a helper thread of a backend).
fn block_signals() {
    // SAFETY: sigfillset initialises the set; pthread_sigmask changes only this thread's mask.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.busy {
            // Work may still run on the node: stop it rather than leave it running unseen.
            self.cancel();
        }
        // SAFETY: raw is live and owned; PQfinish frees it and it is not used again.
        unsafe { pq::PQfinish(self.raw.as_ptr()) };
    }
}

/// One result of a command. Freed on drop.
pub struct PgResult {
    raw: NonNull<pq::PGresult>,
}

/// The kind of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Command,
    Tuples,
    Error,
    Other,
}

impl PgResult {
    pub fn kind(&self) -> ResultKind {
        // SAFETY: raw is a live PGresult.
        match unsafe { pq::PQresultStatus(self.raw.as_ptr()) } {
            pq::ExecStatusType::PGRES_COMMAND_OK => ResultKind::Command,
            pq::ExecStatusType::PGRES_TUPLES_OK | pq::ExecStatusType::PGRES_SINGLE_TUPLE => {
                ResultKind::Tuples
            }
            pq::ExecStatusType::PGRES_FATAL_ERROR | pq::ExecStatusType::PGRES_BAD_RESPONSE => {
                ResultKind::Error
            }
            _ => ResultKind::Other,
        }
    }

    /// One row of a command in single-row mode.
    pub fn is_single_row(&self) -> bool {
        // SAFETY: raw is a live PGresult.
        unsafe { pq::PQresultStatus(self.raw.as_ptr()) == pq::ExecStatusType::PGRES_SINGLE_TUPLE }
    }

    /// The result of a pipeline's sync point.
    pub fn is_pipeline_sync(&self) -> bool {
        // SAFETY: raw is a live PGresult.
        unsafe { pq::PQresultStatus(self.raw.as_ptr()) == pq::ExecStatusType::PGRES_PIPELINE_SYNC }
    }

    /// A pipeline's command that did not run because an earlier one failed.
    pub fn is_pipeline_aborted(&self) -> bool {
        // SAFETY: raw is a live PGresult.
        unsafe {
            pq::PQresultStatus(self.raw.as_ptr()) == pq::ExecStatusType::PGRES_PIPELINE_ABORTED
        }
    }

    /// The node waits for `COPY ... FROM STDIN` data.
    pub fn is_copy_in(&self) -> bool {
        // SAFETY: raw is a live PGresult.
        unsafe { pq::PQresultStatus(self.raw.as_ptr()) == pq::ExecStatusType::PGRES_COPY_IN }
    }

    pub fn ntuples(&self) -> usize {
        // SAFETY: raw is a live PGresult.
        unsafe { pq::PQntuples(self.raw.as_ptr()) as usize }
    }

    pub fn nfields(&self) -> usize {
        // SAFETY: raw is a live PGresult.
        unsafe { pq::PQnfields(self.raw.as_ptr()) as usize }
    }

    /// The text of one value, or `None` for NULL. Panics on an index out of range.
    pub fn value(&self, row: usize, col: usize) -> Option<&str> {
        assert!(row < self.ntuples() && col < self.nfields());
        // SAFETY: row and column are in range; the value lives as long as the result.
        unsafe {
            if pq::PQgetisnull(self.raw.as_ptr(), row as c_int, col as c_int) != 0 {
                return None;
            }
            let p = pq::PQgetvalue(self.raw.as_ptr(), row as c_int, col as c_int);
            Some(CStr::from_ptr(p).to_str().unwrap_or("<invalid UTF-8>"))
        }
    }

    /// One value as the node sent it (NUL-terminated), or `None` for NULL.
    pub fn value_cstr(&self, row: usize, col: usize) -> Option<&CStr> {
        assert!(row < self.ntuples() && col < self.nfields());
        // SAFETY: row and column are in range; the value lives as long as the result.
        unsafe {
            if pq::PQgetisnull(self.raw.as_ptr(), row as c_int, col as c_int) != 0 {
                return None;
            }
            Some(CStr::from_ptr(pq::PQgetvalue(
                self.raw.as_ptr(),
                row as c_int,
                col as c_int,
            )))
        }
    }

    /// The number of rows a command affected (0 when it does not say).
    pub fn affected_rows(&self) -> u64 {
        // SAFETY: raw is a live PGresult; the string is owned by it.
        unsafe { CStr::from_ptr(pq::PQcmdTuples(self.raw.as_ptr())) }
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The command tag (`CREATE TABLE`, `SELECT 1`).
    pub fn command_tag(&self) -> String {
        // SAFETY: raw is a live PGresult; the tag is owned by it and copied here.
        unsafe { CStr::from_ptr(pq::PQcmdStatus(self.raw.as_ptr())) }
            .to_string_lossy()
            .into_owned()
    }

    fn field(&self, code: u8) -> Option<String> {
        // SAFETY: raw is a live PGresult; a field is NULL or a string owned by the result.
        let p = unsafe { pq::PQresultErrorField(self.raw.as_ptr(), c_int::from(code)) };
        if p.is_null() {
            None
        } else {
            // SAFETY: non-NULL field strings are NUL-terminated.
            Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        }
    }

    /// The error this result carries, with the worker's SQLSTATE, message, detail and hint.
    pub fn error(&self, node: &NodeAddress) -> RemoteError {
        RemoteError {
            node: node.clone(),
            sqlstate: self
                .field(pq::PG_DIAG_SQLSTATE)
                .and_then(|s| s.as_bytes().try_into().ok())
                .unwrap_or(*b"XX000"),
            message: self
                .field(pq::PG_DIAG_MESSAGE_PRIMARY)
                .unwrap_or_else(|| "unknown error on the node".into()),
            detail: self.field(pq::PG_DIAG_MESSAGE_DETAIL),
            hint: self.field(pq::PG_DIAG_MESSAGE_HINT),
        }
    }
}

impl Drop for PgResult {
    fn drop(&mut self) {
        // SAFETY: raw is live and owned; PQclear frees it and it is not used again.
        unsafe { pq::PQclear(self.raw.as_ptr()) };
    }
}
