//! `COPY dist FROM ...` streamed to the shards.
//!
//! PostgreSQL's own COPY reader (`BeginCopyFrom` / `NextCopyFrom`) parses every format and
//! option (text, CSV, binary, HEADER, FORCE_NULL, STDIN, a file, a PROGRAM) on the
//! coordinator, once, and evaluates the defaults and sequences of the columns the input leaves
//! out. Each row is hashed to its shard and printed in COPY text into that shard's buffer.
//! Every [`BATCH_BYTES`] the buffers go out as one `COPY shard FROM STDIN` per shard
//! placement, all nodes at once, inside the user's remote transaction (so the transaction
//! layer commits them: one-phase on one node, two-phase on several). While one batch loads on
//! the nodes, the next is parsed; the coordinator holds two batches at most, never the input.
//!
//! Bad input is reported as PostgreSQL's COPY reports it, with its context line ("COPY items,
//! line 3, column id: ..."): the row loop ([`run`]) is not a guarded Rust frame (pgrx's error
//! boundary drops context lines) and holds only pointers and plain values, so an error may
//! unwind through it. What the loop works with lives in [`STREAMS`], which the end of the
//! transaction (or of the subtransaction the COPY began in) clears after an error.
//!
//! A COPY with a WHERE clause or FREEZE, into a table whose row-level security binds the user,
//! or distributed by a generated column, takes the staging path instead ([`super::copy`]).
//!
//! The COPY runs here, not through the ProcessUtility hooks installed before Tessera's: an
//! extension that counts utility statements (pg_stat_statements) sees it when it is loaded
//! after Tessera in `shared_preload_libraries` (its hook then runs first).

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr};
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use crate::connection::{ConnKey, Dispatch, RemoteTask, Scope, Settings};
use crate::error::{OrReport, TResult, TesseraError};
use crate::metadata::cache::{self, TableMeta};

/// The rows buffered for the shards before they are sent (all shards together).
const BATCH_BYTES: usize = 4 << 20;

/// Every this many rows, the batch in flight is moved forward (the nodes' answers read, the
/// next shard's COPY sent on a node that finished one), without waiting.
const POLL_EVERY_ROWS: u64 = 256;

/// One COPY in progress.
struct Stream {
    /// The subtransaction it began in: an error that aborts it ends the COPY.
    subxact: pg_sys::SubTransactionId,
    rel: pg_sys::Relation,
    cstate: pg_sys::CopyFromState,
    estate: *mut pg_sys::EState,
    econtext: *mut pg_sys::ExprContext,
    /// One row as `NextCopyFrom` fills it: every attribute of the table, by attribute index.
    values: *mut pg_sys::Datum,
    nulls: *mut bool,
    meta: Rc<TableMeta>,
    /// The columns sent to the shards (every column but the dropped and generated ones):
    /// attribute index and output function.
    columns: Vec<(usize, pg_sys::FmgrInfo)>,
    /// `(a, b, c)`: those columns, quoted.
    column_list: String,
    /// The distribution column's attribute index and hash function (hash-distributed tables).
    dist: Option<(usize, pg_sys::FmgrInfo)>,
    /// Rows in COPY text, by shard index.
    buffers: Vec<Vec<u8>>,
    buffered: usize,
    rows: u64,
    /// The batch the nodes are loading.
    in_flight: Option<Dispatch>,
    settings: Rc<Settings>,
    /// The transaction had written nothing before this COPY: its local writes are only the
    /// sequences the defaults advanced (see `transaction::staging_only`).
    fresh: bool,
    /// The next batch is read while one loads. Not when a default calls a function in SQL or
    /// a procedural language, or a column's domain has constraints: such code may query a
    /// distributed table, on a connection the batch in flight holds.
    overlap: bool,
}

thread_local! {
    /// The COPYs in progress, innermost last (a default may run a COPY of its own).
    static STREAMS: RefCell<Vec<Stream>> = const { RefCell::new(Vec::new()) };
}

