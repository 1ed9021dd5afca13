//! Two-phase commit's record and its recovery.
//!
//! Before the local commit, each node that prepared gets a row in `pg_dist_transaction`
//! (`groupid`, `gid`, `outer_xid`) inside the local transaction: the row exists exactly when the
//! local transaction committed, so it is the decision. [`recover_prepared_transactions`] looks
//! at every node's prepared transactions that this coordinator made (gids `citus_0_...`):
//!
//! - with a row: the transaction committed, so `COMMIT PREPARED` (and the row goes);
//! - without a row, made by a local transaction that is no longer running: it aborted (or
//!   died before its commit), so `ROLLBACK PREPARED`;
//! - without a row, made by a transaction still running: left alone (its commit decides);
//! - rows whose gid is prepared nowhere: committed already, the rows go.
//!
//! So a failed COMMIT PREPARED (a node down at the wrong moment) is finished by the next
//! recovery, and `pg_dist_transaction` does not grow: a backend also deletes the rows of its
//! own successful COMMIT PREPAREDs in its next two-phase commit.

use pgrx::prelude::*;
use pgrx::spi::Spi;

use super::Prepared;
use crate::connection::{run_tasks, ConnKey, RemoteTask};
use crate::error::{OrReport, TResult};
use crate::gucs;
use crate::metadata::node as nodes;

/// Records the decision for the prepared nodes and returns each one's group (and forgets
/// `done`, the (group, gid) of transactions this backend committed earlier), inside the local
/// transaction.
pub(super) fn record(prepared: &[Prepared], done: &[(i32, String)]) -> TResult<Vec<i32>> {
    // Pre-commit runs after the last statement's snapshot is gone: the catalog is read and
    // written under one of its own.
    let _snapshot = crate::pg::snapshot::PushedSnapshot::transaction();
    // The group of each prepared node: from the cache of active nodes, or else from every node
    // (one disabled meanwhile still has its prepared transaction). A node in none aborts the
    // transaction: a decision recovery could not find would roll that node back.
    let mut cached = Vec::with_capacity(prepared.len());
    for p in prepared.iter() {
        cached.push(crate::metadata::cache::group_of(&p.key.node)?);
    }
    let all = if cached.contains(&None) {
        nodes::all()?
    } else {
        Vec::new()
    };
    let mut groups = Vec::with_capacity(prepared.len());
    for (p, cached) in prepared.iter().zip(cached) {
        let node = &p.key.node;
        let group = cached
            .or_else(|| {
                all.iter()
                    .find(|n| n.nodename == node.host && n.nodeport == node.port)
                    .map(|n| n.groupid)
            })
            .ok_or_else(|| {
                crate::error::TesseraError::new(
                    pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "cannot commit: node {}:{} left the cluster during the transaction",
                        node.host, node.port
                    ),
                )
                .hint("The transaction rolled back: run it again.")
            })?;
        groups.push(group);
    }
    let gids: Vec<String> = prepared.iter().map(|p| p.gid.clone()).collect();
    let _write = crate::metadata::CatalogWrite::begin();
    // One statement, prepared once per backend: the rows of this backend's earlier two-phase
    // commits that finished go, this one's come.
    Spi::connect_mut(|client| {
        RECORD.with(|kept| {
            let mut kept = kept.borrow_mut();
            if kept.is_none() {
                let array = |oid| PgOid::BuiltIn(oid);
                let statement = client.prepare_mut(
                    RECORD_SQL,
                    &[
                        array(PgBuiltInOids::INT4ARRAYOID),
                        array(PgBuiltInOids::TEXTARRAYOID),
                        array(PgBuiltInOids::INT4ARRAYOID),
                        array(PgBuiltInOids::TEXTARRAYOID),
                    ],
                )?;
                *kept = Some(std::mem::ManuallyDrop::new(statement.keep()));
            }
            let statement: &pgrx::spi::OwnedPreparedStatement =
                kept.as_ref().expect("prepared above");
            client.update(
                statement,
                None,
                &[
                    groups.clone().into(),
                    gids.into(),
                    done.iter().map(|(g, _)| *g).collect::<Vec<i32>>().into(),
                    done.iter()
                        .map(|(_, x)| x.clone())
                        .collect::<Vec<String>>()
                        .into(),
                ],
            )?;
            Ok::<(), pgrx::spi::SpiError>(())
        })
    })?;
    Ok(groups)
}

// A gid is unique (it names the coordinator backend and its transaction), so the rows of
// groups in $3 with gids in $4 are exactly those of `done`; with none, the first condition
// (a one-time filter) skips the scan.
const RECORD_SQL: &str = "WITH gone AS (DELETE FROM pg_catalog.pg_dist_transaction
                                WHERE pg_catalog.cardinality($4) > 0
                                  AND groupid = ANY($3) AND gid = ANY($4))
     INSERT INTO pg_catalog.pg_dist_transaction (groupid, gid, outer_xid)
     SELECT g, x, pg_catalog.pg_current_xact_id()
       FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS r(g, x)";

