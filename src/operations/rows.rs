//! The row mover: how Tessera's own operations carry a table's rows from one place to another
//! (local rows into new shards, a shard to another node, a reference table to a new node,
//! shards back into the local table). Rows travel as COPY text, the form `COPY ... FROM
//! STDIN` reads:
//!
//! - a source prints each value with its type's output function, under settings every node
//!   reads the same way (ISO dates, exact floats): [`read_here`] reads a query on this node
//!   through an SPI cursor, [`read_on`] reads one on another node through a cursor in the
//!   remote transaction;
//! - [`Writer`] buffers the rows per target table and sends each buffer, when large and at the
//!   end, as one `COPY target (columns) FROM STDIN` per placement, every node at once, in the
//!   remote transaction; a placement on this node (group 0) is loaded by PostgreSQL's own
//!   COPY here ([`copy_here`]), in the statement's transaction.
//!
//! So every type comes back exactly (arrays, ranges, domains, user-defined types), triggers
//! and constraints on the target run as they do for COPY, and identity columns keep their
//! values.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr, CString};
use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, Spi};

use crate::connection::{run_tasks, ConnKey, NodeAddress, PgResult, RemoteTask, Scope, Settings};
use crate::error::{TResult, TesseraError};
use crate::metadata::node::Node;

/// The rows a cursor hands over at a time.
const FETCH_ROWS: usize = 10_000;

/// The printed size at which read_here hands on the rows it printed so far.
const PRINT_BYTES: usize = 32 << 20;

/// The size at which a target's buffered rows are sent.
const BATCH_BYTES: usize = 4 << 20;

/// The size of all targets' buffered rows at which they are all sent (many shards, each
/// short of a batch).
const MAX_BUFFERED_BYTES: usize = 64 << 20;

/// The columns of a table that rows carry (not dropped, not generated), in attribute order.
pub(crate) struct Columns {
    names: Vec<String>,
}

