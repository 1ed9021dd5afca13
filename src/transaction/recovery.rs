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
//! own successful COMMIT PREPAREDs, 32 at a time, in a later two-phase commit (one under READ
//! COMMITTED; rows recovery is deleting at that moment are left to it). Recovery removes a row
//! only when the node has its gid prepared neither before nor after the rows were read.

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
    // SAFETY: a catalog lookup by name.
    let relid = unsafe {
        pg_sys::get_relname_relid(
            c"pg_dist_transaction".as_ptr(),
            pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE),
        )
    };
    if relid == pg_sys::InvalidOid {
        return Err(crate::error::TesseraError::new(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "cannot commit: pg_catalog.pg_dist_transaction does not exist",
        )
        .hint("The transaction rolled back: install the tessera extension in this database (CREATE EXTENSION tessera), then run it again."));
    }
    if !done.is_empty() {
        forget(done)?;
    }
    // The rows go in directly (as Citus writes them), not through SQL: this runs in every
    // two-phase commit, and a statement's executor costs more than the insert. Only into the
    // table as the extension made it; one changed since gets them through an INSERT.
    // SAFETY: the relation is opened, checked, written and closed here under
    // RowExclusiveLock; the tuples are formed from datums of the column types checked
    // (int4, text, xid8), one per column, and freed.
    let direct = unsafe {
        let rel = pg_sys::table_open(relid, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        if (*(*rel).rd_rel).relpersistence != pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char {
            pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
            return Err(crate::error::TesseraError::new(
                pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "cannot commit on several nodes: pg_catalog.pg_dist_transaction is not a logged table, so a crash would lose the commit's decision",
            )
            .hint("The transaction rolled back: ALTER TABLE pg_catalog.pg_dist_transaction SET LOGGED, then run it again."));
        }
        let direct = as_made(rel);
        if direct {
            let xid = pg_sys::GetTopFullTransactionId();
            for (group, p) in groups.iter().zip(prepared) {
                let mut values = [
                    pg_sys::Datum::from(*group),
                    p.gid.as_str().into_datum().expect("text is never NULL"),
                    pg_sys::Datum::from(xid.value),
                ];
                let mut nulls = [false; 3];
                let tuple =
                    pg_sys::heap_form_tuple((*rel).rd_att, values.as_mut_ptr(), nulls.as_mut_ptr());
                pg_sys::CatalogTupleInsert(rel, tuple);
                pg_sys::heap_freetuple(tuple);
            }
            pg_sys::CommandCounterIncrement();
        }
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        direct
    };
    if !direct {
        let _write = crate::metadata::CatalogWrite::begin();
        let inserted = Spi::connect_mut(|client| {
            client.update(
            "INSERT INTO pg_catalog.pg_dist_transaction (groupid, gid, outer_xid)
             SELECT g, x, pg_catalog.pg_current_xact_id()
               FROM ROWS FROM (pg_catalog.unnest($1::int[]), pg_catalog.unnest($2::text[])) AS r(g, x)",
            None,
            &[
                groups.clone().into(),
                prepared
                    .iter()
                    .map(|p| p.gid.clone())
                    .collect::<Vec<String>>()
                    .into(),
            ],
            )
            .map(|t| t.len())
        })?;
        // A trigger or rule that kept a row out would leave a node without its decision.
        if inserted != prepared.len() {
            return Err(crate::error::TesseraError::new(
                pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("cannot commit on several nodes: {inserted} of {} decisions were recorded in pg_catalog.pg_dist_transaction", prepared.len()),
            )
            .hint("The transaction rolled back: remove the triggers or rules on pg_dist_transaction, then run it again."));
        }
    }
    Ok(groups)
}

/// Whether `rel` is pg_dist_transaction as the extension makes it: a heap table (groupid
/// int4, gid text, outer_xid xid8), no dropped columns, no triggers, rules or CHECK
/// constraints, and its primary key its only index (CatalogTupleInsert updates plain indexes
/// only and checks nothing else).
///
/// # Safety
/// `rel` is open.
unsafe fn as_made(rel: pg_sys::Relation) -> bool {
    // SAFETY: reading an open relation's descriptor, form and index list.
    unsafe {
        let desc = (*rel).rd_att;
        let types = [pg_sys::INT4OID, pg_sys::TEXTOID, pg_sys::XID8OID];
        if (*desc).natts != 3 {
            return false;
        }
        let attrs = (*desc).attrs.as_slice(3);
        if attrs
            .iter()
            .zip(types)
            .any(|(a, t)| a.attisdropped || a.atttypid != t)
        {
            return false;
        }
        let form = (*rel).rd_rel;
        let constr = (*desc).constr;
        if (*form).relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
            || (*form).relam != pg_sys::HEAP_TABLE_AM_OID
            || !(*rel).trigdesc.is_null()
            || (*form).relhasrules
            || (!constr.is_null() && (*constr).num_check > 0)
        {
            return false;
        }
        let indexes = pg_sys::RelationGetIndexList(rel);
        let only_key = pg_sys::list_length(indexes) == 1
            && pg_sys::list_nth_oid(indexes, 0) == (*rel).rd_pkindex;
        pg_sys::list_free(indexes);
        only_key
    }
}