thread_local! {
    /// [`RECORD_SQL`], planned once per backend (PostgreSQL's plan cache replans it after a
    /// change to the table).
    /// Never freed (`ManuallyDrop`): freeing it at process exit would call into SPI then.
    static RECORD: std::cell::RefCell<Option<std::mem::ManuallyDrop<pgrx::spi::OwnedPreparedStatement>>> =
        const { std::cell::RefCell::new(None) };
}

/// The gids `pg_dist_transaction` has a decision for on group `group`, as the latest committed
/// state has them (whatever the caller's snapshot: a transaction that committed a moment ago
/// counts, under REPEATABLE READ too).
fn recorded_gids(group: i32) -> TResult<Vec<String>> {
    Ok(crate::pg::snapshot::read_latest(&format!(
        "SELECT gid FROM pg_catalog.pg_dist_transaction WHERE groupid = {group}"
    ))
    .into_iter()
    .filter_map(|mut r| r.swap_remove(0))
    .collect())
}

/// Whether the local transaction of a gid is still running: asked *before* the decisions are
/// read, so that one that commits in between is seen with its row (had it been asked after,
/// a transaction that committed between the two would look aborted).
///
/// Running means the backend named in the gid still runs that transaction, not
/// `TransactionIdIsInProgress`: after a crash the xid counter can be behind an xid handed out
/// before it (one that never reached the WAL), and that function takes every xid above the
/// last completed one for running, which would keep such a prepared transaction (and its
/// locks on the worker) waiting until the counter passes it.
fn running(gid: &str) -> bool {
    match (pid_of(gid), xid_of(gid)) {
        (Some(pid), Some(xid)) => {
            // SAFETY: a look at the proc array.
            unsafe { pg_sys::BackendXidGetPid(pg_sys::TransactionId::from(xid)) == pid }
        }
        _ => false,
    }
}

/// The coordinator backend in one of this coordinator's gids (`citus_0_<pid>_<xid>_<n>`).
fn pid_of(gid: &str) -> Option<i32> {
    gid.strip_prefix("citus_0_")?
        .split('_')
        .next()?
        .parse()
        .ok()
}

/// What recovery does with the prepared transaction `gid`, given whether its local transaction
/// was running before the decisions were read.
fn decision_now(gid: &str, was_running: bool, recorded: &[String]) -> Decision {
    decide(gid, recorded.iter().any(|r| r == gid), |_| was_running)
}

/// The local transaction id in one of this coordinator's gids (`citus_0_<pid>_<xid>_<n>`).
fn xid_of(gid: &str) -> Option<u32> {
    let rest = gid.strip_prefix("citus_0_")?;
    let mut parts = rest.split('_');
    let _pid = parts.next()?;
    parts.next()?.parse().ok()
}

/// What recovery does with one node's prepared transaction.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Commit,
    Rollback,
    Wait,
}

fn decide(gid: &str, recorded: bool, in_progress: impl Fn(u32) -> bool) -> Decision {
    if recorded {
        return Decision::Commit;
    }
    match xid_of(gid) {
        Some(xid) if in_progress(xid) => Decision::Wait,
        _ => Decision::Rollback,
    }
}

/// Finishes what two-phase commits left on the nodes; returns how many prepared transactions
/// it committed or rolled back, and whether some are left (a node that did not answer or
/// failed the command, or a transaction still committing).
pub(crate) fn recover() -> TResult<(i64, bool)> {
    let all = nodes::all()?;
    let mut finished = 0i64;
    let mut left = false;
    for node in all
        .iter()
        // The coordinator too: a reference table's placement there takes part over a
        // connection to itself.
        .filter(|n| n.isactive && n.noderole == "primary")
    {
        let address = node.address();
        let key = ConnKey::for_current_session(&address);
        let list = RemoteTask::new(
            key.clone(),
            "SELECT gid FROM pg_catalog.pg_prepared_xacts
              WHERE database = pg_catalog.current_database() AND gid LIKE 'citus\\_0\\_%'",
        )
        .within(gucs::maintenance_command_limit());
        let prepared: Vec<String> = match run_tasks(std::slice::from_ref(&list), 1)?.pop() {
            Some(Ok(results)) => match results.last() {
                Some(r) => (0..r.ntuples())
                    .filter_map(|i| r.value(i, 0).map(str::to_owned))
                    .collect(),
                None => Vec::new(),
            },
            Some(Err(e)) => {
                e.into_tessera().warn();
                left = true;
                continue;
            }
            None => continue,
        };
        // The decisions, read after the list: a transaction that commits meanwhile has its
        // row by now (a row found later only means a COMMIT PREPARED that races ours, which
        // one of the two finishes).
        let was_running: Vec<bool> = prepared.iter().map(|g| running(g)).collect();
        let recorded = recorded_gids(node.groupid)?;
        let mut gone = Vec::new();
        for (gid, &was_running) in prepared.iter().zip(&was_running) {
            let decision = decision_now(gid, was_running, &recorded);
            let command = match decision {
                Decision::Wait => {
                    left = true;
                    continue;
                }
                Decision::Commit => "COMMIT PREPARED",
                Decision::Rollback => "ROLLBACK PREPARED",
            };
            let task = RemoteTask::new(key.clone(), format!("{command} '{gid}'"))
                .within(gucs::maintenance_command_limit());
            match run_tasks(std::slice::from_ref(&task), 1)?.pop() {
                Some(Ok(_)) => {
                    finished += 1;
                    if decision == Decision::Commit {
                        gone.push(gid.clone());
                    }
                }
                Some(Err(e)) => {
                    let unreachable = e.is_connection_error();
                    e.into_tessera().warn();
                    left = true;
                    if unreachable {
                        // The node's other transactions wait for the next round instead of
                        // each waiting out the limit again.
                        break;
                    }
                }
                None => {}
            }
        }
        // Rows of transactions no longer prepared on the node: committed.
        gone.extend(recorded.iter().filter(|g| !prepared.contains(g)).cloned());
        if !gone.is_empty() {
            let _write = crate::metadata::CatalogWrite::begin();
            Spi::run_with_args(
                "DELETE FROM pg_catalog.pg_dist_transaction WHERE groupid = $1 AND gid = ANY($2)",
                &[node.groupid.into(), gone.into()],
            )?;
        }
    }
    Ok((finished, left))
}

