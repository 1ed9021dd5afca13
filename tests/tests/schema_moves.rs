//! `citus_schema_move` with `block_writes`: while the move runs, reads of the tenant go on (from
//! the old placement), writes wait and then land on the new node; nothing is lost, and the old
//! placement stays until `citus_cleanup_orphaned_resources()` drops it.

use std::thread;
use std::time::Duration;

use tessera_integration::*;

fn shard_rows(port: u16, shard: &str) -> Option<i64> {
    let mut c = connect(port);
    c.query_one(&format!("SELECT count(*) FROM {shard}"), &[])
        .ok()
        .map(|r| r.get(0))
}

#[test]
fn move_keeps_reads_blocks_writes_and_loses_nothing() {
    let workers = worker_ports();
    let (from, to) = (workers[0], workers[1]);
    let mut admin = coordinator();
    admin
        .batch_execute(&format!(
            "SET client_min_messages = warning;
             DROP SCHEMA IF EXISTS it_move CASCADE;
             CREATE SCHEMA it_move;
             CREATE TABLE it_move.items (id int PRIMARY KEY, v text NOT NULL);
             INSERT INTO it_move.items SELECT i, 'v' || i FROM generate_series(1, 1000) i;
             SELECT citus_schema_distribute('it_move', node_name => '127.0.0.1', node_port => {from});"
        ))
        .unwrap();
    let shard: String = admin
        .query_one(
            "SELECT shard_name::text FROM citus_shards WHERE table_name = 'it_move.items'::regclass",
            &[],
        )
        .unwrap()
        .get(0);

    // The move, in a transaction left open: its locks hold until COMMIT.
    let mut mover = coordinator();
    mover
        .batch_execute(&format!(
            "SET client_min_messages = warning; BEGIN;
             SELECT citus_schema_move('it_move', '127.0.0.1', {to});"
        ))
        .unwrap();

    // A read goes on, from the old placement.
    let mut reader = coordinator();
    let n: i64 = reader
        .query_one("SELECT count(*) FROM it_move.items", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1000);

    // A write waits for the move.
    let writer = thread::spawn(|| {
        let mut w = coordinator();
        w.execute(
            "INSERT INTO it_move.items VALUES (1001, 'written during the move')",
            &[],
        )
    });
    let coordinator_port = coordinator_port();
    assert!(
        eventually(Duration::from_secs(20), || {
            let mut c = connect(coordinator_port);
            let waiting: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO it_move.items%'",
                    &[],
                )
                .unwrap()
                .get(0);
            waiting == 1
        }),
        "the write should wait for the move's lock"
    );
    thread::sleep(Duration::from_millis(300));
    assert!(
        !writer.is_finished(),
        "the write must not finish before the move commits"
    );

    mover.batch_execute("COMMIT").unwrap();
    assert_eq!(writer.join().unwrap().unwrap(), 1);

    // Every row is on the new node, the write included; the old placement is still there,
    // with the rows as they were when the move copied them.
    assert_eq!(shard_rows(to, &shard), Some(1001));
    assert_eq!(shard_rows(from, &shard), Some(1000));
    let (n, during): (i64, i64) = {
        let r = reader
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE id = 1001) FROM it_move.items",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((n, during), (1001, 1));
    let port: i32 = admin
        .query_one(
            "SELECT nodeport FROM citus_shards WHERE table_name = 'it_move.items'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(port, i32::from(to));

    // Cleanup drops the old placement.
    admin
        .batch_execute("CALL citus_cleanup_orphaned_resources()")
        .unwrap();
    assert_eq!(shard_rows(from, &shard), None);
    let left: i64 = admin
        .query_one("SELECT count(*) FROM pg_dist_cleanup", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    admin
        .batch_execute("SET client_min_messages = warning; DROP SCHEMA it_move CASCADE")
        .unwrap();
}

#[test]
fn a_failed_move_changes_nothing() {
    let workers = worker_ports();
    let (from, to) = (workers[2], workers[3]);
    let mut admin = coordinator();
    admin
        .batch_execute(&format!(
            "SET client_min_messages = warning;
             DROP SCHEMA IF EXISTS it_move_fail CASCADE;
             CREATE SCHEMA it_move_fail;
             CREATE TABLE it_move_fail.items (id int PRIMARY KEY);
             INSERT INTO it_move_fail.items SELECT generate_series(1, 100);
             SELECT citus_schema_distribute('it_move_fail', node_name => '127.0.0.1', node_port => {from});"
        ))
        .unwrap();
    let shard: String = admin
        .query_one(
            "SELECT shard_name::text FROM citus_shards WHERE table_name = 'it_move_fail.items'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    // The target already has a table of that name: the move fails half-way.
    let mut target = connect(to);
    target
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS it_move_fail; CREATE TABLE {shard} (x int)"
        ))
        .unwrap();
    let err = admin
        .batch_execute(&format!(
            "SELECT citus_schema_move('it_move_fail', '127.0.0.1', {to})"
        ))
        .expect_err("the move fails");
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains("already exists"), "{message}");
    // Nothing changed: the placement, the rows, and the target's own table.
    let port: i32 = admin
        .query_one(
            "SELECT nodeport FROM citus_shards WHERE table_name = 'it_move_fail.items'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(port, i32::from(from));
    assert_eq!(shard_rows(from, &shard), Some(100));
    assert_eq!(shard_rows(to, &shard), Some(0));
    let n: i64 = admin
        .query_one("SELECT count(*) FROM it_move_fail.items", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 100);
    target
        .batch_execute("DROP SCHEMA it_move_fail CASCADE")
        .unwrap();
    admin
        .batch_execute("SET client_min_messages = warning; DROP SCHEMA it_move_fail CASCADE")
        .unwrap();
}

