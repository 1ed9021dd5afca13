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

/// The most commands seen running on the workers at one moment while `sql` runs.
fn peak_concurrency(sql: &'static str) -> i64 {
    let runner = thread::spawn(move || coordinator().query(sql, &[]).map(|rows| rows.len()));
    let mut peak = 0;
    while !runner.is_finished() {
        peak = peak.max(sleeps_running());
        thread::sleep(Duration::from_millis(20));
    }
    let rows = runner.join().unwrap().unwrap();
    assert_eq!(rows, worker_ports().len());
    peak
}

#[test]
fn workers_run_in_parallel_unless_asked_not_to() {
    let workers = worker_ports().len() as i64;
    let parallel = peak_concurrency(
        "SELECT * FROM run_command_on_workers('select pg_sleep(1.5) /* tessera_it_sleep */')",
    );
    assert_eq!(
        parallel, workers,
        "all workers should run the command at once"
    );
    let serial = peak_concurrency(
        "SELECT * FROM run_command_on_workers('select pg_sleep(0.5) /* tessera_it_sleep */', parallel => false)",
    );
    assert_eq!(serial, 1, "parallel => false runs one node at a time");
}
