//! A multi-shard SELECT outside a transaction block streams: the coordinator passes rows on as
//! workers send them, so the first rows reach the client while another worker is still busy,
//! and a LIMIT that is satisfied early stops the remaining remote work.

use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use tessera_integration::*;

const MARK: &str = "tessera_it_stream";

/// Worker backends sleeping in a query marked with `mark`.
fn sleeping(mark: &str) -> i64 {
    worker_ports()
        .into_iter()
        .map(|p| {
            connect(p)
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE wait_event = 'PgSleep' AND strpos(query, $1) > 0",
                    &[&mark],
                )
                .unwrap()
                .get::<_, i64>(0)
        })
        .sum()
}

fn setup(c: &mut postgres::Client) {
    c.batch_execute(
        "DROP TABLE IF EXISTS stream_t;
         CREATE TABLE stream_t (k int NOT NULL, v int);
         SELECT create_distributed_table('stream_t', 'k', shard_count => 8);
         INSERT INTO stream_t SELECT g, g FROM generate_series(1, 400) g;",
    )
    .unwrap();
}

/// The rows of every node but one arrive while that node still sleeps: with results read
/// whole first, no row could reach the client before the sleep ends.
#[test]
fn rows_reach_the_client_while_a_worker_is_still_running() {
    let mut c = coordinator();
    setup(&mut c);
    // Rows wide enough that the coordinator flushes each one to the client at once; the mark
    // is a filter, so it reaches the workers' SQL.
    let sql = format!(
        "SELECT k, repeat('x', 20000) AS pad, CASE WHEN k = 1 THEN pg_sleep(60) END FROM stream_t WHERE v::text <> '{MARK}'"
    );
    let token = c.cancel_token();
    let mut rows = c
        .query_raw(sql.as_str(), std::iter::empty::<i32>())
        .unwrap();
    let first = rows.next().expect("a row or an error");
    assert!(first.is_some(), "the query returned no row");
    // Had the coordinator waited for every worker's whole result, the sleep would be over.
    assert!(
        eventually(Duration::from_secs(20), || sleeping(MARK) == 1),
        "a row reached the client, but the slow worker is not sleeping: rows were not streamed"
    );
    token.cancel_query(postgres::NoTls).unwrap();
    let mut err = None;
    loop {
        match rows.next() {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    drop(rows);
    let err = err.expect("the cancelled query fails");
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(
        eventually(Duration::from_secs(10), || sleeping(MARK) == 0),
        "the slow worker query should be cancelled"
    );
    // The session goes on.
    let n: i64 = c
        .query_one("SELECT count(*) FROM stream_t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 400);
    c.batch_execute("DROP TABLE stream_t").unwrap();
}

/// A LIMIT met by the fast nodes ends the statement: the slow node's query is cancelled
/// instead of awaited, and the next statements on the session work.
#[test]
fn an_early_limit_stops_the_other_workers() {
    let mut c = coordinator();
    c.batch_execute("DROP TABLE IF EXISTS stream_l; CREATE TABLE stream_l (k int NOT NULL, v int); SELECT create_distributed_table('stream_l', 'k', shard_count => 8); INSERT INTO stream_l SELECT g, g FROM generate_series(1, 400) g;").unwrap();
    let mark = format!("{MARK}_limit");
    let sql = format!(
        "SELECT k, CASE WHEN k = 1 THEN pg_sleep(60) END FROM stream_l WHERE v::text <> '{mark}' LIMIT 5"
    );
    let start = Instant::now();
    let n = c.query(sql.as_str(), &[]).unwrap().len();
    let elapsed = start.elapsed();
    assert_eq!(n, 5);
    assert!(
        elapsed < Duration::from_secs(45),
        "the statement waited for the sleeping worker ({elapsed:?})"
    );
    assert!(
        eventually(Duration::from_secs(10), || sleeping(&mark) == 0),
        "the sleeping worker query should be cancelled"
    );
    for _ in 0..3 {
        let n: i64 = c
            .query_one("SELECT count(*) FROM stream_l", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 400);
    }
    c.batch_execute("DROP TABLE stream_l").unwrap();
}