/// Whether the utility statement is a `COPY dist FROM ...` that streams (see the module
/// header).
///
/// # Safety
/// `pstmt` comes from ProcessUtility.
pub(super) unsafe fn streaming(pstmt: *mut pg_sys::PlannedStmt) -> TResult<bool> {
    // SAFETY: reading the statement; the tag is checked before the cast.
    unsafe {
        let stmt = (*pstmt).utilityStmt;
        if !crate::pg::nodes::is_a(stmt as *const c_void, pg_sys::NodeTag::T_CopyStmt) {
            return Ok(false);
        }
        let c = stmt as *mut pg_sys::CopyStmt;
        if !(*c).is_from || (*c).relation.is_null() {
            return Ok(false);
        }
        match super::distributed_range_var((*c).relation)? {
            Some(relid) => streams(c, relid),
            None => Ok(false),
        }
    }
}

/// Whether `COPY ... FROM` on the distributed table `relid` streams.
///
/// # Safety
/// `c` is a valid CopyStmt.
unsafe fn streams(c: *mut pg_sys::CopyStmt, relid: pg_sys::Oid) -> TResult<bool> {
    // SAFETY: reading the statement and the catalog.
    unsafe {
        if !(*c).whereClause.is_null() {
            return Ok(false);
        }
        let freeze = crate::pg::nodes::list_of::<pg_sys::DefElem>((*c).options)
            .into_iter()
            .any(|d| crate::pg::nodes::string((*d).defname) == "freeze");
        if freeze {
            return Ok(false);
        }
        if crate::pg::perms::row_security_binds(relid) {
            return Ok(false);
        }
        let Some(meta) = cache::lookup(relid)? else {
            return Ok(false);
        };
        if meta.has_dist_column() && pg_sys::get_attgenerated(relid, meta.table.dist_attnum) != 0 {
            return Ok(false);
        }
        Ok(true)
    }
}

/// What the row loop needs from [`begin`].
#[repr(C)]
#[derive(Clone, Copy)]
struct Begun {
    cstate: pg_sys::CopyFromState,
    econtext: *mut pg_sys::ExprContext,
    values: *mut pg_sys::Datum,
    nulls: *mut bool,
}

unsafe extern "C-unwind" {
    /// PostgreSQL's `NextCopyFrom`, without pgrx's error boundary (see the module header).
    #[link_name = "NextCopyFrom"]
    fn next_copy_from_unguarded(
        cstate: pg_sys::CopyFromState,
        econtext: *mut pg_sys::ExprContext,
        values: *mut pg_sys::Datum,
        nulls: *mut bool,
    ) -> bool;

    /// PostgreSQL's COPY error context callback ("COPY items, line 3, column id: ...").
    #[link_name = "CopyFromErrorCallback"]
    fn copy_from_error_callback(arg: *mut c_void);
}