#[test]
fn a_table_made_during_a_move_lands_with_its_schema() {
    let workers = worker_ports();
    let (from, to) = (workers[1], workers[2]);
    let mut admin = coordinator();
    admin
        .batch_execute(&format!(
            "SET client_min_messages = warning;
             DROP SCHEMA IF EXISTS it_race CASCADE;
             CREATE SCHEMA it_race;
             CREATE TABLE it_race.a (id int PRIMARY KEY);
             INSERT INTO it_race.a SELECT generate_series(1, 10);
             SELECT citus_schema_distribute('it_race', node_name => '127.0.0.1', node_port => {from});"
        ))
        .unwrap();
    let mut mover = coordinator();
    mover
        .batch_execute(&format!(
            "SET client_min_messages = warning; BEGIN;
             SELECT citus_schema_move('it_race', '127.0.0.1', {to});"
        ))
        .unwrap();
    // CREATE TABLE in the schema waits for the move (it locks the schema shared).
    let creator = thread::spawn(|| {
        let mut c = coordinator();
        c.batch_execute(
            "SET client_min_messages = warning;
             CREATE TABLE it_race.late (id int PRIMARY KEY);
             INSERT INTO it_race.late SELECT generate_series(1, 5);",
        )
    });
    let coordinator_port = coordinator_port();
    assert!(
        eventually(Duration::from_secs(20), || {
            let mut c = connect(coordinator_port);
            let waiting: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE wait_event_type = 'Lock' AND query LIKE '%CREATE TABLE it_race.late%'",
                    &[],
                )
                .unwrap()
                .get(0);
            waiting == 1
        }),
        "CREATE TABLE should wait for the move"
    );
    mover.batch_execute("COMMIT").unwrap();
    creator.join().unwrap().unwrap();
    // Both tables on the new node: a join of the two runs there.
    let ports: Vec<i32> = admin
        .query(
            "SELECT DISTINCT nodeport FROM citus_shards WHERE table_name::text LIKE 'it_race.%'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ports, vec![i32::from(to)]);
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM it_race.a JOIN it_race.late USING (id)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 5);
    admin
        .batch_execute(
            "SET client_min_messages = warning; DROP SCHEMA it_race CASCADE;
             CALL citus_cleanup_orphaned_resources();",
        )
        .unwrap();
}

#[test]
fn two_sessions_distribute_one_schema() {
    let mut admin = coordinator();
    admin
        .batch_execute(
            "SET client_min_messages = warning;
             DROP SCHEMA IF EXISTS it_twice CASCADE;
             CREATE SCHEMA it_twice;
             CREATE TABLE it_twice.a (id int PRIMARY KEY);",
        )
        .unwrap();
    let mut first = coordinator();
    first
        .batch_execute(
            "SET client_min_messages = warning; BEGIN; SELECT citus_schema_distribute('it_twice');",
        )
        .unwrap();
    let second = thread::spawn(|| {
        let mut c = coordinator();
        c.batch_execute(
            "SET client_min_messages = warning; SELECT citus_schema_distribute('it_twice');",
        )
    });
    thread::sleep(Duration::from_millis(500));
    first.batch_execute("COMMIT").unwrap();
    let err = second
        .join()
        .unwrap()
        .expect_err("the second one is refused");
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::DUPLICATE_OBJECT),
        "{err}"
    );
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_dist_schema WHERE schemaid = 'it_twice'::regnamespace",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    admin
        .batch_execute("SET client_min_messages = warning; DROP SCHEMA it_twice CASCADE;")
        .unwrap();
}