/// Deletes the rows of `done`, transactions this backend committed (every node done).
fn forget(done: &[(i32, String)]) -> TResult<()> {
    let _write = crate::metadata::CatalogWrite::begin();
    let args = [
        done.iter()
            .map(|(g, _)| *g)
            .collect::<Vec<i32>>()
            .into_datum(),
        done.iter()
            .map(|(_, x)| x.clone())
            .collect::<Vec<String>>()
            .into_datum(),
    ];
    let mut values: Vec<pg_sys::Datum> = args
        .iter()
        .map(|a| a.unwrap_or(pg_sys::Datum::from(0)))
        .collect();
    let nulls = [b' ' as std::ffi::c_char; 2];
    // SAFETY: SPI is connected and finished here; the plan is kept (SPI_keepplan) for the
    // backend's life; an ERROR unwinds through pgrx's guard and the transaction's abort
    // closes SPI.
    let rc = unsafe {
        pg_sys::SPI_connect();
        let plan = FORGET.with(|kept| {
            if kept.get().is_null() {
                let sql = std::ffi::CString::new(FORGET_SQL).expect("no NUL");
                let mut types = [pg_sys::INT4ARRAYOID, pg_sys::TEXTARRAYOID];
                let plan = pg_sys::SPI_prepare_cursor(
                    sql.as_ptr(),
                    types.len() as i32,
                    types.as_mut_ptr(),
                    pg_sys::CURSOR_OPT_GENERIC_PLAN as i32,
                );
                if !plan.is_null() && pg_sys::SPI_keepplan(plan) == 0 {
                    kept.set(plan);
                }
            }
            kept.get()
        });
        let rc = if plan.is_null() {
            // The prepare failed (SPI_result says how), or keeping the plan did.
            if pg_sys::SPI_result < 0 {
                pg_sys::SPI_result
            } else {
                pg_sys::SPI_ERROR_ARGUMENT
            }
        } else {
            pg_sys::SPI_execute_plan(plan, values.as_mut_ptr(), nulls.as_ptr(), false, 0)
        };
        pg_sys::SPI_finish();
        rc
    };
    if rc < 0 {
        return Err(crate::error::TesseraError::new(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("could not delete finished two-phase commits from pg_dist_transaction (SPI code {rc})"),
        )
        .hint("The transaction rolled back: check that the tessera extension is installed in this database, then run it again."));
    }
    Ok(())
}

// With a generic plan (a custom plan per call would run the planner each time). A gid is
// unique (it names the coordinator backend and its transaction), so the rows of groups in $1
// with gids in $2 are exactly those of `done`. Rows that recovery is deleting right now are
// skipped (left to it), not waited for: the committing transaction must not wait on recovery,
// nor deadlock with it.
const FORGET_SQL: &str = "DELETE FROM pg_catalog.pg_dist_transaction
     WHERE ctid = ANY (ARRAY (SELECT ctid FROM pg_catalog.pg_dist_transaction
                               WHERE groupid = ANY ($1) AND gid = ANY ($2)
                                 FOR UPDATE SKIP LOCKED))";

thread_local! {
    /// [`FORGET_SQL`], planned once per backend (PostgreSQL's plan cache replans it after a
    /// change to the table). Never freed.
    static FORGET: std::cell::Cell<pg_sys::SPIPlanPtr> =
        const { std::cell::Cell::new(std::ptr::null_mut()) };
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
        let prepared: Vec<String> = match list_prepared(&key)? {
            Ok(gids) => gids,
            Err(e) => {
                e.into_tessera().warn();
                left = true;
                continue;
            }
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
        // Rows of transactions no longer prepared on the node: committed. Not one prepared
        // after the first list was read (its row may be there by now while its COMMIT
        // PREPARED is still to come): the node is asked again, and a row goes only if its gid
        // is in neither list, as Citus does.
        match list_prepared(&key)? {
            Ok(again) => gone.extend(
                recorded
                    .iter()
                    .filter(|g| !prepared.contains(g) && !again.contains(g))
                    .cloned(),
            ),
            Err(e) => {
                e.into_tessera().warn();
                left = true;
            }
        }
        if !gone.is_empty() {
            let _write = crate::metadata::CatalogWrite::begin();
            // Rows a backend is deleting right now are its own (back to it if it aborts).
            Spi::run_with_args(
                "DELETE FROM pg_catalog.pg_dist_transaction
                  WHERE ctid = ANY (ARRAY (SELECT ctid FROM pg_catalog.pg_dist_transaction
                                            WHERE groupid = $1 AND gid = ANY ($2)
                                              FOR UPDATE SKIP LOCKED))",
                &[node.groupid.into(), gone.into()],
            )?;
        }
    }
    Ok((finished, left))
}

/// The gids of the prepared transactions this coordinator made on `key`'s node.
fn list_prepared(key: &ConnKey) -> TResult<Result<Vec<String>, crate::connection::RemoteError>> {
    let list = RemoteTask::new(
        key.clone(),
        "SELECT gid FROM pg_catalog.pg_prepared_xacts
          WHERE database = pg_catalog.current_database() AND gid LIKE 'citus\\_0\\_%'",
    )
    .within(gucs::maintenance_command_limit());
    Ok(match run_tasks(std::slice::from_ref(&list), 1)?.pop() {
        Some(Ok(results)) => Ok(match results.last() {
            Some(r) => (0..r.ntuples())
                .filter_map(|i| r.value(i, 0).map(str::to_owned))
                .collect(),
            None => Vec::new(),
        }),
        Some(Err(e)) => Err(e),
        None => Err(crate::connection::RemoteError::connection(
            &key.node,
            "the node did not answer",
        )),
    })
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