/// Runs `COPY dist FROM ...` (a statement [`streams`] accepted) and sets its completion tag.
///
/// # Safety
/// Called from the ProcessUtility hook with its arguments. Not a guarded frame: it holds only
/// pointers and plain values, so that an error in the input unwinds through it with its
/// context line.
pub(super) unsafe extern "C-unwind" fn run(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: begin's pointers stay valid until finish; the callback entry is popped before
    // this frame ends, and an error unwinding past it resets error_context_stack itself.
    unsafe {
        let b = begin(pstmt, query_string);
        let mut errcb = pg_sys::ErrorContextCallback {
            previous: pg_sys::error_context_stack,
            callback: Some(copy_from_error_callback),
            arg: b.cstate as *mut c_void,
        };
        pg_sys::error_context_stack = &mut errcb;
        loop {
            let per_tuple = (*b.econtext).ecxt_per_tuple_memory;
            pg_sys::MemoryContextReset(per_tuple);
            let old = pg_sys::MemoryContextSwitchTo(per_tuple);
            let more = next_copy_from_unguarded(b.cstate, b.econtext, b.values, b.nulls);
            pg_sys::MemoryContextSwitchTo(old);
            if !more {
                break;
            }
            if add_row() {
                // A node's error about a batch is not about the line read last.
                pg_sys::error_context_stack = errcb.previous;
                send_batch();
                pg_sys::error_context_stack = &mut errcb;
            }
        }
        pg_sys::error_context_stack = errcb.previous;
        finish(qc);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn begin(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
) -> Begun {
    // SAFETY: forwarded from `run`.
    let (stream, begun) = unsafe { start(pstmt, query_string) }.or_report();
    STREAMS.with(|s| s.borrow_mut().push(stream));
    begun
}

/// The checks PostgreSQL's COPY makes, then the reader.
///
/// # Safety
/// `pstmt` holds a CopyStmt that [`streams`] accepted.
unsafe fn start(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
) -> TResult<(Stream, Begun)> {
    // SAFETY: the statement is a CopyStmt; the relation stays open (and locked) until
    // `finish` closes it, or the transaction's abort releases it.
    unsafe {
        let c = (*pstmt).utilityStmt as *mut pg_sys::CopyStmt;
        if !(*c).filename.is_null() {
            let (role, what, name) = if (*c).is_program {
                (
                    pg_sys::ROLE_PG_EXECUTE_SERVER_PROGRAM,
                    "from a program",
                    "pg_execute_server_program",
                )
            } else {
                (
                    pg_sys::ROLE_PG_READ_SERVER_FILES,
                    "from a file",
                    "pg_read_server_files",
                )
            };
            if !pg_sys::has_privs_of_role(pg_sys::GetUserId(), pg_sys::Oid::from(role)) {
                return Err(TesseraError::new(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("permission denied to COPY {what}: it needs the privileges of the {name} role"),
                )
                .hint("COPY FROM STDIN works for any role with INSERT on the table, and so does psql's \\copy."));
            }
        }
        let lockmode = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_openrv((*c).relation, lockmode);
        let relid = (*rel).rd_id;
        // Decided before the lock: row-level security turned on since then takes the staging
        // path when the COPY runs again.
        if crate::pg::perms::row_security_binds(relid) {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "row-level security was turned on for the table while COPY started",
            )
            .hint("Run the COPY again."));
        }
        let Some(meta) = cache::lookup(relid)? else {
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the table stopped being distributed while COPY started",
            )
            .hint("Run the COPY again."));
        };
        // INSERT on the columns the input fills, as PostgreSQL's COPY checks it.
        let (pstate, listed) = crate::pg::perms::insert_checked(rel, lockmode, (*c).attlist);
        (*pstate).p_sourcetext = query_string;
        let tupdesc = (*rel).rd_att;
        if pg_sys::XactReadOnly {
            pg_sys::PreventCommandIfReadOnly(c"COPY FROM".as_ptr());
        }
        pg_sys::PreventCommandIfParallelMode(c"COPY FROM".as_ptr());
        // The columns sent, and whether a default COPY evaluates may run user code that
        // writes (anything VOLATILE but a sequence's nextval).
        let natts = (*tupdesc).natts as usize;
        let attrs = (*tupdesc).attrs.as_slice(natts);
        let mut columns = Vec::new();
        let mut names = Vec::new();
        let mut user_code = false;
        let mut calls_user_code = false;
        for (i, att) in attrs.iter().enumerate() {
            if att.attisdropped || att.attgenerated != 0 {
                continue;
            }
            let attnum = i as i32 + 1;
            // A domain's CHECK runs as the input is read, and may call anything.
            if pg_sys::DomainHasConstraints(att.atttypid) {
                user_code = true;
                calls_user_code = true;
            }
            if !listed.contains(&attnum) {
                let default = pg_sys::build_column_default(rel, attnum);
                user_code |=
                    !default.is_null() && pg_sys::contain_volatile_functions_not_nextval(default);
                calls_user_code |= crate::planner::expr_calls_user_code(default)?;
            }
            let (mut out, mut varlena) = (pg_sys::InvalidOid, false);
            pg_sys::getTypeOutputInfo(att.atttypid, &mut out, &mut varlena);
            let mut finfo = pg_sys::FmgrInfo::default();
            pg_sys::fmgr_info(out, &mut finfo);
            columns.push((i, finfo));
            names.push(quote_identifier(crate::pg::nodes::string(
                att.attname.data.as_ptr(),
            )));
        }
        let dist = if meta.has_dist_column() {
            let mut finfo = pg_sys::FmgrInfo::default();
            pg_sys::fmgr_info(meta.hash_proc, &mut finfo);
            Some((meta.table.dist_attnum as usize - 1, finfo))
        } else {
            None
        };
        let fresh = !user_code && crate::transaction::staging_only();
        let cstate = pg_sys::BeginCopyFrom(
            pstate,
            rel,
            std::ptr::null_mut(),
            (*c).filename,
            (*c).is_program,
            None,
            (*c).attlist,
            (*c).options,
        );
        let estate = pg_sys::CreateExecutorState();
        let econtext = pg_sys::MakePerTupleExprContext(estate);
        let values = pg_sys::palloc0(natts.max(1) * std::mem::size_of::<pg_sys::Datum>()) as *mut _;
        let nulls = pg_sys::palloc0(natts.max(1)) as *mut bool;
        let stream = Stream {
            subxact: pg_sys::GetCurrentSubTransactionId(),
            rel,
            cstate,
            estate,
            econtext,
            values,
            nulls,
            buffers: vec![Vec::new(); meta.shards.len()],
            meta,
            columns,
            column_list: format!("({})", names.join(", ")),
            dist,
            buffered: 0,
            rows: 0,
            in_flight: None,
            // The rows are printed in a form every node reads the same (ISO dates, exact
            // floats), whatever the node's settings.
            settings: Settings::shared(false, false, &[]),
            fresh,
            overlap: !calls_user_code,
        };
        let begun = Begun {
            cstate,
            econtext,
            values,
            nulls,
        };
        Ok((stream, begun))
    }
}

