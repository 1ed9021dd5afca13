//! Distributed deadlock detection, run by the maintenance worker every
//! `deadlock_timeout × citus.distributed_deadlock_detection_factor`.
//!
//! Each node's lock waits (`pg_blocking_pids`) become edges between the coordinator's
//! backends (`tessera_core::deadlock`: a worker connection's `application_name` names the
//! coordinator backend it works for); the union over every node, the coordinator included, is
//! the wait-for graph of the distributed transactions. In each cycle the transaction that
//! started last is cancelled, as Citus does: it is marked (`pg::victims`) and sent the cancel
//! signal, and it ends with "canceling the transaction since it was involved in a distributed
//! deadlock" (SQLSTATE 40P01). A cycle a single node sees is that node's own deadlock detector's.
//!
//! The nodes are asked one after another's answer is in, so the graph is not one instant's;
//! a cycle is acted on only when a second look finds it again with the same transactions (a
//! deadlock lasts until it is broken; waits that only looked like a cycle have moved on).

use std::collections::{BTreeMap, BTreeSet};

use pgrx::spi::Spi;

use tessera_core::deadlock::{coordinator_edges, victims, LockWait};

use crate::connection::{run_tasks, ConnKey, RemoteTask};
use crate::error::{TResult, TesseraError};
use crate::metadata::node as nodes;

/// Every lock wait of the node: (waiting pid, its application_name, a pid it waits for, that
/// one's application_name).
const WAITS: &str =
    "SELECT w.pid, coalesce(w.application_name, ''), b.pid, coalesce(b.application_name, '')
  FROM pg_catalog.pg_stat_activity w
  CROSS JOIN LATERAL pg_catalog.unnest(pg_catalog.pg_blocking_pids(w.pid)) AS bp(pid)
  JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid
 WHERE w.wait_event_type = 'Lock'";

/// The coordinator's backends in a transaction: pid → when it started (microseconds).
fn transaction_starts() -> TResult<BTreeMap<i32, i64>> {
    Spi::connect(|client| {
        let mut out = BTreeMap::new();
        for row in client.select(
            "SELECT pid, (extract(epoch FROM xact_start) * 1000000)::int8
               FROM pg_catalog.pg_stat_activity WHERE xact_start IS NOT NULL",
            None,
            &[],
        )? {
            out.insert(
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<i64>(2)?.unwrap_or_default(),
            );
        }
        Ok::<_, TesseraError>(out)
    })
}

fn local_waits() -> TResult<Vec<LockWait>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(WAITS, None, &[])? {
            out.push(LockWait {
                waiter: row.get::<i32>(1)?.unwrap_or_default(),
                waiter_app: row.get::<String>(2)?.unwrap_or_default(),
                blocker: row.get::<i32>(3)?.unwrap_or_default(),
                blocker_app: row.get::<String>(4)?.unwrap_or_default(),
            });
        }
        Ok::<_, TesseraError>(out)
    })
}

/// The wait-for graph between the coordinator's backends: the coordinator's own waits and
/// every active worker's, asked all at once. A node that does not answer is left out (with a
/// WARNING): a cycle through it is found once it answers again.
fn graph() -> TResult<BTreeSet<(i32, i32)>> {
    let mut edges = coordinator_edges(&local_waits()?, true);
    let workers: Vec<_> = nodes::active_primaries(false)?;
    let tasks: Vec<RemoteTask> = workers
        .iter()
        .map(|n| RemoteTask::new(ConnKey::for_current_session(&n.address()), WAITS))
        .collect();
    for outcome in run_tasks(&tasks, tasks.len())? {
        let results = match outcome {
            Ok(results) => results,
            Err(e) => {
                e.into_tessera().warn();
                continue;
            }
        };
        let Some(r) = results.last() else { continue };
        let text = |i: usize, c: usize| r.value(i, c).unwrap_or_default().to_string();
        let pid = |i: usize, c: usize| r.value(i, c).and_then(|v| v.parse().ok()).unwrap_or(0);
        let waits: Vec<LockWait> = (0..r.ntuples())
            .map(|i| LockWait {
                waiter: pid(i, 0),
                waiter_app: text(i, 1),
                blocker: pid(i, 2),
                blocker_app: text(i, 3),
            })
            .collect();
        edges.extend(coordinator_edges(&waits, false));
    }
    Ok(edges)
}

/// Looks for distributed deadlocks and cancels a transaction in each; returns how many it
/// cancelled.
pub(crate) fn detect() -> TResult<usize> {
    // A cycle needs two coordinator transactions that wait (for a lock, or for a node).
    let waiting = crate::pg::spi::get_one::<i64>(
        "SELECT count(*) FROM pg_catalog.pg_stat_activity
          WHERE xact_start IS NOT NULL AND wait_event_type IN ('Lock', 'Extension')",
    )?
    .unwrap_or(0);
    if waiting < 2 {
        return Ok(0);
    }
    let started = transaction_starts()?;
    let first = victims(&graph()?, &started);
    if first.is_empty() {
        return Ok(0);
    }
    // A second look: the same victims, in the same transactions.
    let again = transaction_starts()?;
    let confirmed: Vec<i32> = victims(&graph()?, &again)
        .into_iter()
        .filter(|v| first.contains(v) && started.get(v) == again.get(v))
        .collect();
    for &pid in &confirmed {
        crate::pg::victims::mark(pid);
        crate::pg::spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.pg_cancel_backend($1)",
            &[pid.into()],
        )?;
        pgrx::log!(
            "tessera: cancelled the transaction of backend {pid}: it was involved in a distributed deadlock (it started last)"
        );
    }
    Ok(confirmed.len())
}
