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

use tessera_core::deadlock::{coordinator_edges, victims, LockWait, Node};

use crate::connection::{run_tasks, ConnKey, RemoteTask};
use crate::error::{TResult, TesseraError};
use crate::metadata::node as nodes;

/// Every lock wait of the node: (waiting pid, its application_name, its role, a pid it waits
/// for, that one's application_name and role). A parallel worker stands for its leader.
const WAITS: &str =
    "SELECT coalesce(w.leader_pid, w.pid), coalesce(wl.application_name, w.application_name, ''),
       coalesce(w.usename::text, ''),
       coalesce(b.leader_pid, b.pid), coalesce(bl.application_name, b.application_name, ''),
       coalesce(b.usename::text, '')
  FROM pg_catalog.pg_stat_activity w
  LEFT JOIN pg_catalog.pg_stat_activity wl ON wl.pid = w.leader_pid
  CROSS JOIN LATERAL pg_catalog.unnest(pg_catalog.pg_blocking_pids(w.pid)) AS bp(pid)
  JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid
  LEFT JOIN pg_catalog.pg_stat_activity bl ON bl.pid = b.leader_pid
 WHERE w.wait_event_type = 'Lock'";

/// The coordinator's client backends in a transaction: pid → (when it started, in
/// microseconds since the epoch; its role).
type Transactions = BTreeMap<i32, (i64, String)>;

/// [`Transactions`] now. Read afresh: the statistics a transaction reads are otherwise the
/// ones it read first.
fn transactions() -> TResult<Transactions> {
    crate::pg::spi::get_one::<bool>("SELECT pg_catalog.pg_stat_clear_snapshot() IS NULL")?;
    Spi::connect(|client| {
        let mut out = BTreeMap::new();
        for row in client.select(
            "SELECT pid, (extract(epoch FROM xact_start) * 1000000)::int8, coalesce(usename::text, '')
               FROM pg_catalog.pg_stat_activity
              WHERE xact_start IS NOT NULL AND backend_type = 'client backend'",
            None,
            &[],
        )? {
            out.insert(
                row.get::<i32>(1)?.unwrap_or_default(),
                (
                    row.get::<i64>(2)?.unwrap_or_default(),
                    row.get::<String>(3)?.unwrap_or_default(),
                ),
            );
        }
        Ok::<_, TesseraError>(out)
    })
}

fn waits_of(r: &crate::connection::PgResult) -> Vec<LockWait> {
    let text = |i: usize, c: usize| r.value(i, c).unwrap_or_default().to_string();
    let pid = |i: usize, c: usize| r.value(i, c).and_then(|v| v.parse().ok()).unwrap_or(0);
    (0..r.ntuples())
        .map(|i| LockWait {
            waiter: pid(i, 0),
            waiter_app: text(i, 1),
            waiter_role: text(i, 2),
            blocker: pid(i, 3),
            blocker_app: text(i, 4),
            blocker_role: text(i, 5),
        })
        .collect()
}

fn local_waits() -> TResult<Vec<LockWait>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(WAITS, None, &[])? {
            out.push(LockWait {
                waiter: row.get::<i32>(1)?.unwrap_or_default(),
                waiter_app: row.get::<String>(2)?.unwrap_or_default(),
                waiter_role: row.get::<String>(3)?.unwrap_or_default(),
                blocker: row.get::<i32>(4)?.unwrap_or_default(),
                blocker_app: row.get::<String>(5)?.unwrap_or_default(),
                blocker_role: row.get::<String>(6)?.unwrap_or_default(),
            });
        }
        Ok::<_, TesseraError>(out)
    })
}

/// The wait-for graph between the coordinator's backends: the coordinator's own waits and
/// every active worker's, asked all at once, and the transactions it is between (`(start,
/// role)` by pid). A node that does not answer is left out (with a WARNING): a cycle through
/// it is found once it answers again.
fn graph() -> TResult<(BTreeSet<(i32, i32)>, Transactions)> {
    let transactions = transactions()?;
    let roles: BTreeMap<i32, String> = transactions
        .iter()
        .map(|(&pid, (_, role))| (pid, role.clone()))
        .collect();
    let mut edges = coordinator_edges(&local_waits()?, Node::Coordinator);
    let workers: Vec<_> = nodes::active_primaries(false)?;
    let tasks: Vec<RemoteTask> = workers
        .iter()
        .map(|n| {
            RemoteTask::new(ConnKey::for_current_session(&n.address()), WAITS)
                .within(crate::gucs::maintenance_command_limit())
        })
        .collect();
    for outcome in run_tasks(&tasks, tasks.len())? {
        let results = match outcome {
            Ok(results) => results,
            Err(e) => {
                e.into_tessera().warn();
                continue;
            }
        };
        if let Some(r) = results.last() {
            edges.extend(coordinator_edges(
                &waits_of(r),
                Node::Worker { roles: &roles },
            ));
        }
    }
    Ok((edges, transactions))
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
    let (edges, first_look) = graph()?;
    let starts = |t: &Transactions| -> BTreeMap<i32, i64> {
        t.iter().map(|(&pid, (start, _))| (pid, *start)).collect()
    };
    let first = victims(&edges, &starts(&first_look));
    if first.is_empty() {
        return Ok(0);
    }
    // A second look: the same victims, in the same transactions; only client backends in a
    // transaction are ever cancelled.
    let (edges, second_look) = graph()?;
    let confirmed: Vec<(i32, i64)> = victims(&edges, &starts(&second_look))
        .into_iter()
        .filter(|v| first.contains(v))
        .filter_map(|v| match (first_look.get(&v), second_look.get(&v)) {
            (Some(a), Some(b)) if a.0 == b.0 => Some((v, a.0)),
            _ => None,
        })
        .collect();
    for &(pid, started) in &confirmed {
        crate::pg::victims::mark(pid, started);
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