/// Buffers the row `NextCopyFrom` just read; true when the buffers are full.
#[pg_guard]
unsafe extern "C-unwind" fn add_row() -> bool {
    STREAMS.with(|s| {
        let mut s = s.borrow_mut();
        let stream = s.last_mut().expect("a COPY in progress");
        // SAFETY: the row arrays hold the row just read.
        unsafe { stream.add_row() }.or_report()
    })
}

/// Sends the buffered rows (after the batch before them has loaded).
#[pg_guard]
unsafe extern "C-unwind" fn send_batch() {
    STREAMS.with(|s| {
        let mut s = s.borrow_mut();
        let stream = s.last_mut().expect("a COPY in progress");
        stream.send_batch().or_report()
    })
}

/// The end of the input: the last rows sent, every batch loaded, the reader closed.
#[pg_guard]
unsafe extern "C-unwind" fn finish(qc: *mut pg_sys::QueryCompletion) {
    let stream = STREAMS.with(|s| s.borrow_mut().pop().expect("a COPY in progress"));
    let rows = stream.finish().or_report();
    if !qc.is_null() {
        // SAFETY: the hook's completion tag, for the client's "COPY n".
        unsafe {
            (*qc).commandTag = pg_sys::CommandTag::CMDTAG_COPY;
            (*qc).nprocessed = rows;
        }
    }
}

impl Stream {
    /// # Safety
    /// `values` and `nulls` hold the row `NextCopyFrom` read last.
    unsafe fn add_row(&mut self) -> TResult<bool> {
        // A cancel, statement_timeout or termination is served between rows, as COPY does.
        pgrx::check_for_interrupts!();
        // SAFETY: the arrays have an entry per attribute; the datums live in the per-tuple
        // memory, which the hash and the printed text use too until the next row.
        unsafe {
            let per_tuple = (*self.econtext).ecxt_per_tuple_memory;
            let old = pg_sys::MemoryContextSwitchTo(per_tuple);
            let shard = match &mut self.dist {
                None => 0,
                Some((i, hash)) => {
                    if *self.nulls.add(*i) {
                        pg_sys::MemoryContextSwitchTo(old);
                        return Err(TesseraError::new(
                            PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
                            "the row has no value in the distribution column",
                        )
                        .hint("Every row of a distributed table needs a value in its distribution column."));
                    }
                    let h = pg_sys::FunctionCall1Coll(
                        hash,
                        self.meta.dist_collation,
                        *self.values.add(*i),
                    )
                    .value() as i32;
                    match self.meta.shard_for_hash(h) {
                        Ok(k) => k,
                        Err(e) => {
                            pg_sys::MemoryContextSwitchTo(old);
                            return Err(e);
                        }
                    }
                }
            };
            let buffer = &mut self.buffers[shard];
            let before = buffer.len();
            // Printed the way any node reads it (a no-op in the usual session).
            let portable = crate::pg::guc::GucScope::portable_output();
            for (n, (i, output)) in self.columns.iter_mut().enumerate() {
                if n > 0 {
                    buffer.push(b'\t');
                }
                if *self.nulls.add(*i) {
                    tessera_core::copy::push_field(buffer, None);
                } else {
                    let text = pg_sys::OutputFunctionCall(output, *self.values.add(*i));
                    tessera_core::copy::push_field(buffer, Some(CStr::from_ptr(text).to_bytes()));
                }
            }
            buffer.push(b'\n');
            drop(portable);
            pg_sys::MemoryContextSwitchTo(old);
            self.buffered += buffer.len() - before;
            self.rows += 1;
            if self.rows.is_multiple_of(POLL_EVERY_ROWS) {
                if let Some(d) = &mut self.in_flight {
                    d.poll()?;
                }
            }
            Ok(self.buffered >= BATCH_BYTES)
        }
    }

