//! Fault tests with real processes: a worker or the coordinator killed with SIGKILL between
//! PREPARE and COMMIT PREPARED (`tessera.test_pause_point` holds the commit there), a worker
//! stopped during a multi-shard write and during COPY. Afterwards every transaction is all or
//! nothing (row counts and checksums), and no prepared transaction is left once recovery ran.
//! While a node is down, a write to it fails at once with an error that names it, and the other
//! shards keep working. Each kill is repeated five times in a row.

use std::thread;
use std::time::{Duration, Instant};

use tessera_integration::*;

const ROUNDS: i32 = 5;

/// (row count, sum of v, md5 of every row in order): what "all or nothing" is checked with.
fn state(c: &mut Client, table: &str) -> (i64, i64, String) {
    let r = c
        .query_one(
            &format!(
                "SELECT count(*), coalesce(sum(v), 0)::int8,
                        md5(coalesce(string_agg(id || ':' || v, ',' ORDER BY id), ''))
                   FROM {table}"
            ),
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

fn prepared_everywhere() -> i64 {
    worker_ports()
        .into_iter()
        .chain([coordinator_port()])
        .map(|p| {
            reconnect(p)
                .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
                .unwrap()
                .get::<_, i64>(0)
        })
        .sum()
}

fn prepared_on(port: u16) -> i64 {
    connect(port)
        .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
        .unwrap()
        .get(0)
}

/// An error's text as the server wrote it: message, detail and hint.
fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!(
            "{} ({}; {})",
            d.message(),
            d.detail().unwrap_or(""),
            d.hint().unwrap_or("")
        ),
        None => e.to_string(),
    }
}

/// A table with `rows` rows, and two ids whose shards are on two different workers, with
/// those workers' ports.
fn setup(table: &str, rows: i32) -> (i32, i32, u16, u16) {
    let mut c = coordinator();
    // What an earlier test left prepared is finished first: each test counts its own.
    c.batch_execute("SELECT recover_prepared_transactions()")
        .unwrap();
    c.batch_execute(&format!(
        "SET client_min_messages = warning;
         DROP TABLE IF EXISTS {table};
         CREATE TABLE {table} (id int PRIMARY KEY, v int NOT NULL);
         SELECT create_distributed_table('{table}', 'id', shard_count => 8);
         INSERT INTO {table} SELECT i, 0 FROM generate_series(1, {rows}) i;"
    ))
    .unwrap();
    ids_on_two_nodes(&mut c, table)
}

/// A superuser session whose next two-phase commit pauses at `point` for `ms`.
fn pausing_session(point: &str, ms: u32) -> Client {
    let mut s = coordinator();
    s.batch_execute(&format!(
        "SET tessera.test_pause_point = '{point}'; SET tessera.test_pause_ms = {ms};
         SET client_min_messages = error"
    ))
    .unwrap();
    s
}

/// Starts `BEGIN; UPDATE a and b; COMMIT` in a thread (the COMMIT pauses), and returns once
/// both nodes have prepared.
fn commit_in_background(
    mut s: Client,
    table: &str,
    a: i32,
    b: i32,
    pa: u16,
    pb: u16,
) -> thread::JoinHandle<Result<(), postgres::Error>> {
    s.batch_execute(&format!(
        "BEGIN; UPDATE {table} SET v = v + 1 WHERE id = {a}; UPDATE {table} SET v = v + 1 WHERE id = {b}"
    ))
    .unwrap();
    let handle = thread::spawn(move || s.batch_execute("COMMIT"));
    assert!(
        eventually(Duration::from_secs(20), || prepared_on(pa) > 0
            && prepared_on(pb) > 0),
        "the nodes never prepared"
    );
    handle
}