impl Columns {
    /// The columns of `relid`, whose rows are about to move. Refused when row-level security
    /// applies to the current role (FORCE ROW LEVEL SECURITY for the owner): its policies
    /// would hide rows from the move, and would refuse COPY on the target.
    pub(crate) fn of(relid: pg_sys::Oid) -> TResult<Columns> {
        if crate::pg::perms::row_security_binds(relid) {
            let name = crate::pg::spi::get_one_with_args::<String>(
                "SELECT $1::regclass::text",
                &[relid.into()],
            )?
            .unwrap_or_default();
            return Err(TesseraError::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("cannot move the rows of {name}: row-level security applies to the current role, so its policies would hide rows"),
            )
            .hint("Run it as a superuser or a role with BYPASSRLS, or ALTER TABLE ... NO FORCE ROW LEVEL SECURITY while the rows move."));
        }
        let names = crate::sharding::insertable_column_names(relid)?;
        Ok(Columns { names })
    }

    /// `alias.a, alias."B"`: the columns as a select list.
    pub(crate) fn select_list(&self, alias: &str) -> String {
        self.names
            .iter()
            .map(|n| format!("{alias}.{}", quote_identifier(n)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `SELECT t.a, t."B" FROM ONLY table t`: every row of `table` (a qualified, quoted name).
    pub(crate) fn select_only(&self, table: &str) -> String {
        format!("SELECT {} FROM ONLY {table} t", self.select_list("t"))
    }

    /// `(a, "B")`: the column list of a COPY.
    fn copy_list(&self) -> String {
        let quoted: Vec<String> = self.names.iter().map(quote_identifier).collect();
        format!("({})", quoted.join(", "))
    }
}

/// A table that rows go to, on each group (node) that holds a placement of it.
pub(crate) struct Target {
    pub(crate) schema: String,
    pub(crate) name: String,
    pub(crate) groups: Vec<i32>,
}

impl Target {
    /// Shard `shard_id` of the table `schema.table`, on the groups `groups`.
    pub(crate) fn shard(schema: &str, table: &str, shard_id: i64, groups: Vec<i32>) -> Target {
        Target {
            schema: schema.to_string(),
            name: tessera_core::sharding::shard_name(table, shard_id),
            groups,
        }
    }
}

/// Where rows are read: on this node ([`read_here`]) or on another ([`read_on`]).
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Here,
    On(&'a NodeAddress),
}

/// Runs `query` at `source` and hands each row to `each` (see [`read_here`], [`read_on`]);
/// the number of rows.
pub(crate) fn read(
    source: Source<'_>,
    query: &str,
    each: impl FnMut(&[Option<&[u8]>]) -> TResult<()>,
) -> TResult<i64> {
    match source {
        Source::Here => read_here(query, each),
        Source::On(node) => read_on(node, query, each),
    }
}

/// Copies every row of `table` (a qualified, quoted name; that table only, not its
/// partitions), which has the columns of the table `relid`, from `source` to `target`; the
/// number of rows.
pub(crate) fn copy_table(
    source: Source<'_>,
    table: &str,
    relid: pg_sys::Oid,
    target: Target,
    all: &[Node],
) -> TResult<i64> {
    let columns = Columns::of(relid)?;
    let mut writer = Writer::new(vec![target], &columns, all);
    read(source, &columns.select_only(table), |fields| {
        writer.push(0, fields)
    })?;
    writer.finish()
}

/// Rows buffered per target and sent as COPY (see the module header).
pub(crate) struct Writer<'a> {
    targets: Vec<Target>,
    columns: &'a Columns,
    buffers: Vec<Vec<u8>>,
    /// The bytes in all buffers.
    buffered: usize,
    all: &'a [Node],
    rows: i64,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(targets: Vec<Target>, columns: &'a Columns, all: &'a [Node]) -> Writer<'a> {
        Writer {
            buffers: vec![Vec::new(); targets.len()],
            targets,
            columns,
            buffered: 0,
            all,
            rows: 0,
        }
    }

    /// Adds one row (its fields as COPY reads them, in the order of the columns) for target
    /// `index`; sends that target's rows once they are many.
    pub(crate) fn push(&mut self, index: usize, fields: &[Option<&[u8]>]) -> TResult<()> {
        let buffer = &mut self.buffers[index];
        let before = buffer.len();
        tessera_core::copy::push_row(buffer, fields.iter().copied());
        self.buffered += buffer.len() - before;
        self.rows += 1;
        if buffer.len() >= BATCH_BYTES {
            self.send(true)?;
        } else if self.buffered >= MAX_BUFFERED_BYTES {
            self.send(false)?;
        }
        Ok(())
    }

    /// Sends what is left; the number of rows written.
    pub(crate) fn finish(mut self) -> TResult<i64> {
        self.send(false)?;
        Ok(self.rows)
    }

    /// Sends the buffered rows (`only_full`: only the buffers that reached the batch size),
    /// every node at once.
    fn send(&mut self, only_full: bool) -> TResult<()> {
        let addresses = crate::ddl::propagate::group_nodes(self.all);
        // The rows were printed in a form any node reads the same way; the node's session
        // otherwise reads as this one does.
        let settings = Rc::new(Settings::session());
        let copy_list = self.columns.copy_list();
        let mut tasks = Vec::new();
        let mut here = Vec::new();
        for (k, buffer) in self.buffers.iter_mut().enumerate() {
            if buffer.is_empty() || (only_full && buffer.len() < BATCH_BYTES) {
                continue;
            }
            let data = Rc::new(std::mem::take(buffer));
            let target = &self.targets[k];
            let sql = format!(
                "COPY {}.{} {copy_list} FROM STDIN",
                quote_identifier(&target.schema),
                quote_identifier(&target.name)
            );
            for &group in &target.groups {
                if group == tessera_core::node::COORDINATOR_GROUP_ID {
                    here.push((k, data.clone()));
                    continue;
                }
                let node = crate::ddl::propagate::serving(&addresses, group)?;
                let mut task = RemoteTask::new(ConnKey::for_current_session(node), sql.clone())
                    .in_scope(Scope::Transaction)
                    .with_settings(settings.clone());
                task.copy_data = Some(data.clone());
                tasks.push(task);
            }
        }
        if !tasks.is_empty() {
            let width = tasks.len();
            for r in run_tasks(&tasks, width)? {
                r.map_err(|e| e.into_tessera())?;
            }
        }
        self.buffered = self.buffers.iter().map(Vec::len).sum();
        for (k, data) in here {
            let target = &self.targets[k];
            copy_here(&target.schema, &target.name, self.columns, &data)?;
        }
        Ok(())
    }
}

