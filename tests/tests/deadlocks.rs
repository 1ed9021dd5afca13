//! Distributed deadlock detection with real sessions: two transactions of an application role
//! that lock rows on two workers in opposite order do not wait forever. The maintenance
//! worker finds the cycle no single node sees and cancels the transaction that started last,
//! which gets SQLSTATE 40P01 and says why; the other one goes on and commits.

use std::thread;
use std::time::{Duration, Instant};

use tessera_integration::*;

const ROLE: &str = "it_deadlock_app";

/// A table of the application role with rows whose shards are on different workers: returns
/// two ids on two nodes.
fn setup(table: &str) -> (i32, i32) {
    let mut admin = coordinator();
    admin
        .batch_execute(&format!(
            "DO $do$ BEGIN CREATE ROLE {ROLE} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $do$"
        ))
        .unwrap();
    admin
        .batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {ROLE}"))
        .unwrap();
    // Separate statements: the role and its grant are committed on the workers before its
    // own connections use them.
    admin
        .batch_execute(&format!(
            "SET client_min_messages = warning;
             DROP TABLE IF EXISTS {table};
             SET ROLE {ROLE};
             CREATE TABLE {table} (id int PRIMARY KEY, v int NOT NULL);
             SELECT create_distributed_table('{table}', 'id', shard_count => 8);
             INSERT INTO {table} SELECT i, 0 FROM generate_series(1, 100) i;
             RESET ROLE;"
        ))
        .unwrap();
    let (a, b, _, _) = ids_on_two_nodes(&mut admin, table);
    (a, b)
}

/// A session of the application role whose statements give up after a minute at most (so a
/// deadlock that is not broken fails the test instead of hanging it).
fn session() -> Client {
    let mut c = connect_as(coordinator_port(), ROLE);
    c.batch_execute("SET statement_timeout = '60s'").unwrap();
    c
}

#[test]
fn opposite_lock_order_on_two_workers_cancels_the_younger_transaction() {
    let table = "it_deadlock";
    let (a, b) = setup(table);
    for round in 0..3 {
        let mut older = session();
        let mut younger = session();
        older
            .batch_execute(&format!(
                "BEGIN; UPDATE {table} SET v = v + 1 WHERE id = {a}"
            ))
            .unwrap();
        thread::sleep(Duration::from_millis(20));
        younger
            .batch_execute(&format!(
                "BEGIN; UPDATE {table} SET v = v + 100 WHERE id = {b}"
            ))
            .unwrap();
        let started = Instant::now();
        // The older one waits on b's node for the younger; then the younger waits on a's node
        // for the older: a cycle across two workers.
        let waiter = thread::spawn(move || {
            let r = older.batch_execute(&format!("UPDATE {table} SET v = v + 1 WHERE id = {b}"));
            (older, r)
        });
        assert!(
            eventually(Duration::from_secs(10), || {
                worker_ports()
                    .into_iter()
                    .map(|p| {
                        connect(p)
                            .query_one(
                                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                                &[],
                            )
                            .unwrap()
                            .get::<_, i64>(0)
                    })
                    .sum::<i64>()
                    > 0
            }),
            "the first transaction never waited"
        );
        let err = younger
            .batch_execute(&format!("UPDATE {table} SET v = v + 100 WHERE id = {a}"))
            .expect_err("the younger transaction is the one cancelled");
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "40P01", "round {round}: {db:?}");
        assert!(
            db.message().contains("distributed deadlock"),
            "round {round}: {}",
            db.message()
        );
        younger.batch_execute("ROLLBACK").unwrap();
        let (mut older, r) = waiter.join().unwrap();
        r.unwrap_or_else(|e| panic!("round {round}: the older transaction failed: {e}"));
        older.batch_execute("COMMIT").unwrap();
        // Found in a few deadlock_timeouts, not at the statement timeout.
        assert!(started.elapsed() < Duration::from_secs(30));
        let mut check = coordinator();
        let rows: Vec<(i32, i32)> = check
            .query(
                &format!("SELECT id, v FROM {table} WHERE id IN ({a}, {b}) ORDER BY id"),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let n = round + 1;
        assert_eq!(rows, vec![(a, n), (b, n)], "only the older one's writes");
        // Nothing is left waiting or prepared.
        for p in worker_ports() {
            let left: i64 = connect(p)
                .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
                .unwrap()
                .get(0);
            assert_eq!(left, 0);
        }
    }
    coordinator()
        .batch_execute(&format!("DROP TABLE {table}"))
        .unwrap();
}

#[test]
fn waits_that_are_not_a_cycle_are_left_alone() {
    let table = "it_deadlock_chain";
    let (a, b) = setup(table);
    // A chain across two nodes: the third waits (on b's node) for the second, which waits (on
    // a's node) for the first. Two transactions wait, so the detector builds the graph, and
    // finds no cycle in it.
    let mut first = session();
    let mut second = session();
    let mut third = session();
    first
        .batch_execute(&format!("BEGIN; UPDATE {table} SET v = 1 WHERE id = {a}"))
        .unwrap();
    second
        .batch_execute(&format!("BEGIN; UPDATE {table} SET v = 1 WHERE id = {b}"))
        .unwrap();
    let second_waits = thread::spawn(move || {
        let r = second.batch_execute(&format!("UPDATE {table} SET v = 2 WHERE id = {a}"));
        (second, r)
    });
    third.batch_execute("BEGIN").unwrap();
    let third_waits = thread::spawn(move || {
        let r = third.batch_execute(&format!("UPDATE {table} SET v = 3 WHERE id = {b}"));
        (third, r)
    });
    // Longer than several detection rounds (deadlock_timeout 1s × 2).
    thread::sleep(Duration::from_secs(6));
    first.batch_execute("COMMIT").unwrap();
    let (mut second, r) = second_waits.join().unwrap();
    r.expect("the second goes on once the first commits");
    second.batch_execute("COMMIT").unwrap();
    let (mut third, r) = third_waits.join().unwrap();
    r.expect("the third goes on once the second commits");
    third.batch_execute("COMMIT").unwrap();
    let rows: Vec<(i32, i32)> = coordinator()
        .query(
            &format!("SELECT id, v FROM {table} WHERE id IN ({a}, {b}) ORDER BY id"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, vec![(a, 2), (b, 3)]);
    coordinator()
        .batch_execute(&format!("DROP TABLE {table}"))
        .unwrap();
}
