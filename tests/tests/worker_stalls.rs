//! A node that stalls (its postmaster stopped with SIGSTOP: a network partition looks the
//! same to the coordinator) cannot stall the coordinator's backend. Kept in a test binary of
//! its own that runs after the others: stopping a postmaster is the most disruptive thing the
//! suite does to the cluster.

use std::thread;
use std::time::{Duration, Instant};

use tessera_integration::*;

/// A cancel request that cannot complete (the node's postmaster does not answer: a network
/// partition behaves the same) does not hold up the statement that sends it: the timeout's
/// error reaches the client at once, and the session goes on. (Were the cancel to block, the
/// watchdog below resumes the node after 15 s, so the test fails instead of hanging.)
#[test]
fn a_cancel_that_cannot_reach_the_node_does_not_block() {
    let port = worker_ports()[0];
    let mut c = coordinator();
    // The connection to the node is opened before its postmaster stops.
    c.query("SELECT * FROM run_command_on_workers('select 1')", &[])
        .unwrap();
    c.batch_execute("SET statement_timeout = '1s'").unwrap();
    let frozen = FrozenPostmaster::freeze(port);
    let (tx, rx) = std::sync::mpsc::channel();
    let runner = thread::spawn(move || {
        let start = Instant::now();
        let r = c.query(
            &format!(
                "SELECT * FROM run_command_on_workers('select pg_sleep(20) /* {FROZEN_MARK} */')"
            ),
            &[],
        );
        let _ = tx.send(());
        (c, r, start.elapsed())
    });
    let _ = rx.recv_timeout(Duration::from_secs(15));
    drop(frozen);
    let (mut c, result, elapsed) = runner.join().unwrap();
    let err = result.expect_err("the statement times out");
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "the timeout took {elapsed:?}: the cancel to the stopped node blocked"
    );
    c.batch_execute("RESET statement_timeout").unwrap();
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM run_command_on_workers('select 1')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, worker_ports().len() as i64);
    // The node serves new connections again before the suite goes on.
    assert!(
        eventually(Duration::from_secs(30), || {
            std::panic::catch_unwind(|| connect(port).query_one("SELECT 1", &[]).is_ok())
                .unwrap_or(false)
        }),
        "the node answers again"
    );
    let own = || -> i64 {
        worker_ports()
            .into_iter()
            .map(|p| active_queries_like(p, FROZEN_MARK))
            .sum()
    };
    assert!(
        eventually(Duration::from_secs(40), || own() == 0),
        "the sleeps end"
    );
}

/// A node that stalls with its connections open (every process of it stopped: a network
/// partition after the connections were made looks the same) holds up two-phase commit
/// recovery no longer than `tessera.maintenance_command_timeout`: the call ends, a WARNING
/// names the node, and what another node had left prepared is rolled back in the same call.
/// The maintenance worker's recovery, deadlock detection and cleanup run their commands under
/// the same limit. (Were recovery to wait on the stalled node, the watchdog below resumes the
/// node after 15 s, so the test fails instead of hanging; with the limit off it does.)
#[test]
fn a_stalled_node_does_not_hold_up_recovery() {
    let stalled = worker_ports()[0];
    let other = worker_ports()[1];
    let mut c = coordinator();
    let mut o = connect(other);
    o.batch_execute("DROP TABLE IF EXISTS it_stall_scratch; CREATE TABLE it_stall_scratch (i int)")
        .unwrap();
    // The session's connections to every node are open (and cached) before the node stalls.
    c.query_one("SELECT recover_prepared_transactions()", &[])
        .unwrap();
    // What a coordinator that died after PREPARE leaves on another node.
    o.batch_execute(
        "BEGIN; INSERT INTO it_stall_scratch VALUES (2); PREPARE TRANSACTION 'citus_0_1_3_98'",
    )
    .unwrap();
    c.batch_execute("SET tessera.maintenance_command_timeout = '2s'")
        .unwrap();
    let log_before = node_log(coordinator_port()).len();
    let frozen = FrozenNode::freeze(stalled);
    let (tx, rx) = std::sync::mpsc::channel();
    let runner = thread::spawn(move || {
        let start = Instant::now();
        let r = c
            .query_one("SELECT recover_prepared_transactions()", &[])
            .map(|row| row.get::<_, i32>(0));
        let _ = tx.send(());
        (c, r, start.elapsed())
    });
    let _ = rx.recv_timeout(Duration::from_secs(15));
    drop(frozen);
    let (mut c, result, elapsed) = runner.join().unwrap();
    assert!(
        elapsed < Duration::from_secs(10),
        "recovery took {elapsed:?}: it waited on the stalled node"
    );
    assert!(result.expect("recovery ends without an error") >= 1);
    let left: i64 = o
        .query_one(
            "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'citus_0_1_3_98'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        left, 0,
        "the other node's prepared transaction is rolled back"
    );
    let log = node_log(coordinator_port());
    assert!(
        log[log_before..].contains("within 2000 ms (tessera.maintenance_command_timeout)"),
        "a WARNING names the limit"
    );
    c.batch_execute("RESET tessera.maintenance_command_timeout")
        .unwrap();
    o.batch_execute("DROP TABLE it_stall_scratch").unwrap();
    // The node answers again before the suite goes on.
    assert!(
        eventually(Duration::from_secs(30), || {
            std::panic::catch_unwind(|| connect(stalled).query_one("SELECT 1", &[]).is_ok())
                .unwrap_or(false)
        }),
        "the node answers again"
    );
}

/// Its own marker, so that the other tests never count its sleeps.
const FROZEN_MARK: &str = "tessera_frozen_node";