/// Runs `query` here and hands each row to `each`, its values printed by their types' output
/// functions in a form every node reads the same way (UTF8, ISO dates, exact floats; NULL as
/// `None`); the number of rows.
///
/// The query reads under the latest snapshot (after the caller's lock: a REPEATABLE READ
/// transaction's own snapshot may predate rows committed before the lock, which must move
/// too), with this statement's own writes (`CREATE TABLE AS`), and with `row_security` off
/// (a table whose policies would hide rows from the current role is an error, never rows left
/// behind). Only the printing runs under the portable settings: `each` (which may load rows
/// here, firing triggers) runs under the session's.
pub(crate) fn read_here(
    query: &str,
    mut each: impl FnMut(&[Option<&[u8]>]) -> TResult<()>,
) -> TResult<i64> {
    let sql = CString::new(query).map_err(|_| {
        TesseraError::new(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "a query holds a NUL byte",
        )
    })?;
    Spi::connect(|_client| {
        // SAFETY: inside the SPI connection `Spi::connect` opened: the plan, the portal and
        // each fetched tuple table belong to it. The printed values live in `batch`, reset
        // once their rows were handed on; the tuple table is freed once its rows are
        // printed. The snapshot pushed is popped before returning; an ERROR in any call
        // unwinds through pgrx's guard, and the transaction's abort releases the portal, the
        // snapshot and the memory.
        unsafe {
            pg_sys::CommandCounterIncrement();
            let _latest = crate::pg::snapshot::PushedSnapshot::latest();
            let portal = {
                let _no_rls = crate::pg::guc::GucScope::new(&[(c"row_security", c"off")]);
                let plan = pg_sys::SPI_prepare(sql.as_ptr(), 0, std::ptr::null_mut());
                if plan.is_null() {
                    return Err(TesseraError::new(
                        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                        format!("could not prepare the query that reads the rows: {query}"),
                    ));
                }
                // Read-only: under the snapshot pushed above.
                pg_sys::SPI_cursor_open(
                    std::ptr::null(),
                    plan,
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    true,
                )
            };
            let batch = pg_sys::AllocSetContextCreateInternal(
                pg_sys::CurrentMemoryContext,
                c"tessera row mover".as_ptr(),
                0,
                8 * 1024,
                8 * 1024 * 1024,
            );
            // Values travel in UTF8 (a SQL_ASCII database's bytes as they are).
            let sql_ascii_or_utf8 = here_encoding() != c"UTF8"
                || pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32;
            let mut rows = 0i64;
            let mut printed: Vec<Vec<Option<(*const u8, usize)>>> = Vec::new();
            let outcome = 'fetch: loop {
                pgrx::check_for_interrupts!();
                pg_sys::SPI_cursor_fetch(portal, true, FETCH_ROWS as std::ffi::c_long);
                let n = pg_sys::SPI_processed as usize;
                let table = pg_sys::SPI_tuptable;
                if n == 0 || table.is_null() {
                    break Ok(rows);
                }
                let tupdesc = (*table).tupdesc;
                let natts = (*tupdesc).natts;
                // The fetched rows are printed and handed on in chunks of at most
                // PRINT_BYTES, so wide rows never hold more than that in memory.
                let mut next = 0;
                while next < n {
                    let portable = crate::pg::guc::GucScope::portable_output();
                    let old = pg_sys::MemoryContextSwitchTo(batch);
                    printed.clear();
                    let mut bytes = 0usize;
                    while next < n && (printed.is_empty() || bytes < PRINT_BYTES) {
                        let tuple = *(*table).vals.add(next);
                        next += 1;
                        printed.push(
                            (1..=natts)
                                .map(|c| {
                                    let p = pg_sys::SPI_getvalue(tuple, tupdesc, c);
                                    if p.is_null() {
                                        return None;
                                    }
                                    let p = if sql_ascii_or_utf8 {
                                        p
                                    } else {
                                        let len = CStr::from_ptr(p).to_bytes().len();
                                        pg_sys::pg_server_to_any(
                                            p,
                                            len as c_int,
                                            pg_sys::pg_enc::PG_UTF8 as c_int,
                                        )
                                    };
                                    let len = CStr::from_ptr(p).to_bytes().len();
                                    bytes += len;
                                    Some((p as *const u8, len))
                                })
                                .collect(),
                        );
                    }
                    pg_sys::MemoryContextSwitchTo(old);
                    drop(portable);
                    let mut fields: Vec<Option<&[u8]>> = Vec::with_capacity(natts as usize);
                    let mut failed = None;
                    for row in &printed {
                        fields.clear();
                        fields.extend(
                            row.iter()
                                .map(|v| v.map(|(p, len)| std::slice::from_raw_parts(p, len))),
                        );
                        if let Err(e) = each(&fields) {
                            failed = Some(e);
                            break;
                        }
                        rows += 1;
                    }
                    printed.clear();
                    pg_sys::MemoryContextReset(batch);
                    if let Some(e) = failed {
                        pg_sys::SPI_freetuptable(table);
                        break 'fetch Err(e);
                    }
                }
                pg_sys::SPI_freetuptable(table);
            };
            pg_sys::SPI_cursor_close(portal);
            pg_sys::MemoryContextDelete(batch);
            outcome
        }
    })
}

