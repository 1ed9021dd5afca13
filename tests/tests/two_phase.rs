//! Two-phase commit with real processes: a transaction that wrote on two workers is all or
//! nothing when one of them goes away before the commit, nothing stays prepared, and the
//! workers' transactions take the coordinator's isolation level.

use std::thread;
use std::time::Duration;

use tessera_integration::*;

fn prepared_on_workers() -> i64 {
    worker_ports()
        .into_iter()
        .map(|p| {
            connect(p)
                .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
                .unwrap()
                .get::<_, i64>(0)
        })
        .sum()
}

#[test]
fn a_worker_that_goes_away_before_commit_leaves_nothing_committed() {
    let mut admin = coordinator();
    admin
        .batch_execute(
            "SET client_min_messages = warning;
             DROP TABLE IF EXISTS it_2pc;
             CREATE TABLE it_2pc (id int PRIMARY KEY, v int NOT NULL);
             SELECT create_distributed_table('it_2pc', 'id', shard_count => 8);
             INSERT INTO it_2pc SELECT i, 0 FROM generate_series(1, 100) i;",
        )
        .unwrap();
    let (a, b, _port_a, port_b) = ids_on_two_nodes(&mut admin, "it_2pc");
    let mut c = coordinator();
    c.batch_execute("BEGIN").unwrap();
    c.execute("UPDATE it_2pc SET v = 1 WHERE id = $1", &[&a])
        .unwrap();
    c.execute("UPDATE it_2pc SET v = 1 WHERE id = $1", &[&b])
        .unwrap();
    let err = {
        let _down = StoppedNode::stop(port_b);
        c.batch_execute("COMMIT").expect_err("the commit fails")
    };
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_else(|| err.to_string());
    assert!(!message.is_empty());
    // The node is back: neither write happened, nothing is left prepared.
    assert!(
        eventually(Duration::from_secs(30), || {
            connect(coordinator_port())
                .query_one("SELECT count(*) FROM it_2pc WHERE v = 1", &[])
                .map(|r| r.get::<_, i64>(0) == 0)
                .unwrap_or(false)
        }),
        "no write may survive a failed commit"
    );
    let recovered: i32 = admin
        .query_one("SELECT recover_prepared_transactions()", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        recovered, 0,
        "the failed commit rolled its prepared transactions back itself"
    );
    assert_eq!(prepared_on_workers(), 0);
    // A transaction across the same two nodes commits on both.
    let mut c = coordinator();
    c.batch_execute("BEGIN").unwrap();
    c.execute("UPDATE it_2pc SET v = 2 WHERE id = $1", &[&a])
        .unwrap();
    c.execute("UPDATE it_2pc SET v = 2 WHERE id = $1", &[&b])
        .unwrap();
    c.batch_execute("COMMIT").unwrap();
    let n: i64 = admin
        .query_one("SELECT count(*) FROM it_2pc WHERE v = 2", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    assert_eq!(prepared_on_workers(), 0);
    admin.batch_execute("DROP TABLE it_2pc").unwrap();
}

#[test]
fn workers_run_in_the_coordinators_isolation_level() {
    let mut admin = coordinator();
    admin
        .batch_execute(
            "SET client_min_messages = warning;
             DROP TABLE IF EXISTS it_iso;
             CREATE TABLE it_iso (id int PRIMARY KEY, v int NOT NULL);
             SELECT create_distributed_table('it_iso', 'id', shard_count => 4);
             INSERT INTO it_iso SELECT i, 0 FROM generate_series(1, 10) i;",
        )
        .unwrap();
    // REPEATABLE READ: a change committed meanwhile stays invisible to the transaction.
    let mut reader = coordinator();
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .unwrap();
    let before: i64 = reader
        .query_one("SELECT sum(v) FROM it_iso", &[])
        .unwrap()
        .get(0);
    admin.execute("UPDATE it_iso SET v = v + 1", &[]).unwrap();
    let during: i64 = reader
        .query_one("SELECT sum(v) FROM it_iso", &[])
        .unwrap()
        .get(0);
    reader.batch_execute("COMMIT").unwrap();
    let after: i64 = reader
        .query_one("SELECT sum(v) FROM it_iso", &[])
        .unwrap()
        .get(0);
    assert_eq!((before, during, after), (0, 0, 10));
    // READ COMMITTED (the default) sees it at once.
    let mut rc = coordinator();
    rc.batch_execute("BEGIN").unwrap();
    let first: i64 = rc
        .query_one("SELECT sum(v) FROM it_iso", &[])
        .unwrap()
        .get(0);
    admin.execute("UPDATE it_iso SET v = v + 1", &[]).unwrap();
    let second: i64 = rc
        .query_one("SELECT sum(v) FROM it_iso", &[])
        .unwrap()
        .get(0);
    rc.batch_execute("COMMIT").unwrap();
    assert_eq!((first, second), (10, 20));
    // SERIALIZABLE on the workers: a write-skew between two sessions fails one of them.
    let mut s1 = coordinator();
    let mut s2 = coordinator();
    s1.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        .unwrap();
    s2.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        .unwrap();
    let _: i64 = s1
        .query_one("SELECT sum(v) FROM it_iso WHERE id = 1", &[])
        .unwrap()
        .get(0);
    let _: i64 = s2
        .query_one("SELECT sum(v) FROM it_iso WHERE id = 1", &[])
        .unwrap()
        .get(0);
    s1.execute("UPDATE it_iso SET v = v + 1 WHERE id = 1", &[])
        .unwrap();
    s1.batch_execute("COMMIT").unwrap();
    let second_write = s2.execute("UPDATE it_iso SET v = v + 1 WHERE id = 1", &[]);
    let err = second_write.expect_err("a serialization failure");
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::T_R_SERIALIZATION_FAILURE),
        "{err}"
    );
    let _ = s2.batch_execute("ROLLBACK");
    thread::sleep(Duration::from_millis(10));
    admin.batch_execute("DROP TABLE it_iso").unwrap();
}

