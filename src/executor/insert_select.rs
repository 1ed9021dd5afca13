//! INSERT ... SELECT through the coordinator.
//!
//! The planner put the SELECT's own PlannedStmt beside the INSERT's plan (the second item of
//! `custom_private`): it may be a distributed query (a Tessera scan of its own, streaming its
//! rows), a local one, or a mix the planner combined. Here it runs with `ExecutorRun` into a
//! receiver that evaluates the INSERT's column expressions over each row (defaults and
//! `nextval()` on the coordinator, as for INSERT ... VALUES), and every `batch_rows` rows routes
//! the batch to the shards: one multi-row INSERT per shard, all shards at once, inside the
//! distributed transaction. The coordinator holds one batch at a time, never the whole SELECT.

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::task::{self, Row, Rows};
use super::ScanRun;
use crate::connection::PgResult;
use crate::error::{OrReport, TResult};
use crate::metadata::cache::{self, TableMeta};

/// Rows per batch at most (fewer when the columns would pass libpq's 65535 parameters).
const MAX_BATCH_ROWS: usize = 10_000;

/// The rows of one batch: as many as the parameter limit allows, at most [`MAX_BATCH_ROWS`].
fn batch_rows(columns: usize, param_base: usize) -> usize {
    let room = 65_535usize.saturating_sub(param_base);
    (room / columns.max(1)).clamp(1, MAX_BATCH_ROWS)
}

/// What the receiver carries between rows.
struct Sink {
    run: *mut ScanRun,
    estate: *mut pg_sys::EState,
    econtext: *mut pg_sys::ExprContext,
    anchor: Option<std::rc::Rc<TableMeta>>,
    limit: usize,
    batch: Vec<Row>,
    results: Vec<PgResult>,
    affected: u64,
    /// The tasks of the first batch, for EXPLAIN ANALYZE.
    first_tasks: Option<Vec<task::Task>>,
}

impl Sink {
    /// Sends the batch to the shards and waits for them.
    fn flush(&mut self) -> TResult<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        // SAFETY: the run and the executor state outlive the statement.
        let run = unsafe { &*self.run };
        // SAFETY: forwarded.
        let mut tasks = unsafe {
            match &run.copy_columns {
                Some(cols) => task::copy_tasks(&run.plan, self.estate, &self.batch, cols)?,
                None => task::insert_tasks(
                    &run.plan,
                    self.estate,
                    &self.batch,
                    run.extra.as_deref().unwrap_or(&[]),
                )?,
            }
        };
        // Each batch has its own statement shapes: not worth preparing on the nodes.
        for t in &mut tasks {
            t.prepare = false;
        }
        let (rows, affected) = task::run(&run.plan, &tasks, false)?;
        if let Rows::Done(results) = rows {
            if run.plan.returns_rows {
                self.results.extend(results);
            }
        }
        self.affected += affected;
        if self.first_tasks.is_none() {
            self.first_tasks = Some(tasks);
        }
        self.batch.clear();
        Ok(())
    }
}

/// A DestReceiver: PostgreSQL's part first, then ours.
#[repr(C)]
struct Receiver {
    dest: pg_sys::DestReceiver,
    sink: *mut Sink,
}

#[pg_guard]
unsafe extern "C-unwind" fn receive(
    slot: *mut pg_sys::TupleTableSlot,
    dest: *mut pg_sys::DestReceiver,
) -> bool {
    // SAFETY: dest is our Receiver; the slot holds the SELECT's row for this call.
    unsafe {
        let sink = &mut *(*(dest as *mut Receiver)).sink;
        let run = &*sink.run;
        (*sink.econtext).ecxt_outertuple = slot;
        let row = task::eval_row(
            run,
            sink.anchor.as_deref(),
            run.insert_rows[0],
            sink.econtext,
        );
        (*sink.econtext).ecxt_outertuple = std::ptr::null_mut();
        sink.batch.push(row);
        if sink.batch.len() >= sink.limit {
            sink.flush().or_report();
        }
    }
    true
}

/// Runs the SELECT and inserts its rows; returns the RETURNING results and the rows inserted.
///
/// # Safety
/// `node` is the scan's state; `run` its live run with a child plan.
pub(super) unsafe fn execute(
    node: *mut pg_sys::CustomScanState,
    run: *mut ScanRun,
) -> TResult<(Vec<PgResult>, u64)> {
    // SAFETY: the executor's state of this scan; the SELECT's plan lives in ours.
    unsafe {
        let estate = (*node).ss.ps.state;
        let plan = &(*run).plan;
        let shape = plan.insert.as_ref().expect("an INSERT plan");
        let mut sink = Sink {
            run,
            estate,
            econtext: (*node).ss.ps.ps_ExprContext,
            anchor: cache::lookup(pg_sys::Oid::from(plan.tables[plan.anchor].relid))?,
            limit: batch_rows(shape.columns, shape.param_base),
            batch: Vec::new(),
            results: Vec::new(),
            affected: 0,
            first_tasks: None,
        };
        let mut receiver = Receiver {
            dest: super::child::receiver(receive, pg_sys::CommandDest::DestNone),
            sink: &mut sink,
        };
        // EXPLAIN ANALYZE shows the SELECT with its counts; end_scan ends it.
        (*run).child_qd = super::child::run((*run).child, estate, &mut receiver.dest, 0);
        sink.flush()?;
        (*run).tasks = sink.first_tasks.take();
        Ok((std::mem::take(&mut sink.results), sink.affected))
    }
}

/// Ends the SELECT kept for EXPLAIN ANALYZE.
///
/// # Safety
/// `run` is a live run.
pub(super) unsafe fn end(run: *mut ScanRun) {
    // SAFETY: the QueryDesc came from `child::run`.
    unsafe { super::child::end(&mut (*run).child_qd) }
}

/// EXPLAIN: the SELECT's plan under the scan, with its counts after EXPLAIN ANALYZE.
///
/// # Safety
/// `run` is a live run with a child plan; `es` the live ExplainState.
pub(super) unsafe fn explain(run: *mut ScanRun, es: *mut pg_sys::ExplainState) {
    // SAFETY: forwarded.
    unsafe {
        super::child::explain(
            (*run).child,
            (*run).child_qd,
            "Select Query (rows go to the shards)",
            es,
        )
    }
}