/// Runs `query` on `node` (in the remote transaction, reading only) through a cursor and
/// hands each row to `each`; the number of rows. The node prints the values in UTF8 (the
/// connection's encoding), with ISO dates and exact floats, and intervals and bytea in this
/// session's styles, which the nodes that read them back use too.
fn read_on(
    node: &NodeAddress,
    query: &str,
    mut each: impl FnMut(&[Option<&[u8]>]) -> TResult<()>,
) -> TResult<i64> {
    // The node's remote transaction may have its snapshot from before the caller's lock
    // (REPEATABLE READ, the node used earlier in the transaction): rows committed since would
    // not move.
    // SAFETY: reading the transaction's isolation level.
    if unsafe { pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 } {
        return Err(TesseraError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "cannot move rows from a node in a REPEATABLE READ or SERIALIZABLE transaction",
        )
        .hint("Run it in a READ COMMITTED transaction (the default), where the rows are read after the lock is taken."));
    }
    on_node(
        node,
        &format!("DECLARE tessera_rows NO SCROLL CURSOR FOR {query}"),
    )?;
    let mut rows = 0i64;
    loop {
        let results = on_node(node, &format!("FETCH {FETCH_ROWS} FROM tessera_rows"))?;
        let Some(r) = results.last() else { break };
        let n = r.ntuples();
        if n == 0 {
            break;
        }
        let mut fields: Vec<Option<&[u8]>> = Vec::with_capacity(r.nfields());
        for i in 0..n {
            fields.clear();
            fields.extend((0..r.nfields()).map(|j| r.value_cstr(i, j).map(CStr::to_bytes)));
            each(&fields)?;
        }
        rows += n as i64;
    }
    on_node(node, "CLOSE tessera_rows")?;
    Ok(rows)
}

/// One command on `node` in the remote transaction, reading only, its values printed the way
/// any node reads them.
fn on_node(node: &NodeAddress, sql: &str) -> TResult<Vec<PgResult>> {
    let task = RemoteTask::new(ConnKey::for_current_session(node), sql)
        .in_scope(Scope::Transaction)
        // A node that is only read commits one-phase whatever the others do.
        .reading_only(true)
        .with_settings(Settings::shared(false, false, &[]));
    let mut out = run_tasks(std::slice::from_ref(&task), 1)?;
    out.pop()
        .expect("one task, one outcome")
        .map_err(|e| e.into_tessera())
}

thread_local! {
    /// What [`copy_here`]'s COPY reads: the rest of its data.
    static INPUT: Cell<(*const u8, usize)> = const { Cell::new((std::ptr::null(), 0)) };
}