    /// Waits for the batch in flight, then sends the buffered rows as the next one.
    fn send_batch(&mut self) -> TResult<()> {
        self.wait_for_batch()?;
        let mut tasks = Vec::new();
        for (k, buffer) in self.buffers.iter_mut().enumerate() {
            if buffer.is_empty() {
                continue;
            }
            let data = Rc::new(std::mem::replace(buffer, Vec::with_capacity(buffer.len())));
            let shard = &self.meta.shards[k];
            let sql = format!(
                "COPY {} {} FROM STDIN",
                crate::sharding::qualified_shard(
                    &self.meta.schema,
                    &self.meta.name,
                    shard.shard_id
                ),
                self.column_list
            );
            // Every placement: a reference table's rows go to each node.
            for &group in &shard.groups {
                let node = cache::group_address(group)?;
                let mut task = RemoteTask::new(ConnKey::for_current_session(&node), sql.clone())
                    .in_scope(Scope::Transaction)
                    .with_settings(self.settings.clone());
                task.copy_data = Some(data.clone());
                tasks.push(task);
            }
        }
        self.buffered = 0;
        if tasks.is_empty() {
            return Ok(());
        }
        let n = tasks.len();
        let mut dispatch = Dispatch::start(tasks, n);
        dispatch.send()?;
        self.in_flight = Some(dispatch);
        if !self.overlap {
            self.wait_for_batch()?;
        }
        Ok(())
    }

    /// Waits until the nodes loaded the batch in flight; a node's error is the COPY's.
    fn wait_for_batch(&mut self) -> TResult<()> {
        if let Some(dispatch) = self.in_flight.take() {
            for outcome in dispatch.finish()? {
                outcome.map_err(|e| e.into_tessera())?;
            }
        }
        Ok(())
    }

    /// Sends what is left, waits for it, closes the reader; the rows read.
    fn finish(mut self) -> TResult<u64> {
        // SAFETY: the reader and the executor state are this COPY's, ended once, here.
        unsafe {
            pg_sys::EndCopyFrom(self.cstate);
            pg_sys::FreeExecutorState(self.estate);
        }
        self.send_batch()?;
        self.wait_for_batch()?;
        if self.fresh {
            crate::transaction::staging_done();
        }
        // SAFETY: opened in `start`; the lock is kept until the transaction ends.
        unsafe { pg_sys::table_close(self.rel, pg_sys::NoLock as pg_sys::LOCKMODE) };
        Ok(self.rows)
    }
}

/// Forgets the COPYs an error ended: all of them at the end of the transaction (their batches
/// in flight are dropped with their connections, and the nodes roll back), those begun in the
/// subtransaction `sub` (or a later one) when it aborts: their batches in flight are parked
/// (see `connection::park`), so the transaction goes on after the savepoint's rollback.
pub(super) fn forget(sub: Option<pg_sys::SubTransactionId>) {
    STREAMS.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            match sub {
                None => s.clear(),
                Some(sub) => {
                    let at = s.iter().position(|st| st.subxact >= sub).unwrap_or(s.len());
                    for mut stream in s.drain(at..) {
                        if let Some(d) = stream.in_flight.take() {
                            crate::connection::park(d);
                        }
                    }
                }
            }
        }
    });
}