#[test]
fn the_maintenance_worker_recovers_on_its_own() {
    let mut admin = coordinator();
    admin
        .batch_execute(
            "SET client_min_messages = warning;
             DROP TABLE IF EXISTS it_daemon;
             CREATE TABLE it_daemon (id int PRIMARY KEY, v int NOT NULL);
             SELECT create_distributed_table('it_daemon', 'id', shard_count => 4);
             INSERT INTO it_daemon SELECT i, 0 FROM generate_series(1, 10) i;",
        )
        .unwrap();
    let port = port_of(&mut admin, "it_daemon", 1);
    let shard: String = admin
        .query_one(
            "SELECT shard_name('it_daemon', get_shard_id_for_distribution_column('it_daemon', 1))",
            &[],
        )
        .unwrap()
        .get(0);
    // What a coordinator that died after PREPARE leaves behind: a prepared transaction whose
    // local transaction is long gone and has no decision recorded.
    connect(port)
        .batch_execute(&format!(
            "BEGIN; UPDATE {shard} SET v = 99 WHERE id = 1; PREPARE TRANSACTION 'citus_0_1_3_99'"
        ))
        .unwrap();
    admin
        .batch_execute("ALTER SYSTEM SET citus.recover_2pc_interval = '200ms'")
        .unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    let recovered = eventually(Duration::from_secs(30), || prepared_on_workers() == 0);
    admin
        .batch_execute("ALTER SYSTEM RESET citus.recover_2pc_interval")
        .unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    assert!(
        recovered,
        "the maintenance worker should roll the transaction back"
    );
    let v: i32 = admin
        .query_one("SELECT v FROM it_daemon WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, 0);
    admin.batch_execute("DROP TABLE it_daemon").unwrap();
}