/// The encoding of the rows the mover carries: UTF8, or SQL_ASCII in a SQL_ASCII database
/// (whose bytes have no encoding to convert from).
fn here_encoding() -> &'static CStr {
    // SAFETY: reading the database's encoding.
    if unsafe { pg_sys::GetDatabaseEncoding() } == pg_sys::pg_enc::PG_SQL_ASCII as i32 {
        c"SQL_ASCII"
    } else {
        c"UTF8"
    }
}

/// COPY's data source for [`copy_here`]: the next bytes of [`INPUT`].
unsafe extern "C-unwind" fn read_input(
    outbuf: *mut c_void,
    _minread: c_int,
    maxread: c_int,
) -> c_int {
    INPUT.with(|input| {
        let (p, left) = input.get();
        let n = left.min(maxread.max(0) as usize);
        if n > 0 {
            // SAFETY: `p` points at `left` readable bytes of the data copy_here holds alive;
            // COPY's buffer has room for `maxread`.
            unsafe {
                std::ptr::copy_nonoverlapping(p, outbuf.cast::<u8>(), n);
                input.set((p.add(n), left - n));
            }
        }
        n as c_int
    })
}

/// Loads `data` (COPY text of `columns`, UTF8) into the table `schema.name` of this node with
/// PostgreSQL's COPY, in the statement's transaction, as the current user (INSERT checked on
/// the columns); the number of rows.
pub(crate) fn copy_here(schema: &str, name: &str, columns: &Columns, data: &[u8]) -> TResult<u64> {
    /// The input of the COPY this one runs inside (a trigger's), given back at the end.
    struct Input((*const u8, usize));
    impl Drop for Input {
        fn drop(&mut self) {
            INPUT.with(|i| i.set(self.0));
        }
    }
    let schema_c = CString::new(schema).unwrap_or_default();
    let name_c = CString::new(name).unwrap_or_default();
    let _input = Input(INPUT.with(|i| i.replace((data.as_ptr(), data.len()))));
    crate::ddl::propagate::internally(|| {
        // SAFETY: the relation is opened, checked and closed here (the lock is kept to the
        // end of the transaction); the column names are palloc'd copies; COPY reads `data`
        // through read_input while `data` lives, and INPUT is cleared when this frame ends,
        // by an error too.
        unsafe {
            let lockmode = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
            let rv = pg_sys::makeRangeVar(
                pg_sys::pstrdup(schema_c.as_ptr()),
                pg_sys::pstrdup(name_c.as_ptr()),
                -1,
            );
            let rel = pg_sys::table_openrv(rv, lockmode);
            // As PostgreSQL's COPY FROM: it would not apply the policies' WITH CHECK.
            if crate::pg::perms::row_security_binds((*rel).rd_id) {
                return Err(TesseraError::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("cannot load rows into {schema}.{name}: row-level security applies to the current role"),
                )
                .hint("Run it as a superuser or a role with BYPASSRLS."));
            }
            let mut attlist = std::ptr::null_mut::<pg_sys::List>();
            for n in &columns.names {
                let c = CString::new(n.as_str()).unwrap_or_default();
                let s = pg_sys::makeString(pg_sys::pstrdup(c.as_ptr()));
                attlist = pg_sys::lappend(attlist, s.cast());
            }
            let (pstate, _) = crate::pg::perms::insert_checked(rel, lockmode, attlist);
            // The rows are UTF8 (or a SQL_ASCII database's bytes), whatever the session's
            // client_encoding.
            let encoding = pg_sys::makeDefElem(
                pg_sys::pstrdup(c"encoding".as_ptr()),
                pg_sys::makeString(pg_sys::pstrdup(here_encoding().as_ptr())).cast(),
                -1,
            );
            let options = pg_sys::lappend(std::ptr::null_mut(), encoding.cast());
            let cstate = pg_sys::BeginCopyFrom(
                pstate,
                rel,
                std::ptr::null_mut(),
                std::ptr::null(),
                false,
                Some(read_input),
                attlist,
                options,
            );
            let rows = pg_sys::CopyFrom(cstate);
            pg_sys::EndCopyFrom(cstate);
            pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
            Ok(rows)
        }
    })
}
