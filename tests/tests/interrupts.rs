//! Waiting on workers respects interrupts: a cancel or statement_timeout stops a distributed
//! command promptly and cancels its remote parts; work really runs on all workers at once.

use std::thread;
use std::time::{Duration, Instant};

use tessera_integration::*;

const MARK: &str = "tessera_it_sleep";

fn sleeps_running() -> i64 {
    worker_ports()
        .into_iter()
        .map(|p| active_queries_like(p, MARK))
        .sum()
}

#[test]
fn cancel_stops_remote_work_promptly() {
    let mut c = coordinator();
    let token = c.cancel_token();
    let runner = thread::spawn(move || {
        let start = Instant::now();
        let r = c.query(
            &format!("SELECT * FROM run_command_on_workers('select pg_sleep(60) /* {MARK} */')"),
            &[],
        );
        (r, start.elapsed())
    });
    let workers = worker_ports().len() as i64;
    assert!(
        eventually(Duration::from_secs(20), || sleeps_running() == workers),
        "the command should be running on every worker at once"
    );
    token.cancel_query(NoTls).unwrap();
    let (result, elapsed) = runner.join().unwrap();
    let err = result.expect_err("a cancelled command fails");
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(30), "cancel took {elapsed:?}");
    assert!(
        eventually(Duration::from_secs(10), || sleeps_running() == 0),
        "the sleeps on the workers should be cancelled too"
    );
}

#[test]
fn statement_timeout_stops_remote_work() {
    let mut c = coordinator();
    c.batch_execute("SET statement_timeout = '1s'").unwrap();
    let err = c
        .query(
            &format!("SELECT * FROM run_command_on_workers('select pg_sleep(60) /* {MARK} */')"),
            &[],
        )
        .expect_err("the statement times out");
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(
        eventually(Duration::from_secs(10), || sleeps_running() == 0),
        "the sleeps on the workers should be cancelled too"
    );
    // The session stays usable, with its cached connections.
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM run_command_on_workers('select 1') WHERE success",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, worker_ports().len() as i64);
}

/// Runs a 0.4 s command on every worker and returns whether all of their run intervals overlap
/// and whether none of them do. Each worker reports when its statement started and when its
/// sleep ended; all nodes share this machine's clock.
fn overlap(parallel: bool) -> (bool, bool) {
    let row = coordinator()
        .query_one(
            "WITH r AS (
                SELECT split_part(result, '|', 1)::timestamptz AS s,
                       split_part(result, '|', 2)::timestamptz AS e, success
                  FROM run_command_on_workers(
                       $$SELECT statement_timestamp()::text || '|' ||
                                (SELECT clock_timestamp()::text FROM pg_sleep(0.4))$$,
                       parallel => $1))
             SELECT bool_and(success) AND count(*) = $2,
                    max(s) < min(e),
                    coalesce((SELECT bool_and(NOT (a.s < b.e AND b.s < a.e))
                                FROM r a JOIN r b ON a.s < b.s), true)
               FROM r",
            &[&parallel, &(worker_ports().len() as i64)],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0), "every worker ran the command");
    (row.get(1), row.get(2))
}

#[test]
fn workers_run_in_parallel_unless_asked_not_to() {
    let (all, none) = overlap(true);
    assert!(
        all,
        "with parallel => true all workers run at the same time"
    );
    assert!(!none);
    let (all, none) = overlap(false);
    assert!(
        none,
        "with parallel => false no two workers run at the same time"
    );
    assert!(!all);
}

/// A distributed SELECT whose shard queries sleep: cancel reaches every worker.
#[test]
fn cancel_stops_a_distributed_query() {
    let mut setup = coordinator();
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS it_sleepy;
             CREATE TABLE it_sleepy (k int PRIMARY KEY);
             INSERT INTO it_sleepy SELECT generate_series(1, 64);
             SELECT create_distributed_table('it_sleepy', 'k', shard_count => 8);",
        )
        .unwrap();
    let mut c = coordinator();
    let token = c.cancel_token();
    // The mark lands in the worker SQL as a string constant.
    let runner = thread::spawn(move || {
        let start = Instant::now();
        let r = c.query(
            &format!(
                "SELECT count(*) FROM it_sleepy WHERE pg_sleep(5) IS NOT NULL AND '{MARK}' <> ''"
            ),
            &[],
        );
        (r, start.elapsed())
    });
    let workers = worker_ports().len() as i64;
    assert!(
        eventually(Duration::from_secs(20), || sleeps_running() == workers),
        "the query should be running on every worker at once"
    );
    token.cancel_query(NoTls).unwrap();
    let (result, elapsed) = runner.join().unwrap();
    let err = result.expect_err("a cancelled query fails");
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(30), "cancel took {elapsed:?}");
    assert!(
        eventually(Duration::from_secs(10), || sleeps_running() == 0),
        "the shard queries on the workers should be cancelled too"
    );
    // statement_timeout does the same, and the session stays usable.
    let mut c = coordinator();
    c.batch_execute("SET statement_timeout = '1s'").unwrap();
    let err = c
        .query(
            &format!(
                "SELECT count(*) FROM it_sleepy WHERE pg_sleep(5) IS NOT NULL AND '{MARK}' <> ''"
            ),
            &[],
        )
        .expect_err("the query times out");
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(
        eventually(Duration::from_secs(10), || sleeps_running() == 0),
        "the shard queries on the workers should be cancelled too"
    );
    let n: i64 = c
        .query_one("SELECT count(*) FROM it_sleepy", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 64);
    setup.batch_execute("DROP TABLE it_sleepy").unwrap();
}