/// Citus's `recover_prepared_transactions()`.
#[pg_extern(sql = false)]
fn recover_prepared_transactions() -> i32 {
    recover().or_report().0 as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let none = |_| false;
        let all = |_| true;
        assert_eq!(decide("citus_0_12_345_1", true, none), Decision::Commit);
        assert_eq!(decide("citus_0_12_345_1", false, none), Decision::Rollback);
        assert_eq!(decide("citus_0_12_345_1", false, all), Decision::Wait);
        assert_eq!(xid_of("citus_0_12_345_1"), Some(345));
        assert_eq!(pid_of("citus_0_12_345_1"), Some(12));
        assert_eq!(pid_of("citus_3_12_345_1"), None);
        assert_eq!(xid_of("citus_3_12_345_1"), None);
        assert_eq!(decide("citus_0_garbage", false, all), Decision::Rollback);
    }
}

/// The prepared transactions this coordinator's two-phase commits have on the workers now,
/// with their age and what recovery will do with each: `commit` (the decision is recorded),
/// `rollback` (none is, and the transaction that prepared it is gone) or `wait` (it is still
/// committing). Rows of the view `tessera_in_doubt_transactions`.
#[pg_extern(sql = false)]
fn tessera_in_doubt_transactions() -> TableIterator<
    'static,
    (
        name!(node_name, String),
        name!(node_port, i32),
        name!(gid, String),
        name!(prepared, String),
        name!(age_seconds, f64),
        name!(decision, String),
    ),
> {
    let rows = (|| -> TResult<Vec<_>> {
        let all = nodes::all()?;
        let mut out = Vec::new();
        for node in all
            .iter()
            // The coordinator too: a reference table's placement there takes part over a
            // connection to itself.
            .filter(|n| n.isactive && n.noderole == "primary")
        {
            let task = RemoteTask::new(
                ConnKey::for_current_session(&node.address()),
                "SELECT gid, prepared::text, extract(epoch FROM pg_catalog.now() - prepared)::float8
                   FROM pg_catalog.pg_prepared_xacts
                  WHERE database = pg_catalog.current_database() AND gid LIKE 'citus\\_0\\_%'
                  ORDER BY prepared",
            )
            .within(gucs::maintenance_command_limit());
            let results = match run_tasks(std::slice::from_ref(&task), 1)?.pop() {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    e.into_tessera().warn();
                    continue;
                }
                None => continue,
            };
            let Some(r) = results.last() else { continue };
            let gids: Vec<String> = (0..r.ntuples())
                .map(|i| r.value(i, 0).unwrap_or_default().to_string())
                .collect();
            let was_running: Vec<bool> = gids.iter().map(|g| running(g)).collect();
            let recorded = recorded_gids(node.groupid)?;
            for (i, gid) in gids.into_iter().enumerate() {
                let decision = match decision_now(&gid, was_running[i], &recorded) {
                    Decision::Commit => "commit",
                    Decision::Rollback => "rollback",
                    Decision::Wait => "wait",
                };
                out.push((
                    node.nodename.clone(),
                    node.nodeport,
                    gid,
                    r.value(i, 1).unwrap_or_default().to_string(),
                    r.value(i, 2).and_then(|v| v.parse().ok()).unwrap_or(0.0),
                    decision.to_string(),
                ));
            }
        }
        Ok(out)
    })()
    .or_report();
    TableIterator::new(rows)
}