fn values(c: &mut Client, table: &str, a: i32, b: i32) -> Vec<i32> {
    c.query(
        &format!("SELECT v FROM {table} WHERE id IN ({a}, {b}) ORDER BY id"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn a_worker_killed_after_the_commit_point_has_the_commit_after_recovery() {
    let table = "it_fault_worker";
    let (a, b, pa, pb) = setup(table, 200);
    for round in 1..=ROUNDS {
        let s = pausing_session("before_commit_prepared", 1500);
        let commit = commit_in_background(s, table, a, b, pa, pb);
        let mut dead = KilledNode::kill(pa);
        // The commit point was passed: COMMIT succeeds (a WARNING names the node).
        commit
            .join()
            .unwrap()
            .expect("COMMIT after the commit point succeeds");
        let mut c = coordinator();
        // While the node is down: a write to it fails at once and names it; the others work.
        let started = Instant::now();
        let err = c
            .batch_execute(&format!("UPDATE {table} SET v = v WHERE id = {a}"))
            .expect_err("the node is down");
        assert!(
            message(&err).contains(&format!("127.0.0.1:{pa}")),
            "round {round}: {}",
            message(&err)
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        c.batch_execute(&format!("UPDATE {table} SET v = v WHERE id = {b}"))
            .expect("the other node takes writes");
        dead.restart();
        let _ = reconnect(pa);
        let finished: i32 = c
            .query_one("SELECT recover_prepared_transactions()", &[])
            .unwrap()
            .get(0);
        assert!(finished >= 1, "round {round}: recovery finished nothing");
        assert_eq!(
            values(&mut c, table, a, b),
            vec![round, round],
            "round {round}"
        );
        assert_eq!(prepared_everywhere(), 0, "round {round}");
        let (n, sum, _) = state(&mut c, table);
        assert_eq!((n, sum), (200, 2 * round as i64), "round {round}");
    }
    coordinator()
        .batch_execute(&format!("DROP TABLE {table}"))
        .unwrap();
}

/// Updates a and b in one transaction whose two-phase commit pauses at `point`, and kills the
/// committing coordinator backend there with SIGKILL (the coordinator restarts as after a
/// crash). Returns a connection to the restarted coordinator, what the COMMIT returned, and
/// how many prepared transactions recovery then finished.
fn crash_during_commit(
    point: &str,
    table: &str,
    (a, b, pa, pb): (i32, i32, u16, u16),
) -> (Client, Result<(), postgres::Error>, i32) {
    let mut s = pausing_session(point, 3000);
    let pid: i32 = s.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let commit = commit_in_background(s, table, a, b, pa, pb);
    thread::sleep(Duration::from_millis(300));
    let mut c = crash_backend(coordinator_port(), pid);
    let committed = commit.join().unwrap();
    let finished: i32 = c
        .query_one("SELECT recover_prepared_transactions()", &[])
        .unwrap()
        .get(0);
    (c, committed, finished)
}

#[test]
fn the_coordinator_killed_after_the_commit_point_commits_everywhere() {
    let table = "it_fault_coord_commit";
    let (a, b, pa, pb) = setup(table, 200);
    for round in 1..=ROUNDS {
        let (mut c, _, finished) =
            crash_during_commit("before_commit_prepared", table, (a, b, pa, pb));
        assert_eq!(
            finished, 2,
            "round {round}: both prepared transactions committed"
        );
        assert_eq!(
            values(&mut c, table, a, b),
            vec![round, round],
            "round {round}"
        );
        assert_eq!(prepared_everywhere(), 0, "round {round}");
    }
    coordinator()
        .batch_execute(&format!("DROP TABLE {table}"))
        .unwrap();
}

#[test]
fn the_coordinator_killed_before_the_commit_point_leaves_nothing() {
    let table = "it_fault_coord_abort";
    let (a, b, pa, pb) = setup(table, 200);
    let before = state(&mut coordinator(), table);
    for round in 1..=ROUNDS {
        let (mut c, committed, finished) =
            crash_during_commit("after_prepare", table, (a, b, pa, pb));
        assert!(committed.is_err(), "the COMMIT never returns success");
        assert_eq!(
            finished, 2,
            "round {round}: both prepared transactions rolled back"
        );
        assert_eq!(state(&mut c, table), before, "round {round}");
        assert_eq!(prepared_everywhere(), 0, "round {round}");
    }
    coordinator()
        .batch_execute(&format!("DROP TABLE {table}"))
        .unwrap();
}

/// `citus.recover_2pc_interval` set on the coordinator for a test, reset when dropped
/// (whatever the test's outcome).
struct RecoveryInterval;

impl RecoveryInterval {
    fn set(value: &str) -> RecoveryInterval {
        let mut c = coordinator();
        c.batch_execute(&format!(
            "ALTER SYSTEM SET citus.recover_2pc_interval = '{value}'"
        ))
        .unwrap();
        c.batch_execute("SELECT pg_reload_conf()").unwrap();
        RecoveryInterval
    }
}

impl Drop for RecoveryInterval {
    fn drop(&mut self) {
        let mut c = reconnect(coordinator_port());
        let _ = c.batch_execute("ALTER SYSTEM RESET citus.recover_2pc_interval");
        let _ = c.batch_execute("SELECT pg_reload_conf()");
    }
}

#[test]
fn a_failed_commit_prepared_is_retried_at_once() {
    let table = "it_fault_retry";
    let (a, b, pa, pb) = setup(table, 200);
    // Recovery's own schedule is an hour away: only the retry can finish the commit in time.
    let _interval = RecoveryInterval::set("1h");
    thread::sleep(Duration::from_millis(500));
    let mut s = pausing_session("before_commit_prepared", 1500);
    s.batch_execute("SET citus.node_connection_timeout = '1s'")
        .unwrap();
    let pid: i32 = s.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let commit = commit_in_background(s, table, a, b, pa, pb);
    let warnings_before = node_log(coordinator_port())
        .matches(&format!("failed on node 127.0.0.1:{pa}"))
        .count();
    // The node's backend for this transaction goes away, and the node takes no new
    // connection for a while: its COMMIT PREPARED fails.
    connect(pa)
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE application_name = 'tessera pid={pid}'"
        ))
        .unwrap();
    let frozen = FrozenPostmaster::freeze(pa);
    commit.join().unwrap().expect("COMMIT succeeds");
    let warnings_after = node_log(coordinator_port())
        .matches(&format!("failed on node 127.0.0.1:{pa}"))
        .count();
    assert!(
        warnings_after > warnings_before,
        "COMMIT PREPARED did not fail on the frozen node"
    );
    thread::sleep(Duration::from_secs(2));
    drop(frozen);
    let retried = eventually(Duration::from_secs(40), || {
        prepared_on(pa) == 0 && values(&mut coordinator(), table, a, b) == vec![1, 1]
    });
    assert!(
        retried,
        "the commit was not retried before the next recovery"
    );
    coordinator()
        .batch_execute(&format!("DROP TABLE {table}"))
        .unwrap();
}

/// A session on node `port` that holds a SHARE lock on one of `table`'s shards there, so a
/// write to that shard waits on the node until the node stops.
fn hold_a_shard(table: &str, port: u16) -> Client {
    let shard: String = coordinator()
        .query_one(
            "SELECT shard_name FROM citus_shards WHERE table_name = $1::text::regclass AND nodeport = $2 LIMIT 1",
            &[&table, &(port as i32)],
        )
        .unwrap()
        .get(0);
    let mut holder = connect(port);
    holder
        .batch_execute(&format!("BEGIN; LOCK TABLE {shard} IN SHARE MODE"))
        .unwrap();
    holder
}

fn waiting_on(port: u16) -> bool {
    connect(port)
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0)
        > 0
}

#[test]
fn a_worker_stopped_during_a_multi_shard_write_or_copy_leaves_nothing() {
    let table = "it_fault_stop";
    let (_, _, pa, _) = setup(table, 2000);
    let mut c = coordinator();
    let before = state(&mut c, table);
    for round in 1..=ROUNDS {
        // A multi-shard UPDATE that the other nodes have done when this one stops.
        let holder = hold_a_shard(table, pa);
        let update = thread::spawn(move || {
            let mut s = coordinator();
            s.batch_execute("UPDATE it_fault_stop SET v = v + 1")
        });
        assert!(
            eventually(Duration::from_secs(20), || waiting_on(pa)),
            "round {round}: the update never waited on the node"
        );
        let stopped = StoppedNode::stop(pa);
        drop(holder);
        let err = update.join().unwrap().expect_err("the write fails");
        assert!(
            message(&err).contains(&format!("{pa}")),
            "round {round}: {}",
            message(&err)
        );
        drop(stopped);
        let _ = reconnect(pa);
        assert_eq!(
            state(&mut c, table),
            before,
            "round {round}: nothing of the UPDATE stayed"
        );
        // COPY of rows for every node when this one stops.
        let holder = hold_a_shard(table, pa);
        let copy = thread::spawn(move || {
            use std::io::Write;
            let mut s = coordinator();
            let mut w = s.copy_in("COPY it_fault_stop (id, v) FROM STDIN").unwrap();
            let rows: String = (100_001..=103_000).map(|i| format!("{i}\t7\n")).collect();
            w.write_all(rows.as_bytes()).unwrap();
            w.finish()
        });
        assert!(
            eventually(Duration::from_secs(20), || waiting_on(pa)),
            "round {round}: the copy never waited on the node"
        );
        let stopped = StoppedNode::stop(pa);
        drop(holder);
        assert!(
            copy.join().unwrap().is_err(),
            "round {round}: the COPY fails"
        );
        drop(stopped);
        let _ = reconnect(pa);
        assert_eq!(
            state(&mut c, table),
            before,
            "round {round}: nothing of the COPY stayed"
        );
        assert_eq!(prepared_everywhere(), 0, "round {round}");
    }
    c.batch_execute(&format!("DROP TABLE {table}")).unwrap();
}
