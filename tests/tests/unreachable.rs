//! An unreachable worker gives a clear error (or a failed row) without hanging: a stopped
//! worker is refused at once; a "black hole" that accepts TCP connections but never answers is
//! given up after citus.node_connection_timeout. Every target is on 127.0.0.1.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tessera_integration::*;

#[test]
fn stopped_worker_is_a_failed_row_and_the_call_returns() {
    let ports = worker_ports();
    let stopped = *ports.last().unwrap();
    let mut c = coordinator();
    {
        let _node = StoppedNode::stop(stopped);
        let start = Instant::now();
        let rows = c
            .query(
                "SELECT nodeport, success, result FROM run_command_on_workers('select pg_backend_pid()') ORDER BY nodeport",
                &[],
            )
            .unwrap();
        let elapsed = start.elapsed();
        assert_eq!(rows.len(), ports.len(), "one row per worker");
        for row in &rows {
            let port: i32 = row.get(0);
            let success: bool = row.get(1);
            let result: String = row.get(2);
            if port == stopped as i32 {
                assert!(!success);
                // Refused, or (seen once, when the worker had only just stopped) closed by
                // the server during the connection's start-up: a connection error either way.
                assert!(
                    result.contains("Connection refused")
                        || result.contains("server closed the connection"),
                    "the row carries the connection error: {result}"
                );
            } else {
                assert!(success, "worker {port}: {result}");
                assert!(result.parse::<i32>().is_ok(), "a backend pid: {result}");
            }
        }
        assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    }
    // Back up: the next call reconnects.
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM run_command_on_workers('select 1') WHERE success",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, ports.len() as i64);
}

/// A listener on 127.0.0.1 that accepts connections and never says anything.
fn black_hole() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    thread::spawn(move || {
        for s in listener.incoming().flatten() {
            held.lock().unwrap().push(s);
        }
    });
    port
}

#[test]
fn silent_node_times_out_with_a_clear_error() {
    let port = black_hole();
    let mut c = coordinator();
    c.batch_execute("SET citus.node_connection_timeout = '1s'")
        .unwrap();
    let before: i64 = c
        .query_one("SELECT count(*) FROM pg_dist_node", &[])
        .unwrap()
        .get(0);

    let start = Instant::now();
    let err = c
        .query("SELECT citus_add_node('127.0.0.1', $1)", &[&(port as i32)])
        .expect_err("a node that never answers cannot be added");
    let elapsed = start.elapsed();
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
        "{err}"
    );
    let db = err.as_db_error().unwrap();
    assert!(db.message().contains("timeout expired"), "{}", db.message());
    assert!(db.hint().is_some(), "the error says what to do");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    let after: i64 = c
        .query_one("SELECT count(*) FROM pg_dist_node", &[])
        .unwrap()
        .get(0);
    assert_eq!(before, after, "the catalog is unchanged");

    // A registered node that went silent: its row fails, the others succeed, within bounds.
    c.execute(
        "INSERT INTO pg_dist_node (groupid, nodename, nodeport) VALUES (999, '127.0.0.1', $1)",
        &[&(port as i32)],
    )
    .unwrap();
    let start = Instant::now();
    let rows = c
        .query(
            "SELECT nodeport, success, result FROM run_command_on_workers('select 1')",
            &[],
        )
        .unwrap();
    let elapsed = start.elapsed();
    c.execute("DELETE FROM pg_dist_node WHERE groupid = 999", &[])
        .unwrap();
    assert_eq!(rows.len(), worker_ports().len() + 1);
    for row in rows {
        let p: i32 = row.get(0);
        let success: bool = row.get(1);
        let result: String = row.get(2);
        if p == port as i32 {
            assert!(!success);
            assert!(result.contains("timeout expired"), "{result}");
        } else {
            assert!(success, "worker {p}: {result}");
        }
    }
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}
